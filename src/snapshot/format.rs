//! The snapshot file header (see docs/FORMAT.md, "Snapshot file").

use crate::le::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};

/// Length of the snapshot header; the body follows it.
///
/// ```
/// use kekbit::snapshot::{SnapshotStore, SNAPSHOT_HEADER_LEN};
/// let dir = tempfile::tempdir().unwrap();
/// let info = SnapshotStore::open(dir.path(), 1).unwrap().write(1, b"body").unwrap();
/// assert_eq!(std::fs::metadata(&info.path).unwrap().len(), SNAPSHOT_HEADER_LEN as u64 + 4);
/// ```
pub const SNAPSHOT_HEADER_LEN: usize = 48;
/// The first eight bytes of every snapshot file.
///
/// ```
/// use kekbit::snapshot::{SnapshotStore, SNAPSHOT_MAGIC};
/// let dir = tempfile::tempdir().unwrap();
/// let info = SnapshotStore::open(dir.path(), 1).unwrap().write(1, b"body").unwrap();
/// assert_eq!(std::fs::read(&info.path).unwrap()[..8], SNAPSHOT_MAGIC);
/// ```
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"\x89KEKSNP\n";
/// The snapshot format version this crate writes and reads.
///
/// ```
/// use kekbit::snapshot::{SnapshotStore, SNAPSHOT_VERSION};
/// let dir = tempfile::tempdir().unwrap();
/// let info = SnapshotStore::open(dir.path(), 1).unwrap().write(1, b"body").unwrap();
/// let bytes = std::fs::read(&info.path).unwrap();
/// assert_eq!(u16::from_le_bytes([bytes[8], bytes[9]]), SNAPSHOT_VERSION);
/// ```
pub const SNAPSHOT_VERSION: u16 = 1;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_HEADER_LEN: usize = 10;
const OFF_FLAGS: usize = 12;
const OFF_SEQUENCE: usize = 16;
const OFF_BODY_LEN: usize = 24;
const OFF_BODY_CHECKSUM: usize = 32;
#[cfg(test)]
const OFF_RESERVED: usize = 36;
const OFF_HEADER_CHECKSUM: usize = 44;

/// Every field as (name, offset, size), for the test that compares code and document.
#[cfg(test)]
pub(crate) const FIELDS: &[(&str, usize, usize)] = &[
    ("magic", OFF_MAGIC, 8),
    ("format_version", OFF_VERSION, 2),
    ("header_len", OFF_HEADER_LEN, 2),
    ("flags", OFF_FLAGS, 4),
    ("sequence", OFF_SEQUENCE, 8),
    ("body_len", OFF_BODY_LEN, 8),
    ("body_checksum", OFF_BODY_CHECKSUM, 4),
    ("reserved", OFF_RESERVED, 8),
    ("header_checksum", OFF_HEADER_CHECKSUM, 4),
];

/// A decoded snapshot header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotHeader {
    /// The image covers journal records `[0, sequence)`.
    pub(crate) sequence: u64,
    pub(crate) body_len: u64,
    pub(crate) body_checksum: u32,
}

impl SnapshotHeader {
    pub(crate) fn for_body(sequence: u64, body: &[u8]) -> SnapshotHeader {
        SnapshotHeader {
            sequence,
            body_len: body.len() as u64,
            body_checksum: crc32fast::hash(body),
        }
    }

    pub(crate) fn encode(&self) -> [u8; SNAPSHOT_HEADER_LEN] {
        let mut b = [0u8; SNAPSHOT_HEADER_LEN];
        b[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&SNAPSHOT_MAGIC);
        put_u16(&mut b, OFF_VERSION, SNAPSHOT_VERSION);
        put_u16(&mut b, OFF_HEADER_LEN, SNAPSHOT_HEADER_LEN as u16);
        put_u64(&mut b, OFF_SEQUENCE, self.sequence);
        put_u64(&mut b, OFF_BODY_LEN, self.body_len);
        put_u32(&mut b, OFF_BODY_CHECKSUM, self.body_checksum);
        let crc = crc32fast::hash(&b[..OFF_HEADER_CHECKSUM]);
        put_u32(&mut b, OFF_HEADER_CHECKSUM, crc);
        b
    }

    /// Decodes and checks a header; the reason is a sentence fragment for an error.
    pub(crate) fn decode(b: &[u8]) -> Result<SnapshotHeader, String> {
        if b.len() < SNAPSHOT_HEADER_LEN {
            return Err(format!("{} bytes, shorter than a snapshot header", b.len()));
        }
        if b[OFF_MAGIC..OFF_MAGIC + 8] != SNAPSHOT_MAGIC {
            return Err("not a kekbit snapshot (wrong magic)".into());
        }
        let version = get_u16(b, OFF_VERSION);
        if version != SNAPSHOT_VERSION {
            return Err(format!(
                "unsupported snapshot version {version} (this build reads {SNAPSHOT_VERSION})"
            ));
        }
        let stored = get_u32(b, OFF_HEADER_CHECKSUM);
        let computed = crc32fast::hash(&b[..OFF_HEADER_CHECKSUM]);
        if stored != computed {
            return Err(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ));
        }
        let header_len = get_u16(b, OFF_HEADER_LEN);
        if usize::from(header_len) != SNAPSHOT_HEADER_LEN {
            return Err(format!(
                "header length {header_len}, expected {SNAPSHOT_HEADER_LEN}"
            ));
        }
        if get_u32(b, OFF_FLAGS) != 0 {
            return Err("unknown flags".into());
        }
        Ok(SnapshotHeader {
            sequence: get_u64(b, OFF_SEQUENCE),
            body_len: get_u64(b, OFF_BODY_LEN),
            body_checksum: get_u32(b, OFF_BODY_CHECKSUM),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_flipped_bit_is_refused() {
        let h = SnapshotHeader::for_body(77, b"state");
        let bytes = h.encode();
        assert_eq!(SnapshotHeader::decode(&bytes), Ok(h));
        // Every byte, reserved ones included, is covered by the header checksum.
        for bit in 0..SNAPSHOT_HEADER_LEN * 8 {
            let mut b = bytes;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                SnapshotHeader::decode(&b).is_err(),
                "bit {bit} flip accepted"
            );
        }
    }

    /// The rows of the "Snapshot file" table of docs/FORMAT.md: (field, offset, size).
    fn documented_fields() -> Vec<(String, String, String)> {
        let doc = include_str!("../../docs/FORMAT.md");
        let start = doc
            .lines()
            .position(|l| l.trim() == "## Snapshot file")
            .expect("FORMAT.md has a Snapshot file section");
        doc.lines()
            .skip(start + 1)
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                let cells: Vec<String> = l
                    .trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_string())
                    .collect();
                (cells[2].clone(), cells[0].clone(), cells[1].clone())
            })
            .collect()
    }

    #[test]
    fn header_table_matches_format_doc() {
        let mut doc = documented_fields();
        assert_eq!(doc.pop().map(|f| f.0), Some("body".to_string()));
        let code: Vec<(String, String, String)> = FIELDS
            .iter()
            .map(|(n, o, z)| (n.to_string(), o.to_string(), z.to_string()))
            .collect();
        assert_eq!(doc, code);
        let magic_row = include_str!("../../docs/FORMAT.md")
            .lines()
            .find(|l| l.contains("KEKSNP"))
            .unwrap();
        let hex = magic_row.split('`').nth(1).unwrap();
        let bytes: Vec<u8> = hex
            .split(' ')
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect();
        assert_eq!(bytes, SNAPSHOT_MAGIC);
    }

    #[test]
    fn fields_tile_the_header() {
        let mut next = 0;
        for (name, off, size) in FIELDS {
            assert_eq!(*off, next, "{name}");
            next = off + size;
        }
        assert_eq!(next, SNAPSHOT_HEADER_LEN);
    }
}
