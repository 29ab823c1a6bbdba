//! Filling a small channel: `available()` starts at `capacity - TRAILER_RESERVE` and shrinks
//! by each record's frame; a record that does not fit is refused with
//! `WriteError::ChannelFull` (correct position/needed/available) and publishes nothing, not
//! even partly staged bytes; smaller records still fit while space remains, an empty record is
//! refused once none does; the channel can still be closed, with the largest trailer, and
//! readers then read every accepted record followed by `Closed`. The closing reserve is also
//! enforced on the reading side: a data record forged into it is damage.

mod common;

use std::io::{self, Write};

use common::{crc32, drain, frame_len, Stop};
use kekbit::core::{
    shm_reader, shm_writer, storage_path, Encodable, EncoderHandler, Header, ReadError, Reader,
    ShmWriter, TickUnit, WriteError, Writer, HEADER_LEN, MAX_TRAILER_LEN, TRAILER_RESERVE,
};

const CHANNEL: u64 = 3;
const CAPACITY: u64 = 512;
/// What records may use: 448 bytes.
const LIMIT: u64 = CAPACITY - TRAILER_RESERVE;
const MAX: u32 = 200;

fn new_writer(dir: &std::path::Path) -> ShmWriter<EncoderHandler> {
    let header = Header::new(1, CHANNEL, CAPACITY, MAX, 1_000, TickUnit::Millis);
    shm_writer(dir, &header, EncoderHandler).unwrap()
}

/// Fills the channel with 100-byte records (112-byte frames) until exactly 112 bytes remain.
fn three_records(writer: &mut ShmWriter<EncoderHandler>) -> Vec<Vec<u8>> {
    let records: Vec<Vec<u8>> = (1..=3u8).map(|i| vec![i; 100]).collect();
    for record in &records {
        writer.write(record).unwrap();
    }
    assert_eq!(writer.available(), LIMIT - 3 * 112);
    records
}

/// Writes its bytes ten at a time, so that a refused record has been partly staged.
struct Chunked(Vec<u8>);

impl Encodable for Chunked {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        for chunk in self.0.chunks(10) {
            out.write_all(chunk)?;
        }
        Ok(())
    }
}

fn assert_full(
    result: Result<u64, WriteError>,
    at: u64,
    needed_at_least: u64,
    left: u64,
) -> WriteError {
    match result {
        Err(e @ WriteError::ChannelFull { .. }) => {
            let WriteError::ChannelFull {
                position,
                needed,
                available,
                ..
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(*position, at, "{e}");
            assert!(*needed >= needed_at_least, "{e}");
            assert!(*needed > *available, "{e}");
            assert_eq!(*available, left, "{e}");
            e
        }
        other => panic!("expected ChannelFull at {at}, got {other:?}"),
    }
}

#[test]
fn available_starts_below_the_reserve_and_shrinks_by_each_frame() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path());
    assert_eq!(writer.available(), LIMIT);
    let mut accepted = 0;
    for len in [0usize, 1, 7, 8, 9, 16, 17, 63, 64, 65] {
        let before = writer.available();
        writer.write(&vec![0x5A; len]).unwrap();
        assert_eq!(
            before - writer.available(),
            frame_len(len),
            "{len}-byte record"
        );
        assert_eq!(writer.position() + writer.available(), LIMIT);
        accepted += 1;
    }
    assert_eq!(
        writer.position(),
        8 + 16 + 16 + 16 + 24 + 24 + 32 + 72 + 72 + 80
    );
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    assert_eq!(reader.iter().count(), accepted);
}

#[test]
fn a_refused_record_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path());
    let records = three_records(&mut writer);

    // Exactly as large as what is left plus one byte of payload: needs 120 bytes, 112 left.
    let e = assert_full(writer.write(&[7u8; 105]), 336, 120, 112);
    assert!(e.to_string().contains("full"), "{e}");
    // Partly staged: 100 bytes fit in the staging area before the encoder was stopped.
    assert_full(writer.write(&Chunked(vec![8u8; 150])), 336, 112, 112);
    assert_eq!(writer.position(), 336);
    assert_eq!(writer.available(), 112);

    // Readers see the three records and then the end of data...
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let (read, stop) = drain(&mut reader);
    assert_eq!(read, records);
    assert!(matches!(stop, Stop::CaughtUp), "{stop:?}");
    // ...because every byte from the refused record's position on is still zero.
    let file = std::fs::read(storage_path(dir.path(), CHANNEL)).unwrap();
    let tail = &file[HEADER_LEN + 336..];
    assert!(
        tail.iter().all(|&b| b == 0),
        "staged bytes left behind at data offset {}",
        336 + tail.iter().position(|&b| b != 0).unwrap()
    );
}

#[test]
fn smaller_records_still_fit_after_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path());
    let mut records = three_records(&mut writer);

    assert_full(writer.write(&[1u8; 150]), 336, 160, 112);
    // 104 bytes frame to exactly the 112 left.
    let last = vec![0xEE; 104];
    assert_eq!(writer.write(&last).unwrap(), 336);
    records.push(last);
    assert_eq!(writer.available(), 0);
    assert_eq!(writer.position(), LIMIT);
    assert_full(writer.write(&[1u8]), LIMIT, 16, 0);

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let (read, _) = drain(&mut reader);
    assert_eq!(read, records);
}

// Regression: with no space left, `write` of an empty payload was accepted and its header
// took 8 bytes of the closing reserve; `available()` then underflowed and closing with the
// largest trailer ran past the mapping.
#[test]
fn an_empty_record_is_refused_when_no_space_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path());
    three_records(&mut writer);
    writer.write(&[0xEE; 104]).unwrap();
    assert_eq!(writer.available(), 0);

    // An empty record still needs its 8-byte header, which is not there: taking it would eat
    // into the closing marker's reserve.
    assert_full(writer.write(&[0u8; 0]), LIMIT, 8, 0);
    assert_eq!(writer.position(), LIMIT);
    assert_eq!(writer.available(), 0);
}

#[test]
fn a_full_channel_can_still_be_closed_with_the_largest_trailer() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path());
    let mut records = three_records(&mut writer);
    let last = vec![0xEE; 104];
    writer.write(&last).unwrap();
    records.push(last);
    assert_full(writer.write(&[1u8; 20]), LIMIT, 32, 0);

    let trailer = [0xAB; MAX_TRAILER_LEN];
    let checksum = writer.close_with_trailer(&trailer).unwrap();

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let (read, stop) = drain(&mut reader);
    assert_eq!(read, records);
    match stop {
        Stop::Error(ReadError::Closed { position, .. }) => assert_eq!(position, LIMIT),
        other => panic!("expected Closed at {LIMIT}, got {other:?}"),
    }
    assert_eq!(reader.closing(), Some((&trailer[..], checksum)));
}

#[test]
fn filling_with_varied_sizes_accepts_until_full_and_readers_get_every_accepted_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path());
    let mut accepted = Vec::new();
    let mut refusals = 0;
    // Sizes cycle through small and large; refused ones are skipped and writing goes on.
    for i in 0..200usize {
        let len = (i * 37) % (MAX as usize + 1);
        let record: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        let available = writer.available();
        match writer.write(&record) {
            Ok(position) => {
                assert!(
                    frame_len(len) <= available,
                    "{len} bytes accepted in {available}"
                );
                assert_eq!(position + frame_len(len), writer.position());
                accepted.push(record);
            }
            Err(WriteError::ChannelFull {
                needed, available, ..
            }) => {
                assert!(
                    frame_len(len) > available,
                    "{len} bytes refused in {available}"
                );
                assert_eq!(needed, frame_len(len));
                refusals += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(writer.position() <= LIMIT);
    }
    assert!(refusals > 0, "the channel never filled up");
    writer.close().unwrap();

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let (read, stop) = drain(&mut reader);
    assert_eq!(read, accepted);
    assert!(
        matches!(stop, Stop::Error(ReadError::Closed { .. })),
        "{stop:?}"
    );
}

// Regression: the reader accepted a data record starting inside the closing reserve (its
// length check clamped the room there to zero instead of refusing the record).
#[test]
fn a_data_record_forged_into_the_closing_reserve_is_damage() {
    // A full channel, closed: its closing marker sits at LIMIT, the first reserved byte.
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path());
    let records = three_records(&mut writer);
    writer.write(&[0xEE; 104]).unwrap();
    writer.close().unwrap();

    // Replace the marker with a well-checksummed empty data record, then a closing marker
    // behind it: the format requires `p + 8 + len <= capacity - 64` for data, which fails.
    let (_copy, path) = common::copy_channel(dir.path(), CHANNEL);
    let mut forged = Vec::new();
    for (position, kind) in [(LIMIT, 1u32), (LIMIT + 8, 2)] {
        let meta = kind << 28;
        let mut bound = CHANNEL.to_le_bytes().to_vec();
        bound.extend(position.to_le_bytes());
        bound.extend(meta.to_le_bytes());
        forged.extend(meta.to_le_bytes());
        forged.extend(crc32(&bound).to_le_bytes());
    }
    common::patch_file(&path, HEADER_LEN as u64 + LIMIT, &forged);

    let mut reader = kekbit::core::ShmReader::open(&path).unwrap();
    for record in &records[..3] {
        assert_eq!(reader.try_read().unwrap(), Some(&record[..]));
    }
    assert_eq!(reader.try_read().unwrap().map(<[u8]>::len), Some(104));
    match reader.try_read() {
        Err(
            e @ ReadError::OutOfBounds {
                position: LIMIT,
                len: 0,
                ..
            },
        ) => {
            assert!(e.is_corruption());
        }
        other => panic!("a data record inside the closing reserve was accepted: {other:?}"),
    }
}
