//! Following a journal live: a waiting reader tells "nothing yet" from "the writer closed the
//! journal" and "the writer died", the blocking `follow` iterator ends with the reason, a
//! reader continues once a writer reopens the journal, and waiting costs little CPU.
//! A writer that dies is a child process (this test binary re-run) that aborts.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::time::{Duration, Instant};

use journal_common::{child_dir, spawn_child, tell_parent};
use kekbit::journal::{Durability, Journal, JournalError, JournalReader};

const CHILD: &str = "child_appends_then_dies";

/// A wait long enough that returning at its end would be noticed.
const LONG: Duration = Duration::from_secs(2);

/// Upper bound on how long reporting a closed or dead writer may take.
const PROMPT: Duration = Duration::from_millis(500);

fn options() -> kekbit::journal::JournalOptions {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(256)
        .durability(Durability::Never)
}

fn append(dir: &Path, records: std::ops::Range<u8>) {
    let journal = options().open(dir).unwrap();
    for i in records {
        journal.append(&[i]).unwrap();
    }
}

/// Reads every record there now (the writer, if any, has appended them all).
fn drain(reader: &mut JournalReader) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some((seq, _)) = reader.try_next().unwrap() {
        seqs.push(seq);
    }
    seqs
}

/// CPU time this thread has used (the first field of /proc/thread-self/schedstat, in ns).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

#[test]
fn a_waiting_reader_learns_that_the_writer_closed_the_journal() {
    // Regression: issue 16 item 13: `next_timeout` returned `None` after the writer closed
    // the journal, for the whole timeout and forever after: no way to tell it from "nothing yet".
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0..3);
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    assert_eq!(drain(&mut reader), [0, 1, 2]);
    let started = Instant::now();
    let result = reader.next_timeout(LONG).map(|r| r.map(|(seq, _)| seq));
    let waited = started.elapsed();
    assert!(
        matches!(result, Err(JournalError::WriterClosed { next: 3, .. })),
        "{result:?}"
    );
    assert!(waited < PROMPT, "reported after {waited:?}");
    // Each call says so again, and the reader stays where it was.
    assert!(matches!(
        reader.next_timeout(Duration::ZERO),
        Err(JournalError::WriterClosed { next: 3, .. })
    ));
    assert_eq!(reader.next_sequence(), 3);

    // A writer reopens the journal: the reader continues with its records.
    append(dir.path(), 3..5);
    let (seq, record) = reader.next_timeout(LONG).unwrap().unwrap();
    assert_eq!((seq, record), (3, &[3u8][..]));
    assert_eq!(reader.next_timeout(LONG).unwrap().unwrap().0, 4);
    assert!(matches!(
        reader.next_timeout(LONG),
        Err(JournalError::WriterClosed { next: 5, .. })
    ));
}

#[test]
fn nothing_yet_while_a_writer_holds_the_journal_even_at_a_rollover() {
    let dir = tempfile::tempdir().unwrap();
    let journal = options().open(dir.path()).unwrap();
    let mut reader = journal.reader(0).unwrap();
    assert_eq!(
        reader.next_timeout(Duration::from_millis(60)).unwrap(),
        None
    );
    // Fill a few segments; the reader waits at each segment's end and crosses each seal.
    let payload = [9u8; 200];
    let mut next = 0;
    for _ in 0..100 {
        journal.append(&payload).unwrap();
        while let Some((seq, _)) = reader.next_timeout(Duration::ZERO).unwrap() {
            assert_eq!(seq, next);
            next += 1;
        }
    }
    assert_eq!(next, 100);
    assert_eq!(
        reader.next_timeout(Duration::from_millis(60)).unwrap(),
        None
    );
    drop(journal);
    assert!(matches!(
        reader.next_timeout(LONG),
        Err(JournalError::WriterClosed { next: 100, .. })
    ));
}

#[test]
fn a_durable_only_reader_learns_of_the_close_too() {
    let dir = tempfile::tempdir().unwrap();
    let journal = options().open(dir.path()).unwrap();
    journal.append(b"synced").unwrap();
    journal.sync().unwrap();
    journal.append(b"never synced").unwrap();
    let mut reader = journal.reader(0).unwrap();
    reader.set_durable_only(true);
    assert_eq!(reader.next_timeout(LONG).unwrap().unwrap().0, 0);
    assert_eq!(
        reader.next_timeout(Duration::from_millis(60)).unwrap(),
        None
    );
    drop(journal);
    let started = Instant::now();
    let result = reader.next_timeout(LONG).map(|r| r.map(|(seq, _)| seq));
    assert!(
        matches!(result, Err(JournalError::WriterClosed { next: 1, .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < PROMPT);
}

#[test]
fn follow_yields_records_as_they_come_and_ends_when_the_journal_closes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = options().open(dir.path()).unwrap();
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..200u8 {
            journal.append(&[i; 100]).unwrap();
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    let mut seen = Vec::new();
    let mut end = None;
    for item in reader.follow() {
        match item {
            Ok((seq, record)) => {
                assert_eq!(record, vec![seq as u8; 100]);
                seen.push(seq);
            }
            Err(e) => end = Some(e),
        }
    }
    writer.join().unwrap();
    assert_eq!(seen, (0..200).collect::<Vec<u64>>());
    assert!(
        matches!(end, Some(JournalError::WriterClosed { next: 200, .. })),
        "{end:?}"
    );
    // The iterator ended; a new one continues once a writer appends again.
    append(dir.path(), 0..1);
    let next = reader.follow().next().unwrap().unwrap();
    assert_eq!(next, (200, vec![0]));
}

/// Child entry point; does nothing in an ordinary test run. Appends three records, says so,
/// and dies without closing the journal.
#[test]
fn child_appends_then_dies() {
    let Some(dir) = child_dir() else { return };
    let journal = options().open(&dir).unwrap();
    for i in 0..3u8 {
        journal.append(&[i]).unwrap();
    }
    tell_parent("appended");
    std::process::abort();
}

#[test]
fn a_waiting_reader_learns_that_the_writer_died() {
    // Regression: issue 11 API traps: `next_timeout` returned `None` forever after the
    // writer died; a reader could not tell "writer gone" from "nothing yet".
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(CHILD, dir.path(), &[]);
    assert_eq!(child.expect_line(LONG * 10, "appended"), "appended");
    child.wait(LONG * 10).expect("the child died");
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    assert_eq!(drain(&mut reader), [0, 1, 2]);
    let started = Instant::now();
    let result = reader.next_timeout(LONG).map(|r| r.map(|(seq, _)| seq));
    assert!(
        matches!(result, Err(JournalError::WriterGone { next: 3, .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < PROMPT);
    let mut follow = reader.follow();
    assert!(matches!(
        follow.next(),
        Some(Err(JournalError::WriterGone { .. }))
    ));
    assert!(follow.next().is_none());

    // Opening the journal for appending recovers it; the reader crosses the recovered seal.
    append(dir.path(), 3..4);
    assert_eq!(reader.next_timeout(LONG).unwrap().unwrap().0, 3);
}

#[test]
fn waiting_for_an_idle_writer_costs_little_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let journal = options().open(dir.path()).unwrap();
    journal.append(b"x").unwrap();
    let mut reader = journal.reader(1).unwrap();
    let before = thread_cpu();
    let started = Instant::now();
    assert_eq!(reader.next_timeout(Duration::from_secs(1)).unwrap(), None);
    let (cpu, waited) = (thread_cpu() - before, started.elapsed());
    assert!(waited >= Duration::from_secs(1));
    // About a thousand polls of one load and a sleep each: a few ms (a debug build on a
    // busy machine stays far below this bound; a spinning wait would use the whole second).
    assert!(
        cpu < Duration::from_millis(150),
        "{cpu:?} of CPU in {waited:?}"
    );
    drop(journal);
}

#[test]
fn open_first_starts_at_the_first_record_still_there() {
    // Regression: issue 16 item 7: no way to open a reader at the first record present
    // without knowing its number (after pruning, from 0 is refused as pruned).
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), 0..30);
    // A new session starts a new (empty) segment; pruning then removes every record.
    drop(options().open(dir.path()).unwrap());
    let report = kekbit::journal::prune(dir.path(), 30).unwrap();
    assert!(report.segments_removed > 0);
    assert!(matches!(
        JournalReader::open(dir.path(), 0),
        Err(JournalError::Pruned { first: 30, .. })
    ));
    let mut reader = JournalReader::open_first(dir.path()).unwrap();
    assert_eq!(reader.next_sequence(), 30);
    assert_eq!(reader.try_next().unwrap(), None);
    append(dir.path(), 30..32);
    assert_eq!(drain(&mut reader), [30, 31]);

    // With records present, the first of them; with no segment at all, 0.
    let reader = JournalReader::open_first(dir.path()).unwrap();
    assert_eq!(reader.next_sequence(), 30);
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        JournalReader::open_first(empty.path())
            .unwrap()
            .next_sequence(),
        0
    );
}
