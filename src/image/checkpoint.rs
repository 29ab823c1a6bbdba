//! The checkpoint: making the file's data area hold every change so far, so that the journal
//! before it can go. The order of its steps is what makes it crash-safe (docs/FORMAT.md,
//! "Mapped image", "Checkpoint"): journal durable, pages written, file synced, header slot
//! written and synced, journal pruned.

use bytemuck::Pod;

use super::dirty::PAGE;
use super::file;
use super::header::Slot;
use super::{ImageError, MappedVec};

/// What a checkpoint did.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let mut v = kekbit::image::MappedVec::<u64>::options().create(dir.path()).unwrap();
/// v.extend_from_slice(&[7; 1024]).unwrap(); // 8 KiB: two pages
/// let done = v.checkpoint().unwrap();
/// assert_eq!((done.pages_written, done.checkpoint), (2, 1));
/// assert_eq!(v.checkpoint().unwrap().pages_written, 0); // nothing changed since
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The 4 KiB pages written to the file.
    pub pages_written: usize,
    /// The checkpoint position now in the header: the number of changes the file holds.
    pub checkpoint: u64,
}

impl<T: Pod> MappedVec<T> {
    /// Writes the pages changed since the last checkpoint to the file and records, crash-
    /// atomically, that the file holds every change so far; then removes the journal's
    /// segments before that point. Its cost follows the pages changed, not the image's size.
    /// After a failure the image is poisoned (reopen it: the journal still holds every
    /// change since the previous checkpoint).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(1).unwrap();
    /// assert_eq!(v.checkpoint().unwrap().checkpoint, v.changes());
    /// ```
    pub fn checkpoint(&mut self) -> Result<Checkpoint, ImageError> {
        self.refuse_if_poisoned()?;
        let upto = self.journal.next_sequence();
        let unchanged = Slot {
            generation: self.slot.generation,
            ..self.next_slot(self.slot.checkpoint)
        };
        if self.dirty.count() == 0 && unchanged == self.slot {
            return Ok(Checkpoint {
                pages_written: 0,
                checkpoint: upto,
            });
        }
        let written = self
            .write_back(upto)
            .inspect_err(|_| self.poisoned = true)?;
        self.release_copies();
        self.dirty.clear();
        self.journal.prune_before(upto)?;
        Ok(Checkpoint {
            pages_written: written,
            checkpoint: upto,
        })
    }

    /// Checkpoints and closes the image, reporting what [`Drop`] cannot.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// v.push(1).unwrap();
    /// v.close().unwrap();
    /// ```
    pub fn close(mut self) -> Result<(), ImageError> {
        self.checkpoint().map(drop)
    }

    /// The header slot for the state now, at checkpoint position `checkpoint`.
    fn next_slot(&self, checkpoint: u64) -> Slot {
        Slot {
            layout: self.slot.layout,
            generation: self.slot.generation + 1,
            len: self.len as u64,
            capacity: self.capacity as u64,
            checkpoint,
        }
    }

    /// The steps that must complete, in order, or poison the image.
    fn write_back(&mut self, upto: u64) -> Result<usize, ImageError> {
        // 1. Every change whose effect is about to reach the file is durable in the journal.
        self.journal.sync()?;
        // 2. The changed pages, from this process's private copies to the file.
        let area = self.map.len();
        let mut written = 0;
        for (first, end) in self.dirty.runs() {
            let (start, stop) = (first * PAGE, (end * PAGE).min(area));
            file::write_area(
                &self.path,
                &self.file,
                start,
                &self.map.bytes()[start..stop],
            )?;
            written += end - first;
        }
        // 3. They are durable before the header says so.
        file::sync(&self.path, &self.file)?;
        // 4. The header's other slot, one generation up; durable before the journal goes.
        let slot = self.next_slot(upto);
        let index = 1 - self.slot_index;
        file::write_slot(&self.path, &self.file, index, &slot)?;
        file::sync(&self.path, &self.file)?;
        self.slot = slot;
        self.slot_index = index;
        Ok(written)
    }

    /// Drops the private copies of the pages just written: they read from the file (which
    /// holds the same bytes) again, and their memory returns to the page cache. Failing only
    /// costs memory, so it is not an error.
    fn release_copies(&mut self) {
        let area = self.map.len();
        for (first, end) in self.dirty.runs() {
            let (start, stop) = (first * PAGE, (end * PAGE).min(area));
            let _ = self.map.release_copies(start, stop - start);
        }
    }
}
