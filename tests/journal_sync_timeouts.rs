//! Durable waits have a way out: with a sync stalled on storage (an observer on the I/O seam
//! holds every `msync` until released), `wait_durable_timeout` and `append_timeout` on other
//! threads return `AppendError::Timeout` naming the record within about their timeout; the
//! record stays appended and becomes durable once storage moves again.

#![cfg(feature = "fault-injection")]

use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kekbit::fault::{set_observer, IoObserver, IoOp};
use kekbit::journal::{AppendError, Durability, Journal};

/// Holds every `FlushRange` while stalled.
#[derive(Default)]
struct Stall {
    stalled: Mutex<bool>,
    moved: Condvar,
}

impl Stall {
    fn set(&self, stalled: bool) {
        *self.stalled.lock().unwrap() = stalled;
        self.moved.notify_all();
    }
}

impl IoObserver for Stall {
    fn before(&self, op: &IoOp<'_>) -> std::io::Result<()> {
        if let IoOp::FlushRange(..) = op {
            let mut stalled = self.stalled.lock().unwrap();
            while *stalled {
                stalled = self.moved.wait(stalled).unwrap();
            }
        }
        Ok(())
    }
}

fn assert_timed_out(result: Result<(), AppendError>, seq: u64, started: Instant) {
    match result {
        Err(AppendError::Timeout {
            sequence, timeout, ..
        }) => {
            assert_eq!(sequence, seq);
            assert_eq!(timeout, Duration::from_millis(50));
        }
        other => panic!("expected a timeout for {seq}: {other:?}"),
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(50), "gave up after {took:?}");
    assert!(took < Duration::from_secs(5), "gave up only after {took:?}");
}

#[test]
fn durable_waits_time_out_while_another_thread_is_stuck_in_a_sync() {
    // Trap (issue 11, "API traps"): durable append and wait_durable had no timeout variant.
    let stall = Arc::new(Stall::default());
    set_observer(Some(stall.clone()));
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(
        Journal::options()
            .durability(Durability::EveryRecord)
            .open(dir.path())
            .unwrap(),
    );
    stall.set(true);
    // This thread leads a sync and is stuck in it.
    let leader = {
        let journal = Arc::clone(&journal);
        thread::spawn(move || journal.append(b"zero"))
    };
    while journal.next_sequence() == 0 {
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(20));

    let started = Instant::now();
    let waited = journal.wait_durable_timeout(0, Duration::from_millis(50));
    assert_timed_out(waited, 0, started);

    let started = Instant::now();
    let appended = journal
        .append_timeout(b"one", Duration::from_millis(50))
        .map(drop);
    assert_timed_out(appended, 1, started);
    assert_eq!(journal.next_sequence(), 2, "the record stays appended");
    assert_eq!(journal.durable_count(), 0);

    stall.set(false);
    assert_eq!(leader.join().unwrap().unwrap(), 0);
    journal
        .wait_durable_timeout(1, Duration::from_secs(5))
        .unwrap();
    assert_eq!(journal.durable_count(), 2);
    set_observer(None);
}
