//! Probing a journal for a live writer never makes its recovery fail. Readers ask whether a
//! writer holds a channel (`ShmReader::writer_alive`, and `verify`, which asks it of the
//! journal and of its last segment) while `Journal::open` recovers a crashed journal: takes
//! the journal lock, then the last segment's lock to seal it. Each of 20 recoveries of a copy
//! of a crashed journal (its files copied while the writer was alive: unsealed last segment,
//! a segment prepared ahead) runs beside three probing threads (two asking of the
//! segment to be sealed, one verifying), and must succeed.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use journal_common::{copy_dir, linked_segments, open_small, record, segment_file};
use kekbit::core::ShmReader;
use kekbit::journal::{verify, Journal};

const TRIALS: usize = 20;
const RECORDS: u64 = 80;

/// The files of a journal whose writer crashed after `RECORDS` records, under `image`.
fn crashed_journal(image: &Path) {
    let live = tempfile::tempdir().unwrap();
    let journal = open_small(live.path());
    for seq in 0..RECORDS {
        journal.append(&record(seq)).unwrap();
    }
    // The live journal's files, without the temporaries of a segment being prepared ahead
    // (which come and go meanwhile).
    for entry in std::fs::read_dir(live.path()).unwrap() {
        let name = entry.unwrap().file_name();
        if !name.to_string_lossy().starts_with('.') {
            std::fs::copy(live.path().join(&name), image.join(&name)).unwrap();
        }
    }
    drop(journal);
}

#[test]
fn recovery_succeeds_while_readers_probe_for_the_writer() {
    // Regression: issue 11 item 3: a reader's liveness probe made recovery fail with Locked.
    let image = tempfile::tempdir().unwrap();
    crashed_journal(image.path());
    let mut failures = Vec::new();
    let probes = AtomicU64::new(0);
    for trial in 0..TRIALS {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(image.path(), dir.path());
        // The segment recovery seals: the last linked one.
        let tail = linked_segments(dir.path()).last().unwrap().channel_id;
        let tail = ShmReader::open(segment_file(dir.path(), tail)).unwrap();
        let done = AtomicBool::new(false);
        let opened = std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !done.load(Ordering::Relaxed) {
                        std::hint::black_box(tail.writer_alive());
                        probes.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let _ = verify(dir.path(), &mut |_, _| {});
                    probes.fetch_add(1, Ordering::Relaxed);
                }
            });
            let opened = Journal::open(dir.path()).map(drop);
            done.store(true, Ordering::Relaxed);
            opened
        });
        if let Err(e) = opened {
            failures.push(format!("trial {trial}: {e}"));
        }
    }
    println!(
        "{TRIALS} recoveries, {} failed, {} probes",
        failures.len(),
        probes.load(Ordering::Relaxed)
    );
    assert!(failures.is_empty(), "{failures:#?}");
}
