//! The state a journal's handles share, and syncing it: group commit over the appender.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::appender::Appender;
use super::bell::WriterBell;
use super::callbacks::Callbacks;
use super::helper::Pool;
use super::sync::{GroupCommit, Turn};
use super::{AppendError, JournalOptions, OpenReport};

/// How long a sync leader waits at most for the threads its last sync served to append
/// again (group commit).
const GATHER_MAX: Duration = Duration::from_micros(50);

/// How long a sync may be waited for.
#[derive(Clone, Copy)]
pub(crate) enum Wait {
    Forever,
    /// Until the deadline, which is the timeout asked from now.
    Until(Instant, Duration),
}

impl Wait {
    pub(crate) fn new(timeout: Duration) -> Wait {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => Wait::Until(deadline, timeout),
            None => Wait::Forever,
        }
    }
}

/// What a journal's handles share: its directory, options, the appender behind its lock,
/// the group-commit state and the writer lock, held for the journal's life.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) options: JournalOptions,
    pub(crate) appender: Mutex<Appender>,
    pub(crate) commit: GroupCommit,
    /// Callbacks waiting for records to become durable, fired by the thread whose sync
    /// covered them.
    pub(crate) callbacks: Callbacks,
    pub(crate) report: OpenReport,
    /// Declared after `appender` and before `_lock`: its last ring, when the journal closes,
    /// comes after the seal and while the lock is still held.
    pub(crate) bell: WriterBell,
    /// Pruned segments kept to be recycled.
    pub(crate) pool: Pool,
    /// The segment whose header a prune made durable last (see `prune_segments`).
    pub(crate) head_synced: AtomicU64,
    pub(crate) _lock: File,
}

impl Shared {
    pub(crate) fn appender(&self) -> MutexGuard<'_, Appender> {
        self.appender.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Refuses a sequence number not appended yet (a poisoned journal is reported as such
    /// first). Sequence numbers only grow, so a sync for one that passes this ends.
    pub(crate) fn check_appended(&self, seq: u64) -> Result<(), AppendError> {
        let appender = self.appender();
        if appender.poisoned {
            return Err(AppendError::Poisoned {
                dir: self.dir.clone(),
            });
        }
        if seq >= appender.next_seq {
            return Err(AppendError::NotAppended {
                dir: self.dir.clone(),
                requested: seq,
                next: appender.next_seq,
            });
        }
        Ok(())
    }

    /// Returns once records `[0, target)` are durable: leads a sync or waits for the one in
    /// progress (group commit). Returns the number of durable records. `target` must not
    /// exceed the records appended (see [`Shared::check_appended`]).
    pub(crate) fn sync_through(&self, target: u64, wait: Wait) -> Result<u64, AppendError> {
        let deadline = match wait {
            Wait::Forever => None,
            Wait::Until(deadline, _) => Some(deadline),
        };
        loop {
            match self.commit.wait_for(target, deadline) {
                Turn::Durable(n) => return Ok(n),
                Turn::Poisoned => {
                    return Err(AppendError::Poisoned {
                        dir: self.dir.clone(),
                    })
                }
                Turn::TimedOut(durable) => {
                    return Err(AppendError::Timeout {
                        dir: self.dir.clone(),
                        sequence: target - 1,
                        durable,
                        timeout: match wait {
                            Wait::Until(_, timeout) => timeout,
                            Wait::Forever => Duration::MAX,
                        },
                    })
                }
                Turn::Lead => {}
            }
            // Let the threads the last sync served append again before this one takes the
            // snapshot of what to sync (they come back within microseconds), so that this
            // sync covers as many of them: wait, yielding, until as many records as there
            // were threads are pending, for at most GATHER_MAX. A leader that appends alone
            // never waits: its own record is pending.
            let (durable, group) = self.commit.progress();
            if group > 1 {
                let since = Instant::now();
                while self.appender().next_seq < durable + group && since.elapsed() < GATHER_MAX {
                    thread::yield_now();
                }
            }
            let (work, upto, generation) = {
                let mut appender = self.appender();
                let generation = self.commit.generation();
                if appender.poisoned {
                    self.commit.finish(None, generation);
                    continue;
                }
                let (work, upto) = appender.sync_work();
                (work, upto, generation)
            };
            // Sealed segments first, oldest first, then the active one: a record after a
            // rollover is never durable before the seal that leads to it.
            let failed = work.iter().find_map(|u| {
                let synced = if u.sealed {
                    u.handle.sync_sealed(u.position)
                } else {
                    u.handle.sync(u.position)
                };
                synced.err().map(|e| (u.path.clone(), e))
            });
            if let Some((segment, source)) = failed {
                // Recorded before the waiters wake, so that every callback fails with this
                // error, not with a later `Poisoned`.
                self.callbacks.sync_failed(&segment, &source);
                let mut appender = self.appender();
                appender.poisoned = true;
                self.commit.finish(None, generation);
                appender.helper.retire(work);
                drop(appender);
                self.callbacks.fire(self);
                return Err(AppendError::SyncFailed { segment, source });
            }
            // Wake the waiters first; then release the work. Only sealed segments' mappings
            // are worth handing to the background thread (unmapping costs time); the active
            // segment's handle is just another reference to a mapping that stays.
            self.commit.finish(Some(upto), generation);
            self.bell.ring();
            if work.iter().any(|u| u.sealed) {
                self.appender().helper.retire(work);
            }
            self.callbacks.fire(self);
        }
    }
}
