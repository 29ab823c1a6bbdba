//! The raw file log: `std::fs::File` behind a 64 KiB `BufWriter`, records framed like
//! kekbit's (8-byte header: u32 length, u32 CRC32 of the payload; padded to 8 bytes), and a
//! sync that flushes the buffer and calls `fdatasync` (`File::sync_data`). No preallocation:
//! the file grows with each write. Concurrent durable appends share syncs through the
//! leader-based group commit of [`crate::commit`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::commit::GroupCommit;
use crate::util::Records;

const FILE: &str = "raw.log";
pub const BUFFER: usize = 64 << 10;
const PAD: [u8; 8] = [0; 8];

struct Inner {
    out: BufWriter<File>,
    appended: u64,
}

/// Writes `record` framed: u32 length, u32 CRC32, the payload, zeros to a multiple of 8.
/// Returns the frame's length.
#[inline]
pub fn write_frame(out: &mut impl Write, record: &[u8]) -> io::Result<u64> {
    let crc = crc32fast::hash(record);
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
    header[4..].copy_from_slice(&crc.to_le_bytes());
    let pad = (8 - record.len() % 8) % 8;
    out.write_all(&header)?;
    out.write_all(record)?;
    out.write_all(&PAD[..pad])?;
    Ok((8 + record.len() + pad) as u64)
}

pub struct RawFile {
    inner: Mutex<Inner>,
    /// A second handle on the same file, to sync without holding the append lock.
    sync_fd: File,
    commit: GroupCommit,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

impl RawFile {
    pub fn create(dir: &Path) -> io::Result<RawFile> {
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(path(dir))?;
        // The new name must survive a crash too, as it does for the journals.
        File::open(dir)?.sync_all()?;
        Ok(RawFile {
            sync_fd: file.try_clone()?,
            inner: Mutex::new(Inner {
                out: BufWriter::with_capacity(BUFFER, file),
                appended: 0,
            }),
            commit: GroupCommit::default(),
        })
    }

    /// Appends one record; returns how many records the log holds now.
    #[inline]
    pub fn append(&self, record: &[u8]) -> io::Result<u64> {
        let mut inner = self.inner.lock().unwrap();
        write_frame(&mut inner.out, record)?;
        inner.appended += 1;
        Ok(inner.appended)
    }

    /// Returns once the first `count` records are durable (group commit).
    pub fn sync_through(&self, count: u64) -> io::Result<()> {
        self.commit.through(count, || {
            let upto = {
                let mut inner = self.inner.lock().unwrap();
                inner.out.flush()?;
                inner.appended
            };
            self.sync_fd.sync_data()?;
            Ok(upto)
        })
    }
}

/// Reads the log back, checking every record's CRC and content; returns the record count.
pub fn replay(dir: &Path, records: &Records) -> io::Result<u64> {
    let mut input = BufReader::with_capacity(BUFFER, File::open(path(dir))?);
    let mut payload = Vec::new();
    let mut count = 0u64;
    loop {
        let mut header = [0u8; 8];
        match input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
        let padded = len.next_multiple_of(8);
        payload.resize(padded, 0);
        input.read_exact(&mut payload)?;
        if crc32fast::hash(&payload[..len]) != crc {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "CRC mismatch"));
        }
        records.check(count, &payload[..len])?;
        count += 1;
    }
    Ok(count)
}
