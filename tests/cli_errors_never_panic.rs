#![cfg(feature = "cli")]
//! No input makes `kekbit` panic, and every error is one line. Every subcommand (`append`,
//! `dump` in each format, `tail` with and without `--follow`, `verify`, `stats`, `repair`,
//! `prune`) run on a nonexistent directory, on a regular file, and on directories holding
//! hostile segment files (random bytes, an empty file, a truncated header, a truncated data
//! area, headers with a valid checksum but a huge, oversized, unaligned or zero capacity,
//! an impossible record length, a newer format version, unknown flags, a wrong header
//! length or tick unit, a file named for another segment, a bad header checksum, a garbage
//! segment after a valid journal) exits non-zero with exactly one line on stderr that names
//! the file or directory, and no panic or backtrace (`verify` may instead report the damage
//! on stdout, naming the file, with exit status 2). Options the journal cannot use, and a
//! record longer than `--max-record`, fail the same way; `dump`/`tail --from` on a missing or
//! empty directory fail too. A closed standard output (EPIPE) makes no command panic.
//! `kekbit --help` and each subcommand's `--help` exit 0 and name their options.

#[path = "common/cli.rs"]
mod cli_common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cli_common::*;

/// Header offset of the header checksum, the CRC32 of the header bytes before it (the
/// other offsets the cases patch are in docs/FORMAT.md, named by each case).
const OFF_HEADER_CHECKSUM: u64 = 92;

/// Every subcommand with the extra arguments it is tried with.
const COMMANDS: &[(&str, &[&str])] = &[
    ("append", &[]),
    ("append", &["--create", "--durability", "never"]),
    ("dump", &[]),
    ("dump", &["--format", "json"]),
    ("dump", &["--format", "hex", "--from", "1", "--to", "3"]),
    ("tail", &[]),
    ("tail", &["--follow"]),
    ("tail", &["--from", "1", "--follow"]),
    ("verify", &[]),
    ("verify", &["--json"]),
    ("stats", &[]),
    ("stats", &["--json"]),
    ("repair", &[]),
    ("prune", &["--before", "5"]),
];

/// A clean segment file (id 1) as the tool writes it.
fn clean_segment(scratch: &Path) -> Vec<u8> {
    let dir = scratch.join("template");
    if !dir.exists() {
        build_journal(&dir, 20, 4096);
    }
    fs::read(segment_path(&dir, 1)).unwrap()
}

/// `segment` with `patch` applied to its header and the header checksum recomputed.
fn patched(segment: &[u8], patch: impl Fn(&mut [u8])) -> Vec<u8> {
    let mut bytes = segment.to_vec();
    patch(&mut bytes[..HEADER_LEN as usize]);
    let checksum = crc32fast::hash(&bytes[..OFF_HEADER_CHECKSUM as usize]);
    put_u32(&mut bytes, OFF_HEADER_CHECKSUM, checksum);
    bytes
}

fn put_u64(header: &mut [u8], offset: u64, value: u64) {
    let o = offset as usize;
    header[o..o + 8].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(header: &mut [u8], offset: u64, value: u32) {
    let o = offset as usize;
    header[o..o + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u16(header: &mut [u8], offset: u64, value: u16) {
    let o = offset as usize;
    header[o..o + 2].copy_from_slice(&value.to_le_bytes());
}

/// Files of a journal directory: (segment id, contents).
type Files = Vec<(u64, Vec<u8>)>;

/// The hostile journal directories: (name, files).
fn hostile_cases(scratch: &Path) -> Vec<(&'static str, Files)> {
    let clean = clean_segment(scratch);
    let mut rng = Rng::new(7);
    let one = |bytes: Vec<u8>| vec![(1u64, bytes)];
    let mut cases = vec![
        ("random bytes", one(rng.bytes(clean.len()))),
        ("random short file", one(rng.bytes(77))),
        ("empty file", one(Vec::new())),
        ("truncated header", one(clean[..60].to_vec())),
        ("header only", one(clean[..HEADER_LEN as usize].to_vec())),
        (
            "truncated data area",
            one(clean[..HEADER_LEN as usize + 1000].to_vec()),
        ),
        (
            "huge claimed capacity",
            one(patched(&clean, |h| put_u64(h, OFF_CAPACITY, 1 << 40))),
        ),
        (
            "huge claimed capacity, short file",
            one(patched(&clean, |h| put_u64(h, OFF_CAPACITY, 1 << 40))[..200].to_vec()),
        ),
        (
            "capacity over the limit",
            one(patched(&clean, |h| put_u64(h, OFF_CAPACITY, (1 << 40) + 8))),
        ),
        (
            "capacity u64::MAX",
            one(patched(&clean, |h| put_u64(h, OFF_CAPACITY, u64::MAX))),
        ),
        (
            "unaligned capacity",
            one(patched(&clean, |h| put_u64(h, OFF_CAPACITY, 4093))),
        ),
        (
            "zero capacity",
            one(patched(&clean, |h| put_u64(h, OFF_CAPACITY, 0))),
        ),
        (
            "impossible max record length",
            one(patched(&clean, |h| put_u32(h, 40, u32::MAX))),
        ),
        (
            "newer format version",
            one(patched(&clean, |h| put_u16(h, 8, 3))),
        ),
        (
            "unknown flags",
            one(patched(&clean, |h| put_u32(h, OFF_FLAGS, 0x8000_0000))),
        ),
        (
            "wrong header length",
            one(patched(&clean, |h| put_u16(h, 10, 64))),
        ),
        (
            "unknown tick unit",
            one(patched(&clean, |h| put_u32(h, 12, 99))),
        ),
        (
            "file named for another segment",
            one(patched(&clean, |h| put_u64(h, OFF_CHANNEL_ID, 7))),
        ),
    ];
    let mut bad_checksum = clean.clone();
    bad_checksum[40] ^= 0x01; // a header byte the checksum covers
    cases.push(("bad header checksum", one(bad_checksum)));
    // A valid journal followed by a garbage segment.
    cases.push((
        "garbage after a valid segment",
        vec![(1, clean.clone()), (2, rng.bytes(clean.len()))],
    ));
    cases
}

/// Builds the directory of a hostile case under `scratch`, afresh.
fn make_case(scratch: &Path, index: usize, files: &[(u64, Vec<u8>)]) -> PathBuf {
    let dir = scratch.join(format!("case-{index}"));
    if dir.exists() {
        fs::remove_dir_all(&dir).unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    for (id, bytes) in files {
        fs::write(segment_path(&dir, *id), bytes).unwrap();
    }
    dir
}

/// Runs `kekbit SUB DIR EXTRA...` (a follower gets five seconds; it must fail at once).
fn attempt(sub: &str, dir: &Path, extra: &[&str]) -> Run {
    run_args_limited(
        sub_args(sub, dir, extra),
        b"a record\nanother\n",
        Duration::from_secs(5),
    )
}

/// The contract for a hostile input: no panic; a failure, with one line on stderr naming
/// `name`; or, for `verify`, a damage report on stdout naming `name` with exit status 2.
fn assert_fails_cleanly(run: &Run, sub: &str, name: &str, case: &str) {
    assert_no_panic(run);
    let context = format!("case {case:?}\n{}", run.describe());
    assert_ne!(run.code(), 0, "expected a failure: {context}");
    if sub == "verify" && run.code() == 2 {
        assert!(run.err_lines().len() <= 1, "{context}");
        assert!(
            run.out().contains(name) || run.stderr.contains(name),
            "verify's report does not name {name:?}: {context}"
        );
        return;
    }
    assert_eq!(
        run.err_lines().len(),
        1,
        "expected exactly one line on stderr: {context}"
    );
    assert!(
        run.stderr.contains(name),
        "stderr does not name {name:?}: {context}"
    );
}

#[test]
fn hostile_segment_files_fail_cleanly_in_every_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path();
    let cases = hostile_cases(scratch);
    for (index, (case, files)) in cases.iter().enumerate() {
        for (sub, extra) in COMMANDS {
            let dir = make_case(scratch, index, files);
            let run = attempt(sub, &dir, extra);
            // A range that lies wholly in the valid segment before the garbage one is read
            // and printed in full: the damage is not in what was asked for.
            let before_damage = *case == "garbage after a valid segment"
                && *sub == "dump"
                && extra.contains(&"--to");
            if before_damage && run.code() == 0 {
                assert_no_panic(&run);
                assert_eq!(run.out().lines().count(), 3, "{}", run.describe());
                continue;
            }
            assert_fails_cleanly(&run, sub, &display(&dir), case);
        }
    }
}

#[test]
fn missing_directories_and_regular_files_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-journal");
    let file = tmp.path().join("a-regular-file");
    fs::write(&file, b"not a directory\n").unwrap();
    let under_file = file.join("journal");
    let segment_as_dir = tmp.path().join("0000000000000001.kekbit");
    fs::write(&segment_as_dir, clean_segment(tmp.path())).unwrap();

    for target in [&missing, &file, &under_file, &segment_as_dir] {
        for (sub, extra) in COMMANDS {
            if target == &missing && *sub == "append" && extra.contains(&"--create") {
                continue; // creating a new journal there is legitimate
            }
            if target == &missing && extra.contains(&"--from") {
                // Checked on its own (and failing) in
                // dump_and_tail_from_a_sequence_number_fail_on_a_missing_or_empty_directory.
                continue;
            }
            let run = attempt(sub, target, extra);
            assert_fails_cleanly(&run, sub, &display(target), &display(target));
        }
    }
    assert!(!missing.exists(), "a failed command created the directory");
}

// Regression: `dump --from`/`tail --from` on a missing or empty directory exited 0 with no
// output; only the paths without `--from` checked that a journal was there.
#[test]
fn dump_and_tail_from_a_sequence_number_fail_on_a_missing_or_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-journal");
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for target in [&missing, &empty] {
        for (sub, extra) in [
            ("dump", &["--from", "0"][..]),
            ("dump", &["--from", "0", "--to", "10"][..]),
            ("tail", &["--from", "0"][..]),
        ] {
            let run = attempt(sub, target, extra);
            assert_fails_cleanly(&run, sub, &display(target), &display(target));
        }
    }
}

#[test]
fn options_the_journal_cannot_use_fail_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, extra) in [
        &["--segment-size", "0"][..],
        &["--segment-size", "8"][..],
        &["--segment-size", "2199023255552"][..],
        &["--max-record", "4294967295"][..],
        &["--segment-size", "4096", "--max-record", "1000000"][..],
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("j{i}"));
        let mut all = vec!["--create"];
        all.extend_from_slice(extra);
        let run = run_in("append", &dir, &all, b"x\n");
        assert_fails_cleanly(&run, "append", &display(&dir), &format!("{extra:?}"));
    }
    // Arguments the parser rejects: a usage error, never a panic.
    let dir = tmp.path().join("journal");
    for extra in [
        &["--durability", "sometimes"][..],
        &["--durability", "every:0"][..],
        &["--durability", "interval:x"][..],
        &["--segment-size", "-1"][..],
        &["--max-record", "lots"][..],
    ] {
        let run = run_in("append", &dir, extra, b"x\n");
        assert_no_panic(&run);
        assert_ne!(run.code(), 0, "{}", run.describe());
    }
    for (sub, extra) in [
        ("dump", &["--from", "minus one"][..]),
        ("dump", &["--format", "xml"][..]),
        ("prune", &[][..]),
        ("prune", &["--before", "-3"][..]),
    ] {
        let run = run(sub, &dir, extra);
        assert_no_panic(&run);
        assert_ne!(run.code(), 0, "{}", run.describe());
    }
}

// Regression: AppendError::RecordTooLarge's message named no file or directory.
#[test]
fn a_record_too_large_fails_in_one_line_naming_the_journal() {
    let (_tmp, dir) = journal_dir();
    let mut input = b"small\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 200));
    input.extend_from_slice(b"\nnever appended\n");
    let append = run_in(
        "append",
        &dir,
        &["--create", "--max-record", "100", "--ack"],
        &input,
    );
    assert_fails_cleanly(&append, "append", &display(&dir), "record too large");
    // The record before it was appended and acknowledged; nothing after it.
    assert_eq!(append.out(), "0\n");
    assert_eq!(run("dump", &dir, &[]).expect_ok().out(), "0\tsmall\n");
}

#[test]
fn help_exits_0_and_names_every_option() {
    let top = run_args(args(&[&"--help"]), b"");
    top.expect_ok();
    for sub in [
        "append", "dump", "tail", "verify", "stats", "repair", "prune",
    ] {
        assert!(top.out().contains(sub), "--help does not list {sub}");
    }
    let options: &[(&str, &[&str])] = &[
        (
            "append",
            &[
                "--create",
                "--segment-size",
                "--max-record",
                "--durability",
                "--ack",
                "--null",
            ],
        ),
        ("dump", &["--from", "--to", "--format"]),
        ("tail", &["--from", "--follow"]),
        ("verify", &["--json"]),
        ("stats", &["--json"]),
        ("repair", &["DIR"]),
        ("prune", &["--before"]),
    ];
    for (sub, names) in options {
        for help in ["--help", "-h"] {
            let run = run_args(args(&[sub, &help]), b"");
            run.expect_ok();
            for name in *names {
                assert!(
                    run.out().contains(name),
                    "kekbit {sub} {help} does not mention {name}\n{}",
                    run.describe()
                );
            }
        }
        run_args(args(&[&"help", sub]), b"").expect_ok();
    }
}

// Regression: verify, stats, repair and prune panicked (exit 101) on a closed standard
// output (`| head`) because they printed with println!.
#[test]
fn closed_standard_output_never_panics() {
    let (_tmp, dir) = temp_journal(50, 4096);
    let mut panicked = Vec::new();
    for (sub, extra) in [
        ("dump", &[][..]),
        ("dump", &["--format", "json"][..]),
        ("tail", &[][..]),
        ("verify", &[][..]),
        ("verify", &["--json"][..]),
        ("stats", &[][..]),
        ("stats", &["--json"][..]),
        ("repair", &[][..]),
        ("prune", &["--before", "0"][..]),
        ("append", &["--ack"][..]),
    ] {
        // A pipe whose reading end is closed before the child starts: every write to
        // standard output fails with EPIPE, as under `kekbit ... | head -0`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let run = run_with_stdout(
            sub_args(sub, &dir, extra),
            b"record\n",
            RUN_LIMIT,
            writer.into(),
        );
        let broken = run.code() < 0
            || run.code() == 101
            || run.stderr.contains("panicked")
            || run.err_lines().len() > 1;
        if broken {
            panicked.push(run.describe());
        }
    }
    assert!(
        panicked.is_empty(),
        "with standard output closed, {} commands broke the contract:\n{}",
        panicked.len(),
        panicked.join("\n")
    );
}
