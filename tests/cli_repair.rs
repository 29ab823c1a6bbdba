#![cfg(feature = "cli")]
//! `kekbit repair` after a crash: a torn tail makes `verify` exit 1; `repair` exits 0, after
//! which `verify` exits 0 with every record still there and the journal appendable with the
//! sequence continuing. No segment file shrinks (sizes compared before and after; only
//! prepared, never-linked segment files, or a killed writer's half-made temporary ones, may
//! go). While a `kekbit append` holds the journal, `repair` refuses with a non-zero exit and
//! one line saying the journal is locked by another writer, and changes nothing.

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;

use cli_common::*;

const SEGMENT: u64 = 4096;

/// Asserts no file of `before` shrank or, unless it was a pending segment, vanished.
fn assert_nothing_shrank(dir: &Path, before: &[(String, u64)], pending: &[String]) {
    let after = file_sizes(dir);
    for (name, size) in before {
        match after.iter().find(|(n, _)| n == name) {
            Some((_, now)) => assert!(now >= size, "{name} shrank from {size} to {now} bytes"),
            // A prepared segment, or one a killed writer left half made under its
            // temporary name, holds no record and may go.
            None => assert!(
                pending.contains(name) || (name.starts_with('.') && name.contains(".kekbit.tmp-")),
                "{name} was removed, and it was not a prepared segment"
            ),
        }
    }
}

/// Names of the pending segment files in `dir`.
fn pending_files(dir: &Path) -> Vec<String> {
    segment_ids(dir)
        .into_iter()
        .filter(|&id| is_pending(&segment_path(dir, id)))
        .map(|id| format!("{id:016x}.kekbit"))
        .collect()
}

#[test]
fn repair_makes_a_torn_tail_unreadable_without_shrinking_files() {
    let (_tmp, dir) = temp_journal(300, SEGMENT);
    killed_writer(&dir, 300, 500, SEGMENT);
    let (torn_segment, torn_at) = add_torn_tail(&dir);

    run("verify", &dir, &[]).expect_code(1);
    let before = file_sizes(&dir);
    let pending = pending_files(&dir);
    let torn_before = std::fs::read(&torn_segment).unwrap();

    run("repair", &dir, &[]).expect_ok();
    assert_nothing_shrank(&dir, &before, &pending);
    // The records before the torn bytes are untouched.
    let torn_after = std::fs::read(&torn_segment).unwrap();
    let kept = (HEADER_LEN + torn_at) as usize;
    assert_eq!(
        torn_after[HEADER_LEN as usize..kept],
        torn_before[HEADER_LEN as usize..kept]
    );

    let report = parse_json_line(
        run("verify", &dir, &["--json"])
            .expect_ok()
            .out()
            .trim_end(),
    );
    assert_eq!(report.u64_field("torn_tail_bytes"), 0);
    assert_eq!(report.u64_field("records"), 500);
    assert_eq!(report.u64_field("last_sequence"), 499);

    // Every record still reads, and a second repair has nothing to do.
    assert_eq!(
        run("dump", &dir, &[]).expect_ok().out(),
        text_lines(0..500, numbered)
    );
    let before = file_sizes(&dir);
    run("repair", &dir, &[]).expect_ok();
    assert_nothing_shrank(&dir, &before, &[]);
    run("verify", &dir, &[]).expect_ok();

    // Appending continues the sequence.
    assert_eq!(append_acked(&dir, b"after repair\n"), "500\n");
    run("verify", &dir, &[]).expect_ok();
}

#[test]
fn repair_refuses_while_a_writer_holds_the_journal() {
    let (_tmp, dir) = temp_journal(100, SEGMENT);
    let mut writer = holding_writer(&dir, &["--segment-size", "4096"], 100);
    // The linked segments and their bytes (the writer may still be preparing its next
    // segment in the background: pending files are left out).
    let linked = |dir: &Path| -> Vec<(u64, Vec<u8>)> {
        linked_segment_ids(dir)
            .into_iter()
            .map(|id| (id, std::fs::read(segment_path(dir, id)).unwrap()))
            .collect()
    };
    let before = linked(&dir);

    let repair = run("repair", &dir, &[]);
    repair.expect_one_line_error(&["locked by another writer", &display(&dir)]);
    assert!(linked(&dir) == before, "a refused repair changes nothing");

    // Once the writer is gone (killed), repair runs.
    writer.kill();
    run("repair", &dir, &[]).expect_ok();
    run("verify", &dir, &[]).expect_ok();
    assert_eq!(
        run("dump", &dir, &["--from", "99"]).expect_ok().out(),
        format!("99\t{}\n100\theld\n", numbered(99))
    );
}
