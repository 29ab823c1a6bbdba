//! The prevalent store's codec boundary: what happens when bytes do not decode, and that a
//! custom `Codec` is used for every command and snapshot.
//!
//! - a journal record that does not decode as the command type (garbage appended through
//!   `store.journal().append`) makes reopening fail with
//!   `StoreError::Replay(ReplayError::Application { seq, .. })` naming that record's sequence
//!   number, with the codec's decoding error as its source; a snapshot taken after it (so
//!   that restore never replays it) makes the store open again;
//! - a snapshot whose body is well framed (checksums good) but does not decode is rejected
//!   with a reason that says so, and the older snapshot is used;
//! - a custom codec (bincode behind a version byte) round-trips through `open_with_codec`:
//!   every journal record and the snapshot body start with its version byte, and reopening
//!   with it restores the state; reopening with a codec of another version is detected:
//!   replay fails on record 0 when the journal still starts there, and when it was pruned
//!   the error is `NoUsableSnapshot` with the snapshot rejected as not decoding;
//! - a codec that refuses to encode makes `execute` fail with `StoreError::Codec` without
//!   journaling or applying the command, and `snapshot` fail without writing a file.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use std::error::Error as _;

use kekbit::codec::{Bincode, Codec, CodecError};
use kekbit::journal::{Durability, JournalReader};
use kekbit::prevalence::{PrevalentStore, StoreError, StoreOptions};
use kekbit::replay::ReplayError;
use kekbit::snapshot::SnapshotStore;
use prevalence_common::{
    apply_all, execute_checked, snapshot_files, store_options, Counters, Op, Store,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Bytes that are not an `Op`: variant 238 does not exist.
const NOT_AN_OP: [u8; 3] = [0xEE, 0xEE, 0xEE];

/// 4 KiB segments, every command synced.
fn synced_options() -> StoreOptions {
    store_options(4096, Durability::EveryRecord)
}

fn ops(count: u64) -> Vec<Op> {
    (0..count)
        .map(|i| match i % 3 {
            0 => Op::Add {
                key: (i % 4) as u8,
                n: i as u32 + 1,
            },
            1 => Op::Sub {
                key: (i % 4) as u8,
                n: 2,
            },
            _ => Op::Reset { key: 3 },
        })
        .collect()
}

#[test]
fn a_journal_record_that_does_not_decode_fails_the_restore_with_its_sequence() {
    let root = tempfile::tempdir().unwrap();
    let good = ops(7);
    {
        let store = Store::open(root.path(), Counters::new(), synced_options()).unwrap();
        let mut model = Counters::new();
        execute_checked(&store, &mut model, &good[..5]);
        assert_eq!(store.journal().append(&NOT_AN_OP).unwrap(), 5);
        execute_checked(&store, &mut model, &good[5..]);
    }

    let err = Store::open(root.path(), Counters::new(), synced_options()).unwrap_err();
    let message = err.to_string();
    match err {
        StoreError::Replay(ReplayError::Application { seq, source }) => {
            assert_eq!(seq, 5);
            assert!(
                source.to_string().starts_with("decoding failed"),
                "{source}"
            );
            let codec_error = source
                .downcast_ref::<CodecError>()
                .expect("the source is the codec's error");
            assert!(codec_error.source().is_some());
        }
        other => panic!("expected a replay error on record 5, got {other:?}"),
    }
    assert!(message.contains("replaying record 5 failed"), "{message}");

    // The store cannot be opened, but the journal is intact: the record is there, as written.
    let mut reader = JournalReader::open(root.path().join("journal"), 5).unwrap();
    assert_eq!(reader.try_next().unwrap(), Some((5, &NOT_AN_OP[..])));
}

#[test]
fn an_undecodable_record_before_the_snapshot_is_never_replayed() {
    let root = tempfile::tempdir().unwrap();
    let good = ops(6);
    {
        let store = Store::open(root.path(), Counters::new(), synced_options()).unwrap();
        let mut model = Counters::new();
        assert_eq!(store.journal().append(&NOT_AN_OP).unwrap(), 0);
        execute_checked(&store, &mut model, &good[..4]);
        assert_eq!(store.snapshot().unwrap().info.sequence, 5);
        execute_checked(&store, &mut model, &good[4..]);
    }
    let store = Store::open(root.path(), Counters::new(), synced_options()).unwrap();
    assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&good));
    let report = store.recovery_report();
    assert_eq!(report.snapshot.as_ref().map(|s| s.sequence), Some(5));
    assert_eq!(report.records_replayed, 2);
}

#[test]
fn a_snapshot_body_that_does_not_decode_falls_back_to_the_older_snapshot() {
    let root = tempfile::tempdir().unwrap();
    let options = || store_options(4096, Durability::Never).keep_snapshots(2);
    let all = ops(15);
    {
        let store = Store::open(root.path(), Counters::new(), options()).unwrap();
        let mut model = Counters::new();
        execute_checked(&store, &mut model, &all[..5]);
        store.snapshot().unwrap();
        execute_checked(&store, &mut model, &all[5..10]);
        store.snapshot().unwrap();
        execute_checked(&store, &mut model, &all[10..]);
    }
    // Snapshot 10 rewritten with a well-framed body that is not a map of counters.
    let files = snapshot_files(&root.path().join("snapshots"));
    assert_eq!(files.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [10, 5]);
    let rewritten = SnapshotStore::open(root.path().join("snapshots"), 10)
        .unwrap()
        .write(10, &NOT_AN_OP)
        .unwrap();
    assert_eq!(rewritten.path, files[0].1);

    let store = Store::open(root.path(), Counters::new(), options()).unwrap();
    assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&all));
    let report = store.recovery_report();
    assert_eq!(report.snapshot.as_ref().map(|s| s.sequence), Some(5));
    assert_eq!(report.records_replayed, 10);
    assert_eq!(report.snapshots_rejected.len(), 1);
    let rejected = &report.snapshots_rejected[0];
    assert_eq!(rejected.path, files[0].1);
    assert!(
        rejected
            .reason
            .starts_with("the image does not decode: decoding failed"),
        "{}",
        rejected.reason
    );
}

/// Bincode behind a version byte: refuses bytes of another version.
#[derive(Debug, Clone, Copy)]
struct Versioned(u8);

impl Codec for Versioned {
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        out.push(self.0);
        Bincode.encode(value, out)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        match bytes.split_first() {
            Some((&version, rest)) if version == self.0 => Bincode.decode(rest),
            Some((&version, _)) => Err(CodecError::decoding(std::io::Error::other(format!(
                "version {version}, expected {}",
                self.0
            )))),
            None => Err(CodecError::decoding(std::io::Error::other(
                "no version byte",
            ))),
        }
    }
}

type VersionedStore = PrevalentStore<Counters, Op, Versioned>;

#[test]
fn a_custom_codec_round_trips_and_a_mismatched_one_is_detected() {
    let root = tempfile::tempdir().unwrap();
    let open = |version| {
        VersionedStore::open_with_codec(
            root.path(),
            Counters::new(),
            store_options(4096, Durability::Never),
            Versioned(version),
        )
    };
    let all = ops(15);
    {
        let store = open(1).unwrap();
        let mut model = Counters::new();
        execute_checked(&store, &mut model, &all[..10]);
        store.snapshot().unwrap();
        execute_checked(&store, &mut model, &all[10..]);
    }

    // On disk: every record and the snapshot body are the codec's bytes.
    let records: Vec<(u64, Vec<u8>)> = JournalReader::open(root.path().join("journal"), 0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 15);
    for (seq, bytes) in &records {
        let mut expected = Vec::new();
        Versioned(1)
            .encode(&all[*seq as usize], &mut expected)
            .unwrap();
        assert_eq!(bytes, &expected, "record {seq}");
    }
    let snapshots = SnapshotStore::open(root.path().join("snapshots"), 2).unwrap();
    let newest = snapshots.list().unwrap()[0].clone();
    let body = snapshots.read(&newest).unwrap();
    assert_eq!(body[0], 1);
    assert_eq!(
        Versioned(1).decode::<Counters>(&body).unwrap(),
        apply_all(&all[..10])
    );

    // The same codec restores the state.
    {
        let store = open(1).unwrap();
        assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&all));
        let report = store.recovery_report();
        assert_eq!(report.snapshot.as_ref().map(|s| s.sequence), Some(10));
        assert_eq!(report.records_replayed, 5);
        assert!(report.snapshots_rejected.is_empty());
    }

    // Another version: the snapshot does not decode, and neither does record 0.
    let err = open(2).unwrap_err();
    match err {
        StoreError::Replay(ReplayError::Application { seq, source }) => {
            assert_eq!(seq, 0);
            assert!(
                source.to_string().contains("version 1, expected 2"),
                "{source}"
            );
        }
        other => panic!("expected a replay error on record 0, got {other:?}"),
    }
    // With the journal pruned up to the snapshot, its rejection is what the error reports.
    let pruned = tempfile::tempdir().unwrap();
    let open_pruned = |version| {
        let small = store_options(256, Durability::Never)
            .keep_snapshots(1)
            .prune_journal(true);
        VersionedStore::open_with_codec(pruned.path(), Counters::new(), small, Versioned(version))
    };
    {
        let store = open_pruned(1).unwrap();
        for op in ops(30) {
            let _ = store.execute(op).unwrap();
        }
        assert!(store.snapshot().unwrap().segments_pruned > 0);
    }
    let err = open_pruned(2).unwrap_err();
    match err {
        StoreError::NoUsableSnapshot { rejected, .. } => {
            assert_eq!(rejected.len(), 1);
            assert!(
                rejected[0].reason.starts_with("the image does not decode")
                    && rejected[0].reason.contains("version 1, expected 2"),
                "{}",
                rejected[0].reason
            );
        }
        other => panic!("expected NoUsableSnapshot, got {other:?}"),
    }
    let store = open_pruned(1).unwrap();
    assert_eq!(store.query(Counters::clone).unwrap(), apply_all(&ops(30)));
}

/// A codec that refuses to produce more than `max` bytes per value.
#[derive(Debug, Clone, Copy)]
struct Limited {
    max: usize,
}

impl Codec for Limited {
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let start = out.len();
        Bincode.encode(value, out)?;
        if out.len() - start > self.max {
            out.truncate(start);
            return Err(CodecError::encoding(std::io::Error::other(format!(
                "more than {} bytes",
                self.max
            ))));
        }
        Ok(())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Bincode.decode(bytes)
    }
}

#[test]
fn an_encoding_failure_neither_journals_nor_applies_the_command() {
    let root = tempfile::tempdir().unwrap();
    let open = || {
        PrevalentStore::<Counters, Op, Limited>::open_with_codec(
            root.path(),
            Counters::new(),
            synced_options(),
            Limited { max: 3 },
        )
        .unwrap()
    };
    let store = open();
    assert_eq!(store.execute(Op::Add { key: 1, n: 5 }).unwrap(), Ok(5));
    // 1000 takes three bytes as a varint: five bytes in all.
    let err = store.execute(Op::Add { key: 1, n: 1000 }).unwrap_err();
    match &err {
        StoreError::Codec(e) => assert!(e.to_string().starts_with("encoding failed"), "{e}"),
        other => panic!("expected StoreError::Codec, got {other:?}"),
    }
    assert_eq!(store.journal().next_sequence(), 1);
    assert_eq!(store.query(|s| s.get(&1).copied()).unwrap(), Some(5));

    // The state {1: 5} encodes to three bytes; {1: 5, 2: 1} to five: refused.
    assert_eq!(store.execute(Op::Add { key: 2, n: 1 }).unwrap(), Ok(1));
    assert!(matches!(store.snapshot(), Err(StoreError::Codec(_))));
    assert!(snapshot_files(&root.path().join("snapshots")).is_empty());
    drop(store);

    let store = open();
    let expected = apply_all(&[Op::Add { key: 1, n: 5 }, Op::Add { key: 2, n: 1 }]);
    assert_eq!(store.query(Counters::clone).unwrap(), expected);
    assert_eq!(store.recovery_report().records_replayed, 2);
}
