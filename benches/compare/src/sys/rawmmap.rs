//! The raw memory-mapped log: one file, reserved in full with `fallocate` and mapped shared
//! (no prefaulting: the first store to each page takes a page fault); records framed like
//! kekbit's (8-byte header word: u32 length, u32 CRC32 of the payload; padded to 8 bytes).
//! The writer copies the payload, then publishes the header word with a release store, so a
//! reader in another process can poll it. A sync is `msync(MS_SYNC)` of the pages written
//! since the last one. Concurrent durable appends share syncs through the leader-based group
//! commit of [`crate::commit`].

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use memmap2::{MmapOptions, MmapRaw};

use crate::commit::GroupCommit;
use crate::util::{OneWay, Records};

const FILE: &str = "raw.mmap";
const PAGE: usize = 4096;

struct Inner {
    position: usize,
    appended: u64,
}

/// The raw mmap log as compared, or one of its two experiments (in no target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `raw-mmap`.
    Plain,
    /// `raw-mmap+watermark`: records start after a header page, and each sync covers
    /// `[0, end)` then stores the synced length into the header page, as kekbit does with its
    /// durable watermark.
    Watermark,
    /// `raw-mmap+prefault`: every page mapped writable before the first append, untimed.
    Prefault,
}

impl Variant {
    /// The variant a system name stands for, if it is one of the raw mmap logs.
    pub fn of(system: &str) -> Option<Variant> {
        match system {
            "raw-mmap" => Some(Variant::Plain),
            "raw-mmap+watermark" => Some(Variant::Watermark),
            "raw-mmap+prefault" => Some(Variant::Prefault),
            _ => None,
        }
    }
}

pub struct RawMmap {
    map: MmapRaw,
    /// [`Variant::Watermark`].
    watermark: bool,
    inner: Mutex<Inner>,
    /// Byte offset up to which the file is known synced.
    synced: Mutex<usize>,
    commit: GroupCommit,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Bytes `count` records of `size` bytes occupy, with room to spare.
pub fn capacity_for(count: u64, size: usize) -> usize {
    let frame = (8 + size).next_multiple_of(8);
    (count as usize * frame + (1 << 20)).next_multiple_of(PAGE)
}

impl RawMmap {
    pub fn create(dir: &Path, capacity: usize, variant: Variant) -> io::Result<RawMmap> {
        std::fs::create_dir_all(dir)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path(dir))?;
        // SAFETY: plain system call on an open descriptor.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, capacity as libc::off_t) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        let map = MmapOptions::new().len(capacity).map_raw(&file)?;
        if variant == Variant::Prefault {
            map.advise_range(memmap2::Advice::PopulateWrite, 0, capacity)?;
        }
        let watermark = variant == Variant::Watermark;
        Ok(RawMmap {
            map,
            watermark,
            inner: Mutex::new(Inner {
                position: if watermark { PAGE } else { 0 },
                appended: 0,
            }),
            synced: Mutex::new(0),
            commit: GroupCommit::default(),
        })
    }

    /// Appends one record; returns how many records the log holds now.
    #[inline]
    pub fn append(&self, record: &[u8]) -> io::Result<u64> {
        let crc = crc32fast::hash(record);
        let frame = (8 + record.len()).next_multiple_of(8);
        let mut inner = self.inner.lock().unwrap();
        let at = inner.position;
        if at + frame + 8 > self.map.len() {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "raw mmap log is full",
            ));
        }
        // SAFETY: `[at, at + frame)` is inside the mapping (checked above); only this writer
        // (holding the lock) writes there, and readers look at the payload only after they
        // have acquired the non-zero header word stored below.
        unsafe {
            let base = self.map.as_mut_ptr().add(at);
            std::ptr::copy_nonoverlapping(record.as_ptr(), base.add(8), record.len());
            let word = u64::from(record.len() as u32) | (u64::from(crc) << 32);
            AtomicU64::from_ptr(base.cast::<u64>()).store(word.to_le(), Ordering::Release);
        }
        inner.position = at + frame;
        inner.appended += 1;
        Ok(inner.appended)
    }

    /// Returns once the first `count` records are durable (group commit).
    pub fn sync_through(&self, count: u64) -> io::Result<()> {
        self.commit.through(count, || {
            let (end, upto) = {
                let inner = self.inner.lock().unwrap();
                (inner.position, inner.appended)
            };
            let mut synced = self.synced.lock().unwrap();
            let start = if self.watermark {
                0
            } else {
                *synced / PAGE * PAGE
            };
            if end > start {
                self.map.flush_range(start, end - start)?;
            }
            if self.watermark {
                // SAFETY: offset 8 is inside the header page, 8-aligned, written only here
                // (by the sync leader) and only atomically.
                unsafe {
                    let word = self.map.as_mut_ptr().add(8).cast::<u64>();
                    AtomicU64::from_ptr(word).store((end as u64).to_le(), Ordering::Release);
                }
            }
            *synced = end;
            Ok(upto)
        })
    }
}

/// A read-only view of a raw mmap log, for replays and for the live reader of L1.
pub struct View {
    map: MmapRaw,
    position: usize,
}

impl View {
    pub fn open(dir: &Path) -> io::Result<View> {
        let file = File::open(path(dir))?;
        let map = MmapOptions::new().map_raw_read_only(&file)?;
        Ok(View { map, position: 0 })
    }

    /// The next record, `Ok(None)` at the end of the published data, an error on a CRC
    /// mismatch.
    #[inline]
    pub fn next(&mut self) -> io::Result<Option<&[u8]>> {
        let at = self.position;
        if at + 8 > self.map.len() {
            return Ok(None);
        }
        // SAFETY: the word is inside the mapping and 8-aligned (frames are multiples of 8 and
        // the mapping is page-aligned); the writer stores it atomically.
        let word = unsafe {
            let ptr = self.map.as_ptr().add(at).cast_mut().cast::<u64>();
            u64::from_le(AtomicU64::from_ptr(ptr).load(Ordering::Acquire))
        };
        if word == 0 {
            return Ok(None);
        }
        let len = (word as u32) as usize;
        let crc = (word >> 32) as u32;
        if at + 8 + len > self.map.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record past the end",
            ));
        }
        // SAFETY: inside the mapping (checked above); published bytes never change again.
        let payload = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(at + 8), len) };
        if crc32fast::hash(payload) != crc {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "CRC mismatch"));
        }
        self.position = at + (8 + len).next_multiple_of(8);
        Ok(Some(payload))
    }
}

/// Reads the log back, checking every record's CRC and content; returns the record count.
pub fn replay(dir: &Path, records: &Records) -> io::Result<u64> {
    let mut view = View::open(dir)?;
    let mut count = 0u64;
    while let Some(record) = view.next()? {
        records.check(count, record)?;
        count += 1;
    }
    Ok(count)
}

/// The live reader of L1 (busy-polling only): reads `total` records as they arrive and
/// returns the one-way latencies (ns) of those after the first `warmup`. Gives up after 300 s
/// without the writer.
pub fn live_read(
    dir: &Path,
    total: u64,
    warmup: u64,
    ready: impl FnOnce(),
) -> io::Result<Vec<u64>> {
    let mut view = View::open(dir)?;
    ready();
    let mut one_way = OneWay::new(total, warmup);
    let give_up = Instant::now() + Duration::from_secs(300);
    let mut polls = 0u64;
    while !one_way.done() {
        match view.next()? {
            Some(record) => one_way.arrived(record),
            None => {
                polls += 1;
                if polls.is_multiple_of(1 << 20) && Instant::now() > give_up {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "writer gone"));
                }
                std::hint::spin_loop();
            }
        }
    }
    Ok(one_way.into_nanos())
}
