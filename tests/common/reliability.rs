//! Helpers of the `reliability_*` tests: a small deterministic random generator, record
//! payloads derived from (seed, sequence number) so that a parent can check what a child
//! wrote without being told, trial counts from the environment, and child processes (this
//! test binary re-run on one test) that talk to their parent through tagged stdout lines and
//! optionally listen on stdin.
//!
//! Included with `#[path = "common/reliability.rs"] mod reliability;`, and by
//! `common/journal.rs` for the child processes of the `journal_*` tests. Each test file uses
//! only part of this, hence `dead_code` is allowed.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// SplitMix64: tiny, fast, and good enough to scatter sizes, delays and bytes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `bytes` with the next values, eight bytes each.
    pub fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

/// Hashes two words into one (to derive independent streams from one seed).
pub fn mix(a: u64, b: u64) -> u64 {
    Rng::new(a ^ b.wrapping_mul(0xD6E8_FEB8_6659_FD93)).next_u64()
}

/// The record with sequence number `seq` of a journal written with `seed`: a length from 0 to
/// `max_len` (a quarter of them exactly `max_len`, a quarter under 64 bytes, the rest
/// uniform) and pseudo-random bytes, the first eight of which (when there is room) are `seq`
/// itself, to make a misplaced record easy to recognise in a failure message.
pub fn payload(seed: u64, seq: u64, max_len: usize) -> Vec<u8> {
    let mut rng = Rng::new(mix(seed, seq));
    let len = match rng.below(4) {
        0 => max_len,
        1 => rng.below(64.min(max_len as u64 + 1)) as usize,
        _ => rng.below(max_len as u64 + 1) as usize,
    };
    let mut bytes = vec![0; len];
    rng.fill(&mut bytes);
    let head = len.min(8);
    bytes[..head].copy_from_slice(&seq.to_le_bytes()[..head]);
    bytes
}

/// A count from the environment variable `name`, or `default` when it is not set.
pub fn env_count(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a count")),
        Err(_) => default,
    }
}

/// The seed of a run: `KEKBIT_SEED` if set (to replay a failure's payloads and choices),
/// else taken from the clock. Always printed by the tests.
pub fn run_seed() -> u64 {
    match std::env::var("KEKBIT_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("KEKBIT_SEED={text:?} is not a number")),
        Err(_) => {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            mix(nanos, u64::from(std::process::id()))
        }
    }
}

/// Marks the stdout lines a child sends its parent; libtest's own lines lack it.
const TAG: &str = "@@reliability@@ ";

/// In a child: sends one line to the parent, flushed at once.
pub fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{TAG}{line}").expect("writing to the parent");
    out.flush().expect("flushing to the parent");
}

/// In a child: the next line from the parent on stdin, without its newline; `None` at end
/// of input (the parent is gone or closed it).
pub fn line_from_parent() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches('\n').to_string()),
    }
}

/// Spawning a child copies every open file of this process into it until the child's `exec`
/// closes them (they are all close-on-exec). A journal's writer lock is an OS lock on an open
/// file, so a child forked by one thread while another thread holds a journal open shares
/// that lock until its `exec`, and a third process may find the journal locked for those
/// moments (seen here: a child writer refused for up to 20 ms after the parent had dropped
/// its journal). A parent thread that holds journal files (a writer, or `verify`, which
/// takes a shared lock) keeps this guard; spawning waits until no thread does.
static SPAWNING: RwLock<()> = RwLock::new(());

/// Held by a parent thread while it has journal files locked: no child is spawned meanwhile.
pub fn holding_locks() -> RwLockReadGuard<'static, ()> {
    SPAWNING.read().unwrap_or_else(PoisonError::into_inner)
}

/// A child process running one test of this binary. Its tagged stdout lines arrive on a
/// channel (read by a thread, so the child never blocks on a full pipe); its stderr is
/// collected for failure messages. Dropping it kills the child if it is still running.
pub struct ChildProc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
    reaped: bool,
}

impl ChildProc {
    /// Runs test `test` of this binary (exact name) in a new process with `env` added to its
    /// environment; with `stdin` the parent can send it lines.
    pub fn spawn(test: &str, env: &[(&str, String)], stdin: bool) -> ChildProc {
        let mut command = Command::new(std::env::current_exe().expect("test binary path"));
        command
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        // `spawn` returns once the child has run `exec` (or failed to).
        let exclusive = SPAWNING.write().unwrap_or_else(PoisonError::into_inner);
        let mut child = command.spawn().expect("spawning a child test process");
        drop(exclusive);
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may have begun the line ("test name ... ") before the child did.
                if let Some(at) = line.find(TAG) {
                    if tx.send(line[at + TAG.len()..].to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        ChildProc {
            name: format!("{test} (pid {})", child.id()),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr: Some(stderr),
            reaped: false,
        }
    }

    /// The child's name and process id, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends one line on the child's stdin.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("child spawned without stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: sending {line:?}: {e}", self.name));
    }

    /// The child's next line, waiting at most `timeout`; `None` on timeout or after its
    /// stdout closed.
    pub fn line(&self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The child's next line, which must come within `timeout`; otherwise the child is
    /// killed and the test fails with its stderr.
    pub fn expect_line(&mut self, timeout: Duration, what: &str) -> String {
        match self.line(timeout) {
            Some(line) => line,
            None => {
                let _ = self.kill();
                let log = self.stderr_text();
                panic!(
                    "{}: no {what} within {timeout:?}; its stderr:\n{log}",
                    self.name
                )
            }
        }
    }

    /// Kills the child with SIGKILL, reaps it, and returns every line it had sent that was
    /// not received yet (a pipe keeps what was written before the kill).
    pub fn kill(&mut self) -> Vec<String> {
        let _ = self.child.kill();
        self.child.wait().expect("reaping a killed child");
        self.reaped = true;
        self.remaining_lines()
    }

    /// Waits for the child to exit by itself, at most `limit` (it is killed past that), and
    /// returns its status (`None` if it had to be killed).
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.stdin = None;
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("polling a child") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(2));
        };
        self.reaped = true;
        status
    }

    /// Lines still in the pipe once the child is gone, up to its end of file.
    fn remaining_lines(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rest = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => rest.push(line),
                Err(RecvTimeoutError::Disconnected) => return rest,
                Err(RecvTimeoutError::Timeout) => {
                    assert!(
                        Instant::now() < deadline,
                        "{}: stdout still open 30 s after the child ended",
                        self.name
                    );
                }
            }
        }
    }

    /// The child's stderr; complete once it has exited (waits for the end of the pipe).
    pub fn stderr_text(&mut self) -> String {
        match self.stderr.take() {
            Some(handle) => handle.join().unwrap_or_default(),
            None => String::new(),
        }
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
