//! One-command tour of a channel: a million records written, read live by another thread,
//! made durable, then read again from the start and checked one by one.
//!
//! ```text
//! cargo run --release --example demo [-- --records N]
//! ```
//!
//! The demo creates a channel in a fresh temporary folder (removed at the end). The main
//! thread writes `N` records (default 1,000,000) of 64 to 128 bytes, each derived from its
//! index, while a reader thread reads them as they are published and checks each one's
//! content and order. The writer then syncs the channel to storage and closes it. Finally a
//! new reader opens the channel and reads every record again through its iterator, checking
//! them once more. It prints the throughput of each phase and exits with status 1 if any
//! record is missing, out of order or different from what was written.
//!
//! Build with `--release`: a debug build works but is many times slower.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use kekbit::core::{
    shm_reader, shm_writer, EncoderHandler, Header, ReadError, Reader, TickUnit, Writer,
    RECORD_ALIGN, RECORD_HEADER_LEN, TRAILER_RESERVE,
};

const DEFAULT_RECORDS: u64 = 1_000_000;
const MIN_LEN: usize = 64;
const MAX_LEN: usize = 128;
const CHANNEL_ID: u64 = 1;
const WRITER_ID: u64 = 1;
const TIMEOUT_MILLIS: u64 = 10_000;

const USAGE: &str = "\
usage: demo [--records N]

Writes N records (default 1000000) of 64 to 128 bytes to a kekbit channel in a temporary
folder while a reader thread reads and checks them live, syncs and closes the channel,
then reads and checks every record again. Exits with status 1 on any mismatch.";

/// A 64-bit mixing function (the SplitMix64 finalizer): spreads an index over all bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Payload length of record `index`: 64 to 128 bytes.
fn record_len(index: u64) -> usize {
    MIN_LEN + (mix(index) % (MAX_LEN - MIN_LEN + 1) as u64) as usize
}

/// Writes the payload of record `index` into `buf` and returns it: the index (little-endian)
/// followed by words derived from it.
fn record(index: u64, buf: &mut [u8; MAX_LEN]) -> &[u8] {
    let len = record_len(index);
    let seed = mix(index);
    buf[..8].copy_from_slice(&index.to_le_bytes());
    for (k, chunk) in buf[8..len].chunks_mut(8).enumerate() {
        let word = seed ^ (k as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
    &buf[..len]
}

/// Checks that `found` is record `index`.
fn verify(index: u64, found: &[u8], buf: &mut [u8; MAX_LEN]) -> Result<(), String> {
    let expected = record(index, buf);
    if found == expected {
        return Ok(());
    }
    let claimed = found
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")));
    Err(format!(
        "record {index} differs from what was written: {} bytes (expected {}), starting with \
         index {claimed:?}",
        found.len(),
        expected.len()
    ))
}

/// Bytes the whole run needs in the channel: every framed record plus the closing reserve.
fn capacity_for(records: u64) -> u64 {
    let framed: u64 = (0..records)
        .map(|i| ((RECORD_HEADER_LEN + record_len(i)) as u64).next_multiple_of(RECORD_ALIGN))
        .sum();
    (framed + TRAILER_RESERVE).max(256)
}

/// What a reading pass saw.
struct Pass {
    records: u64,
    bytes: u64,
    elapsed: Duration,
}

impl Pass {
    fn summary(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        if secs == 0.0 {
            return format!("{} records", self.records);
        }
        format!(
            "{} records in {:.1} ms: {:.2} M records/s, {:.0} MB/s",
            self.records,
            secs * 1e3,
            self.records as f64 / secs / 1e6,
            self.bytes as f64 / secs / 1e6
        )
    }
}

/// The reader thread: reads the channel while it is written, checking every record, until
/// the closing marker. The clock runs from the first record to the last one.
fn read_live(root: &Path, expected: u64) -> Result<Pass, String> {
    let mut reader =
        shm_reader(root, CHANNEL_ID).map_err(|e| format!("live reader cannot open: {e}"))?;
    let mut buf = [0u8; MAX_LEN];
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut last: Option<Instant> = None;
    let mut idle = 0u32;
    loop {
        match reader.try_read() {
            Ok(Some(found)) => {
                idle = 0;
                first.get_or_insert_with(Instant::now);
                verify(records, found, &mut buf).map_err(|e| format!("live reader: {e}"))?;
                records += 1;
                bytes += found.len() as u64;
                if records == expected {
                    last = Some(Instant::now());
                }
            }
            Ok(None) => {
                // Caught up with the writer: spin briefly, then let other threads run.
                idle = idle.saturating_add(1);
                if idle < 64 {
                    std::hint::spin_loop();
                } else {
                    thread::yield_now();
                }
            }
            Err(ReadError::Closed { .. }) => break,
            Err(e) => return Err(format!("live reader: {e}")),
        }
    }
    if records != expected {
        return Err(format!(
            "live reader saw {records} records before the channel closed, expected {expected}"
        ));
    }
    let elapsed = match (first, last) {
        (Some(first), Some(last)) => last - first,
        _ => Duration::ZERO,
    };
    Ok(Pass {
        records,
        bytes,
        elapsed,
    })
}

/// Opens the closed channel afresh and reads it all through the iterator, checking every
/// record and that the iterator stopped at the closing marker.
fn read_again(root: &Path, expected: u64) -> Result<Pass, String> {
    let start = Instant::now();
    let mut reader = shm_reader(root, CHANNEL_ID).map_err(|e| format!("re-read: {e}"))?;
    let mut buf = [0u8; MAX_LEN];
    let mut records = 0u64;
    let mut bytes = 0u64;
    for found in reader.iter() {
        let found = found.map_err(|e| format!("re-read: {e}"))?;
        verify(records, found, &mut buf).map_err(|e| format!("re-read: {e}"))?;
        records += 1;
        bytes += found.len() as u64;
    }
    let elapsed = start.elapsed();
    if records != expected {
        return Err(format!(
            "re-read found {records} records, expected {expected}"
        ));
    }
    if reader.closing().is_none() {
        return Err("re-read stopped before the closing marker".to_string());
    }
    Ok(Pass {
        records,
        bytes,
        elapsed,
    })
}

/// `--records N` (or `--records=N`); `None` for `--help`.
fn parse_args() -> Result<Option<u64>, String> {
    let mut records = DEFAULT_RECORDS;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--records" => args
                .next()
                .ok_or_else(|| "--records needs a number".to_string())?,
            _ => match arg.strip_prefix("--records=") {
                Some(value) => value.to_string(),
                None => return Err(format!("unknown argument {arg:?}")),
            },
        };
        records = value
            .replace('_', "")
            .parse()
            .map_err(|_| format!("--records: {value:?} is not a non-negative integer"))?;
    }
    Ok(Some(records))
}

fn main() -> ExitCode {
    let records = match parse_args() {
        Ok(Some(records)) => records,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("demo: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(records) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(records: u64) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("kekbit-demo-")
        .tempdir()
        .map_err(|e| format!("creating a temporary folder: {e}"))?;
    let root: PathBuf = dir.path().to_path_buf();
    let capacity = capacity_for(records);
    println!(
        "kekbit demo: {records} records of {MIN_LEN}-{MAX_LEN} bytes through a {:.1} MB channel \
         in {}",
        capacity as f64 / 1e6,
        root.display()
    );

    let header = Header::new(
        WRITER_ID,
        CHANNEL_ID,
        capacity,
        MAX_LEN as u32,
        TIMEOUT_MILLIS,
        TickUnit::Millis,
    );
    let created = Instant::now();
    let mut writer =
        shm_writer(&root, &header, EncoderHandler).map_err(|e| format!("creating: {e}"))?;
    println!(
        "  create     {:.1} ms (space reserved, header written and synced)",
        created.elapsed().as_secs_f64() * 1e3
    );

    let live = {
        let root = root.clone();
        thread::Builder::new()
            .name("live-reader".into())
            .spawn(move || read_live(&root, records))
            .map_err(|e| format!("starting the reader thread: {e}"))?
    };

    let mut buf = [0u8; MAX_LEN];
    let mut bytes = 0u64;
    let start = Instant::now();
    for index in 0..records {
        let payload = record(index, &mut buf);
        writer
            .write(payload)
            .map_err(|e| format!("writing record {index}: {e}"))?;
        bytes += payload.len() as u64;
    }
    let written = Pass {
        records,
        bytes,
        elapsed: start.elapsed(),
    };
    println!("  write      {}", written.summary());

    let start = Instant::now();
    let durable = writer.sync().map_err(|e| format!("syncing: {e}"))?;
    println!(
        "  sync       {:.1} ms ({:.1} MB made durable)",
        start.elapsed().as_secs_f64() * 1e3,
        durable as f64 / 1e6
    );
    writer.close().map_err(|e| format!("closing: {e}"))?;

    let live = live
        .join()
        .map_err(|_| "the reader thread panicked".to_string())??;
    println!("  live read  {} (checked as they arrived)", live.summary());

    let again = read_again(&root, records)?;
    println!("  re-read    {} (new reader, iterator)", again.summary());

    println!("all {records} records verified");
    Ok(())
}
