//! Files of on-disk format version 1 (kekbit 0.4), checked in under `tests/fixtures/format1/`,
//! keep opening: a journal of 300 records in five sealed 4 KiB segments and a closed channel
//! of 20 records, written by kekbit 0.4.0 (commit f36ed56). They read back exactly, verify
//! clean, and the journal accepts appends, which go into a new segment of version 2, linked
//! to the old ones; a seek across the old segments verifies every record it passes (they
//! have no resynchronisation marks), and damage in an old segment is still detected.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::{Path, PathBuf};

use journal_common::{copy_dir, patch, read_header, segment_file, HEADER_LEN};
use kekbit::core::{shm_reader, ReadError, Reader, FORMAT_VERSION};
use kekbit::journal::{verify, Journal, JournalError, JournalReader, VerifyStatus};

const RECORDS: u64 = 300;

/// The payload the fixture writer gave record `i`.
fn payload(i: u64) -> Vec<u8> {
    format!("record {i:04};")
        .repeat((i % 7 + 1) as usize)
        .into_bytes()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format1")
        .join(name)
}

/// A scratch copy of the journal fixture (the checked-in files are never written).
fn journal_copy() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir(&dir).unwrap();
    copy_dir(&fixture("journal"), &dir);
    (tmp, dir)
}

fn version(path: &Path) -> u16 {
    let bytes = std::fs::read(path).unwrap();
    u16::from_le_bytes([bytes[8], bytes[9]])
}

#[test]
fn the_fixtures_are_format_1() {
    for id in 1..=5 {
        assert_eq!(version(&segment_file(&fixture("journal"), id)), 1);
    }
    assert_eq!(version(&fixture("channel/000000000000002a.kekbit")), 1);
}

#[test]
fn a_format_1_journal_reads_back_from_every_sequence_number() {
    let (_tmp, dir) = journal_copy();
    for from in 0..=RECORDS {
        let records: Vec<(u64, Vec<u8>)> = JournalReader::open(&dir, from)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expected: Vec<(u64, Vec<u8>)> = (from..RECORDS).map(|i| (i, payload(i))).collect();
        assert_eq!(records, expected, "from {from}");
    }
    let report = verify(&dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.status(), VerifyStatus::Clean, "{report:?}");
    assert_eq!((report.records, report.segments), (RECORDS, 5));
}

#[test]
fn a_format_1_channel_reads_back() {
    let mut reader = shm_reader(&fixture("channel"), 42).unwrap();
    assert_eq!(reader.header().format_version(), 1);
    for i in 0..20 {
        assert_eq!(
            reader.try_read().unwrap(),
            Some(&payload(i)[..]),
            "record {i}"
        );
    }
    assert!(matches!(reader.try_read(), Err(ReadError::Closed { .. })));
}

#[test]
fn a_format_1_journal_continues_in_format_2() {
    let (_tmp, dir) = journal_copy();
    let journal = Journal::options()
        .segment_capacity(4096)
        .max_record_len(512)
        .open(&dir)
        .unwrap();
    for i in RECORDS..RECORDS + 200 {
        assert_eq!(journal.append(&payload(i)).unwrap(), i);
    }
    drop(journal);
    let last = *journal_common::segment_ids(&dir).last().unwrap();
    assert!(last > 6, "the new records went into new segments");
    assert_eq!(read_header(&segment_file(&dir, 6)).base_sequence, RECORDS);
    assert_eq!(version(&segment_file(&dir, 6)), FORMAT_VERSION);
    assert_eq!(
        version(&segment_file(&dir, 5)),
        1,
        "old segments are not rewritten"
    );
    let all: Vec<(u64, Vec<u8>)> = JournalReader::open(&dir, 0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: Vec<(u64, Vec<u8>)> = (0..RECORDS + 200).map(|i| (i, payload(i))).collect();
    assert_eq!(all, expected);
    let report = verify(&dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.status(), VerifyStatus::Clean, "{report:?}");
}

#[test]
fn damage_in_a_format_1_segment_is_found_by_a_seek_past_it() {
    let (_tmp, dir) = journal_copy();
    // Segment 2's first record: flip a payload bit.
    let path = segment_file(&dir, 2);
    let base = read_header(&path).base_sequence;
    let at = HEADER_LEN + 8 + 2;
    let byte = std::fs::read(&path).unwrap()[at as usize];
    patch(&path, at, &[byte ^ 0x01]);
    // A reader asked for a later record of that segment passes the damaged one: it must
    // verify it, not step over it by its length.
    let mut reader = JournalReader::open(&dir, base + 3).unwrap();
    match reader.try_next() {
        Err(JournalError::Corrupt { source }) => assert_eq!(source.position(), 0),
        other => panic!("expected the damage at offset 0, got {other:?}"),
    }
    let report = verify(&dir, &mut |_, _| {}).unwrap();
    assert_eq!(report.status(), VerifyStatus::Corrupt);
}
