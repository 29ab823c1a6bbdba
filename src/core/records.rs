//! Reading records one at a time: the verified step shared by every reader, moving a
//! reader to a position, the non-blocking iterator, and turning a frame's defect into an
//! error that names the file and the position.

use std::path::Path;

use super::frame::{self, Defect, Frame};
use super::header::{MARK_LEN, OFF_DURABLE_WATERMARK};
use super::reader::{Channel, Cursor};
use super::{Header, InvalidPosition, ReadError, Reader, ShmReader};

impl Channel {
    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The first stretch of file offsets within `[from, to)` that may hold data (see
    /// `mmap::next_data`).
    pub(super) fn data_after(&self, from: u64, to: u64) -> Option<(u64, u64)> {
        self.map.data_after(&self.file, from, to)
    }

    #[inline]
    pub(crate) fn load_live(&self, offset: usize) -> u64 {
        self.map.load_acquire(offset)
    }

    /// Bytes of storage the file really occupies (its allocated blocks): what bounds a scan
    /// of a file that may be sparse. The whole file when that cannot be told.
    pub(super) fn allocated_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.file
            .metadata()
            .map_or(self.header.file_len(), |m| m.blocks().saturating_mul(512))
    }

    pub(super) fn durable_watermark(&self) -> u64 {
        self.map.load_acquire(OFF_DURABLE_WATERMARK)
    }

    /// Checks a verified mark at `position` against the reader's count of records before it
    /// and the channel's key.
    pub(crate) fn check_mark(
        &self,
        position: u64,
        ordinal: u64,
        key: u64,
        expected: u64,
    ) -> Result<(), ReadError> {
        if ordinal == expected && key == self.header.writer_id() {
            return Ok(());
        }
        Err(ReadError::MarkMismatch {
            path: self.path.clone(),
            position,
            ordinal,
            expected,
        })
    }

    pub(crate) fn frame_at(&self, position: u64) -> Result<Frame<'_>, ReadError> {
        frame::decode(&self.map, &self.binder, self.limits, position)
            .map_err(|defect| self.damage(position, defect))
    }

    /// [`frame_at`](Channel::frame_at), except that in a recycled channel what does not
    /// verify at or above the durable watermark is the end of the data: bytes of the file's
    /// earlier life (which bind another channel id), or a record torn by a power loss, never
    /// acknowledged either way (docs/FORMAT.md, "Recycled segments"). Below the watermark
    /// it is damage, as everywhere.
    pub(crate) fn frame_or_end(&self, position: u64) -> Result<Frame<'_>, ReadError> {
        match self.frame_at(position) {
            Err(_) if self.is_stale(position) => Ok(Frame::End),
            found => found,
        }
    }

    /// Whether bytes at `position` that do not verify are the end of the data rather than
    /// damage (see [`frame_or_end`](Channel::frame_or_end)).
    pub(crate) fn is_stale(&self, position: u64) -> bool {
        self.header.is_recycled() && position >= self.durable_watermark()
    }

    pub(super) fn damage(&self, position: u64, defect: Defect) -> ReadError {
        let path = self.path.clone();
        match defect {
            Defect::UnknownKind { word } => ReadError::UnknownKind {
                path,
                position,
                word,
            },
            Defect::Length { len, max } => ReadError::InvalidLength {
                path,
                position,
                len,
                max,
            },
            Defect::Bounds { len, end, limit } => ReadError::OutOfBounds {
                path,
                position,
                len,
                end,
                limit,
            },
            Defect::Checksum { stored, computed } => ReadError::ChecksumMismatch {
                path,
                position,
                stored,
                computed,
            },
        }
    }
}

impl Cursor {
    /// Whether the bytes up to `end` may be returned under the durable-only setting.
    #[inline]
    pub(super) fn visible(&mut self, chan: &Channel, end: u64) -> bool {
        if !self.durable_only || end <= self.durable {
            return true;
        }
        self.durable = chan.durable_watermark();
        end <= self.durable
    }
}

/// One read step, shared by [`ShmReader`], [`TimeoutReader`](super::TimeoutReader) and [`Records`]: the record
/// borrows the channel, not the cursor.
#[inline(always)]
pub(crate) fn step<'a>(
    chan: &'a Channel,
    cursor: &mut Cursor,
) -> Result<Option<&'a [u8]>, ReadError> {
    // The common case, checked as `decode` checks it: a verified data record.
    if cursor.closed.is_none() {
        let position = cursor.position;
        let found = frame::data_at(&chan.map, &chan.binder, chan.limits, position);
        if let Some((payload, len)) = found {
            if !cursor.visible(chan, position + len) {
                return Ok(None);
            }
            cursor.position = position + len;
            cursor.ordinal += 1;
            if let Some(watch) = &mut cursor.watch {
                watch.progress();
            }
            return Ok(Some(payload));
        }
    }
    step_other(chan, cursor)
}

/// The rest of [`step`]: the end of the data, a closing marker, damage.
#[inline(never)]
fn step_other<'a>(chan: &'a Channel, cursor: &mut Cursor) -> Result<Option<&'a [u8]>, ReadError> {
    if let Some((position, _, _)) = cursor.closed {
        return Err(ReadError::Closed {
            path: chan.path.clone(),
            position,
        });
    }
    let mut position = cursor.position;
    let mut frame = chan.frame_or_end(position)?;
    // A resynchronisation mark is checked and stepped over: never returned, never counted.
    // Two marks never follow each other, but damage could chain them: the loop is bounded
    // by the data area all the same, since every step moves forward.
    while let Frame::Mark { ordinal, key } = frame {
        chan.check_mark(position, ordinal, key, cursor.ordinal)?;
        let end = position + frame::frame_len(MARK_LEN as u32);
        if !cursor.visible(chan, end) {
            return Ok(None);
        }
        cursor.position = end;
        position = end;
        frame = chan.frame_or_end(position)?;
    }
    match frame {
        Frame::Mark { .. } => unreachable!("marks are stepped over above"),
        Frame::End => {
            if let Some(watch) = &mut cursor.watch {
                watch.idle(chan, position)?;
            }
            Ok(None)
        }
        Frame::Data { payload, len } => {
            if !cursor.visible(chan, position + len) {
                return Ok(None);
            }
            cursor.position += len;
            cursor.ordinal += 1;
            if let Some(watch) = &mut cursor.watch {
                watch.progress();
            }
            Ok(Some(payload))
        }
        Frame::Closed { trailer, checksum } => {
            let len = frame::frame_len(trailer.len() as u32);
            if !cursor.visible(chan, position + len) {
                return Ok(None);
            }
            cursor.closed = Some((position, trailer.to_vec(), checksum));
            Err(ReadError::Closed {
                path: chan.path.clone(),
                position,
            })
        }
    }
}

/// Moves `cursor` to `target` after checking that it is a record start (see
/// [`Reader::move_to`]).
pub(crate) fn seek(
    chan: &Channel,
    cursor: &mut Cursor,
    target: u64,
) -> Result<u64, InvalidPosition> {
    if !target.is_multiple_of(frame::RECORD_ALIGN) {
        return Err(InvalidPosition::Unaligned { position: target });
    }
    // Walk from the nearest known record start at or before the target, verifying and
    // counting every record on the way.
    let (mut at, mut ordinal) = if target >= cursor.position {
        (cursor.position, cursor.ordinal)
    } else {
        (0, 0)
    };
    while at < target {
        match chan.frame_or_end(at) {
            Ok(Frame::Mark { ordinal: said, key }) => {
                if let Err(cause) = chan.check_mark(at, said, key, ordinal) {
                    return Err(InvalidPosition::BeyondDamage {
                        position: target,
                        cause: Box::new(cause),
                    });
                }
                at += frame::frame_len(MARK_LEN as u32);
            }
            Ok(Frame::Data { len, .. }) if at + len > target => {
                return Err(InvalidPosition::NotRecordStart {
                    position: target,
                    record_start: at,
                });
            }
            Ok(Frame::Data { len, .. }) => {
                at += len;
                ordinal += 1;
            }
            Ok(Frame::End | Frame::Closed { .. }) => {
                return Err(InvalidPosition::Unavailable {
                    position: target,
                    end: at,
                });
            }
            Err(cause) => {
                return Err(InvalidPosition::BeyondDamage {
                    position: target,
                    cause: Box::new(cause),
                });
            }
        }
    }
    cursor.position = target;
    cursor.ordinal = ordinal;
    if cursor.closed.as_ref().is_some_and(|(p, _, _)| *p != target) {
        cursor.closed = None;
    }
    Ok(target)
}

impl Reader for ShmReader {
    #[inline(always)]
    fn try_read(&mut self) -> Result<Option<&[u8]>, ReadError> {
        step(&self.chan, &mut self.cursor)
    }

    fn position(&self) -> u64 {
        self.cursor.position
    }

    fn move_to(&mut self, position: u64) -> Result<u64, InvalidPosition> {
        seek(&self.chan, &mut self.cursor, position)
    }
}

impl std::fmt::Debug for ShmReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmReader")
            .field("path", &self.chan.path)
            .field("position", &self.cursor.position)
            .finish()
    }
}

/// Non-blocking iterator over a reader's records, from [`ShmReader::iter`] or
/// [`TimeoutReader::iter`](super::TimeoutReader::iter). Each item borrows the reader's mapping, not the iterator, so
/// records can be collected or compared across iterations.
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let mut writer = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 1_000, TickUnit::Millis), EncoderHandler).unwrap();
/// writer.write("x").unwrap();
/// writer.write("yy").unwrap();
/// let mut reader = shm_reader(dir.path(), 2).unwrap();
/// let lens: Vec<usize> = reader.iter().map(|r| r.map(|rec| rec.len())).collect::<Result<_, _>>().unwrap();
/// assert_eq!(lens, [1, 2]);
/// ```
pub struct Records<'a> {
    chan: &'a Channel,
    cursor: &'a mut Cursor,
    done: bool,
}

impl<'a> Records<'a> {
    pub(crate) fn new(chan: &'a Channel, cursor: &'a mut Cursor) -> Records<'a> {
        Records {
            chan,
            cursor,
            done: false,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<&'a [u8], ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match step(self.chan, self.cursor) {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => None,
            Err(ReadError::Closed { .. }) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
