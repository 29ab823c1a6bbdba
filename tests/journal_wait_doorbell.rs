//! A blocking reader (`next_timeout`, `follow`) sleeps on the journal's doorbell: it wakes
//! when the writer rings (after each append), not on a timer, and costs next to nothing
//! while the journal is idle. Without the doorbell it still reads everything, polling.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use kekbit::journal::{Durability, Journal, JournalReader};

/// The calling thread's voluntary context switches so far (each sleep is one).
fn voluntary_switches() -> u64 {
    let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn journal(dir: &std::path::Path) -> Journal {
    Journal::options()
        .segment_capacity(1 << 20)
        .durability(Durability::Never)
        .open(dir)
        .unwrap()
}

#[test]
fn an_idle_wait_sleeps_until_the_status_check() {
    let dir = tempfile::tempdir().unwrap();
    let _journal = journal(dir.path());
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    let before = voluntary_switches();
    assert_eq!(reader.next_timeout(Duration::from_secs(1)).unwrap(), None);
    let slept = voluntary_switches() - before;
    // On the doorbell: one sleep per 50 ms look at the writer (about 20), plus the yields
    // of the first polls. Sleeping on a timer backs off to 1 ms: about 1,000.
    assert!(
        slept < 150,
        "{slept} sleeps in a 1 s wait on an idle journal"
    );
}

#[test]
fn a_record_wakes_a_sleeping_reader_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path());
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    let (tx, rx) = mpsc::channel();
    let rounds = 20u64;
    let waiter = thread::spawn(move || {
        for i in 0..rounds {
            let (seq, record) = reader
                .next_timeout(Duration::from_secs(10))
                .unwrap()
                .expect("a record within 10 s");
            assert_eq!((seq, record), (i, &i.to_le_bytes()[..]));
            tx.send(Instant::now()).unwrap();
        }
    });
    let mut delays = Vec::new();
    for i in 0..rounds {
        // Long enough for the reader to be asleep on the bell, between its 50 ms looks at
        // the writer.
        thread::sleep(Duration::from_millis(15));
        let appended = Instant::now();
        journal.append(&i.to_le_bytes()).unwrap();
        let woke = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        delays.push(woke.saturating_duration_since(appended));
    }
    waiter.join().unwrap();
    delays.sort();
    let median = delays[delays.len() / 2];
    println!("wake-up after an append: median {median:?}, all {delays:?}");
    // Woken by the ring: tens of microseconds, a few milliseconds on a loaded machine. A
    // reader that slept through the ring would wake at its next look at the writer, at a
    // uniformly spread 0 to 50 ms: a median near 25 ms.
    assert!(
        median < Duration::from_millis(10),
        "median wake-up {median:?} after an append"
    );
}

#[test]
fn without_the_doorbell_a_reader_polls() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(dir.path());
    // A reader that cannot map the bell (here: the file is gone; say, no write permission)
    // polls the segment instead.
    std::fs::remove_file(dir.path().join("kekbit.bell")).unwrap();
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    let writer = thread::spawn(move || {
        for i in 0..5u8 {
            thread::sleep(Duration::from_millis(5));
            journal.append(&[i]).unwrap();
        }
    });
    for i in 0..5u8 {
        let got = reader.next_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(got, Some((u64::from(i), &[i][..])));
    }
    writer.join().unwrap();
}
