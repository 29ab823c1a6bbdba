//! The crate's only `unsafe` code: mapping channel files, the publish/acquire protocol on
//! record headers, the writer's staging area, and the `fallocate(2)` call.
//!
//! Invariants the rest of the crate relies on, and that this module enforces itself:
//! - every access is bounds-checked against the mapping's length (a violation panics, it never
//!   reads or writes outside the mapping);
//! - 8-byte words are accessed only at 8-aligned offsets, and only through atomics;
//! - a payload slice is handed to safe code only after an acquire load of the record header in
//!   front of it returned a non-zero word. The writer fills the payload before it stores that
//!   header with release ordering and never writes a published byte again, so the slice cannot
//!   change for as long as it is borrowed, and its lifetime is tied to the mapping's. One
//!   exception: sealing a crashed channel at its cut (`resume_for_seal`) writes over bytes
//!   that were never a valid record but may read as a non-zero word (torn). The word is
//!   cleared before the seal is staged, which narrows, but cannot close, the window in which
//!   a reader in the same process holds a slice over them (only while a journal is opened
//!   for appending after a crash, and only for a reader reading that torn tail meanwhile).
//!
//! What no process-local code can rule out: another process truncating or scribbling over the
//! file while it is mapped. The channel's contract (docs/FORMAT.md) is that only the kekbit
//! writer holding the lock modifies a channel file and that no one ever shrinks it.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{Advice, Mmap, MmapMut, MmapOptions};

use crate::core::CHECKED_LEN;

/// Checks that `[offset, offset + len)` is inside a mapping of `map_len` bytes.
#[inline]
fn check_range(offset: usize, len: usize, map_len: usize) {
    match offset.checked_add(len) {
        Some(end) if end <= map_len => {}
        _ => out_of_range(offset, len, map_len),
    }
}

/// Checks that an 8-byte word at `offset` is aligned and inside a mapping of `map_len` bytes.
#[inline]
fn check_word(offset: usize, map_len: usize) {
    if !offset.is_multiple_of(8) {
        unaligned(offset);
    }
    check_range(offset, 8, map_len);
}

// The panics of the checks above, out of line: the checks run on every record, the panics never.
#[cold]
#[inline(never)]
fn out_of_range(offset: usize, len: usize, map_len: usize) -> ! {
    let end = offset
        .checked_add(len)
        .expect("mapped range overflows usize");
    panic!("range {offset}..{end} outside a mapping of {map_len} bytes")
}

#[cold]
#[inline(never)]
fn unaligned(offset: usize) -> ! {
    panic!("unaligned word offset {offset}")
}

/// A read-only shared mapping of a whole channel file.
pub(crate) struct ReadMap {
    map: Mmap,
}

/// What an acquire load found at a record position.
pub(crate) enum Published<'a> {
    /// The header word is zero: nothing was published here (yet).
    Nothing,
    /// A non-zero header word, and the bytes after it. `payload` holds at most `len` bytes:
    /// fewer when the header claims more than the mapping holds (the caller reports that).
    Word { word: u64, payload: &'a [u8] },
}

impl ReadMap {
    /// Maps the first `len` bytes of `file` read-only and shared.
    ///
    /// The caller must have checked that the file is at least `len` bytes long.
    pub(crate) fn map(file: &File, len: usize) -> io::Result<Self> {
        // SAFETY: memmap2 requires that the mapped file is not truncated or modified in ways
        // that break Rust's aliasing rules while mapped. Channel files are never shrunk (the
        // crate never calls set_len on a mapped file), the caller checked the file length
        // against `len`, and the only bytes this module ever hands out as `&[u8]` are
        // published payloads, which the writer never writes again (module docs).
        let map = unsafe { MmapOptions::new().len(len).map(file)? };
        Ok(ReadMap { map })
    }

    /// Atomically loads the little-endian `u64` at `offset` with acquire ordering.
    #[inline]
    pub(crate) fn load_acquire(&self, offset: usize) -> u64 {
        check_word(offset, self.map.len());
        // SAFETY: the word is inside the mapping (checked above) and 8-aligned (the mapping
        // starts on a page boundary and `offset` is a multiple of 8). The mapping lives as
        // long as `self`. Callers load record header words at record boundaries and words
        // of the live block, which the channel writer (in any process) stores atomically;
        // they load other words (a scan for written bytes past the records) only when no
        // writer holds the channel (`ShmReader::written_extent`), or (`skip_unverified`)
        // where a published length points, so only with damaged lengths anywhere else. Atomic
        // loads from read-only memory are allowed for lock-free sizes such as `u64`.
        let word = unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset) as *mut u64) };
        u64::from_le(word.load(Ordering::Acquire))
    }

    /// Loads the record header word at `offset` (acquire) and, when it is non-zero, returns it
    /// with up to `len_of(word)` payload bytes that follow it.
    #[inline]
    pub(crate) fn published(&self, offset: usize, len_of: impl Fn(u64) -> usize) -> Published<'_> {
        let word = self.load_acquire(offset);
        if word == 0 {
            return Published::Nothing;
        }
        let start = offset + 8;
        let len = len_of(word).min(self.map.len() - start);
        check_range(start, len, self.map.len());
        // SAFETY: the range is inside the mapping (checked above, clamped to its end) and the
        // slice borrows `self`, so it cannot outlive the mapping. The acquire load above
        // synchronises with the writer's release store of this non-zero header, which the
        // writer performs only after the payload is complete; published bytes are never
        // written again, so the slice does not change while borrowed.
        let payload = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(start), len) };
        Published::Word { word, payload }
    }
}

/// The writer's read-write shared mapping. Not `Clone`: exactly one `WriteMap` exists per
/// mapping, so `&mut WriteMap` proves exclusive use of the unpublished area.
pub(crate) struct WriteMap {
    map: Arc<MmapMut>,
}

/// A handle that may only ask the kernel to prefault pages of a writer's mapping; it can
/// neither read nor write the mapped memory.
pub(crate) struct Populator {
    map: Arc<MmapMut>,
}

/// A handle that may only write a writer's mapping back to storage and store a header word
/// (the durable watermark): what a thread syncing on the writer's behalf needs.
pub(crate) struct Flusher {
    map: Arc<MmapMut>,
}

impl Flusher {
    /// Writes back `[offset, offset + len)` synchronously (`msync(MS_SYNC)`).
    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        check_range(offset, len, self.map.len());
        self.map.flush_range(offset, len)
    }

    /// Atomically loads the little-endian `u64` at `offset` (acquire).
    pub(crate) fn load(&self, offset: usize) -> u64 {
        check_word(offset, self.map.len());
        // SAFETY: as in `store_release`: in bounds, 8-aligned, only ever accessed atomically.
        let word = unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset) as *mut u64) };
        u64::from_le(word.load(Ordering::Acquire))
    }

    /// Atomically stores `value` as a little-endian `u64` at `offset` with release ordering.
    pub(crate) fn store_release(&self, offset: usize, value: u64) {
        // Only into the live block: `overwrite_header` relies on it.
        assert!(offset >= CHECKED_LEN, "store into the checksummed header");
        check_word(offset, self.map.len());
        // SAFETY: as in `WriteMap::word`: in bounds, 8-aligned, only ever accessed atomically.
        let word = unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset) as *mut u64) };
        word.store(value.to_le(), Ordering::Release);
    }
}

impl WriteMap {
    /// Maps the first `len` bytes of `file` read-write and shared.
    pub(crate) fn map(file: &File, len: usize) -> io::Result<Self> {
        // SAFETY: same contract as `ReadMap::map`. In addition, the caller holds the channel's
        // exclusive writer lock, so no other kekbit writer maps this file for writing.
        let map = unsafe { MmapOptions::new().len(len).map_mut(file)? };
        Ok(WriteMap { map: Arc::new(map) })
    }

    /// A handle for a thread that syncs on the writer's behalf.
    pub(crate) fn flusher(&self) -> Flusher {
        Flusher {
            map: Arc::clone(&self.map),
        }
    }

    /// Overwrites the start of the header with `bytes` (plain stores): only for its
    /// checksummed part, `[0, CHECKED_LEN)`, which no one accesses through a mapping (readers
    /// copy it with `pread`) and which the single writer (`&mut self`) rewrites when it links
    /// a pending segment. Panics if `bytes` reaches into the live block.
    pub(crate) fn overwrite_header(&mut self, bytes: &[u8]) {
        assert!(
            bytes.len() <= CHECKED_LEN,
            "{} bytes reach past the checksummed header",
            bytes.len()
        );
        check_range(0, bytes.len(), self.map.len());
        // SAFETY: the destination is inside the mapping (checked above); the pointer comes
        // from memmap2's raw pointer (no Rust reference to the mapped bytes exists for this
        // range). Nothing else writes `[0, CHECKED_LEN)` through this mapping: `&mut self`
        // excludes the staging area (which writes only the data area, after the header), and
        // the `Flusher` and `Populator` handles sharing the mapping store only into the live
        // block (at `CHECKED_LEN` and after) or do not store at all.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.as_ptr().cast_mut(), bytes.len())
        };
    }

    /// A handle for a background thread that prefaults pages ahead of the writer.
    pub(crate) fn populator(&self) -> Populator {
        Populator {
            map: Arc::clone(&self.map),
        }
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        check_word(offset, self.map.len());
        // SAFETY: in bounds and 8-aligned (checked above; the mapping is page aligned); the
        // reference borrows `self`, so it cannot outlive the mapping. Header words are only
        // ever accessed atomically, by this writer and by readers in any process.
        unsafe { AtomicU64::from_ptr(self.map.as_ptr().add(offset) as *mut u64) }
    }

    /// Atomically stores `value` as a little-endian `u64` at `offset` with release ordering:
    /// everything written before (the payload) is visible to whoever acquires this word.
    pub(crate) fn store_release(&self, offset: usize, value: u64) {
        self.word(offset).store(value.to_le(), Ordering::Release);
    }

    /// Atomically loads the little-endian `u64` at `offset`.
    #[cfg(test)]
    pub(crate) fn load(&self, offset: usize) -> u64 {
        u64::from_le(self.word(offset).load(Ordering::Acquire))
    }

    /// An `io::Write` over the unpublished bytes `[offset, offset + limit)`.
    pub(crate) fn stage(&mut self, offset: usize, limit: usize) -> Staging<'_> {
        check_range(offset, limit, self.map.len());
        Staging {
            // SAFETY: `offset` is inside the mapping (checked above with `limit`). The pointer
            // comes from the raw pointer memmap2 keeps for the mapping (no Rust reference to
            // the mapped bytes is involved), so writing through it is permitted.
            start: unsafe { self.map.as_ptr().cast_mut().add(offset) },
            limit,
            len: 0,
            attempted: 0,
            _map: PhantomData,
        }
    }

    /// Writes back `[offset, offset + len)` synchronously (`msync(MS_SYNC)`).
    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        check_range(offset, len, self.map.len());
        self.map.flush_range(offset, len)
    }
}

impl Populator {
    /// Prefaults `[offset, offset + len)` for writing (`MADV_POPULATE_WRITE`) without touching
    /// the bytes: the writer's later stores do not page-fault.
    pub(crate) fn populate(&self, offset: usize, len: usize) -> io::Result<()> {
        check_range(offset, len, self.map.len());
        self.map.advise_range(Advice::PopulateWrite, offset, len)
    }
}

/// The staging area of the record being written: bytes after the record's (still zero) header
/// word that no reader looks at until the header is published.
pub(crate) struct Staging<'a> {
    start: *mut u8,
    limit: usize,
    len: usize,
    attempted: usize,
    _map: PhantomData<&'a mut WriteMap>,
}

impl Staging<'_> {
    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes the encoder tried to write, including those refused for lack of room.
    pub(crate) fn attempted(&self) -> usize {
        self.attempted
    }

    /// Whether a write was refused because the staging area was full.
    pub(crate) fn overflowed(&self) -> bool {
        self.attempted > self.len
    }

    /// The bytes written so far.
    pub(crate) fn written(&self) -> &[u8] {
        // SAFETY: `[start, start + len)` is inside the mapping (`len <= limit`, and the range
        // of `limit` bytes was checked in `WriteMap::stage`); the staging area holds the
        // exclusive borrow of the `WriteMap`, and no reader reads unpublished bytes.
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }

    /// Zeroes what was written, so that unpublished space reads as end of data again.
    pub(crate) fn discard(&mut self) {
        // SAFETY: as in `written`; writing zeros to unpublished bytes this writer owns.
        unsafe { std::ptr::write_bytes(self.start, 0, self.len) };
        self.len = 0;
    }
}

impl io::Write for Staging<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.attempted = self.attempted.saturating_add(buf.len());
        let room = self.limit - self.len;
        if buf.len() > room {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "record does not fit in the space left",
            ));
        }
        // SAFETY: the destination `[start + len, start + len + buf.len())` is inside the
        // staging area (`buf.len() <= limit - len`), which is inside the mapping and borrowed
        // exclusively; `buf` is caller memory and cannot overlap unpublished mapped bytes
        // (no safe code holds a reference to them).
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), self.start.add(self.len), buf.len()) };
        self.len += buf.len();
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(buf).map(drop)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reserves `len` bytes of real disk space for `file` (not a sparse hole), extending it to
/// `len` bytes: a full disk is reported here as `StorageFull` instead of a SIGBUS later.
pub(crate) fn reserve(file: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len_off = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file size too large"))?;
        // SAFETY: plain system call on a file descriptor that `file` keeps open for the
        // duration of the call; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    write_zeros(file, len)
}

/// The portable way to allocate: write every byte (for file systems without fallocate).
fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let zeros = vec![0u8; 1 << 20];
    let mut f = file;
    let mut done = f.seek(SeekFrom::End(0))?;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        done += n as u64;
    }
    Ok(())
}
