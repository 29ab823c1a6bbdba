//! What a replay did: the recovery report.

use std::path::PathBuf;

use crate::snapshot::Rejected;

/// A damaged range of a segment that replay skipped (under
/// [`RecoveryMode::SkipCorrupt`](crate::journal::RecoveryMode::SkipCorrupt)) or found.
///
/// ```
/// use kekbit::replay::CorruptRange;
/// let range = CorruptRange::default();
/// assert_eq!(range.records_lost, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CorruptRange {
    /// The segment's id.
    pub segment: u64,
    /// The segment's file.
    pub path: PathBuf,
    /// Data-area offset where the damage starts.
    pub offset: u64,
    /// Bytes given up: from the damage to the resynchronisation mark where reading resumed,
    /// or to the end of what was written in the segment when none followed.
    pub length: u64,
    /// Sequence number of the first record lost.
    pub first_sequence_lost: u64,
    /// Records lost: sequence numbers `first_sequence_lost..first_sequence_lost +
    /// records_lost`. Known exactly from the mark where reading resumed, the damaged
    /// segment's seal, or the next segment's first sequence number; `None` when none of
    /// them can be read (damage at the end of the journal with no seal after it).
    pub records_lost: Option<u64>,
    /// What is wrong, as reported by the reader.
    pub reason: String,
    /// Whether the whole segment was given up (it could not be opened, is missing, or does
    /// not fit the chain), rather than the records from one damaged record on.
    pub whole_segment: bool,
}

/// The snapshot a restore started from.
///
/// ```
/// use kekbit::replay::SnapshotUsed;
/// let used = SnapshotUsed::default();
/// assert_eq!(used.sequence, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotUsed {
    /// The image covers journal records `[0, sequence)`.
    pub sequence: u64,
    /// The snapshot file.
    pub path: PathBuf,
    /// Size of the image.
    pub body_len: u64,
}

/// What a replay (or a restore: snapshot plus replay) did.
///
/// ```
/// use kekbit::journal::{Journal, RecoveryMode};
/// use kekbit::replay::{replay, Replay};
///
/// struct Count(u64);
/// impl Replay for Count {
///     type Error = std::convert::Infallible;
///     fn record(&mut self, _seq: u64, _record: &[u8]) -> Result<(), Self::Error> {
///         self.0 += 1;
///         Ok(())
///     }
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::open(dir.path()).unwrap();
/// journal.append(b"a").unwrap();
/// journal.append(b"b").unwrap();
/// let report = replay(dir.path(), 0, RecoveryMode::TolerateTornTail, &mut Count(0)).unwrap();
/// assert_eq!(report.records_replayed, 2);
/// assert_eq!((report.first_sequence, report.last_sequence), (Some(0), Some(1)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// Records handed to the application.
    pub records_replayed: u64,
    /// Segments read.
    pub segments_read: u64,
    /// Sequence number of the first record replayed.
    pub first_sequence: Option<u64>,
    /// Sequence number of the last record replayed.
    pub last_sequence: Option<u64>,
    /// Bytes of torn tail dropped (never acknowledged).
    pub torn_bytes_dropped: u64,
    /// Damaged ranges skipped.
    pub corrupt_ranges: Vec<CorruptRange>,
    /// The snapshot the state was restored from, if any.
    pub snapshot: Option<SnapshotUsed>,
    /// Newer snapshots that could not be used, and why.
    pub snapshots_rejected: Vec<Rejected>,
}
