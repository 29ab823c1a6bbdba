//! Recovery of a crashed writer's tail follows the recovery mode and the durable watermark.
//! A child process (this test binary re-run) appends records to a journal of 4 KiB segments
//! and is killed (SIGKILL) while idle, leaving its last segment unsealed and the next one
//! prepared; copies of that journal are then damaged with plain file writes and reopened:
//! - garbage (a fake record header and bytes, 40 in all) after the last record, above the
//!   durable watermark, is a torn tail: `TolerateTornTail` drops it, reports
//!   `torn_bytes_dropped == 40` and the sealed segment, keeps every record and appends on;
//!   `AbsoluteConsistency` refuses with `TornTail` (segment, offset, byte count) and leaves
//!   every file of the directory as it was; without garbage it opens and seals the tail;
//! - after a run with `Durability::EveryRecord`, a flipped byte inside an early record of the
//!   tail segment lies below the durable watermark: `TolerateTornTail` and
//!   `AbsoluteConsistency` refuse with `Corrupt` naming that record's position, while
//!   `SkipCorrupt` drops the tail from that record on and reports it in `damage_dropped`
//!   (segment, offset, length, first sequence number lost), not as torn bytes;
//! - after a run that synced only part of the tail segment, the same damage in a record
//!   above the watermark is a torn tail: `TolerateTornTail` drops that record and those after
//!   it, while damage in a record below the watermark is still `Corrupt`.

#[path = "common/journal.rs"]
mod journal_common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use journal_common::{
    assert_sequence, child_dir, child_param, copy_dir, data_area, linked_segments, nonzero_extent,
    patch, read_journal, record, segments, snapshot, spawn_child, tell_parent, walk_segment, End,
    Walk, HEADER_LEN,
};
use kekbit::core::ReadError;
use kekbit::journal::{Durability, Journal, JournalError, JournalOptions, RecoveryMode};

const CHILD: &str = "child_appends_to_the_journal_then_waits";
const DURABILITY: &str = "KEKBIT_TEST_DURABILITY";
const COUNT: &str = "KEKBIT_TEST_COUNT";
const SYNC_AT: &str = "KEKBIT_TEST_SYNC_AT";
/// The garbage written after the last record: a record header claiming 24 bytes with a
/// wrong checksum, 24 bytes, and one more non-zero word.
const GARBAGE_LEN: u64 = 40;

fn options(durability: Durability, mode: RecoveryMode) -> JournalOptions {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .durability(durability)
        .recovery(mode)
}

/// Child entry point; does nothing in an ordinary test run. Appends `COUNT` records (syncing
/// once after `SYNC_AT` of them, if given), reports, and waits to be killed.
#[test]
fn child_appends_to_the_journal_then_waits() {
    let Some(dir) = child_dir() else { return };
    let durability = match child_param(DURABILITY).as_str() {
        "every-record" => Durability::EveryRecord,
        _ => Durability::Never,
    };
    let count: u64 = child_param(COUNT).parse().unwrap();
    let sync_at: Option<u64> = std::env::var(SYNC_AT).ok().map(|v| v.parse().unwrap());
    let journal = options(durability, RecoveryMode::TolerateTornTail)
        .open(&dir)
        .unwrap();
    for seq in 0..count {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
        if sync_at == Some(seq + 1) {
            journal.sync().unwrap();
        }
    }
    // An idle writer has its next segment prepared: wait for it, so that every kill leaves
    // the same files.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = segments(&dir);
        let last = all
            .iter()
            .filter(|s| !s.pending)
            .map(|s| s.channel_id)
            .max();
        if all
            .iter()
            .any(|s| s.pending && last == Some(s.channel_id - 1))
        {
            break;
        }
        assert!(Instant::now() < deadline, "child: no segment was prepared");
        std::thread::sleep(Duration::from_millis(2));
    }
    tell_parent(&format!("done {count}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("child: never killed");
}

/// A journal in `dir` left by a child killed after appending `count` records; returns the
/// walk of its unsealed tail segment.
fn crashed_journal(dir: &Path, durability: &str, count: u64, sync_at: Option<u64>) -> Walk {
    let mut params = vec![
        (DURABILITY, durability.to_string()),
        (COUNT, count.to_string()),
    ];
    if let Some(n) = sync_at {
        params.push((SYNC_AT, n.to_string()));
    }
    let mut child = spawn_child(CHILD, dir, &params);
    assert_eq!(
        child.expect_line(Duration::from_secs(20), "\"done\""),
        format!("done {count}")
    );
    child.kill();
    let tail = walk_segment(&linked_segments(dir).last().unwrap().path);
    let pending: Vec<u64> = segments(dir)
        .iter()
        .filter(|s| s.pending)
        .map(|s| s.channel_id)
        .collect();
    assert_eq!(
        pending,
        [tail.header.channel_id + 1],
        "the prepared segment"
    );
    assert_eq!(
        tail.stop,
        End::Open,
        "the killed writer's tail is not sealed"
    );
    assert_eq!(
        tail.header.base_sequence + tail.records.len() as u64,
        count,
        "records in the tail"
    );
    tail
}

/// A copy of `from` in a new directory `name` under `root`.
fn copy_of(from: &Path, root: &Path, name: &str) -> PathBuf {
    let dir = root.join(name);
    copy_dir(from, &dir);
    dir
}

/// Flips a bit inside the payload of the tail's record `index` in the copy at `dir`;
/// returns the record's position.
fn flip_record(dir: &Path, tail: &Walk, index: usize) -> u64 {
    let (position, _) = tail.records[index];
    let path = dir.join(tail.header.path.file_name().unwrap());
    let at = HEADER_LEN + position + 8 + 3;
    let mut byte = [0u8; 1];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&path).unwrap(), &mut byte, at)
        .unwrap();
    patch(&path, at, &[byte[0] ^ 0x10]);
    position
}

/// Asserts that opening `dir` in `mode` fails with `Corrupt` at `position`.
fn assert_corrupt(dir: &Path, mode: RecoveryMode, position: u64) {
    match options(Durability::Never, mode).open(dir) {
        Err(JournalError::Corrupt {
            source: ReadError::ChecksumMismatch {
                position: found, ..
            },
            ..
        }) => assert_eq!(found, position, "{mode:?}: position of the damage"),
        Err(e) => panic!("{mode:?}: expected Corrupt at {position}, got {e}"),
        Ok(journal) => panic!(
            "{mode:?}: opened over damage below the durable watermark: {:?}",
            journal.open_report()
        ),
    }
}

/// Opens `dir` with `mode`, expecting a recovered tail of `records` records followed by
/// `torn` dropped bytes never acknowledged and, if `damaged`, `damaged` dropped bytes of
/// acknowledged records; checks the records, appends two and reads across the seal.
fn assert_recovers(
    dir: &Path,
    mode: RecoveryMode,
    tail: &Walk,
    records: u64,
    torn: u64,
    damaged: u64,
) {
    let pending = segments(dir).iter().filter(|s| s.pending).count();
    let journal = options(Durability::Never, mode).open(dir).unwrap();
    let report = journal.open_report().clone();
    assert_eq!(report.next_sequence, records, "{mode:?}: {report:?}");
    assert_eq!(report.torn_bytes_dropped, torn, "{mode:?}: {report:?}");
    assert_eq!(
        report.sealed_segment,
        Some(tail.header.channel_id),
        "{mode:?}"
    );
    assert_eq!(report.pending_removed, pending, "{mode:?}: {report:?}");
    assert_eq!(report.orphans_removed, 0, "{mode:?}: {report:?}");
    if damaged == 0 {
        assert!(report.damage_dropped.is_empty(), "{mode:?}: {report:?}");
    } else {
        let [range] = &report.damage_dropped[..] else {
            panic!("{mode:?}: one dropped range expected: {report:?}");
        };
        let end = tail.records[(records - tail.header.base_sequence) as usize].0;
        assert_eq!(range.segment, tail.header.channel_id, "{mode:?}: {range:?}");
        assert_eq!(range.path, dir.join(tail.header.path.file_name().unwrap()));
        assert_eq!(
            (range.offset, range.length, range.first_sequence_lost),
            (end, damaged, records),
            "{mode:?}: {range:?}"
        );
    }
    assert_sequence(&read_journal(dir, 0), 0, records, record);
    let sealed = walk_segment(&dir.join(tail.header.path.file_name().unwrap()));
    assert_eq!(
        sealed.seal_names(),
        Some(records),
        "{mode:?}: the recovery seal"
    );
    for seq in records..records + 2 {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq, "{mode:?}");
    }
    assert_sequence(&read_journal(dir, 0), 0, records + 2, record);
}

// Regression: an open refused under AbsoluteConsistency had already deleted the segment
// prepared ahead; the journal must be left as it is for inspection.
#[test]
fn a_torn_journal_tail_is_dropped_or_refused_as_the_recovery_mode_says() {
    let root = tempfile::tempdir().unwrap();
    let crashed = root.path().join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    let tail = crashed_journal(&crashed, "never", 200, None);
    assert!(
        tail.header.base_sequence > 0,
        "the tail is not the first segment"
    );
    let end = tail.end;
    assert!(
        end + GARBAGE_LEN <= tail.header.capacity - 64,
        "no room for the garbage"
    );
    let clean = copy_of(&crashed, root.path(), "clean");
    let name = tail.header.path.file_name().unwrap();
    let mut garbage = Vec::new();
    garbage.extend_from_slice(&((1u32 << 28) | 24).to_le_bytes());
    garbage.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    garbage.extend_from_slice(&[0xA5; 24]);
    garbage.extend_from_slice(b"GARBAGE!");
    assert_eq!(garbage.len() as u64, GARBAGE_LEN);
    patch(&crashed.join(name), HEADER_LEN + end, &garbage);
    assert_eq!(
        nonzero_extent(&data_area(&crashed.join(name)), end),
        end + GARBAGE_LEN
    );
    let absolute = copy_of(&crashed, root.path(), "absolute");
    let tolerate = copy_of(&crashed, root.path(), "tolerate");

    // AbsoluteConsistency: refused, and nothing in the directory changes.
    let before = snapshot(&absolute);
    let refused = options(Durability::Never, RecoveryMode::AbsoluteConsistency).open(&absolute);
    match refused {
        Err(JournalError::TornTail {
            segment,
            position,
            bytes,
            mode,
            ..
        }) => {
            assert_eq!(segment, absolute.join(name));
            assert_eq!((position, bytes), (end, GARBAGE_LEN));
            assert_eq!(mode, "AbsoluteConsistency");
        }
        other => panic!("AbsoluteConsistency over a torn tail: {other:?}"),
    }
    let after = snapshot(&absolute);
    let changed: BTreeSet<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .collect();
    assert!(
        changed.is_empty(),
        "a refused AbsoluteConsistency open changed {changed:?} (before: {:?}, after: {:?})",
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );

    // TolerateTornTail: the garbage goes, every record stays.
    assert_recovers(
        &tolerate,
        RecoveryMode::TolerateTornTail,
        &tail,
        200,
        GARBAGE_LEN,
        0,
    );

    // Without garbage, even AbsoluteConsistency recovers the crashed tail.
    assert_recovers(&clean, RecoveryMode::AbsoluteConsistency, &tail, 200, 0, 0);
}

#[test]
fn journal_damage_below_the_durable_watermark_is_corruption() {
    let root = tempfile::tempdir().unwrap();
    let crashed = root.path().join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    let tail = crashed_journal(&crashed, "every-record", 200, None);
    // Every record was acknowledged durable: the watermark covers the whole tail.
    assert_eq!(tail.header.durable_watermark, tail.end);
    assert!(tail.records.len() >= 4);

    let tolerate = copy_of(&crashed, root.path(), "tolerate");
    let position = flip_record(&tolerate, &tail, 1);
    assert_corrupt(&tolerate, RecoveryMode::TolerateTornTail, position);
    assert_corrupt(&tolerate, RecoveryMode::AbsoluteConsistency, position);

    // SkipCorrupt drops the damaged record and everything after it, all acknowledged, and
    // reports them as dropped damage, not as a torn tail.
    let skip = copy_of(&crashed, root.path(), "skip");
    let position = flip_record(&skip, &tail, 1);
    let kept = tail.header.base_sequence + 1;
    let damaged = tail.end - position;
    assert_recovers(&skip, RecoveryMode::SkipCorrupt, &tail, kept, 0, damaged);
}

#[test]
fn journal_damage_above_the_durable_watermark_is_a_torn_tail() {
    let root = tempfile::tempdir().unwrap();
    let crashed = root.path().join("crashed");
    std::fs::create_dir(&crashed).unwrap();
    // With these sizes the tail segment holds records 182 to 199; the sync after 190 leaves
    // the last nine of them above the watermark.
    let tail = crashed_journal(&crashed, "never", 200, Some(191));
    let watermark = tail.header.durable_watermark;
    let durable = tail
        .records
        .iter()
        .take_while(|(position, bytes)| {
            position + journal_common::frame_len(bytes.len()) <= watermark
        })
        .count();
    assert!(
        durable >= 2 && tail.records.len() - durable >= 2,
        "setup: {durable} of the tail's {} records are durable (watermark {watermark})",
        tail.records.len()
    );
    assert_eq!(tail.header.base_sequence + durable as u64, 191);

    // Above the watermark: a torn tail, dropped from the damaged record on.
    let above = copy_of(&crashed, root.path(), "above");
    let position = flip_record(&above, &tail, durable + 1);
    let kept = tail.header.base_sequence + durable as u64 + 1;
    assert_recovers(
        &above,
        RecoveryMode::TolerateTornTail,
        &tail,
        kept,
        tail.end - position,
        0,
    );

    // Below it, in the same run: corruption.
    let below = copy_of(&crashed, root.path(), "below");
    let position = flip_record(&below, &tail, durable - 1);
    assert_corrupt(&below, RecoveryMode::TolerateTornTail, position);
}
