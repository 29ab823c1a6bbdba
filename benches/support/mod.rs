//! What the benches share: criterion group settings, temporary folders in memory or on a
//! disk, payloads and the size of a framed record.
//!
//! Not a bench of its own (Cargo builds `benches/*.rs` and `benches/*/main.rs` only): each
//! bench includes it with `#[path = "support/mod.rs"] mod support;` and uses part of it.

use std::path::Path;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, SamplingMode};
use kekbit::core::{RECORD_ALIGN, RECORD_HEADER_LEN};
use tempfile::TempDir;

/// Whether this is a benchmark run (`cargo bench`), as opposed to a test run (`cargo test
/// --benches`, or `-- --test`), where criterion runs each benchmark once and the reports
/// shrink to a smoke test or are skipped. Same rule as criterion's.
pub fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// Many samples, of growing length: for benchmarks whose iterations take nanoseconds.
/// (The sampling mode is criterion's default; it is set again for groups that also hold
/// slow benchmarks.)
pub fn fast_settings(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .sampling_mode(SamplingMode::Auto)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// Few, flat samples: for benchmarks whose iterations sync, or take milliseconds.
pub fn slow_settings(group: &mut BenchmarkGroup<'_, WallTime>, warm_up_ms: u64, measure_ms: u64) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(warm_up_ms))
        .measurement_time(Duration::from_millis(measure_ms));
}

/// A temporary folder in memory (under `/dev/shm`) when the system has one, else in the
/// system temporary folder: for benchmarks that should not measure the storage device.
pub fn memory_dir(prefix: &str) -> TempDir {
    let shm = Path::new("/dev/shm");
    let parent = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .unwrap_or_else(|e| panic!("creating a benchmark folder in {}: {e}", parent.display()))
}

/// A temporary folder under `root`, which should be on a disk. When it is in memory after
/// all (tmpfs), where syncs cost nothing, a warning ending with `hint` (how to move it) is
/// printed to stderr.
pub fn disk_dir(root: &Path, prefix: &str, hint: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(root)
        .unwrap_or_else(|e| panic!("creating a benchmark folder in {}: {e}", root.display()));
    if filesystem(dir.path()) == "tmpfs" {
        eprintln!(
            "warning: {} is in memory (tmpfs): syncs cost nothing there; {hint}",
            dir.path().display()
        );
    }
    dir
}

/// The name of the file system `path` is on, from `statfs(2)`.
#[cfg(target_os = "linux")]
pub fn filesystem(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: `statfs` only writes into the zeroed struct it is given; the path is a
    // NUL-terminated string that outlives the call.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return "unknown".into();
    }
    match stat.f_type as u64 {
        0x0102_1994 => "tmpfs".into(),
        0xef53 => "ext4".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683e => "btrfs".into(),
        0x794c_7630 => "overlayfs".into(),
        other => format!("statfs type {other:#x}"),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn filesystem(_path: &Path) -> String {
    "unknown".into()
}

/// Runs `work(t, share)` on `threads` threads at once, thread `t` doing `share` of `total`
/// steps (equal shares, the remainder spread over the first threads); returns the time from
/// their common start until the last one is done. Starting the threads is not timed.
pub fn timed_in_threads(threads: usize, total: u64, work: impl Fn(u64, u64) + Sync) -> Duration {
    let start_line = Barrier::new(threads + 1);
    thread::scope(|s| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|t| {
                let share = total / threads as u64 + u64::from(t < total % threads as u64);
                let (start_line, work) = (&start_line, &work);
                s.spawn(move || {
                    start_line.wait();
                    work(t, share);
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        for worker in workers {
            worker.join().expect("a benchmark thread panicked");
        }
        start.elapsed()
    })
}

/// A payload whose bytes are not all alike.
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + 7) as u8).collect()
}

/// Bytes a record with a `len`-byte payload occupies in a channel or a journal segment: its
/// header and payload, padded to the record alignment.
pub fn frame_len(len: usize) -> u64 {
    ((RECORD_HEADER_LEN + len) as u64).next_multiple_of(RECORD_ALIGN)
}
