//! [`MappedVec`]: the `Vec`-like API. Every change is a redo record appended to the journal
//! before it is made in the mapping (which is private: the file sees it only at a
//! checkpoint).

use std::fs::File;
use std::marker::PhantomData;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};

use bytemuck::Pod;

use super::dirty::DirtyPages;
use super::file::{self, area_len};
use super::header::Slot;
use super::{redo, ImageError, ImageOptions};
use crate::journal::{AppendError, Journal};
use crate::mmap::CowMap;

/// A persistent, growable array of plain-old-data elements: the data lives in a file
/// mapped into memory in its in-memory representation, so a restart maps it instead of
/// decoding it. Every change is journaled first (a physical redo record in the image's
/// [`Journal`]); a [`checkpoint`](MappedVec::checkpoint) writes the changed pages to the
/// file. After a crash or power loss, opening replays the journal from the last checkpoint:
/// the image holds exactly the changes up to some point, including every change
/// acknowledged durable. One opener at a time (an advisory lock). Reads go through
/// [`Deref`] to `&[T]`; changes through the methods, each returning once journaled (and,
/// under the default [`Durability`](crate::journal::Durability), durable).
///
/// ```
/// use kekbit::image::MappedVec;
/// use bytemuck::{Pod, Zeroable};
///
/// #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
/// #[repr(C)]
/// struct Point { x: i32, y: i32 }
///
/// let dir = tempfile::tempdir()?;
/// {
///     let mut points = MappedVec::<Point>::options().type_tag(0x90, 1).create(dir.path())?;
///     points.push(Point { x: 1, y: 2 })?;
///     points.extend_from_slice(&[Point { x: 3, y: 4 }, Point { x: 5, y: 6 }])?;
///     points.set(0, Point { x: 0, y: 0 })?;
///     points.modify(1..3, |p| p.iter_mut().for_each(|p| p.x *= 10))?;
/// } // dropped: checkpointed
/// let points = MappedVec::<Point>::options().type_tag(0x90, 1).open(dir.path())?;
/// assert_eq!(points[..], [Point { x: 0, y: 0 }, Point { x: 30, y: 4 }, Point { x: 50, y: 6 }]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MappedVec<T: Pod> {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) map: CowMap,
    pub(super) journal: Journal,
    pub(super) len: usize,
    pub(super) capacity: usize,
    /// The header's current slot and its index.
    pub(super) slot: Slot,
    pub(super) slot_index: usize,
    pub(super) dirty: DirtyPages,
    /// The scatter record being built (kept to reuse its allocation).
    pub(super) record: Vec<u8>,
    /// The most elements one record carries.
    pub(super) chunk: usize,
    pub(super) poisoned: bool,
    pub(super) report: OpenReport,
    pub(super) _type: PhantomData<T>,
}

/// What opening an image found and did.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
/// assert_eq!(v.open_report().checkpoint, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// The header's checkpoint: the journal sequence number replay started from.
    pub checkpoint: u64,
    /// Changes replayed from the journal (0 after a clean close).
    pub replayed: u64,
}

impl<T: Pod> MappedVec<T> {
    /// The default [`ImageOptions`], to change before `create` or `open`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let v = kekbit::image::MappedVec::<f64>::options().create(dir.path()).unwrap();
    /// # drop(v);
    /// ```
    pub fn options() -> ImageOptions<T> {
        ImageOptions::new()
    }

    /// The number of elements.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(1).unwrap();
    /// assert_eq!(v.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// assert!(v.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many elements fit before the file must grow (whole pages).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let v = kekbit::image::MappedVec::<u64>::options().create(dir.path()).unwrap();
    /// assert_eq!(v.capacity(), 512); // one page
    /// ```
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The element at `index`, if any.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(9).unwrap();
    /// assert_eq!((v.get(0), v.get(1)), (Some(&9), None));
    /// ```
    pub fn get(&self, index: usize) -> Option<&T> {
        self.deref().get(index)
    }

    /// Appends `value`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(4).unwrap();
    /// assert_eq!(v[..], [4]);
    /// ```
    pub fn push(&mut self, value: T) -> Result<(), ImageError> {
        self.change(self.len + 1, self.len, bytemuck::bytes_of(&value))
    }

    /// Appends every element of `values`, journaled as one change (or as several, in order,
    /// when they exceed the journal's largest record).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.extend_from_slice(&[1, 2, 3]).unwrap();
    /// assert_eq!(v[..], [1, 2, 3]);
    /// ```
    pub fn extend_from_slice(&mut self, values: &[T]) -> Result<(), ImageError> {
        for part in values.chunks(self.chunk) {
            self.change(self.len + part.len(), self.len, bytemuck::cast_slice(part))?;
        }
        Ok(())
    }

    /// Removes and returns the last element, if any.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(4).unwrap();
    /// assert_eq!(v.pop().unwrap(), Some(4));
    /// assert_eq!(v.pop().unwrap(), None);
    /// ```
    pub fn pop(&mut self) -> Result<Option<T>, ImageError> {
        let Some(&last) = self.last() else {
            return Ok(None);
        };
        self.change(self.len - 1, self.len - 1, &[])?;
        Ok(Some(last))
    }

    /// Shortens the image to `len` elements (nothing if it is not longer). The file keeps
    /// its size: a mapped file is never shrunk.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.extend_from_slice(&[1, 2, 3]).unwrap();
    /// v.truncate(1).unwrap();
    /// assert_eq!(v[..], [1]);
    /// ```
    pub fn truncate(&mut self, len: usize) -> Result<(), ImageError> {
        if len >= self.len {
            return Ok(());
        }
        self.change(len, len, &[])
    }

    /// Removes every element.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(1).unwrap();
    /// v.clear().unwrap();
    /// assert!(v.is_empty());
    /// ```
    pub fn clear(&mut self) -> Result<(), ImageError> {
        self.truncate(0)
    }

    /// Makes room for at least `additional` more elements (growing the file and the
    /// mapping; no journal record, as capacity is not part of the state).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.reserve(100_000).unwrap();
    /// assert!(v.capacity() >= 100_000);
    /// ```
    pub fn reserve(&mut self, additional: usize) -> Result<(), ImageError> {
        let needed = self
            .len
            .checked_add(additional)
            .ok_or_else(|| self.too_large(usize::MAX))?;
        self.ensure_capacity(needed)
    }

    /// Replaces the element at `index`.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(1).unwrap();
    /// v.set(0, 2).unwrap();
    /// assert_eq!(v[0], 2);
    /// assert!(v.set(1, 0).is_err());
    /// ```
    pub fn set(&mut self, index: usize, value: T) -> Result<(), ImageError> {
        self.check_index(index)?;
        self.change(self.len, index, bytemuck::bytes_of(&value))
    }

    /// Replaces the elements at several indices as one atomic change (one scatter record):
    /// after a crash the image holds all of them or none. Fails, changing nothing, if an
    /// index is out of bounds or the writes do not fit in one journal record.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<i64>::options().create(dir.path()).unwrap();
    /// v.extend_from_slice(&[100; 1000]).unwrap();
    /// v.set_many(&[(3, 70), (900, 130)]).unwrap(); // a transfer: both or neither
    /// assert_eq!((v[3], v[900]), (70, 130));
    /// ```
    pub fn set_many(&mut self, writes: &[(usize, T)]) -> Result<(), ImageError> {
        self.refuse_if_poisoned()?;
        if writes.is_empty() {
            // Nothing to change: no record (a record that changes no page would outlive the
            // close, whose checkpoint only runs for dirty pages, and be replayed).
            return Ok(());
        }
        if let Some(&(index, _)) = writes.iter().find(|(i, _)| *i >= self.len) {
            self.check_index(index)?;
        }
        let size = writes.len().saturating_mul(8 + size_of::<T>());
        if size > self.chunk * size_of::<T>() {
            return Err(ImageError::Unsupported {
                path: self.path.clone(),
                reason: format!("{} writes do not fit in one journal record", writes.len()),
            });
        }
        let entries = writes
            .iter()
            .map(|(i, v)| (*i as u64, bytemuck::bytes_of(v)));
        redo::encode_scatter_into(&mut self.record, self.len as u64, entries);
        let appended = self.journal.append(&self.record);
        self.journaled(appended)?;
        for (index, value) in writes {
            self.apply(self.len as u64, *index as u64, bytemuck::bytes_of(value))?;
        }
        Ok(())
    }

    /// Removes the element at `index` and returns it, moving the last element into its place.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.extend_from_slice(&[1, 2, 3]).unwrap();
    /// assert_eq!(v.swap_remove(0).unwrap(), 1);
    /// assert_eq!(v[..], [3, 2]);
    /// ```
    pub fn swap_remove(&mut self, index: usize) -> Result<T, ImageError> {
        self.check_index(index)?;
        let (removed, last) = (self[index], self[self.len - 1]);
        if index == self.len - 1 {
            self.change(index, index, &[])?;
        } else {
            self.change(self.len - 1, index, bytemuck::bytes_of(&last))?;
        }
        Ok(removed)
    }

    /// Changes the elements of `range` in place through `f`, and journals the elements that
    /// changed (from the first to the last that differ) as one change (or several, in order,
    /// beyond the journal's largest record). `f` works on a copy: the change is made, and
    /// seen, only after its record is journaled; if `f` panics, nothing changes.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u32>::options().create(dir.path()).unwrap();
    /// v.extend_from_slice(&[1, 2, 3, 4]).unwrap();
    /// let sum = v.modify(1..3, |s| { s[0] += 10; s.iter().sum::<u32>() }).unwrap();
    /// assert_eq!((sum, &v[..]), (15, &[1, 12, 3, 4][..]));
    /// ```
    pub fn modify<R>(
        &mut self,
        range: Range<usize>,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> Result<R, ImageError> {
        if range.start > range.end || range.end > self.len {
            return Err(ImageError::OutOfBounds {
                index: range.end.max(range.start) as u64,
                len: self.len as u64,
            });
        }
        let mut copy = self[range.clone()].to_vec();
        let result = f(&mut copy);
        let old = &self[range.clone()];
        let same = |i: &usize| bytemuck::bytes_of(&old[*i]) == bytemuck::bytes_of(&copy[*i]);
        let Some(first) = (0..copy.len()).find(|i| !same(i)) else {
            return Ok(result);
        };
        let last = (0..copy.len())
            .rev()
            .find(|i| !same(i))
            .expect("one differs");
        let mut at = range.start + first;
        for part in copy[first..=last].chunks(self.chunk) {
            self.change(self.len, at, bytemuck::cast_slice(part))?;
            at += part.len();
        }
        Ok(result)
    }

    /// Makes every change so far durable (a sync of the journal).
    ///
    /// ```
    /// use kekbit::journal::Durability;
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options()
    ///     .durability(Durability::Never).create(dir.path()).unwrap();
    /// v.push(1).unwrap();
    /// assert_eq!(v.durable_changes(), 0);
    /// v.sync().unwrap();
    /// assert_eq!(v.durable_changes(), 1);
    /// ```
    pub fn sync(&self) -> Result<(), ImageError> {
        self.journal.sync()?;
        Ok(())
    }

    /// The number of changes ever made (the journal's next sequence number).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.extend_from_slice(&[1, 2]).unwrap();
    /// v.pop().unwrap();
    /// assert_eq!(v.changes(), 2);
    /// ```
    pub fn changes(&self) -> u64 {
        self.journal.next_sequence()
    }

    /// How many of the [`changes`](MappedVec::changes) are known durable: every change
    /// numbered below it survives a power loss.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(1).unwrap();
    /// assert_eq!(v.durable_changes(), 1); // Durability::EveryRecord by default
    /// ```
    pub fn durable_changes(&self) -> u64 {
        self.journal.durable_count()
    }

    /// What opening found and did.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// assert_eq!(v.open_report().replayed, 0);
    /// ```
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// The image file's path.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// assert!(v.path().starts_with(dir.path()));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check_index(&self, index: usize) -> Result<(), ImageError> {
        if index < self.len {
            Ok(())
        } else {
            Err(ImageError::OutOfBounds {
                index: index as u64,
                len: self.len as u64,
            })
        }
    }

    fn too_large(&self, elements: usize) -> ImageError {
        ImageError::Unsupported {
            path: self.path.clone(),
            reason: format!("a capacity of {elements} elements is too large"),
        }
    }

    pub(super) fn refuse_if_poisoned(&self) -> Result<(), ImageError> {
        if self.poisoned {
            return Err(ImageError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// One change: grows the file if needed, journals the redo record, then makes the change
    /// in the mapping. A failed append makes no change, and refuses further work (the journal
    /// may hold the record, or be poisoned by a failed sync).
    fn change(&mut self, new_len: usize, index: usize, bytes: &[u8]) -> Result<(), ImageError> {
        self.refuse_if_poisoned()?;
        self.ensure_capacity(new_len)?;
        let header = redo::write_header(new_len as u64, index as u64);
        let appended = self.journal.append_parts(&header, bytes);
        self.journaled(appended)?;
        self.apply(new_len as u64, index as u64, bytes)
    }

    /// The outcome of appending a change's record: a failure poisons the image.
    fn journaled(&mut self, appended: Result<u64, AppendError>) -> Result<(), ImageError> {
        if let Err(e) = appended {
            self.poisoned = true;
            return Err(e.into());
        }
        Ok(())
    }

    /// Makes a journaled change in the mapping (also used by replay): the new bytes at
    /// `index`, then the length.
    pub(super) fn apply(
        &mut self,
        new_len: u64,
        index: u64,
        bytes: &[u8],
    ) -> Result<(), ImageError> {
        let new_len = usize::try_from(new_len).map_err(|_| self.too_large(usize::MAX))?;
        self.ensure_capacity(new_len)?;
        let start = index as usize * size_of::<T>(); // index + count <= new_len: no overflow
        let end = start + bytes.len();
        self.map.bytes_mut()[start..end].copy_from_slice(bytes);
        self.dirty.mark(start, end);
        self.len = new_len;
        Ok(())
    }

    /// Grows the file and the mapping to hold at least `needed` elements (at least doubling).
    fn ensure_capacity(&mut self, needed: usize) -> Result<(), ImageError> {
        if needed <= self.capacity {
            return Ok(());
        }
        let target = needed.max(self.capacity.saturating_mul(2));
        let area = area_len(target as u64, size_of::<T>())
            .or_else(|| area_len(needed as u64, size_of::<T>()))
            .ok_or_else(|| self.too_large(needed))?;
        file::grow(&self.path, &self.file, area)?;
        self.map
            .grow(area)
            .map_err(file::io_err(&self.path, "remapping the grown image"))?;
        self.capacity = area / size_of::<T>();
        Ok(())
    }
}

impl<T: Pod> Deref for MappedVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        bytemuck::cast_slice(&self.map.bytes()[..self.len * size_of::<T>()])
    }
}

impl<T: Pod> Drop for MappedVec<T> {
    /// Checkpoints (best effort: a failure cannot be reported from here, and the journal
    /// still holds every change; see [`MappedVec::close`] to see the error), so that the next
    /// open replays nothing.
    fn drop(&mut self) {
        if !self.poisoned {
            let _ = self.checkpoint();
        }
    }
}

impl<T: Pod> std::fmt::Debug for MappedVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedVec")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .field("changes", &self.changes())
            .finish()
    }
}
