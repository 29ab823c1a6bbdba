//! raft-log 0.4 (the log store of openraft's author, used by Databend), with its default
//! configuration. Each record is one entry, `(term 1, index)` with index = sequence + 1,
//! appended with `RaftLog::append`. raft-log buffers what is appended in memory until
//! `flush`, which hands it to its worker thread; `flush(true, callback)` makes the worker
//! `write` and `fsync`, then call the callback. A durable append is `append` + `flush(true)`
//! + waiting for the callback; concurrent durable appends (W4) meet in the worker, which
//! syncs once for every flush queued meanwhile (its group commit). `RaftLog` takes `&mut
//! self`, so the handle is behind a mutex, released before waiting for the sync.

use std::io;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use codeq::{Decode, Encode};
use raft_log::api::raft_log_writer::RaftLogWriter;
use raft_log::{Config, RaftLog, Types};

use super::Log;
use crate::util::Records;

/// A record's bytes, stored as its length (u32, little-endian) and the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(pub Vec<u8>);

impl Encode for Payload {
    fn encode<W: io::Write>(&self, mut w: W) -> io::Result<usize> {
        w.write_all(&(self.0.len() as u32).to_le_bytes())?;
        w.write_all(&self.0)?;
        Ok(4 + self.0.len())
    }
}

impl Decode for Payload {
    fn decode<R: io::Read>(mut r: R) -> io::Result<Self> {
        let mut len = [0u8; 4];
        r.read_exact(&mut len)?;
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
        r.read_exact(&mut bytes)?;
        Ok(Payload(bytes))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bench;

impl Types for Bench {
    /// (term, index)
    type LogId = (u64, u64);
    type LogPayload = Payload;
    /// (term, voted for)
    type Vote = (u64, u64);
    type Callback = SyncSender<io::Result<()>>;
    type UserData = u64;

    fn log_index(log_id: &Self::LogId) -> u64 {
        log_id.1
    }

    fn payload_size(payload: &Self::LogPayload) -> u64 {
        payload.0.len() as u64
    }
}

struct Inner {
    log: RaftLog<Bench>,
    /// Index of the next entry.
    next: u64,
}

pub struct RaftLogSys {
    inner: Mutex<Inner>,
}

/// Opens (or creates) the log in `dir`, with raft-log's defaults, or (`chunk`) with chunks
/// (files) of at most that many bytes.
pub fn open(dir: &Path, chunk: Option<u64>) -> io::Result<RaftLogSys> {
    std::fs::create_dir_all(dir)?;
    let mut config = Config::new(dir.to_string_lossy());
    if let Some(bytes) = chunk {
        config.wal.chunk_max_size = Some(bytes as usize);
    }
    let log = RaftLog::open(Arc::new(config))?;
    let next = log.log_state().last().map_or(1, |id: &(u64, u64)| id.1 + 1);
    Ok(RaftLogSys {
        inner: Mutex::new(Inner { log, next }),
    })
}

impl RaftLogSys {
    /// Appends one entry; with `sync`, also asks for a sync and returns the receiver of its
    /// completion (to wait on after releasing the lock).
    fn push(&self, record: &[u8], sync: bool) -> io::Result<Option<Receiver<io::Result<()>>>> {
        let mut inner = self.inner.lock().unwrap();
        let index = inner.next;
        inner.log.append([((1, index), Payload(record.to_vec()))])?;
        inner.next = index + 1;
        if !sync {
            return Ok(None);
        }
        let (tx, rx) = sync_channel(1);
        inner.log.flush(true, Some(tx))?;
        Ok(Some(rx))
    }

    /// Drops every entry before sequence number `keep_from` (`purge`) and hands what was
    /// appended to the worker with a sync, which also removes the chunks purged (raft-log
    /// removes chunks only on a syncing flush). Does not wait for it.
    pub fn retain(&self, keep_from: u64) -> io::Result<()> {
        let mut inner = self.inner.lock().unwrap();
        if keep_from > 0 {
            inner.log.purge((1, keep_from))?;
        }
        inner.log.flush(true, None)
    }
}

fn wait(rx: Receiver<io::Result<()>>) -> io::Result<()> {
    rx.recv()
        .map_err(|_| io::Error::other("raft-log dropped a flush callback"))?
}

impl Log for RaftLogSys {
    #[inline]
    fn append(&self, record: &[u8]) -> io::Result<()> {
        self.push(record, false).map(drop)
    }

    fn append_durable(&self, _lane: u64, record: &[u8]) -> io::Result<()> {
        match self.push(record, true)? {
            Some(rx) => wait(rx),
            None => Ok(()),
        }
    }
}

/// Opens the log (which replays its chunks) and reads every entry back, checking each;
/// returns the count.
pub fn replay(dir: &Path, records: &Records) -> io::Result<u64> {
    let sys = open(dir, None)?;
    let inner = sys.inner.lock().unwrap();
    let Some(last) = inner.log.log_state().last().map(|id: &(u64, u64)| id.1) else {
        return Ok(0);
    };
    let mut count = 0;
    for entry in inner.log.read(1, last + 1) {
        let (_, payload) = entry?;
        records.check(count, &payload.0)?;
        count += 1;
    }
    Ok(count)
}
