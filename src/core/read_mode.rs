//! How readers reach a channel's bytes: through a shared mapping, or a private copy.

use std::sync::atomic::{AtomicBool, Ordering};

/// How a reader reaches a channel's bytes, chosen when it opens the channel (see
/// [`ShmReader::open_with`](super::ShmReader::open_with) and [`set_read_mode`]).
///
/// ```
/// use kekbit::core::{shm_writer, storage_path, EncoderHandler, Header, ReadMode, Reader, ShmReader, TickUnit, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let mut writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
/// writer.write("before").unwrap();
/// let mut copy = ShmReader::open_with(storage_path(dir.path(), 3), ReadMode::Copied).unwrap();
/// writer.write("after").unwrap();
/// assert_eq!(copy.try_read().unwrap(), Some(&b"before"[..]));
/// assert_eq!(copy.try_read().unwrap(), None); // the copy was taken before "after"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReadMode {
    /// Map the file shared and read-only (the default): the reader sees records as the writer
    /// publishes them, in any process, at no cost per record. Like any mapped file, if another
    /// process shrinks the file while it is mapped, touching a page past its new end raises
    /// SIGBUS, which kills the reading process.
    #[default]
    Mapped,
    /// Copy the file into memory with `pread` when the reader opens it (only the stretches
    /// that hold data: holes are skipped unread) and read the copy. The reader sees the
    /// channel as it was when opened, never a record published later, costs up to the file's
    /// size in memory, and cannot be crashed by another process truncating the file: nothing
    /// is mapped. For tools that inspect journals at rest (`kekbit verify`, `dump`, `stats`).
    Copied,
}

static COPIED: AtomicBool = AtomicBool::new(false);

/// Sets, for the whole process, how readers opened from now on reach a channel's bytes:
/// [`ShmReader::open`](super::ShmReader::open), [`shm_reader`](super::shm_reader) and
/// everything in the journal layer that reads segments (journal readers, replay, `verify`,
/// `stats`, a recovery's scans). Defaults to [`ReadMode::Mapped`]. Readers already open keep
/// their mode.
///
/// ```
/// use kekbit::core::{read_mode, set_read_mode, ReadMode};
/// assert_eq!(read_mode(), ReadMode::Mapped);
/// set_read_mode(ReadMode::Copied);
/// assert_eq!(read_mode(), ReadMode::Copied);
/// # set_read_mode(ReadMode::Mapped);
/// ```
pub fn set_read_mode(mode: ReadMode) {
    COPIED.store(mode == ReadMode::Copied, Ordering::Relaxed);
}

/// The mode set by [`set_read_mode`].
///
/// ```
/// assert_eq!(kekbit::core::read_mode(), kekbit::core::ReadMode::Mapped);
/// ```
pub fn read_mode() -> ReadMode {
    if COPIED.load(Ordering::Relaxed) {
        ReadMode::Copied
    } else {
        ReadMode::Mapped
    }
}
