//! Properties over random input, checked with quickcheck:
//! (a) any sequence of records of any size from 0 to `max_record_len` round-trips exactly,
//! at the positions the writer reported, and ends with `Closed`;
//! (b) after random damage (1 to 8 bytes flipped or overwritten, in the header or the data
//! area of a copy of a closed channel) a reader never returns a record that was not written at
//! that index: it either refuses to open (and does whenever the checksummed header changed), or
//! returns a prefix of the written records (at least every record before the first damaged
//! byte) and stops at the end of data or an error, also when it jumps with `move_to`. Never a
//! panic.

mod common;

use std::fs;

use common::frame_len;
use kekbit::core::{
    shm_reader, shm_writer, storage_path, EncoderHandler, Header, ReadError, Reader, TickUnit,
    Writer, HEADER_LEN,
};
use quickcheck::{Arbitrary, Gen, QuickCheck, TestResult};

const CHANNEL: u64 = 0xDA;
const MAX: u32 = 300;
const MAX_RECORDS: usize = 40;
/// Room for `MAX_RECORDS` records of `MAX` bytes, plus the closing reserve.
const CAPACITY: u64 = 16 << 10;
/// Bytes 0..96 of the header are fixed and checksummed.
const CHECKED_HEADER: usize = 96;

#[derive(Clone, Debug)]
struct Records(Vec<Vec<u8>>);

impl Arbitrary for Records {
    fn arbitrary(g: &mut Gen) -> Records {
        let count = usize::arbitrary(g) % (MAX_RECORDS + 1);
        let records = (0..count)
            .map(|_| {
                let len = match u8::arbitrary(g) % 8 {
                    0 => 0,
                    1 => MAX as usize,
                    2..=4 => usize::arbitrary(g) % 17,
                    _ => usize::arbitrary(g) % (MAX as usize + 1),
                };
                (0..len).map(|_| u8::arbitrary(g)).collect()
            })
            .collect();
        Records(records)
    }

    fn shrink(&self) -> Box<dyn Iterator<Item = Records>> {
        Box::new(self.0.shrink().map(Records))
    }
}

/// One damaged byte: where (reduced modulo the region it aims at) and how.
#[derive(Clone, Debug)]
struct Hit {
    /// Anywhere in the file, rather than in the header and the bytes written.
    anywhere: bool,
    offset: u64,
    value: u8,
    /// XOR (always changes the byte) rather than overwrite (may leave it as it was).
    flip: bool,
}

#[derive(Clone, Debug)]
struct Damaged {
    records: Records,
    hits: Vec<Hit>,
}

impl Arbitrary for Damaged {
    fn arbitrary(g: &mut Gen) -> Damaged {
        let count = 1 + usize::arbitrary(g) % 8;
        let hits = (0..count)
            .map(|_| Hit {
                anywhere: u8::arbitrary(g) % 5 == 0,
                offset: u64::arbitrary(g),
                value: u8::arbitrary(g),
                flip: bool::arbitrary(g),
            })
            .collect();
        Damaged {
            records: Records::arbitrary(g),
            hits,
        }
    }

    /// Fewer hits first, then fewer or smaller records with the same hits.
    fn shrink(&self) -> Box<dyn Iterator<Item = Damaged>> {
        let (records, hits) = (self.records.clone(), self.hits.clone());
        let fewer_hits = (1..hits.len()).map(move |keep| Damaged {
            records: records.clone(),
            hits: hits[..keep].to_vec(),
        });
        let hits = self.hits.clone();
        let smaller_records = self.records.shrink().map(move |records| Damaged {
            records,
            hits: hits.clone(),
        });
        Box::new(fewer_hits.chain(smaller_records))
    }
}

/// A closed channel holding `records`: its directory, the record starts, and the position of
/// the closing marker.
fn written(records: &[Vec<u8>]) -> (tempfile::TempDir, Vec<u64>, u64) {
    let dir = tempfile::tempdir().unwrap();
    let header = Header::new(1, CHANNEL, CAPACITY, MAX, 1_000, TickUnit::Millis);
    let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
    let starts = records.iter().map(|r| writer.write(r).unwrap()).collect();
    let end = writer.position();
    writer.close().unwrap();
    (dir, starts, end)
}

fn prop_round_trip(records: Records) -> TestResult {
    let records = records.0;
    let (dir, starts, end) = written(&records);
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let mut expected_start = 0;
    for (i, record) in records.iter().enumerate() {
        if starts[i] != expected_start || reader.position() != starts[i] {
            return TestResult::error(format!(
                "record {i} at {}, reader at {}",
                starts[i],
                reader.position()
            ));
        }
        match reader.try_read() {
            Ok(Some(read)) if read == &record[..] => {}
            other => return TestResult::error(format!("record {i}: {other:?}")),
        }
        expected_start += frame_len(record.len());
    }
    match reader.try_read() {
        Err(ReadError::Closed { position, .. }) if position == end => TestResult::passed(),
        other => TestResult::error(format!("after {} records: {other:?}", records.len())),
    }
}

#[test]
fn any_records_round_trip() {
    QuickCheck::new()
        .tests(60)
        .rng(Gen::new(64))
        .quickcheck(prop_round_trip as fn(Records) -> TestResult);
}

/// Applies the hits to a copy of `file`, aiming at the first `used` bytes unless `anywhere`.
fn damage(file: &[u8], hits: &[Hit], used: usize) -> Vec<u8> {
    let mut damaged = file.to_vec();
    for hit in hits {
        let region = if hit.anywhere { file.len() } else { used };
        let at = (hit.offset % region as u64) as usize;
        if hit.flip {
            damaged[at] ^= hit.value | 1;
        } else {
            damaged[at] = hit.value;
        }
    }
    damaged
}

fn prop_damage_never_forges(case: Damaged) -> TestResult {
    let records = case.records.0;
    let (dir, starts, end) = written(&records);
    let original = fs::read(storage_path(dir.path(), CHANNEL)).unwrap();
    // The header, the records and the closing marker (with some zeros behind it).
    let used = HEADER_LEN + end as usize + 16;
    let damaged = damage(&original, &case.hits, used);
    let changed: Vec<usize> = (0..original.len())
        .filter(|&i| original[i] != damaged[i])
        .collect();
    let header_changed = changed.iter().any(|&i| i < CHECKED_HEADER);
    // Records wholly before the first changed data byte must survive.
    let first_damage = changed
        .iter()
        .find(|&&i| i >= HEADER_LEN)
        .map_or(u64::MAX, |&i| (i - HEADER_LEN) as u64);
    let intact = records
        .iter()
        .zip(&starts)
        .take_while(|(r, &s)| s + frame_len(r.len()) <= first_damage)
        .count();

    let copy = tempfile::tempdir().unwrap();
    fs::write(storage_path(copy.path(), CHANNEL), &damaged).unwrap();
    let mut reader = match shm_reader(copy.path(), CHANNEL) {
        Err(_) if header_changed => return TestResult::passed(),
        Err(e) => return TestResult::error(format!("intact header refused: {e}")),
        Ok(_) if header_changed => {
            return TestResult::error("a changed checksummed header was accepted")
        }
        Ok(reader) => reader,
    };

    // Sequential reading: a prefix of the records, then a stop that stays put.
    let mut read = 0;
    let stop = loop {
        match reader.try_read() {
            Ok(Some(record)) => {
                if read >= records.len() || record != &records[read][..] {
                    return TestResult::error(format!("forged record at index {read}"));
                }
                read += 1;
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    if read < intact {
        return TestResult::error(format!(
            "stopped at {read} of {intact} intact records: {stop:?}"
        ));
    }
    match &stop {
        Some(ReadError::Closed { position, .. }) if read != records.len() || *position != end => {
            return TestResult::error(format!("closed after {read} records at {position}"));
        }
        Some(e @ ReadError::Timeout { .. }) => {
            return TestResult::error(format!("timeout without a timeout reader: {e}"));
        }
        _ => {}
    }
    let at = reader.position();
    match (reader.try_read(), &stop) {
        (Ok(None), None) => {}
        (Err(again), Some(first)) if again.position() == first.position() => {}
        (again, _) => {
            return TestResult::error(format!("second read at {at} after {stop:?}: {again:?}"))
        }
    }

    // Jumps: any record start the reader accepts holds that very record, or an error.
    for (k, &start) in starts.iter().enumerate() {
        if reader.move_to(start).is_ok() {
            if let Ok(Some(record)) = reader.try_read() {
                if record != &records[k][..] {
                    return TestResult::error(format!("forged record {k} after move_to({start})"));
                }
            }
        }
    }
    TestResult::passed()
}

#[test]
fn damage_never_forges_a_record() {
    QuickCheck::new()
        .tests(150)
        .rng(Gen::new(64))
        .quickcheck(prop_damage_never_forges as fn(Damaged) -> TestResult);
}
