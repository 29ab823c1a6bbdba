//! Handlers write the documented prefixes in front of each payload, in chain order: a
//! `SequenceHandler` a little-endian `u64` counting published records from its start, a
//! `TimestampHandler` a little-endian `u64` of ticks of its own unit taken during the write,
//! a `ChainedHandler` its first stage's fields then its second's (nesting included), and every
//! stage learns of a publication through `committed`. A custom `Encodable` is encoded straight
//! into the record, once per write; when it fails, nothing is published and no number is used.

mod common;

use std::cell::Cell;
use std::io::{self, Write};

use common::{drain, Stop};
use kekbit::core::{
    shm_reader, shm_writer, ChainedHandler, Encodable, EncoderHandler, Handler, Header, Reader,
    SequenceHandler, ShmReader, TickUnit, TimestampHandler, WriteError, Writer,
};

const CHANNEL: u64 = 4;

fn header() -> Header {
    Header::new(1, CHANNEL, 1 << 16, 256, 1_000, TickUnit::Millis)
}

fn u64_at(record: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(record[at..at + 8].try_into().unwrap())
}

fn reader(dir: &tempfile::TempDir) -> ShmReader {
    shm_reader(dir.path(), CHANNEL).unwrap()
}

#[test]
fn the_plain_handler_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    writer.write("bare").unwrap();
    writer.write(&[0u8; 0]).unwrap();
    let (read, _) = drain(&mut reader(&dir));
    assert_eq!(read, [b"bare".to_vec(), Vec::new()]);
}

#[test]
fn a_sequence_handler_prefixes_consecutive_numbers_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let start = 0x0102_0304_0506_0708;
    let mut writer =
        shm_writer(dir.path(), &header(), SequenceHandler::starting_at(start)).unwrap();
    let payloads: [&[u8]; 4] = [b"a", b"", b"three", &[0xFF; 200]];
    for payload in payloads {
        writer.write(payload).unwrap();
    }
    assert_eq!(writer.handler().next(), start + 4);
    let (read, _) = drain(&mut reader(&dir));
    assert_eq!(read.len(), 4);
    for (i, (record, payload)) in read.iter().zip(payloads).enumerate() {
        assert_eq!(record.len(), 8 + payload.len());
        // Little-endian on disk, whatever the host.
        assert_eq!(record[0], 0x08 + i as u8, "lowest byte first");
        assert_eq!(u64_at(record, 0), start + i as u64);
        assert_eq!(&record[8..], payload);
    }
    let default = SequenceHandler::default();
    assert_eq!(default.next(), 0);
}

#[test]
fn a_timestamp_handler_stamps_the_write_time_in_its_own_unit() {
    // The channel counts in milliseconds; each handler in its own unit.
    for unit in [
        TickUnit::Nanos,
        TickUnit::Micros,
        TickUnit::Millis,
        TickUnit::Secs,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let handler = TimestampHandler::new(unit);
        assert_eq!(handler.unit(), unit);
        let mut writer = shm_writer(dir.path(), &header(), handler).unwrap();
        let before = unit.nix_time();
        writer.write("stamped").unwrap();
        let after = unit.nix_time();
        let (read, _) = drain(&mut reader(&dir));
        let stamp = u64_at(&read[0], 0);
        assert!(
            (before..=after).contains(&stamp),
            "{unit:?}: {stamp} not in {before}..={after}"
        );
        assert_eq!(&read[0][8..], b"stamped");
    }
}

#[test]
fn chained_handlers_write_their_prefixes_in_chain_order() {
    let dir = tempfile::tempdir().unwrap();
    let chain = ChainedHandler::new(
        SequenceHandler::starting_at(7),
        TimestampHandler::new(TickUnit::Micros),
    );
    let mut writer = shm_writer(dir.path(), &header(), chain).unwrap();
    let before = TickUnit::Micros.nix_time();
    writer.write("x").unwrap();
    writer.write("y").unwrap();
    let after = TickUnit::Micros.nix_time();
    let (read, _) = drain(&mut reader(&dir));
    for (i, record) in read.iter().enumerate() {
        assert_eq!(record.len(), 17);
        assert_eq!(u64_at(record, 0), 7 + i as u64, "sequence first");
        assert!(
            (before..=after).contains(&u64_at(record, 8)),
            "then the stamp"
        );
    }
    assert_eq!(&read[0][16..], b"x");
    assert_eq!(&read[1][16..], b"y");

    // The other way round.
    let dir = tempfile::tempdir().unwrap();
    let chain = ChainedHandler::new(
        TimestampHandler::new(TickUnit::Micros),
        SequenceHandler::starting_at(7),
    );
    let mut writer = shm_writer(dir.path(), &header(), chain).unwrap();
    let before = TickUnit::Micros.nix_time();
    writer.write("x").unwrap();
    let after = TickUnit::Micros.nix_time();
    let (read, _) = drain(&mut reader(&dir));
    assert!(
        (before..=after).contains(&u64_at(&read[0], 0)),
        "stamp first"
    );
    assert_eq!(u64_at(&read[0], 8), 7, "then the sequence");
}

#[test]
fn nested_chains_keep_order_and_every_stage_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let chain = ChainedHandler::new(
        SequenceHandler::starting_at(1),
        ChainedHandler::new(
            TimestampHandler::new(TickUnit::Secs),
            SequenceHandler::starting_at(100),
        ),
    );
    let mut writer = shm_writer(dir.path(), &header(), chain).unwrap();
    for payload in ["p", "q", "r"] {
        writer.write(payload).unwrap();
    }
    let (read, _) = drain(&mut reader(&dir));
    let now = TickUnit::Secs.nix_time();
    for (i, record) in read.iter().enumerate() {
        let i = i as u64;
        assert_eq!(record.len(), 25);
        assert_eq!(u64_at(record, 0), 1 + i);
        assert!(u64_at(record, 8) <= now && u64_at(record, 8) + 5 >= now);
        assert_eq!(
            u64_at(record, 16),
            100 + i,
            "the inner sequence advances too"
        );
    }
}

/// A stage that writes a tag byte and counts how often it was asked and committed.
#[derive(Default)]
struct Counting {
    handled: u32,
    committed: u32,
}

impl Handler for Counting {
    fn handle<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.handled += 1;
        out.write_all(&[0xC0])
    }

    fn committed(&mut self) {
        self.committed += 1;
    }
}

/// An application type encoded field by field, counting its `encode` calls.
struct Trade<'a> {
    symbol: [u8; 4],
    price: i64,
    quantity: u32,
    note: &'a str,
    encodes: &'a Cell<u32>,
}

impl Encodable for Trade<'_> {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        self.encodes.set(self.encodes.get() + 1);
        out.write_all(&self.symbol)?;
        out.write_all(&self.price.to_le_bytes())?;
        out.write_all(&self.quantity.to_le_bytes())?;
        out.write_all(&(self.note.len() as u16).to_le_bytes())?;
        out.write_all(self.note.as_bytes())
    }
}

fn decode_trade(bytes: &[u8]) -> ([u8; 4], i64, u32, String) {
    let symbol = bytes[..4].try_into().unwrap();
    let price = i64::from_le_bytes(bytes[4..12].try_into().unwrap());
    let quantity = u32::from_le_bytes(bytes[12..16].try_into().unwrap());
    let note_len = u16::from_le_bytes(bytes[16..18].try_into().unwrap()) as usize;
    assert_eq!(bytes.len(), 18 + note_len, "no bytes beyond the encoding");
    let note = String::from_utf8(bytes[18..].to_vec()).unwrap();
    (symbol, price, quantity, note)
}

#[test]
fn a_custom_encodable_is_written_into_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = shm_writer(dir.path(), &header(), Counting::default()).unwrap();
    let encodes = Cell::new(0);
    let trades = [
        (*b"KEKB", -12_345_678_i64, 300_u32, "first fill"),
        (*b"ABCD", i64::MAX, u32::MAX, ""),
    ];
    for (symbol, price, quantity, note) in trades {
        let trade = Trade {
            symbol,
            price,
            quantity,
            note,
            encodes: &encodes,
        };
        writer.write(&trade).unwrap();
    }
    assert_eq!(encodes.get(), 2, "encoded once per write");
    assert_eq!(writer.handler().handled, 2);
    assert_eq!(writer.handler().committed, 2);

    let (read, _) = drain(&mut reader(&dir));
    assert_eq!(read.len(), 2);
    for (record, (symbol, price, quantity, note)) in read.iter().zip(trades) {
        assert_eq!(record[0], 0xC0, "the handler's tag comes first");
        assert_eq!(
            decode_trade(&record[1..]),
            (symbol, price, quantity, note.to_string())
        );
    }
}

/// Writes some bytes, then fails.
struct Failing;

impl Encodable for Failing {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(b"half a record")?;
        Err(io::Error::other("encoder gave up"))
    }
}

#[test]
fn a_failing_encoder_publishes_nothing_and_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let chain = ChainedHandler::new(SequenceHandler::starting_at(10), Counting::default());
    let mut writer = shm_writer(dir.path(), &header(), chain).unwrap();
    match writer.write(&Failing) {
        Err(WriteError::Encoding { source, .. }) => {
            assert_eq!(source.to_string(), "encoder gave up");
        }
        other => panic!("expected Encoding, got {other:?}"),
    }
    assert_eq!(writer.position(), 0);
    let mut reader = reader(&dir);
    assert_eq!(reader.try_read().unwrap(), None, "nothing was published");

    assert_eq!(
        writer.write("whole").unwrap(),
        0,
        "the next record takes the same place"
    );
    let (read, stop) = drain(&mut reader);
    assert_eq!(read.len(), 1);
    assert_eq!(u64_at(&read[0], 0), 10, "the failed write used no number");
    assert_eq!(&read[0][8..], b"\xC0whole");
    assert!(matches!(stop, Stop::CaughtUp));
}
