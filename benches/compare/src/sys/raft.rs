//! raft-engine 0.4, without its default features and with compression off. Each record is
//! one protobuf entry (`BytesValue`) in its own `LogBatch`, written with `Engine::write`.
//!
//! `Engine::sync()` in 0.4.2 is `write(&mut LogBatch::default(), true)`, and `write` returns
//! at once for an empty batch, so it syncs nothing. A durable append is therefore
//! `write(batch, true)`, and the streams make their last record durable that way.

use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protobuf::well_known_types::BytesValue;
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize};

use super::Log;
use crate::util::Records;

/// Records are entries of region 1 (of region `lane + 1` in W4) with index = sequence + 1.
#[derive(Clone)]
pub struct Entries;

impl MessageExt for Entries {
    type Entry = BytesValue;

    fn index(entry: &BytesValue) -> u64 {
        u64::from_le_bytes(entry.value[..8].try_into().unwrap()) + 1
    }
}

fn config(dir: &Path, file_size: u64) -> Config {
    Config {
        dir: dir.to_string_lossy().into_owned(),
        target_file_size: ReadableSize(file_size),
        purge_threshold: ReadableSize((10u64 << 30).max(file_size * 2)),
        // Compression off: batches are never compressed.
        batch_compression_threshold: ReadableSize(0),
        ..Config::default()
    }
}

struct Scratch {
    batch: LogBatch,
    entry: BytesValue,
}

pub struct Raft {
    engine: Engine,
    scratch: Mutex<Scratch>,
}

pub fn open(dir: &Path, file_size: u64) -> io::Result<Raft> {
    open_config(config(dir, file_size))
}

/// As [`open`], with files purged once the log holds more than `purge` bytes (W6's
/// retention; otherwise only past 10 GiB).
pub fn open_with_purge(dir: &Path, file_size: u64, purge: u64) -> io::Result<Raft> {
    let mut config = config(dir, file_size);
    config.purge_threshold = ReadableSize(purge);
    open_config(config)
}

fn open_config(config: Config) -> io::Result<Raft> {
    let engine = Engine::open(config).map_err(io::Error::other)?;
    Ok(Raft {
        engine,
        scratch: Mutex::new(Scratch {
            batch: LogBatch::default(),
            entry: BytesValue::new(),
        }),
    })
}

impl Raft {
    fn write(&self, region: u64, record: &[u8], sync: bool) -> io::Result<()> {
        let mut scratch = self.scratch.lock().unwrap();
        let Scratch { batch, entry } = &mut *scratch;
        entry.value.clear();
        entry.value.extend_from_slice(record);
        batch
            .add_entries::<Entries>(region, std::slice::from_ref(entry))
            .map_err(io::Error::other)?;
        // `write` drains the batch, which is then reused.
        self.engine
            .write(batch, sync)
            .map(drop)
            .map_err(io::Error::other)
    }
}

impl Raft {
    /// Drops the entries of region 1 before sequence number `keep_from` (`compact_to`), then
    /// lets the engine remove the files that hold nothing needed (`purge_expired_files`).
    pub fn retain(&self, keep_from: u64) -> io::Result<()> {
        self.engine.compact_to(1, keep_from + 1);
        self.engine
            .purge_expired_files()
            .map(drop)
            .map_err(io::Error::other)
    }
}

impl Log for Raft {
    #[inline]
    fn append(&self, record: &[u8]) -> io::Result<()> {
        self.write(1, record, false)
    }

    fn append_durable(&self, lane: u64, record: &[u8]) -> io::Result<()> {
        // A batch of its own per call, so that concurrent threads meet in raft-engine's
        // write group (its group commit), not on a lock of ours.
        let mut entry = BytesValue::new();
        entry.value = record.to_vec();
        let mut batch = LogBatch::default();
        batch
            .add_entries::<Entries>(lane + 1, std::slice::from_ref(&entry))
            .map_err(io::Error::other)?;
        self.engine
            .write(&mut batch, true)
            .map(drop)
            .map_err(io::Error::other)
    }
}

/// Opens the engine (which replays every log file into its memory tables) and reads every
/// entry of region 1 back, checking each; returns the count.
pub fn replay(dir: &Path, file_size: u64, records: &Records) -> io::Result<u64> {
    let raft = open(dir, file_size)?;
    let engine = &raft.engine;
    let (Some(first), Some(last)) = (engine.first_index(1), engine.last_index(1)) else {
        return Ok(0);
    };
    let mut count = 0;
    let mut entries = Vec::with_capacity(8192);
    let mut begin = first;
    while begin <= last {
        let end = (begin + 8192).min(last + 1);
        entries.clear();
        engine
            .fetch_entries_to::<Entries>(1, begin, end, None, &mut entries)
            .map_err(io::Error::other)?;
        for e in &entries {
            records.check(count, &e.value)?;
            count += 1;
        }
        begin = end;
    }
    Ok(count)
}

/// Times opening the engine in `dir` (its replay included); closed afterwards, untimed.
pub fn time_open(dir: &Path, file_size: u64) -> io::Result<Duration> {
    let start = Instant::now();
    let raft = open(dir, file_size)?;
    let took = start.elapsed();
    drop(raft);
    Ok(took)
}
