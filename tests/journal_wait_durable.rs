//! Waiting for durability ends: a sequence number not appended yet is refused at once with
//! the number asked and the next one, under every durability policy, instead of a sync loop
//! that never reaches it.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use kekbit::journal::{AppendError, Durability, Journal};

/// Runs `f` on a thread and fails the test if it has not returned within five seconds.
fn within_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .unwrap_or_else(|_| panic!("{what} did not return within 5 s"))
}

#[test]
fn wait_durable_refuses_a_sequence_not_yet_appended() {
    // Regression: issue 11 item 4: wait_durable(seq) beyond the last append never returned.
    for durability in [
        Durability::Never,
        Durability::EveryRecord,
        Durability::EveryN(3),
        Durability::Interval(Duration::from_millis(2)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(
            Journal::options()
                .durability(durability)
                .open(dir.path())
                .unwrap(),
        );
        let theirs = Arc::clone(&journal);
        let empty = within_seconds("wait_durable(0) on an empty journal", move || {
            theirs.wait_durable(0)
        });
        assert!(
            matches!(
                empty,
                Err(AppendError::NotAppended {
                    requested: 0,
                    next: 0,
                    ..
                })
            ),
            "{durability:?}: {empty:?}"
        );
        journal.append(b"zero").unwrap();
        journal.append(b"one").unwrap();
        let theirs = Arc::clone(&journal);
        let beyond = within_seconds("wait_durable(5)", move || theirs.wait_durable(5));
        match beyond {
            Err(e @ AppendError::NotAppended { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("sequence 5") && message.contains("gets 2"),
                    "{message}"
                );
            }
            other => panic!("{durability:?}: {other:?}"),
        }
        let theirs = Arc::clone(&journal);
        let max = within_seconds("wait_durable(u64::MAX)", move || {
            theirs.wait_durable(u64::MAX)
        });
        assert!(
            matches!(max, Err(AppendError::NotAppended { .. })),
            "{max:?}"
        );
        let theirs = Arc::clone(&journal);
        let policy = within_seconds("apply_policy(9)", move || theirs.apply_policy(9));
        assert!(
            matches!(policy, Err(AppendError::NotAppended { .. })),
            "{policy:?}"
        );
        // What was appended still waits and succeeds.
        journal.wait_durable(1).unwrap();
        assert_eq!(journal.durable_count(), 2, "{durability:?}");
    }
}
