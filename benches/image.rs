//! Mapped image benchmarks (issue 15's targets), with ratios printed from one run.
//!
//! Run with `cargo bench --bench image`; the folder is `KEKBIT_IMAGE_BENCH_DIR` (default
//! `/dev/shm`; set it to a folder on ext4 to measure a disk), the big image's size
//! `KEKBIT_IMAGE_BENCH_GIB` (default 4). Groups:
//!
//! - `image_set` holds `set_64B` and `journal_append_64B`: [`MappedVec::set`] of a 64-byte
//!   element under [`Durability::Never`], against `Journal::append` of the same 64 bytes to
//!   a journal with the same options (the set appends an 81-byte record: 17 bytes of redo
//!   header). Untimed between batches: a checkpoint (resp. a prune) keeps the journal small.
//!   Target: set ≤ 2× append.
//! - `image_reopen` holds `image_64MiB`, `image_<N>GiB` (reopening after a clean close: lock,
//!   header, journal, mapping; no data read) and `snapshot_64MiB`: a prevalent store whose
//!   state is the same 64 MiB of elements as a `Vec`, restored from its serde snapshot. The
//!   snapshot side stays at 64 MiB: restoring gigabytes through serde takes seconds per
//!   sample. Target: the big image ≤ 10 ms.
//! - `image_checkpoint` holds `0.1%` and `1%`: a checkpoint of the big image after one
//!   element was set in that share of its pages (chosen at random, untimed). Target: cost
//!   proportional to the pages changed.
//!
//! Building the big image journals every element once (in 1 MiB records, checkpointing every
//! 512 MiB so that the journal stays small): about a minute on ext4. It is removed at the end.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use kekbit::image::{ImageOptions, MappedVec};
use kekbit::journal::{Durability, JournalOptions};
use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
use serde::{Deserialize, Serialize};

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

use support::{benchmarking, filesystem, slow_settings};

type Elem = [u64; 8];
const SMALL: u64 = 64 << 20;
const SEGMENT: u64 = 64 << 20;

fn base() -> PathBuf {
    std::env::var_os("KEKBIT_IMAGE_BENCH_DIR")
        .map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from)
}

fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base())
        .expect("a scratch folder")
}

fn journal_options() -> JournalOptions {
    JournalOptions::new()
        .segment_capacity(SEGMENT)
        .durability(Durability::Never)
}

fn options() -> ImageOptions<Elem> {
    MappedVec::<Elem>::options()
        .type_tag(0xBE4C, 1)
        .journal(journal_options())
}

fn elem(x: u64) -> Elem {
    [x; 8]
}

/// An image of `bytes` bytes of elements, closed cleanly.
fn build(dir: &Path, bytes: u64) {
    let count = (bytes / 64) as usize;
    let mut image = options().capacity(count as u64).create(dir).unwrap();
    let chunk: Vec<Elem> = (0..(1 << 14)).map(elem).collect(); // 1 MiB
    while image.len() < count {
        let n = (count - image.len()).min(chunk.len());
        image.extend_from_slice(&chunk[..n]).unwrap();
        if (image.len() * 64).is_multiple_of(512 << 20) {
            image.checkpoint().unwrap();
        }
    }
    image.close().unwrap();
}

fn bench_set(c: &mut Criterion) -> (f64, f64) {
    let dir = scratch("kekbit-image-set-");
    let mut image = options()
        .capacity(1 << 20)
        .create(dir.path().join("img"))
        .unwrap();
    image.extend_from_slice(&vec![elem(0); 1 << 20]).unwrap();
    image.checkpoint().unwrap();
    let journal = journal_options().open(dir.path().join("journal")).unwrap();
    let value = elem(7);
    let mut group = c.benchmark_group("image_set");
    slow_settings(&mut group, 1000, 3000);
    let mut set_ns = 0.0;
    let mut i = 0usize;
    group.bench_function("set_64B", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                i = (i + 4099) & ((1 << 20) - 1);
                image.set(i, black_box(value)).unwrap();
            }
            let took = started.elapsed();
            set_ns = took.as_nanos() as f64 / iters as f64;
            image.checkpoint().unwrap(); // untimed: keeps the journal small
            took
        })
    });
    let mut append_ns = 0.0;
    group.bench_function("journal_append_64B", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            for _ in 0..iters {
                journal
                    .append(black_box(bytemuck::bytes_of(&value)))
                    .unwrap();
            }
            let took = started.elapsed();
            append_ns = took.as_nanos() as f64 / iters as f64;
            journal.prune_before(journal.next_sequence()).unwrap();
            took
        })
    });
    group.finish();
    (set_ns, append_ns)
}

/// The serde side: the same elements as a prevalent store's state.
#[derive(Serialize, Deserialize)]
struct Noop;

impl Command<Vec<Elem>> for Noop {
    type Output = ();
    fn apply(&self, _: &mut Vec<Elem>) {}
}

fn bench_reopen(c: &mut Criterion, big: &Path, big_name: &str) -> Vec<(String, f64)> {
    let small = scratch("kekbit-image-reopen-");
    build(&small.path().join("img"), SMALL);
    let store_dir = small.path().join("store");
    {
        let state: Vec<Elem> = (0..SMALL / 64).map(elem).collect();
        let store = PrevalentStore::<Vec<Elem>, Noop>::open(&store_dir, state, StoreOptions::new())
            .unwrap();
        store.snapshot().unwrap();
    }
    let mut means = Vec::new();
    let mut group = c.benchmark_group("image_reopen");
    slow_settings(&mut group, 500, 3000);
    for (name, dir) in [
        ("image_64MiB", small.path().join("img")),
        (big_name, big.to_path_buf()),
    ] {
        let mut mean = 0.0;
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let started = Instant::now();
                    let image = options().open(&dir).unwrap();
                    total += started.elapsed();
                    assert_eq!(image.open_report().replayed, 0);
                    black_box(image.len());
                }
                mean = total.as_secs_f64() / iters as f64;
                total
            })
        });
        means.push((name.to_string(), mean));
    }
    let mut mean = 0.0;
    group.bench_function("snapshot_64MiB", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let store = PrevalentStore::<Vec<Elem>, Noop>::open(
                    &store_dir,
                    Vec::new(),
                    StoreOptions::new(),
                )
                .unwrap();
                total += started.elapsed();
                black_box(store.query(|s| s.len()).unwrap());
            }
            mean = total.as_secs_f64() / iters as f64;
            total
        })
    });
    means.push(("snapshot_64MiB".to_string(), mean));
    group.finish();
    means
}

fn bench_checkpoint(c: &mut Criterion, big: &Path) -> Vec<(String, f64, usize)> {
    let mut image = options().open(big).unwrap();
    let pages = image.len() * 64 / 4096;
    let mut out = Vec::new();
    let mut group = c.benchmark_group("image_checkpoint");
    slow_settings(&mut group, 1000, 5000);
    let mut seed = 0x1234_5678u64;
    for (name, per_mille) in [("0.1%", 1usize), ("1%", 10)] {
        let dirty = pages * per_mille / 1000;
        let mut mean = 0.0;
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    for _ in 0..dirty {
                        seed = seed
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let page = (seed >> 20) as usize % pages;
                        image.set(page * 64, elem(seed)).unwrap();
                    }
                    let started = Instant::now();
                    let done = image.checkpoint().unwrap();
                    total += started.elapsed();
                    black_box(done);
                }
                mean = total.as_secs_f64() / iters as f64;
                total
            })
        });
        out.push((name.to_string(), mean, dirty));
    }
    group.finish();
    out
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let gib: u64 = std::env::var("KEKBIT_IMAGE_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // Under `cargo test --benches` each benchmark runs once: keep the big image small.
    let big_bytes = if benchmarking() { gib << 30 } else { SMALL };
    let big_name = format!("image_{gib}GiB");
    println!(
        "image benches in {} ({})",
        base().display(),
        filesystem(&base())
    );
    let (set_ns, append_ns) = bench_set(&mut c);
    let big = scratch("kekbit-image-big-");
    let built = Instant::now();
    build(&big.path().join("img"), big_bytes);
    println!(
        "built a {} MiB image in {:.1?}",
        big_bytes >> 20,
        built.elapsed()
    );
    let reopen = bench_reopen(&mut c, &big.path().join("img"), &big_name);
    let checkpoint = bench_checkpoint(&mut c, &big.path().join("img"));
    drop(big);
    c.final_summary();
    println!("report (means of the last sample of each benchmark):");
    println!(
        "  set 64 B {set_ns:.0} ns, journal append 64 B {append_ns:.0} ns: {:.2}× (target ≤ 2×)",
        set_ns / append_ns
    );
    for (name, mean) in &reopen {
        println!("  reopen {name}: {:.3} ms", mean * 1e3);
    }
    let snapshot = reopen[2].1;
    println!(
        "  snapshot_64MiB / image_64MiB: {:.0}×; / {}: {:.0}×",
        snapshot / reopen[0].1,
        reopen[1].0,
        snapshot / reopen[1].1
    );
    for (name, mean, dirty) in &checkpoint {
        println!(
            "  checkpoint {name} ({dirty} pages dirty): {:.2} ms, {:.2} µs per page",
            mean * 1e3,
            mean * 1e6 / *dirty.max(&1) as f64
        );
    }
}
