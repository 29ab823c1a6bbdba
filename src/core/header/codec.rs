//! The header's bytes: encoding the header for the file, and decoding and checking what a
//! file holds, at the offsets of docs/FORMAT.md, "Channel header".

use super::*;
use crate::le::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};

impl Header {
    /// The header as it is written to disk (live block zeroed).
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
        put_u16(&mut b, OFF_VERSION, self.format_version);
        put_u16(&mut b, OFF_HEADER_LEN, HEADER_LEN as u16);
        put_u32(&mut b, OFF_TICK_UNIT, self.tick_unit.id());
        put_u64(&mut b, OFF_WRITER_ID, self.writer_id);
        put_u64(&mut b, OFF_CHANNEL_ID, self.channel_id);
        put_u64(&mut b, OFF_CAPACITY, self.capacity);
        put_u32(&mut b, OFF_MAX_RECORD_LEN, self.max_record_len);
        let mut flags = u32::from(self.mark_shift) << MARK_SHIFT_BITS;
        if self.pending {
            flags |= FLAG_PENDING;
        }
        if self.recycled {
            flags |= FLAG_RECYCLED;
        }
        put_u32(&mut b, OFF_FLAGS, flags);
        put_u64(&mut b, OFF_TIMEOUT, self.timeout);
        put_u64(&mut b, OFF_CREATION_TIME, self.creation_time);
        put_u64(&mut b, OFF_DATA_VERSION, self.data_version);
        put_u64(&mut b, OFF_BASE_SEQUENCE, self.base_sequence);
        put_u64(&mut b, OFF_PREVIOUS_CHANNEL_ID, self.previous_channel_id);
        put_u32(&mut b, OFF_PREVIOUS_CHECKSUM, self.previous_checksum);
        let crc = crc32fast::hash(&b[..OFF_HEADER_CHECKSUM]);
        put_u32(&mut b, OFF_HEADER_CHECKSUM, crc);
        b
    }

    /// Decodes and validates a header. `bytes` may be shorter than [`HEADER_LEN`] (a
    /// truncated file); checks run in the order magic, version, checksum, fields, so that a
    /// newer format is reported as such rather than as damage.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Header, HeaderDefect> {
        if bytes.len() < HEADER_LEN {
            return Err(HeaderDefect::Short { len: bytes.len() });
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&bytes[OFF_MAGIC..OFF_MAGIC + 8]);
        if magic != MAGIC {
            return Err(HeaderDefect::Magic { found: magic });
        }
        let format_version = get_u16(bytes, OFF_VERSION);
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&format_version) {
            return Err(HeaderDefect::Version {
                found: format_version,
            });
        }
        let stored = get_u32(bytes, OFF_HEADER_CHECKSUM);
        let computed = crc32fast::hash(&bytes[..OFF_HEADER_CHECKSUM]);
        if stored != computed {
            return Err(HeaderDefect::Checksum { stored, computed });
        }
        let header_len = get_u16(bytes, OFF_HEADER_LEN);
        if usize::from(header_len) != HEADER_LEN {
            return Err(HeaderDefect::Field(format!(
                "header length {header_len} is not {HEADER_LEN}"
            )));
        }
        let flags = get_u32(bytes, OFF_FLAGS);
        let known = if format_version == 1 {
            FLAG_PENDING
        } else {
            FLAG_PENDING | FLAG_RECYCLED | MARK_SHIFT_MASK
        };
        if flags & !known != 0 {
            return Err(HeaderDefect::Field(format!(
                "unknown flags {:#x} are set (format version {format_version})",
                flags & !known
            )));
        }
        let mark_shift = ((flags & MARK_SHIFT_MASK) >> MARK_SHIFT_BITS) as u8;
        if mark_shift != 0 && !(MIN_MARK_SHIFT..=MAX_MARK_SHIFT).contains(&mark_shift) {
            return Err(HeaderDefect::Field(format!(
                "mark block shift {mark_shift} is outside {MIN_MARK_SHIFT}..={MAX_MARK_SHIFT}"
            )));
        }
        let tick_id = get_u32(bytes, OFF_TICK_UNIT);
        let tick_unit = TickUnit::from_id(tick_id)
            .ok_or_else(|| HeaderDefect::Field(format!("unknown tick unit {tick_id}")))?;
        let header = Header {
            writer_id: get_u64(bytes, OFF_WRITER_ID),
            channel_id: get_u64(bytes, OFF_CHANNEL_ID),
            capacity: get_u64(bytes, OFF_CAPACITY),
            max_record_len: get_u32(bytes, OFF_MAX_RECORD_LEN),
            timeout: get_u64(bytes, OFF_TIMEOUT),
            tick_unit,
            creation_time: get_u64(bytes, OFF_CREATION_TIME),
            format_version,
            data_version: get_u64(bytes, OFF_DATA_VERSION),
            base_sequence: get_u64(bytes, OFF_BASE_SEQUENCE),
            previous_channel_id: get_u64(bytes, OFF_PREVIOUS_CHANNEL_ID),
            previous_checksum: get_u32(bytes, OFF_PREVIOUS_CHECKSUM),
            pending: flags & FLAG_PENDING != 0,
            recycled: flags & FLAG_RECYCLED != 0,
            mark_shift,
        };
        header.check_limits().map_err(HeaderDefect::Field)?;
        Ok(header)
    }
}

/// Why a header failed to decode; turned into a [`ChannelError`](super::ChannelError) that
/// names the file.
#[derive(Debug)]
pub(crate) enum HeaderDefect {
    Short { len: usize },
    Magic { found: [u8; 8] },
    Version { found: u16 },
    Checksum { stored: u32, computed: u32 },
    Field(String),
}
