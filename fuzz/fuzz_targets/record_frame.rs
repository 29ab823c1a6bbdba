//! A valid segment header followed by a fuzzer-controlled data area.
//!
//! - `ShmReader`: every `try_read` agrees with the reference decoder of docs/FORMAT.md
//!   (records byte for byte at their positions, then end of data, the closing marker or
//!   damage, where the reader stays), as do `iter`, `move_to` and the durable-only setting.
//! - `JournalReader` over the same file as a one-segment journal: every record, with
//!   sequence numbers from the segment's base, then `None` at end of data or a valid seal,
//!   an error at damage.
//! - `replay` (TolerateTornTail and SkipCorrupt) returns those records or a prefix of them,
//!   never another; `journal::verify` counts them and reports damage.
//! - Recovery (`Journal::open`, on some inputs): recovers the records before the damage,
//!   continues the sequence after them, and the recovered journal then replays cleanly.
//!
//! Input: control byte 0 (bits 0-1 capacity 128/256/1024/4096; bits 2-3 max record length;
//! bit 4 raw data area instead of operations; bit 5 live header block from the input; bit 7
//! a non-zero first sequence number), control byte 1 (bit 0 run recovery; bits 1-2 its
//! mode), then the optional fields, then the data area: raw, or operations for
//! `kekbit_fuzz::build_area` (records and seals with valid checksums, raw bytes, lying
//! headers).
#![no_main]

use std::convert::Infallible;

use kekbit::core::ShmReader;
use kekbit::journal::{verify, Durability, Journal, JournalReader, RecoveryMode, VerifyStatus};
use kekbit::replay::{replay, Replay};
use kekbit_fuzz::{
    build_area, check_allocations, check_channel, fresh_dir, reset_largest, segment_template,
    write_channel, Bytes, Stop, Tracking,
};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

const CAPACITIES: [u64; 4] = [128, 256, 1024, 4096];

struct Collect(Vec<(u64, Vec<u8>)>);

impl Replay for Collect {
    type Error = Infallible;
    fn record(&mut self, seq: u64, record: &[u8]) -> Result<(), Infallible> {
        self.0.push((seq, record.to_vec()));
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let (c0, c1) = (input.u8(), input.u8());
    let capacity = CAPACITIES[usize::from(c0 & 3)];
    let largest = (capacity - 72) as u32;
    let max_record_len = [largest, 0, 8, largest.min(100)][usize::from((c0 >> 2) & 3)];
    let base = if c0 & 0x80 != 0 {
        input.u64() % (1 << 40)
    } else {
        0
    };
    let mut file = segment_template(capacity, max_record_len, base);
    if c0 & 0x20 != 0 {
        let live = input.take(32);
        file[96..96 + live.len()].copy_from_slice(live);
    }
    let area = if c0 & 0x10 != 0 {
        let mut raw = input.rest().to_vec();
        raw.resize(capacity as usize, 0);
        raw
    } else {
        build_area(input.rest(), 1, capacity)
    };
    file.extend_from_slice(&area);
    let dir = fresh_dir("record_frame");
    let path = write_channel(&dir, 1, &file);
    reset_largest();

    // The channel reader.
    let mut reader = ShmReader::open(&path).expect("a header made by kekbit opens");
    let reference = check_channel(&mut reader, &area);
    drop(reader);
    let records: Vec<(u64, Vec<u8>)> = reference
        .records
        .iter()
        .enumerate()
        .map(|(i, (_, r))| (base + i as u64, r.clone()))
        .collect();
    let n = records.len();
    // A seal that names where the segment ends, or names nothing, ends the journal quietly.
    let quiet_seal = match &reference.stop {
        Stop::Closed { trailer, .. } => {
            trailer.is_empty() || trailer.as_slice() == (base + n as u64).to_le_bytes()
        }
        _ => false,
    };

    // The journal reader.
    let mut journal_reader = JournalReader::open(&dir, base).expect("a one-segment journal opens");
    let mut got = Vec::new();
    let end = loop {
        match journal_reader.try_next() {
            Ok(Some((seq, record))) => {
                got.push((seq, record.to_vec()));
                assert!(
                    got.len() <= n,
                    "JournalReader returned more records than there are"
                );
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    drop(journal_reader);
    assert_eq!(got, records, "JournalReader records");
    match &reference.stop {
        Stop::Damage { .. } => assert!(end.is_err(), "JournalReader passed over damage"),
        Stop::End { .. } => assert!(end.is_ok(), "JournalReader failed at end of data"),
        Stop::Closed { .. } => assert_eq!(end.is_ok(), quiet_seal, "JournalReader at a seal"),
    }

    // Replay, both modes.
    for mode in [RecoveryMode::TolerateTornTail, RecoveryMode::SkipCorrupt] {
        let mut seen = Collect(Vec::new());
        let result = replay(&dir, base, mode, &mut seen);
        assert!(
            records.starts_with(&seen.0),
            "{mode:?} replay returned a record that is not there"
        );
        if let Ok(report) = result {
            assert_eq!(
                seen.0.len(),
                n,
                "{mode:?} replay ended early without an error"
            );
            if matches!(reference.stop, Stop::Damage { .. }) {
                assert!(
                    report.torn_bytes_dropped > 0 || !report.corrupt_ranges.is_empty(),
                    "{mode:?} replay did not report damage"
                );
            }
        }
    }

    // verify.
    if let Ok(report) = verify(&dir, &mut |_, _| {}) {
        assert_eq!(report.records, n as u64, "verify's count of valid records");
        if matches!(reference.stop, Stop::Damage { .. }) {
            assert_ne!(report.status(), VerifyStatus::Clean, "verify missed damage");
        }
    }

    // Recovery.
    if c1 & 1 != 0 {
        let mode = [
            RecoveryMode::TolerateTornTail,
            RecoveryMode::SkipCorrupt,
            RecoveryMode::AbsoluteConsistency,
            RecoveryMode::TolerateTornTail,
        ][usize::from((c1 >> 1) & 3)];
        let opened = Journal::options()
            .segment_capacity(4096)
            .durability(Durability::Never)
            .preallocate(false)
            .recovery(mode)
            .open(&dir);
        if let Ok(journal) = opened {
            let next = journal.next_sequence();
            assert_eq!(
                next,
                base + n as u64,
                "{mode:?} recovery lost or invented records"
            );
            let seq = journal
                .append(b"after recovery")
                .expect("append after recovery");
            assert_eq!(seq, next);
            drop(journal);
            let mut seen = Collect(Vec::new());
            replay(&dir, base, RecoveryMode::TolerateTornTail, &mut seen)
                .expect("a recovered journal replays cleanly");
            let mut want = records.clone();
            want.push((next, b"after recovery".to_vec()));
            assert_eq!(seen.0, want, "records after {mode:?} recovery");
            let report = verify(&dir, &mut |_, _| {}).expect("verify a recovered journal");
            assert_eq!(
                report.status(),
                VerifyStatus::Clean,
                "{:?}",
                report.problems
            );
        }
    }
    check_allocations(data.len(), "record_frame");
});
