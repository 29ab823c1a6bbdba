//! The crate's only `unsafe` code: mapping channel files, the publish/acquire protocol on
//! record headers, the writer's staging area, and the system calls std lacks: `fallocate(2)`,
//! `lseek(2)`'s `SEEK_DATA`/`SEEK_HOLE` (to skip a file's holes), the open-file-description
//! locks of `fcntl(2)` (a writer's lock, and a liveness probe that takes no lock), and the
//! journal's doorbell: a word of a shared mapping that `futex(2)` sleeps on and wakes.
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
use std::sync::atomic::{self, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{Advice, MmapOptions, MmapRaw, UncheckedAdvice};

use crate::core::CHECKED_LEN;

/// The private, copy-on-write mapping behind a mapped image (`crate::image`): the file's
/// data area mapped `MAP_PRIVATE`, so that what the process writes into it stays in the
/// process's own anonymous pages and never reaches the file by the kernel's writeback. The
/// image writes changed pages to the file itself, with `pwrite`, at a checkpoint, after the
/// journal records of those changes are durable (docs/FORMAT.md, "Mapped image").
///
/// The memory is reached through the mapping's raw pointer only: a shared slice for `&self`
/// and an exclusive slice for `&mut self`, so the borrow checker orders every access. No
/// other process can change a private mapping's copied pages; pages not yet copied show the
/// file, which, by the image's contract, only this process writes (under its lock), and only
/// with the bytes the mapping already holds.
mod cow {
    use std::fs::File;
    use std::io;
    use std::ptr::NonNull;

    use memmap2::{MmapOptions, MmapRaw, RemapOptions, UncheckedAdvice};

    /// A private (copy-on-write) mapping of `len` bytes of a file from a page-aligned offset.
    pub(crate) struct CowMap {
        map: MmapRaw,
        ptr: NonNull<u8>,
        len: usize,
    }

    // SAFETY: the mapping is owned by the `CowMap` and valid wherever it is moved; its memory is
    // reached only through `&self` (shared reads) and `&mut self` (exclusive writes), so moving
    // or sharing the value between threads follows the ordinary borrow rules of `&[u8]` and
    // `&mut [u8]`.
    unsafe impl Send for CowMap {}
    // SAFETY: as for `Send`: `&self` gives out only shared slices, which are read-only.
    unsafe impl Sync for CowMap {}

    impl CowMap {
        /// Maps `len` bytes (> 0) of `file` from `offset` (a multiple of the page size) privately.
        /// The caller has checked that the file is at least `offset + len` bytes long, so that no
        /// page of the mapping lies past its end (a SIGBUS on access).
        pub(crate) fn map(file: &File, offset: u64, len: usize) -> io::Result<CowMap> {
            // SAFETY: `map_copy` is unsafe because the file may change under the mapping. The
            // mapping is private: pages this process writes are its own copies; pages it has not
            // written show the file, which only the lock holder (this process) changes, and only
            // at a checkpoint, writing the bytes the mapping holds already (module docs). The
            // returned value is converted to `MmapRaw` at once: no slice of it is ever taken
            // by dereferencing it.
            let map: MmapRaw =
                unsafe { MmapOptions::new().offset(offset).len(len).map_copy(file) }?.into();
            let ptr = NonNull::new(map.as_mut_ptr()).expect("a mapping is never at address 0");
            Ok(CowMap { map, ptr, len })
        }

        /// The mapping's length in bytes.
        pub(crate) fn len(&self) -> usize {
            self.len
        }

        /// The mapped bytes.
        pub(crate) fn bytes(&self) -> &[u8] {
            // SAFETY: `ptr` and `len` describe the live mapping, readable and page-aligned; the
            // slice borrows `self`, so it cannot outlive the mapping or overlap a `bytes_mut`.
            // Its contents change only through `&mut self` (the mapping is private, see the
            // module docs).
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
        }

        /// The mapped bytes, for writing (the writes stay in this process's copies).
        pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
            // SAFETY: as in `bytes`, and the mapping is writable (`map_copy`); `&mut self`
            // makes this the only slice over the mapping while it lives. The pointer is the
            // mapping's own raw pointer, not derived from a shared reference.
            unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
        }

        /// Extends the mapping to `new_len` bytes (`mremap`, which may move it), keeping the
        /// pages already copied. The caller has extended the file to cover the new length.
        pub(crate) fn grow(&mut self, new_len: usize) -> io::Result<()> {
            if new_len <= self.len {
                return Ok(());
            }
            // SAFETY: no slice of the mapping is alive (`&mut self`), so moving it invalidates no
            // reference; `ptr` is refreshed from the mapping below. The file covers the new
            // length (caller's contract), so no page of it lies past the end of the file.
            unsafe {
                self.map
                    .remap(new_len, RemapOptions::new().may_move(true))?
            };
            self.ptr =
                NonNull::new(self.map.as_mut_ptr()).expect("a mapping is never at address 0");
            self.len = new_len;
            Ok(())
        }

        /// Drops this process's copies of the pages of `[offset, offset + len)` (page-aligned):
        /// they read from the file again (`MADV_DONTNEED` on a private mapping). Used after a
        /// checkpoint wrote exactly those bytes to the file, so the contents do not change; it
        /// returns their memory to the page cache.
        pub(crate) fn release_copies(&mut self, offset: usize, len: usize) -> io::Result<()> {
            super::check_range(offset, len, self.len);
            // SAFETY: `&mut self`: no slice of the mapping is alive to see the pages change. The
            // range is inside the mapping (checked above). The caller wrote the same bytes to the
            // file before, so reading them back from the file yields what the copies held.
            unsafe {
                self.map
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len)
            }
        }
    }
}
pub(crate) use cow::CowMap;

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
        }
    }

    fn heap(heap: &Arc<Heap>) -> Region {
        Region {
            ptr: heap.ptr,
            len: heap.layout.size(),
            backing: Backing::Heap {
                _owner: Arc::clone(heap),
            },
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

/// A read-only shared mapping of a whole channel file, or a private copy of it.
pub(crate) struct ReadMap {
    region: Region,
    /// For a copy: the stretches of the file that were read (may hold data), in order; the
    /// rest of the copy is zeros, as the holes they stand for.
    copied: Option<Box<[(u64, u64)]>>,
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
        let map = MmapOptions::new().len(len).map_raw_read_only(file)?;
        Ok(ReadMap {
            region: Region::mapped(map),
            copied: None,
        })
    }

    /// Copies the first `len` bytes of `file` into memory with `pread`, reading only the
    /// stretches that may hold data (holes stay zero, unread): a reader of the channel as it
    /// was, which another process truncating the file cannot crash (nothing is mapped).
    /// `UnexpectedEof` if the file is shorter than `len` while, or after, it is copied.
    pub(crate) fn copy(file: &File, len: usize) -> io::Result<Self> {
        use std::os::unix::fs::FileExt;
        let heap = Arc::new(Heap::zeroed(len)?);
        let mut copied = Vec::new();
        let mut next = 0;
        while let Some((start, end)) = next_data(file, next, len as u64) {
            let (at, n) = (start as usize, (end - start) as usize);
            check_range(at, n, len);
            // SAFETY: `[at, at + n)` is inside the buffer (checked above). The buffer was
            // just allocated and is not shared yet: no other reference to it exists, and the
            // slice lives only for this read.
            let into = unsafe { std::slice::from_raw_parts_mut(heap.ptr.as_ptr().add(at), n) };
            file.read_exact_at(into, start)?;
            copied.push((start, end));
            next = end;
        }
        if file.metadata()?.len() < len as u64 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(ReadMap {
            region: Region::heap(&heap),
            copied: Some(copied.into_boxed_slice()),
        })
    }

    /// The first stretch of file offsets within `[from, to)` that may hold data: for a copy,
    /// from what was read; for a mapping, asked of `file` (see [`next_data`]).
    pub(crate) fn data_after(&self, file: &File, from: u64, to: u64) -> Option<(u64, u64)> {
        let Some(copied) = &self.copied else {
            return next_data(file, from, to);
        };
        let &(start, end) = copied.iter().find(|&&(_, end)| end > from)?;
        let (start, end) = (start.max(from), end.min(to));
        (start < end).then_some((start, end))
    }

    /// A heap buffer of `len` zero bytes standing in for a mapping, and a writer over the same
    /// memory, for the model of the protocol in the tests.
    #[cfg(test)]
    fn heap_pair(len: usize) -> (ReadMap, WriteMap) {
        let heap = Arc::new(Heap::zeroed(len).unwrap());
        let reader = ReadMap {
            region: Region::heap(&heap),
            copied: None,
        };
        let writer = WriteMap {
            region: Arc::new(Region::heap(&heap)),
        };
        (reader, writer)
    }

    /// Atomically loads the little-endian `u64` at `offset` with acquire ordering.
    #[inline]
    pub(crate) fn load_acquire(&self, offset: usize) -> u64 {
        // Callers load record header words at record boundaries and words of the live block,
        // which the channel writer (in any process) stores atomically. They load other words
        // (a scan for written bytes past the records) only when no writer holds the channel
        // (`ShmReader::written_extent`), or (`skip_unverified`) where a published length
        // points, so only with damaged lengths anywhere else.
        self.region.load_acquire(offset)
    }

    /// Loads the record header word at `offset` (acquire) and, when it is non-zero, returns it
    /// with up to `len_of(word)` payload bytes that follow it.
    #[inline]
    pub(crate) fn published(&self, offset: usize, len_of: impl Fn(u64) -> usize) -> Published<'_> {
        let word = self.load_acquire(offset);
        if word == 0 {
            return Published::Nothing;
        }
        let len_total = self.region.len;
        let start = offset + 8;
        let len = len_of(word).min(len_total - start);
        check_range(start, len, len_total);
        // SAFETY: the range is inside the region (checked above, clamped to its end), the
        // pointer carries the region's provenance, and the slice borrows `self`, so it cannot
        // outlive the memory. No one writes these bytes through this region (a `ReadMap` only
        // loads), so no Rust reference or write of this process's own conflicts with the
        // slice. As for writes through other mappings of the file: the acquire load above
        // synchronises with the writer's release store of this non-zero header, which the
        // writer performs only after the payload is complete, and published bytes are never
        // written again, so for a published header the slice does not change while borrowed.
        // A header word the writer did not publish is the exception the module docs describe.
        let payload = unsafe { std::slice::from_raw_parts(self.region.at(start), len) };
        Published::Word { word, payload }
    }
}

/// A verified record's payload kept alive on its own: the mapping (or private copy) it lives
/// in, shared, and where in it the payload lies. What a `'static` record handle holds.
#[derive(Clone)]
pub(crate) struct Pinned {
    map: Arc<ReadMap>,
    start: usize,
    len: usize,
}

impl ReadMap {
    /// Pins the payload `[addr, addr + len)` that [`ReadMap::published`] handed out from this
    /// map (`addr` is its slice's address): the handle keeps the map alive and gives the same
    /// bytes back without a borrow of the reader. Panics if the range is not inside the map.
    ///
    /// The caller pins only a payload it verified (checksum and position) under a published
    /// header: bytes that the writer completed before publishing and never writes again.
    pub(crate) fn pin(map: &Arc<ReadMap>, addr: usize, len: usize) -> Pinned {
        let base = map.region.ptr.as_ptr() as usize;
        let start = addr
            .checked_sub(base)
            .unwrap_or_else(|| out_of_range(addr, len, map.region.len));
        check_range(start, len, map.region.len);
        Pinned {
            map: Arc::clone(map),
            start,
            len,
        }
    }
}

impl Pinned {
    /// The pinned payload.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `[start, start + len)` is inside the region (checked in `pin`), whose
        // memory lives as long as the `Arc<ReadMap>` this handle holds: a mapping is unmapped,
        // and a copy freed, only when the last map handle drops, and the slice borrows
        // `self`. The pointer carries the region's provenance. The bytes do not change while
        // borrowed: `pin` is only given payloads verified under a published header (the
        // writer completed them before its release store, which the reader's acquire load
        // synchronised with), and no kekbit process writes a published byte again: the
        // writer appends after them, a seal's space release punches holes only in whole
        // pages past the seal, a crashed writer's recovery rewrites only what follows the
        // last valid record, and pruning unlinks files, never truncating them (the channel's
        // contract in the module docs excludes anyone else writing or shrinking the file).
        // A private copy is written only before it is shared. So the slice is immutable
        // memory for as long as it is borrowed.
        unsafe { std::slice::from_raw_parts(self.map.region.at(self.start), self.len) }
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
    /// costs none of that, and the unmapping flushes the TLB once per batch of pages.
    /// Nothing else changes: the dirty state moves to the page cache, and a later access
    /// maps the page again with the bytes it held. Best effort: a refused `madvise` only
    /// leaves the pages mapped.
    fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        check_range(offset, len, self.len);
        match &self.backing {
            Backing::Mapped(map) => {
                let page = page_size();
                let from = offset.next_multiple_of(page).max(page);
                let to = (offset + len) / page * page;
                if to >= from + UNMAP_BEFORE_SYNC * page {
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
        Ok(WriteMap {
            region: Arc::new(Region::mapped(map)),
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

/// A doorbell: the first 32-bit word of a small file that every process mapping it shares
/// read-write, on which a journal's writer rings after it publishes and readers wait with a
/// futex (docs/FORMAT.md, "The doorbell file"). Bit 0 says that someone is about to sleep;
/// bits 1 to 31 count rings (wrapping). The word holds no data: any value is valid.
pub(crate) struct Bell {
    region: Region,
}

/// Bytes of the doorbell file that are mapped (the file is at least this long).
pub(crate) const BELL_LEN: usize = 8;

impl Bell {
    /// Maps the first [`BELL_LEN`] bytes of `file`, which must be open for reading and
    /// writing and at least that long (the caller checked).
    pub(crate) fn map(file: &File) -> io::Result<Bell> {
        let map = MmapOptions::new().len(BELL_LEN).map_raw(file)?;
        Ok(Bell {
            region: Region::mapped(map),
        })
    }

    fn word(&self) -> &AtomicU32 {
        check_range(0, 4, self.region.len);
        // SAFETY: the word is inside the region (checked above) and 4-aligned (a mapping
        // starts on a page). The region is mapped read-write and shared, and every process
        // accesses this word only atomically (this type is the only code that touches it);
        // the reference borrows `self`, so it cannot outlive the mapping.
        unsafe { AtomicU32::from_ptr(self.region.at(0).cast::<u32>()) }
    }

    /// Rings after a publication: counts it, and wakes every sleeper if one said it would
    /// sleep (one atomic add when no one waits; the system call only when someone does).
    pub(crate) fn ring(&self) {
        let word = self.word();
        if word.fetch_add(2, Ordering::SeqCst) & 1 != 0 {
            word.fetch_and(!1, Ordering::SeqCst);
            self.wake();
        }
    }

    /// Says that the caller is about to sleep and returns the word to pass to
    /// [`Bell::wait`]: its ring count (bits 1 to 31) tells whether a ring came since the
    /// last call. A ring after this call wakes the sleeper (or makes it not sleep).
    pub(crate) fn arm(&self) -> u32 {
        self.word().fetch_or(1, Ordering::SeqCst) | 1
    }

    /// Sleeps until a ring, `timeout`, or a spurious wake-up; returns at once if the word is
    /// no longer `armed` (a ring came in between).
    pub(crate) fn wait(&self, armed: u32, timeout: std::time::Duration) {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: FUTEX_WAIT reads the 4-byte word at the pointer (inside the region, aligned:
        // see `word`) and the timespec, alive for the call; it writes no memory. The word is
        // in a shared file mapping, so the futex is a shared one (no FUTEX_PRIVATE_FLAG) that
        // wakers in other processes reach.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word().as_ptr(),
                libc::FUTEX_WAIT,
                armed,
                &ts as *const libc::timespec,
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }

    /// Wakes every sleeper on the word, without ringing.
    pub(crate) fn wake(&self) {
        // SAFETY: FUTEX_WAKE only uses the word's address as a key (inside the region, see
        // `word`); it reads and writes no memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.word().as_ptr(),
                libc::FUTEX_WAKE,
                i32::MAX,
                std::ptr::null::<libc::timespec>(),
                std::ptr::null::<u32>(),
                0u32,
            )
        };
    }
}

/// The first stretch of `file` within the file offsets `[from, to)` that may hold data, as
/// `(start, end)`, found with `lseek(SEEK_DATA)` and `lseek(SEEK_HOLE)`: holes (never
/// written, never allocated) are skipped without reading, or mapping, a byte of them. `None`
/// when only holes remain. Where the file system cannot tell, all of `[from, to)` may hold
/// data. Moves the file's offset, which the crate never uses (it reads with `pread`).
pub(crate) fn next_data(file: &File, from: u64, to: u64) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd;
    if from >= to {
        return None;
    }
    let seek = |at: u64, whence: libc::c_int| {
        let at = libc::off_t::try_from(at).ok()?;
        // SAFETY: plain system call on a descriptor that `file` keeps open for the duration of
        // the call; no memory is passed.
        let found = unsafe { libc::lseek(file.as_raw_fd(), at, whence) };
        Some(u64::try_from(found).map_err(|_| io::Error::last_os_error()))
    };
    let start = match seek(from, libc::SEEK_DATA) {
        Some(Ok(start)) => start,
        // Nothing but holes from `from` to the end of the file.
        Some(Err(e)) if e.raw_os_error() == Some(libc::ENXIO) => return None,
        _ => return Some((from, to)),
    };
    if start >= to {
        return None;
    }
    let end = match seek(start, libc::SEEK_HOLE) {
        Some(Ok(end)) if end > start => end.min(to),
        _ => to,
    };
    Some((start, end))
}

/// Whether `file` has storage for all of its first `len` bytes: no hole before `len`
/// (`lseek(SEEK_HOLE)` from 0 finds the first at `len` or later) and at least `len` bytes of
/// blocks allocated. `false` when the system cannot tell, so that the caller reserves.
pub(crate) fn fully_allocated(file: &File, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    if !file
        .metadata()
        .is_ok_and(|meta| meta.blocks().saturating_mul(512) >= len)
    {
        return false;
    }
    let Ok(len_off) = libc::off_t::try_from(len) else {
        return false;
    };
    // SAFETY: plain system call on a descriptor that `file` keeps open for the duration of
    // the call; no memory is passed. It moves the file's offset, which the crate never uses.
    let hole = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_HOLE) };
    hole >= len_off
}

/// Takes a writer's lock on `file` without blocking: an exclusive open-file-description lock
/// (`fcntl(F_OFD_SETLK)`, a write lock over the writer's range, [`WRITER_RANGE`]), which
/// [`lock_held`] observes without taking any lock, and, under it, an exclusive `flock`, which
/// writers of format 1 that predate the OFD lock take. `WouldBlock` if another open file
/// description holds either. Both live on the open file: the OS releases them when the file
/// (and every mapping of it) is closed, or the process dies. Needs `file` open for writing.
pub(crate) fn try_lock_writer(file: &File) -> Result<(), std::fs::TryLockError> {
    use std::fs::TryLockError;
    let took_ofd = match ofd_lock(file, OFD_SET, LockKind::Write, WRITER_RANGE) {
        Ok(true) => true,
        Ok(false) => return Err(TryLockError::WouldBlock),
        // No OFD locks here: the `flock` alone is the lock (and `lock_held` probes it).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
        Err(e) => return Err(TryLockError::Error(e)),
    };
    let flock = file.try_lock();
    if flock.is_err() && took_ofd {
        let _ = ofd_lock(file, OFD_SET, LockKind::Unlock, WRITER_RANGE);
    }
    flock
}

/// Whether another open file description holds a writer's lock on `file` (see
/// [`try_lock_writer`]), asked with `fcntl(F_OFD_GETLK)` over the first byte of the writer's
/// range: a query, not a lock, so that a reader's probe can never make a writer's (or a
/// recovery's) `try_lock_writer` fail, and one that the readers' locks on [`MAPPING_BYTE`]
/// do not answer. Where the system has no OFD locks, falls back to probing the `flock` with a
/// shared lock, which can make a concurrent `try_lock_writer` fail for that moment.
pub(crate) fn lock_held(file: &File) -> io::Result<bool> {
    match ofd_lock(file, OFD_GET, LockKind::Write, (0, 1)) {
        Ok(free) => Ok(!free),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(false)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The byte range `(start, len)` of a writer's OFD lock: everything below [`MAPPING_BYTE`].
const WRITER_RANGE: (u64, u64) = (0, MAPPING_BYTE);

/// The byte (far past the end of any channel file: OFD locks may lie beyond it) that every
/// reader mapping a channel holds a shared lock on for as long as it maps it, and that a
/// journal recycling a pruned segment locks exclusively (docs/FORMAT.md, "Recycled
/// segments").
const MAPPING_BYTE: u64 = 1 << 62;

/// What [`lock_mapping_shared`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MappingLock {
    /// The shared lock is held: the file cannot be recycled while `file` stays open.
    Held,
    /// An exclusive lock on the mapping byte is held elsewhere: the file is being recycled
    /// (it was pruned), and must not be read as what its name said.
    Recycling,
    /// No lock could be placed for a reason that does not concern recycling (no OFD locks
    /// on this system, or a writer of kekbit 0.5.0 holding the whole file): read without one.
    /// Nothing recycles a file without taking the exclusive OFD lock, so a writer that could
    /// recycle would have excluded this reader by then.
    Unavailable,
}

/// Takes the shared lock readers hold on [`MAPPING_BYTE`] while they map `file` (released
/// when `file` is closed), without blocking.
pub(crate) fn lock_mapping_shared(file: &File) -> io::Result<MappingLock> {
    let byte = (MAPPING_BYTE, 1);
    match ofd_lock(file, OFD_SET, LockKind::Read, byte) {
        Ok(true) => Ok(MappingLock::Held),
        Ok(false) => {
            // Who holds it: a lock on exactly the mapping byte is a recycler's; a lock over
            // the whole file (`l_len` 0) is a writer of kekbit 0.5.0, which never recycles.
            match ofd_conflict(file, LockKind::Read, byte)? {
                Some((start, _)) if start == MAPPING_BYTE => Ok(MappingLock::Recycling),
                _ => Ok(MappingLock::Unavailable),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(MappingLock::Unavailable),
        Err(e) => Err(e),
    }
}

/// Takes the exclusive lock on [`MAPPING_BYTE`] without blocking: `Ok(true)` if no reader
/// holds its shared lock (no one maps the file), `Ok(false)` if one does or the system has
/// no OFD locks (recycling is then never safe). Needs `file` open for writing.
pub(crate) fn try_lock_mapping_exclusive(file: &File) -> io::Result<bool> {
    match ofd_lock(file, OFD_SET, LockKind::Write, (MAPPING_BYTE, 1)) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        other => other,
    }
}

/// Releases the exclusive lock of [`try_lock_mapping_exclusive`].
pub(crate) fn unlock_mapping(file: &File) -> io::Result<()> {
    ofd_lock(file, OFD_SET, LockKind::Unlock, (MAPPING_BYTE, 1)).map(drop)
}

#[derive(Clone, Copy)]
enum LockKind {
    Read,
    Write,
    Unlock,
}

impl LockKind {
    fn l_type(self) -> libc::c_short {
        (match self {
            LockKind::Read => libc::F_RDLCK,
            LockKind::Write => libc::F_WRLCK,
            LockKind::Unlock => libc::F_UNLCK,
        }) as libc::c_short
    }
}

const OFD_SET: libc::c_int = libc::F_OFD_SETLK;
const OFD_GET: libc::c_int = libc::F_OFD_GETLK;

/// A `libc::flock` for `kind` over `(start, len)` bytes (`len` 0: to the end of the file and
/// beyond).
fn flock_struct(kind: LockKind, (start, len): (u64, u64)) -> io::Result<libc::flock> {
    let range = |v: u64| {
        libc::off_t::try_from(v)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "lock range too large"))
    };
    // SAFETY: `libc::flock` is a C struct of plain integers, for which all zeros is a valid
    // value (and the one F_OFD_* commands want in `l_pid`).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind.l_type();
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = range(start)?;
    lock.l_len = range(len)?;
    Ok(lock)
}

/// Runs one `fcntl` OFD command on `lock`.
fn ofd_fcntl(file: &File, cmd: libc::c_int, lock: &mut libc::flock) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fcntl` with an F_OFD_* command reads (and, for GETLK, writes) one `flock`
    // struct through the pointer, which points to `lock`, alive and exclusively borrowed for
    // the call; `file` keeps the descriptor open for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, lock as *mut libc::flock) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `fcntl` OFD lock command over `range`. For `F_OFD_SETLK`: `Ok(true)` if done,
/// `Ok(false)` if another lock conflicts. For `F_OFD_GETLK`: `Ok(true)` if the lock could be
/// placed (no conflicting lock), `Ok(false)` if one conflicts. `EINVAL` where OFD locks do not
/// exist (Linux before 3.15).
fn ofd_lock(file: &File, cmd: libc::c_int, kind: LockKind, range: (u64, u64)) -> io::Result<bool> {
    let mut lock = flock_struct(kind, range)?;
    match ofd_fcntl(file, cmd, &mut lock) {
        Ok(()) => Ok(cmd == OFD_SET || lock.l_type == libc::F_UNLCK as libc::c_short),
        Err(e)
            if cmd == OFD_SET && matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The range `(start, len)` of a lock that conflicts with `kind` over `range`, if any
/// (`F_OFD_GETLK`).
fn ofd_conflict(file: &File, kind: LockKind, range: (u64, u64)) -> io::Result<Option<(u64, u64)>> {
    let mut lock = flock_struct(kind, range)?;
    ofd_fcntl(file, OFD_GET, &mut lock)?;
    if lock.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some((lock.l_start as u64, lock.l_len as u64)))
}

/// Writes the dirty pages holding the first `len` bytes of `file` back to storage and waits
/// for them (`msync(MS_SYNC)` of a shared mapping made for the call, which on Linux syncs
/// that range of the file, with the metadata needed to read it, and not the rest of the
/// file's dirty pages). `file` must be open for reading and writing.
pub(crate) fn sync_start(file: &File, len: usize) -> io::Result<()> {
    let map = MmapOptions::new().len(len).map_raw(file)?;
    map.flush_range(0, len)
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

/// Releases the storage of the file range `[offset, offset + len)` of `file` without changing
/// its size (`fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`): the range reads as
/// zeros afterwards, from the file and through every mapping of it, and no mapping can fault
/// past the end of the file, since the end does not move. The kernel zeroes any partial
/// block at either end of the range in place. `EOPNOTSUPP` where the file system cannot
/// punch holes (and everywhere but Linux).
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: plain system call on a file descriptor that `file` keeps open for the duration
    // of the call; no memory is passed. It changes the file's contents, not memory this
    // process owns: pages of the range that are mapped read as zeros after it, which the
    // callers allow only over bytes no one reads as data (past a seal).
    range_call(file, offset, len, |fd, offset, len| unsafe {
        libc::fallocate(fd, mode, offset, len)
    })
}

/// Writes the dirty pages of the file range `[offset, offset + len)` of `file` back to the
/// device and waits for that writeback (`sync_file_range` with `WAIT_BEFORE | WRITE |
/// WAIT_AFTER`): no metadata and no flush of the device's cache, so nothing is durable by
/// it; the file system allocates the range's blocks (ext4 converts unwritten extents).
/// An error of this writeback is reported to this open file only: open `file` apart from
/// the file a mapping was made of, so that the syncs through that mapping still see every
/// writeback error of the pages they cover. `EOPNOTSUPP` everywhere but Linux.
pub(crate) fn write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: plain system call on a file descriptor that `file` keeps open for the duration
    // of the call; no memory is passed, and writing pages back changes no byte of the file
    // or of any mapping of it.
    range_call(file, offset, len, |fd, offset, len| unsafe {
        libc::sync_file_range(fd, offset, len, flags)
    })
}

/// Runs `call` with `file`'s descriptor and the range `[offset, offset + len)`, a Linux
/// system call returning 0 on success and -1 with `errno` set on failure; `EOPNOTSUPP`
/// everywhere but Linux.
fn range_call(
    file: &File,
    offset: u64,
    len: u64,
    call: impl FnOnce(libc::c_int, libc::off_t, libc::off_t) -> libc::c_int,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "range too large");
        let offset = libc::off_t::try_from(offset).map_err(|_| too_large())?;
        let len = libc::off_t::try_from(len).map_err(|_| too_large())?;
        if call(file.as_raw_fd(), offset, len) == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len, call);
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// The resident size, in KiB, of this process's mapping that starts at `addr`
    /// (`/proc/self/smaps`).
    fn resident_kib(addr: *const u8) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let start = format!("{:x}-", addr as usize);
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        assert!(lines.next().is_some(), "no mapping at {start}");
        let rss = lines.find(|l| l.starts_with("Rss:")).unwrap();
        rss.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn a_sync_of_many_pages_unmaps_them_from_the_writer_and_writes_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("channel");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let page = page_size();
        let len = 256 * page;
        file.set_len(len as u64).unwrap();
        let map = WriteMap::map(&file, len).unwrap();
        for p in 1..256 {
            map.store_relaxed(p * page, p as u64);
        }
        let addr = map.region.ptr.as_ptr();
        assert!(resident_kib(addr) >= 255 * page as u64 / 1024);
        // Up to the middle of the last page, as a sync up to a record there would.
        map.flush_range(0, len - page / 2).unwrap();
        // The header page and the last, partly synced page may stay mapped.
        assert!(resident_kib(addr) <= 2 * page as u64 / 1024);
        // The bytes are all there, in the mapping and in the file.
        let mut word = [0u8; 8];
        for p in 1..256 {
            assert_eq!(map.load(p * page), p as u64);
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut word, (p * page) as u64).unwrap();
            assert_eq!(u64::from_le_bytes(word), p as u64);
        }
        // A small sync leaves its pages mapped.
        map.flush_range(page, 8 * page).unwrap();
        assert!(resident_kib(addr) >= 9 * page as u64 / 1024);
    }

    // The model of the publish/acquire protocol: a writer thread stages each payload through
    // its raw pointer and then release-stores the header word; a reader thread acquire-loads
    // the word and only then takes the payload slice. On a heap buffer standing in for the
    // mapping (Miri cannot map files), through the same `WriteMap`/`ReadMap` code as the
    // mapped path. Under Miri (`cargo +nightly miri test --lib mmap::`), a payload read that
    // the acquire does not order after the writer's copy is a reported data race, and a write
    // through a pointer derived from a shared reference a reported aliasing violation.
    #[test]
    fn publish_then_acquire_hands_out_only_complete_payloads() {
        const RECORDS: usize = 6;
        const SLOT: usize = 32; // header word + up to 24 payload bytes
        let len = CHECKED_LEN + 8 + RECORDS * SLOT;
        let (reader, mut writer) = ReadMap::heap_pair(len);
        fn payload(i: usize) -> Vec<u8> {
            vec![i as u8 + 1; 1 + i * 4 % 24]
        }
        fn word(i: usize) -> u64 {
            (payload(i).len() as u64) << 8 | 0x5A
        }
        let base = CHECKED_LEN + 8;

        let writing = std::thread::spawn(move || {
            writer.overwrite_header(&[0xEE; CHECKED_LEN]);
            for i in 0..RECORDS {
                let offset = base + i * SLOT;
                let mut stage = writer.stage(offset + 8, SLOT - 8);
                stage.write_all(&payload(i)).unwrap();
                assert_eq!(stage.written(), &payload(i)[..]);
                writer.store_release(offset, word(i));
            }
            writer.store_release(CHECKED_LEN, RECORDS as u64);
            writer
        });
        for i in 0..RECORDS {
            let offset = base + i * SLOT;
            let found = loop {
                match reader.published(offset, |w| (w >> 8) as usize) {
                    Published::Nothing => std::thread::yield_now(),
                    Published::Word { word, payload } => break (word, payload),
                }
            };
            assert_eq!(found, (word(i), &payload(i)[..]), "record {i}");
        }
        let writer = writing.join().unwrap();
        assert_eq!(reader.load_acquire(CHECKED_LEN), RECORDS as u64);
        assert_eq!(writer.load(CHECKED_LEN), RECORDS as u64);
    }

    // A pinned payload keeps the memory alive after every other handle on it is gone, and
    // reads the published bytes (under Miri: a use after free or a race would be reported).
    #[test]
    fn a_pinned_payload_outlives_the_map_it_came_from() {
        let (reader, mut writer) = ReadMap::heap_pair(CHECKED_LEN + 64);
        let offset = CHECKED_LEN + 8;
        writer.stage(offset + 8, 16).write_all(b"pinned").unwrap();
        writer.store_release(offset, 6 << 8);
        let reader = Arc::new(reader);
        let (addr, len) = match reader.published(offset, |w| (w >> 8) as usize) {
            Published::Word { payload, .. } => (payload.as_ptr() as usize, payload.len()),
            Published::Nothing => panic!("the word was stored"),
        };
        let pinned = ReadMap::pin(&reader, addr, len);
        drop((reader, writer));
        let elsewhere = std::thread::spawn(move || pinned.bytes().to_vec());
        assert_eq!(elsewhere.join().unwrap(), b"pinned");
    }

    #[test]
    #[should_panic(expected = "outside a mapping")]
    fn a_pin_outside_the_map_panics() {
        let (reader, _writer) = ReadMap::heap_pair(CHECKED_LEN + 64);
        let reader = Arc::new(reader);
        let inside = reader.region.ptr.as_ptr() as usize;
        ReadMap::pin(&reader, inside + CHECKED_LEN + 60, 8);
    }

    #[test]
    fn discarded_staging_reads_as_zero_again() {
        let (reader, mut writer) = ReadMap::heap_pair(CHECKED_LEN + 64);
        let mut stage = writer.stage(CHECKED_LEN + 8, 16);
        assert!(stage.write_all(&[7; 17]).is_err());
        stage.write_all(&[7; 16]).unwrap();
        assert!(stage.overflowed());
        stage.discard();
        assert_eq!(stage.len(), 0);
        writer.store_release(CHECKED_LEN, 16 << 8);
        match reader.published(CHECKED_LEN, |w| (w >> 8) as usize) {
            Published::Word { payload, .. } => assert_eq!(payload, &[0; 16]),
            Published::Nothing => panic!("the word was stored"),
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "fcntl locks are system calls Miri does not run")]
    fn a_probe_sees_the_writer_lock_without_taking_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked");
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let (writer, rival, probe) = (open(), open(), File::open(&path).unwrap());
        assert!(!lock_held(&probe).unwrap());
        try_lock_writer(&writer).unwrap();
        assert!(lock_held(&probe).unwrap());
        // A probe holds nothing: the writer's locks are still the only ones, so a rival is
        // refused by them, and a writer taking the lock during probes never is.
        assert!(matches!(
            try_lock_writer(&rival),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        assert!(rival.try_lock().is_err(), "the flock is held too");
        drop(writer);
        assert!(!lock_held(&probe).unwrap());
        try_lock_writer(&rival).unwrap();
        assert!(lock_held(&probe).unwrap());
    }

    // Pins item 2's fix in the source: channel memory is held only as `MmapRaw` (which never
    // hands out a slice), and no pointer used for a write is derived from a reference. A
    // `Mmap`/`MmapMut` (whose `as_ptr` goes through `Deref` to `&[u8]`) or a `cast_mut` of a
    // `*const` would bring the undefined behaviour back.
    #[test]
    fn channel_memory_is_reached_only_through_raw_pointers() {
        // Regression: issue 11 item 2: writes through a pointer derived from `&[u8]`.
        let source = include_str!("mmap.rs");
        let code = &source[..source.find("#[cfg(test)]\nmod tests").unwrap()];
        for forbidden in [
            "Mmap,",
            "MmapMut",
            "map_mut(",
            ".map(file",
            "cast_mut()",
            "Deref",
        ] {
            assert!(!code.contains(forbidden), "src/mmap.rs uses `{forbidden}`");
        }
        assert!(code.contains("map_raw_read_only(file)") && code.contains("map_raw(file)"));
        let map = Region::mapped(MmapOptions::new().len(4096).map_anon().unwrap().into());
        let Backing::Mapped(raw) = &map.backing else {
            unreachable!()
        };
        assert_eq!(map.ptr.as_ptr(), raw.as_mut_ptr());
    }
}
