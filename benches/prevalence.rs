//! Prevalent store benchmarks: executing commands under each durability policy, restoring a
//! store (snapshot load plus journal replay), and what a snapshot costs `execute`.
//!
//! Run with `cargo bench --bench prevalence` (add a filter such as `-- prevalence_restore` to
//! run part of it). The state is a bank, one `i64` balance per account; the command is a
//! transfer between two accounts: those of `examples/ledger.rs`, from the module both
//! include (`examples/support/bank.rs`). Three groups:
//!
//! - `prevalence_execute` holds `<policy>/<where>`: [`PrevalentStore::execute`] of one
//!   transfer between 10,000 accounts, under [`Durability::Never`] (`never`),
//!   [`Durability::EveryN`]`(100)` (`every_100`), [`Durability::Interval`]`(10 ms)`
//!   (`interval_10ms`) and [`Durability::EveryRecord`] (`every_record`). `<where>` is `shm`
//!   (a folder under `/dev/shm`, where a sync costs next to nothing, so the durability cost
//!   does not show) or `disk` (a folder in the system temporary folder, which should be on a
//!   real file system: the benchmark prints which file system each folder is on).
//!   `every_record/disk_4_threads` has four threads sharing one store execute at
//!   once: concurrent executes share syncs (group commit), so its throughput, counted over
//!   all threads, should be well above `every_record/disk`. A disk's sync latency drifts
//!   over seconds, so a report after the group alternates rounds of one thread and of four
//!   and prints the speedup of each round. The stores are snapshotted, untimed, every
//!   [`PRUNE_AFTER`] commands, so that their journals are pruned as they go. On `disk`,
//!   `execute` writes into the page cache as on `shm`: only the syncs wait for the device.
//! - `prevalence_restore` holds `PrevalentStore::open` of stores built (untimed) beforehand:
//!   `empty_store` (no command, no snapshot: the fixed cost of opening),
//!   `replay_1M_commands` (1,000,000 transfers, no snapshot: throughput counts records and
//!   their journal bytes, frames included), `snapshot_1M_accounts` (a snapshot of 1,000,000
//!   accounts, then 1,000 transfers: throughput counts accounts and image bytes, i.e. the
//!   snapshot decoding speed) and `snapshot_after_1M_commands` (1,000,000 transfers, a
//!   snapshot, then 1,000 transfers: throughput counts the 1,000 records replayed). Each
//!   timed open works on a fresh copy of the built store, made untimed, in `/dev/shm`: what
//!   is measured is the CPU cost of restoring, not the disk. A report follows the group: the
//!   same restores taken apart (journal open, snapshot read and decode, replay with and
//!   without decoding the commands).
//! - `prevalence_snapshot` holds `<accounts>`: [`PrevalentStore::snapshot`] of states of
//!   10,000, 100,000 and 1,000,000 accounts on the disk, timed whole. The report after it
//!   prints, from the same snapshots, [`SnapshotTaken::blocked`] (how long `execute` was
//!   blocked: the store serializes the state under its lock) next to
//!   [`SnapshotTaken::total`], then, for comparison, the time to clone the state and to
//!   serialize it outside the store (into an empty `Vec`, as the store does, and into one
//!   sized beforehand), and, from a thread executing without pause while snapshots are
//!   taken, the longest `execute` that overlapped a snapshot and the longest other one.
//!
//! [`PrevalentStore::execute`]: kekbit::prevalence::PrevalentStore::execute
//! [`PrevalentStore::snapshot`]: kekbit::prevalence::PrevalentStore::snapshot
//! [`SnapshotTaken::blocked`]: kekbit::prevalence::SnapshotTaken::blocked
//! [`SnapshotTaken::total`]: kekbit::prevalence::SnapshotTaken::total

use std::cell::RefCell;
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use kekbit::codec::{Bincode, Codec, CodecError};
use kekbit::journal::{Durability, JournalOptions, RecoveryMode};
use kekbit::prevalence::{Command, SnapshotTaken, StoreOptions};
use kekbit::replay::{replay, Replay};
use kekbit::snapshot::SnapshotStore;
use tempfile::TempDir;

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

/// The application: the bank of `examples/ledger.rs`.
#[path = "../examples/support/bank.rs"]
mod bank;

use bank::{Bank, Ledger, Refused, Rng, Transfer};
use support::{
    benchmarking, fast_settings, filesystem, frame_len, slow_settings, timed_in_threads,
};

/// Accounts of the bank the execute and replay benchmarks work on.
const ACCOUNTS: u32 = 10_000;
/// Every account's opening balance: large enough that transfers are almost never refused,
/// and that an encoded balance takes the full nine bytes of a bincode varint.
const INITIAL_BALANCE: i64 = 1_000_000_000_000;
/// Commands an execute benchmark runs between two untimed snapshots, which prune the
/// journal: about 40 MB of journal, so that it never holds more than a few segments.
const PRUNE_AFTER: u64 = 2_000_000;
/// Threads of the group commit benchmark.
const THREADS: usize = 4;
/// Commands per thread in each round of the group commit report.
const GROUP_COMMIT_COMMANDS: u64 = 300;
/// Commands replayed by `replay_1M_commands`, and before the snapshot of
/// `snapshot_after_1M_commands`.
const MANY_COMMANDS: u64 = 1_000_000;
/// Accounts in the state of `snapshot_1M_accounts`.
const BIG_STATE: u32 = 1_000_000;
/// Commands around the snapshots of the restore benchmarks.
const FEW_COMMANDS: u64 = 1_000;
/// State sizes of the snapshot benchmark.
const SNAPSHOT_STATES: [u32; 3] = [10_000, 100_000, 1_000_000];
/// Commands executed (untimed) before each timed snapshot, so that each covers new ones.
const COMMANDS_PER_SNAPSHOT: u64 = 100;
/// Runs of each measurement in the reports (the median is printed).
const REPORT_RUNS: usize = 3;
/// Executes at least this long are recorded by the stall measurement of the snapshot report.
const SLOW_EXECUTE: Duration = Duration::from_micros(100);

// ---------------------------------------------------------------------------------------
// The bank, opened and exercised.

fn options(durability: Durability) -> StoreOptions {
    StoreOptions::new().journal(JournalOptions::new().durability(durability))
}

fn open(dir: &Path, accounts: u32, durability: Durability) -> Ledger {
    let initial = Bank::new(accounts, INITIAL_BALANCE);
    Ledger::open(dir, initial, options(durability)).expect("opening a store")
}

/// Executes `count` transfers, failing on anything but a refusal for lack of funds.
fn execute(store: &Ledger, rng: &mut Rng, accounts: u32, count: u64) {
    for _ in 0..count {
        match store.execute(rng.transfer(accounts)) {
            Ok(Err(Refused::NoSuchAccount)) => panic!("a transfer named a missing account"),
            Ok(outcome) => {
                black_box(outcome).ok();
            }
            Err(e) => panic!("execute failed: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Folders and reports.

/// Prefix of the stores' temporary folders.
const DIR_PREFIX: &str = "kekbit-prevalence-bench-";

/// A temporary folder in memory (`/dev/shm`), else in the system temporary folder.
fn memory_dir() -> TempDir {
    support::memory_dir(DIR_PREFIX)
}

/// A temporary folder in the system temporary folder, which should be on a disk.
fn disk_dir() -> TempDir {
    support::disk_dir(
        &std::env::temp_dir(),
        DIR_PREFIX,
        "set TMPDIR to a folder on a disk",
    )
}

/// A folder and its file system, for the reports.
fn describe(dir: &Path) -> String {
    format!("{} ({})", dir.display(), filesystem(dir))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Runs `measure` [`REPORT_RUNS`] times and returns the median.
fn median_of(mut measure: impl FnMut() -> Duration) -> Duration {
    median((0..REPORT_RUNS).map(|_| measure()).collect())
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn rate(count: u64, d: Duration) -> String {
    let per_second = count as f64 / d.as_secs_f64().max(1e-12);
    if per_second >= 1e6 {
        format!("{:.2} M/s", per_second / 1e6)
    } else {
        format!("{:.1} k/s", per_second / 1e3)
    }
}

fn megabytes_per_second(bytes: u64, d: Duration) -> String {
    format!(
        "{:.0} MB/s",
        bytes as f64 / 1e6 / d.as_secs_f64().max(1e-12)
    )
}

// ---------------------------------------------------------------------------------------
// prevalence_execute

/// A store under measurement and its folder.
struct Executing {
    store: Ledger,
    seed: u64,
    snapshotted_at: u64,
    // Declared last: the store is closed before its folder is deleted.
    dir: TempDir,
}

impl Executing {
    fn new(dir: TempDir, durability: Durability) -> Executing {
        Executing {
            store: open(dir.path(), ACCOUNTS, durability),
            seed: 0x6b65_6b62_6974,
            snapshotted_at: 0,
            dir,
        }
    }

    /// Snapshots (which prunes the journal) once enough commands were executed.
    fn snapshot_if_due(&mut self) {
        let next = self.store.journal().next_sequence();
        if next - self.snapshotted_at >= PRUNE_AFTER {
            self.store.snapshot().expect("an untimed snapshot");
            self.snapshotted_at = next;
        }
    }

    /// Executes `iters` transfers on `threads` threads, timed in chunks of at most
    /// [`PRUNE_AFTER`] with the untimed snapshots between them.
    fn run(&mut self, iters: u64, threads: usize) -> Duration {
        let mut left = iters;
        let mut spent = Duration::ZERO;
        while left > 0 {
            let n = left.min(PRUNE_AFTER);
            spent += self.run_chunk(n, threads);
            left -= n;
            self.snapshot_if_due();
        }
        spent
    }

    /// Executes `n` transfers, shared out between `threads` threads; returns the time taken.
    fn run_chunk(&mut self, n: u64, threads: usize) -> Duration {
        self.seed = self.seed.wrapping_add(1 << 32);
        let (store, seed) = (&self.store, self.seed);
        if threads == 1 {
            let mut rng = Rng(seed);
            let start = Instant::now();
            execute(store, &mut rng, ACCOUNTS, n);
            return start.elapsed();
        }
        timed_in_threads(threads, n, |t, share| {
            execute(store, &mut Rng(seed + t), ACCOUNTS, share)
        })
    }
}

/// One execute benchmark.
struct ExecuteCase {
    policy: &'static str,
    durability: Durability,
    on_disk: bool,
    threads: usize,
}

fn bench_execute(c: &mut Criterion) {
    use Durability::*;
    let interval = Interval(Duration::from_millis(10));
    let case = |policy, durability, on_disk, threads| ExecuteCase {
        policy,
        durability,
        on_disk,
        threads,
    };
    let cases = [
        case("never", Never, false, 1),
        case("never", Never, true, 1),
        case("every_100", EveryN(100), false, 1),
        case("every_100", EveryN(100), true, 1),
        case("interval_10ms", interval, false, 1),
        case("interval_10ms", interval, true, 1),
        case("every_record", EveryRecord, false, 1),
        case("every_record", EveryRecord, true, 1),
        case("every_record", EveryRecord, true, THREADS),
    ];
    let mut printed = [false; 2];
    let mut group_commit_ran = false;
    let mut group = c.benchmark_group("prevalence_execute");
    group.throughput(Throughput::Elements(1));
    for case in cases {
        let place = match (case.on_disk, case.threads) {
            (false, _) => "shm".to_string(),
            (true, 1) => "disk".to_string(),
            (true, n) => format!("disk_{n}_threads"),
        };
        if case.durability == EveryRecord && case.on_disk {
            // About one sync per command on a single thread: keep it short.
            slow_settings(&mut group, 300, 1_500);
        } else if case.on_disk {
            slow_settings(&mut group, 500, 2_000);
        } else {
            fast_settings(&mut group);
        }
        let mut state: Option<Executing> = None;
        group.bench_function(BenchmarkId::new(case.policy, &place), |b| {
            let running = state.get_or_insert_with(|| {
                let dir = if case.on_disk {
                    disk_dir()
                } else {
                    memory_dir()
                };
                if !printed[usize::from(case.on_disk)] {
                    printed[usize::from(case.on_disk)] = true;
                    println!("execute benchmarks in {}", describe(dir.path()));
                }
                Executing::new(dir, case.durability)
            });
            b.iter_custom(|iters| running.run(iters, case.threads));
        });
        if case.durability == EveryRecord && case.on_disk {
            group_commit_ran = true;
        }
    }
    group.finish();
    if group_commit_ran && benchmarking() {
        group_commit_report();
    }
}

/// Alternates one thread and [`THREADS`] threads executing under `EveryRecord` on the disk,
/// [`REPORT_RUNS`] rounds each: a disk's sync latency drifts over seconds, so the two
/// benchmarks above, run one after the other, may not compare well; rounds close in time do.
fn group_commit_report() {
    let mut store = Executing::new(disk_dir(), Durability::EveryRecord);
    store.run(GROUP_COMMIT_COMMANDS, 1);
    println!();
    println!(
        "group commit (EveryRecord, {}): one thread, then {THREADS} threads, alternated",
        describe(store.dir.path())
    );
    println!(
        "  {:>5} {:>20} {:>20} {:>8}",
        "round",
        "1 thread",
        format!("{THREADS} threads"),
        "speedup"
    );
    let mut speedups = Vec::new();
    for round in 1..=REPORT_RUNS {
        let commands = GROUP_COMMIT_COMMANDS;
        let one = store.run(commands, 1).as_secs_f64() / commands as f64;
        let commands = GROUP_COMMIT_COMMANDS * THREADS as u64;
        let many = store.run(commands, THREADS).as_secs_f64() / commands as f64;
        speedups.push(one / many);
        println!(
            "  {:>5} {:>20} {:>20} {:>7.2}x",
            round,
            format!("{:.0} us/command", one * 1e6),
            format!("{:.0} us/command", many * 1e6),
            one / many
        );
    }
    speedups.sort_by(f64::total_cmp);
    println!(
        "  median speedup {:.2}x (one sync at a time, each thread with one command in \
         flight: about {THREADS}/2 commands per sync at best)",
        speedups[speedups.len() / 2]
    );
    println!();
}

// ---------------------------------------------------------------------------------------
// prevalence_restore

/// Seed of the transfers in the restore benchmarks' stores.
const BUILD_SEED: u64 = 0x5eed;

/// What a restore benchmark's store holds: `before` transfers, a snapshot if `snapshot`,
/// then `after` transfers.
#[derive(Debug, Clone, Copy)]
struct Plan {
    name: &'static str,
    accounts: u32,
    before: u64,
    snapshot: bool,
    after: u64,
    /// What the benchmark's throughput counts.
    counts: Counts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counts {
    /// Nothing: the fixed cost of opening.
    Nothing,
    /// The records replayed and their journal bytes.
    Records,
    /// The accounts in the snapshot image and its bytes.
    Image,
}

const PLANS: [Plan; 4] = [
    Plan {
        name: "empty_store",
        accounts: ACCOUNTS,
        before: 0,
        snapshot: false,
        after: 0,
        counts: Counts::Nothing,
    },
    Plan {
        name: "replay_1M_commands",
        accounts: ACCOUNTS,
        before: MANY_COMMANDS,
        snapshot: false,
        after: 0,
        counts: Counts::Records,
    },
    Plan {
        name: "snapshot_1M_accounts",
        accounts: BIG_STATE,
        before: FEW_COMMANDS,
        snapshot: true,
        after: FEW_COMMANDS,
        counts: Counts::Image,
    },
    Plan {
        name: "snapshot_after_1M_commands",
        accounts: ACCOUNTS,
        before: MANY_COMMANDS,
        snapshot: true,
        after: FEW_COMMANDS,
        counts: Counts::Records,
    },
];

/// What restoring a store must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expected {
    /// Sequence number of the snapshot (0 without one).
    from: u64,
    /// Records the restore replays, and their journal bytes.
    replayed: u64,
    replayed_bytes: u64,
    /// Size of the snapshot image (0 without one).
    image_bytes: u64,
}

impl Plan {
    /// Builds the store (or, with `store` absent, only computes what it would hold) and
    /// returns what restoring it must do.
    fn run(&self, store: Option<&Ledger>) -> Expected {
        let mut bank = Bank::new(self.accounts, INITIAL_BALANCE);
        let mut rng = Rng(BUILD_SEED);
        let mut encoded = Vec::new();
        let mut expected = Expected {
            from: 0,
            replayed: self.before + self.after,
            replayed_bytes: 0,
            image_bytes: 0,
        };
        for i in 0..self.before + self.after {
            if i == self.before && self.snapshot {
                expected = self.snapshot_taken(store, &bank);
            }
            let transfer = rng.transfer(self.accounts);
            encoded.clear();
            Bincode
                .encode(&transfer, &mut encoded)
                .expect("encoding a transfer");
            expected.replayed_bytes += frame_len(encoded.len());
            match store {
                Some(store) => store.execute(transfer).expect("execute").ok(),
                None => transfer.apply(&mut bank).ok(),
            };
        }
        if self.snapshot && self.after == 0 {
            expected = self.snapshot_taken(store, &bank);
        }
        expected
    }

    fn snapshot_taken(&self, store: Option<&Ledger>, bank: &Bank) -> Expected {
        let image_bytes = match store {
            Some(store) => store.snapshot().expect("snapshotting").info.body_len,
            None => {
                let mut image = Vec::new();
                Bincode.encode(bank, &mut image).expect("encoding a state");
                image.len() as u64
            }
        };
        // The bytes counted so far are of records the snapshot covers: counting starts again.
        Expected {
            from: self.before,
            replayed: self.after,
            replayed_bytes: 0,
            image_bytes,
        }
    }

    fn throughput(&self, expected: &Expected) -> Option<Throughput> {
        match self.counts {
            Counts::Nothing => None,
            Counts::Records => Some(Throughput::ElementsAndBytes {
                elements: expected.replayed,
                bytes: expected.replayed_bytes,
            }),
            Counts::Image => Some(Throughput::ElementsAndBytes {
                elements: u64::from(self.accounts),
                bytes: expected.image_bytes,
            }),
        }
    }
}

/// A store built (untimed) for the restore benchmarks.
struct Built {
    plan: Plan,
    expected: Expected,
    dir: TempDir,
}

impl Built {
    fn new(plan: Plan) -> Built {
        let dir = memory_dir();
        let store = open(dir.path(), plan.accounts, Durability::Never);
        let expected = plan.run(Some(&store));
        drop(store);
        Built {
            plan,
            expected,
            dir,
        }
    }

    /// A fresh copy of the built store, to be opened (opening changes a store: it seals the
    /// journal's tail and starts a new segment).
    fn copy(&self, work: &Path) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix("restore-")
            .tempdir_in(work)
            .expect("creating a restore folder");
        copy_tree(self.dir.path(), dir.path());
        dir
    }

    /// Opens a copy; returns the time `open` took.
    fn timed_open(&self, work: &Path) -> Duration {
        let copy = self.copy(work);
        let start = Instant::now();
        let store = open(copy.path(), self.plan.accounts, Durability::Never);
        let spent = start.elapsed();
        let report = store.recovery_report();
        assert_eq!(
            report.records_replayed, self.expected.replayed,
            "{}",
            self.plan.name
        );
        assert_eq!(
            report.snapshot.as_ref().map_or(0, |s| s.sequence),
            self.expected.from,
            "{}",
            self.plan.name
        );
        drop(store);
        spent
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creating a folder");
    for entry in std::fs::read_dir(from).expect("listing a folder") {
        let entry = entry.expect("listing a folder");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copying a file");
        }
    }
}

fn bench_restore(c: &mut Criterion) {
    let work = memory_dir();
    // Each store is built on its benchmark's first run, so that a filter excluding it builds
    // nothing; the throughput, needed before, is computed without a store.
    let mut built: Vec<Built> = Vec::new();
    let mut group = c.benchmark_group("prevalence_restore");
    slow_settings(&mut group, 1_000, 3_000);
    for plan in PLANS {
        let expected = plan.run(None);
        if let Some(throughput) = plan.throughput(&expected) {
            group.throughput(throughput);
        }
        group.bench_function(plan.name, |b| {
            if built.last().is_none_or(|s| s.plan.name != plan.name) {
                let store = Built::new(plan);
                assert_eq!(store.expected, expected, "{}", plan.name);
                built.push(store);
            }
            let store = built.last().expect("a built store");
            b.iter_custom(|iters| (0..iters).map(|_| store.timed_open(work.path())).sum());
        });
    }
    group.finish();
    if !built.is_empty() && benchmarking() {
        restore_report(&built, work.path());
    }
}

/// Decodes and applies commands, as the store does when it restores.
struct Apply<'a> {
    bank: &'a mut Bank,
}

impl Replay for Apply<'_> {
    type Error = CodecError;

    fn record(&mut self, _seq: u64, record: &[u8]) -> Result<(), CodecError> {
        let transfer: Transfer = Bincode.decode(record)?;
        let _ = transfer.apply(self.bank);
        Ok(())
    }
}

/// Only reads the records (the reader checks each one's checksum).
struct Count(u64);

impl Replay for Count {
    type Error = std::convert::Infallible;

    fn record(&mut self, _seq: u64, record: &[u8]) -> Result<(), Self::Error> {
        self.0 += record.len() as u64;
        Ok(())
    }
}

fn restore_report(stores: &[Built], work: &Path) {
    println!();
    println!(
        "restore, taken apart (median of {REPORT_RUNS}; in {}):",
        describe(work)
    );
    println!(
        "  {:<28} {:>10} {:>12} {:>10} {:>12} {:>14} {:>10}",
        "store", "open", "journal open", "snap read", "snap decode", "replay (read)", "replay"
    );
    for built in stores {
        let open = median_of(|| built.timed_open(work));
        let journal_open = median_of(|| {
            let copy = built.copy(work);
            let start = Instant::now();
            let journal = JournalOptions::new()
                .durability(Durability::Never)
                .open(copy.path().join("journal"))
                .expect("opening a journal");
            let spent = start.elapsed();
            drop(journal);
            spent
        });
        let snapshots = SnapshotStore::open(built.dir.path().join("snapshots"), 2)
            .expect("opening the snapshot store");
        let newest = snapshots
            .list()
            .expect("listing snapshots")
            .into_iter()
            .next();
        let mut image = Vec::new();
        let snap_read = median_of(|| {
            let Some(info) = &newest else {
                return Duration::ZERO;
            };
            let start = Instant::now();
            image = snapshots.read(info).expect("reading a snapshot");
            start.elapsed()
        });
        let snap_decode = median_of(|| {
            if newest.is_none() {
                return Duration::ZERO;
            }
            let start = Instant::now();
            let bank: Bank = Bincode.decode(&image).expect("decoding a snapshot");
            let spent = start.elapsed();
            drop(black_box(bank));
            spent
        });
        let journal = built.dir.path().join("journal");
        let replay_read = median_of(|| {
            let mut count = Count(0);
            let start = Instant::now();
            replay(
                &journal,
                built.expected.from,
                RecoveryMode::TolerateTornTail,
                &mut count,
            )
            .expect("replaying");
            let spent = start.elapsed();
            black_box(count.0);
            spent
        });
        let replay_apply = median_of(|| {
            let mut bank = Bank::new(built.plan.accounts, INITIAL_BALANCE);
            let start = Instant::now();
            let report = replay(
                &journal,
                built.expected.from,
                RecoveryMode::TolerateTornTail,
                &mut Apply { bank: &mut bank },
            )
            .expect("replaying");
            let spent = start.elapsed();
            assert_eq!(report.records_replayed, built.expected.replayed);
            spent
        });
        println!(
            "  {:<28} {:>10} {:>12} {:>10} {:>12} {:>14} {:>10}",
            built.plan.name,
            millis(open),
            millis(journal_open),
            millis(snap_read),
            millis(snap_decode),
            millis(replay_read),
            millis(replay_apply)
        );
        if built.expected.replayed > 0 {
            println!(
                "  {:<28} {} records ({} journal bytes) replayed: {} records, {} for the whole open",
                "",
                built.expected.replayed,
                built.expected.replayed_bytes,
                rate(built.expected.replayed, open),
                megabytes_per_second(built.expected.replayed_bytes, open)
            );
        }
        if built.expected.image_bytes > 0 {
            println!(
                "  {:<28} image of {} accounts, {} bytes: read {}, decode {} ({})",
                "",
                built.plan.accounts,
                built.expected.image_bytes,
                megabytes_per_second(built.expected.image_bytes, snap_read),
                megabytes_per_second(built.expected.image_bytes, snap_decode),
                rate(u64::from(built.plan.accounts), snap_decode)
            );
        }
    }
    println!();
}

// ---------------------------------------------------------------------------------------
// prevalence_snapshot

/// A store whose snapshots are measured.
struct Snapshotting {
    store: Ledger,
    rng: Rng,
    accounts: u32,
    taken: Vec<SnapshotTaken>,
    // Declared last: the store is closed before its folder is deleted.
    dir: TempDir,
}

impl Snapshotting {
    fn new(accounts: u32) -> Snapshotting {
        let dir = disk_dir();
        Snapshotting {
            store: open(dir.path(), accounts, Durability::Never),
            rng: Rng(u64::from(accounts)),
            accounts,
            taken: Vec::new(),
            dir,
        }
    }

    /// Executes a few commands (untimed), then takes a snapshot; returns its wall time.
    fn snapshot(&mut self) -> Duration {
        execute(
            &self.store,
            &mut self.rng,
            self.accounts,
            COMMANDS_PER_SNAPSHOT,
        );
        let start = Instant::now();
        let taken = self.store.snapshot().expect("a snapshot");
        let spent = start.elapsed();
        self.taken.push(taken);
        spent
    }
}

fn bench_snapshot(c: &mut Criterion) {
    let measured: RefCell<Vec<Snapshotting>> = RefCell::new(Vec::new());
    let mut group = c.benchmark_group("prevalence_snapshot");
    slow_settings(&mut group, 500, 2_000);
    for accounts in SNAPSHOT_STATES {
        group.bench_function(BenchmarkId::from_parameter(accounts), |b| {
            let mut all = measured.borrow_mut();
            if all.last().is_none_or(|s| s.accounts != accounts) {
                all.push(Snapshotting::new(accounts));
            }
            let store = all.last_mut().expect("a store");
            b.iter_custom(|iters| (0..iters).map(|_| store.snapshot()).sum());
        });
    }
    group.finish();
    let measured = measured.into_inner();
    if !measured.is_empty() {
        snapshot_report(&measured);
    }
}

fn snapshot_report(measured: &[Snapshotting]) {
    println!();
    println!(
        "snapshots (in {}): execute is blocked while the store serializes the state under its \
         lock",
        describe(measured[0].dir.path())
    );
    println!(
        "  {:>9} {:>10} {:>6} {:>20} {:>20} {:>8}",
        "accounts", "image", "taken", "blocked p50 / max", "total p50 / max", "blocked"
    );
    for m in measured {
        let blocked: Vec<Duration> = m.taken.iter().map(|t| t.blocked).collect();
        let total: Vec<Duration> = m.taken.iter().map(|t| t.total).collect();
        let (b50, bmax) = (median(blocked.clone()), blocked.iter().max().copied());
        let (t50, tmax) = (median(total.clone()), total.iter().max().copied());
        let share = blocked.iter().sum::<Duration>().as_secs_f64()
            / total.iter().sum::<Duration>().as_secs_f64().max(1e-12);
        println!(
            "  {:>9} {:>10} {:>6} {:>20} {:>20} {:>7.0}%",
            m.accounts,
            m.taken.last().map_or(0, |t| t.info.body_len),
            m.taken.len(),
            format!("{} / {}", millis(b50), millis(bmax.unwrap_or_default())),
            format!("{} / {}", millis(t50), millis(tmax.unwrap_or_default())),
            share * 100.0
        );
    }
    if !benchmarking() {
        return;
    }
    println!(
        "  for comparison, outside the store (median of {REPORT_RUNS}): cloning the state, \
         serializing it (as the store does, into an empty Vec, and into one sized beforehand), \
         and, from a thread executing without pause while {REPORT_RUNS} snapshots were \
         taken, the longest execute that overlapped a snapshot and the longest other one"
    );
    println!(
        "  {:>9} {:>10} {:>12} {:>16} {:>12} {:>16} {:>16}",
        "accounts",
        "clone",
        "serialize",
        "serialize sized",
        "blocked p50",
        "longest: during",
        "longest: other"
    );
    for m in measured {
        let bank = m.store.query(Bank::clone).expect("a query");
        let clone = median_of(|| {
            let start = Instant::now();
            let copy = black_box(&bank).clone();
            let spent = start.elapsed();
            drop(black_box(copy));
            spent
        });
        let mut size = 0;
        let serialize = median_of(|| {
            let mut body = Vec::new();
            let start = Instant::now();
            Bincode.encode(&bank, &mut body).expect("encoding");
            let spent = start.elapsed();
            size = body.len();
            spent
        });
        let serialize_sized = median_of(|| {
            let mut body = Vec::with_capacity(size);
            let start = Instant::now();
            Bincode.encode(&bank, &mut body).expect("encoding");
            start.elapsed()
        });
        let (blocked, during, outside) = stall_during_snapshots(&m.store, m.accounts);
        println!(
            "  {:>9} {:>10} {:>12} {:>16} {:>12} {:>16} {:>16}",
            m.accounts,
            millis(clone),
            millis(serialize),
            millis(serialize_sized),
            millis(blocked),
            millis(during),
            millis(outside)
        );
    }
    println!();
}

/// Takes [`REPORT_RUNS`] snapshots while another thread executes commands without pause;
/// returns the median time blocked, the longest execute that overlapped a snapshot and the
/// longest one that did not (the noise floor: scheduling, the journal's own threads).
fn stall_during_snapshots(store: &Ledger, accounts: u32) -> (Duration, Duration, Duration) {
    let stop = AtomicBool::new(false);
    let origin = Instant::now();
    thread::scope(|s| {
        let executor = s.spawn(|| {
            let mut rng = Rng(7);
            // (start, duration) of every execute slower than the threshold.
            let mut slow = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let _ = store.execute(rng.transfer(accounts)).expect("execute");
                let spent = start.elapsed();
                if spent >= SLOW_EXECUTE {
                    slow.push((start - origin, spent));
                }
            }
            slow
        });
        let mut blocked = Vec::new();
        let mut windows = Vec::new();
        for _ in 0..REPORT_RUNS {
            thread::sleep(Duration::from_millis(30));
            let start = origin.elapsed();
            blocked.push(store.snapshot().expect("a snapshot").blocked);
            windows.push((start, origin.elapsed()));
        }
        thread::sleep(Duration::from_millis(30));
        stop.store(true, Ordering::Relaxed);
        let slow = executor.join().expect("the executing thread panicked");
        let (mut during, mut outside) = (Duration::ZERO, Duration::ZERO);
        for (start, spent) in slow {
            let overlaps = windows
                .iter()
                .any(|&(from, to)| start < to && start + spent > from);
            let longest = if overlaps { &mut during } else { &mut outside };
            *longest = (*longest).max(spent);
        }
        (median(blocked), during, outside)
    })
}

criterion::criterion_group!(benches, bench_execute, bench_restore, bench_snapshot);
criterion::criterion_main!(benches);
