//! The cost of starting a journal reader in the middle of a full 64 MiB segment of 128-byte
//! records: `JournalReader::open(dir, seq)` and its first `try_next`. Every record between
//! the seek's starting point and its target is verified (docs/FORMAT.md, "Resynchronisation
//! marks"); with marks (the default, one per 32 KiB) a binary search over the mark blocks
//! starts verification at most one block before the target, without (`resync_marks(0)`, or
//! a format 1 segment) it starts at the segment's first record.
//!
//! `cargo bench --bench seek` (in `/dev/shm`; `KEKBIT_SEEK_DISK=1` puts the journal on the
//! disk Cargo builds on, read from the page cache).

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

use std::path::Path;

use criterion::{BenchmarkId, Criterion};
use kekbit::journal::{Durability, Journal, JournalReader};
use tempfile::TempDir;

const SEGMENT: u64 = 64 << 20;
const SIZE: usize = 128;

/// A journal whose first segment is full of `SIZE`-byte records and sealed; returns its
/// folder and the number of records in that segment.
fn full_segment(marks: u8) -> (TempDir, u64) {
    let dir = if std::env::var_os("KEKBIT_SEEK_DISK").is_some() {
        support::disk_dir(
            Path::new(env!("CARGO_TARGET_TMPDIR")),
            "kekbit-seek-bench-",
            "set CARGO_TARGET_DIR to a folder on a disk",
        )
    } else {
        support::memory_dir("kekbit-seek-bench-")
    };
    let journal = Journal::options()
        .segment_capacity(SEGMENT)
        .durability(Durability::Never)
        .resync_marks(marks)
        .open(dir.path())
        .unwrap();
    let data = support::payload(SIZE);
    // Until segment 2 is linked (not merely prepared ahead): segment 1 is then full and
    // sealed, and segment 2's first sequence number is the number of records in segment 1.
    let second = dir.path().join(format!("{:016x}.kekbit", 2));
    let records = loop {
        for _ in 0..1024 {
            journal.append(&data).unwrap();
        }
        if let Ok(header) = std::fs::read(&second) {
            let flags = u32::from_le_bytes(header[44..48].try_into().unwrap());
            if flags & 1 == 0 {
                break u64::from_le_bytes(header[72..80].try_into().unwrap());
            }
        }
    };
    journal.sync().unwrap();
    drop(journal);
    assert!(records > 400_000, "{records} records in a 64 MiB segment");
    (dir, records)
}

fn bench_seek(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_seek_64MiB");
    support::slow_settings(&mut group, 500, 3_000);
    for (name, marks) in [
        ("marks_32KiB", kekbit::core::DEFAULT_MARK_SHIFT),
        ("no_marks", 0),
    ] {
        let (dir, records) = full_segment(marks);
        for (at, target) in [("first", 1), ("middle", records / 2), ("last", records - 2)] {
            group.bench_function(BenchmarkId::new(name, at), |b| {
                b.iter(|| {
                    let mut reader = JournalReader::open(dir.path(), target).unwrap();
                    let (seq, record) = reader.try_next().unwrap().unwrap();
                    assert_eq!((seq, record.len()), (target, SIZE));
                })
            });
        }
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_seek(&mut c);
    c.final_summary();
}
