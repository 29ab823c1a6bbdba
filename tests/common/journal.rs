//! Helpers shared by the `journal_*` integration tests: deterministic record contents, a
//! parser of segment files written here from docs/FORMAT.md (header fields, record frames,
//! closing markers, each checked with a bitwise CRC32 independent of the library's),
//! reading a journal to its current end, copying, snapshotting and damaging journal
//! directories, and re-running the test binary as a child process (the runner of
//! `common/reliability.rs`) that talks to the parent through tagged stdout lines.
//!
//! Included with `#[path = "common/journal.rs"] mod journal_common;`, and by
//! `common/prevalence.rs` for its file-level tools. Each test file uses only part of this,
//! hence `dead_code` is allowed.
#![allow(dead_code)]

#[path = "reliability.rs"]
mod reliability;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::thread;

use kekbit::journal::{Durability, Journal, JournalError, JournalOptions, JournalReader};

// For the tests that run child processes (unused by the others).
#[allow(unused_imports)]
pub use reliability::{line_from_parent, tell_parent, ChildProc};

/// Bytes of a segment header; the data area starts right after it.
pub const HEADER_LEN: u64 = 128;
/// Bytes at the end of every data area kept for the closing marker.
pub const TRAILER_RESERVE: u64 = 64;
/// Kind of a data record (top four bits of the record's `meta` word).
pub const KIND_DATA: u32 = 1;
/// Kind of a closing marker.
pub const KIND_CLOSED: u32 = 2;
/// Kind of a resynchronisation mark (version 2).
pub const KIND_MARK: u32 = 3;

/// Bytes a record with a `len`-byte payload occupies: 8-byte header and payload, padded to 8.
pub fn frame_len(len: usize) -> u64 {
    (8 + len as u64).next_multiple_of(8)
}

/// The largest payload a segment of `capacity` data bytes can hold.
pub fn max_payload(capacity: u64) -> u32 {
    (capacity - TRAILER_RESERVE - 8) as u32
}

/// A payload of `len` bytes that identifies `seq` (its first eight bytes are `seq`, when
/// there is room) and `salt` (which tells one journal's records from another's).
pub fn payload(seq: u64, len: usize, salt: u8) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len as u64)
        .map(|j| (seq.wrapping_mul(131) ^ j.wrapping_mul(29) ^ (seq >> 9)) as u8 ^ salt)
        .collect();
    let head = len.min(8);
    bytes[..head].copy_from_slice(&seq.to_le_bytes()[..head]);
    bytes
}

/// Length of the standard record `seq`: 8 to 64 bytes, scattered.
pub fn record_len(seq: u64) -> usize {
    8 + ((seq.wrapping_mul(0x9E37_79B9) >> 7) % 57) as usize
}

/// The standard record `seq` of the tests.
pub fn record(seq: u64) -> Vec<u8> {
    payload(seq, record_len(seq), 0)
}

/// Payload length of the records of a [`four_per_segment`] journal.
pub const LARGE_LEN: usize = 1_000;
/// Records per segment of a [`four_per_segment`] journal: four 1,008-byte frames fill the
/// 4,032 bytes a 4 KiB segment offers, so segment `k` holds `4(k-1) .. 4k`.
pub const PER_SEGMENT: u64 = 4;

/// Options of a journal of 4 KiB segments that hold [`PER_SEGMENT`] records of
/// [`LARGE_LEN`] bytes each, without syncing.
pub fn four_per_segment() -> JournalOptions {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(LARGE_LEN as u32)
        .durability(Durability::Never)
}

/// Record `seq` of a [`four_per_segment`] journal.
pub fn large_record(seq: u64) -> Vec<u8> {
    payload(seq, LARGE_LEN, 0)
}

/// Record `index` of thread `thread`, for tests where threads append concurrently: both
/// numbers, then up to `spread - 1` bytes of filler whose length and bytes depend on them.
pub fn thread_record(thread: u64, index: u64, spread: u64) -> Vec<u8> {
    let len = 16 + ((thread * 131 + index * 71) % spread) as usize;
    let mut bytes: Vec<u8> = (0..len as u64)
        .map(|j| (j * 31 + thread * 17 + index * 3) as u8)
        .collect();
    bytes[..8].copy_from_slice(&thread.to_le_bytes());
    bytes[8..16].copy_from_slice(&index.to_le_bytes());
    bytes
}

/// Runs `work(t)` for each `t` in `0..threads` on a thread of its own, all of them released
/// at once (behind a barrier); returns their results by thread. A panic in a thread is
/// resumed in the caller.
pub fn on_threads<T: Send>(threads: u64, work: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(threads as usize);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, work) = (&start, &work);
                scope.spawn(move || {
                    start.wait();
                    work(t)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// CRC-32/ISO-HDLC computed bit by bit (reflected polynomial 0xEDB88320).
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = u32::MAX;
    for part in parts {
        for &byte in *part {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

/// The checksum of a record header: channel id, position, meta, payload.
pub fn frame_crc(channel_id: u64, position: u64, meta: u32, payload: &[u8]) -> u32 {
    crc32(&[
        &channel_id.to_le_bytes(),
        &position.to_le_bytes(),
        &meta.to_le_bytes(),
        payload,
    ])
}

/// Opens (or creates) the journal in `dir` with 4 KiB segments, records of at most 64 bytes
/// and no syncing: a journal that rolls over about every 55 standard records.
pub fn open_small(dir: &Path) -> Journal {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .durability(Durability::Never)
        .open(dir)
        .unwrap()
}

/// The file of segment `id` in `dir`: 16 lowercase hex digits and `.kekbit`.
pub fn segment_file(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.kekbit"))
}

/// The ids of the segment files in `dir`, ascending.
pub fn segment_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".kekbit")?;
            if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(hex, 16).ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// The header fields of a segment file that the journal uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The file.
    pub path: PathBuf,
    /// `writer_id` (offset 16): the journal's id.
    pub journal_id: u64,
    /// `channel_id` (offset 24): the segment's id.
    pub channel_id: u64,
    /// `capacity` (offset 32).
    pub capacity: u64,
    /// `max_record_len` (offset 40).
    pub max_record_len: u32,
    /// Bit 0 of `flags` (offset 44).
    pub pending: bool,
    /// Bits 8 to 15 of `flags`: log2 of the resynchronisation mark block, 0 for none.
    pub mark_shift: u32,
    /// `base_sequence` (offset 72).
    pub base_sequence: u64,
    /// `previous_channel_id` (offset 80).
    pub previous_id: u64,
    /// `previous_checksum` (offset 88).
    pub previous_checksum: u32,
    /// Live `durable_watermark` (offset 96).
    pub durable_watermark: u64,
    /// Live `closed_at` (offset 112).
    pub closed_at: u64,
}

/// Reads the header of the segment file at `path`, checking its magic and header checksum.
pub fn read_header(path: &Path) -> SegmentHeader {
    let mut bytes = [0u8; HEADER_LEN as usize];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut bytes, 0)
        .unwrap();
    assert_eq!(&bytes[..8], b"\x89KEKBIT\n", "{}: magic", path.display());
    assert_eq!(
        le_u32(&bytes, 92),
        crc32(&[&bytes[..92]]),
        "{}: header checksum",
        path.display()
    );
    SegmentHeader {
        path: path.to_path_buf(),
        journal_id: le_u64(&bytes, 16),
        channel_id: le_u64(&bytes, 24),
        capacity: le_u64(&bytes, 32),
        max_record_len: le_u32(&bytes, 40),
        pending: le_u32(&bytes, 44) & 1 == 1,
        mark_shift: (le_u32(&bytes, 44) >> 8) & 0xff,
        base_sequence: le_u64(&bytes, 72),
        previous_id: le_u64(&bytes, 80),
        previous_checksum: le_u32(&bytes, 88),
        durable_watermark: le_u64(&bytes, 96),
        closed_at: le_u64(&bytes, 112),
    }
}

/// The headers of every segment file in `dir`, by id.
pub fn segments(dir: &Path) -> Vec<SegmentHeader> {
    segment_ids(dir)
        .into_iter()
        .map(|id| read_header(&segment_file(dir, id)))
        .collect()
}

/// The headers of the linked (not pending) segment files in `dir`, by id.
pub fn linked_segments(dir: &Path) -> Vec<SegmentHeader> {
    segments(dir).into_iter().filter(|s| !s.pending).collect()
}

/// How the data area of a segment ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A zero word: no closing marker (yet).
    Open,
    /// A valid closing marker.
    Sealed {
        /// Data-area offset of the marker.
        position: u64,
        /// Its trailer.
        trailer: Vec<u8>,
        /// Its stored checksum.
        checksum: u32,
    },
    /// A word that is not a valid record.
    Invalid,
}

/// A segment's valid records, read from the start of its data area.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The header.
    pub header: SegmentHeader,
    /// (position, payload) of each valid data record, in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// (position, ordinal) of each resynchronisation mark passed.
    pub marks: Vec<(u64, u64)>,
    /// Data-area offset after the last valid data record.
    pub end: u64,
    /// What follows them.
    pub stop: End,
}

impl Walk {
    /// The successor's first sequence number named by the seal, if sealed with a trailer.
    pub fn seal_names(&self) -> Option<u64> {
        match &self.stop {
            End::Sealed { trailer, .. } if trailer.len() == 8 => {
                Some(u64::from_le_bytes(trailer[..].try_into().unwrap()))
            }
            _ => None,
        }
    }

    /// The seal's checksum, if sealed.
    pub fn seal_checksum(&self) -> Option<u32> {
        match &self.stop {
            End::Sealed { checksum, .. } => Some(*checksum),
            _ => None,
        }
    }
}

/// Reads the segment file at `path` as docs/FORMAT.md describes, without the library.
pub fn walk_segment(path: &Path) -> Walk {
    let header = read_header(path);
    let data = &data_area(path);
    let capacity = header.capacity;
    let mut records = Vec::new();
    let mut marks = Vec::new();
    let mut at = 0u64;
    let stop = loop {
        if at + 8 > capacity {
            break End::Invalid;
        }
        let word = le_u64(data, at as usize);
        if word == 0 {
            break End::Open;
        }
        let meta = word as u32;
        let stored = (word >> 32) as u32;
        let kind = meta >> 28;
        let len = u64::from(meta & 0x0FFF_FFFF);
        let limit = match kind {
            KIND_DATA if len <= u64::from(header.max_record_len) => capacity - TRAILER_RESERVE,
            KIND_CLOSED if len <= 56 => capacity,
            KIND_MARK if len == 16 && header.mark_shift != 0 => capacity - TRAILER_RESERVE,
            _ => break End::Invalid,
        };
        if at + 8 + len > limit {
            break End::Invalid;
        }
        let body = &data[(at + 8) as usize..(at + 8 + len) as usize];
        if frame_crc(header.channel_id, at, meta, body) != stored {
            break End::Invalid;
        }
        if kind == KIND_CLOSED {
            break End::Sealed {
                position: at,
                trailer: body.to_vec(),
                checksum: stored,
            };
        }
        if kind == KIND_MARK {
            // A mark names the records before it and carries the journal id.
            let ordinal = le_u64(body, 0);
            if ordinal != records.len() as u64 || le_u64(body, 8) != header.journal_id {
                break End::Invalid;
            }
            marks.push((at, ordinal));
        } else {
            records.push((at, body.to_vec()));
        }
        at += frame_len(len as usize);
    };
    Walk {
        header,
        records,
        marks,
        end: at,
        stop,
    }
}

/// The data area of the segment file at `path`.
pub fn data_area(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()[HEADER_LEN as usize..].to_vec()
}

/// End (exclusive, a multiple of 8) of the last non-zero 8-byte word of `data` at or after
/// `from` (a multiple of 8), or `from` when everything from there is zero: how far written
/// bytes reach.
pub fn nonzero_extent(data: &[u8], from: u64) -> u64 {
    let mut end = from;
    let mut at = from as usize;
    while at + 8 <= data.len() {
        if data[at..at + 8].iter().any(|&b| b != 0) {
            end = at as u64 + 8;
        }
        at += 8;
    }
    end
}

/// Checks the chain of the linked segments in `dir` (a cleanly closed or live journal):
/// consecutive ids of one journal, each one's link naming its predecessor, the seal's
/// checksum and the seal's trailer (when it has one) naming the successor's base. Returns
/// the walks.
pub fn check_chain(dir: &Path) -> Vec<Walk> {
    let walks: Vec<Walk> = linked_segments(dir)
        .iter()
        .map(|s| walk_segment(&s.path))
        .collect();
    for pair in walks.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let name = after.header.path.display();
        assert_eq!(
            after.header.channel_id,
            before.header.channel_id + 1,
            "{name}: ids"
        );
        assert_eq!(
            after.header.journal_id, before.header.journal_id,
            "{name}: journal id"
        );
        assert_eq!(
            after.header.previous_id, before.header.channel_id,
            "{name}: link"
        );
        let next = before.header.base_sequence + before.records.len() as u64;
        assert_eq!(after.header.base_sequence, next, "{name}: base sequence");
        assert_eq!(
            Some(after.header.previous_checksum),
            before.seal_checksum(),
            "{name}: recorded checksum of the predecessor's seal"
        );
        if let Some(named) = before.seal_names() {
            assert_eq!(named, next, "{}: trailer", before.header.path.display());
        }
    }
    walks
}

/// Reads with `try_next` until it returns `Ok(None)` or an error, copying every record.
pub fn read_available(reader: &mut JournalReader) -> (Vec<(u64, Vec<u8>)>, Option<JournalError>) {
    let mut got = Vec::new();
    loop {
        match reader.try_next() {
            Ok(Some((seq, bytes))) => got.push((seq, bytes.to_vec())),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

/// Every record of the journal in `dir` from `from` to its current end; panics on an error.
pub fn read_journal(dir: &Path, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut reader = JournalReader::open(dir, from).unwrap();
    let (got, error) = read_available(&mut reader);
    if let Some(e) = error {
        panic!("reading {} from {from}: {e}", dir.display());
    }
    got
}

/// Asserts that `got` is exactly records `from, from + 1, ...` with the contents `expected`
/// gives, and that there are `count` of them.
pub fn assert_sequence(
    got: &[(u64, Vec<u8>)],
    from: u64,
    count: u64,
    expected: impl Fn(u64) -> Vec<u8>,
) {
    for (i, (seq, bytes)) in got.iter().enumerate() {
        let want = from + i as u64;
        assert_eq!(*seq, want, "record {i} read has the wrong sequence number");
        assert!(
            *bytes == expected(want),
            "record {want}: content differs ({} bytes read)",
            bytes.len()
        );
    }
    assert_eq!(got.len() as u64, count, "records read from {from}");
}

/// Copies the directory tree `from` into `to` (created if needed), file by file.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            match fs::copy(entry.path(), &target) {
                Ok(_) => {}
                // A temporary name removed meanwhile: a live journal's background thread
                // renames the segment it prepares into place.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("copying {}: {e}", entry.path().display()),
            }
        }
    }
}

/// Every file of `dir` with its contents.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// Writes `bytes` at `offset` of the file at `path` (which no live writer may have mapped).
pub fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
    file.sync_all().unwrap();
}

/// The environment variable that makes a test binary's child entry points run; it carries
/// the journal directory the parent and the child share.
pub const CHILD_DIR: &str = "KEKBIT_JOURNAL_CHILD_DIR";

/// In a child: the shared directory. `None` in an ordinary test run.
pub fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_DIR).map(PathBuf::from)
}

/// In a child: a parameter the parent passed.
pub fn child_param(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child parameter {name} missing"))
}

/// Runs `test` (an exact test name of this binary) in a child process with `dir` in
/// [`CHILD_DIR`] and `params` in its environment. The child answers with [`tell_parent`].
pub fn spawn_child(test: &str, dir: &Path, params: &[(&str, String)]) -> ChildProc {
    let mut env = vec![(CHILD_DIR, dir.display().to_string())];
    env.extend_from_slice(params);
    ChildProc::spawn(test, &env, false)
}

/// The number `line` gives after `word` (a child's `open N` or `ack N`).
pub fn parse_child_line(line: &str, word: &str) -> u64 {
    line.strip_prefix(word)
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected line from the child: {line:?}"))
}

/// Follows a child that prints `open N` once it opened a journal holding `start` records and
/// then `ack N` after each append, kills it once `kill_after` appends were acknowledged, and
/// returns how many records were acknowledged in all (those it printed before it died too).
pub fn acks_until_killed(child: &mut ChildProc, start: u64, kill_after: u64, case: &str) -> u64 {
    let wait = std::time::Duration::from_secs(20);
    let opened = parse_child_line(&child.expect_line(wait, "\"open\""), "open ");
    assert_eq!(opened, start, "{case}");
    let mut acked = start;
    while acked < start + kill_after {
        let seq = parse_child_line(&child.expect_line(wait, "acknowledgement"), "ack ");
        assert_eq!(seq, acked, "{case}: acknowledgements out of order");
        acked += 1;
    }
    // Whatever the child printed before it died was acknowledged too.
    for line in child.kill() {
        let seq = parse_child_line(&line, "ack ");
        assert_eq!(seq, acked, "{case}: acknowledgements out of order");
        acked += 1;
    }
    acked
}

/// A small deterministic pseudo-random generator (xorshift64*), so that failures reproduce
/// and damage does not depend on quickcheck's generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// A non-zero byte.
    pub fn nonzero_byte(&mut self) -> u8 {
        1 + (self.next_u64() % 255) as u8
    }
}
