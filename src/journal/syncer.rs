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
//!
//! Polling: when a sync ends, its syncer polls for the next gathering itself for a short
//! while (see [`poll_next`]); if the gathering completes in that time it keeps the turn and
//! syncs again at once, instead of handing the turn on and the next syncer sleeping until the
//! last registration wakes it.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::callbacks::{Callbacks, Pending};
use super::shared::{Shared, Wait};

/// How many threads take turns as a journal's syncer.
pub(super) const SYNCERS: usize = 4;

/// The longest the syncer gathers callers before a sync, whatever the last sync took.
const GATHER_CAP: Duration = Duration::from_millis(1);

/// The longest a syncer whose sync ended polls for the next gathering (see [`poll_next`]).
const POLL: Duration = Duration::from_micros(50);

/// A syncer polls only for gatherings of at least this many callers (a caller alone, or a
/// few, gain little from it: their syncs are far apart anyway).
const POLL_MIN_SERVED: u64 = 4;

/// After this many polls in a row that did not see their gathering complete in time, the
/// next 2^this gatherings are not polled for (the longest back-off).
const POLL_BACKOFF_MAX: u32 = 6;

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
    /// Whether the syncer whose sync ends polls for the current gathering: it is large
    /// enough and the polls are not backing off.
    poll: bool,
    /// Polls in a row that did not see their gathering complete in time, and how many
    /// gatherings after the current one are not polled for (the back-off).
    poll_misses: u32,
    poll_skip: u32,
}

impl Turns {
    /// A sync is decided at `registered` registrations: the next gathering starts.
    fn decided(&mut self, registered: u64) {
        self.served = registered - self.decided_at;
        self.decided_at = registered;
        self.poll = self.poll_skip == 0 && self.served >= POLL_MIN_SERVED;
        self.poll_skip = self.poll_skip.saturating_sub(1);
    }

    /// The current gathering was polled for, and completed in time or not.
    fn polled(&mut self, in_time: bool) {
        self.poll = false;
        if in_time {
            self.poll_misses = 0;
        } else {
            self.poll_misses = (self.poll_misses + 1).min(POLL_BACKOFF_MAX);
            self.poll_skip = 1 << self.poll_misses;
        }
    }
}

/// Starts the syncers unless they run; false if not even one could be started.
pub(super) fn start(shared: &Arc<Shared>) -> bool {
    let this = &shared.callbacks;
    if this.started.load(Ordering::Acquire) {
        return true;
    }
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
    this.started.store(!handles.is_empty(), Ordering::Release);
    !handles.is_empty()
}

/// Stops the syncers and waits for them (dropping the journal).
pub(super) fn stop(this: &Callbacks) {
    this.started.store(false, Ordering::Release);
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
        if poll_next(&shared.callbacks, me, turn) {
            continue;
        }
        // The syncer whose turn it is looks again: callbacks may wait that this sync did
        // not cover, and its gathering may end. It sleeps on its turn if this sync handed it
        // the turn, on the wake-up of the syncer whose turn it is otherwise.
        shared.callbacks.turn[turn].notify_one();
        shared.callbacks.wake.notify_all();
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
    'turn: loop {
        pending = wait_for_work(shared, me, pending)?;
        while let Some(until) = pending.turns.gather_until {
            let turns = &pending.turns;
            let (decided_at, served) = (turns.decided_at, turns.served);
            let left = until.saturating_duration_since(Instant::now());
            if pending.turns.stop {
                return None;
            }
            if pending.turns.turn != me {
                // The turn was taken back while this one gathered: wait for it again.
                continue 'turn;
            }
            if pending.registered - decided_at >= served || left.is_zero() {
                break;
            }
            pending = gather_wait(this, pending, left);
        }
        break;
    }
    pending.wake_at = u64::MAX;
    // Lock order: callbacks, then the appender. Every callback registered so far is for a
    // record before `target`.
    let target = shared.appender().next_seq;
    let registered = pending.registered;
    let turns = &mut pending.turns;
    turns.decided(registered);
    turns.syncing = true;
    // The next syncer's turn: it is woken when this sync ends (`run`), the first moment it
    // has anything to do.
    turns.turn = (me + 1) % turns.running.max(1);
    Some(target)
}

/// Waits until it is syncer `me`'s turn and a callback waits for a record not durable yet,
/// with no sync running and no failure; returns with the callbacks' lock held, or `None`
/// when the syncers must stop.
fn wait_for_work<'a>(
    shared: &'a Shared,
    me: usize,
    mut pending: MutexGuard<'a, Pending>,
) -> Option<MutexGuard<'a, Pending>> {
    let this = &shared.callbacks;
    loop {
        if pending.turns.stop {
            return None;
        }
        // A syncer whose sync ended and that polled its next gathering complete may have
        // taken the turn back while this one was awake (it started late, or woke up
        // spuriously): that one syncs.
        if pending.turns.turn != me {
            pending = this.turn[me]
                .wait(pending)
                .unwrap_or_else(|p| p.into_inner());
            continue;
        }
        // Lock order: callbacks, then the group commit's state.
        let durable = shared.commit.durable();
        let waiting = pending
            .queue
            .keys()
            .next_back()
            .is_some_and(|k| k.0 >= durable);
        if waiting && !pending.turns.syncing && pending.failure.is_none() {
            return Some(pending);
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
}

/// Waits, for at most `left`, for the registration that completes the gathering, which
/// wakes it. Returns with the callbacks' lock held again; the caller looks again at
/// everything.
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

/// Syncer `me`, whose sync just ended (and fired its callbacks) and whose gathering the next
/// syncer (`turn`) is about to wait for, polls for that gathering itself: if it is to be
/// polled for, `me` reads the registrations' count, spinning, for at most [`POLL`]. If it
/// sees the gathering complete (in that time, or at a look that came later because `me` was
/// preempted) and the turn is still `turn`'s, `me` takes the turn back and returns true: it
/// syncs next, and the next syncer is never woken. Otherwise the turn goes on as before.
///
/// Why: on the two-core virtual machine measured (docs/PERFORMANCE.md, "Streams"), 64 tasks
/// awaiting `append_durable` registered again 40–50 µs after the firing ended, and the next
/// syncer, woken then from its sleep (and woken once before, when the sync ended), started
/// its sync 20–30 µs after the last registration on average: a tenth of the cycle. A syncer
/// that spins across the tasks' registrations starts the next sync within a microsecond or
/// two. The spin is bounded, and a poll that does not see its gathering complete in time
/// (callers that come back slowly, or cores busy with other work) stops the polls for the
/// next 2, 4, ... up to 2^[`POLL_BACKOFF_MAX`] gatherings, so that a loaded machine pays for
/// about one missed poll in 65 gatherings. (Spinning while yielding the processor, up to
/// 100 µs at every gathering, tried before, halved the tasks' throughput on a loaded
/// machine: a yield there gives the core away for a whole time slice.)
fn poll_next(this: &Callbacks, me: usize, turn: usize) -> bool {
    let complete = {
        let pending = this.lock();
        let turns = &pending.turns;
        if !turns.poll || turns.stop || turns.turn != turn {
            return false;
        }
        turns.decided_at + turns.served
    };
    let since = Instant::now();
    // A gathering seen complete counts however late the look came (the poller may have
    // been preempted past `POLL`): syncing now still beats waking the next syncer for it.
    let in_time = loop {
        let late = since.elapsed() > POLL;
        if this.registrations() >= complete {
            break true;
        }
        if late {
            break false;
        }
        std::hint::spin_loop();
    };
    let mut pending = this.lock();
    pending.turns.polled(in_time);
    let keep = in_time && pending.turns.turn == turn && !pending.turns.stop;
    if keep {
        pending.turns.turn = me;
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decides `gatherings` syncs of `served` callers each, polling where the turns say, each
    /// poll seeing its gathering complete in time as `outcome(n)` says for the n-th poll.
    /// Returns the gatherings polled for.
    fn polls(gatherings: u64, served: u64, outcome: impl Fn(usize) -> bool) -> Vec<u64> {
        let mut turns = Turns::default();
        let mut polled = Vec::new();
        for gathering in 0..gatherings {
            turns.decided(turns.decided_at + served);
            if turns.poll {
                turns.polled(outcome(polled.len()));
                assert!(!turns.poll, "one poll per gathering");
                polled.push(gathering);
            }
        }
        polled
    }

    #[test]
    fn only_gatherings_of_several_callers_are_polled_for() {
        for served in 1..POLL_MIN_SERVED {
            assert!(polls(10, served, |_| true).is_empty(), "{served} callers");
        }
        assert_eq!(polls(10, POLL_MIN_SERVED, |_| true).len(), 10);
    }

    #[test]
    fn polls_in_time_go_on_and_polls_that_miss_back_off() {
        // Callers that come back within the poll: every gathering is polled for.
        assert_eq!(polls(20, 64, |_| true), (0..20).collect::<Vec<_>>());
        // Callers that never do: the polls back off 2, 4, 8, ... gatherings, up to 64.
        let missed = polls(400, 64, |_| false);
        assert_eq!(&missed[..6], [0, 3, 8, 17, 34, 67]);
        let gaps: Vec<u64> = missed.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps[5..].iter().all(|&g| g == 65), "{gaps:?}");
        // A poll in time again ends the back-off.
        let recovered = polls(40, 64, |n| n >= 2);
        assert_eq!(&recovered[..4], [0, 3, 8, 9]);
        assert!(recovered[3..].windows(2).all(|w| w[1] == w[0] + 1));
    }
}
