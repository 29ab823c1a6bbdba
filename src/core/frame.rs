//! Record framing: the 8-byte record header, kinds, alignment, and decoding a record at a
//! position (its checksum is `checksum.rs`'s).

pub(crate) use super::checksum::Binder;
use super::header::{HEADER_LEN, MARK_LEN};
use crate::mmap::{Published, ReadMap};

/// Records start at data-area offsets that are multiples of this.
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer, RECORD_ALIGN};
/// let dir = tempfile::tempdir().unwrap();
/// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
/// for len in 0..20 {
///     assert_eq!(writer.write(&vec![1u8; len]).unwrap() % RECORD_ALIGN, 0);
/// }
/// ```
pub const RECORD_ALIGN: u64 = 8;
/// Length of a record header: the `meta` word (kind and length) and the CRC32.
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer, RECORD_HEADER_LEN};
/// let dir = tempfile::tempdir().unwrap();
/// let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
/// writer.write(&b""[..]).unwrap();
/// assert_eq!(writer.position(), RECORD_HEADER_LEN as u64);
/// ```
pub const RECORD_HEADER_LEN: usize = 8;
/// Bytes the writer always keeps free at the end of the data area, so that the closing
/// marker fits however full the channel is.
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, TRAILER_RESERVE};
/// let dir = tempfile::tempdir().unwrap();
/// let writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
/// assert_eq!(writer.available(), 4096 - TRAILER_RESERVE);
/// ```
pub const TRAILER_RESERVE: u64 = 64;
/// Largest payload of the closing marker (the trailer).
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, WriteError, MAX_TRAILER_LEN};
/// let dir = tempfile::tempdir().unwrap();
/// let writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
/// let too_long = [0u8; MAX_TRAILER_LEN + 1];
/// assert!(matches!(writer.close_with_trailer(&too_long), Err(WriteError::RecordTooLarge { .. })));
/// ```
pub const MAX_TRAILER_LEN: usize = TRAILER_RESERVE as usize - RECORD_HEADER_LEN;
/// The format's upper bound on a record's payload: 2^28 - 1 bytes (the length field's width).
///
/// ```
/// use kekbit::core::{shm_writer, ChannelError, EncoderHandler, Header, TickUnit, MAX_RECORD_LEN};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 1, 1 << 30, MAX_RECORD_LEN + 1, 10, TickUnit::Secs);
/// assert!(matches!(shm_writer(dir.path(), &header, EncoderHandler), Err(ChannelError::InvalidConfig { .. })));
/// ```
pub const MAX_RECORD_LEN: u32 = (1 << LEN_BITS) - 1;

const LEN_BITS: u32 = 28;
const LEN_MASK: u32 = (1 << LEN_BITS) - 1;

/// Kind of a record, the top four bits of its `meta` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Application data.
    Data = 1,
    /// The closing marker: the writer will write nothing more.
    Closed = 2,
    /// A resynchronisation mark (version 2): the number of data records before it.
    Mark = 3,
}

/// The kind named by a header word, if it is a known one.
pub(crate) fn kind_of(word: u64) -> Option<Kind> {
    match (word as u32) >> LEN_BITS {
        1 => Some(Kind::Data),
        2 => Some(Kind::Closed),
        3 => Some(Kind::Mark),
        _ => None,
    }
}

/// The payload length named by a header word.
pub(crate) fn len_of(word: u64) -> u32 {
    word as u32 & LEN_MASK
}

/// The `meta` word of a record header.
pub(crate) fn meta(kind: Kind, len: u32) -> u32 {
    debug_assert!(len <= LEN_MASK);
    ((kind as u32) << LEN_BITS) | len
}

/// Bytes a record with a `len`-byte payload occupies, header and padding included.
#[inline]
pub(crate) fn frame_len(len: u32) -> u64 {
    (RECORD_HEADER_LEN as u64 + u64::from(len)).next_multiple_of(RECORD_ALIGN)
}

/// The 8-byte header word as stored: `meta` in the low half, the CRC in the high half, so
/// that its little-endian bytes are `meta` then `crc`.
pub(crate) fn word(meta: u32, crc: u32) -> u64 {
    u64::from(meta) | (u64::from(crc) << 32)
}

/// A record found at a position.
pub(crate) enum Frame<'a> {
    /// Zero header: end of the published data (for now).
    End,
    /// A verified data record and the bytes it occupies.
    Data { payload: &'a [u8], len: u64 },
    /// The verified closing marker and its trailer.
    Closed { trailer: &'a [u8], checksum: u32 },
    /// A verified resynchronisation mark: the number of data records before it in the
    /// channel, and its key (the header's writer id).
    Mark { ordinal: u64, key: u64 },
}

/// Why the bytes at a position are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Defect {
    /// The header is non-zero but names no known kind.
    UnknownKind { word: u64 },
    /// The length field exceeds the kind's maximum.
    Length { len: u32, max: u64 },
    /// The record would end past the limit for its kind: `capacity - TRAILER_RESERVE` for
    /// data, `capacity` for the closing marker.
    Bounds { len: u32, end: u64, limit: u64 },
    /// The payload does not match the checksum.
    Checksum { stored: u32, computed: u32 },
}

/// Limits a reader checks a header against before it touches the payload.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) capacity: u64,
    pub(crate) max_record_len: u32,
    /// Whether the channel carries resynchronisation marks (a mark anywhere else is damage).
    pub(crate) marks: bool,
}

/// The verified data record at data-area offset `position` (8-aligned, `<= capacity -
/// RECORD_HEADER_LEN`), as its payload and the bytes it occupies: what [`decode`] returns as
/// [`Frame::Data`], checked the same way, on the path a reader takes for every record.
/// `None` for anything else (end of data, a closing marker, damage), which [`decode`] then
/// tells apart.
#[inline(always)]
pub(crate) fn data_at<'a>(
    map: &'a ReadMap,
    binder: &Binder,
    limits: Limits,
    position: u64,
) -> Option<(&'a [u8], u64)> {
    let offset = HEADER_LEN + position as usize;
    let Published::Word { word, payload } =
        map.published(offset, |w| (w as u32 & LEN_MASK) as usize)
    else {
        return None;
    };
    let meta = word as u32;
    // One comparison for "kind is data and length at most max_record_len": for any other
    // kind the difference is at least 2^28 or wraps, and max_record_len is below 2^28.
    let len = meta.wrapping_sub((Kind::Data as u32) << LEN_BITS);
    if len > limits.max_record_len
        || position + u64::from(len) > limits.capacity - TRAILER_RESERVE - RECORD_HEADER_LEN as u64
        || payload.len() < len as usize
    {
        return None;
    }
    if binder.checksum(position, meta, payload) != (word >> 32) as u32 {
        return None;
    }
    Some((payload, frame_len(len)))
}

/// Reads and verifies the record at data-area offset `position` (8-aligned, `<= capacity -
/// RECORD_HEADER_LEN`).
pub(crate) fn decode<'a>(
    map: &'a ReadMap,
    binder: &Binder,
    limits: Limits,
    position: u64,
) -> Result<Frame<'a>, Defect> {
    let offset = HEADER_LEN + position as usize;
    let published = map.published(offset, |w| (w as u32 & LEN_MASK) as usize);
    let (word, payload) = match published {
        Published::Nothing => return Ok(Frame::End),
        Published::Word { word, payload } => (word, payload),
    };
    let meta = word as u32;
    let stored = (word >> 32) as u32;
    let len = meta & LEN_MASK;
    let kind = meta >> LEN_BITS;
    // Data must leave the trailer reserve free; the closing marker may use it.
    let (max, limit) = match kind {
        k if k == Kind::Data as u32 => (
            u64::from(limits.max_record_len),
            limits.capacity - TRAILER_RESERVE,
        ),
        k if k == Kind::Closed as u32 => (MAX_TRAILER_LEN as u64, limits.capacity),
        k if k == Kind::Mark as u32 && limits.marks => {
            (MARK_LEN as u64, limits.capacity - TRAILER_RESERVE)
        }
        _ => return Err(Defect::UnknownKind { word }),
    };
    if u64::from(len) > max || (kind == Kind::Mark as u32 && len as usize != MARK_LEN) {
        return Err(Defect::Length { len, max });
    }
    let end = position + RECORD_HEADER_LEN as u64 + u64::from(len);
    if end > limit || payload.len() < len as usize {
        return Err(Defect::Bounds { len, end, limit });
    }
    let computed = binder.checksum(position, meta, payload);
    if computed != stored {
        return Err(Defect::Checksum { stored, computed });
    }
    if kind == Kind::Data as u32 {
        Ok(Frame::Data {
            payload,
            len: frame_len(len),
        })
    } else if kind == Kind::Mark as u32 {
        let (ordinal, key) = payload.split_at(8);
        Ok(Frame::Mark {
            ordinal: crate::le::get_u64(ordinal, 0),
            key: crate::le::get_u64(key, 0),
        })
    } else {
        Ok(Frame::Closed {
            trailer: payload,
            checksum: stored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_are_aligned() {
        assert_eq!(frame_len(0), 8);
        assert_eq!(frame_len(1), 16);
        assert_eq!(frame_len(8), 16);
        assert_eq!(frame_len(9), 24);
    }

    #[test]
    fn a_data_word_is_never_zero() {
        assert_ne!(word(meta(Kind::Data, 0), 0), 0);
        assert_ne!(word(meta(Kind::Closed, 0), 0), 0);
    }
}
