//! Several segments prepared ahead (`JournalOptions::segments_ahead`) and whole-segment
//! prefaulting (`Prefault::Whole`):
//! - after `warm_up`, exactly the asked number of pending segments follow the active one,
//!   and the count stays the same as appends roll over into them;
//! - records cross every rollover in order and exact, for a reader opened before the
//!   appends (live) and one opened after;
//! - readers, `verify` and pruning ignore the pending segments; closing removes them, and
//!   so does reopening after the writer process was killed, with every acknowledged record
//!   kept;
//! - out-of-range counts, and any count with `preallocate(false)`, are refused before
//!   anything is created.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::time::Duration;

use journal_common::{
    assert_sequence, check_chain, child_dir, child_param, linked_segments, read_available,
    read_journal, record, segments, spawn_child, tell_parent,
};
use kekbit::journal::{
    self, Durability, Journal, JournalError, JournalOptions, JournalReader, Prefault,
    MAX_SEGMENTS_AHEAD,
};

const CHILD: &str = "child_appends_with_segments_prepared_ahead";
const AHEAD: &str = "KEKBIT_TEST_AHEAD";

fn options(ahead: usize, prefault: Prefault) -> JournalOptions {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .segments_ahead(ahead)
        .prefault(prefault)
        .durability(Durability::Never)
}

fn pending_count(dir: &Path) -> usize {
    segments(dir).iter().filter(|s| s.pending).count()
}

fn run_through_rollovers(ahead: usize, prefault: Prefault) {
    let dir = tempfile::tempdir().unwrap();
    let journal = options(ahead, prefault).open(dir.path()).unwrap();
    journal.warm_up().unwrap();
    assert_eq!(linked_segments(dir.path()).len(), 1);
    assert_eq!(pending_count(dir.path()), ahead);
    // The pending segments are the ones right after the active one.
    let ids: Vec<u64> = segments(dir.path()).iter().map(|s| s.channel_id).collect();
    assert_eq!(ids, (1..=1 + ahead as u64).collect::<Vec<_>>());

    let mut live = JournalReader::open(dir.path(), 0).unwrap();
    let mut seen = Vec::new();
    // About 55 records per 4 KiB segment: 1,000 records roll over 18 times.
    let total = 1_000;
    for seq in 0..total {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
        if seq % 97 == 0 {
            let (got, error) = read_available(&mut live);
            assert!(error.is_none(), "{error:?}");
            seen.extend(got);
        }
    }
    journal.sync().unwrap();
    let (got, error) = read_available(&mut live);
    assert!(error.is_none(), "{error:?}");
    seen.extend(got);
    assert_sequence(&seen, 0, total, record);
    assert_sequence(&read_journal(dir.path(), 0), 0, total, record);

    journal.warm_up().unwrap();
    let linked = linked_segments(dir.path()).len();
    assert!(linked > 10, "{linked} segments");
    assert_eq!(pending_count(dir.path()), ahead);
    // Verify and prune look at the linked chain only.
    let verified = journal::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(verified.problems.is_empty(), "{verified:?}");
    assert_eq!(verified.segments, linked as u64, "{verified:?}");
    assert_eq!(verified.records, total, "{verified:?}");
    let pruned = journal.prune_before(500).unwrap();
    assert!(pruned.segments_removed > 0);
    assert_eq!(pending_count(dir.path()), ahead);
    assert_sequence(
        &read_journal(dir.path(), pruned.first_sequence),
        pruned.first_sequence,
        total - pruned.first_sequence,
        record,
    );

    drop(journal);
    assert_eq!(pending_count(dir.path()), 0, "closing removes them");
    let journal = options(ahead, prefault).open(dir.path()).unwrap();
    assert_eq!(journal.open_report().pending_removed, 0);
    assert_eq!(journal.next_sequence(), total);
    check_chain(dir.path());
}

#[test]
fn several_segments_prepared_ahead_are_used_in_turn() {
    for ahead in [1, 2, 5] {
        run_through_rollovers(ahead, Prefault::Ahead);
    }
}

#[test]
fn whole_segments_prefaulted_ahead_are_used_in_turn() {
    for ahead in [1, 4] {
        run_through_rollovers(ahead, Prefault::Whole);
    }
}

#[test]
fn segments_ahead_without_preallocation_is_refused_and_warm_up_is_harmless() {
    // Trap (issue 11, "API traps"): preallocate(false) silently disabled segments_ahead.
    let dir = tempfile::tempdir().unwrap();
    match options(3, Prefault::Whole)
        .preallocate(false)
        .open(dir.path())
    {
        Err(e @ JournalError::InvalidOptions { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains("segments_ahead(3)") && message.contains("preallocate"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(segments(dir.path()).is_empty(), "nothing is created");
    let journal = Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .prefault(Prefault::Whole)
        .durability(Durability::Never)
        .preallocate(false)
        .open(dir.path())
        .unwrap();
    journal.warm_up().unwrap();
    assert_eq!(pending_count(dir.path()), 0);
    for seq in 0..200 {
        journal.append(&record(seq)).unwrap();
    }
    assert_eq!(pending_count(dir.path()), 0);
    drop(journal);
    assert_sequence(&read_journal(dir.path(), 0), 0, 200, record);
}

#[test]
fn segment_counts_out_of_range_are_refused() {
    for ahead in [0, MAX_SEGMENTS_AHEAD + 1] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        match options(ahead, Prefault::Ahead).open(&path) {
            Err(JournalError::InvalidOptions { reason, .. }) => {
                assert!(reason.contains("segments_ahead"), "{reason}");
            }
            other => panic!("segments_ahead({ahead}): {other:?}"),
        }
        assert!(!path.exists(), "nothing is created");
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = options(MAX_SEGMENTS_AHEAD, Prefault::Ahead)
        .open(dir.path())
        .unwrap();
    journal.warm_up().unwrap();
    assert_eq!(pending_count(dir.path()), MAX_SEGMENTS_AHEAD);
}

/// Child entry point; does nothing in an ordinary test run. Appends until killed, printing
/// each acknowledged sequence number.
#[test]
fn child_appends_with_segments_prepared_ahead() {
    let Some(dir) = child_dir() else { return };
    let ahead: usize = child_param(AHEAD).parse().unwrap();
    let journal = options(ahead, Prefault::Whole)
        .durability(Durability::EveryRecord)
        .open(&dir)
        .unwrap();
    journal.warm_up().unwrap();
    let mut seq = journal.next_sequence();
    tell_parent(&format!("open {seq}"));
    loop {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
        tell_parent(&format!("ack {seq}"));
        seq += 1;
    }
}

#[test]
fn reopening_after_a_kill_removes_every_prepared_segment() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_secs(20);
    let mut acked = 0;
    for (ahead, kill_after) in [(4, 150), (2, 3), (6, 0)] {
        let mut child = spawn_child(CHILD, dir.path(), &[(AHEAD, ahead.to_string())]);
        assert_eq!(child.expect_line(wait, "\"open\""), format!("open {acked}"));
        for _ in 0..kill_after {
            assert_eq!(
                child.expect_line(wait, "acknowledgement"),
                format!("ack {acked}")
            );
            acked += 1;
        }
        for line in child.kill() {
            assert_eq!(line, format!("ack {acked}"));
            acked += 1;
        }
        let pending = pending_count(dir.path());
        assert!(pending <= ahead, "{pending} pending, {ahead} asked");
        let journal = options(1, Prefault::Ahead).open(dir.path()).unwrap();
        let report = journal.open_report().clone();
        assert_eq!(report.pending_removed, pending, "{report:?}");
        assert_eq!(report.orphans_removed, 0, "{report:?}");
        // Every acknowledged record, and at most the one in flight.
        let next = report.next_sequence;
        assert!(
            next == acked || next == acked + 1,
            "{next} vs {acked} acked"
        );
        acked = next;
        assert_sequence(&read_journal(dir.path(), 0), 0, next, record);
        drop(journal);
    }
}
