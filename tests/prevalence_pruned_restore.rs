//! Snapshots prune the journal, and restoring needs only what is left.
//!
//! A store with 256-byte segments (twelve 16-byte commands each), keeping 2 snapshots, takes
//! snapshots after commands 40, 80 and 100. After each one, exactly the segments that
//! docs/FORMAT.md's rule says (`s` goes when `base_sequence(s + 1)` is at most the oldest
//! kept snapshot's sequence, never the active segment) are gone from the directory, every
//! removed segment held only commands before the oldest kept snapshot, `segments_pruned`
//! counts them, and the oldest snapshot beyond the 2 kept is removed.
//!
//! Then restoring works from the newest snapshot (replaying only the commands after it), and
//! from the older kept one when the newest is damaged, while replaying the journal from 0,
//! or from any sequence before its first remaining one, with `kekbit::replay::replay` fails
//! with `ReplayError::Journal(JournalError::Pruned { requested, first, .. })`.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use std::convert::Infallible;
use std::fs;
use std::path::{Path, PathBuf};

use kekbit::journal::{Durability, JournalError, RecoveryMode};
use kekbit::prevalence::StoreOptions;
use kekbit::replay::{replay, Replay, ReplayError};
use prevalence_common::{
    apply_all, copy_dir, execute_checked, is_pending, last_linked_segment, scan_segment, segments,
    snapshot_files, store_options, Counters, Op, Store,
};

fn op(i: u64) -> Op {
    match i % 4 {
        0..=2 => Op::Add {
            key: (i % 5) as u8,
            n: (i % 30) as u32 + 1,
        },
        _ => Op::Sub {
            key: (i % 5) as u8,
            n: 7,
        },
    }
}

fn ops(range: std::ops::Range<u64>) -> Vec<Op> {
    range.map(op).collect()
}

fn options() -> StoreOptions {
    store_options(256, Durability::Never).keep_snapshots(2)
}

/// The linked segments of the journal as (id, path, base sequence).
fn linked(journal_dir: &Path) -> Vec<(u64, PathBuf, u64)> {
    segments(journal_dir)
        .into_iter()
        .filter(|(_, path)| !is_pending(path))
        .map(|(id, path)| {
            let base = scan_segment(&path).base;
            (id, path, base)
        })
        .collect()
}

/// Takes a snapshot and checks what it pruned against the rule, given the oldest snapshot
/// kept afterwards; returns the number of segments pruned.
fn snapshot_and_check(store: &Store, dir: &Path, oldest_kept: u64) -> usize {
    let journal_dir = dir.join("journal");
    let before = linked(&journal_dir);
    let (active, _) = last_linked_segment(&journal_dir);
    let expected_gone: Vec<u64> = before
        .windows(2)
        .take_while(|pair| pair[0].0 < active && pair[1].2 <= oldest_kept)
        .map(|pair| pair[0].0)
        .collect();
    // Each segment to go holds only commands before the oldest kept snapshot.
    for pair in before.windows(2) {
        if expected_gone.contains(&pair[0].0) {
            assert!(pair[1].2 <= oldest_kept);
        }
    }

    let taken = store.snapshot().unwrap();
    assert_eq!(taken.segments_pruned, expected_gone.len());
    let after: Vec<u64> = linked(&journal_dir).iter().map(|s| s.0).collect();
    for (id, path, _) in &before {
        assert_eq!(
            path.exists(),
            !expected_gone.contains(id),
            "segment {id} after pruning before {oldest_kept}"
        );
    }
    // The first remaining segment still holds the oldest kept snapshot's next command.
    let first = linked(&journal_dir)[0].2;
    assert!(first <= oldest_kept, "journal starts at {first}");
    assert_eq!(
        after[0],
        expected_gone.last().map_or(before[0].0, |g| g + 1)
    );
    expected_gone.len()
}

struct Count(u64);

impl Replay for Count {
    type Error = Infallible;

    fn record(&mut self, _: u64, _: &[u8]) -> Result<(), Infallible> {
        self.0 += 1;
        Ok(())
    }
}

#[test]
fn pruned_segments_are_gone_and_restore_needs_only_what_is_left() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    {
        let store = Store::open(&dir, Counters::new(), options()).unwrap();
        let mut model = Counters::new();
        execute_checked(&store, &mut model, &ops(0..40));
        // Segments 1..=4 hold 0..12, 12..24, 24..36, 36..40 (active): 1 to 3 go.
        assert_eq!(
            linked(&dir.join("journal"))
                .iter()
                .map(|s| (s.0, s.2))
                .collect::<Vec<_>>(),
            [(1, 0), (2, 12), (3, 24), (4, 36)]
        );
        assert_eq!(snapshot_and_check(&store, &dir, 40), 3);
        execute_checked(&store, &mut model, &ops(40..80));
        // Snapshots 40 and 80 kept: nothing more before 40 to prune.
        assert_eq!(snapshot_and_check(&store, &dir, 40), 0);
        execute_checked(&store, &mut model, &ops(80..100));
        // Snapshots 80 and 100 kept: segments 4 to 6 (36..72) go, 7 (72..84) stays.
        assert_eq!(snapshot_and_check(&store, &dir, 80), 3);
        assert_eq!(
            snapshot_files(&dir.join("snapshots"))
                .iter()
                .map(|s| s.0)
                .collect::<Vec<_>>(),
            [100, 80]
        );
        execute_checked(&store, &mut model, &ops(100..105));
    }
    let journal_dir = dir.join("journal");
    let first = linked(&journal_dir)[0].2;
    assert_eq!(first, 72);

    // Restore from the newest snapshot.
    {
        let store = Store::open(&dir, Counters::new(), options()).unwrap();
        assert_eq!(
            store.query(Counters::clone).unwrap(),
            apply_all(&ops(0..105))
        );
        let report = store.recovery_report();
        assert_eq!(report.snapshot.as_ref().map(|s| s.sequence), Some(100));
        assert_eq!(report.records_replayed, 5);
        assert_eq!(report.first_sequence, Some(100));
        assert!(report.snapshots_rejected.is_empty());
    }

    // Replaying from 0, or from just before the first remaining record: pruned.
    for from in [0, first - 1] {
        match replay(
            &journal_dir,
            from,
            RecoveryMode::TolerateTornTail,
            &mut Count(0),
        ) {
            Err(ReplayError::Journal(JournalError::Pruned {
                dir: at,
                requested,
                first: starts,
            })) => {
                assert_eq!(at, journal_dir);
                assert_eq!((requested, starts), (from, first));
            }
            other => panic!("expected Pruned replaying from {from}, got {other:?}"),
        }
    }
    let mut count = Count(0);
    let report = replay(
        &journal_dir,
        first,
        RecoveryMode::TolerateTornTail,
        &mut count,
    )
    .unwrap();
    assert_eq!(count.0, 105 - first);
    assert_eq!(report.first_sequence, Some(first));

    // The older kept snapshot is still restorable: its commands were kept.
    let copy = root.path().join("newest-damaged");
    copy_dir(&dir, &copy);
    let newest = snapshot_files(&copy.join("snapshots"))[0].1.clone();
    fs::write(&newest, b"damaged").unwrap();
    let store = Store::open(&copy, Counters::new(), options()).unwrap();
    assert_eq!(
        store.query(Counters::clone).unwrap(),
        apply_all(&ops(0..105))
    );
    let report = store.recovery_report();
    assert_eq!(report.snapshot.as_ref().map(|s| s.sequence), Some(80));
    assert_eq!(report.records_replayed, 25);
    assert_eq!(report.snapshots_rejected.len(), 1);
    assert_eq!(report.snapshots_rejected[0].path, newest);
}
