//! One writer process and three reader processes share a journal across hundreds of
//! rollovers: every reader sees every record exactly once, in order, with its exact content
//! (../shared/RELIABILITY.md, "1 writer + several reader processes across >= 100
//! rollovers").
//!
//! The parent only runs the others (this test binary re-run) and judges. Two readers open a
//! `JournalReader` from sequence 0 on the directory before the journal exists: one reads
//! every published record, one only durable records (`set_durable_only(true)`). The writer
//! then creates the journal (8 KiB segments, records of 0 to 1,000 bytes derived from
//! (seed, sequence number), `Durability::EveryN(50)`) and appends with random pauses, so the
//! readers meet the end of the data at every kind of place, seals included. A third reader
//! starts from 0 once the writer is half-way, so it first catches up over sealed segments,
//! then follows live. The writer syncs and closes the journal (drops it) at the end.
//!
//! Each reader follows with `next_timeout` until it has the expected count, checks each
//! record's sequence number (a jump is a gap, a repeat a duplicate) and content (the library
//! verifies each record's CRC; the content must also be exactly the derivation), checks that
//! nothing follows the last record, reports, and exits 0 only if all is well. Every wait is
//! bounded (a reader gives up after 2 minutes plus a millisecond per record, the parent kills
//! anything still running a minute later), so a lost record fails the test instead of
//! hanging it. The parent then requires at least 100 rollovers (one per 20 records when
//! fewer than 2,000 are asked for) and a clean `kekbit::journal::verify`, and prints records
//! read and gaps (0).
//!
//! `KEKBIT_READER_RECORDS` sets the number of records (default 10,000, about 670 rollovers);
//! `KEKBIT_SEED` replays the payloads and pauses. For example:
//!
//! ```text
//! KEKBIT_READER_RECORDS=100000 cargo test --release --test reliability_concurrent_readers -- --nocapture
//! ```

#[path = "common/reliability.rs"]
mod reliability;

use std::path::Path;
use std::time::{Duration, Instant};

use kekbit::journal::{verify, Durability, Journal, JournalError, JournalReader, VerifyStatus};
use reliability::{env_count, payload, run_seed, tell_parent, ChildProc, Rng};

const WRITER: &str = "child_writer_appends_and_closes";
const READER: &str = "child_reader_follows_to_the_end";
const ENV_DIR: &str = "KEKBIT_READERS_CHILD_DIR";
const ENV_SEED: &str = "KEKBIT_READERS_CHILD_SEED";
const ENV_COUNT: &str = "KEKBIT_READERS_CHILD_COUNT";
const ENV_DURABLE_ONLY: &str = "KEKBIT_READERS_CHILD_DURABLE_ONLY";

const SEGMENT_CAPACITY: u64 = 8 << 10;
const MAX_RECORD: u32 = 1_000;
const DEFAULT_RECORDS: u64 = 10_000;
const MIN_ROLLOVERS: u64 = 100;
/// Wait of one `next_timeout` call in a reader.
const READ_WAIT: Duration = Duration::from_secs(10);
/// Wait for a child's first line.
const LINE_WAIT: Duration = Duration::from_secs(60);
/// How long a reader may take in all: 2 minutes, and a millisecond more per record.
fn reader_limit(count: u64) -> Duration {
    Duration::from_secs(120) + Duration::from_millis(count)
}

/// How long the parent waits for any child before killing it.
fn child_limit(count: u64) -> Duration {
    reader_limit(count) + Duration::from_secs(60)
}

fn record(seed: u64, seq: u64) -> Vec<u8> {
    payload(seed, seq, MAX_RECORD as usize)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child: {name} is not set"))
}

fn child_params() -> Option<(std::path::PathBuf, u64, u64)> {
    let dir = std::env::var_os(ENV_DIR)?;
    let seed = env(ENV_SEED).parse().unwrap();
    let count = env(ENV_COUNT).parse().unwrap();
    Some((dir.into(), seed, count))
}

/// Writer entry point; returns at once in an ordinary test run. Creates the journal,
/// appends `count` records with random pauses, syncs and closes it.
#[test]
fn child_writer_appends_and_closes() {
    let Some((dir, seed, count)) = child_params() else {
        return;
    };
    let mut rng = Rng::new(seed ^ 0x5752_4954_4552);
    let journal = Journal::options()
        .segment_capacity(SEGMENT_CAPACITY)
        .max_record_len(MAX_RECORD)
        .durability(Durability::EveryN(50))
        .open(&dir)
        .unwrap_or_else(|e| panic!("writer: opening the journal: {e}"));
    assert_eq!(journal.next_sequence(), 0, "writer: the journal is not new");
    for seq in 0..count {
        let got = journal
            .append(&record(seed, seq))
            .unwrap_or_else(|e| panic!("writer: appending {seq}: {e}"));
        assert_eq!(got, seq, "writer: sequence number");
        match rng.below(100) {
            0 => std::thread::sleep(Duration::from_micros(rng.below(2_000))),
            1..=9 => std::thread::yield_now(),
            _ => {}
        }
        if seq + 1 == count / 2 {
            tell_parent("half");
        }
    }
    journal
        .sync()
        .unwrap_or_else(|e| panic!("writer: final sync: {e}"));
    drop(journal);
    tell_parent(&format!("closed {count}"));
}

/// Reader entry point; returns at once in an ordinary test run. Reads records 0 to
/// `count - 1` as they come, then checks that nothing follows, and reports
/// `done <read> <gaps> <duplicates> <bad>`.
#[test]
fn child_reader_follows_to_the_end() {
    let Some((dir, seed, count)) = child_params() else {
        return;
    };
    let durable_only = env(ENV_DURABLE_ONLY) == "1";
    let mut reader = JournalReader::open(&dir, 0)
        .unwrap_or_else(|e| panic!("reader: opening a reader on {}: {e}", dir.display()));
    reader.set_durable_only(durable_only);
    tell_parent("ready");
    let limit = reader_limit(count);
    let deadline = Instant::now() + limit;
    let (mut read, mut gaps, mut duplicates, mut bad) = (0u64, 0u64, 0u64, 0u64);
    let mut next = 0u64;
    while next < count {
        assert!(
            Instant::now() < deadline,
            "reader: gave up at record {next} after {limit:?}"
        );
        match reader.next_timeout(READ_WAIT) {
            Ok(Some((seq, bytes))) => {
                read += 1;
                if seq > next {
                    gaps += seq - next;
                } else if seq < next {
                    duplicates += 1;
                }
                if bytes != record(seed, seq) {
                    bad += 1;
                }
                next = next.max(seq + 1);
            }
            Ok(None) => {}
            // Regression: a live reader at the end of a segment's data failed with
            // `JournalError::Unsealed` when the writer sealed that segment and appended to
            // the next one between the reader's two looks (src/journal/reader.rs,
            // `check_unsealed_end`, which did not look at its own segment again after
            // seeing a record in the next). Without the fix (64113c9) this test failed in
            // 11 of 12 runs.
            Err(e) => {
                tell_parent(&format!("error at record {next}: {e}"));
                panic!("reader: at record {next}: {e}")
            }
        }
    }
    // The writer may still be closing: what follows the last record can only be its seal.
    let extra = match reader.next_timeout(Duration::from_millis(200)) {
        Ok(Some((seq, _))) => Some(seq),
        Ok(None) | Err(JournalError::WriterClosed { .. }) => None,
        Err(e) => {
            tell_parent(&format!("error after the last record: {e}"));
            panic!("reader: after the last record: {e}")
        }
    };
    tell_parent(&format!("done {read} {gaps} {duplicates} {bad}"));
    assert_eq!(extra, None, "reader: a record after the last one");
    assert_eq!(
        (read, gaps, duplicates, bad),
        (count, 0, 0, 0),
        "reader: records read, gaps, duplicates, bad"
    );
}

fn spawn(test: &str, dir: &Path, seed: u64, count: u64, durable_only: bool) -> ChildProc {
    ChildProc::spawn(
        test,
        &[
            (ENV_DIR, dir.display().to_string()),
            (ENV_SEED, seed.to_string()),
            (ENV_COUNT, count.to_string()),
            (
                ENV_DURABLE_ONLY,
                if durable_only { "1" } else { "0" }.into(),
            ),
        ],
        false,
    )
}

/// Parses a reader's `done` line into (read, gaps, duplicates, bad).
fn parse_done(line: &str) -> Option<(u64, u64, u64, u64)> {
    let words: Vec<u64> = line
        .strip_prefix("done ")?
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    match words[..] {
        [read, gaps, duplicates, bad] => Some((read, gaps, duplicates, bad)),
        _ => None,
    }
}

#[test]
fn every_reader_process_sees_every_record_once_in_order_across_rollovers() {
    let count = env_count("KEKBIT_READER_RECORDS", DEFAULT_RECORDS);
    assert!(count >= 2, "KEKBIT_READER_RECORDS: at least 2 records");
    let seed = run_seed();
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    println!("concurrent readers: {count} records, seed {seed} (KEKBIT_SEED to replay)");

    // Two readers wait on a directory that does not exist yet.
    let mut readers = vec![
        (
            "early, every record",
            spawn(READER, &dir, seed, count, false),
        ),
        (
            "early, durable only",
            spawn(READER, &dir, seed, count, true),
        ),
    ];
    for (what, reader) in &mut readers {
        let line = reader.expect_line(LINE_WAIT, &format!("\"ready\" from the {what} reader"));
        assert_eq!(line, "ready");
    }
    let mut writer = spawn(WRITER, &dir, seed, count, false);
    let half = writer.expect_line(child_limit(count), "\"half\" from the writer");
    assert_eq!(half, "half");
    let mut late = spawn(READER, &dir, seed, count, false);
    let line = late.expect_line(LINE_WAIT, "\"ready\" from the late reader");
    assert_eq!(line, "ready");
    readers.push(("late, every record", late));

    let closed = writer.expect_line(child_limit(count), "\"closed\" from the writer");
    assert_eq!(closed, format!("closed {count}"));
    let status = writer.wait(child_limit(count));
    let log = writer.stderr_text();
    assert!(
        status.is_some_and(|s| s.success()),
        "writer: {status:?}\n{log}"
    );

    let (mut read, mut gaps, mut duplicates, mut bad) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (what, reader) in &mut readers {
        let done = reader
            .line(child_limit(count))
            .unwrap_or_else(|| "no \"done\" line (exited or timed out)".into());
        let status = reader.wait(child_limit(count));
        let log = reader.stderr_text();
        let Some((r, g, d, b)) = parse_done(&done) else {
            println!("  {what} reader: {done}");
            failures.push(format!("{what} reader: {done}\n{log}"));
            continue;
        };
        println!(
            "  {what} reader: records read {r}, gaps {g}, duplicates {d}, bad {b}, \
             exit status {:?}",
            status.and_then(|s| s.code())
        );
        read += r;
        gaps += g;
        duplicates += d;
        bad += b;
        if !status.is_some_and(|s| s.success()) {
            failures.push(format!("{what} reader exited with {status:?}:\n{log}"));
        }
    }

    let segments = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".kekbit")
        })
        .count() as u64;
    let rollovers = segments - 1;
    let report = verify(&dir, &mut |_, _| {}).unwrap();
    println!(
        "concurrent readers: {} readers, records written {count}, rollovers {rollovers}, \
         records read {read}, gaps {gaps}, duplicates {duplicates}, bad records {bad}, \
         verify {:?}, {:.1} s",
        readers.len(),
        report.status(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        (gaps, duplicates, bad),
        (0, 0, 0),
        "gaps, duplicates, bad records"
    );
    assert_eq!(read, count * readers.len() as u64, "records read");
    assert!(
        rollovers >= MIN_ROLLOVERS.min(count / 20),
        "only {rollovers} rollovers"
    );
    assert_eq!(
        report.status(),
        VerifyStatus::Clean,
        "{:?}",
        report.problems
    );
    assert_eq!(report.records, count);
}
