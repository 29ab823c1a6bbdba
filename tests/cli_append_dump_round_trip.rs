#![cfg(feature = "cli")]
//! `kekbit append` then `kekbit dump` round-trips every record exactly: thousands of lines
//! of varied length (empty ones, tabs, quotes, control and non-ASCII characters) and
//! NUL-separated binary records (newlines, invalid UTF-8), spread over many small segments,
//! come back byte for byte in the `text`, `hex` and `json` formats, for the whole journal and
//! for `--from`/`--to` ranges. `--ack` prints exactly the sequence numbers appended, in
//! order, under every `--durability` policy, and prints each one only once the record is durable
//! (the segment's durable watermark covers it; nothing is acknowledged early under `never`
//! or `every:N`).

#[path = "common/cli.rs"]
mod cli_common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cli_common::*;

/// Characters the line records are made of: ASCII, JSON-special and control characters
/// (never a newline), and multi-byte UTF-8 up to four bytes.
const ALPHABET: &[&str] = &[
    "a", "b", "Z", "0", "9", " ", "\t", "\"", "\\", "/", "{", "}", ",", ":", "\r", "\u{1}",
    "\u{1f}", "\u{7f}", "é", "ß", "€", "中", "𝄞", "😀", "\u{feff}", "\u{2028}",
];

/// `count` line records, deterministic; every 50th one empty, a few long ones.
fn line_records(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x5eed_0001);
    (0..count)
        .map(|i| {
            if i % 50 == 7 {
                return Vec::new();
            }
            let chars = match rng.below(20) {
                0 => 200 + rng.below(600) as usize,
                _ => rng.below(40) as usize,
            };
            let mut s = String::new();
            for _ in 0..chars {
                s.push_str(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]);
            }
            s.into_bytes()
        })
        .collect()
}

/// `count` binary records without NUL bytes: newlines, invalid UTF-8, some valid text.
fn binary_records(count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x5eed_0002);
    (0..count)
        .map(|i| match i % 5 {
            0 if i % 25 == 0 => Vec::new(),
            1 => format!("text record {i}\nwith a newline").into_bytes(),
            2 => vec![0xff, 0xfe, b'\n', 0xc3],
            _ => {
                let len = rng.below(300) as usize;
                rng.bytes(len)
                    .into_iter()
                    .map(|b| if b == 0 { 1 } else { b })
                    .collect()
            }
        })
        .collect()
}

fn joined(records: &[Vec<u8>], separator: u8) -> Vec<u8> {
    let mut input = Vec::new();
    for r in records {
        input.extend_from_slice(r);
        input.push(separator);
    }
    input
}

/// Splits output into lines, each without its `\n`; the output must end with one.
fn output_lines(stdout: &[u8]) -> Vec<&[u8]> {
    if stdout.is_empty() {
        return Vec::new();
    }
    assert_eq!(stdout.last(), Some(&b'\n'), "output does not end a line");
    stdout[..stdout.len() - 1].split(|&b| b == b'\n').collect()
}

/// Splits `SEQ<TAB>REST` into the sequence number and the rest.
fn seq_and_rest(line: &[u8]) -> (u64, &[u8]) {
    let tab = line
        .iter()
        .position(|&b| b == b'\t')
        .unwrap_or_else(|| panic!("no tab in {:?}", String::from_utf8_lossy(line)));
    let seq = std::str::from_utf8(&line[..tab])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad sequence number in {:?}", String::from_utf8_lossy(line)));
    (seq, &line[tab + 1..])
}

/// Checks `dump --format FORMAT` output, one line per record, against `expected` records
/// from `first` on: `check(line, want)` checks one line against its record and returns the
/// sequence number the line shows.
fn check_lines(
    format: &str,
    stdout: &[u8],
    first: u64,
    expected: &[Vec<u8>],
    check: impl Fn(&[u8], &[u8]) -> u64,
) {
    let lines = output_lines(stdout);
    assert_eq!(lines.len(), expected.len(), "{format}: number of records");
    for (i, (line, want)) in lines.iter().zip(expected).enumerate() {
        assert_eq!(
            check(line, want),
            first + i as u64,
            "{format}: sequence number"
        );
    }
}

/// Checks `dump --format text` output against `expected` records from `first` on; only for
/// records that are UTF-8 without newlines, which text prints unchanged.
fn check_text(stdout: &[u8], first: u64, expected: &[Vec<u8>]) {
    check_lines("text", stdout, first, expected, |line, want| {
        let (seq, payload) = seq_and_rest(line);
        assert_eq!(payload, want, "text: payload of record {seq}");
        seq
    });
}

/// Checks `dump --format hex` output against `expected` records from `first` on.
fn check_hex(stdout: &[u8], first: u64, expected: &[Vec<u8>]) {
    check_lines("hex", stdout, first, expected, |line, want| {
        let (seq, payload) = seq_and_rest(line);
        let text = std::str::from_utf8(payload).expect("hex output is ASCII");
        assert_eq!(
            unhex(text).unwrap_or_else(|| panic!("not hexadecimal: {text:?}")),
            want,
            "hex: payload of record {seq}"
        );
        seq
    });
}

/// Checks `dump --format json` output against `expected` records from `first` on: one
/// object per line with `seq`, `len`, the payload as `hex`, and as `text` exactly when the
/// payload is UTF-8.
fn check_json(stdout: &[u8], first: u64, expected: &[Vec<u8>]) {
    check_lines("json", stdout, first, expected, |line, want| {
        let object = parse_json_line(std::str::from_utf8(line).expect("JSON output is UTF-8"));
        let seq = object.u64_field("seq");
        assert_eq!(
            object.u64_field("len"),
            want.len() as u64,
            "json: len of {seq}"
        );
        let hex = object.field("hex").as_str().expect("hex is a string");
        assert_eq!(
            unhex(hex).as_deref(),
            Some(want),
            "json: hex payload of {seq}"
        );
        match std::str::from_utf8(want) {
            Ok(utf8) => assert_eq!(
                object.get("text").and_then(Json::as_str),
                Some(utf8),
                "json: text payload of {seq}"
            ),
            Err(_) => assert!(
                object.get("text").is_none_or(|t| *t == Json::Null),
                "json: record {seq} is not UTF-8 but has text {:?}",
                object.get("text")
            ),
        }
        seq
    });
}

/// Checks the output of `dump --format FORMAT` with the checker of that format.
fn check_format(format: &str, stdout: &[u8], first: u64, expected: &[Vec<u8>]) {
    match format {
        "text" => check_text(stdout, first, expected),
        "hex" => check_hex(stdout, first, expected),
        "json" => check_json(stdout, first, expected),
        other => panic!("no checker for format {other:?}"),
    }
}

/// `kekbit dump DIR EXTRA...`, which must succeed; its standard output.
fn dump(dir: &Path, extra: &[&str]) -> Vec<u8> {
    run("dump", dir, extra).expect_ok().stdout.clone()
}

#[test]
fn line_records_round_trip_in_every_format_across_many_segments() {
    let (_tmp, dir) = journal_dir();
    let records = line_records(5_000);
    let input = joined(&records, b'\n');
    run_in(
        "append",
        &dir,
        &[
            "--create",
            "--segment-size",
            "4096",
            "--durability",
            "never",
        ],
        &input,
    )
    .expect_ok();

    let segments = linked_segment_ids(&dir);
    assert!(
        segments.len() >= 20,
        "expected records to span many 4 KiB segments, got {segments:?}"
    );
    assert_eq!(segments, (1..=segments.len() as u64).collect::<Vec<_>>());
    assert!(
        segments
            .iter()
            .all(|&id| capacity(&segment_path(&dir, id)) == 4096),
        "every segment has the requested capacity"
    );

    check_text(&dump(&dir, &[]), 0, &records);
    for format in ["text", "hex", "json"] {
        check_format(format, &dump(&dir, &["--format", format]), 0, &records);
    }

    // Ranges: inside a segment, across segment boundaries, open ends, single records.
    let ranges: &[(Option<u64>, Option<u64>)] = &[
        (Some(1234), Some(1240)),
        (Some(0), Some(0)),
        (Some(4999), Some(4999)),
        (Some(4990), None),
        (None, Some(5)),
        (Some(100), Some(2100)),
        (Some(4000), Some(10_000)),
    ];
    for &(from, to) in ranges {
        let mut extra = Vec::new();
        let (from_s, to_s) = (from.map(|f| f.to_string()), to.map(|t| t.to_string()));
        if let Some(f) = &from_s {
            extra.extend(["--from", f.as_str()]);
        }
        if let Some(t) = &to_s {
            extra.extend(["--to", t.as_str()]);
        }
        let start = from.unwrap_or(0) as usize;
        let end = to.map_or(records.len(), |t| (t as usize + 1).min(records.len()));
        let want = &records[start..end];
        for format in ["text", "hex", "json"] {
            let mut with_format = extra.clone();
            with_format.extend(["--format", format]);
            check_format(format, &dump(&dir, &with_format), start as u64, want);
        }
    }
    // A range past the end prints nothing and succeeds; a reversed one is a usage error
    // (tests/cli_messages.rs).
    assert!(dump(&dir, &["--from", "5000"]).is_empty());

    // A second append continues the sequence; the dump shows both sessions in order.
    let more = line_records(40);
    run_in(
        "append",
        &dir,
        &["--segment-size", "4096", "--durability", "never"],
        &joined(&more, b'\n'),
    )
    .expect_ok();
    let mut all = records.clone();
    all.extend(more.iter().cloned());
    check_json(&dump(&dir, &["--format", "json"]), 0, &all);
    check_hex(
        &dump(&dir, &["--from", "4995", "--format", "hex"]),
        4995,
        &all[4995..],
    );
}

#[test]
fn input_without_final_newline_and_empty_lines_are_records() {
    let (_tmp, dir) = journal_dir();
    run_in(
        "append",
        &dir,
        &["--create"],
        b"\n\nmiddle\n\nlast without newline",
    )
    .expect_ok();
    let want: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"".to_vec(),
        b"middle".to_vec(),
        b"".to_vec(),
        b"last without newline".to_vec(),
    ];
    check_json(&dump(&dir, &["--format", "json"]), 0, &want);
    assert_eq!(
        dump(&dir, &[]),
        b"0\t\n1\t\n2\tmiddle\n3\t\n4\tlast without newline\n".to_vec()
    );
}

#[test]
fn null_separated_binary_records_round_trip() {
    let (_tmp, dir) = journal_dir();
    let records = binary_records(2_000);
    assert!(records.iter().any(|r| std::str::from_utf8(r).is_err()));
    assert!(records.iter().any(|r| r.contains(&b'\n')));
    run_in(
        "append",
        &dir,
        &[
            "--create",
            "--null",
            "--segment-size",
            "4096",
            "--durability",
            "every:100",
        ],
        &joined(&records, 0),
    )
    .expect_ok();
    assert!(linked_segment_ids(&dir).len() >= 10);

    check_hex(&dump(&dir, &["--format", "hex"]), 0, &records);
    check_json(&dump(&dir, &["--format", "json"]), 0, &records);
    check_json(
        &dump(&dir, &["--from", "777", "--to", "1555", "--format", "json"]),
        777,
        &records[777..=1555],
    );
    check_hex(
        &dump(&dir, &["--from", "1999", "--format", "hex"]),
        1999,
        &records[1999..],
    );
    // Text shows a record unchanged when it is UTF-8 without a newline.
    let seq = records
        .iter()
        .position(|r| !r.is_empty() && !r.contains(&b'\n') && std::str::from_utf8(r).is_ok())
        .expect("a binary record that is UTF-8 without a newline") as u64;
    let s = seq.to_string();
    check_text(
        &dump(&dir, &["--from", &s, "--to", &s]),
        seq,
        &records[seq as usize..=seq as usize],
    );
}

/// `append` options creating a journal of 4096-byte segments, synced under `policy`, that
/// acknowledges every record.
fn acking(policy: &str) -> [&str; 6] {
    [
        "--create",
        "--segment-size",
        "4096",
        "--durability",
        policy,
        "--ack",
    ]
}

fn expected_acks(range: std::ops::Range<u64>) -> String {
    range.map(|s| format!("{s}\n")).collect()
}

#[test]
fn ack_prints_every_sequence_number_in_order_under_each_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let records = line_records(600);
    let input = joined(&records, b'\n');
    for policy in ["every-record", "never", "every:7", "interval:5"] {
        let dir = tmp.path().join(policy.replace(':', "-"));
        let first = run_in("append", &dir, &acking(policy), &input);
        assert_eq!(
            first.expect_ok().out(),
            expected_acks(0..600),
            "acks under --durability {policy}"
        );
        // A later session acknowledges the continuing sequence numbers: one per line of
        // the first half of the input, and one for a last line cut short.
        let half = &input[..input.len() / 2];
        let second = run_in("append", &dir, &["--durability", policy, "--ack"], half);
        let n = half.iter().filter(|&&b| b == b'\n').count() as u64;
        let trailing = u64::from(half.last() != Some(&b'\n'));
        assert_eq!(
            second.expect_ok().out(),
            expected_acks(600..600 + n + trailing),
            "acks of a second session under --durability {policy}"
        );
        check_text(&dump(&dir, &["--to", "599"]), 0, &records);
    }
}

/// The payload of every record `acks_wait_for_durability` appends.
const DURABLE: &[u8] = b"a durable record";

/// The durable watermark of the (only) linked segment 1 of `dir`.
fn watermark(dir: &Path) -> u64 {
    read_u64(&segment_path(dir, 1), OFF_DURABLE_WATERMARK)
}

/// Data-area offset just after record `seq` of segment 1, when every record is [`DURABLE`].
fn end_of(seq: u64) -> u64 {
    (seq + 1) * frame_len(DURABLE.len())
}

/// `kekbit append --ack` creating the journal `<tmp>/NAME` under `--durability POLICY`.
fn acking_writer(tmp: &Path, name: &str, policy: &str) -> (PathBuf, Live) {
    let dir = tmp.join(name);
    let writer = Live::append(&dir, &acking(policy));
    (dir, writer)
}

/// Sends `count` [`DURABLE`] records to `writer` in one write.
fn send_records(writer: &mut Live, count: usize) {
    writer.send(&[DURABLE, b"\n"].concat().repeat(count));
}

#[test]
fn acks_wait_for_durability() {
    let tmp = tempfile::tempdir().unwrap();
    let quiet = Duration::from_millis(300);

    // every-record: each record is acknowledged on its own, after its sync.
    let (dir, mut writer) = acking_writer(tmp.path(), "every-record", "every-record");
    for seq in 0..3u64 {
        send_records(&mut writer, 1);
        assert_eq!(writer.line(), seq.to_string());
        assert!(
            watermark(&dir) >= end_of(seq),
            "record {seq} acknowledged before the watermark {} covers it",
            watermark(&dir)
        );
    }
    assert!(writer.finish_ok().is_empty());

    // never: nothing is acknowledged before the final sync at the end of input.
    let (dir, mut writer) = acking_writer(tmp.path(), "never", "never");
    send_records(&mut writer, 3);
    writer.expect_silence(quiet);
    assert_eq!(writer.finish_ok(), ["0", "1", "2"]);
    assert!(watermark(&dir) >= end_of(2));

    // every:3: acknowledged by batches of three.
    let (dir, mut writer) = acking_writer(tmp.path(), "every", "every:3");
    send_records(&mut writer, 2);
    writer.expect_silence(quiet);
    send_records(&mut writer, 1);
    for seq in 0..3u64 {
        assert_eq!(writer.line(), seq.to_string());
    }
    assert!(watermark(&dir) >= end_of(2));
    send_records(&mut writer, 1);
    writer.expect_silence(quiet);
    assert_eq!(writer.finish_ok(), ["3"]);

    // interval: acknowledged by the background sync while input is idle.
    let (dir, mut writer) = acking_writer(tmp.path(), "interval", "interval:20");
    send_records(&mut writer, 1);
    assert_eq!(writer.line(), "0");
    assert!(watermark(&dir) >= end_of(0));
    send_records(&mut writer, 1);
    assert_eq!(writer.line(), "1");
    assert!(watermark(&dir) >= end_of(1));
    assert!(writer.finish_ok().is_empty());
}
