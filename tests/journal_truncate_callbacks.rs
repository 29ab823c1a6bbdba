#![cfg(feature = "fault-injection")]
//! Durability callbacks waiting for records that `truncate_from` discards: they fire (with
//! `Ok`, the truncation having made the records durable before discarding them) when the
//! truncation returns, instead of waiting for the different records appended later under
//! the same numbers, while the journal's syncer spun on records that were no longer there.
//! Syncs are slowed down through the fault seam so that callbacks are still waiting when the
//! truncation comes.

use std::io;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use kekbit::fault::{set_observer, IoObserver, IoOp};
use kekbit::journal::{Durability, Journal};

/// Makes every sync take 30 ms.
struct SlowSyncs;

impl IoObserver for SlowSyncs {
    fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
        if op.is_sync() {
            thread::sleep(Duration::from_millis(30));
        }
        Ok(())
    }
}

/// CPU time (user + system, in clock ticks) of this process's threads named `name`, if any.
fn thread_ticks(name: &str) -> Option<u64> {
    let mut total = None;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // Fields after the command (which ends with ')'): utime and stime are the 12th and
        // 13th of them.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = fields[11].parse::<u64>().ok()? + fields[12].parse::<u64>().ok()?;
        *total.get_or_insert(0) += ticks;
    }
    total
}

// Regression: issue 12 item 4: callbacks of records discarded by a truncation kept waiting
// (firing only once new records under the same numbers were durable) and the syncer spun.
#[test]
fn callbacks_of_discarded_records_fire_when_the_truncation_returns() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(
        Journal::options()
            .durability(Durability::Never)
            .segment_capacity(64 << 10)
            .open(dir.path())
            .unwrap(),
    );
    let previous = set_observer(Some(Arc::new(SlowSyncs) as Arc<dyn IoObserver>));
    let (tx, rx) = mpsc::channel();
    // The first callback starts the syncer, whose sync covers record 0 and takes 30 ms; the
    // records appended meanwhile wait for a sync that has not started.
    for i in 0..10u64 {
        let tx = tx.clone();
        let seq = journal
            .append_then(format!("old {i}").as_bytes(), move |r| tx.send(r).unwrap())
            .unwrap();
        assert_eq!(seq, i);
        if i == 0 {
            thread::sleep(Duration::from_millis(5));
        }
    }
    journal.truncate_from(3).unwrap();
    // Every callback has fired by now or fires at once: none waits for a new record 3..9.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut fired = Vec::new();
    while fired.len() < 10 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(result) => fired.push(result.expect("a callback failed")),
            Err(_) => panic!("only {fired:?} of 10 callbacks fired after the truncation"),
        }
    }
    fired.sort();
    assert_eq!(fired, (0..10).collect::<Vec<u64>>());
    set_observer(previous);
    // The syncers sleep: nothing is left to make durable.
    if let Some(before) = thread_ticks("kekbit-syncer") {
        thread::sleep(Duration::from_millis(300));
        let after = thread_ticks("kekbit-syncer").unwrap_or(before);
        assert!(
            after - before <= 3,
            "the syncers used {} clock ticks in 300 ms with nothing to sync",
            after - before
        );
    }
    // The journal goes on: a new record 3 and its callback.
    let (tx, rx) = mpsc::channel();
    let seq = journal
        .append_then(b"new 3", move |r| tx.send(r).unwrap())
        .unwrap();
    assert_eq!(seq, 3);
    assert_eq!(rx.recv_timeout(Duration::from_secs(2)).unwrap().unwrap(), 3);
}
