#![cfg(feature = "cli")]
//! `kekbit dump` and `kekbit tail` never print a damaged record as data. With a record of
//! an earlier segment damaged (a flipped payload bit, an unknown kind, a length far past
//! the segment, a zeroed record header), every line they print is a record exactly as it
//! was appended, under its own sequence number and in order; the damaged record is not
//! printed; the damage is reported on stderr naming the segment file; the exit status is
//! non-zero; nothing panics. A crashed writer's torn tail is never printed either.

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;

use cli_common::*;

const RECORDS: u64 = 600;

/// Parses `SEQ<TAB>PAYLOAD` lines and checks each against the appended record.
fn check_printed(stdout: &str, context: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    for line in stdout.lines() {
        let (seq, payload) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("not SEQ<TAB>PAYLOAD: {line:?} ({context})"));
        let seq: u64 = seq
            .parse()
            .unwrap_or_else(|_| panic!("bad sequence number in {line:?} ({context})"));
        assert_eq!(
            payload,
            numbered(seq),
            "record {seq} printed wrong ({context})"
        );
        if let Some(&previous) = seen.last() {
            assert!(
                seq > previous,
                "out of order: {previous} then {seq} ({context})"
            );
        }
        seen.push(seq);
    }
    seen
}

/// The file of segment 1, the one [`check_damage`] damages.
const DAMAGED_FILE: &str = "0000000000000001.kekbit";

/// Runs `kekbit SUB DIR EXTRA...` on a damaged journal and checks it failed cleanly: no
/// panic, a non-zero exit, and stderr naming the damaged segment file.
fn run_damaged(name: &str, sub: &str, dir: &Path, extra: &[&str]) -> Run {
    let run = run(sub, dir, extra);
    assert_no_panic(&run);
    assert_ne!(run.code(), 0, "{name}: {}", run.describe());
    assert!(
        run.stderr.contains(DAMAGED_FILE),
        "{name}: stderr does not name {DAMAGED_FILE}\n{}",
        run.describe()
    );
    run
}

/// Damages record 2 of segment 1 of a fresh journal with `damage(path, record)`, then
/// checks `dump` (text and json) and `tail`.
fn check_damage(name: &str, damage: impl Fn(&Path, Frame)) {
    let (_tmp, dir) = temp_journal(RECORDS, 4096);
    assert!(linked_segment_ids(&dir).len() > 3);
    let path = segment_path(&dir, 1);
    let record = frames(&path)[2];
    damage(&path, record);

    let dump = run_damaged(name, "dump", &dir, &[]);
    let seen = check_printed(&dump.out(), name);
    assert!(!seen.contains(&2), "{name}: the damaged record was printed");
    assert_eq!(seen[..2], [0, 1], "{name}: records before the damage");

    let json = run_damaged(name, "dump", &dir, &["--format", "json"]);
    let mut json_seen = Vec::new();
    for line in json.out().lines() {
        let object = parse_json_line(line);
        let seq = object.u64_field("seq");
        assert_eq!(
            object.field("text").as_str(),
            Some(numbered(seq).as_str()),
            "{name}: json record {seq}"
        );
        json_seen.push(seq);
    }
    assert_eq!(
        json_seen, seen,
        "{name}: json and text print the same records"
    );

    let tail = run_damaged(name, "tail", &dir, &["--from", "0"]);
    let tail_seen = check_printed(&tail.out(), name);
    assert!(
        !tail_seen.contains(&2),
        "{name}: tail printed the damaged record"
    );
    assert_eq!(tail.err_lines().len(), 1, "{name}: {}", tail.describe());
}

#[test]
fn flipped_payload_bit_is_never_printed() {
    check_damage("flipped bit", |path, record| {
        let at = HEADER_LEN + record.position + 8;
        let [byte] = read_at::<1>(path, at);
        write_at(path, at, &[byte ^ 0x01]);
    });
}

#[test]
fn unknown_record_kind_is_never_printed() {
    check_damage("unknown kind", |path, record| {
        let meta = (0xf << 28) | record.len;
        write_at(path, HEADER_LEN + record.position, &meta.to_le_bytes());
    });
}

#[test]
fn length_past_the_segment_is_never_printed() {
    check_damage("huge length", |path, record| {
        let meta = (KIND_DATA << 28) | 0x0fff_ffff;
        write_at(path, HEADER_LEN + record.position, &meta.to_le_bytes());
    });
}

// Regression: a zeroed record header in a middle segment made readers (and so dump and
// replay) stop there as if the journal ended, silently dropping every later record.
#[test]
fn zeroed_record_header_is_never_printed() {
    check_damage("zeroed header", |path, record| {
        write_at(path, HEADER_LEN + record.position, &[0; 8]);
    });
}

#[test]
fn torn_tail_is_never_printed() {
    let (_tmp, dir) = temp_journal(100, 4096);
    killed_writer(&dir, 100, 180, 4096);
    add_torn_tail(&dir);
    for sub in ["dump", "tail"] {
        let run = run(sub, &dir, &["--from", "0"]);
        assert_no_panic(&run);
        let seen = check_printed(&run.out(), sub);
        assert_eq!(
            seen,
            (0..180).collect::<Vec<_>>(),
            "{sub}: {}",
            run.describe()
        );
    }
}
