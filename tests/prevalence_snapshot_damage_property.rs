//! Property (quickcheck): damage to a store's newest snapshot never changes the restored
//! state; the store falls back and says so.
//!
//! Random commands on a map of counters are executed with snapshots taken at random points
//! (2 or 3 kept, journal pruning on or off, small segments); then the newest snapshot file
//! is damaged: one byte flipped anywhere in it, the file truncated, or the file replaced by
//! garbage. Reopening must
//!
//! - fall back to the next older snapshot when there is one, replaying only the commands
//!   after it; with a single snapshot, replay the whole journal from 0 when the journal still
//!   starts at 0, else fail with `StoreError::NoUsableSnapshot` naming the journal's first
//!   sequence and the rejected file;
//! - restore exactly the state of applying all the commands;
//! - report the snapshot used (sequence, file, body length) and the rejected newest file with
//!   a reason that names the defect (magic, version, header checksum, body checksum, short
//!   header, body length);
//! - go on: after more commands and a new snapshot, the next reopening uses the new snapshot
//!   and rejects nothing.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use std::fs;

use kekbit::journal::Durability;
use kekbit::prevalence::StoreError;
use kekbit::snapshot::SNAPSHOT_HEADER_LEN;
use prevalence_common::{
    apply_all, execute_checked, scan_segment, segments, snapshot_files, step, store_options,
    Counters, Op, Rng, Store,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// A step before the damage.
#[derive(Clone, Debug)]
enum Step {
    Execute(Op),
    Snapshot,
}

/// How the newest snapshot file is damaged.
#[derive(Clone, Debug)]
enum Damage {
    /// XOR the byte at `at` (modulo the file's length) with `mask` (made non-zero).
    Flip { at: u64, mask: u8 },
    /// Truncate the file to `to` bytes (modulo its length: always shorter).
    Truncate { to: u64 },
    /// Replace the file by `len` (modulo 160) garbage bytes.
    Garbage { len: u64, seed: u64 },
}

#[derive(Clone, Debug)]
struct Case {
    capacity: u64,
    keep: usize,
    prune: bool,
    steps: Vec<Step>,
    damage: Damage,
}

impl Arbitrary for Case {
    fn arbitrary(g: &mut Gen) -> Case {
        let count = usize::arbitrary(g) % 60;
        // Half the cases take snapshots here and there, the others a single one.
        let several = bool::arbitrary(g);
        let mut steps: Vec<Step> = (0..count)
            .map(|_| {
                if several && u8::arbitrary(g) % 6 == 0 {
                    Step::Snapshot
                } else {
                    Step::Execute(Op::arbitrary(g))
                }
            })
            .collect();
        // At least one snapshot, to damage.
        if !steps.iter().any(|s| matches!(s, Step::Snapshot)) {
            let at = usize::arbitrary(g) % (steps.len() + 1);
            steps.insert(at, Step::Snapshot);
        }
        let damage = match u8::arbitrary(g) % 3 {
            0 => Damage::Flip {
                at: u64::arbitrary(g),
                mask: u8::arbitrary(g),
            },
            1 => Damage::Truncate {
                to: u64::arbitrary(g),
            },
            _ => Damage::Garbage {
                len: u64::arbitrary(g),
                seed: u64::arbitrary(g),
            },
        };
        Case {
            capacity: *g.choose(&[256u64, 512, 4096]).unwrap(),
            keep: 2 + usize::arbitrary(g) % 2,
            prune: bool::arbitrary(g),
            steps,
            damage,
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Case>> {
        let me = self.clone();
        Box::new(
            self.steps
                .shrink()
                .filter(|steps| steps.iter().any(|s| matches!(s, Step::Snapshot)))
                .map(move |steps| Case {
                    steps,
                    ..me.clone()
                }),
        )
    }
}

impl Arbitrary for Step {
    fn arbitrary(g: &mut Gen) -> Step {
        Step::Execute(Op::arbitrary(g))
    }
}

/// Damages the file at `path` as `damage` says; returns what the rejection reason must
/// contain.
fn damage_file(path: &std::path::Path, damage: &Damage) -> &'static str {
    let mut bytes = fs::read(path).unwrap();
    let len = bytes.len() as u64;
    assert!(len > SNAPSHOT_HEADER_LEN as u64);
    let expected = match *damage {
        Damage::Flip { at, mask } => {
            let at = (at % len) as usize;
            bytes[at] ^= if mask == 0 { 0x80 } else { mask };
            match at {
                0..8 => "wrong magic",
                8..10 => "unsupported snapshot version",
                10..48 => "header checksum mismatch",
                _ => "body checksum mismatch",
            }
        }
        Damage::Truncate { to } => {
            bytes.truncate((to % len) as usize);
            if bytes.len() < SNAPSHOT_HEADER_LEN {
                "shorter than a snapshot header"
            } else {
                "the header says"
            }
        }
        Damage::Garbage { len, seed } => {
            let mut rng = Rng::new(seed);
            bytes = (0..len % 160).map(|_| rng.next_u64() as u8).collect();
            if bytes.len() < SNAPSHOT_HEADER_LEN {
                "shorter than a snapshot header"
            } else {
                "wrong magic"
            }
        }
    };
    fs::write(path, bytes).unwrap();
    expected
}

fn newest_snapshot_damaged(case: Case) -> TestResult {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let options = || {
        store_options(case.capacity, Durability::Never)
            .keep_snapshots(case.keep)
            .prune_journal(case.prune)
    };

    let mut executed: Vec<Op> = Vec::new();
    let mut taken: Vec<u64> = Vec::new();
    let mut model = Counters::new();
    {
        let store = Store::open(&dir, Counters::new(), options()).unwrap();
        for action in &case.steps {
            match action {
                Step::Execute(op) => {
                    let expected = step(&mut model, op);
                    assert_eq!(store.execute(op.clone()).unwrap(), expected);
                    executed.push(op.clone());
                }
                Step::Snapshot => {
                    let done = store.snapshot().unwrap();
                    assert_eq!(done.info.sequence, executed.len() as u64);
                    if taken.last() != Some(&done.info.sequence) {
                        taken.push(done.info.sequence);
                    }
                }
            }
        }
    }
    // The newest `keep` distinct snapshots are kept, newest first.
    let kept: Vec<u64> = taken.iter().rev().take(case.keep).copied().collect();
    let files = snapshot_files(&dir.join("snapshots"));
    assert_eq!(
        files.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        kept,
        "snapshots kept"
    );
    let journal_dir = dir.join("journal");
    let first_sequence = scan_segment(&segments(&journal_dir)[0].1).base;
    if !case.prune {
        assert_eq!(first_sequence, 0);
    }
    assert!(first_sequence <= *kept.last().unwrap());

    let newest = files[0].1.clone();
    let reason = damage_file(&newest, &case.damage);
    let expected_state = apply_all(&executed);
    let total = executed.len() as u64;

    let store = match Store::open(&dir, Counters::new(), options()) {
        Ok(store) => store,
        Err(StoreError::NoUsableSnapshot {
            first_sequence: first,
            rejected,
            ..
        }) => {
            assert_eq!(kept.len(), 1, "an older snapshot was usable");
            assert!(first_sequence > 0, "the journal starts at 0: replay it");
            assert_eq!(first, first_sequence);
            assert_eq!(rejected.len(), 1);
            assert_eq!(rejected[0].path, newest);
            assert!(rejected[0].reason.contains(reason), "{rejected:?}");
            return TestResult::passed();
        }
        Err(e) => return TestResult::error(format!("reopening failed: {e}")),
    };
    assert_eq!(store.query(Counters::clone).unwrap(), expected_state);
    let report = store.recovery_report();
    assert_eq!(report.snapshots_rejected.len(), 1, "{report:?}");
    assert_eq!(report.snapshots_rejected[0].path, newest);
    assert!(
        report.snapshots_rejected[0].reason.contains(reason),
        "expected {reason:?} in {:?}",
        report.snapshots_rejected[0].reason
    );
    match files.get(1) {
        Some((older, path)) => {
            let used = report
                .snapshot
                .as_ref()
                .expect("the older snapshot is used");
            assert_eq!(used.sequence, *older);
            assert_eq!(&used.path, path);
            assert_eq!(
                used.body_len,
                fs::metadata(path).unwrap().len() - SNAPSHOT_HEADER_LEN as u64
            );
            assert_eq!(report.records_replayed, total - older);
        }
        None => {
            assert_eq!(
                first_sequence, 0,
                "restored without snapshot from a pruned journal"
            );
            assert!(report.snapshot.is_none());
            assert_eq!(report.records_replayed, total);
        }
    }
    assert!(report.corrupt_ranges.is_empty());
    assert_eq!(report.torn_bytes_dropped, 0);

    // The store goes on: more commands, a new snapshot, used by the next reopening.
    let more = [Op::Add { key: 9, n: 4 }, Op::Sub { key: 9, n: 1 }];
    execute_checked(&store, &mut expected_state.clone(), &more);
    let fresh = store.snapshot().unwrap().info;
    assert_eq!(fresh.sequence, total + 2);
    drop(store);
    let store = Store::open(&dir, Counters::new(), options()).unwrap();
    let mut all = executed.clone();
    all.extend(more);
    assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&all));
    let report = store.recovery_report();
    assert_eq!(
        report.snapshot.as_ref().map(|s| s.sequence),
        Some(total + 2)
    );
    assert!(report.snapshots_rejected.is_empty(), "{report:?}");
    assert_eq!(report.records_replayed, 0);
    TestResult::passed()
}

#[test]
fn damage_to_the_newest_snapshot_falls_back_without_changing_the_state() {
    QuickCheck::new()
        .tests(50)
        .quickcheck(newest_snapshot_damaged as fn(Case) -> TestResult);
}
