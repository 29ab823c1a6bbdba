//! Mapped image benchmarks (issue 15's targets): every figure measured in rounds of one run,
//! each round printed, and the medians and ratios at the end.
//!
//! Run with `cargo bench --bench image`. Environment: `KEKBIT_IMAGE_BENCH_DIR`, the folder
//! (default `/dev/shm`; a folder on ext4 measures a disk), `KEKBIT_IMAGE_BENCH_GIB`, the big
//! image's size (default 4), `KEKBIT_IMAGE_BENCH_ROUNDS` (default 5), and
//! `KEKBIT_IMAGE_BENCH_ONLY` (`set`, `reopen` or `checkpoint`) to run one part, for a
//! profiler. Every image and journal uses the image's default options (journal segments of
//! `image::DEFAULT_SEGMENT_CAPACITY`) under `Durability::Never`; the elements are 64 bytes.
//!
//! - **set**: [`MappedVec::set`] against `Journal::append` of the same 64 bytes to a journal
//!   of the same options, and of 81 bytes (the set's own redo record: 17 bytes of redo
//!   header before the element), 100,000 of each per round in ten alternating slices (the
//!   median slice counts), on a 64 MiB image. Before each slice, untimed, the journal is
//!   pruned (the image checkpointed), so that both append into recycled segments. *hot*: the
//!   sets stride over 1 MiB (256 pages) whose private copies were made (untimed) after the
//!   checkpoint: the steady state of a working set, where a set is one append and a 64-byte
//!   copy (a plain store into a 1 MiB `Vec` at the same indices is timed too: the memory's
//!   share). *cold*: each set lands on a page not written since the last checkpoint (16,384
//!   distinct pages, in a scattered order): each costs a copy-on-write fault (a 4 KiB copy of
//!   the page from the page cache) on top. Target: set ≤ 2× append.
//! - **reopen**: opening after a clean close (lock, header, journal, mapping; no data read)
//!   a 64 MiB and the big image, against restoring the same 64 MiB as a `Vec` in a prevalent
//!   store from its serde snapshot (restoring gigabytes through serde takes seconds). Target:
//!   the big image ≤ 10 ms.
//! - **checkpoint** of the big image after one element was set in 0.1% and in 1% of its
//!   pages (chosen at random, untimed). Target: cost proportional to the pages changed.
//!
//! Building the big image journals every element once (in 1 MiB records, checkpointing every
//! 512 MiB so that the journal stays small). It is removed at the end. Under `cargo test
//! --benches` every part runs once, small, as a smoke test.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kekbit::image::{ImageOptions, MappedVec};
use kekbit::journal::{Durability, Journal};
use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
use serde::{Deserialize, Serialize};

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

use support::{benchmarking, filesystem};

type Elem = [u64; 8];
const SMALL: u64 = 64 << 20;
/// Elements of the 64 MiB image.
const SMALL_LEN: usize = (SMALL / 64) as usize;
/// Elements per 4 KiB page.
const PER_PAGE: usize = 64;
/// Pages of the hot working set (1 MiB).
const HOT_PAGES: usize = 256;

fn base() -> PathBuf {
    std::env::var_os("KEKBIT_IMAGE_BENCH_DIR")
        .map_or_else(|| PathBuf::from("/dev/shm"), PathBuf::from)
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runs(part: &str) -> bool {
    std::env::var("KEKBIT_IMAGE_BENCH_ONLY").map_or(true, |only| only == part)
}

fn scratch(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base())
        .expect("a scratch folder")
}

fn options() -> ImageOptions<Elem> {
    MappedVec::<Elem>::options()
        .type_tag(0xBE4C, 1)
        .durability(Durability::Never)
}

fn elem(x: u64) -> Elem {
    [x; 8]
}

/// A permutation step: multiplying by an odd number modulo a power of two visits every
/// index once.
fn scatter(k: usize, n: usize) -> usize {
    k.wrapping_mul(0x9E37_79B9) & (n - 1)
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

fn per_op(took: Duration, ops: usize) -> f64 {
    took.as_nanos() as f64 / ops as f64
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(values: &[f64], scale: f64, digits: usize) -> String {
    let shown: Vec<String> = values
        .iter()
        .map(|v| format!("{:.*}", digits, v * scale))
        .collect();
    shown.join(", ")
}

/// Mean ns of `batch` appends of `record` (the pruning after them untimed).
fn append_batch(journal: &Journal, record: &[u8], batch: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..batch {
        journal.append(black_box(record)).unwrap();
    }
    let took = per_op(started.elapsed(), batch);
    journal.prune_before(journal.next_sequence()).unwrap();
    took
}

/// Mean ns of `batch` sets striding over the hot working set. Untimed before them, as the
/// appends' pruning after each batch: a checkpoint (which prunes the image's journal, so that
/// both journals append into recycled segments) and a set in each page of the working set,
/// which makes its private copies again.
fn hot_batch(image: &mut MappedVec<Elem>, batch: usize) -> f64 {
    image.checkpoint().unwrap();
    for page in 0..HOT_PAGES {
        image.set(page * PER_PAGE, elem(1)).unwrap();
    }
    let hot_len = HOT_PAGES * PER_PAGE;
    let value = elem(7);
    let started = Instant::now();
    for k in 0..batch {
        image.set(scatter(k, hot_len), black_box(value)).unwrap();
    }
    per_op(started.elapsed(), batch)
}

/// Mean ns of `batch` plain 64-byte stores into a 1 MiB `Vec` at the hot sets' indices: what
/// the memory costs a set, with no journal and no image.
fn plain_batch(array: &mut [Elem], batch: usize) -> f64 {
    let value = elem(7);
    let started = Instant::now();
    for k in 0..batch {
        array[scatter(k, array.len())] = black_box(value);
    }
    black_box(&array);
    per_op(started.elapsed(), batch)
}

/// One round of the set part: (append of 64 B, append of the set's 81-byte record, plain
/// store, hot set, cold set), in ns per operation. The first three alternate in `SLICES` slices of the batch
/// and each keeps the median of its slices: on a shared machine a slice that lost its core
/// to another process says nothing about the code.
fn set_round(image: &mut MappedVec<Elem>, journal: &Journal, batch: usize) -> [f64; 5] {
    const SLICES: usize = 10;
    let value = elem(7);
    let slice = (batch / SLICES).max(1);
    let mut array = vec![elem(0); HOT_PAGES * PER_PAGE];
    let (mut append, mut append81, mut plain, mut hot) = (vec![], vec![], vec![], vec![]);
    for _ in 0..SLICES {
        append.push(append_batch(journal, bytemuck::bytes_of(&value), slice));
        append81.push(append_batch(journal, &[7u8; 81], slice));
        plain.push(plain_batch(&mut array, slice));
        hot.push(hot_batch(image, slice));
    }

    // Cold: each set on a page not written since the checkpoint.
    image.checkpoint().unwrap();
    let pages = (image.len() / PER_PAGE).min(batch);
    let started = Instant::now();
    for k in 0..pages {
        let page = scatter(k, image.len() / PER_PAGE);
        image.set(page * PER_PAGE, black_box(value)).unwrap();
    }
    let cold = per_op(started.elapsed(), pages);
    image.checkpoint().unwrap();
    [
        median(&append),
        median(&append81),
        median(&plain),
        median(&hot),
        cold,
    ]
}

fn bench_set(rounds: usize, batch: usize) {
    let dir = scratch("kekbit-image-set-");
    let mut image = options()
        .capacity(SMALL_LEN as u64)
        .create(dir.path().join("img"))
        .unwrap();
    image.extend_from_slice(&vec![elem(0); SMALL_LEN]).unwrap();
    image.checkpoint().unwrap();
    let journal = options()
        .journal_options()
        .clone()
        .open(dir.path().join("journal"))
        .unwrap();
    let mut all = Vec::new();
    for round in 0..rounds {
        let [append, append81, plain, hot, cold] = set_round(&mut image, &journal, batch);
        println!(
            "  round {round}: append 64 B {append:.0} ns, 81 B {append81:.0} ns, plain store {plain:.1} ns, set hot {hot:.0} ns ({:.2}×), set cold {cold:.0} ns ({:.2}×)",
            hot / append,
            cold / append
        );
        let own = hot - append81 - plain;
        all.push([
            append,
            append81,
            hot,
            cold,
            hot / append,
            cold / append,
            hot / append81,
            plain,
            own,
        ]);
    }
    let column = |i: usize| all.iter().map(|r| r[i]).collect::<Vec<f64>>();
    println!(
        "set 64 B (medians of {rounds} rounds): append 64 B {:.0} ns, append 81 B {:.0} ns, set hot {:.0} ns, set cold {:.0} ns",
        median(&column(0)),
        median(&column(1)),
        median(&column(2)),
        median(&column(3))
    );
    println!(
        "  set/append 64 B: hot {} (median {:.2}×), cold {} (median {:.2}×); target ≤ 2×",
        list(&column(4), 1.0, 2),
        median(&column(4)),
        list(&column(5), 1.0, 2),
        median(&column(5))
    );
    println!(
        "  hot set / append of its 81-byte record: {} (median {:.2}×); plain store {:.1} ns; the image's own cost (hot set - 81 B append - plain store): {} ns (median {:.0})",
        list(&column(6), 1.0, 2),
        median(&column(6)),
        median(&column(7)),
        list(&column(8), 1.0, 0),
        median(&column(8))
    );
}

/// The serde side: the same elements as a prevalent store's state.
#[derive(Serialize, Deserialize)]
struct Noop;

impl Command<Vec<Elem>> for Noop {
    type Output = ();
    fn apply(&self, _: &mut Vec<Elem>) {}
}

/// Mean seconds of `opens` reopenings of the image in `dir` (the drops untimed).
fn reopen_image(dir: &Path, opens: usize) -> f64 {
    let mut total = Duration::ZERO;
    for _ in 0..opens {
        let started = Instant::now();
        let image = options().open(dir).unwrap();
        total += started.elapsed();
        assert_eq!(image.open_report().replayed, 0);
        black_box(image.len());
    }
    total.as_secs_f64() / opens as f64
}

fn bench_reopen(rounds: usize, opens: usize, big: &Path, big_name: &str) {
    let small = scratch("kekbit-image-reopen-");
    build(&small.path().join("img"), SMALL);
    let store_dir = small.path().join("store");
    {
        let state: Vec<Elem> = (0..SMALL / 64).map(elem).collect();
        let store = PrevalentStore::<Vec<Elem>, Noop>::open(&store_dir, state, StoreOptions::new())
            .unwrap();
        store.snapshot().unwrap();
    }
    let mut all = Vec::new();
    for round in 0..rounds {
        let small_image = reopen_image(&small.path().join("img"), opens);
        let big_image = reopen_image(big, opens);
        let started = Instant::now();
        let store =
            PrevalentStore::<Vec<Elem>, Noop>::open(&store_dir, Vec::new(), StoreOptions::new())
                .unwrap();
        let snapshot = started.elapsed().as_secs_f64();
        assert_eq!(store.query(|s| s.len()).unwrap(), SMALL_LEN);
        drop(store);
        println!(
            "  round {round}: reopen image_64MiB {:.2} ms, {big_name} {:.2} ms; snapshot_64MiB {:.0} ms ({:.0}× the 64 MiB image, {:.0}× {big_name})",
            small_image * 1e3,
            big_image * 1e3,
            snapshot * 1e3,
            snapshot / small_image,
            snapshot / big_image
        );
        all.push([small_image, big_image, snapshot]);
    }
    let column = |i: usize| all.iter().map(|r| r[i]).collect::<Vec<f64>>();
    let (s, b, snap) = (median(&column(0)), median(&column(1)), median(&column(2)));
    println!(
        "reopen after a clean close (medians of {rounds} rounds of {opens} opens): image_64MiB {:.2} ms, {big_name} {:.2} ms (rounds: {}); target ≤ 10 ms",
        s * 1e3,
        b * 1e3,
        list(&column(1), 1e3, 2)
    );
    println!(
        "  restoring the 64 MiB from its serde snapshot: {:.0} ms, {:.0}× the 64 MiB image's reopen, {:.0}× {big_name}'s",
        snap * 1e3,
        snap / s,
        snap / b
    );
}

fn bench_checkpoint(rounds: usize, big: &Path) {
    let mut image = options().open(big).unwrap();
    let pages = image.len() / PER_PAGE;
    let mut seed = 0x1234_5678u64;
    let mut all = Vec::new();
    for round in 0..rounds {
        let mut row = Vec::new();
        for per_mille in [1usize, 10] {
            let dirty = (pages * per_mille / 1000).max(1);
            for _ in 0..dirty {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let page = (seed >> 20) as usize % pages;
                image.set(page * PER_PAGE, elem(seed)).unwrap();
            }
            let started = Instant::now();
            let done = image.checkpoint().unwrap();
            let took = started.elapsed().as_secs_f64();
            row.push((took, done.pages_written));
        }
        println!(
            "  round {round}: 0.1% ({} pages) {:.1} ms, 1% ({} pages) {:.1} ms",
            row[0].1,
            row[0].0 * 1e3,
            row[1].1,
            row[1].0 * 1e3
        );
        all.push(row);
    }
    for (i, name) in ["0.1%", "1%"].iter().enumerate() {
        let times: Vec<f64> = all.iter().map(|r| r[i].0).collect();
        let per_page: Vec<f64> = all.iter().map(|r| r[i].0 / r[i].1 as f64).collect();
        println!(
            "checkpoint of {pages} pages with {name} dirty (median of {rounds}): {:.1} ms, {:.1} µs per page (rounds: {} ms)",
            median(&times) * 1e3,
            median(&per_page) * 1e6,
            list(&times, 1e3, 1)
        );
    }
}

fn main() {
    let full = benchmarking();
    let rounds = if full {
        env_u64("KEKBIT_IMAGE_BENCH_ROUNDS", 5) as usize
    } else {
        1
    };
    let gib = env_u64("KEKBIT_IMAGE_BENCH_GIB", 4);
    let big_bytes = if full { gib << 30 } else { SMALL };
    let big_name = if full {
        format!("image_{gib}GiB")
    } else {
        "image_64MiB_2".to_string()
    };
    println!(
        "image benches in {} ({}), {rounds} rounds",
        base().display(),
        filesystem(&base())
    );
    if runs("set") {
        bench_set(rounds, if full { 100_000 } else { 1_000 });
    }
    if !runs("reopen") && !runs("checkpoint") {
        return;
    }
    let big = scratch("kekbit-image-big-");
    let built = Instant::now();
    build(&big.path().join("img"), big_bytes);
    println!(
        "built a {} MiB image in {:.1?}",
        big_bytes >> 20,
        built.elapsed()
    );
    if runs("reopen") {
        bench_reopen(
            rounds,
            if full { 20 } else { 1 },
            &big.path().join("img"),
            &big_name,
        );
    }
    if runs("checkpoint") {
        bench_checkpoint(rounds, &big.path().join("img"));
    }
}
