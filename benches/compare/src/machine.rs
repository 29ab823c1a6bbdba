//! What the report says about the machine and the code measured.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::util::fs_type;

pub struct Machine {
    pub rows: Vec<(String, String)>,
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn cpu_model() -> String {
    let info = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| "unknown".into());
    let mhz = field("cpu MHz")
        .map(|m| format!(", {m} MHz"))
        .unwrap_or_default();
    let flags = field("flags").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    let features: Vec<&str> = ["sse4_2", "pclmulqdq", "avx2", "avx512f"]
        .into_iter()
        .filter(|f| has(f))
        .collect();
    format!("{model}{mhz} (flags: {})", features.join(" "))
}

fn meminfo(key: &str) -> String {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len() + 1..].trim().to_string())
        .unwrap_or_default()
}

pub fn describe(disk: &Path, shm: &Path, repo: &Path, started_rev: &str) -> Machine {
    let mut rows = Vec::new();
    let mut add = |k: &str, v: String| rows.push((k.to_string(), v));
    let nproc = command_output("nproc", &[]).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.to_string())
            .unwrap_or_default()
    });
    add("nproc", nproc);
    add("CPU", cpu_model());
    add(
        "kernel",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
    );
    add("memory", meminfo("MemTotal"));
    add(
        "clock source",
        fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_default()
            .trim()
            .to_string(),
    );
    add(
        "disk folder",
        format!("{} — {}", disk.display(), fs_type(disk)),
    );
    add(
        "memory folder",
        format!("{} — {}", shm.display(), fs_type(shm)),
    );
    let rustc = std::env::var("COMPARE_RUSTC")
        .ok()
        .or_else(|| command_output("rustc", &["-V"]))
        .unwrap_or_else(|| "unknown".into());
    add("rustc", rustc);
    let now = kekbit_revision(repo);
    let measured = if now == started_rev {
        now
    } else {
        format!("{started_rev} when the run started (built then); {now} at its end")
    };
    add("kekbit", measured);
    add(
        "date (UTC)",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M:%S"]).unwrap_or_default(),
    );
    Machine { rows }
}

/// kekbit's git revision, and whether src/ or Cargo.toml differ from it.
pub fn kekbit_revision(repo: &Path) -> String {
    let repo = repo.to_string_lossy();
    let rev = command_output("git", &["-C", &repo, "rev-parse", "--short", "HEAD"])
        .unwrap_or_else(|| "unknown".into());
    let dirty = command_output(
        "git",
        &[
            "-C",
            &repo,
            "status",
            "--porcelain",
            "--",
            "src",
            "Cargo.toml",
        ],
    )
    .map(|s| s.lines().count())
    .unwrap_or(0);
    if dirty == 0 {
        format!("git {rev} (clean)")
    } else {
        format!("git {rev} + {dirty} uncommitted change(s) under src/ or Cargo.toml")
    }
}
