//! Steady-state append throughput with retention, with and without segment recycling
//! (docs/FORMAT.md, "Recycled segments"; docs/PERFORMANCE.md, "Steady state with
//! retention"): a journal streams 128-byte records under `Durability::Never` through
//! segments of 16 MiB while, every 8,192 appends, it prunes everything older than its last
//! 64 MiB of records (`prune_before`), as a retention task would. Recycling on
//! (`recycle_segments(4)`, the default) makes the pruned segments the next ones; off
//! (`recycle_segments(0)`) every segment is a new, freshly allocated file. The figure is the
//! throughput of the second half of the stream (the first half fills the retention window).
//!
//! Run with `cargo bench --bench recycle`. Each round runs both variants, in alternating
//! order, in `/dev/shm` (tmpfs) and under Cargo's target folder (set `CARGO_TARGET_DIR` to
//! put it on the disk to measure; the file system is printed); the report prints every
//! round and the median ratio on/off per file system. `KEKBIT_RECYCLE_ROUNDS` (5) and
//! `KEKBIT_RECYCLE_MIB` (512, bytes of records per run) change the size of the run. Under
//! `cargo test --benches` it runs one small round as a smoke test.

use std::path::Path;
use std::time::{Duration, Instant};

use kekbit::journal::{Durability, Journal};
use tempfile::TempDir;

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

use support::{benchmarking, disk_dir, filesystem, frame_len, memory_dir, payload};

const RECORD: usize = 128;
const SEGMENT: u64 = 16 << 20;
const RETAIN: u64 = 64 << 20;
const PRUNE_EVERY: u64 = 8192;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Appends `bytes` of records with retention into a new journal in `dir`; returns the
/// duration of the second half and the records it appended.
fn stream(dir: &Path, recycle: usize, bytes: u64) -> (Duration, u64) {
    let journal = Journal::options()
        .segment_capacity(SEGMENT)
        .max_record_len(RECORD as u32)
        .durability(Durability::Never)
        .recycle_segments(recycle)
        .open(dir)
        .expect("opening the journal");
    let record = payload(RECORD);
    let total = bytes / frame_len(RECORD);
    let retained = RETAIN / frame_len(RECORD);
    let mut started = Instant::now();
    for seq in 0..total {
        if seq == total / 2 {
            started = Instant::now();
        }
        journal.append(&record).expect("append");
        if seq % PRUNE_EVERY == PRUNE_EVERY - 1 && seq > retained {
            journal.prune_before(seq - retained).expect("prune");
        }
    }
    (started.elapsed(), total - total / 2)
}

/// Records per second of each variant in one round, recycling off then on (or on then off
/// when `swap`), each in its own new folder from `make`.
fn round(make: &dyn Fn() -> TempDir, bytes: u64, swap: bool) -> (f64, f64) {
    let run = |recycle| {
        let dir = make();
        let (took, records) = stream(dir.path(), recycle, bytes);
        records as f64 / took.as_secs_f64()
    };
    if swap {
        let on = run(4);
        (run(0), on)
    } else {
        let off = run(0);
        (off, run(4))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let (rounds, mib) = if benchmarking() {
        (
            env_or("KEKBIT_RECYCLE_ROUNDS", 5).max(1),
            env_or("KEKBIT_RECYCLE_MIB", 512),
        )
    } else {
        (1, 96)
    };
    let bytes = mib << 20;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let disk = move || {
        disk_dir(
            &target,
            "kekbit-bench-recycle-",
            "set CARGO_TARGET_DIR to a folder on a disk",
        )
    };
    let memory = || memory_dir("kekbit-bench-recycle-");
    let places: [(&str, &dyn Fn() -> TempDir); 2] = [("memory", &memory), ("disk", &disk)];
    println!(
        "steady state: {RECORD} B records, {} MiB segments, retention {} MiB, {mib} MiB per run, \
         second half timed; records/s",
        SEGMENT >> 20,
        RETAIN >> 20
    );
    for (name, make) in places {
        let fs = filesystem(make().path());
        let mut ratios = Vec::new();
        for r in 0..rounds {
            let (off, on) = round(make, bytes, r % 2 == 1);
            ratios.push(on / off);
            println!(
                "{name} ({fs}) round {r}: recycling off {:.2} M/s, on {:.2} M/s, on/off {:.2}",
                off / 1e6,
                on / 1e6,
                on / off
            );
        }
        println!(
            "{name} ({fs}): median on/off {:.2} over {rounds} rounds",
            median(ratios)
        );
    }
}
