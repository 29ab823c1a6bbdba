//! Single-bit flips in a recycled segment (docs/FORMAT.md, "Recycled segments"; the "every
//! single-bit flip" row of RELIABILITY.md, for recycled files). A journal of 8 KiB segments
//! is written, synced (or, in the second test, not: `Durability::Never`), pruned so that its
//! pruned segments are recycled, written on through them and closed; the first recycled
//! segment, sealed and synced, holds the journal's records up to its seal and bytes of its
//! earlier life after it. Each case flips one bit of
//! its data area in a copy of the journal and checks:
//!
//! - in the bytes of a record, a mark or the seal (all below the durable watermark): a reader
//!   from the journal's first record returns the original records, in order, up to the
//!   damage and then reports it (an error, never a wrong or stale record, never a quiet end);
//!   `verify` reports the journal as corrupt;
//! - in the earlier life's bytes past the seal, or in a record's padding: every record is
//!   returned and `verify` finds the journal clean: a stale byte is never data, never damage.
//!
//! By default a sample runs (every fifth header bit of every fifth frame and of the seal,
//! every 61st bit past the seal, every 401st elsewhere); `KEKBIT_ALL_FLIPS=1` runs every bit.

use std::path::Path;

use kekbit::core::ShmReader;
use kekbit::journal::{stats, verify, Durability, Journal, JournalReader, VerifyStatus};

const CAPACITY: u64 = 8 << 10;
const HEADER_LEN: u64 = 128;

/// Records before this are written before the prune, in segments that are recycled: short
/// ones, so that those segments are full of records up to their seal; the later ones are up
/// to 1,000 bytes, so that the recycled segments are sealed well before their end, where
/// bytes of their earlier life remain.
const SPLIT: u64 = 1000;

fn record(seq: u64) -> Vec<u8> {
    let len = (seq * 89 % if seq < SPLIT { 100 } else { 1000 }) as usize;
    (0..len)
        .map(|i| (seq as usize * 7 + i * 13) as u8)
        .collect()
}

fn segment_paths(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kekbit"))
        .collect();
    paths.sort();
    paths
}

/// Writes the journal, syncing it before the prune if `synced` (otherwise the pruned
/// segments are recycled with seals that were never durable); returns the path of its first
/// recycled segment and the number of records appended.
fn build(dir: &Path, synced: bool) -> (std::path::PathBuf, u64) {
    let journal = Journal::options()
        .segment_capacity(CAPACITY)
        .max_record_len(1024)
        .resync_marks(9)
        .durability(Durability::Never)
        .recycle_segments(4)
        .open(dir)
        .unwrap();
    let mut seq = 0;
    while seq < SPLIT {
        journal.append(&record(seq)).unwrap();
        seq += 1;
    }
    if synced {
        journal.sync().unwrap();
    }
    journal.prune_before(journal.next_sequence() - 1).unwrap();
    // Through the recycled segments, then sealed by the next rollover.
    let mut rollovers = 0;
    let mut last = segment_paths(dir).last().cloned();
    while rollovers < 5 {
        journal.append(&record(seq)).unwrap();
        seq += 1;
        let now = segment_paths(dir).last().cloned();
        if now != last {
            rollovers += 1;
            last = now;
        }
    }
    journal.sync().unwrap();
    drop(journal);
    let recycled = segment_paths(dir)
        .into_iter()
        .find(|p| ShmReader::open(p).unwrap().header().is_recycled())
        .expect("a recycled segment");
    (recycled, seq)
}

/// Data-area ranges of the frames (record, mark and seal headers with their payloads) of the
/// sealed segment in `data`, and the end of its seal.
fn frames(data: &[u8]) -> (Vec<(u64, u64)>, u64) {
    let mut covered = Vec::new();
    let mut at = 0u64;
    loop {
        let word = u64::from_le_bytes(data[at as usize..at as usize + 8].try_into().unwrap());
        let meta = word as u32;
        let (kind, len) = (meta >> 28, u64::from(meta & 0x0FFF_FFFF));
        assert!(matches!(kind, 1..=3), "pristine frame at {at}: {word:#x}");
        covered.push((at, at + 8 + len));
        at += (8 + len).next_multiple_of(8);
        if kind == 2 {
            return (covered, at);
        }
    }
}

/// What reading the whole journal in `dir` from `first` gives: the records (checked against
/// the originals as they come) and whether it ended with an error.
fn read_back(dir: &Path, first: u64) -> (u64, bool) {
    let mut reader = match JournalReader::open(dir, first) {
        Ok(reader) => reader,
        Err(_) => return (0, true),
    };
    let mut count = 0;
    loop {
        match reader.try_next() {
            Ok(Some((seq, rec))) => {
                assert_eq!(seq, first + count, "a record out of order");
                assert!(rec == record(seq), "a wrong (stale?) record {seq}");
                count += 1;
            }
            Ok(None) => return (count, false),
            Err(_) => return (count, true),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn flips_in_a_recycled_segment_are_damage_below_its_seal_and_harmless_past_it() {
    flips_in_a_recycled_segment(true);
}

/// The same, in a journal under `Durability::Never` that never synced before the prune: the
/// recycled files' earlier life was never durable.
#[test]
fn flips_in_a_segment_recycled_without_a_durable_seal() {
    flips_in_a_recycled_segment(false);
}

fn flips_in_a_recycled_segment(synced: bool) {
    let all = std::env::var_os("KEKBIT_ALL_FLIPS").is_some();
    let pristine = tempfile::tempdir().unwrap();
    let (recycled, appended) = build(pristine.path(), synced);
    let name = recycled.file_name().unwrap().to_owned();
    let file = std::fs::read(&recycled).unwrap();
    let data = &file[HEADER_LEN as usize..];
    let (covered, seal_end) = frames(data);
    let first = stats(pristine.path()).unwrap().first_sequence.unwrap();
    let total = appended - first;
    assert_eq!(read_back(pristine.path(), first), (total, false));
    assert_eq!(
        verify(pristine.path(), &mut |_, _| {}).unwrap().status(),
        VerifyStatus::Clean
    );
    // The earlier life is there past the seal: the case where stale bytes matter.
    assert!(data[seal_end as usize..].iter().any(|&b| b != 0));
    let in_frame = |byte: u64| covered.iter().any(|&(s, e)| (s..e).contains(&byte));
    // By default: every fifth header bit of every 5th frame (and of the seal), every 61st
    // bit past the seal, every 401st elsewhere.
    let sampled_header = |byte: u64| {
        let last = covered.len() - 1;
        covered
            .iter()
            .enumerate()
            .any(|(i, &(s, _))| (i % 5 == 0 || i == last) && (s..s + 8).contains(&byte))
    };
    let sampled = |bit: u64| {
        let byte = bit / 8;
        (sampled_header(byte) && bit.is_multiple_of(5))
            || bit.is_multiple_of(if byte >= seal_end { 61 } else { 401 })
    };
    let (mut damage, mut harmless) = (0, 0);
    for bit in 0..CAPACITY * 8 {
        let byte = bit / 8;
        if !(all || sampled(bit)) {
            continue;
        }
        let case = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), case.path());
        let target = case.path().join(&name);
        let mut bytes = std::fs::read(&target).unwrap();
        bytes[(HEADER_LEN + byte) as usize] ^= 1 << (bit % 8);
        std::fs::write(&target, &bytes).unwrap();
        let (read, failed) = read_back(case.path(), first);
        let report = verify(case.path(), &mut |_, _| {}).unwrap();
        if in_frame(byte) {
            damage += 1;
            assert!(failed && read < total, "bit {bit}: damage not reported");
            assert_eq!(
                report.status(),
                VerifyStatus::Corrupt,
                "bit {bit}: {report:?}"
            );
        } else {
            harmless += 1;
            assert_eq!(
                (read, failed),
                (total, false),
                "bit {bit}: a stale flip mattered"
            );
            assert_eq!(
                report.status(),
                VerifyStatus::Clean,
                "bit {bit}: {report:?}"
            );
        }
    }
    assert!(damage > 0 && harmless > 0);
    eprintln!("recycled-segment flips: {damage} damaging, {harmless} harmless, all as expected");
}
