#![cfg(feature = "cli")]
//! `kekbit verify` exits with the status the contract gives for each state of a journal:
//! 0 for a clean journal, 1 for a crashed writer's torn tail only (with the torn bytes
//! counted), 2 for a flipped byte in an early record of an earlier segment (with the
//! corrupt range reported), a missing middle segment or a foreign segment copied in, and 3
//! for an empty directory, a nonexistent directory or a directory of garbage `.kekbit`
//! files. `verify --json` prints one JSON object with segments, records, bytes,
//! first/last sequence, torn tail bytes and the corrupt ranges; the text report names the
//! same.

#[path = "common/cli.rs"]
mod cli_common;

use std::fs;
use std::path::Path;

use cli_common::*;

const SEGMENT: u64 = 4096;
const RECORDS: u64 = 600;

/// Runs `verify --json` and `verify` (text); both must exit `code` with nothing on stderr.
/// Returns the JSON object and the text report.
fn verify(dir: &Path, code: i32) -> (Json, String) {
    let json = run("verify", dir, &["--json"]);
    json.expect_code(code);
    assert!(json.stderr.is_empty(), "{}", json.describe());
    let out = json.out();
    assert_eq!(
        out.lines().count(),
        1,
        "verify --json prints one line\n{}",
        json.describe()
    );
    let object = parse_json_line(out.trim_end());
    for field in [
        "segments",
        "records",
        "record_bytes",
        "first_sequence",
        "last_sequence",
        "torn_tail_bytes",
        "problems",
    ] {
        assert!(object.get(field).is_some(), "no {field:?} in {out}");
    }
    let text = run("verify", dir, &[]);
    text.expect_code(code);
    assert!(text.stderr.is_empty(), "{}", text.describe());
    (object, text.out())
}

fn problems(report: &Json) -> &[Json] {
    report
        .field("problems")
        .as_array()
        .expect("problems is an array")
}

/// The problem `report` lists in segment `id`, if any.
fn problem_in(report: &Json, id: u64) -> Option<&Json> {
    problems(report)
        .iter()
        .find(|p| p.get("segment").and_then(Json::as_u64) == Some(id))
}

/// Bytes of records `0..count` with their framing.
fn record_bytes(count: u64) -> u64 {
    (0..count).map(|s| frame_len(numbered(s).len())).sum()
}

#[test]
fn clean_journal_exits_0_with_a_complete_report() {
    let (_tmp, dir) = temp_journal(RECORDS, SEGMENT);
    let segments = linked_segment_ids(&dir).len() as u64;
    assert!(segments > 3);

    let (report, text) = verify(&dir, 0);
    assert_eq!(report.u64_field("segments"), segments);
    assert_eq!(report.u64_field("records"), RECORDS);
    assert_eq!(report.u64_field("record_bytes"), record_bytes(RECORDS));
    assert_eq!(report.u64_field("first_sequence"), 0);
    assert_eq!(report.u64_field("last_sequence"), RECORDS - 1);
    assert_eq!(report.u64_field("torn_tail_bytes"), 0);
    assert!(problems(&report).is_empty());
    assert_eq!(report.field("status").as_str(), Some("clean"));
    for needle in [
        format!("segments:        {segments}"),
        format!("records:         {RECORDS}"),
        "first sequence:  0".to_string(),
        format!("last sequence:   {}", RECORDS - 1),
        "torn tail bytes: 0".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in\n{text}");
    }
}

#[test]
fn torn_tail_only_exits_1_and_counts_the_torn_bytes() {
    let (_tmp, dir) = temp_journal(RECORDS, SEGMENT);
    killed_writer(&dir, RECORDS, RECORDS + 150, SEGMENT);
    // A crashed writer that left no garbage is not torn.
    let (report, _) = verify(&dir, 0);
    assert_eq!(report.u64_field("records"), RECORDS + 150);

    add_torn_tail(&dir);
    let (report, text) = verify(&dir, 1);
    assert_eq!(
        report.u64_field("torn_tail_bytes"),
        TORN_BYTES.len() as u64,
        "{report:?}"
    );
    assert!(problems(&report).is_empty(), "{report:?}");
    assert_eq!(report.u64_field("records"), RECORDS + 150);
    assert_eq!(report.u64_field("last_sequence"), RECORDS + 149);
    assert!(
        text.contains(&format!("torn tail bytes: {}", TORN_BYTES.len())),
        "{text}"
    );
}

#[test]
fn flipped_byte_in_an_earlier_segment_exits_2_with_the_corrupt_range() {
    let (_tmp, dir) = temp_journal(RECORDS, SEGMENT);
    let path = segment_path(&dir, 1);
    let record = frames(&path)[2];
    assert_eq!(record.kind, KIND_DATA);
    // Flip one bit of the payload of record 2 of segment 1.
    let at = HEADER_LEN + record.position + 8 + 3;
    let [byte] = read_at::<1>(&path, at);
    write_at(&path, at, &[byte ^ 0x10]);

    let (report, text) = verify(&dir, 2);
    assert!(!problems(&report).is_empty(), "{report:?}");
    let damaged = problem_in(&report, 1)
        .unwrap_or_else(|| panic!("no problem reported in segment 1: {report:?}"));
    assert_eq!(
        damaged.get("offset").and_then(Json::as_u64),
        Some(record.position),
        "the corrupt range starts at the damaged record: {damaged:?}"
    );
    let named = damaged
        .get("path")
        .and_then(Json::as_str)
        .unwrap_or_default();
    assert!(named.ends_with("0000000000000001.kekbit"), "{damaged:?}");
    assert_eq!(report.u64_field("torn_tail_bytes"), 0);
    assert!(
        text.contains("0000000000000001.kekbit") && text.contains(&record.position.to_string()),
        "the text report names the file and offset:\n{text}"
    );
}

#[test]
fn missing_middle_segment_exits_2() {
    let (_tmp, dir) = temp_journal(RECORDS, SEGMENT);
    let ids = linked_segment_ids(&dir);
    assert!(ids.len() >= 4);
    let missing = ids[ids.len() / 2];
    fs::remove_file(segment_path(&dir, missing)).unwrap();

    let (report, text) = verify(&dir, 2);
    assert!(
        problem_in(&report, missing).is_some(),
        "segment {missing} not reported: {report:?}"
    );
    assert!(text.contains("missing"), "{text}");
}

#[test]
fn foreign_segment_copied_in_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    // The same records in both: only the journal id tells the segments apart.
    build_journal(&ours, RECORDS, SEGMENT);
    build_journal(&theirs, RECORDS * 2, SEGMENT);
    let ids = linked_segment_ids(&ours);
    let middle = ids[ids.len() / 2];
    assert_ne!(
        read_u64(&segment_path(&ours, 1), OFF_WRITER_ID),
        read_u64(&segment_path(&theirs, 1), OFF_WRITER_ID)
    );

    // A new journal directory `name` holding our segments, then segment `id` of theirs.
    let mixed = |name: &str, id: u64| {
        let dir = tmp.path().join(name);
        fs::create_dir(&dir).unwrap();
        for ours_id in &ids {
            fs::copy(segment_path(&ours, *ours_id), segment_path(&dir, *ours_id)).unwrap();
        }
        fs::copy(segment_path(&theirs, id), segment_path(&dir, id)).unwrap();
        dir
    };

    // In place of one of ours.
    let swapped = mixed("swapped", middle);
    let (report, _) = verify(&swapped, 2);
    assert!(
        problem_in(&report, middle).is_some(),
        "foreign segment {middle} not reported: {report:?}"
    );

    // Added after our last one.
    let next = ids.last().unwrap() + 1;
    assert!(segment_path(&theirs, next).exists());
    let appended = mixed("appended", next);
    let (report, _) = verify(&appended, 2);
    assert!(
        problem_in(&report, next).is_some(),
        "foreign segment {next} not reported: {report:?}"
    );
}

/// `verify` on something that is no journal: exit 3, one line on stderr naming `name`.
fn not_a_journal(dir: &Path, name: &str) {
    for extra in [&[][..], &["--json"][..]] {
        let run = run("verify", dir, extra);
        run.expect_code(3);
        run.expect_one_line_error(&[name]);
    }
}

#[test]
fn empty_directory_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("empty");
    fs::create_dir(&dir).unwrap();
    not_a_journal(&dir, &display(&dir));
    // A lock file alone is no journal either.
    fs::write(dir.join("kekbit.lock"), b"").unwrap();
    not_a_journal(&dir, &display(&dir));
}

#[test]
fn nonexistent_directory_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("no-such-directory");
    not_a_journal(&dir, &display(&dir));
}

// Regression: verify on a directory of garbage `.kekbit` files exited 2 (corrupt) instead
// of 3 (not a journal).
#[test]
fn directory_of_garbage_segment_files_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("garbage");
    fs::create_dir(&dir).unwrap();
    let mut rng = Rng::new(99);
    for (id, len) in [(1u64, 4224usize), (2, 100), (3, 0), (4, 9000)] {
        fs::write(segment_path(&dir, id), rng.bytes(len)).unwrap();
    }
    not_a_journal(&dir, &display(&dir));
}
