//! A reader in another process follows a journal live across many rollovers. The child (this
//! test binary re-run) opens a `JournalReader` from sequence 0 on the empty directory before
//! the journal exists, tells the parent, and then follows with `next_timeout` while the
//! parent creates the journal and appends 20,000 records into 4 KiB segments (about 220
//! rollovers). The child checks every record's sequence number and content, in order, and
//! reports how many it saw; the parent requires all of them. `next_timeout` must never give
//! up before its timeout, nor twice on a record already published (a writer slowed down by
//! the machine is waited for). Every wait on both sides is bounded, so a lost record or a
//! stuck reader fails the test instead of hanging it.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::time::{Duration, Instant};

use journal_common::{child_dir, open_small, record, spawn_child, tell_parent};
use kekbit::journal::JournalReader;

const COUNT: u64 = 20_000;
const CHILD: &str = "child_follows_the_journal";
/// Wait of one `next_timeout` call.
const WAIT: Duration = Duration::from_secs(5);

/// Whether record `seq` of the journal in `dir` is published: a new reader returns it.
fn published(dir: &Path, seq: u64) -> bool {
    let mut probe = JournalReader::open(dir, seq).unwrap();
    matches!(probe.try_next(), Ok(Some(_)))
}

/// Child entry point; does nothing in an ordinary test run.
#[test]
fn child_follows_the_journal() {
    let Some(dir) = child_dir() else { return };
    // No segment exists yet: the reader waits for the journal to be created.
    let mut reader = JournalReader::open(&dir, 0).unwrap();
    assert_eq!(reader.try_next().unwrap(), None);
    tell_parent("ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = 0u64;
    // Whether the previous wait for `next` ended with nothing although the record was there.
    let mut missed = false;
    while next < COUNT {
        assert!(Instant::now() < deadline, "child: gave up at record {next}");
        let called = Instant::now();
        match reader.next_timeout(WAIT) {
            Ok(Some((seq, bytes))) => {
                assert_eq!(seq, next, "child: sequence number");
                assert!(bytes == record(seq), "child: record {seq} differs");
                next += 1;
                missed = false;
                if next.is_multiple_of(5_000) {
                    tell_parent(&format!("progress {next}"));
                }
            }
            Ok(None) => {
                let waited = called.elapsed();
                assert!(
                    waited >= WAIT,
                    "child: next_timeout({WAIT:?}) returned None after {waited:?} at {next}"
                );
                // A slow writer is waited for; a record that is there must come by the end
                // of the next wait at the latest.
                let there = published(&dir, next);
                assert!(
                    !(there && missed),
                    "child: record {next} was published but next_timeout({WAIT:?}) returned \
                     None twice"
                );
                missed = there;
            }
            Err(e) => panic!("child: at record {next}: {e}"),
        }
    }
    assert_eq!(
        reader.try_next().unwrap(),
        None,
        "child: a record beyond the last"
    );
    tell_parent(&format!("verified {next}"));
}

#[test]
fn a_reader_in_a_child_process_follows_the_journal_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(CHILD, dir.path(), &[]);
    assert_eq!(
        child.expect_line(Duration::from_secs(20), "\"ready\""),
        "ready"
    );

    let journal = open_small(dir.path());
    for seq in 0..COUNT {
        assert_eq!(journal.append(&record(seq)).unwrap(), seq);
    }

    let mut last = String::new();
    while let Some(line) = child.line(Duration::from_secs(70)) {
        last = line;
        if last.starts_with("verified") {
            break;
        }
    }
    let status = child.wait(Duration::from_secs(10));
    let stderr = child.stderr_text();
    assert_eq!(
        last,
        format!("verified {COUNT}"),
        "the child's last report; its stderr:\n{stderr}"
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "child failed or hung ({status:?}):\n{stderr}"
    );
    drop(journal);
}
