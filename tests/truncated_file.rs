//! A channel file cut short (a copy, truncated with `set_len` while nothing maps it) is refused
//! at open with `ChannelError::Truncated` whose `len` is the file's length and `expected` what
//! is missing: a whole header below 128 bytes, `HEADER_LEN + capacity` from 128 bytes on. No
//! length makes the reader map memory the file does not back, so there is never a SIGBUS; a
//! file longer than its header requires still opens. A reader in `ReadMode::Copied` keeps
//! reading every record after the file is truncated to 0 bytes under it (a mapped reader
//! would die of SIGBUS).

mod common;

use std::fs::OpenOptions;
use std::path::Path;

use common::{copy_channel, drain, Stop};
use kekbit::core::{
    shm_reader, shm_writer, storage_path, ChannelError, EncoderHandler, Header, ReadError,
    ReadMode, ShmReader, TickUnit, Writer, HEADER_LEN,
};

const CHANNEL: u64 = 31;
const CAPACITY: u64 = 4096;
const FULL: u64 = HEADER_LEN as u64 + CAPACITY;

/// A closed channel whose records fill most of the data area.
fn written() -> (tempfile::TempDir, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::new(1, CHANNEL, CAPACITY, 512, 1_000, TickUnit::Millis);
    let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
    let mut records = Vec::new();
    for i in 0..12u8 {
        let record = vec![i; 300];
        writer.write(&record).unwrap();
        records.push(record);
    }
    assert!(writer.position() > CAPACITY - 512);
    writer.close().unwrap();
    (dir, records)
}

fn set_len(path: &Path, len: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len).unwrap();
}

#[test]
fn every_short_length_is_truncated_with_the_right_lengths() {
    let (dir, _) = written();
    let lengths = [
        0,
        1,
        7,
        8,
        10,
        92,
        96,
        127,
        128,
        129,
        136,
        FULL / 2,
        FULL - 4096 + 1,
        FULL - 8,
        FULL - 1,
    ];
    for len in lengths {
        let (copy, path) = copy_channel(dir.path(), CHANNEL);
        set_len(&path, len);
        let expected_min = if len < HEADER_LEN as u64 {
            HEADER_LEN as u64
        } else {
            FULL
        };
        for result in [shm_reader(copy.path(), CHANNEL), ShmReader::open(&path)] {
            match result {
                Err(e @ ChannelError::Truncated { .. }) => {
                    let ChannelError::Truncated {
                        len: l,
                        expected,
                        path: named,
                    } = &e
                    else {
                        unreachable!()
                    };
                    assert_eq!((*l, *expected), (len, expected_min), "cut to {len}");
                    assert_eq!(named, &path);
                    assert!(e.to_string().contains("truncated"), "{e}");
                }
                other => panic!("cut to {len}: expected Truncated, got {other:?}"),
            }
        }
    }
}

#[test]
fn the_full_length_and_longer_files_open_and_read() {
    let (dir, records) = written();
    for extra in [0u64, 1, 4096] {
        let (copy, path) = copy_channel(dir.path(), CHANNEL);
        set_len(&path, FULL + extra);
        let mut reader = shm_reader(copy.path(), CHANNEL).unwrap();
        let (read, stop) = drain(&mut reader);
        assert_eq!(read, records, "{extra} extra bytes");
        assert!(
            matches!(stop, Stop::Error(ReadError::Closed { .. })),
            "{stop:?}"
        );
    }
}

#[test]
fn the_original_is_untouched_by_truncating_copies() {
    let (dir, records) = written();
    let (_copy, path) = copy_channel(dir.path(), CHANNEL);
    set_len(&path, 0);
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    assert_eq!(reader.iter().count(), records.len());
}

#[test]
fn a_copied_reader_reads_on_after_the_file_is_truncated_to_nothing() {
    // Regression: issue 11 item 11: a reader died of SIGBUS when another process truncated the file.
    let (dir, records) = written();
    let path = storage_path(dir.path(), CHANNEL);
    let mut reader = ShmReader::open_with(&path, ReadMode::Copied).unwrap();
    assert_eq!(reader.iter().next().unwrap().unwrap(), &records[0][..]);
    set_len(&path, 0);
    let (read, stop) = drain(&mut reader);
    assert_eq!(read, records[1..]);
    assert!(
        matches!(stop, Stop::Error(ReadError::Closed { .. })),
        "{stop:?}"
    );
    assert!(!reader.writer_alive());
}
