//! Concurrent appends with `Durability::EveryRecord` (group commit) are correct. 4 and then
//! 8 threads share one journal with 2 KiB segments (so syncs run across rollovers) and
//! append records naming their thread and index: every append returns a distinct sequence
//! number, each thread's numbers increase, and together they are exactly `0..total`;
//! reading back finds each thread's records exactly once, at the sequence numbers `append`
//! returned, with their contents. Each append returned only once durable, so at the end
//! `durable_count() == total`, `sync()` names the last record, a durable-only reader
//! returns all of them, and on disk every segment rolled over from carries a durable
//! watermark covering its seal. No timing is asserted.

#[path = "common/journal.rs"]
mod journal_common;

use std::collections::BTreeMap;

use journal_common::{check_chain, on_threads, read_available, read_journal, thread_record, End};
use kekbit::journal::{Durability, Journal};

/// Record `index` of thread `thread`: 16 to 55 bytes.
fn content(thread: u64, index: u64) -> Vec<u8> {
    thread_record(thread, index, 40)
}

fn run(threads: u64, per_thread: u64) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(2048)
        .max_record_len(64)
        .durability(Durability::EveryRecord)
        .open(dir.path())
        .unwrap();
    let appended = on_threads(threads, |t| {
        let mut seqs = Vec::new();
        for i in 0..per_thread {
            let seq = journal.append(&content(t, i)).unwrap();
            // Returned once durable: at least this record is counted.
            assert!(
                journal.durable_count() > seq,
                "thread {t}: {seq} not durable"
            );
            seqs.push(seq);
        }
        seqs
    });
    let total = threads * per_thread;
    // Sequence number -> (thread, index), as `append` reported them.
    let mut owner = BTreeMap::new();
    for (t, seqs) in appended.into_iter().enumerate() {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "thread {t}: sequence numbers not increasing"
        );
        for (i, seq) in seqs.into_iter().enumerate() {
            assert!(
                owner.insert(seq, (t as u64, i as u64)).is_none(),
                "sequence number {seq} returned twice"
            );
        }
    }
    let numbers: Vec<u64> = owner.keys().copied().collect();
    assert_eq!(numbers, (0..total).collect::<Vec<_>>(), "not gapless");
    assert_eq!(journal.next_sequence(), total);
    assert_eq!(journal.durable_count(), total);
    assert_eq!(journal.sync().unwrap(), Some(total - 1));

    let got = read_journal(dir.path(), 0);
    assert_eq!(got.len() as u64, total);
    for (seq, bytes) in &got {
        let (t, i) = owner[seq];
        assert!(
            *bytes == content(t, i),
            "record {seq} is not record {i} of thread {t}"
        );
    }

    let mut durable = journal.reader(0).unwrap();
    durable.set_durable_only(true);
    let (seen, error) = read_available(&mut durable);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(seen, got, "durable-only reader");

    let walks = check_chain(dir.path());
    assert!(walks.len() > 4, "only {} segments", walks.len());
    for walk in &walks[..walks.len() - 1] {
        let End::Sealed {
            position, trailer, ..
        } = &walk.stop
        else {
            panic!("{}: not sealed", walk.header.path.display());
        };
        assert_eq!(trailer.len(), 8);
        assert!(
            walk.header.durable_watermark >= position + 16,
            "{}: watermark {} below the seal's end {}",
            walk.header.path.display(),
            walk.header.durable_watermark,
            position + 16
        );
    }
    let last = walks.last().unwrap();
    assert_eq!(last.header.durable_watermark, last.end, "active segment");
}

#[test]
fn four_threads_append_to_one_journal_durably_and_gaplessly() {
    run(4, 120);
}

#[test]
fn eight_threads_append_to_one_journal_durably_and_gaplessly() {
    run(8, 80);
}
