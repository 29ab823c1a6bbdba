//! Group commit: threads that need their records durable share one sync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// Shared sync progress.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Records `[0, durable)` are durable.
    pub(crate) durable: u64,
    /// Whether a thread is syncing now (the leader).
    leader: bool,
    /// Set when a sync failed: no later sync may report success.
    pub(crate) poisoned: bool,
    /// Threads waiting for the leader now.
    waiting: u64,
    /// Threads that the last sync served: its leader and the threads waiting when it ended.
    last_group: u64,
    /// Bumped by every truncation or skip ([`GroupCommit::reset`]): a sync whose work was
    /// taken in an older generation covers records that no longer exist, and reports nothing.
    generation: u64,
}

/// Coordinates syncs: one thread (the leader) syncs everything appended so far while the
/// others wait for it, so N concurrent durable appends cost about one sync, not N.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<SyncState>,
    done: Condvar,
    /// `SyncState::durable`, stored under the lock whenever it changes, read without it: by
    /// every registration of a durability callback, which would otherwise take this lock
    /// for it (src/journal/callbacks.rs).
    published: AtomicU64,
}

/// What waiting for durability ended with.
pub(crate) enum Turn {
    /// Records up to the target are durable: `durable` records in all.
    Durable(u64),
    /// The caller must sync, then call [`GroupCommit::finish`].
    Lead,
    /// A sync failed earlier.
    Poisoned,
    /// The deadline passed while another thread's sync was running; `durable` records are
    /// durable.
    TimedOut(u64),
}

impl GroupCommit {
    pub(crate) fn new(durable: u64) -> GroupCommit {
        GroupCommit {
            state: Mutex::new(SyncState {
                durable,
                ..SyncState::default()
            }),
            done: Condvar::new(),
            published: AtomicU64::new(durable),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until records `[0, target)` are durable, or until the caller must lead a sync,
    /// or (with a deadline) until the deadline passes while another thread leads. A caller
    /// is handed the lead whenever no sync runs, deadline or not: leading makes progress.
    pub(crate) fn wait_for(&self, target: u64, deadline: Option<Instant>) -> Turn {
        let mut state = self.lock();
        loop {
            if state.poisoned {
                return Turn::Poisoned;
            }
            if state.durable >= target {
                return Turn::Durable(state.durable);
            }
            if !state.leader {
                state.leader = true;
                return Turn::Lead;
            }
            state.waiting += 1;
            state = match deadline {
                None => self.done.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        state.waiting -= 1;
                        return Turn::TimedOut(state.durable);
                    }
                    self.done
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
            state.waiting -= 1;
        }
    }

    /// Ends a leader's turn: `Some(n)` when records `[0, n)` are now durable, `None` when the
    /// sync failed (which poisons every later wait). `generation` is the one the sync's work
    /// was taken in (see [`GroupCommit::generation`]).
    pub(crate) fn finish(&self, synced: Option<u64>, generation: u64) {
        let mut state = self.lock();
        state.leader = false;
        match synced {
            Some(n) => {
                state.last_group = state.waiting + 1;
                if generation == state.generation {
                    state.durable = state.durable.max(n);
                    self.published.store(state.durable, Ordering::Release);
                }
            }
            None => state.poisoned = true,
        }
        // Wake the waiters after unlocking: woken while the lock is held, each would block on
        // it at once and be woken again (a convoy of context switches on every sync).
        drop(state);
        self.done.notify_all();
    }

    /// Records known durable, and how many threads the last sync served (see
    /// [`SyncState::last_group`]).
    pub(crate) fn progress(&self) -> (u64, u64) {
        let state = self.lock();
        (state.durable, state.last_group)
    }

    /// The current generation: read, under the appender's lock, with the work of a sync.
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// After a truncation or a skip, made durable by its caller under the appender's lock:
    /// records `[0, durable)` are durable and the next is `durable`. Syncs in flight from
    /// before no longer count.
    pub(crate) fn reset(&self, durable: u64) {
        let mut state = self.lock();
        state.generation += 1;
        state.durable = durable;
        self.published.store(durable, Ordering::Release);
        drop(state);
        self.done.notify_all();
    }

    /// Poisons every later wait (a truncation's sync failed).
    pub(crate) fn poison(&self) {
        self.lock().poisoned = true;
        self.done.notify_all();
    }

    /// Records known durable (without the lock: a value this state held since the caller's
    /// last look, or a later one).
    pub(crate) fn durable(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }
}
