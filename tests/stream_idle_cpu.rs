//! 100 streams waiting on a journal whose writer is idle cost (almost) no CPU: no polling
//! and no thread per stream. The process's CPU time over the idle period (the sum over its
//! threads of /proc/self/task/*/schedstat's time on CPU, in nanoseconds) stays under 1% of
//! one core. The default run idles 1 s; `idle_streams_for_ten_seconds` (ignored: run it with
//! `cargo test --features async --test stream_idle_cpu -- --ignored`) idles 10 s. Then one
//! append wakes every stream.
#![cfg(feature = "async")]

use std::time::{Duration, Instant};

use kekbit::journal::{Durability, Journal};
use kekbit::stream::JournalStream;

/// Nanoseconds this process's threads have run on a CPU.
fn cpu_time() -> u64 {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn idle_streams(idle: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (spent, woken) = runtime.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let mut stream = JournalStream::open(dir.path(), 0).unwrap();
                tokio::spawn(async move { stream.next().await.map(|item| item.unwrap().0) })
            })
            .collect();
        // Let every task reach its wait.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (cpu, wall) = (cpu_time(), Instant::now());
        tokio::time::sleep(idle).await;
        let spent = (cpu_time() - cpu) as f64 / wall.elapsed().as_nanos() as f64;
        journal.append(b"wake up").unwrap();
        let mut woken = 0;
        for task in tasks {
            let got = tokio::time::timeout(Duration::from_secs(10), task).await;
            assert_eq!(got.expect("a stream was not woken").unwrap(), Some(0));
            woken += 1;
        }
        (spent, woken)
    });
    eprintln!(
        "100 idle streams for {idle:?}: {:.3}% of a core",
        spent * 100.0
    );
    assert_eq!(woken, 100);
    assert!(
        spent < 0.01,
        "idle streams used {:.2}% of a core",
        spent * 100.0
    );
}

#[test]
fn idle_streams_use_no_cpu() {
    idle_streams(Duration::from_secs(1));
}

#[test]
#[ignore = "10 s: run with --ignored"]
fn idle_streams_for_ten_seconds() {
    idle_streams(Duration::from_secs(10));
}
