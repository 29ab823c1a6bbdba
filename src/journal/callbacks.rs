//! Durability callbacks: closures registered for a sequence number, fired once that record
//! (and every one before it) is durable, by whichever thread completed the covering sync,
//! or failed when a sync fails. A few background threads per journal (the syncers, started
//! by the first registration, src/journal/syncer.rs) sync when callbacks wait and nobody else
//! syncs.

use std::collections::BTreeMap;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::shared::{Shared, Wait};
use super::syncer::{self, Turns, SYNCERS};
use super::{AppendError, Journal};

/// A registered callback: called once with the record's sequence number, or with the error
/// that made its durability impossible.
pub(crate) enum Callback {
    /// A closure given by the caller ([`Journal::when_durable`]).
    Once(Box<dyn FnOnce(Result<u64, AppendError>) + Send>),
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    /// A result slot shared with its owner, resolved in place (the futures of feature
    /// `async`): one allocation per registration rather than a slot and a closure holding it.
    Shared(Arc<dyn Resolve>),
}

/// Something a sync resolves in place: see [`Callback::Shared`].
#[cfg_attr(not(feature = "async"), allow(dead_code))]
pub(crate) trait Resolve: Send + Sync {
    /// Called once, with what [`Callback::Once`]'s closure would get.
    fn resolve(&self, result: Result<u64, AppendError>);
}

impl Callback {
    fn call(self, result: Result<u64, AppendError>) {
        match self {
            Callback::Once(callback) => callback(result),
            Callback::Shared(slot) => slot.resolve(result),
        }
    }
}

impl Journal {
    /// Calls `callback` once record `seq` and every record before it are durable, with
    /// `Ok(seq)`, or with the error that makes that impossible; never blocks, whatever the
    /// durability policy.
    ///
    /// The callback is fired by the thread whose sync covered the record (an append under
    /// [`Durability::EveryRecord`](super::Durability::EveryRecord), a
    /// [`sync`](Journal::sync), the interval flusher), or by the journal's syncer: four
    /// background threads per journal, started by the first registration, that take turns
    /// to sync whenever a callback waits for a record not yet durable (so records appended
    /// while one syncs share the next sync). Before a sync the syncer waits, at most as long
    /// as the last sync took (and never more than a millisecond), until as many callbacks
    /// wait as that sync served: callers that come back one after another (tasks awaiting
    /// `append_durable` in a loop, feature `async`) share one sync rather than straddle
    /// two; the syncer whose sync just ended polls for that count for up to 50 µs and, if it
    /// is reached, syncs again at once. No thread waits per callback. A callback for a record already durable fires at
    /// once: in the calling thread, before `when_durable` returns, unless another thread is
    /// firing callbacks right then, which fires it next.
    ///
    /// Guarantees:
    /// - every callback is called exactly once, outside the journal's locks, also when the
    ///   journal is dropped (which first syncs, whatever the policy, if a callback waits);
    /// - callbacks are called one at a time, in the order of their sequence numbers (equal
    ///   ones in registration order): a callback never runs before one registered earlier
    ///   for a lower or equal sequence number;
    /// - if a sync fails, the journal is poisoned and every callback whose record is not
    ///   durable gets [`AppendError::SyncFailed`] (naming the segment and the error), as does
    ///   every later registration for a record not durable (or
    ///   [`AppendError::Poisoned`]); never `Ok` after a failure;
    /// - a `seq` not appended yet gets [`AppendError::NotAppended`] at once;
    /// - a callback whose record a [`truncate_from`](Journal::truncate_from) discards fires
    ///   with `Ok(seq)` once the truncation has returned: the truncation first makes every
    ///   record appended durable, then discards them (the raft store reports such an append
    ///   to openraft as done, its entries superseded).
    ///
    /// Callbacks should be short (they delay the thread that fires them: hand the result
    /// to a channel or a future). They may call the journal. A callback that panics does
    /// not stop the others; the panic reaches the thread that fired it afterwards.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// for record in [&b"a"[..], b"b", b"c"] {
    ///     let seq = journal.append(record).unwrap();
    ///     let tx = tx.clone();
    ///     journal.when_durable(seq, move |durable| tx.send(durable.unwrap()).unwrap());
    /// }
    /// // The syncer makes them durable; the callbacks fire in order.
    /// let fired: Vec<u64> = rx.iter().take(3).collect();
    /// assert_eq!(fired, [0, 1, 2]);
    /// assert!(journal.durable_count() >= 3);
    /// ```
    pub fn when_durable(
        &self,
        seq: u64,
        callback: impl FnOnce(Result<u64, AppendError>) + Send + 'static,
    ) {
        match self.shared.check_appended(seq) {
            Err(e @ AppendError::NotAppended { .. }) => callback(Err(e)),
            // A poisoned journal fails it through the queue, after the callbacks before it.
            _ => Callbacks::register(&self.shared, seq, Callback::Once(Box::new(callback))),
        }
    }

    /// [`when_durable`](Journal::when_durable) resolving `slot` in place.
    #[cfg(feature = "async")]
    pub(crate) fn when_durable_resolve(&self, seq: u64, slot: Arc<dyn Resolve>) {
        match self.shared.check_appended(seq) {
            Err(e @ AppendError::NotAppended { .. }) => slot.resolve(Err(e)),
            _ => Callbacks::register(&self.shared, seq, Callback::Shared(slot)),
        }
    }

    /// [`append_then`](Journal::append_then) resolving `slot` in place.
    #[cfg(feature = "async")]
    pub(crate) fn append_then_resolve(
        &self,
        record: &[u8],
        slot: Arc<dyn Resolve>,
    ) -> Result<u64, AppendError> {
        let seq = self.append_deferred(record)?;
        Callbacks::register(&self.shared, seq, Callback::Shared(slot));
        Ok(seq)
    }

    /// Appends `record` without waiting (as [`append_deferred`](Journal::append_deferred))
    /// and registers `callback` for it (as [`when_durable`](Journal::when_durable)); returns
    /// its sequence number. If the append fails, the callback is not called and the error is
    /// returned.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// let seq = journal.append_then(b"x", move |r| tx.send(r.is_ok()).unwrap()).unwrap();
    /// assert_eq!(seq, 0);
    /// assert!(rx.recv().unwrap());
    /// ```
    pub fn append_then(
        &self,
        record: &[u8],
        callback: impl FnOnce(Result<u64, AppendError>) + Send + 'static,
    ) -> Result<u64, AppendError> {
        let seq = self.append_deferred(record)?;
        Callbacks::register(&self.shared, seq, Callback::Once(Box::new(callback)));
        Ok(seq)
    }

    /// Dropping: stops the syncers, then fires every callback still waiting (syncing what
    /// they wait for) or fails it.
    pub(super) fn close_callbacks(&self) {
        let callbacks = &self.shared.callbacks;
        syncer::stop(callbacks);
        if callbacks.any() {
            let target = self.shared.appender().next_seq;
            if let Err(e) = self.shared.sync_through(target, Wait::Forever) {
                callbacks.failed(&e);
            }
            // Every callback waits for a record appended, now durable, or fails: none is
            // left behind.
            callbacks.failed(&AppendError::Poisoned {
                dir: self.shared.dir.clone(),
            });
            callbacks.fire(&self.shared);
        }
    }
}

/// Why the callbacks still pending fail.
#[derive(Clone)]
pub(super) enum Failure {
    /// A sync of this segment failed with this error (kind and message).
    Sync {
        segment: PathBuf,
        kind: io::ErrorKind,
        message: String,
    },
    /// The journal refuses syncs: it was poisoned earlier.
    Poisoned,
}

impl Failure {
    fn error(&self, dir: &Path) -> AppendError {
        match self {
            Failure::Sync {
                segment,
                kind,
                message,
            } => AppendError::SyncFailed {
                segment: segment.clone(),
                source: io::Error::new(*kind, message.clone()),
            },
            Failure::Poisoned => AppendError::Poisoned {
                dir: dir.to_path_buf(),
            },
        }
    }
}

/// The callbacks waiting, behind one lock, and the syncers' shared state.
#[derive(Default)]
pub(super) struct Pending {
    /// Keyed by sequence number, then registration order.
    pub(super) queue: BTreeMap<(u64, u64), Callback>,
    /// Callbacks of records a truncation made durable and then discarded: ready to fire.
    superseded: BTreeMap<(u64, u64), Callback>,
    /// Registrations so far.
    pub(super) registered: u64,
    /// Whether a thread is firing callbacks now: one at a time, so that they fire in order.
    firing: bool,
    /// Set once syncs fail: every callback not yet durable fails with it.
    pub(super) failure: Option<Failure>,
    /// The syncer whose turn it is sleeps until this many registrations were made (0: any
    /// registration; `u64::MAX`: none); the registration that reaches it wakes it, no other.
    pub(super) wake_at: u64,
    /// The syncers' turns (src/journal/syncer.rs).
    pub(super) turns: Turns,
}

/// The durability callbacks of one journal.
#[derive(Default)]
pub(crate) struct Callbacks {
    pending: Mutex<Pending>,
    /// `Pending::registered`, readable without the lock.
    issued: AtomicU64,
    /// Wakes the syncer whose turn it is: a callback waits for a record not durable yet, a
    /// sync ended, or it must stop. Notified to all: besides the syncer whose turn it is, the
    /// one whose turn it was may still wait on it for a moment (its turn was taken back by a
    /// syncer that polled its gathering complete, src/journal/syncer.rs), and a notification
    /// it took would be lost to the other.
    pub(super) wake: Condvar,
    /// One per syncer: its turn has come, or it must stop.
    pub(super) turn: [Condvar; SYNCERS],
    pub(super) syncers: Mutex<Vec<JoinHandle<()>>>,
    /// Whether the syncers run (`syncers` holds them), readable without its lock: every
    /// registration asks.
    pub(super) started: AtomicBool,
}

impl Callbacks {
    pub(super) fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `callback` for record `seq`, which must have been appended, starts the syncers
    /// if they are not running (waking the one whose turn it is only if it waits for this
    /// registration), and fires what is ready (maybe `callback` itself, at once).
    pub(crate) fn register(shared: &Arc<Shared>, seq: u64, callback: Callback) {
        let this = &shared.callbacks;
        let (covered, mut ready, wake) = {
            let mut pending = this.lock();
            let order = pending.registered;
            pending.registered += 1;
            this.issued.store(pending.registered, Ordering::SeqCst);
            pending.queue.insert((seq, order), callback);
            // Lock order: callbacks, then the group commit's state. A sync that ends after
            // this look fires what it covered itself (it takes this lock after publishing).
            let durable = shared.commit.durable();
            let ready = pending.failure.is_some()
                || pending.queue.keys().next().is_some_and(|k| k.0 < durable);
            let wake = pending.registered >= pending.wake_at;
            if wake {
                pending.wake_at = u64::MAX;
            }
            (seq < durable, ready, wake)
        };
        if !covered && !syncer::start(shared) {
            // No thread to sync: this one does, once (the syncer is retried next time).
            if let Err(e) = shared.sync_through(seq + 1, Wait::Forever) {
                this.failed(&e);
            }
            ready = true;
        }
        if wake {
            this.wake.notify_all();
        }
        if ready {
            this.fire(shared);
        }
    }

    /// Whether callbacks wait.
    pub(crate) fn any(&self) -> bool {
        let pending = self.lock();
        !pending.queue.is_empty() || !pending.superseded.is_empty()
    }

    /// Fires the callbacks whose records are durable, in order, outside every lock; with a
    /// failure recorded, fails the rest. Returns at once if another thread is firing: that
    /// thread looks again before it stops, and sees what this one would have fired.
    pub(crate) fn fire(&self, shared: &Shared) {
        let mut pending = self.lock();
        if pending.firing {
            return;
        }
        pending.firing = true;
        let mut panicked = None;
        loop {
            // Lock order: callbacks, then the group commit's state (never the reverse).
            let durable = shared.commit.durable();
            let not_durable = pending.queue.split_off(&(durable, 0));
            let mut ready = std::mem::replace(&mut pending.queue, not_durable);
            ready.append(&mut pending.superseded);
            let failed = match pending.failure.clone() {
                Some(failure) if !pending.queue.is_empty() => {
                    Some((std::mem::take(&mut pending.queue), failure))
                }
                _ => None,
            };
            if ready.is_empty() && failed.is_none() {
                pending.firing = false;
                break;
            }
            drop(pending);
            for ((seq, _), callback) in ready {
                if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| callback.call(Ok(seq)))) {
                    panicked.get_or_insert(p);
                }
            }
            if let Some((queue, failure)) = failed {
                for callback in queue.into_values() {
                    let error = failure.error(&shared.dir);
                    let call = AssertUnwindSafe(|| callback.call(Err(error)));
                    if let Err(p) = panic::catch_unwind(call) {
                        panicked.get_or_insert(p);
                    }
                }
            }
            pending = self.lock();
        }
        drop(pending);
        // A callback's panic reaches the thread that fired it, once every callback ready
        // was fired (none is lost to it).
        if let Some(p) = panicked {
            panic::resume_unwind(p);
        }
    }

    /// How many callbacks were registered so far, read without the callbacks' lock: a
    /// truncation reads it with the appender locked (the syncers take the callbacks' lock,
    /// then the appender's, never the reverse). Every callback registered later is for a
    /// record appended after the truncation.
    pub(crate) fn registrations(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }

    /// A truncation at `seq` made every record appended durable, then discarded those from
    /// `seq` on: the callbacks registered before it (`before` registrations, see
    /// [`registrations`](Callbacks::registrations)) for those records become ready (the next
    /// [`fire`](Callbacks::fire) calls them with `Ok`), instead of waiting for records that
    /// will never be appended under their numbers, or for the different records appended
    /// there later. Called after the truncation released the appender.
    pub(crate) fn supersede_from(&self, seq: u64, before: u64) {
        let mut pending = self.lock();
        let from_seq = pending.queue.split_off(&(seq, 0));
        for (key, callback) in from_seq {
            if key.1 < before {
                pending.superseded.insert(key, callback);
            } else {
                pending.queue.insert(key, callback);
            }
        }
    }

    /// Records that a sync of `segment` failed (the first failure recorded is kept): from
    /// the next [`fire`](Callbacks::fire) on, every callback waiting for a record not
    /// durable fails with it.
    pub(crate) fn sync_failed(&self, segment: &Path, source: &io::Error) {
        self.fail(Failure::Sync {
            segment: segment.to_path_buf(),
            kind: source.kind(),
            message: source.to_string(),
        });
    }

    /// Records that syncs fail with `error` (see [`sync_failed`](Callbacks::sync_failed)).
    pub(crate) fn failed(&self, error: &AppendError) {
        self.fail(failure_of(error));
    }

    fn fail(&self, failure: Failure) {
        self.lock().failure.get_or_insert(failure);
    }
}

/// What a failed sync tells the callbacks.
fn failure_of(error: &AppendError) -> Failure {
    match error {
        AppendError::SyncFailed { segment, source } => Failure::Sync {
            segment: segment.clone(),
            kind: source.kind(),
            message: source.to_string(),
        },
        _ => Failure::Poisoned,
    }
}
