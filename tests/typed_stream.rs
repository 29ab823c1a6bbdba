//! `TypedJournal::stream` (feature `async`): decoded values arrive live, in order, across
//! rollovers, pushed by another thread while the stream waits; a record that does not decode
//! is an error naming its index, after which the stream ends; the writer's close ends it too.
#![cfg(feature = "async")]

use std::time::Duration;

use kekbit::journal::{Durability, JournalError, JournalOptions};
use kekbit::typed::{TypedError, TypedJournal};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Trade {
    id: u64,
    symbol: String,
    qty: i32,
}

fn trade(id: u64) -> Trade {
    Trade {
        id,
        symbol: format!("S{}", id % 7),
        qty: id as i32 - 50,
    }
}

#[test]
fn typed_values_stream_live_and_end_at_damage_or_close() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions::new()
        .segment_capacity(4096)
        .max_record_len(256)
        .durability(Durability::Never);
    let trades = TypedJournal::<Trade>::open_with(dir.path(), options).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut stream = trades.stream(0).unwrap();
        let pusher = tokio::task::spawn_blocking(move || {
            for id in 0..1_000 {
                trades.push(&trade(id)).unwrap();
            }
            trades.journal().append(b"\xff\xff not a trade").unwrap();
            trades
        });
        for id in 0..1_000 {
            let got = tokio::time::timeout(Duration::from_secs(20), stream.next()).await;
            assert_eq!(got.unwrap().unwrap().unwrap(), (id, trade(id)));
        }
        let bad = stream.next().await.unwrap();
        assert!(
            matches!(bad, Err(TypedError::Decode { seq: 1_000, .. })),
            "{bad:?}"
        );
        assert!(stream.next().await.is_none(), "ended after the error");

        let trades = pusher.await.unwrap();
        let mut from_end = trades.stream(1_001).unwrap();
        drop(trades);
        let closed = from_end.next().await.unwrap();
        assert!(
            matches!(
                closed,
                Err(TypedError::Journal(JournalError::WriterClosed {
                    next: 1_001,
                    ..
                }))
            ),
            "{closed:?}"
        );
    });
}
