//! Deterministic snapshot fallback cases of the prevalent store: which snapshot a restore
//! uses when some are unusable, and what the recovery report or the error says.
//!
//! The store runs 50 commands in 256-byte segments (12 records each) with snapshots after
//! commands 20 (A) and 40 (B), keeping 2; with pruning the journal then starts at sequence 12.
//!
//! - newest (B) damaged: A is used, the 30 commands after it replayed, B reported rejected;
//! - B and A damaged, journal pruned: `StoreError::NoUsableSnapshot` with the journal's first
//!   sequence (12) and both rejections, newest first;
//! - B and A damaged, `prune_journal(false)`: the whole journal is replayed from 0;
//! - a snapshot claiming more commands than the journal holds is rejected with that reason,
//!   and B is used; such a rejected file must not then take the place of the snapshots the
//!   store writes (with one snapshot kept, `snapshot()` must keep its own file and prune only
//!   before it, so that the store reopens);
//! - a snapshot older than the journal's first sequence is rejected as pruned;
//! - a snapshot file renamed to another sequence is rejected (header and name disagree).

#[path = "common/prevalence.rs"]
mod prevalence_common;

use std::fs;
use std::path::{Path, PathBuf};

use kekbit::codec::{Bincode, Codec};
use kekbit::journal::Durability;
use kekbit::prevalence::{StoreError, StoreOptions};
use kekbit::snapshot::SnapshotStore;
use prevalence_common::{
    apply_all, scan_segment, segments, snapshot_files, snapshot_name, step, store_options,
    Counters, Op, Store,
};

/// 256-byte segments: 192 bytes of records, twelve 16-byte records each.
const CAPACITY: u64 = 256;
const TOTAL: u64 = 50;
const A: u64 = 20;
const B: u64 = 40;

/// Command `i` of the tests: small amounts, so that every record is 16 bytes; some `Sub`s
/// fail.
fn op(i: u64) -> Op {
    let key = (i % 3) as u8;
    match i % 5 {
        0 | 1 | 3 => Op::Add {
            key,
            n: (i % 17) as u32 + 1,
        },
        2 => Op::Sub {
            key,
            n: (i % 11) as u32 * 3,
        },
        _ => Op::Reset { key },
    }
}

fn ops(range: std::ops::Range<u64>) -> Vec<Op> {
    range.map(op).collect()
}

fn options(prune: bool) -> StoreOptions {
    store_options(CAPACITY, Durability::Never)
        .keep_snapshots(2)
        .prune_journal(prune)
}

/// A store in `dir` that ran the 50 commands with snapshots A and B; returns the paths of
/// B and A.
fn build(dir: &Path, prune: bool) -> (PathBuf, PathBuf) {
    let store = Store::open(dir, Counters::new(), options(prune)).unwrap();
    let mut model = Counters::new();
    let mut failed = 0;
    for i in 0..TOTAL {
        let expected = step(&mut model, &op(i));
        failed += usize::from(expected.is_err());
        assert_eq!(store.execute(op(i)).unwrap(), expected);
        if i + 1 == A || i + 1 == B {
            store.snapshot().unwrap();
        }
    }
    drop(store);
    assert!(failed > 0, "some commands fail");
    let files = snapshot_files(&dir.join("snapshots"));
    assert_eq!(
        files.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [B, A]
    );
    let first = scan_segment(&segments(&dir.join("journal"))[0].1).base;
    assert_eq!(
        first,
        if prune { 12 } else { 0 },
        "journal's first sequence"
    );
    (files[0].1.clone(), files[1].1.clone())
}

/// Overwrites the snapshot's body (bytes after the 48-byte header) with garbage.
fn damage_body(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    for b in &mut bytes[48..] {
        *b ^= 0x5A;
    }
    fs::write(path, bytes).unwrap();
}

#[test]
fn a_damaged_newest_snapshot_falls_back_to_the_older_one() {
    let root = tempfile::tempdir().unwrap();
    let (b, a) = build(root.path(), true);
    damage_body(&b);

    let store = Store::open(root.path(), Counters::new(), options(true)).unwrap();
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&ops(0..TOTAL))
    );
    let report = store.recovery_report();
    let used = report.snapshot.as_ref().expect("snapshot A used");
    assert_eq!((used.sequence, &used.path), (A, &a));
    assert_eq!(report.records_replayed, TOTAL - A);
    assert_eq!(report.first_sequence, Some(A));
    assert_eq!(report.last_sequence, Some(TOTAL - 1));
    assert_eq!(report.snapshots_rejected.len(), 1);
    assert_eq!(report.snapshots_rejected[0].path, b);
    assert!(
        report.snapshots_rejected[0]
            .reason
            .contains("body checksum mismatch"),
        "{:?}",
        report.snapshots_rejected
    );
}

#[test]
fn all_snapshots_damaged_and_the_journal_pruned_is_no_usable_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let (b, a) = build(root.path(), true);
    damage_body(&b);
    fs::write(&a, b"not a snapshot at all").unwrap();

    let err = Store::open(root.path(), Counters::new(), options(true)).unwrap_err();
    let message = err.to_string();
    match err {
        StoreError::NoUsableSnapshot {
            dir,
            first_sequence,
            rejected,
        } => {
            assert_eq!(dir, root.path());
            assert_eq!(first_sequence, 12);
            let paths: Vec<&PathBuf> = rejected.iter().map(|r| &r.path).collect();
            assert_eq!(paths, [&b, &a], "newest first");
            assert!(rejected[0].reason.contains("body checksum mismatch"));
            assert!(rejected[1]
                .reason
                .contains("shorter than a snapshot header"));
        }
        other => panic!("expected NoUsableSnapshot, got {other:?}"),
    }
    assert!(message.contains("no usable snapshot"), "{message}");
    assert!(message.contains("starts at sequence 12"), "{message}");
}

#[test]
fn all_snapshots_damaged_with_an_unpruned_journal_replays_from_zero() {
    let root = tempfile::tempdir().unwrap();
    let (b, a) = build(root.path(), false);
    damage_body(&b);
    damage_body(&a);

    let store = Store::open(root.path(), Counters::new(), options(false)).unwrap();
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&ops(0..TOTAL))
    );
    let report = store.recovery_report();
    assert!(report.snapshot.is_none());
    assert_eq!(report.records_replayed, TOTAL);
    assert_eq!(report.first_sequence, Some(0));
    let paths: Vec<&PathBuf> = report.snapshots_rejected.iter().map(|r| &r.path).collect();
    assert_eq!(paths, [&b, &a]);
    // The store goes on from there.
    assert_eq!(store.execute(Op::Add { key: 7, n: 3 }).unwrap(), Ok(3));
    assert_eq!(store.journal().next_sequence(), TOTAL + 1);
}

/// Writes a well-formed snapshot of `state` claiming to cover `sequence` commands, beside
/// the store's own (keeping them all).
fn plant_snapshot(dir: &Path, sequence: u64, state: &Counters) -> PathBuf {
    let mut body = Vec::new();
    Bincode.encode(state, &mut body).unwrap();
    SnapshotStore::open(dir.join("snapshots"), 10)
        .unwrap()
        .write(sequence, &body)
        .unwrap()
        .path
}

#[test]
fn a_snapshot_claiming_more_commands_than_the_journal_holds_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let (b, _) = build(root.path(), true);
    let mut bogus_state = Counters::new();
    bogus_state.insert(99, 99);
    let bogus = plant_snapshot(root.path(), 999, &bogus_state);
    assert!(bogus.ends_with(snapshot_name(999)));

    let store = Store::open(root.path(), Counters::new(), options(true)).unwrap();
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&ops(0..TOTAL))
    );
    let report = store.recovery_report();
    assert_eq!(report.snapshot.as_ref().map(|s| &s.path), Some(&b));
    assert_eq!(report.records_replayed, TOTAL - B);
    assert_eq!(report.snapshots_rejected.len(), 1);
    assert_eq!(report.snapshots_rejected[0].path, bogus);
    assert_eq!(
        report.snapshots_rejected[0].reason,
        format!("covers 999 commands but the journal holds only {TOTAL}")
    );
}

#[test]
fn a_snapshot_older_than_the_pruned_journal_is_rejected_as_pruned() {
    let root = tempfile::tempdir().unwrap();
    let (b, a) = build(root.path(), true);
    // A correct image of the first 5 commands, but the journal now starts at 12.
    let stale = plant_snapshot(root.path(), 5, &apply_all(&ops(0..5)));
    damage_body(&b);
    damage_body(&a);

    match Store::open(root.path(), Counters::new(), options(true)) {
        Err(StoreError::NoUsableSnapshot {
            first_sequence,
            rejected,
            ..
        }) => {
            assert_eq!(first_sequence, 12);
            let paths: Vec<&PathBuf> = rejected.iter().map(|r| &r.path).collect();
            assert_eq!(paths, [&b, &a, &stale]);
            assert_eq!(
                rejected[2].reason,
                "the commands after it were pruned (the journal starts at 12)"
            );
        }
        other => panic!("expected NoUsableSnapshot, got {other:?}"),
    }
}

#[test]
fn a_snapshot_renamed_to_another_sequence_is_rejected() {
    let root = tempfile::tempdir().unwrap();
    let (b, a) = build(root.path(), true);
    // A's intact file under B's name: the header says 20, the name 40.
    fs::copy(&a, &b).unwrap();

    let store = Store::open(root.path(), Counters::new(), options(true)).unwrap();
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&ops(0..TOTAL))
    );
    let report = store.recovery_report();
    assert_eq!(report.snapshot.as_ref().map(|s| s.sequence), Some(A));
    assert_eq!(report.snapshots_rejected.len(), 1);
    assert_eq!(report.snapshots_rejected[0].path, b);
    assert_eq!(
        report.snapshots_rejected[0].reason,
        format!("header covers sequence {A}, the file name says {B}")
    );
}

/// After a restore that rejected a snapshot claiming more commands than the journal holds,
/// that file must not count as a kept snapshot: with one snapshot kept, the next
/// `snapshot()` must keep the snapshot it just wrote (and returned), prune the journal only
/// before it, and leave a store that reopens to the same state.
// Regression: a rejected snapshot claiming a later sequence stayed among the kept ones, so
// the next snapshot() deleted its own new file and pruned the journal past it.
#[test]
fn a_rejected_snapshot_from_the_future_does_not_displace_new_snapshots() {
    let root = tempfile::tempdir().unwrap();
    let keep_one = || options(true).keep_snapshots(1);
    {
        let store = Store::open(root.path(), Counters::new(), keep_one()).unwrap();
        for i in 0..TOTAL {
            store.execute(op(i)).unwrap().ok();
        }
    }
    let bogus = plant_snapshot(root.path(), 999, &Counters::new());

    {
        let store = Store::open(root.path(), Counters::new(), keep_one()).unwrap();
        let report = store.recovery_report();
        assert_eq!(report.snapshots_rejected.len(), 1);
        assert_eq!(report.snapshots_rejected[0].path, bogus);
        for i in TOTAL..2 * TOTAL {
            store.execute(op(i)).unwrap().ok();
        }
        let taken = store.snapshot().unwrap();
        assert_eq!(taken.info.sequence, 2 * TOTAL);
        assert!(
            taken.info.path.exists(),
            "snapshot() returned {} but the file was removed (kept instead: {:?}); it pruned {} \
             segments",
            taken.info.path.display(),
            snapshot_files(&root.path().join("snapshots")),
            taken.segments_pruned
        );
    }

    let store = match Store::open(root.path(), Counters::new(), keep_one()) {
        Ok(store) => store,
        Err(e) => panic!("the store no longer opens after snapshot(): {e}"),
    };
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&ops(0..2 * TOTAL))
    );
    assert_eq!(
        store
            .recovery_report()
            .snapshot
            .as_ref()
            .map(|s| s.sequence),
        Some(2 * TOTAL)
    );
}
