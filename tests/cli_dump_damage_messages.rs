#![cfg(feature = "cli")]
// Regression: issue 11 item 10: `dump`'s damage messages named a segment that does not exist
// and said "0 records lost" when every record after the damage was lost; a damaged last
// segment header made `dump` print nothing at all.
//
//! Each message of `kekbit dump` about damage names the real file, says whether a record or
//! the whole segment was skipped, and gives the exact sequence numbers lost (checked against
//! what `dump` printed), or says that their number is unknown; everything readable is still
//! printed, correctly.

#[path = "common/cli.rs"]
mod cli_common;

use std::collections::BTreeSet;
use std::path::Path;

use cli_common::*;

const RECORDS: u64 = 1_000;

/// Runs `dump`, checks every printed record and returns the sequence numbers missing, the
/// exit status and the one stderr line.
fn dump_damaged(dir: &Path) -> (BTreeSet<u64>, i32, String) {
    let run = run("dump", dir, &[]);
    assert_no_panic(&run);
    let mut seen = BTreeSet::new();
    for line in run.out().lines() {
        let (seq, payload) = line.split_once('\t').expect("SEQ<TAB>PAYLOAD");
        let seq: u64 = seq.parse().unwrap();
        assert_eq!(payload, numbered(seq), "record {seq} printed wrong");
        seen.insert(seq);
    }
    let missing = (0..RECORDS).filter(|s| !seen.contains(s)).collect();
    let lines = run.err_lines();
    assert_eq!(lines.len(), 1, "{}", run.describe());
    (missing, run.code(), lines[0].to_string())
}

fn base_of(dir: &Path, id: u64) -> u64 {
    let header = std::fs::read(segment_path(dir, id)).unwrap();
    u64::from_le_bytes(header[72..80].try_into().unwrap())
}

/// The message part that names the records lost, from what `dump` printed.
fn lost_words(missing: &BTreeSet<u64>) -> String {
    let (first, last) = (missing.first().unwrap(), missing.last().unwrap());
    assert_eq!(
        (last - first + 1) as usize,
        missing.len(),
        "one contiguous loss"
    );
    format!("{} records lost, sequence {first} to {last}", missing.len())
}

#[test]
fn a_damaged_last_segment_header_loses_an_unknown_number_and_says_so() {
    let (_tmp, dir) = temp_journal(RECORDS, 4096);
    let last = *linked_segment_ids(&dir).last().unwrap();
    assert!(last >= 5, "{last} segments");
    let base = base_of(&dir, last);
    write_at(&segment_path(&dir, last), 16, b"XXXXXXXX");
    let (missing, code, line) = dump_damaged(&dir);
    assert_eq!(code, 2, "{line}");
    // Everything before the damaged segment is printed.
    assert_eq!(missing, (base..RECORDS).collect(), "{line}");
    let file = segment_path(&dir, last).display().to_string();
    assert!(line.contains(&file), "{line}");
    assert!(
        line.contains(&format!("segment {last} skipped whole")),
        "{line}"
    );
    assert!(
        line.contains(&format!("records from sequence {base} on lost")),
        "{line}"
    );
    assert!(line.contains("unknown"), "{line}");
    assert!(!line.contains("0 records lost"), "{line}");
}

#[test]
fn a_missing_middle_segment_is_named_with_the_records_it_held() {
    let (_tmp, dir) = temp_journal(RECORDS, 4096);
    std::fs::remove_file(segment_path(&dir, 2)).unwrap();
    let (missing, code, line) = dump_damaged(&dir);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("segment 2 skipped whole"), "{line}");
    assert!(line.contains("segment 2 is missing"), "{line}");
    assert!(line.contains(&lost_words(&missing)), "{line}");
}

#[test]
fn a_damaged_record_of_a_sealed_segment_is_counted_by_its_seal() {
    let (_tmp, dir) = temp_journal(RECORDS, 4096);
    let path = segment_path(&dir, 3);
    let victim = frames(&path)[4];
    // A payload byte: the record fails its checksum, its length is intact.
    let at = HEADER_LEN + victim.position + 8;
    let byte = std::fs::read(&path).unwrap()[at as usize];
    write_at(&path, at, &[byte ^ 0x20]);
    let (missing, code, line) = dump_damaged(&dir);
    assert_eq!(code, 2, "{line}");
    assert_eq!(*missing.first().unwrap(), base_of(&dir, 3) + 4, "{line}");
    assert!(line.contains(&path.display().to_string()), "{line}");
    assert!(
        line.contains(&format!(
            "damaged record at data offset {}",
            victim.position
        )),
        "{line}"
    );
    assert!(line.contains(&lost_words(&missing)), "{line}");
}
