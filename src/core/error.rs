//! Errors of the channel core, one enum per operation: opening or creating a channel,
//! writing, reading, and moving a reader.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Errors creating or opening a channel. Each names the channel's file.
///
/// ```
/// use kekbit::core::{shm_reader, ChannelError};
/// let dir = tempfile::tempdir().unwrap();
/// match shm_reader(dir.path(), 99) {
///     Err(ChannelError::NotFound { path }) => assert!(path.ends_with("0000000000000063.kekbit")),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The channel's file does not exist (yet).
    #[error("{}: channel not found", path.display())]
    NotFound {
        /// The channel's file.
        path: PathBuf,
    },
    /// Another writer, in this or another process, holds the channel's lock.
    #[error("{}: channel is locked by another writer", path.display())]
    Locked {
        /// The channel's file.
        path: PathBuf,
    },
    /// The channel exists and its writer is gone; a channel is never written twice.
    #[error("{}: channel already exists (a channel is written once, by the writer that created it)", path.display())]
    AlreadyExists {
        /// The channel's file.
        path: PathBuf,
    },
    /// The header passed to [`shm_writer`](super::shm_writer) breaks a limit.
    #[error("{}: invalid channel configuration: {reason}", path.display())]
    InvalidConfig {
        /// The channel's file.
        path: PathBuf,
        /// Which limit, and by how much.
        reason: String,
    },
    /// The file does not start with the kekbit magic: not a channel.
    #[error("{}: not a kekbit channel (magic {found:02x?})", path.display())]
    InvalidMagic {
        /// The file.
        path: PathBuf,
        /// The first eight bytes found.
        found: [u8; 8],
    },
    /// The file was written in a format version this crate does not read.
    #[error("{}: unsupported format version {found} (this build reads version {supported})", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The header's checksum does not match its contents: the header is damaged.
    #[error("{}: header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})", path.display())]
    HeaderChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Checksum stored in the header.
        stored: u32,
        /// Checksum of the header's bytes.
        computed: u32,
    },
    /// A header field is out of its allowed range.
    #[error("{}: invalid header: {reason}", path.display())]
    InvalidHeader {
        /// The file.
        path: PathBuf,
        /// Which field, and why.
        reason: String,
    },
    /// The file is shorter than its header says (or than a header).
    #[error("{}: file is truncated: {len} bytes, expected at least {expected}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The length its header requires.
        expected: u64,
    },
    /// An I/O operation failed (including `StorageFull` when space cannot be reserved).
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
}

/// Errors writing to a channel.
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, WriteError, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 1, 4096, 16, 1_000, TickUnit::Millis);
/// let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
/// let err = writer.write(&[0u8; 17][..]).unwrap_err();
/// assert!(matches!(err, WriteError::RecordTooLarge { max: 16, .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The record does not fit in the space left; nothing was written. The channel stays
    /// open: smaller records may still fit, and it can be closed.
    #[error("{}: channel full at offset {position}: record needs at least {needed} bytes, {available} left", path.display())]
    ChannelFull {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset where the record would have started.
        position: u64,
        /// Bytes the framed record needs (at least).
        needed: u64,
        /// Bytes available to records.
        available: u64,
    },
    /// The record's payload is longer than the channel's maximum record length.
    #[error("{}: record of at least {len} bytes exceeds the maximum record length {max}", path.display())]
    RecordTooLarge {
        /// The channel's file.
        path: PathBuf,
        /// Payload bytes the encoder produced before it was stopped.
        len: u64,
        /// The channel's maximum record length.
        max: u32,
    },
    /// The channel was closed by this writer; nothing more can be written.
    #[error("{}: channel is closed", path.display())]
    Closed {
        /// The channel's file.
        path: PathBuf,
    },
    /// An earlier sync failed, so durability of what was written is unknown; the writer
    /// refuses all further writes and syncs instead of retrying.
    #[error("{}: writer is poisoned by an earlier sync failure", path.display())]
    Poisoned {
        /// The channel's file.
        path: PathBuf,
    },
    /// Syncing to storage failed; the writer is now poisoned.
    #[error("{}: sync failed, writer poisoned: {source}", path.display())]
    SyncFailed {
        /// The channel's file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The data's encoder or a handler failed; nothing was written.
    #[error("{}: encoding the record failed: {source}", path.display())]
    Encoding {
        /// The channel's file.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: io::Error,
    },
}

/// Errors reading from a channel. [`ReadError::Closed`] and [`ReadError::Timeout`] end a
/// healthy channel; the others report damage, which is never returned as data.
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, ReadError, Reader, TickUnit};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis);
/// let writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
/// writer.close().unwrap();
/// let mut reader = shm_reader(dir.path(), 1).unwrap();
/// assert!(matches!(reader.try_read(), Err(ReadError::Closed { .. })));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The writer closed the channel; every record has been read.
    #[error("{}: channel closed at offset {position}", path.display())]
    Closed {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset of the closing marker.
        position: u64,
    },
    /// The writer published nothing and sent no heartbeat for longer than the channel's
    /// timeout: it is considered gone (see [`TimeoutReader`](super::TimeoutReader)).
    #[error("{}: writer silent for {silent:?} (timeout {timeout:?}), channel abandoned at offset {position}", path.display())]
    Timeout {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset where reading stopped.
        position: u64,
        /// The channel's timeout.
        timeout: Duration,
        /// How long the writer has been silent.
        silent: Duration,
    },
    /// The record's checksum does not match: torn by a crash, damaged, or left over from
    /// another channel or position.
    #[error("{}: checksum mismatch in record at offset {position} (stored {stored:#010x}, computed {computed:#010x})", path.display())]
    ChecksumMismatch {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset of the record.
        position: u64,
        /// Checksum in the record header.
        stored: u32,
        /// Checksum of the bytes found.
        computed: u32,
    },
    /// A resynchronisation mark verified at its position, but names another count of
    /// records before it than the reader counted, or another key than the channel's: the
    /// records between the previous mark and this one are not the ones written.
    #[error("{}: resynchronisation mark at offset {position} says {ordinal} records precede it, but {expected} were read (or its key is not the channel's)", path.display())]
    MarkMismatch {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset of the mark.
        position: u64,
        /// Records before it, as the mark says.
        ordinal: u64,
        /// Records before it, as the reader counted.
        expected: u64,
    },
    /// The record header's length exceeds the channel's maximum for its kind.
    #[error("{}: record at offset {position} claims {len} bytes, more than the maximum {max}", path.display())]
    InvalidLength {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset of the record.
        position: u64,
        /// The length in the header.
        len: u32,
        /// The channel's maximum for the record's kind.
        max: u64,
    },
    /// The record would extend past the end allowed for its kind (data records must leave
    /// the closing reserve free).
    #[error("{}: record at offset {position} with {len} bytes would end at {end}, past the limit {limit}", path.display())]
    OutOfBounds {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset of the record.
        position: u64,
        /// The length in the header.
        len: u32,
        /// Data-area offset where the record would end.
        end: u64,
        /// Data-area offset records of its kind must end by.
        limit: u64,
    },
    /// The record header names no known record kind.
    #[error("{}: unknown record header {word:#018x} at offset {position}", path.display())]
    UnknownKind {
        /// The channel's file.
        path: PathBuf,
        /// Data-area offset of the record.
        position: u64,
        /// The header word found.
        word: u64,
    },
}

impl ReadError {
    /// Whether this error reports damaged data (as opposed to the end of a healthy channel).
    ///
    /// ```
    /// use kekbit::core::ReadError;
    /// let closed = ReadError::Closed { path: "c.kekbit".into(), position: 8 };
    /// assert!(!closed.is_corruption());
    /// ```
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            ReadError::ChecksumMismatch { .. }
                | ReadError::MarkMismatch { .. }
                | ReadError::InvalidLength { .. }
                | ReadError::OutOfBounds { .. }
                | ReadError::UnknownKind { .. }
        )
    }

    /// The data-area offset the error is about.
    ///
    /// ```
    /// use kekbit::core::ReadError;
    /// let closed = ReadError::Closed { path: "c.kekbit".into(), position: 8 };
    /// assert_eq!(closed.position(), 8);
    /// ```
    pub fn position(&self) -> u64 {
        match self {
            ReadError::Closed { position, .. }
            | ReadError::Timeout { position, .. }
            | ReadError::MarkMismatch { position, .. }
            | ReadError::ChecksumMismatch { position, .. }
            | ReadError::InvalidLength { position, .. }
            | ReadError::OutOfBounds { position, .. }
            | ReadError::UnknownKind { position, .. } => *position,
        }
    }
}

/// Why [`Reader::move_to`](super::Reader::move_to) refused a position.
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, InvalidPosition, Reader, TickUnit, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
/// writer.write(&b"twelve bytes"[..]).unwrap();
/// let mut reader = shm_reader(dir.path(), 1).unwrap();
/// assert!(matches!(reader.move_to(3), Err(InvalidPosition::Unaligned { position: 3 })));
/// assert!(matches!(reader.move_to(8), Err(InvalidPosition::NotRecordStart { position: 8, .. })));
/// assert!(matches!(reader.move_to(64), Err(InvalidPosition::Unavailable { position: 64, .. })));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidPosition {
    /// Records start at multiples of 8.
    #[error("position {position} is not 8-byte aligned")]
    Unaligned {
        /// The refused position.
        position: u64,
    },
    /// The position is inside a record.
    #[error("position {position} is inside the record starting at {record_start}")]
    NotRecordStart {
        /// The refused position.
        position: u64,
        /// Start of the record that covers it.
        record_start: u64,
    },
    /// Nothing has been published that far (yet), or the channel closed before it.
    #[error("position {position} is beyond the published data, which ends at {end}")]
    Unavailable {
        /// The refused position.
        position: u64,
        /// Where the published records end.
        end: u64,
    },
    /// A damaged record lies between the channel's start and the position, so it cannot be
    /// shown to be a record start.
    #[error("position {position} lies beyond a damaged record: {cause}")]
    BeyondDamage {
        /// The refused position.
        position: u64,
        /// The damage found on the way.
        cause: Box<ReadError>,
    },
}
