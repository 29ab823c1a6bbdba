//! Segment recycling (docs/FORMAT.md, "Recycled segments"): segments removed by
//! `prune_before` become the journal's next segments, stale bytes of their earlier life are
//! never returned nor reported as damage, and a segment that a reader maps is never
//! recycled.

use std::path::Path;

use kekbit::core::ShmReader;
use kekbit::journal::{verify, Durability, Journal, JournalReader, VerifyStatus};

const CAPACITY: u64 = 16 << 10;

fn record(seq: u64) -> Vec<u8> {
    let len = 100 + (seq * 37 % 900) as usize;
    (0..len).map(|i| (seq as usize * 31 + i) as u8).collect()
}

fn open(dir: &Path, recycle: usize) -> Journal {
    Journal::options()
        .segment_capacity(CAPACITY)
        .max_record_len(2048)
        .durability(Durability::Never)
        .recycle_segments(recycle)
        .open(dir)
        .unwrap()
}

fn segment_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".kekbit")?;
            u64::from_str_radix(hex, 16).ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

fn read_all(dir: &Path, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut reader = JournalReader::open(dir, from).unwrap();
    let mut out = Vec::new();
    while let Some((seq, rec)) = reader.try_next().unwrap() {
        out.push((seq, rec.to_vec()));
    }
    out
}

/// Appends until the journal has rolled over `segments` more times.
fn fill(journal: &Journal, segments: u64) {
    let dir = journal.dir().to_path_buf();
    let start = *segment_ids(&dir).iter().max().unwrap();
    while *segment_ids(&dir).iter().max().unwrap() < start + segments {
        let seq = journal.next_sequence();
        journal.append(&record(seq)).unwrap();
    }
}

/// Checks that `journal` reads back every record it keeps, in order, none from an earlier
/// life, then closes it and checks that `verify` finds it clean; returns its next sequence
/// number.
fn check_kept_and_close(journal: Journal) -> u64 {
    let dir = journal.dir().to_path_buf();
    let first_seq = journal.first_sequence().unwrap();
    let next = journal.next_sequence();
    let got = read_all(&dir, first_seq);
    assert_eq!(got.len() as u64, next - first_seq);
    for (seq, rec) in &got {
        assert_eq!(rec, &record(*seq), "record {seq}");
    }
    drop(journal);
    let report = verify(&dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.status(), VerifyStatus::Clean, "{report:?}");
    next
}

#[test]
fn pruned_segments_become_the_next_segments_and_stale_bytes_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), 2);
    fill(&journal, 4);
    journal.sync().unwrap();
    let first = segment_ids(dir.path())[0];
    let old_inodes = [
        inode(&kekbit::core::storage_path(dir.path(), first)),
        inode(&kekbit::core::storage_path(dir.path(), first + 1)),
    ];
    let keep = journal.next_sequence() - 2;
    let pruned = journal.prune_before(keep).unwrap();
    assert!(pruned.segments_removed >= 2, "{pruned:?}");
    // The next segments prepared are the pruned files, renamed and rewritten.
    fill(&journal, 3);
    journal.sync().unwrap();
    let mut inodes: Vec<u64> = segment_ids(dir.path())
        .iter()
        .map(|&id| inode(&kekbit::core::storage_path(dir.path(), id)))
        .collect();
    inodes.sort_unstable();
    for old in old_inodes {
        assert!(inodes.contains(&old), "pruned file {old} was not recycled");
    }
    let recycled: Vec<u64> = segment_ids(dir.path())
        .into_iter()
        .filter(|&id| {
            ShmReader::open(kekbit::core::storage_path(dir.path(), id))
                .unwrap()
                .header()
                .is_recycled()
        })
        .collect();
    assert_eq!(recycled.len(), 2, "{recycled:?}");
    // Every record is read back, in order, none from an earlier life; verify is clean.
    let first_seq = journal.first_sequence().unwrap();
    let next = check_kept_and_close(journal);
    // Reopening finds the same records: recovery reads the recycled tail to its seal.
    let journal = open(dir.path(), 2);
    assert_eq!(journal.next_sequence(), next);
    assert_eq!(
        read_all(dir.path(), first_seq).len() as u64,
        next - first_seq
    );
}

#[test]
fn under_never_pruned_segments_are_recycled_without_any_sync() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), 4);
    fill(&journal, 5);
    let at = |id| inode(&kekbit::core::storage_path(dir.path(), id));
    let first = segment_ids(dir.path())[0];
    let old_inodes: Vec<u64> = (first..first + 4).map(at).collect();
    let files_before = segment_ids(dir.path()).len();
    let pruned = journal.prune_before(journal.next_sequence() - 1).unwrap();
    assert!(pruned.segments_removed >= 4, "{pruned:?}");
    assert_eq!(journal.durable_count(), 0, "nothing was ever synced");
    // Five more segments: the first may have been in preparation during the prune.
    fill(&journal, 5);
    let inodes: Vec<u64> = segment_ids(dir.path()).into_iter().map(at).collect();
    let reused = old_inodes.iter().filter(|i| inodes.contains(i)).count();
    assert_eq!(
        reused, 4,
        "pruned files {old_inodes:?}, files now {inodes:?}"
    );
    // Five new segments, and at most one more file than before the prune.
    assert!(
        segment_ids(dir.path()).len() <= files_before + 1,
        "{inodes:?}"
    );
    check_kept_and_close(journal);
}

/// Syncs from another thread while the journal appends and prunes: a sync that took a
/// segment's mapping before the prune that recycles it must not store into the file once
/// it is a new segment (its durable watermark would then cover stale bytes, which `verify`
/// would report as damage, and the reader as a wrong record).
#[test]
fn syncs_racing_prunes_never_reach_a_recycled_file() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(4096)
        .max_record_len(2048)
        .durability(Durability::Never)
        .recycle_segments(4)
        .open(dir.path())
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut recycled = 0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                journal.sync().unwrap();
            }
        });
        for seq in 0..1500u64 {
            assert_eq!(journal.append(&record(seq)).unwrap(), seq);
            if seq % 5 == 4 {
                journal.prune_before(seq - 2).unwrap();
            }
            if seq % 50 == 49 {
                let newest = *segment_ids(dir.path()).last().unwrap();
                let path = kekbit::core::storage_path(dir.path(), newest);
                recycled +=
                    usize::from(ShmReader::open(path).is_ok_and(|r| r.header().is_recycled()));
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert!(recycled > 0, "nothing was recycled");
    assert_eq!(check_kept_and_close(journal), 1500);
}

#[test]
fn no_pool_means_pruned_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), 0);
    fill(&journal, 3);
    journal.sync().unwrap();
    let pruned = journal.prune_before(journal.next_sequence() - 1).unwrap();
    assert!(pruned.segments_removed >= 2);
    fill(&journal, 2);
    for id in segment_ids(dir.path()) {
        let reader = ShmReader::open(kekbit::core::storage_path(dir.path(), id)).unwrap();
        assert!(!reader.header().is_recycled(), "segment {id}");
    }
}

/// Fills `journal` through three segments, without a sync (`Durability::Never`: none of
/// their seals is durable); returns the inodes of its two oldest segment files.
fn two_oldest(journal: &Journal) -> (u64, u64) {
    fill(journal, 3);
    let dir = journal.dir();
    let first = segment_ids(dir)[0];
    let at = |id| inode(&kekbit::core::storage_path(dir, id));
    (at(first), at(first + 1))
}

/// Prunes all but the last record, appends through four more segments (no sync); checks
/// that the file of inode `held` (which a reader maps) was not recycled and that of
/// `neighbour` (which none maps) was.
fn prune_and_check(journal: &Journal, held: u64, neighbour: u64) {
    journal.prune_before(journal.next_sequence() - 1).unwrap();
    fill(journal, 4);
    let dir = journal.dir();
    let inodes: Vec<u64> = segment_ids(dir)
        .iter()
        .map(|&id| inode(&kekbit::core::storage_path(dir, id)))
        .collect();
    assert!(!inodes.contains(&held), "the mapped segment was recycled");
    assert!(
        inodes.contains(&neighbour),
        "the unmapped segment was not recycled"
    );
}

#[test]
fn a_reader_mapping_a_segment_keeps_it_from_being_recycled() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), 4);
    let (held, neighbour) = two_oldest(&journal);
    // A reader of the oldest segment, reading it to its end.
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    let (seq, rec) = reader.try_next().unwrap().unwrap();
    assert_eq!((seq, rec), (0, &record(0)[..]));
    prune_and_check(&journal, held, neighbour);
    // The reader goes on reading the segment it holds, unchanged, then learns of the prune.
    let mut seq = 1;
    loop {
        match reader.try_next() {
            Ok(Some((s, rec))) => {
                assert_eq!((s, rec), (seq, &record(seq)[..]));
                seq += 1;
            }
            Ok(None) => panic!("ended at {seq} without reporting the prune"),
            Err(kekbit::journal::JournalError::Pruned { .. }) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(seq > 1);
}

#[path = "common/journal.rs"]
mod journal_common;

const CHILD: &str = "child_holds_the_oldest_segment";

/// Child entry point; does nothing in an ordinary test run. Reads record 0 (mapping the
/// oldest segment), tells the parent, waits until the parent has pruned and appended, then
/// reads the rest of that segment, which must be unchanged.
#[test]
fn child_holds_the_oldest_segment() {
    use std::time::{Duration, Instant};
    let Some(dir) = journal_common::child_dir() else {
        return;
    };
    let mut reader = JournalReader::open(&dir, 0).unwrap();
    let (seq, rec) = reader.try_next().unwrap().unwrap();
    assert_eq!((seq, rec), (0, &record(0)[..]));
    journal_common::tell_parent("holding");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("done").exists() {
        assert!(
            Instant::now() < deadline,
            "child: the parent never finished"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut next = 1;
    loop {
        match reader.try_next() {
            Ok(Some((s, rec))) => {
                assert_eq!(s, next, "child: sequence number");
                assert!(
                    rec == record(s),
                    "child: record {s} changed under the reader"
                );
                next += 1;
            }
            Err(kekbit::journal::JournalError::Pruned { .. }) => break,
            other => panic!("child: at {next}: {other:?}"),
        }
    }
    journal_common::tell_parent(&format!("verified {next}"));
}

#[test]
fn a_reader_in_another_process_keeps_its_segment_from_being_recycled() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), 4);
    let (held, neighbour) = two_oldest(&journal);
    let mut child = journal_common::spawn_child(CHILD, dir.path(), &[]);
    assert_eq!(
        child.expect_line(Duration::from_secs(30), "\"holding\""),
        "holding"
    );
    prune_and_check(&journal, held, neighbour);
    std::fs::write(dir.path().join("done"), b"").unwrap();
    let line = child.line(Duration::from_secs(30));
    let status = child.wait(Duration::from_secs(10));
    let stderr = child.stderr_text();
    assert!(
        line.as_deref().is_some_and(|l| l.starts_with("verified")),
        "child said {line:?}; its stderr:\n{stderr}"
    );
    assert!(status.is_some_and(|s| s.success()), "{stderr}");
}

/// One step of [`append_prune_reopen_with_recycling_reads_back_exactly_what_is_kept`].
#[derive(Debug, Clone)]
enum Step {
    Append(u16),
    Sync,
    /// Prune all but the last `n` records.
    Prune(u8),
    Reopen,
}

impl quickcheck::Arbitrary for Step {
    fn arbitrary(g: &mut quickcheck::Gen) -> Step {
        match u8::arbitrary(g) % 16 {
            0..=9 => Step::Append(u16::arbitrary(g) % 1500),
            10 | 11 => Step::Sync,
            12..=14 => Step::Prune(u8::arbitrary(g) % 8),
            _ => Step::Reopen,
        }
    }
}

/// The payload of record `seq` in the property: `len` bytes that name `seq`.
fn sized_record(seq: u64, len: u16) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (seq as u16 ^ i) as u8).collect();
    let head = bytes.len().min(8);
    bytes[..head].copy_from_slice(&seq.to_le_bytes()[..head]);
    bytes
}

fn replay_matches(steps: Vec<Step>) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Journal::options()
            .segment_capacity(4096)
            .max_record_len(1500)
            .resync_marks(9)
            .durability(Durability::Never)
            .recycle_segments(2)
            .open(dir.path())
            .unwrap()
    };
    let mut journal = open();
    let mut kept: std::collections::VecDeque<(u64, Vec<u8>)> = Default::default();
    for step in steps {
        match step {
            Step::Append(len) => {
                let seq = journal.next_sequence();
                let rec = sized_record(seq, len);
                assert_eq!(journal.append(&rec).unwrap(), seq);
                kept.push_back((seq, rec));
            }
            Step::Sync => {
                journal.sync().unwrap();
            }
            Step::Prune(n) => {
                let before = journal.next_sequence().saturating_sub(u64::from(n));
                journal.prune_before(before).unwrap();
                let first = journal.first_sequence().unwrap();
                while kept.front().is_some_and(|(seq, _)| *seq < first) {
                    kept.pop_front();
                }
            }
            Step::Reopen => {
                drop(journal);
                journal = open();
            }
        }
        let first = journal.first_sequence().unwrap();
        if kept.front().is_some_and(|(seq, _)| *seq != first) {
            return false;
        }
        let got = read_all(dir.path(), first);
        if !got.iter().eq(kept.iter()) {
            return false;
        }
    }
    drop(journal);
    verify(dir.path(), &mut |_, _| {}).unwrap().status() == VerifyStatus::Clean
}

#[test]
fn append_prune_reopen_with_recycling_reads_back_exactly_what_is_kept() {
    quickcheck::QuickCheck::new()
        .tests(20)
        .quickcheck(replay_matches as fn(Vec<Step>) -> bool);
}

#[test]
fn a_record_handle_keeps_its_segment_from_being_recycled() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path(), 4);
    let (held, neighbour) = two_oldest(&journal);
    // A handle on record 0 outlives its reader: the mapping it keeps holds the readers' lock
    // (a mapping keeps the open file description it was made from, and its lock, alive).
    let (seq, handle) = {
        let mut reader = JournalReader::open(dir.path(), 0).unwrap();
        reader.next_record().unwrap().unwrap()
    };
    assert_eq!(seq, 0);
    prune_and_check(&journal, held, neighbour);
    assert_eq!(
        &handle[..],
        &record(0)[..],
        "the record changed under its handle"
    );
    // Once the handle is gone nothing maps the file; it was removed, never recycled later.
    drop(handle);
}
