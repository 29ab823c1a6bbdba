//! Errors of mapped images.

use std::path::PathBuf;

use crate::journal::{AppendError, JournalError};

/// Errors creating, opening, changing or checkpointing a [`MappedVec`](super::MappedVec).
///
/// ```
/// use kekbit::image::{ImageError, MappedVec};
/// let dir = tempfile::tempdir().unwrap();
/// let first = MappedVec::<u64>::options().create(dir.path()).unwrap();
/// let second = MappedVec::<u64>::options().open(dir.path());
/// assert!(matches!(second, Err(ImageError::Locked { .. })));
/// # drop(first);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Another open `MappedVec` (in this or another process) holds the image's lock.
    #[error("{}: the image is locked by another opener", path.display())]
    Locked {
        /// The image file (or, while creating, its journal directory).
        path: PathBuf,
    },
    /// `create` found an image already there.
    #[error("{}: an image already exists here", path.display())]
    AlreadyExists {
        /// The image file.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Neither header slot holds the image magic: not an image file (or one whose creation
    /// never completed).
    #[error("{}: not a kekbit image (no header slot has the magic)", path.display())]
    NotAnImage {
        /// The file.
        path: PathBuf,
    },
    /// Both header slots fail their checksum (or are otherwise unusable).
    #[error("{}: both header slots are damaged: {detail}", path.display())]
    CorruptHeader {
        /// The file.
        path: PathBuf,
        /// Why each slot was refused.
        detail: String,
    },
    /// A header field differs from what the opener expects (element type, tag, version,
    /// format or byte order): the file is refused rather than misread.
    #[error("{}: header field `{field}` is {found} in the file, but {expected} is expected", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The header field, as named in docs/FORMAT.md ("Mapped image").
        field: &'static str,
        /// What the opener expects.
        expected: u64,
        /// What the file holds.
        found: u64,
    },
    /// The file is shorter than its header's capacity needs.
    #[error("{}: the file is {file_len} bytes, but its header needs at least {needed}", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The file's length.
        file_len: u64,
        /// The length the header's capacity needs.
        needed: u64,
    },
    /// The journal does not hold the records from the header's checkpoint on, so the image
    /// cannot be brought up to date.
    #[error("{}: the image is checkpointed at change {checkpoint}, but the journal holds changes {first}..{next}", dir.display())]
    JournalGap {
        /// The journal's directory.
        dir: PathBuf,
        /// The header's checkpoint position.
        checkpoint: u64,
        /// The journal's first sequence number.
        first: u64,
        /// The journal's next sequence number.
        next: u64,
    },
    /// A journal record is not a valid change of this image.
    #[error("{}: journal record {seq} is not a valid change: {reason}", dir.display())]
    BadRecord {
        /// The journal's directory.
        dir: PathBuf,
        /// The record's sequence number.
        seq: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An index (or range end) at or past the length.
    #[error("index {index} out of bounds for length {len}")]
    OutOfBounds {
        /// The index given.
        index: u64,
        /// The image's length.
        len: u64,
    },
    /// The element type or a requested size cannot be stored.
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The image file.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
    /// A checkpoint, or journaling a change, failed: the file's or the journal's state is
    /// unknown, so the image refuses further work. Reopen it: the journal brings it back to
    /// a consistent state that holds every change acknowledged durable.
    #[error("{}: a checkpoint or a journal append failed; reopen the image", path.display())]
    Poisoned {
        /// The image file.
        path: PathBuf,
    },
    /// Opening, reading or pruning the journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Journaling a change failed; the change was not made.
    #[error(transparent)]
    Append(#[from] AppendError),
}
