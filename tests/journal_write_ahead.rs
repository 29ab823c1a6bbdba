//! The prefaulting helper writes the zero pages ahead of a journal segment's writer back to
//! the device while syncs keep up with the writer (so that the file system allocates their
//! blocks before records land there, not in each small sync), and never for a writer that
//! does not sync (every block would be written twice).
//!
//! The writebacks are observed through the I/O seam (`IoOp::WriteBack`).
#![cfg(feature = "fault-injection")]

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use kekbit::fault::{IoObserver, IoOp};
use kekbit::journal::{Durability, Journal};

#[path = "common/faults.rs"]
mod faults;
use faults::{serial, Installed};

/// Records the ranges written back ahead in files under `dir`.
struct WriteBacks {
    dir: PathBuf,
    ranges: Mutex<Vec<(PathBuf, u64, u64)>>,
}

impl IoObserver for WriteBacks {
    fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
        if let IoOp::WriteBack(path, offset, len) = *op {
            if path.starts_with(&self.dir) {
                let mut ranges = self.ranges.lock().unwrap();
                ranges.push((path.to_path_buf(), offset, len));
            }
        }
        Ok(())
    }
}

const SEGMENT: u64 = 4 << 20;

/// Appends 1.5 MiB of 128-byte records to a fresh journal, calling `sync` after every 32
/// records if `syncing`, then waits up to `wait` for a writeback ahead; returns the ranges
/// written back and the bytes appended (the data area's end).
fn appended(
    syncing: bool,
    wait: Duration,
) -> (Vec<(PathBuf, u64, u64)>, Journal, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let observer = Arc::new(WriteBacks {
        dir: dir.path().to_path_buf(),
        ranges: Mutex::default(),
    });
    let installed = Installed::new(&observer);
    let journal = Journal::options()
        .segment_capacity(SEGMENT)
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    let record = [5u8; 128];
    let records = (3u64 << 19) / 136;
    for n in 1..=records {
        journal.append(&record).unwrap();
        if syncing && n % 32 == 0 {
            journal.sync().unwrap();
        }
    }
    let since = Instant::now();
    while observer.ranges.lock().unwrap().is_empty() && since.elapsed() < wait {
        thread::sleep(Duration::from_millis(10));
    }
    drop(installed);
    let ranges = observer.ranges.lock().unwrap().clone();
    (ranges, journal, dir)
}

fn segment_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn pages_ahead_of_a_syncing_writer_are_written_back() {
    let _serial = serial();
    let (ranges, journal, _dir) = appended(true, Duration::from_secs(10));
    assert!(
        !ranges.is_empty(),
        "no writeback ahead of a writer syncing every 32 records"
    );
    // Ranges of the segment's file, page-aligned, each after the one before, and past
    // the records synced when the helper looked (they start 64 KiB past the writer, whose
    // first wake-up of the helper comes 16 KiB into the segment).
    let mut end = 0;
    for (path, offset, len) in &ranges {
        assert!(offset % 4096 == 0 && len % 4096 == 0, "{ranges:?}");
        assert!(
            *offset >= end && offset + len <= segment_len(path),
            "{ranges:?}"
        );
        assert!(
            *offset >= (16 + 64) << 10,
            "written back at {offset}, before the writer"
        );
        end = offset + len;
    }
    // Nothing of the journal changed: its records read back.
    assert_eq!(journal.durable_count(), (3u64 << 19) / 136 / 32 * 32);
}

#[test]
fn a_writer_that_does_not_sync_gets_no_writeback_ahead() {
    let _serial = serial();
    // The helper looks 16 KiB into the segment, then at every 256 KiB the writer moves:
    // seven times here.
    let (ranges, _journal, _dir) = appended(false, Duration::from_millis(300));
    assert!(
        ranges.is_empty(),
        "written back ahead without syncs: {ranges:?}"
    );
}
