//! Readers in other threads follow a journal live across many rollovers: while the writer
//! appends 20,000 records of 8 to 64 bytes into 4 KiB segments (over 200 rollovers), two
//! reader threads (one opened from sequence 0 before the first append, one opened from a
//! sequence number the writer has not reached yet) wait with `next_timeout` and see every
//! record from their start exactly once, in order, with its sequence number and content.
//! `next_timeout` never gives up before its timeout, nor on a record appended before it was
//! called. A third reader opened afterwards from the middle sees the rest, and a
//! durable-only reader sees everything once the writer has synced.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use journal_common::{assert_sequence, linked_segments, open_small, read_journal, record};
use kekbit::journal::JournalReader;

const COUNT: u64 = 20_000;

/// Wait of one `next_timeout` call.
const WAIT: Duration = Duration::from_secs(5);

/// Follows the journal in `dir` from `from` until `COUNT`, checking every record. The
/// writer counts the records it has appended in `appended`. Fails if `next_timeout` returns
/// nothing before its timeout, or nothing for a whole timeout although the record was
/// already appended before the call; a writer slowed down by the machine is waited for, up
/// to 60 s in all. Returns how many records it read.
fn follow(dir: PathBuf, from: u64, appended: Arc<AtomicU64>) -> u64 {
    let mut reader = JournalReader::open(&dir, from).unwrap();
    assert_eq!(reader.next_sequence(), from);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = from;
    while next < COUNT {
        assert!(
            Instant::now() < deadline,
            "reader from {from}: stuck at {next}"
        );
        let published = appended.load(Ordering::Acquire) > next;
        let called = Instant::now();
        match reader.next_timeout(WAIT) {
            Ok(Some((seq, bytes))) => {
                assert_eq!(seq, next, "reader from {from}: sequence number");
                assert!(
                    bytes == record(seq),
                    "reader from {from}: record {seq} differs"
                );
                next += 1;
            }
            Ok(None) => {
                let waited = called.elapsed();
                assert!(
                    waited >= WAIT,
                    "reader from {from}: next_timeout({WAIT:?}) returned None after {waited:?} \
                     at record {next}"
                );
                assert!(
                    !published,
                    "reader from {from}: record {next} was appended before next_timeout \
                     ({WAIT:?}) was called, which returned None"
                );
            }
            Err(e) => panic!("reader from {from}: at {next}: {e}"),
        }
    }
    // Nothing beyond what was written.
    assert_eq!(reader.try_next().unwrap(), None);
    next - from
}

// Regression: next_timeout returned None before its timeout when a seal was published
// between its readiness check and its read; and a live reader got a false Unsealed error when
// the writer sealed and appended to the next segment while the reader looked.
#[test]
fn reader_threads_follow_the_journal_writer_across_rollovers() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_small(dir.path());
    let appended = Arc::new(AtomicU64::new(0));
    let early = {
        let (dir, appended) = (dir.path().to_path_buf(), Arc::clone(&appended));
        thread::spawn(move || follow(dir, 0, appended))
    };
    let ahead = {
        let (dir, appended) = (dir.path().to_path_buf(), Arc::clone(&appended));
        thread::spawn(move || follow(dir, 7_777, appended))
    };
    for seq in 0..COUNT {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
        appended.store(seq + 1, Ordering::Release);
        if seq % 1_000 == 999 {
            // Let the readers fall behind and catch up again.
            thread::yield_now();
        }
    }
    assert_eq!(early.join().expect("reader from 0 failed"), COUNT);
    assert_eq!(
        ahead.join().expect("reader from 7777 failed"),
        COUNT - 7_777
    );

    let segments = linked_segments(dir.path()).len();
    assert!(
        segments > 200,
        "only {segments} segments: too few rollovers"
    );

    let late = read_journal(dir.path(), 12_345);
    assert_sequence(&late, 12_345, COUNT - 12_345, record);

    let mut durable = journal.reader(0).unwrap();
    durable.set_durable_only(true);
    journal.sync().unwrap();
    let mut seen = 0;
    while let Some((seq, bytes)) = durable.try_next().unwrap() {
        assert_eq!((seq, bytes), (seen, &record(seen)[..]));
        seen += 1;
    }
    assert_eq!(seen, COUNT, "durable-only reader after sync");
}
