#![cfg(feature = "cli")]
//! `kekbit prune DIR --before SEQ` removes exactly the oldest segments whose records all
//! have sequence numbers below SEQ (segment files counted against the segment headers'
//! first sequence numbers), and never the last segment, even when every record is below
//! SEQ. Afterwards `dump` starts at the new first record (with or without `--from`),
//! `stats` and `verify` agree, appending continues the sequence, and `dump --from` a
//! pruned sequence number fails with a one-line error.

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;

use cli_common::*;

const RECORDS: u64 = 800;

/// (id, first sequence number) of every linked segment of `dir`.
fn bases(dir: &Path) -> Vec<(u64, u64)> {
    linked_segment_ids(dir)
        .into_iter()
        .map(|id| (id, base_sequence(&segment_path(dir, id))))
        .collect()
}

/// The segments that must remain after pruning `segments` before `before`: a segment goes
/// when the next one starts at or below `before`; the last one always stays.
fn survivors(segments: &[(u64, u64)], before: u64) -> Vec<(u64, u64)> {
    let gone = segments
        .windows(2)
        .take_while(|pair| pair[1].1 <= before)
        .count();
    segments[gone..].to_vec()
}

/// The payload of record `seq`: the initial records, then one appended after pruning.
fn payload(seq: u64) -> String {
    if seq < RECORDS {
        numbered(seq)
    } else {
        "after prune".to_string()
    }
}

/// Prunes before `before` and checks the outcome against the model; returns the journal's
/// new first sequence number.
fn prune_and_check(dir: &Path, before: u64, last: u64) -> u64 {
    let segments = bases(dir);
    let want = survivors(&segments, before);
    let removed = segments.len() - want.len();
    let prune = run("prune", dir, &["--before", &before.to_string()]);
    prune.expect_ok();
    assert!(
        prune.out().contains(&format!("removed {removed} segments")),
        "prune reports how many segments it removed ({removed}):\n{}",
        prune.describe()
    );
    assert_eq!(
        bases(dir),
        want,
        "segments left after prune --before {before}"
    );
    assert_eq!(
        segment_ids(dir).len(),
        want.len(),
        "segment files left after prune --before {before}"
    );
    let first = want[0].1;
    for &(id, base) in &segments[..removed] {
        let next_base = segments
            .iter()
            .find(|s| s.0 == id + 1)
            .map(|s| s.1)
            .unwrap();
        assert!(
            next_base <= before,
            "segment {id} (records {base}..{next_base}) was not wholly below {before}"
        );
    }

    let stats = stats_json(dir);
    assert_eq!(stats.u64_field("first_sequence"), first);
    assert_eq!(stats.u64_field("last_sequence"), last);
    assert_eq!(stats.u64_field("segments"), want.len() as u64);
    run("verify", dir, &[]).expect_ok();

    // Dump from the new start, with and without --from.
    let want = text_lines(first..last + 1, payload);
    assert_eq!(run_dump(dir, &[]), want);
    assert_eq!(run_dump(dir, &["--from", &first.to_string()]), want);
    first
}

/// `kekbit dump DIR EXTRA...`, which must succeed; its standard output.
fn run_dump(dir: &Path, extra: &[&str]) -> String {
    run("dump", dir, extra).expect_ok().out()
}

/// `dump --from` a pruned sequence number: a one-line error naming the directory and the
/// sequence number, nothing on standard output.
fn dump_pruned_fails(dir: &Path, seq: u64) {
    let run = run("dump", dir, &["--from", &seq.to_string()]);
    run.expect_one_line_error(&[&display(dir), &seq.to_string()]);
    assert!(
        run.stderr.to_lowercase().contains("prune"),
        "the error says the records were pruned\n{}",
        run.describe()
    );
    assert!(run.stdout.is_empty(), "{}", run.describe());
}

#[test]
fn prune_removes_exactly_the_segments_wholly_below_and_never_the_last() {
    let (_tmp, dir) = temp_journal(RECORDS, 4096);
    let segments = bases(&dir);
    assert!(segments.len() >= 8, "{segments:?}");
    let last = RECORDS - 1;

    // Nothing is below 0, and nothing is wholly below the first segment's second record.
    assert_eq!(prune_and_check(&dir, 0, last), 0);
    assert_eq!(prune_and_check(&dir, segments[1].1 - 1, last), 0);

    // Exactly at a segment boundary: the segments before it go.
    let first = prune_and_check(&dir, segments[3].1, last);
    assert_eq!(first, segments[3].1);
    dump_pruned_fails(&dir, 0);
    dump_pruned_fails(&dir, first - 1);

    // One past a boundary: the segment holding it stays.
    let first = prune_and_check(&dir, segments[5].1 + 1, last);
    assert_eq!(first, segments[5].1);
    dump_pruned_fails(&dir, segments[4].1);

    // Pruning again with the same bound removes nothing more.
    assert_eq!(prune_and_check(&dir, segments[5].1 + 1, last), first);

    // Every record below the bound: all but the last segment go.
    let first = prune_and_check(&dir, u64::MAX, last);
    assert_eq!(first, segments.last().unwrap().1);
    assert_eq!(linked_segment_ids(&dir), [segments.last().unwrap().0]);
    dump_pruned_fails(&dir, first - 1);

    // The journal stays appendable; the last segment is kept once more.
    assert_eq!(append_acked(&dir, b"after prune\n"), format!("{RECORDS}\n"));
    let first = prune_and_check(&dir, u64::MAX, RECORDS);
    assert_eq!(first, RECORDS);
    assert_eq!(run_dump(&dir, &[]), format!("{RECORDS}\tafter prune\n"));
}
