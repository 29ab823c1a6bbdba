//! The journal writer: appends with global sequence numbers, rolls over to the next segment,
//! syncs under a durability policy with group commit, and prunes old segments.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::appender::Appender;
use super::callbacks::Callbacks;
use super::flusher::IntervalFlusher;
use super::helper::Helper;
use super::recovery;
use super::segment;
use super::shared::{Shared, Wait};
use super::sync::GroupCommit;
use super::{
    AppendError, Durability, JournalError, JournalOptions, JournalReader, OpenReport, Prefault,
    PruneReport,
};

/// Name of the file whose OS lock marks the journal's single writer. The lock, not the
/// file, is what counts: it disappears with the process that held it.
pub(crate) const LOCK_FILE: &str = "kekbit.lock";

/// An append-only log of records with global sequence numbers, stored as a chain of
/// fixed-capacity segments (channels of [`crate::core`]) in one directory.
///
/// One process at a time appends (the journal is locked by the OS for its writer's life);
/// any number of [`JournalReader`]s in any process read it, live. A `Journal` is `Send` and
/// `Sync`: share it (for instance in an `Arc`) and append from many threads; sequence
/// numbers are unique and gapless in append order, and threads that need durability share
/// syncs (group commit).
///
/// Dropping a `Journal` seals its active segment and releases the writer lock. Under
/// [`Durability::Interval`] and [`Durability::EveryN`] it first syncs every record appended
/// (the interval's or the batch's last sync); under [`Durability::EveryRecord`] every
/// record already is durable, and under [`Durability::Never`] nothing is synced (that policy
/// syncs only when asked). Under every policy but `Never` it then syncs the seal and releases
/// the storage the sealed segment will never use (its file keeps its size; under `Never` the
/// next opening does it), so that a journal opened and closed often holds about its records,
/// not a segment per opening. Drop cannot report a failed sync, or a journal poisoned earlier:
/// call [`sync`](Journal::sync) before dropping to know that every record is durable.
///
/// ```
/// use kekbit::journal::{Journal, JournalReader};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::open(dir.path()).unwrap();
/// assert_eq!(journal.append(b"deposit 10").unwrap(), 0);
/// assert_eq!(journal.append(b"withdraw 3").unwrap(), 1);
///
/// let mut reader = JournalReader::open(dir.path(), 0).unwrap();
/// let (seq, record) = reader.try_next().unwrap().unwrap();
/// assert_eq!((seq, record), (0, &b"deposit 10"[..]));
/// ```
pub struct Journal {
    pub(super) shared: Arc<Shared>,
    flusher: Option<IntervalFlusher>,
}

impl Journal {
    /// Opens the journal in `dir` with default [`JournalOptions`], creating it if needed.
    ///
    /// Opening takes the journal's writer lock, removes segments prepared ahead and never
    /// used, and recovers the tail: the last segment is read to its last valid record; if
    /// its writer crashed, what follows (a torn tail) is handled by the recovery mode and
    /// reported, and the segment is sealed there. Appends continue with the next sequence
    /// number in a fresh segment. Sealed segments are not scanned, so opening costs the same
    /// however long the journal is.
    ///
    /// ```
    /// use kekbit::journal::Journal;
    /// let dir = tempfile::tempdir().unwrap();
    /// {
    ///     let journal = Journal::open(dir.path()).unwrap();
    ///     journal.append(b"a").unwrap();
    ///     journal.append(b"b").unwrap();
    /// }
    /// let journal = Journal::open(dir.path()).unwrap();
    /// assert_eq!(journal.append(b"c").unwrap(), 2);
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Journal, JournalError> {
        Journal::open_with(dir.as_ref(), JournalOptions::new())
    }

    /// The default options, to change before [`JournalOptions::open`].
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// # drop(journal);
    /// ```
    pub fn options() -> JournalOptions {
        JournalOptions::new()
    }

    pub(crate) fn open_with(dir: &Path, options: JournalOptions) -> Result<Journal, JournalError> {
        options.check(dir)?;
        options.check_limits(dir, "")?;
        crate::core::create_dir_durable(dir)?;
        let lock = lock_journal(dir)?;
        let inherited = options.segment_capacity.is_none();
        let options = options.for_journal(dir)?;
        if inherited {
            options.check_limits(dir, " (the journal's segment size; set one to change it)")?;
        }
        let spec = options.segment_spec(dir);
        let (active, spec, report) = recovery::recover(spec, options.recovery)?;
        let pool = spec.pool.clone();
        // A thread that cannot be started fails the open; the segment recovery created stays
        // behind as after a crash right here (linked, empty, unsealed), which the next open
        // seals and continues after.
        let mut helper =
            Helper::start(spec, options.preallocate).map_err(|source| JournalError::Io {
                path: dir.to_path_buf(),
                action: "starting the journal's background thread",
                source,
            })?;
        let ahead = options.segments_prepared_ahead() as u64;
        helper.prepare(segment::ids_after(active.id, ahead));
        let next_seq = report.next_sequence;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            appender: Mutex::new(Appender {
                active,
                next_seq,
                unsynced: Vec::new(),
                helper,
                ahead,
                poisoned: false,
                epoch: report.truncation_epoch,
                close_durably: options.durability != Durability::Never,
            }),
            commit: GroupCommit::new(next_seq),
            callbacks: Callbacks::default(),
            report,
            options,
            bell: super::bell::WriterBell::open(dir),
            pool,
            head_synced: AtomicU64::new(0),
            _lock: lock,
        });
        let flusher = match shared.options.durability {
            Durability::Interval(every) => {
                let weak = Arc::downgrade(&shared);
                let sync = move || {
                    let Some(shared) = weak.upgrade() else {
                        return false;
                    };
                    let target = shared.appender().next_seq;
                    shared.sync_through(target, Wait::Forever).is_ok()
                };
                let started =
                    IntervalFlusher::start(every, sync).map_err(|source| JournalError::Io {
                        path: dir.to_path_buf(),
                        action: "starting the interval flusher thread",
                        source,
                    })?;
                Some(started)
            }
            _ => None,
        };
        Ok(Journal { shared, flusher })
    }

    /// Appends `record` and returns its sequence number. The record is visible to readers
    /// at once; under [`Durability::EveryRecord`] `append` returns only once it is durable
    /// (sharing the sync with concurrent appends), under [`Durability::EveryN`] the append
    /// that completes a batch syncs it.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// assert_eq!(journal.append(b"first").unwrap(), 0);
    /// assert_eq!(journal.durable_count(), 1); // EveryRecord by default
    /// ```
    pub fn append(&self, record: &[u8]) -> Result<u64, AppendError> {
        let seq = self.append_deferred(record)?;
        // `seq` was just appended: no need for `apply_policy`'s check (and its lock).
        if self.policy_syncs(seq) {
            self.shared.sync_through(seq + 1, Wait::Forever)?;
        }
        Ok(seq)
    }

    /// Like [`append`](Journal::append), but waits at most about `timeout` for the
    /// durability the policy asks for. If the time runs out, the record is appended all the
    /// same (readers see it) but not known durable: [`AppendError::Timeout`] names its
    /// sequence number, to wait for again with [`wait_durable_timeout`] or to treat as not
    /// acknowledged. See [`wait_durable_timeout`] for what the timeout bounds.
    ///
    /// [`wait_durable_timeout`]: Journal::wait_durable_timeout
    ///
    /// ```
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// assert_eq!(journal.append_timeout(b"first", Duration::from_secs(5)).unwrap(), 0);
    /// assert_eq!(journal.durable_count(), 1);
    /// ```
    pub fn append_timeout(&self, record: &[u8], timeout: Duration) -> Result<u64, AppendError> {
        let seq = self.append_deferred(record)?;
        if self.policy_syncs(seq) {
            self.shared.sync_through(seq + 1, Wait::new(timeout))?;
        }
        Ok(seq)
    }

    /// Appends `record` without waiting for it to become durable, whatever the durability
    /// policy, and returns its sequence number; pair it with
    /// [`wait_durable`](Journal::wait_durable). This lets a caller append under its own lock
    /// (to keep the journal's order equal to the order it applies records in) and wait for
    /// durability after releasing it, sharing syncs with other threads.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// let seq = journal.append_deferred(b"x").unwrap();
    /// journal.wait_durable(seq).unwrap();
    /// assert_eq!(journal.durable_count(), 1);
    /// ```
    pub fn append_deferred(&self, record: &[u8]) -> Result<u64, AppendError> {
        self.append_encoded(record, record.len())
    }

    /// What the durability policy asks of the append that got `seq`: under
    /// [`Durability::EveryRecord`] it waits until `seq` is durable, under
    /// [`Durability::EveryN`] the append completing a batch syncs; otherwise nothing.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::EveryN(2)).open(dir.path()).unwrap();
    /// for _ in 0..2 {
    ///     let seq = journal.append_deferred(b"x").unwrap();
    ///     journal.apply_policy(seq).unwrap();
    /// }
    /// assert_eq!(journal.durable_count(), 2);
    /// ```
    pub fn apply_policy(&self, seq: u64) -> Result<(), AppendError> {
        self.shared.check_appended(seq)?;
        if self.policy_syncs(seq) {
            self.shared.sync_through(seq + 1, Wait::Forever)?;
        }
        Ok(())
    }

    /// Whether the durability policy has the append that got `seq` wait for a sync.
    pub(super) fn policy_syncs(&self, seq: u64) -> bool {
        match self.shared.options.durability {
            Durability::EveryRecord => true,
            Durability::EveryN(n) => (seq + 1).is_multiple_of(n),
            _ => false,
        }
    }

    /// Returns once record `seq` (and every one before it) is durable: leads a sync or
    /// joins the one in progress (group commit). A `seq` not appended yet is refused with
    /// [`AppendError::NotAppended`]: no sync could ever make it durable.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// let seq = journal.append(b"x").unwrap();
    /// journal.wait_durable(seq).unwrap();
    /// assert_eq!(journal.durable_count(), 1);
    /// assert!(matches!(
    ///     journal.wait_durable(7),
    ///     Err(kekbit::journal::AppendError::NotAppended { requested: 7, next: 1, .. })
    /// ));
    /// ```
    pub fn wait_durable(&self, seq: u64) -> Result<(), AppendError> {
        self.shared.check_appended(seq)?;
        self.shared.sync_through(seq + 1, Wait::Forever).map(drop)
    }

    /// Like [`wait_durable`](Journal::wait_durable), but gives up after about `timeout`
    /// with [`AppendError::Timeout`] (the record stays appended; waiting again may succeed).
    ///
    /// The timeout bounds the wait for syncs that other threads lead. When no sync is
    /// running, the calling thread leads one whatever the time left, and a sync (one
    /// `msync` per unsynced segment) is never interrupted: on storage that stalls, the call
    /// can overrun the timeout by that sync's duration. Taking the journal's internal lock
    /// is not bounded either (it is held for an append or a rollover, not for a sync).
    ///
    /// ```
    /// use std::time::Duration;
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// let seq = journal.append(b"x").unwrap();
    /// journal.wait_durable_timeout(seq, Duration::from_secs(1)).unwrap();
    /// assert_eq!(journal.durable_count(), 1);
    /// ```
    pub fn wait_durable_timeout(&self, seq: u64, timeout: Duration) -> Result<(), AppendError> {
        self.shared.check_appended(seq)?;
        self.shared
            .sync_through(seq + 1, Wait::new(timeout))
            .map(drop)
    }

    /// Makes every record appended so far durable and returns the sequence number of the
    /// last durable record (`None` while the journal is empty). After a failure the journal
    /// is poisoned: this and every later append or sync fails.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// assert_eq!(journal.sync().unwrap(), None);
    /// journal.append(b"x").unwrap();
    /// journal.append(b"y").unwrap();
    /// assert_eq!(journal.sync().unwrap(), Some(1));
    /// ```
    pub fn sync(&self) -> Result<Option<u64>, AppendError> {
        let target = self.shared.appender().next_seq;
        let durable = self.shared.sync_through(target, Wait::Forever)?;
        Ok(durable.checked_sub(1))
    }

    /// Waits for the work that opening the journal left to background threads: the
    /// segments to prepare ahead ([`JournalOptions::segments_ahead`]) are created, reserved
    /// and prefaulted, and under [`Prefault::Whole`] the segment being appended to is mapped
    /// in full. Appends never need this; call it before a phase where their latency or
    /// throughput matters, such as before a service accepts traffic. Appends from other
    /// threads wait meanwhile. With [`JournalOptions::preallocate`] off no segment is
    /// prepared ahead, so only the [`Prefault::Whole`] mapping is left to do.
    ///
    /// Fails if a segment could not be prepared (a full disk, say); the journal still
    /// works, and tries again to create that segment when it needs it.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal, Prefault};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options()
    ///     .segment_capacity(1 << 20)
    ///     .segments_ahead(2)
    ///     .prefault(Prefault::Whole)
    ///     .durability(Durability::Never)
    ///     .open(dir.path())
    ///     .unwrap();
    /// journal.warm_up().unwrap();
    /// // The segment being appended to, and the two prepared ahead.
    /// let segments = std::fs::read_dir(dir.path())
    ///     .unwrap()
    ///     .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "kekbit"))
    ///     .count();
    /// assert_eq!(segments, 3);
    /// ```
    pub fn warm_up(&self) -> Result<(), JournalError> {
        let mut appender = self.shared.appender();
        appender.helper.wait_prepared()?;
        if self.shared.options.prefault == Prefault::Whole {
            let writer = &appender.active.writer;
            writer
                .prefault_ahead(u64::MAX)
                .map_err(|source| JournalError::Io {
                    path: writer.path().to_path_buf(),
                    action: "prefaulting the active segment",
                    source,
                })?;
        }
        Ok(())
    }

    /// The sequence number the next append will get (the number of records ever appended).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// journal.append(b"x").unwrap();
    /// assert_eq!(journal.next_sequence(), 1);
    /// ```
    pub fn next_sequence(&self) -> u64 {
        self.shared.appender().next_seq
    }

    /// The sequence number of the oldest record the journal still holds (0 until pruning
    /// removes segments).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// assert_eq!(journal.first_sequence().unwrap(), 0);
    /// ```
    pub fn first_sequence(&self) -> Result<u64, JournalError> {
        let dir = &self.shared.dir;
        match segment::list(dir)?.first() {
            Some(&first) => Ok(segment::header(dir, first)?.base_sequence()),
            None => Ok(0),
        }
    }

    /// How many records are known durable: every sequence number below it.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// journal.append(b"x").unwrap();
    /// assert_eq!(journal.durable_count(), 0);
    /// journal.sync().unwrap();
    /// assert_eq!(journal.durable_count(), 1);
    /// ```
    pub fn durable_count(&self) -> u64 {
        self.shared.commit.durable()
    }

    /// What opening the journal found and did (torn bytes dropped and so on).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// assert_eq!(journal.open_report().sealed_segment, None);
    /// ```
    pub fn open_report(&self) -> &OpenReport {
        &self.shared.report
    }

    /// The journal's directory.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// assert_eq!(journal.dir(), dir.path());
    /// ```
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The largest record this journal accepts, in bytes (the one it was created with when
    /// the options left it unset).
    ///
    /// ```
    /// use kekbit::journal::Journal;
    /// let dir = tempfile::tempdir().unwrap();
    /// drop(Journal::options().max_record_len(1000).open(dir.path()).unwrap());
    /// assert_eq!(Journal::open(dir.path()).unwrap().max_record_len(), 1000);
    /// ```
    pub fn max_record_len(&self) -> u32 {
        self.shared.options.max_record_len_bytes()
    }

    /// A reader of this journal from sequence number `from` (see [`JournalReader::open`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// journal.append(b"x").unwrap();
    /// let mut reader = journal.reader(0).unwrap();
    /// assert_eq!(reader.try_next().unwrap(), Some((0, &b"x"[..])));
    /// ```
    pub fn reader(&self, from: u64) -> Result<JournalReader, JournalError> {
        JournalReader::open(&self.shared.dir, from)
    }

    /// Removes the segments all of whose records have sequence numbers below `seq`, oldest
    /// first, never the segment being appended to. A reader that still has a removed segment
    /// open keeps reading it (files are unlinked, never truncated). The directory is synced.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().segment_capacity(4096).max_record_len(1000)
    ///     .durability(Durability::Never).open(dir.path()).unwrap();
    /// for _ in 0..20 {
    ///     journal.append(&[7u8; 1000]).unwrap(); // four records per segment
    /// }
    /// // Segments holding 0-3 and 4-7 go; the one holding 8-11 stays, as it holds 10 and 11.
    /// let pruned = journal.prune_before(10).unwrap();
    /// assert_eq!(pruned.segments_removed, 2);
    /// assert_eq!(pruned.first_sequence, 8);
    /// ```
    pub fn prune_before(&self, seq: u64) -> Result<PruneReport, JournalError> {
        let active = self.shared.appender().active.id;
        let report = super::maintain::prune_segments(
            &self.shared.dir,
            seq,
            active,
            Some(&self.shared.pool),
            Some(&self.shared.head_synced),
        )?;
        self.shared.appender().forget_pruned();
        Ok(report)
    }
}

impl Drop for Journal {
    /// Fires or fails every callback registered with [`when_durable`](Journal::when_durable)
    /// (syncing, whatever the policy, if any waits). Under [`Durability::Interval`] and
    /// [`Durability::EveryN`], makes every record
    /// appended durable (best effort: a failure cannot be reported from here), then seals
    /// the active segment and, unless under [`Durability::Never`], syncs the seal and
    /// releases the segment's unused storage; see [`Journal`].
    fn drop(&mut self) {
        // Stop the flusher first: it holds only a weak reference, but may be mid-sync.
        self.flusher = None;
        self.close_callbacks();
        if matches!(
            self.shared.options.durability,
            Durability::Interval(_) | Durability::EveryN(_)
        ) {
            let _ = self.sync();
        }
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.shared.dir)
            .field("next_sequence", &self.next_sequence())
            .field("durable_count", &self.durable_count())
            .finish()
    }
}

pub(crate) fn lock_journal(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| JournalError::Io {
            path: path.clone(),
            action: "opening the journal lock",
            source,
        })?;
    match crate::mmap::try_lock_writer(&file) {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(JournalError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(JournalError::Io {
            path,
            action: "locking the journal",
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_and_reader_can_move_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Journal>();
        send::<JournalReader>();
    }

    #[test]
    fn an_interval_flusher_that_cannot_start_fails_the_open() {
        // Trap (issue 11, "API traps"): when the flusher thread failed to spawn, the journal
        // opened and Durability::Interval never synced.
        let dir = tempfile::tempdir().unwrap();
        super::super::flusher::tests::FAIL_SPAWN.with(|f| f.set(true));
        let opened = Journal::options()
            .durability(Durability::Interval(Duration::from_millis(1)))
            .open(dir.path());
        super::super::flusher::tests::FAIL_SPAWN.with(|f| f.set(false));
        match opened {
            Err(JournalError::Io { action, .. }) => {
                assert_eq!(action, "starting the interval flusher thread")
            }
            other => panic!("{other:?}"),
        }
        // The lock is released and the journal opens, as after a crash at that point.
        let journal = Journal::options()
            .durability(Durability::Interval(Duration::from_millis(1)))
            .open(dir.path())
            .unwrap();
        assert_eq!(journal.append(b"x").unwrap(), 0);
    }

    #[test]
    fn a_reader_may_open_before_the_journal_directory_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("later");
        let mut reader = JournalReader::open(&path, 0).unwrap();
        assert_eq!(reader.try_next().unwrap(), None);
        let journal = Journal::open(&path).unwrap();
        journal.append(b"now").unwrap();
        assert_eq!(reader.try_next().unwrap(), Some((0, &b"now"[..])));
    }
}
