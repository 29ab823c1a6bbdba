//! W6, the steady state of a long-running log with retention: records of 128 B through
//! segments (files) of 64 MiB while everything older than the newest 256 MiB of records is
//! dropped, every [`RETAIN_EVERY`] appends, in the appending thread (each system's own
//! retention call: kekbit `prune_before`, raft-engine `compact_to` + `purge_expired_files`,
//! raft-log `purge` + a syncing `flush`, which is when it removes chunks, the raw file log
//! deleting its oldest files). The first half of the stream fills the retention window; the
//! figure is the throughput of the second half, which ends with one sync (the last record's
//! durable append), as W1 does. Its size is `--w6-mib` (default: the plan's).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::plan::{SMALL, W6_RETAIN, W6_SEGMENT};
use crate::sys::rawfile::{write_frame, BUFFER};
use crate::sys::{kek, limit::Limit, raft, raftlog, Log};
use crate::util::{dir_bytes, secs, Records};

/// Appends between two retention calls (about 8.5 MiB of 128 B records).
pub const RETAIN_EVERY: u64 = 1 << 16;

/// Bytes each 128 B record takes in every log here (8-byte header, payload padded to 8).
const FRAME: u64 = (8 + SMALL as u64).next_multiple_of(8);

/// What W6 needs of a system beyond appending.
trait Steady {
    fn append(&mut self, record: &[u8]) -> io::Result<()>;
    /// Drops what comes before sequence number `keep_from` (as much as the system can).
    fn retain(&mut self, keep_from: u64) -> io::Result<()>;
    /// Makes everything appended durable.
    fn finish(&mut self, record: &[u8]) -> io::Result<()>;
}

/// A [`Log`] whose retention is `retain`.
struct Retaining<L, F> {
    log: L,
    retain: F,
}

impl<L: Log, F: FnMut(&L, u64) -> io::Result<()>> Steady for Retaining<L, F> {
    #[inline]
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        self.log.append(record)
    }

    fn retain(&mut self, keep_from: u64) -> io::Result<()> {
        (self.retain)(&self.log, keep_from)
    }

    fn finish(&mut self, record: &[u8]) -> io::Result<()> {
        self.log.append_durable(0, record)
    }
}

impl Steady for Limit {
    #[inline]
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        Limit::append(self, record);
        Ok(())
    }

    fn retain(&mut self, _keep_from: u64) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self, record: &[u8]) -> io::Result<()> {
        Limit::append(self, record);
        std::hint::black_box(&*self);
        Ok(())
    }
}

/// The raw file log cut into files of [`W6_SEGMENT`] bytes; retention deletes whole files.
struct RawFiles {
    dir: PathBuf,
    /// The retained files, oldest first: first sequence number, path, handle.
    files: VecDeque<(u64, PathBuf, File)>,
    out: BufWriter<File>,
    in_file: u64,
    next_seq: u64,
}

impl RawFiles {
    fn create(dir: &Path) -> io::Result<RawFiles> {
        std::fs::create_dir_all(dir)?;
        let mut files = VecDeque::new();
        let out = Self::new_file(dir, 0, &mut files)?;
        Ok(RawFiles {
            dir: dir.to_path_buf(),
            files,
            out,
            in_file: 0,
            next_seq: 0,
        })
    }

    fn new_file(
        dir: &Path,
        first: u64,
        files: &mut VecDeque<(u64, PathBuf, File)>,
    ) -> io::Result<BufWriter<File>> {
        let path = dir.join(format!("raw-{first:020}.log"));
        let file = File::create(&path)?;
        files.push_back((first, path, file.try_clone()?));
        Ok(BufWriter::with_capacity(BUFFER, file))
    }
}

impl Steady for RawFiles {
    #[inline]
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        if self.in_file + FRAME > W6_SEGMENT {
            self.out.flush()?;
            self.out = Self::new_file(&self.dir, self.next_seq, &mut self.files)?;
            self.in_file = 0;
        }
        self.in_file += write_frame(&mut self.out, record)?;
        self.next_seq += 1;
        Ok(())
    }

    fn retain(&mut self, keep_from: u64) -> io::Result<()> {
        // A file can go once the next one starts at or before `keep_from`.
        while self.files.len() > 1 && self.files[1].0 <= keep_from {
            if let Some((_, path, _)) = self.files.pop_front() {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, record: &[u8]) -> io::Result<()> {
        self.append(record)?;
        self.out.flush()?;
        for (_, _, file) in &self.files {
            file.sync_data()?;
        }
        File::open(&self.dir)?.sync_all()
    }
}

fn open(system: &str, dir: &Path) -> io::Result<Box<dyn Steady>> {
    Ok(match system {
        "limit" => Box::new(Limit::new(W6_SEGMENT / FRAME, SMALL)),
        "kekbit" => Box::new(Retaining {
            log: kek::open(dir, W6_SEGMENT, false)?,
            retain: |k: &kek::Kek, keep_from| k.retain(keep_from),
        }),
        "raft-engine" => Box::new(Retaining {
            log: raft::open_with_purge(dir, W6_SEGMENT, W6_RETAIN)?,
            retain: |r: &raft::Raft, keep_from| r.retain(keep_from),
        }),
        "raft-log" => Box::new(Retaining {
            log: raftlog::open(dir, Some(W6_SEGMENT))?,
            retain: |r: &raftlog::RaftLogSys, keep_from| r.retain(keep_from),
        }),
        "raw-file" => Box::new(RawFiles::create(dir)?),
        other => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("{other} does not take part in W6"),
            ))
        }
    })
}

/// W6: `bytes` of 128 B records (counted in frames of 136 bytes) with retention.
pub fn run(system: &str, dir: &Path, bytes: u64) -> io::Result<Vec<(String, f64)>> {
    let mut records = Records::new(SMALL);
    let total = (bytes / FRAME).max(2);
    let retained = W6_RETAIN / FRAME;
    let mut log = open(system, dir)?;
    let half = total / 2;
    let mut started = Instant::now();
    for seq in 0..total - 1 {
        if seq == half {
            started = Instant::now();
        }
        log.append(records.get(seq))?;
        if seq % RETAIN_EVERY == RETAIN_EVERY - 1 && seq + 1 > retained {
            log.retain(seq + 1 - retained)?;
        }
    }
    log.finish(records.get(total - 1))?;
    let took = secs(started.elapsed());
    let timed = total - half;
    let disk = dir_bytes(dir);
    drop(log);
    Ok(vec![
        ("secs".into(), took),
        ("rec_s".into(), timed as f64 / took),
        ("mb_s".into(), timed as f64 * SMALL as f64 / took / 1e6),
        ("records".into(), total as f64),
        ("disk_bytes".into(), disk as f64),
    ])
}
