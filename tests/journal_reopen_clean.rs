//! Closing a journal (dropping it) and opening it again continues it seamlessly, over seven
//! cycles, some with no append at all in between: `next_sequence` (and the open report)
//! continue where the last session stopped; the open report shows a clean tail (nothing
//! torn, nothing sealed, nothing removed); the last session's segment ends with a closing
//! marker naming the next sequence number after its last record, and the new session's first segment
//! is linked to it (its id, first sequence number, and the marker's checksum, recomputed
//! here); a reader opened in the first session follows every record across all the closes
//! and reopens; readers from 0 see everything. Opening a journal that is already open for
//! appending (in this process) fails with `Locked` while readers work as usual, and
//! succeeds once the first writer is dropped. Durability survives the reopen consistently:
//! a durable-only reader crosses the marker a close leaves (the records before it and
//! after it were all acknowledged durable), and after a session that never synced,
//! `durable_count()` claims no more records than the segments' durable watermarks cover
//! (what a durable-only reader returns).

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;

use journal_common::{
    assert_sequence, check_chain, frame_crc, linked_segments, read_available, read_journal, record,
    segment_ids, segments, walk_segment, End, KIND_CLOSED,
};
use kekbit::journal::{Durability, Journal, JournalError, JournalOptions, OpenReport};

fn options() -> JournalOptions {
    Journal::options()
        .segment_capacity(1024)
        .max_record_len(64)
        .durability(Durability::EveryRecord)
}

/// Checks that the last segment before `new_id` was closed by a drop right after its last
/// record, and that segment `new_id` (created by this open) is linked to it.
fn check_close_and_link(dir: &Path, new_id: u64, total: u64) {
    let new = linked_segments(dir)
        .into_iter()
        .find(|s| s.channel_id == new_id)
        .expect("the new session's segment");
    assert_eq!(
        new.base_sequence, total,
        "first sequence of the new segment"
    );
    if new_id == 1 {
        assert_eq!((new.previous_id, new.previous_checksum), (0, 0));
        return;
    }
    let old = walk_segment(&journal_common::segment_file(dir, new_id - 1));
    let End::Sealed {
        position,
        trailer,
        checksum,
    } = &old.stop
    else {
        panic!("segment {} was not closed: {:?}", new_id - 1, old.stop);
    };
    assert_eq!(
        trailer.as_slice(),
        total.to_le_bytes(),
        "a close seals the segment naming the next sequence number"
    );
    assert_eq!(*position, old.end, "the marker follows the last record");
    assert_eq!(
        *checksum,
        frame_crc(new_id - 1, *position, (KIND_CLOSED << 28) | 8, trailer),
        "the marker's checksum"
    );
    assert_eq!(old.header.closed_at, position + 1, "closed_at locator");
    assert_eq!(
        old.header.base_sequence + old.records.len() as u64,
        total,
        "records of the closed segment"
    );
    assert_eq!(new.previous_id, new_id - 1, "link to the closed segment");
    assert_eq!(
        new.previous_checksum, *checksum,
        "checksum of the closing marker"
    );
}

#[test]
fn reopening_a_journal_continues_its_sequence_across_many_cycles() {
    let dir = tempfile::tempdir().unwrap();
    let appends = [5u64, 0, 17, 0, 0, 40, 3];
    let mut total = 0u64;
    let mut follower = None;
    let mut followed = Vec::new();
    let mut last_id = 0u64;
    for (cycle, &count) in appends.iter().enumerate() {
        let files = segment_ids(dir.path()).len();
        assert!(
            segments(dir.path()).iter().all(|s| !s.pending),
            "cycle {cycle}: a closed journal keeps no prepared segment"
        );
        let journal = options().open(dir.path()).unwrap();
        let report = journal.open_report().clone();
        let mut clean = OpenReport::default();
        clean.segments = files;
        clean.next_sequence = total;
        assert_eq!(report, clean, "cycle {cycle}: open report");
        assert_eq!(journal.next_sequence(), total, "cycle {cycle}");
        assert_eq!(journal.durable_count(), total, "cycle {cycle}");
        check_close_and_link(dir.path(), last_id + 1, total);

        let reader = follower.get_or_insert_with(|| journal.reader(0).unwrap());
        for _ in 0..count {
            assert_eq!(journal.append(&record(total)).unwrap(), total);
            total += 1;
        }
        assert_eq!(journal.durable_count(), total, "cycle {cycle}: durable");
        let (got, error) = read_available(reader);
        assert!(error.is_none(), "cycle {cycle}: follower: {error:?}");
        followed.extend(got);
        assert_sequence(&followed, 0, total, record);

        last_id = linked_segments(dir.path()).last().unwrap().channel_id;
        drop(journal);
        assert_sequence(&read_journal(dir.path(), 0), 0, total, record);
        check_chain(dir.path());
    }
    // Every cycle added at least one segment (the one each open starts).
    assert!(last_id >= appends.len() as u64);
    // The follower, at the last close, waits for more without error.
    let (got, error) = read_available(follower.as_mut().unwrap());
    assert!(got.is_empty() && error.is_none(), "{got:?} {error:?}");
    // From the middle, across the zero-append cycles.
    assert_sequence(&read_journal(dir.path(), 4), 4, total - 4, record);
    assert_sequence(&read_journal(dir.path(), 22), 22, total - 22, record);
}

#[test]
fn a_second_writer_is_refused_while_the_journal_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = options().open(dir.path()).unwrap();
    first.append(&record(0)).unwrap();
    for attempt in [Journal::open(dir.path()), options().open(dir.path())] {
        match attempt {
            Err(JournalError::Locked { dir: named, .. }) => assert_eq!(named, dir.path()),
            other => panic!("second open: {other:?}"),
        }
    }
    // The refused opens changed nothing: the first writer and readers carry on.
    assert_eq!(first.append(&record(1)).unwrap(), 1);
    assert_sequence(&read_journal(dir.path(), 0), 0, 2, record);
    drop(first);
    let second = options().open(dir.path()).unwrap();
    assert_eq!(second.append(&record(2)).unwrap(), 2);
    assert!(matches!(
        Journal::open(dir.path()),
        Err(JournalError::Locked { .. })
    ));
    drop(second);
    assert_sequence(&read_journal(dir.path(), 0), 0, 3, record);
}

// Regression: reopening synced a cleanly closed tail but left its durable watermark before
// the closing marker, so a durable-only reader never crossed it.
#[test]
fn a_durable_only_reader_crosses_the_marker_closing_a_journal_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let journal = options().open(dir.path()).unwrap();
    for seq in 0..3 {
        journal.append(&record(seq)).unwrap();
    }
    drop(journal);
    let journal = options().open(dir.path()).unwrap();
    for seq in 3..5 {
        journal.append(&record(seq)).unwrap();
    }
    // Every record was acknowledged durable (Durability::EveryRecord).
    assert_eq!(journal.durable_count(), 5);
    let mut reader = journal.reader(0).unwrap();
    reader.set_durable_only(true);
    let (got, error) = read_available(&mut reader);
    assert!(error.is_none(), "{error:?}");
    assert_sequence(&got, 0, 5, record);
}

// Regression: after reopening, durable_count() claimed every recovered record durable while
// earlier sealed segments had never been synced.
#[test]
fn journal_durable_count_after_reopening_counts_only_synced_records() {
    let dir = tempfile::tempdir().unwrap();
    let never = || options().durability(Durability::Never);
    let journal = never().open(dir.path()).unwrap();
    for seq in 0..60 {
        journal.append(&record(seq)).unwrap();
    }
    // Several segments, none ever synced, then a close (which does not sync either).
    assert_eq!(journal.durable_count(), 0);
    assert!(linked_segments(dir.path()).len() >= 4);
    drop(journal);

    let journal = never().open(dir.path()).unwrap();
    let claimed = journal.durable_count();
    // A durable-only reader returns what the segments' durable watermarks cover: the records
    // some sync made durable. `durable_count` must not claim more than that.
    let mut reader = journal.reader(0).unwrap();
    reader.set_durable_only(true);
    let (got, error) = read_available(&mut reader);
    assert!(error.is_none(), "{error:?}");
    let watermarks: Vec<(u64, u64)> = linked_segments(dir.path())
        .iter()
        .map(|s| (s.channel_id, s.durable_watermark))
        .collect();
    assert_eq!(
        got.len() as u64,
        claimed,
        "durable_count() says {claimed} records are durable, a durable-only reader finds {}; \
         (segment, durable watermark): {watermarks:?}",
        got.len()
    );
    assert_sequence(&got, 0, claimed, record);
}
