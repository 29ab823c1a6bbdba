#![cfg(feature = "cli")]
//! `kekbit tail --follow`, started before anything is appended, prints every record that
//! later `kekbit append` processes write, in order and exactly once, across segment
//! rollovers inside one append session and across the segments each new session starts,
//! and keeps following until it is killed. Without `--follow`, `tail` prints the last ten
//! records (or from `--from`) and exits. Every wait is bounded: the test never hangs.

#[path = "common/cli.rs"]
mod cli_common;

use std::time::{Duration, Instant};

use cli_common::*;

/// The payload of record `seq`: of varied length, so that rollovers fall at different
/// places.
fn record(seq: u64) -> String {
    format!("record {seq} {}", "x".repeat((seq * 37 % 200) as usize))
}

/// The lines of records `seqs`, each ended by a newline.
fn input(seqs: std::ops::Range<u64>) -> String {
    seqs.map(|seq| record(seq) + "\n").collect()
}

#[test]
fn follower_prints_every_record_across_rollovers_and_sessions() {
    let (_tmp, dir) = journal_dir();
    // An empty journal to follow: the first session appends nothing.
    run_in("append", &dir, &["--create", "--segment-size", "4096"], b"").expect_ok();

    let mut follower = Live::spawn(sub_args("tail", &dir, &["--follow", "--from", "0"]));
    // Nothing yet: the follower waits.
    follower.expect_silence(Duration::from_millis(200));

    let sessions = 4u64;
    let per_session = 700u64;
    let mut next = 0u64;
    let mut printed = Vec::new();
    for session in 0..sessions {
        let mut writer = Live::append(
            &dir,
            &["--segment-size", "4096", "--durability", "never", "--ack"],
        );
        // Send in chunks, reading what the follower printed in between, so that the follower
        // reads while the writer appends.
        for chunk in input(next..next + per_session).as_bytes().chunks(8192) {
            writer.send(chunk);
            while let Some(line) = follower.line_within(Duration::from_millis(1)) {
                printed.push(line);
            }
        }
        let acks = writer.finish_ok();
        assert_eq!(
            acks.len() as u64,
            per_session,
            "acks of append session {session}"
        );
        next += per_session;
    }
    let segments = linked_segment_ids(&dir);
    assert!(
        segments.len() as u64 > sessions + 5,
        "records should span rollovers as well as sessions: {segments:?}"
    );

    let deadline = Instant::now() + LINE_LIMIT;
    while (printed.len() as u64) < next && Instant::now() < deadline {
        if let Some(line) = follower.line_within(Duration::from_millis(100)) {
            printed.push(line);
        }
    }
    assert!(
        follower.running(),
        "the follower exited: {}",
        follower.take_stderr()
    );
    for (i, line) in printed.iter().enumerate() {
        assert_eq!(
            *line,
            format!("{i}\t{}", record(i as u64)),
            "line {i} printed by the follower"
        );
    }
    assert_eq!(
        printed.len() as u64,
        next,
        "records printed by the follower"
    );
    // Nothing more, and still following.
    follower.expect_silence(Duration::from_millis(200));
    assert!(follower.running());

    // One more session, in a segment of the default size, is still seen.
    run_in("append", &dir, &[], b"late record\n").expect_ok();
    assert_eq!(follower.line(), format!("{next}\tlate record"));

    follower.kill();
    assert!(!follower.running());
}

#[test]
fn tail_without_follow_prints_the_last_records_and_exits() {
    let (_tmp, dir) = journal_dir();
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
        input(0..300).as_bytes(),
    )
    .expect_ok();

    let last_ten = run("tail", &dir, &[]).expect_ok().out();
    assert_eq!(last_ten, text_lines(290..300, record));

    let from = run("tail", &dir, &["--from", "150"]).expect_ok().out();
    assert_eq!(from, text_lines(150..300, record));

    let json = run("tail", &dir, &["--from", "298", "--format", "json"])
        .expect_ok()
        .out();
    let lines: Vec<Json> = json.lines().map(parse_json_line).collect();
    assert_eq!(lines.len(), 2);
    for (object, seq) in lines.iter().zip(298..) {
        assert_eq!(object.u64_field("seq"), seq);
        assert_eq!(
            object.field("text").as_str(),
            Some(record(seq).as_str()),
            "payload of {seq}"
        );
    }
}
