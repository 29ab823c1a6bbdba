//! A reader that starts in the middle of a segment never returns a record under a wrong
//! sequence number, whatever single record header was damaged, and a `SkipCorrupt` replay
//! loses at most the records of about one resynchronisation block to it, reporting exactly
//! which. The journal has 12-byte records (24-byte frames) in 4 KiB segments with 512-byte
//! mark blocks; segment 1 is sealed and segment 2 is live (its writer holds it, every record
//! synced). Each case damages one record header in place, through the file (the writer's
//! mapping sees it), reads from every sequence number of the journal, and restores it.

#[path = "common/journal.rs"]
mod journal_common;

use std::collections::BTreeSet;
use std::path::Path;

use journal_common::{patch, segment_file, walk_segment, HEADER_LEN};
use kekbit::journal::{verify, Journal, JournalError, JournalReader, RecoveryMode};
use kekbit::replay::{replay, CorruptRange, Decision, Replay};

const SHIFT: u8 = 9;
const RECORDS: u64 = 300;

fn rec(seq: u64) -> Vec<u8> {
    format!("r{seq:011}").into_bytes()
}

fn build(dir: &Path) -> Journal {
    let journal = Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .resync_marks(SHIFT)
        .open(dir)
        .unwrap();
    for seq in 0..RECORDS {
        assert_eq!(journal.append(&rec(seq)).unwrap(), seq);
    }
    journal
}

/// Every record returned by a reader from `from` is the one appended at its sequence number,
/// in order; returns how many were read before the reader stopped (end or error).
fn read_from(dir: &Path, from: u64, context: &str) -> (u64, Option<JournalError>) {
    let mut reader = match JournalReader::open(dir, from) {
        Ok(reader) => reader,
        Err(e) => return (0, Some(e)),
    };
    let mut expected = from;
    loop {
        match reader.try_next() {
            Ok(Some((seq, payload))) => {
                assert_eq!(
                    seq, expected,
                    "{context}: from {from}, sequence out of order"
                );
                assert_eq!(
                    payload,
                    rec(seq),
                    "{context}: from {from}, record {seq} is wrong"
                );
                expected += 1;
            }
            Ok(None) => return (expected - from, None),
            Err(e) => return (expected - from, Some(e)),
        }
    }
}

/// A replay target that checks every record and collects the damage reported.
struct Check {
    seen: Vec<u64>,
    ranges: Vec<CorruptRange>,
}

impl Replay for Check {
    type Error = std::convert::Infallible;

    fn record(&mut self, seq: u64, record: &[u8]) -> Result<(), Self::Error> {
        assert_eq!(record, rec(seq), "replayed record {seq} is wrong");
        self.seen.push(seq);
        Ok(())
    }

    fn damaged(&mut self, range: &CorruptRange) -> Decision {
        self.ranges.push(range.clone());
        Decision::Skip
    }
}

/// Replays from `from` with `SkipCorrupt` and checks that the records missing are exactly
/// those the reported ranges name. Returns how many were lost.
fn replay_skipping(dir: &Path, from: u64, context: &str) -> u64 {
    let mut check = Check {
        seen: Vec::new(),
        ranges: Vec::new(),
    };
    replay(dir, from, RecoveryMode::SkipCorrupt, &mut check).unwrap();
    let seen: BTreeSet<u64> = check.seen.iter().copied().collect();
    assert_eq!(seen.len(), check.seen.len(), "{context}: a record twice");
    let mut reported = BTreeSet::new();
    for (i, range) in check.ranges.iter().enumerate() {
        // Uncounted only when no mark, seal or segment follows the damage: then the rest of
        // the journal is lost, and nothing can be reported after it.
        let end = match range.records_lost {
            Some(n) => range.first_sequence_lost + n,
            None => {
                assert_eq!(
                    i + 1,
                    check.ranges.len(),
                    "{context}: uncounted loss before more"
                );
                assert_eq!(
                    range.segment, 2,
                    "{context}: uncounted loss in a sealed segment"
                );
                RECORDS
            }
        };
        reported.extend(range.first_sequence_lost..end);
    }
    let missing: BTreeSet<u64> = (from..RECORDS).filter(|s| !seen.contains(s)).collect();
    assert_eq!(
        missing, reported,
        "{context}: from {from}, lost vs reported"
    );
    missing.len() as u64
}

/// Where readers start for a case damaging record `seq` of a segment holding `segment`:
/// with `every` = 1, every record position of that segment and the journal's start; else
/// around the damage, at the journal's and the segment's start, and every `every`-th one.
fn starts(seq: u64, segment: std::ops::Range<u64>, every: u64) -> Vec<u64> {
    (0..=RECORDS)
        .filter(|&f| {
            if every == 1 {
                f == 0 || segment.contains(&f)
            } else {
                f % every == 0 || f.abs_diff(seq) <= 1 || f == 0 || f == segment.start
            }
        })
        .collect()
}

/// The sequence numbers of segment `id`'s records.
fn segment_range(headers: &[(u64, u64, u64)], id: u64) -> std::ops::Range<u64> {
    let seqs = headers.iter().filter(|h| h.0 == id).map(|h| h.2);
    seqs.clone().min().unwrap()..seqs.max().unwrap() + 1
}

/// Record header positions (segment, data-area offset, sequence number) of the journal.
fn headers(dir: &Path) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for id in [1, 2] {
        let walk = walk_segment(&segment_file(dir, id));
        let base = walk.header.base_sequence;
        for (i, (position, _)) in walk.records.iter().enumerate() {
            out.push((id, *position, base + i as u64));
        }
    }
    assert_eq!(out.len() as u64, RECORDS);
    out
}

/// Applies `damage` to the 8 header bytes of the record at `position` of segment `id`,
/// runs `check`, and restores the bytes.
fn with_damage(
    dir: &Path,
    id: u64,
    position: u64,
    damage: impl Fn(&mut [u8; 8]),
    check: impl FnOnce(),
) {
    let path = segment_file(dir, id);
    let offset = HEADER_LEN + position;
    let data = std::fs::read(&path).unwrap();
    let original: [u8; 8] = data[offset as usize..offset as usize + 8]
        .try_into()
        .unwrap();
    let mut damaged = original;
    damage(&mut damaged);
    patch(&path, offset, &damaged);
    check();
    patch(&path, offset, &original);
}

#[test]
fn the_journal_has_marks_in_both_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let _journal = build(tmp.path());
    for id in [1, 2] {
        let walk = walk_segment(&segment_file(tmp.path(), id));
        assert_eq!(walk.header.mark_shift, u32::from(SHIFT));
        assert!(
            walk.marks.len() >= 5,
            "segment {id}: {} marks",
            walk.marks.len()
        );
    }
}

/// `verify` reports the damage in the sealed segment 1 at record `seq`, with exactly the
/// `lost` records a replay found missing, and counts the rest of the journal.
fn check_verify(dir: &Path, seq: u64, lost: u64, context: &str) {
    let report = verify(dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.problems.len(), 1, "{context}: {report:?}");
    let problem = &report.problems[0];
    assert_eq!(
        problem.first_sequence_lost,
        Some(seq),
        "{context}: {problem:?}"
    );
    assert_eq!(problem.records_lost, Some(lost), "{context}: {problem:?}");
    assert_eq!(report.records, RECORDS - lost, "{context}");
}

// Regression: issue 11 item 1: a record's length raised by one frame (24 bytes) still lands
// on a record boundary; `skip_unverified` stepped over it unchecked and every later record
// came back under the previous one's sequence number, in sealed and in live segments.
#[test]
fn a_length_raised_by_one_frame_never_shifts_sequence_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _journal = build(dir);
    let mut worst = 0;
    let all = headers(dir);
    for &(id, position, seq) in &all {
        let segment = segment_range(&all, id);
        let context = format!("record {seq} (segment {id}, offset {position}) one frame longer");
        with_damage(
            dir,
            id,
            position,
            |h| {
                let meta = u32::from_le_bytes(h[..4].try_into().unwrap()) + 24;
                h[..4].copy_from_slice(&meta.to_le_bytes());
            },
            || {
                for from in starts(seq, segment, 10) {
                    let (read, error) = read_from(dir, from, &context);
                    if from <= seq {
                        assert_eq!(read, seq - from, "{context}: from {from}");
                        assert!(
                            error.is_some(),
                            "{context}: from {from}: damage not reported"
                        );
                    }
                    worst = worst.max(replay_skipping(dir, from, &context));
                }
                if id == 1 {
                    check_verify(dir, seq, replay_skipping(dir, 0, &context), &context);
                }
            },
        );
    }
    eprintln!("seek-after-damage (lengths): at most {worst} records lost per damaged length");
    // One damaged record costs the records up to the next mark: at most one block's.
    assert!(
        worst <= 512 / 24 + 1,
        "{worst} records lost to one damaged length"
    );
}

/// Every single-bit flip of the record headers of both segments (`every` = 1), or of every
/// `every`-th bit: no wrong record from any starting point, and losses reported exactly.
fn flip_headers(every: usize) -> (u64, u64) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let _journal = build(dir);
    let (mut cases, mut worst) = (0u64, 0u64);
    let all = headers(dir);
    for (n, &(id, position, seq)) in all.iter().enumerate() {
        for bit in (0..64).filter(|b| (b + n) % every == 0) {
            let every = every as u64;
            let context = format!("record {seq} (segment {id}, offset {position}) bit {bit}");
            with_damage(
                dir,
                id,
                position,
                |h| h[bit / 8] ^= 1 << (bit % 8),
                || {
                    for from in starts(seq, segment_range(&all, id), every) {
                        read_from(dir, from, &context);
                        worst = worst.max(replay_skipping(dir, from, &context));
                        cases += 1;
                    }
                },
            );
        }
    }
    (cases, worst)
}

// Regression: issue 11 item 12: one damaged record lost the rest of its 64 MiB segment,
// because nothing after an untrusted length could be found again; with resynchronisation
// marks a replay resumes at the next mark (at most 22 records lost here, not up to 160).
#[test]
fn flipped_header_bits_never_shift_sequence_numbers_sampled() {
    let (cases, worst) = flip_headers(37);
    eprintln!("seek-after-damage (sampled): {cases} seeks, at most {worst} records lost per flip");
    assert!(cases > 1_000, "{cases} cases");
    assert!(
        worst <= 512 / 24 + 1,
        "{worst} records lost to one flipped bit"
    );
}

/// The full run: every bit of every record header of both segments, and for each, seeks
/// from every record position of the damaged segment (and from the journal's start).
/// `cargo test --release --all-features --test journal_seek_after_damage -- --ignored`
#[test]
#[ignore = "exhaustive: about 2.9 million seeks and replays; run with --ignored in release mode"]
fn flipped_header_bits_never_shift_sequence_numbers_exhaustive() {
    let (cases, worst) = flip_headers(1);
    eprintln!("seek-after-damage: {cases} seeks, at most {worst} records lost per flip");
    assert!(
        worst <= 512 / 24 + 1,
        "{worst} records lost to one flipped bit"
    );
}
