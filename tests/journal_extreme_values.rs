//! Values on disk at the edge of `u64` are refused with an error, never a panic (sums of
//! sequence numbers and ids would overflow):
//! - a segment whose header (valid checksum) has a `base_sequence` too close to `u64::MAX`
//!   for the records its capacity can hold: `Journal::open`, `verify`, `stats` and a reader
//!   report it;
//! - a file named `ffffffffffffffff.kekbit` is not a segment: a journal beside it opens,
//!   appends and reads as if it were not there;
//! - segment ids end at `u64::MAX - 1`: a journal whose last segment has that id is refused
//!   on opening for appending (no segment can follow it), one whose segment before it fills
//!   up refuses the append that would roll over; neither panics nor writes a file listing
//!   ignores, and both still read.

use std::fs;
use std::path::Path;

use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
use kekbit::journal::{self, AppendError, Durability, Journal, JournalError, JournalReader};

/// Offsets in the header (docs/FORMAT.md, "Header").
const OFF_BASE_SEQUENCE: usize = 72;
const OFF_HEADER_CHECKSUM: usize = 92;

fn segment(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!("{id:016x}.kekbit"))
}

/// Sets segment `id`'s base sequence and recomputes its header checksum.
fn set_base_sequence(dir: &Path, id: u64, base: u64) {
    let path = segment(dir, id);
    let mut bytes = fs::read(&path).unwrap();
    bytes[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 8].copy_from_slice(&base.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..OFF_HEADER_CHECKSUM]);
    bytes[OFF_HEADER_CHECKSUM..OFF_HEADER_CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, bytes).unwrap();
}

fn small(dir: &Path) -> Journal {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .durability(Durability::Never)
        .preallocate(false)
        .open(dir)
        .unwrap()
}

#[test]
fn a_base_sequence_without_room_for_its_records_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let journal = small(dir.path());
    journal.append(b"one").unwrap();
    drop(journal);
    // 4096 bytes hold at most 512 records: a base above u64::MAX - 512 leaves no room.
    for base in [u64::MAX, u64::MAX - 511] {
        set_base_sequence(dir.path(), 1, base);
        let opened = Journal::options()
            .segment_capacity(4096)
            .max_record_len(64)
            .open(dir.path());
        let error = opened.expect_err("opening must fail").to_string();
        assert!(error.contains("base sequence"), "{error}");
        // The only segment file holds no readable segment.
        let verified = journal::verify(dir.path(), &mut |_, _| {});
        assert!(
            matches!(verified, Err(JournalError::NotAJournal { .. })),
            "{verified:?}"
        );
        assert!(journal::stats(dir.path()).is_err());
        let mut reader = JournalReader::open(dir.path(), 0).unwrap();
        assert!(reader.try_next().is_err());
    }
    // With room to spare, the same segment is fine.
    set_base_sequence(dir.path(), 1, u64::MAX - 512);
    let mut reader = JournalReader::open(dir.path(), u64::MAX - 512).unwrap();
    assert_eq!(
        reader.try_next().unwrap(),
        Some((u64::MAX - 512, &b"one"[..]))
    );
}

#[test]
fn a_file_named_for_the_largest_id_is_not_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(segment(dir.path(), u64::MAX), b"not a segment").unwrap();
    let journal = small(dir.path());
    for i in 0..100u32 {
        journal.append(&i.to_le_bytes()).unwrap();
    }
    drop(journal);
    let journal = small(dir.path());
    assert_eq!(journal.next_sequence(), 100);
    drop(journal);
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    for i in 0..100u32 {
        assert_eq!(
            reader.try_next().unwrap(),
            Some((u64::from(i), &i.to_le_bytes()[..]))
        );
    }
    let verified = journal::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(verified.problems.is_empty(), "{verified:?}");
    assert_eq!(verified.records, 100);
}

/// A closed first segment with id `id` and `records` four-byte records, written through the
/// channel API (a journal never names segments this high).
fn crafted_segment(dir: &Path, id: u64, records: u32) {
    let header = Header::new(7, id, 4096, 64, 0, TickUnit::Millis);
    let mut writer = shm_writer(dir, &header, EncoderHandler).unwrap();
    for i in 0..records {
        writer.write(&i.to_le_bytes()).unwrap();
    }
    writer.close().unwrap();
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".kekbit"))
        .collect();
    names.sort();
    names
}

#[test]
fn segment_ids_end_before_u64_max() {
    // Regression: issue 11 item 5: a segment named fffffffffffffffe.kekbit overflowed the
    // next segment's id (panic in debug; in release an unlisted ffffffffffffffff.kekbit).
    let dir = tempfile::tempdir().unwrap();
    crafted_segment(dir.path(), u64::MAX - 1, 3);
    for ahead in [1, 64] {
        let opened = Journal::options()
            .segment_capacity(4096)
            .max_record_len(64)
            .segments_ahead(ahead)
            .open(dir.path());
        match opened {
            Err(e @ JournalError::SegmentIdsExhausted { last, .. }) => {
                assert_eq!(last, u64::MAX - 1);
                assert!(e.to_string().contains("0xfffffffffffffffe"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(files(dir.path()), ["fffffffffffffffe.kekbit"]);
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    for i in 0..3u32 {
        assert_eq!(
            reader.try_next().unwrap(),
            Some((u64::from(i), &i.to_le_bytes()[..]))
        );
    }
    assert_eq!(reader.try_next().unwrap(), None);

    // One id lower: the journal opens in the last segment and refuses to roll over past it.
    let dir = tempfile::tempdir().unwrap();
    crafted_segment(dir.path(), u64::MAX - 2, 3);
    let journal = Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .segments_ahead(64)
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    journal.warm_up().unwrap();
    let mut appended = 3;
    let refused = loop {
        match journal.append(&[1u8; 64]) {
            Ok(seq) => {
                assert_eq!(seq, appended);
                appended += 1;
            }
            Err(e) => break e,
        }
    };
    assert!(
        matches!(refused, AppendError::SegmentIdsExhausted { last, .. } if last == u64::MAX - 1),
        "{refused:?}"
    );
    assert!(journal.append(&[1u8; 64]).is_err());
    drop(journal);
    assert_eq!(
        files(dir.path()),
        ["fffffffffffffffd.kekbit", "fffffffffffffffe.kekbit"]
    );
    let verified = journal::verify(dir.path(), &mut |_, _| {}).unwrap();
    assert!(verified.problems.is_empty(), "{verified:?}");
    assert_eq!(verified.records, appended);
    let read = JournalReader::open(dir.path(), 0).unwrap().count() as u64;
    assert_eq!(read, appended);
}
