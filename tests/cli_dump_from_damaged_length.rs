#![cfg(feature = "cli")]
// Regression: issue 11 item 1: with 12-byte records and one record's length raised by one
// frame (so that it still lands on a record boundary), `kekbit dump --from N` printed hundreds
// of records under the sequence number of the one before them: the seek stepped over records
// by their stored lengths without verifying them.
//
//! `kekbit dump --from N` after a damaged length field prints only records that were
//! appended at the sequence numbers it prints, in a sealed segment and in the live one (whose
//! writer, this test process, holds the journal open while `dump` runs).

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;

use cli_common::*;
use kekbit::journal::Journal;

const RECORDS: u64 = 5_000;

/// A 12-byte record: 24 bytes framed.
fn rec(seq: u64) -> String {
    format!("r{seq:011}")
}

/// Checks that every `SEQ<TAB>PAYLOAD` line is the record appended at `SEQ`, in order;
/// returns the sequence numbers printed.
fn check_printed(stdout: &str, context: &str) -> Vec<u64> {
    let mut seen: Vec<u64> = Vec::new();
    for line in stdout.lines() {
        let (seq, payload) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("not SEQ<TAB>PAYLOAD: {line:?} ({context})"));
        let seq: u64 = seq.parse().unwrap();
        assert_eq!(payload, rec(seq), "record {seq} printed wrong ({context})");
        assert!(
            seen.last().is_none_or(|&p| seq > p),
            "out of order ({context})"
        );
        seen.push(seq);
    }
    seen
}

/// Raises the length of the `index`-th data record of segment `id` by one 24-byte frame,
/// runs `dump --from` for starting points around and after it, and restores the header.
fn damage_and_dump(dir: &Path, id: u64, index: usize, base: u64) {
    let path = segment_path(dir, id);
    let record = frames(&path)
        .into_iter()
        .filter(|f| f.kind == KIND_DATA)
        .nth(index)
        .expect("the record exists");
    let offset = HEADER_LEN + record.position;
    let original = std::fs::read(&path).unwrap()[offset as usize..offset as usize + 4].to_vec();
    let meta = u32::from_le_bytes(original[..].try_into().unwrap()) + 24;
    write_at(&path, offset, &meta.to_le_bytes());
    let damaged = base + index as u64;
    for from in [
        damaged - 1,
        damaged,
        damaged + 1,
        damaged + 2,
        damaged + 40,
        damaged + 700,
    ] {
        let context = format!("segment {id}, record {damaged} one frame longer, --from {from}");
        let from_arg = from.to_string();
        let dump = run("dump", dir, &["--from", &from_arg]);
        assert_no_panic(&dump);
        let seen = check_printed(&dump.out(), &context);
        assert!(
            !seen.contains(&damaged),
            "{context}: the damaged record was printed"
        );
    }
    write_at(&path, offset, &original);
}

#[test]
fn dump_from_after_a_damaged_length_prints_only_true_records() {
    let (_tmp, dir) = journal_dir();
    let journal = Journal::options()
        .segment_capacity(1 << 16)
        .open(&dir)
        .unwrap();
    for seq in 0..RECORDS {
        journal.append(rec(seq).as_bytes()).unwrap();
    }
    let second_base = {
        let dump = run("dump", &dir, &[]);
        dump.expect_ok();
        assert_eq!(
            check_printed(&dump.out(), "undamaged").len() as u64,
            RECORDS
        );
        let header = std::fs::read(segment_path(&dir, 2)).unwrap();
        u64::from_le_bytes(header[72..80].try_into().unwrap())
    };
    assert!(
        second_base > 2_000 && second_base + 1_000 < RECORDS,
        "{second_base}"
    );
    // Sealed segment 1: early, and past its first mark blocks.
    damage_and_dump(&dir, 1, 100, 0);
    damage_and_dump(&dir, 1, 1_500, 0);
    // The live segment 2.
    damage_and_dump(&dir, 2, 100, second_base);
    drop(journal);
}
