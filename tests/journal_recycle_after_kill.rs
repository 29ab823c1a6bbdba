//! A journal that recycles its pruned segments under `Durability::Never`, its writer process
//! killed (SIGKILL) at arbitrary moments, reopens with every record it published and no stale
//! one (docs/FORMAT.md, "Recycled segments": a process crash at any step of recycling keeps
//! the page cache, so only the files' names and the kept files matter).
//!
//! A child process (this test binary re-run) opens the journal (4 KiB segments, about 70
//! records each), appends records derived from their sequence numbers, prunes all but its
//! last 100 records every 10 appends (so that a pruned segment is recycled about every 70
//! appends, none of their seals durable: it never syncs) and prints each sequence number
//! `append` returned. The parent kills it after a chosen number of acknowledgements, then
//! reopens the journal and checks: the recovered journal holds every acknowledged record (at
//! most one more, the append in flight), each exactly, in order, from its first record on; no
//! kept file (`.….recycle-…`) is left; appending continues where recovery says. Each kill
//! continues the journal the previous child left.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::time::{Duration, Instant};

use journal_common::{
    acks_until_killed, assert_sequence, child_dir, read_journal, record, segments, spawn_child,
    tell_parent,
};
use kekbit::journal::{Durability, Journal, JournalOptions};

const CHILD: &str = "child_appends_and_prunes_until_killed";
/// Records kept by each prune.
const KEEP: u64 = 100;

fn options() -> JournalOptions {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .durability(Durability::Never)
        .recycle_segments(4)
}

/// Child entry point; does nothing in an ordinary test run. Appends and prunes until killed
/// (or for 30 s at most), printing each acknowledged sequence number.
#[test]
fn child_appends_and_prunes_until_killed() {
    let Some(dir) = child_dir() else { return };
    let journal = options().open(&dir).unwrap();
    let mut seq = journal.next_sequence();
    tell_parent(&format!("open {seq}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
        tell_parent(&format!("ack {seq}"));
        seq += 1;
        if seq.is_multiple_of(10) {
            journal.prune_before(seq.saturating_sub(KEEP)).unwrap();
        }
    }
}

/// Runs a child on the journal in `dir` (which holds records up to `start`), kills it after
/// `kill_after` acknowledgements, reopens and checks. Returns the journal's next sequence
/// number, and how many of its segments are recycled ones.
fn kill_and_recover(dir: &Path, start: u64, kill_after: u64) -> (u64, usize) {
    let case = format!("{start} records, kill after {kill_after} acks");
    let mut child = spawn_child(CHILD, dir, &[]);
    let acked = acks_until_killed(&mut child, start, kill_after, &case);

    let journal = options().open(dir).unwrap();
    let report = journal.open_report().clone();
    let next = journal.next_sequence();
    assert!(
        next == acked || next == acked + 1,
        "{case}: {next} records after the kill, {acked} acknowledged ({report:?})"
    );
    let kept = std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().contains(".recycle-")
        })
        .count();
    assert_eq!(kept, 0, "{case}: kept files left after recovery");
    let first = journal.first_sequence().unwrap();
    // Pruned up to the segment holding `acked - KEEP` at the last prune (ten appends back at
    // most; a segment holds at most 256 of these records).
    assert!(
        first + KEEP + 10 + 256 >= acked,
        "{case}: first {first}, next {next}"
    );
    assert_sequence(&read_journal(dir, first), first, next - first, record);
    for seq in next..next + 3 {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq, "{case}");
    }
    drop(journal);
    assert_sequence(&read_journal(dir, first), first, next + 3 - first, record);
    let recycled = segments(dir)
        .iter()
        .filter(|s| kekbit::core::ShmReader::open(&s.path).is_ok_and(|r| r.header().is_recycled()))
        .count();
    (next + 3, recycled)
}

#[test]
fn killing_a_recycling_writer_loses_no_published_record_and_returns_no_stale_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut total, mut recycled) = (0, 0);
    for kill_after in [700, 333, 1000, 71] {
        let (next, now) = kill_and_recover(dir.path(), total, kill_after);
        total = next;
        recycled += now;
    }
    assert!(recycled > 0, "no recycled segment was ever found");
}
