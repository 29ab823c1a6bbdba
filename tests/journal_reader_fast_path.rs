//! `JournalReader::try_next` reads a data record waiting at its position at once, before
//! looking for a seal, an end of data or a lost seal; everything else goes through those
//! checks as before. These tests would fail if that fast path skipped one of them:
//! - a reader that follows the writer one record at a time, across dozens of rollovers,
//!   returns each record as soon as it is appended and nothing before: it sees the end of
//!   the data, and crosses (and checks) every seal into the next segment;
//! - a durable-only reader returns no record before the writer has synced it;
//! - a record damaged in the middle of a segment is reported, with its segment file and
//!   position, after every record before it, and again at the next call; the iterator yields
//!   the records, then the error once;
//! - a zeroed seal, or a zeroed record header in a sealed segment, ends the readable records:
//!   the reader reports `Unsealed` there (the next segment holds records) instead of going on;
//! - a reader opened in the middle of the journal starts at the requested record.
//!
//! The checksums the writer stored are checked against docs/FORMAT.md with a bitwise CRC32
//! independent of the library (`walk_segment`), so a faster checksum in the library must
//! still compute the format's values.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;

use journal_common::{
    assert_sequence, linked_segments, open_small, patch, read_available, record, segment_file,
    segment_ids, walk_segment, End, Walk, HEADER_LEN,
};
use kekbit::core::ReadError;
use kekbit::journal::{JournalError, JournalReader};

/// A closed journal of `count` standard records in 4 KiB segments; every segment but the
/// last is sealed, and every record verifies against the format's checksum.
fn build(dir: &Path, count: u64) -> Vec<Walk> {
    let journal = open_small(dir);
    for seq in 0..count {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
    }
    drop(journal);
    let walks: Vec<Walk> = segment_ids(dir)
        .into_iter()
        .map(|id| walk_segment(&segment_file(dir, id)))
        .filter(|walk| !walk.records.is_empty())
        .collect();
    let total: usize = walks.iter().map(|walk| walk.records.len()).sum();
    assert_eq!(
        total as u64, count,
        "records that verify with the format's checksum"
    );
    assert!(
        walks.len() >= 4,
        "only {} segments with records",
        walks.len()
    );
    for walk in &walks[..walks.len() - 1] {
        assert!(matches!(walk.stop, End::Sealed { .. }), "{:?}", walk.stop);
    }
    walks
}

/// The sequence number of the first record of each walked segment.
fn bases(walks: &[Walk]) -> Vec<u64> {
    let mut next = 0;
    walks
        .iter()
        .map(|walk| {
            let base = next;
            next += walk.records.len() as u64;
            base
        })
        .collect()
}

#[test]
fn a_reader_following_the_writer_sees_each_record_when_it_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_small(dir.path());
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    assert_eq!(reader.try_next().unwrap(), None);
    for seq in 0..3_000 {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
        let (got, bytes) = reader
            .try_next()
            .unwrap()
            .unwrap_or_else(|| panic!("record {seq} was appended but not read"));
        assert_eq!(got, seq);
        assert!(bytes == record(seq), "record {seq}: content differs");
        assert_eq!(reader.try_next().unwrap(), None, "after record {seq}");
        assert_eq!(reader.next_sequence(), seq + 1);
    }
    let linked = segment_ids(dir.path()).len();
    assert!(linked > 30, "the reader crossed only {linked} segments");
}

#[test]
fn a_durable_only_reader_returns_nothing_before_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_small(dir.path());
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    reader.set_durable_only(true);
    let mut next = 0;
    for round in 0..60 {
        let batch = 1 + round % 7;
        for _ in 0..batch {
            journal.append(&record(next)).unwrap();
            next += 1;
        }
        assert_eq!(
            reader.try_next().unwrap(),
            None,
            "round {round}: not synced yet"
        );
        journal.sync().unwrap();
        let (got, error) = read_available(&mut reader);
        assert!(error.is_none(), "round {round}: {error:?}");
        assert_sequence(&got, next - batch, batch, record);
    }
    // The reads crossed rollovers. Linked segments only: whether the next one, prepared in
    // the background, exists yet is a race.
    let linked = linked_segments(dir.path()).len();
    assert!(linked >= 3, "{linked} linked segments");
}

#[test]
fn a_damaged_record_in_the_middle_of_a_segment_is_reported_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let walks = build(dir.path(), 400);
    let bases = bases(&walks);
    let (segment, victim) = (2, 5);
    let walk = &walks[segment];
    let (position, _) = walk.records[victim];
    let path = walk.header.path.clone();
    // Flip a payload byte: the record no longer matches its checksum.
    let at = HEADER_LEN + position + 8 + 3;
    let byte = std::fs::read(&path).unwrap()[at as usize];
    patch(&path, at, &[byte ^ 0x40]);
    let damaged = bases[segment] + victim as u64;

    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    let (got, error) = read_available(&mut reader);
    assert_sequence(&got, 0, damaged, record);
    assert_corrupt(error, &path, position);
    // The reader stays at the damage: the next call reports it again.
    assert_corrupt(reader.try_next().err(), &path, position);
    assert_eq!(
        reader.next_sequence(),
        damaged,
        "the reader stays at the damage"
    );

    // The iterator: the same records, then the error once, then the end.
    let mut items = JournalReader::open(dir.path(), 0).unwrap();
    let read: Vec<(u64, Vec<u8>)> = items.by_ref().map_while(Result::ok).collect();
    assert_sequence(&read, 0, damaged, record);
    assert!(items.next().is_none(), "the iterator ends after the error");
    // A reader opened past the damage, in the same segment, must pass the damaged record
    // to get there (these small segments have no resynchronisation mark after it): it
    // verifies what it passes, so it reports the damage instead of trusting its length.
    let mut past = JournalReader::open(dir.path(), damaged + 1).unwrap();
    let (got, error) = read_available(&mut past);
    assert!(got.is_empty(), "read past unverified damage: {got:?}");
    assert_corrupt(error, &path, position);
    // One opened in the next segment does not see it.
    let next = bases[segment + 1];
    let after = read_journal_from(dir.path(), next);
    assert_sequence(&after, next, 400 - next, record);
}

fn assert_corrupt(error: Option<JournalError>, path: &Path, position: u64) {
    match error {
        Some(JournalError::Corrupt {
            source:
                ReadError::ChecksumMismatch {
                    path: found,
                    position: found_at,
                    ..
                },
        }) => {
            assert_eq!(found, path, "damaged segment");
            assert_eq!(found_at, position, "damaged record");
        }
        other => panic!("expected Corrupt at {position}, got {other:?}"),
    }
}

/// Every record from `from` on; panics on an error.
fn read_journal_from(dir: &Path, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut reader = JournalReader::open(dir, from).unwrap();
    let (got, error) = read_available(&mut reader);
    assert!(error.is_none(), "from {from}: {error:?}");
    got
}

/// Zeroes the 8-byte word at data-area offset `position` of `path`.
fn zero_word(path: &Path, position: u64) {
    patch(path, HEADER_LEN + position, &[0; 8]);
}

fn assert_unsealed(dir: &Path, readable: u64, segment: &Path, position: u64, next: u64) {
    let mut reader = JournalReader::open(dir, 0).unwrap();
    let (got, error) = read_available(&mut reader);
    assert_sequence(&got, 0, readable, record);
    match error {
        Some(JournalError::Unsealed {
            segment: found,
            position: found_at,
            next: found_next,
        }) => {
            assert_eq!(found, segment);
            assert_eq!(found_at, position);
            assert_eq!(found_next, next);
        }
        other => panic!("expected Unsealed at {position}, got {other:?}"),
    }
}

#[test]
fn a_lost_seal_is_reported_at_the_end_of_the_readable_records() {
    let dir = tempfile::tempdir().unwrap();
    let walks = build(dir.path(), 400);
    let bases = bases(&walks);
    let segment = 1;
    let walk = &walks[segment];
    let End::Sealed { position, .. } = walk.stop else {
        panic!("segment {segment} is not sealed: {:?}", walk.stop);
    };
    zero_word(&walk.header.path, position);
    let readable = bases[segment] + walk.records.len() as u64;
    let next = walks[segment + 1].header.channel_id;
    assert_unsealed(dir.path(), readable, &walk.header.path, position, next);
}

#[test]
fn a_zeroed_record_header_in_a_sealed_segment_is_reported_as_a_lost_seal() {
    let dir = tempfile::tempdir().unwrap();
    let walks = build(dir.path(), 400);
    let bases = bases(&walks);
    let (segment, victim) = (2, 7);
    let walk = &walks[segment];
    let (position, _) = walk.records[victim];
    zero_word(&walk.header.path, position);
    let readable = bases[segment] + victim as u64;
    let next = walks[segment + 1].header.channel_id;
    assert_unsealed(dir.path(), readable, &walk.header.path, position, next);
}

#[test]
fn a_reader_opened_in_the_middle_starts_at_the_requested_record() {
    let dir = tempfile::tempdir().unwrap();
    let count = 400;
    let walks = build(dir.path(), count);
    let bases = bases(&walks);
    let mut starts = vec![1, 2, count - 1, count];
    for &base in &bases[1..] {
        starts.extend([base - 1, base, base + 1]);
    }
    for from in starts {
        let got = read_journal_from(dir.path(), from);
        assert_sequence(&got, from, count - from, record);
    }
}
