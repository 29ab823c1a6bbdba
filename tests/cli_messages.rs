#![cfg(feature = "cli")]
//! What a newcomer meets first: each wrong path or option gets a one-line message that names
//! what was given and what to do, with the exit status of its condition, the same in every
//! command (the table of `kekbit --help`, copied in the README); `tail -n`, `append --crlf`,
//! and `tail --follow` ending when its reader goes away.

#[path = "common/cli.rs"]
mod cli_common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cli_common::*;

/// Every command, with the arguments it needs besides the directory.
const COMMANDS: &[(&str, &[&str])] = &[
    ("append", &[]),
    ("dump", &[]),
    ("tail", &[]),
    ("verify", &[]),
    ("stats", &[]),
    ("repair", &[]),
    ("prune", &["--before", "1"]),
];

/// Runs every command on `dir`; each must exit `code` with one line naming `names`.
fn every_command(dir: &Path, code: i32, names: &[&str]) {
    for (sub, extra) in COMMANDS {
        let run = run_in(sub, dir, extra, b"x\n");
        run.expect_code(code);
        run.expect_one_line_error(names);
    }
}

// Regression: issue 16 item 9: a missing path said "not a kekbit journal (no segment files)",
// a file given to `append --create` said "creating the directory failed: File exists",
// `--segment-size 10` spoke of a capacity of 16, a 0-byte segment read as "no segment files"
// in verify and "file is truncated" in dump, and a prevalent store's directory gave no hint.
#[test]
fn each_message_names_what_was_given_and_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    every_command(
        &missing,
        3,
        &[&display(&missing), "no such directory", "--create"],
    );
    assert!(!missing.exists());

    let file = tmp.path().join("afile");
    fs::write(&file, b"text\n").unwrap();
    every_command(&file, 3, &[&display(&file), "is a file", "directory"]);
    run_in("append", &file, &["--create"], b"x\n")
        .expect_code(3)
        .expect_one_line_error(&[&display(&file), "is a file"]);

    let dir = tmp.path().join("small");
    run_in(
        "append",
        &dir,
        &["--create", "--segment-size", "10"],
        b"x\n",
    )
    .expect_code(5)
    .expect_one_line_error(&["--segment-size 10", "128", "1099511627776"]);
    assert!(!dir.exists(), "a refused append created {}", dir.display());

    let empty_segment = tmp.path().join("zero");
    fs::create_dir(&empty_segment).unwrap();
    fs::write(segment_path(&empty_segment, 1), b"").unwrap();
    let segment = display(segment_path(&empty_segment, 1));
    every_command(&empty_segment, 3, &[&segment, "0 bytes", "segment header"]);

    // A segment with its header but cut short: the same message and status everywhere.
    let (_cut_tmp, cut) = temp_journal(3, 4096);
    let file = segment_path(&cut, 1);
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(200)
        .unwrap();
    for sub in ["verify", "dump", "stats"] {
        run(sub, &cut, &[])
            .expect_code(2)
            .expect_one_line_error(&[&display(&file), "truncated: 200 bytes"]);
    }

    let store = tmp.path().join("store");
    build_journal(&store.join("journal"), 3, 4096);
    fs::create_dir(store.join("snapshots")).unwrap();
    let inner = display(store.join("journal"));
    every_command(&store, 3, &[&display(&store), "prevalent store", &inner]);
}

// Regression: issue 16 item 10: "not a journal" exited 1 from dump, tail and prune and 3 from
// verify, stats and repair.
#[test]
fn one_exit_status_per_condition_in_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    every_command(&plain, 3, &[&display(&plain), "no segment files"]);

    let (_journal_tmp, dir) = temp_journal(5, 4096);
    let writer = holding_writer(&dir, &["--segment-size", "4096"], 5);
    for (sub, extra) in [("append", &[][..]), ("repair", &[][..])] {
        run_in(sub, &dir, extra, b"x\n")
            .expect_code(4)
            .expect_one_line_error(&[&display(&dir), "locked"]);
    }
    drop(writer);

    for (sub, extra) in [
        ("dump", &["--from", "2", "--to", "1"][..]),
        ("tail", &["--from", "1", "-n", "2"][..]),
        ("append", &["--durability", "sometimes"][..]),
        ("verify", &["--no-such-option"][..]),
    ] {
        let run = run_in(sub, &dir, extra, b"");
        run.expect_code(5);
        assert_no_panic(&run);
    }
}

/// The exit-status rows of the README's table, as `STATUS  MEANING`.
fn readme_rows() -> Vec<String> {
    let readme = include_str!("../README.md");
    let table = &readme[readme
        .find("| status | meaning |")
        .expect("the README's table")..];
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            format!("{}  {}", cells[0], cells[1].replace("\\|", "|"))
        })
        .collect()
}

#[test]
fn the_readme_and_help_show_the_same_exit_status_table() {
    let help = run_args(args(&[&"--help"]), b"").expect_ok().out();
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    let rows = readme_rows();
    assert_eq!(rows.len(), 8, "{rows:?}");
    for row in rows {
        let row = row.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains(&row), "`kekbit --help` lacks {row:?}\n{help}");
    }
}

// Regression: issue 16 item 11: `repair` on a plain directory left a kekbit.lock in it.
#[test]
fn a_command_that_finds_no_journal_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    fs::create_dir(&plain).unwrap();
    fs::write(plain.join("notes.txt"), b"mine\n").unwrap();
    for (sub, extra) in COMMANDS {
        run_in(sub, &plain, extra, b"x\n").expect_code(3);
        assert_eq!(
            file_sizes(&plain),
            [("notes.txt".to_string(), 5)],
            "kekbit {sub} changed the directory"
        );
    }
}

// Regression: issue 16 item 12: no `tail -n`; `dump --from 2 --to 1` printed nothing and
// succeeded; no way to strip CRLF line ends.
#[test]
fn tail_counts_dump_refuses_a_reversed_range_and_append_strips_crlf_on_request() {
    let (_tmp, dir) = temp_journal(30, 4096);
    let tail = |extra: &[&str]| run("tail", &dir, extra).expect_ok().out();
    assert_eq!(tail(&["-n", "3"]), text_lines(27..30, numbered));
    assert_eq!(tail(&["--lines", "1"]), text_lines(29..30, numbered));
    assert_eq!(tail(&["-n", "100"]), text_lines(0..30, numbered));
    assert_eq!(tail(&["-n", "0"]), "");
    assert_eq!(tail(&[]), text_lines(20..30, numbered));

    run("dump", &dir, &["--from", "2", "--to", "1"])
        .expect_code(5)
        .expect_one_line_error(&["--from 2", "--to 1"]);
    assert_eq!(
        run("dump", &dir, &["--from", "2", "--to", "2"])
            .expect_ok()
            .out(),
        text_lines(2..3, numbered)
    );

    let tmp = tempfile::tempdir().unwrap();
    for (name, extra, expected) in [
        ("kept", &[][..], "0\ta\r\n1\tb\n"),
        ("stripped", &["--crlf"][..], "0\ta\n1\tb\n"),
    ] {
        let dir = tmp.path().join(name);
        let mut all = vec!["--create"];
        all.extend_from_slice(extra);
        run_in("append", &dir, &all, b"a\r\nb\n").expect_ok();
        assert_eq!(run("dump", &dir, &[]).expect_ok().out(), expected, "{name}");
    }
    let run = run_in(
        "append",
        &tmp.path().join("both"),
        &["--create", "--crlf", "--null"],
        b"",
    );
    run.expect_code(5);
}

// Regression: issue 16 item 12: `tail --follow | head -2` went on until the next record.
#[test]
fn tail_follow_exits_when_its_reader_goes_away() {
    // Two records: once both are read, tail has nothing left to write.
    let (_tmp, dir) = temp_journal(2, 4096);
    let mut child = Command::new(env!("CARGO_BIN_EXE_kekbit"))
        .args(sub_args("tail", &dir, &["--follow"]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kekbit tail --follow");
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    for seq in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{seq}\t{}\n", numbered(seq)));
    }
    // Like `head -2`: read two lines and go away while the journal stays idle.
    std::thread::sleep(Duration::from_millis(100));
    drop(out);
    let status = wait_limited(&mut child, Duration::from_secs(5))
        .expect("tail --follow still running after its reader went away");
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.is_empty(), "{stderr}");
}
