//! One measurement in a process of its own: `--system X --workload Y --dir D ...`. Prints
//! `RESULT key=value ...` on stdout.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::plan::{Plan, LARGE, O1_RECORD, R1_SEGMENT, SEGMENT, SMALL};
use crate::sys::rawmmap::{self, RawMmap};
use crate::sys::{kek, limit::Limit, okay, raft, raftlog, rawfile, Log};
use crate::util::{
    dir_bytes, drop_cache, fine_timer_slack, mono_nanos, pin_to_cpu, realtime, secs, wait_until,
    Args, Dist, Records, XorShift,
};

/// raft-engine's default target file size, used everywhere except R1.
const RAFT_FILE: u64 = 128 << 20;
/// okaywal chunks per entry when building the O1 logs.
const OKAY_O1_PER_ENTRY: u64 = 1024;

type Out = Vec<(String, f64)>;

fn unsupported(system: &str, workload: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("{system} does not take part in {workload}"),
    )
}

/// Runs the measurement at the highest CPU priority (nice -20) and in the real-time I/O
/// class (level 4), so that other work on the machine disturbs it less. Threads and processes
/// started from here inherit both. With the scheduler's autogroups (Linux groups processes by
/// session and shares the CPU between groups, whatever their nice values), nice alone does
/// nothing against other sessions: the worker starts a session of its own, whose group it
/// then gives the same nice value. `--priority normal` leaves all this alone.
fn raise_priority() {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_RT_LEVEL_4: libc::c_long = (1 << 13) | 4;
    // SAFETY: system calls with integer arguments only, on the calling thread/process.
    // Failure (no privilege) leaves the priorities unchanged, which is fine.
    unsafe {
        libc::setsid();
        libc::setpriority(libc::PRIO_PROCESS, 0, -20);
        libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            0 as libc::c_long,
            IOPRIO_RT_LEVEL_4,
        );
    }
    // The new session's scheduling group (absent without CONFIG_SCHED_AUTOGROUP).
    let _ = std::fs::write("/proc/self/autogroup", "-20");
}

pub fn main(args: &Args) -> io::Result<()> {
    if args.get("priority") != Some("normal") {
        raise_priority();
    }
    let out = run(args)?;
    let fields: Vec<String> = out.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("RESULT {}", fields.join(" "));
    io::stdout().flush()
}

fn run(args: &Args) -> io::Result<Out> {
    let system = args.need("system");
    let workload = args.need("workload");
    let plan = Plan::from_flag(args.flag("quick"));
    let dir = PathBuf::from(args.need("dir"));
    match workload {
        "W1" => stream(system, &dir, plan.w1_records, SMALL),
        "W2" => stream(system, &dir, plan.w2_records, LARGE),
        "W3" => durable_serial(system, &dir, plan.w3_records),
        "W4" => durable_concurrent(system, &dir, plan.w4_threads, plan.w4_per_thread),
        "W5" => replay(system, &dir, plan.w1_records),
        "L1" => live_write(system, &dir, &plan, args),
        "L1R" => live_read(system, &dir, args),
        "R1" => rollover_latency(system, &dir, &plan),
        "O1B" => o1_build(system, &dir, args.num("records")),
        "O1" => o1_open(system, &dir, args),
        "W6" => crate::steady::run(system, &dir, plan.w6_bytes),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown workload {other}"),
        )),
    }
}

/// A log of `system` in `dir` for appends, syncing on request (`durable = false`) or every
/// record; `count` records of `size` bytes size the raw mmap logs.
fn open_log(
    system: &str,
    dir: &Path,
    durable: bool,
    count: u64,
    size: usize,
) -> io::Result<Box<dyn Log>> {
    if let Some(variant) = rawmmap::Variant::of(system) {
        let capacity = rawmmap::capacity_for(count, size);
        return Ok(Box::new(RawMmap::create(dir, capacity, variant)?));
    }
    Ok(match system {
        "kekbit" => Box::new(kek::open(dir, SEGMENT, durable)?),
        "kekbit-ahead" if !durable => Box::new(kek::open_prepared(dir, SEGMENT)?),
        "raft-engine" => Box::new(raft::open(dir, RAFT_FILE)?),
        "raft-log" => Box::new(raftlog::open(dir, None)?),
        "raw-file" => Box::new(rawfile::RawFile::create(dir)?),
        "okaywal" if durable => Box::new(okay::Okay {
            wal: okay::open(dir, false)?,
        }),
        _ => return Err(unsupported(system, "this workload")),
    })
}

fn throughput(count: u64, size: usize, took: f64) -> Out {
    vec![
        ("secs".into(), took),
        ("mb_s".into(), count as f64 * size as f64 / took / 1e6),
        ("rec_s".into(), count as f64 / took),
    ]
}

/// W1/W2: `count` appends of `size` bytes, then one sync. The appends are timed apart from
/// the sync; the sync is the durable append of the last record (raft-engine has no other
/// working sync, see `sys::raft`), so every system ends the same way.
fn stream(system: &str, dir: &Path, count: u64, size: usize) -> io::Result<Out> {
    let mut records = Records::new(size);
    let (appended, synced) = match system {
        "limit" => {
            let mut limit = Limit::new(count, size);
            let start = Instant::now();
            for i in 0..count {
                limit.append(records.get(i));
            }
            std::hint::black_box(&limit);
            (start.elapsed(), Duration::ZERO)
        }
        "okaywal" => okay::stream(dir, count, &mut records)?,
        _ => {
            let log = open_log(system, dir, false, count, size)?;
            let start = Instant::now();
            for i in 0..count - 1 {
                log.append(records.get(i))?;
            }
            let appended = start.elapsed();
            log.append_durable(0, records.get(count - 1))?;
            let total = start.elapsed();
            drop(log);
            (appended, total - appended)
        }
    };
    let total = secs(appended + synced);
    let mut out = throughput(count, size, total);
    out.push(("append_secs".into(), secs(appended)));
    out.push(("sync_secs".into(), secs(synced)));
    out.push((
        "append_ns_per_rec".into(),
        secs(appended) * 1e9 / count as f64,
    ));
    out.push(("disk_bytes".into(), dir_bytes(dir) as f64));
    Ok(out)
}

/// The percentiles of `d` (in ns) divided by `unit`, as `p50_{suffix}` etc.
fn latency_out(d: &Dist, unit: f64, suffix: &str) -> Out {
    vec![
        (format!("p50_{suffix}"), d.p50 / unit),
        (format!("p99_{suffix}"), d.p99 / unit),
        (format!("p999_{suffix}"), d.p999 / unit),
        (format!("max_{suffix}"), d.max / unit),
        (format!("mean_{suffix}"), d.mean / unit),
    ]
}

/// W3: durable appends of 128 B one after the other, each timed.
fn durable_serial(system: &str, dir: &Path, count: u64) -> io::Result<Out> {
    let mut records = Records::new(SMALL);
    let log = open_log(system, dir, true, count, SMALL)?;
    let mut nanos = Vec::with_capacity(count as usize);
    let start = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        log.append_durable(0, records.get(i))?;
        nanos.push(t.elapsed().as_nanos() as u64);
    }
    let took = secs(start.elapsed());
    let mut out = latency_out(&Dist::of(&mut nanos), 1e3, "us");
    out.push(("rec_s".into(), count as f64 / took));
    out.push(("secs".into(), took));
    Ok(out)
}

/// W4: `threads` threads each making `per_thread` durable appends of 128 B at once.
fn durable_concurrent(system: &str, dir: &Path, threads: u64, per_thread: u64) -> io::Result<Out> {
    let log: Arc<dyn Log> = Arc::from(open_log(system, dir, true, threads * per_thread, SMALL)?);
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|lane| {
            let log = Arc::clone(&log);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || -> io::Result<Vec<u64>> {
                let mut records = Records::new(SMALL);
                let mut nanos = Vec::with_capacity(per_thread as usize);
                barrier.wait();
                for i in 0..per_thread {
                    let t = Instant::now();
                    log.append_durable(lane, records.get(i))?;
                    nanos.push(t.elapsed().as_nanos() as u64);
                }
                Ok(nanos)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("appending thread panicked")?);
    }
    let took = secs(start.elapsed());
    let total = threads * per_thread;
    let mut out = vec![("rec_s".into(), total as f64 / took), ("secs".into(), took)];
    out.extend(latency_out(&Dist::of(&mut all), 1e3, "us"));
    Ok(out)
}

/// W5: reads W1's log back (`dir` is W1's folder), checking every record.
fn replay(system: &str, dir: &Path, expected: u64) -> io::Result<Out> {
    let records = Records::new(SMALL);
    let (count, took) = if system == "limit" {
        let mut writing = Records::new(SMALL);
        let mut limit = Limit::new(expected, SMALL);
        for i in 0..expected {
            limit.append(writing.get(i));
        }
        let start = Instant::now();
        let n = limit.replay(&records)?;
        (n, start.elapsed())
    } else {
        let start = Instant::now();
        let n = match system {
            "kekbit" => kek::replay(dir, &records)?,
            "okaywal" => okay::replay(dir, records)?,
            "raft-engine" => raft::replay(dir, RAFT_FILE, &records)?,
            "raft-log" => raftlog::replay(dir, &records)?,
            "raw-file" => rawfile::replay(dir, &records)?,
            "raw-mmap" => rawmmap::replay(dir, &records)?,
            _ => return Err(unsupported(system, "W5")),
        };
        (n, start.elapsed())
    };
    if count != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{system} replayed {count} records, {expected} were written"),
        ));
    }
    let mut out = throughput(count, SMALL, secs(took));
    out.push(("records".into(), count as f64));
    Ok(out)
}

/// L1, the writer's side: opens the log, starts the reader process, then appends stamped
/// records at a steady pace (`busy`: one every `l1_busy_gap_ns`; `block`: one every 0.5 to
/// 1.5 ms, so that the reader has gone to sleep in between).
fn live_write(system: &str, dir: &Path, plan: &Plan, args: &Args) -> io::Result<Out> {
    let mode = args.need("mode");
    let (records_n, busy) = match mode {
        "busy" => (plan.l1_busy_records, true),
        "block" => (plan.l1_block_records, false),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mode is busy or block",
            ))
        }
    };
    let total = records_n + plan.l1_warmup;
    // Before the log starts its threads, so that they stay off the reader's CPU too; the
    // reader process inherits the scheduling class.
    let pinned = pin_to_cpu(0);
    let rt = busy && args.get("priority").is_none_or(|p| p == "high") && realtime(10);
    let log: Box<dyn Log> = match system {
        "kekbit" => Box::new(kek::open(dir, SEGMENT, false)?),
        "raw-mmap" if busy => Box::new(RawMmap::create(
            dir,
            rawmmap::capacity_for(total, SMALL),
            rawmmap::Variant::Plain,
        )?),
        _ => return Err(unsupported(system, "L1")),
    };
    let mut reader = Reader(
        Command::new(std::env::current_exe()?)
            .args(["--system", system, "--workload", "L1R", "--mode", mode])
            .arg("--dir")
            .arg(dir)
            .args([
                "--total",
                &total.to_string(),
                "--warmup",
                &plan.l1_warmup.to_string(),
            ])
            .args(["--priority", "normal"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?,
    );
    let stdout = reader.0.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let Some(line) = lines.next() else {
            return Err(io::Error::other(
                "the reader process ended before it was ready",
            ));
        };
        if line?.trim() == "READY" {
            break;
        }
    }
    fine_timer_slack();
    let mut records = Records::new(SMALL);
    let mut rng = XorShift::new(0x9e37_79b9_7f4a_7c15);
    let mut next = mono_nanos() + 1_000_000;
    for i in 0..total {
        wait_until(next);
        log.append(records.stamped(i, mono_nanos()))?;
        next += if busy {
            plan.l1_busy_gap_ns
        } else {
            rng.between(500_000, 1_500_000)
        };
    }
    let mut result = None;
    for line in lines {
        let line = line?;
        if let Some(rest) = line.strip_prefix("RESULT ") {
            result = Some(rest.to_string());
        }
    }
    let status = reader.0.wait()?;
    let Some(result) = result.filter(|_| status.success()) else {
        return Err(io::Error::other(format!(
            "the reader process failed: {status}"
        )));
    };
    let mut out = crate::parse_result(&result);
    out.push(("pinned".into(), if pinned { 1.0 } else { 0.0 }));
    out.push(("realtime".into(), if rt { 1.0 } else { 0.0 }));
    Ok(out)
}

/// L1's reader process, killed and reaped if the writer returns early (on an error): a
/// busy-polling kekbit reader would otherwise poll its CPU for ever.
struct Reader(Child);

impl Drop for Reader {
    fn drop(&mut self) {
        // Once the reader has been waited for, `kill` does nothing and `wait` returns at once.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// L1, the reader's side (its own process).
fn live_read(system: &str, dir: &Path, args: &Args) -> io::Result<Out> {
    let total = args.num("total");
    let warmup = args.num("warmup");
    let busy = args.need("mode") == "busy";
    pin_to_cpu(1);
    let ready = || {
        println!("READY");
        let _ = io::stdout().flush();
    };
    let mut nanos = match system {
        "kekbit" => kek::live_read(dir, total, warmup, busy, ready)?,
        "raw-mmap" if busy => rawmmap::live_read(dir, total, warmup, ready)?,
        _ => return Err(unsupported(system, "L1")),
    };
    let mut out = latency_out(&Dist::of(&mut nanos), 1e3, "us");
    out.push(("samples".into(), (total - warmup) as f64));
    Ok(out)
}

/// R1: append latency with 1 MiB segments (files), rollovers included: `r1_warmup` untimed
/// appends, then `r1_records` timed one by one. No sync.
fn rollover_latency(system: &str, dir: &Path, plan: &Plan) -> io::Result<Out> {
    let log: Box<dyn Log> = match system {
        "kekbit" => Box::new(kek::open(dir, R1_SEGMENT, false)?),
        "raft-engine" => Box::new(raft::open(dir, R1_SEGMENT)?),
        _ => return Err(unsupported(system, "R1")),
    };
    let mut records = Records::new(SMALL);
    for i in 0..plan.r1_warmup {
        log.append(records.get(i))?;
    }
    let mut nanos = vec![0u64; plan.r1_records as usize];
    for (k, slot) in nanos.iter_mut().enumerate() {
        let record = records.get(plan.r1_warmup + k as u64);
        let t = Instant::now();
        log.append(record)?;
        *slot = t.elapsed().as_nanos() as u64;
    }
    let d = Dist::of(&mut nanos);
    let mut out = latency_out(&d, 1.0, "ns");
    out.push(("p999_over_p50".into(), d.p999 / d.p50));
    out.push(("files".into(), std::fs::read_dir(dir)?.count() as f64));
    Ok(out)
}

/// O1, untimed: builds a log of `count` records of 4 KiB in `dir`.
fn o1_build(system: &str, dir: &Path, count: u64) -> io::Result<Out> {
    let mut records = Records::new(O1_RECORD);
    let start = Instant::now();
    match system {
        "okaywal" => okay::build(dir, count, OKAY_O1_PER_ENTRY, &mut records)?,
        "kekbit" | "raft-engine" => {
            let log: Box<dyn Log> = if system == "kekbit" {
                Box::new(kek::open(dir, SEGMENT, false)?)
            } else {
                Box::new(raft::open(dir, RAFT_FILE)?)
            };
            for i in 0..count - 1 {
                log.append(records.get(i))?;
            }
            log.append_durable(0, records.get(count - 1))?;
        }
        _ => return Err(unsupported(system, "O1")),
    }
    Ok(vec![
        ("secs".into(), secs(start.elapsed())),
        ("disk_bytes".into(), dir_bytes(dir) as f64),
        ("records".into(), count as f64),
    ])
}

/// O1: times opening the log in `dir` for appending. kekbit opens a fresh folder (`--farm`)
/// holding hard links to the built segments and a copy of the newest one, so that every
/// round opens the journal exactly as the build left it (an open adds a segment and may
/// write to the newest); the peers are opened in place. `--variant cold` first drops the
/// files' pages from the page cache.
fn o1_open(system: &str, dir: &Path, args: &Args) -> io::Result<Out> {
    let cold = args.need("variant") == "cold";
    if cold {
        drop_cache(dir)?;
    }
    let (took, segments) = match system {
        "kekbit" => {
            let farm = PathBuf::from(args.need("farm"));
            farm_segments(dir, &farm)?;
            if cold {
                drop_cache(&farm)?;
            }
            let (took, segments) = kek::time_open(&farm, SEGMENT)?;
            std::fs::remove_dir_all(&farm)?;
            (took, segments as f64)
        }
        "raft-engine" => (raft::time_open(dir, RAFT_FILE)?, 0.0),
        "okaywal" => (okay::time_open(dir)?, 0.0),
        _ => return Err(unsupported(system, "O1")),
    };
    Ok(vec![
        ("open_ms".into(), secs(took) * 1e3),
        ("segments".into(), segments),
    ])
}

/// Fills the new folder `farm` with the kekbit journal of `dir`, as the build left it: hard
/// links to the older segments, and a copy of the newest, because opening may write to it
/// (recovery records what it made durable). Then commits them to disk.
fn farm_segments(dir: &Path, farm: &Path) -> io::Result<()> {
    std::fs::create_dir_all(farm)?;
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        if name.to_string_lossy().ends_with(".kekbit") {
            names.push(name);
        }
    }
    names.sort();
    let Some((newest, older)) = names.split_last() else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no kekbit segment in {}", dir.display()),
        ));
    };
    for name in older {
        std::fs::hard_link(dir.join(name), farm.join(name))?;
    }
    std::fs::copy(dir.join(newest), farm.join(newest))?;
    // Commit the copy and the links (link counts, the new folder) to disk now, untimed:
    // otherwise the first fsync inside the timed open would commit them, and the large
    // journal (30 files) would pay for the harness.
    crate::util::syncfs(farm);
    Ok(())
}
