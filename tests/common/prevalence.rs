//! Helpers shared by the `prevalence_*`, `replay_*` and `typed_*` tests: a small state
//! machine (a map of counters changed by `Add`, `Sub` and `Reset` commands, some of which
//! fail deterministically) with its model, quickcheck generators for it, and file-level tools
//! to simulate crashes and damage on copies of a store's directory: listing segments, finding
//! record boundaries with `ShmReader`, reading the durable watermark, zeroing or overwriting
//! bytes (some of them those of `common/journal.rs`, included here).
//!
//! Included with `#[path = "common/prevalence.rs"] mod prevalence_common;`. Each test file
//! uses only part of this, hence `dead_code` is allowed.
#![allow(dead_code)]

#[path = "journal.rs"]
mod journal;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kekbit::codec::Codec;
use kekbit::core::{ReadError, Reader, ShmReader};
use kekbit::journal::{Durability, JournalOptions};
use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
use quickcheck::{Arbitrary, Gen};
use serde::{Deserialize, Serialize};

// Each used by some of the tests only.
#[allow(unused_imports)]
pub use journal::{copy_dir, data_area, nonzero_extent, Rng};
use journal::{patch, segment_file, segment_ids, HEADER_LEN};

/// File offset of a segment's live durable watermark.
pub const WATERMARK_OFFSET: u64 = 96;

/// The state: counters by key. A missing key counts as zero.
pub type Counters = BTreeMap<u8, u64>;

/// The store used by most tests.
pub type Store = PrevalentStore<Counters, Op>;

/// A command on [`Counters`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// Adds `n` to `key`'s counter (creating it). Never fails.
    Add { key: u8, n: u32 },
    /// Subtracts `n` from `key`'s counter; fails, changing nothing, if the counter is
    /// smaller than `n`.
    Sub { key: u8, n: u32 },
    /// Removes `key`'s counter; fails, changing nothing, if there is none.
    Reset { key: u8 },
}

impl Command<Counters> for Op {
    type Output = Result<u64, String>;

    fn apply(&self, state: &mut Counters) -> Self::Output {
        step(state, self)
    }
}

/// The model of [`Op::apply`], written separately so that a test compares the store with
/// an independent computation.
pub fn step(state: &mut Counters, op: &Op) -> Result<u64, String> {
    match *op {
        Op::Add { key, n } => {
            let counter = state.entry(key).or_insert(0);
            *counter += u64::from(n);
            Ok(*counter)
        }
        Op::Sub { key, n } => {
            let have = state.get(&key).copied().unwrap_or(0);
            if have < u64::from(n) {
                return Err(format!("counter {key} is {have}, cannot take {n}"));
            }
            state.insert(key, have - u64::from(n));
            Ok(have - u64::from(n))
        }
        Op::Reset { key } => state
            .remove(&key)
            .ok_or_else(|| format!("no counter {key}")),
    }
}

/// The state after applying `ops` in order to an empty map.
pub fn apply_all(ops: &[Op]) -> Counters {
    let mut state = Counters::new();
    for op in ops {
        let _ = step(&mut state, op);
    }
    state
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let key = u8::arbitrary(g) % 4;
        // Mostly small amounts, sometimes large ones (longer varint encodings).
        let n = if u8::arbitrary(g) % 5 == 0 {
            u32::arbitrary(g)
        } else {
            u32::arbitrary(g) % 40
        };
        match u8::arbitrary(g) % 8 {
            0..=3 => Op::Add { key, n },
            4..=6 => Op::Sub { key, n },
            _ => Op::Reset { key },
        }
    }
}

/// Executes `ops` in order on `store`, checking each result against the model: `model` is
/// the state the store is expected to be in, and follows it.
pub fn execute_checked<K: Codec>(
    store: &PrevalentStore<Counters, Op, K>,
    model: &mut Counters,
    ops: &[Op],
) {
    for op in ops {
        let expected = step(model, op);
        assert_eq!(store.execute(op.clone()).unwrap(), expected, "{op:?}");
    }
}

/// `count` commands drawn from `g` (for generators of whole scenarios).
pub fn arbitrary_ops(g: &mut Gen, count: usize) -> Vec<Op> {
    (0..count).map(|_| Op::arbitrary(g)).collect()
}

/// Journal options for tests: `capacity`-byte segments, the given durability.
pub fn journal_options(capacity: u64, durability: Durability) -> JournalOptions {
    JournalOptions::new()
        .segment_capacity(capacity)
        .durability(durability)
}

/// Store options for tests: `capacity`-byte segments, the given durability.
pub fn store_options(capacity: u64, durability: Durability) -> StoreOptions {
    StoreOptions::new().journal(journal_options(capacity, durability))
}

/// The segment files of the journal in `journal_dir` as (id, path), by ascending id.
pub fn segments(journal_dir: &Path) -> Vec<(u64, PathBuf)> {
    segment_ids(journal_dir)
        .into_iter()
        .map(|id| (id, segment_file(journal_dir, id)))
        .collect()
}

/// One record of a segment: where its frame starts in the data area and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordAt {
    /// Data-area offset of the record's header.
    pub start: u64,
    /// The payload.
    pub payload: Vec<u8>,
}

impl RecordAt {
    /// End of the record's meaningful bytes (header and payload, without padding).
    pub fn data_end(&self) -> u64 {
        self.start + 8 + self.payload.len() as u64
    }

    /// End of the record's frame (padded to 8).
    pub fn frame_end(&self) -> u64 {
        (self.data_end()).next_multiple_of(8)
    }
}

/// What reading a segment from its start found.
#[derive(Debug, Clone)]
pub struct SegmentScan {
    /// The segment's first sequence number.
    pub base: u64,
    /// The records, in order.
    pub records: Vec<RecordAt>,
    /// Where reading stopped: the closing marker's offset, or the end of the records.
    pub end: u64,
    /// Whether reading stopped at a closing marker.
    pub sealed: bool,
}

/// Reads the segment at `path` from its start with `ShmReader`, up to its closing marker or
/// the end of its records. Panics on damage: call it on undamaged files.
pub fn scan_segment(path: &Path) -> SegmentScan {
    let mut reader = ShmReader::open(path).unwrap();
    let base = reader.header().base_sequence();
    let mut records = Vec::new();
    loop {
        let start = reader.position();
        match reader.try_read() {
            Ok(Some(payload)) => records.push(RecordAt {
                start,
                payload: payload.to_vec(),
            }),
            Ok(None) => {
                return SegmentScan {
                    base,
                    records,
                    end: start,
                    sealed: false,
                }
            }
            Err(ReadError::Closed { position, .. }) => {
                return SegmentScan {
                    base,
                    records,
                    end: position,
                    sealed: true,
                }
            }
            Err(e) => panic!("{}: unexpected damage: {e}", path.display()),
        }
    }
}

/// The live durable watermark stored in the segment file at `path`.
pub fn durable_watermark(path: &Path) -> u64 {
    let file = fs::File::open(path).unwrap();
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, WATERMARK_OFFSET).unwrap();
    u64::from_le_bytes(word)
}

/// Writes `bytes` into the data area of the segment file at `path`, at data-area offset `at`.
pub fn write_data(path: &Path, at: u64, bytes: &[u8]) {
    patch(path, HEADER_LEN + at, bytes);
}

/// XORs the byte at data-area offset `at` of the segment file at `path` with `mask`
/// (non-zero).
pub fn flip_data_byte(path: &Path, at: u64, mask: u8) {
    assert_ne!(mask, 0);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, HEADER_LEN + at).unwrap();
    byte[0] ^= mask;
    file.write_all_at(&byte, HEADER_LEN + at).unwrap();
}

/// The snapshot files in `snapshot_dir` as (sequence, path), newest first.
pub fn snapshot_files(snapshot_dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut found: Vec<(u64, PathBuf)> = fs::read_dir(snapshot_dir)
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let digits = name.strip_prefix("snapshot-")?.strip_suffix(".ksnap")?;
            if digits.len() != 20 {
                return None;
            }
            Some((digits.parse().ok()?, entry.path()))
        })
        .collect();
    found.sort_by(|a, b| b.cmp(a));
    found
}

/// The name a snapshot covering `[0, sequence)` has.
pub fn snapshot_name(sequence: u64) -> String {
    format!("snapshot-{sequence:020}.ksnap")
}

/// Whether the segment file at `path` has the pending flag (bit 0 of the flags at offset
/// 44): prepared ahead of need, not yet linked.
pub fn is_pending(path: &Path) -> bool {
    let bytes = fs::read(path).unwrap();
    u32::from_le_bytes(bytes[44..48].try_into().unwrap()) & 1 == 1
}

/// Waits until the journal in `journal_dir`, whose writer is alive, has prepared its next
/// segment ahead (the highest segment is pending) and is creating no file (no temporary
/// name), so that a copy of the directory is what a crash would leave. Returns the pending
/// segment's id.
pub fn wait_for_pending_segment(journal_dir: &Path) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let creating = fs::read_dir(journal_dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-"));
        if !creating {
            if let Some((id, path)) = segments(journal_dir).pop() {
                if is_pending(&path) {
                    return id;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "{}: no segment prepared ahead",
            journal_dir.display()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The last linked segment of the journal in `journal_dir` (skipping a pending one prepared
/// ahead), as (id, path).
pub fn last_linked_segment(journal_dir: &Path) -> (u64, PathBuf) {
    segments(journal_dir)
        .into_iter()
        .rev()
        .find(|(_, path)| !is_pending(path))
        .expect("a linked segment")
}
