//! `prune_before` removes exactly the segments all of whose records precede the given
//! sequence number, oldest first, and never the segment being appended to (nor the one
//! prepared ahead). With 4 KiB segments holding four 1,000-byte records each (segment `k`
//! holds `4(k-1) .. 4k`): pruning before 3 removes nothing, before 4 removes segment 1, and
//! `PruneReport` gives the number removed and the first sequence number still held. A reader
//! lagging inside a removed segment keeps reading it (the file is unlinked, its mapping
//! lives on) and crosses into the following segments up to live appends; a reader whose
//! next segment was removed under it gets `Pruned` after the last record of its segment, as
//! a new reader would (not `MissingSegment`, which is damage), never wrong data. A new reader from a pruned sequence number gets `Pruned` naming the
//! first sequence number held. Pruning everything keeps the active segment: appending and
//! reading go on, also after the journal is closed and reopened. Readers opened (from the
//! next sequence number) while a prune removes hundreds of segments all open: a segment
//! vanishing under a reader's lookup is not an error for a record still held.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use journal_common::{
    assert_sequence, check_chain, four_per_segment, large_record, linked_segments, read_available,
    read_journal, record, segment_file, segment_ids, segments, PER_SEGMENT,
};
use kekbit::journal::{Durability, Journal, JournalError, JournalReader};

/// Mappings of this process of files that were in `dir` and are no longer (by inode: a
/// segment mapped while it had its temporary name shows that name, marked deleted).
fn deleted_mappings(dir: &Path) -> usize {
    use std::os::unix::fs::MetadataExt;
    let present: std::collections::HashSet<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.metadata().ok()?.ino()))
        .collect();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let dir = dir.to_string_lossy();
    maps.lines()
        .filter(|l| l.contains(dir.as_ref()))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<u64>().ok())
        .filter(|inode| !present.contains(inode))
        .count()
}

// Regression: issue 14 item 2: without a sync (Durability::Never), every pruned segment stayed mapped by its pending sync, so its storage was never freed
#[test]
fn pruned_segments_are_unmapped_without_any_sync() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(64 << 10)
        .max_record_len(1000)
        .durability(Durability::Never)
        .recycle_segments(0)
        .open(dir.path())
        .unwrap();
    for _ in 0..1000 {
        journal.append(&[7u8; 1000]).unwrap();
    }
    let pruned = journal.prune_before(990).unwrap();
    assert!(pruned.segments_removed >= 10, "{pruned:?}");
    // The helper thread unmaps them in the background.
    let start = std::time::Instant::now();
    while deleted_mappings(dir.path()) > 0 && start.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(deleted_mappings(dir.path()), 0);
    // Appends, a sync and a reader from the first record held go on as before.
    journal.append(b"after").unwrap();
    journal.sync().unwrap();
    let mut reader = journal.reader(pruned.first_sequence).unwrap();
    let mut seen = 0;
    while reader.try_next().unwrap().is_some() {
        seen += 1;
    }
    assert_eq!(seen, 1001 - pruned.first_sequence);
}

/// Asserts that a new reader from `from` is refused with `Pruned` naming `first`.
fn assert_pruned(dir: &Path, from: u64, first: u64) {
    match JournalReader::open(dir, from) {
        Err(JournalError::Pruned {
            dir: named,
            requested,
            first: held,
            ..
        }) => {
            assert_eq!(named, dir);
            assert_eq!((requested, held), (from, first), "reader from {from}");
        }
        other => panic!("reader from {from} after pruning: {other:?}"),
    }
}

/// Reads `count` records from `reader`, which must be `from, from + 1, ...`.
fn read_exactly(reader: &mut JournalReader, from: u64, count: u64) {
    for seq in from..from + count {
        match reader.try_next() {
            Ok(Some((got, bytes))) => {
                assert_eq!(got, seq);
                assert!(bytes == large_record(seq), "record {seq} differs");
            }
            other => panic!("expected record {seq}: {other:?}"),
        }
    }
}

#[test]
fn pruning_a_journal_removes_whole_old_segments_and_lagging_readers_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let journal = four_per_segment().open(path).unwrap();
    for seq in 0..40 {
        assert_eq!(journal.append(&large_record(seq)).unwrap(), seq);
    }
    // Segments 1 to 10 hold four records each; 10 is active (full, not rolled over yet).
    let walks = check_chain(path);
    let held: Vec<(u64, u64, usize)> = walks
        .iter()
        .map(|w| (w.header.channel_id, w.header.base_sequence, w.records.len()))
        .collect();
    let want: Vec<(u64, u64, usize)> = (1..=10).map(|k| (k, 4 * (k - 1), 4)).collect();
    assert_eq!(held, want, "(segment, first sequence, records)");

    // A reader lagging inside segment 1, one inside segment 2.
    let mut lagging = journal.reader(0).unwrap();
    read_exactly(&mut lagging, 0, 2);
    let mut stranded = journal.reader(5).unwrap();
    read_exactly(&mut stranded, 5, 1);

    // Segment 1 still holds 3: nothing to remove.
    let report = journal.prune_before(3).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (0, 0));
    assert!(segment_file(path, 1).exists());
    let report = journal.prune_before(0).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (0, 0));

    // Before 4: segment 1 goes, and only it.
    let report = journal.prune_before(PER_SEGMENT).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (1, 4));
    assert!(!segment_file(path, 1).exists());
    assert_eq!(linked_segments(path)[0].channel_id, 2);
    assert_pruned(path, 0, 4);
    assert_pruned(path, 3, 4);
    assert_sequence(&read_journal(path, 4), 4, 36, large_record);

    // The lagging reader reads the rest of the unlinked segment 1 and crosses into 2 and on.
    read_exactly(&mut lagging, 2, 2);
    let (got, error) = read_available(&mut lagging);
    assert!(error.is_none(), "{error:?}");
    assert_sequence(&got, 4, 36, large_record);

    // Before 22: segments 2 to 5 (records 4 to 19) go; 6 holds 20 and 21, it stays.
    let report = journal.prune_before(22).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (4, 20));
    assert_eq!(linked_segments(path)[0].channel_id, 6);
    assert_pruned(path, 19, 20);
    assert_sequence(&read_journal(path, 20), 20, 20, large_record);

    // The reader in segment 2 reads what is left of it, then cannot go on: segment 3 is gone.
    // Never a record that is not the next one.
    read_exactly(&mut stranded, 6, 2);
    match stranded.try_next() {
        Err(JournalError::Pruned {
            requested, first, ..
        }) => assert_eq!((requested, first), (8, 20)),
        other => panic!("reader stranded in a removed segment: {other:?}"),
    }

    // Everything: all but the active segment 10 (and the one prepared after it) go.
    let report = journal.prune_before(u64::MAX).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (4, 36));
    let linked: Vec<u64> = linked_segments(path).iter().map(|s| s.channel_id).collect();
    assert_eq!(linked, [10], "linked segments left");
    assert!(
        segment_ids(path).iter().all(|&id| id == 10 || id == 11),
        "files left: {:?}",
        segment_ids(path)
    );
    assert_pruned(path, 35, 36);
    let report = journal.prune_before(u64::MAX).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (0, 36));

    // Appending goes on (rolling over from the only segment left); readers follow.
    for seq in 40..50 {
        assert_eq!(journal.append(&large_record(seq)).unwrap(), seq);
    }
    let (got, error) = read_available(&mut lagging);
    assert!(error.is_none(), "{error:?}");
    assert_sequence(&got, 40, 10, large_record);
    assert_sequence(&read_journal(path, 36), 36, 14, large_record);

    // Pruning again removes the segments filled since, up to the new active one.
    let report = journal.prune_before(u64::MAX).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (3, 48));

    // Closed and reopened, the pruned journal goes on.
    drop(journal);
    let journal = four_per_segment().open(path).unwrap();
    assert_eq!(journal.open_report().next_sequence, 50);
    assert_eq!(journal.append(&large_record(50)).unwrap(), 50);
    assert_sequence(&read_journal(path, 48), 48, 3, large_record);
    assert_pruned(path, 47, 48);
    // Segment 13 (48, 49, closed by the drop) goes; 14, opened by the reopen, is active.
    let report = journal.prune_before(u64::MAX).unwrap();
    assert_eq!((report.segments_removed, report.first_sequence), (1, 50));
    assert_sequence(&read_journal(path, 50), 50, 1, large_record);
    assert!(segments(path).iter().any(|s| !s.pending));
}

// Regression: a reader opened while a prune unlinked segments failed with MissingSegment.
#[test]
fn journal_readers_opened_while_pruning_runs_open_at_records_still_held() {
    const IDLE: u8 = 0;
    const PRUNING: u8 = 1;
    const STOP: u8 = 2;
    let dir = tempfile::tempdir().unwrap();
    // Tiny segments: a few records each, hundreds of segments to prune per round.
    let journal = Journal::options()
        .segment_capacity(256)
        .max_record_len(64)
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    let state = Arc::new(AtomicU8::new(IDLE));
    // The next sequence number: in the active segment, which pruning never removes.
    let next = Arc::new(AtomicU64::new(0));
    let opener = {
        let (state, next) = (Arc::clone(&state), Arc::clone(&next));
        let dir = dir.path().to_path_buf();
        thread::spawn(move || {
            let (mut opened, mut failures) = (0u64, Vec::new());
            loop {
                match state.load(Ordering::Acquire) {
                    PRUNING => {
                        let from = next.load(Ordering::Acquire);
                        match JournalReader::open(&dir, from) {
                            Ok(_) => opened += 1,
                            Err(e) => failures.push(format!("reader from {from}: {e}")),
                        }
                    }
                    STOP => return (opened, failures),
                    _ => thread::sleep(Duration::from_micros(200)),
                }
            }
        })
    };
    let mut seq = 0;
    for _ in 0..3 {
        for _ in 0..600 {
            journal.append(&record(seq)).unwrap();
            seq += 1;
        }
        next.store(seq, Ordering::Release);
        state.store(PRUNING, Ordering::Release);
        thread::sleep(Duration::from_millis(2));
        let report = journal.prune_before(seq).unwrap();
        assert!(report.segments_removed > 100, "{report:?}");
        state.store(IDLE, Ordering::Release);
    }
    state.store(STOP, Ordering::Release);
    let (opened, failures) = opener.join().unwrap();
    assert!(opened > 0);
    assert!(
        failures.is_empty(),
        "{} of {} reader opens failed while pruning ran, e.g. {:?}",
        failures.len(),
        failures.len() as u64 + opened,
        &failures[..failures.len().min(3)]
    );
}

#[test]
fn a_live_reader_whose_next_segment_was_pruned_gets_pruned() {
    // Regression: issue 11 item 8: a live reader got MissingSegment (damage, skipped as such
    // by SkipCorrupt replay) where a fresh reader got Pruned.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path();
    let journal = four_per_segment().open(path).unwrap();
    for seq in 0..24 {
        journal.append(&large_record(seq)).unwrap();
    }
    let mut live = journal.reader(0).unwrap();
    read_exactly(&mut live, 0, 2);
    // Segments 1 to 3 (records 0 to 11) go.
    assert_eq!(journal.prune_before(12).unwrap().segments_removed, 3);
    read_exactly(&mut live, 2, 2);
    for _ in 0..2 {
        match live.try_next() {
            Err(JournalError::Pruned {
                requested, first, ..
            }) => assert_eq!((requested, first), (4, 12)),
            other => panic!("{other:?}"),
        }
    }
    assert_pruned(path, 4, 12);
    // A hole in the middle of the chain is still damage.
    let mut before_hole = journal.reader(12).unwrap();
    read_exactly(&mut before_hole, 12, 4);
    std::fs::remove_file(segment_file(path, 5)).unwrap();
    match before_hole.try_next() {
        Err(JournalError::MissingSegment { id, .. }) => assert_eq!(id, 5),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_replay_overtaken_by_pruning_reports_pruned_not_damage() {
    // Regression: issue 11 item 8: SkipCorrupt replay treated segments pruned under it as
    // damage, skipped them and went on as if records had been lost to corruption.
    use kekbit::journal::RecoveryMode;
    use kekbit::replay::{replay, CorruptRange, Decision, Replay, ReplayError};

    struct PruneMidway<'a> {
        journal: &'a Journal,
        seen: Vec<u64>,
        damaged: usize,
    }
    impl Replay for PruneMidway<'_> {
        type Error = JournalError;
        fn record(&mut self, seq: u64, _: &[u8]) -> Result<(), JournalError> {
            self.seen.push(seq);
            if seq == 1 {
                self.journal.prune_before(12)?;
            }
            Ok(())
        }
        fn damaged(&mut self, _: &CorruptRange) -> Decision {
            self.damaged += 1;
            Decision::Skip
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let journal = four_per_segment().open(dir.path()).unwrap();
    for seq in 0..24 {
        journal.append(&large_record(seq)).unwrap();
    }
    let mut target = PruneMidway {
        journal: &journal,
        seen: Vec::new(),
        damaged: 0,
    };
    let replayed = replay(dir.path(), 0, RecoveryMode::SkipCorrupt, &mut target);
    match replayed {
        Err(ReplayError::Journal(JournalError::Pruned {
            requested, first, ..
        })) => assert_eq!((requested, first), (4, 12)),
        other => panic!("{other:?}"),
    }
    assert_eq!(target.seen, [0, 1, 2, 3]);
    assert_eq!(target.damaged, 0);
}
