//! kekbit's journal, used as its README shows.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use kekbit::core::{RECORD_ALIGN, RECORD_HEADER_LEN, TRAILER_RESERVE};
use kekbit::journal::{Durability, Journal, JournalReader, Prefault};

use super::Log;
use crate::util::{OneWay, Records};

pub struct Kek {
    journal: Journal,
    every_record: bool,
}

/// Segments prepared ahead by the `kekbit-ahead` configuration: 512 MiB with 64 MiB segments,
/// more than W1 and W2 write.
pub const AHEAD: usize = 8;

/// Opens the journal in `dir` as [`open`] does, with [`AHEAD`] segments prepared ahead and
/// prefaulted in full (`Prefault::Whole`), and waits for them (`Journal::warm_up`), as a
/// service would before it takes traffic. Untimed, like every open outside O1.
pub fn open_prepared(dir: &Path, segment: u64) -> io::Result<Kek> {
    let journal = options(segment, false)
        .segments_ahead(AHEAD)
        .prefault(Prefault::Whole)
        .open(dir)
        .map_err(io::Error::other)?;
    journal.warm_up().map_err(io::Error::other)?;
    Ok(Kek {
        journal,
        every_record: false,
    })
}

fn options(segment: u64, durable: bool) -> kekbit::journal::JournalOptions {
    let durability = if durable {
        Durability::EveryRecord
    } else {
        Durability::Never
    };
    Journal::options()
        .segment_capacity(segment)
        .max_record_len(4096)
        .durability(durability)
}

/// Opens (or creates) the journal in `dir`: segments of `segment` bytes, records of at most
/// 4 KiB, syncing every record (`durable`) or only when asked (`Durability::Never`).
pub fn open(dir: &Path, segment: u64, durable: bool) -> io::Result<Kek> {
    let journal = options(segment, durable)
        .open(dir)
        .map_err(io::Error::other)?;
    Ok(Kek {
        journal,
        every_record: durable,
    })
}

impl Log for Kek {
    #[inline]
    fn append(&self, record: &[u8]) -> io::Result<()> {
        self.journal
            .append(record)
            .map(drop)
            .map_err(io::Error::other)
    }

    fn append_durable(&self, _lane: u64, record: &[u8]) -> io::Result<()> {
        // Under EveryRecord, `append` returns once the record is durable (group commit).
        self.journal.append(record).map_err(io::Error::other)?;
        if !self.every_record {
            self.journal.sync().map_err(io::Error::other)?;
        }
        Ok(())
    }
}

impl Kek {
    /// Drops the records before sequence number `keep_from` (whole segments, which become
    /// the next segments when recycling is on, as it is by default).
    pub fn retain(&self, keep_from: u64) -> io::Result<()> {
        self.journal
            .prune_before(keep_from)
            .map(drop)
            .map_err(io::Error::other)
    }
}

/// Reads the journal from sequence number 0, checking every record; returns the count.
pub fn replay(dir: &Path, records: &Records) -> io::Result<u64> {
    let mut reader = JournalReader::open(dir, 0).map_err(io::Error::other)?;
    let mut count = 0;
    while let Some((seq, record)) = reader.try_next().map_err(io::Error::other)? {
        if seq != count {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "sequence gap"));
        }
        records.check(seq, record)?;
        count += 1;
    }
    Ok(count)
}

/// The live reader of L1: reads `total` records as they arrive, busy-polling `try_next`
/// (`busy`) or blocking in `next_timeout`, and returns the one-way latencies (ns) of those
/// after the first `warmup`.
pub fn live_read(
    dir: &Path,
    total: u64,
    warmup: u64,
    busy: bool,
    ready: impl FnOnce(),
) -> io::Result<Vec<u64>> {
    let mut reader = JournalReader::open(dir, 0).map_err(io::Error::other)?;
    ready();
    let mut one_way = OneWay::new(total, warmup);
    while !one_way.done() {
        let next = if busy {
            reader.try_next().map_err(io::Error::other)?
        } else {
            reader
                .next_timeout(Duration::from_secs(10))
                .map_err(io::Error::other)?
        };
        let Some((_, record)) = next else {
            if busy {
                std::hint::spin_loop();
                continue;
            }
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no record for 10 s",
            ));
        };
        one_way.arrived(record);
    }
    Ok(one_way.into_nanos())
}

/// Records of `size` bytes that fill one segment of `segment` bytes exactly.
pub fn records_per_segment(segment: u64, size: usize) -> u64 {
    let frame = (RECORD_HEADER_LEN as u64 + size as u64).next_multiple_of(RECORD_ALIGN);
    (segment - TRAILER_RESERVE) / frame
}

/// Times opening the journal in `dir` for appending (the journal is closed afterwards,
/// untimed). Returns the time and the number of segment files it found.
pub fn time_open(dir: &Path, segment: u64) -> io::Result<(Duration, usize)> {
    let start = Instant::now();
    let kek = open(dir, segment, false)?;
    let took = start.elapsed();
    let segments = kek.journal.open_report().segments;
    drop(kek);
    Ok((took, segments))
}
