//! Journal benchmarks: append throughput across rollovers, the latency distribution of
//! appends (rollovers included), durable appends under each policy, and group commit.
//!
//! Run with `cargo bench --bench journal` (add a filter such as `-- journal_append` to run
//! part of it). Four groups, each followed where it says by a report printed to stdout:
//!
//! - `journal_append` holds `<size>/<segment>`: [`Journal::append`] of a `<size>`-byte
//!   record under [`Durability::Never`], into segments of `<segment>` bytes, in `/dev/shm`.
//!   Batches are long enough to cross many segments (a 1 MiB segment holds about 7,700
//!   records of 128 B, 255 of 4 KiB), so rollovers are part of what is timed. Variants
//!   suffixed `_no_prealloc` open the journal with `preallocate(false)`: the appending
//!   thread then creates each segment itself when it rolls over.
//! - `journal_latency` holds `128/1MiB_prealloc` and `128/1MiB_no_prealloc`: the same
//!   appends, each one timed by itself with a pair of `Instant::now()` calls, so that the
//!   mean criterion reports is the mean of the distribution in the report. The report, run
//!   after the group whenever one of them ran, times [`LATENCY_SAMPLES`] appends of 128 B one
//!   by one, with and without preallocation, and prints their p50, p99, p99.9 and maximum,
//!   the ratio p99.9 / p50 (the target: at most 5) and the appends that rolled over, counted
//!   apart; then the same for [`LATENCY_SAMPLES_4K`] appends of 4 KiB, which roll over once
//!   in 255 appends, often enough to reach p99.9.
//! - `journal_durable` holds `every_record`, `every_100` and `interval_1ms`: appends of
//!   128 B under [`Durability::EveryRecord`] (each append returns once synced),
//!   [`Durability::EveryN`]`(100)` and [`Durability::Interval`]`(1 ms)`, on the real disk
//!   (a folder under Cargo's `target/tmp`, never `/dev/shm`, where syncing costs nothing).
//!   The report after the group prints the distribution of each policy's appends.
//! - `journal_group_commit` holds `<threads>`: 1, 2, 4 and 8 threads appending 128 B records
//!   to one journal under [`Durability::EveryRecord`], on the real disk. Throughput counts
//!   records from all threads: concurrent appends share syncs, so it should grow with the
//!   number of threads. The report after the group prints records per second and the ratio
//!   to one thread.
//!
//! Every journal has its own temporary folder, deleted afterwards. Between timed batches
//! (untimed), journals that stream many bytes drop their old segments with
//! [`Journal::prune_before`], so that a run never holds more than a few segments in memory.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use kekbit::core::TRAILER_RESERVE;
use kekbit::journal::{Durability, Journal};
use tempfile::TempDir;

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

use support::{benchmarking, fast_settings, frame_len, payload, slow_settings, timed_in_threads};

/// Record sizes of the throughput benchmark.
const SIZES: [usize; 2] = [128, 4096];
/// Segment capacities of the throughput benchmark, with their names.
const SEGMENTS: [(u64, &str); 2] = [(1 << 20, "1MiB"), (64 << 20, "64MiB")];
/// Largest record the journals accept.
const MAX_RECORD_LEN: u32 = 4096;
/// Record size of the latency, durability and group commit benchmarks.
const SMALL: usize = 128;
/// Segment capacity of the latency report: small, so that it rolls over often.
const LATENCY_SEGMENT: u64 = 1 << 20;
/// Segment capacity of the durable journals: the default.
const DURABLE_SEGMENT: u64 = 64 << 20;
/// Payload bytes a streaming journal may take before its old segments are pruned.
const PRUNE_EVERY: u64 = 64 << 20;
/// Appends timed one by one in each run of the latency report.
const LATENCY_SAMPLES: usize = 1_000_000;
/// Appends before those, untimed: the journal's threads and segments reach a steady state.
const LATENCY_WARMUP: usize = 100_000;
/// The same for the 4 KiB runs of the report (400 MB of records).
const LATENCY_SAMPLES_4K: usize = 100_000;
const LATENCY_WARMUP_4K: usize = 10_000;
/// The durability policies measured: benchmark name, policy, and appends timed one by one
/// in the durability report.
const POLICIES: [(&str, Durability, usize); 3] = [
    ("every_record", Durability::EveryRecord, 1_000),
    ("every_100", Durability::EveryN(100), 10_000),
    (
        "interval_1ms",
        Durability::Interval(Duration::from_millis(1)),
        10_000,
    ),
];
/// Thread counts of the group commit benchmark.
const THREADS: [usize; 4] = [1, 2, 4, 8];

/// Prefix of the journals' temporary folders.
const DIR_PREFIX: &str = "kekbit-journal-bench-";

/// A temporary folder in memory (`/dev/shm`) when the system has one, else in the system
/// temporary folder.
fn memory_dir() -> TempDir {
    support::memory_dir(DIR_PREFIX)
}

/// Where the folders of the durable journals go: Cargo's `target/tmp`, on the disk Cargo
/// builds on.
fn disk_root() -> &'static Path {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
}

/// A temporary folder under [`disk_root`]. A warning is printed if it is in memory after all.
fn disk_dir() -> TempDir {
    support::disk_dir(
        disk_root(),
        DIR_PREFIX,
        "set CARGO_TARGET_DIR to a folder on a disk",
    )
}

/// Records of `size` bytes a segment of `capacity` bytes holds.
fn records_per_segment(capacity: u64, size: usize) -> u64 {
    (capacity - TRAILER_RESERVE) / frame_len(size)
}

fn open(dir: &Path, segment: u64, durability: Durability, preallocate: bool) -> Journal {
    Journal::options()
        .segment_capacity(segment)
        .max_record_len(MAX_RECORD_LEN)
        .durability(durability)
        .preallocate(preallocate)
        .open(dir)
        .expect("opening a benchmark journal")
}

/// A journal under measurement and its folder, pruned (untimed) as it grows.
struct Stream {
    journal: Journal,
    unpruned: u64,
    // Declared last: the journal is closed before its folder is deleted.
    _dir: TempDir,
}

impl Stream {
    fn new(dir: TempDir, segment: u64, durability: Durability, preallocate: bool) -> Stream {
        Stream {
            journal: open(dir.path(), segment, durability, preallocate),
            unpruned: 0,
            _dir: dir,
        }
    }

    /// Removes every segment before the one being appended to, once enough was appended.
    fn prune_if_due(&mut self) {
        if self.unpruned >= PRUNE_EVERY {
            let next = self.journal.next_sequence();
            self.journal.prune_before(next).expect("pruning");
            self.unpruned = 0;
        }
    }

    /// Appends `iters` records, timed in batches of at most [`PRUNE_EVERY`] bytes.
    fn append_batched(&mut self, data: &[u8], iters: u64) -> Duration {
        let per_batch = (PRUNE_EVERY / data.len() as u64).max(1);
        let mut left = iters;
        let mut spent = Duration::ZERO;
        while left > 0 {
            self.prune_if_due();
            let n = left.min(per_batch);
            let start = Instant::now();
            for _ in 0..n {
                self.journal.append(black_box(data)).expect("appending");
            }
            spent += start.elapsed();
            self.unpruned += n * data.len() as u64;
            left -= n;
        }
        spent
    }

    /// Appends `iters` records, each timed by itself; returns the sum of their times.
    fn append_each_timed(&mut self, data: &[u8], iters: u64) -> Duration {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            self.prune_if_due();
            let start = Instant::now();
            self.journal.append(black_box(data)).expect("appending");
            spent += start.elapsed();
            self.unpruned += data.len() as u64;
        }
        spent
    }
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_append");
    fast_settings(&mut group);
    for size in SIZES {
        let data = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        let variants = SEGMENTS
            .iter()
            .map(|&(segment, name)| (segment, name.to_string(), true))
            .chain([(1 << 20, "1MiB_no_prealloc".to_string(), false)]);
        for (segment, name, preallocate) in variants {
            // Opened when the benchmark runs (not when a filter leaves it out).
            let mut stream = None;
            group.bench_function(BenchmarkId::new(size.to_string(), name), |b| {
                let stream = stream.get_or_insert_with(|| {
                    Stream::new(memory_dir(), segment, Durability::Never, preallocate)
                });
                b.iter_custom(|iters| stream.append_batched(&data, iters))
            });
        }
    }
    group.finish();
}

/// Summary of a set of durations, in nanoseconds: count, mean and percentiles.
struct Distribution {
    count: usize,
    mean: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
}

impl Distribution {
    /// Sorts `nanos` and summarizes it.
    fn of(nanos: &mut [u64]) -> Distribution {
        nanos.sort_unstable();
        let count = nanos.len();
        // The smallest value with at least a fraction `q` of the values at or below it.
        let at = |q: f64| nanos[((count as f64 * q).ceil() as usize).clamp(1, count) - 1];
        Distribution {
            count,
            mean: nanos.iter().sum::<u64>() as f64 / count as f64,
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: nanos[count - 1],
        }
    }

    /// The mean, p50, p99, p99.9 and maximum, as the reports print them.
    fn columns(&self) -> [String; 5] {
        [
            self.mean,
            self.p50 as f64,
            self.p99 as f64,
            self.p999 as f64,
            self.max as f64,
        ]
        .map(human)
    }
}

/// A duration in nanoseconds, in the unit that suits it.
fn human(nanos: f64) -> String {
    if nanos < 10_000.0 {
        format!("{nanos:.0} ns")
    } else if nanos < 10_000_000.0 {
        format!("{:.1} us", nanos / 1e3)
    } else {
        format!("{:.1} ms", nanos / 1e6)
    }
}

/// What one run of the latency report measured.
struct LatencyRun {
    all: Distribution,
    /// The appends that did not roll over.
    steady: Distribution,
    /// The appends that rolled over to a new segment.
    rollovers: Distribution,
    /// Appends slower than 5 x the p50 of all appends, and how many of them rolled over.
    slow: usize,
    slow_rollovers: usize,
}

/// Times `samples` appends of `size` bytes one by one, after `warmup` untimed ones, into a
/// fresh journal with [`LATENCY_SEGMENT`]-byte segments in memory.
fn latency_run(size: usize, preallocate: bool, samples: usize, warmup: usize) -> LatencyRun {
    let dir = memory_dir();
    let journal = open(dir.path(), LATENCY_SEGMENT, Durability::Never, preallocate);
    let data = payload(size);
    let per_segment = records_per_segment(LATENCY_SEGMENT, size);
    // Filled with a non-zero value so that every page is touched before timing starts.
    let mut nanos = vec![u64::MAX; samples];
    for _ in 0..warmup {
        journal.append(&data).expect("appending");
    }
    let first = journal.next_sequence();
    for slot in nanos.iter_mut() {
        let start = Instant::now();
        let seq = journal.append(black_box(&data)).expect("appending");
        let end = Instant::now();
        black_box(seq);
        *slot = (end - start).as_nanos() as u64;
    }
    // The append of the first record of each segment after the first is the one that
    // rolled over; check that the journal holds as many segments as that predicts.
    let is_rollover = |i: usize| {
        let seq = first + i as u64;
        seq > 0 && seq.is_multiple_of(per_segment)
    };
    let linked = journal.next_sequence().div_ceil(per_segment) as usize;
    let files = std::fs::read_dir(dir.path())
        .expect("listing the journal")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".kekbit"))
        .count();
    // With preallocation, one more segment is prepared ahead (or being prepared).
    assert!(
        files == linked || (preallocate && files == linked + 1),
        "{files} segment files, expected {linked} linked ones"
    );
    drop(journal);

    let mut rolled: Vec<u64> = Vec::new();
    let mut steady: Vec<u64> = Vec::with_capacity(samples);
    for (i, &n) in nanos.iter().enumerate() {
        if is_rollover(i) {
            rolled.push(n);
        } else {
            steady.push(n);
        }
    }
    let all = Distribution::of(&mut nanos);
    let threshold = all.p50 * 5;
    let slow = nanos.iter().filter(|&&n| n > threshold).count();
    let slow_rollovers = rolled.iter().filter(|&&n| n > threshold).count();
    let rollovers = if rolled.is_empty() {
        Distribution::of(&mut [0])
    } else {
        Distribution::of(&mut rolled)
    };
    LatencyRun {
        all,
        steady: Distribution::of(&mut steady),
        rollovers,
        slow,
        slow_rollovers,
    }
}

/// The median cost of the pair of `Instant::now()` calls around each timed append.
fn timer_overhead() -> u64 {
    let mut nanos: Vec<u64> = (0..100_000)
        .map(|_| {
            let start = Instant::now();
            let end = Instant::now();
            (end - start).as_nanos() as u64
        })
        .collect();
    Distribution::of(&mut nanos).p50
}

/// Prints the latency report for the runs asked for (`true`: with preallocation): appends
/// of [`SMALL`] bytes, then of 4 KiB for contrast. A 1 MiB segment holds 7,709 records of
/// 128 B, so rollovers are rarer than one append in 1,000 and p99.9 cannot show them; it
/// holds 255 records of 4 KiB, and then it can.
fn latency_report(which: &[bool]) {
    if which.is_empty() {
        return;
    }
    let scale = if benchmarking() { 1 } else { 100 };
    let runs = [
        (SMALL, LATENCY_SAMPLES / scale, LATENCY_WARMUP / scale),
        (4096, LATENCY_SAMPLES_4K / scale, LATENCY_WARMUP_4K / scale),
    ];
    println!();
    println!(
        "journal_latency report: appends timed one by one after untimed ones, \
         Durability::Never, segments of {} KiB in memory, rollovers included. Timer overhead \
         (p50 of an empty Instant pair, included below): {} ns.",
        LATENCY_SEGMENT >> 10,
        timer_overhead()
    );
    println!(
        "  {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>14}",
        "size",
        "prealloc",
        "appends",
        "mean",
        "p50",
        "p99",
        "p99.9",
        "max",
        "p99.9/p50",
        "rollovers",
        "roll p50",
        "roll max",
        "no-roll",
        ">5x p50"
    );
    for (size, samples, warmup) in runs {
        for &preallocate in which {
            let run = latency_run(size, preallocate, samples, warmup);
            let a = &run.all;
            let [mean, p50, p99, p999, max] = a.columns();
            println!(
                "  {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9.2} | {:>9} {:>9} {:>9} \
                 | {:>9} {:>14}",
                size,
                preallocate,
                a.count,
                mean,
                p50,
                p99,
                p999,
                max,
                a.p999 as f64 / a.p50 as f64,
                run.rollovers.count,
                human(run.rollovers.p50 as f64),
                human(run.rollovers.max as f64),
                human(run.steady.max as f64),
                format!("{} ({} roll)", run.slow, run.slow_rollovers),
            );
        }
    }
    println!(
        "  rollovers: appends that rolled over to a new segment ({} per segment at 128 B, {} at \
         4 KiB); no-roll: the slowest of the other appends; >5x p50: appends slower than 5 x \
         p50, and how many of them rolled over.",
        records_per_segment(LATENCY_SEGMENT, SMALL),
        records_per_segment(LATENCY_SEGMENT, 4096)
    );
    println!();
}

fn bench_latency(c: &mut Criterion) {
    let data = payload(SMALL);
    let mut ran = Vec::new();
    let mut group = c.benchmark_group("journal_latency");
    fast_settings(&mut group);
    group.throughput(Throughput::Elements(1));
    for (preallocate, name) in [(true, "1MiB_prealloc"), (false, "1MiB_no_prealloc")] {
        let mut stream = None;
        group.bench_function(BenchmarkId::new(SMALL.to_string(), name), |b| {
            let stream = stream.get_or_insert_with(|| {
                Stream::new(
                    memory_dir(),
                    LATENCY_SEGMENT,
                    Durability::Never,
                    preallocate,
                )
            });
            b.iter_custom(|iters| stream.append_each_timed(&data, iters))
        });
        if stream.is_some() {
            ran.push(preallocate);
        }
    }
    group.finish();
    latency_report(&ran);
}

/// Prints the distribution of durable appends for the policies asked for (of [`POLICIES`]).
fn durable_report(which: &[(&str, Durability, usize)]) {
    if which.is_empty() {
        return;
    }
    let data = payload(SMALL);
    println!();
    println!(
        "journal_durable report: appends of {SMALL} B timed one by one, segments of {} MiB \
         on disk under {}",
        DURABLE_SEGMENT >> 20,
        disk_root().display()
    );
    println!(
        "  {:<13} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "policy", "appends", "mean", "p50", "p99", "p99.9", "max"
    );
    for &(name, durability, samples) in which {
        let samples = if benchmarking() { samples } else { 20 };
        let dir = disk_dir();
        let journal = open(dir.path(), DURABLE_SEGMENT, durability, true);
        // A few untimed appends, so that the first sync of the segment is not timed.
        for _ in 0..10 {
            journal.append(&data).expect("appending");
        }
        let mut nanos: Vec<u64> = (0..samples)
            .map(|_| {
                let start = Instant::now();
                journal.append(black_box(&data)).expect("appending");
                start.elapsed().as_nanos() as u64
            })
            .collect();
        drop(journal);
        let d = Distribution::of(&mut nanos);
        let [mean, p50, p99, p999, max] = d.columns();
        println!(
            "  {:<13} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name, d.count, mean, p50, p99, p999, max
        );
    }
    println!();
}

fn bench_durable(c: &mut Criterion) {
    let data = payload(SMALL);
    let mut ran = Vec::new();
    let mut group = c.benchmark_group("journal_durable");
    slow_settings(&mut group, 500, 2_000);
    group.throughput(Throughput::Elements(1));
    for policy @ (name, durability, _) in POLICIES {
        let mut stream = None;
        group.bench_function(name, |b| {
            let stream = stream
                .get_or_insert_with(|| Stream::new(disk_dir(), DURABLE_SEGMENT, durability, true));
            b.iter_custom(|iters| stream.append_batched(&data, iters))
        });
        if stream.is_some() {
            ran.push(policy);
        }
    }
    group.finish();
    durable_report(&ran);
}

fn bench_group_commit(c: &mut Criterion) {
    let data = payload(SMALL);
    // Per thread count: records appended and time taken over every timed run.
    let mut tally: Vec<(usize, u64, Duration)> = Vec::new();
    let mut group = c.benchmark_group("journal_group_commit");
    slow_settings(&mut group, 500, 2_000);
    group.throughput(Throughput::Elements(1));
    for threads in THREADS {
        let mut stream = None;
        let (mut records, mut spent) = (0u64, Duration::ZERO);
        group.bench_function(BenchmarkId::from_parameter(threads), |b| {
            let stream = stream.get_or_insert_with(|| {
                Stream::new(disk_dir(), DURABLE_SEGMENT, Durability::EveryRecord, true)
            });
            b.iter_custom(|iters| {
                // `threads` threads append `iters` records in all.
                let elapsed = timed_in_threads(threads, iters, |_, share| {
                    for _ in 0..share {
                        stream.journal.append(black_box(&data)).expect("appending");
                    }
                });
                records += iters;
                spent += elapsed;
                elapsed
            })
        });
        if records > 0 {
            tally.push((threads, records, spent));
        }
    }
    group.finish();
    group_commit_report(&tally);
}

/// Prints records per second for each thread count, over all of criterion's runs (warm-up
/// included), and the ratio to one thread.
fn group_commit_report(tally: &[(usize, u64, Duration)]) {
    if tally.is_empty() {
        return;
    }
    let rate = |&(_, records, spent): &(usize, u64, Duration)| {
        records as f64 / spent.as_secs_f64().max(f64::MIN_POSITIVE)
    };
    let single = tally.iter().find(|t| t.0 == 1).map(rate);
    println!();
    println!(
        "journal_group_commit report: records of {SMALL} B under Durability::EveryRecord on \
         disk, all threads together, over every timed run (warm-up included)"
    );
    println!(
        "  {:>7} {:>9} {:>10} {:>12} {:>11}",
        "threads", "records", "records/s", "per record", "x 1 thread"
    );
    for t in tally {
        let r = rate(t);
        println!(
            "  {:>7} {:>9} {:>10.0} {:>12} {:>11}",
            t.0,
            t.1,
            r,
            human(1e9 / r),
            single.map_or("-".to_string(), |s| format!("{:.2}", r / s))
        );
    }
    println!();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_append(&mut c);
    bench_latency(&mut c);
    bench_durable(&mut c);
    bench_group_commit(&mut c);
    c.final_summary();
}
