//! What each durable append writes back, observed through the I/O seam (`fault-injection`):
//! - every sync's range starts on a page boundary at or below what earlier syncs covered,
//!   so together they cover every byte of every record acknowledged, with no gap;
//! - a sync writes the header page (offset 0) only now and then: while records still share
//!   it, and each time the durable position crosses a multiple of 64 KiB; so the durable
//!   watermark on storage trails the acknowledged position by less than 64 KiB plus one
//!   sync, and most small durable appends write one page, not two (the header page too).
#![cfg(feature = "fault-injection")]

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kekbit::fault::{set_observer, IoObserver, IoOp};
use kekbit::journal::{Durability, Journal};

const HEADER_LEN: u64 = 128;
const PAGE: u64 = 4096;
const REFRESH: u64 = 64 << 10;

struct Recorder {
    root: PathBuf,
    flushes: Mutex<Vec<(PathBuf, u64, u64)>>,
}

impl IoObserver for Recorder {
    fn before(&self, _: &IoOp<'_>) -> io::Result<()> {
        Ok(())
    }

    fn after(&self, op: &IoOp<'_>) {
        if let IoOp::FlushRange(path, offset, len) = op {
            if path.starts_with(&self.root) {
                let mut flushes = self.flushes.lock().unwrap();
                flushes.push((path.to_path_buf(), *offset, *len));
            }
        }
    }
}

#[test]
fn durable_appends_write_back_the_new_pages_and_the_header_now_and_then() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Recorder {
        root: dir.path().to_path_buf(),
        flushes: Mutex::new(Vec::new()),
    });
    let previous = set_observer(Some(recorder.clone()));
    let journal = Journal::options()
        .segment_capacity(1 << 20)
        .max_record_len(1024)
        // No resynchronisation marks: every record then takes exactly its frame.
        .resync_marks(0)
        .durability(Durability::EveryRecord)
        .open(dir.path())
        .unwrap();
    // 200-byte records take 208 bytes of data area each: 3,000 of them are about 610 KiB,
    // nine crossings of 64 KiB, in one segment.
    let frame = 208;
    let count = 3_000u64;
    for seq in 0..count {
        assert_eq!(journal.append(&[seq as u8; 200]).unwrap(), seq);
    }
    // Closing syncs the seal too (docs/FORMAT.md, "Releasing a sealed segment's unused
    // space"): not an append's sync, so not recorded.
    set_observer(previous);
    drop(journal);

    let flushes = recorder.flushes.lock().unwrap().clone();
    let segment = dir.path().join(format!("{:016x}.kekbit", 1));
    let syncs: Vec<(u64, u64)> = flushes
        .iter()
        .filter(|(path, _, _)| *path == segment)
        .map(|&(_, offset, len)| (offset, offset + len))
        .collect();
    assert_eq!(syncs.len() as u64, count, "one sync per durable append");

    let mut covered = 0; // file offset up to which syncs have written everything
    let mut header_watermark = 0; // the watermark the last header write carried
    let mut watermark = 0; // the in-memory watermark before each sync
    let mut from_zero = 0;
    for (i, &(start, end)) in syncs.iter().enumerate() {
        let acknowledged = (i as u64 + 1) * frame;
        assert_eq!(
            end,
            HEADER_LEN + acknowledged,
            "sync {i} ends at its record"
        );
        assert_eq!(start % PAGE, 0, "sync {i} starts mid-page");
        assert!(
            start <= covered,
            "sync {i} leaves {covered}..{start} unwritten"
        );
        covered = end;
        if start == 0 {
            from_zero += 1;
            header_watermark = watermark;
        }
        watermark = acknowledged;
        // The watermark on storage: the one the last header write carried.
        assert!(
            acknowledged - header_watermark < REFRESH + 2 * frame,
            "sync {i}: storage holds watermark {header_watermark}, {acknowledged} acknowledged"
        );
    }
    // The header page goes with the first syncs (records share it) and about once per
    // 64 KiB after that; the other syncs write only the pages they must.
    let crossings = count * frame / REFRESH;
    let sharing = (PAGE - HEADER_LEN).div_ceil(frame);
    assert!(
        from_zero <= sharing + crossings + 1,
        "{from_zero} of {count} syncs started at 0"
    );
    assert!(from_zero > crossings, "{from_zero} syncs started at 0");
}
