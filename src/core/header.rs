//! The channel header: the first [`HEADER_LEN`] bytes of every channel file.

use super::frame::{MAX_RECORD_LEN, RECORD_HEADER_LEN, TRAILER_RESERVE};
use super::TickUnit;

mod codec;

pub(crate) use codec::HeaderDefect;

/// Length in bytes of the channel header; the data area starts right after it.
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, HEADER_LEN};
/// let dir = tempfile::tempdir().unwrap();
/// let writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
/// assert_eq!(std::fs::metadata(writer.path()).unwrap().len(), HEADER_LEN as u64 + 4096);
/// ```
pub const HEADER_LEN: usize = 128;
/// The first eight bytes of every channel file.
///
/// ```
/// use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, MAGIC};
/// let dir = tempfile::tempdir().unwrap();
/// let writer = shm_writer(dir.path(), &Header::new(1, 1, 4096, 64, 10, TickUnit::Secs), EncoderHandler).unwrap();
/// assert_eq!(std::fs::read(writer.path()).unwrap()[..8], MAGIC);
/// ```
pub const MAGIC: [u8; 8] = *b"\x89KEKBIT\n";
/// The on-disk format version this crate writes and the newest it reads.
///
/// ```
/// use kekbit::core::{Header, TickUnit, FORMAT_VERSION};
/// assert_eq!(Header::new(1, 1, 4096, 64, 10, TickUnit::Secs).format_version(), FORMAT_VERSION);
/// ```
pub const FORMAT_VERSION: u16 = 2;
/// The oldest on-disk format version this crate reads (kekbit 0.4's).
///
/// ```
/// assert_eq!(kekbit::core::OLDEST_FORMAT_VERSION, 1);
/// ```
pub const OLDEST_FORMAT_VERSION: u16 = 1;
/// Payload bytes of a resynchronisation mark: its ordinal and its key (docs/FORMAT.md,
/// "Resynchronisation marks").
pub(crate) const MARK_LEN: usize = 16;
/// log2 of the mark block journal segments use unless configured: 32 KiB.
///
/// ```
/// assert_eq!(1u32 << kekbit::core::DEFAULT_MARK_SHIFT, 32 * 1024);
/// ```
pub const DEFAULT_MARK_SHIFT: u8 = 15;
/// The smallest mark block, as log2 of its size in bytes (512 bytes).
///
/// ```
/// use kekbit::core::{Header, TickUnit, MIN_MARK_SHIFT};
/// assert!(Header::new(1, 1, 4096, 64, 10, TickUnit::Secs).with_resync_marks(MIN_MARK_SHIFT - 1).is_err());
/// ```
pub const MIN_MARK_SHIFT: u8 = 9;
/// The largest mark block, as log2 of its size in bytes (1 GiB).
///
/// ```
/// use kekbit::core::{Header, TickUnit, MAX_MARK_SHIFT};
/// assert!(Header::new(1, 1, 4096, 64, 10, TickUnit::Secs).with_resync_marks(MAX_MARK_SHIFT).is_ok());
/// ```
pub const MAX_MARK_SHIFT: u8 = 30;
/// The smallest data-area capacity a channel may have.
///
/// ```
/// use kekbit::core::{shm_writer, ChannelError, EncoderHandler, Header, TickUnit, MIN_CAPACITY};
/// let dir = tempfile::tempdir().unwrap();
/// let tiny = Header::new(1, 1, MIN_CAPACITY - 8, 0, 10, TickUnit::Secs);
/// assert!(matches!(shm_writer(dir.path(), &tiny, EncoderHandler), Err(ChannelError::InvalidConfig { .. })));
/// ```
pub const MIN_CAPACITY: u64 = 128;
/// The largest data-area capacity a channel may have (1 TiB).
///
/// ```
/// use kekbit::core::{shm_writer, ChannelError, EncoderHandler, Header, TickUnit, MAX_CAPACITY};
/// let dir = tempfile::tempdir().unwrap();
/// let huge = Header::new(1, 1, MAX_CAPACITY + 8, 64, 10, TickUnit::Secs);
/// assert!(matches!(shm_writer(dir.path(), &huge, EncoderHandler), Err(ChannelError::InvalidConfig { .. })));
/// ```
pub const MAX_CAPACITY: u64 = 1 << 40;

// Field offsets, as tabled in docs/FORMAT.md ("Channel header"); `FIELDS` lists them for the
// test that compares code and document.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 10;
const OFF_TICK_UNIT: usize = 12;
const OFF_WRITER_ID: usize = 16;
const OFF_CHANNEL_ID: usize = 24;
const OFF_CAPACITY: usize = 32;
const OFF_MAX_RECORD_LEN: usize = 40;
const OFF_FLAGS: usize = 44;
const OFF_TIMEOUT: usize = 48;
const OFF_CREATION_TIME: usize = 56;
const OFF_DATA_VERSION: usize = 64;
const OFF_BASE_SEQUENCE: usize = 72;
const OFF_PREVIOUS_CHANNEL_ID: usize = 80;
const OFF_PREVIOUS_CHECKSUM: usize = 88;
const OFF_HEADER_CHECKSUM: usize = 92;
/// Offset of the live durable watermark (updated by the writer after each sync).
pub(crate) const OFF_DURABLE_WATERMARK: usize = 96;
/// Offset of the live heartbeat stamp (updated by the writer's `heartbeat`).
pub(crate) const OFF_HEARTBEAT: usize = 104;
/// Offset of the live closing-marker locator: data-area offset of the marker plus one.
pub(crate) const OFF_CLOSED_AT: usize = 112;
/// Offset of the live `voided_from` word (version 2, tail truncation): zero unless records
/// were voided; else the data-area offset plus one of the first one, a hint that readers
/// honour only when the chain confirms it (docs/FORMAT.md, "Truncating the tail").
pub(crate) const OFF_VOIDED_FROM: usize = 120;
/// Bytes of the header fixed at creation (or at linking) and covered by its checksum.
pub(crate) const CHECKED_LEN: usize = 96;
/// Flag bit: a journal segment prepared ahead of need and not yet linked into its journal.
const FLAG_PENDING: u32 = 1;
/// Flag bit (version 2): the data area may hold bytes of the file's earlier life.
const FLAG_RECYCLED: u32 = 1 << 1;
/// Flags bits holding the mark shift (version 2).
const MARK_SHIFT_BITS: u32 = 8;
const MARK_SHIFT_MASK: u32 = 0xff << MARK_SHIFT_BITS;

/// Every header field as (name, offset, size), in file order.
#[cfg(test)]
pub(crate) const FIELDS: &[(&str, usize, usize)] = &[
    ("magic", OFF_MAGIC, 8),
    ("format_version", OFF_VERSION, 2),
    ("header_len", OFF_HEADER_LEN, 2),
    ("tick_unit", OFF_TICK_UNIT, 4),
    ("writer_id", OFF_WRITER_ID, 8),
    ("channel_id", OFF_CHANNEL_ID, 8),
    ("capacity", OFF_CAPACITY, 8),
    ("max_record_len", OFF_MAX_RECORD_LEN, 4),
    ("flags", OFF_FLAGS, 4),
    ("timeout", OFF_TIMEOUT, 8),
    ("creation_time", OFF_CREATION_TIME, 8),
    ("data_version", OFF_DATA_VERSION, 8),
    ("base_sequence", OFF_BASE_SEQUENCE, 8),
    ("previous_channel_id", OFF_PREVIOUS_CHANNEL_ID, 8),
    ("previous_checksum", OFF_PREVIOUS_CHECKSUM, 4),
    ("header_checksum", OFF_HEADER_CHECKSUM, 4),
    ("durable_watermark", OFF_DURABLE_WATERMARK, 8),
    ("heartbeat", OFF_HEARTBEAT, 8),
    ("closed_at", OFF_CLOSED_AT, 8),
    ("voided_from", OFF_VOIDED_FROM, 8),
];

/// The metadata of a channel, fixed by its writer at creation: identity, size limits, time
/// granularity, and the application's data version.
///
/// The writer builds one with [`Header::new`] and passes it to
/// [`shm_writer`](super::shm_writer); readers get it back, validated, from
/// [`ShmReader::header`](super::ShmReader::header).
///
/// ```
/// use kekbit::core::{Header, TickUnit};
///
/// let header = Header::new(7, 42, 1 << 20, 4096, 30_000, TickUnit::Millis).with_data_version(3);
/// assert_eq!(header.channel_id(), 42);
/// assert_eq!(header.capacity(), 1 << 20);
/// assert_eq!(header.data_version(), 3);
/// assert_eq!(header.format_version(), kekbit::core::FORMAT_VERSION);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    writer_id: u64,
    channel_id: u64,
    capacity: u64,
    max_record_len: u32,
    timeout: u64,
    tick_unit: TickUnit,
    creation_time: u64,
    format_version: u16,
    data_version: u64,
    base_sequence: u64,
    previous_channel_id: u64,
    previous_checksum: u32,
    pending: bool,
    recycled: bool,
    mark_shift: u8,
}

impl Header {
    /// A header for a new channel, stamped with the current time in `tick_unit`.
    ///
    /// `capacity` is the size of the data area in bytes and is rounded up to a multiple of 8;
    /// `max_record_len` bounds a record's payload; `timeout` (in `tick_unit`s) is how long a
    /// [`TimeoutReader`](super::TimeoutReader) waits for a silent writer before declaring the
    /// channel abandoned. Limits are checked when the channel is created: the capacity must
    /// be between [`MIN_CAPACITY`] and [`MAX_CAPACITY`], and a record of `max_record_len`
    /// bytes (at most [`MAX_RECORD_LEN`]) must fit in an empty channel.
    ///
    /// ```
    /// use kekbit::core::{Header, TickUnit};
    /// let header = Header::new(1, 2, 1001, 100, 10, TickUnit::Secs);
    /// assert_eq!(header.capacity(), 1008);
    /// assert_eq!(header.tick_unit(), TickUnit::Secs);
    /// ```
    pub fn new(
        writer_id: u64,
        channel_id: u64,
        capacity: u64,
        max_record_len: u32,
        timeout: u64,
        tick_unit: TickUnit,
    ) -> Header {
        Header {
            writer_id,
            channel_id,
            capacity: capacity.saturating_add(7) & !7,
            max_record_len,
            timeout,
            tick_unit,
            creation_time: tick_unit.nix_time(),
            format_version: FORMAT_VERSION,
            data_version: 0,
            base_sequence: 0,
            previous_channel_id: 0,
            previous_checksum: 0,
            pending: false,
            recycled: false,
            mark_shift: 0,
        }
    }

    /// Sets the application's data version: a number the application defines (for instance
    /// the version of its record schema) and checks when it reads the channel. Defaults to 0.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// let header = Header::new(1, 2, 4096, 64, 10, TickUnit::Secs).with_data_version(9);
    /// assert_eq!(header.data_version(), 9);
    /// ```
    #[must_use]
    pub fn with_data_version(mut self, data_version: u64) -> Header {
        self.data_version = data_version;
        self
    }

    /// Links this channel to a predecessor, as journal segments are: the sequence number of
    /// its first record, the predecessor's channel id and the checksum of the predecessor's
    /// closing marker. Defaults to `(0, 0, 0)`: no predecessor.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// let header = Header::new(1, 2, 4096, 64, 10, TickUnit::Secs).with_link(1_000, 1, 0xfeed);
    /// assert_eq!(header.base_sequence(), 1_000);
    /// assert_eq!(header.previous_channel_id(), 1);
    /// assert_eq!(header.previous_checksum(), 0xfeed);
    /// ```
    #[must_use]
    pub fn with_link(
        mut self,
        base_sequence: u64,
        previous_channel_id: u64,
        previous_checksum: u32,
    ) -> Header {
        self.base_sequence = base_sequence;
        self.previous_channel_id = previous_channel_id;
        self.previous_checksum = previous_checksum;
        self
    }

    /// The identifier of the writer that created the channel.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).writer_id(), 5);
    /// ```
    pub fn writer_id(&self) -> u64 {
        self.writer_id
    }

    /// The channel's identifier; it also names the channel's file (see
    /// [`storage_path`](super::storage_path)) and is bound into every record's checksum.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).channel_id(), 2);
    /// ```
    pub fn channel_id(&self) -> u64 {
        self.channel_id
    }

    /// Size of the data area in bytes (the file is [`HEADER_LEN`] bytes longer).
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).capacity(), 4096);
    /// ```
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The largest payload a record may have.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).max_record_len(), 64);
    /// ```
    pub fn max_record_len(&self) -> u32 {
        self.max_record_len
    }

    /// How long, in [`tick_unit`](Header::tick_unit)s, a silent writer is waited for.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).timeout(), 10);
    /// ```
    pub fn timeout(&self) -> u64 {
        self.timeout
    }

    /// The channel's time granularity.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Micros).tick_unit(), TickUnit::Micros);
    /// ```
    pub fn tick_unit(&self) -> TickUnit {
        self.tick_unit
    }

    /// When the channel was created, in ticks since the UNIX epoch.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// let header = Header::new(5, 2, 4096, 64, 10, TickUnit::Secs);
    /// assert!(header.creation_time() <= TickUnit::Secs.nix_time());
    /// ```
    pub fn creation_time(&self) -> u64 {
        self.creation_time
    }

    /// The on-disk format version of the channel.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).format_version(), kekbit::core::FORMAT_VERSION);
    /// ```
    pub fn format_version(&self) -> u16 {
        self.format_version
    }

    /// The application's data version (see [`with_data_version`](Header::with_data_version)).
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).data_version(), 0);
    /// ```
    pub fn data_version(&self) -> u64 {
        self.data_version
    }

    /// Sequence number of the channel's first record when it is part of a journal, else 0.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).base_sequence(), 0);
    /// ```
    pub fn base_sequence(&self) -> u64 {
        self.base_sequence
    }

    /// Channel id of the predecessor in a journal, or 0 when there is none.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).previous_channel_id(), 0);
    /// ```
    pub fn previous_channel_id(&self) -> u64 {
        self.previous_channel_id
    }

    /// Checksum of the predecessor's closing marker, or 0 when there is no predecessor.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert_eq!(Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).previous_checksum(), 0);
    /// ```
    pub fn previous_checksum(&self) -> u32 {
        self.previous_checksum
    }

    /// Whether the channel is a journal segment prepared ahead of need and not yet linked
    /// into its journal (it then holds no records and its link fields are zero).
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert!(!Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).is_pending());
    /// ```
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// log2 of the channel's mark block, or 0 when it carries no resynchronisation marks
    /// (docs/FORMAT.md, "Resynchronisation marks"). Journal segments have marks; plain
    /// channels do not unless [`with_resync_marks`](Header::with_resync_marks) asked.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// let header = Header::new(5, 2, 1 << 20, 64, 10, TickUnit::Secs);
    /// assert_eq!(header.mark_shift(), 0);
    /// assert_eq!(header.with_resync_marks(12).unwrap().mark_shift(), 12);
    /// ```
    pub fn mark_shift(&self) -> u8 {
        self.mark_shift
    }

    /// The same header, with a resynchronisation mark at the first record of every block
    /// of `2^shift` bytes of the data area: a reader that meets a damaged record can resume
    /// at the next block, and a seek verifies at most about one block of records. `shift` is
    /// 0 (no marks) or from [`MIN_MARK_SHIFT`] to [`MAX_MARK_SHIFT`]; anything else is
    /// refused, naming the value given.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// let header = Header::new(5, 2, 1 << 20, 64, 10, TickUnit::Secs);
    /// assert!(header.clone().with_resync_marks(15).is_ok());
    /// assert!(header.with_resync_marks(3).is_err());
    /// ```
    pub fn with_resync_marks(mut self, shift: u8) -> Result<Header, String> {
        if shift != 0 && !(MIN_MARK_SHIFT..=MAX_MARK_SHIFT).contains(&shift) {
            return Err(format!(
                "mark block shift {shift} is neither 0 (no marks) nor in \
                 {MIN_MARK_SHIFT}..={MAX_MARK_SHIFT} (512 bytes to 1 GiB)"
            ));
        }
        self.mark_shift = shift;
        Ok(self)
    }

    /// Whether the channel's file had an earlier life as another journal segment (format
    /// version 2, flag bit 1): past the records this channel published, its data area may
    /// hold bytes of that life, which never verify here (docs/FORMAT.md, "Recycled
    /// segments").
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit};
    /// assert!(!Header::new(5, 2, 4096, 64, 10, TickUnit::Secs).is_recycled());
    /// ```
    pub fn is_recycled(&self) -> bool {
        self.recycled
    }

    /// Marks the header as the one of a recycled file (see
    /// [`is_recycled`](Header::is_recycled)).
    #[must_use]
    pub(crate) fn into_recycled(mut self) -> Header {
        self.recycled = true;
        self
    }

    /// Marks the header as pending (see [`is_pending`](Header::is_pending)).
    #[must_use]
    pub(crate) fn into_pending(mut self) -> Header {
        self.pending = true;
        self
    }

    /// Links a pending header (see [`with_link`](Header::with_link)) and clears the flag.
    pub(crate) fn linked(mut self, base: u64, previous_id: u64, previous_checksum: u32) -> Header {
        self.pending = false;
        self.with_link(base, previous_id, previous_checksum)
    }

    /// Total length of the channel's file: header plus data area.
    ///
    /// ```
    /// # use kekbit::core::{Header, TickUnit, HEADER_LEN};
    /// let header = Header::new(5, 2, 4096, 64, 10, TickUnit::Secs);
    /// assert_eq!(header.file_len(), 4096 + HEADER_LEN as u64);
    /// ```
    pub fn file_len(&self) -> u64 {
        self.capacity.saturating_add(HEADER_LEN as u64)
    }

    /// Checks the limits; the reason is a sentence fragment for an error message.
    pub(crate) fn check_limits(&self) -> Result<(), String> {
        if !self.capacity.is_multiple_of(8) {
            return Err(format!("capacity {} is not a multiple of 8", self.capacity));
        }
        if !(MIN_CAPACITY..=MAX_CAPACITY).contains(&self.capacity) {
            return Err(format!(
                "capacity {} is outside {MIN_CAPACITY}..={MAX_CAPACITY}",
                self.capacity
            ));
        }
        if self.max_record_len > MAX_RECORD_LEN {
            return Err(format!(
                "max record length {} exceeds the format's limit of {MAX_RECORD_LEN}",
                self.max_record_len
            ));
        }
        let largest_frame = super::frame::frame_len(self.max_record_len);
        if largest_frame + TRAILER_RESERVE > self.capacity {
            return Err(format!(
                "a record of the max record length {} ({largest_frame} bytes framed) plus the \
                 {TRAILER_RESERVE}-byte closing reserve does not fit in capacity {}",
                self.max_record_len, self.capacity
            ));
        }
        // Every record of the channel gets a sequence number below 2^64: readers and recovery
        // add record counts to the base without overflow checks.
        let most_records = self.capacity / super::frame::RECORD_ALIGN;
        if self.base_sequence.checked_add(most_records).is_none() {
            return Err(format!(
                "base sequence {} overflows with the {most_records} records capacity {} holds",
                self.base_sequence, self.capacity
            ));
        }
        debug_assert!(RECORD_HEADER_LEN as u64 + TRAILER_RESERVE <= MIN_CAPACITY);
        debug_assert_eq!(CHECKED_LEN, OFF_DURABLE_WATERMARK);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header::new(3, 4, 4096, 100, 50, TickUnit::Micros)
            .with_data_version(6)
            .with_link(7, 8, 9)
    }

    #[test]
    fn encode_decode_round_trip() {
        let h = sample();
        assert_eq!(Header::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn pending_flag_round_trips_and_linking_clears_it() {
        let h = sample().into_pending();
        let decoded = Header::decode(&h.encode()).unwrap();
        assert!(decoded.is_pending());
        let linked = decoded.linked(10, 11, 12);
        let again = Header::decode(&linked.encode()).unwrap();
        assert!(!again.is_pending());
        assert_eq!(again.base_sequence(), 10);
        assert_eq!(again.previous_checksum(), 12);
    }

    #[test]
    fn fields_tile_the_header_without_gaps() {
        let mut next = 0;
        for (name, off, size) in FIELDS {
            assert_eq!(
                *off, next,
                "field {name} does not start where the previous ended"
            );
            next = off + size;
        }
        assert_eq!(next, HEADER_LEN);
    }

    #[test]
    fn every_flipped_bit_of_the_checked_part_is_rejected() {
        let bytes = sample().encode();
        for bit in 0..OFF_HEADER_CHECKSUM * 8 + 32 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(Header::decode(&b).is_err(), "bit {bit} flip accepted");
        }
    }

    #[test]
    fn live_block_is_not_checksummed() {
        let h = sample();
        let mut b = h.encode();
        b[OFF_DURABLE_WATERMARK] = 0x40;
        b[OFF_HEARTBEAT + 3] = 0x11;
        assert_eq!(Header::decode(&b).unwrap(), h);
    }

    #[test]
    fn limits_are_enforced() {
        let too_small = Header::new(1, 1, 64, 8, 1, TickUnit::Secs);
        assert!(too_small.check_limits().is_err());
        let record_too_big = Header::new(1, 1, 4096, 4096, 1, TickUnit::Secs);
        assert!(record_too_big.check_limits().is_err());
        let just_fits = Header::new(
            1,
            1,
            4096,
            4096 - 8 - TRAILER_RESERVE as u32,
            1,
            TickUnit::Secs,
        );
        assert!(just_fits.check_limits().is_ok());
        let over_format = Header::new(1, 1, MAX_CAPACITY, MAX_RECORD_LEN + 1, 1, TickUnit::Secs);
        assert!(over_format.check_limits().is_err());
    }
}
