//! Property (quickcheck): a crash that tears the unsynced tail of a store's journal loses
//! exactly the commands whose records it damaged, and nothing that was synced.
//!
//! For random command sequences on a map of counters (`Add`, `Sub`, `Reset`; `Sub` and
//! `Reset` fail deterministically on some states), executed with `Durability::Never` and a
//! `journal().sync()` or a snapshot after a random prefix, in small segments (so that
//! rollovers and, after a snapshot, pruning happen), the store is dropped and a copy of its
//! directory gets a "crash cut": from a random byte at or above the last segment's durable
//! watermark to the end of the written data, the bytes are zeroed or replaced by garbage. In
//! half the cases the copy is taken while the store is still open instead, which is exactly
//! what a process crash leaves (no closing marker, the next segment prepared ahead and
//! pending). Reopening the copy must give
//!
//! - the state of applying exactly the commands whose records survive intact (which include
//!   at least the synced prefix), and the same outputs for them as the model;
//! - a recovery report with those commands replayed (after the snapshot, when the sync was
//!   made by taking one, which makes the journal durable up to it), no corrupt range, and
//!   `torn_bytes_dropped` equal to the non-zero bytes written after the last intact record
//!   (so non-zero whenever garbage was written);
//! - a store that goes on: new commands execute with the model's outputs, and a further
//!   reopen restores the survivors plus the new commands, with nothing torn.
//!
//! Two hand-picked cases add the same cut under each recovery mode: `AbsoluteConsistency`
//! refuses it with `JournalError::TornTail`, `SkipCorrupt` drops it.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use kekbit::journal::{Durability, JournalError, RecoveryMode};
use kekbit::prevalence::{StoreError, StoreOptions};
use prevalence_common::{
    apply_all, arbitrary_ops, copy_dir, data_area, durable_watermark, execute_checked,
    journal_options, last_linked_segment, nonzero_extent, scan_segment, segments, store_options,
    wait_for_pending_segment, write_data, Counters, Op, Rng, Store,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

/// One crash scenario.
#[derive(Clone, Debug)]
struct CrashCut {
    /// Segment capacity: small, so that most runs roll over at least once.
    capacity: u64,
    /// The commands executed before the crash.
    ops: Vec<Op>,
    /// How many of them are synced (clamped to `ops.len()`).
    synced: usize,
    /// Sync by taking a snapshot (which makes the journal durable up to it) rather than by
    /// `journal().sync()`.
    by_snapshot: bool,
    /// Where the cut falls in the tail above the watermark (reduced modulo its length).
    cut: u64,
    /// Garbage rather than zeros from the cut on.
    garbage: bool,
    /// Seed of the garbage bytes.
    seed: u64,
    /// Copy the directory while the store is still open, as a crash leaves it (no closing
    /// marker, the next segment prepared ahead), rather than after dropping the store.
    live: bool,
    /// Commands executed after the reopening.
    after: Vec<Op>,
}

impl Arbitrary for CrashCut {
    fn arbitrary(g: &mut Gen) -> CrashCut {
        let capacity = *g.choose(&[256u64, 512, 1024, 4096]).unwrap();
        let count = usize::arbitrary(g) % 70;
        let ops = arbitrary_ops(g, count);
        let synced = usize::arbitrary(g) % (count + 1);
        let after_count = usize::arbitrary(g) % 8;
        CrashCut {
            capacity,
            ops,
            synced,
            by_snapshot: bool::arbitrary(g),
            cut: u64::arbitrary(g),
            garbage: bool::arbitrary(g),
            seed: u64::arbitrary(g),
            live: bool::arbitrary(g),
            after: arbitrary_ops(g, after_count),
        }
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = CrashCut>> {
        let me = self.clone();
        Box::new(self.ops.shrink().map(move |ops| CrashCut {
            synced: me.synced.min(ops.len()),
            ops,
            ..me.clone()
        }))
    }
}

fn crash_cut(case: CrashCut) -> TestResult {
    let synced = case.synced.min(case.ops.len());
    let root = tempfile::tempdir().unwrap();
    let original = root.path().join("original");
    let crashed = root.path().join("crashed");
    // Fresh segments only: the oracle below reads every non-zero byte past the tail's
    // records as what the crash left, which a recycled segment's earlier life would break
    // (recycled tails are checked by tests/reliability_power_loss.rs).
    let options = || {
        StoreOptions::new()
            .journal(journal_options(case.capacity, Durability::Never).recycle_segments(0))
    };

    // Before the crash: a synced prefix, then unsynced commands; then the store goes away.
    {
        let store = Store::open(&original, Counters::new(), options()).unwrap();
        let mut model = Counters::new();
        execute_checked(&store, &mut model, &case.ops[..synced]);
        if case.by_snapshot {
            assert_eq!(store.snapshot().unwrap().info.sequence, synced as u64);
        } else {
            store.journal().sync().unwrap();
        }
        assert!(store.journal().durable_count() >= synced as u64);
        execute_checked(&store, &mut model, &case.ops[synced..]);
        assert_eq!(store.journal().next_sequence(), case.ops.len() as u64);
        if case.live {
            wait_for_pending_segment(&original.join("journal"));
            copy_dir(&original, &crashed);
        }
    }
    if !case.live {
        copy_dir(&original, &crashed);
    }

    // The crash cut, in the last segment, from a byte at or above its durable watermark to
    // the end of what was written (the closing marker the drop left, if any, included).
    let journal_dir = crashed.join("journal");
    let (_, last) = last_linked_segment(&journal_dir);
    let scan = scan_segment(&last);
    let before = data_area(&last);
    let watermark = durable_watermark(&last);
    let written = nonzero_extent(&before, scan.end);
    if case.live {
        assert!(!scan.sealed, "a crashed writer leaves no closing marker");
        assert_eq!(written, scan.end);
    } else {
        assert!(scan.sealed, "dropping the store closes its segment");
        // The closing marker names the next sequence number in its 8-byte trailer, which
        // is all zero bytes when that number is 0.
        assert!(
            (scan.end + 8..=scan.end + 16).contains(&written),
            "the closing marker ends the data: written to {written}, records to {}",
            scan.end
        );
    }
    assert!(watermark <= scan.end);
    if let Some(first) = scan.records.first() {
        assert_eq!(first.start, 0);
    }
    // Nothing to cut when everything written is synced (a live copy after a final sync).
    let cut = if written > watermark {
        watermark + case.cut % (written - watermark)
    } else {
        written
    };
    let mut rng = Rng::new(case.seed);
    let fill: Vec<u8> = (cut..written)
        .map(|_| if case.garbage { rng.nonzero_byte() } else { 0 })
        .collect();
    write_data(&last, cut, &fill);
    let after_cut = data_area(&last);

    // The oracle: the records of the last segment whose bytes are unchanged survive, up to
    // the first changed one; the torn tail is every non-zero word from there on.
    let intact = scan
        .records
        .iter()
        .take_while(|r| {
            let range = r.start as usize..r.data_end() as usize;
            before[range.clone()] == after_cut[range]
        })
        .count();
    let lost_from = match scan.records.get(intact) {
        Some(first_lost) => first_lost.start,
        None => scan.end,
    };
    // A closing marker the fill left unchanged (it may only have zeroed bytes of the
    // trailer that were zero already) still seals the segment: nothing is torn then.
    let marker = scan.end as usize..(scan.end + 16) as usize;
    let sealed_intact = scan.sealed
        && intact == scan.records.len()
        && marker.end <= before.len()
        && before[marker.clone()] == after_cut[marker];
    let expected_torn = if sealed_intact {
        0
    } else {
        nonzero_extent(&after_cut, lost_from) - lost_from
    };
    let survivors = (scan.base + intact as u64) as usize;
    assert!(
        survivors >= synced,
        "the cut is above the watermark, so the synced prefix ({synced}) survives, not only {survivors}"
    );
    // Garbage reaching past the last intact record is a torn tail (garbage only in the
    // padding of the last record of a live copy is not).
    if case.garbage && written > lost_from.max(cut) {
        assert!(expected_torn > 0);
    }

    // Reopening the crashed copy.
    let store = match Store::open(&crashed, Counters::new(), options()) {
        Ok(store) => store,
        Err(e) => {
            return TestResult::error(format!(
            "reopening after a cut at {cut} (watermark {watermark}, written {written}) failed: {e}"
        ))
        }
    };
    let mut model = apply_all(&case.ops[..survivors]);
    assert_eq!(store.query(Counters::clone).unwrap(), model);
    let report = store.recovery_report();
    // Restored from the snapshot, if the sync was one, then the commands after it.
    let restored_from = if case.by_snapshot { synced } else { 0 };
    assert_eq!(
        report.snapshot.as_ref().map(|s| s.sequence),
        case.by_snapshot.then_some(synced as u64)
    );
    assert_eq!(report.records_replayed, (survivors - restored_from) as u64);
    assert_eq!(
        report.torn_bytes_dropped,
        expected_torn,
        "cut at {cut}, first lost record at {lost_from}; open report {:?}",
        store.journal().open_report()
    );
    assert!(report.corrupt_ranges.is_empty(), "{report:?}");
    assert!(report.snapshots_rejected.is_empty());
    assert_eq!(store.journal().next_sequence(), survivors as u64);

    // The store goes on after the crash.
    execute_checked(&store, &mut model, &case.after);
    drop(store);
    let store = Store::open(&crashed, Counters::new(), options()).unwrap();
    assert_eq!(store.query(Counters::clone).unwrap(), model);
    let report = store.recovery_report();
    assert_eq!(
        report.records_replayed,
        (survivors + case.after.len() - restored_from) as u64
    );
    assert_eq!(report.torn_bytes_dropped, 0);
    TestResult::passed()
}

#[test]
fn a_crash_cut_above_the_watermark_loses_exactly_the_damaged_unsynced_commands() {
    QuickCheck::new()
        .tests(50)
        .quickcheck(crash_cut as fn(CrashCut) -> TestResult);
}

/// One hand-picked case of the property, so that a failure of the basic path shows without
/// quickcheck: three synced commands, two unsynced, the cut in the middle of the last one.
#[test]
fn a_cut_in_the_middle_of_the_last_record_loses_only_that_command() {
    let ops = [
        Op::Add { key: 1, n: 5 },
        Op::Sub { key: 1, n: 9 },
        Op::Add { key: 2, n: 7 },
        Op::Reset { key: 1 },
        Op::Add { key: 3, n: 30 },
    ];
    let root = tempfile::tempdir().unwrap();
    let original = root.path().join("original");
    let crashed = root.path().join("crashed");
    let options = || store_options(4096, Durability::Never);
    {
        let store = Store::open(&original, Counters::new(), options()).unwrap();
        let mut model = Counters::new();
        execute_checked(&store, &mut model, &ops[..3]);
        store.journal().sync().unwrap();
        execute_checked(&store, &mut model, &ops[3..]);
    }
    copy_dir(&original, &crashed);
    let (_, last) = segments(&crashed.join("journal")).pop().unwrap();
    let scan = scan_segment(&last);
    assert_eq!(scan.records.len(), 5);
    assert_eq!(durable_watermark(&last), scan.records[3].start);
    // Zero from inside the last record's payload to the end of the closing marker (its
    // header and its 8-byte trailer).
    let cut = scan.records[4].start + 10;
    write_data(&last, cut, &vec![0; (scan.end + 16 - cut) as usize]);

    let store = Store::open(&crashed, Counters::new(), options()).unwrap();
    assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&ops[..4]));
    let report = store.recovery_report();
    assert_eq!(report.records_replayed, 4);
    // Left of the last record: its header word and the first two payload bytes (variant 0,
    // key 3), in the next word: two 8-byte words.
    assert_eq!(report.torn_bytes_dropped, 16);
    assert_eq!(store.execute(Op::Add { key: 3, n: 1 }).unwrap(), Ok(1));
}

/// The same crash under the other recovery modes: `AbsoluteConsistency` refuses the torn
/// tail (`JournalError::TornTail` naming where the valid records end and how many bytes
/// follow) and changes nothing, so a later `TolerateTornTail` opening still recovers it;
/// `SkipCorrupt` drops it like `TolerateTornTail`.
#[test]
fn the_same_cut_under_absolute_consistency_and_skip_corrupt() {
    let ops = [
        Op::Add { key: 1, n: 5 },
        Op::Add { key: 2, n: 7 },
        Op::Add { key: 3, n: 30 },
    ];
    let root = tempfile::tempdir().unwrap();
    let original = root.path().join("original");
    let crashed = root.path().join("crashed");
    let with_mode = |mode| {
        store_options(4096, Durability::Never)
            .journal(journal_options(4096, Durability::Never).recovery(mode))
    };
    {
        let store = Store::open(
            &original,
            Counters::new(),
            with_mode(RecoveryMode::default()),
        )
        .unwrap();
        execute_checked(&store, &mut Counters::new(), &ops[..1]);
        store.journal().sync().unwrap();
        execute_checked(&store, &mut Counters::new(), &ops[1..]);
    }
    copy_dir(&original, &crashed);
    let (_, last) = segments(&crashed.join("journal")).pop().unwrap();
    let scan = scan_segment(&last);
    let cut = scan.records[2].start + 10;
    write_data(&last, cut, &vec![0; (scan.end + 16 - cut) as usize]);

    match Store::open(
        &crashed,
        Counters::new(),
        with_mode(RecoveryMode::AbsoluteConsistency),
    ) {
        Err(StoreError::Journal(JournalError::TornTail {
            segment,
            position,
            bytes,
            ..
        })) => {
            assert_eq!(segment, last);
            assert_eq!(position, scan.records[2].start);
            assert_eq!(bytes, 16);
        }
        other => panic!("expected TornTail, got {other:?}"),
    }

    let skip = root.path().join("skip");
    copy_dir(&crashed, &skip);
    let store = Store::open(&skip, Counters::new(), with_mode(RecoveryMode::SkipCorrupt)).unwrap();
    assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&ops[..2]));
    assert_eq!(store.recovery_report().torn_bytes_dropped, 16);
    drop(store);

    let store = Store::open(
        &crashed,
        Counters::new(),
        with_mode(RecoveryMode::default()),
    )
    .unwrap();
    assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&ops[..2]));
    assert_eq!(store.recovery_report().torn_bytes_dropped, 16);
}
