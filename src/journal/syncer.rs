//! The journal's syncers: the background threads that make records durable for the
//! durability callbacks (src/journal/callbacks.rs) when nobody else syncs. Started by the
//! first registration, they take turns: the syncer whose turn it is waits for the last sync
//! to end and a callback to wait for a record not durable, gathers, hands the turn to the
//! next, syncs everything appended (which fires the callbacks it covered), and waits for its
//! turn again. One sync of theirs runs at a time, as with a single thread.
//!
//! Why turns: a sync costs its thread CPU time (writeback, extent conversion, the device's
//! doorbell: about 130 µs where measured) and a few sleeps for the device. A single thread
//! doing every sync, on a machine whose cores were busy with other work, waited over a
//! millisecond for a core after 7% of its wake-ups by an interrupt, against 0.7% for
//! blocking appenders that lead syncs in turn. Taking turns spreads the cost as they do,
//! and raised the median throughput of 64 tasks there by 1.42× (docs/PERFORMANCE.md),
//! though each syncer still waits about as often: the mechanism is not fully understood.
//!
//! Gathering: the callers the last sync served (tasks awaiting `append_durable` in a loop,
//! say) append again within microseconds of being woken, and a sync started at the first of
//! them would leave the rest a whole sync behind (batches alternating between a few records
//! and all the others). So before a sync the syncer waits until as many callers registered
//! since the last sync was started as that sync served, for at most as long as that sync
//! took ([`GATHER_CAP`] at most) after it ended; the registration that completes the count
//! wakes it, no other. A caller alone is never delayed (its own registration completes the
//! count), nor is the first after a pause (the deadline has passed).

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::callbacks::{Callbacks, Pending};
use super::shared::{Shared, Wait};

/// How many threads take turns as a journal's syncer.
pub(super) const SYNCERS: usize = 4;

/// The longest the syncer gathers callers before a sync, whatever the last sync took.
const GATHER_CAP: Duration = Duration::from_millis(1);

/// The syncers' shared state (in the callbacks' lock).
#[derive(Default)]
pub(super) struct Turns {
    /// The syncer whose turn it is; the others sleep.
    turn: usize,
    /// How many syncers run: the turns go round them.
    running: usize,
    /// Asks the syncers to end.
    stop: bool,
    /// Whether a syncer's sync runs: the next one starts after it (the group commit would
    /// make it wait anyway), with the callers it served.
    syncing: bool,
    /// Registrations counted when the last sync was decided, and how many had come since the
    /// one before (the callers that sync served).
    decided_at: u64,
    served: u64,
    /// Until when the syncer gathers, from the end of the last sync.
    gather_until: Option<Instant>,
}

/// Starts the syncers unless they run; false if not even one could be started.
pub(super) fn start(shared: &Arc<Shared>) -> bool {
    let this = &shared.callbacks;
    let mut handles = this.syncers.lock().unwrap_or_else(|p| p.into_inner());
    if !handles.is_empty() {
        return true;
    }
    for me in 0..SYNCERS {
        let weak = Arc::downgrade(shared);
        let spawned = thread::Builder::new()
            .name("kekbit-syncer".into())
            .spawn(move || run(&weak, me));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(_) => break,
        }
    }
    this.lock().turns.running = handles.len();
    !handles.is_empty()
}

/// Stops the syncers and waits for them (dropping the journal).
pub(super) fn stop(this: &Callbacks) {
    this.lock().turns.stop = true;
    this.wake.notify_all();
    for turn in &this.turn {
        turn.notify_all();
    }
    let handles = std::mem::take(&mut *this.syncers.lock().unwrap_or_else(|p| p.into_inner()));
    for handle in handles {
        // A callback run by a syncer may drop the journal's last handle: that syncer then
        // ends by itself once the callback returns.
        if handle.thread().id() != thread::current().id() {
            let _ = handle.join();
        }
    }
}

/// Syncer `me`'s loop; ends when asked or when the journal is gone.
fn run(weak: &Weak<Shared>, me: usize) {
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let Some(target) = next_sync(&shared, me) else {
            return;
        };
        let started = Instant::now();
        let synced = panic::catch_unwind(AssertUnwindSafe(|| {
            if let Err(e) = shared.sync_through(target, Wait::Forever) {
                shared.callbacks.failed(&e);
                shared.callbacks.fire(&shared);
            }
        }));
        let ended = Instant::now();
        let turn = {
            let mut pending = shared.callbacks.lock();
            let turns = &mut pending.turns;
            turns.syncing = false;
            turns.gather_until = Some(ended + (ended - started).min(GATHER_CAP));
            turns.turn
        };
        // The syncer whose turn it is looks again: callbacks may wait that this sync did
        // not cover, and its gathering may end. It sleeps on its turn if this sync handed it
        // the turn, on the wake-up of the syncer whose turn it is otherwise.
        shared.callbacks.turn[turn].notify_one();
        shared.callbacks.wake.notify_one();
        // A callback's panic was printed by the panic hook; the syncer keeps serving.
        drop(synced);
    }
}

/// Waits for syncer `me`'s turn, then for the last sync to end and a callback to wait for
/// a record not durable, gathers, and hands the turn on. Returns the number of records to
/// make durable, `None` when the syncers must stop.
fn next_sync(shared: &Shared, me: usize) -> Option<u64> {
    let this = &shared.callbacks;
    let mut pending = this.lock();
    while pending.turns.turn != me {
        if pending.turns.stop {
            return None;
        }
        pending = this.turn[me]
            .wait(pending)
            .unwrap_or_else(|p| p.into_inner());
    }
    loop {
        if pending.turns.stop {
            return None;
        }
        // Lock order: callbacks, then the group commit's state.
        let durable = shared.commit.durable();
        let waiting = pending
            .queue
            .keys()
            .next_back()
            .is_some_and(|k| k.0 >= durable);
        if waiting && !pending.turns.syncing && pending.failure.is_none() {
            break;
        }
        // Between syncs, while a gathering is due, only the registration that completes it
        // wakes it, or the gathering's deadline: the callers the last sync served come back
        // one by one, and a wake-up at the first would only put it to sleep again. Otherwise
        // any registration wakes it; so does the end of a sync.
        let turns = &pending.turns;
        let due = match turns.gather_until {
            Some(until)
                if !turns.syncing && pending.registered - turns.decided_at < turns.served =>
            {
                Some(until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
            }
            _ => None,
        };
        pending = match due {
            Some(left) => gather_wait(this, pending, left),
            None => {
                pending.wake_at = 0;
                this.wake.wait(pending).unwrap_or_else(|p| p.into_inner())
            }
        };
    }
    while let Some(until) = pending.turns.gather_until {
        let turns = &pending.turns;
        let (decided_at, served) = (turns.decided_at, turns.served);
        let left = until.saturating_duration_since(Instant::now());
        if pending.turns.stop {
            return None;
        }
        if pending.registered - decided_at >= served || left.is_zero() {
            break;
        }
        pending = gather_wait(this, pending, left);
    }
    pending.wake_at = u64::MAX;
    // Lock order: callbacks, then the appender. Every callback registered so far is for a
    // record before `target`.
    let target = shared.appender().next_seq;
    let registered = pending.registered;
    let turns = &mut pending.turns;
    turns.served = registered - turns.decided_at;
    turns.decided_at = registered;
    turns.syncing = true;
    // The next syncer's turn: it is woken when this sync ends (`run`), the first moment it
    // has anything to do.
    turns.turn = (me + 1) % turns.running.max(1);
    Some(target)
}

/// Waits, for at most `left`, for the registration that completes the gathering, which
/// wakes it. Returns with the callbacks' lock held again; the caller looks again at
/// everything. (Spinning for it instead, yielding the processor, made the tasks' durable
/// appends slower on a loaded machine: docs/PERFORMANCE.md, "Streams".)
fn gather_wait<'a>(
    this: &'a Callbacks,
    mut pending: MutexGuard<'a, Pending>,
    left: Duration,
) -> MutexGuard<'a, Pending> {
    pending.wake_at = pending.turns.decided_at + pending.turns.served;
    this.wake
        .wait_timeout(pending, left)
        .unwrap_or_else(|p| p.into_inner())
        .0
}
