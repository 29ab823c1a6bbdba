//! Opening a channel whose header was tampered with returns the precise `ChannelError`, never
//! a panic and never a reader: wrong magic (`InvalidMagic`), another format version
//! (`UnsupportedVersion`), damaged fixed bytes (`HeaderChecksumMismatch` with the stored and
//! recomputed checksums), and, with the checksum recomputed so that only the field check can
//! catch it: capacity beyond the file (`Truncated`), impossible capacity or record length,
//! unknown tick unit, flags or header length, and a file named for one channel holding another
//! (`InvalidHeader`). Random garbage, an empty file and a directory are errors too, while the
//! unchecksummed live block may hold anything.

mod common;

use std::fs;
use std::path::Path;

use common::{channel_from_bytes, crc32, drain, Stop};
use kekbit::core::{
    shm_reader, shm_writer, storage_path, ChannelError, EncoderHandler, Header, ReadError,
    ShmReader, TickUnit, Writer, FORMAT_VERSION, HEADER_LEN, MAGIC,
};

const CHANNEL: u64 = 21;
const CAPACITY: u64 = 4096;
const FILE_LEN: u64 = HEADER_LEN as u64 + CAPACITY;

/// The bytes of a valid, closed channel file holding two records.
fn pristine(channel: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::new(7, channel, CAPACITY, 256, 1_000, TickUnit::Millis);
    let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
    writer.write("one").unwrap();
    writer.write("two").unwrap();
    writer.close().unwrap();
    let bytes = fs::read(storage_path(dir.path(), channel)).unwrap();
    assert_eq!(bytes.len() as u64, FILE_LEN);
    bytes
}

fn put_u16(bytes: &mut [u8], at: usize, v: u16) {
    bytes[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// Recomputes the header checksum, so that the tampering is only caught by the field checks.
fn reseal(bytes: &mut [u8]) {
    let crc = crc32(&bytes[..92]);
    put_u32(bytes, 92, crc);
}

/// Opens `bytes` as channel `CHANNEL`; the error must name the file.
fn open(bytes: &[u8]) -> Result<ShmReader, ChannelError> {
    let (_dir, path) = channel_from_bytes(CHANNEL, bytes);
    let result = shm_reader(path.parent().unwrap(), CHANNEL);
    if let Err(e) = &result {
        assert!(
            e.to_string().contains(&path.display().to_string()),
            "error does not name the file: {e}"
        );
    }
    result
}

fn tampered(edit: impl FnOnce(&mut Vec<u8>)) -> Result<ShmReader, ChannelError> {
    let mut bytes = pristine(CHANNEL);
    edit(&mut bytes);
    open(&bytes)
}

fn invalid_header(result: Result<ShmReader, ChannelError>, what: &str) -> String {
    match result {
        Err(ChannelError::InvalidHeader { reason, .. }) => reason,
        other => panic!("{what}: expected InvalidHeader, got {other:?}"),
    }
}

#[test]
fn the_test_crc_is_the_format_crc() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let bytes = pristine(CHANNEL);
    assert_eq!(crc32(&bytes[..92]), get_u32(&bytes, 92));
    // And an untouched, resealed copy still opens: reseal itself changes nothing.
    let mut copy = bytes.clone();
    reseal(&mut copy);
    assert_eq!(copy, bytes);
    let mut reader = open(&copy).unwrap();
    assert_eq!(reader.iter().count(), 2);
}

#[test]
fn wrong_magic_is_invalid_magic() {
    for (at, value) in [(0usize, 0x88u8), (1, b'X'), (7, b'\r')] {
        let mut found = MAGIC;
        found[at] = value;
        match tampered(|b| b[at] = value) {
            Err(ChannelError::InvalidMagic { found: f, .. }) => assert_eq!(f, found),
            other => panic!("magic byte {at}: expected InvalidMagic, got {other:?}"),
        }
    }
}

#[test]
fn another_version_is_unsupported_not_damage() {
    for version in [FORMAT_VERSION + 1, 0, u16::MAX] {
        // A newer writer would have a valid checksum; an unknown version must be reported as
        // such whether or not the checksum matches.
        for resealed in [false, true] {
            let result = tampered(|b| {
                put_u16(b, 8, version);
                if resealed {
                    reseal(b);
                }
            });
            match result {
                Err(ChannelError::UnsupportedVersion {
                    found, supported, ..
                }) => assert_eq!((found, supported), (version, FORMAT_VERSION)),
                other => panic!("version {version}: expected UnsupportedVersion, got {other:?}"),
            }
        }
    }
}

#[test]
fn a_damaged_fixed_byte_is_a_checksum_mismatch() {
    let base = pristine(CHANNEL);
    let original = get_u32(&base, 92);
    // writer_id, channel_id, timeout, previous_checksum, and the checksum itself.
    for at in [16usize, 24, 50, 90, 92, 95] {
        let mut bytes = base.clone();
        bytes[at] ^= 0x10;
        match open(&bytes) {
            Err(ChannelError::HeaderChecksumMismatch {
                stored, computed, ..
            }) => {
                assert_eq!(stored, get_u32(&bytes, 92), "byte {at}");
                assert_eq!(computed, crc32(&bytes[..92]), "byte {at}");
                assert_ne!(stored, computed);
                if at < 92 {
                    assert_eq!(stored, original);
                }
            }
            other => panic!("byte {at}: expected HeaderChecksumMismatch, got {other:?}"),
        }
    }
}

#[test]
fn a_capacity_beyond_the_file_is_truncated() {
    for capacity in [CAPACITY + 8, 2 * CAPACITY, 1 << 40] {
        match tampered(|b| {
            put_u64(b, 32, capacity);
            reseal(b);
        }) {
            Err(ChannelError::Truncated { len, expected, .. }) => {
                assert_eq!(len, FILE_LEN);
                assert_eq!(expected, HEADER_LEN as u64 + capacity);
            }
            other => panic!("capacity {capacity}: expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn impossible_capacities_are_invalid_headers() {
    // Zero, below the minimum, unaligned, beyond the maximum, and near u64::MAX (where
    // `128 + capacity` would overflow).
    for capacity in [
        0u64,
        8,
        120,
        CAPACITY - 4,
        (1 << 40) + 8,
        u64::MAX - 7,
        u64::MAX,
    ] {
        let reason = invalid_header(
            tampered(|b| {
                put_u64(b, 32, capacity);
                reseal(b);
            }),
            &format!("capacity {capacity}"),
        );
        assert!(reason.contains("capacity"), "{reason}");
    }
}

#[test]
fn a_record_length_beyond_the_capacity_is_an_invalid_header() {
    for max in [
        CAPACITY as u32,
        CAPACITY as u32 * 2,
        (1 << 28) - 1,
        1 << 28,
        u32::MAX,
    ] {
        invalid_header(
            tampered(|b| {
                put_u32(b, 40, max);
                reseal(b);
            }),
            &format!("max_record_len {max}"),
        );
    }
}

#[test]
fn unknown_tick_units_flags_and_header_lengths_are_invalid_headers() {
    for unit in [0u32, 5, u32::MAX] {
        invalid_header(
            tampered(|b| {
                put_u32(b, 12, unit);
                reseal(b);
            }),
            &format!("tick unit {unit}"),
        );
    }
    // Bit 0 is the journal's "pending" flag; every other bit is unknown in version 1.
    for flags in [4u32, 0x10, 0x8000_0000, 0x0300] {
        invalid_header(
            tampered(|b| {
                put_u32(b, 44, flags);
                reseal(b);
            }),
            &format!("flags {flags:#x}"),
        );
    }
    for header_len in [0u16, 64, 127, 129, 256] {
        invalid_header(
            tampered(|b| {
                put_u16(b, 10, header_len);
                reseal(b);
            }),
            &format!("header_len {header_len}"),
        );
    }
}

#[test]
fn a_file_named_for_one_channel_holding_another_is_an_invalid_header() {
    let other = pristine(CHANNEL + 1);
    let reason = invalid_header(open(&other), "channel 22's file named for channel 21");
    assert!(reason.contains("21") && reason.contains("22"), "{reason}");
    // Opened by path, the file is what it says it is.
    let (_dir, path) = channel_from_bytes(CHANNEL, &other);
    let reader = ShmReader::open(&path).unwrap();
    assert_eq!(reader.header().channel_id(), CHANNEL + 1);
}

/// A small deterministic generator, so that failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_and_empty_files_are_errors() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    // Empty, shorter than a header, and full-sized garbage.
    match open(&[]) {
        Err(ChannelError::Truncated {
            len: 0, expected, ..
        }) => {
            assert_eq!(expected, HEADER_LEN as u64)
        }
        other => panic!("empty file: got {other:?}"),
    }
    for len in [1usize, 50, 127] {
        match open(&rng.bytes(len)) {
            Err(ChannelError::Truncated {
                len: l, expected, ..
            }) => {
                assert_eq!((l, expected), (len as u64, HEADER_LEN as u64))
            }
            other => panic!("{len} garbage bytes: got {other:?}"),
        }
    }
    for len in [128usize, FILE_LEN as usize] {
        let mut garbage = rng.bytes(len);
        garbage[0] = 0; // not the magic's first byte
        assert!(
            matches!(open(&garbage), Err(ChannelError::InvalidMagic { .. })),
            "{len} garbage bytes"
        );
    }
    // Garbage behind a real magic and version: the checksum catches it.
    let mut garbage = rng.bytes(FILE_LEN as usize);
    garbage[..8].copy_from_slice(&MAGIC);
    put_u16(&mut garbage, 8, FORMAT_VERSION);
    assert!(matches!(
        open(&garbage),
        Err(ChannelError::HeaderChecksumMismatch { .. })
    ));
}

#[test]
fn random_resealed_headers_never_panic() {
    let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
    let base = pristine(CHANNEL);
    let mut opened = 0;
    for round in 0..300 {
        let mut bytes = base.clone();
        // Random values in a few random fields of the fixed part, then resealed.
        for _ in 0..1 + round % 4 {
            let at = 10 + (rng.next() % 82) as usize;
            bytes[at] = rng.next() as u8;
        }
        if round % 2 == 0 {
            put_u32(&mut bytes, 12, 1 + (rng.next() % 4) as u32);
            put_u16(&mut bytes, 10, HEADER_LEN as u16);
            put_u32(&mut bytes, 44, 0);
        }
        reseal(&mut bytes);
        let (_dir, path) = channel_from_bytes(CHANNEL, &bytes);
        // Any verdict is fine; a reader, if one is made, must read without panicking.
        if let Ok(mut reader) = ShmReader::open(&path) {
            opened += 1;
            let (_, stop) = drain(&mut reader);
            if let Stop::Error(e) = stop {
                assert!(
                    matches!(e, ReadError::Closed { .. }) || e.is_corruption(),
                    "{e}"
                );
            }
        }
    }
    assert!(
        opened > 0,
        "no tampering was harmless: the generator is broken"
    );
}

#[test]
fn the_live_block_is_not_checksummed() {
    let mut rng = XorShift(42);
    let mut bytes = pristine(CHANNEL);
    let junk = rng.bytes(32);
    bytes[96..128].copy_from_slice(&junk);
    let mut reader = open(&bytes).unwrap();
    let (read, stop) = drain(&mut reader);
    assert_eq!(read, [b"one".to_vec(), b"two".to_vec()]);
    assert!(matches!(stop, Stop::Error(ReadError::Closed { .. })));
}

#[test]
fn a_directory_in_place_of_the_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(storage_path(dir.path(), CHANNEL)).unwrap();
    let result = shm_reader(dir.path(), CHANNEL);
    assert!(result.is_err(), "{result:?}");
    let missing = shm_reader(Path::new("/nonexistent/kekbit"), CHANNEL);
    assert!(matches!(missing, Err(ChannelError::NotFound { .. })));
}
