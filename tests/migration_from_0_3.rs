//! What docs/MIGRATING.md says about moving from kekbit 0.3, checked: the byte containers 0.3
//! wrote through its blanket `Encodable` still write (`Box<[u8]>`, `Cow<str>`, `Cow<[u8]>`,
//! `Arc<[u8]>`, `Rc<str>`), `write` returns a position and the bytes used are the difference
//! of positions, `SequenceHandler::starting_at(n + 1)` numbers as 0.3's `new(n)` did,
//! `ChainedHandler::new(b, a)` writes the prefixes in the order of 0.3's `link(a, b)`, and a
//! 0.3 channel file is refused as `InvalidMagic`.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use kekbit::core::{
    shm_reader, shm_writer, ChainedHandler, ChannelError, EncoderHandler, Header, Reader,
    SequenceHandler, TickUnit, TimestampHandler, Writer,
};

fn header(channel: u64) -> Header {
    Header::new(1, channel, 4096, 64, 0, TickUnit::Millis)
}

fn records(dir: &std::path::Path, channel: u64) -> Vec<Vec<u8>> {
    let mut reader = shm_reader(dir, channel).unwrap();
    let mut out = Vec::new();
    while let Ok(Some(record)) = reader.try_read() {
        out.push(record.to_vec());
    }
    out
}

#[test]
fn byte_containers_0_3_wrote_still_write() {
    // Trap (issue 11, "API traps"): writing Box<[u8]>, Cow<str> or Arc<[u8]> no longer
    // compiled (0.3 had a blanket Encodable for AsRef<[u8]>).
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(1), EncoderHandler).unwrap();
    let boxed: Box<[u8]> = vec![1, 2].into_boxed_slice();
    let boxed_str: Box<str> = "box".into();
    let cow_str: Cow<str> = Cow::Borrowed("cow");
    let cow_bytes: Cow<[u8]> = Cow::Owned(vec![3]);
    let arc: Arc<[u8]> = vec![4, 5].into();
    let rc: Rc<str> = "rc".into();
    writer.write(&boxed).unwrap();
    writer.write(&boxed_str).unwrap();
    writer.write(&cow_str).unwrap();
    writer.write(&cow_bytes).unwrap();
    writer.write(&arc).unwrap();
    writer.write(&rc).unwrap();
    writer.write(&Box::new(vec![6u8])).unwrap();
    let want: Vec<Vec<u8>> = vec![
        vec![1, 2],
        b"box".to_vec(),
        b"cow".to_vec(),
        vec![3],
        vec![4, 5],
        b"rc".to_vec(),
        vec![6],
    ];
    assert_eq!(records(dir.path(), 1), want);
}

#[test]
fn write_returns_a_position_not_a_length() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(2), EncoderHandler).unwrap();
    let mut used = Vec::new();
    for record in ["a", "abcdefghij", ""] {
        let before = writer.position();
        assert_eq!(writer.write(record).unwrap(), before);
        used.push(writer.position() - before);
    }
    // 8-byte record header + payload, padded to 8: what 0.3's write returned.
    assert_eq!(used, [16, 24, 8]);
}

#[test]
fn sequence_numbers_as_0_3_numbered_them() {
    // 0.3: SequenceHandler::new(47) numbered 48, 49, 50; default() numbered 1, 2, 3.
    for (handler, first) in [
        (SequenceHandler::starting_at(47 + 1), 48u64),
        (SequenceHandler::starting_at(1), 1),
        (SequenceHandler::default(), 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = shm_writer(dir.path(), &header(3), handler).unwrap();
        for _ in 0..3 {
            writer.write("x").unwrap();
        }
        let numbers: Vec<u64> = records(dir.path(), 3)
            .iter()
            .map(|r| u64::from_le_bytes(r[..8].try_into().unwrap()))
            .collect();
        assert_eq!(numbers, [first, first + 1, first + 2]);
    }
}

#[test]
fn chained_prefixes_in_0_3_order() {
    // 0.3: link(sequence, timestamp) wrote the timestamp first, then the sequence number.
    let dir = tempfile::tempdir().unwrap();
    let chain = ChainedHandler::new(
        TimestampHandler::new(TickUnit::Millis),
        SequenceHandler::starting_at(1),
    );
    let mut writer = shm_writer(dir.path(), &header(4), chain).unwrap();
    let before = TickUnit::Millis.nix_time();
    writer.write("x").unwrap();
    let record = &records(dir.path(), 4)[0];
    let stamp = u64::from_le_bytes(record[..8].try_into().unwrap());
    let seq = u64::from_le_bytes(record[8..16].try_into().unwrap());
    assert!(stamp >= before, "{stamp}");
    assert_eq!((seq, &record[16..]), (1, &b"x"[..]));
}

#[test]
fn a_0_3_channel_file_is_refused_as_not_a_channel() {
    // 0.3's header starts with its signature, "*KEKBIT*" as a little-endian u64.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0u8; 4096];
    bytes[..8].copy_from_slice(&0x2A54_4942_4B45_4B2Au64.to_le_bytes());
    bytes[8..16].copy_from_slice(&1u64.to_le_bytes());
    std::fs::write(kekbit::core::storage_path(dir.path(), 5), bytes).unwrap();
    assert!(matches!(
        shm_reader(dir.path(), 5),
        Err(ChannelError::InvalidMagic { .. })
    ));
}
