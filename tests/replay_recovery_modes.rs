//! `kekbit::replay::replay` under each `RecoveryMode`, on a journal of four segments
//! (512-byte segments, fourteen 32-byte records each; 50 records: segments 1 to 3 full,
//! segment 4 holding 42..50), with damage in a middle segment and, separately, at the tail:
//!
//! - a flipped byte in record 18 (segment 2, offset 128): `TolerateTornTail` and
//!   `AbsoluteConsistency` deliver records 0..18 and fail with `JournalError::Corrupt`
//!   (checksum mismatch at that offset); `SkipCorrupt` delivers 0..18 and 28..50 and reports
//!   one range (segment 2, offset 128, 336 bytes, first lost 18, 10 lost); a replay starting
//!   after the damaged segment never sees it;
//! - a torn tail above the durable watermark (records 45..50 unsynced, zeroed from inside
//!   record 47): `TolerateTornTail` succeeds with 0..47 and 16 torn bytes dropped,
//!   `AbsoluteConsistency` fails, `SkipCorrupt` succeeds and reports the range (records lost
//!   unknown: 0);
//! - damage below the durable watermark of the tail segment (record 44 of a synced journal):
//!   only `SkipCorrupt` gets past it;
//! - both middle and tail damage: `SkipCorrupt` reports two ranges;
//! - the same torn tail as a crashed writer leaves it (the directory copied while the journal
//!   is open: no closing marker, and the next segment already prepared, pending): a pending
//!   segment is "not there yet" for a reader, so the torn tail is still at the end of the
//!   last segment and `TolerateTornTail` must drop it;
//! - under `SkipCorrupt`, `Replay::damaged` returning `Decision::Fail` stops the replay with
//!   `ReplayError::Damaged` carrying the range.
//!
//! The journal is written, synced as each case needs, dropped, and a copy is damaged.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use std::convert::Infallible;
use std::path::{Path, PathBuf};

use kekbit::core::ReadError;
use kekbit::journal::{Durability, Journal, JournalError, RecoveryMode};
use kekbit::replay::{replay, CorruptRange, Decision, RecoveryReport, Replay, ReplayError};
use prevalence_common::{
    copy_dir, data_area, durable_watermark, flip_data_byte, is_pending, nonzero_extent,
    scan_segment, segments, wait_for_pending_segment, write_data,
};

const CAPACITY: u64 = 512;
const RECORDS: u64 = 50;
const PAYLOAD: usize = 24;
/// 8-byte header and 24-byte payload.
const FRAME: u64 = 32;
/// (512 - 64) / 32.
const PER_SEGMENT: u64 = 14;
/// The seal of a full segment: at 14 * 32, a 16-byte marker (8-byte trailer).
const SEALED_EXTENT: u64 = PER_SEGMENT * FRAME + 16;
/// What [`tear_tail`] leaves of record 47: its header word, and four payload bytes in the
/// next word.
const TORN: u64 = 16;

const ALL_MODES: [RecoveryMode; 3] = [
    RecoveryMode::TolerateTornTail,
    RecoveryMode::AbsoluteConsistency,
    RecoveryMode::SkipCorrupt,
];

/// Record `seq`: 24 non-zero bytes that identify it.
fn payload(seq: u64) -> Vec<u8> {
    (0..PAYLOAD as u64)
        .map(|j| ((seq * 7 + j * 13) % 255 + 1) as u8)
        .collect()
}

/// Writes the 50 records into `dir`, making the first `synced` of them durable; the rest
/// are appended after the last sync. The journal is then dropped.
fn write_journal(dir: &Path, synced: u64) {
    let journal = Journal::options()
        .segment_capacity(CAPACITY)
        .durability(Durability::Never)
        .open(dir)
        .unwrap();
    for seq in 0..RECORDS {
        if seq == synced {
            journal.sync().unwrap();
        }
        assert_eq!(journal.append(&payload(seq)).unwrap(), seq);
    }
    if synced == RECORDS {
        journal.sync().unwrap();
    }
    assert_eq!(journal.durable_count(), synced);
}

/// A copy of a freshly written journal (see [`write_journal`]) in `root/name`, checked to
/// have the layout the tests rely on.
fn journal_copy(root: &Path, name: &str, synced: u64) -> PathBuf {
    let original = root.join(format!("{name}-original"));
    write_journal(&original, synced);
    let copy = root.join(name);
    copy_dir(&original, &copy);
    let found = segments(&copy);
    assert_eq!(
        found.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    for (index, (_, path)) in found.iter().enumerate() {
        let scan = scan_segment(path);
        let base = index as u64 * PER_SEGMENT;
        assert_eq!(scan.base, base);
        assert!(scan.sealed);
        let count = PER_SEGMENT.min(RECORDS - base);
        assert_eq!(scan.records.len() as u64, count);
        for (i, record) in scan.records.iter().enumerate() {
            assert_eq!(record.start, i as u64 * FRAME);
            assert_eq!(record.payload, payload(base + i as u64));
        }
    }
    copy
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    segments(dir)
        .into_iter()
        .find(|(found, _)| *found == id)
        .unwrap()
        .1
}

/// Collects what a replay delivers and the damaged ranges it is asked about.
struct Collect {
    seen: Vec<u64>,
    asked: Vec<CorruptRange>,
    decision: Decision,
}

impl Collect {
    fn new(decision: Decision) -> Collect {
        Collect {
            seen: Vec::new(),
            asked: Vec::new(),
            decision,
        }
    }
}

impl Replay for Collect {
    type Error = Infallible;

    fn record(&mut self, seq: u64, record: &[u8]) -> Result<(), Infallible> {
        assert_eq!(record, payload(seq), "record {seq}");
        self.seen.push(seq);
        Ok(())
    }

    fn damaged(&mut self, range: &CorruptRange) -> Decision {
        self.asked.push(range.clone());
        self.decision
    }
}

fn run(
    dir: &Path,
    from: u64,
    mode: RecoveryMode,
    decision: Decision,
) -> (Collect, Result<RecoveryReport, ReplayError>) {
    let mut target = Collect::new(decision);
    let result = replay(dir, from, mode, &mut target);
    (target, result)
}

fn span(range: std::ops::Range<u64>) -> Vec<u64> {
    range.collect()
}

fn seqs(ranges: &[std::ops::Range<u64>]) -> Vec<u64> {
    ranges.iter().flat_map(|r| r.clone()).collect()
}

/// The range a replay reports, field by field.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    segment: u64,
    path: PathBuf,
    offset: u64,
    length: u64,
    first_sequence_lost: u64,
    records_lost: Option<u64>,
}

fn check_range(range: &CorruptRange, expected: &Expected) {
    let got = Expected {
        segment: range.segment,
        path: range.path.clone(),
        offset: range.offset,
        length: range.length,
        first_sequence_lost: range.first_sequence_lost,
        records_lost: range.records_lost,
    };
    assert_eq!(&got, expected);
    assert!(
        range.reason.contains("checksum mismatch"),
        "reason: {}",
        range.reason
    );
    assert!(range
        .reason
        .contains(&format!("offset {}", expected.offset)));
}

/// Replays `dir` from 0 under the two modes that may not pass damage: each delivers records
/// `0..end`, never asks about the damage, and fails with a checksum mismatch at `offset` of
/// the segment at `path`.
fn check_strict_modes_stop(dir: &Path, end: u64, path: &Path, offset: u64) {
    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let (seen, result) = run(dir, 0, mode, Decision::Skip);
        assert_eq!(seen.seen, span(0..end), "{mode:?}");
        assert!(seen.asked.is_empty(), "only SkipCorrupt asks");
        check_corrupt(result, path, offset);
    }
}

/// The error of a replay that met damage it may not pass: a checksum mismatch at `offset` of
/// the segment at `path`.
fn check_corrupt(result: Result<RecoveryReport, ReplayError>, path: &Path, offset: u64) {
    match result {
        Err(ReplayError::Journal(JournalError::Corrupt {
            source:
                ReadError::ChecksumMismatch {
                    path: at, position, ..
                },
        })) => {
            assert_eq!(at, path);
            assert_eq!(position, offset);
        }
        other => panic!("expected a checksum mismatch at {offset}, got {other:?}"),
    }
}

/// Flips one payload byte of record 18: segment 2, the fifth record, offset 4 * 32. Returns
/// the range `SkipCorrupt` reports for it: to the seal's end, records 18..28.
fn damage_middle(dir: &Path) -> Expected {
    let path = segment_path(dir, 2);
    let offset = 4 * FRAME;
    flip_data_byte(&path, offset + 8 + 5, 0x10);
    Expected {
        segment: 2,
        path,
        offset,
        length: SEALED_EXTENT - offset,
        first_sequence_lost: 18,
        records_lost: Some(10),
    }
}

/// Zeroes the tail segment from inside record 47 (its header word and four payload bytes
/// stay) to the end of the written data, which must reach `written` (`what` says why).
/// Returns the range `SkipCorrupt` reports for it: [`TORN`] bytes at record 47's offset, the
/// records lost unknown.
fn tear_tail(dir: &Path, written: u64, what: &str) -> Expected {
    let path = segment_path(dir, 4);
    let offset = 5 * FRAME;
    assert!(durable_watermark(&path) <= offset, "above the watermark");
    assert_eq!(nonzero_extent(&data_area(&path), 0), written, "{what}");
    let cut = offset + 12;
    write_data(&path, cut, &vec![0; (written - cut) as usize]);
    Expected {
        segment: 4,
        path,
        offset,
        length: TORN,
        first_sequence_lost: 47,
        records_lost: None,
    }
}

/// [`tear_tail`] on a journal that was dropped: segment 4 is sealed.
fn tear_sealed_tail(dir: &Path) -> Expected {
    tear_tail(
        dir,
        8 * FRAME + 16,
        "eight records and a closing marker naming the next sequence number",
    )
}

#[test]
fn damage_in_a_middle_segment() {
    let root = tempfile::tempdir().unwrap();
    let dir = journal_copy(root.path(), "middle", RECORDS);
    let expected = damage_middle(&dir);

    check_strict_modes_stop(&dir, 18, &expected.path, expected.offset);

    let (seen, result) = run(&dir, 0, RecoveryMode::SkipCorrupt, Decision::Skip);
    let report = result.unwrap();
    assert_eq!(seen.seen, seqs(&[0..18, 28..50]));
    assert_eq!(report.records_replayed, 18 + 22);
    assert_eq!(report.segments_read, 4);
    assert_eq!(
        (report.first_sequence, report.last_sequence),
        (Some(0), Some(49))
    );
    assert_eq!(report.torn_bytes_dropped, 0);
    assert_eq!(report.corrupt_ranges.len(), 1);
    check_range(&report.corrupt_ranges[0], &expected);
    assert_eq!(seen.asked, report.corrupt_ranges);
    assert!(report.snapshot.is_none() && report.snapshots_rejected.is_empty());

    // From inside the damaged segment but before the damage: the same range.
    let (seen, result) = run(&dir, 16, RecoveryMode::SkipCorrupt, Decision::Skip);
    let report = result.unwrap();
    assert_eq!(seen.seen, seqs(&[16..18, 28..50]));
    assert_eq!(report.first_sequence, Some(16));
    check_range(&report.corrupt_ranges[0], &expected);

    // From after the damaged segment: the damage is never read, in any mode.
    for mode in ALL_MODES {
        let (seen, result) = run(&dir, 30, mode, Decision::Fail);
        let report = result.unwrap();
        assert_eq!(seen.seen, span(30..50), "{mode:?}");
        assert_eq!(report.records_replayed, 20);
        assert_eq!(report.segments_read, 2);
        assert!(report.corrupt_ranges.is_empty());
    }
}

#[test]
fn decision_fail_stops_the_replay_with_damaged() {
    let root = tempfile::tempdir().unwrap();
    let dir = journal_copy(root.path(), "fail", RECORDS);
    let expected = damage_middle(&dir);

    let (seen, result) = run(&dir, 0, RecoveryMode::SkipCorrupt, Decision::Fail);
    assert_eq!(seen.seen, span(0..18));
    assert_eq!(seen.asked.len(), 1);
    match result {
        Err(ReplayError::Damaged { range }) => {
            check_range(&range, &expected);
            assert_eq!(range, seen.asked[0]);
        }
        other => panic!("expected ReplayError::Damaged, got {other:?}"),
    }
}

#[test]
fn torn_tail_above_the_durable_watermark() {
    let root = tempfile::tempdir().unwrap();
    // Records 45..50 were never synced: segment 4's watermark is at record 45 (offset 96).
    let dir = journal_copy(root.path(), "torn", 45);
    let expected = tear_sealed_tail(&dir);
    assert_eq!(durable_watermark(&expected.path), 3 * FRAME);

    let (seen, result) = run(&dir, 0, RecoveryMode::TolerateTornTail, Decision::Fail);
    let report = result.unwrap();
    assert_eq!(seen.seen, span(0..47));
    assert!(seen.asked.is_empty());
    assert_eq!(report.records_replayed, 47);
    assert_eq!(report.segments_read, 4);
    assert_eq!(report.last_sequence, Some(46));
    assert_eq!(report.torn_bytes_dropped, TORN);
    assert!(report.corrupt_ranges.is_empty());

    let (seen, result) = run(&dir, 0, RecoveryMode::AbsoluteConsistency, Decision::Skip);
    assert_eq!(seen.seen, span(0..47));
    check_corrupt(result, &expected.path, expected.offset);

    let (seen, result) = run(&dir, 0, RecoveryMode::SkipCorrupt, Decision::Skip);
    let report = result.unwrap();
    assert_eq!(seen.seen, span(0..47));
    assert_eq!(report.records_replayed, 47);
    assert_eq!(report.torn_bytes_dropped, 0);
    assert_eq!(report.corrupt_ranges.len(), 1);
    check_range(&report.corrupt_ranges[0], &expected);

    let (seen, result) = run(&dir, 0, RecoveryMode::SkipCorrupt, Decision::Fail);
    assert_eq!(seen.seen, span(0..47));
    match result {
        Err(ReplayError::Damaged { range }) => check_range(&range, &expected),
        other => panic!("expected ReplayError::Damaged, got {other:?}"),
    }
}

#[test]
fn damage_below_the_durable_watermark_of_the_tail_segment() {
    let root = tempfile::tempdir().unwrap();
    let dir = journal_copy(root.path(), "below", RECORDS);
    let path = segment_path(&dir, 4);
    assert_eq!(durable_watermark(&path), 8 * FRAME);
    // Record 44: segment 4's third record.
    let offset = 2 * FRAME;
    flip_data_byte(&path, offset + 8, 0x01);

    check_strict_modes_stop(&dir, 44, &path, offset);

    let (seen, result) = run(&dir, 0, RecoveryMode::SkipCorrupt, Decision::Skip);
    let report = result.unwrap();
    assert_eq!(seen.seen, span(0..44));
    assert_eq!(report.records_replayed, 44);
    assert_eq!(report.torn_bytes_dropped, 0);
    assert_eq!(report.corrupt_ranges.len(), 1);
    check_range(
        &report.corrupt_ranges[0],
        &Expected {
            segment: 4,
            path,
            offset,
            // To the end of the closing marker the drop wrote after record 49.
            length: 8 * FRAME + 16 - offset,
            first_sequence_lost: 44,
            // Counted by the seal the drop wrote: records 44 to 49.
            records_lost: Some(6),
        },
    );
}

#[test]
fn middle_and_tail_damage_together() {
    let root = tempfile::tempdir().unwrap();
    let dir = journal_copy(root.path(), "both", 45);
    let middle = damage_middle(&dir);
    let tail = tear_sealed_tail(&dir);

    // The middle damage is fatal unless skipped, whatever the tail.
    check_strict_modes_stop(&dir, 18, &middle.path, middle.offset);

    let (seen, result) = run(&dir, 0, RecoveryMode::SkipCorrupt, Decision::Skip);
    let report = result.unwrap();
    assert_eq!(seen.seen, seqs(&[0..18, 28..47]));
    assert_eq!(report.records_replayed, 18 + 19);
    assert_eq!(report.corrupt_ranges.len(), 2);
    check_range(&report.corrupt_ranges[0], &middle);
    check_range(&report.corrupt_ranges[1], &tail);
    assert_eq!(seen.asked, report.corrupt_ranges);
}

/// A copy of the journal as a crashed writer leaves it: written like [`write_journal`] with
/// records 45..50 unsynced, but copied while the journal is still open (no closing marker on
/// segment 4, and segment 5 prepared ahead, pending, as the journal's helper thread leaves it
/// once segment 4 is in use). The copy's tail is then torn with [`tear_tail`].
fn crashed_writer_copy(root: &Path) -> (PathBuf, Expected) {
    let original = root.join("live");
    let journal = Journal::options()
        .segment_capacity(CAPACITY)
        .durability(Durability::Never)
        .open(&original)
        .unwrap();
    for seq in 0..RECORDS {
        if seq == 45 {
            journal.sync().unwrap();
        }
        journal.append(&payload(seq)).unwrap();
    }
    assert_eq!(wait_for_pending_segment(&original), 5);
    let dir = root.join("crashed");
    copy_dir(&original, &dir);
    drop(journal);

    assert_eq!(
        segments(&dir).iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(is_pending(&segment_path(&dir, 5)));
    let path = segment_path(&dir, 4);
    let scan = scan_segment(&path);
    assert!(!scan.sealed, "a crashed writer leaves no closing marker");
    assert_eq!(scan.records.len(), 8);
    assert_eq!(durable_watermark(&path), 3 * FRAME);
    let expected = tear_tail(&dir, 8 * FRAME, "eight records, no closing marker");
    (dir, expected)
}

/// The crash case the recovery modes exist for: the writer died with records 45..50 not
/// synced and record 47 torn. Its helper had already prepared segment 5 (pending, empty),
/// which a reader must treat as not there yet (docs/FORMAT.md), so segment 4 is still the
/// last segment and its damage above the watermark is a torn tail.
// Regression: replay counted the pending segment prepared ahead as a later segment, so a
// crashed writer's torn tail was refused as corruption under TolerateTornTail.
#[test]
fn a_crashed_writers_torn_tail_is_tolerated_despite_the_segment_prepared_ahead() {
    let root = tempfile::tempdir().unwrap();
    let (dir, expected) = crashed_writer_copy(root.path());

    let (seen, result) = run(&dir, 0, RecoveryMode::TolerateTornTail, Decision::Fail);
    assert_eq!(seen.seen, span(0..47));
    let report = match result {
        Ok(report) => report,
        Err(e) => panic!(
            "the torn tail above the watermark of the last linked segment is refused \
             (the pending segment 5 counts as a later segment): {e}"
        ),
    };
    assert_eq!(report.records_replayed, 47);
    assert_eq!(report.torn_bytes_dropped, TORN);
    assert!(report.corrupt_ranges.is_empty());

    let (seen, result) = run(&dir, 0, RecoveryMode::AbsoluteConsistency, Decision::Skip);
    assert_eq!(seen.seen, span(0..47));
    check_corrupt(result, &expected.path, expected.offset);

    let (seen, result) = run(&dir, 0, RecoveryMode::SkipCorrupt, Decision::Skip);
    let report = result.unwrap();
    assert_eq!(seen.seen, span(0..47));
    assert_eq!(report.corrupt_ranges.len(), 1);
    check_range(&report.corrupt_ranges[0], &expected);
}

/// The control for the test above: the same crashed directory without the pending segment
/// 5 is replayed with the torn tail dropped.
#[test]
fn a_crashed_writers_torn_tail_without_a_prepared_segment_is_tolerated() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _) = crashed_writer_copy(root.path());
    std::fs::remove_file(segment_path(&dir, 5)).unwrap();

    let (seen, result) = run(&dir, 0, RecoveryMode::TolerateTornTail, Decision::Fail);
    let report = result.unwrap();
    assert_eq!(seen.seen, span(0..47));
    assert_eq!(report.records_replayed, 47);
    assert_eq!(report.torn_bytes_dropped, TORN);
}
