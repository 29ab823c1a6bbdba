#![cfg(feature = "fault-injection")]
//! Simulated power loss: at every sync point of a journal or prevalent-store workload, build
//! the directories a power loss at that moment could leave, and check that recovery hands
//! back every acknowledged record (../shared/RELIABILITY.md, "simulated power loss", promises
//! 1 to 3; docs/FORMAT.md, "Writing protocol and crash cases", "Rolling over", "Opening a
//! journal for appending", "Writing a snapshot").
//!
//! # The model
//!
//! A recording [`IoObserver`] follows every operation kekbit announces through its I/O seam
//! (`kekbit::fault`) under the workload's directory and keeps what storage is known to hold:
//! - per file (an inode, followed across `Link` and `Rename` by its inode number), a *durable
//!   image*: on `SyncFile` the whole file as it is then; on `FlushRange(off, len)` the current
//!   bytes of that range rounded out to 4 KiB pages, copied into the image (grown with zeros
//!   to the file's length). Bytes never synced are zero (segments are preallocated);
//! - per directory, the *durable names*: on `SyncDir` the directory's entries as they are
//!   then, each bound to its inode. A name created since is absent after a crash, a name
//!   removed since is still there (with its durable image).
//!
//! Before and after every sync (`SyncFile`, `FlushRange`, `SyncDir`) and every `Punch` (the
//! release of a sealed segment's unused space, which changes no byte the model keeps) — a
//! *crash point* — the model notes the durable names with their durable images and, for each
//! file, its current contents where they differ, with the number of records (or commands)
//! the workload had been told were durable so far. After the workload, each crash point yields several *crash
//! images* (post-crash directories). A file whose current contents differ from its durable
//! image is rebuilt 512-byte sector by sector (a sector, per docs/FORMAT.md, "What we assume
//! of the system", is written entirely or not at all; nothing larger is atomic); each sector
//! that differs is one of *new* (the current bytes), *old* (the durable bytes) or *garbage*:
//! - `new`: every such sector new (the OS wrote everything back just before the power went);
//! - `old`: every sector old (nothing written back since the last sync);
//! - `garbage+old`, `garbage+new`: every differing sector of a page that no sync ever wrote to
//!   storage (space `fallocate` reserved, whose data never reached the disk: a file system
//!   that marks the extent written before its data is there exposes stale blocks) is garbage,
//!   the others old (resp. new). Garbage is random bytes, or (one time in three) a stale
//!   sector copied from a random file of the image at a random offset. A page a sync wrote
//!   once holds old or new sectors only;
//! - `page-mix-k`: each 4 KiB page chosen as a whole (new, old, or garbage where allowed),
//!   seeded;
//! - `sector-mix-k`: each sector chosen on its own (torn pages), seeded;
//! - when the file's length changed since its durable image: `old` keeps the durable length,
//!   the mixes choose either, the others keep the current length.
//!
//! Identical images are checked once (with the highest acknowledged count among the crash
//! points that produced them). A further variant, `garbage-any`, turns *every* differing
//! sector into garbage, including sectors storage already held: it breaks the sector
//! atomicity the format assumes (the live header words, rewritten after every sync, share a
//! sector with the checksummed header), so its results are counted and printed apart and
//! are not violations.
//!
//! Simplifications: 4 KiB pages and 512-byte sectors whatever the file system says; the
//! workload's top directory exists and is durable; directories a workload creates inside it
//! (a journal's, a store's `journal/` and `snapshots/`) are durable once created, except in
//! [`power_loss_directories_created_on_open`], which holds them to the rule for names (a new
//! directory is durable once its parent is synced); a file's current contents are read at
//! the crash point, which may run on kekbit's background thread while the workload appends
//! (any mixture of page versions is a state writeback could leave, so this is sound).
//!
//! # The workloads
//!
//! Segments of 8 KiB (three pages per file) and records of 0 to 6,000 bytes, so that records
//! cross segment ends every one or two appends; each workload stops and reopens its journal
//! or store halfway (a clean restart, whose recovery is recorded too). Records are derived
//! from (seed, sequence number); a store's commands carry such a payload as a blob.
//! - journal, `Durability::EveryRecord`, one thread: acknowledged = `append` returned;
//! - journal, `EveryRecord`, three threads appending under a shared lock with
//!   `append_deferred` and waiting with `wait_durable` outside it (group commit, as the
//!   prevalent store does): acknowledged = `wait_durable(seq)` returned;
//! - journal, `EveryN(3)` plus an explicit `sync()` one append in five: acknowledged =
//!   `durable_count()`;
//! - journal, `EveryRecord`, closed and reopened every three records, in 32 KiB segments,
//!   half as many records: each close and each opening releases the pages after the tail's
//!   seal (`Punch`), with crash points before and after each release;
//! - prevalent store, `EveryRecord` and `EveryN(3)`, a snapshot one command in six (two kept,
//!   the journal pruned behind them): acknowledged = `durable_count()` of its journal;
//! - a journal opened on a directory it creates, and a store (which creates `journal/` and
//!   `snapshots/`), with the strict rule for new directories.
//!
//! # The checks, on every image
//!
//! Journal workloads: a `JournalReader` from 0 on the image as left (it may stop with an
//! error, but every record it returns must be exactly what was written at that sequence
//! number); `Journal::open` (recovery) must succeed; its `next_sequence` must be at least the
//! number acknowledged durable and at most the number ever written; reading from 0 must
//! return exactly `next_sequence` records, gapless and each the payload derived from (seed,
//! sequence number); an append after recovery must get `next_sequence` and read back; a
//! second open must find one more record.
//!
//! Store workloads: `PrevalentStore::open` must succeed, and the state must equal the state
//! after the first `k` commands executed, for some `k` at least the number acknowledged
//! durable (`k` is the journal's `next_sequence`); a command executed after recovery must
//! apply on top and survive another reopen.
//!
//! A violation is reported with its crash point, the image's sector map per file (`.` same
//! as durable, `N` new, `O` old, `G` garbage, `|` between pages), the operations before the
//! crash point, and a copy of the image kept in the temporary directory.
//!
//! Each test prints crash points, images generated and checked, violations (must be 0),
//! records recovered and torn bytes dropped, and its time. Settings:
//! `KEKBIT_POWER_LOSS_ROUNDS` (default 1: workloads per test, each with its own seed),
//! `KEKBIT_POWER_LOSS_RECORDS` (default 48: records or commands per workload),
//! `KEKBIT_POWER_LOSS_MIXES` (default 2: seeded page mixes and sector mixes per crash point),
//! `KEKBIT_POWER_LOSS_SEED` (a decimal number; default fixed), `KEKBIT_POWER_LOSS_TMP`
//! (where workloads run and images are built; default /dev/shm when present: recovery syncs
//! each image, and on a disk the run takes several times longer). The default run takes
//! 20 to 30 s in debug on two cores. The larger run (about 7 minutes):
//!
//! ```text
//! KEKBIT_POWER_LOSS_ROUNDS=8 KEKBIT_POWER_LOSS_RECORDS=96 KEKBIT_POWER_LOSS_MIXES=6 \
//!     cargo test --release --all-features --test reliability_power_loss -- --nocapture
//! ```

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kekbit::fault::{set_observer, IoObserver, IoOp};
use kekbit::journal::{Durability, Journal, JournalOptions, JournalReader};
use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
use serde::{Deserialize, Serialize};

#[cfg(feature = "raft")]
#[path = "power_loss/raft.rs"]
mod raft;
#[path = "common/reliability.rs"]
mod reliability;
use reliability::{env_count, mix, Rng};

const PAGE: usize = 4096;
const SECTOR: usize = 512;
/// Data area of a segment: a segment file is 8,320 bytes, three pages.
const SEGMENT: u64 = 8192;
/// Records up to 6,000 bytes: one or two per segment, so three appends can cross two
/// segment ends.
const MAX_RECORD: u32 = 6000;
/// Largest blob carried by a store command.
const MAX_BLOB: usize = 5900;

/// The observer is process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

// ---------------------------------------------------------------------------------------
// Randomness and payloads

/// The record `seq` of a workload seeded with `seed`: 0 to `max` bytes (a quarter under 48
/// bytes, a quarter within 64 bytes of `max`, the rest uniform), pseudo-random, starting with
/// `seq` itself when there is room.
fn payload(seed: u64, seq: u64, max: usize) -> Vec<u8> {
    let mut rng = Rng::new(mix(seed, seq));
    let len = match rng.below(8) {
        0 | 1 => rng.below(48) as usize,
        2 | 3 => max - rng.below(64) as usize,
        _ => rng.below(max as u64 + 1) as usize,
    };
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    let head = len.min(8);
    bytes[..head].copy_from_slice(&seq.to_le_bytes()[..head]);
    bytes
}

struct Settings {
    rounds: u64,
    records: u64,
    mixes: u32,
    seed: u64,
}

fn settings() -> Settings {
    Settings {
        rounds: env_count("KEKBIT_POWER_LOSS_ROUNDS", 1).max(1),
        records: env_count("KEKBIT_POWER_LOSS_RECORDS", 48).max(4),
        mixes: env_count("KEKBIT_POWER_LOSS_MIXES", 2) as u32,
        seed: env_count("KEKBIT_POWER_LOSS_SEED", 0x6b65_6b62_6974_0002),
    }
}

/// Where workloads run and images are built: a RAM file system when there is one (images
/// are synced on recovery, thousands of times).
fn scratch_dir(prefix: &str) -> tempfile::TempDir {
    let base = match std::env::var_os("KEKBIT_POWER_LOSS_TMP") {
        Some(dir) => PathBuf::from(dir),
        None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .or_else(|_| tempfile::Builder::new().prefix(prefix).tempdir())
        .expect("a scratch directory")
}

// ---------------------------------------------------------------------------------------
// The model of what storage holds

type Bytes = Arc<Vec<u8>>;

/// A durable directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A file: an index into [`Model::durable`].
    File(usize),
    Dir,
}

/// One file of a crash point: its durable image and, when they differ, its current bytes.
#[derive(Debug, Clone)]
struct FileState {
    rel: PathBuf,
    durable: Bytes,
    /// Which of its pages were ever written to storage by a sync.
    written: Arc<Vec<bool>>,
    current: Option<Bytes>,
}

#[derive(Debug, Clone)]
struct CrashPoint {
    label: String,
    /// Records (commands) acknowledged durable by then.
    acked: u64,
    /// Operations traced up to this point (for the report of a violation).
    trace_len: usize,
    /// Directories present after the crash, relative to the root.
    dirs: Vec<PathBuf>,
    files: Vec<FileState>,
}

#[derive(Default)]
struct Model {
    root: PathBuf,
    /// The directories whose files are modelled (absolute).
    dirs: Vec<PathBuf>,
    /// Whether a directory created in the root (or below) needs its parent synced.
    strict_dirs: bool,
    acked: Arc<AtomicU64>,
    /// Durable image of each inode seen.
    durable: Vec<Bytes>,
    /// Pages of each inode that a sync wrote to storage at least once (the others are
    /// still the zeros `fallocate` reserved, and may read back as garbage: see `build`).
    written: Vec<Arc<Vec<bool>>>,
    /// Inode number → index in `durable`, for the files that currently exist.
    by_ino: HashMap<u64, usize>,
    /// Durable entries of each directory synced at least once.
    names: HashMap<PathBuf, BTreeMap<OsString, Entry>>,
    points: Vec<CrashPoint>,
    trace: Vec<String>,
    problems: Vec<String>,
}

impl Model {
    fn rel(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }

    fn show(&self, path: &Path) -> String {
        let rel = self.rel(path);
        if rel.as_os_str().is_empty() {
            ".".into()
        } else {
            rel.display().to_string()
        }
    }

    fn describe(&self, op: &IoOp<'_>) -> String {
        match *op {
            IoOp::CreateFile(p) => format!("CreateFile({})", self.show(p)),
            IoOp::Reserve(p, len) => format!("Reserve({}, {len})", self.show(p)),
            IoOp::SyncFile(p) => format!("SyncFile({})", self.show(p)),
            IoOp::FlushRange(p, off, len) => {
                format!("FlushRange({}, {off}..{})", self.show(p), off + len)
            }
            IoOp::SyncDir(p) => format!("SyncDir({})", self.show(p)),
            IoOp::Link(a, b) => format!("Link({} -> {})", self.show(a), self.show(b)),
            IoOp::Rename(a, b) => format!("Rename({} -> {})", self.show(a), self.show(b)),
            IoOp::Remove(p) => format!("Remove({})", self.show(p)),
            IoOp::Punch(p, off, len) => format!("Punch({}, {off}..{})", self.show(p), off + len),
            other => format!("{other:?}"),
        }
    }

    fn covers(&self, op: &IoOp<'_>) -> bool {
        op.path().starts_with(&self.root)
    }

    fn new_inode(&mut self, ino: u64) -> usize {
        self.durable.push(Arc::new(Vec::new()));
        self.written.push(Arc::new(Vec::new()));
        let id = self.durable.len() - 1;
        self.by_ino.insert(ino, id);
        id
    }

    /// The inode record of an existing file; a file never announced (the journal's lock
    /// file) gets one with an empty durable image.
    fn inode(&mut self, ino: u64) -> usize {
        match self.by_ino.get(&ino) {
            Some(&id) => id,
            None => self.new_inode(ino),
        }
    }

    fn inode_at(&mut self, path: &Path) -> Option<usize> {
        match fs::metadata(path) {
            Ok(meta) => Some(self.inode(meta.ino())),
            Err(e) => {
                self.problems
                    .push(format!("stat {} failed: {e}", path.display()));
                None
            }
        }
    }

    fn sync_file(&mut self, path: &Path) {
        let Some(id) = self.inode_at(path) else {
            return;
        };
        match fs::read(path) {
            Ok(bytes) => {
                let mut written = self.written[id].as_ref().clone();
                written.resize(written.len().max(bytes.len().div_ceil(PAGE)), false);
                for (page, content) in bytes.chunks(PAGE).enumerate() {
                    // fsync writes the pages that were written to; a reserved page never
                    // written to stays unwritten (it reads as zeros).
                    written[page] |= content.iter().any(|&b| b != 0);
                }
                self.written[id] = Arc::new(written);
                self.durable[id] = Arc::new(bytes);
            }
            Err(e) => self
                .problems
                .push(format!("reading {} failed: {e}", path.display())),
        }
    }

    fn flush_range(&mut self, path: &Path, offset: u64, len: u64) {
        let Some(id) = self.inode_at(path) else {
            return;
        };
        let read = fs::File::open(path).and_then(|file| {
            let file_len = file.metadata()?.len() as usize;
            let start = (offset as usize / PAGE * PAGE).min(file_len);
            let end = (offset + len).div_ceil(PAGE as u64) as usize * PAGE;
            let end = end.min(file_len);
            let mut bytes = vec![0u8; end - start];
            file.read_exact_at(&mut bytes, start as u64)?;
            Ok((file_len, start, bytes))
        });
        match read {
            Ok((file_len, start, bytes)) => {
                let mut image = self.durable[id].as_ref().clone();
                if image.len() < file_len {
                    image.resize(file_len, 0);
                }
                image[start..start + bytes.len()].copy_from_slice(&bytes);
                self.durable[id] = Arc::new(image);
                let mut written = self.written[id].as_ref().clone();
                let pages = start / PAGE..(start + bytes.len()).div_ceil(PAGE);
                written.resize(written.len().max(pages.end), false);
                for page in pages {
                    written[page] = true;
                }
                self.written[id] = Arc::new(written);
            }
            Err(e) => self
                .problems
                .push(format!("reading {} failed: {e}", path.display())),
        }
    }

    fn sync_dir(&mut self, dir: &Path) {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.problems
                    .push(format!("listing {} failed: {e}", dir.display()));
                return;
            }
        };
        let mut names = BTreeMap::new();
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                names.insert(entry.file_name(), Entry::Dir);
            } else if kind.is_file() {
                let id = self.inode(entry.ino());
                names.insert(entry.file_name(), Entry::File(id));
            }
        }
        self.names.insert(dir.to_path_buf(), names);
    }

    /// Whether directory `dir` survives a crash now.
    fn dir_durable(&self, dir: &Path) -> bool {
        if !self.strict_dirs || dir == self.root {
            return true;
        }
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return false;
        };
        self.dir_durable(parent)
            && self
                .names
                .get(parent)
                .is_some_and(|names| names.get(name) == Some(&Entry::Dir))
    }

    fn crash_point(&mut self, label: String) {
        let acked = self.acked.load(Ordering::SeqCst);
        // Where each inode can be read now.
        let mut current: HashMap<usize, PathBuf> = HashMap::new();
        for dir in self.dirs.clone() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_file()) {
                    let id = self.inode(entry.ino());
                    current.insert(id, entry.path());
                }
            }
        }
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for dir in &self.dirs {
            if !self.dir_durable(dir) {
                continue;
            }
            dirs.push(self.rel(dir));
            let Some(names) = self.names.get(dir) else {
                continue;
            };
            for (name, entry) in names {
                let Entry::File(id) = *entry else {
                    continue;
                };
                let durable = Arc::clone(&self.durable[id]);
                let written = Arc::clone(&self.written[id]);
                let now = current.get(&id).and_then(|path| fs::read(path).ok());
                files.push(FileState {
                    rel: self.rel(dir).join(name),
                    current: now.filter(|now| **now != *durable).map(Arc::new),
                    durable,
                    written,
                });
            }
        }
        let trace_len = self.trace.len();
        self.points.push(CrashPoint {
            label,
            acked,
            trace_len,
            dirs,
            files,
        });
    }
}

/// Whether a crash point is noted before and after `op`: every sync, and every release of a
/// sealed segment's unused space (a punched hole). A punch changes no byte the model keeps:
/// the range held zeros (or, in a page no sync wrote, garbage, as the images already allow),
/// and reads as zeros after it whether or not the punch reached storage; its crash points
/// check that recovery is indifferent to where it falls between the syncs around it.
fn is_crash_point(op: &IoOp<'_>) -> bool {
    op.is_sync() || matches!(op, IoOp::Punch(..))
}

/// The observer: updates the model after each operation and notes a crash point before and
/// after each sync and each punch.
struct Recorder {
    model: Mutex<Model>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IoObserver for Recorder {
    fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
        let mut model = self.lock();
        if model.covers(op) && is_crash_point(op) {
            let label = format!("before {}", model.describe(op));
            model.crash_point(label);
        }
        Ok(())
    }

    fn after(&self, op: &IoOp<'_>) {
        let mut model = self.lock();
        if !model.covers(op) {
            return;
        }
        let described = model.describe(op);
        model.trace.push(described.clone());
        match *op {
            IoOp::CreateFile(path) => match fs::metadata(path) {
                Ok(meta) => {
                    model.new_inode(meta.ino());
                }
                Err(e) => model
                    .problems
                    .push(format!("stat {} failed: {e}", path.display())),
            },
            IoOp::SyncFile(path) => model.sync_file(path),
            IoOp::FlushRange(path, offset, len) => model.flush_range(path, offset, len),
            IoOp::SyncDir(dir) => model.sync_dir(dir),
            _ => {}
        }
        if is_crash_point(op) {
            model.crash_point(format!("after {described}"));
        }
    }
}

/// Runs `work` with the recorder installed and returns the model (with a last crash point
/// at the end of the workload).
fn record(
    root: &Path,
    dirs: Vec<PathBuf>,
    strict_dirs: bool,
    work: impl FnOnce(&AtomicU64),
) -> Model {
    let acked = Arc::new(AtomicU64::new(0));
    let recorder = Arc::new(Recorder {
        model: Mutex::new(Model {
            root: root.to_path_buf(),
            dirs,
            strict_dirs,
            acked: Arc::clone(&acked),
            ..Model::default()
        }),
    });
    let previous = set_observer(Some(recorder.clone() as Arc<dyn IoObserver>));
    let outcome = catch_unwind(AssertUnwindSafe(|| work(&acked)));
    recorder.lock().crash_point("end of workload".into());
    set_observer(previous);
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
    let model = std::mem::take(&mut *recorder.lock());
    assert!(
        model.problems.is_empty(),
        "the model could not follow the workload: {:?}",
        model.problems
    );
    model
}

// ---------------------------------------------------------------------------------------
// Crash images

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    New,
    Old,
    GarbageOld,
    GarbageNew,
    PageMix(u32),
    SectorMix(u32),
    /// Garbage even over synced bytes: beyond the format's assumption.
    GarbageAny,
}

impl Policy {
    fn all(mixes: u32) -> Vec<Policy> {
        let mut all = vec![
            Policy::New,
            Policy::Old,
            Policy::GarbageOld,
            Policy::GarbageNew,
        ];
        all.extend((0..mixes).map(Policy::PageMix));
        all.extend((0..mixes).map(Policy::SectorMix));
        all.push(Policy::GarbageAny);
        all
    }

    fn name(self) -> String {
        match self {
            Policy::New => "new".into(),
            Policy::Old => "old".into(),
            Policy::GarbageOld => "garbage+old".into(),
            Policy::GarbageNew => "garbage+new".into(),
            Policy::PageMix(k) => format!("page-mix-{k}"),
            Policy::SectorMix(k) => format!("sector-mix-{k}"),
            Policy::GarbageAny => "garbage-any".into(),
        }
    }

    fn code(self) -> u64 {
        match self {
            Policy::New => 1,
            Policy::Old => 2,
            Policy::GarbageOld => 3,
            Policy::GarbageNew => 4,
            Policy::PageMix(k) => 100 + u64::from(k),
            Policy::SectorMix(k) => 10_000 + u64::from(k),
            Policy::GarbageAny => 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pick {
    New,
    Old,
    Garbage,
}

/// A post-crash directory, and which sectors of each file were taken from where.
struct Image {
    dirs: Vec<PathBuf>,
    files: Vec<(PathBuf, Vec<u8>)>,
    picks: Vec<String>,
}

impl Image {
    fn digest(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.dirs.hash(&mut h);
        self.files.hash(&mut h);
        h.finish()
    }

    fn write(&self, at: &Path) -> io::Result<()> {
        for dir in &self.dirs {
            fs::create_dir_all(at.join(dir))?;
        }
        for (rel, bytes) in &self.files {
            fs::write(at.join(rel), bytes)?;
        }
        Ok(())
    }
}

/// `bytes[start..end]`, zero-extended past the end of `bytes`.
fn padded(bytes: &[u8], start: usize, end: usize) -> Vec<u8> {
    let mut out = vec![0u8; end - start];
    if start < bytes.len() {
        let stop = end.min(bytes.len());
        out[..stop - start].copy_from_slice(&bytes[start..stop]);
    }
    out
}

fn garbage(rng: &mut Rng, out: &mut [u8], pool: &[&[u8]]) {
    if rng.below(3) == 0 && !pool.is_empty() {
        let source = pool[rng.below(pool.len() as u64) as usize];
        if source.len() >= out.len() {
            let sectors = (source.len() - out.len()) / SECTOR + 1;
            let at = rng.below(sectors as u64) as usize * SECTOR;
            out.copy_from_slice(&source[at..at + out.len()]);
            return;
        }
    }
    rng.fill(out);
}

fn build(point: &CrashPoint, policy: Policy, seed: u64) -> Image {
    let mut rng = Rng::new(seed);
    let pool: Vec<&[u8]> = point
        .files
        .iter()
        .map(|f| f.current.as_deref().unwrap_or(&f.durable).as_slice())
        .collect();
    let mut files = Vec::with_capacity(point.files.len());
    let mut picks = Vec::new();
    for file in &point.files {
        let durable = file.durable.as_slice();
        let Some(current) = file.current.as_deref() else {
            files.push((file.rel.clone(), durable.to_vec()));
            continue;
        };
        let len = match policy {
            Policy::Old => durable.len(),
            Policy::PageMix(_) | Policy::SectorMix(_) if rng.below(2) == 0 => durable.len(),
            _ => current.len(),
        };
        let mut out = vec![0u8; len];
        let mut map = String::new();
        let (mut page_pick, mut page_fallback) = (Pick::New, Pick::Old);
        for start in (0..len).step_by(SECTOR) {
            let end = (start + SECTOR).min(len);
            if start % PAGE == 0 {
                if start > 0 {
                    map.push('|');
                }
                page_pick = [Pick::New, Pick::Old, Pick::Garbage][rng.below(3) as usize];
                page_fallback = [Pick::New, Pick::Old][rng.below(2) as usize];
            }
            let old = padded(durable, start, end);
            let new = padded(current, start, end);
            if old == new {
                out[start..end].copy_from_slice(&old);
                map.push('.');
                continue;
            }
            // Garbage only where storage never received a write: an allocated block whose
            // data never reached it (the sector's old contents are then zeros).
            let never_written = !file.written.get(start / PAGE).copied().unwrap_or(false);
            let pick = match policy {
                Policy::New => Pick::New,
                Policy::Old => Pick::Old,
                Policy::GarbageOld if never_written => Pick::Garbage,
                Policy::GarbageOld => Pick::Old,
                Policy::GarbageNew if never_written => Pick::Garbage,
                Policy::GarbageNew => Pick::New,
                Policy::PageMix(_) => match page_pick {
                    Pick::Garbage if !never_written => page_fallback,
                    pick => pick,
                },
                Policy::SectorMix(_) => match rng.below(6) {
                    0 if never_written => Pick::Garbage,
                    n if n % 2 == 0 => Pick::New,
                    _ => Pick::Old,
                },
                Policy::GarbageAny => Pick::Garbage,
            };
            let sector = &mut out[start..end];
            match pick {
                Pick::New => {
                    sector.copy_from_slice(&new);
                    map.push('N');
                }
                Pick::Old => {
                    sector.copy_from_slice(&old);
                    map.push('O');
                }
                Pick::Garbage => {
                    garbage(&mut rng, sector, &pool);
                    map.push('G');
                }
            }
        }
        picks.push(format!(
            "{}: {len} bytes (durable {}, current {}), sectors {map}",
            file.rel.display(),
            durable.len(),
            current.len()
        ));
        files.push((file.rel.clone(), out));
    }
    Image {
        dirs: point.dirs.clone(),
        files,
        picks,
    }
}

// ---------------------------------------------------------------------------------------
// Checking every image

/// What one image's check found (when it passed).
#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    recovered: u64,
    torn_bytes: u64,
    /// Whether a reader on the image as left reached every acknowledged record.
    raw_reached_acked: bool,
}

type Checker<'a> = dyn Fn(&Path, u64) -> Result<Outcome, String> + Sync + 'a;

struct Job {
    point: usize,
    policy: Policy,
    seed: u64,
    acked: u64,
}

#[derive(Debug, Default)]
struct Tally {
    crash_points: usize,
    generated: usize,
    checked: usize,
    violations: usize,
    beyond_checked: usize,
    beyond_failed: usize,
    raw_reached: usize,
    torn_bytes: u64,
    recovered: u64,
    messages: Vec<String>,
    /// One line per violation.
    summaries: Vec<String>,
}

/// Builds every crash image of `model` and checks each distinct one with `check` (given the
/// directory that stands for the workload's root and the acknowledged count).
fn check_images(name: &str, model: &Model, check: &Checker<'_>, mixes: u32, seed: u64) -> Tally {
    let mut jobs: Vec<Job> = Vec::new();
    let mut beyond: Vec<Job> = Vec::new();
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut seen_beyond: HashMap<u64, usize> = HashMap::new();
    let mut tally = Tally {
        crash_points: model.points.len(),
        ..Tally::default()
    };
    let policies = Policy::all(mixes);
    for (index, point) in model.points.iter().enumerate() {
        let differs = point.files.iter().any(|f| f.current.is_some());
        for &policy in &policies {
            if !differs && policy != Policy::Old {
                continue;
            }
            let job_seed = mix(mix(seed, index as u64), policy.code());
            let digest = build(point, policy, job_seed).digest();
            tally.generated += 1;
            let job = Job {
                point: index,
                policy,
                seed: job_seed,
                acked: point.acked,
            };
            let (list, index_of) = if policy == Policy::GarbageAny {
                if seen.contains_key(&digest) {
                    continue;
                }
                (&mut beyond, &mut seen_beyond)
            } else {
                (&mut jobs, &mut seen)
            };
            match index_of.get(&digest) {
                Some(&at) => {
                    if list[at].acked < job.acked {
                        list[at] = job;
                    }
                }
                None => {
                    index_of.insert(digest, list.len());
                    list.push(job);
                }
            }
        }
    }
    let all: Vec<(Job, bool)> = jobs
        .into_iter()
        .map(|j| (j, false))
        .chain(beyond.into_iter().map(|j| (j, true)))
        .collect();
    let next = AtomicUsize::new(0);
    let tally = Mutex::new(tally);
    let scratch = scratch_dir("kekbit-power-loss-images-");
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let (all, next, tally, scratch) = (&all, &next, &tally, scratch.path());
            scope.spawn(move || loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some((job, beyond)) = all.get(at) else {
                    break;
                };
                let image = build(&model.points[job.point], job.policy, job.seed);
                let dir = scratch.join(format!("{worker}-{at}"));
                let result = image
                    .write(&dir)
                    .map_err(|e| format!("writing the image failed: {e}"))
                    .and_then(|()| {
                        catch_unwind(AssertUnwindSafe(|| check(&dir, job.acked)))
                            .unwrap_or_else(|_| Err("panicked".into()))
                    });
                let _ = fs::remove_dir_all(&dir);
                let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                tally.add(name, model, job, *beyond, &image, result);
            });
        }
    });
    tally.into_inner().unwrap_or_else(|p| p.into_inner())
}

impl Tally {
    fn add(
        &mut self,
        name: &str,
        model: &Model,
        job: &Job,
        beyond: bool,
        image: &Image,
        result: Result<Outcome, String>,
    ) {
        if beyond {
            self.beyond_checked += 1;
            self.beyond_failed += usize::from(result.is_err());
            return;
        }
        self.checked += 1;
        let error = match result {
            Ok(outcome) => {
                self.torn_bytes += outcome.torn_bytes;
                self.recovered += outcome.recovered;
                self.raw_reached += usize::from(outcome.raw_reached_acked);
                return;
            }
            Err(error) => error,
        };
        self.violations += 1;
        let point = &model.points[job.point];
        let kept = if self.summaries.len() < 40 {
            keep_evidence(name, image)
        } else {
            "not kept".into()
        };
        if self.summaries.len() < 200 {
            self.summaries.push(format!(
                "#{} \"{}\" ({} acknowledged), image {} ({kept}): {error}",
                job.point,
                point.label,
                job.acked,
                job.policy.name()
            ));
        }
        if self.messages.len() < 6 {
            let trace = &model.trace[point.trace_len.saturating_sub(14)..point.trace_len];
            self.messages.push(format!(
                "[{name}] crash point #{} \"{}\" ({} acknowledged), image {}:\n    \
                 {error}\n  image (kept in {kept}):\n    {}\n  last operations before the \
                 crash point:\n    {}",
                job.point,
                point.label,
                job.acked,
                job.policy.name(),
                image.picks.join("\n    "),
                trace.join("\n    ")
            ));
        }
    }
}

/// Writes a failing image where it outlives the test; returns where.
fn keep_evidence(name: &str, image: &Image) -> String {
    static KEPT: AtomicUsize = AtomicUsize::new(0);
    let index = KEPT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "kekbit-power-loss-{}-{}-{index}",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    match image.write(&dir) {
        Ok(()) => dir.display().to_string(),
        Err(e) => format!("(not kept: {e})"),
    }
}

fn report(name: &str, records: u64, tally: &Tally, started: Instant) {
    println!(
        "power loss [{name}]: {records} records written, {} crash points, {} crash images \
         generated, {} distinct checked, violations {}; beyond the format's assumption \
         (garbage over written sectors): {} checked, {} lost acknowledged data or failed to \
         recover (not violations); raw reader reached every acknowledged record in {} of {} passing images; \
         records recovered in total {}, torn bytes dropped {}; {:.1} s",
        tally.crash_points,
        tally.generated,
        tally.checked,
        tally.violations,
        tally.beyond_checked,
        tally.beyond_failed,
        tally.raw_reached,
        tally.checked - tally.violations,
        tally.recovered,
        tally.torn_bytes,
        started.elapsed().as_secs_f64()
    );
    for line in &tally.summaries {
        println!("  violation {line}");
    }
}

fn assert_clean(name: &str, tallies: &[Tally]) {
    let violations: usize = tallies.iter().map(|t| t.violations).sum();
    let checked: usize = tallies.iter().map(|t| t.checked).sum();
    let messages: Vec<&String> = tallies.iter().flat_map(|t| &t.messages).collect();
    assert!(checked > 0, "[{name}] no crash image was checked");
    assert_eq!(
        violations,
        0,
        "[{name}] {violations} of {checked} crash images violate the durability promises; \
         first ones:\n{}",
        messages
            .iter()
            .take(4)
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Journal workloads

fn journal_options() -> JournalOptions {
    Journal::options()
        .segment_capacity(SEGMENT)
        .max_record_len(MAX_RECORD)
        // 512-byte mark blocks: several resynchronisation marks per segment, so that the
        // crash images tear marks too, and seeks (below) binary-search them.
        .resync_marks(9)
}

/// Readers opened at sequence numbers `0..=raw` (every `KEKBIT_POWER_LOSS_SEEK_STEP`-th,
/// 5 by default, and the last two) of a crashed image return only records appended at the
/// sequence numbers they return, in order, whatever the crash tore.
fn check_seeks(dir: &Path, raw: u64, expected: impl Fn(u64) -> Vec<u8>) -> Result<(), String> {
    let step = env_count("KEKBIT_POWER_LOSS_SEEK_STEP", 5).max(1);
    let starts = (0..=raw).filter(|&f| f % step == 0 || f + 2 > raw);
    for from in starts {
        let Ok(mut reader) = JournalReader::open(dir, from) else {
            continue;
        };
        let mut due = from;
        while let Ok(Some((seq, record))) = reader.try_next() {
            if seq != due || record != expected(seq) {
                return Err(format!(
                    "a reader of the crashed journal opened at {from} returned a wrong record \
                     {seq} (sequence {due} was due)"
                ));
            }
            due += 1;
        }
    }
    Ok(())
}

/// Appends `records` records under `durability` to the journal in `dir`, reopening it (a
/// clean restart) halfway. With one thread: explicit syncs one append in five unless every
/// record syncs. With several: each appends under a shared lock (so that record `seq` is
/// always `payload(seed, seq)`) with `append_deferred`, then waits for durability with
/// `wait_durable` outside the lock, so that syncs overlap appends and are shared (group
/// commit).
fn journal_workload(
    dir: &Path,
    durability: Durability,
    threads: usize,
    seed: u64,
    records: u64,
    acked: &AtomicU64,
) {
    let mut rng = Rng::new(mix(seed, 0xA11));
    let mut seq = 0;
    for half in [records / 2, records] {
        let journal = journal_options()
            .durability(durability)
            .open(dir)
            .expect("opening the journal");
        assert_eq!(
            journal.next_sequence(),
            seq,
            "a clean reopen keeps every record"
        );
        acked.fetch_max(journal.durable_count(), Ordering::SeqCst);
        if threads > 1 {
            let order = Mutex::new(());
            std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(|| loop {
                        let seq = {
                            let _order = order.lock().unwrap_or_else(|p| p.into_inner());
                            let seq = journal.next_sequence();
                            if seq >= half {
                                break;
                            }
                            let record = payload(seed, seq, MAX_RECORD as usize);
                            let got = journal.append_deferred(&record).expect("append");
                            assert_eq!(got, seq);
                            seq
                        };
                        journal.wait_durable(seq).expect("wait_durable");
                        acked.fetch_max(seq + 1, Ordering::SeqCst);
                    });
                }
            });
            seq = half;
        }
        while seq < half {
            let got = journal
                .append(&payload(seed, seq, MAX_RECORD as usize))
                .expect("append");
            assert_eq!(got, seq);
            seq += 1;
            if durability != Durability::EveryRecord && rng.below(5) == 0 {
                journal.sync().expect("sync");
            }
            acked.fetch_max(journal.durable_count(), Ordering::SeqCst);
        }
    }
}

/// The checks on one journal image (see the module documentation). With `pruned`, the
/// journal may start past sequence 0 (the workload prunes): records are read from its first.
fn check_journal(
    dir: &Path,
    acked: u64,
    seed: u64,
    written: u64,
    pruned: bool,
) -> Result<Outcome, String> {
    let expected = |seq: u64| payload(seed, seq, MAX_RECORD as usize);
    let bad = |what: &str, seq: u64, record: &[u8]| {
        if seq >= written {
            format!("{what} returned record {seq}, which was never written")
        } else {
            format!(
                "{what} returned a wrong record {seq}: {} bytes, expected {} (first bytes {:02x?})",
                record.len(),
                expected(seq).len(),
                &record[..record.len().min(12)]
            )
        }
    };
    // The image as the power loss left it, before any recovery.
    let first_present = |dir: &Path| match pruned {
        false => 0,
        true => JournalReader::open_first(dir).map_or(0, |r| r.next_sequence()),
    };
    let mut raw = first_present(dir);
    if let Ok(mut reader) = JournalReader::open(dir, raw) {
        while let Ok(Some((seq, record))) = reader.try_next() {
            if seq != raw {
                return Err(format!(
                    "a reader of the crashed journal returned sequence {seq} where {raw} was due"
                ));
            }
            if seq >= written || record != expected(seq) {
                return Err(bad("a reader of the crashed journal", seq, record));
            }
            raw += 1;
        }
    }
    check_seeks(dir, raw, expected)?;
    let journal = journal_options()
        .preallocate(false)
        .open(dir)
        .map_err(|e| format!("recovery (Journal::open) failed: {e}"))?;
    let opened = journal.open_report().clone();
    let n = journal.next_sequence();
    if n < acked {
        return Err(format!(
            "recovery resumes at sequence {n} but {acked} records were acknowledged durable \
             ({opened:?})"
        ));
    }
    if n > written {
        return Err(format!(
            "recovery resumes at sequence {n} but only {written} records were ever written"
        ));
    }
    let mut next = first_present(dir);
    let mut reader = JournalReader::open(dir, next)
        .map_err(|e| format!("opening a reader after recovery: {e}"))?;
    loop {
        match reader.try_next() {
            Ok(Some((seq, record))) => {
                if seq != next {
                    return Err(format!(
                        "after recovery the reader returned sequence {seq} where {next} was due"
                    ));
                }
                if seq >= written || record != expected(seq) {
                    return Err(bad("after recovery the reader", seq, record));
                }
                next += 1;
            }
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "reading the recovered journal failed after {next} records ({acked} \
                     acknowledged, next_sequence {n}): {e}"
                ))
            }
        }
    }
    if next != n {
        return Err(format!(
            "the recovered journal reads {next} records but recovery resumes at {n} ({acked} \
             acknowledged; {opened:?})"
        ));
    }
    let got = journal
        .append(&expected(n))
        .map_err(|e| format!("appending after recovery failed: {e}"))?;
    if got != n {
        return Err(format!(
            "the first append after recovery got {got}, not {n}"
        ));
    }
    match reader.try_next() {
        Ok(Some((seq, record))) if seq == n && record == expected(n) => {}
        other => {
            return Err(format!(
                "the record appended after recovery as {n} reads back as {:?}",
                other.map(|o| o.map(|(s, r)| (s, r.len())))
            ))
        }
    }
    drop(reader);
    drop(journal);
    let again = journal_options()
        .preallocate(false)
        .open(dir)
        .map_err(|e| format!("reopening the recovered journal failed: {e}"))?;
    if again.next_sequence() != n + 1 {
        return Err(format!(
            "reopening the recovered journal resumes at {}, not {}",
            again.next_sequence(),
            n + 1
        ));
    }
    Ok(Outcome {
        recovered: n,
        torn_bytes: opened.torn_bytes_dropped,
        raw_reached_acked: raw >= acked,
    })
}

fn run_journal(name: &str, durability: Durability, threads: usize) {
    let records = settings().records;
    run_journal_workload(name, records, false, |root, seed, records, acked| {
        journal_workload(root, durability, threads, seed, records, acked)
    });
}

/// Records `work` (given the directory, the seed, the number of records and the
/// acknowledged count to raise) in each round, and checks its crash images as journals.
/// With `pruned`, the workload prunes (see [`check_journal`]).
fn run_journal_workload(
    name: &str,
    records: u64,
    pruned: bool,
    work: impl Fn(&Path, u64, u64, &AtomicU64),
) {
    let _serial = serial();
    let settings = settings();
    let mut tallies = Vec::new();
    for round in 0..settings.rounds {
        let started = Instant::now();
        let seed = mix(settings.seed, round);
        let workload = scratch_dir("kekbit-power-loss-journal-");
        let root = workload.path().to_path_buf();
        let model = record(&root, vec![root.clone()], false, |acked| {
            work(&root, seed, records, acked)
        });
        let written = records;
        let check = move |dir: &Path, acked: u64| check_journal(dir, acked, seed, written, pruned);
        let tally = check_images(name, &model, &check, settings.mixes, seed);
        report(
            &format!("{name}, seed {} round {round}", settings.seed),
            written,
            &tally,
            started,
        );
        tallies.push(tally);
    }
    assert_clean(name, &tallies);
}

#[test]
fn power_loss_journal_every_record() {
    run_journal("journal EveryRecord", Durability::EveryRecord, 1);
}

#[test]
fn power_loss_journal_every_record_group_commit() {
    run_journal("journal EveryRecord, 3 threads", Durability::EveryRecord, 3);
}

#[test]
fn power_loss_journal_every_3_with_syncs() {
    run_journal("journal EveryN(3) + sync()", Durability::EveryN(3), 1);
}

/// Opens the journal in `root` with `options`, which must find `seq` records (a clean
/// reopen keeps every one).
fn reopen(options: JournalOptions, root: &Path, seq: u64) -> Journal {
    let journal = options.open(root).expect("opening the journal");
    assert_eq!(
        journal.next_sequence(),
        seq,
        "a clean reopen keeps every record"
    );
    journal
}

/// Appends record `seq` (the payload for `seed`), checks its sequence number, and counts it.
fn append_next(journal: &Journal, seed: u64, seq: &mut u64) {
    let got = journal
        .append(&payload(seed, *seq, MAX_RECORD as usize))
        .expect("append");
    assert_eq!(got, *seq);
    *seq += 1;
}

/// Segments of this many bytes for [`power_loss_journal_reopened_often`]: eight pages, most
/// of which each close releases.
const RELEASED_SEGMENT: u64 = 32 << 10;

/// A journal closed and reopened every three records (`EveryRecord`, 32 KiB segments): each
/// close syncs the seal and releases the pages after it, each opening releases its tail
/// again, so that crash points fall before and after every release (`Punch`) with pages to
/// release (docs/FORMAT.md, "Releasing a sealed segment's unused space").
#[test]
fn power_loss_journal_reopened_often() {
    let records = (settings().records / 2).max(4);
    run_journal_workload(
        "journal reopened every 3 records",
        records,
        false,
        |root, seed, records, acked| {
            let mut seq = 0;
            while seq < records {
                let options = journal_options().segment_capacity(RELEASED_SEGMENT);
                let journal = reopen(options, root, seq);
                for _ in 0..3.min(records - seq) {
                    append_next(&journal, seed, &mut seq);
                    acked.fetch_max(seq, Ordering::SeqCst);
                }
            }
        },
    );
}

/// A journal that prunes all but its last few records every four appends, recycling the
/// pruned segments (docs/FORMAT.md, "Recycled segments"), reopened halfway: crash points
/// fall at every step of recycling (the rename of a pruned segment, the directory sync, the
/// rewritten header's sync, the link under its new name and that directory sync), and in
/// recycled segments written over their earlier life, whose unsynced pages a power loss may
/// revert to that life. Each image must recover every acknowledged record not pruned, and
/// return no stale record.
#[test]
fn power_loss_journal_pruned_and_recycled() {
    run_pruned_and_recycled("journal pruned and recycled", Durability::EveryRecord);
}

/// [`power_loss_journal_pruned_and_recycled`] under `Durability::Never` with an explicit
/// `sync()` one append in six (acknowledged: `durable_count()`): most pruned segments are
/// recycled with a seal that never reached storage, so their earlier life's pages may read
/// back, after a power loss, as zeros, as a life before it or as garbage.
#[test]
fn power_loss_journal_pruned_and_recycled_never_synced() {
    // Regression: issue 14 item 1: under Never a prune made the removal of every segment
    // before the active one durable while the active one's link was not, so a power loss left
    // it pending and recovery restarted the journal at sequence number 0.
    run_pruned_and_recycled("journal pruned and recycled, Never", Durability::Never);
}

fn run_pruned_and_recycled(name: &str, durability: Durability) {
    let records = settings().records;
    run_journal_workload(name, records, true, |root, seed, records, acked| {
        let mut rng = Rng::new(mix(seed, 0xEC));
        let mut seq = 0;
        let mut recycled = 0;
        for half in [records / 2, records] {
            let options = journal_options().durability(durability).recycle_segments(2);
            let journal = reopen(options, root, seq);
            while seq < half {
                append_next(&journal, seed, &mut seq);
                if durability == Durability::Never && rng.below(6) == 0 {
                    journal.sync().expect("sync");
                }
                acked.fetch_max(journal.durable_count(), Ordering::SeqCst);
                if seq % 4 == 0 {
                    journal.prune_before(seq - 3).expect("prune");
                }
            }
            recycled += recycled_segments(root);
        }
        assert!(recycled > 0, "the workload recycled no segment");
    });
}

/// How many segments in `dir` are recycled ones.
fn recycled_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            path.extension().filter(|x| *x == "kekbit")?;
            kekbit::core::ShmReader::open(&path).ok()
        })
        .filter(|r| r.header().is_recycled())
        .count()
}

// ---------------------------------------------------------------------------------------
// Truncations and skips: after any power loss, the journal as it was or as it became

/// Added to the acknowledged count once `truncate_from` or `skip_to` returned: the count is
/// then this plus the records acknowledged after it.
const CUT_DONE: u64 = 1 << 40;

/// Record `seq` appended after the cut: other bytes than the old record `seq`.
fn new_payload(seed: u64, seq: u64) -> Vec<u8> {
    let mut bytes = b"new".to_vec();
    bytes.extend(payload(mix(seed, 0x5EED), seq, MAX_RECORD as usize - 3));
    bytes
}

/// Appends `old` records, cuts (a truncation at `old / 2`, or a skip to `old + 7`), appends
/// four more, every step durable (`EveryRecord`).
fn cut_workload(dir: &Path, seed: u64, old: u64, skip: bool, acked: &AtomicU64) -> u64 {
    let journal = journal_options()
        .durability(Durability::EveryRecord)
        .open(dir)
        .expect("opening the journal");
    for seq in 0..old {
        let got = journal
            .append(&payload(seed, seq, MAX_RECORD as usize))
            .expect("append");
        assert_eq!(got, seq);
        acked.fetch_max(seq + 1, Ordering::SeqCst);
    }
    let cut = if skip { old + 7 } else { old / 2 };
    if skip {
        journal.skip_to(cut).expect("skip_to");
    } else {
        journal.truncate_from(cut).expect("truncate_from");
    }
    acked.fetch_max(CUT_DONE, Ordering::SeqCst);
    for i in 0..4 {
        let got = journal.append(&new_payload(seed, cut + i)).expect("append");
        assert_eq!(got, cut + i);
        acked.fetch_max(CUT_DONE + i + 1, Ordering::SeqCst);
    }
    cut
}

/// The checks on one image of [`cut_workload`]: recovery gives either the old journal (a
/// prefix of the old records holding every acknowledged one; only before the cut returned),
/// or the new one (the old records before the cut, then new records from the cut on, as many
/// as were acknowledged), never a mix; and it goes on appending from there.
fn check_cut(dir: &Path, acked: u64, seed: u64, old: u64, cut: u64) -> Result<Outcome, String> {
    let journal = journal_options()
        .preallocate(false)
        .open(dir)
        .map_err(|e| format!("recovery (Journal::open) failed: {e}"))?;
    let opened = journal.open_report().clone();
    let n = journal.next_sequence();
    let records: Vec<(u64, Vec<u8>)> = JournalReader::open(dir, 0)
        .map_err(|e| format!("opening a reader after recovery: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading the recovered journal: {e}"))?;
    let is_old = records.len() as u64 == n
        && records.iter().enumerate().all(|(i, (seq, r))| {
            *seq == i as u64 && *r == payload(seed, *seq, MAX_RECORD as usize)
        });
    let kept = cut.min(old);
    let new_count = n.saturating_sub(cut);
    let is_new = n >= cut
        && records.len() as u64 == kept + new_count
        && records.iter().enumerate().all(|(i, (seq, r))| {
            let i = i as u64;
            if i < kept {
                *seq == i && *r == payload(seed, i, MAX_RECORD as usize)
            } else {
                *seq == cut + (i - kept) && *r == new_payload(seed, *seq)
            }
        });
    let done = acked >= CUT_DONE;
    let ok = if done {
        is_new && new_count >= acked - CUT_DONE
    } else {
        (is_old && n >= acked && n <= old) || (is_new && acked >= old)
    };
    if !ok {
        let seqs: Vec<u64> = records.iter().map(|r| r.0).collect();
        return Err(format!(
            "after a power loss {} the cut returned (acknowledged {acked:#x}), recovery \
             resumes at {n} with records {seqs:?}: neither the journal before the cut nor \
             the one after it ({opened:?})",
            if done { "after" } else { "before" }
        ));
    }
    let got = journal
        .append(b"after recovery")
        .map_err(|e| format!("appending after recovery failed: {e}"))?;
    if got != n {
        return Err(format!(
            "the first append after recovery got {got}, not {n}"
        ));
    }
    drop(journal);
    let again = journal_options()
        .preallocate(false)
        .open(dir)
        .map_err(|e| format!("reopening the recovered journal failed: {e}"))?;
    if again.next_sequence() != n + 1 {
        return Err(format!(
            "reopening the recovered journal resumes at {}, not {}",
            again.next_sequence(),
            n + 1
        ));
    }
    Ok(Outcome {
        recovered: n,
        torn_bytes: opened.torn_bytes_dropped,
        raw_reached_acked: true,
    })
}

fn run_cut(name: &str, skip: bool) {
    let _serial = serial();
    let settings = settings();
    let old = (settings.records / 3).max(6);
    let mut tallies = Vec::new();
    for round in 0..settings.rounds {
        let started = Instant::now();
        let seed = mix(settings.seed, round);
        let workload = scratch_dir("kekbit-power-loss-cut-");
        let root = workload.path().to_path_buf();
        let cut = AtomicU64::new(0);
        let model = record(&root, vec![root.clone()], false, |acked| {
            cut.store(
                cut_workload(&root, seed, old, skip, acked),
                Ordering::SeqCst,
            );
        });
        let cut = cut.load(Ordering::SeqCst);
        let check = move |dir: &Path, acked: u64| check_cut(dir, acked, seed, old, cut);
        let tally = check_images(name, &model, &check, settings.mixes, seed);
        report(
            &format!("{name}, seed {} round {round}", settings.seed),
            old + 4,
            &tally,
            started,
        );
        tallies.push(tally);
    }
    assert_clean(name, &tallies);
}

#[test]
fn power_loss_during_truncate_from_leaves_the_journal_before_or_after_it() {
    run_cut("journal truncated", false);
}

#[test]
fn power_loss_during_skip_to_leaves_the_journal_before_or_after_it() {
    run_cut("journal skipped ahead", true);
}

// ---------------------------------------------------------------------------------------
// Prevalent-store workloads

/// The state: how many commands were applied, a digest of them in order, and some totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Ledger {
    applied: u64,
    digest: u64,
    totals: BTreeMap<u8, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Note {
    id: u64,
    key: u8,
    blob: Vec<u8>,
}

impl Command<Ledger> for Note {
    type Output = u64;

    fn apply(&self, state: &mut Ledger) -> u64 {
        let mut h = DefaultHasher::new();
        self.blob.hash(&mut h);
        state.applied += 1;
        state.digest = mix(state.digest ^ self.id, h.finish());
        *state.totals.entry(self.key).or_default() += self.id + self.blob.len() as u64;
        state.applied
    }
}

fn command(seed: u64, id: u64) -> Note {
    Note {
        id,
        key: (mix(seed, id) % 61) as u8,
        blob: payload(seed ^ 0x5707E, id, MAX_BLOB),
    }
}

fn store_options(durability: Durability, preallocate: bool) -> StoreOptions {
    StoreOptions::new()
        .journal(
            journal_options()
                .durability(durability)
                .preallocate(preallocate),
        )
        .keep_snapshots(2)
}

/// Executes `commands` commands, with a snapshot (keeping two, pruning the journal) one
/// command in six and a clean restart halfway.
fn store_workload(dir: &Path, durability: Durability, seed: u64, commands: u64, acked: &AtomicU64) {
    let mut rng = Rng::new(mix(seed, 0x57));
    let mut id = 0;
    for half in [commands / 2, commands] {
        let store = PrevalentStore::<Ledger, Note>::open(
            dir,
            Ledger::default(),
            store_options(durability, true),
        )
        .expect("opening the store");
        assert_eq!(store.query(|s| s.applied).unwrap(), id);
        acked.fetch_max(store.journal().durable_count(), Ordering::SeqCst);
        while id < half {
            let applied = store.execute(command(seed, id)).expect("execute");
            assert_eq!(applied, id + 1);
            id += 1;
            acked.fetch_max(store.journal().durable_count(), Ordering::SeqCst);
            if rng.below(6) == 0 {
                store.snapshot().expect("snapshot");
                acked.fetch_max(store.journal().durable_count(), Ordering::SeqCst);
            }
        }
    }
}

fn check_store(dir: &Path, acked: u64, seed: u64, states: &[Ledger]) -> Result<Outcome, String> {
    let open = || {
        PrevalentStore::<Ledger, Note>::open(
            dir,
            Ledger::default(),
            store_options(Durability::EveryRecord, false),
        )
    };
    let store = open().map_err(|e| format!("recovery (PrevalentStore::open) failed: {e}"))?;
    let state = store.query(Ledger::clone).map_err(|e| e.to_string())?;
    let k = state.applied;
    let executed = states.len() as u64 - 2;
    if k < acked {
        return Err(format!(
            "the recovered state holds {k} commands but {acked} were acknowledged durable \
             ({:?})",
            store.recovery_report()
        ));
    }
    if k > executed {
        return Err(format!(
            "the recovered state holds {k} commands but only {executed} were executed"
        ));
    }
    if state != states[k as usize] {
        return Err(format!(
            "the recovered state is not the state after the first {k} commands: {state:?}"
        ));
    }
    let journaled = store.journal().next_sequence();
    if journaled != k {
        return Err(format!(
            "the recovered state holds {k} commands but the journal resumes at {journaled}"
        ));
    }
    let applied = store
        .execute(command(seed, k))
        .map_err(|e| format!("executing after recovery failed: {e}"))?;
    if applied != k + 1 {
        return Err(format!(
            "a command executed after recovery made {applied} applied, not {}",
            k + 1
        ));
    }
    let report = store.recovery_report().clone();
    drop(store);
    let store = open().map_err(|e| format!("reopening the recovered store failed: {e}"))?;
    let again = store.query(Ledger::clone).map_err(|e| e.to_string())?;
    if again != states[k as usize + 1] {
        return Err(format!(
            "after a command and a reopen the state is not the state after {} commands: \
             {again:?}",
            k + 1
        ));
    }
    Ok(Outcome {
        recovered: k,
        torn_bytes: report.torn_bytes_dropped,
        raw_reached_acked: true,
    })
}

/// The state after each prefix of the commands: `states[k]` after the first `k`.
fn prefix_states(seed: u64, commands: u64) -> Vec<Ledger> {
    let mut state = Ledger::default();
    let mut states = vec![state.clone()];
    for id in 0..=commands {
        command(seed, id).apply(&mut state);
        states.push(state.clone());
    }
    states
}

fn run_store(name: &str, durability: Durability) {
    let _serial = serial();
    let settings = settings();
    let mut tallies = Vec::new();
    for round in 0..settings.rounds {
        let started = Instant::now();
        let seed = mix(settings.seed, 100 + round);
        let workload = scratch_dir("kekbit-power-loss-store-");
        let root = workload.path().to_path_buf();
        let dirs = vec![root.join("journal"), root.join("snapshots")];
        let commands = settings.records;
        let model = record(&root, dirs, false, |acked| {
            store_workload(&root, durability, seed, commands, acked)
        });
        let states = prefix_states(seed, commands);
        let check = |dir: &Path, acked: u64| check_store(dir, acked, seed, &states);
        let tally = check_images(name, &model, &check, settings.mixes, seed);
        report(
            &format!("{name}, seed {} round {round}", settings.seed),
            commands,
            &tally,
            started,
        );
        tallies.push(tally);
    }
    assert_clean(name, &tallies);
}

#[test]
fn power_loss_store_every_record() {
    run_store("store EveryRecord", Durability::EveryRecord);
}

#[test]
fn power_loss_store_every_3() {
    run_store("store EveryN(3)", Durability::EveryN(3));
}

// ---------------------------------------------------------------------------------------
// Directories created on open

/// How many times the workload's top directory was synced.
fn parent_syncs(model: &Model) -> usize {
    model.trace.iter().filter(|op| *op == "SyncDir(.)").count()
}

/// A journal opened on a directory that does not exist yet creates it, and a prevalent store
/// creates `journal/` and `snapshots/` in its directory. A new directory is a new name in its
/// parent, durable only once the parent is synced (docs/FORMAT.md, "What we assume of the
/// system"; ../shared/RELIABILITY.md: "A new file or rename is durable only after the
/// directory is synced"). Here the model holds directories to that rule: a directory the
/// workload created is in the crash image only if its parent was synced after it appeared.
#[test]
fn power_loss_directories_created_on_open() {
    let _serial = serial();
    let settings = settings();
    let started = Instant::now();
    let seed = mix(settings.seed, 0xD1);
    let records = 6;
    let mut tallies = Vec::new();

    let workload = scratch_dir("kekbit-power-loss-dirs-");
    let root = workload.path().to_path_buf();
    let journal_dir = root.join("journal");
    let model = record(&root, vec![journal_dir.clone()], true, |acked| {
        let journal = journal_options().open(&journal_dir).expect("open");
        for seq in 0..records {
            journal
                .append(&payload(seed, seq, MAX_RECORD as usize))
                .expect("append");
            acked.fetch_max(seq + 1, Ordering::SeqCst);
        }
    });
    println!(
        "new journal directory: syncs of its parent directory: {}",
        parent_syncs(&model)
    );
    let check =
        |dir: &Path, acked: u64| check_journal(&dir.join("journal"), acked, seed, records, false);
    let tally = check_images("new journal directory", &model, &check, 0, seed);
    report("new journal directory", records, &tally, started);
    tallies.push(tally);

    let workload = scratch_dir("kekbit-power-loss-dirs-");
    let root = workload.path().to_path_buf();
    let dirs = vec![root.join("journal"), root.join("snapshots")];
    let model = record(&root, dirs, true, |acked| {
        store_workload(&root, Durability::EveryRecord, seed, records, acked)
    });
    println!(
        "new store directories: syncs of the store directory: {}",
        parent_syncs(&model)
    );
    let states = prefix_states(seed, records);
    let check = |dir: &Path, acked: u64| check_store(dir, acked, seed, &states);
    let tally = check_images("new store directories", &model, &check, 0, seed);
    report("new store directories", records, &tally, started);
    tallies.push(tally);

    assert_clean("directories created on open", &tallies);
}
