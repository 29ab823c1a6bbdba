//! Helpers shared by the integration tests: reading a channel to its current end, surgery on
//! channel files (always on files no writer has mapped), a bitwise CRC32 independent of the
//! library's, and re-running the test binary as a child process.
//!
//! Each test file uses only some of these, hence `dead_code` is allowed here.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kekbit::core::{storage_path, ReadError, Reader};

/// Bytes a record with a `len`-byte payload occupies: 8-byte header plus payload, padded to 8.
pub fn frame_len(len: usize) -> u64 {
    (8 + len as u64).next_multiple_of(8)
}

/// How a drain stopped.
#[derive(Debug)]
pub enum Stop {
    /// `try_read` returned `Ok(None)`: caught up with the writer.
    CaughtUp,
    /// `try_read` returned an error.
    Error(ReadError),
}

/// Reads with `try_read` until it returns `Ok(None)` or an error, copying every record.
pub fn drain<R: Reader>(reader: &mut R) -> (Vec<Vec<u8>>, Stop) {
    let mut records = Vec::new();
    loop {
        match reader.try_read() {
            Ok(Some(record)) => records.push(record.to_vec()),
            Ok(None) => return (records, Stop::CaughtUp),
            Err(e) => return (records, Stop::Error(e)),
        }
    }
}

/// CRC-32/ISO-HDLC (reflected polynomial 0xEDB88320, init and final XOR 0xFFFFFFFF), bit by
/// bit: slow, obviously correct, and independent of the crate under test.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let lsb_mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & lsb_mask);
        }
    }
    !crc
}

/// Writes `bytes` over the file at `offset` (the file must not be mapped by a live writer).
pub fn patch_file(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// Writes `bytes` as the file of channel `channel_id` in a fresh directory.
pub fn channel_from_bytes(channel_id: u64, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = storage_path(dir.path(), channel_id);
    fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// Copies channel `channel_id` from `root` into a fresh directory, under the same name.
pub fn copy_channel(root: &Path, channel_id: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = storage_path(dir.path(), channel_id);
    fs::copy(storage_path(root, channel_id), &path).unwrap();
    (dir, path)
}

/// Names of the entries of `dir`.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The environment variable that turns a test binary's child entry point on; it carries the
/// directory the parent and the child share.
pub const CHILD_DIR_VAR: &str = "KEKBIT_TEST_CHILD_DIR";

/// The shared directory when running as a child, `None` in the parent's ordinary run.
pub fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_DIR_VAR).map(PathBuf::from)
}

/// Re-runs this test binary as a child process that runs only the `#[test]` named `entry`,
/// with `dir` in [`CHILD_DIR_VAR`]. Its stdout and stderr go to `log`.
pub fn spawn_child(entry: &str, dir: &Path, log: &Path) -> Child {
    let out = File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", entry, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VAR, dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .unwrap()
}

/// Waits for `child` to exit, at most `limit`; kills it (and returns `None`) past that.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until `path` exists, at most `limit`, or until `child` exits early.
pub fn wait_for_file(path: &Path, child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if path.exists() {
            return true;
        }
        if child.try_wait().unwrap().is_some() {
            return path.exists();
        }
        thread::sleep(Duration::from_millis(2));
    }
    false
}

/// The child's output so far, for failure messages.
pub fn read_log(log: &Path) -> String {
    fs::read_to_string(log).unwrap_or_else(|e| format!("<no log: {e}>"))
}
