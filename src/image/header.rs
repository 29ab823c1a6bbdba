//! The image file's header: two slots of 128 bytes (at offsets 0 and 512, in different
//! sectors), each complete with its own checksum and a generation number. A checkpoint
//! rewrites the older slot; opening uses the valid slot with the higher generation, so a
//! slot torn by a power loss leaves the other, previous one (docs/FORMAT.md, "Mapped image").

use std::path::Path;

use super::ImageError;

/// The magic of an image header slot: `kekimage`.
pub(crate) const MAGIC: [u8; 8] = *b"kekimage";
/// The image format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// The byte-order marker, written little-endian (`04 03 02 01`).
pub(crate) const ENDIAN: u32 = 0x0102_0304;
/// Where the data area starts: one page after the start of the file.
pub(crate) const DATA_OFFSET: u64 = 4096;
/// A header slot's length.
pub(crate) const SLOT_LEN: usize = 128;
/// Where each header slot starts.
pub(crate) const SLOT_OFFSETS: [u64; 2] = [0, 512];
/// The bytes the slot checksum covers: everything before it.
const CHECKED: usize = 124;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_ENDIAN: usize = 12;
const OFF_ELEM_SIZE: usize = 16;
const OFF_ELEM_ALIGN: usize = 20;
const OFF_TYPE_TAG: usize = 24;
const OFF_TYPE_VERSION: usize = 32;
const OFF_DATA_OFFSET: usize = 36;
const OFF_GENERATION: usize = 40;
const OFF_LEN: usize = 48;
const OFF_CAPACITY: usize = 56;
const OFF_CHECKPOINT: usize = 64;
#[cfg(test)]
const OFF_RESERVED: usize = 72;
const OFF_CHECKSUM: usize = CHECKED;

/// The slot's fields as (name, offset, size), in order: docs/FORMAT.md's table, which a test
/// compares with this.
#[cfg(test)]
pub(crate) const FIELDS: [(&str, usize, usize); 15] = [
    ("magic", OFF_MAGIC, 8),
    ("version", OFF_VERSION, 4),
    ("endian", OFF_ENDIAN, 4),
    ("elem_size", OFF_ELEM_SIZE, 4),
    ("elem_align", OFF_ELEM_ALIGN, 4),
    ("type_tag", OFF_TYPE_TAG, 8),
    ("type_version", OFF_TYPE_VERSION, 4),
    ("data_offset", OFF_DATA_OFFSET, 4),
    ("generation", OFF_GENERATION, 8),
    ("len", OFF_LEN, 8),
    ("capacity", OFF_CAPACITY, 8),
    ("checkpoint", OFF_CHECKPOINT, 8),
    ("reserved", OFF_RESERVED, 52),
    ("checksum", OFF_CHECKSUM, 4),
    ("(end)", SLOT_LEN, 0),
];

/// What the opener expects of the file: the element type and the caller's tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) elem_size: u32,
    pub(crate) elem_align: u32,
    pub(crate) type_tag: u64,
    pub(crate) type_version: u32,
}

/// One header slot's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) layout: Layout,
    pub(crate) generation: u64,
    /// Elements in use.
    pub(crate) len: u64,
    /// Elements the file's data area holds.
    pub(crate) capacity: u64,
    /// The journal sequence number up to which (exclusive) the data area is complete.
    pub(crate) checkpoint: u64,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

impl Slot {
    /// The slot's bytes, checksum included.
    pub(crate) fn encode(&self) -> [u8; SLOT_LEN] {
        let mut b = [0u8; SLOT_LEN];
        b[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&MAGIC);
        let mut put32 = |off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
        put32(OFF_VERSION, VERSION);
        put32(OFF_ENDIAN, ENDIAN);
        put32(OFF_ELEM_SIZE, self.layout.elem_size);
        put32(OFF_ELEM_ALIGN, self.layout.elem_align);
        put32(OFF_TYPE_VERSION, self.layout.type_version);
        put32(OFF_DATA_OFFSET, DATA_OFFSET as u32);
        let mut put64 = |off: usize, v: u64| b[off..off + 8].copy_from_slice(&v.to_le_bytes());
        put64(OFF_TYPE_TAG, self.layout.type_tag);
        put64(OFF_GENERATION, self.generation);
        put64(OFF_LEN, self.len);
        put64(OFF_CAPACITY, self.capacity);
        put64(OFF_CHECKPOINT, self.checkpoint);
        let crc = crc32fast::hash(&b[..CHECKED]);
        b[OFF_CHECKSUM..OFF_CHECKSUM + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a slot: `Err(NoMagic)` if it is not an image slot, `Err(Damaged)` if its
    /// checksum fails; fields that must match the opener are checked by [`Slot::check`].
    fn decode(b: &[u8; SLOT_LEN]) -> Result<Slot, SlotProblem> {
        if b[OFF_MAGIC..OFF_MAGIC + 8] != MAGIC {
            return Err(SlotProblem::NoMagic);
        }
        let crc = u32_at(b, OFF_CHECKSUM);
        if crc != crc32fast::hash(&b[..CHECKED]) {
            return Err(SlotProblem::Damaged);
        }
        Ok(Slot {
            layout: Layout {
                elem_size: u32_at(b, OFF_ELEM_SIZE),
                elem_align: u32_at(b, OFF_ELEM_ALIGN),
                type_tag: u64_at(b, OFF_TYPE_TAG),
                type_version: u32_at(b, OFF_TYPE_VERSION),
            },
            generation: u64_at(b, OFF_GENERATION),
            len: u64_at(b, OFF_LEN),
            capacity: u64_at(b, OFF_CAPACITY),
            checkpoint: u64_at(b, OFF_CHECKPOINT),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotProblem {
    NoMagic,
    Damaged,
}

/// Chooses the current slot of a header (`SLOT_OFFSETS[1] + SLOT_LEN` bytes or more): the
/// valid slot with the higher generation. Returns it with its index (0 or 1), after checking
/// every field the opener fixes against `expected`.
pub(crate) fn read_current(
    path: &Path,
    header: &[u8],
    expected: &Layout,
) -> Result<(usize, Slot), ImageError> {
    let slot_bytes = |i: usize| -> [u8; SLOT_LEN] {
        let at = SLOT_OFFSETS[i] as usize;
        header[at..at + SLOT_LEN].try_into().expect("slot length")
    };
    let raw = [slot_bytes(0), slot_bytes(1)];
    let decoded = [Slot::decode(&raw[0]), Slot::decode(&raw[1])];
    let current = match decoded {
        [Ok(a), Ok(b)] if b.generation > a.generation => (1, b, raw[1]),
        [Ok(a), _] => (0, a, raw[0]),
        [_, Ok(b)] => (1, b, raw[1]),
        [Err(SlotProblem::NoMagic), Err(SlotProblem::NoMagic)] => {
            return Err(ImageError::NotAnImage {
                path: path.to_path_buf(),
            })
        }
        [a, b] => {
            return Err(ImageError::CorruptHeader {
                path: path.to_path_buf(),
                detail: format!("slot 0: {a:?}, slot 1: {b:?}"),
            })
        }
    };
    check(path, &current.2, &current.1, expected)?;
    Ok((current.0, current.1))
}

/// Checks a valid slot's fixed fields against what the opener expects.
fn check(path: &Path, raw: &[u8], slot: &Slot, expected: &Layout) -> Result<(), ImageError> {
    let mismatch = |field: &'static str, expected: u64, found: u64| {
        if expected == found {
            Ok(())
        } else {
            Err(ImageError::Mismatch {
                path: path.to_path_buf(),
                field,
                expected,
                found,
            })
        }
    };
    mismatch("version", VERSION.into(), u32_at(raw, OFF_VERSION).into())?;
    mismatch("endian", ENDIAN.into(), u32_at(raw, OFF_ENDIAN).into())?;
    mismatch(
        "data_offset",
        DATA_OFFSET,
        u32_at(raw, OFF_DATA_OFFSET).into(),
    )?;
    mismatch(
        "elem_size",
        expected.elem_size.into(),
        slot.layout.elem_size.into(),
    )?;
    mismatch(
        "elem_align",
        expected.elem_align.into(),
        slot.layout.elem_align.into(),
    )?;
    mismatch("type_tag", expected.type_tag, slot.layout.type_tag)?;
    mismatch(
        "type_version",
        expected.type_version.into(),
        slot.layout.type_version.into(),
    )?;
    if slot.len > slot.capacity {
        return Err(ImageError::CorruptHeader {
            path: path.to_path_buf(),
            detail: format!("len {} exceeds capacity {}", slot.len, slot.capacity),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            elem_size: 64,
            elem_align: 8,
            type_tag: 0xACC0,
            type_version: 3,
        }
    }

    fn slot(generation: u64) -> Slot {
        Slot {
            layout: layout(),
            generation,
            len: 5,
            capacity: 64,
            checkpoint: 9,
        }
    }

    fn header(a: &Slot, b: &Slot) -> Vec<u8> {
        let mut h = vec![0u8; DATA_OFFSET as usize];
        h[..SLOT_LEN].copy_from_slice(&a.encode());
        h[512..512 + SLOT_LEN].copy_from_slice(&b.encode());
        h
    }

    #[test]
    fn the_newer_valid_slot_wins_and_a_torn_one_is_passed_over() {
        let p = Path::new("img");
        let mut h = header(&slot(1), &slot(2));
        assert_eq!(read_current(p, &h, &layout()).unwrap(), (1, slot(2)));
        h[512 + 50] ^= 1; // slot 1 torn: slot 0 is used
        assert_eq!(read_current(p, &h, &layout()).unwrap(), (0, slot(1)));
        h[50] ^= 1;
        assert!(matches!(
            read_current(p, &h, &layout()),
            Err(ImageError::CorruptHeader { .. })
        ));
        assert!(matches!(
            read_current(p, &[0u8; 4096], &layout()),
            Err(ImageError::NotAnImage { .. })
        ));
    }

    #[test]
    fn every_fixed_field_is_checked_by_name() {
        let p = Path::new("img");
        let h = header(&slot(1), &slot(0));
        let cases: [(&str, Layout); 4] = [
            (
                "elem_size",
                Layout {
                    elem_size: 32,
                    ..layout()
                },
            ),
            (
                "elem_align",
                Layout {
                    elem_align: 4,
                    ..layout()
                },
            ),
            (
                "type_tag",
                Layout {
                    type_tag: 1,
                    ..layout()
                },
            ),
            (
                "type_version",
                Layout {
                    type_version: 4,
                    ..layout()
                },
            ),
        ];
        for (name, expected) in cases {
            match read_current(p, &h, &expected) {
                Err(ImageError::Mismatch { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        // The version and the byte-order marker, rewritten with a valid checksum.
        for (off, name) in [(OFF_VERSION, "version"), (OFF_ENDIAN, "endian")] {
            let mut raw = slot(1).encode();
            raw[off] ^= 0xFF;
            let crc = crc32fast::hash(&raw[..CHECKED]);
            raw[CHECKED..].copy_from_slice(&crc.to_le_bytes());
            let mut h = vec![0u8; 4096];
            h[..SLOT_LEN].copy_from_slice(&raw);
            match read_current(p, &h, &layout()) {
                Err(ImageError::Mismatch { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
