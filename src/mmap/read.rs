//! Readers' mappings: a read-only shared mapping of a channel file (or a private copy of it),
//! what an acquire load of a record header finds, and record payloads pinned past a borrow.

use super::*;

/// A read-only shared mapping of a whole channel file, or a private copy of it.
pub(crate) struct ReadMap {
    pub(super) region: Region,
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
    pub(super) fn heap_pair(len: usize) -> (ReadMap, WriteMap) {
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
