#![cfg(feature = "cli")]
//! `kekbit stats` (text and `--json`) reports a journal's segments, records, bytes and
//! first/last sequence numbers correctly (checked against the segment files), timestamps in
//! order and around the time the test ran, and whether a writer is active: yes while a
//! `kekbit append` child holds the journal, no once it has exited or been killed.

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use cli_common::*;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The value of the text line `label: value`.
fn text_field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|line| {
            let (l, v) = line.split_once(':')?;
            (l.trim() == label).then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no {label:?} line in\n{text}"))
}

/// Checks `stats --json` and `stats` against the expected values; returns the JSON.
fn check_stats(dir: &Path, records: u64, first: u64, active: bool) -> Json {
    let json = run("stats", dir, &["--json"]);
    json.expect_ok();
    assert_eq!(json.out().lines().count(), 1, "{}", json.describe());
    let stats = parse_json_line(json.out().trim_end());
    let segments = linked_segment_ids(dir).len() as u64;
    let last = first + records - 1;
    assert_eq!(stats.u64_field("segments"), segments, "{stats:?}");
    assert_eq!(stats.u64_field("records"), records, "{stats:?}");
    assert_eq!(stats.u64_field("first_sequence"), first, "{stats:?}");
    assert_eq!(stats.u64_field("last_sequence"), last, "{stats:?}");
    assert!(stats.u64_field("file_bytes") > 0, "{stats:?}");
    assert_eq!(
        stats.field("writer_active").as_bool(),
        Some(active),
        "writer active in {stats:?}"
    );

    let text = run("stats", dir, &[]);
    text.expect_ok();
    let out = text.out();
    assert_eq!(text_field(&out, "segments"), segments.to_string());
    assert_eq!(text_field(&out, "records"), records.to_string());
    assert_eq!(text_field(&out, "first sequence"), first.to_string());
    assert_eq!(text_field(&out, "last sequence"), last.to_string());
    assert_eq!(
        text_field(&out, "writer active"),
        if active { "yes" } else { "no" }
    );
    for label in ["file bytes", "first segment created", "last written"] {
        assert!(!text_field(&out, label).is_empty());
    }
    stats
}

#[test]
fn stats_reports_the_journal_and_whether_a_writer_is_active() {
    let started = now_ms();
    let (tmp, dir) = temp_journal(700, 4096);
    assert!(linked_segment_ids(&dir).len() > 5);

    let stats = check_stats(&dir, 700, 0, false);
    let first_ts = stats.u64_field("first_segment_created_ms");
    let last_ts = stats.u64_field("last_written_ms");
    let slack = 5_000;
    assert!(
        started - slack <= first_ts && first_ts <= last_ts && last_ts <= now_ms() + slack,
        "timestamps {first_ts}..{last_ts} not around {started}"
    );
    // Bytes: at least what the records occupy.
    let payload: u64 = (0..700).map(|s| frame_len(numbered(s).len())).sum();
    assert!(stats.u64_field("file_bytes") >= payload);

    // A writer holding the journal (waiting on its input) is seen as active...
    let mut writer = holding_writer(&dir, &["--segment-size", "4096"], 700);
    check_stats(&dir, 701, 0, true);
    writer.send(b"second\n");
    assert_eq!(writer.line(), "701");
    check_stats(&dir, 702, 0, true);
    // ...and not once it has exited.
    assert_eq!(writer.finish_ok(), Vec::<String>::new());
    check_stats(&dir, 702, 0, false);

    // Nor once it has been killed.
    let mut writer = holding_writer(&dir, &["--segment-size", "4096"], 702);
    check_stats(&dir, 703, 0, true);
    writer.kill();
    check_stats(&dir, 703, 0, false);

    // After pruning, the first sequence number moves.
    run("prune", &dir, &["--before", "300"]).expect_ok();
    let first = base_sequence(&segment_path(&dir, linked_segment_ids(&dir)[0]));
    assert!(first > 0 && first <= 300);
    check_stats(&dir, 703 - first, first, false);

    // The empty journal: no records, no sequence numbers.
    let empty = tmp.path().join("empty");
    run_in(
        "append",
        &empty,
        &["--create", "--segment-size", "4096"],
        b"",
    )
    .expect_ok();
    let stats = stats_json(&empty);
    assert_eq!(stats.u64_field("records"), 0);
    assert_eq!(stats.field("first_sequence"), &Json::Null);
    assert_eq!(stats.field("last_sequence"), &Json::Null);
    assert_eq!(stats.field("writer_active").as_bool(), Some(false));
}

// Regression: issue 16 item 6: `bytes` meant framed record bytes in verify and file sizes in
// stats, and stats' "timestamps" were file times that read as record times.
#[test]
fn each_number_says_what_it_counts() {
    let (_tmp, dir) = temp_journal(300, 4096);
    let files: u64 = file_sizes(&dir)
        .iter()
        .filter(|(name, _)| name.ends_with(".kekbit"))
        .map(|(_, size)| size)
        .sum();
    let records: u64 = (0..300).map(|s| frame_len(numbered(s).len())).sum();
    assert!(files > records);

    let stats = stats_json(&dir);
    assert_eq!(stats.u64_field("file_bytes"), files, "{stats:?}");
    let text = run("stats", &dir, &[]).expect_ok().out();
    assert_eq!(text_field(&text, "file bytes"), files.to_string());
    let verify = parse_json_line(
        run("verify", &dir, &["--json"])
            .expect_ok()
            .out()
            .trim_end(),
    );
    assert_eq!(verify.u64_field("record_bytes"), records, "{verify:?}");
    let text = run("verify", &dir, &[]).expect_ok().out();
    assert_eq!(text_field(&text, "record bytes"), records.to_string());

    // No bare `bytes` or `timestamp` left to guess at.
    for json in [&stats, &verify] {
        assert!(json.get("bytes").is_none(), "{json:?}");
    }
    for label in ["first segment created", "last written"] {
        assert!(run("stats", &dir, &[]).out().contains(label));
    }
    assert!(!run("stats", &dir, &[]).out().contains("timestamp"));
}
