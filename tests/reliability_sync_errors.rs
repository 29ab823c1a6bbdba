//! Sync errors, injected through the I/O seam (`kekbit::fault`), never turn into reported
//! success and never lose an acknowledged record (../shared/RELIABILITY.md, promise 6 and
//! "sync errors"; docs/FORMAT.md, "Syncing" step 2', "Rolling over", "Creating a channel").
//!
//! An observer makes a chosen `FlushRange` (`msync(MS_SYNC)`), `SyncFile` (`fsync`) or
//! `SyncDir` fail with `EIO` (an `io::Error::other("injected EIO")`), once or from then on,
//! and records every sync-type operation, including how far each successful `FlushRange`
//! reached (what was really synced). Workloads are run once per sync-type operation they
//! perform, failing the k-th one for every k (the failure points), and after each run the
//! invariants are checked:
//!
//! - a core `ShmWriter`: the failed `sync` returns `WriteError::SyncFailed`; from then on
//!   every write, flush, sync, heartbeat and close returns `WriteError::Poisoned`, also once
//!   the injection is removed; no `FlushRange` is attempted again (it never retries); its
//!   durable position and the on-disk watermark stay where the last good sync left them;
//!   a failed channel creation returns `ChannelError::Io`;
//! - a journal (`EveryRecord`, 4 KiB segments, with and without segments prepared in the
//!   background), single-threaded and with 4 threads: the append whose sync failed returns
//!   `AppendError::SyncFailed` naming the segment whose flush failed (a sealed one when the
//!   failure is at rollover), every later append, sync or wait returns `Poisoned`, also once
//!   the injection is removed, no `FlushRange` follows, `durable_count()` never exceeds what
//!   the successful flushes really covered and never moves after the failure; a failed
//!   segment creation (`SyncFile`/`SyncDir`) fails that append with `AppendError::Segment`
//!   and loses nothing; reopening (a new `Journal`) finds every acknowledged record, in
//!   order, and nothing that was never written;
//! - recovery (reopening a journal left by a crashed writer, by a dropped one, or by one
//!   that never synced): a failed seal flush or segment sync makes the open fail cleanly;
//!   a later open without injection finds every record;
//! - a prevalent store: `execute` after a sync failure is an error, snapshots that fail
//!   leave the store working, and reopening restores the commands that were applied: all
//!   acknowledged ones and, when its sync failed, the one in flight (it was published to
//!   the page cache, which outlives the failure, so recovery reads it back).
//!
//! `journal_continues_after_a_transient_directory_sync_failure` checks what the documentation
//! of `AppendError::Segment` promises ("the journal stays usable"), for a directory sync
//! that failed once while a segment was created.
//!
//! Each test prints its failure points covered and violations (0). The observer is
//! process-wide: every test of this binary holds one lock.
#![cfg(feature = "fault-injection")]

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use kekbit::core::{
    shm_reader, shm_writer, storage_path, ChannelError, EncoderHandler, Header, ReadError, Reader,
    ShmReader, ShmWriter, TickUnit, WriteError, Writer, HEADER_LEN,
};
use kekbit::fault::{IoObserver, IoOp};
use kekbit::journal::{AppendError, Durability, Journal, JournalError, JournalOptions};
use kekbit::prevalence::{PrevalentStore, StoreError, StoreOptions};

#[path = "common/faults.rs"]
mod faults;
#[path = "common/journal.rs"]
mod journal_common;
use faults::{
    check_records, item, names, payload, put, read_all, serial, temporaries, Installed, Items, Put,
    Tally,
};
use journal_common::{copy_dir, on_threads, thread_record};

/// The sync-type operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    FlushRange,
    SyncFile,
    SyncDir,
}

fn kind_of(op: &IoOp<'_>) -> Option<Kind> {
    match op {
        IoOp::FlushRange(..) => Some(Kind::FlushRange),
        IoOp::SyncFile(_) => Some(Kind::SyncFile),
        IoOp::SyncDir(_) => Some(Kind::SyncDir),
        _ => None,
    }
}

/// Which sync-type operations fail.
#[derive(Debug, Clone, Copy)]
enum Plan {
    Off,
    /// The n-th sync-type operation (the three kinds counted together), from 1; with
    /// `always`, every later one too.
    Nth {
        n: u64,
        always: bool,
    },
    /// The n-th operation of one kind; with `always`, every later one of that kind too.
    NthOf {
        kind: Kind,
        n: u64,
        always: bool,
    },
}

/// A sync-type operation announced to the observer.
#[derive(Debug, Clone)]
struct SyncOp {
    /// Position among all sync-type operations of the run, from 1.
    index: u64,
    kind: Kind,
    path: PathBuf,
    failed: bool,
}

struct Log {
    plan: Plan,
    seen: u64,
    seen_of: HashMap<Kind, u64>,
    ops: Vec<SyncOp>,
    /// Per file, the end of the longest successful `FlushRange` from offset 0.
    synced: HashMap<PathBuf, u64>,
}

/// Fails sync-type operations under `root` as its plan says and records them all.
struct Injector {
    root: PathBuf,
    log: Mutex<Log>,
    /// How long each `FlushRange` takes at least (a slow disk, so that concurrent
    /// appenders gather behind one sync).
    flush_delay: Duration,
}

impl Injector {
    fn new(root: &Path, plan: Plan) -> Arc<Injector> {
        Arc::new(Injector {
            root: root.to_path_buf(),
            log: Mutex::new(Log {
                plan,
                seen: 0,
                seen_of: HashMap::new(),
                ops: Vec::new(),
                synced: HashMap::new(),
            }),
            flush_delay: Duration::ZERO,
        })
    }

    fn with_flush_delay(root: &Path, plan: Plan, delay: Duration) -> Arc<Injector> {
        let mut injector = Injector::new(root, plan);
        Arc::get_mut(&mut injector).unwrap().flush_delay = delay;
        injector
    }

    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_plan(&self, plan: Plan) {
        self.log().plan = plan;
    }

    fn ops(&self) -> Vec<SyncOp> {
        self.log().ops.clone()
    }

    fn count(&self, kind: Kind) -> u64 {
        self.log().ops.iter().filter(|o| o.kind == kind).count() as u64
    }

    fn failures(&self) -> Vec<SyncOp> {
        self.log()
            .ops
            .iter()
            .filter(|o| o.failed)
            .cloned()
            .collect()
    }

    /// `FlushRange` operations announced after operation `index`.
    fn flushes_after(&self, index: u64) -> Vec<SyncOp> {
        self.log()
            .ops
            .iter()
            .filter(|o| o.index > index && o.kind == Kind::FlushRange)
            .cloned()
            .collect()
    }

    fn synced_end(&self, path: &Path) -> u64 {
        self.log().synced.get(path).copied().unwrap_or(0)
    }
}

impl IoObserver for Injector {
    fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
        let Some(kind) = kind_of(op) else {
            return Ok(());
        };
        if !op.path().starts_with(&self.root) {
            return Ok(());
        }
        let mut log = self.log();
        log.seen += 1;
        let index = log.seen;
        let of = {
            let n = log.seen_of.entry(kind).or_insert(0);
            *n += 1;
            *n
        };
        let failed = match log.plan {
            Plan::Off => false,
            Plan::Nth { n, always } => index == n || (always && index > n),
            Plan::NthOf { kind: k, n, always } => k == kind && (of == n || (always && of > n)),
        };
        log.ops.push(SyncOp {
            index,
            kind,
            path: op.path().to_path_buf(),
            failed,
        });
        drop(log);
        if kind == Kind::FlushRange && !self.flush_delay.is_zero() {
            thread::sleep(self.flush_delay);
        }
        if failed {
            return Err(io::Error::other("injected EIO"));
        }
        Ok(())
    }

    fn after(&self, op: &IoOp<'_>) {
        if let IoOp::FlushRange(path, offset, len) = op {
            if path.starts_with(&self.root) {
                // A flush extends what is synced when it starts at or before its end (syncs
                // start at the page of the last durable watermark).
                let mut log = self.log();
                let end = log.synced.entry(path.to_path_buf()).or_insert(0);
                if *offset <= *end {
                    *end = (*end).max(*offset + *len);
                }
            }
        }
    }
}

/// A fresh directory for one run: in `/dev/shm` (a tmpfs) where there is one, so that the
/// hundreds of runs do not wait for real `fsync`s (the failures are injected, and the
/// successful syncs' effect is tracked by the observer, whatever the file system does);
/// else in the default temporary directory.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

fn is_injected(e: &io::Error) -> bool {
    e.to_string().contains("injected EIO")
}

fn channel_injected(e: &ChannelError) -> bool {
    matches!(e, ChannelError::Io { source, .. } if is_injected(source))
}

/// The segment id a segment file is named for.
fn segment_id(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    u64::from_str_radix(name.strip_suffix(".kekbit")?, 16).ok()
}

/// The id of the last linked (not pending) segment in `dir`.
fn last_linked(dir: &Path) -> u64 {
    let mut last = 0;
    for id in 1.. {
        match ShmReader::open(storage_path(dir, id)) {
            Ok(reader) if !reader.header().is_pending() => last = id,
            _ => break,
        }
    }
    last
}

/// How many records of the journal in `dir`, from the first, the successful `FlushRange`
/// operations really covered (a record counts when its whole frame was flushed, and a
/// segment's records only when every seal before them was flushed too).
fn really_synced(dir: &Path, injector: &Injector) -> u64 {
    let mut count = 0;
    for id in 1.. {
        let path = storage_path(dir, id);
        let Ok(mut reader) = ShmReader::open(&path) else {
            return count;
        };
        if reader.header().is_pending() {
            return count;
        }
        let synced = injector.synced_end(&path);
        loop {
            let step = reader.try_read().map(|r| r.is_some());
            match step {
                Ok(true) if HEADER_LEN as u64 + reader.position() <= synced => count += 1,
                Err(ReadError::Closed { position, .. })
                    if HEADER_LEN as u64 + position + 16 <= synced =>
                {
                    break
                }
                _ => return count,
            }
        }
    }
    count
}

/// After `failed` (a `FlushRange`) made an append or sync fail: the journal refuses
/// everything, before and after the injection is removed, and never flushes again.
fn check_journal_poisoned(
    tally: &mut Tally,
    journal: &Journal,
    injector: &Injector,
    failed: &SyncOp,
    what: &str,
) {
    let durable = journal.durable_count();
    let next = journal.next_sequence();
    for phase in ["injection on", "injection removed"] {
        if phase == "injection removed" {
            injector.set_plan(Plan::Off);
        }
        let poisoned = |r: Result<(), AppendError>| matches!(r, Err(AppendError::Poisoned { .. }));
        tally.check(poisoned(journal.append(b"after").map(drop)), || {
            format!("{what}, {phase}: append was not refused as Poisoned")
        });
        tally.check(
            poisoned(journal.append_deferred(b"after").map(drop)),
            || format!("{what}, {phase}: append_deferred was not refused as Poisoned"),
        );
        tally.check(poisoned(journal.sync().map(drop)), || {
            format!("{what}, {phase}: sync was not refused as Poisoned")
        });
        tally.check(poisoned(journal.wait_durable(0)), || {
            format!("{what}, {phase}: wait_durable was not refused as Poisoned")
        });
    }
    tally.check(
        journal.durable_count() == durable && journal.next_sequence() == next,
        || {
            format!(
                "{what}: durable_count {durable} -> {}, next_sequence {next} -> {} while poisoned",
                journal.durable_count(),
                journal.next_sequence()
            )
        },
    );
    let again = injector.flushes_after(failed.index);
    tally.check(again.is_empty(), || {
        format!(
            "{what}: {} flushes after the failed one: {again:?}",
            again.len()
        )
    });
}

// ---------------------------------------------------------------------------------------
// (a) The core writer.

const CORE_RECORDS: u64 = 24;

/// One run of the channel workload: create, 24 writes with a sync after every third, close.
/// Returns the sync-type operations seen.
fn core_run(tally: &mut Tally, plan: Plan) -> Vec<SyncOp> {
    let root = scratch();
    let injector = Injector::new(root.path(), plan);
    let _installed = Installed::new(&injector);
    let what = format!("channel, {plan:?}");
    let path = storage_path(root.path(), 1);
    let header = Header::new(1, 1, 64 << 10, 1024, 1_000, TickUnit::Millis);
    let mut writer = match shm_writer(root.path(), &header, EncoderHandler) {
        Ok(w) => w,
        Err(e) => {
            let failed = injector.failures();
            tally.check(channel_injected(&e), || format!("{what}: creation: {e:?}"));
            tally.check(
                failed.len() == 1 && failed[0].kind != Kind::FlushRange,
                || format!("{what}: creation failed after {failed:?}"),
            );
            tally.covered += 1;
            if failed.first().map(|f| f.kind) == Some(Kind::SyncFile) {
                let left = names(root.path());
                tally.check(left.is_empty(), || format!("{what}: files left: {left:?}"));
            } else if path.exists() {
                // The directory sync comes after the channel got its name.
                tally.note("channel creation failed at the directory sync, channel file left under its name");
                injector.set_plan(Plan::Off);
                if let Err(ChannelError::AlreadyExists { .. }) =
                    shm_writer(root.path(), &header, EncoderHandler)
                {
                    tally.note("  ... and creating it again fails with AlreadyExists");
                }
            }
            return injector.ops();
        }
    };
    let mut written: Vec<Vec<u8>> = Vec::new();
    let mut durable = 0;
    let mut failed = None;
    for i in 0..CORE_RECORDS {
        let record = payload(i, 1000);
        match writer.write(&record[..]) {
            Ok(_) => written.push(record),
            Err(e) => {
                tally.check(false, || format!("{what}: write {i} failed: {e}"));
                return injector.ops();
            }
        }
        if i % 3 == 2 {
            match writer.sync() {
                Ok(p) => {
                    tally.check(p == writer.position(), || format!("{what}: synced to {p}"));
                    durable = p;
                }
                Err(WriteError::SyncFailed { path: p, source }) => {
                    tally.check(p == path && is_injected(&source), || {
                        format!("{what}: SyncFailed for {p:?}: {source}")
                    });
                    failed = injector.failures().last().cloned();
                    break;
                }
                Err(e) => {
                    tally.check(false, || format!("{what}: sync: {e:?}"));
                    return injector.ops();
                }
            }
        }
    }
    let Some(failed) = failed else {
        // No sync failed yet: closing syncs once more.
        let result = writer.close();
        let failures = injector.failures();
        match result {
            Ok(()) => tally.check(failures.is_empty(), || {
                format!("{what}: close succeeded although {failures:?} failed")
            }),
            Err(WriteError::SyncFailed { source, .. }) => {
                tally.covered += 1;
                tally.check(is_injected(&source) && failures.len() == 1, || {
                    format!("{what}: close: {source}, failures {failures:?}")
                });
                let reader = shm_reader(root.path(), 1).unwrap();
                tally.check(reader.durable_position() == durable, || {
                    format!(
                        "{what}: watermark {} after a failed close, last good sync {durable}",
                        reader.durable_position()
                    )
                });
            }
            Err(e) => tally.check(false, || format!("{what}: close: {e:?}")),
        }
        return injector.ops();
    };
    tally.covered += 1;
    tally.check(failed.kind == Kind::FlushRange, || {
        format!("{what}: sync failed at {failed:?}")
    });
    tally.check(
        writer.is_poisoned() && writer.durable_position() == durable,
        || {
            format!(
                "{what}: poisoned {}, durable position {} (last good sync {durable})",
                writer.is_poisoned(),
                writer.durable_position()
            )
        },
    );
    let position = writer.position();
    let refused = |writer: &mut ShmWriter<EncoderHandler>, tally: &mut Tally, phase: &str| {
        let poisoned = |r: Result<(), WriteError>| matches!(r, Err(WriteError::Poisoned { .. }));
        tally.check(poisoned(writer.write(&b"after"[..]).map(drop)), || {
            format!("{what}, {phase}: write not refused as Poisoned")
        });
        tally.check(poisoned(writer.flush()), || {
            format!("{what}, {phase}: flush not refused as Poisoned")
        });
        tally.check(poisoned(writer.sync().map(drop)), || {
            format!("{what}, {phase}: sync not refused as Poisoned")
        });
        tally.check(poisoned(writer.heartbeat()), || {
            format!("{what}, {phase}: heartbeat not refused as Poisoned")
        });
    };
    refused(&mut writer, tally, "injection on");
    injector.set_plan(Plan::Off);
    refused(&mut writer, tally, "injection removed");
    tally.check(
        writer.position() == position && writer.durable_position() == durable,
        || format!("{what}: position or durable position moved while poisoned"),
    );
    let again = injector.flushes_after(failed.index);
    tally.check(again.is_empty(), || {
        format!("{what}: flushed again: {again:?}")
    });
    let mut reader = shm_reader(root.path(), 1).unwrap();
    tally.check(reader.durable_position() == durable, || {
        format!(
            "{what}: on-disk watermark {}, last good sync {durable}",
            reader.durable_position()
        )
    });
    let mut read = 0;
    while let Ok(Some(record)) = reader.try_read() {
        tally.check(read < written.len() && record == written[read], || {
            format!("{what}: record {read} reads back wrong")
        });
        read += 1;
    }
    tally.check(read == written.len(), || {
        format!("{what}: {read} records read, {} written", written.len())
    });
    tally.check(
        matches!(writer.close(), Err(WriteError::Poisoned { .. })),
        || format!("{what}: close not refused as Poisoned"),
    );
    injector.ops()
}

#[test]
fn core_writer_is_poisoned_by_a_failed_sync_at_every_sync_point() {
    let _serial = serial();
    let mut tally = Tally::new("sync errors: core writer");
    let baseline = core_run(&mut tally, Plan::Off);
    let total = baseline.len() as u64;
    assert!(total >= 10, "baseline: {baseline:?}");
    for n in 1..=total {
        for always in [false, true] {
            core_run(&mut tally, Plan::Nth { n, always });
        }
    }
    println!("  {total} sync-type operations in the workload, each failed once and always");
    tally.finish();
}

// ---------------------------------------------------------------------------------------
// (b) to (d) The journal, one thread.

const J_RECORDS: u64 = 40;
const J_MAX: usize = 600;

fn journal_options(preallocate: bool) -> JournalOptions {
    JournalOptions::new()
        .segment_capacity(4096)
        .max_record_len(J_MAX as u32)
        .durability(Durability::EveryRecord)
        .preallocate(preallocate)
}

/// What one run of the single-threaded journal workload met.
#[derive(Debug, Default)]
struct JournalRun {
    ops: Vec<SyncOp>,
    /// The append whose sync failed: its sequence number and the segment named.
    sync_failed: Option<(u64, PathBuf)>,
    /// Whether the failed flush was of a sealed segment (a rollover's sync).
    rollover: bool,
    /// Appends that failed because a segment could not be created.
    segment_errors: u64,
    /// Whether the same handle could not continue after a failed segment creation.
    wedged: Option<String>,
}

/// Opens a journal, appends 40 records one at a time (each acknowledged durable), and checks
/// the invariants whatever fails; ends by reopening the journal without injection.
fn journal_run(tally: &mut Tally, plan: Plan, preallocate: bool) -> JournalRun {
    let root = scratch();
    let dir = root.path().join("journal");
    let injector = Injector::new(root.path(), plan);
    let _installed = Installed::new(&injector);
    let what = format!("journal, {plan:?}, preallocate {preallocate}");
    let mut run = JournalRun::default();

    let journal = match journal_options(preallocate).open(&dir) {
        Ok(j) => j,
        Err(e) => {
            let failures = injector.failures();
            tally.check(
                matches!(&e, JournalError::Channel(c) if channel_injected(c)),
                || format!("{what}: open: {e:?}"),
            );
            tally.check(!failures.is_empty(), || format!("{what}: open failed: {e}"));
            tally.note("open failed cleanly (first segment's creation)");
            injector.set_plan(Plan::Off);
            match journal_options(preallocate).open(&dir) {
                Ok(j) => j,
                Err(e) => {
                    tally.check(false, || {
                        format!("{what}: open after removing injection: {e}")
                    });
                    run.ops = injector.ops();
                    return run;
                }
            }
        }
    };
    let mut acked = 0;
    let mut written = 0;
    let mut seq = 0;
    while seq < J_RECORDS {
        match journal.append(&payload(seq, J_MAX)) {
            Ok(s) => {
                tally.check(s == seq, || {
                    format!("{what}: append returned {s}, expected {seq}")
                });
                tally.check(journal.durable_count() > s, || {
                    format!(
                        "{what}: {s} acknowledged, durable_count {}",
                        journal.durable_count()
                    )
                });
                seq += 1;
                acked = seq;
                written = seq;
            }
            Err(AppendError::SyncFailed { segment, source }) => {
                written = seq + 1;
                tally.check(is_injected(&source), || {
                    format!("{what}: SyncFailed: {source}")
                });
                let failed = injector
                    .failures()
                    .into_iter()
                    .find(|f| f.kind == Kind::FlushRange && f.path == segment);
                let Some(failed) = failed else {
                    tally.check(false, || {
                        format!("{what}: SyncFailed names {segment:?}, whose flush did not fail")
                    });
                    break;
                };
                tally.check(journal.durable_count() == acked, || {
                    format!(
                        "{what}: durable_count {} after the failure, {acked} acknowledged",
                        journal.durable_count()
                    )
                });
                let active = last_linked(&dir);
                run.rollover = segment_id(&segment).is_some_and(|id| id < active);
                if run.rollover {
                    // The active segment's flush comes after the sealed one's: never made.
                    let active_path = storage_path(&dir, active);
                    let later = injector
                        .ops()
                        .into_iter()
                        .any(|o| o.index > failed.index && o.path == active_path);
                    tally.check(!later, || format!("{what}: the active segment was synced"));
                }
                check_journal_poisoned(tally, &journal, &injector, &failed, &what);
                run.sync_failed = Some((seq, segment));
                break;
            }
            Err(AppendError::Segment(e)) => {
                run.segment_errors += 1;
                tally.check(channel_injected(&e), || {
                    format!("{what}: segment error: {e:?}")
                });
                tally.check(
                    injector
                        .failures()
                        .iter()
                        .any(|f| f.kind != Kind::FlushRange),
                    || format!("{what}: segment error without a failed creation: {e}"),
                );
                tally.check(
                    journal.next_sequence() == seq && journal.durable_count() == seq,
                    || {
                        format!(
                            "{what}: after a segment error: next {}, durable {}, {seq} acknowledged",
                            journal.next_sequence(),
                            journal.durable_count()
                        )
                    },
                );
                check_records(tally, &dir, seq, J_MAX, &format!("{what}, segment error"));
                // Documented: nothing was appended and the journal stays usable.
                injector.set_plan(Plan::Off);
                if let Err(e) = journal.append(&payload(seq, J_MAX)) {
                    run.wedged = Some(e.to_string());
                    break;
                }
                seq += 1;
                acked = seq;
                written = seq;
            }
            Err(e) => {
                tally.check(false, || format!("{what}: append {seq}: {e:?}"));
                break;
            }
        }
    }
    let durable = journal.durable_count();
    let synced = really_synced(&dir, &injector);
    tally.check(acked <= durable && durable <= synced, || {
        format!("{what}: {acked} acknowledged, durable_count {durable}, really synced {synced}")
    });
    // Without a failure the bound is exact (which checks the measure itself).
    if injector.failures().is_empty() {
        tally.check(durable == synced && synced == J_RECORDS, || {
            format!("{what}: no failure, durable_count {durable}, really synced {synced}")
        });
    }
    drop(journal);
    injector.set_plan(Plan::Off);
    run.ops = injector.ops();
    if !temporaries(&dir).is_empty() {
        tally.note("temporary files left until the next open");
    }
    match journal_options(preallocate).open(&dir) {
        Ok(journal) => {
            tally.check(journal.next_sequence() == written, || {
                format!(
                    "{what}: reopened at {}, {written} written, {acked} acknowledged",
                    journal.next_sequence()
                )
            });
            check_records(tally, &dir, written, J_MAX, &format!("{what}, reopened"));
            tally.check(journal.append(b"continues").is_ok(), || {
                format!("{what}: append after reopening failed")
            });
        }
        Err(e) => tally.check(false, || format!("{what}: reopen: {e}")),
    }
    run
}

fn tally_journal_run(tally: &mut Tally, run: &JournalRun) {
    if run.ops.iter().any(|o| o.failed) {
        tally.covered += 1;
    }
    if run.sync_failed.is_some() {
        tally.note(if run.rollover {
            "append failed with SyncFailed at a rollover (sealed segment's flush)"
        } else {
            "append failed with SyncFailed (active segment's flush)"
        });
    }
    if run.segment_errors > 0 {
        tally.note("append failed with Segment (segment creation's sync)");
    }
    if let Some(error) = &run.wedged {
        let kinds: Vec<Kind> = run
            .ops
            .iter()
            .filter(|o| o.failed)
            .map(|o| o.kind)
            .collect();
        let refusal = if error.contains("already exists") {
            "AlreadyExists"
        } else {
            "other error"
        };
        tally.note(&format!(
            "handle unusable after a failed segment creation ({kinds:?} failed; retry: {refusal}; see the dedicated test)"
        ));
    }
}

#[test]
fn journal_every_sync_point_single_thread() {
    let _serial = serial();
    let mut tally = Tally::new("sync errors: journal, one thread");
    for preallocate in [false, true] {
        let baseline = journal_run(&mut tally, Plan::Off, preallocate);
        let total = baseline.ops.len() as u64;
        assert!(total > J_RECORDS, "baseline: {total} sync operations");
        for n in 1..=total {
            for always in [false, true] {
                let run = journal_run(&mut tally, Plan::Nth { n, always }, preallocate);
                tally_journal_run(&mut tally, &run);
            }
        }
        println!(
            "  preallocate {preallocate}: {total} sync-type operations, each failed once and always"
        );
    }
    tally.finish();
}

#[test]
fn journal_sync_failure_at_rollover_poisons() {
    let _serial = serial();
    let mut tally = Tally::new("sync errors: journal, rollover flushes");
    // Which flushes sync a sealed segment: in a one-thread EveryRecord run, the flush of
    // segment s immediately followed by one of segment s + 1.
    let baseline = journal_run(&mut tally, Plan::Off, false);
    let flushes: Vec<&SyncOp> = baseline
        .ops
        .iter()
        .filter(|o| o.kind == Kind::FlushRange)
        .collect();
    let mut rollovers = Vec::new();
    for (i, pair) in flushes.windows(2).enumerate() {
        if segment_id(&pair[0].path).map(|s| s + 1) == segment_id(&pair[1].path) {
            rollovers.push((i as u64 + 1, segment_id(&pair[0].path)));
        }
    }
    assert!(rollovers.len() >= 3, "only {} rollovers", rollovers.len());
    for (n, sealed) in &rollovers {
        let plan = Plan::NthOf {
            kind: Kind::FlushRange,
            n: *n,
            always: false,
        };
        let run = journal_run(&mut tally, plan, false);
        tally_journal_run(&mut tally, &run);
        let named = run.sync_failed.as_ref().and_then(|f| segment_id(&f.1));
        tally.check(run.rollover && named == *sealed, || {
            format!("{plan:?}: expected SyncFailed for segment {sealed:?}, got {run:?}")
        });
    }

    // Durability::Never: one sync covers three sealed segments and the active one, oldest
    // first; the second one's flush fails. A sealed segment takes two flushes (its records,
    // then its header with a watermark covering the seal), so that is the third flush.
    let root = scratch();
    let dir = root.path().join("journal");
    let plan = Plan::NthOf {
        kind: Kind::FlushRange,
        n: 3,
        always: false,
    };
    let injector = Injector::new(root.path(), plan);
    let installed = Installed::new(&injector);
    let journal = journal_options(true)
        .durability(Durability::Never)
        .open(&dir)
        .unwrap();
    let mut seq = 0;
    while last_linked(&dir) < 4 {
        journal.append(&payload(seq, J_MAX)).unwrap();
        seq += 1;
    }
    let what = "Never, the second of four segments' flush fails";
    match journal.sync() {
        Err(AppendError::SyncFailed { segment, .. }) => {
            tally.covered += 1;
            tally.check(segment == storage_path(&dir, 2), || {
                format!("{what}: SyncFailed names {segment:?}")
            });
            let flushed: Vec<Option<u64>> = injector
                .ops()
                .iter()
                .filter(|o| o.kind == Kind::FlushRange)
                .map(|o| segment_id(&o.path))
                .collect();
            // Segment 1: its records, then its header; then segment 2's records, failing.
            tally.check(flushed == [Some(1), Some(1), Some(2)], || {
                format!("{what}: flushes {flushed:?}")
            });
            tally.check(journal.durable_count() == 0, || {
                format!("{what}: durable_count {}", journal.durable_count())
            });
            let failed = injector.failures()[0].clone();
            check_journal_poisoned(&mut tally, &journal, &injector, &failed, what);
        }
        other => tally.check(false, || format!("{what}: sync returned {other:?}")),
    }
    drop(journal);
    drop(installed);
    let journal = journal_options(true).open(&dir).unwrap();
    tally.check(journal.next_sequence() == seq, || {
        format!(
            "{what}: reopened at {}, {seq} written",
            journal.next_sequence()
        )
    });
    drop(journal);
    check_records(&mut tally, &dir, seq, J_MAX, what);
    println!("  {} rollovers in the workload", rollovers.len());
    tally.finish();
}

#[test]
fn directory_sync_failure_at_segment_creation_fails_the_append_cleanly() {
    let _serial = serial();
    let mut tally = Tally::new("sync errors: journal, directory syncs");
    for preallocate in [false, true] {
        let baseline = journal_run(&mut tally, Plan::Off, preallocate);
        let dir_syncs = baseline
            .ops
            .iter()
            .filter(|o| o.kind == Kind::SyncDir)
            .count() as u64;
        assert!(dir_syncs >= 3, "baseline: {dir_syncs} directory syncs");
        for n in 1..=dir_syncs {
            let plan = Plan::NthOf {
                kind: Kind::SyncDir,
                n,
                always: false,
            };
            let run = journal_run(&mut tally, plan, preallocate);
            tally_journal_run(&mut tally, &run);
            tally.check(run.sync_failed.is_none(), || {
                format!("{plan:?}: a directory sync failure poisoned the journal: {run:?}")
            });
        }
    }
    tally.finish();
}

/// `AppendError::Segment` is documented as "Nothing was appended; the journal stays usable
/// once space is freed." A directory sync that fails once while segment 2 is created must
/// therefore not stop the same handle from appending once the failure is gone.
// Regression: a failed directory sync at segment creation left the complete segment under
// its final name, so every later attempt met AlreadyExists until the journal was reopened.
#[test]
fn journal_continues_after_a_transient_directory_sync_failure() {
    let _serial = serial();
    for preallocate in [false, true] {
        let root = scratch();
        let dir = root.path().join("journal");
        // Directory sync 1 makes the new journal directory durable in its parent (at open),
        // 2 is segment 1's creation (at open), 3 is segment 2's.
        let plan = Plan::NthOf {
            kind: Kind::SyncDir,
            n: 3,
            always: false,
        };
        let injector = Injector::new(root.path(), plan);
        let _installed = Installed::new(&injector);
        let journal = journal_options(preallocate).open(&dir).unwrap();
        let mut seq = 0;
        let error = loop {
            match journal.append(&payload(seq, J_MAX)) {
                Ok(_) => seq += 1,
                Err(e) => break e,
            }
            assert!(seq < 1000, "no rollover");
        };
        assert!(
            matches!(&error, AppendError::Segment(c) if channel_injected(c)),
            "{error:?}"
        );
        injector.set_plan(Plan::Off);
        let left: Vec<String> = names(&dir);
        let retry = journal.append(&payload(seq, J_MAX));
        assert!(
            retry.is_ok(),
            "preallocate {preallocate}: after a directory sync failed once while segment 2 was \
             created (error: {error}), the same journal refuses appends although the failure is \
             gone: {:?}\n  directory: {left:?}",
            retry.unwrap_err()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Recovery: reopening a journal whose writer stopped without sealing its tail.

const RECOVERED: u64 = 30;

/// Reopens a copy of `template` (see [`make_template`]; `crashed` when its tail is
/// unsealed) under `plan` and appends 5 records; then reopens it without injection and
/// checks every record. Returns the sync-type operations seen.
fn recovery_run(tally: &mut Tally, template: &Path, crashed: bool, plan: Plan) -> Vec<SyncOp> {
    let root = scratch();
    let dir = root.path().join("journal");
    copy_dir(template, &dir);
    let injector = Injector::new(root.path(), plan);
    let installed = Installed::new(&injector);
    let what = format!("recovery, {plan:?}");
    let mut written = RECOVERED;
    match journal_options(false).open(&dir) {
        Ok(journal) => {
            tally.check(
                journal.open_report().sealed_segment.is_some() == crashed,
                || format!("{what}: {:?}", journal.open_report()),
            );
            for _ in 0..5 {
                match journal.append(&payload(written, J_MAX)) {
                    Ok(_) => written += 1,
                    Err(AppendError::SyncFailed { source, .. }) => {
                        tally.check(is_injected(&source), || format!("{what}: {source}"));
                        written += 1;
                        match injector.failures().first() {
                            Some(failed) => {
                                check_journal_poisoned(tally, &journal, &injector, failed, &what)
                            }
                            None => {
                                tally.check(false, || format!("{what}: SyncFailed, no failure"))
                            }
                        }
                        break;
                    }
                    Err(AppendError::Segment(e)) => {
                        tally.check(channel_injected(&e), || format!("{what}: {e:?}"));
                        break;
                    }
                    Err(e) => {
                        tally.check(false, || format!("{what}: append: {e:?}"));
                        break;
                    }
                }
            }
        }
        Err(e) => {
            let clean = match &e {
                JournalError::Io { source, .. } => is_injected(source),
                JournalError::Channel(c) => channel_injected(c),
                JournalError::Write {
                    source: WriteError::SyncFailed { source, .. },
                    ..
                } => is_injected(source),
                _ => false,
            };
            tally.check(clean, || format!("{what}: open: {e:?}"));
            tally.note(if e.to_string().contains("sealing") {
                "recovery failed cleanly sealing the tail"
            } else {
                "recovery failed cleanly after sealing"
            });
        }
    }
    drop(installed);
    let ops = injector.ops();
    match journal_options(false).open(&dir) {
        Ok(journal) => {
            tally.check(journal.next_sequence() == written, || {
                format!(
                    "{what}: reopened at {}, {written} written",
                    journal.next_sequence()
                )
            });
            drop(journal);
            check_records(tally, &dir, written, J_MAX, &what);
        }
        Err(e) => tally.check(false, || format!("{what}: reopen without injection: {e}")),
    }
    ops
}

/// A journal of 30 records in `template`: copied while its writer is still open (a crash:
/// the tail has no seal and no lock) or after it was dropped (closed, its seals not synced).
fn make_template(template: &Path, durability: Durability, crashed: bool) {
    let source = scratch();
    let journal = journal_options(false)
        .durability(durability)
        .open(source.path())
        .unwrap();
    for seq in 0..RECOVERED {
        journal.append(&payload(seq, J_MAX)).unwrap();
    }
    if crashed {
        copy_dir(source.path(), template);
        drop(journal);
    } else {
        drop(journal);
        copy_dir(source.path(), template);
    }
}

#[test]
fn journal_recovery_every_sync_point() {
    let _serial = serial();
    let mut tally = Tally::new("sync errors: journal recovery");
    let cases = [
        (
            "crashed, every record acknowledged",
            Durability::EveryRecord,
            true,
        ),
        (
            "closed by dropping the journal",
            Durability::EveryRecord,
            false,
        ),
        ("crashed, nothing ever synced", Durability::Never, true),
    ];
    for (name, durability, crashed) in cases {
        let template = scratch();
        make_template(template.path(), durability, crashed);
        let total = recovery_run(&mut tally, template.path(), crashed, Plan::Off).len() as u64;
        assert!(total >= 7, "{name}: baseline: {total} sync operations");
        for n in 1..=total {
            for always in [false, true] {
                let plan = Plan::Nth { n, always };
                let ops = recovery_run(&mut tally, template.path(), crashed, plan);
                if ops.iter().any(|o| o.failed) {
                    tally.covered += 1;
                }
            }
        }
        println!("  {name}: {total} sync-type operations when reopening and appending 5 records");
    }
    tally.finish();
}

// ---------------------------------------------------------------------------------------
// (b) The journal, four threads.

const THREADS: u64 = 4;
const PER_THREAD: u64 = 25;

/// Record `index` of thread `thread`: 16 to 395 bytes.
fn content(thread: u64, index: u64) -> Vec<u8> {
    thread_record(thread, index, 380)
}

fn decode(record: &[u8]) -> Option<(u64, u64)> {
    if record.len() < 16 {
        return None;
    }
    let thread = u64::from_le_bytes(record[..8].try_into().unwrap());
    let index = u64::from_le_bytes(record[8..16].try_into().unwrap());
    (thread < THREADS && index < PER_THREAD && record == content(thread, index))
        .then_some((thread, index))
}

#[derive(Default)]
struct ThreadResult {
    /// (sequence number, index) of each acknowledged append.
    acked: Vec<(u64, u64)>,
    /// The index of the append that returned `SyncFailed`.
    sync_failed: Vec<u64>,
    /// The indices of the appends refused as `Poisoned`.
    refused: Vec<u64>,
    problems: Vec<String>,
}

fn threads_options() -> JournalOptions {
    JournalOptions::new()
        .segment_capacity(4096)
        .max_record_len(400)
        .durability(Durability::EveryRecord)
}

/// `THREADS` threads append `PER_THREAD` records each, continuing (and expecting refusals)
/// after an error. Returns the number of `FlushRange` operations seen.
fn threads_run(tally: &mut Tally, plan: Plan) -> u64 {
    let root = scratch();
    let dir = root.path().join("journal");
    let injector = Injector::with_flush_delay(root.path(), plan, Duration::from_micros(500));
    let _installed = Installed::new(&injector);
    let what = format!("four threads, {plan:?}");
    let journal = threads_options().open(&dir).unwrap();
    let results = on_threads(THREADS, |t| {
        let mut result = ThreadResult::default();
        let mut errored = false;
        for i in 0..PER_THREAD {
            match journal.append(&content(t, i)) {
                Ok(seq) => {
                    if errored {
                        result
                            .problems
                            .push(format!("thread {t}: append {i} succeeded after an error"));
                    }
                    if journal.durable_count() <= seq {
                        result
                            .problems
                            .push(format!("thread {t}: {seq} acknowledged, not durable"));
                    }
                    result.acked.push((seq, i));
                }
                Err(AppendError::SyncFailed { source, .. }) => {
                    if errored || !is_injected(&source) {
                        result
                            .problems
                            .push(format!("thread {t}: SyncFailed ({source}) after an error"));
                    }
                    result.sync_failed.push(i);
                    errored = true;
                }
                Err(AppendError::Poisoned { .. }) => {
                    result.refused.push(i);
                    errored = true;
                }
                Err(e) => result
                    .problems
                    .push(format!("thread {t}: append {i}: {e:?}")),
            }
            if errored && !matches!(journal.sync(), Err(AppendError::Poisoned { .. })) {
                result
                    .problems
                    .push(format!("thread {t}: sync not refused after an error"));
            }
        }
        result
    });
    let mut acked: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut sync_failed = 0;
    let mut failed_appends: HashMap<(u64, u64), &'static str> = HashMap::new();
    for (t, result) in results.into_iter().enumerate() {
        for problem in result.problems {
            tally.check(false, || format!("{what}: {problem}"));
        }
        sync_failed += result.sync_failed.len() as u64;
        for i in result.sync_failed {
            failed_appends.insert((t as u64, i), "SyncFailed");
        }
        for i in result.refused {
            failed_appends.insert((t as u64, i), "Poisoned");
        }
        for (seq, i) in result.acked {
            tally.check(acked.insert(seq, (t as u64, i)).is_none(), || {
                format!("{what}: sequence number {seq} acknowledged twice")
            });
        }
    }
    let failures = injector.failures();
    tally.check(
        sync_failed == failures.len() as u64 && failures.len() <= 1,
        || format!("{what}: {sync_failed} SyncFailed returned, failures injected {failures:?}"),
    );
    if let Some(failed) = failures.first() {
        tally.covered += 1;
        check_journal_poisoned(tally, &journal, &injector, failed, &what);
    } else {
        tally.check(acked.len() as u64 == THREADS * PER_THREAD, || {
            format!("{what}: no failure, {} acknowledged", acked.len())
        });
    }
    let durable = journal.durable_count();
    let synced = really_synced(&dir, &injector);
    tally.check(durable <= synced, || {
        format!("{what}: durable_count {durable}, really synced {synced}")
    });
    if failures.is_empty() {
        tally.check(durable == synced && synced == THREADS * PER_THREAD, || {
            format!("{what}: no failure, durable_count {durable}, really synced {synced}")
        });
    }
    if let Some((&last, _)) = acked.last_key_value() {
        tally.check(last < durable, || {
            format!("{what}: {last} acknowledged, durable_count {durable}")
        });
    }
    let flushes = injector.count(Kind::FlushRange);
    drop(journal);
    injector.set_plan(Plan::Off);

    // Reopened: exactly the records written, each once, each thread's in order, every
    // acknowledged one at its sequence number.
    let reopened = match threads_options().open(&dir) {
        Ok(j) => j,
        Err(e) => {
            tally.check(false, || format!("{what}: reopen: {e}"));
            return flushes;
        }
    };
    let records = match read_all(&dir) {
        Ok(r) => r,
        Err(e) => {
            tally.check(false, || format!("{what}: reading: {e}"));
            return flushes;
        }
    };
    tally.check(reopened.next_sequence() == records.len() as u64, || {
        format!(
            "{what}: reopened at {}, {} records read",
            reopened.next_sequence(),
            records.len()
        )
    });
    let mut last_index: HashMap<u64, u64> = HashMap::new();
    for (i, (seq, record)) in records.iter().enumerate() {
        let Some((t, index)) = decode(record) else {
            tally.check(false, || {
                format!("{what}: record {seq} is not one that was appended")
            });
            break;
        };
        tally.check(*seq == i as u64, || format!("{what}: sequence gap at {i}"));
        let previous = last_index.insert(t, index);
        tally.check(previous.is_none_or(|p| p < index), || {
            format!("{what}: thread {t}'s record {index} at {seq} after its record {previous:?}")
        });
        match acked.get(seq) {
            Some(&owner) => tally.check(owner == (t, index), || {
                format!(
                    "{what}: {seq} acknowledged as {owner:?}, read as {:?}",
                    (t, index)
                )
            }),
            // Written but not acknowledged: the append whose sync failed, or one that was
            // waiting for that sync (group commit) and was then refused.
            None => match failed_appends.get(&(t, index)) {
                Some(&"Poisoned") => {
                    tally.note("written appends refused as Poisoned (waiting on the failed sync)")
                }
                Some(_) => {}
                None => tally.check(false, || {
                    format!(
                        "{what}: record {seq} {:?} neither acknowledged nor refused",
                        (t, index)
                    )
                }),
            },
        }
    }
    let missing: Vec<&u64> = acked
        .keys()
        .filter(|&&s| s >= records.len() as u64)
        .collect();
    tally.check(missing.is_empty(), || {
        format!("{what}: acknowledged records lost: {missing:?}")
    });
    tally.check(reopened.append(b"continues").is_ok(), || {
        format!("{what}: append after reopening")
    });
    flushes
}

#[test]
fn journal_four_threads_every_flush_point() {
    let _serial = serial();
    let mut tally = Tally::new("sync errors: journal, four threads");
    let flushes = threads_run(&mut tally, Plan::Off);
    assert!(flushes >= 10, "baseline: {flushes} flushes");
    // Group commit makes the count vary between runs: go a little past the baseline's.
    let last = flushes + flushes / 4;
    // Each point three times: the threads interleave differently every time.
    for n in 1..=last {
        for round in 0..3 {
            let plan = Plan::NthOf {
                kind: Kind::FlushRange,
                n,
                always: (n + round) % 2 == 0,
            };
            threads_run(&mut tally, plan);
        }
    }
    println!("  {flushes} flushes in the baseline run, flushes 1 to {last} failed, 3 runs each");
    tally.finish();
}

// ---------------------------------------------------------------------------------------
// (e) The prevalent store.

/// Largest blob of a store command.
const BLOB: usize = 300;

fn store_options() -> StoreOptions {
    StoreOptions::new().journal(
        JournalOptions::new()
            .segment_capacity(4096)
            .durability(Durability::EveryRecord),
    )
}

const STORE_COMMANDS: u64 = 30;

/// Opens a store, executes 30 commands with a snapshot after commands 10 and 20, and
/// reopens it without injection. Returns the sync-type operations seen.
fn store_run(tally: &mut Tally, plan: Plan) -> Vec<SyncOp> {
    let root = scratch();
    let dir = root.path().join("store");
    let injector = Injector::new(root.path(), plan);
    let installed = Installed::new(&injector);
    let what = format!("store, {plan:?}");
    let open = || PrevalentStore::<Items, Put>::open(&dir, Vec::new(), store_options());
    let store = match open() {
        Ok(s) => s,
        Err(e) => {
            tally.check(!injector.failures().is_empty(), || {
                format!("{what}: open: {e}")
            });
            tally.note("store open failed cleanly");
            injector.set_plan(Plan::Off);
            match open() {
                Ok(s) => s,
                Err(e) => {
                    tally.check(false, || {
                        format!("{what}: open after removing injection: {e}")
                    });
                    return injector.ops();
                }
            }
        }
    };
    let mut applied: Items = Vec::new();
    let mut acked = 0;
    let mut poisoned = false;
    let mut id = 0;
    while id < STORE_COMMANDS {
        match store.execute(put(id, BLOB)) {
            Ok(len) => {
                tally.check(!poisoned, || {
                    format!("{what}: command {id} executed after a sync failure")
                });
                applied.push(item(id, BLOB));
                acked = applied.len();
                tally.check(len == applied.len(), || {
                    format!("{what}: command {id} returned {len}")
                });
            }
            Err(StoreError::Append(AppendError::SyncFailed { source, .. })) => {
                tally.check(!poisoned && is_injected(&source), || {
                    format!("{what}: command {id}: SyncFailed ({source})")
                });
                // Journaled and applied, then its sync failed: the outcome is unknown.
                applied.push(item(id, BLOB));
                poisoned = true;
                tally.note("execute failed with SyncFailed");
            }
            Err(StoreError::Append(AppendError::Poisoned { .. })) => {
                tally.check(poisoned, || {
                    format!("{what}: command {id}: Poisoned before a failure")
                });
            }
            Err(StoreError::Append(AppendError::Segment(e))) => {
                tally.check(channel_injected(&e), || {
                    format!("{what}: command {id}: {e:?}")
                });
                tally.note("execute failed with Segment (not applied)");
                injector.set_plan(Plan::Off);
                match store.execute(put(id, BLOB)) {
                    Ok(_) => applied.push(item(id, BLOB)),
                    Err(_) => {
                        tally.note("store unusable after a failed segment creation (see the dedicated test)");
                        break;
                    }
                }
                acked = applied.len();
            }
            Err(e) => {
                tally.check(false, || format!("{what}: command {id}: {e:?}"));
                break;
            }
        }
        match store.query(|items| items == &applied) {
            Ok(same) => tally.check(same, || format!("{what}: state after command {id}")),
            Err(e) => tally.check(false, || format!("{what}: query: {e}")),
        }
        if id == 10 || id == 20 {
            match store.snapshot() {
                Ok(_) => {}
                Err(StoreError::Append(AppendError::Poisoned { .. })) if poisoned => {}
                Err(e) => {
                    let clean = match &e {
                        StoreError::Snapshot(kekbit::snapshot::SnapshotError::Io {
                            source,
                            ..
                        }) => is_injected(source),
                        StoreError::Journal(JournalError::Io { source, .. }) => is_injected(source),
                        _ => false,
                    };
                    tally.check(clean, || format!("{what}: snapshot: {e:?}"));
                    tally.note("snapshot failed cleanly");
                    let left = temporaries(&dir.join("snapshots"));
                    tally.check(left.is_empty(), || {
                        format!("{what}: snapshot temporaries: {left:?}")
                    });
                }
            }
        }
        id += 1;
    }
    if poisoned {
        injector.set_plan(Plan::Off);
        tally.check(
            matches!(
                store.execute(put(99, BLOB)),
                Err(StoreError::Append(AppendError::Poisoned { .. }))
            ),
            || format!("{what}: execute after removing the injection not refused"),
        );
    }
    drop(store);
    drop(installed);
    let ops = injector.ops();
    match open() {
        Ok(store) => {
            let restored = store.query(|items| items.clone()).unwrap();
            if restored.len() == acked + 1 && restored == applied {
                tally.note("restored the command whose sync failed (it was published)");
            }
            tally.check(restored == applied, || {
                format!(
                    "{what}: restored {} commands, {} applied ({acked} acknowledged)",
                    restored.len(),
                    applied.len()
                )
            });
            tally.check(store.execute(put(100, BLOB)).is_ok(), || {
                format!("{what}: execute after reopening")
            });
        }
        Err(e) => tally.check(false, || format!("{what}: reopen: {e}")),
    }
    ops
}

#[test]
fn prevalent_store_every_sync_point() {
    let _serial = serial();
    let mut tally = Tally::new("sync errors: prevalent store");
    let baseline = store_run(&mut tally, Plan::Off);
    let total = baseline.len() as u64;
    assert!(total > STORE_COMMANDS, "baseline: {total} sync operations");
    for n in 1..=total {
        for always in [false, true] {
            let ops = store_run(&mut tally, Plan::Nth { n, always });
            if ops.iter().any(|o| o.failed) {
                tally.covered += 1;
            }
        }
    }
    println!("  {total} sync-type operations in the workload, each failed once and always");
    tally.finish();
}
