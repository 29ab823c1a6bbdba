//! kekbit's background threads (segment preparation, prefaulting, interval flushing) start
//! with the policy and CPU affinity of the thread that opens the journal. When that thread
//! is a real-time writer (`SCHED_FIFO`), the helpers must not stay real-time: on the
//! writer's CPU, with its priority, they would keep it off the CPU for as long as they
//! reserve or prefault a segment (milliseconds). Checked: with a writer pinned to one CPU
//! under `SCHED_FIFO`, every kekbit thread of the process (the journal's helper, the
//! prefaulting threads of the active segment and of those prepared ahead, the interval
//! flusher) runs under `SCHED_OTHER`, and the appends complete.
//!
//! Needs the privilege to use `SCHED_FIFO` (root or `CAP_SYS_NICE`, as in CI); without it
//! the test says so and checks nothing.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use kekbit::journal::{Durability, Journal};

/// The kekbit threads of this process, as (thread id, name, scheduling policy).
fn kekbit_threads() -> Vec<(i32, String, i32)> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc/self/task").unwrap() {
        let entry = entry.unwrap();
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(name) = fs::read_to_string(entry.path().join("comm")) else {
            continue; // the thread ended meanwhile
        };
        let name = name.trim().to_string();
        if name.starts_with("kekbit-") {
            // SAFETY: a plain system call on a thread id; an id that went away yields -1.
            let policy = unsafe { libc::sched_getscheduler(tid) };
            if policy >= 0 {
                found.push((tid, name, policy));
            }
        }
    }
    found
}

/// Makes the calling thread `SCHED_FIFO` at `priority`, pinned to CPU 0; false if not
/// allowed.
fn become_realtime(priority: i32) -> bool {
    // SAFETY: system calls on the calling thread with valid, initialized arguments.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return false;
        }
        let param = libc::sched_param {
            sched_priority: priority,
        };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0
    }
}

#[test]
fn background_threads_of_a_realtime_writer_are_time_shared() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let checked = thread::spawn(move || {
        if !become_realtime(10) {
            eprintln!("SKIPPED: SCHED_FIFO is not allowed here (needs CAP_SYS_NICE)");
            return false;
        }
        // Segments larger than the 16 MiB prefaulting window, so that prefaulting threads
        // stay (parked) for the active segment and the ones prepared ahead.
        let journal = Journal::options()
            .segment_capacity(32 << 20)
            .max_record_len(1024)
            .segments_ahead(2)
            .durability(Durability::Interval(Duration::from_millis(5)))
            .open(&path)
            .unwrap();
        journal.warm_up().unwrap();
        for seq in 0..1_000u64 {
            assert_eq!(journal.append(&[seq as u8; 1000]).unwrap(), seq);
        }
        journal.warm_up().unwrap();
        // A thread demotes itself as it starts: give the newest ones a moment to run.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let threads = kekbit_threads();
            let names: Vec<&str> = threads.iter().map(|t| t.1.as_str()).collect();
            let all_there = ["kekbit-journal", "kekbit-pretouch", "kekbit-flusher"]
                .iter()
                .all(|n| names.contains(n));
            let realtime: Vec<_> = threads
                .iter()
                .filter(|t| t.2 != libc::SCHED_OTHER)
                .collect();
            if all_there && realtime.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kekbit threads still real-time: {realtime:?} (all: {threads:?})"
            );
            thread::sleep(Duration::from_millis(10));
        }
        drop(journal);
        true
    })
    .join()
    .unwrap();
    if checked {
        let journal = Journal::open(dir.path()).unwrap();
        assert_eq!(journal.next_sequence(), 1_000);
    }
}
