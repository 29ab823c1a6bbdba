//! The systems compared, behind one small interface where their models agree.

pub mod kek;
pub mod limit;
pub mod okay;
pub mod raft;
pub mod raftlog;
pub mod rawfile;
pub mod rawmmap;

use std::io;

/// The systems, by their command-line names, in the order of the report's tables and chart;
/// the last two are experiments, in no target.
pub const ALL: [&str; 10] = [
    "kekbit",
    "kekbit-ahead",
    "okaywal",
    "raft-engine",
    "raft-log",
    "raw-file",
    "raw-mmap",
    "limit",
    "raw-mmap+prefault",
    "raw-mmap+watermark",
];

/// Appending as the workloads need it.
pub trait Log: Send + Sync {
    /// Appends a record without waiting for durability.
    fn append(&self, record: &[u8]) -> io::Result<()>;
    /// Appends a record and returns once it (and every record before it) is durable.
    /// `lane` is the calling thread's number in W4 (raft-engine gives each its own region,
    /// since a region's indexes must be contiguous); the others ignore it.
    fn append_durable(&self, lane: u64, record: &[u8]) -> io::Result<()>;
}

impl Log for rawfile::RawFile {
    fn append(&self, record: &[u8]) -> io::Result<()> {
        rawfile::RawFile::append(self, record).map(drop)
    }

    fn append_durable(&self, _lane: u64, record: &[u8]) -> io::Result<()> {
        let count = rawfile::RawFile::append(self, record)?;
        self.sync_through(count)
    }
}

impl Log for rawmmap::RawMmap {
    fn append(&self, record: &[u8]) -> io::Result<()> {
        rawmmap::RawMmap::append(self, record).map(drop)
    }

    fn append_durable(&self, _lane: u64, record: &[u8]) -> io::Result<()> {
        let count = rawmmap::RawMmap::append(self, record)?;
        self.sync_through(count)
    }
}
