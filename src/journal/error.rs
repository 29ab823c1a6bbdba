//! Errors of the journal: opening, reading and maintaining it ([`JournalError`]), and
//! appending to it ([`AppendError`]).

use std::io;
use std::path::PathBuf;

use crate::core::{ChannelError, ReadError, WriteError};

/// Errors opening, recovering, reading or pruning a journal. Each names the directory or
/// segment file concerned; corruption is reported with its segment and offset and is never
/// returned as data.
///
/// ```
/// use kekbit::journal::{Journal, JournalError};
/// let dir = tempfile::tempdir().unwrap();
/// let first = Journal::open(dir.path()).unwrap();
/// assert!(matches!(Journal::open(dir.path()), Err(JournalError::Locked { .. })));
/// # drop(first);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Another writer has the journal open for appending.
    #[error("{}: journal is locked by another writer", dir.display())]
    Locked {
        /// The journal's directory.
        dir: PathBuf,
    },
    /// The options break a limit.
    #[error("{}: invalid journal options: {reason}", dir.display())]
    InvalidOptions {
        /// The journal's directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A segment could not be created or opened.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The directory holds no journal segment.
    #[error("{}: not a kekbit journal (no segment files)", dir.display())]
    NotAJournal {
        /// The directory.
        dir: PathBuf,
    },
    /// A file-system operation failed.
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing to a segment failed while opening or repairing the journal (sealing a
    /// recovered tail); the source names the segment and says why (a failed sync, say).
    #[error("{action} failed: {source}")]
    Write {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: WriteError,
    },
    /// A record is damaged (the source names the segment file and offset).
    #[error("corrupt journal: {source}")]
    Corrupt {
        /// The damage found.
        #[source]
        source: ReadError,
    },
    /// A torn tail was found and the recovery mode does not allow dropping it.
    #[error("{}: torn tail of {bytes} bytes at offset {position} (recovery mode {mode})", segment.display())]
    TornTail {
        /// The segment file.
        segment: PathBuf,
        /// Data-area offset where the valid records end.
        position: u64,
        /// Bytes written after it.
        bytes: u64,
        /// The recovery mode that refused to drop them.
        mode: &'static str,
    },
    /// A segment's records end without a seal although the next segment holds records: the
    /// writer always seals a segment before it appends to the next, so the seal and possibly
    /// records were lost (for instance a zeroed record header).
    #[error("{}: records end at offset {position} without a seal, but segment {next} holds records: the segment is damaged", segment.display())]
    Unsealed {
        /// The segment file.
        segment: PathBuf,
        /// Data-area offset where its readable records end.
        position: u64,
        /// The id of the segment that follows.
        next: u64,
    },
    /// A segment the chain needs is not there.
    #[error("{}: segment {id} is missing", dir.display())]
    MissingSegment {
        /// The journal's directory.
        dir: PathBuf,
        /// The missing segment's id.
        id: u64,
    },
    /// A segment does not follow its predecessor: swapped, duplicated, or from another
    /// journal.
    #[error("{}: broken segment chain: {reason}", segment.display())]
    BrokenChain {
        /// The segment file that does not fit.
        segment: PathBuf,
        /// How it does not fit.
        reason: String,
    },
    /// No segment can follow the journal's last one: its id is the largest a segment can
    /// have (`u64::MAX - 1`; such an id comes from a damaged or crafted file name, never
    /// from rolling over). The journal can be read, not appended to.
    #[error("{}: segment {last:#018x} has the largest segment id, no segment can follow it", dir.display())]
    SegmentIdsExhausted {
        /// The journal's directory.
        dir: PathBuf,
        /// The id of the last segment.
        last: u64,
    },
    /// The requested records were removed by pruning.
    #[error("{}: sequence {requested} was pruned; the journal starts at {first}", dir.display())]
    Pruned {
        /// The journal's directory.
        dir: PathBuf,
        /// The sequence number asked for.
        requested: u64,
        /// The first sequence number still held.
        first: u64,
    },
    /// A sequence number outside what the operation accepts: [`truncate_from`] takes one
    /// from the journal's first sequence number to its next, [`skip_to`] one from its next on.
    ///
    /// [`truncate_from`]: super::Journal::truncate_from
    /// [`skip_to`]: super::Journal::skip_to
    #[error("{}: {operation}({requested}) refused: the sequence number must be from {lowest} to {highest}", dir.display())]
    SequenceOutOfRange {
        /// The journal's directory.
        dir: PathBuf,
        /// The operation refused.
        operation: &'static str,
        /// The sequence number asked for.
        requested: u64,
        /// The lowest it accepts.
        lowest: u64,
        /// The highest it accepts.
        highest: u64,
    },
    /// Records this reader already returned were discarded by a truncation of the journal
    /// ([`Journal::truncate_from`](super::Journal::truncate_from)): the sequence numbers from
    /// `from` on now name other records, or none yet. The reader reports it at every read
    /// until it is moved with [`JournalReader::seek`](super::JournalReader::seek).
    #[error("{}: records from sequence {from} on were discarded by a truncation, and this reader had read up to {next}; seek to go on", dir.display())]
    Truncated {
        /// The journal's directory.
        dir: PathBuf,
        /// The first sequence number discarded.
        from: u64,
        /// The sequence number the reader would have returned next.
        next: u64,
    },
    /// Appending, syncing or creating a segment failed while truncating or skipping.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// The reader has read every record, and the journal's writer closed the journal: its
    /// last segment is sealed and no segment follows. Not damage: the reader stays where it
    /// is, and reads on once a writer opens the journal again and appends.
    #[error("{}: the writer closed the journal; its next record will be sequence {next}", dir.display())]
    WriterClosed {
        /// The journal's directory.
        dir: PathBuf,
        /// The sequence number the journal's next record will have.
        next: u64,
    },
    /// The reader has read every record, and the journal's writer stopped without closing
    /// the journal (the process died; the OS released its lock): no record will follow
    /// until a writer opens the journal again, which recovers the segment's tail. Not
    /// damage: the reader stays where it is and reads on after that.
    #[error("{}: the journal's writer stopped without closing the journal (at offset {position}, before sequence {next}); opening the journal for appending recovers it", segment.display())]
    WriterGone {
        /// The segment the writer was appending to.
        segment: PathBuf,
        /// Data-area offset where its readable records end.
        position: u64,
        /// The sequence number of the next record the reader would return.
        next: u64,
    },
}

/// Errors appending to or syncing a journal.
///
/// ```
/// use kekbit::journal::{AppendError, JournalOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = JournalOptions::new().max_record_len(8).open(dir.path()).unwrap();
/// assert!(matches!(journal.append(b"nine bytes"), Err(AppendError::RecordTooLarge { len: 10, max: 8, .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The record is longer than the journal's maximum record length.
    #[error("{}: record of {len} bytes exceeds the journal's maximum record length {max}", dir.display())]
    RecordTooLarge {
        /// The journal's directory.
        dir: PathBuf,
        /// The record's length.
        len: u64,
        /// The maximum.
        max: u32,
    },
    /// An earlier sync failed; the journal refuses appends and syncs from then on, because
    /// the kernel may have dropped the pages it failed to write.
    #[error("{}: journal is poisoned by an earlier sync failure", dir.display())]
    Poisoned {
        /// The journal's directory.
        dir: PathBuf,
    },
    /// Syncing failed; the journal is now poisoned.
    #[error("{}: sync failed, journal poisoned: {source}", segment.display())]
    SyncFailed {
        /// The segment being synced.
        segment: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The sequence number asked about was never appended: waiting for it to become
    /// durable would never end.
    #[error("{}: sequence {requested} was not appended; the next append gets {next}", dir.display())]
    NotAppended {
        /// The journal's directory.
        dir: PathBuf,
        /// The sequence number asked about.
        requested: u64,
        /// The sequence number the next append gets.
        next: u64,
    },
    /// Waiting for a record to become durable took longer than the timeout asked for
    /// ([`Journal::wait_durable_timeout`](super::Journal::wait_durable_timeout),
    /// [`Journal::append_timeout`](super::Journal::append_timeout)). The record is appended
    /// and may still become durable: wait again, or treat it as not acknowledged.
    #[error("{}: record {sequence} not durable within {timeout:?} ({durable} records durable)", dir.display())]
    Timeout {
        /// The journal's directory.
        dir: PathBuf,
        /// The record waited for.
        sequence: u64,
        /// How many records were durable when the wait gave up (sequence numbers below it).
        durable: u64,
        /// The timeout asked for.
        timeout: std::time::Duration,
    },
    /// The segment being appended to is full and has the largest segment id (see
    /// [`JournalError::SegmentIdsExhausted`]); nothing was appended.
    #[error("{}: segment {last:#018x} is full and has the largest segment id, no segment can follow it", dir.display())]
    SegmentIdsExhausted {
        /// The journal's directory.
        dir: PathBuf,
        /// The id of the full segment.
        last: u64,
    },
    /// Writing into the current segment failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The next segment could not be created (for instance, the disk is full). Nothing was
    /// appended; the journal stays usable once space is freed.
    #[error(transparent)]
    Segment(#[from] ChannelError),
}
