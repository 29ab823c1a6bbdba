//! The options of a mapped image, ending in `create` or `open`.

use std::marker::PhantomData;
use std::path::Path;

use bytemuck::Pod;

use super::{open, ImageError, MappedVec};
use crate::journal::{Durability, JournalOptions};

/// The segment capacity of an image's journal unless set ([`ImageOptions::journal`]): 4 MiB.
/// The journal holds only the changes since the last checkpoint, and opening it creates (and
/// reserves) one segment to append to, at a cost that follows the segment's size (on tmpfs,
/// reserving zeroes the pages: about 0.5 ms per MiB), so an image keeps its segments small to
/// reopen in a few milliseconds. Records are at most 1 MiB (a larger change is split).
///
/// ```
/// assert_eq!(kekbit::image::DEFAULT_SEGMENT_CAPACITY, 4 << 20);
/// ```
pub const DEFAULT_SEGMENT_CAPACITY: u64 = 4 << 20;

/// How to create or open a [`MappedVec`]: the caller's type tag and version (checked
/// against the file's header on every open), the initial capacity, and the journal's
/// options, among them the [`Durability`] that decides when a change is acknowledged.
///
/// ```
/// use kekbit::image::MappedVec;
/// use kekbit::journal::Durability;
/// let dir = tempfile::tempdir()?;
/// let mut v = MappedVec::<u32>::options()
///     .type_tag(0x5EED, 2)
///     .capacity(1000)
///     .durability(Durability::Never)
///     .create(dir.path())?;
/// v.push(7)?;
/// assert!(v.capacity() >= 1000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ImageOptions<T> {
    pub(crate) type_tag: u64,
    pub(crate) type_version: u32,
    pub(crate) capacity: u64,
    pub(crate) journal: JournalOptions,
    _type: PhantomData<fn() -> T>,
}

impl<T: Pod> Default for ImageOptions<T> {
    fn default() -> Self {
        ImageOptions::new()
    }
}

impl<T: Pod> ImageOptions<T> {
    /// The default options: type tag 0 version 0, no initial capacity, the journal's default
    /// options with segments of [`DEFAULT_SEGMENT_CAPACITY`] (durability
    /// [`Durability::EveryRecord`]).
    ///
    /// ```
    /// let options = kekbit::image::ImageOptions::<u8>::new();
    /// # drop(options);
    /// ```
    pub fn new() -> ImageOptions<T> {
        ImageOptions {
            type_tag: 0,
            type_version: 0,
            capacity: 0,
            journal: JournalOptions::new().segment_capacity(DEFAULT_SEGMENT_CAPACITY),
            _type: PhantomData,
        }
    }

    /// The caller's name for the element type and its version, recorded in the header at
    /// creation and required to match on every open (so that a file of one `#[repr(C)]`
    /// layout is never read as another of the same size). Defaults to 0 and 0.
    ///
    /// ```
    /// use kekbit::image::{ImageError, MappedVec};
    /// let dir = tempfile::tempdir().unwrap();
    /// drop(MappedVec::<u64>::options().type_tag(1, 1).create(dir.path()).unwrap());
    /// let err = MappedVec::<u64>::options().type_tag(1, 2).open(dir.path()).unwrap_err();
    /// assert!(matches!(err, ImageError::Mismatch { field: "type_version", .. }));
    /// ```
    pub fn type_tag(mut self, tag: u64, version: u32) -> ImageOptions<T> {
        self.type_tag = tag;
        self.type_version = version;
        self
    }

    /// The capacity (in elements) reserved at creation; the image grows beyond it as needed.
    /// Defaults to 0 (one page).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let v = kekbit::image::MappedVec::<u16>::options().capacity(5000).create(dir.path()).unwrap();
    /// assert_eq!(v.capacity(), 6144); // whole pages
    /// ```
    pub fn capacity(mut self, elements: u64) -> ImageOptions<T> {
        self.capacity = elements;
        self
    }

    /// When a change is acknowledged: when it is durable ([`Durability::EveryRecord`], the
    /// default), or earlier (see [`Durability`]); [`MappedVec::sync`] makes every change
    /// durable.
    ///
    /// ```
    /// use kekbit::journal::Durability;
    /// let options = kekbit::image::ImageOptions::<u8>::new().durability(Durability::EveryN(8));
    /// # drop(options);
    /// ```
    pub fn durability(mut self, durability: Durability) -> ImageOptions<T> {
        self.journal = self.journal.durability(durability);
        self
    }

    /// The options of the image's journal (segment capacity, largest record, durability,
    /// recovery mode). Defaults to [`JournalOptions::new`] with segments of
    /// [`DEFAULT_SEGMENT_CAPACITY`]. A change larger than the largest record is journaled as
    /// several changes.
    ///
    /// ```
    /// use kekbit::journal::JournalOptions;
    /// let journal = JournalOptions::new().segment_capacity(1 << 20).max_record_len(4096);
    /// let options = kekbit::image::ImageOptions::<u8>::new().journal(journal);
    /// # drop(options);
    /// ```
    pub fn journal(mut self, options: JournalOptions) -> ImageOptions<T> {
        self.journal = options;
        self
    }

    /// The options the image's journal is opened with (see
    /// [`journal`](ImageOptions::journal)): to compare with a journal of the same options, or
    /// to change one of them.
    ///
    /// ```
    /// use kekbit::image::{ImageOptions, DEFAULT_SEGMENT_CAPACITY};
    /// let options = ImageOptions::<u8>::new();
    /// assert_eq!(options.journal_options().segment_capacity_bytes(), DEFAULT_SEGMENT_CAPACITY);
    /// ```
    pub fn journal_options(&self) -> &JournalOptions {
        &self.journal
    }

    /// Creates a new, empty image in `dir` (created if needed): the image file and its
    /// journal directory. Fails with [`ImageError::AlreadyExists`] if there is one.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let v = kekbit::image::MappedVec::<u8>::options().create(dir.path()).unwrap();
    /// assert!(v.is_empty());
    /// ```
    pub fn create(self, dir: impl AsRef<Path>) -> Result<MappedVec<T>, ImageError> {
        open::create(dir.as_ref(), self)
    }

    /// Opens the image in `dir`: takes its lock, checks its header, maps its data without
    /// reading it, and replays the journal from the header's checkpoint (nothing after a
    /// clean close).
    ///
    /// ```
    /// use kekbit::image::MappedVec;
    /// let dir = tempfile::tempdir().unwrap();
    /// drop(MappedVec::<u8>::options().create(dir.path()).unwrap());
    /// let v = MappedVec::<u8>::options().open(dir.path()).unwrap();
    /// assert_eq!(v.open_report().replayed, 0);
    /// ```
    pub fn open(self, dir: impl AsRef<Path>) -> Result<MappedVec<T>, ImageError> {
        open::open(dir.as_ref(), self)
    }
}
