//! The channel writer.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::frame::{self, Binder, Kind, MAX_TRAILER_LEN, RECORD_HEADER_LEN};
use super::header::{HEADER_LEN, MARK_LEN, OFF_CLOSED_AT, OFF_DURABLE_WATERMARK, OFF_HEARTBEAT};
use super::pretouch::Pretoucher;
use super::syncing::{sync_range, SyncHandle};
use super::{Encodable, Handler, Header, WriteError};
use crate::fault::{self, IoOp};
use crate::mmap::WriteMap;

/// Writes records into a channel.
///
/// A writer is bound to one channel and is its only writer. [`write`](Writer::write)
/// publishes a record to readers at once (in every process); it becomes durable on storage
/// when [`flush`](Writer::flush) returns.
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis);
/// let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
/// assert_eq!(writer.write("first").unwrap(), 0);
/// assert_eq!(writer.write("second").unwrap(), 16);
/// writer.flush().unwrap();
/// ```
pub trait Writer {
    /// Encodes `data` (after the writer's handler chain) as one record and publishes it.
    /// Returns the record's position: its offset in the channel's data area, which a reader
    /// can [`move_to`](super::Reader::move_to).
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, WriteError, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 256, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// assert_eq!(writer.write(&[0u8; 60][..]).unwrap(), 0);
    /// assert_eq!(writer.write(&[0u8; 60][..]).unwrap(), 72);
    /// // 256 bytes, minus two 72-byte records, minus the 64-byte closing reserve: 48 left.
    /// assert!(matches!(writer.write(&[0u8; 60][..]), Err(WriteError::ChannelFull { available: 48, .. })));
    /// ```
    fn write<D: Encodable + ?Sized>(&mut self, data: &D) -> Result<u64, WriteError>;

    /// Tells readers the writer is alive without writing a record (see
    /// [`TimeoutReader`](super::TimeoutReader)).
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 30, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// let mut reader = shm_reader(dir.path(), 1).unwrap().with_timeout();
    /// std::thread::sleep(std::time::Duration::from_millis(40)); // longer than the 30 ms timeout
    /// writer.heartbeat().unwrap(); // so without this the reader would report a timeout
    /// assert_eq!(reader.try_read().unwrap(), None);
    /// ```
    fn heartbeat(&mut self) -> Result<(), WriteError>;

    /// Makes every published record durable: returns once they are on storage. After a
    /// failure the writer is poisoned and refuses further writes and flushes.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
    /// writer.write("must survive a power loss").unwrap();
    /// writer.flush().unwrap();
    /// assert_eq!(writer.durable_position(), writer.position());
    /// ```
    fn flush(&mut self) -> Result<(), WriteError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Open,
    Closed,
    Poisoned,
}

/// The memory-mapped [`Writer`] of one channel, created by [`shm_writer`](super::shm_writer).
///
/// It holds the channel's exclusive lock (an OS advisory lock on the file, released by the
/// OS if the process dies) for its whole life. Dropping it closes the channel (without a
/// sync; call [`close`](ShmWriter::close) to close durably).
///
/// `ShmWriter<H>` is `Send` exactly when its handler `H` is:
///
/// ```compile_fail
/// use kekbit::core::{Handler, ShmWriter};
/// use std::rc::Rc;
/// struct Counted(Rc<u64>);
/// impl Handler for Counted {
///     fn handle<W: std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> { Ok(()) }
/// }
/// fn assert_send<T: Send>() {}
/// assert_send::<ShmWriter<Counted>>();
/// ```
pub struct ShmWriter<H: Handler> {
    pub(super) map: WriteMap,
    // Declared after `map` so that the mapping is gone before the lock is released.
    pub(super) _lock: File,
    pub(super) path: PathBuf,
    pub(super) header: Header,
    pub(super) binder: Binder,
    pub(super) position: u64,
    pub(super) limit: u64,
    pub(super) synced: u64,
    pub(super) state: State,
    pub(super) handler: H,
    pub(super) pretoucher: Option<Pretoucher>,
    /// Data records written so far (what the next resynchronisation mark says).
    pub(super) ordinal: u64,
    /// The data-area offset from which the next record is preceded by a mark (`u64::MAX`
    /// when the channel has none): the start of the block after the last mark's.
    pub(super) next_mark: u64,
    /// Whether the file is recycled: its data area holds bytes of an earlier life past the
    /// records, so the word after each record is cleared before the record is published.
    pub(super) recycled: bool,
}

/// Bytes a resynchronisation mark occupies.
const MARK_FRAME: u64 = RECORD_HEADER_LEN as u64 + MARK_LEN as u64;

impl<H: Handler> ShmWriter<H> {
    /// A handle that syncs this channel from another thread.
    pub(crate) fn sync_handle(&self) -> SyncHandle {
        SyncHandle {
            flusher: self.map.flusher(),
            path: self.path.clone(),
        }
    }

    /// Links a pending channel into its journal: rewrites the header's link fields, clears
    /// the pending flag and recomputes the header checksum, in place.
    pub(crate) fn link(&mut self, base: u64, previous_id: u64, previous_checksum: u32) {
        debug_assert!(self.header.is_pending() && self.position == 0);
        self.header = self
            .header
            .clone()
            .linked(base, previous_id, previous_checksum);
        let bytes = self.header.encode();
        self.map
            .overwrite_header(&bytes[..super::header::CHECKED_LEN]);
        if let Some(p) = &self.pretoucher {
            p.arm();
        }
    }

    /// Release-stores the live `voided_from` word (0, or the data-area offset plus one of the
    /// first record a tail truncation voids).
    pub(crate) fn set_voided_from(&self, value: u64) {
        self.map
            .store_release(super::header::OFF_VOIDED_FROM, value);
    }

    /// The checksum the closing marker with `trailer` would have if written now.
    pub(crate) fn closing_checksum(&self, trailer: &[u8]) -> u32 {
        let meta = frame::meta(Kind::Closed, trailer.len() as u32);
        self.binder.checksum(self.position, meta, trailer)
    }

    /// Writes the closing marker with `trailer` without syncing, and returns its checksum.
    pub(crate) fn seal(&mut self, trailer: &[u8]) -> Result<u32, WriteError> {
        self.check_writable()?;
        assert!(trailer.len() <= MAX_TRAILER_LEN, "trailer too long");
        Ok(self.write_closing(trailer))
    }

    /// Stops the helper thread that maps pages ahead of the writer (waiting for it), so that
    /// no page of the mapping is populated any more: for a sealed channel whose unused space
    /// is about to be released.
    pub(crate) fn stop_prefault(&mut self) {
        self.pretoucher = None;
    }

    /// The channel's header.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// assert_eq!(writer.header().channel_id(), 3);
    /// ```
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The channel's file.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, storage_path, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// assert_eq!(writer.path(), storage_path(dir.path(), 3));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Data-area offset where the next record will start (the bytes written so far).
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// writer.write("abc").unwrap();
    /// assert_eq!(writer.position(), 16); // 8-byte record header + 3 bytes, padded to 8
    /// ```
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes still available to records (framing included); the channel always keeps a
    /// reserve for its closing marker on top of these.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, TRAILER_RESERVE};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// assert_eq!(writer.available(), 4096 - TRAILER_RESERVE);
    /// ```
    pub fn available(&self) -> u64 {
        self.limit - self.position
    }

    /// Data-area offset up to which records are known durable (the last successful sync).
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// writer.write("abc").unwrap();
    /// assert_eq!(writer.durable_position(), 0);
    /// assert_eq!(writer.sync().unwrap(), 16);
    /// assert_eq!(writer.durable_position(), 16);
    /// ```
    pub fn durable_position(&self) -> u64 {
        self.synced
    }

    /// Maps every page of the data area into memory now, writable, so that no later
    /// [`write`](Writer::write) takes a page fault. Call it where latency does not matter,
    /// such as right after creation: it costs about a microsecond per 4 KiB page and makes
    /// the whole channel resident. Without it, a helper thread maps pages in a window ahead
    /// of the writer, which keeps up with small records but not with a writer streaming
    /// large ones.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 3, 1 << 20, 4096, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// writer.prefault().unwrap();
    /// writer.write(&[7u8; 4096][..]).unwrap();
    /// ```
    pub fn prefault(&self) -> std::io::Result<()> {
        self.prefault_ahead(self.header.capacity())
    }

    /// Like [`prefault`](ShmWriter::prefault), for the next `bytes` of the data area only.
    pub(crate) fn prefault_ahead(&self, bytes: u64) -> std::io::Result<()> {
        let start = HEADER_LEN as u64 + self.position;
        let end = self.header.file_len().min(start.saturating_add(bytes));
        self.map
            .populator()
            .populate(start as usize, (end - start) as usize)
    }

    /// Whether an earlier sync failed (the writer then refuses writes and syncs).
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// assert!(!writer.is_poisoned());
    /// ```
    pub fn is_poisoned(&self) -> bool {
        self.state == State::Poisoned
    }

    /// The handler chain, for instance to read a [`SequenceHandler`](super::SequenceHandler)'s
    /// next number.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, Header, SequenceHandler, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), SequenceHandler::default()).unwrap();
    /// writer.write("abc").unwrap();
    /// assert_eq!(writer.handler().next(), 1);
    /// ```
    pub fn handler(&self) -> &H {
        &self.handler
    }

    fn check_writable(&self) -> Result<(), WriteError> {
        match self.state {
            State::Open => Ok(()),
            State::Closed => Err(WriteError::Closed {
                path: self.path.clone(),
            }),
            State::Poisoned => Err(WriteError::Poisoned {
                path: self.path.clone(),
            }),
        }
    }

    /// Writes every published record to storage (`msync(MS_SYNC)` of the pages written since
    /// the last sync, with the header page now and then: see docs/FORMAT.md, "Syncing") and
    /// returns the durable position. On failure the writer is poisoned: it
    /// never retries a sync and reports success, because the kernel may have dropped the
    /// dirty pages it failed to write.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// writer.write(&[1u8; 20][..]).unwrap();
    /// assert_eq!(writer.sync().unwrap(), 32);
    /// ```
    pub fn sync(&mut self) -> Result<u64, WriteError> {
        if self.state == State::Poisoned {
            return Err(WriteError::Poisoned {
                path: self.path.clone(),
            });
        }
        if self.synced == self.position {
            return Ok(self.synced);
        }
        let (start, len) = sync_range(self.synced, self.position);
        let op = IoOp::FlushRange(&self.path, start as u64, len as u64);
        if let Err(source) = fault::run(op, || self.map.flush_range(start, len)) {
            self.state = State::Poisoned;
            return Err(WriteError::SyncFailed {
                path: self.path.clone(),
                source,
            });
        }
        self.synced = self.position;
        self.map.store_release(OFF_DURABLE_WATERMARK, self.synced);
        Ok(self.synced)
    }

    /// Closes the channel durably: writes the closing marker, then syncs. Readers see
    /// [`ReadError::Closed`](super::ReadError::Closed) once they have read every record.
    ///
    /// ```
    /// # use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// writer.write("last words").unwrap();
    /// writer.close().unwrap();
    /// ```
    pub fn close(self) -> Result<(), WriteError> {
        self.close_with_trailer(&[]).map(drop)
    }

    /// Closes the channel durably with a trailer of at most [`MAX_TRAILER_LEN`] bytes in the
    /// closing marker (a journal names the next segment there), and returns the marker's
    /// checksum (which a successor records as its predecessor's final checksum).
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let writer = shm_writer(dir.path(), &Header::new(1, 3, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
    /// let checksum = writer.close_with_trailer(b"next: 4").unwrap();
    /// let mut reader = shm_reader(dir.path(), 3).unwrap();
    /// assert!(reader.try_read().is_err());
    /// assert_eq!(reader.closing(), Some((&b"next: 4"[..], checksum)));
    /// ```
    pub fn close_with_trailer(mut self, trailer: &[u8]) -> Result<u32, WriteError> {
        self.check_writable()?;
        if trailer.len() > MAX_TRAILER_LEN {
            return Err(WriteError::RecordTooLarge {
                path: self.path.clone(),
                len: trailer.len() as u64,
                max: MAX_TRAILER_LEN as u32,
            });
        }
        let checksum = self.write_closing(trailer);
        self.sync()?;
        Ok(checksum)
    }

    /// Stores zero in the record header word at data-area offset `at` (not yet published),
    /// ordered before the next release store: in a recycled channel, what a reader meets
    /// after the last published record.
    #[inline]
    fn clear_word(&self, at: u64) {
        self.map.store_relaxed(HEADER_LEN + at as usize, 0);
    }

    /// Publishes a resynchronisation mark at `at` (the record after it is staged, not yet
    /// published) and moves the next mark to the following block.
    fn write_mark(&mut self, at: u64) {
        let mut payload = [0u8; MARK_LEN];
        payload[..8].copy_from_slice(&self.ordinal.to_le_bytes());
        payload[8..].copy_from_slice(&self.header.writer_id().to_le_bytes());
        let offset = HEADER_LEN + at as usize;
        let mut stage = self.map.stage(offset + RECORD_HEADER_LEN, MARK_LEN);
        std::io::Write::write_all(&mut stage, &payload).expect("the mark was given room");
        let meta = frame::meta(Kind::Mark, MARK_LEN as u32);
        let crc = self.binder.checksum(at, meta, &payload);
        self.map.store_release(offset, frame::word(meta, crc));
        let shift = self.header.mark_shift();
        self.next_mark = ((at >> shift) + 1) << shift;
    }

    /// Publishes the closing marker (there is always room: the trailer reserve).
    fn write_closing(&mut self, trailer: &[u8]) -> u32 {
        let position = self.position;
        let offset = HEADER_LEN + position as usize;
        let mut stage = self.map.stage(offset + RECORD_HEADER_LEN, trailer.len());
        std::io::Write::write_all(&mut stage, trailer).expect("trailer fits its reserve");
        let meta = frame::meta(Kind::Closed, trailer.len() as u32);
        let crc = self.binder.checksum(position, meta, stage.written());
        self.map.store_release(offset, frame::word(meta, crc));
        self.map.store_release(OFF_CLOSED_AT, position + 1);
        self.position += frame::frame_len(trailer.len() as u32);
        self.state = State::Closed;
        crc
    }

    fn refused(&self, attempted: u64, available: u64) -> WriteError {
        let max = self.header.max_record_len();
        if attempted > u64::from(max) {
            WriteError::RecordTooLarge {
                path: self.path.clone(),
                len: attempted,
                max,
            }
        } else {
            WriteError::ChannelFull {
                path: self.path.clone(),
                position: self.position,
                needed: frame::frame_len(attempted as u32),
                available,
            }
        }
    }
}

impl<H: Handler> Writer for ShmWriter<H> {
    #[inline]
    fn write<D: Encodable + ?Sized>(&mut self, data: &D) -> Result<u64, WriteError> {
        self.check_writable()?;
        // The first record starting in a new mark block is preceded by a mark
        // (docs/FORMAT.md, "Resynchronisation marks").
        let mark_at = self.position;
        let needs_mark = mark_at >= self.next_mark;
        let position = if needs_mark {
            mark_at + MARK_FRAME
        } else {
            mark_at
        };
        let available = self.limit.saturating_sub(position);
        let room = available.saturating_sub(RECORD_HEADER_LEN as u64);
        let limit = room.min(u64::from(self.header.max_record_len())) as usize;
        let offset = HEADER_LEN + position.min(self.limit) as usize;
        let mut stage = self.map.stage(offset + RECORD_HEADER_LEN, limit);
        let encoded = self
            .handler
            .handle(&mut stage)
            .and_then(|()| data.encode(&mut stage));
        if let Err(source) = encoded {
            let overflowed = stage.overflowed();
            let attempted = stage.attempted() as u64;
            stage.discard();
            return Err(if overflowed {
                self.refused(attempted, available)
            } else {
                WriteError::Encoding {
                    path: self.path.clone(),
                    source,
                }
            });
        }
        let len = stage.len() as u32;
        if frame::frame_len(len) > available {
            // Only when not even the record header fits (an empty payload encodes into a
            // zero-byte staging area): it would reach into the closing reserve.
            stage.discard();
            return Err(self.refused(u64::from(len), available));
        }
        let meta = frame::meta(Kind::Data, len);
        let crc = self.binder.checksum(position, meta, stage.written());
        let end = position + frame::frame_len(len);
        if self.recycled {
            // Bytes of the file's earlier life may follow: readers must meet end of data
            // after this record (and after the mark, this record's word), not stale bytes.
            self.clear_word(end);
            if needs_mark {
                self.clear_word(position);
            }
        }
        if needs_mark {
            self.write_mark(mark_at);
        }
        self.map.store_release(offset, frame::word(meta, crc));
        self.position = end;
        self.ordinal += 1;
        self.handler.committed();
        if let Some(p) = &mut self.pretoucher {
            p.advance(HEADER_LEN as u64 + self.position);
        }
        Ok(position)
    }

    fn heartbeat(&mut self) -> Result<(), WriteError> {
        self.check_writable()?;
        let now = self.header.tick_unit().nix_time().max(1);
        self.map.store_release(OFF_HEARTBEAT, now);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), WriteError> {
        self.sync().map(drop)
    }
}

impl<H: Handler> Drop for ShmWriter<H> {
    fn drop(&mut self) {
        self.pretoucher = None;
        if self.state != State::Closed {
            self.write_closing(&[]);
        }
    }
}

impl<H: Handler> std::fmt::Debug for ShmWriter<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmWriter")
            .field("path", &self.path)
            .field("position", &self.position)
            .field("durable", &self.synced)
            .field("state", &self.state)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::core::{shm_writer, SequenceHandler, TickUnit};

    #[test]
    fn a_failed_encoding_leaves_no_bytes_behind() {
        let dir = tempfile::tempdir().unwrap();
        let header = Header::new(1, 1, 4096, 64, 10, TickUnit::Secs);
        // The sequence prefix (8 bytes) is staged, then the payload does not fit.
        let mut w = shm_writer(dir.path(), &header, SequenceHandler::default()).unwrap();
        assert!(matches!(
            w.write(&[7u8; 60][..]),
            Err(WriteError::RecordTooLarge {
                len: 68,
                max: 64,
                ..
            })
        ));
        assert_eq!(w.handler().next(), 0);
        assert_eq!(w.position(), 0);
        assert_eq!(w.map.load(HEADER_LEN), 0);
        // The refused bytes were zeroed: the words after the header read as empty.
        for word in 1..9 {
            assert_eq!(w.map.load(HEADER_LEN + word * 8), 0, "word {word}");
        }
    }
}
