//! A hostile sparse segment costs what is really in it. The segment's 128-byte header claims a
//! 1 GiB data area and the file is padded to that length with `set_len` (a hole: nothing on
//! disk). `verify`, `stats`, a `JournalReader` and `Journal::open` (which recovers the
//! unsealed segment and seals it) must each finish in well under a second without growing the
//! process's peak resident size by anything like the gigabyte: scans of written bytes skip the file's holes (`SEEK_DATA`).

#[path = "common/journal.rs"]
mod journal_common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use journal_common::{crc32, segment_file, segment_ids};
use kekbit::journal::{stats, verify, Durability, Journal, JournalReader};

const CLAIMED: u64 = 1 << 30;
/// Growth of the process's peak resident size allowed per step: far below the gigabyte that
/// reading the whole hole through a mapping costs.
const MAX_PEAK_GROWTH_KIB: u64 = 32 << 10;
const MAX_TIME: Duration = Duration::from_millis(900);

/// A journal whose only segment is a header claiming `CLAIMED` bytes of data, then a hole.
fn hostile_journal(dir: &Path) {
    drop(
        Journal::options()
            .segment_capacity(4096)
            .durability(Durability::Never)
            .open(dir)
            .unwrap(),
    );
    let ids = segment_ids(dir);
    for &id in &ids[1..] {
        fs::remove_file(segment_file(dir, id)).unwrap();
    }
    let path = segment_file(dir, ids[0]);
    let mut header = fs::read(&path).unwrap()[..128].to_vec();
    header[32..40].copy_from_slice(&CLAIMED.to_le_bytes());
    let crc = crc32(&[&header[..92]]);
    header[92..96].copy_from_slice(&crc.to_le_bytes());
    header[96..].fill(0); // unsynced, open: the live block of a crashed writer
    fs::write(&path, &header).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(128 + CLAIMED).unwrap();
}

/// The process's peak resident size so far, in KiB (`VmHWM` in `/proc/self/status`; this
/// file holds one test, so nothing else runs in the process meanwhile).
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn cheaply<T>(what: &str, run: impl FnOnce() -> T) -> T {
    let (peak, start) = (peak_rss_kib(), Instant::now());
    let out = run();
    let (growth, took) = (peak_rss_kib() - peak, start.elapsed());
    println!("{what}: peak resident size +{growth} KiB, {took:?}");
    assert!(
        growth < MAX_PEAK_GROWTH_KIB,
        "{what} grew the peak RSS by {growth} KiB"
    );
    assert!(took < MAX_TIME, "{what} took {took:?}");
    out
}

#[test]
fn a_sparse_segment_claiming_a_gigabyte_costs_what_it_holds() {
    // Regression: issue 11 item 6: a hostile sparse file cost seconds and a gigabyte.
    let dir = tempfile::tempdir().unwrap();
    hostile_journal(dir.path());

    let report = cheaply("verify", || verify(dir.path(), &mut |_, _| {}).unwrap());
    assert_eq!(report.records, 0);
    assert_eq!(report.torn_tail_bytes, 0);
    cheaply("stats", || stats(dir.path()).unwrap());
    cheaply("reader", || {
        let mut reader = JournalReader::open(dir.path(), 0).unwrap();
        assert!(reader.try_next().unwrap().is_none());
    });
    let journal = cheaply("recovery", || {
        Journal::options()
            .segment_capacity(4096)
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap()
    });
    assert_eq!(journal.next_sequence(), 0);
}
