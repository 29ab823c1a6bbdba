//! Damage to acknowledged (durable) commands of a prevalent store, as opposed to a torn tail:
//! what each recovery mode does and how the loss is reported.
//!
//! A store runs 30 commands with `Durability::EveryRecord` in 256-byte segments (twelve
//! 16-byte commands each: segment 1 holds 0..12, segment 2 12..24, segment 3 24..30), is
//! copied while it runs (what a killed process leaves: the tail unsealed) and dropped, and a
//! copy of either gets one flipped byte:
//!
//! - in command 15 (a middle segment): `TolerateTornTail` fails with
//!   `StoreError::Replay(ReplayError::Journal(JournalError::Corrupt))` at that record;
//!   `SkipCorrupt` opens with commands 0..15 and 24..30 applied and reports the range
//!   (segment 2, offset 48, first lost 15, 9 lost), no torn bytes;
//! - in command 26 (the tail segment of the killed store, below its durable watermark), which
//!   recovery reads to seal it: `TolerateTornTail` and `AbsoluteConsistency` fail with
//!   `StoreError::Journal(JournalError::Corrupt)` at that record; `SkipCorrupt` opens with
//!   commands 0..26 and must report the lost acknowledged commands as a corrupt range
//!   (segment 3, offset 32, first lost 26), like the middle case, not as
//!   `torn_bytes_dropped`, which the report documents as bytes "never acknowledged";
//! - in command 26 of the store that was dropped: closing made the tail's seal durable, so
//!   recovery does not read it and the replay finds the damage, as in a middle segment.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use std::path::{Path, PathBuf};

use kekbit::core::ReadError;
use kekbit::journal::{Durability, JournalError, RecoveryMode};
use kekbit::prevalence::{StoreError, StoreOptions};
use kekbit::replay::ReplayError;
use prevalence_common::{
    apply_all, copy_dir, durable_watermark, execute_checked, flip_data_byte, journal_options,
    scan_segment, segments, store_options, Counters, Op, Store,
};

const TOTAL: u64 = 30;
const FRAME: u64 = 16;

fn op(i: u64) -> Op {
    match i % 3 {
        0 | 1 => Op::Add {
            key: (i % 4) as u8,
            n: (i % 50) as u32 + 1,
        },
        _ => Op::Sub {
            key: (i % 4) as u8,
            n: 3,
        },
    }
}

fn ops(ranges: &[std::ops::Range<u64>]) -> Vec<Op> {
    ranges.iter().flat_map(|r| r.clone()).map(op).collect()
}

fn options(mode: RecoveryMode) -> StoreOptions {
    store_options(256, Durability::EveryRecord)
        .journal(journal_options(256, Durability::EveryRecord).recovery(mode))
}

/// The store after the 30 commands, in `root/original`, checked to have the layout above,
/// and the copy taken before it was dropped, in `root/killed`.
fn build(root: &Path) -> (PathBuf, PathBuf) {
    let original = root.join("original");
    let killed = root.join("killed");
    let store = Store::open(&original, Counters::new(), options(RecoveryMode::default())).unwrap();
    let all: Vec<Op> = (0..TOTAL).map(op).collect();
    execute_checked(&store, &mut Counters::new(), &all);
    copy_dir(&original, &killed);
    drop(store);
    let found = segments(&original.join("journal"));
    assert_eq!(found.len(), 3);
    for ((_, path), (base, count)) in found.iter().zip([(0, 12), (12, 12), (24, 6)]) {
        let scan = scan_segment(path);
        assert_eq!((scan.base, scan.records.len() as u64), (base, count));
        assert!(scan
            .records
            .iter()
            .all(|r| r.frame_end() - r.start == FRAME));
        // Every command durable (the seals of rolled-over segments too).
        assert!(durable_watermark(path) >= count * FRAME);
    }
    (original, killed)
}

/// A copy of `original` in `root/name` with one payload byte of the record at `offset` of
/// segment `id` flipped; returns the copy and the segment's path.
fn damaged_copy(
    root: &Path,
    original: &Path,
    name: &str,
    id: u64,
    offset: u64,
) -> (PathBuf, PathBuf) {
    let copy = root.join(name);
    copy_dir(original, &copy);
    let segment = segments(&copy.join("journal"))
        .into_iter()
        .find(|(found, _)| *found == id)
        .unwrap()
        .1;
    flip_data_byte(&segment, offset + 9, 0x04);
    (copy, segment)
}

fn assert_checksum_mismatch(source: &ReadError, segment: &Path, offset: u64) {
    match source {
        ReadError::ChecksumMismatch { path, position, .. } => {
            assert_eq!((path.as_path(), *position), (segment, offset));
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
}

/// Opening the store in `copy` under `TolerateTornTail` fails in the replay, at the damaged
/// record at `offset` of `segment` (the journal itself opened: the segment's seal is durable,
/// so recovery did not read it).
fn assert_replay_meets_damage(copy: &Path, segment: &Path, offset: u64) {
    match Store::open(
        copy,
        Counters::new(),
        options(RecoveryMode::TolerateTornTail),
    ) {
        Err(StoreError::Replay(ReplayError::Journal(JournalError::Corrupt { source }))) => {
            assert_checksum_mismatch(&source, segment, offset)
        }
        other => panic!(
            "{}: expected a corrupt journal, got {other:?}",
            copy.display()
        ),
    }
}

#[test]
fn damage_in_a_middle_segment() {
    let root = tempfile::tempdir().unwrap();
    let (original, _) = build(root.path());
    // Command 15: segment 2's fourth record.
    let offset = 3 * FRAME;

    let (copy, segment) = damaged_copy(root.path(), &original, "tolerate", 2, offset);
    assert_replay_meets_damage(&copy, &segment, offset);

    let (copy, segment) = damaged_copy(root.path(), &original, "skip", 2, offset);
    let store = Store::open(&copy, Counters::new(), options(RecoveryMode::SkipCorrupt)).unwrap();
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&ops(&[0..15, 24..TOTAL]))
    );
    let report = store.recovery_report();
    assert_eq!(report.records_replayed, 15 + 6);
    assert_eq!(report.torn_bytes_dropped, 0);
    assert_eq!(report.corrupt_ranges.len(), 1, "{report:?}");
    let range = &report.corrupt_ranges[0];
    assert_eq!(
        (&range.path, range.segment, range.offset),
        (&segment, 2, offset)
    );
    assert_eq!(
        (range.first_sequence_lost, range.records_lost),
        (15, Some(9))
    );
}

// Regression: under SkipCorrupt, acknowledged (durable) commands dropped from the tail were
// reported as harmless torn bytes instead of a corrupt range.
#[test]
fn damage_below_the_watermark_of_the_tail_segment() {
    let root = tempfile::tempdir().unwrap();
    let (closed, original) = build(root.path());
    // Command 26: segment 3's third record, below its watermark (96).
    let offset = 2 * FRAME;

    // Closed cleanly, the tail's seal is durable: the replay meets the damage.
    let (copy, segment) = damaged_copy(root.path(), &closed, "closed", 3, offset);
    assert_replay_meets_damage(&copy, &segment, offset);

    for mode in [
        RecoveryMode::TolerateTornTail,
        RecoveryMode::AbsoluteConsistency,
    ] {
        let (copy, segment) = damaged_copy(root.path(), &original, &format!("{mode:?}"), 3, offset);
        match Store::open(&copy, Counters::new(), options(mode)) {
            Err(StoreError::Journal(JournalError::Corrupt { source })) => {
                assert_checksum_mismatch(&source, &segment, offset)
            }
            other => panic!("{mode:?}: expected a corrupt journal, got {other:?}"),
        }
    }

    let (copy, segment) = damaged_copy(root.path(), &original, "skip", 3, offset);
    let store = Store::open(&copy, Counters::new(), options(RecoveryMode::SkipCorrupt)).unwrap();
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&(0..26).map(op).collect::<Vec<_>>())
    );
    assert_eq!(store.journal().next_sequence(), 26);
    let report = store.recovery_report().clone();
    assert_eq!(report.records_replayed, 26);
    // Commands 26..30 were acknowledged durable and are lost: that is a corrupt range, as
    // for the same damage in a middle segment, not a torn tail "never acknowledged".
    assert_eq!(
        report.corrupt_ranges.len(),
        1,
        "acknowledged commands 26..30 were dropped, but the report has no corrupt range \
         (torn_bytes_dropped = {}): {report:?}",
        report.torn_bytes_dropped
    );
    let range = &report.corrupt_ranges[0];
    assert_eq!(
        (&range.path, range.segment, range.offset),
        (&segment, 3, offset)
    );
    assert_eq!(range.first_sequence_lost, 26);
    assert_eq!(report.torn_bytes_dropped, 0);
}
