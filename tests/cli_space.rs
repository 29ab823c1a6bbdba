#![cfg(feature = "cli")]
//! Six one-record `kekbit append` runs on a journal with the default 64 MiB segments leave
//! about one segment allocated on storage, not six (issue 14, "Space proportional to data":
//! they left 385 MiB for six records). Allocated size as `du` counts it: the sum of
//! `st_blocks * 512` of the journal directory's files.

#[path = "common/cli.rs"]
mod cli_common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use cli_common::*;

fn allocated(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

// Regression: issue 14 item 2: six `kekbit append` runs left six allocated 64 MiB segments.
#[test]
fn six_appends_leave_about_one_segment_allocated() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    for i in 0..6 {
        let line = format!("record {i}\n");
        run_in("append", &dir, &["--create"], line.as_bytes()).expect_ok();
    }
    let ids = linked_segment_ids(&dir);
    assert_eq!(ids.len(), 6);
    let segment = fs::metadata(segment_path(&dir, 1)).unwrap().len();
    // The records, and per segment the page holding its header and seal and the file's last
    // block (the file's end is not block-aligned: the header is 128 bytes).
    let allowance = 6 * 2 * 4096;
    let used = allocated(&dir);
    assert!(
        used <= segment + allowance,
        "{used} bytes allocated for 6 records in segments of {segment} bytes"
    );
    let out = run("dump", &dir, &[]).expect_ok().out();
    assert_eq!(out.lines().count(), 6, "{out}");
}
