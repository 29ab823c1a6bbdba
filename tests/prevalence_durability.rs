//! Durability and concurrency of the prevalent store under `Durability::EveryRecord`.
//!
//! - Each `execute` returns only once its command is durable: right after it returns,
//!   `journal().durable_count()` covers the command's sequence number and the active
//!   segment's durable watermark (in the file) covers its record. Under `Durability::Never`
//!   nothing is durable until a sync.
//! - Four threads executing commutative commands on one `Arc<PrevalentStore>` end with the
//!   state of all their commands; each command's effect is applied once and journaled
//!   exactly once, and the journal's order is the order they were applied in (each command
//!   returns the number of commands applied so far, which must be its sequence number + 1).
//! - Snapshots taken while four threads execute neither deadlock (a watchdog fails the test
//!   after 60 s) nor cut the state between a command's journaling and its application: each
//!   image holds exactly the commands before its sequence number; reopening restores the
//!   final state from the last snapshot and the commands after it.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::Duration;

use kekbit::codec::{Bincode, Codec};
use kekbit::journal::{Durability, JournalReader};
use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
use kekbit::snapshot::SnapshotStore;
use prevalence_common::{durable_watermark, last_linked_segment, scan_segment, store_options};
use serde::{Deserialize, Serialize};

const THREADS: u8 = 4;
const PER_THREAD: u32 = 40;

/// Totals by key, and how many commands were applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    applied: u64,
    totals: BTreeMap<u8, u64>,
}

/// Adds `amount` to `key`'s total; identified by (`thread`, `index`). Returns the number of
/// commands applied so far, this one included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Credit {
    thread: u8,
    index: u32,
    key: u8,
    amount: u64,
}

impl Command<Tally> for Credit {
    type Output = u64;

    fn apply(&self, tally: &mut Tally) -> u64 {
        tally.applied += 1;
        *tally.totals.entry(self.key).or_insert(0) += self.amount;
        tally.applied
    }
}

type TallyStore = PrevalentStore<Tally, Credit>;

fn credit(thread: u8, index: u32) -> Credit {
    Credit {
        thread,
        index,
        key: ((index + u32::from(thread)) % 5) as u8,
        amount: u64::from(thread) * 1_000 + u64::from(index) + 1,
    }
}

/// The state after every thread's commands, in any order.
fn expected_tally() -> Tally {
    let mut tally = Tally::default();
    for thread in 0..THREADS {
        for index in 0..PER_THREAD {
            credit(thread, index).apply(&mut tally);
        }
    }
    tally
}

fn options() -> StoreOptions {
    store_options(64 << 10, Durability::EveryRecord)
}

/// The commands in the journal, in order.
fn journaled(dir: &std::path::Path) -> Vec<(u64, Credit)> {
    JournalReader::open(dir.join("journal"), 0)
        .unwrap()
        .map(|r| {
            let (seq, bytes) = r.unwrap();
            (seq, Bincode.decode::<Credit>(&bytes).unwrap())
        })
        .collect()
}

#[test]
fn every_execute_returns_durable() {
    let root = tempfile::tempdir().unwrap();
    let store = TallyStore::open(root.path(), Tally::default(), options()).unwrap();
    let journal_dir = root.path().join("journal");
    for index in 0..30 {
        let applied = store.execute(credit(0, index)).unwrap();
        assert_eq!(applied, u64::from(index) + 1);
        assert!(
            store.journal().durable_count() >= applied,
            "command {index} returned before it was durable"
        );
        // In the file: the watermark reaches the end of the record just written.
        let (_, active) = last_linked_segment(&journal_dir);
        let scan = scan_segment(&active);
        assert_eq!(durable_watermark(&active), scan.end);
    }

    // The contrast: with Durability::Never nothing is durable before a sync.
    let other = tempfile::tempdir().unwrap();
    let lazy = TallyStore::open(
        other.path(),
        Tally::default(),
        store_options(64 << 10, Durability::Never),
    )
    .unwrap();
    for index in 0..5 {
        lazy.execute(credit(1, index)).unwrap();
    }
    assert_eq!(lazy.journal().durable_count(), 0);
    lazy.journal().sync().unwrap();
    assert_eq!(lazy.journal().durable_count(), 5);
}

/// Runs `work` on a thread and waits for it at most 60 s: a deadlock fails the test instead
/// of hanging it.
fn with_watchdog<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, wait) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(work());
    });
    match wait.recv_timeout(Duration::from_secs(60)) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("deadlock: no progress in 60 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the work panicked"),
    }
}

/// Starts the four executing threads; each returns its (index, output) pairs.
fn start_executors(
    store: &Arc<TallyStore>,
    start: &Arc<Barrier>,
) -> Vec<thread::JoinHandle<Vec<(u32, u64)>>> {
    (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(store);
            let start = Arc::clone(start);
            thread::spawn(move || {
                start.wait();
                (0..PER_THREAD)
                    .map(|index| {
                        let applied = store.execute(credit(thread, index)).unwrap();
                        assert!(store.journal().durable_count() >= applied);
                        (index, applied)
                    })
                    .collect()
            })
        })
        .collect()
}

/// Checks the outputs and the journal after all threads ran: every command journaled once,
/// in the order it was applied.
fn check_journal(dir: &std::path::Path, outputs: &BTreeMap<(u8, u32), u64>) {
    let total = u64::from(THREADS) * u64::from(PER_THREAD);
    let distinct: BTreeSet<u64> = outputs.values().copied().collect();
    assert_eq!(distinct, (1..=total).collect::<BTreeSet<u64>>());
    let records = journaled(dir);
    assert_eq!(records.len() as u64, total);
    let mut seen = BTreeSet::new();
    for (seq, command) in &records {
        assert_eq!(command, &credit(command.thread, command.index));
        assert!(
            seen.insert((command.thread, command.index)),
            "{command:?} journaled twice"
        );
        assert_eq!(
            outputs[&(command.thread, command.index)],
            seq + 1,
            "record {seq} was not the {}th command applied",
            seq + 1
        );
    }
}

#[test]
fn four_threads_execute_every_command_once() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let outputs = with_watchdog(move || {
        let store = Arc::new(TallyStore::open(&dir, Tally::default(), options()).unwrap());
        let start = Arc::new(Barrier::new(usize::from(THREADS)));
        let mut outputs = BTreeMap::new();
        for (thread, handle) in start_executors(&store, &start).into_iter().enumerate() {
            for (index, applied) in handle.join().unwrap() {
                outputs.insert((thread as u8, index), applied);
            }
        }
        assert_eq!(store.query(Tally::clone).unwrap(), expected_tally());
        assert_eq!(
            store.journal().durable_count(),
            u64::from(THREADS) * u64::from(PER_THREAD)
        );
        outputs
    });
    check_journal(root.path(), &outputs);

    let store = TallyStore::open(root.path(), Tally::default(), options()).unwrap();
    assert_eq!(store.query(Tally::clone).unwrap(), expected_tally());
}

#[test]
fn snapshots_during_concurrent_executes() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let (outputs, last_snapshot) = with_watchdog(move || {
        let store = Arc::new(TallyStore::open(&dir, Tally::default(), options()).unwrap());
        let start = Arc::new(Barrier::new(usize::from(THREADS) + 1));
        let executors = start_executors(&store, &start);
        let snapshots = SnapshotStore::open(dir.join("snapshots"), 2).unwrap();
        start.wait();
        let mut taken = Vec::new();
        while taken.len() < 3 || !executors.iter().all(|h| h.is_finished()) {
            let info = store.snapshot().unwrap().info;
            assert!(store.journal().durable_count() >= info.sequence);
            // The image holds exactly the commands before its sequence number.
            let image: Tally = Bincode.decode(&snapshots.read(&info).unwrap()).unwrap();
            assert_eq!(image.applied, info.sequence);
            taken.push(info.sequence);
        }
        assert!(taken.windows(2).all(|w| w[0] <= w[1]), "{taken:?}");
        let mut outputs = BTreeMap::new();
        for (thread, handle) in executors.into_iter().enumerate() {
            for (index, applied) in handle.join().unwrap() {
                outputs.insert((thread as u8, index), applied);
            }
        }
        assert_eq!(store.query(Tally::clone).unwrap(), expected_tally());
        (outputs, *taken.last().unwrap())
    });
    check_journal(root.path(), &outputs);

    let store = TallyStore::open(root.path(), Tally::default(), options()).unwrap();
    assert_eq!(store.query(Tally::clone).unwrap(), expected_tally());
    let report = store.recovery_report();
    assert_eq!(
        report.snapshot.as_ref().map(|s| s.sequence),
        Some(last_snapshot)
    );
    assert_eq!(
        report.records_replayed,
        u64::from(THREADS) * u64::from(PER_THREAD) - last_snapshot
    );
}
