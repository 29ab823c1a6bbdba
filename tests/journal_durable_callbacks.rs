//! Durability callbacks (`Journal::when_durable`, `Journal::append_then`): each fires exactly
//! once, in sequence order, only once its record is durable, from the thread that synced or
//! from the journal's syncers (a few threads taking turns, never a thread per callback), and
//! dropping the journal fires every callback still waiting.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use kekbit::journal::{AppendError, Durability, Journal, JournalReader};

/// The thread counts below are per process: these tests run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn journal(dir: &std::path::Path, durability: Durability) -> Arc<Journal> {
    Arc::new(
        Journal::options()
            .segment_capacity(64 << 10)
            .max_record_len(64)
            .durability(durability)
            .open(dir)
            .unwrap(),
    )
}

/// Names of this process's threads.
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn callbacks_fire_once_in_order_and_only_when_durable() {
    let _serial = serial();
    for durability in [
        Durability::Never,
        Durability::EveryRecord,
        Durability::EveryN(7),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal(dir.path(), durability);
        // Per thread: the sequence numbers fired, and whether each was durable then.
        let fired: Arc<Mutex<BTreeMap<usize, Vec<u64>>>> = Arc::default();
        let early: Arc<Mutex<Vec<u64>>> = Arc::default();
        let (done_tx, done_rx) = mpsc::channel();
        let threads = 4;
        let per_thread = 300;
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let journal = Arc::clone(&journal);
                let fired = Arc::clone(&fired);
                let early = Arc::clone(&early);
                let done_tx = done_tx.clone();
                thread::spawn(move || {
                    for i in 0..per_thread {
                        let fired = Arc::clone(&fired);
                        let early = Arc::clone(&early);
                        let done_tx = done_tx.clone();
                        let theirs = Arc::clone(&journal);
                        let record = format!("{t}:{i}");
                        journal
                            .append_then(record.as_bytes(), move |r| {
                                let seq = r.unwrap();
                                if theirs.durable_count() <= seq {
                                    early.lock().unwrap().push(seq);
                                }
                                fired.lock().unwrap().entry(t).or_default().push(seq);
                                done_tx.send(()).unwrap();
                            })
                            .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        for _ in 0..threads * per_thread {
            done_rx
                .recv_timeout(Duration::from_secs(10))
                .expect("every callback fires");
        }
        let fired = fired.lock().unwrap();
        let mut all: Vec<u64> = fired.values().flatten().copied().collect();
        for seqs in fired.values() {
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{durability:?}: order {seqs:?}"
            );
        }
        all.sort_unstable();
        let expected: Vec<u64> = (0..(threads * per_thread) as u64).collect();
        assert_eq!(all, expected, "{durability:?}: each callback exactly once");
        assert_eq!(*early.lock().unwrap(), Vec::<u64>::new(), "{durability:?}");
        drop(fired);
        // No callback fires twice later, on drop. (The last callbacks hold a handle on the
        // journal until they return, just after sending.)
        let started = std::time::Instant::now();
        while Arc::strong_count(&journal) > 1 && started.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(1));
        }
        drop(Arc::try_unwrap(journal).unwrap());
        assert!(done_rx.try_recv().is_err());
    }
}

#[test]
fn callbacks_registered_in_order_fire_in_order_across_syncs() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path(), Durability::Never);
    let (tx, rx) = mpsc::channel();
    for i in 0..2_000u32 {
        let seq = journal.append(&i.to_le_bytes()).unwrap();
        let tx = tx.clone();
        journal.when_durable(seq, move |r| tx.send(r.unwrap()).unwrap());
        if i % 100 == 0 {
            // Syncs from this thread and the syncer interleave.
            journal.sync().unwrap();
        }
    }
    let fired: Vec<u64> = rx.iter().take(2_000).collect();
    assert_eq!(fired, (0..2_000).collect::<Vec<u64>>());
    // A record already durable fires at once (in this thread, or in the syncer if it is
    // firing right then).
    let (tx, rx) = mpsc::channel();
    journal.when_durable(5, move |r| tx.send(r.unwrap()).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 5);
}

#[test]
fn a_sequence_not_appended_fails_at_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path(), Durability::Never);
    journal.append(b"x").unwrap();
    let (tx, rx) = mpsc::channel();
    journal.when_durable(3, move |r| tx.send(r).unwrap());
    match rx.try_recv().unwrap() {
        Err(AppendError::NotAppended {
            requested: 3,
            next: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn waiting_callbacks_use_the_syncers_not_one_thread_each() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path(), Durability::Never);
    let before = thread_names().len();
    // The first callback holds the thread firing it until released: every later one waits.
    // It is registered from a helper thread, which fires it if the record is durable by then
    // (else the syncer does): never this thread, which releases it.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel();
    let (started_tx, started_rx) = mpsc::channel();
    let seq = journal.append(b"first").unwrap();
    let tx = done_tx.clone();
    let theirs = Arc::clone(&journal);
    let helper = thread::spawn(move || {
        theirs.when_durable(seq, move |r| {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            tx.send(r.unwrap()).unwrap();
        })
    });
    started_rx.recv().unwrap();
    for i in 0..5_000u32 {
        let tx = done_tx.clone();
        journal
            .append_then(&i.to_le_bytes(), move |r| tx.send(r.unwrap()).unwrap())
            .unwrap();
    }
    let names = thread_names();
    // The syncers (four threads taking turns), and the journal's own helpers (a rollover
    // may start one): a handful, not one per callback.
    let syncers = names.iter().filter(|n| *n == "kekbit-syncer").count();
    assert!((1..=4).contains(&syncers), "{names:?}");
    assert!(
        names.len() <= before + 7,
        "{before} threads before, {names:?} now"
    );
    assert!(done_rx.try_recv().is_err(), "held by the first callback");
    release_tx.send(()).unwrap();
    let fired: Vec<u64> = done_rx.iter().take(5_001).collect();
    assert_eq!(fired, (0..5_001).collect::<Vec<u64>>());
    helper.join().unwrap();
    // Dropping the journal stops its syncer.
    drop(Arc::try_unwrap(journal).unwrap());
    let after = thread_names();
    assert!(!after.iter().any(|n| n == "kekbit-syncer"), "{after:?}");
}

#[test]
fn dropping_the_journal_fires_every_waiting_callback() {
    let _serial = serial();
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let journal = journal(dir.path(), Durability::Never);
        let (tx, rx) = mpsc::channel();
        for i in 0..200u32 {
            let tx = tx.clone();
            journal
                .append_then(&i.to_le_bytes(), move |r| tx.send(r.unwrap()).unwrap())
                .unwrap();
        }
        drop(tx);
        drop(Arc::try_unwrap(journal).unwrap());
        // Every sender is gone: the callbacks all ran (or were dropped, which would fail here).
        let fired: Vec<u64> = rx.iter().collect();
        assert_eq!(fired, (0..200).collect::<Vec<u64>>(), "round {round}");
        // What the callbacks acknowledged is on disk.
        let mut reader = JournalReader::open(dir.path(), 0).unwrap();
        let mut count = 0;
        while reader.try_next().unwrap().is_some() {
            count += 1;
        }
        assert_eq!(count, 200);
    }
}

#[test]
fn a_panicking_callback_does_not_lose_the_others() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path(), Durability::Never);
    let (tx, rx) = mpsc::channel();
    for i in 0..10u32 {
        let tx = tx.clone();
        // The panic reaches the thread that fires callback 3: the syncer, or this one if the
        // record is durable by the time it registers.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            journal
                .append_then(&i.to_le_bytes(), move |r| {
                    let seq = r.unwrap();
                    tx.send(seq).unwrap();
                    assert_ne!(seq, 3, "callback 3 panics on purpose");
                })
                .unwrap();
        }));
    }
    let fired: Vec<u64> = rx.iter().take(10).collect();
    assert_eq!(fired, (0..10).collect::<Vec<u64>>());
    // The syncer survived the panic and serves later callbacks.
    let (tx, rx) = mpsc::channel();
    journal
        .append_then(b"later", move |r| tx.send(r.unwrap()).unwrap())
        .unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 10);
}
