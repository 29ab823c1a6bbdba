//! A journal's space on storage is proportional to its data, not to how often it was opened
//! (issue 14, "Space proportional to data"): a sealed segment that is never written again has
//! its unused storage released (docs/FORMAT.md, "Releasing a sealed segment's unused
//! space"), on a clean close and when recovery seals a crashed tail. Allocated size is
//! measured as `du` does: the sum of `st_blocks * 512` of the directory's files.

#[path = "common/journal.rs"]
mod journal_common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use journal_common::{
    copy_dir, data_area, nonzero_extent, read_journal, segment_file, segment_ids,
};
use kekbit::core::{shm_reader, ReadError, Reader};
use kekbit::journal::{Durability, Journal, JournalOptions};

/// Bytes allocated to the files of `dir`, as `du` counts them.
fn allocated(dir: &Path) -> u64 {
    // Each file once, as `du` counts it: a segment being prepared in the background has two
    // names for a moment (linked under its final name, its temporary one not yet removed).
    let mut seen = std::collections::HashSet::new();
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(|m| seen.insert(m.ino()))
        .map(|m| m.blocks() * 512)
        .sum()
}

fn allocated_file(path: &Path) -> u64 {
    fs::metadata(path).unwrap().blocks() * 512
}

fn record(i: u64) -> Vec<u8> {
    format!("record {i} of a journal reopened for each").into_bytes()
}

/// What the records and the segments' headers may hold: each segment file keeps the page
/// holding its header and seal, and the file's last block, which the release leaves in place
/// when the file's end is not block-aligned (a header of 128 bytes makes it so).
fn records_allowance(dir: &Path, records: u64) -> u64 {
    let record_bytes: u64 = (0..records).map(|i| 8 + record(i).len() as u64 + 7).sum();
    record_bytes + segment_ids(dir).len() as u64 * 2 * 4096
}

// Regression: issue 14 item 2: every open left a fully allocated segment behind.
#[test]
fn a_hundred_reopens_with_one_record_each_hold_about_one_segment() {
    // 1 MiB segments (1.5 s on ext4, 0.4 s on tmpfs in debug): with the default 64 MiB, a
    // hundred opens took 3 to 10 s on ext4 and 6 to 16 s on tmpfs in debug on a loaded
    // two-core machine, spent prefaulting 16 MiB of each new segment and of the one prepared
    // ahead, not on anything this test checks; the bound scales with the segment. The
    // default size is checked by the ignored test below and by `cli_space`.
    hundred_reopens(Journal::options().segment_capacity(1 << 20));
}

/// [`a_hundred_reopens_with_one_record_each_hold_about_one_segment`] with the default
/// options (64 MiB segments): 3 to 16 s in debug.
#[test]
#[ignore]
fn a_hundred_reopens_with_default_segments_hold_about_one_segment() {
    hundred_reopens(Journal::options());
}

/// Opens the journal a hundred times with `options`, appending one record each time, and
/// checks the space it holds while open and after closing, then reads every record back.
fn hundred_reopens(options: JournalOptions) {
    const OPENS: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    for i in 0..OPENS {
        let journal = options.clone().open(dir.path()).unwrap();
        assert_eq!(journal.append(&record(i)).unwrap(), i);
        if i + 1 == OPENS {
            // Open: the active segment and the ones prepared ahead are allocated in full.
            let segment = fs::metadata(segment_file(dir.path(), 1)).unwrap().len();
            let ahead = options.segments_prepared_ahead() as u64;
            let bound = segment * (1 + ahead) + records_allowance(dir.path(), OPENS);
            let used = allocated(dir.path());
            assert!(
                used <= bound,
                "{used} bytes allocated while open, bound {bound}"
            );
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(segment_ids(dir.path()).len() as u64, OPENS);
    let segment = fs::metadata(segment_file(dir.path(), 1)).unwrap().len();
    let used = allocated(dir.path());
    let bound = segment + records_allowance(dir.path(), OPENS);
    println!(
        "{OPENS} opens in {elapsed:?}: {used} bytes allocated, {} apparent, bound {bound}",
        OPENS * segment
    );
    assert!(
        used <= bound,
        "{used} bytes allocated after closing, bound {bound}"
    );
    let records = read_journal(dir.path(), 0);
    assert_eq!(records.len() as u64, OPENS);
    for (i, (seq, bytes)) in records.iter().enumerate() {
        assert_eq!(
            (*seq, bytes.as_slice()),
            (i as u64, record(i as u64).as_slice())
        );
    }
}

/// Under `Durability::Never` a close syncs nothing, so it releases nothing: the next open
/// makes the tail's seal durable and releases it then.
#[test]
fn without_syncs_the_next_open_releases_the_closed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let options = || {
        Journal::options()
            .segment_capacity(1 << 20)
            .durability(Durability::Never)
    };
    for i in 0..3 {
        let journal = options().open(dir.path()).unwrap();
        journal.append(&record(i)).unwrap();
    }
    let ids = segment_ids(dir.path());
    assert_eq!(ids, vec![1, 2, 3]);
    for id in [1, 2] {
        let used = allocated_file(&segment_file(dir.path(), id));
        assert!(used <= 2 * 4096, "segment {id}: {used} bytes allocated");
    }
    // The last one was closed without a sync: still allocated in full.
    assert!(allocated_file(&segment_file(dir.path(), 3)) >= 1 << 20);
    drop(options().open(dir.path()).unwrap());
    assert!(allocated_file(&segment_file(dir.path(), 3)) <= 2 * 4096);
    assert_eq!(read_journal(dir.path(), 0).len(), 3);
}

/// A crashed writer's tail is sealed by recovery at its cut, and released once that seal is
/// durable. The crash is the journal's files copied while its writer was running (what a
/// killed process leaves: everything published, no seal).
#[test]
fn recovery_releases_the_crashed_tail_it_seals() {
    let live = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(1 << 20)
        .open(live.path())
        .unwrap();
    for i in 0..10 {
        journal.append(&record(i)).unwrap();
    }
    copy_dir(live.path(), crashed.path());
    drop(journal);
    let tail = segment_file(crashed.path(), 1);
    let reopened = Journal::options()
        .segment_capacity(1 << 20)
        .open(crashed.path())
        .unwrap();
    assert_eq!(reopened.open_report().sealed_segment, Some(1));
    let used = allocated_file(&tail);
    assert!(used <= 2 * 4096, "the recovered tail holds {used} bytes");
    assert_eq!(reopened.append(b"after").unwrap(), 10);
    drop(reopened);
    assert_eq!(read_journal(crashed.path(), 0).len(), 11);
}

/// A reader that mapped a segment before its unused space was released reads it to its seal
/// unchanged afterwards; past the seal the file reads as zeros, as it did.
#[test]
fn a_reader_mapping_the_segment_reads_on_across_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(1 << 20)
        .open(dir.path())
        .unwrap();
    let payload = |i: u64| vec![(i % 251) as u8 + 1; 100];
    for i in 0..300 {
        journal.append(&payload(i)).unwrap();
    }
    let mut reader = shm_reader(dir.path(), 1).unwrap();
    for i in 0..150 {
        assert_eq!(reader.try_read().unwrap().unwrap(), payload(i).as_slice());
    }
    drop(journal);
    let path = segment_file(dir.path(), 1);
    let used = allocated_file(&path);
    assert!(used < 64 << 10, "the closed segment holds {used} bytes");
    for i in 150..300 {
        assert_eq!(reader.try_read().unwrap().unwrap(), payload(i).as_slice());
    }
    assert!(matches!(reader.try_read(), Err(ReadError::Closed { .. })));
    let data = data_area(&path);
    let seal_end = 300 * (8 + 104) + 8 + 8 + mark_bytes(300 * 112);
    assert_eq!(nonzero_extent(&data, seal_end), seal_end);
    assert_eq!(read_journal(dir.path(), 0).len(), 300);
}

/// Bytes of the resynchronisation marks (24 each, one per 32 KiB block after the first)
/// among records filling `records_len` bytes from offset 0: one here.
fn mark_bytes(records_len: u64) -> u64 {
    24 * (records_len / (32 << 10))
}
