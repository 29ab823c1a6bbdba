//! The async features' performance targets (issue 13), as reports (not timed tests):
//!
//! - one-way latency from a writer in another process to a `JournalStream` waiting in a
//!   tokio task (no busy polling), against the blocking reader's `next_timeout` (backing off
//!   to sleeps) and a busy-polling `try_next`;
//! - 64 tasks each awaiting durable appends (`append_durable`) against 64 threads calling
//!   the blocking `append` under `Durability::EveryRecord`, on the disk (`KEKBIT_BENCH_DISK`
//!   or the system temporary folder), `KEKBIT_BENCH_ROUNDS` rounds (5) of 1,000 records per
//!   appender, in alternating order, with the median ratio;
//! - resident memory of 100 tasks tailing one journal, against one reader.
//!
//! cargo bench --features async --bench stream
//!
//! Under `cargo test --benches` (or `-- --test`) each report runs once, shortened.

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kekbit::journal::{Durability, Journal, JournalReader};
use kekbit::stream::JournalStream;

/// Environment variable naming the journal a child writer appends to.
const CHILD: &str = "KEKBIT_BENCH_STREAM_CHILD";

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The child: appends `count` records, one every `gap`, each holding the wall-clock time at
/// which it was appended (nanoseconds; the parent subtracts it from its own on receipt).
fn child_writer(dir: &Path, count: u64, gap: Duration) {
    let journal = Journal::options()
        .segment_capacity(1 << 20)
        .durability(Durability::Never)
        .open(dir)
        .unwrap();
    // Let the parent's reader get ready.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..count {
        let deadline = Instant::now() + gap;
        journal.append(&now_nanos().to_le_bytes()).unwrap();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

fn spawn_writer(dir: &Path, count: u64, gap: Duration) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, dir)
        .env("KEKBIT_BENCH_COUNT", count.to_string())
        .env("KEKBIT_BENCH_GAP_US", gap.as_micros().to_string())
        .spawn()
        .unwrap()
}

fn stamp(record: &[u8]) -> u64 {
    u64::from_le_bytes(record[..8].try_into().unwrap())
}

fn percentiles(mut nanos: Vec<u64>) -> (f64, f64) {
    nanos.sort_unstable();
    let at = |q: f64| nanos[((nanos.len() - 1) as f64 * q) as usize] as f64 / 1_000.0;
    (at(0.50), at(0.99))
}

#[derive(Clone, Copy, Debug)]
enum Waiting {
    Stream,
    Blocking,
    BusyPoll,
}

/// Latencies (ns) of `count` records appended by another process, one per `gap`.
fn latency_run(how: Waiting, count: u64, gap: Duration) -> Vec<u64> {
    let dir = support::memory_dir("kekbit-stream-bench");
    let mut child = spawn_writer(dir.path(), count, gap);
    let mut seen = Vec::with_capacity(count as usize);
    match how {
        Waiting::Stream => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut stream = JournalStream::open(dir.path(), 0).unwrap();
                while (seen.len() as u64) < count {
                    let (_, record) = stream.next().await.unwrap().unwrap();
                    seen.push(now_nanos().saturating_sub(stamp(&record)));
                }
            });
        }
        Waiting::Blocking | Waiting::BusyPoll => {
            let mut reader = JournalReader::open(dir.path(), 0).unwrap();
            while (seen.len() as u64) < count {
                let got = match how {
                    Waiting::Blocking => reader.next_timeout(Duration::from_secs(10)).unwrap(),
                    _ => reader.try_next().unwrap(),
                };
                if let Some((_, record)) = got {
                    seen.push(now_nanos().saturating_sub(stamp(record)));
                }
            }
        }
    }
    child.wait().unwrap();
    seen
}

fn latency_report(count: u64) {
    let gap = Duration::from_millis(1);
    println!(
        "one-way latency, writer in another process, one record per {gap:?}, {count} records:"
    );
    for how in [Waiting::Stream, Waiting::Blocking, Waiting::BusyPoll] {
        let (p50, p99) = percentiles(latency_run(how, count, gap));
        println!("  {how:?}: p50 {p50:.1} µs, p99 {p99:.1} µs");
    }
}

fn disk_dir() -> tempfile::TempDir {
    let root = std::env::var_os("KEKBIT_BENCH_DISK").map_or_else(std::env::temp_dir, PathBuf::from);
    support::disk_dir(
        &root,
        "kekbit-stream-bench",
        "set KEKBIT_BENCH_DISK to a folder on a disk",
    )
}

/// Durable appends per second: `tasks` tokio tasks awaiting `append_durable`, or as many
/// threads calling the blocking `append` (`EveryRecord`), each appending `each` records.
fn durable_run(tasks: usize, each: usize, asynchronous: bool) -> f64 {
    let dir = disk_dir();
    let journal = Arc::new(
        Journal::options()
            .segment_capacity(64 << 20)
            .durability(Durability::EveryRecord)
            .open(dir.path())
            .unwrap(),
    );
    let record = [7u8; 128];
    let started = Instant::now();
    if asynchronous {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(async {
            let handles: Vec<_> = (0..tasks)
                .map(|_| {
                    let journal = Arc::clone(&journal);
                    tokio::spawn(async move {
                        for _ in 0..each {
                            journal.append_durable(&record).await.unwrap();
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        });
    } else {
        std::thread::scope(|scope| {
            for _ in 0..tasks {
                let journal = &journal;
                scope.spawn(move || {
                    for _ in 0..each {
                        journal.append(&record).unwrap();
                    }
                });
            }
        });
    }
    (tasks * each) as f64 / started.elapsed().as_secs_f64()
}

/// `rounds` rounds of both sides (the order alternating from round to round, so that
/// neither always runs on a warmer disk), each round's figures and the median ratio.
fn durable_report(each: usize, rounds: usize) {
    let fs = support::filesystem(disk_dir().path());
    println!("durable appends of 128 B, 64 appenders, {each} each, on {fs}, {rounds} rounds:");
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (threads, tasks) = if round % 2 == 0 {
            let threads = durable_run(64, each, false);
            (threads, durable_run(64, each, true))
        } else {
            let tasks = durable_run(64, each, true);
            (durable_run(64, each, false), tasks)
        };
        println!(
            "  round {round}: 64 threads, blocking append: {threads:.0}/s; 64 tasks, append_durable: {tasks:.0}/s ({:.2}×)",
            tasks / threads
        );
        ratios.push(tasks / threads);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "  median ratio {:.2}× (lowest {:.2}×, highest {:.2}×)",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1]
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// RSS growth (KiB) of `tailers` tasks each reading a whole journal of `records` 4 KiB
/// records (as streams), keeping the last record each.
fn rss_run(tailers: usize, records: u64) -> u64 {
    let dir = support::memory_dir("kekbit-stream-rss");
    {
        let journal = Journal::options()
            .segment_capacity(64 << 20)
            .durability(Durability::Never)
            .open(dir.path())
            .unwrap();
        for _ in 0..records {
            journal.append(&[3u8; 4096]).unwrap();
        }
    }
    let before = rss_kib();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let kept = runtime.block_on(async {
        let mut streams: Vec<JournalStream> = (0..tailers)
            .map(|_| JournalStream::open(dir.path(), 0).unwrap())
            .collect();
        let mut kept = Vec::new();
        for stream in &mut streams {
            let mut last = None;
            for _ in 0..records {
                last = Some(stream.next().await.unwrap().unwrap().1);
            }
            kept.push(last);
        }
        (streams, kept)
    });
    let grown = rss_kib().saturating_sub(before);
    drop(kept);
    grown
}

fn rss_report(records: u64) {
    let one = rss_run(1, records);
    let hundred = rss_run(100, records);
    println!(
        "resident memory growth tailing {} MiB: 1 stream {one} KiB, 100 streams {hundred} KiB ({:.2}×)",
        (records * 4096) >> 20,
        hundred as f64 / one.max(1) as f64
    );
}

fn main() {
    if let Some(dir) = std::env::var_os(CHILD) {
        let count = std::env::var("KEKBIT_BENCH_COUNT")
            .unwrap()
            .parse()
            .unwrap();
        let gap = std::env::var("KEKBIT_BENCH_GAP_US")
            .unwrap()
            .parse()
            .unwrap();
        child_writer(Path::new(&dir), count, Duration::from_micros(gap));
        return;
    }
    let full = support::benchmarking();
    latency_report(if full { 3_000 } else { 20 });
    let rounds = std::env::var("KEKBIT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    if full {
        durable_report(1_000, rounds);
    } else {
        durable_report(2, 1);
    }
    rss_report(if full { 8_000 } else { 100 });
}
