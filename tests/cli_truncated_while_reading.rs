#![cfg(feature = "cli")]
//! `kekbit verify`, `dump` and `stats` survive another process truncating a segment while they
//! read it: they read segments with `pread` into memory instead of mapping them, so a segment
//! shrinking under them is an error or a stale answer, never a death by SIGBUS. A thread cuts
//! the journal's one large segment to 0 bytes and writes it back, in a loop, while each
//! command runs again and again; no run may end by a signal or a panic.

#[path = "common/cli.rs"]
mod cli_common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cli_common::*;
use kekbit::journal::{Durability, Journal};

const RUNS: usize = 8;

#[test]
fn read_only_commands_survive_a_segment_truncated_under_them() {
    // Regression: issue 11 item 11: verify and dump died of SIGBUS (exit 135) on a truncated segment.
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(4 << 20)
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    let record = [0x5Au8; 200];
    while journal.next_sequence() < 18_000 {
        journal.append(&record).unwrap();
    }
    journal.sync().unwrap();
    drop(journal);
    let path = dir
        .path()
        .join(format!("{:016x}.kekbit", segment_ids(dir.path())[0]));
    let bytes = fs::read(&path).unwrap();

    let done = AtomicBool::new(false);
    let cuts = AtomicU64::new(0);
    let runs = std::thread::scope(|s| {
        s.spawn(|| {
            let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut pause = 1;
            while !done.load(Ordering::Relaxed) {
                // Whole for a while (a command opens it then), then cut (while it reads).
                pause = pause % 7 + 1;
                std::thread::sleep(Duration::from_millis(pause));
                file.set_len(0).unwrap();
                cuts.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(300));
                file.write_all_at(&bytes, 0).unwrap();
            }
        });
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            for sub in ["verify", "dump", "stats"] {
                runs.push(run(sub, dir.path(), &[]));
            }
        }
        done.store(true, Ordering::Relaxed);
        runs
    });
    println!("{} runs, {} cuts", runs.len(), cuts.load(Ordering::Relaxed));
    for run in &runs {
        assert_eq!(
            run.status.signal(),
            None,
            "killed by a signal: {}",
            run.describe()
        );
        assert_no_panic(run);
    }
}
