//! The raft log store: openraft's log on a kekbit [`Journal`] (log index = sequence number),
//! its vote, committed and last purged log ids in a [`MetaFile`](crate::journal::MetaFile).

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{OptionalSend, RaftTypeConfig};

use super::entries::Cursor;
use super::meta::{Meta, Saved};
use crate::codec::{Bincode, Codec};
use crate::journal::{Durability, Journal, JournalOptions};

/// File name of the metadata (vote, committed, last purged) in the store's directory.
pub const META_FILE: &str = "raft.meta";
/// Directory of the journal (the log) in the store's directory.
pub const LOG_DIR: &str = "log";

/// How often, at most, a new committed log id is stored durably on its own (it also goes
/// with every vote and purge, and with the close). openraft only needs it to restore the
/// state machine on restart without waiting for the cluster, and an older one is safe: the
/// entries after it are applied again once the cluster confirms them. Storing it at every
/// commit would cost two syncs per commit.
const COMMITTED_STORE_INTERVAL: Duration = Duration::from_millis(200);

/// openraft's log storage on a kekbit journal: entry `i` is the journal's record `i`,
/// encoded with bincode; the vote, the committed log id and the last purged log id live in a
/// crash-atomic metadata file beside it.
///
/// - `append` makes the entries readable at once and fires openraft's `IOFlushed` from the
///   journal's durability callbacks ([`Journal::when_durable`]) once they and every earlier
///   record are durable: no thread waits per append, and concurrent appends share syncs.
/// - `save_vote` first makes every record appended durable, then stores the metadata, so
///   that a vote never reaches storage before a write issued earlier.
/// - `save_committed` keeps the committed log id in memory (`read_committed` answers it)
///   and stores it the same way at most every 200 ms, with every vote and purge, and when
///   the store is dropped. After a crash the stored one may be older, never ahead of the
///   durable log: openraft then applies less on restart and catches up from the cluster.
/// - Reads (`try_get_log_entries`) continue with the journal reader of the previous read
///   when they start where it stopped, as openraft's replication and apply do.
/// - `truncate_after` discards the entries after a log id durably before it returns
///   ([`Journal::truncate_from`]).
/// - `purge` stores the last purged log id, then removes the journal's segments below it;
///   purging past the last entry (after a snapshot was installed) continues the journal's
///   numbering after it ([`Journal::skip_to`]).
///
/// The store's methods do their (short) I/O on the calling task.
pub struct LogStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
    cursor: Cursor,
}

/// A reader of the log, sharing the store's journal and metadata.
pub struct LogReader<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
    cursor: Cursor,
}

struct Inner<C: RaftTypeConfig> {
    journal: Journal,
    /// Whether appends are acknowledged before they are durable (`Durability::Never`).
    ack_unsynced: bool,
    state: Mutex<State<C>>,
}

struct State<C: RaftTypeConfig> {
    meta: Meta<C>,
    /// The committed log id openraft saved last; stored in `meta` at most every
    /// [`COMMITTED_STORE_INTERVAL`], with the next vote or purge, and at close.
    committed: Option<LogIdOf<C>>,
    /// When `committed` was last stored.
    committed_stored: Instant,
    /// The last entry's log id, or the last purged one when the log holds no entry.
    last_log_id: Option<LogIdOf<C>>,
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// Opens the log store in `dir` (creating it), with the journal's default options.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<LogStore<C>> {
        LogStore::open_with(dir, Journal::options())
    }

    /// Opens the log store in `dir` with `options` for its journal (segment size, record
    /// limit, recovery mode). Appends are acknowledged to openraft once durable, whatever the
    /// durability policy, except under [`Durability::Never`]: then they are acknowledged as
    /// soon as they are in the journal's mapping, where they survive a crash of the process
    /// but not a power loss or a crash of the machine (faster; a cluster whose majority
    /// loses power at once may lose committed entries). The vote and the other metadata are
    /// always stored durably.
    pub fn open_with(dir: impl AsRef<Path>, options: JournalOptions) -> io::Result<LogStore<C>> {
        let dir = dir.as_ref();
        crate::core::create_dir_durable(dir).map_err(io::Error::other)?;
        let ack_unsynced = options.durability_policy() == Durability::Never;
        let journal = options.open(dir.join(LOG_DIR)).map_err(io::Error::other)?;
        let meta = Meta::<C>::open(&dir.join(META_FILE))?;
        let purged = meta.saved.last_purged.clone();
        let first = purged.as_ref().map_or(0, |p| p.index() + 1);
        // A crash after a purge past the last entry stored the purged id but not the skip.
        if journal.next_sequence() < first {
            journal.skip_to(first).map_err(io::Error::other)?;
        }
        let next = journal.next_sequence();
        // The last entry: normally record `next - 1`; after a skip, the last one before it.
        let mut last = None;
        if next > first {
            let mut cursor = Cursor::default();
            last = cursor.read::<C>(&journal, next - 1, next)?.pop();
            if last.is_none() {
                last = cursor.read::<C>(&journal, first, next)?.pop();
            }
        }
        let last_log_id = last.map(|e| e.log_id()).or(purged);
        Ok(LogStore {
            inner: Arc::new(Inner {
                journal,
                ack_unsynced,
                state: Mutex::new(State {
                    committed: meta.saved.committed.clone(),
                    committed_stored: Instant::now(),
                    meta,
                    last_log_id,
                }),
            }),
            cursor: Cursor::default(),
        })
    }

    /// The journal holding the log.
    pub fn journal(&self) -> &Journal {
        &self.inner.journal
    }
}

impl<C: RaftTypeConfig> Drop for LogStore<C> {
    /// Stores the latest committed log id if it changed since it was last stored (errors
    /// are ignored: an older committed log id is safe).
    fn drop(&mut self) {
        let changed = {
            let state = self.inner.state();
            state.committed != state.meta.saved.committed
        };
        if changed {
            let _ = self.inner.save(|_| {});
        }
    }
}

impl<C: RaftTypeConfig> Inner<C> {
    fn state(&self) -> MutexGuard<'_, State<C>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes every record appended durable, then stores the metadata `change` makes, with
    /// the latest committed log id (when the log holds its entry).
    fn save(&self, change: impl FnOnce(&mut Saved<C>)) -> io::Result<()> {
        self.journal.sync().map_err(io::Error::other)?;
        let next = self.journal.next_sequence();
        let mut state = self.state();
        let mut saved = state.meta.saved.clone();
        if state.committed.as_ref().is_some_and(|c| c.index() < next) {
            saved.committed = state.committed.clone();
        }
        change(&mut saved);
        state.meta.store(saved)?;
        state.committed_stored = Instant::now();
        Ok(())
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        self.inner.entries(&mut self.cursor, range)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.inner.state().meta.saved.vote.clone())
    }
}

impl<C: RaftTypeConfig> Inner<C> {
    /// The entries in `range` that the log holds (none below the last purged one).
    fn entries(
        &self,
        cursor: &mut Cursor,
        range: impl RangeBounds<u64>,
    ) -> io::Result<Vec<C::Entry>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let first = {
            let state = self.state();
            state
                .meta
                .saved
                .last_purged
                .as_ref()
                .map_or(0, |p| p.index() + 1)
        };
        let end = end.min(self.journal.next_sequence());
        cursor.read::<C>(&self.journal, start.max(first), end)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        self.inner.entries(&mut self.cursor, range)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.inner.state().meta.saved.vote.clone())
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let state = self.inner.state();
        Ok(LogState {
            last_purged_log_id: state.meta.saved.last_purged.clone(),
            last_log_id: state.last_log_id.clone(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            inner: Arc::clone(&self.inner),
            cursor: Cursor::default(),
        }
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        self.inner.save(|saved| saved.vote = Some(vote.clone()))
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let due = {
            let mut state = self.inner.state();
            state.committed = committed;
            state.committed_stored.elapsed() >= COMMITTED_STORE_INTERVAL
        };
        if due {
            self.inner.save(|_| {})?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.inner.state().committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let journal = &self.inner.journal;
        let mut bytes = Vec::new();
        let mut last = None;
        for entry in entries {
            let next = journal.next_sequence();
            if entry.index() < next {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{}: appending raft entry {} where the log continues at {next} \
                         (truncate first)",
                        journal.dir().display(),
                        entry.index()
                    ),
                ));
            }
            // openraft appends without gaps; its storage suite does not: an entry past the
            // end continues the journal at its index.
            if entry.index() > next {
                journal.skip_to(entry.index()).map_err(io::Error::other)?;
            }
            bytes.clear();
            Bincode
                .encode(&entry, &mut bytes)
                .map_err(io::Error::other)?;
            let seq = journal.append_deferred(&bytes).map_err(io::Error::other)?;
            last = Some(seq);
            self.inner.state().last_log_id = Some(entry.log_id());
        }
        if self.inner.ack_unsynced {
            // Durability::Never: in the journal's mapping, which outlives this process.
            callback.io_completed(Ok(()));
            return Ok(());
        }
        // Nothing appended: acknowledged once what was appended before is durable.
        let Some(seq) = last.or(journal.next_sequence().checked_sub(1)) else {
            callback.io_completed(Ok(()));
            return Ok(());
        };
        journal.when_durable(seq, move |durable| {
            callback.io_completed(durable.map(drop).map_err(io::Error::other))
        });
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last_log_id.as_ref().map_or(0, |l| l.index() + 1);
        let journal = &self.inner.journal;
        if from >= journal.next_sequence() {
            // Nothing after `last_log_id`: the log stays as it is.
            return Ok(());
        }
        journal.truncate_from(from).map_err(io::Error::other)?;
        let mut state = self.inner.state();
        let purged = state.meta.saved.last_purged.clone();
        state.last_log_id = last_log_id.or(purged);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let next = log_id.index() + 1;
        // The purged id first: a crash before the segments go leaves records the store
        // ignores, never a log that starts after a gap nothing explains.
        self.inner
            .save(|saved| saved.last_purged = Some(log_id.clone()))?;
        let journal = &self.inner.journal;
        if journal.next_sequence() < next {
            journal.skip_to(next).map_err(io::Error::other)?;
        }
        journal.prune_before(next).map_err(io::Error::other)?;
        let mut state = self.inner.state();
        if state
            .last_log_id
            .as_ref()
            .is_none_or(|l| l.index() < log_id.index())
        {
            state.last_log_id = Some(log_id);
        }
        Ok(())
    }
}
