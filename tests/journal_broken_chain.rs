//! Readers detect a broken segment chain and never return wrong data. A closed journal of
//! 12 segments (4 KiB, four 1,000-byte records each: segment `k` holds `4(k-1) .. 4k`) is
//! copied and damaged, at every position where the damage kind applies:
//! - a missing middle segment `k` (file deleted): a reader from 0 returns records up to
//!   segment `k` and then `MissingSegment { id: k }`; a reader from after the hole reads on;
//! - segments `k` and `k + 1` swapped (files renamed): records up to segment `k`, then
//!   `BrokenChain`;
//! - segment `k` replaced by segment `k` of another journal with the same segment size,
//!   the same record sizes but other contents: records up to segment `k`, then
//!   `BrokenChain`;
//! - segment `k` copied over segment `k + 1`: records up to the end of segment `k` (once),
//!   then `BrokenChain`.
//!
//! When the break is at the very first segment, refusing to open the reader is also
//! accepted. After the error the reader stays on it (`try_next` repeats it; the iterator
//! yields it once and ends). Opening the damaged journal for appending refuses a foreign,
//! swapped or duplicated tail segment with `BrokenChain` instead of appending after it.

#[path = "common/journal.rs"]
mod journal_common;

use std::fs;
use std::path::Path;

use journal_common::{
    copy_dir, four_per_segment, large_record, payload, read_available, read_journal, segment_file,
    LARGE_LEN, PER_SEGMENT,
};
use kekbit::journal::{JournalError, JournalReader};

const SEGMENTS: u64 = 12;
const TOTAL: u64 = PER_SEGMENT * SEGMENTS;
/// Salt of the other journal's records.
const FOREIGN: u8 = 0x5A;

/// A closed journal of `SEGMENTS` full segments in `dir`, records salted with `salt`.
fn build(dir: &Path, salt: u8) {
    let journal = four_per_segment().open(dir).unwrap();
    for seq in 0..TOTAL {
        journal.append(&payload(seq, LARGE_LEN, salt)).unwrap();
    }
    drop(journal);
    let ids = journal_common::segment_ids(dir);
    assert_eq!(ids, (1..=SEGMENTS).collect::<Vec<_>>());
}

/// The two journals every case starts from: ours and the other one.
struct Templates {
    _root: tempfile::TempDir,
    ours: std::path::PathBuf,
    other: std::path::PathBuf,
}

fn templates() -> Templates {
    let root = tempfile::tempdir().unwrap();
    let ours = root.path().join("ours");
    let other = root.path().join("other");
    build(&ours, 0);
    build(&other, FOREIGN);
    assert_eq!(read_journal(&ours, 0).len() as u64, TOTAL);
    Templates {
        _root: root,
        ours,
        other,
    }
}

/// What a reader from 0 must find in a damaged copy.
#[derive(Debug, Clone, Copy)]
enum Want {
    Missing(u64),
    Broken,
}

/// Checks a reader from 0 on the damaged journal in `dir`: exactly records `0..intact`,
/// then the error `want`, again on the next call; the iterator agrees. Returns what went
/// wrong, if anything.
fn check_reader(dir: &Path, intact: u64, want: Want) -> Result<(), String> {
    let matches = |e: &JournalError| match (want, e) {
        (Want::Missing(k), JournalError::MissingSegment { id, dir: named, .. }) => {
            *id == k && named == dir
        }
        (Want::Broken, JournalError::BrokenChain { .. }) => true,
        _ => false,
    };
    let mut reader = match JournalReader::open(dir, 0) {
        Ok(reader) => reader,
        Err(e) if intact == 0 && matches(&e) => return Ok(()),
        Err(e) => return Err(format!("a reader from 0 did not open: {e}")),
    };
    let (got, error) = read_available(&mut reader);
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    if seqs != (0..intact).collect::<Vec<_>>() {
        return Err(format!(
            "returned records {seqs:?} then {error:?}; expected 0..{intact} then {want:?}"
        ));
    }
    if let Some((seq, _)) = got.iter().find(|(seq, bytes)| *bytes != large_record(*seq)) {
        return Err(format!("record {seq} is wrong data"));
    }
    match error {
        Some(e) if matches(&e) => {}
        other => {
            return Err(format!(
                "expected {want:?} after record {intact}, got {other:?}"
            ))
        }
    }
    match reader.try_next() {
        Err(e) if matches(&e) => {}
        other => return Err(format!("the second call gave {other:?}")),
    }

    let items: Vec<_> = JournalReader::open(dir, 0).unwrap().collect();
    let errors_at: Vec<usize> = (0..items.len()).filter(|&i| items[i].is_err()).collect();
    if items.len() as u64 != intact + 1 || errors_at != [intact as usize] {
        return Err(format!(
            "the iterator yielded {} items, errors at {errors_at:?}",
            items.len()
        ));
    }
    Ok(())
}

/// Panics listing every case that failed.
fn assert_all(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Swaps the files of segments `a` and `b` in `dir`.
fn swap(dir: &Path, a: u64, b: u64) {
    let (a, b) = (segment_file(dir, a), segment_file(dir, b));
    let parked = dir.join("parked");
    fs::rename(&a, &parked).unwrap();
    fs::rename(&b, &a).unwrap();
    fs::rename(&parked, &b).unwrap();
}

/// A fresh copy of our journal in a new directory under `root`.
fn copy(templates: &Templates, root: &Path, case: &str) -> std::path::PathBuf {
    let dir = root.join(case);
    copy_dir(&templates.ours, &dir);
    dir
}

#[test]
fn a_journal_missing_a_middle_segment_reports_it_where_the_chain_needs_it() {
    let t = templates();
    let root = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for k in 2..SEGMENTS {
        let case = format!("missing {k}");
        let dir = copy(&t, root.path(), &format!("missing-{k}"));
        fs::remove_file(segment_file(&dir, k)).unwrap();
        if let Err(e) = check_reader(&dir, PER_SEGMENT * (k - 1), Want::Missing(k)) {
            failures.push(format!("{case}: {e}"));
        }
        // Inside the hole: nothing, then the error.
        let mut inside = JournalReader::open(&dir, PER_SEGMENT * (k - 1) + 1).unwrap();
        match inside.try_next() {
            Err(JournalError::MissingSegment { id, .. }) => assert_eq!(id, k, "{case}"),
            other => panic!("{case}: reader inside the hole: {other:?}"),
        }
        // After the hole the journal reads on.
        let after = read_journal(&dir, PER_SEGMENT * k);
        assert_eq!(after.len() as u64, TOTAL - PER_SEGMENT * k, "{case}");
        assert!(after.iter().all(|(s, b)| *b == large_record(*s)), "{case}");
    }
    assert_all(failures);
}

// Regression: damage on the reader's binary-search path made JournalReader::open fail, so
// the intact records before the break could not be read.
#[test]
fn swapped_segments_break_the_journal_chain() {
    let t = templates();
    let root = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for k in 1..SEGMENTS {
        let case = format!("swapped {k} and {}", k + 1);
        let dir = copy(&t, root.path(), &format!("swapped-{k}"));
        swap(&dir, k, k + 1);
        if let Err(e) = check_reader(&dir, PER_SEGMENT * (k - 1), Want::Broken) {
            failures.push(format!("{case}: {e}"));
        }
    }
    assert_all(failures);
}

// Regression: a foreign first segment's records were returned as data.
#[test]
fn a_segment_of_another_journal_breaks_the_chain() {
    let t = templates();
    let root = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for k in 1..=SEGMENTS {
        let case = format!("foreign {k}");
        let dir = copy(&t, root.path(), &format!("foreign-{k}"));
        fs::copy(segment_file(&t.other, k), segment_file(&dir, k)).unwrap();
        if let Err(e) = check_reader(&dir, PER_SEGMENT * (k - 1), Want::Broken) {
            failures.push(format!("{case}: {e}"));
        }
    }
    assert_all(failures);
}

#[test]
fn a_duplicated_segment_breaks_the_journal_chain() {
    let t = templates();
    let root = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for k in 1..SEGMENTS {
        let case = format!("{k} copied over {}", k + 1);
        let dir = copy(&t, root.path(), &format!("duplicated-{k}"));
        fs::copy(segment_file(&dir, k), segment_file(&dir, k + 1)).unwrap();
        if let Err(e) = check_reader(&dir, PER_SEGMENT * k, Want::Broken) {
            failures.push(format!("{case}: {e}"));
        }
    }
    assert_all(failures);
}

// Regression: opening for append adopted a foreign last segment and appended after it.
#[test]
fn opening_a_journal_with_a_broken_tail_for_appending_is_refused() {
    let t = templates();
    let root = tempfile::tempdir().unwrap();
    let last = SEGMENTS;
    let cases = ["foreign tail", "swapped tail", "duplicated tail"];
    let mut failures = Vec::new();
    for case in cases {
        let dir = copy(&t, root.path(), &case.replace(' ', "-"));
        match case {
            "foreign tail" => {
                fs::copy(segment_file(&t.other, last), segment_file(&dir, last)).unwrap();
            }
            "swapped tail" => swap(&dir, last - 1, last),
            _ => {
                fs::copy(segment_file(&dir, last - 1), segment_file(&dir, last)).unwrap();
            }
        }
        match four_per_segment().open(&dir) {
            Err(JournalError::BrokenChain { .. }) => {}
            Ok(journal) => {
                let report = journal.open_report().clone();
                let seq = journal.append(b"appended after a broken tail").ok();
                failures.push(format!(
                    "{case}: opened ({report:?}) and appended at {seq:?}"
                ));
            }
            Err(e) => failures.push(format!("{case}: {e}")),
        }
    }
    assert_all(failures);
}
