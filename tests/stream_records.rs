//! `JournalStream` (feature `async`): a stream follows a writer across rollovers and a
//! prune, wakes for records written by another process, ends with `WriterGone` when that
//! process is killed while streams wait and with `WriterClosed` when the writer closes,
//! honours "durable only", and survives cancelled waits (a dropped `next` future loses no
//! record). Every wait is bounded by a timeout, so a lost wake-up fails instead of hanging.
#![cfg(feature = "async")]

#[path = "common/journal.rs"]
mod journal_common;

use std::time::Duration;

use journal_common::{child_dir, open_small, record, spawn_child, tell_parent};
use kekbit::journal::{Durability, Journal, JournalError};
use kekbit::stream::JournalStream;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The next item of `stream`, which must come within [`LIMIT`].
async fn next(stream: &mut JournalStream) -> Result<(u64, Vec<u8>), JournalError> {
    match timeout(LIMIT, stream.next()).await {
        Ok(Some(item)) => item.map(|(seq, record)| (seq, record.to_vec())),
        Ok(None) => panic!("the stream ended without an error"),
        Err(_) => panic!("no item within {LIMIT:?} at {}", stream.next_sequence()),
    }
}

#[test]
fn a_stream_follows_rollovers_and_a_prune_live() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_small(dir.path());
    let mut stream = JournalStream::open(dir.path(), 0).unwrap();
    runtime().block_on(async move {
        let count = 3_000u64;
        let writer = tokio::task::spawn_blocking(move || {
            for seq in 0..count {
                assert_eq!(journal.append(&record(seq)).unwrap(), seq);
                if seq % 500 == 499 {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            journal
        });
        // Read the first quarter live, then let the writer finish and prune the first half
        // under the stream.
        for seq in 0..count / 4 {
            assert_eq!(next(&mut stream).await.unwrap(), (seq, record(seq)));
        }
        let journal = writer.await.unwrap();
        let pruned = journal.prune_before(count / 2).unwrap();
        assert!(pruned.segments_removed > 10, "{pruned:?}");
        // The stream stood in a pruned segment: it finishes it, then finds the next one gone.
        let mut seq = count / 4;
        let err = loop {
            match next(&mut stream).await {
                Ok(item) => {
                    assert_eq!(item, (seq, record(seq)));
                    seq += 1;
                }
                Err(e) => break e,
            }
        };
        assert!(matches!(err, JournalError::Pruned { .. }), "{err}");
        assert!(
            seq > count / 4 && seq < pruned.first_sequence,
            "ended at {seq}"
        );
        // A stream from what is held crosses every remaining rollover, then ends at the close.
        let mut stream = JournalStream::open(dir.path(), pruned.first_sequence).unwrap();
        for seq in pruned.first_sequence..count {
            assert_eq!(next(&mut stream).await.unwrap(), (seq, record(seq)));
        }
        drop(journal);
        let closed = next(&mut stream).await.unwrap_err();
        assert!(matches!(closed, JournalError::WriterClosed { next, .. } if next == count));
        assert!(stream.next().await.is_none(), "ended after the error");
    });
}

#[test]
fn a_durable_only_stream_waits_for_the_sync() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    runtime().block_on(async move {
        let mut stream = JournalStream::open(dir.path(), 0).unwrap();
        stream.set_durable_only(true);
        journal.append(b"pending").unwrap();
        let early = timeout(Duration::from_millis(200), stream.next()).await;
        assert!(early.is_err(), "yielded a record not durable yet");
        let syncing = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(50));
            journal.sync().unwrap();
            journal
        });
        assert_eq!(next(&mut stream).await.unwrap(), (0, b"pending".to_vec()));
        drop(syncing.await.unwrap());
    });
}

#[test]
fn a_cancelled_wait_loses_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open_small(dir.path());
    runtime().block_on(async move {
        let mut stream = JournalStream::open(dir.path(), 0).unwrap();
        for round in 0..20u64 {
            // A wait cancelled before anything came (its future dropped while pending).
            assert!(timeout(Duration::from_millis(5), stream.next())
                .await
                .is_err());
            journal.append(&record(round)).unwrap();
            assert_eq!(next(&mut stream).await.unwrap(), (round, record(round)));
        }
        // Many streams of one journal, some dropped while they wait.
        let mut streams: Vec<JournalStream> = (0..8)
            .map(|_| JournalStream::open(dir.path(), 20).unwrap())
            .collect();
        for stream in &mut streams[..4] {
            assert!(timeout(Duration::from_millis(5), stream.next())
                .await
                .is_err());
        }
        streams.truncate(4);
        journal.append(&record(20)).unwrap();
        for stream in &mut streams {
            assert_eq!(next(stream).await.unwrap(), (20, record(20)));
        }
    });
}

const CHILD: &str = "child_writer_appends_then_waits_to_be_killed";

/// Child entry point; does nothing in an ordinary test run.
#[test]
fn child_writer_appends_then_waits_to_be_killed() {
    let Some(dir) = child_dir() else { return };
    let journal = open_small(&dir);
    tell_parent("open");
    for seq in 0..100 {
        journal.append(&record(seq)).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    tell_parent("appended");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn streams_wake_for_another_process_and_end_when_it_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(CHILD, dir.path(), &[]);
    assert_eq!(child.expect_line(LIMIT, "open"), "open");
    runtime().block_on(async {
        let mut streams: Vec<JournalStream> = (0..4)
            .map(|_| JournalStream::open(dir.path(), 0).unwrap())
            .collect();
        for seq in 0..100 {
            for stream in &mut streams {
                assert_eq!(next(stream).await.unwrap(), (seq, record(seq)));
            }
        }
        assert_eq!(child.expect_line(LIMIT, "appended"), "appended");
        // Every stream now waits; the writer dies.
        let waiting: Vec<_> = streams
            .into_iter()
            .map(|mut stream| tokio::spawn(async move { next(&mut stream).await }))
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        child.kill();
        for task in waiting {
            let ended = task.await.unwrap().unwrap_err();
            assert!(
                matches!(ended, JournalError::WriterGone { next: 100, .. }),
                "{ended}"
            );
        }
    });
}
