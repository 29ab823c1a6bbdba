//! A journal whose writer process was killed (SIGKILL) reopens with every acknowledged record.
//! A child process (this test binary re-run) opens the journal (1 KiB segments, so it rolls
//! over every ~20 records), appends records derived from their sequence numbers and prints
//! each sequence number `append` returned; the parent kills it after a chosen number of
//! acknowledgements, then reopens the journal itself. Checked after every kill:
//! - every acknowledged record is present with its exact content, in order, and at most
//!   one more (the append in flight when the child died);
//! - the open report is consistent with the files found: the segment count, the prepared
//!   segment removed, the crashed tail sealed (`sealed_segment` is the last linked
//!   segment), no orphan, at most one record's worth of torn bytes;
//! - the recovered tail is sealed right after its last record with a marker naming the next
//!   sequence number, and the new segment is linked to it;
//! - appending continues at `open_report().next_sequence` and readers cross the recovered
//!   seal.
//!
//! With `Durability::EveryRecord` the kills come after 0, 1, 37 and 150 acknowledgements in
//! turn on the same journal (each child continues the journal the previous one left); with
//! `Durability::Never` after 500 (a process kill loses nothing published: the page cache
//! survives it).

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::time::{Duration, Instant};

use journal_common::{
    acks_until_killed, assert_sequence, check_chain, child_dir, child_param, linked_segments,
    read_journal, record, segments, spawn_child, tell_parent, walk_segment, End,
};
use kekbit::journal::{Durability, Journal, JournalOptions};

const CHILD: &str = "child_appends_to_the_journal_until_killed";
const DURABILITY: &str = "KEKBIT_TEST_DURABILITY";

fn options(durability: &str) -> JournalOptions {
    let durability = match durability {
        "every-record" => Durability::EveryRecord,
        "never" => Durability::Never,
        other => panic!("unknown durability {other}"),
    };
    Journal::options()
        .segment_capacity(1024)
        .max_record_len(64)
        .durability(durability)
}

/// Child entry point; does nothing in an ordinary test run. Appends until killed (or for
/// 30 s at most), printing each acknowledged sequence number.
#[test]
fn child_appends_to_the_journal_until_killed() {
    let Some(dir) = child_dir() else { return };
    let journal = options(&child_param(DURABILITY)).open(&dir).unwrap();
    let mut seq = journal.next_sequence();
    tell_parent(&format!("open {seq}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
        tell_parent(&format!("ack {seq}"));
        seq += 1;
    }
}

/// Runs a child on the journal in `dir` (which holds `start` records), kills it after
/// `kill_after` acknowledgements, reopens, checks, appends three records and closes.
/// Returns the number of records the journal then holds.
fn kill_and_recover(dir: &Path, durability: &str, start: u64, kill_after: u64) -> u64 {
    let case = format!("{durability}, {start} records, kill after {kill_after} acks");
    let mut child = spawn_child(CHILD, dir, &[(DURABILITY, durability.to_string())]);
    let acked = acks_until_killed(&mut child, start, kill_after, &case);

    let files = segments(dir);
    let pending = files.iter().filter(|s| s.pending).count();
    let tail = linked_segments(dir).last().unwrap().channel_id;
    assert!(pending <= 1, "{case}: {pending} prepared segments");

    let journal = options(durability).open(dir).unwrap();
    let report = journal.open_report().clone();
    let next = report.next_sequence;
    assert!(
        next == acked || next == acked + 1,
        "{case}: {next} records after the kill, {acked} acknowledged ({report:?})"
    );
    assert_eq!(report.segments, files.len(), "{case}: {report:?}");
    assert_eq!(report.pending_removed, pending, "{case}: {report:?}");
    assert_eq!(report.orphans_removed, 0, "{case}: {report:?}");
    assert_eq!(report.sealed_segment, Some(tail), "{case}: {report:?}");
    assert!(report.torn_bytes_dropped <= 72, "{case}: {report:?}");
    assert_eq!(journal.next_sequence(), next, "{case}");
    assert_eq!(journal.durable_count(), next, "{case}");

    // Every record, exact; the recovered tail sealed after its last one; the new segment
    // linked to it.
    assert_sequence(&read_journal(dir, 0), 0, next, record);
    let sealed = walk_segment(&journal_common::segment_file(dir, tail));
    match &sealed.stop {
        End::Sealed { position, .. } => assert_eq!(*position, sealed.end, "{case}"),
        other => panic!("{case}: recovered tail ends with {other:?}"),
    }
    assert_eq!(
        sealed.seal_names(),
        Some(next),
        "{case}: trailer of the recovery seal"
    );
    let walks = check_chain(dir);
    let new = walks.last().unwrap();
    assert_eq!(new.header.channel_id, tail + 1, "{case}");
    assert_eq!(new.header.base_sequence, next, "{case}");

    // Appending continues where the report says; readers cross the recovered seal.
    let mut reader = journal.reader(next.saturating_sub(1)).unwrap();
    for seq in next..next + 3 {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq, "{case}");
    }
    let mut seen = Vec::new();
    while let Some((seq, bytes)) = reader.try_next().unwrap() {
        seen.push((seq, bytes.to_vec()));
    }
    let from = next.saturating_sub(1);
    assert_sequence(&seen, from, next + 3 - from, record);
    drop(journal);
    assert_sequence(&read_journal(dir, 0), 0, next + 3, record);
    next + 3
}

#[test]
fn every_acknowledged_durable_record_survives_journal_writer_kills() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    for kill_after in [0, 1, 37, 150] {
        total = kill_and_recover(dir.path(), "every-record", total, kill_after);
    }
    assert!(linked_segments(dir.path()).len() > 10);
}

#[test]
fn killing_a_journal_writer_loses_no_published_record_even_without_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let total = kill_and_recover(dir.path(), "never", 0, 500);
    assert!(total >= 503);
}
