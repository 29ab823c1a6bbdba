//! okaywal 0.3. An entry is okaywal's unit of atomicity and durability: `commit` returns
//! once the entry is synced (it has no way to append without syncing). A stream of records
//! with one sync at the end is therefore one entry with one chunk per record, committed at
//! the end; a durable append is an entry of one chunk.

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use okaywal::{
    Configuration, Entry, EntryId, LogManager, ReadChunkResult, SegmentReader, WriteAheadLog,
};

use super::Log;
use crate::util::Records;

/// The log manager: reads every recovered chunk to its end and checks its CRC (okaywal's
/// CRC32C), and with `verify` (W5) its content too. Reading every chunk is not optional: a
/// manager that leaves chunks unread corrupts the log in okaywal 0.3.1, which then skips them
/// itself but skips each chunk's CRC twice (`EntryChunk::skip_remaining_bytes`, then its
/// `Drop`), takes the next chunk for an aborted entry and ends the log's valid length there,
/// so the next append overwrites committed entries. So O1 times an open that reads every
/// chunk.
struct Manager {
    verify: Option<Records>,
    recovered: Arc<AtomicU64>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Manager")
    }
}

impl LogManager for Manager {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        loop {
            match entry.read_chunk()? {
                ReadChunkResult::Chunk(mut chunk) => {
                    let data = chunk.read_all()?;
                    if !chunk.check_crc()? {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "CRC mismatch"));
                    }
                    let n = self.recovered.load(Ordering::Relaxed);
                    if let Some(records) = &self.verify {
                        records.check(n, &data)?;
                    }
                    self.recovered.store(n + 1, Ordering::Relaxed);
                }
                ReadChunkResult::EndOfEntry => return Ok(()),
                ReadChunkResult::AbortedEntry => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "aborted entry"))
                }
            }
        }
    }

    fn checkpoint_to(
        &mut self,
        _last_checkpointed_id: EntryId,
        _checkpointed_entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        // The benchmark keeps no state beyond the log.
        Ok(())
    }
}

/// The configuration: okaywal's defaults, or (`keep`) with checkpointing off, so that what
/// was written stays in the log for a replay (W1/W2 then W5, O1).
fn config(dir: &Path, keep: bool) -> Configuration {
    let config = Configuration::default_for(dir);
    if keep {
        config.checkpoint_after_bytes(u64::MAX)
    } else {
        config
    }
}

pub fn open(dir: &Path, keep: bool) -> io::Result<WriteAheadLog> {
    config(dir, keep).open(Manager {
        verify: None,
        recovered: Arc::default(),
    })
}

/// W1/W2: `count` records as chunks of one entry, then the commit (the sync). Returns the
/// time of the appends and of the commit.
pub fn stream(dir: &Path, count: u64, records: &mut Records) -> io::Result<(Duration, Duration)> {
    let wal = open(dir, true)?;
    let start = Instant::now();
    let mut entry = wal.begin_entry()?;
    for i in 0..count {
        entry.write_chunk(records.get(i))?;
    }
    let appended = start.elapsed();
    entry.commit()?;
    let total = start.elapsed();
    wal.shutdown()?;
    Ok((appended, total - appended))
}

/// Builds a log of `count` records in entries of `per_entry` chunks (O1).
pub fn build(dir: &Path, count: u64, per_entry: u64, records: &mut Records) -> io::Result<()> {
    let wal = open(dir, true)?;
    let mut i = 0;
    while i < count {
        let mut entry = wal.begin_entry()?;
        let end = (i + per_entry).min(count);
        while i < end {
            entry.write_chunk(records.get(i))?;
            i += 1;
        }
        entry.commit()?;
    }
    wal.shutdown()
}

/// W5: opens the log with a manager that reads and checks every chunk; returns the count.
pub fn replay(dir: &Path, records: Records) -> io::Result<u64> {
    let recovered = Arc::new(AtomicU64::new(0));
    let wal = config(dir, true).open(Manager {
        verify: Some(records),
        recovered: Arc::clone(&recovered),
    })?;
    let n = recovered.load(Ordering::Relaxed);
    wal.shutdown()?;
    Ok(n)
}

/// O1: times opening the log: okaywal reads every entry to find the end, and the manager
/// reads every chunk (see [`Manager`] for why it must).
pub fn time_open(dir: &Path) -> io::Result<Duration> {
    let start = Instant::now();
    let wal = open(dir, true)?;
    let took = start.elapsed();
    wal.shutdown()?;
    Ok(took)
}

/// Durable appends: one entry of one chunk per record, committed (synced) before returning.
pub struct Okay {
    pub wal: WriteAheadLog,
}

impl Log for Okay {
    fn append(&self, _record: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "okaywal has no append without a sync",
        ))
    }

    fn append_durable(&self, _lane: u64, record: &[u8]) -> io::Result<()> {
        let mut entry = self.wal.begin_entry()?;
        entry.write_chunk(record)?;
        entry.commit().map(drop)
    }
}
