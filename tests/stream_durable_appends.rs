//! Durable appends as futures (feature `async`): 64 tasks on a two-thread runtime each await
//! 20 durable appends; every future resolves to its own sequence number, the numbers are
//! gapless, and each record is durable when its future resolves. A future dropped without
//! being polled (cancelled) leaves its record appended, and it becomes durable. Waiting for
//! an earlier append (`durable`) works under `Durability::Never`, and a sequence number not
//! appended yet resolves to `NotAppended`.
#![cfg(feature = "async")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kekbit::journal::{AppendError, Durability, Journal};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn many_tasks_await_durable_appends() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(Journal::open(dir.path()).unwrap());
    let seqs = runtime().block_on(async {
        let tasks: Vec<_> = (0..64u32)
            .map(|task| {
                let journal = Arc::clone(&journal);
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for i in 0..20u32 {
                        let record = [task.to_le_bytes(), i.to_le_bytes()].concat();
                        let seq = journal.append_durable(&record).await.unwrap();
                        assert!(journal.durable_count() > seq, "resolved before durable");
                        mine.push(seq);
                    }
                    mine
                })
            })
            .collect();
        let mut all = BTreeSet::new();
        for task in tasks {
            let mine = tokio::time::timeout(Duration::from_secs(60), task)
                .await
                .expect("durable appends resolve")
                .unwrap();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "a task's appends in order"
            );
            all.extend(mine);
        }
        all
    });
    assert_eq!(seqs.len(), 64 * 20);
    assert_eq!(
        seqs.iter().copied().collect::<Vec<_>>(),
        (0..64 * 20).collect::<Vec<u64>>()
    );
}

#[test]
fn a_cancelled_future_does_not_cancel_the_append() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    runtime().block_on(async {
        drop(journal.append_durable(b"cancelled"));
        assert_eq!(
            journal.next_sequence(),
            1,
            "appended when the future was made"
        );
        // The record still becomes durable (the journal's syncer serves its callback).
        let seq = journal.append_durable(b"awaited").await.unwrap();
        assert_eq!(seq, 1);
        assert!(journal.durable_count() >= 2);
        assert_eq!(journal.durable(0).await.unwrap(), 0);
        match journal.durable(9).await {
            Err(AppendError::NotAppended {
                requested: 9,
                next: 2,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    });
    let mut reader = journal.reader(0).unwrap();
    assert_eq!(reader.try_next().unwrap(), Some((0, &b"cancelled"[..])));
}
