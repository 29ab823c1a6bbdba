//! A full disk is an error, never a SIGBUS, a panic or a lost record
//! (../shared/RELIABILITY.md, "full disk"; docs/FORMAT.md, "Creating a channel" step 3 and
//! "Rolling over").
//!
//! The first three tests mount a small tmpfs of their own (2 MiB, `mount -t tmpfs`), so the
//! disk really fills up; they need root (or `CAP_SYS_ADMIN`). Where mounting is refused, as
//! in an unprivileged container, each prints `skipped: cannot mount tmpfs: <reason>` and
//! passes. The mount is lazily unmounted (`umount -l`) when the test ends, even when it
//! fails.
//!
//! - A channel larger than the free space: `shm_writer` fails with `ChannelError::Io` of kind
//!   `StorageFull` and leaves no file behind; one page over the exact free space fails and
//!   the exact free space succeeds; a channel created before the disk fills is written to
//!   its end afterwards without a fault (its space was reserved with `fallocate`).
//! - A journal with 256 KiB segments, `EveryRecord`, appending until the disk is full: the
//!   append that needs a new segment fails with `AppendError::Segment` of kind
//!   `StorageFull` (and so do retries), every acknowledged record reads back, and once space
//!   is freed the same handle continues across further rollovers. Reopening while the disk
//!   is full fails with the same clear error and leaves the directory as it was; once space
//!   is freed the reopened journal holds every record and continues.
//! - A prevalent store whose snapshot hits the full disk: the error is returned, no partial
//!   snapshot file stays, commands keep executing, and restores (before and after a later
//!   successful snapshot) rebuild exactly the executed commands.
//!
//! The fourth test (feature `fault-injection`) makes the same journal scenario exact through
//! the I/O seam: an observer fails the k-th space reservation (`IoOp::Reserve`) and every
//! later one with `StorageFull` until "space is freed", for every k the workload reaches,
//! continuing once with the same handle and once through a reopen that first fails.
//!
//! Each test prints its failure points covered and violations (0). All tests of this binary
//! hold one lock, because the seam's observer is process-wide.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use kekbit::core::{
    shm_reader, shm_writer, ChannelError, EncoderHandler, Header, Reader, TickUnit, WriteError,
    Writer,
};
use kekbit::journal::{verify, AppendError, JournalError, JournalOptions, VerifyStatus};
use kekbit::prevalence::{PrevalentStore, StoreError, StoreOptions};
use kekbit::snapshot::SnapshotError;

#[path = "common/faults.rs"]
mod faults;
#[cfg(feature = "fault-injection")]
use faults::Installed;
use faults::{check_records, item, names, payload, put, serial, temporaries, Items, Put, Tally};

const PAGE: u64 = 4096;

/// A tmpfs of a fixed size mounted on a fresh temporary directory; lazily unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    // Removed after the unmount (fields drop after `Drop::drop`).
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("creating a mount point: {e}"))?;
        let output = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "mount exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        Ok(Tmpfs {
            path: dir.path().to_path_buf(),
            _dir: dir,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Mounts a 2 MiB tmpfs, or says why the test is skipped.
fn small_disk(test: &str) -> Option<Tmpfs> {
    match Tmpfs::mount("2m") {
        Ok(mount) => Some(mount),
        Err(reason) => {
            println!("{test}: skipped: cannot mount tmpfs: {reason}");
            None
        }
    }
}

/// Bytes a record of `len` bytes occupies in a segment (header and padding).
fn framed(len: usize) -> u64 {
    (8 + len as u64).div_ceil(8) * 8
}

fn is_storage_full(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
}

fn channel_storage_full(e: &ChannelError) -> bool {
    matches!(e, ChannelError::Io { source, .. } if is_storage_full(source))
}

fn append_storage_full(e: &AppendError) -> bool {
    matches!(e, AppendError::Segment(c) if channel_storage_full(c))
}

fn open_storage_full(e: &JournalError) -> bool {
    matches!(e, JournalError::Channel(c) if channel_storage_full(c))
}

fn segments(dir: &Path) -> usize {
    names(dir).iter().filter(|n| n.ends_with(".kekbit")).count()
}

/// A file of `len` bytes (zeros, really allocated).
fn filler(path: &Path, len: u64) {
    let mut file = File::create(path).expect("creating a filler file");
    let chunk = vec![0u8; 64 << 10];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        file.write_all(&chunk[..n]).expect("writing a filler file");
        done += n as u64;
    }
}

/// Writes a file at `path` until the disk is full; returns its length.
fn fill_disk(path: &Path) -> u64 {
    let mut file = File::create(path).expect("creating a filler file");
    let chunk = vec![0u8; 64 << 10];
    let mut len = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => len += n as u64,
            Err(e) if is_storage_full(&e) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    len
}

#[test]
fn channel_larger_than_free_space_is_a_storage_full_error() {
    let _serial = serial();
    let Some(disk) = small_disk("channel_larger_than_free_space") else {
        return;
    };
    let mut tally = Tally::new("full disk (tmpfs): channel creation");
    let root = disk.path().join("channels");
    fs::create_dir(&root).unwrap();
    let header =
        |id: u64, capacity: u64| Header::new(1, id, capacity, 1024, 1_000, TickUnit::Millis);
    let refused = |tally: &mut Tally, id: u64, capacity: u64, what: &str| {
        match shm_writer(&root, &header(id, capacity), EncoderHandler) {
            Ok(_) => tally.check(false, || {
                format!("{what}: a {capacity}-byte channel was created")
            }),
            Err(e) => {
                println!("  {what}: {e}");
                tally.check(channel_storage_full(&e), || {
                    format!("{what}: expected ChannelError::Io of kind StorageFull, got {e:?}")
                });
                tally.covered += 1;
            }
        }
        let left = names(&root);
        tally.check(left.is_empty(), || {
            format!("{what}: files left behind: {left:?}")
        });
    };

    // Larger than the whole disk.
    refused(&mut tally, 1, 4 << 20, "4 MiB channel on a 2 MiB disk");

    // Larger than what a filler leaves free.
    let fill = disk.path().join("filler");
    filler(&fill, 1 << 20);
    refused(&mut tally, 2, 1536 << 10, "1.5 MiB channel with 1 MiB free");
    fs::remove_file(&fill).unwrap();

    // One page more than the exact free space fails; the exact free space succeeds. The free
    // space is measured by filling the disk with a probe file.
    let probe = disk.path().join("probe");
    let free = fill_disk(&probe);
    fs::remove_file(&probe).unwrap();
    assert!(
        free.is_multiple_of(PAGE) && free > 64 * PAGE,
        "odd free space {free}"
    );
    refused(
        &mut tally,
        3,
        free - 128 + 8,
        "a channel one page larger than the free space",
    );
    let exact = free - 128;
    match shm_writer(&root, &header(4, exact), EncoderHandler) {
        Ok(w) => {
            println!("  a channel of exactly the free space ({free} bytes): created");
            drop(w);
            fs::remove_file(kekbit::core::storage_path(&root, 4)).unwrap();
        }
        Err(e) => tally.check(false, || {
            format!("a channel of exactly the free space: {e}")
        }),
    }

    // A channel made before the disk fills is written to its end afterwards: its space was
    // reserved at creation, so no page fault can fail (it would be a SIGBUS).
    let capacity = 512 << 10;
    let mut writer = shm_writer(&root, &header(5, capacity), EncoderHandler).unwrap();
    let rest = fill_disk(&disk.path().join("rest"));
    println!("  disk filled with {rest} more bytes; writing the 512 KiB channel to its end");
    let mut written = Vec::new();
    loop {
        let record = payload(written.len() as u64, 1024);
        match writer.write(&record[..]) {
            Ok(_) => written.push(record),
            Err(WriteError::ChannelFull { .. }) => break,
            Err(e) => {
                tally.check(false, || format!("writing on a full disk: {e}"));
                break;
            }
        }
    }
    if let Err(e) = writer.flush() {
        tally.check(false, || format!("flushing on a full disk: {e}"));
    }
    tally.check(writer.position() > capacity - 2048, || {
        format!("only {} of {capacity} bytes written", writer.position())
    });
    drop(writer);
    let mut reader = shm_reader(&root, 5).unwrap();
    let mut read = 0;
    while let Ok(Some(record)) = reader.try_read() {
        if read >= written.len() || record != written[read] {
            tally.check(false, || format!("record {read} reads back wrong"));
            break;
        }
        read += 1;
    }
    tally.check(read == written.len(), || {
        format!("{read} of {} records read back", written.len())
    });
    tally.finish();
}

#[test]
fn journal_on_a_full_disk_fails_at_rollover_and_continues_once_space_is_freed() {
    let _serial = serial();
    let Some(disk) = small_disk("journal_on_a_full_disk") else {
        return;
    };
    let mut tally = Tally::new("full disk (tmpfs): journal");
    const MAX: usize = 4096;
    let dir = disk.path().join("journal");
    let options = || {
        JournalOptions::new()
            .segment_capacity(256 << 10)
            .max_record_len(MAX as u32)
    };
    // Space taken now and freed later: 512 KiB in phase 2, 256 KiB in phase 4.
    let fill = disk.path().join("filler");
    filler(&fill, 512 << 10);
    let spare = disk.path().join("spare");
    filler(&spare, 256 << 10);

    // Phase 1: append until the disk is full. Each append returns once durable.
    let journal = options().open(&dir).expect("opening the journal");
    let mut next = 0u64;
    let first_error = loop {
        match journal.append(&payload(next, MAX)) {
            Ok(seq) => {
                tally.check(seq == next, || {
                    format!("append returned {seq}, expected {next}")
                });
                tally.check(journal.durable_count() > seq, || {
                    format!(
                        "record {seq} acknowledged but durable_count is {}",
                        journal.durable_count()
                    )
                });
                next += 1;
            }
            Err(e) => break Some(e),
        }
        if next > 10_000 {
            break None;
        }
    };
    let Some(first_error) = first_error else {
        panic!("10,000 records appended and the 2 MiB disk never filled");
    };
    println!(
        "  disk full after {next} records in {} segments: {first_error}",
        segments(&dir)
    );
    tally.check(append_storage_full(&first_error), || {
        format!("expected AppendError::Segment of kind StorageFull, got {first_error:?}")
    });
    tally.covered += 1;
    tally.check(
        journal.next_sequence() == next && journal.durable_count() == next,
        || {
            format!(
                "after the failure: next_sequence {}, durable_count {}, {next} acknowledged",
                journal.next_sequence(),
                journal.durable_count()
            )
        },
    );
    // Retrying while the disk is still full fails the same way (the segment is now created
    // on the appending thread).
    for _ in 0..3 {
        match journal.append(&payload(next, MAX)) {
            Ok(seq) => tally.check(false, || format!("append succeeded on a full disk ({seq})")),
            Err(e) => tally.check(append_storage_full(&e), || {
                format!("retry on a full disk: {e:?}")
            }),
        }
    }
    tally.covered += 1;
    let left = temporaries(&dir);
    tally.check(left.is_empty(), || {
        format!("temporary files left: {left:?}")
    });
    check_records(&mut tally, &dir, next, MAX, "on the full disk");

    // Phase 2: free space; the same handle continues, across at least one more rollover.
    fs::remove_file(&fill).unwrap();
    let before = segments(&dir);
    let mut bytes = 0;
    while bytes < (256 << 10) + (16 << 10) {
        let record = payload(next, MAX);
        match journal.append(&record) {
            Ok(seq) => {
                tally.check(seq == next, || {
                    format!("append returned {seq}, expected {next}")
                });
                next += 1;
                bytes += framed(record.len());
            }
            Err(e) => {
                tally.check(false, || format!("append after freeing space: {e}"));
                break;
            }
        }
    }
    tally.check(segments(&dir) >= before + 2, || {
        format!(
            "{before} segments before freeing space, {} after",
            segments(&dir)
        )
    });
    check_records(&mut tally, &dir, next, MAX, "after freeing space");
    drop(journal);

    // Phase 3: reopening on a full disk fails with a clear error and changes nothing.
    let rest = disk.path().join("rest");
    fill_disk(&rest);
    let before = names(&dir);
    for attempt in 0..2 {
        match options().open(&dir) {
            Ok(_) => tally.check(false, || "reopened a journal on a full disk".into()),
            Err(e) => {
                if attempt == 0 {
                    println!("  reopening on a full disk: {e}");
                }
                tally.check(open_storage_full(&e), || {
                    format!("expected JournalError::Channel of kind StorageFull, got {e:?}")
                });
            }
        }
    }
    tally.covered += 1;
    tally.check(names(&dir) == before, || {
        format!(
            "reopening on a full disk changed the directory: {before:?} -> {:?}",
            names(&dir)
        )
    });
    check_records(
        &mut tally,
        &dir,
        next,
        MAX,
        "after reopening on a full disk failed",
    );

    // Phase 4: with space again, the reopened journal holds everything and continues.
    fs::remove_file(&rest).unwrap();
    fs::remove_file(&spare).unwrap();
    let journal = options().open(&dir).expect("reopening after freeing space");
    tally.check(journal.next_sequence() == next, || {
        format!("reopened at {}, expected {next}", journal.next_sequence())
    });
    for _ in 0..5 {
        match journal.append(&payload(next, MAX)) {
            Ok(_) => next += 1,
            Err(e) => {
                tally.check(false, || format!("append after reopening: {e}"));
                break;
            }
        }
    }
    drop(journal);
    check_records(&mut tally, &dir, next, MAX, "after reopening");
    match verify(&dir, &mut |_, _| {}) {
        Ok(report) => tally.check(
            report.status() == VerifyStatus::Clean && report.records == next,
            || format!("verify: {report:?}"),
        ),
        Err(e) => tally.check(false, || format!("verify failed: {e}")),
    }
    println!("  {next} records in all");
    tally.finish();
}

/// Largest blob of a store command.
const BLOB: usize = 1500;

#[test]
fn snapshot_on_a_full_disk_is_an_error_and_the_store_keeps_working() {
    let _serial = serial();
    let Some(disk) = small_disk("snapshot_on_a_full_disk") else {
        return;
    };
    let mut tally = Tally::new("full disk (tmpfs): prevalent store snapshot");
    let dir = disk.path().join("store");
    let options = || StoreOptions::new().journal(JournalOptions::new().segment_capacity(128 << 10));
    let mut model: Items = Vec::new();
    let execute = |store: &PrevalentStore<Items, Put>, model: &mut Items, tally: &mut Tally| {
        let id = model.len() as u64;
        match store.execute(put(id, BLOB)) {
            Ok(len) => {
                model.push(item(id, BLOB));
                tally.check(len == model.len(), || {
                    format!("command {id} returned {len}")
                });
            }
            Err(e) => tally.check(false, || format!("command {id} failed: {e}")),
        }
    };
    let snapshot_files = |dir: &Path| names(&dir.join("snapshots"));

    let store = PrevalentStore::<Items, Put>::open(&dir, Vec::new(), options()).unwrap();
    for _ in 0..150 {
        execute(&store, &mut model, &mut tally);
    }
    // Leave 32 KiB free: the state's image is several times that.
    let fill = disk.path().join("filler");
    let len = fill_disk(&fill);
    File::options()
        .write(true)
        .open(&fill)
        .unwrap()
        .set_len(len - (32 << 10))
        .unwrap();

    for round in 0..2 {
        match store.snapshot() {
            Ok(taken) => tally.check(false, || {
                format!(
                    "a snapshot of {} bytes was written on a full disk",
                    taken.info.body_len
                )
            }),
            Err(e) => {
                println!("  snapshot on a full disk (round {round}): {e}");
                let full = matches!(&e, StoreError::Snapshot(SnapshotError::Io { source, .. }) if is_storage_full(source));
                tally.check(full, || {
                    format!("expected a StorageFull snapshot error, got {e:?}")
                });
                tally.covered += 1;
            }
        }
        let left = snapshot_files(&dir);
        tally.check(left.is_empty(), || format!("snapshot files left: {left:?}"));
        // The store keeps working.
        for _ in 0..10 {
            execute(&store, &mut model, &mut tally);
        }
        match store.query(|items| items == &model) {
            Ok(same) => tally.check(same, || "state differs from the commands executed".into()),
            Err(e) => tally.check(false, || format!("query failed: {e}")),
        }
    }
    drop(store);
    fs::remove_file(&fill).unwrap();

    // Restore without a snapshot: every command, from the journal.
    let store = PrevalentStore::<Items, Put>::open(&dir, Vec::new(), options()).unwrap();
    let report = store.recovery_report().clone();
    tally.check(
        report.snapshot.is_none() && report.records_replayed == model.len() as u64,
        || format!("first restore: {report:?}"),
    );
    tally.check(store.query(|items| items == &model).unwrap(), || {
        "first restore: state differs from the commands executed".into()
    });
    // With space again, a snapshot succeeds; restore uses it and replays what follows.
    let taken = store.snapshot().expect("snapshot after freeing space");
    tally.check(taken.info.sequence == model.len() as u64, || {
        format!(
            "snapshot at {}, expected {}",
            taken.info.sequence,
            model.len()
        )
    });
    for _ in 0..20 {
        execute(&store, &mut model, &mut tally);
    }
    drop(store);
    let store = PrevalentStore::<Items, Put>::open(&dir, Vec::new(), options()).unwrap();
    let report = store.recovery_report().clone();
    tally.check(
        report.snapshot.as_ref().map(|s| s.sequence) == Some(taken.info.sequence)
            && report.records_replayed == 20
            && report.snapshots_rejected.is_empty(),
        || format!("second restore: {report:?}"),
    );
    tally.check(store.query(|items| items == &model).unwrap(), || {
        "second restore: state differs from the commands executed".into()
    });
    println!("  {} commands in all", model.len());
    tally.finish();
}

/// The same journal scenario through the I/O seam: exact, for every reservation.
#[cfg(feature = "fault-injection")]
mod seam {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use kekbit::fault::{IoObserver, IoOp};

    use super::*;

    /// The disk is full from the `fail_from`-th reservation under `root` on, until freed.
    pub(super) struct DiskFull {
        root: PathBuf,
        fail_from: u64,
        full: AtomicBool,
        reserves: AtomicU64,
        injected: AtomicU64,
    }

    impl DiskFull {
        pub(super) fn new(root: &Path, fail_from: u64) -> DiskFull {
            DiskFull {
                root: root.to_path_buf(),
                fail_from,
                full: AtomicBool::new(fail_from > 0),
                reserves: AtomicU64::new(0),
                injected: AtomicU64::new(0),
            }
        }

        pub(super) fn free(&self) {
            self.full.store(false, Ordering::SeqCst);
        }

        pub(super) fn reserves(&self) -> u64 {
            self.reserves.load(Ordering::SeqCst)
        }

        pub(super) fn injected(&self) -> u64 {
            self.injected.load(Ordering::SeqCst)
        }
    }

    impl IoObserver for DiskFull {
        fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
            if let IoOp::Reserve(path, _) = op {
                if path.starts_with(&self.root) {
                    let n = self.reserves.fetch_add(1, Ordering::SeqCst) + 1;
                    if self.full.load(Ordering::SeqCst) && n >= self.fail_from {
                        self.injected.fetch_add(1, Ordering::SeqCst);
                        return Err(io::Error::from(io::ErrorKind::StorageFull));
                    }
                }
            }
            Ok(())
        }
    }
}

#[cfg(feature = "fault-injection")]
const SEAM_RECORDS: u64 = 100;
#[cfg(feature = "fault-injection")]
const SEAM_MAX: usize = 1500;

#[cfg(feature = "fault-injection")]
fn seam_options() -> JournalOptions {
    JournalOptions::new()
        .segment_capacity(8 << 10)
        .max_record_len(SEAM_MAX as u32)
}

/// One run: the disk is full from reservation `k` on (never, for 0). With `reopen`, the
/// journal is dropped at the failure and reopened (which fails while the disk is full);
/// otherwise the same handle continues once space is freed. Returns the reservations seen
/// and whether an injected failure was met.
#[cfg(feature = "fault-injection")]
fn seam_run(tally: &mut Tally, k: u64, reopen: bool) -> (u64, bool) {
    use std::sync::Arc;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    let disk = Arc::new(seam::DiskFull::new(&dir, k));
    let _installed = Installed::new(&disk);
    let what = |phase: &str| format!("reservation {k} fails (reopen {reopen}), {phase}");
    let mut met = false;

    let mut journal = match seam_options().open(&dir) {
        Ok(j) => Some(j),
        Err(e) => {
            met = true;
            tally.check(open_storage_full(&e), || format!("{}: {e:?}", what("open")));
            tally.check(k == 1, || format!("{}: open failed: {e}", what("open")));
            tally.check(segments(&dir) == 0 && temporaries(&dir).is_empty(), || {
                format!("{}: files left: {:?}", what("open"), names(&dir))
            });
            match seam_options().open(&dir) {
                Ok(_) => tally.check(false, || format!("{}: second open succeeded", what("open"))),
                Err(e) => tally.check(open_storage_full(&e), || {
                    format!("{}: {e:?}", what("second open"))
                }),
            }
            disk.free();
            Some(seam_options().open(&dir).expect("open after freeing space"))
        }
    };
    let mut next = 0;
    while next < SEAM_RECORDS {
        let j = journal.as_ref().unwrap();
        match j.append(&payload(next, SEAM_MAX)) {
            Ok(seq) => {
                tally.check(seq == next, || {
                    format!("{}: got {seq}, expected {next}", what("append"))
                });
                tally.check(j.durable_count() > seq, || {
                    format!("{}: {seq} not durable", what("append"))
                });
                next += 1;
            }
            Err(e) => {
                let first = !met;
                met = true;
                tally.check(first && append_storage_full(&e), || {
                    format!("{}: append {next}: {e:?}", what("append"))
                });
                if !first {
                    break;
                }
                tally.check(
                    j.next_sequence() == next && j.durable_count() == next,
                    || {
                        format!(
                            "{}: next_sequence {}, durable_count {}, {next} acknowledged",
                            what("failure"),
                            j.next_sequence(),
                            j.durable_count()
                        )
                    },
                );
                for _ in 0..2 {
                    match j.append(&payload(next, SEAM_MAX)) {
                        Ok(_) => {
                            tally.check(false, || format!("{}: retry succeeded", what("retry")))
                        }
                        Err(e) => tally.check(append_storage_full(&e), || {
                            format!("{}: {e:?}", what("retry"))
                        }),
                    }
                }
                tally.check(temporaries(&dir).is_empty(), || {
                    format!(
                        "{}: temporaries left: {:?}",
                        what("failure"),
                        temporaries(&dir)
                    )
                });
                check_records(tally, &dir, next, SEAM_MAX, &what("while full"));
                if reopen {
                    drop(journal.take());
                    match seam_options().open(&dir) {
                        Ok(_) => tally
                            .check(false, || format!("{}: reopened while full", what("reopen"))),
                        Err(e) => tally.check(open_storage_full(&e), || {
                            format!("{}: {e:?}", what("reopen"))
                        }),
                    }
                    check_records(tally, &dir, next, SEAM_MAX, &what("after a failed reopen"));
                    disk.free();
                    match seam_options().open(&dir) {
                        Ok(j) => {
                            tally.check(j.next_sequence() == next, || {
                                format!("{}: reopened at {}", what("reopen"), j.next_sequence())
                            });
                            journal = Some(j);
                        }
                        Err(e) => {
                            tally.check(false, || {
                                format!("{}: reopen after freeing: {e}", what("reopen"))
                            });
                            return (disk.reserves(), met);
                        }
                    }
                } else {
                    disk.free();
                }
            }
        }
    }
    drop(journal);
    let reserves = disk.reserves();
    // A failure injected into the last segment prepared ahead is never met: free it too.
    disk.free();
    check_records(tally, &dir, next, SEAM_MAX, &what("at the end"));
    tally.check(next == SEAM_RECORDS, || {
        format!("{}: only {next} records", what("end"))
    });
    match seam_options().open(&dir) {
        Ok(j) => {
            tally.check(j.next_sequence() == next, || {
                format!("{}: reopened at {}", what("end"), j.next_sequence())
            });
            tally.check(j.append(b"one more").is_ok(), || {
                format!("{}: append after reopening", what("end"))
            });
        }
        Err(e) => tally.check(false, || format!("{}: final reopen: {e}", what("end"))),
    }
    match verify(&dir, &mut |_, _| {}) {
        Ok(report) => tally.check(report.status() == VerifyStatus::Clean, || {
            format!("{}: verify: {report:?}", what("end"))
        }),
        Err(e) => tally.check(false, || format!("{}: verify: {e}", what("end"))),
    }
    tally.check(!met || disk.injected() > 0, || {
        format!("{}: a failure met but none injected", what("end"))
    });
    (reserves, met)
}

#[cfg(feature = "fault-injection")]
#[test]
fn seam_storage_full_at_every_segment_reservation() {
    let _serial = serial();
    let mut tally = Tally::new("full disk (seam): journal, every reservation");
    let (reserves, met) = seam_run(&mut tally, 0, false);
    assert!(!met && reserves > 5, "baseline: {reserves} reservations");
    for k in 1..=reserves {
        for reopen in [false, true] {
            let (_, met) = seam_run(&mut tally, k, reopen);
            if met {
                tally.covered += 1;
            }
        }
    }
    println!("  {reserves} reservations in the workload, each failed twice (same handle, reopen)");
    tally.finish();
}
