#![cfg(feature = "cli")]
//! A second `kekbit append` on a journal whose writer (another `kekbit append`, waiting on
//! its input) is alive fails at once: non-zero exit, exactly one line on stderr saying the
//! journal is locked by another writer and naming the directory, nothing appended and
//! nothing acknowledged. The first writer is unaffected and keeps appending. Once it is
//! killed with SIGKILL, a new `kekbit append` succeeds and continues the sequence after
//! the last record the killed writer appended.

#[path = "common/cli.rs"]
mod cli_common;

use std::time::{Duration, Instant};

use cli_common::*;

#[test]
fn second_writer_is_refused_until_the_first_is_killed() {
    let (_tmp, dir) = journal_dir();
    let mut first = holding_writer(&dir, &["--create", "--segment-size", "4096"], 0);
    first.send(b"one\n");
    assert_eq!(first.line(), "1");

    for extra in [
        &["--ack"][..],
        &["--create", "--durability", "never"][..],
        &["--null", "--segment-size", "8192"][..],
    ] {
        let started = Instant::now();
        let second = run_in("append", &dir, extra, b"intruder\n");
        let took = started.elapsed();
        second.expect_one_line_error(&["locked by another writer", &display(&dir)]);
        assert!(
            second.stdout.is_empty(),
            "the refused writer acknowledged something\n{}",
            second.describe()
        );
        assert!(
            took < Duration::from_secs(5),
            "the refusal took {took:?}: it must not wait for the lock"
        );
    }

    // The first writer is unaffected.
    first.send(b"two\n");
    assert_eq!(first.line(), "2");
    assert!(first.running());
    first.kill();

    assert_eq!(append_acked(&dir, b"three\nfour\n"), "3\n4\n");

    assert_eq!(
        run("dump", &dir, &[]).expect_ok().out(),
        "0\theld\n1\tone\n2\ttwo\n3\tthree\n4\tfour\n"
    );
    run("verify", &dir, &[]).expect_ok();
}
