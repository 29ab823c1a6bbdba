//! Prefaulting the writer's pages ahead of it, on a background thread.
//!
//! A store to a page of a shared file mapping that is not yet mapped writable costs a page
//! fault (allocation, zeroing, file-system block mapping) on the append path. A helper thread
//! asks the kernel to populate the pages in a window ahead of the writer
//! (`MADV_POPULATE_WRITE`), which maps them without touching their bytes, so it cannot race
//! with the writer or with readers. Best effort: where the kernel refuses, the thread stops
//! and the writer takes the faults itself.
//!
//! One thread maps pages at a bounded rate (about one 4 KiB page per microsecond on the
//! virtual machines we measured, so about 4 GB/s): a writer streaming large records can
//! overtake it. Callers that can pay the faults ahead of time use `ShmWriter::prefault`.
//!
//! Writing back ahead: while syncs keep up with the writer (the durable watermark moved
//! since the helper last looked, and trails the writer by at most [`KEEP_UP`]), the helper
//! also writes the zero pages up to [`WRITE_AHEAD`] ahead of the writer back to the device
//! (`sync_file_range`, through a file it opens for that alone), and populates them again.
//! A channel's blocks are reserved with `fallocate`, which ext4 records as unwritten
//! extents: the first writeback of a block converts its extent, and a sync that has to wait
//! for the conversion also writes the inode (a second write to the device, in series). Done
//! ahead, a chunk of 256 KiB at a time, each sync of a few records writes its data and
//! flushes the device's cache, and no more (docs/PERFORMANCE.md, "Streams"). Nothing is made
//! durable by it and nothing depends on it; a writer that does not sync, or syncs seldom,
//! gets no writeback ahead (every block would be written twice), and wakes its helper every
//! 2 MiB instead of every 256 KiB (each wake-up is a system call on the appending thread).
//!
//! Writing back behind: a writer that does not sync, or syncs seldom, has the helper hand
//! the pages it has moved past to writeback, [`BEHIND`] at a time (`MADV_DONTNEED` on the
//! writer's mapping for the range, then `sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does
//! not wait). The device then writes a stream's data while it is appended rather than all
//! at its next sync (a stream of 128 MiB with one sync at the end spent as long in that sync
//! as in its appends), the kernel's dirty pages stay few, and a sync has only the last few
//! MiB left to write. Not on a file kept in memory (tmpfs), where there is nothing to write.
//! As with the writeback ahead, nothing is made durable by it and nothing depends on it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use super::header::{HEADER_LEN, OFF_DURABLE_WATERMARK};
use crate::fault::{self, IoOp};
use crate::mmap::{self, Populator};

/// Bytes populated per call, and how far the writer moves between wake-ups of the helper
/// while it writes pages back ahead.
const CHUNK: u64 = 256 << 10;
/// How far the writer moves between wake-ups of the helper while syncs do not keep up (a
/// writer that does not sync): only populating is left to do, which a quarter of the window
/// at a time does as well, for an eighth of the wake-ups. Each wake-up is a system call on
/// the appending thread (3% of its time in a tmpfs stream when it woke every `CHUNK`).
const IDLE_SIGNAL: u64 = 2 << 20;
/// Looks at the durable watermark that must find it still before the helper asks to be
/// woken every [`IDLE_SIGNAL`] bytes only.
const STILL_LOOKS: u32 = 2;
/// How far ahead of the writer the window reaches by default.
pub(crate) const AHEAD: u64 = 16 << 20;
/// How far ahead of the writer the helper writes pages back while syncs keep up.
const WRITE_AHEAD: u64 = 512 << 10;
/// Syncs keep up when the durable watermark trails the writer by at most this much.
const KEEP_UP: u64 = 256 << 10;
/// Where the writeback ahead starts, past the page the writer is in, and where the
/// writeback behind ends, before it.
const MARGIN: u64 = 64 << 10;
/// How much the writer moves past the pages handed to writeback behind before the next are.
const BEHIND: u64 = 4 << 20;
/// How far into its channel the writer wakes its helper the first time: early, so that a
/// writer that syncs gets its writeback ahead from near the start (the helper compares the
/// durable watermark with the one it saw at its first pass, when it started), rather than
/// after a `CHUNK`. The first pass itself never writes back: a segment closed after a few
/// records would have its unused space split into more extents (a block of the extent tree
/// each, see `journal_space`) before the close releases it.
const FIRST_LOOK: u64 = 16 << 10;

struct Shared {
    writer_at: AtomicU64,
    stop: AtomicBool,
    armed: AtomicBool,
    /// How far the writer moves between wake-ups: [`CHUNK`] while the helper may write back
    /// ahead, more once syncs do not keep up (set by the helper, read by the writer).
    signal_every: AtomicU64,
    /// How many times the helper has looked at the writer's position (for tests).
    looks: AtomicU64,
    /// Mapping offset up to which the helper wrote pages back ahead (for tests).
    written_back: AtomicU64,
}

/// The running helper; stops and joins it when dropped.
pub(crate) struct Pretoucher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    next_signal: u64,
}

impl Pretoucher {
    /// Starts populating `[from, end)` of the mapping, staying up to `window` bytes ahead of
    /// the offset last passed to [`advance`](Pretoucher::advance). Unless `armed`, the thread
    /// waits for [`arm`](Pretoucher::arm) before it populates anything (a segment prepared
    /// ahead of need gets its thread then, but no pages before it is used). `None` if no
    /// thread could be started (the writer then simply takes its own page faults). `path`
    /// names the channel's file, for the writeback ahead.
    pub(crate) fn start(
        populator: Populator,
        path: PathBuf,
        from: u64,
        end: u64,
        window: u64,
        armed: bool,
        behind: bool,
    ) -> Option<Pretoucher> {
        let shared = Arc::new(Shared {
            // A new channel's writer starts at the data area (pages up to `from` were
            // populated when it was made); it tells the helper from there on, for the
            // writeback ahead.
            writer_at: AtomicU64::new(HEADER_LEN as u64),
            stop: AtomicBool::new(false),
            armed: AtomicBool::new(armed),
            signal_every: AtomicU64::new(CHUNK),
            looks: AtomicU64::new(0),
            written_back: AtomicU64::new(0),
        });
        let theirs = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("kekbit-pretouch".into())
            .spawn(move || {
                let mut ahead = WriteAhead::new(path, behind);
                run(&populator, &mut ahead, &theirs, from, end, window);
            })
            .ok()?;
        Some(Pretoucher {
            shared,
            thread: Some(thread),
            next_signal: HEADER_LEN as u64 + FIRST_LOOK,
        })
    }

    /// Lets a thread started unarmed begin populating.
    pub(crate) fn arm(&self) {
        self.shared.armed.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// Tells the helper the writer reached mapping offset `at`; wakes it once per `CHUNK`.
    #[inline]
    pub(crate) fn advance(&mut self, at: u64) {
        if at >= self.next_signal {
            self.next_signal = at + self.shared.signal_every.load(Ordering::Relaxed);
            self.shared.writer_at.store(at, Ordering::Relaxed);
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
    }
}

fn run(
    populator: &Populator,
    ahead: &mut WriteAhead,
    shared: &Shared,
    from: u64,
    end: u64,
    window: u64,
) {
    while !shared.armed.load(Ordering::Acquire) {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        thread::park();
    }
    ahead.idle_signal = IDLE_SIGNAL.min(window / 4).max(CHUNK);
    let mut done = from - from % 4096;
    while !shared.stop.load(Ordering::Relaxed) {
        let writer_at = shared.writer_at.load(Ordering::Relaxed);
        // A writer that overtook the helper has faulted those pages in itself: skip them, so
        // the two do not fault the same pages and the helper gets back in front.
        done = done.max(writer_at - writer_at % 4096);
        let want = end.min(writer_at.saturating_add(window));
        while done < want && !shared.stop.load(Ordering::Relaxed) {
            let n = CHUNK.min(want - done);
            if populator.populate(done as usize, n as usize).is_err() {
                return;
            }
            done += n;
        }
        ahead.write_back(populator, shared, writer_at, done);
        shared.looks.fetch_add(1, Ordering::Release);
        if done >= end && !ahead.may_write_back(end) {
            return;
        }
        thread::park();
    }
}

/// The writeback ahead of the writer (see the module's documentation).
struct WriteAhead {
    path: PathBuf,
    /// Opened at the first writeback: its own open file, so that an error of a writeback
    /// ahead is reported to it, not taken from the syncs through the writer's mapping.
    file: Option<File>,
    /// Mapping offset up to which pages were written back.
    written: u64,
    /// The durable watermark (mapping offset) at the helper's last look.
    durable: u64,
    /// Cleared when opening the file or a writeback fails: the helper stops writing back.
    enabled: bool,
    /// Consecutive looks that found the writer moved and the durable watermark where it was.
    still: u32,
    /// The writer's position at the last look.
    writer_seen: u64,
    /// How far the writer moves between wake-ups once syncs do not keep up.
    idle_signal: u64,
    /// Mapping offset up to which pages behind the writer were handed to writeback.
    behind: u64,
    /// Set unless turned off; cleared when a writeback behind fails, or for a file kept in
    /// memory.
    behind_enabled: bool,
}

impl WriteAhead {
    fn new(path: PathBuf, behind: bool) -> WriteAhead {
        WriteAhead {
            path,
            file: None,
            // Pages before the window the helper populates were populated when the channel
            // was made (a segment prepared ahead): written back from the data area's start.
            written: 0,
            durable: u64::MAX,
            enabled: true,
            still: 0,
            writer_seen: 0,
            idle_signal: IDLE_SIGNAL,
            behind: 0,
            behind_enabled: behind,
        }
    }

    /// Whether pages before `end` may still be written back.
    fn may_write_back(&self, end: u64) -> bool {
        (self.enabled && self.written < end) || (self.behind_enabled && self.behind < end)
    }

    /// The file the writebacks go through (opened at the first), and its path.
    fn opened(&mut self) -> Option<(&File, &Path)> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        Some((self.file.as_ref()?, &self.path))
    }

    /// Hands the pages the writer has moved past to writeback, [`BEHIND`] at a time, while
    /// syncs do not keep up with the writer.
    fn write_behind(&mut self, populator: &Populator, writer_at: u64) {
        if !self.behind_enabled || self.still < STILL_LOOKS {
            return;
        }
        if !populator.writes_back() {
            self.behind_enabled = false;
            return;
        }
        let from = self.behind.max(4096);
        let to = writer_at.saturating_sub(MARGIN) / 4096 * 4096;
        if to < from + BEHIND {
            return;
        }
        let Some((file, path)) = self.opened() else {
            self.behind_enabled = false;
            return;
        };
        let op = IoOp::WriteBack(path, from, to - from);
        let started = fault::run(op, || {
            populator.write_behind(file, from as usize, (to - from) as usize)
        });
        if started.is_err() {
            self.behind_enabled = false;
            return;
        }
        self.behind = to;
    }

    /// Writes pages back from [`MARGIN`] to [`WRITE_AHEAD`] past `writer_at` (not past
    /// `populated`: only populated pages are dirty), a chunk at a time, if syncs keep up with
    /// the writer.
    fn write_back(
        &mut self,
        populator: &Populator,
        shared: &Shared,
        writer_at: u64,
        populated: u64,
    ) {
        let durable = HEADER_LEN as u64 + populator.load(OFF_DURABLE_WATERMARK);
        let known = self.durable != u64::MAX;
        let moved = known && durable > self.durable;
        self.durable = durable;
        // Wake-ups every `CHUNK` only while writing back ahead may be needed: not after
        // looks that found the writer moved and the watermark not (a look without the
        // writer moving, a spurious wake-up, says nothing).
        if moved {
            self.still = 0;
        } else if known && writer_at > self.writer_seen {
            self.still = self.still.saturating_add(1);
        }
        self.writer_seen = writer_at;
        let every = if self.enabled && self.still < STILL_LOOKS {
            CHUNK
        } else {
            self.idle_signal
        };
        shared.signal_every.store(every, Ordering::Relaxed);
        self.write_behind(populator, writer_at);
        if !self.enabled || !moved || writer_at.saturating_sub(durable) > KEEP_UP {
            return;
        }
        self.written = self.written.max(writer_at.next_multiple_of(4096) + MARGIN);
        let want = populated.min(writer_at.saturating_add(WRITE_AHEAD)) / 4096 * 4096;
        while self.written < want && !shared.stop.load(Ordering::Relaxed) {
            let (at, n) = (self.written, CHUNK.min(want - self.written));
            let Some((file, path)) = self.opened() else {
                self.enabled = false;
                return;
            };
            let op = IoOp::WriteBack(path, at, n);
            if fault::run(op, || mmap::write_back(file, at, n)).is_err() {
                self.enabled = false;
                return;
            }
            // Written back, the pages are clean and write-protected: map them writable again,
            // so that the writer's stores do not fault.
            let _ = populator.populate(at as usize, n as usize);
            self.written = at + n;
            shared.written_back.store(self.written, Ordering::Relaxed);
        }
    }
}

impl Drop for Pretoucher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mmap::WriteMap;

    /// A writer's helper over a fresh file of `len` bytes, armed; and the map it populates.
    fn helper(dir: &std::path::Path, len: u64) -> (Pretoucher, WriteMap) {
        let path = dir.join("channel");
        let file = mmap::scratch_file(&path, len);
        let map = WriteMap::map(&file, len as usize).unwrap();
        let toucher = Pretoucher::start(map.populator(), path, 0, len, AHEAD, true, true).unwrap();
        (toucher, map)
    }

    /// Moves a writer through `bytes` in 64 KiB steps, syncing (moving the durable
    /// watermark to the writer) if `syncing`; after each wake-up it waits for the helper's
    /// look. Returns the wake-ups.
    fn wake_ups(syncing: bool, bytes: u64) -> u64 {
        let dir = tempfile::tempdir().unwrap();
        let (mut toucher, map) = helper(dir.path(), bytes + (1 << 20));
        walk(&mut toucher, &map, syncing, bytes)
    }

    /// Moves the writer of `toucher` to `bytes` in 64 KiB steps as [`wake_ups`] does, and
    /// returns the wake-ups.
    fn walk(toucher: &mut Pretoucher, map: &WriteMap, syncing: bool, bytes: u64) -> u64 {
        let mut wakes = 0;
        let mut at = HEADER_LEN as u64;
        while at < bytes {
            at += 64 << 10;
            if syncing {
                map.store_release(OFF_DURABLE_WATERMARK, at - HEADER_LEN as u64);
            }
            let (before, looked) = (
                toucher.next_signal,
                toucher.shared.looks.load(Ordering::Acquire),
            );
            toucher.advance(at);
            if toucher.next_signal != before {
                wakes += 1;
                wait_for_looks(toucher, looked + 1);
            }
        }
        wakes
    }

    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn a_writer_that_does_not_sync_has_the_pages_behind_it_written_back() {
        // Kept dirty until the final sync, a stream's pages were all written to the disk by
        // that sync, after the appends instead of alongside them (issue 14 item 3).
        let dir = tempfile::tempdir().unwrap();
        let (mut toucher, map) = helper(dir.path(), 32 << 20);
        let file = std::fs::File::open(dir.path().join("channel")).unwrap();
        if mmap::memory_backed(&file) {
            eprintln!(
                "skipped: {} is kept in memory, nothing is written back",
                dir.path().display()
            );
            return;
        }
        let Ok(before) = mmap::dirty_pages(&file, 0, 16 << 20) else {
            eprintln!("skipped: no cachestat(2) on this kernel");
            return;
        };
        assert_eq!(before, 0, "a fresh file has no dirty page");
        walk(&mut toucher, &map, false, 24 << 20);
        // The helper populated (and so dirtied) every page of the first 16 MiB, and handed
        // those the writer moved past to writeback; writeback clears a page's dirty flag when
        // it starts. Without it they stay dirty for the kernel's 30 s.
        let dirty = mmap::dirty_pages(&file, 0, 16 << 20).unwrap();
        assert!(
            dirty < 256,
            "{dirty} of the 4,096 pages behind the writer still dirty"
        );
        // A writer that syncs leaves the writing to its syncs.
        let syncing = tempfile::tempdir().unwrap();
        let (mut toucher, map) = helper(syncing.path(), 32 << 20);
        walk(&mut toucher, &map, true, 24 << 20);
        let file = std::fs::File::open(syncing.path().join("channel")).unwrap();
        let dirty = mmap::dirty_pages(&file, 1 << 20, 15 << 20).unwrap();
        assert!(
            dirty > 3000,
            "only {dirty} of 3,840 pages dirty: written behind a syncing writer"
        );
    }

    /// Waits (at most 5 s) until the helper has looked `n` times in all.
    fn wait_for_looks(toucher: &Pretoucher, n: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while toucher.shared.looks.load(Ordering::Acquire) < n
            && std::time::Instant::now() < deadline
        {
            thread::sleep(std::time::Duration::from_micros(200));
        }
    }

    #[test]
    fn a_syncing_writer_is_written_back_ahead_from_early_in_its_segment() {
        // The syncs of a segment's first 256 KiB each wrote the inode too (the blocks' extent
        // conversions), about 40 slow syncs per segment for 64 appenders of 128 B: the helper
        // first looked once the writer had passed 256 KiB, and could tell only then, at its
        // second look, that syncs kept up.
        let dir = tempfile::tempdir().unwrap();
        let (mut toucher, map) = helper(dir.path(), 4 << 20);
        wait_for_looks(&toucher, 1);
        let at = HEADER_LEN as u64 + (32 << 10);
        map.store_release(OFF_DURABLE_WATERMARK, at - HEADER_LEN as u64 - 4096);
        toucher.advance(at);
        wait_for_looks(&toucher, 2);
        let written = toucher.shared.written_back.load(Ordering::Relaxed);
        assert!(
            written >= at + MARGIN + CHUNK,
            "written back to {written} with the writer at {at}"
        );
    }

    #[test]
    fn a_writer_that_does_not_sync_wakes_its_helper_seldom() {
        // Regression: issue 14 item 3: the appending thread unparked its helper every 256 KiB
        // whether or not there was writing back to do, 3% of its time in a tmpfs stream.
        let bytes = 8 << 20;
        let quiet = wake_ups(false, bytes);
        let syncing = wake_ups(true, bytes);
        assert!(quiet <= 8, "{quiet} wake-ups for 8 MiB without syncs");
        assert!(syncing >= 28, "{syncing} wake-ups for 8 MiB with syncs");
    }
}
