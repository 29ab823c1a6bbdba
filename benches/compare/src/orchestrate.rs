//! The comparison run: builds the O1 logs once, then runs the rounds (each round every
//! workload, each workload every system, each system in a fresh process and folder), and
//! writes the raw results, the report and the chart.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::plan::{Plan, O1_RECORD, SEGMENT};
use crate::report;
use crate::sys::kek::records_per_segment;
use crate::util::{fs_type, syncfs, Args};

/// One measurement: one system, one workload (and variant), one round.
#[derive(Debug, Clone)]
pub struct Sample {
    pub round: usize,
    pub workload: String,
    pub variant: String,
    pub system: String,
    pub metrics: BTreeMap<String, f64>,
    pub error: Option<String>,
}

impl Sample {
    pub fn get(&self, metric: &str) -> Option<f64> {
        self.metrics.get(metric).copied()
    }
}

/// Longest a worker may run before it is killed (and reported as failed).
const WORKER_TIMEOUT: Duration = Duration::from_secs(900);

struct Run {
    exe: PathBuf,
    quick: bool,
    samples: Vec<Sample>,
    csv: File,
    disk: PathBuf,
    /// Longest wait for a quiet machine before each group of runs, and what "quiet" means.
    settle: Duration,
    quiet: f64,
    waits: Vec<Wait>,
    wait_budget: Duration,
    /// `--priority` as given (`high`, the default, `nice` or `normal`).
    priority: Option<String>,
}

/// One wait for a quiet machine.
#[derive(Debug, Clone)]
pub struct Wait {
    pub round: usize,
    pub group: String,
    pub waited: Duration,
    pub busy: f64,
}

impl Run {
    /// Waits for the machine to be quiet before a group of runs, and notes the wait.
    fn settle(&mut self, round: usize, group: &str) {
        // A machine that stays busy would otherwise make every group wait in full: the
        // waits of a run share a budget, after which each group only takes a one-second look.
        let spent: Duration = self.waits.iter().map(|w| w.waited).sum();
        let left = self.wait_budget.saturating_sub(spent);
        let (waited, busy) = wait_quiet(self.settle.min(left), self.quiet);
        if waited.as_secs_f64() > 1.5 {
            eprintln!(
                "  waited {:.0} s for a quiet machine before {group}: {:.0}% busy",
                waited.as_secs_f64(),
                busy * 100.0
            );
        }
        self.waits.push(Wait {
            round,
            group: group.into(),
            waited,
            busy,
        });
    }

    /// Runs one worker process and records what it measured (or how it failed); returns
    /// whether it succeeded.
    fn measure(
        &mut self,
        round: usize,
        workload: &str,
        variant: &str,
        system: &str,
        dir: &Path,
        extra: &[String],
    ) -> bool {
        let mut args: Vec<String> = vec![
            "--system".into(),
            system.into(),
            "--workload".into(),
            workload.into(),
            "--dir".into(),
            dir.to_string_lossy().into_owned(),
        ];
        if self.quick {
            args.push("--quick".into());
        }
        if let Some(p) = &self.priority {
            args.extend(["--priority".into(), p.clone()]);
        }
        args.extend(extra.iter().cloned());
        let started = Instant::now();
        let result = run_worker(&self.exe, &args);
        let wall = started.elapsed();
        let mut sample = Sample {
            round,
            workload: workload.into(),
            variant: variant.into(),
            system: system.into(),
            metrics: BTreeMap::new(),
            error: None,
        };
        match result {
            Ok(metrics) => sample.metrics = metrics.into_iter().collect(),
            Err(e) => sample.error = Some(e),
        }
        eprintln!(
            "  [{}] {workload:<3} {variant:<5} {system:<12} {} ({:.1} s)",
            if round == 0 {
                "build".to_string()
            } else {
                format!("round {round}")
            },
            summary(&sample),
            wall.as_secs_f64()
        );
        if let Err(e) = self.write_csv(&sample) {
            eprintln!("warning: writing raw.csv: {e}");
        }
        if dir.starts_with(&self.disk) {
            syncfs(&self.disk);
        }
        let ok = sample.error.is_none();
        self.samples.push(sample);
        ok
    }

    fn write_csv(&mut self, s: &Sample) -> io::Result<()> {
        let mut lines = String::new();
        for (metric, value) in &s.metrics {
            lines.push_str(&format!(
                "{},{},{},{},{},{},\n",
                s.round, s.workload, s.variant, s.system, metric, value
            ));
        }
        if let Some(e) = &s.error {
            let e = e.replace([',', '\n', '"'], " ");
            lines.push_str(&format!(
                "{},{},{},{},error,,{}\n",
                s.round, s.workload, s.variant, s.system, e
            ));
        }
        self.csv.write_all(lines.as_bytes())?;
        self.csv.flush()
    }
}

/// A one-line summary of a sample for the progress output.
fn summary(s: &Sample) -> String {
    if let Some(e) = &s.error {
        return format!("FAILED: {e}");
    }
    let pick = ["mb_s", "p50_us", "p50_ns", "open_ms", "rec_s", "secs"];
    let Some((key, v)) = pick.into_iter().find_map(|k| Some((k, s.get(k)?))) else {
        return String::new();
    };
    let mut text = format!("{key}={v:.3}");
    // With a median latency, its p99 in the same unit.
    if let Some(p99) = key
        .strip_prefix("p50")
        .and_then(|unit| s.get(&format!("p99{unit}")))
    {
        text.push_str(&format!(" p99={p99:.3}"));
    }
    text
}

/// CPU time (busy, total) in clock ticks of the whole machine, from /proc/stat.
fn cpu_ticks() -> (u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// The 1-minute load average.
fn loadavg() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// Share of the machine's CPU time used over `window` (while this process sleeps).
fn machine_busy(window: Duration) -> f64 {
    let (b0, t0) = cpu_ticks();
    std::thread::sleep(window);
    let (b1, t1) = cpu_ticks();
    if t1 > t0 {
        (b1 - b0) as f64 / (t1 - t0) as f64
    } else {
        0.0
    }
}

/// Waits (at most `max`) for a second in which the machine is less than `threshold` busy:
/// other work on the machine (this comparison is often not alone) distorts every figure.
/// Returns the time waited and the last busy share seen.
fn wait_quiet(max: Duration, threshold: f64) -> (Duration, f64) {
    let start = Instant::now();
    loop {
        let busy = machine_busy(Duration::from_secs(1));
        if busy < threshold || start.elapsed() >= max {
            return (start.elapsed(), busy);
        }
    }
}

/// Runs a worker and returns its RESULT, plus two noise figures: `noise_cpu`, the share of
/// the machine's CPU time used by other processes while it ran (the machine's busy time minus
/// the worker's own, from wait4's rusage, which includes the children it waited for), and
/// `loadavg1`.
fn run_worker(exe: &Path, args: &[String]) -> Result<Vec<(String, f64)>, String> {
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the worker: {e}"))?;
    let (busy0, total0) = cpu_ticks();
    let started = Instant::now();
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut result = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("RESULT ") {
                result = Some(rest.to_string());
            }
        }
        result
    });
    let pid = child.id() as libc::pid_t;
    let deadline = Instant::now() + WORKER_TIMEOUT;
    // SAFETY: zeroed rusage is a valid value; wait4 writes into the two locals only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: as above; `pid` is our child, reaped here and nowhere else.
        let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            return Err(format!(
                "waiting for the worker: {}",
                io::Error::last_os_error()
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            // SAFETY: as above.
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            return Err(format!("timed out after {} s", WORKER_TIMEOUT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed().as_secs_f64();
    let (busy1, total1) = cpu_ticks();
    let hz = ticks_per_sec();
    let own = usage.ru_utime.tv_sec as f64
        + usage.ru_utime.tv_usec as f64 / 1e6
        + usage.ru_stime.tv_sec as f64
        + usage.ru_stime.tv_usec as f64 / 1e6;
    let capacity = (total1 - total0) as f64 / hz;
    let foreign = if capacity > 0.0 {
        (((busy1 - busy0) as f64 / hz - own) / capacity).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let result = reader.join().ok().flatten();
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    match (ok, result) {
        (true, Some(r)) => {
            let mut metrics = crate::parse_result(&r);
            metrics.push(("noise_cpu".into(), foreign));
            metrics.push(("loadavg1".into(), loadavg()));
            metrics.push(("worker_secs".into(), wall));
            Ok(metrics)
        }
        (true, None) => Err("no RESULT line".into()),
        (false, _) => Err(format!("worker failed (wait status {status:#x})")),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Systems in the order of this round: rotated by one each round, so that no system always
/// runs first (after a quiet machine) or last.
fn rotated<'a>(systems: &[&'a str], round: usize) -> Vec<&'a str> {
    let mut v = systems.to_vec();
    if !v.is_empty() {
        let k = round % v.len();
        v.rotate_left(k);
    }
    v
}

/// The workloads `--only` accepts.
const WORKLOADS: [&str; 9] = ["W1", "W2", "W3", "W4", "W5", "W6", "L1", "R1", "O1"];
/// The systems of W1 to W5 (W1, W2 and W5 also run the limit probe).
const W_SYSTEMS: [&str; 6] = [
    "kekbit",
    "okaywal",
    "raft-engine",
    "raft-log",
    "raw-file",
    "raw-mmap",
];
/// The systems of W6 (the limit probe on tmpfs only). okaywal has no append without a sync
/// and the raw mapped log no segments: they sit W6 out.
const W6_SYSTEMS: [&str; 5] = ["limit", "kekbit", "raft-engine", "raft-log", "raw-file"];
/// kekbit configured for bursts (W1/W2 only): segments prepared ahead and prefaulted in full.
const KEKBIT_AHEAD: &str = "kekbit-ahead";
/// Experiments, run after the systems of W1/W2 and W3/W4 respectively, in no target: the raw
/// mmap log with its pages mapped before the first append, and with a kekbit-like watermark.
const PREFAULT_EXPERIMENT: &str = "raw-mmap+prefault";
const WATERMARK_EXPERIMENT: &str = "raw-mmap+watermark";

pub fn main(args: &Args, raw_args: &[String]) -> io::Result<()> {
    let quick = args.flag("quick");
    let plan = Plan::from_flag(quick);
    let rounds = args.parsed("rounds", plan.rounds)?;
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out_dir = args
        .get("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("results"));
    fs::create_dir_all(&out_dir)?;
    let only: Option<Vec<String>> = args
        .get("only")
        .map(|s| s.split(',').map(str::to_string).collect());
    if let Some(unknown) = only
        .iter()
        .flatten()
        .find(|w| !WORKLOADS.contains(&w.as_str()))
    {
        return Err(invalid(format!(
            "--only: no workload {unknown} (the workloads: {})",
            WORKLOADS.join(",")
        )));
    }
    let priority = args.get("priority");
    if priority.is_some_and(|p| !["high", "nice", "normal"].contains(&p)) {
        return Err(invalid("--priority is high, nice or normal".into()));
    }
    let wanted = |w: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == w));

    let disk_root = args
        .get("disk-dir")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let disk_tmp = tempfile::Builder::new()
        .prefix("kekbit-compare-")
        .tempdir_in(&disk_root)?;
    let shm_root = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let shm_tmp = tempfile::Builder::new()
        .prefix("kekbit-compare-")
        .tempdir_in(&shm_root)?;
    let disk = disk_tmp.path().to_path_buf();
    let shm = shm_tmp.path().to_path_buf();
    if fs_type(&disk).starts_with("tmpfs") {
        eprintln!(
            "warning: {} is on tmpfs: the durability workloads will not touch a disk",
            disk.display()
        );
    }

    let command = std::env::var("COMPARE_COMMAND").unwrap_or_else(|_| {
        let mut c = vec!["kekbit-compare".to_string()];
        c.extend(raw_args.iter().cloned());
        c.join(" ")
    });
    let csv_path = out_dir.join("raw.csv");
    let mut csv = File::create(&csv_path)?;
    writeln!(csv, "round,workload,variant,system,metric,value,error")?;
    let mut run = Run {
        exe: std::env::current_exe()?,
        quick,
        samples: Vec::new(),
        csv,
        disk: disk.clone(),
        settle: Duration::from_secs(args.parsed("settle", if quick { 2 } else { 20 })?),
        quiet: args.parsed("quiet", 0.3)?,
        waits: Vec::new(),
        wait_budget: Duration::from_secs(if quick { 20 } else { 240 }),
        priority: priority.map(str::to_string),
    };
    let started = Instant::now();
    // The binary was built from the tree as it is now (run.sh builds right before).
    let start_rev = crate::machine::kekbit_revision(&manifest.join("../.."));
    eprintln!(
        "kekbit-compare: {} mode, {rounds} round(s); disk folder {}, memory folder {}",
        if quick { "quick" } else { "full" },
        disk.display(),
        shm.display()
    );

    // O1's logs, built once (untimed) and reused by every round. The large kekbit journal is
    // whole segments followed by the same tail as the small one (see README).
    let per_segment = records_per_segment(SEGMENT, O1_RECORD);
    let small_records = plan.o1_small / O1_RECORD as u64;
    let full_segments = (plan.o1_big - plan.o1_small) / (per_segment * O1_RECORD as u64);
    let big_records = full_segments * per_segment + small_records;
    let o1_systems: Vec<&str> = if plan.o1_peers {
        vec!["kekbit", "raft-engine", "okaywal"]
    } else {
        vec!["kekbit"]
    };
    let mut o1_ready: Vec<(&str, &str, PathBuf)> = Vec::new();
    if wanted("O1") {
        eprintln!("building the O1 logs ({big_records} and {small_records} records of 4 KiB)");
        for system in &o1_systems {
            for (size, records) in [("big", big_records), ("small", small_records)] {
                let dir = disk.join(format!("o1-{system}-{size}"));
                let built = run.measure(
                    0,
                    "O1B",
                    size,
                    system,
                    &dir,
                    &["--records".into(), records.to_string()],
                );
                if built {
                    o1_ready.push((system, size, dir));
                }
            }
        }
    }

    // W1 and W2 run the limit probe and kekbit-ahead too (then the prefault experiment); W5
    // replays the logs of all but kekbit-ahead.
    let mut stream_systems = vec!["limit"];
    stream_systems.extend(W_SYSTEMS);
    let mut with_ahead = stream_systems.clone();
    with_ahead.push(KEKBIT_AHEAD);
    for round in 1..=rounds {
        eprintln!(
            "round {round} of {rounds} ({:.0} s so far)",
            started.elapsed().as_secs_f64()
        );
        // W1's logs by (variant, system), for W5.
        let mut w1_dirs: BTreeMap<(&str, &str), PathBuf> = BTreeMap::new();
        for (workload, keep) in [("W1", true), ("W2", false)] {
            // W5 replays W1's logs: W1 runs whenever either is wanted.
            let needed = wanted(workload) || (workload == "W1" && wanted("W5"));
            if !needed {
                continue;
            }
            for (variant, root) in [("shm", &shm), ("disk", &disk)] {
                run.settle(round, &format!("{workload} {variant}"));
                let mut systems = rotated(&with_ahead, round);
                systems.push(PREFAULT_EXPERIMENT);
                for system in systems {
                    // The limit probe touches no file: run once, reported with tmpfs.
                    if system == "limit" && variant == "disk" {
                        continue;
                    }
                    let dir = root.join(format!("{round}-{workload}-{system}"));
                    let ok = run.measure(round, workload, variant, system, &dir, &[]);
                    let replayed = system != PREFAULT_EXPERIMENT && system != KEKBIT_AHEAD;
                    if keep && ok && replayed {
                        w1_dirs.insert((variant, system), dir);
                    } else {
                        let _ = fs::remove_dir_all(&dir);
                    }
                }
            }
        }
        for workload in ["W3", "W4"] {
            if !wanted(workload) {
                continue;
            }
            run.settle(round, workload);
            let mut systems = rotated(&W_SYSTEMS, round);
            systems.push(WATERMARK_EXPERIMENT);
            for system in systems {
                let dir = disk.join(format!("{round}-{workload}-{system}"));
                run.measure(round, workload, "disk", system, &dir, &[]);
                let _ = fs::remove_dir_all(&dir);
            }
        }
        if wanted("W5") {
            for variant in ["shm", "disk"] {
                run.settle(round, &format!("W5 {variant}"));
                for system in rotated(&stream_systems, round) {
                    if system == "limit" {
                        if variant == "shm" {
                            run.measure(round, "W5", variant, system, &shm, &[]);
                        }
                        continue;
                    }
                    let Some(dir) = w1_dirs.remove(&(variant, system)) else {
                        continue;
                    };
                    run.measure(round, "W5", variant, system, &dir, &[]);
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        for dir in w1_dirs.values() {
            let _ = fs::remove_dir_all(dir);
        }
        if wanted("W6") {
            for (variant, root) in [("shm", &shm), ("disk", &disk)] {
                run.settle(round, &format!("W6 {variant}"));
                for system in rotated(&W6_SYSTEMS, round) {
                    if system == "limit" && variant == "disk" {
                        continue;
                    }
                    let dir = root.join(format!("{round}-W6-{system}"));
                    run.measure(round, "W6", variant, system, &dir, &[]);
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        if wanted("L1") {
            for (mode, systems) in [
                ("busy", vec!["kekbit", "raw-mmap"]),
                ("block", vec!["kekbit"]),
            ] {
                run.settle(round, &format!("L1 {mode}"));
                for system in rotated(&systems, round) {
                    let dir = shm.join(format!("{round}-L1-{mode}-{system}"));
                    run.measure(
                        round,
                        "L1",
                        mode,
                        system,
                        &dir,
                        &["--mode".into(), mode.into()],
                    );
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        if wanted("R1") {
            for (variant, root) in [("shm", &shm), ("disk", &disk)] {
                run.settle(round, &format!("R1 {variant}"));
                for system in rotated(&["kekbit", "raft-engine"], round) {
                    let dir = root.join(format!("{round}-R1-{system}"));
                    run.measure(round, "R1", variant, system, &dir, &[]);
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        if wanted("O1") {
            for variant in ["warm", "cold"] {
                run.settle(round, &format!("O1 {variant}"));
                for system in rotated(&o1_systems, round) {
                    for size in ["big", "small"] {
                        let Some((_, _, dir)) =
                            o1_ready.iter().find(|(s, z, _)| s == &system && *z == size)
                        else {
                            continue;
                        };
                        let farm = disk.join(format!("{round}-O1-{variant}-{system}-{size}"));
                        let extra = [
                            "--variant".to_string(),
                            variant.to_string(),
                            "--farm".to_string(),
                            farm.to_string_lossy().into_owned(),
                        ];
                        let label = format!("{variant}-{size}");
                        run.measure(round, "O1", &label, system, dir, &extra);
                        let _ = fs::remove_dir_all(&farm);
                    }
                }
            }
        }
    }
    let duration = started.elapsed();
    eprintln!(
        "measured in {:.0} s; writing the report",
        duration.as_secs_f64()
    );

    let machine = crate::machine::describe(&disk, &shm, &manifest.join("../.."), &start_rev);
    let context = report::Context {
        plan,
        rounds,
        command,
        duration,
        machine,
        o1_records: (big_records, small_records, full_segments),
        waits: run.waits,
        priority: run.priority.unwrap_or_else(|| "high".into()),
        quiet: run.quiet,
        settle: run.settle,
        wait_budget: run.wait_budget,
    };
    let md = report::markdown(&run.samples, &context);
    fs::write(out_dir.join("REPORT.md"), md)?;
    fs::write(
        out_dir.join("throughput.svg"),
        report::throughput_svg(&run.samples),
    )?;
    eprintln!(
        "wrote {}, {} and {}",
        out_dir.join("REPORT.md").display(),
        csv_path.display(),
        out_dir.join("throughput.svg").display()
    );
    // The temporary folders (and the O1 logs in them) are removed here.
    drop(disk_tmp);
    drop(shm_tmp);
    Ok(())
}
