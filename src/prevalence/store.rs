//! The prevalent store: application state kept in memory, every change journaled first,
//! restored after a restart from the latest good snapshot plus the journal after it.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Command, StoreError, StoreOptions};
use crate::codec::{Bincode, Codec, CodecError};
use crate::journal::Journal;
use crate::replay::{replay, CorruptRange, RecoveryReport, Replay, SnapshotUsed};
use crate::snapshot::{SnapshotInfo, SnapshotStore};

/// A snapshot just taken, and what it cost.
///
/// ```
/// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Add(u64);
/// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
/// let dir = tempfile::tempdir().unwrap();
/// let store = PrevalentStore::<u64, Add>::open(dir.path(), 0, StoreOptions::new()).unwrap();
/// store.execute(Add(2)).unwrap();
/// let taken = store.snapshot().unwrap();
/// assert_eq!(taken.info.sequence, 1);
/// assert!(taken.blocked <= taken.total);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SnapshotTaken {
    /// The snapshot file written.
    pub info: SnapshotInfo,
    /// How long `execute` was blocked: the time the state was locked to serialize it.
    pub blocked: Duration,
    /// The whole snapshot: serialize, wait for the journal to be durable up to the image,
    /// write and sync the file, prune.
    pub total: Duration,
    /// Journal segments removed.
    pub segments_pruned: usize,
}

/// An application's state of type `S`, changed only by commands of type `C`: the
/// system-prevalence pattern, with checksums and recovery modes.
///
/// [`execute`](PrevalentStore::execute) journals the command (encoded with the codec `K`),
/// then applies it to the in-memory state and returns its output; under
/// [`Durability::EveryRecord`](crate::journal::Durability::EveryRecord) it returns only once
/// the command is durable, sharing syncs with concurrent callers. A query may observe a
/// command's effect before that command's `execute` returns; a crash before it is durable
/// loses the command and its effect together, and no caller was told it succeeded.
/// [`snapshot`](PrevalentStore::snapshot) writes the whole state so that a restart replays
/// only the commands after it. Commands must follow the [`Command`] contract (deterministic,
/// no panics).
///
/// The directory holds `journal/` (the command journal) and `snapshots/`.
///
/// ```
/// use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Push(String);
/// impl Command<Vec<String>> for Push {
///     type Output = usize;
///     fn apply(&self, list: &mut Vec<String>) -> usize {
///         list.push(self.0.clone());
///         list.len()
///     }
/// }
///
/// let dir = tempfile::tempdir().unwrap();
/// {
///     let store = PrevalentStore::<Vec<String>, Push>::open(dir.path(), Vec::new(), StoreOptions::new()).unwrap();
///     assert_eq!(store.execute(Push("a".into())).unwrap(), 1);
///     store.snapshot().unwrap();
///     assert_eq!(store.execute(Push("b".into())).unwrap(), 2);
/// }
/// let store = PrevalentStore::<Vec<String>, Push>::open(dir.path(), Vec::new(), StoreOptions::new()).unwrap();
/// assert_eq!(store.query(|list| list.clone()).unwrap(), ["a", "b"]);
/// assert_eq!(store.recovery_report().records_replayed, 1); // "b", after the snapshot
/// ```
pub struct PrevalentStore<S, C, K: Codec = Bincode> {
    dir: PathBuf,
    state: Mutex<S>,
    journal: Journal,
    snapshots: SnapshotStore,
    codec: K,
    prune: bool,
    report: RecoveryReport,
    snapshotting: Mutex<()>,
    _command: PhantomData<fn(C)>,
}

/// Feeds journaled commands to the state during restore.
struct Applier<'a, S, C, K> {
    state: &'a mut S,
    codec: &'a K,
    _command: PhantomData<fn(C)>,
}

impl<S, C: Command<S>, K: Codec> Replay for Applier<'_, S, C, K> {
    type Error = CodecError;

    fn record(&mut self, _seq: u64, record: &[u8]) -> Result<(), CodecError> {
        let command: C = self.codec.decode(record)?;
        command.apply(self.state);
        Ok(())
    }
}

impl<S, C> PrevalentStore<S, C, Bincode>
where
    S: Serialize + DeserializeOwned,
    C: Command<S>,
{
    /// Opens the store in `dir` with the default codec, restoring its state: the newest
    /// snapshot that reads back intact and decodes (falling back to older ones), or
    /// `initial` when there is none, then every journaled command after it. What was done is
    /// in [`recovery_report`](PrevalentStore::recovery_report).
    ///
    /// The second argument, `initial`, is the state of a new store, before any command: it
    /// is used only when `dir` holds no snapshot (then every command since the first is
    /// replayed onto it), and dropped otherwise. Pass the same value every time.
    ///
    /// ```
    /// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Add(u64);
    /// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = PrevalentStore::<u64, Add>::open(dir.path(), 100, StoreOptions::new()).unwrap();
    /// assert_eq!(store.execute(Add(1)).unwrap(), 101);
    /// ```
    pub fn open(
        dir: impl AsRef<Path>,
        initial: S,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        Self::open_with_codec(dir, initial, options, Bincode)
    }
}

impl<S, C, K> PrevalentStore<S, C, K>
where
    S: Serialize + DeserializeOwned,
    C: Command<S>,
    K: Codec,
{
    /// Like [`open`](PrevalentStore::open), with another codec for commands and snapshots.
    ///
    /// ```
    /// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Add(u64);
    /// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = PrevalentStore::<u64, Add, _>::open_with_codec(dir.path(), 0, StoreOptions::new(), kekbit::codec::Bincode).unwrap();
    /// # drop(store);
    /// ```
    pub fn open_with_codec(
        dir: impl AsRef<Path>,
        initial: S,
        options: StoreOptions,
        codec: K,
    ) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        let journal_dir = dir.join("journal");
        let mode = options.journal.recovery_mode();
        let journal = options.journal.open(&journal_dir)?;
        let snapshots = SnapshotStore::open(dir.join("snapshots"), options.keep_snapshots)?;
        let next = journal.next_sequence();
        let first = journal.first_sequence()?;
        let (loaded, rejected) = snapshots.load_newest(|info, body| {
            if info.sequence > next {
                return Err(format!(
                    "covers {} commands but the journal holds only {next}",
                    info.sequence
                ));
            }
            if info.sequence < first {
                return Err(format!(
                    "the commands after it were pruned (the journal starts at {first})"
                ));
            }
            codec
                .decode::<S>(body)
                .map_err(|e| format!("the image does not decode: {e}"))
        })?;
        let (mut state, from, used) = match loaded {
            Some((info, state)) => {
                let used = SnapshotUsed {
                    sequence: info.sequence,
                    path: info.path,
                    body_len: info.body_len,
                };
                (state, used.sequence, Some(used))
            }
            None if first > 0 => {
                return Err(StoreError::NoUsableSnapshot {
                    dir,
                    first_sequence: first,
                    rejected,
                })
            }
            None => (initial, 0, None),
        };
        let mut applier = Applier::<S, C, K> {
            state: &mut state,
            codec: &codec,
            _command: PhantomData,
        };
        let mut report = replay(&journal_dir, from, mode, &mut applier)?;
        let opened = journal.open_report();
        report.torn_bytes_dropped += opened.torn_bytes_dropped;
        report
            .corrupt_ranges
            .extend(opened.damage_dropped.iter().map(|d| CorruptRange {
                segment: d.segment,
                path: d.path.clone(),
                offset: d.offset,
                length: d.length,
                first_sequence_lost: d.first_sequence_lost,
                records_lost: None,
                reason: d.reason.clone(),
                whole_segment: false,
            }));
        // Now that the state is restored without them, set rejected snapshots aside (renamed,
        // for inspection): otherwise a bad newest file would count among the kept snapshots,
        // push good ones out and drive pruning. A failed open leaves them alone, since a
        // retry (with the right codec, say) may use them.
        for rejected in &rejected {
            snapshots.quarantine(&rejected.path)?;
        }
        report.snapshot = used;
        report.snapshots_rejected = rejected;
        Ok(PrevalentStore {
            dir,
            state: Mutex::new(state),
            journal,
            snapshots,
            codec,
            prune: options.prune_journal,
            report,
            snapshotting: Mutex::new(()),
            _command: PhantomData,
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, S>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Poisoned {
            dir: self.dir.clone(),
        })
    }

    /// Journals `command`, applies it to the state and returns its output (see the type's
    /// documentation for when it is durable).
    ///
    /// ```
    /// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Add(u64);
    /// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = PrevalentStore::<u64, Add>::open(dir.path(), 0, StoreOptions::new()).unwrap();
    /// assert_eq!(store.execute(Add(5)).unwrap(), 5);
    /// assert_eq!(store.execute(Add(5)).unwrap(), 10);
    /// ```
    pub fn execute(&self, command: C) -> Result<C::Output, StoreError> {
        let mut bytes = Vec::new();
        self.codec.encode(&command, &mut bytes)?;
        let (seq, output) = {
            let mut state = self.lock()?;
            // Journal order is apply order: both happen under the state lock.
            let seq = self.journal.append_deferred(&bytes)?;
            (seq, command.apply(&mut state))
        };
        self.journal.apply_policy(seq)?;
        Ok(output)
    }

    /// Reads the state.
    ///
    /// ```
    /// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Add(u64);
    /// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = PrevalentStore::<u64, Add>::open(dir.path(), 7, StoreOptions::new()).unwrap();
    /// assert_eq!(store.query(|n| *n * 2).unwrap(), 14);
    /// ```
    pub fn query<R>(&self, read: impl FnOnce(&S) -> R) -> Result<R, StoreError> {
        Ok(read(&*self.lock()?))
    }

    /// Writes a snapshot of the whole state, then removes the snapshots beyond the number
    /// kept and (unless disabled) the journal segments no kept snapshot needs.
    ///
    /// `execute` is blocked only while the state is serialized (reported as
    /// [`SnapshotTaken::blocked`]); waiting for the journal to be durable up to the image,
    /// writing and syncing the file and pruning happen after the state is released. The
    /// journal is made durable up to the image before the snapshot is written, so a
    /// snapshot never covers commands a crash could take back.
    ///
    /// ```
    /// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Add(u64);
    /// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = PrevalentStore::<u64, Add>::open(dir.path(), 0, StoreOptions::new()).unwrap();
    /// store.execute(Add(1)).unwrap();
    /// store.execute(Add(1)).unwrap();
    /// assert_eq!(store.snapshot().unwrap().info.sequence, 2);
    /// ```
    pub fn snapshot(&self) -> Result<SnapshotTaken, StoreError> {
        let _one_at_a_time = self.snapshotting.lock().unwrap_or_else(|p| p.into_inner());
        let started = Instant::now();
        let (sequence, body, blocked) = {
            let state = self.lock()?;
            let locked = Instant::now();
            let sequence = self.journal.next_sequence();
            let mut body = Vec::new();
            self.codec.encode(&*state, &mut body)?;
            (sequence, body, locked.elapsed())
        };
        if sequence > 0 {
            self.journal.wait_durable(sequence - 1)?;
        }
        let info = self.snapshots.write(sequence, &body)?;
        let mut segments_pruned = 0;
        if self.prune {
            if let Some(oldest) = self.snapshots.list()?.last() {
                segments_pruned = self.journal.prune_before(oldest.sequence)?.segments_removed;
            }
        }
        Ok(SnapshotTaken {
            info,
            blocked,
            total: started.elapsed(),
            segments_pruned,
        })
    }

    /// What opening the store did: the snapshot used (and those rejected), the commands
    /// replayed, torn bytes dropped, damaged ranges skipped.
    ///
    /// ```
    /// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Add(u64);
    /// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = PrevalentStore::<u64, Add>::open(dir.path(), 0, StoreOptions::new()).unwrap();
    /// assert!(store.recovery_report().snapshot.is_none());
    /// ```
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The command journal, for readers that follow it (for instance to replicate the state
    /// in another process) and for syncing explicitly.
    ///
    /// ```
    /// # use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Add(u64);
    /// # impl Command<u64> for Add { type Output = u64; fn apply(&self, s: &mut u64) -> u64 { *s += self.0; *s } }
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = PrevalentStore::<u64, Add>::open(dir.path(), 0, StoreOptions::new()).unwrap();
    /// store.execute(Add(1)).unwrap();
    /// assert_eq!(store.journal().next_sequence(), 1);
    /// ```
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

impl<S, C, K: Codec> std::fmt::Debug for PrevalentStore<S, C, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrevalentStore")
            .field("dir", &self.dir)
            .field("journal", &self.journal)
            .finish()
    }
}
