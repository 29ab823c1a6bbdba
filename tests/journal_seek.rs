//! `JournalReader::open(dir, s)` starts exactly at record `s`, for every `s`. The journal
//! holds 2,000 records in over 20 segments of 4 KiB, written over six sessions (three of
//! them appending nothing, which leaves empty segments whose first sequence number equals
//! their successor's). For every `s` from 0 to 2,000 a new reader reports `s` as its next
//! sequence number, returns record `s` first, and reading on returns exactly records
//! `s + 1 ..` to the end; from 2,000 (and beyond) it returns nothing until those records are
//! appended, then exactly them, crossing into a new segment when that is where they go.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;

use journal_common::{
    assert_sequence, check_chain, linked_segments, open_small, read_available, read_journal, record,
};
use kekbit::journal::{Journal, JournalReader};

const TOTAL: u64 = 2_000;

/// The journal: 2,000 records over six sessions; the last one is left open.
fn build(dir: &Path) -> Journal {
    let sessions = [700u64, 0, 0, 650, 0, 650];
    let mut next = 0;
    let mut journal = None;
    for count in sessions {
        drop(journal.take());
        let open = open_small(dir);
        for _ in 0..count {
            assert_eq!(open.append(&record(next)).unwrap(), next);
            next += 1;
        }
        journal = Some(open);
    }
    assert_eq!(next, TOTAL);
    journal.unwrap()
}

#[test]
fn a_journal_reader_opened_at_any_sequence_number_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let journal = build(dir.path());
    let walks = check_chain(dir.path());
    assert!(walks.len() >= 20, "only {} segments", walks.len());
    let empty = walks.iter().filter(|w| w.records.is_empty()).count();
    assert!(empty >= 3, "only {empty} empty segments");

    for s in 0..TOTAL {
        let mut reader = JournalReader::open(dir.path(), s).unwrap();
        assert_eq!(reader.next_sequence(), s, "reader opened at {s}");
        match reader.try_next() {
            Ok(Some((seq, bytes))) => {
                assert_eq!(seq, s, "first record of a reader opened at {s}");
                assert!(bytes == record(s), "record {s} differs");
            }
            other => panic!("reader opened at {s}: {other:?}"),
        }
        let (rest, error) = read_available(&mut reader);
        assert!(error.is_none(), "reader opened at {s}: {error:?}");
        assert_sequence(&rest, s + 1, TOTAL - s - 1, record);
    }

    // At the end and beyond: nothing yet.
    let mut at_end = JournalReader::open(dir.path(), TOTAL).unwrap();
    let mut beyond = JournalReader::open(dir.path(), TOTAL + 3).unwrap();
    assert_eq!(at_end.next_sequence(), TOTAL);
    assert_eq!(beyond.next_sequence(), TOTAL + 3);
    assert_eq!(at_end.try_next().unwrap(), None);
    assert_eq!(beyond.try_next().unwrap(), None);

    // Fill the active segment to the brim, so that the next records open a new one.
    let active = linked_segments(dir.path()).len();
    let mut next = TOTAL;
    while linked_segments(dir.path()).len() == active {
        assert_eq!(at_end.try_next().unwrap().map(|(s, _)| s), None);
        journal.append(&record(next)).unwrap();
        let (got, error) = read_available(&mut at_end);
        assert!(error.is_none(), "{error:?}");
        assert_sequence(&got, next, 1, record);
        next += 1;
    }
    let (got, error) = read_available(&mut beyond);
    assert!(error.is_none(), "{error:?}");
    assert_sequence(&got, TOTAL + 3, next - TOTAL - 3, record);
    for _ in 0..3 {
        journal.append(&record(next)).unwrap();
        next += 1;
    }
    drop(journal);
    assert_sequence(&read_available(&mut beyond).0, next - 3, 3, record);
    assert_sequence(&read_journal(dir.path(), next - 1), next - 1, 1, record);
}

#[test]
fn a_reader_of_a_closed_journal_at_its_end_waits_for_the_next_session() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_small(dir.path());
    for seq in 0..300 {
        journal.append(&record(seq)).unwrap();
    }
    drop(journal);
    let mut reader = JournalReader::open(dir.path(), 300).unwrap();
    assert_eq!(reader.try_next().unwrap(), None);
    let journal = open_small(dir.path());
    assert_eq!(reader.try_next().unwrap(), None);
    journal.append(&record(300)).unwrap();
    let (got, error) = read_available(&mut reader);
    assert!(error.is_none(), "{error:?}");
    assert_sequence(&got, 300, 1, record);
}

#[test]
fn a_reader_of_a_journal_not_created_yet_starts_at_its_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut from_zero = JournalReader::open(dir.path(), 0).unwrap();
    let mut from_five = JournalReader::open(dir.path(), 5).unwrap();
    assert_eq!(from_zero.try_next().unwrap(), None);
    assert_eq!(from_five.try_next().unwrap(), None);
    let journal = open_small(dir.path());
    for seq in 0..8 {
        journal.append(&record(seq)).unwrap();
    }
    assert_sequence(&read_available(&mut from_zero).0, 0, 8, record);
    assert_sequence(&read_available(&mut from_five).0, 5, 3, record);
}
