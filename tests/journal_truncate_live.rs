//! Live readers meet a truncation: in this process and in child processes (this test binary
//! re-run), a reader that had returned records past the truncation point gets
//! `JournalError::Truncated` and goes on after `seek`; a reader that had not reached it reads
//! the old records before it and then the new ones, seamlessly. Records of 60 bytes or less
//! in 4 KiB segments: 300 records make three or four segments, so both the truncation point and
//! the readers' positions lie in sealed segments.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::time::{Duration, Instant};

use journal_common::{
    child_dir, child_param, line_from_parent, open_small, payload, record, record_len, tell_parent,
    ChildProc,
};
use kekbit::journal::{Journal, JournalError, JournalReader};

const OLD: u64 = 300;
const CUT: u64 = 200;
const NEW: u64 = 10;
const BEHIND: u64 = 150;
const AHEAD: u64 = 250;
const CHILD: &str = "child_reads_across_a_truncation";
const WAIT: Duration = Duration::from_secs(10);

/// Record `seq` written after the truncation: other bytes than the one it replaces.
fn new_record(seq: u64) -> Vec<u8> {
    payload(seq, record_len(seq), 1)
}

/// Reads up to (not including) `upto`, checking the old records.
fn read_to(reader: &mut JournalReader, upto: u64) {
    for seq in reader.next_sequence()..upto {
        let (got, bytes) = reader.next_timeout(WAIT).unwrap().expect("a record");
        assert_eq!(got, seq);
        assert!(bytes == record(seq), "old record {seq}");
    }
}

/// After the truncation: a reader that stopped at `at` goes on as it must.
fn read_after(reader: &mut JournalReader, at: u64) {
    if at > CUT {
        // It returned records 200 to `at - 1`, which are gone: told at once, and again.
        for _ in 0..2 {
            match reader.next_timeout(WAIT) {
                Err(JournalError::Truncated { from, next, .. }) => {
                    assert_eq!((from, next), (CUT, at));
                }
                other => panic!("reader at {at}: {other:?}"),
            }
        }
        assert_eq!(reader.truncation_epoch(), 1);
        reader.seek(CUT).unwrap();
    } else {
        read_to(reader, CUT);
    }
    for seq in CUT..CUT + NEW {
        let (got, bytes) = reader.next_timeout(WAIT).unwrap().expect("a new record");
        assert_eq!(got, seq);
        assert!(bytes == new_record(seq), "new record {seq}");
    }
    assert_eq!(reader.try_next().unwrap(), None);
}

fn write_old(dir: &Path) -> Journal {
    let journal = open_small(dir);
    for seq in 0..OLD {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
    }
    assert!(journal_common::segment_ids(dir).len() >= 3);
    journal
}

fn truncate_and_write_new(journal: &Journal) {
    let report = journal.truncate_from(CUT).unwrap();
    assert_eq!((report.discarded, report.epoch), (OLD - CUT, 1));
    for seq in CUT..CUT + NEW {
        assert_eq!(journal.append(&new_record(seq)).unwrap(), seq);
    }
}

#[test]
fn readers_in_this_process_before_and_past_the_truncation_point() {
    let dir = tempfile::tempdir().unwrap();
    let journal = write_old(dir.path());
    let mut behind = JournalReader::open(dir.path(), 0).unwrap();
    let mut ahead = JournalReader::open(dir.path(), 0).unwrap();
    let mut at_end = JournalReader::open(dir.path(), 0).unwrap();
    read_to(&mut behind, BEHIND);
    read_to(&mut ahead, AHEAD);
    read_to(&mut at_end, OLD);
    // One exactly at the point: it returned nothing from 200 on.
    let mut at_cut = JournalReader::open(dir.path(), 0).unwrap();
    read_to(&mut at_cut, CUT);
    assert_eq!(at_end.try_next().unwrap(), None);
    truncate_and_write_new(&journal);
    read_after(&mut behind, BEHIND);
    read_after(&mut ahead, AHEAD);
    read_after(&mut at_end, OLD);
    read_after(&mut at_cut, CUT);
    // A reader opened now, anywhere, reads the new journal.
    let mut fresh = JournalReader::open(dir.path(), 0).unwrap();
    read_after(&mut fresh, 0);
    assert_eq!(fresh.truncation_epoch(), 1);
}

/// Child entry point; does nothing in an ordinary test run.
#[test]
fn child_reads_across_a_truncation() {
    let Some(dir) = child_dir() else { return };
    let at: u64 = child_param("KEKBIT_TEST_AT").parse().unwrap();
    let mut reader = JournalReader::open(&dir, 0).unwrap();
    read_to(&mut reader, at);
    tell_parent(&format!("at {at}"));
    assert_eq!(line_from_parent().as_deref(), Some("go"));
    read_after(&mut reader, at);
    tell_parent("verified");
}

#[test]
fn readers_in_child_processes_before_and_past_the_truncation_point() {
    let dir = tempfile::tempdir().unwrap();
    let journal = write_old(dir.path());
    let mut children: Vec<ChildProc> = [BEHIND, AHEAD, OLD]
        .iter()
        .map(|at| {
            let env = [
                (journal_common::CHILD_DIR, dir.path().display().to_string()),
                ("KEKBIT_TEST_AT", at.to_string()),
            ];
            ChildProc::spawn(CHILD, &env, true)
        })
        .collect();
    for (child, at) in children.iter_mut().zip([BEHIND, AHEAD, OLD]) {
        assert_eq!(
            child.expect_line(Duration::from_secs(30), "at"),
            format!("at {at}")
        );
    }
    truncate_and_write_new(&journal);
    let deadline = Instant::now() + Duration::from_secs(60);
    for child in &mut children {
        child.send("go");
    }
    for child in &mut children {
        let line = child.line(deadline.saturating_duration_since(Instant::now()));
        if line.as_deref() != Some("verified") {
            let _ = child.kill();
            panic!("child said {line:?}; its stderr:\n{}", child.stderr_text());
        }
    }
    drop(journal);
}
