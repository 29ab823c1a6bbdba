//! Small helpers shared by every part of the comparison: command-line arguments, records,
//! clocks, percentiles and file-system facts.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

/// `--key value` pairs and bare `--flag`s, in any order.
#[derive(Debug, Clone, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    pub fn parse(raw: &[String]) -> Args {
        let mut args = Args::default();
        let mut i = 0;
        while i < raw.len() {
            let key = raw[i].trim_start_matches("--").to_string();
            let has_value = raw.get(i + 1).is_some_and(|v| !v.starts_with("--"));
            if has_value {
                args.values.insert(key, raw[i + 1].clone());
                i += 2;
            } else {
                args.flags.push(key);
                i += 1;
            }
        }
        args
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `--key` parsed, or `default` without one.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str, default: T) -> io::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let Some(value) = self.get(key) else {
            return Ok(default);
        };
        value.parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("--{key} {value}: {e}"))
        })
    }

    pub fn need(&self, key: &str) -> &str {
        self.get(key)
            .unwrap_or_else(|| panic!("missing argument --{key}"))
    }

    pub fn num(&self, key: &str) -> u64 {
        self.need(key)
            .parse()
            .unwrap_or_else(|_| panic!("--{key} must be a number"))
    }

    pub fn flag(&self, key: &str) -> bool {
        self.flags.iter().any(|f| f == key)
    }
}

/// The records every system appends: record `i` is `size` bytes, starts with `i` as a
/// little-endian u64, and the rest is a fixed pattern (so a replay can check every byte).
pub struct Records {
    buf: Vec<u8>,
}

impl Records {
    pub fn new(size: usize) -> Records {
        assert!(
            size >= 16,
            "records carry a sequence number and a time stamp"
        );
        Records {
            buf: (0..size).map(|k| (k * 31 + 7) as u8).collect(),
        }
    }

    /// Record `i`, written into the shared buffer (one 8-byte store per record).
    #[inline]
    pub fn get(&mut self, i: u64) -> &[u8] {
        self.buf[..8].copy_from_slice(&i.to_le_bytes());
        &self.buf
    }

    /// Record `i` with a time stamp in bytes 8..16 (for the one-way latency runs).
    #[inline]
    pub fn stamped(&mut self, i: u64, nanos: u64) -> &[u8] {
        self.buf[..8].copy_from_slice(&i.to_le_bytes());
        self.buf[8..16].copy_from_slice(&nanos.to_le_bytes());
        &self.buf
    }

    /// Checks that `record` is record `i`, byte for byte.
    #[inline]
    pub fn check(&self, i: u64, record: &[u8]) -> io::Result<()> {
        let ok = record.len() == self.buf.len()
            && record[..8] == i.to_le_bytes()
            && record[8..] == self.buf[8..];
        if ok {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "record {i} does not read back as written ({} bytes)",
                    record.len()
                ),
            ))
        }
    }
}

/// The sequence number and time stamp of a stamped record.
fn unstamp(record: &[u8]) -> (u64, u64) {
    let seq = u64::from_le_bytes(record[..8].try_into().unwrap());
    let nanos = u64::from_le_bytes(record[8..16].try_into().unwrap());
    (seq, nanos)
}

/// What L1's reader measures: the one-way latency (ns) of each stamped record, from its time
/// stamp to its arrival, for all but the first `warmup` of the `total` records sent.
pub struct OneWay {
    nanos: Vec<u64>,
    seen: u64,
    total: u64,
    warmup: u64,
}

impl OneWay {
    pub fn new(total: u64, warmup: u64) -> OneWay {
        OneWay {
            nanos: Vec::with_capacity(total as usize),
            seen: 0,
            total,
            warmup,
        }
    }

    /// Whether every record sent has arrived.
    pub fn done(&self) -> bool {
        self.seen >= self.total
    }

    /// Notes `record`, which has just arrived.
    #[inline]
    pub fn arrived(&mut self, record: &[u8]) {
        let now = mono_nanos();
        let (seq, sent) = unstamp(record);
        if seq >= self.warmup {
            self.nanos.push(now.saturating_sub(sent));
        }
        self.seen += 1;
    }

    pub fn into_nanos(self) -> Vec<u64> {
        self.nanos
    }
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine, so a time
/// stamp taken in the writer's process can be compared with one taken in the reader's.
#[inline]
pub fn mono_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec passed.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Percentiles of a set of samples (nearest rank).
#[derive(Debug, Clone, Copy)]
pub struct Dist {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Dist {
    pub fn of(samples: &mut [u64]) -> Dist {
        assert!(!samples.is_empty());
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| samples[((n as f64 * q).ceil() as usize).clamp(1, n) - 1] as f64;
        Dist {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[n - 1] as f64,
            mean: samples.iter().sum::<u64>() as f64 / n as f64,
        }
    }
}

/// Median, minimum, maximum and quartiles of per-round values.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub q1: f64,
    pub q3: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        // A total order: a NaN (`loadavg1` when /proc/loadavg cannot be read) sorts last
        // instead of panicking at the end of a run.
        v.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            // Linear interpolation between closest ranks.
            let pos = q * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Some(Spread {
            median: quantile(0.5),
            min: v[0],
            max: v[v.len() - 1],
            q1: quantile(0.25),
            q3: quantile(0.75),
        })
    }
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The file system type of `path` (from /proc/mounts: the longest mount point above it).
pub fn fs_type(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(usize, String, String)> = None;
    for line in mounts.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.len() < 3 {
            continue;
        }
        let (dev, mount, kind) = (parts[0], parts[1], parts[2]);
        if path.starts_with(mount) && best.as_ref().is_none_or(|b| mount.len() > b.0) {
            best = Some((mount.len(), kind.to_string(), format!("{dev} on {mount}")));
        }
    }
    best.map(|(_, k, on)| format!("{k} ({on})"))
        .unwrap_or_else(|| "unknown".into())
}

/// Total bytes of the files under `dir`, sub-folders included.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                if m.is_dir() {
                    total += dir_bytes(&e.path());
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}

/// Drops the page cache of every file under `dir` (posix_fadvise DONTNEED, after an
/// fdatasync so that the pages are clean and can be dropped): the next open reads from disk.
pub fn drop_cache(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    for e in fs::read_dir(dir)? {
        let e = e?;
        let path = e.path();
        if e.metadata()?.is_dir() {
            drop_cache(&path)?;
            continue;
        }
        let f = fs::File::open(&path)?;
        f.sync_data()?;
        // SAFETY: plain system call on an open descriptor; no memory is passed.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// Flushes every dirty page of the file system holding `path` (between runs, untimed), so
/// that one run's write-back does not land in the next run's measurement.
pub fn syncfs(path: &Path) {
    use std::os::fd::AsRawFd;
    if let Ok(f) = fs::File::open(path) {
        // SAFETY: plain system call on an open descriptor.
        unsafe { libc::syncfs(f.as_raw_fd()) };
    }
}

/// A tiny xorshift generator for pacing jitter (no dependency needed).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `[lo, hi)`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// Waits until CLOCK_MONOTONIC reaches `deadline`: sleeps while it is more than 15 µs away,
/// spins for the rest. Call [`fine_timer_slack`] first, or each sleep overshoots by ~50 µs.
pub fn wait_until(deadline: u64) {
    loop {
        let now = mono_nanos();
        if now >= deadline {
            return;
        }
        let left = deadline - now;
        if left > 15_000 {
            std::thread::sleep(Duration::from_nanos(left - 10_000));
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Sets this thread's timer slack to 1 ns (the default is 50 µs), so that a short sleep
/// ends close to when it was asked to. Used by the L1 writer only, to pace its records
/// without keeping a core busy.
pub fn fine_timer_slack() {
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// Pins the calling thread (and the threads and processes it starts afterwards) to one CPU,
/// when the machine has more than `cpu`. L1 puts the writer on CPU 0 and the reader on CPU 1,
/// so that the two never share a core (on a two-core machine the scheduler would otherwise
/// sometimes run both on one, and a busy-polling reader would then wait for a time slice).
pub fn pin_to_cpu(cpu: usize) -> bool {
    // Online CPUs, not `available_parallelism` (which counts the CPUs of the affinity mask
    // this process inherited, possibly a single one).
    // SAFETY: sysconf has no memory arguments.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    if cpu >= cpus {
        return false;
    }
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads the set passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Puts the calling thread in the real-time FIFO class at `priority` (threads and processes
/// it starts afterwards inherit it). Used only for L1's busy-polling runs: a busy-polling
/// reader is deployed on a core of its own, and on this shared two-core machine the ordinary
/// scheduler otherwise preempts it for milliseconds at a time. The kernel's real-time
/// throttling (95% by default) still leaves time to everything else. Returns whether it took.
pub fn realtime(priority: i32) -> bool {
    // SAFETY: sched_param is plain data; sched_setscheduler reads it.
    unsafe {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0
    }
}
