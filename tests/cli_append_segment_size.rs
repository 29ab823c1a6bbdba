#![cfg(feature = "cli")]
//! A journal's segment size is remembered: `append --create --segment-size 4096`, then plain
//! `append` sessions, keep making 4 KiB segments; `--segment-size` changes it from then on.

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;

use cli_common::*;

/// The capacity of every linked segment of `dir`.
fn capacities(dir: &Path) -> Vec<u64> {
    linked_segment_ids(dir)
        .into_iter()
        .map(|id| capacity(&segment_path(dir, id)))
        .collect()
}

fn lines(range: std::ops::Range<u64>) -> String {
    range
        .map(|i| format!("record {i} {}\n", "x".repeat(200)))
        .collect()
}

#[test]
fn plain_appends_keep_the_journals_segment_size() {
    // Regression: issue 16 item 8: `append --create --segment-size 4096` then a plain
    // `append` made 64 MiB segments.
    let (_tmp, dir) = journal_dir();
    run_in(
        "append",
        &dir,
        &["--create", "--segment-size", "4096"],
        lines(0..40).as_bytes(),
    )
    .expect_ok();
    run_in("append", &dir, &[], lines(40..80).as_bytes()).expect_ok();
    let sizes = capacities(&dir);
    assert!(sizes.len() > 4, "{sizes:?}");
    assert!(sizes.iter().all(|&c| c == 4096), "{sizes:?}");

    // An explicit size changes it, and is kept from then on.
    run_in("append", &dir, &["--segment-size", "8192"], b"bigger\n").expect_ok();
    run_in("append", &dir, &[], b"still bigger\n").expect_ok();
    let sizes = capacities(&dir);
    assert_eq!(&sizes[sizes.len() - 2..], [8192, 8192], "{sizes:?}");
    let dump = run("dump", &dir, &["--from", "80"]).expect_ok().out();
    assert_eq!(dump, "80\tbigger\n81\tstill bigger\n");
}
