//! Helpers shared by the `cli_*` integration tests: running the built `kekbit` binary with
//! input and a time limit, driving long-lived `kekbit append` / `kekbit tail --follow`
//! children line by line, reading and damaging segment files by the layout of
//! docs/FORMAT.md, and a small JSON parser for the tool's `--json` and `--format json`
//! output (the tests do not depend on serde_json).
//!
//! Each test file uses only part of this, hence `dead_code` is allowed.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

#[path = "journal.rs"]
mod journal;
// Each CLI test uses some of these.
#[allow(unused_imports)]
pub use journal::{segment_ids, Rng};

/// Bytes of a segment header; record 0 starts at this file offset.
pub const HEADER_LEN: u64 = 128;
/// Header offset of the journal id (`writer_id`).
pub const OFF_WRITER_ID: u64 = 16;
/// Header offset of the segment id (`channel_id`).
pub const OFF_CHANNEL_ID: u64 = 24;
/// Header offset of the data-area capacity.
pub const OFF_CAPACITY: u64 = 32;
/// Header offset of the flags word (bit 0: pending).
pub const OFF_FLAGS: u64 = 44;
/// Header offset of the segment's first sequence number.
pub const OFF_BASE_SEQUENCE: u64 = 72;
/// Header offset of the live durable watermark.
pub const OFF_DURABLE_WATERMARK: u64 = 96;
/// Record kind of a data record.
pub const KIND_DATA: u32 = 1;
/// Kind of a resynchronisation mark (docs/FORMAT.md, version 2).
pub const KIND_MARK: u32 = 3;

/// How long any single `kekbit` run may take before the test fails instead of hanging.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long a test waits for a line a live child is expected to print.
pub const LINE_LIMIT: Duration = Duration::from_secs(15);

/// Starts the `kekbit` under test with `args`, its standard input and error piped and its
/// standard output going to `stdout`. Backtraces are turned on, so that a panic could not
/// hide as a one-line message.
fn spawn(args: &[OsString], stdout: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kekbit"))
        .env("RUST_BACKTRACE", "1")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning kekbit")
}

/// Builds an argument list from strings and paths alike.
pub fn args(items: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
    items.iter().map(|a| a.as_ref().to_os_string()).collect()
}

/// The arguments `SUB DIR EXTRA...`.
pub fn sub_args(sub: &str, dir: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut all = args(&[&sub, &dir]);
    all.extend(extra.iter().map(OsString::from));
    all
}

/// What a finished `kekbit` run left.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<OsString>,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    /// The exit code (a signal-killed run has none, shown as -1).
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }

    /// Standard output as text (lossy: for output that is not payload bytes).
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// The lines of standard error.
    pub fn err_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }

    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "kekbit {:?}: status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args,
            self.status,
            truncate(&self.out(), 2_000),
            truncate(&self.stderr, 2_000)
        )
    }

    /// Asserts the run exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit status\n{}",
            self.describe()
        );
        self
    }

    /// Asserts the run succeeded with nothing on standard error.
    pub fn expect_ok(&self) -> &Run {
        self.expect_code(0);
        assert!(
            self.stderr.is_empty(),
            "stderr not empty\n{}",
            self.describe()
        );
        self
    }

    /// Asserts the contract for errors: non-zero exit, exactly one line on standard error
    /// that contains each of `names`, and no sign of a panic.
    pub fn expect_one_line_error(&self, names: &[&str]) -> &Run {
        assert_ne!(self.code(), 0, "expected a failure\n{}", self.describe());
        assert_no_panic(self);
        let lines = self.err_lines();
        assert_eq!(
            lines.len(),
            1,
            "expected exactly one line on stderr\n{}",
            self.describe()
        );
        for name in names {
            assert!(
                lines[0].contains(name),
                "stderr does not mention {name:?}\n{}",
                self.describe()
            );
        }
        self
    }
}

/// Asserts nothing in a run's output looks like a panic or a backtrace.
pub fn assert_no_panic(run: &Run) {
    assert!(run.code() >= 0, "killed by a signal\n{}", run.describe());
    assert_ne!(
        run.code(),
        101,
        "exit status 101 (panic)\n{}",
        run.describe()
    );
    for needle in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(
            !run.stderr.contains(needle) && !run.out().contains(needle),
            "output mentions {needle:?}\n{}",
            run.describe()
        );
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &s[..end], s.len())
}

/// Runs `kekbit` with `args`, feeding `input` on standard input, and waits for it to exit
/// (at most [`RUN_LIMIT`]; a run that takes longer is killed and fails the test).
pub fn run_args(args: Vec<OsString>, input: &[u8]) -> Run {
    run_args_limited(args, input, RUN_LIMIT)
}

/// Like [`run_args`], with its own time limit.
pub fn run_args_limited(args: Vec<OsString>, input: &[u8], limit: Duration) -> Run {
    run_with_stdout(args, input, limit, Stdio::piped())
}

/// Like [`run_args_limited`], with standard output going to `stdout`: the run's `stdout`
/// is what the child printed when that is `Stdio::piped()`, else empty.
pub fn run_with_stdout(args: Vec<OsString>, input: &[u8], limit: Duration, stdout: Stdio) -> Run {
    let mut child = spawn(&args, stdout);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    // A child that fails early closes its end: a broken pipe here is not the test's concern.
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let stdout = child.stdout.take().map(drain);
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_limited(&mut child, limit)
        .unwrap_or_else(|| panic!("kekbit {args:?} did not finish within {limit:?}"));
    let _ = feeder.join();
    let stdout = stdout
        .map(|h| h.join().expect("stdout reader"))
        .unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    Run {
        args,
        status,
        stdout,
        stderr,
    }
}

/// Runs `kekbit SUB DIR EXTRA...` with empty input.
pub fn run(sub: &str, dir: &Path, extra: &[&str]) -> Run {
    run_in(sub, dir, extra, b"")
}

/// Runs `kekbit SUB DIR EXTRA...` with `input` on standard input.
pub fn run_in(sub: &str, dir: &Path, extra: &[&str], input: &[u8]) -> Run {
    run_args(sub_args(sub, dir, extra), input)
}

/// Appends `input` to the existing journal `dir` with `kekbit append --ack` (any new
/// segment of 4096 bytes, like the journals the tests build), which must succeed; returns
/// the acknowledgements it printed.
pub fn append_acked(dir: &Path, input: &[u8]) -> String {
    run_in("append", dir, &["--ack", "--segment-size", "4096"], input)
        .expect_ok()
        .out()
}

/// Reads a pipe to its end on a thread.
fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Waits for `child` at most `limit`; kills it and returns `None` if it is still running.
pub fn wait_limited(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for kekbit") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// A running `kekbit` child whose standard output is read line by line on a thread:
/// `kekbit append` waiting on its input, or `kekbit tail --follow`. Killed when dropped.
pub struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    pub args: Vec<OsString>,
}

impl Live {
    /// Starts `kekbit` with `args`, its standard input a pipe the test writes to.
    pub fn spawn(args: Vec<OsString>) -> Live {
        let child = spawn(&args, Stdio::piped());
        Live::attach(child, args)
    }

    /// Starts `command` (standard input, output and error piped); `label` names it in
    /// failure messages.
    pub fn spawn_command(mut command: Command, label: Vec<OsString>) -> Live {
        let child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning a command");
        Live::attach(child, label)
    }

    /// Reads the lines of `child`'s piped standard output on a thread.
    fn attach(mut child: Child, args: Vec<OsString>) -> Live {
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Some(drain(child.stderr.take().expect("piped stderr")));
        Live {
            child,
            stdin,
            lines,
            stderr,
            args,
        }
    }

    /// Starts `kekbit append DIR EXTRA...`.
    pub fn append(dir: &Path, extra: &[&str]) -> Live {
        Live::spawn(sub_args("append", dir, extra))
    }

    /// Writes `bytes` to the child's standard input and flushes them.
    pub fn send(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(bytes).expect("writing to kekbit's stdin");
        stdin.flush().expect("flushing kekbit's stdin");
    }

    /// The next line of standard output, waiting at most `limit`; `None` on timeout or once
    /// standard output is closed.
    pub fn line_within(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }

    /// The next line of standard output; fails the test after [`LINE_LIMIT`].
    pub fn line(&self) -> String {
        self.line_within(LINE_LIMIT).unwrap_or_else(|| {
            panic!(
                "kekbit {:?} printed no line within {LINE_LIMIT:?}",
                self.args
            )
        })
    }

    /// Asserts the child prints nothing more on standard output for `quiet`.
    pub fn expect_silence(&self, quiet: Duration) {
        if let Ok(line) = self.lines.recv_timeout(quiet) {
            panic!(
                "kekbit {:?} printed {line:?}, expected nothing yet",
                self.args
            );
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the child to exit by itself (failing the test after [`RUN_LIMIT`]) and
    /// returns its exit status, the standard-output lines not read yet and its standard
    /// error.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        self.stdin = None;
        let status = wait_limited(&mut self.child, RUN_LIMIT)
            .unwrap_or_else(|| panic!("kekbit {:?} did not exit", self.args));
        let mut rest = Vec::new();
        while let Some(line) = self.line_within(Duration::from_secs(5)) {
            rest.push(line);
        }
        (status, rest, self.take_stderr())
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("polling kekbit").is_none()
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
    }

    /// Closes standard input and waits for the child to exit (failing the test after
    /// [`RUN_LIMIT`]); asserts it exited 0 with nothing on standard error and returns the
    /// standard-output lines not read yet.
    pub fn finish_ok(self) -> Vec<String> {
        let args = self.args.clone();
        let (status, rest, stderr) = self.finish();
        assert!(
            status.success() && stderr.is_empty(),
            "kekbit {:?}: status {status:?}\n--- unread stdout ---\n{rest:?}\n--- stderr ---\n{}",
            args,
            truncate(&stderr, 2_000)
        );
        rest
    }

    /// Standard error so far, once the child has exited (or was killed).
    pub fn take_stderr(&mut self) -> String {
        self.stderr
            .take()
            .map(|h| String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `kekbit append DIR --ack EXTRA...`, sends one line and waits for its
/// acknowledgement, so that the child certainly holds the journal when this returns.
/// `expected_seq` is the sequence number the line must get.
pub fn holding_writer(dir: &Path, extra: &[&str], expected_seq: u64) -> Live {
    let mut all = vec!["--ack"];
    all.extend_from_slice(extra);
    let mut writer = Live::append(dir, &all);
    writer.send(b"held\n");
    assert_eq!(
        writer.line(),
        expected_seq.to_string(),
        "ack of the first line"
    );
    writer
}

// ---------------------------------------------------------------------------------------
// Segment files.

/// The file of segment `id` in `dir`.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.kekbit"))
}

/// The ids of the linked (not pending) segments in `dir`, ascending.
pub fn linked_segment_ids(dir: &Path) -> Vec<u64> {
    segment_ids(dir)
        .into_iter()
        .filter(|&id| !is_pending(&segment_path(dir, id)))
        .collect()
}

/// Reads `N` bytes at `offset` of `path`.
pub fn read_at<const N: usize>(path: &Path, offset: u64) -> [u8; N] {
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = [0u8; N];
    file.read_exact_at(&mut bytes, offset)
        .unwrap_or_else(|e| panic!("{}: reading at {offset}: {e}", path.display()));
    bytes
}

/// The little-endian u64 at `offset` of `path`.
pub fn read_u64(path: &Path, offset: u64) -> u64 {
    u64::from_le_bytes(read_at(path, offset))
}

/// The little-endian u32 at `offset` of `path`.
pub fn read_u32(path: &Path, offset: u64) -> u32 {
    u32::from_le_bytes(read_at(path, offset))
}

/// Overwrites `bytes` at `offset` of `path`, never changing the file's length otherwise.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all_at(bytes, offset)
        .unwrap_or_else(|e| panic!("{}: writing at {offset}: {e}", path.display()));
    file.sync_all().expect("syncing a damaged file");
}

/// Whether the segment file at `path` is pending (prepared ahead, not linked).
pub fn is_pending(path: &Path) -> bool {
    read_u32(path, OFF_FLAGS) & 1 == 1
}

/// The first sequence number of the segment file at `path`.
pub fn base_sequence(path: &Path) -> u64 {
    read_u64(path, OFF_BASE_SEQUENCE)
}

/// The data-area capacity the segment file at `path` claims.
pub fn capacity(path: &Path) -> u64 {
    read_u64(path, OFF_CAPACITY)
}

/// Bytes a record with a `len`-byte payload occupies: header and payload padded to 8.
pub fn frame_len(len: usize) -> u64 {
    (8 + len as u64).next_multiple_of(8)
}

/// One record frame found by [`frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Data-area offset of the frame.
    pub position: u64,
    pub kind: u32,
    pub len: u32,
}

/// The frames of the segment at `path` from its start, following the lengths in the
/// record headers (checksums not checked), up to the first zero word or closing marker
/// (included).
pub fn frames(path: &Path) -> Vec<Frame> {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let capacity = capacity(path);
    let mut found = Vec::new();
    let mut position = 0u64;
    while position + 8 <= capacity {
        let at = (HEADER_LEN + position) as usize;
        let meta = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        if meta == 0 && bytes[at + 4..at + 8] == [0; 4] {
            break;
        }
        let frame = Frame {
            position,
            kind: meta >> 28,
            len: meta & 0x0fff_ffff,
        };
        found.push(frame);
        // Resynchronisation marks (kind 3, version 2) are stepped over like records.
        if frame.kind != KIND_DATA && frame.kind != KIND_MARK {
            break;
        }
        position += frame_len(frame.len as usize);
    }
    found
}

/// Data-area offset just after the last data record of the segment at `path`.
pub fn records_end(path: &Path) -> u64 {
    frames(path)
        .iter()
        .rfind(|f| f.kind == KIND_DATA)
        .map_or(0, |f| f.position + frame_len(f.len as usize))
}

/// File sizes of every entry of `dir`, by name.
pub fn file_sizes(dir: &Path) -> Vec<(String, u64)> {
    let mut sizes: Vec<(String, u64)> = fs::read_dir(dir)
        .expect("listing the journal directory")
        .flatten()
        .map(|e| {
            let len = e.metadata().expect("metadata").len();
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    sizes.sort();
    sizes
}

/// Bytes of a hexadecimal string; `None` if it is not one.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------
// A minimal JSON parser (RFC 8259 values), enough to check the tool's output strictly.

/// A JSON value. Numbers keep their text.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses exactly one JSON value (surrounding whitespace allowed).
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut parser = Parser {
            bytes: text.as_bytes(),
            at: 0,
        };
        parser.skip_ws();
        let value = parser.value()?;
        parser.skip_ws();
        if parser.at != parser.bytes.len() {
            return Err(format!("trailing characters at byte {}", parser.at));
        }
        Ok(value)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The member `key`, which must exist.
    pub fn field(&self, key: &str) -> &Json {
        self.get(key)
            .unwrap_or_else(|| panic!("no field {key:?} in {self:?}"))
    }

    /// The value as an unsigned integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// The member `key` as an unsigned integer, which must be one.
    pub fn u64_field(&self, key: &str) -> u64 {
        self.field(key)
            .as_u64()
            .unwrap_or_else(|| panic!("field {key:?} is not an unsigned integer in {self:?}"))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", byte as char, self.at))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at byte {}", self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            other => Err(format!("unexpected {other:?} at byte {}", self.at)),
        }
    }

    /// Reads `open`, comma-separated items (each by `item`) and `close`.
    fn delimited(
        &mut self,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.expect(open)?;
        self.skip_ws();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            item(self)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b) if b == close => {
                    self.at += 1;
                    return Ok(());
                }
                other => {
                    return Err(format!(
                        "unexpected {other:?} before {:?} at byte {}",
                        close as char, self.at
                    ))
                }
            }
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        let mut members: Vec<(String, Json)> = Vec::new();
        self.delimited(b'{', b'}', |p| {
            let key = p.string()?;
            if members.iter().any(|(k, _)| *k == key) {
                return Err(format!("duplicate key {key:?}"));
            }
            p.skip_ws();
            p.expect(b':')?;
            p.skip_ws();
            members.push((key, p.value()?));
            Ok(())
        })?;
        Ok(Json::Object(members))
    }

    fn array(&mut self) -> Result<Json, String> {
        let mut items = Vec::new();
        self.delimited(b'[', b']', |p| {
            items.push(p.value()?);
            Ok(())
        })?;
        Ok(Json::Array(items))
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = |p: &mut Self| {
            let from = p.at;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.at += 1;
            }
            p.at - from
        };
        let int_start = self.at;
        if digits(self) == 0 {
            return Err(format!("bad number at byte {start}"));
        }
        if self.bytes[int_start] == b'0' && self.at - int_start > 1 {
            return Err(format!("leading zero at byte {start}"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return Err(format!("bad fraction at byte {start}"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return Err(format!("bad exponent at byte {start}"));
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).expect("ASCII");
        Ok(Json::Number(text.to_string()))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let text = self
            .bytes
            .get(self.at..self.at + 4)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| format!("short \\u escape at byte {}", self.at))?;
        let value =
            u32::from_str_radix(text, 16).map_err(|_| format!("bad \\u escape {text:?}"))?;
        self.at += 4;
        Ok(value)
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err("unterminated string".into());
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err("unterminated escape".into());
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&high) {
                                self.expect(b'\\')?;
                                self.expect(b'u')?;
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err("unpaired surrogate".into());
                                }
                                0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
                            } else {
                                high
                            };
                            char::from_u32(code).ok_or("invalid \\u escape")?
                        }
                        other => return Err(format!("bad escape \\{}", other as char)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => {
                    return Err(format!("raw control character {b:#04x} in a string"));
                }
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| "string is not UTF-8".into())
    }
}

/// Parses one line of JSON output, failing the test with the line if it does not parse.
pub fn parse_json_line(line: &str) -> Json {
    Json::parse(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

/// Accepts anything usable as a path argument in assertion messages.
pub fn display(path: impl AsRef<OsStr>) -> String {
    Path::new(path.as_ref()).display().to_string()
}

// ---------------------------------------------------------------------------------------
// Journals in given states.

/// `record <seq> <padding>`: a line record of a length that varies with `seq`.
pub fn numbered(seq: u64) -> String {
    format!("record {seq} {}", "p".repeat((seq * 13 % 90) as usize))
}

/// The lines of records `range`, each ended by a newline.
pub fn numbered_input(range: std::ops::Range<u64>) -> Vec<u8> {
    range
        .flat_map(|seq| format!("{}\n", numbered(seq)).into_bytes())
        .collect()
}

/// Creates the journal in `dir` holding records `0..count` (see [`numbered`]) in segments
/// of `segment_size` bytes, with one `kekbit append` that exits normally.
pub fn build_journal(dir: &Path, count: u64, segment_size: u64) {
    let size = segment_size.to_string();
    run_in(
        "append",
        dir,
        &["--create", "--segment-size", &size, "--durability", "never"],
        &numbered_input(0..count),
    )
    .expect_ok();
}

/// A fresh temporary directory and the path `<tmp>/journal` in it, for a journal not
/// created yet. Keep the `TempDir`: dropping it removes the directory.
pub fn journal_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("journal");
    (tmp, dir)
}

/// [`journal_dir`] with the journal of records `0..count` (see [`build_journal`]) in it.
pub fn temp_journal(count: u64, segment_size: u64) -> (tempfile::TempDir, PathBuf) {
    let (tmp, dir) = journal_dir();
    build_journal(&dir, count, segment_size);
    (tmp, dir)
}

/// What `dump` and `tail` print in text for records `seqs` with payloads `payload(seq)`.
pub fn text_lines(seqs: std::ops::Range<u64>, payload: impl Fn(u64) -> String) -> String {
    seqs.map(|s| format!("{s}\t{}\n", payload(s))).collect()
}

/// `kekbit stats DIR --json`, parsed.
pub fn stats_json(dir: &Path) -> Json {
    parse_json_line(run("stats", dir, &["--json"]).expect_ok().out().trim_end())
}

/// Appends records `from..to` (see [`numbered`]) with a `kekbit append --durability never` that
/// is killed with SIGKILL once they are all visible: the journal's last segment is left
/// without a closing marker, as a crashed writer leaves it.
pub fn killed_writer(dir: &Path, from: u64, to: u64, segment_size: u64) {
    let size = segment_size.to_string();
    let mut writer = Live::append(
        dir,
        &["--create", "--segment-size", &size, "--durability", "never"],
    );
    writer.send(&numbered_input(from..to));
    let deadline = Instant::now() + LINE_LIMIT;
    loop {
        let stats = run("stats", dir, &["--json"]);
        if stats.code() == 0 {
            let records = parse_json_line(stats.out().trim_end())
                .get("last_sequence")
                .and_then(Json::as_u64);
            if records == to.checked_sub(1) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the writer did not append records {from}..{to} in time"
        );
        thread::sleep(Duration::from_millis(10));
    }
    writer.kill();
}

/// Garbage a crashed writer could leave: non-zero words that are no valid record.
pub const TORN_BYTES: [u8; 40] = [0xa5; 40];

/// Writes [`TORN_BYTES`] right after the last record of the last linked segment of `dir`
/// (which must have no closing marker); returns that segment's path and the data-area
/// offset of the garbage.
pub fn add_torn_tail(dir: &Path) -> (PathBuf, u64) {
    let last = *linked_segment_ids(dir).last().expect("a linked segment");
    let path = segment_path(dir, last);
    assert!(
        frames(&path).iter().all(|f| f.kind == KIND_DATA),
        "{} is sealed: a torn tail needs a crashed writer",
        path.display()
    );
    let end = records_end(&path);
    assert!(end + TORN_BYTES.len() as u64 <= capacity(&path));
    write_at(&path, HEADER_LEN + end, &TORN_BYTES);
    (path, end)
}
