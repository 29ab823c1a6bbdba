//! The channel reader and its non-blocking iterator.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{self, Binder, Frame, Limits};
use super::header::{HEADER_LEN, OFF_CLOSED_AT};
use super::open_reader::{mapping_locked, read_header};
use super::records::Records;
use super::timeout::Watch;
use super::{read_mode, ChannelError, Header, InvalidPosition, ReadError, ReadMode, TimeoutReader};
use crate::mmap::{Pinned, ReadMap};

/// Reads records from a channel.
///
/// Reads never block: [`try_read`](Reader::try_read) returns `Ok(None)` when nothing new
/// has been published yet. A returned record borrows the reader, so it cannot outlive the
/// mapping it lives in; copy it (`to_vec()`) to keep it.
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
/// let mut reader = shm_reader(dir.path(), 1).unwrap();
/// assert_eq!(reader.try_read().unwrap(), None);
/// writer.write("hello").unwrap();
/// assert_eq!(reader.try_read().unwrap(), Some(&b"hello"[..]));
/// assert_eq!(reader.position(), 16);
/// ```
pub trait Reader {
    /// The next record, `Ok(None)` if none has been published yet, or an error: the channel
    /// is closed ([`ReadError::Closed`]), abandoned ([`ReadError::Timeout`]), or damaged at
    /// the reader's position (the reader stays there).
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, ReadError, Reader, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let mut reader = shm_reader(dir.path(), 1).unwrap();
    /// writer.write("one").unwrap();
    /// writer.close().unwrap();
    /// assert_eq!(reader.try_read().unwrap(), Some(&b"one"[..]));
    /// assert!(matches!(reader.try_read(), Err(ReadError::Closed { .. })));
    /// ```
    fn try_read(&mut self) -> Result<Option<&[u8]>, ReadError>;

    /// Data-area offset of the next record to read: save it to resume later with
    /// [`move_to`](Reader::move_to).
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let second = { writer.write("a").unwrap(); writer.write("b").unwrap() };
    /// let mut reader = shm_reader(dir.path(), 1).unwrap();
    /// reader.try_read().unwrap();
    /// assert_eq!(reader.position(), second);
    /// ```
    fn position(&self) -> u64;

    /// Moves the reader to `position`, which must be the start of a published record or the
    /// end of the published data. Refused when unaligned, inside a record, beyond the
    /// published data, or beyond a damaged record.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// writer.write("first").unwrap();
    /// let saved = writer.write("second").unwrap();
    /// let mut reader = shm_reader(dir.path(), 1).unwrap();
    /// reader.move_to(saved).unwrap();
    /// assert_eq!(reader.try_read().unwrap(), Some(&b"second"[..]));
    /// ```
    fn move_to(&mut self, position: u64) -> Result<u64, InvalidPosition>;
}

/// What a reader's position holds (see `ShmReader::peek`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Nothing published (or, for a durable-only reader, nothing durable) yet.
    Nothing,
    /// A closing marker.
    Closing,
    /// A record (or damage).
    Record,
}

/// The mapped channel: what a reader and its iterator share immutably.
pub(crate) struct Channel {
    pub(super) map: Arc<ReadMap>,
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) header: Header,
    pub(super) binder: Binder,
    pub(super) limits: Limits,
}

/// A reader's mutable state.
pub(crate) struct Cursor {
    pub(super) position: u64,
    /// Data records before `position` in the channel (what a resynchronisation mark there
    /// must say).
    pub(super) ordinal: u64,
    pub(super) durable_only: bool,
    pub(super) durable: u64,
    pub(super) closed: Option<(u64, Vec<u8>, u32)>,
    pub(super) watch: Option<Watch>,
}

/// The memory-mapped [`Reader`] of one channel, created by [`shm_reader`](super::shm_reader). Any number of
/// readers, in any processes, can read a channel while its writer appends.
pub struct ShmReader {
    pub(crate) chan: Channel,
    pub(crate) cursor: Cursor,
}

impl ShmReader {
    /// Opens the channel file at `path` for reading (see [`shm_reader`](super::shm_reader), which finds the file
    /// from a channel id).
    ///
    /// ```
    /// use kekbit::core::{shm_writer, storage_path, EncoderHandler, Header, ShmReader, TickUnit};
    /// let dir = tempfile::tempdir().unwrap();
    /// let _writer = shm_writer(dir.path(), &Header::new(1, 8, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let reader = ShmReader::open(storage_path(dir.path(), 8)).unwrap();
    /// assert_eq!(reader.header().channel_id(), 8);
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<ShmReader, ChannelError> {
        Self::open_with(path, read_mode())
    }

    /// Opens the channel file at `path` for reading in the given [`ReadMode`], whatever the
    /// process-wide [`set_read_mode`](super::set_read_mode) says.
    ///
    /// ```
    /// use kekbit::core::{shm_writer, storage_path, EncoderHandler, Header, ReadMode, Reader, ShmReader, TickUnit, Writer};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 8, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// writer.write("kept").unwrap();
    /// writer.close().unwrap(); // its mapping would get SIGBUS below
    /// let path = storage_path(dir.path(), 8);
    /// let mut reader = ShmReader::open_with(&path, ReadMode::Copied).unwrap();
    /// std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    /// assert_eq!(reader.try_read().unwrap(), Some(&b"kept"[..])); // no SIGBUS: a copy
    /// ```
    pub fn open_with(path: impl AsRef<Path>, mode: ReadMode) -> Result<ShmReader, ChannelError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ChannelError::NotFound { path: path.clone() }
            } else {
                ChannelError::Io {
                    path: path.clone(),
                    action: "opening the channel",
                    source,
                }
            }
        })?;
        // Locked before the header is read, so that the header is the one of what stays
        // mapped: a recycler never rewrites a file any reader holds this lock on
        // (docs/FORMAT.md, "Recycled segments").
        if !mapping_locked(&file, &path)? {
            return Err(ChannelError::NotFound { path });
        }
        let (header, _) = read_header(&file, &path)?;
        let len = header.file_len();
        let map = match mode {
            ReadMode::Mapped => super::map_cache::shared_map(&file, len as usize),
            ReadMode::Copied => ReadMap::copy(&file, len as usize).map(Arc::new),
        }
        .map_err(|source| match source.kind() {
            // Shrunk since its length was checked: as if it had been short then.
            io::ErrorKind::UnexpectedEof => ChannelError::Truncated {
                path: path.clone(),
                len: file.metadata().map_or(0, |m| m.len()),
                expected: len,
            },
            _ => ChannelError::Io {
                path: path.clone(),
                action: match mode {
                    ReadMode::Mapped => "mapping the channel",
                    ReadMode::Copied => "copying the channel",
                },
                source,
            },
        })?;
        let limits = Limits {
            capacity: header.capacity(),
            max_record_len: header.max_record_len(),
            marks: header.mark_shift() != 0,
        };

        Ok(ShmReader {
            chan: Channel {
                binder: Binder::new(header.channel_id()),
                map,
                file,
                path,
                header,
                limits,
            },
            cursor: Cursor {
                position: 0,
                ordinal: 0,
                durable_only: false,
                durable: 0,
                closed: None,
                watch: None,
            },
        })
    }

    /// The channel's header, as validated when the reader opened it.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let _w = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap();
    /// assert_eq!(reader.header().max_record_len(), 64);
    /// ```
    pub fn header(&self) -> &Header {
        &self.chan.header
    }

    /// The channel's file.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, storage_path, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let _w = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap();
    /// assert_eq!(reader.path(), storage_path(dir.path(), 2));
    /// ```
    pub fn path(&self) -> &Path {
        &self.chan.path
    }

    /// When `true`, the reader returns only records the writer has synced (at or below the
    /// durable watermark in the header); by default it returns every published record.
    ///
    /// ```
    /// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let mut reader = shm_reader(dir.path(), 2).unwrap();
    /// reader.set_durable_only(true);
    /// writer.write("pending").unwrap();
    /// assert_eq!(reader.try_read().unwrap(), None);
    /// writer.sync().unwrap();
    /// assert_eq!(reader.try_read().unwrap(), Some(&b"pending"[..]));
    /// ```
    pub fn set_durable_only(&mut self, durable_only: bool) {
        self.cursor.durable_only = durable_only;
    }

    /// The durable watermark the writer last published: records ending at or below this
    /// data-area offset were synced.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap();
    /// writer.write("x").unwrap();
    /// writer.flush().unwrap();
    /// assert_eq!(reader.durable_position(), 16);
    /// ```
    pub fn durable_position(&self) -> u64 {
        self.chan.durable_watermark()
    }

    /// The live `voided_from` word: 0, or the data-area offset plus one of the first record a
    /// tail truncation voided (a hint, see docs/FORMAT.md, "Truncating the tail").
    #[inline]
    pub(crate) fn voided_from(&self) -> u64 {
        self.chan.load_live(super::header::OFF_VOIDED_FROM)
    }

    /// Whether a writer still holds the channel's lock. A crashed writer's lock is released
    /// by the OS, so `false` with no closing marker means the writer died. The question is
    /// asked without taking any lock (`fcntl(F_OFD_GETLK)` on Linux), so probing never makes
    /// a writer, or a journal's recovery, fail to take the lock.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap();
    /// assert!(reader.writer_alive());
    /// drop(writer);
    /// assert!(!reader.writer_alive());
    /// ```
    pub fn writer_alive(&self) -> bool {
        crate::mmap::lock_held(&self.chan.file).unwrap_or(false)
    }

    /// The closing marker's trailer and checksum, once the reader has reached it.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// writer.close().unwrap();
    /// let mut reader = shm_reader(dir.path(), 2).unwrap();
    /// assert_eq!(reader.closing(), None);
    /// assert!(reader.try_read().is_err());
    /// assert_eq!(reader.closing().map(|(trailer, _)| trailer.len()), Some(0));
    /// ```
    pub fn closing(&self) -> Option<(&[u8], u32)> {
        self.cursor
            .closed
            .as_ref()
            .map(|(_, trailer, crc)| (trailer.as_slice(), *crc))
    }

    /// A non-blocking iterator over the records published so far. It ends (`None`) when it
    /// has caught up with the writer, and yields the error once when it meets damage or a
    /// timeout; the channel's closing marker ends it quietly. Calling `iter` again later
    /// continues where it stopped.
    ///
    /// ```
    /// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let mut reader = shm_reader(dir.path(), 2).unwrap();
    /// writer.write("a").unwrap();
    /// writer.write("b").unwrap();
    /// let seen: Vec<Vec<u8>> = reader.iter().map(|r| r.unwrap().to_vec()).collect();
    /// assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);
    /// writer.write("c").unwrap();
    /// assert_eq!(reader.iter().count(), 1);
    /// ```
    pub fn iter(&mut self) -> Records<'_> {
        Records::new(&self.chan, &mut self.cursor)
    }

    /// Turns this reader into one that declares the channel abandoned when its writer is
    /// silent for longer than the header's timeout (see [`TimeoutReader`]).
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let _w = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap().with_timeout();
    /// assert_eq!(reader.timeout(), std::time::Duration::from_secs(1));
    /// ```
    pub fn with_timeout(mut self) -> TimeoutReader {
        self.cursor.watch = Some(Watch::new(&self.chan));
        TimeoutReader::wrap(self)
    }
}

impl ShmReader {
    /// Closes the reader, leaving the unmapping of its channel to a background thread (see
    /// `map_cache::release_later`).
    pub(crate) fn release_later(self) {
        super::map_cache::release_later(self.chan.map);
    }

    /// A handle on the payload `[addr, addr + len)` that `try_read` just returned (`addr` is
    /// its slice's address), which keeps this reader's mapping (or copy) alive on its own.
    pub(crate) fn pin(&self, addr: usize, len: usize) -> Pinned {
        ReadMap::pin(&self.chan.map, addr, len)
    }

    /// Whether the word at the reader's position is a closing marker (not yet verified: the
    /// next `try_read` verifies it). Lets a caller decide to move on without a read.
    pub(crate) fn at_closing_marker(&self) -> bool {
        if self.cursor.closed.is_some() {
            return true;
        }
        let word = self
            .chan
            .map
            .load_acquire(HEADER_LEN + self.cursor.position as usize);
        frame::kind_of(word) == Some(frame::Kind::Closed)
    }

    /// Whether something other than a closing marker is published at the reader's position
    /// (a data record, or damage for `try_read` to report), whatever the durable-only
    /// setting: from one acquire load of its header word, `!at_closing_marker() && !at_end()`.
    /// Whether the reader's position holds a data record that verifies (checksum included):
    /// records go on here. Damage, a mark, a seal or the end of the data say no.
    pub(crate) fn at_verified_record(&self) -> bool {
        self.cursor.closed.is_none()
            && matches!(
                self.chan.frame_at(self.cursor.position),
                Ok(Frame::Data { .. })
            )
    }

    #[inline]
    pub(crate) fn at_record(&self) -> bool {
        if self.cursor.closed.is_some() {
            return false;
        }
        let word = self
            .chan
            .map
            .load_acquire(HEADER_LEN + self.cursor.position as usize);
        // A mark is not a record: the caller steps over it first (`skip_marks`), since what
        // follows it may be a seal.
        word != 0
            && !matches!(
                frame::kind_of(word),
                Some(frame::Kind::Closed | frame::Kind::Mark)
            )
    }

    /// Whether nothing at all is published at the reader's position (its header word is
    /// zero), whatever the durable-only setting.
    pub(crate) fn at_end(&self) -> bool {
        self.cursor.closed.is_none()
            && self
                .chan
                .map
                .load_acquire(HEADER_LEN + self.cursor.position as usize)
                == 0
    }

    /// Whether something is published at the reader's position (and, for a durable-only
    /// reader, durable): the next `try_read` will not return `Ok(None)`.
    pub(crate) fn has_next(&mut self) -> bool {
        self.peek() != Peek::Nothing
    }

    /// What is at the reader's position, from one acquire load of its header word (two
    /// loads could see nothing, then a closing marker published in between).
    pub(crate) fn peek(&mut self) -> Peek {
        if self.cursor.closed.is_some() {
            return Peek::Closing;
        }
        let position = self.cursor.position;
        let word = self.chan.map.load_acquire(HEADER_LEN + position as usize);
        if word == 0 {
            return Peek::Nothing;
        }
        let end = position + frame::frame_len(frame::len_of(word));
        if !self.cursor.visible(&self.chan, end) {
            return Peek::Nothing;
        }
        if frame::kind_of(word) == Some(frame::Kind::Closed) {
            Peek::Closing
        } else {
            // A data record, or damage for `try_read` to report.
            Peek::Record
        }
    }

    /// The verified closing marker the header's `closed_at` locator points to, as (position,
    /// trailer, checksum): a seal found without scanning. `None` if there is no locator or it
    /// does not point to a valid marker.
    pub(crate) fn located_closing(&self) -> Option<(u64, Vec<u8>, u32)> {
        let at = self.chan.map.load_acquire(OFF_CLOSED_AT).checked_sub(1)?;
        let capacity = self.chan.header.capacity();
        if !at.is_multiple_of(frame::RECORD_ALIGN) || at > capacity - frame::TRAILER_RESERVE {
            return None;
        }
        match self.chan.frame_at(at) {
            Ok(Frame::Closed { trailer, checksum }) => Some((at, trailer.to_vec(), checksum)),
            _ => None,
        }
    }

    /// End (exclusive, 8-aligned) of the last non-zero word at or after `from`, or `from`
    /// when all is zero: how far written bytes reach past a channel's valid records. Also
    /// `from` while a writer holds the channel: bytes past its records are in flight, not
    /// left behind, and some of them are being copied in with plain stores, which must not
    /// be read concurrently. Only the stretches of the file that may hold data are read: its
    /// holes, never written, are skipped unread, so that the scan costs what the file holds,
    /// not what its header claims (a sparse file claiming a terabyte holds little).
    pub(crate) fn written_extent(&self, from: u64) -> u64 {
        if self.writer_alive() {
            return from;
        }
        let base = HEADER_LEN as u64;
        if self.chan.header.is_recycled() {
            // Past the records of a recycled channel lie bytes of the file's earlier life,
            // which say nothing: only the word at the cut, which the writer keeps zero after
            // each record, tells a clean end from a torn (or lost) one.
            let word = self.chan.map.load_acquire((base + from) as usize);
            return if word == 0 { from } else { from + 8 };
        }
        let to = base + self.chan.header.capacity();
        let mut end = from;
        let mut next = base + from;
        while let Some((start, stop)) = self.chan.data_after(next, to) {
            let mut at = start.next_multiple_of(8).max(next);
            while at + 8 <= stop {
                if self.chan.map.load_acquire(at as usize) != 0 {
                    end = at + 8 - base;
                }
                at += 8;
            }
            next = stop;
        }
        end
    }
}
