//! The maximum record length is enforced exactly: `max_record_len + 1` bytes are refused with
//! `WriteError::RecordTooLarge { len, max }` (even when the channel is also nearly full), while
//! exactly `max_record_len` bytes are accepted. A header whose largest record cannot fit in
//! its capacity is refused by `shm_writer` with `ChannelError::InvalidConfig` and creates no
//! file. A handler's prefix (a `SequenceHandler`'s 8 bytes) counts toward the limit, and a
//! refused write does not consume a sequence number. Trailers are bounded the same way.

mod common;

use common::{drain, frame_len, Stop};
use kekbit::core::{
    shm_reader, shm_writer, storage_path, ChannelError, EncoderHandler, Header, ReadError, Reader,
    SequenceHandler, TickUnit, WriteError, Writer, MAX_RECORD_LEN, MAX_TRAILER_LEN,
    RECORD_HEADER_LEN, TRAILER_RESERVE,
};

const CHANNEL: u64 = 5;
const MAX: u32 = 100;

fn header() -> Header {
    Header::new(1, CHANNEL, 4096, MAX, 1_000, TickUnit::Millis)
}

fn expect_too_large(result: Result<u64, WriteError>, len: u64) {
    match result {
        Err(WriteError::RecordTooLarge { len: l, max, path }) => {
            assert_eq!((l, max), (len, MAX));
            assert!(path.ends_with("0000000000000005.kekbit"), "{path:?}");
        }
        other => panic!("expected RecordTooLarge of {len} bytes, got {other:?}"),
    }
}

#[test]
fn one_byte_over_the_maximum_is_refused_and_the_maximum_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();

    expect_too_large(writer.write(&[1u8; MAX as usize + 1]), u64::from(MAX) + 1);
    expect_too_large(writer.write(&vec![1u8; 10_000]), 10_000);
    assert_eq!(writer.position(), 0, "a refused write moves nothing");

    let largest = vec![2u8; MAX as usize];
    assert_eq!(writer.write(&largest).unwrap(), 0);
    assert_eq!(writer.position(), frame_len(MAX as usize));
    expect_too_large(writer.write(&[3u8; MAX as usize + 1]), u64::from(MAX) + 1);

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let (read, stop) = drain(&mut reader);
    assert_eq!(read, [largest]);
    assert!(matches!(stop, Stop::CaughtUp), "{stop:?}");
}

#[test]
fn too_large_wins_over_full_and_full_is_reported_for_a_legal_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    while writer.available() >= frame_len(MAX as usize) {
        writer.write(&[4u8; MAX as usize]).unwrap();
    }
    let left = writer.available();
    assert!(left < frame_len(MAX as usize));
    // Too large for any channel of this header: RecordTooLarge, not ChannelFull.
    expect_too_large(writer.write(&[5u8; MAX as usize + 1]), u64::from(MAX) + 1);
    // Legal, just not here any more: ChannelFull.
    assert!(matches!(
        writer.write(&[5u8; MAX as usize]),
        Err(WriteError::ChannelFull { available, .. }) if available == left
    ));
}

#[test]
fn a_header_whose_largest_record_cannot_fit_is_refused_at_creation() {
    let dir = tempfile::tempdir().unwrap();
    // 4096 bytes hold at most one 4032-byte frame plus the 64-byte reserve: 4024 bytes of payload.
    let fits = 4096 - RECORD_HEADER_LEN as u32 - TRAILER_RESERVE as u32;
    assert_eq!(fits, 4024);

    for (channel, max) in [(1u64, fits + 1), (2, 4096), (3, u32::MAX)] {
        let header = Header::new(1, channel, 4096, max, 1_000, TickUnit::Millis);
        match shm_writer(dir.path(), &header, EncoderHandler) {
            Err(e @ ChannelError::InvalidConfig { .. }) => {
                let ChannelError::InvalidConfig { path, reason } = &e else {
                    unreachable!()
                };
                assert_eq!(path, &storage_path(dir.path(), channel));
                assert!(!reason.is_empty());
                assert!(e.to_string().contains(&path.display().to_string()));
            }
            other => {
                panic!("max_record_len {max} in 4096 bytes: expected InvalidConfig, got {other:?}")
            }
        }
        assert!(
            !storage_path(dir.path(), channel).exists(),
            "no file for a refused header"
        );
    }
    // Beyond the format's length field, even with room to spare.
    let huge = Header::new(1, 4, 1 << 30, MAX_RECORD_LEN + 1, 1_000, TickUnit::Millis);
    assert!(matches!(
        shm_writer(dir.path(), &huge, EncoderHandler),
        Err(ChannelError::InvalidConfig { .. })
    ));
    assert!(common::dir_entries(dir.path()).is_empty());

    // The boundary itself is accepted, and such a record really fits.
    let header = Header::new(1, 9, 4096, fits, 1_000, TickUnit::Millis);
    let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
    writer.write(&vec![6u8; fits as usize]).unwrap();
    assert_eq!(writer.available(), 0);
    writer.close().unwrap();
    let mut reader = shm_reader(dir.path(), 9).unwrap();
    assert_eq!(
        reader.try_read().unwrap().map(<[u8]>::len),
        Some(fits as usize)
    );
    assert!(matches!(reader.try_read(), Err(ReadError::Closed { .. })));
}

#[test]
fn a_sequence_prefix_counts_toward_the_limit_and_a_refusal_keeps_the_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), SequenceHandler::starting_at(5)).unwrap();
    let room = MAX as usize - 8;

    // 8 + 93 = 101 bytes of payload.
    expect_too_large(writer.write(&[1u8; 93]), u64::from(MAX) + 1);
    assert_eq!(writer.handler().next(), 5);
    assert_eq!(writer.position(), 0);

    assert_eq!(writer.write(&vec![2u8; room]).unwrap(), 0);
    assert_eq!(writer.handler().next(), 6);
    expect_too_large(writer.write(&[3u8; 93]), u64::from(MAX) + 1);
    assert_eq!(writer.handler().next(), 6);
    writer.write("after").unwrap();
    assert_eq!(writer.handler().next(), 7);

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let first = reader.try_read().unwrap().unwrap().to_vec();
    assert_eq!(first.len(), MAX as usize);
    assert_eq!(first[..8], 5u64.to_le_bytes());
    assert!(first[8..].iter().all(|&b| b == 2));
    let second = reader.try_read().unwrap().unwrap();
    assert_eq!(
        second[..8],
        6u64.to_le_bytes(),
        "no number was lost to the refusals"
    );
    assert_eq!(&second[8..], b"after");
}

#[test]
fn a_trailer_longer_than_the_reserve_allows_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    match writer.close_with_trailer(&[0u8; MAX_TRAILER_LEN + 1]) {
        Err(WriteError::RecordTooLarge { len, max, .. }) => {
            assert_eq!(len, MAX_TRAILER_LEN as u64 + 1);
            assert_eq!(max as usize, MAX_TRAILER_LEN);
        }
        other => panic!("expected RecordTooLarge, got {other:?}"),
    }
    // The writer was consumed and dropped, which closes the channel without a trailer.
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    assert!(matches!(
        reader.try_read(),
        Err(ReadError::Closed { position: 0, .. })
    ));
    assert_eq!(reader.closing().map(|(t, _)| t.len()), Some(0));
}
