//! What opening and pruning a journal report.

use std::path::PathBuf;

/// What opening a journal found and did.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
/// let report = journal.open_report();
/// assert_eq!(report.next_sequence, 0);
/// assert_eq!(report.torn_bytes_dropped, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Segment files found in the directory.
    pub segments: usize,
    /// Sequence number the next append gets.
    pub next_sequence: u64,
    /// Bytes of torn tail dropped (written after the last valid record, never acknowledged).
    pub torn_bytes_dropped: u64,
    /// The segment whose recovered tail was sealed on opening, if the last writer left it
    /// unsealed (it crashed).
    pub sealed_segment: Option<u64>,
    /// Segments prepared ahead by the last writer and never used, removed.
    pub pending_removed: usize,
    /// Segments created during a rollover that never completed (none of their records was
    /// acknowledged), removed.
    pub orphans_removed: usize,
    /// Damaged data below the durable watermark (acknowledged records) that
    /// [`RecoveryMode::SkipCorrupt`](super::RecoveryMode::SkipCorrupt) dropped when it sealed
    /// the tail there. Under the other modes such damage is an error.
    pub damage_dropped: Vec<DroppedRange>,
    /// How many truncations the journal's chain holds (see
    /// [`Journal::truncation_epoch`](super::Journal::truncation_epoch)).
    pub truncation_epoch: u64,
}

/// A damaged range of acknowledged records dropped on opening (see
/// [`OpenReport::damage_dropped`]).
///
/// ```
/// let range = kekbit::journal::DroppedRange::default();
/// assert_eq!(range.length, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DroppedRange {
    /// The segment's id.
    pub segment: u64,
    /// The segment's file.
    pub path: PathBuf,
    /// Data-area offset where the valid records end.
    pub offset: u64,
    /// Bytes written after it that were dropped.
    pub length: u64,
    /// Sequence number of the first record lost.
    pub first_sequence_lost: u64,
    /// What was found there.
    pub reason: String,
}

/// What [`Journal::prune_before`](super::Journal::prune_before) removed.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
/// let pruned = journal.prune_before(0).unwrap();
/// assert_eq!(pruned.segments_removed, 0);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Segment files removed.
    pub segments_removed: usize,
    /// The first sequence number the journal still holds.
    pub first_sequence: u64,
}

/// What [`Journal::truncate_from`](super::Journal::truncate_from) did.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
/// for i in 0..5u8 {
///     journal.append(&[i]).unwrap();
/// }
/// let report = journal.truncate_from(3).unwrap();
/// assert_eq!((report.from, report.discarded, report.epoch), (3, 2, 1));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TruncateReport {
    /// The first sequence number discarded: the one the next append gets.
    pub from: u64,
    /// How many records were discarded (0 when there was nothing after `from`).
    pub discarded: u64,
    /// The journal's truncation epoch afterwards: how many truncations its chain holds.
    pub epoch: u64,
}
