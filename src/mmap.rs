//! The crate's only `unsafe` code: mapping channel files, the publish/acquire protocol on
//! record headers, the writer's staging area, and the system calls std lacks: `fallocate(2)`,
//! `lseek(2)`'s `SEEK_DATA`/`SEEK_HOLE` (to skip a file's holes), the open-file-description
//! locks of `fcntl(2)` (a writer's lock, and a liveness probe that takes no lock), and the
//! journal's doorbell: a word of a shared mapping that `futex(2)` sleeps on and wakes.
//!
//! This file holds the regions, the writer's mapping and its staging area; child files hold
//! the readers' mappings and pinned payloads (`read`), the images' private mapping (`cow`), the
//! doorbell (`bell`), the `fcntl` locks (`locks`) and the other file system calls (`files`).
//! Every one of them falls under this module's `allow(unsafe_code)` and its rules below.
//!
//! Channel memory is only ever reached through a raw pointer that no Rust reference covered:
//! mappings are held as `memmap2::MmapRaw`, which hands out raw pointers and never a slice, and
//! the heap buffers that stand in for a mapping (a reader's private copy of a file, read with
//! `pread`, and the model of the protocol in the tests) are raw allocations. Every write
//! (the header rewrite, staging, atomic stores) goes through a pointer derived from that raw
//! pointer, never from a `&[u8]`.
//!
//! Invariants the rest of the crate relies on, and that this module enforces itself:
//! - every access is bounds-checked against the region's length (a violation panics, it never
//!   reads or writes outside the region);
//! - 8-byte words are accessed only at 8-aligned offsets, and only through atomics. A reader,
//!   whose mapping is read-only, loads with a relaxed load followed by an acquire fence: std
//!   defines relaxed loads of up to 8 bytes on read-only memory, and no other atomic access
//!   there, on the 64-bit targets listed below (the module does not compile elsewhere);
//! - a payload slice is handed to safe code only after an acquire load of the record header in
//!   front of it returned a non-zero word; it covers the bytes that word claims (clamped to the
//!   region) and borrows the region, so it cannot outlive the mapping. For a header the writer
//!   published, the writer filled the payload before its release store of the header and never
//!   writes a published byte again, so the slice cannot change while borrowed;
//! - a payload kept past that borrow (a [`Pinned`] record handle) holds the map in an `Arc`:
//!   the mapping is unmapped (a copy freed) only when its last reader and handle are gone, and
//!   only a verified payload is ever pinned.
//!
//! What the protocol cannot make hold: a non-zero header word that the writer did not publish,
//! a damaged one or the torn word at a crashed channel's cut, claims bytes that may not be
//! settled. A live writer may be staging its next record there, or `resume_for_seal` may be
//! rewriting the torn tail while it seals it (it clears the torn word first, which narrows the
//! window to a reader that loaded the word just before). The caller holds the slice over such
//! bytes only while it computes their checksum, which fails; the bytes may change under it
//! meanwhile. Like another process truncating a mapped file (SIGBUS) or scribbling over it,
//! that is beyond what process-local code can rule out: the channel's contract (docs/FORMAT.md) is that only
//! the kekbit writer holding the lock modifies a channel file, only as the format describes,
//! and that no one ever shrinks it.
#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{self, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{Advice, MmapOptions, MmapRaw, UncheckedAdvice};

use crate::core::CHECKED_LEN;

mod bell;
mod cow;
mod files;
mod locks;
mod read;

pub(crate) use bell::{Bell, BELL_LEN};
pub(crate) use cow::CowMap;
#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
pub(crate) use files::{dirty_pages, memory_backed};
pub(crate) use files::{fully_allocated, next_data, punch_hole, reserve, sync_start, write_back};
pub(crate) use locks::{
    lock_held, lock_mapping_shared, try_lock_mapping_exclusive, try_lock_writer, unlock_mapping,
    MappingLock,
};
pub(crate) use read::{Pinned, Published, ReadMap};

// Readers load header words from read-only mappings. std defines relaxed atomic loads of up to
// 8 bytes on read-only memory on these targets only (`std::sync::atomic`, "Atomic accesses to
// read-only memory").
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "loongarch64",
    target_arch = "mips64",
    target_arch = "mips64r6",
    target_arch = "powerpc64",
    target_arch = "riscv64",
    target_arch = "sparc64",
    target_arch = "s390x"
)))]
compile_error!("kekbit needs 8-byte relaxed atomic loads from read-only memory (a 64-bit target)");

/// Checks that `[offset, offset + len)` is inside a region of `region_len` bytes.
#[inline]
fn check_range(offset: usize, len: usize, region_len: usize) {
    match offset.checked_add(len) {
        Some(end) if end <= region_len => {}
        _ => out_of_range(offset, len, region_len),
    }
}

/// Checks that an 8-byte word at `offset` is aligned and inside a region of `region_len` bytes.
#[inline]
fn check_word(offset: usize, region_len: usize) {
    if !offset.is_multiple_of(8) {
        unaligned(offset);
    }
    check_range(offset, 8, region_len);
}

// The panics of the checks above, out of line: the checks run on every record, the panics never.
#[cold]
#[inline(never)]
fn out_of_range(offset: usize, len: usize, region_len: usize) -> ! {
    let end = offset
        .checked_add(len)
        .expect("mapped range overflows usize");
    panic!("range {offset}..{end} outside a mapping of {region_len} bytes")
}

#[cold]
#[inline(never)]
fn unaligned(offset: usize) -> ! {
    panic!("unaligned word offset {offset}")
}

/// Channel memory: where it starts, how long it is, and what keeps it alive. `ptr` is the raw
/// pointer of the mapping (or heap buffer) itself: no reference to the bytes is ever created
/// over more than a payload (see the module docs), so every pointer derived from it may be used
/// for what the memory permits.
struct Region {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
    /// Whether the file's pages are written back to a device (not a file system kept in
    /// memory only): then a sync first drops the pages it writes back from the page tables,
    /// and the first sync asks for page-sized cache entries (see [`Region::flush_range`]).
    writes_back: bool,
    /// Set by the first sync of a region that writes back.
    synced_once: AtomicBool,
}

/// What owns a [`Region`]'s memory (and frees it when dropped).
enum Backing {
    Mapped(MmapRaw),
    // A reader's private copy of the file, or, in the tests, a buffer that the regions of a
    // writer and a reader share as two mappings of one file would (the model of the protocol).
    Heap { _owner: Arc<Heap> },
}

// SAFETY: a `Region` is a pointer and a length into memory its `Backing` owns (a mapping, or a
// heap buffer freed only when the region is dropped), which stays valid wherever the region is
// moved. Every access through it is either atomic (header words) or covered by the protocol in
// the module docs: payload bytes are read only after an acquire load, and unpublished bytes are
// written only by the holder of the unique `&mut WriteMap`. Sharing it across threads is what
// the protocol is for.
unsafe impl Send for Region {}
// SAFETY: as for `Send`: shared use only reads published bytes and accesses words atomically.
unsafe impl Sync for Region {}

impl Region {
    fn mapped(map: MmapRaw) -> Region {
        let len = map.len();
        let ptr = NonNull::new(map.as_mut_ptr()).expect("a mapping is never at address 0");
        Region {
            ptr,
            len,
            backing: Backing::Mapped(map),
            writes_back: true,
            synced_once: AtomicBool::new(false),
        }
    }

    fn heap(heap: &Arc<Heap>) -> Region {
        Region {
            ptr: heap.ptr,
            len: heap.layout.size(),
            backing: Backing::Heap {
                _owner: Arc::clone(heap),
            },
            writes_back: false,
            synced_once: AtomicBool::new(false),
        }
    }

    /// The raw pointer to the byte at `offset`, which the caller has bounds-checked.
    #[inline]
    fn at(&self, offset: usize) -> *mut u8 {
        debug_assert!(offset <= self.len);
        // `wrapping_add` keeps this function safe; in bounds (checked by every caller) it is
        // the same pointer as `add`, with the region's provenance.
        self.ptr.as_ptr().wrapping_add(offset)
    }

    /// The 8-byte word at `offset` as an atomic, for a load or a store.
    ///
    /// # Safety
    ///
    /// The caller uses the reference only for what the memory permits: any atomic access on a
    /// writable region, only relaxed loads on a read-only one.
    #[inline]
    unsafe fn word(&self, offset: usize) -> &AtomicU64 {
        check_word(offset, self.len);
        // SAFETY: the word is inside the region (checked above) and 8-aligned: `offset` is a
        // multiple of 8 and the region starts on a page boundary (a mapping) or an 8-aligned
        // allocation (the heap). The pointer carries the region's provenance (no reference
        // covered it), and the reference borrows `self`, so it cannot outlive the memory.
        // Words that hold header fields and record headers are only ever accessed atomically,
        // with 8-byte accesses, by the writer and by readers in any process; the caller's
        // contract covers the access mode.
        unsafe { AtomicU64::from_ptr(self.at(offset).cast::<u64>()) }
    }

    /// Loads the word at `offset`, little-endian, with acquire ordering, in the way std defines
    /// for read-only memory: a relaxed load, then an acquire fence.
    #[inline]
    fn load_acquire(&self, offset: usize) -> u64 {
        // SAFETY: the reference is used for one relaxed 8-byte load, allowed on read-only and
        // on writable memory alike (module docs).
        let word = unsafe { self.word(offset) }.load(Ordering::Relaxed);
        atomic::fence(Ordering::Acquire);
        u64::from_le(word)
    }
}

/// A zeroed, 8-aligned heap buffer, reached only through its raw pointer.
struct Heap {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a `Heap` only owns its allocation (it never reads or writes it; the regions over it
// do, under the protocol); freeing it from any thread, once, in `drop` is sound.
unsafe impl Send for Heap {}
// SAFETY: as for `Send`: `&Heap` gives no access to the memory at all.
unsafe impl Sync for Heap {}

impl Heap {
    /// `len` zero bytes (at least 8), or an `OutOfMemory` error: never an abort, since `len`
    /// comes from a file's header.
    fn zeroed(len: usize) -> io::Result<Heap> {
        let out_of_memory = || io::Error::from(io::ErrorKind::OutOfMemory);
        let size = len
            .checked_next_multiple_of(8)
            .ok_or_else(out_of_memory)?
            .max(8);
        let layout = Layout::from_size_align(size, 8).map_err(|_| out_of_memory())?;
        // SAFETY: the layout's size is not zero (at least 8). Large zeroed allocations come
        // from fresh anonymous memory, so untouched pages (a sparse file's holes) cost nothing.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(out_of_memory)?;
        Ok(Heap { ptr, layout })
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        // SAFETY: `ptr` was allocated in `zeroed` with this layout and is freed only here; the
        // region that used it is being dropped with it, and every slice borrowed from it is gone.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The writer's read-write shared mapping. Not `Clone`: exactly one `WriteMap` exists per
/// mapping, so `&mut WriteMap` proves exclusive use of the unpublished area.
pub(crate) struct WriteMap {
    region: Arc<Region>,
}

/// A handle that may only ask the kernel to prefault pages of a writer's mapping and load
/// words of its header (how far syncs have come); it never writes the mapped memory.
pub(crate) struct Populator {
    region: Arc<Region>,
}

/// A handle that may only write a writer's mapping back to storage and store a header word
/// (the durable watermark): what a thread syncing on the writer's behalf needs.
pub(crate) struct Flusher {
    region: Arc<Region>,
}

/// A sync unmaps the whole pages of its range from the writer's page tables first when there
/// are at least this many of them (see [`Region::flush_range`]).
const UNMAP_BEFORE_SYNC: usize = 32;

/// The system's page size.
fn page_size() -> usize {
    // SAFETY: sysconf takes and returns integers only.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or(4096)
}

impl Region {
    /// Writes back `[offset, offset + len)` synchronously (`msync(MS_SYNC)`).
    ///
    /// Before a sync of many pages, the whole pages of the range past the first page (the
    /// header page, which the writer stores into after every sync) and before the range's
    /// last, partly written one are dropped from this mapping's page tables
    /// (`MADV_DONTNEED`). Writing a page back write-protects every writable mapping of it,
    /// one page-table entry and one TLB flush at a time (an interprocessor interrupt each
    /// while another thread of the process runs on another CPU); a page no longer mapped
    /// costs none of that, and the unmapping flushes the TLB once per batch of pages. On a
    /// file system kept in memory (tmpfs) nothing is written back and nothing is
    /// write-protected, so the pages stay mapped (unmapping 64 MiB of them cost the appending
    /// thread 8-12 ms there). Nothing else changes: the dirty state moves to the page cache, and a later access
    /// maps the page again with the bytes it held. Best effort: a refused `madvise` only
    /// leaves the pages mapped.
    ///
    /// The first sync also asks the kernel to cache the pages faulted in through this mapping
    /// from then on one page each, without read-around (`MADV_RANDOM`). ext4 caches a file in
    /// folios that grow with each read-around window, up to 2 MiB from about 40 MiB into a
    /// file, and a store into a mapped folio marks all of it dirty: a sync of one record
    /// there wrote 2 MiB back and took 4.5 times as long (docs/PERFORMANCE.md, "Durable
    /// appends past 40 MiB"). A writer that never syncs keeps the kernel's choice.
    fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        check_range(offset, len, self.len);
        match &self.backing {
            Backing::Mapped(map) => {
                self.cache_by_page(map);
                let page = page_size();
                let from = offset.next_multiple_of(page).max(page);
                let to = (offset + len) / page * page;
                if self.writes_back && to >= from + UNMAP_BEFORE_SYNC * page {
                    // SAFETY: the range is page-aligned and inside the mapping (`check_range`
                    // above). The mapping is a shared mapping of a file: `MADV_DONTNEED`
                    // removes page-table entries only, and any later load or store through
                    // the mapping faults the same page-cache page back in, so no byte that
                    // anyone can observe changes, whatever references or concurrent accesses
                    // exist (as when the kernel reclaims a clean mapped page).
                    let _ = unsafe {
                        map.unchecked_advise_range(UncheckedAdvice::DontNeed, from, to - from)
                    };
                }
                map.flush_range(offset, len)
            }
            Backing::Heap { .. } => Ok(()),
        }
    }

    /// Asks, once, that pages faulted in through `map` be cached one page each, without
    /// read-around (`MADV_RANDOM`), if the file's pages are written back (see
    /// [`Region::flush_range`]). Best effort.
    fn cache_by_page(&self, map: &MmapRaw) {
        if self.writes_back && !self.synced_once.swap(true, Ordering::Relaxed) {
            let _ = map.advise(Advice::Random);
        }
    }

    /// Stores `value` little-endian at `offset` with release ordering. Only for a writable
    /// region: the writer's.
    #[inline]
    fn store_release(&self, offset: usize, value: u64) {
        // SAFETY: a store, on the writer's region, which is writable (mapped read-write, or
        // the heap).
        unsafe { self.word(offset) }.store(value.to_le(), Ordering::Release);
    }
}

impl Flusher {
    /// Writes back `[offset, offset + len)` synchronously (`msync(MS_SYNC)`).
    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.region.flush_range(offset, len)
    }

    /// Atomically loads the little-endian `u64` at `offset` (acquire).
    pub(crate) fn load(&self, offset: usize) -> u64 {
        self.region.load_acquire(offset)
    }

    /// Atomically stores `value` as a little-endian `u64` at `offset` with release ordering.
    pub(crate) fn store_release(&self, offset: usize, value: u64) {
        // Only into the live block: `overwrite_header` relies on it.
        assert!(offset >= CHECKED_LEN, "store into the checksummed header");
        self.region.store_release(offset, value);
    }
}

impl WriteMap {
    /// Maps the first `len` bytes of `file` read-write and shared.
    pub(crate) fn map(file: &File, len: usize) -> io::Result<Self> {
        let map = MmapOptions::new().len(len).map_raw(file)?;
        let mut region = Region::mapped(map);
        region.writes_back = !files::memory_backed(file);
        Ok(WriteMap {
            region: Arc::new(region),
        })
    }

    /// A handle for a thread that syncs on the writer's behalf.
    pub(crate) fn flusher(&self) -> Flusher {
        Flusher {
            region: Arc::clone(&self.region),
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
        check_range(0, bytes.len(), self.region.len);
        // SAFETY: the destination is inside the region (checked above) and writable; the
        // pointer is the region's raw pointer, which no reference covers. Nothing else writes
        // or reads `[0, CHECKED_LEN)` through this region: `&mut self` excludes the staging
        // area (which writes only the data area, after the header), and the `Flusher` and
        // `Populator` handles sharing the region store only into the live block (at
        // `CHECKED_LEN` and after) or do not access it at all. `bytes` cannot overlap the
        // destination: safe code holds no reference into this region except a `Staging`'s
        // (which `&mut self` excludes).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.region.at(0), bytes.len()) };
    }

    /// Asks now for what the first sync asks (see [`Region::flush_range`]): pages faulted in
    /// through this mapping from then on are cached one page each, without read-around. For
    /// a writer that will sync, before its pages are prefaulted. Best effort.
    pub(crate) fn cache_by_page(&self) {
        if let Backing::Mapped(map) = &self.region.backing {
            self.region.cache_by_page(map);
        }
    }

    /// A handle for a background thread that prefaults pages ahead of the writer.
    pub(crate) fn populator(&self) -> Populator {
        Populator {
            region: Arc::clone(&self.region),
        }
    }

    /// Atomically stores `value` as a little-endian `u64` at `offset` with release ordering:
    /// everything written before (the payload) is visible to whoever acquires this word.
    pub(crate) fn store_release(&self, offset: usize, value: u64) {
        self.region.store_release(offset, value);
    }

    /// Atomically stores `value` as a little-endian `u64` at `offset`, relaxed: for a word no
    /// reader acts on until a later release store publishes it (the word after a record).
    #[inline]
    pub(crate) fn store_relaxed(&self, offset: usize, value: u64) {
        // SAFETY: a store, on the writer's region, which is writable (mapped read-write, or
        // the heap).
        unsafe { self.region.word(offset) }.store(value.to_le(), Ordering::Relaxed);
    }

    /// Atomically loads the little-endian `u64` at `offset`.
    #[cfg(test)]
    pub(crate) fn load(&self, offset: usize) -> u64 {
        self.region.load_acquire(offset)
    }

    /// An `io::Write` over the unpublished bytes `[offset, offset + limit)`.
    pub(crate) fn stage(&mut self, offset: usize, limit: usize) -> Staging<'_> {
        check_range(offset, limit, self.region.len);
        Staging {
            start: self.region.at(offset),
            limit,
            len: 0,
            attempted: 0,
            _map: PhantomData,
        }
    }

    /// Writes back `[offset, offset + len)` synchronously (`msync(MS_SYNC)`).
    pub(crate) fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.region.flush_range(offset, len)
    }
}

impl Populator {
    /// Prefaults `[offset, offset + len)` for writing (`MADV_POPULATE_WRITE`) without touching
    /// the bytes: the writer's later stores do not page-fault.
    pub(crate) fn populate(&self, offset: usize, len: usize) -> io::Result<()> {
        check_range(offset, len, self.region.len);
        match &self.region.backing {
            Backing::Mapped(map) => map.advise_range(Advice::PopulateWrite, offset, len),
            Backing::Heap { .. } => Ok(()),
        }
    }

    /// Atomically loads the little-endian `u64` at `offset` (acquire).
    pub(crate) fn load(&self, offset: usize) -> u64 {
        self.region.load_acquire(offset)
    }

    /// Whether writing the mapping's pages back goes to a device: false for a file kept in
    /// memory (tmpfs, ramfs), whose writeback writes nothing.
    pub(crate) fn writes_back(&self) -> bool {
        self.region.writes_back
    }

    /// Starts writing `[offset, offset + len)` back to storage through `file` (the mapped
    /// file, opened apart) without waiting for it: drops the range's pages from the writer's
    /// page tables (`MADV_DONTNEED`, one TLB flush for the range instead of one per page
    /// when writeback write-protects them), then `sync_file_range(SYNC_FILE_RANGE_WRITE)`.
    /// For pages the writer has moved past. Nothing becomes durable by it.
    pub(crate) fn write_behind(&self, file: &File, offset: usize, len: usize) -> io::Result<()> {
        check_range(offset, len, self.region.len);
        let Backing::Mapped(map) = &self.region.backing else {
            return Ok(());
        };
        let page = page_size();
        if offset.is_multiple_of(page) && len.is_multiple_of(page) && offset >= page && len > 0 {
            // SAFETY: the range is page-aligned, past the header page and inside the mapping
            // (`check_range` above). The mapping is a shared mapping of a file:
            // `MADV_DONTNEED` removes page-table entries only, and any later load or store
            // through the mapping faults the same page-cache page back in, so no byte that
            // anyone can observe changes, whatever references or concurrent accesses exist.
            let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len) };
        }
        files::start_write_back(file, offset as u64, len as u64)
    }
}

/// The staging area of the record being written: bytes after the record's (still zero) header
/// word that no reader looks at until the header is published. `start` is derived from the
/// region's raw pointer (`WriteMap::stage` checked `[start, start + limit)` against the region).
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
        // SAFETY: `[start, start + len)` is inside the region (`len <= limit`, and the range
        // of `limit` bytes was checked in `WriteMap::stage`) and initialised (the region's
        // memory always is: a mapping, or a zeroed buffer). The staging area holds the
        // exclusive borrow of the `WriteMap`, and writing through it needs `&mut self`, which
        // this slice's borrow excludes, so the bytes do not change while borrowed through
        // this process's writer. Readers only read them (unpublished bytes, which the
        // protocol has them ignore).
        unsafe { std::slice::from_raw_parts(self.start, self.len) }
    }

    /// Zeroes what was written, so that unpublished space reads as end of data again.
    pub(crate) fn discard(&mut self) {
        // SAFETY: `[start, start + len)` is inside the region, as in `written`, and writable;
        // `&mut self` means no slice from `written` is alive. Zeroing unpublished bytes this
        // writer owns.
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
        // staging area (`buf.len() <= limit - len`), which is inside the writable region and
        // borrowed exclusively (`&mut self`: no slice from `written` is alive). `buf` cannot
        // overlap it: safe code holds no reference into the writer's region other than a
        // slice from `written`, which `&mut self` excludes.
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

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::scratch_file;
