#![cfg(feature = "fault-injection")]
//! Simulated power loss for mapped images (../shared/RELIABILITY.md, promise 10 and the
//! "mapped image" row; docs/FORMAT.md, "Mapped image"): at every sync point of a workload of
//! changes, checkpoints, growth and a clean reopen, build the directories a power loss could
//! leave, reopen each, and check that the image holds exactly the state after some prefix of
//! the changes that includes every change acknowledged durable.
//!
//! # The model
//!
//! A recording [`IoObserver`] follows what kekbit announces through its I/O seam under the
//! image's directory, and keeps per file a *durable image*: the whole file on `SyncFile`, the
//! range's 4 KiB pages on `FlushRange` (the journal's `msync`), with the pages a sync ever
//! covered. Before and after every sync, `pwrite` (`WriteAt`, a checkpoint's pages and header
//! slots) and `Reserve` (growth) — a *crash point* — it notes each file's current contents
//! (what the page cache holds: the journal's shared mapping and the image's `pwrite`s, and
//! never the image's private mapping) and durable image, with the number of changes
//! acknowledged durable so far. Each crash point gives the images:
//! - `old`: every file as durable (its durable length; zeros where never synced);
//! - `new`: every file as it is (everything written back just before the power went);
//! - `garbage+old`: as `old`, with the pages no sync ever covered filled with garbage;
//! - `page-mix-k` and `sector-mix-k`: each differing 4 KiB page (resp. 512-byte sector)
//!   old or new at random, seeded, at the current length.
//!
//! Names are taken as durable as soon as they exist (the journal's own power-loss test holds
//! names to the directory-sync rule); the image is created before recording starts.
//!
//! # The workload
//!
//! 64-byte elements, capacity starting at one page (64 elements) and growing; under
//! `Durability::EveryN(2)` with an explicit `sync` now and then, so that some acknowledged
//! changes are durable and some are not (and a shorter run under `Durability::Never`, half of
//! the long run's workloads too); each change is one journal record; a checkpoint
//! every seven changes, a clean reopen halfway, 16 KiB journal segments so that checkpoints
//! prune them. `KEKBIT_IMAGE_POWER_LOSS_CHANGES` (default 60) and `..._MIXES` (default 2) set
//! the size; the long run is `#[ignore]`d:
//!
//! ```text
//! cargo test --release --all-features --test image_power_loss -- --ignored --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kekbit::fault::{set_observer, IoObserver, IoOp};
use kekbit::image::{ImageOptions, MappedVec};
use kekbit::journal::{Durability, JournalOptions};

#[path = "common/reliability.rs"]
mod reliability;
use reliability::{env_count, mix, Rng};

const PAGE: usize = 4096;
const SECTOR: usize = 512;

type Elem = [u64; 8];

fn options(durability: Durability) -> ImageOptions<Elem> {
    let journal = JournalOptions::new()
        .segment_capacity(16 << 10)
        .max_record_len(1024)
        .durability(durability);
    MappedVec::<Elem>::options()
        .type_tag(0x1057, 1)
        .journal(journal)
}

/// One file at a crash point.
#[derive(Clone)]
struct FileState {
    current: Vec<u8>,
    durable: Vec<u8>,
    synced_pages: BTreeSet<usize>,
}

struct CrashPoint {
    what: String,
    acked_durable: u64,
    files: BTreeMap<PathBuf, FileState>,
}

#[derive(Default)]
struct Durable {
    files: BTreeMap<PathBuf, (Vec<u8>, BTreeSet<usize>)>,
}

struct Recorder {
    root: PathBuf,
    acked_durable: Arc<AtomicU64>,
    /// Crash points are taken once the image is created (durable images from the start).
    armed: Arc<AtomicBool>,
    durable: Mutex<Durable>,
    points: Mutex<Vec<CrashPoint>>,
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => files_under(&path, out),
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

impl Recorder {
    fn mine(&self, op: &IoOp<'_>) -> bool {
        op.path().starts_with(&self.root)
    }

    fn crash_point(&self, what: String) {
        if !self.armed.load(Ordering::SeqCst) {
            return;
        }
        let acked_durable = self.acked_durable.load(Ordering::SeqCst);
        let durable = self.durable.lock().unwrap();
        let mut paths = Vec::new();
        files_under(&self.root, &mut paths);
        let mut files = BTreeMap::new();
        for path in paths {
            let Ok(current) = std::fs::read(&path) else {
                continue; // removed meanwhile
            };
            let (durable, synced_pages) = durable.files.get(&path).cloned().unwrap_or_default();
            files.insert(
                path,
                FileState {
                    current,
                    durable,
                    synced_pages,
                },
            );
        }
        self.points.lock().unwrap().push(CrashPoint {
            what,
            acked_durable,
            files,
        });
    }

    fn record_sync(&self, op: &IoOp<'_>) {
        let mut durable = self.durable.lock().unwrap();
        match *op {
            IoOp::SyncFile(path) => {
                if let Ok(bytes) = std::fs::read(path) {
                    let pages = (0..bytes.len().div_ceil(PAGE)).collect();
                    durable.files.insert(path.to_path_buf(), (bytes, pages));
                }
            }
            IoOp::FlushRange(path, offset, len) => {
                let Ok(bytes) = std::fs::read(path) else {
                    return;
                };
                let entry = durable.files.entry(path.to_path_buf()).or_default();
                if entry.0.len() < bytes.len() {
                    entry.0.resize(bytes.len(), 0);
                }
                let first = offset as usize / PAGE;
                let end = ((offset + len) as usize).div_ceil(PAGE);
                for page in first..end {
                    let (a, b) = (page * PAGE, ((page + 1) * PAGE).min(bytes.len()));
                    if a < b {
                        entry.0[a..b].copy_from_slice(&bytes[a..b]);
                        entry.1.insert(page);
                    }
                }
            }
            IoOp::Rename(from, to) | IoOp::Link(from, to) => {
                if let Some(image) = durable.files.get(from).cloned() {
                    durable.files.insert(to.to_path_buf(), image);
                }
            }
            _ => {}
        }
    }
}

fn is_crash_point(op: &IoOp<'_>) -> bool {
    op.is_sync() || matches!(op, IoOp::WriteAt(..) | IoOp::Reserve(..))
}

impl IoObserver for Recorder {
    fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
        if self.mine(op) && is_crash_point(op) {
            self.crash_point(format!("before {op:?}"));
        }
        // Regression: CI of 2026-12-07 01:58: a crash point taken by another thread right
        // after a `link` (recycling names a file whose header it synced under its kept name)
        // but before this observer's `after` saw no durable content under the new name, and
        // reported the segment's header lost. The model is kept by path, so the new name gets
        // the old one's durable content before the call, and the name appears only after it.
        if self.mine(op) && matches!(op, IoOp::Rename(..) | IoOp::Link(..)) {
            self.record_sync(op);
        }
        Ok(())
    }

    fn after(&self, op: &IoOp<'_>) {
        if self.mine(op) {
            self.record_sync(op);
            if is_crash_point(op) {
                self.crash_point(format!("after {op:?}"));
            }
        }
    }
}

fn elem(x: u64) -> Elem {
    let mut e = [0u64; 8];
    for (i, w) in e.iter_mut().enumerate() {
        *w = mix(x, i as u64);
    }
    e
}

/// Runs the workload in `root/img`; returns the state after each number of changes.
fn workload(
    root: &Path,
    changes: u64,
    seed: u64,
    acked: &AtomicU64,
    armed: &AtomicBool,
    durability: Durability,
) -> Vec<Vec<Elem>> {
    let dir = root.join("img");
    let mut image = Some(options(durability).create(&dir).unwrap());
    armed.store(true, Ordering::SeqCst);
    let mut states = vec![Vec::new()];
    let mut model: Vec<Elem> = Vec::new();
    let mut rng = Rng::new(seed);
    for step in 0..changes {
        let v = image.as_mut().unwrap();
        let x = rng.next_u64();
        let len = model.len();
        match rng.below(10) {
            0..=2 => {
                v.push(elem(x)).unwrap();
                model.push(elem(x));
            }
            4 => {
                let n = 1 + rng.below(10) as usize; // at most 10 × 64 bytes: one record
                let values: Vec<Elem> = (0..n as u64).map(|k| elem(x ^ k)).collect();
                v.extend_from_slice(&values).unwrap();
                model.extend_from_slice(&values);
            }
            5 | 6 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                v.set(i, elem(x)).unwrap();
                model[i] = elem(x);
            }
            7 if len > 1 => {
                let a = rng.below(len as u64 - 1) as usize;
                v.modify(a..a + 2, |s| s[1][0] ^= x | 1).unwrap();
                model[a + 1][0] ^= x | 1;
            }
            3 if len > 2 => {
                // A transfer: two elements changed together (one scatter record).
                let (a, b) = (
                    rng.below(len as u64) as usize,
                    rng.below(len as u64) as usize,
                );
                let (mut ea, mut eb) = (model[a], model[b]);
                ea[1] = ea[1].wrapping_sub(x);
                eb[1] = eb[1].wrapping_add(x);
                v.set_many(&[(a, ea), (b, eb)]).unwrap();
                model[a] = ea;
                model[b] = eb;
            }
            8 if len > 0 => {
                let i = rng.below(len as u64) as usize;
                assert_eq!(v.swap_remove(i).unwrap(), model.swap_remove(i));
            }
            _ if len > 0 => {
                assert_eq!(v.pop().unwrap(), model.pop());
            }
            _ => {
                v.push(elem(x)).unwrap();
                model.push(elem(x));
            }
        }
        states.push(model.clone());
        assert_eq!(
            v.changes(),
            states.len() as u64 - 1,
            "one record per change"
        );
        if step % 5 == 4 {
            v.sync().unwrap();
        }
        acked.store(v.durable_changes(), Ordering::SeqCst);
        if step % 7 == 6 {
            v.checkpoint().unwrap();
        }
        if step == changes / 2 {
            drop(image.take());
            image = Some(options(durability).open(&dir).unwrap());
        }
    }
    drop(image);
    states
}

#[derive(Clone, Copy)]
enum Pick {
    Old,
    New,
    Garbage,
}

/// Builds one crash image: each byte old, new or garbage as `pick` says for (file, offset);
/// at the durable length (zeros where never synced) or the current one.
fn build(
    point: &CrashPoint,
    current_len: bool,
    pick: &mut dyn FnMut(&FileState, usize) -> Pick,
) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for (path, f) in &point.files {
        let len = if current_len || f.durable.is_empty() {
            f.current.len()
        } else {
            f.durable.len()
        };
        let bytes = (0..len)
            .map(|i| match pick(f, i) {
                Pick::Old => f.durable.get(i).copied().unwrap_or(0),
                Pick::New => f.current.get(i).copied().unwrap_or(0),
                Pick::Garbage => (mix(i as u64, 0x6A) as u8) | 1,
            })
            .collect();
        out.insert(path.clone(), bytes);
    }
    out
}

/// The images of one crash point, as (variant, files).
fn images(point: &CrashPoint, mixes: u64, seed: u64) -> Vec<(String, BTreeMap<PathBuf, Vec<u8>>)> {
    let never_synced = |f: &FileState, i: usize| !f.synced_pages.contains(&(i / PAGE));
    let mut out = vec![
        (
            "old".to_string(),
            build(point, false, &mut |_, _| Pick::Old),
        ),
        ("new".to_string(), build(point, true, &mut |_, _| Pick::New)),
        (
            "garbage+old".to_string(),
            build(point, true, &mut |f, i| {
                if never_synced(f, i) {
                    Pick::Garbage
                } else {
                    Pick::Old
                }
            }),
        ),
    ];
    for k in 0..mixes {
        for (name, unit) in [("page-mix", PAGE), ("sector-mix", SECTOR)] {
            let mut pick = |_: &FileState, i: usize| {
                if mix(mix(seed, k), (i / unit) as u64) & 1 == 0 {
                    Pick::Old
                } else {
                    Pick::New
                }
            };
            out.push((format!("{name}-{k}"), build(point, true, &mut pick)));
        }
    }
    out
}

/// One workload at a time: the observer is the whole process's.
static SERIAL: Mutex<()> = Mutex::new(());

fn check(changes: u64, mixes: u64, seed: u64, durability: Durability) {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let root = tempfile::tempdir_in(base).unwrap();
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let armed = Arc::new(AtomicBool::new(false));
    let recorder = Arc::new(Recorder {
        root: work.join("img"),
        acked_durable: Arc::clone(&acked),
        armed: Arc::clone(&armed),
        durable: Mutex::new(Durable::default()),
        points: Mutex::new(Vec::new()),
    });
    let started = std::time::Instant::now();
    set_observer(Some(recorder.clone()));
    let states = workload(&work, changes, seed, &acked, &armed, durability);
    set_observer(None);
    let points = std::mem::take(&mut *recorder.points.lock().unwrap());
    let (mut checked, mut violations) = (0u64, Vec::new());
    let mut seen = BTreeSet::new();
    for (p, point) in points.iter().enumerate() {
        for (variant, files) in images(point, mixes, mix(seed, p as u64)) {
            let key: Vec<u64> = files
                .iter()
                .map(|(path, b)| mix(crc(path.as_os_str().as_encoded_bytes()), crc(b)))
                .collect();
            if !seen.insert((key, point.acked_durable)) {
                continue;
            }
            checked += 1;
            let dir = root.path().join(format!("crash-{p}-{variant}"));
            for (path, bytes) in &files {
                let target = dir.join(path.strip_prefix(&work).unwrap());
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::write(&target, bytes).unwrap();
            }
            let found = match options(durability).open(dir.join("img")) {
                Ok(image) => {
                    let k = image.changes();
                    if k < point.acked_durable || k as usize >= states.len() {
                        Err(format!(
                            "{k} changes recovered, {} acknowledged durable",
                            point.acked_durable
                        ))
                    } else if image[..] != states[k as usize][..] {
                        Err(format!("the state is not the state after {k} changes"))
                    } else {
                        Ok(())
                    }
                }
                Err(e) => Err(format!("open failed: {e}")),
            };
            match found {
                Ok(()) => {
                    let _ = std::fs::remove_dir_all(&dir);
                }
                Err(why) => violations.push(format!(
                    "{} / {variant}: {why} (kept in {})",
                    point.what,
                    dir.display()
                )),
            }
        }
    }
    println!(
        "image power loss ({durability}): {changes} changes, {} crash points, {checked} distinct images checked, {} violations, {:.1?}",
        points.len(),
        violations.len(),
        started.elapsed()
    );
    if !violations.is_empty() {
        let kept = root.keep(); // the failing images stay for inspection
        panic!(
            "{} violations (images in {}):\n{}",
            violations.len(),
            kept.display(),
            violations.join("\n")
        );
    }
}

fn crc(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

#[test]
fn power_loss_at_every_sync_point_keeps_a_prefix_with_every_durable_change() {
    let changes = env_count("KEKBIT_IMAGE_POWER_LOSS_CHANGES", 60);
    let mixes = env_count("KEKBIT_IMAGE_POWER_LOSS_MIXES", 2);
    check(changes, mixes, 0x1AA6_E001, Durability::EveryN(2));
}

/// Under `Never` only the explicit syncs and the checkpoints make changes durable, and the
/// clean close halfway closes the journal durably all the same (docs/FORMAT.md, "Closing an
/// image"): its seal's sync and the release of its tail are crash points too.
#[test]
fn power_loss_under_never_keeps_a_prefix_with_every_synced_change() {
    let changes = env_count("KEKBIT_IMAGE_POWER_LOSS_CHANGES", 60) / 2;
    check(changes, 1, 0x1AA6_E003, Durability::Never);
}

#[test]
#[ignore = "long run: 8 workloads of 400 changes, 6 mixes"]
fn power_loss_long_run() {
    for round in 0..8 {
        let durability = match round % 2 {
            0 => Durability::EveryN(2),
            _ => Durability::Never,
        };
        check(400, 6, mix(0x1AA6_E002, round), durability);
    }
}
