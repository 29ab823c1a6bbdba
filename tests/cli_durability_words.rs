#![cfg(feature = "cli")]
//! `kekbit append --durability` takes the words of the library's `Durability` (`never`,
//! `every-record`, `every:N`, `interval:MS`), the same ones the ledger example takes, and
//! refuses anything else naming the valid words.

#[path = "common/cli.rs"]
mod cli_common;

use cli_common::*;

// Regression: issue 16 item 5: durability was `always`/`every:N` on the CLI, `every`/`n:K` in
// the ledger example and `EveryRecord`/`EveryN(n)` in the library.
#[test]
fn append_takes_the_durability_words_of_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, words) in [
        "never",
        "every-record",
        "every:10",
        "interval:5",
        "interval:0.5",
    ]
    .iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("j{i}"));
        let run = run_in(
            "append",
            &dir,
            &[
                "--create",
                "--segment-size",
                "4096",
                "--durability",
                words,
                "--ack",
            ],
            b"a\nb\n",
        );
        assert_eq!(run.expect_ok().out(), "0\n1\n", "--durability {words}");
    }
    let dir = tmp.path().join("refused");
    for (words, hint) in [
        ("always", "every-record"),
        ("every", "every-record"),
        ("n:10", "every:10"),
        ("every:0", "at least 1"),
        ("sometimes", "unknown policy"),
    ] {
        let run = run_in("append", &dir, &["--create", "--durability", words], b"a\n");
        assert_no_panic(&run);
        assert_ne!(run.code(), 0, "{}", run.describe());
        for needed in [words, hint, "never, every-record, every:N"] {
            assert!(
                run.stderr.contains(needed),
                "no {needed:?} in the message\n{}",
                run.describe()
            );
        }
        assert!(!dir.exists(), "a refused command created {}", dir.display());
    }
}
