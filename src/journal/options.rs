//! How a journal is opened: segment size, limits, durability and recovery policies.

use std::path::Path;
use std::time::Duration;

use super::helper::{Pool, SegmentSpec};
use super::{segment, Journal, JournalError};
use crate::core::{RECORD_HEADER_LEN, TRAILER_RESERVE};

/// When appended records are made durable (written to storage with `msync`).
///
/// Wherever a policy is typed (the `kekbit` tool's `--durability`, the examples), it is
/// spelled `never`, `every-record`, `every:N` or `interval:MS`: see the [`FromStr`] and
/// [`Display`] implementations.
///
/// [`FromStr`]: std::str::FromStr
/// [`Display`]: std::fmt::Display
///
/// ```
/// use kekbit::journal::{Durability, JournalOptions};
/// use std::time::Duration;
/// let dir = tempfile::tempdir().unwrap();
/// let journal = JournalOptions::new()
///     .durability(Durability::Interval(Duration::from_millis(5)))
///     .open(dir.path())
///     .unwrap();
/// journal.append(b"made durable within about 5 ms").unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Only when [`Journal::sync`] is called (or the OS writes pages back on its own), not
    /// even when the journal is dropped. A process crash loses nothing appended; a power
    /// loss may lose what was not synced.
    Never,
    /// Every record: `append` returns once the record is durable. Appends from several
    /// threads share syncs (group commit).
    EveryRecord,
    /// Every `n` records: the append that completes a batch of `n` syncs before returning.
    /// Dropping the journal syncs the last, incomplete batch (best effort: see
    /// [`Journal`]).
    EveryN(u64),
    /// A background thread syncs at this interval (opening fails if it cannot be started).
    /// Dropping the journal syncs what the thread has not synced yet (best effort: see
    /// [`Journal`]).
    Interval(Duration),
}

/// What opening a journal does with damage at its tail, left by a crash.
///
/// ```
/// use kekbit::journal::{JournalOptions, RecoveryMode};
/// let options = JournalOptions::new().recovery(RecoveryMode::AbsoluteConsistency);
/// assert_eq!(options.recovery_mode(), RecoveryMode::AbsoluteConsistency);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Drop a torn tail (bytes after the last valid record of the last segment that were
    /// never acknowledged durable) and report how many bytes were dropped. Damage below the
    /// durable watermark, where records were acknowledged, is an error.
    #[default]
    TolerateTornTail,
    /// Any damage, even an unacknowledged torn tail, is an error: the journal is left as it
    /// is for inspection.
    AbsoluteConsistency,
    /// Drop damaged data at the tail even below the durable watermark, and report it.
    SkipCorrupt,
}

/// How much of each new segment is mapped writable (prefaulted) before the writer stores
/// into it. A store to a page not yet mapped costs a page fault on the appending thread
/// (about a microsecond on a virtual machine, more than copying a 4 KiB record); mapping
/// ahead moves that cost to background threads.
///
/// ```
/// use kekbit::journal::{JournalOptions, Prefault};
/// let options = JournalOptions::new().prefault(Prefault::Whole).segments_ahead(4);
/// assert_eq!(options.prefault_policy(), Prefault::Whole);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Prefault {
    /// The first 16 MiB of a segment prepared ahead are mapped before it is used; from
    /// then on a helper thread keeps mapping up to 16 MiB ahead of the writer. Memory and
    /// (on a disk-backed file system) write-back stay proportional to what is written; a
    /// writer streaming large records faster than pages can be mapped (a few GB/s) takes
    /// some faults itself.
    #[default]
    Ahead,
    /// Every page of a segment prepared ahead is mapped before it is used, and the whole
    /// segment opened with the journal is mapped by a helper thread (see
    /// [`Journal::warm_up`]). Appends into such segments never fault. Costs: each segment
    /// prepared ahead occupies its full capacity in memory before it is written (on tmpfs,
    /// `segments_ahead × capacity` of RAM), and on a disk-backed file system every page
    /// is written back once as zeros unless overwritten first.
    Whole,
}

/// Options for opening a [`Journal`]; every setter says its default.
///
/// ```
/// use kekbit::journal::{Durability, JournalOptions};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = JournalOptions::new()
///     .segment_capacity(1 << 20)
///     .max_record_len(4096)
///     .durability(Durability::Never)
///     .open(dir.path())
///     .unwrap();
/// assert_eq!(journal.append(b"first").unwrap(), 0);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct JournalOptions {
    /// `None`: the journal's own (its newest segment's), or the default for a new journal.
    pub(crate) segment_capacity: Option<u64>,
    pub(crate) max_record_len: Option<u32>,
    pub(crate) durability: Durability,
    pub(crate) recovery: RecoveryMode,
    pub(crate) preallocate: bool,
    /// `None` unless set: 1 with preallocation, none without.
    pub(crate) segments_ahead: Option<usize>,
    pub(crate) prefault: Prefault,
    pub(crate) mark_shift: u8,
    /// Pruned segments kept for recycling, at most.
    pub(crate) recycle: usize,
    pub(crate) write_behind: bool,
}

/// Segment capacity of a new journal when none is set.
const DEFAULT_SEGMENT_CAPACITY: u64 = 64 << 20;

/// Pruned segments kept for recycling unless set.
const DEFAULT_RECYCLE: usize = 4;

/// The most segments [`JournalOptions::recycle_segments`] accepts.
pub const MAX_RECYCLE_SEGMENTS: usize = 64;

/// The most segments [`JournalOptions::segments_ahead`] accepts.
pub const MAX_SEGMENTS_AHEAD: usize = 64;

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions::new()
    }
}

impl JournalOptions {
    /// The default options.
    ///
    /// ```
    /// let options = kekbit::journal::JournalOptions::new();
    /// assert_eq!(options.segment_capacity_bytes(), 64 << 20);
    /// ```
    pub fn new() -> JournalOptions {
        JournalOptions {
            segment_capacity: None,
            max_record_len: None,
            durability: Durability::EveryRecord,
            recovery: RecoveryMode::TolerateTornTail,
            preallocate: true,
            segments_ahead: None,
            prefault: Prefault::Ahead,
            mark_shift: crate::core::DEFAULT_MARK_SHIFT,
            recycle: DEFAULT_RECYCLE,
            write_behind: true,
        }
    }

    /// The block size of the resynchronisation marks of new segments, as its log2: a mark
    /// precedes the first record of every block of `2^shift` bytes (docs/FORMAT.md,
    /// "Resynchronisation marks"). After damage, reading resumes at the next mark, so one
    /// damaged byte costs about one block of records; a seek verifies about one block of
    /// records. Smaller blocks lose less and seek faster, for 24 bytes per block. From
    /// [`MIN_MARK_SHIFT`](crate::core::MIN_MARK_SHIFT) (512 bytes) to
    /// [`MAX_MARK_SHIFT`](crate::core::MAX_MARK_SHIFT), or 0 for none (damage then costs
    /// the rest of its segment, and a seek verifies every record before its target).
    /// Defaults to [`DEFAULT_MARK_SHIFT`](crate::core::DEFAULT_MARK_SHIFT), 32 KiB.
    ///
    /// ```
    /// use kekbit::journal::Journal;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().resync_marks(12).open(dir.path()).unwrap();
    /// # drop(journal);
    /// assert!(Journal::options().resync_marks(5).open(dir.path()).is_err());
    /// ```
    pub fn resync_marks(mut self, shift: u8) -> JournalOptions {
        self.mark_shift = shift;
        self
    }

    /// The log2 of the mark block new segments get (see
    /// [`resync_marks`](JournalOptions::resync_marks)).
    ///
    /// ```
    /// assert_eq!(kekbit::journal::JournalOptions::new().resync_mark_shift(), 15);
    /// ```
    pub fn resync_mark_shift(&self) -> u8 {
        self.mark_shift
    }

    /// Size of each new segment's data area in bytes. Defaults to the journal's current
    /// segment size (its newest segment's), or 64 MiB for a new journal: a journal keeps
    /// the size it was created with unless this is set. Applies to segments created from
    /// now on; existing segments keep theirs.
    ///
    /// ```
    /// use kekbit::journal::JournalOptions;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = JournalOptions::new().segment_capacity(1 << 20).open(dir.path()).unwrap();
    /// drop(journal);
    /// // Reopened without a size: the new segment gets the journal's own, 1 MiB, not the
    /// // default 64 MiB.
    /// let _journal = JournalOptions::new().open(dir.path()).unwrap();
    /// let second = kekbit::core::storage_path(dir.path(), 2);
    /// let header = kekbit::core::HEADER_LEN as u64;
    /// assert_eq!(std::fs::metadata(second).unwrap().len(), header + (1 << 20));
    /// ```
    pub fn segment_capacity(mut self, bytes: u64) -> JournalOptions {
        self.segment_capacity = Some(bytes);
        self
    }

    /// Largest record payload accepted. Defaults to the journal's current maximum (its
    /// newest segment's) when the segment capacity is not set either; otherwise, and for a
    /// new journal, to 1 MiB, or to the largest record that fits in a segment when segments
    /// are smaller. A record of this size must fit in an empty segment (with 8 bytes of
    /// framing and the 64-byte closing reserve).
    ///
    /// ```
    /// let options = kekbit::journal::JournalOptions::new().max_record_len(512);
    /// assert_eq!(options.max_record_len_bytes(), 512);
    /// ```
    pub fn max_record_len(mut self, bytes: u32) -> JournalOptions {
        self.max_record_len = Some(bytes);
        self
    }

    /// When appends become durable. Defaults to [`Durability::EveryRecord`].
    ///
    /// ```
    /// use kekbit::journal::{Durability, JournalOptions};
    /// let options = JournalOptions::new().durability(Durability::EveryN(100));
    /// assert_eq!(options.durability_policy(), Durability::EveryN(100));
    /// ```
    pub fn durability(mut self, durability: Durability) -> JournalOptions {
        self.durability = durability;
        self
    }

    /// How damage at the tail is handled when the journal is opened for appending.
    /// Defaults to [`RecoveryMode::TolerateTornTail`].
    ///
    /// ```
    /// use kekbit::journal::{JournalOptions, RecoveryMode};
    /// let options = JournalOptions::new().recovery(RecoveryMode::SkipCorrupt);
    /// assert_eq!(options.recovery_mode(), RecoveryMode::SkipCorrupt);
    /// ```
    pub fn recovery(mut self, mode: RecoveryMode) -> JournalOptions {
        self.recovery = mode;
        self
    }

    /// Whether the next segment is created, reserved on storage and prefaulted by a
    /// background thread before it is needed, so that rolling over costs the appending
    /// thread no file creation, `fallocate` or `fsync`. Defaults to `true`; with `false` the
    /// appending thread creates each segment when it needs it, no segment is prepared ahead
    /// (setting [`segments_ahead`](JournalOptions::segments_ahead) as well is refused at
    /// open), and [`Journal::warm_up`] has no prepared segment to wait for.
    ///
    /// ```
    /// let options = kekbit::journal::JournalOptions::new().preallocate(false);
    /// assert!(!options.preallocates());
    /// ```
    pub fn preallocate(mut self, preallocate: bool) -> JournalOptions {
        self.preallocate = preallocate;
        self
    }

    /// How many segments the background thread keeps prepared ahead of the one being
    /// appended to, from 1 to [`MAX_SEGMENTS_AHEAD`]. Defaults to 1. Needs
    /// [`preallocate`](JournalOptions::preallocate) on: opening with both this and
    /// `preallocate(false)` set fails with [`JournalError::InvalidOptions`]. More than one lets a writer stream through
    /// several segments in a burst without waiting for the next one to be created and
    /// prefaulted; each costs its capacity on storage (and, under [`Prefault::Whole`], in
    /// memory) until it is used. Segments prepared and never used are removed when the
    /// journal is closed or next opened.
    ///
    /// ```
    /// let options = kekbit::journal::JournalOptions::new().segments_ahead(3);
    /// assert_eq!(options.segments_prepared_ahead(), 3);
    /// ```
    pub fn segments_ahead(mut self, segments: usize) -> JournalOptions {
        self.segments_ahead = Some(segments);
        self
    }

    /// How many segments removed by [`Journal::prune_before`] are kept, at most, to become
    /// the journal's next segments instead of new files (docs/FORMAT.md, "Recycled
    /// segments"): a recycled segment is already allocated and written, so a steady stream
    /// with retention never waits for the file system to allocate blocks, convert
    /// preallocated extents or zero fresh pages. Only segments of the current segment
    /// capacity that no reader maps (in any process) are kept; the others are removed as
    /// before. Their seal need not be durable, so a stream under [`Durability::Never`]
    /// that never syncs recycles too. From 0 (never recycle) to [`MAX_RECYCLE_SEGMENTS`].
    /// Defaults to 4: each segment kept holds its capacity of storage until it is reused,
    /// as it did before it was pruned; segments kept and not reused are removed when the
    /// journal is closed or next opened. Only the journal's own process recycles:
    /// [`prune`](super::prune) (`kekbit prune`) removes.
    ///
    /// ```
    /// let options = kekbit::journal::JournalOptions::new().recycle_segments(8);
    /// assert_eq!(options.recycle_limit(), 8);
    /// assert_eq!(kekbit::journal::JournalOptions::new().recycle_limit(), 4);
    /// ```
    pub fn recycle_segments(mut self, segments: usize) -> JournalOptions {
        self.recycle = segments;
        self
    }

    /// How many pruned segments are kept for recycling, at most (see
    /// [`recycle_segments`](JournalOptions::recycle_segments)).
    ///
    /// ```
    /// assert_eq!(kekbit::journal::JournalOptions::new().recycle_segments(0).recycle_limit(), 0);
    /// ```
    pub fn recycle_limit(&self) -> usize {
        self.recycle
    }

    /// How much of each new segment is mapped writable before it is written (see
    /// [`Prefault`]). Defaults to [`Prefault::Ahead`].
    ///
    /// ```
    /// use kekbit::journal::{JournalOptions, Prefault};
    /// let options = JournalOptions::new().prefault(Prefault::Whole);
    /// assert_eq!(options.prefault_policy(), Prefault::Whole);
    /// ```
    pub fn prefault(mut self, prefault: Prefault) -> JournalOptions {
        self.prefault = prefault;
        self
    }

    /// Whether a writer that does not sync, or syncs seldom, has the pages it has moved past
    /// written to storage in the background while it appends. Defaults to `true`.
    ///
    /// Under [`Durability::Never`] (or a policy whose syncs are far apart) a segment's pages
    /// would otherwise stay dirty in the page cache until the next sync, which then writes
    /// them all while the caller waits, or until the kernel writes them (about 30 s later).
    /// With it, the helper thread that maps pages ahead of the writer also starts the
    /// writeback of those behind it, 4 MiB or more at a time, so that the device writes
    /// while the journal appends and a sync finds little left to do (a stream of 128 MiB
    /// with one sync at the end: that sync 0.08-0.13 s → 0.01-0.05 s on ext4,
    /// docs/PERFORMANCE.md). Nothing is made durable by it: only a sync does that. It does
    /// nothing on a file system kept in memory (tmpfs), nor for a writer whose syncs keep up
    /// (they write the pages anyway), nor under [`Prefault::Whole`] (whose segments have no
    /// helper thread).
    ///
    /// Turn it off for a journal that never syncs and prunes its records within seconds (a
    /// buffer of recent records on a disk): the device then writes only what the kernel
    /// flushes of its own accord, instead of every record.
    ///
    /// ```
    /// use kekbit::journal::{Durability, JournalOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let options = JournalOptions::new().durability(Durability::Never).write_behind(false);
    /// assert!(!options.writes_behind());
    /// let journal = options.open(dir.path()).unwrap();
    /// journal.append(b"kept in the page cache until the sync").unwrap();
    /// journal.sync().unwrap();
    /// ```
    pub fn write_behind(mut self, on: bool) -> JournalOptions {
        self.write_behind = on;
        self
    }

    /// Whether writing back behind the writer is on (see
    /// [`write_behind`](JournalOptions::write_behind)).
    ///
    /// ```
    /// assert!(kekbit::journal::JournalOptions::new().writes_behind());
    /// ```
    pub fn writes_behind(&self) -> bool {
        self.write_behind
    }

    /// The number of segments prepared ahead: the one set, else 1, or 0 without
    /// preallocation.
    ///
    /// ```
    /// use kekbit::journal::JournalOptions;
    /// assert_eq!(JournalOptions::new().segments_prepared_ahead(), 1);
    /// assert_eq!(JournalOptions::new().preallocate(false).segments_prepared_ahead(), 0);
    /// ```
    pub fn segments_prepared_ahead(&self) -> usize {
        match (self.preallocate, self.segments_ahead) {
            (false, _) => 0,
            (true, ahead) => ahead.unwrap_or(1),
        }
    }

    /// The prefault policy set.
    ///
    /// ```
    /// use kekbit::journal::{JournalOptions, Prefault};
    /// assert_eq!(JournalOptions::new().prefault_policy(), Prefault::Ahead);
    /// ```
    pub fn prefault_policy(&self) -> Prefault {
        self.prefault
    }

    /// The segment capacity set, or 64 MiB when none is (opening an existing journal then
    /// keeps its own; see [`segment_capacity`](JournalOptions::segment_capacity)).
    ///
    /// ```
    /// assert_eq!(kekbit::journal::JournalOptions::new().segment_capacity_bytes(), 64 << 20);
    /// ```
    pub fn segment_capacity_bytes(&self) -> u64 {
        self.segment_capacity.unwrap_or(DEFAULT_SEGMENT_CAPACITY)
    }

    /// The maximum record length in effect: the one set, or the default for the segment
    /// capacity.
    ///
    /// ```
    /// use kekbit::journal::JournalOptions;
    /// assert_eq!(JournalOptions::new().max_record_len_bytes(), 1 << 20);
    /// // 4 KiB segments: 4096 - 8 bytes of framing - the 64-byte closing reserve.
    /// assert_eq!(JournalOptions::new().segment_capacity(4096).max_record_len_bytes(), 4024);
    /// ```
    pub fn max_record_len_bytes(&self) -> u32 {
        self.max_record_len.unwrap_or_else(|| {
            let fits = self
                .segment_capacity_bytes()
                .saturating_sub(RECORD_HEADER_LEN as u64 + TRAILER_RESERVE);
            fits.min(1 << 20) as u32
        })
    }

    /// The durability policy set.
    ///
    /// ```
    /// use kekbit::journal::{Durability, JournalOptions};
    /// assert_eq!(JournalOptions::new().durability_policy(), Durability::EveryRecord);
    /// ```
    pub fn durability_policy(&self) -> Durability {
        self.durability
    }

    /// The recovery mode set.
    ///
    /// ```
    /// use kekbit::journal::{JournalOptions, RecoveryMode};
    /// assert_eq!(JournalOptions::new().recovery_mode(), RecoveryMode::TolerateTornTail);
    /// ```
    pub fn recovery_mode(&self) -> RecoveryMode {
        self.recovery
    }

    /// Whether segments are prepared in the background.
    ///
    /// ```
    /// assert!(kekbit::journal::JournalOptions::new().preallocates());
    /// ```
    pub fn preallocates(&self) -> bool {
        self.preallocate
    }

    /// Opens the journal in `dir` for appending, creating it if needed, and recovers its
    /// tail (see [`Journal::open`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::JournalOptions::new().open(dir.path()).unwrap();
    /// assert_eq!(journal.next_sequence(), 0);
    /// ```
    pub fn open(self, dir: impl AsRef<Path>) -> Result<Journal, JournalError> {
        Journal::open_with(dir.as_ref(), self)
    }

    /// These options with what they leave unset taken from the journal in `dir`: with no
    /// segment capacity set, its newest segment's capacity, and its maximum record length
    /// unless one is set. A segment prepared ahead and never used, or one whose header
    /// cannot be read, is passed over. Unchanged for a new journal.
    pub(crate) fn for_journal(mut self, dir: &Path) -> Result<JournalOptions, JournalError> {
        if self.segment_capacity.is_some() {
            return Ok(self);
        }
        for id in segment::list(dir)?.into_iter().rev() {
            if let Ok(header) = segment::header(dir, id) {
                if !header.is_pending() {
                    self.segment_capacity = Some(header.capacity());
                    self.max_record_len = self.max_record_len.or(Some(header.max_record_len()));
                    break;
                }
            }
        }
        Ok(self)
    }

    /// Refuses a segment capacity and maximum record length that break the format's limits;
    /// `note` is added to the reason.
    pub(crate) fn check_limits(&self, dir: &Path, note: &str) -> Result<(), JournalError> {
        segment::new_header(&self.segment_spec(dir), 1)
            .and_then(|sample| sample.check_limits())
            .map_err(|reason| JournalError::InvalidOptions {
                dir: dir.to_path_buf(),
                reason: format!("{reason}{note}"),
            })
    }

    /// What the segments of the journal in `dir` are created with (its id still unknown).
    pub(crate) fn segment_spec(&self, dir: &Path) -> SegmentSpec {
        SegmentSpec {
            dir: dir.to_path_buf(),
            journal_id: 0,
            capacity: self.segment_capacity_bytes(),
            max_record_len: self.max_record_len_bytes(),
            prefault: self.prefault,
            mark_shift: self.mark_shift,
            pool: Pool::new(
                self.recycle,
                crate::core::HEADER_LEN as u64 + self.segment_capacity_bytes(),
            ),
            will_sync: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(
                self.durability != Durability::Never,
            )),
            write_behind: self.write_behind,
        }
    }

    pub(crate) fn check(&self, dir: &Path) -> Result<(), JournalError> {
        let invalid = |reason: String| JournalError::InvalidOptions {
            dir: dir.to_path_buf(),
            reason,
        };
        if let Durability::EveryN(0) = self.durability {
            return Err(invalid("Durability::EveryN needs at least 1 record".into()));
        }
        match self.segments_ahead {
            Some(n) if !(1..=MAX_SEGMENTS_AHEAD).contains(&n) => {
                return Err(invalid(format!(
                    "segments_ahead must be from 1 to {MAX_SEGMENTS_AHEAD}, not {n}"
                )));
            }
            Some(n) if !self.preallocate => {
                return Err(invalid(format!(
                    "segments_ahead({n}) needs preallocate(true): with preallocate(false) no \
                     segment is prepared ahead"
                )));
            }
            _ => {}
        }
        if self.recycle > MAX_RECYCLE_SEGMENTS {
            return Err(invalid(format!(
                "recycle_segments must be at most {MAX_RECYCLE_SEGMENTS}, not {}",
                self.recycle
            )));
        }
        if let Durability::Interval(d) = self.durability {
            if d.is_zero() {
                return Err(invalid(
                    "Durability::Interval needs a non-zero interval".into(),
                ));
            }
        }
        Ok(())
    }
}
