//! `Reader::move_to` accepts exactly the record starts and the end of the published data:
//! every record start is reachable forward and backward and reads back its record; aligned
//! offsets inside a record are `NotRecordStart` naming that record's start; unaligned offsets
//! are `Unaligned`; offsets past the end are `Unavailable` naming the end; a refused move
//! leaves the reader where it was. After close, moving back to 0 re-reads everything, and a
//! damaged record makes every position behind it `BeyondDamage`.

mod common;

use common::{drain, frame_len, Stop};
use kekbit::core::{
    shm_reader, shm_writer, storage_path, EncoderHandler, Header, InvalidPosition, ReadError,
    Reader, ShmReader, TickUnit, Writer, HEADER_LEN,
};

const CHANNEL: u64 = 8;
const CAPACITY: u64 = 1 << 16;

/// A written channel: its records, where each starts, and where the data ends.
struct Layout {
    records: Vec<Vec<u8>>,
    starts: Vec<u64>,
    end: u64,
}

fn write_records(writer: &mut impl Writer) -> Layout {
    let sizes = [0usize, 1, 7, 8, 9, 16, 17, 100, 255, 256, 3, 512, 0, 40, 24];
    let mut layout = Layout {
        records: Vec::new(),
        starts: Vec::new(),
        end: 0,
    };
    for (i, len) in sizes.into_iter().enumerate() {
        let record: Vec<u8> = (0..len).map(|j| (i * 17 + j) as u8).collect();
        let start = writer.write(&record).unwrap();
        assert_eq!(start, layout.end);
        layout.end = start + frame_len(len);
        layout.starts.push(start);
        layout.records.push(record);
    }
    layout
}

fn setup() -> (
    tempfile::TempDir,
    kekbit::core::ShmWriter<EncoderHandler>,
    Layout,
) {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::new(1, CHANNEL, CAPACITY, 512, 1_000, TickUnit::Millis);
    let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
    let layout = write_records(&mut writer);
    (dir, writer, layout)
}

fn move_and_read(reader: &mut ShmReader, layout: &Layout, i: usize) {
    let start = layout.starts[i];
    assert_eq!(reader.move_to(start).unwrap(), start, "record {i}");
    assert_eq!(reader.position(), start);
    assert_eq!(
        reader.try_read().unwrap(),
        Some(&layout.records[i][..]),
        "record {i} after move_to({start})"
    );
}

#[test]
fn every_record_start_is_reachable_forward_and_backward() {
    let (dir, _writer, layout) = setup();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let n = layout.records.len();
    for i in 0..n {
        move_and_read(&mut reader, &layout, i);
    }
    for i in (0..n).rev() {
        move_and_read(&mut reader, &layout, i);
    }
    // Jumping around: 7 is coprime with 15, so this visits every record.
    for k in 0..n {
        move_and_read(&mut reader, &layout, (k * 7) % n);
    }
    // Moving to the current position is a no-op that succeeds.
    let here = reader.position();
    assert_eq!(reader.move_to(here).unwrap(), here);
}

#[test]
fn aligned_offsets_inside_records_are_not_record_starts() {
    let (dir, _writer, layout) = setup();
    let mut from_start = shm_reader(dir.path(), CHANNEL).unwrap();
    let mut from_end = shm_reader(dir.path(), CHANNEL).unwrap();
    from_end.move_to(layout.end).unwrap();
    let mut checked = 0;
    for (i, &start) in layout.starts.iter().enumerate() {
        let next = start + frame_len(layout.records[i].len());
        for inside in (start + 8..next).step_by(8) {
            for reader in [&mut from_start, &mut from_end] {
                let before = reader.position();
                match reader.move_to(inside) {
                    Err(InvalidPosition::NotRecordStart {
                        position,
                        record_start,
                    }) => {
                        assert_eq!(position, inside);
                        assert_eq!(record_start, start, "offset {inside} is in record {i}");
                    }
                    other => panic!("offset {inside} inside record {i}: got {other:?}"),
                }
                assert_eq!(reader.position(), before, "a refused move moved the reader");
            }
            checked += 1;
        }
        // From the record's own start, walking forward meets the same record.
        let mut at_record = shm_reader(dir.path(), CHANNEL).unwrap();
        at_record.move_to(start).unwrap();
        if next > start + 8 {
            assert!(matches!(
                at_record.move_to(next - 8),
                Err(InvalidPosition::NotRecordStart { record_start, .. }) if record_start == start
            ));
        }
    }
    assert!(checked > 100, "only {checked} inner offsets");
    // The readers still read correctly from where they are.
    assert_eq!(from_start.try_read().unwrap(), Some(&layout.records[0][..]));
    assert_eq!(from_end.try_read().unwrap(), None);
}

#[test]
fn unaligned_offsets_are_refused() {
    let (dir, _writer, layout) = setup();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    reader.move_to(layout.starts[3]).unwrap();
    for offset in (1..layout.end + 40).filter(|o| o % 8 != 0) {
        match reader.move_to(offset) {
            Err(InvalidPosition::Unaligned { position }) => assert_eq!(position, offset),
            other => panic!("offset {offset}: got {other:?}"),
        }
    }
    assert!(matches!(
        reader.move_to(u64::MAX),
        Err(InvalidPosition::Unaligned { .. })
    ));
    assert_eq!(reader.position(), layout.starts[3]);
}

#[test]
fn the_end_is_accepted_and_offsets_beyond_it_are_unavailable() {
    let (dir, mut writer, layout) = setup();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    for beyond in [
        layout.end + 8,
        layout.end + 64,
        CAPACITY - 64,
        CAPACITY,
        CAPACITY + 8,
        u64::MAX - 7,
    ] {
        match reader.move_to(beyond) {
            Err(InvalidPosition::Unavailable { position, end }) => {
                assert_eq!((position, end), (beyond, layout.end));
            }
            other => panic!("offset {beyond}: got {other:?}"),
        }
        assert_eq!(reader.position(), 0);
    }
    assert_eq!(reader.move_to(layout.end).unwrap(), layout.end);
    assert_eq!(reader.try_read().unwrap(), None);

    // Once published, what was the end is a record start, and the new end is reachable.
    let start = writer.write("late").unwrap();
    assert_eq!(start, layout.end);
    let mut other = shm_reader(dir.path(), CHANNEL).unwrap();
    assert_eq!(other.move_to(start + 16).unwrap(), start + 16);
    assert_eq!(other.move_to(start).unwrap(), start);
    assert_eq!(other.try_read().unwrap(), Some(&b"late"[..]));
    assert_eq!(reader.try_read().unwrap(), Some(&b"late"[..]));
}

#[test]
fn after_close_moving_back_to_zero_rereads_everything() {
    let (dir, writer, layout) = setup();
    writer.close().unwrap();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    for round in 0..2 {
        let (read, stop) = drain(&mut reader);
        assert_eq!(read, layout.records, "round {round}");
        match stop {
            Stop::Error(ReadError::Closed { position, .. }) => assert_eq!(position, layout.end),
            other => panic!("round {round}: expected Closed, got {other:?}"),
        }
        assert_eq!(reader.move_to(0).unwrap(), 0);
    }
    // The closing marker's position is the end; nothing lies beyond it.
    assert_eq!(reader.move_to(layout.end).unwrap(), layout.end);
    assert!(matches!(reader.try_read(), Err(ReadError::Closed { .. })));
    assert!(matches!(
        reader.move_to(layout.end + 8),
        Err(InvalidPosition::Unavailable { end, .. }) if end == layout.end
    ));
    // And from a middle record onwards.
    let k = layout.records.len() / 2;
    reader.move_to(layout.starts[k]).unwrap();
    assert_eq!(reader.iter().count(), layout.records.len() - k);
}

#[test]
fn a_damaged_record_makes_every_position_behind_it_beyond_damage() {
    let (dir, writer, layout) = setup();
    writer.close().unwrap();
    let damaged = 7; // a 100-byte record
    let at = layout.starts[damaged];
    let path = storage_path(dir.path(), CHANNEL);
    let mut file = std::fs::read(&path).unwrap();
    let byte = HEADER_LEN + at as usize + 8 + 50;
    file[byte] ^= 0x01;
    std::fs::write(&path, &file).unwrap();

    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    for i in 0..=damaged {
        assert_eq!(reader.move_to(layout.starts[i]).unwrap(), layout.starts[i]);
    }
    match reader.try_read() {
        Err(e @ ReadError::ChecksumMismatch { .. }) => assert_eq!(e.position(), at),
        other => panic!("expected ChecksumMismatch at {at}, got {other:?}"),
    }
    let behind = layout.starts[damaged + 1..]
        .iter()
        .copied()
        .chain([layout.end, layout.end + 8]);
    for target in behind {
        for from in [0, at] {
            reader.move_to(from).unwrap();
            match reader.move_to(target) {
                Err(InvalidPosition::BeyondDamage { position, cause }) => {
                    assert_eq!(position, target);
                    assert!(
                        matches!(*cause, ReadError::ChecksumMismatch { position, .. } if position == at),
                        "cause {cause:?}"
                    );
                }
                other => panic!("{target} from {from}: expected BeyondDamage, got {other:?}"),
            }
            assert_eq!(reader.position(), from);
        }
    }
    // Records before the damage still read.
    reader.move_to(layout.starts[damaged - 1]).unwrap();
    assert_eq!(
        reader.try_read().unwrap(),
        Some(&layout.records[damaged - 1][..])
    );
}
