//! Records of every interesting size (0, 1, 7, 8, 9, ... up to `max_record_len`) come back
//! from a channel byte for byte and in order, at the positions `write` reported, through
//! `try_read` and through `iter()`, including records published after the reader opened.
//! Closing the channel, explicitly or by dropping the writer, ends iteration quietly and
//! makes `try_read` return `ReadError::Closed` at the closing marker's position.

mod common;

use common::{drain, frame_len, Stop};
use kekbit::core::{
    shm_reader, shm_writer, EncoderHandler, Header, ReadError, Reader, TickUnit, Writer,
};

const CHANNEL: u64 = 11;
const MAX: u32 = 4096;

fn header() -> Header {
    Header::new(1, CHANNEL, 1 << 20, MAX, 10_000, TickUnit::Millis)
}

/// Payload sizes around every alignment boundary, and the extremes.
fn sizes() -> Vec<usize> {
    let mut sizes: Vec<usize> = (0..=17).collect();
    sizes.extend([
        23, 24, 25, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257,
    ]);
    sizes.extend([1000, 4087, 4088, 4089, MAX as usize - 1, MAX as usize]);
    // Once more in reverse, so large records are followed by small ones too.
    let reversed: Vec<usize> = sizes.iter().rev().copied().collect();
    sizes.extend(reversed);
    sizes
}

/// A payload that differs from every other record's, including one of the same size.
fn payload(index: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (index.wrapping_mul(131) ^ j.wrapping_mul(7)).wrapping_add(len) as u8)
        .collect()
}

fn expected() -> Vec<Vec<u8>> {
    sizes()
        .into_iter()
        .enumerate()
        .map(|(i, len)| payload(i, len))
        .collect()
}

#[test]
fn every_size_round_trips_through_try_read_at_the_reported_positions() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    let records = expected();
    let mut positions = Vec::new();
    for record in &records {
        let before = writer.position();
        let position = writer.write(record).unwrap();
        assert_eq!(position, before, "write returns where the record starts");
        assert_eq!(writer.position(), position + frame_len(record.len()));
        positions.push(position);
    }

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            reader.position(),
            positions[i],
            "position before record {i}"
        );
        let read = reader.try_read().unwrap();
        assert_eq!(
            read,
            Some(&record[..]),
            "record {i} ({} bytes)",
            record.len()
        );
    }
    assert_eq!(
        reader.try_read().unwrap(),
        None,
        "nothing beyond the last record"
    );
    assert_eq!(reader.position(), writer.position());

    let end = writer.position();
    writer.close().unwrap();
    for _ in 0..2 {
        match reader.try_read() {
            Err(ReadError::Closed { position, path }) => {
                assert_eq!(position, end);
                assert_eq!(path, kekbit::core::storage_path(dir.path(), CHANNEL));
            }
            other => panic!("expected Closed at {end}, got {other:?}"),
        }
    }
    assert_eq!(
        reader.position(),
        end,
        "a closed reader stays at the marker"
    );
}

#[test]
fn every_size_round_trips_through_iter() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    let records = expected();
    for record in &records {
        writer.write(&record[..]).unwrap();
    }
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let read: Vec<Vec<u8>> = reader
        .iter()
        .map(|r| r.map(<[u8]>::to_vec))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read.len(), records.len());
    assert_eq!(read, records);
    // The iterator ended because it caught up, not because the channel ended.
    assert_eq!(reader.try_read().unwrap(), None);
    assert_eq!(reader.iter().count(), 0);

    writer.close().unwrap();
    assert_eq!(
        reader.iter().count(),
        0,
        "the closing marker is not an item"
    );
    assert!(matches!(reader.try_read(), Err(ReadError::Closed { .. })));
}

#[test]
fn a_reader_sees_records_written_after_it_opened() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    assert_eq!(reader.try_read().unwrap(), None, "empty channel");

    let records = expected();
    for (i, record) in records.iter().enumerate() {
        let position = writer.write(record).unwrap();
        if i % 3 == 0 {
            // One at a time through try_read...
            assert_eq!(reader.position(), position);
            assert_eq!(reader.try_read().unwrap(), Some(&record[..]), "record {i}");
            assert_eq!(reader.try_read().unwrap(), None);
        } else if i % 3 == 2 {
            // ...or two at a time through a fresh iterator, which resumes where the last stopped.
            let batch: Vec<&[u8]> = reader.iter().map(Result::unwrap).collect();
            assert_eq!(
                batch,
                [&records[i - 1][..], &record[..]],
                "records {}..={i}",
                i - 1
            );
        }
    }
    let (rest, stop) = drain(&mut reader);
    let pending = usize::from((records.len() - 1) % 3 == 1);
    assert_eq!(rest.len(), pending);
    assert!(matches!(stop, Stop::CaughtUp));
}

#[test]
fn close_ends_iteration_quietly_and_try_read_reports_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    let records = [&b"first"[..], b"", b"third record"];
    for record in records {
        writer.write(record).unwrap();
    }
    let end = writer.position();
    writer.close().unwrap();

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let items: Vec<Result<&[u8], ReadError>> = reader.iter().collect();
    assert_eq!(items.len(), 3, "three records and no error item: {items:?}");
    for (item, record) in items.into_iter().zip(records) {
        assert_eq!(item.unwrap(), record);
    }
    match reader.try_read() {
        Err(ReadError::Closed { position, .. }) => assert_eq!(position, end),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert_eq!(reader.closing().map(|(trailer, _)| trailer.len()), Some(0));
    assert_eq!(reader.iter().count(), 0);
}

#[test]
fn an_empty_closed_channel_reads_as_closed_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    shm_writer(dir.path(), &header(), EncoderHandler)
        .unwrap()
        .close()
        .unwrap();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    assert_eq!(reader.iter().count(), 0);
    assert!(matches!(
        reader.try_read(),
        Err(ReadError::Closed { position: 0, .. })
    ));
}

#[test]
fn dropping_the_writer_without_close_also_closes_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    writer.write("kept").unwrap();
    writer.write(&[9u8; 9]).unwrap();
    let end = writer.position();
    drop(writer);

    let (read, stop) = drain(&mut reader);
    assert_eq!(read, [b"kept".to_vec(), vec![9u8; 9]]);
    match stop {
        Stop::Error(ReadError::Closed { position, .. }) => assert_eq!(position, end),
        other => panic!("expected Closed after the records, got {other:?}"),
    }
    // A reader opened afterwards sees the same.
    let mut late = shm_reader(dir.path(), CHANNEL).unwrap();
    assert_eq!(late.iter().count(), 2);
    assert!(matches!(late.try_read(), Err(ReadError::Closed { .. })));
}

#[test]
fn readers_are_independent_of_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    for i in 0..10u8 {
        writer.write(&[i; 3]).unwrap();
    }
    let mut fast = shm_reader(dir.path(), CHANNEL).unwrap();
    let mut slow = shm_reader(dir.path(), CHANNEL).unwrap();
    assert_eq!(fast.iter().count(), 10);
    assert_eq!(slow.try_read().unwrap(), Some(&[0u8; 3][..]));
    assert_eq!(slow.position(), 16);
    assert_eq!(fast.position(), 160);
    assert_eq!(slow.iter().count(), 9);
}
