//! The private, copy-on-write mapping behind a mapped image (`crate::image`): the file's
//! data area mapped `MAP_PRIVATE`, so that what the process writes into it stays in the
//! process's own anonymous pages and never reaches the file by the kernel's writeback. The
//! image writes changed pages to the file itself, with `pwrite`, at a checkpoint, after the
//! journal records of those changes are durable (docs/FORMAT.md, "Mapped image").
//!
//! The memory is reached through the mapping's raw pointer only: a shared slice for `&self`
//! and an exclusive slice for `&mut self`, so the borrow checker orders every access. No
//! other process can change a private mapping's copied pages; pages not yet copied show the
//! file, which, by the image's contract, only this process writes (under its lock), and only
//! with the bytes the mapping already holds.

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
        self.ptr = NonNull::new(self.map.as_mut_ptr()).expect("a mapping is never at address 0");
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
