//! A reader in another process sees the writer's records live: the parent writes 100,000
//! records of varying sizes, whose contents are derived from their index, while a child process
//! (this test binary re-run) that opened the channel with `try_shm_reader` before the first
//! write reads and verifies every one, in order, and exits 0 once it sees `Closed`. Any
//! mismatch, error, missing record or hang (30 s) makes the child exit non-zero.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{child_dir, read_log, spawn_child, wait_for_file, wait_with_deadline};
use kekbit::core::{
    shm_writer, try_shm_reader, EncoderHandler, Header, ReadError, Reader, TickUnit, Writer,
};

const CHANNEL: u64 = 77;
const COUNT: u64 = 100_000;
const MAX: u32 = 200;

/// Record `i`: a length and bytes both derived from `i`, so the child can check it alone.
fn record(i: u64) -> Vec<u8> {
    let len = (i.wrapping_mul(2_654_435_761) >> 7) % (u64::from(MAX) + 1);
    let mut bytes: Vec<u8> = (0..len)
        .map(|j| (i.wrapping_mul(31) ^ j.wrapping_mul(17) ^ (i >> 8)) as u8)
        .collect();
    // Where there is room, the index itself, so that no two records can be confused.
    if len >= 8 {
        bytes[..8].copy_from_slice(&i.to_le_bytes());
    }
    bytes
}

/// Child: waits for the channel, reports ready, then reads and checks every record.
#[test]
fn child_reads_and_verifies() {
    let Some(dir) = child_dir() else { return };
    let mut reader = try_shm_reader(&dir, CHANNEL, 20_000, 2_000).expect("channel never appeared");
    fs::File::create(dir.join("ready")).unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = 0u64;
    let mut empty_polls = 0u64;
    loop {
        match reader.try_read() {
            Ok(Some(got)) => {
                assert!(next < COUNT, "record {next} beyond the {COUNT} written");
                let want = record(next);
                assert!(
                    got == want.as_slice(),
                    "record {next} differs: got {} bytes {:?}..., want {} bytes {:?}...",
                    got.len(),
                    &got[..got.len().min(16)],
                    want.len(),
                    &want[..want.len().min(16)]
                );
                next += 1;
            }
            Ok(None) => {
                assert!(
                    Instant::now() < deadline,
                    "gave up after 30 s at record {next}"
                );
                empty_polls += 1;
                std::thread::yield_now();
            }
            Err(ReadError::Closed { .. }) => break,
            Err(e) => panic!("at record {next}: {e}"),
        }
    }
    assert_eq!(next, COUNT, "closed after {next} records");
    println!("child read {next} records ({empty_polls} empty polls)");
    fs::write(dir.join("verified"), next.to_string()).unwrap();
}

#[test]
fn a_child_process_reads_every_record_live() {
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path();
    let log = dir.join("child.log");
    // The child starts first and waits for the channel to appear.
    let mut child = spawn_child("child_reads_and_verifies", dir, &log);

    let header = Header::new(1, CHANNEL, 32 << 20, MAX, 10_000, TickUnit::Millis);
    let mut writer = shm_writer(dir, &header, EncoderHandler).unwrap();
    if !wait_for_file(&dir.join("ready"), &mut child, Duration::from_secs(20)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!("child never opened the channel:\n{}", read_log(&log));
    }
    for i in 0..COUNT {
        writer.write(&record(i)).unwrap();
        if i % 10_000 == 9_999 {
            writer.flush().unwrap();
        }
    }
    writer.close().unwrap();

    let status = wait_with_deadline(&mut child, Duration::from_secs(60));
    let output = read_log(&log);
    assert!(
        status.is_some_and(|s| s.success()),
        "child failed or hung ({status:?}):\n{output}"
    );
    let verified = fs::read_to_string(dir.join("verified")).unwrap_or_default();
    assert_eq!(verified, COUNT.to_string(), "child output:\n{output}");
}
