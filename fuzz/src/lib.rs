//! What the fuzz targets share: a reference decoder of the record frame written from
//! docs/FORMAT.md alone (with its own CRC32), a builder of data areas from fuzz input (records
//! with valid checksums, so that the fuzzer gets past them, mixed with raw bytes and lying
//! headers), segment header templates made through kekbit's public API, scratch directories,
//! an allocator that records the largest single allocation, and the sample state type the
//! snapshot target decodes with Bincode.
//!
//! The checks that compare kekbit with the reference decoder panic on any disagreement: for
//! the fuzzer that is a crash, with the input saved as its reproducer.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use kekbit::core::{
    shm_writer, storage_path, EncoderHandler, Header, ReadError, Reader, ShmReader, TickUnit,
};
use serde::{Deserialize, Serialize};

/// Bytes of a channel header.
pub const HEADER_LEN: usize = 128;
/// Bytes kept free for the closing marker at the end of every data area.
pub const TRAILER_RESERVE: u64 = 64;
/// Largest closing-marker trailer.
pub const MAX_TRAILER_LEN: u64 = 56;
/// The payload-length bits of a record's `meta` word.
pub const LEN_MASK: u32 = (1 << 28) - 1;
/// Kind of a data record.
pub const KIND_DATA: u32 = 1;
/// Kind of a closing marker.
pub const KIND_CLOSED: u32 = 2;
/// The journal id (`writer_id`) of the segment templates.
pub const JOURNAL_ID: u64 = 0x5EED_F022_0000_0001;
/// The magic of a channel file.
pub const MAGIC: [u8; 8] = *b"\x89KEKBIT\n";

// ---------------------------------------------------------------------------------------
// Input.
// ---------------------------------------------------------------------------------------

/// Reads fuzz input front to back; past its end every read gives zeros (or nothing).
pub struct Bytes<'a> {
    rest: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }

    pub fn u16(&mut self) -> u16 {
        let mut b = [0u8; 2];
        let got = self.take(2);
        b[..got.len()].copy_from_slice(got);
        u16::from_le_bytes(b)
    }

    pub fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let got = self.take(4);
        b[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(b)
    }

    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let got = self.take(8);
        b[..got.len()].copy_from_slice(got);
        u64::from_le_bytes(b)
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.rest.len())
    }
}

pub fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

// ---------------------------------------------------------------------------------------
// CRC32 (ISO-HDLC), table driven, independent of the crate under test.
// ---------------------------------------------------------------------------------------

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// CRC32 of the concatenation of `parts`.
pub fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = u32::MAX;
    for part in parts {
        for &b in *part {
            crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
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

pub fn align8(n: u64) -> u64 {
    n.next_multiple_of(8)
}

/// Makes the fixed part of a header pass the checks that come before the field checks, as
/// `control` asks: bit 1 writes the magic and version 1, bit 2 the header length 128, bit 0
/// recomputes the header checksum (last, over bytes 0 to 91).
pub fn fix_header(file: &mut [u8], control: u8) {
    if file.len() < 96 {
        return;
    }
    if control & 2 != 0 {
        file[..8].copy_from_slice(&MAGIC);
        file[8..10].copy_from_slice(&1u16.to_le_bytes());
    }
    if control & 4 != 0 {
        file[10..12].copy_from_slice(&(HEADER_LEN as u16).to_le_bytes());
    }
    if control & 1 != 0 {
        let crc = crc32(&[&file[..92]]);
        file[92..96].copy_from_slice(&crc.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------------------
// The reference decoder (docs/FORMAT.md, "Reading a record").
// ---------------------------------------------------------------------------------------

/// How reading a data area from position 0 ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A zero word: end of data.
    End { at: u64 },
    /// A valid closing marker.
    Closed { at: u64, trailer: Vec<u8> },
    /// A non-zero word that is not a valid record.
    Damage { at: u64 },
}

impl Stop {
    pub fn at(&self) -> u64 {
        match self {
            Stop::End { at } | Stop::Closed { at, .. } | Stop::Damage { at } => *at,
        }
    }
}

/// The records of a data area, as (position, payload), and how they end.
#[derive(Debug, Clone)]
pub struct Reference {
    pub records: Vec<(u64, Vec<u8>)>,
    pub stop: Stop,
}

/// Reads `area` (the whole data area, `capacity` bytes) as FORMAT.md says a reader must.
pub fn reference_read(area: &[u8], channel_id: u64, max_record_len: u32) -> Reference {
    let capacity = area.len() as u64;
    let mut records = Vec::new();
    let mut p = 0u64;
    let stop = loop {
        // Data records end at or below capacity - 64, so `p + 8 <= capacity` here.
        let word = le_u64(area, p as usize);
        if word == 0 {
            break Stop::End { at: p };
        }
        let meta = word as u32;
        let stored = (word >> 32) as u32;
        let len = u64::from(meta & LEN_MASK);
        let (max, limit) = match meta >> 28 {
            KIND_DATA => (u64::from(max_record_len), capacity - TRAILER_RESERVE),
            KIND_CLOSED => (MAX_TRAILER_LEN, capacity),
            _ => break Stop::Damage { at: p },
        };
        let end = p + 8 + len;
        if len > max || end > limit {
            break Stop::Damage { at: p };
        }
        let payload = &area[(p + 8) as usize..end as usize];
        if frame_crc(channel_id, p, meta, payload) != stored {
            break Stop::Damage { at: p };
        }
        if meta >> 28 == KIND_CLOSED {
            break Stop::Closed {
                at: p,
                trailer: payload.to_vec(),
            };
        }
        records.push((p, payload.to_vec()));
        p += align8(8 + len);
    };
    Reference { records, stop }
}

// ---------------------------------------------------------------------------------------
// Data areas from fuzz input.
// ---------------------------------------------------------------------------------------

/// Builds a data area of `capacity` bytes for channel `channel_id` from a stream of
/// operations, each starting at the next 8-aligned position:
///
/// - `op % 4 == 0`: raw bytes (a length byte, then the bytes);
/// - `1`: a data record with a valid checksum (a 16-bit length modulo 4096, then the payload);
/// - `2`: a closing marker with a valid checksum (a length byte modulo 57, then the trailer);
/// - `3`: a record header with any `meta` word (four bytes) and the checksum that word and the
///   bytes after it (as finally written) call for: lying lengths and kinds that still verify.
pub fn build_area(ops: &[u8], channel_id: u64, capacity: u64) -> Vec<u8> {
    let cap = capacity as usize;
    let mut area = vec![0u8; cap];
    let mut fixups: Vec<(usize, u32)> = Vec::new();
    let mut input = Bytes::new(ops);
    let mut p = 0usize;
    while !input.is_empty() && p + 8 <= cap {
        let op = input.u8();
        match op % 4 {
            0 => {
                let n = usize::from(input.u8());
                let bytes = input.take(n);
                let n = bytes.len().min(cap - p);
                area[p..p + n].copy_from_slice(&bytes[..n]);
                p = align8((p + n.max(1)) as u64) as usize;
            }
            1 | 2 => {
                let (kind, n) = if op % 4 == 1 {
                    (KIND_DATA, usize::from(input.u16()) % 4096)
                } else {
                    (KIND_CLOSED, usize::from(input.u8()) % 57)
                };
                let payload = input.take(n);
                let len = payload.len();
                let room = len.min(cap - p - 8);
                area[p + 8..p + 8 + room].copy_from_slice(&payload[..room]);
                fixups.push((p, (kind << 28) | len as u32));
                p += align8(8 + len as u64) as usize;
            }
            _ => {
                fixups.push((p, input.u32()));
                p += 8;
            }
        }
    }
    // Last first, so that a lying length's checksum covers the final bytes.
    for &(at, meta) in fixups.iter().rev() {
        let len = (meta & LEN_MASK) as usize;
        let end = (at + 8 + len).min(cap);
        let crc = frame_crc(channel_id, at as u64, meta, &area[at + 8..end]);
        let word = u64::from(meta) | (u64::from(crc) << 32);
        area[at..at + 8].copy_from_slice(&word.to_le_bytes());
    }
    area
}

/// The operations that `build_area` turns into `records` data records followed by a closing
/// marker with `trailer` (if any): for seed corpora.
pub fn ops_for(records: &[&[u8]], trailer: Option<&[u8]>) -> Vec<u8> {
    let mut ops = Vec::new();
    for r in records {
        ops.push(1);
        ops.extend((r.len() as u16).to_le_bytes());
        ops.extend_from_slice(r);
    }
    if let Some(t) = trailer {
        ops.push(2);
        ops.push(t.len() as u8);
        ops.extend_from_slice(t);
    }
    ops
}

// ---------------------------------------------------------------------------------------
// Headers made by kekbit itself.
// ---------------------------------------------------------------------------------------

/// The 128-byte header of a journal segment (`writer_id` [`JOURNAL_ID`], channel id 1, first
/// sequence number `base`, no predecessor) with a zero live block, as kekbit's writer makes
/// it. Cached: each kind is made once per process.
pub fn segment_template(capacity: u64, max_record_len: u32, base: u64) -> Vec<u8> {
    type Templates = HashMap<(u64, u32, u64), Vec<u8>>;
    static CACHE: OnceLock<Mutex<Templates>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap();
    cache
        .entry((capacity, max_record_len, base))
        .or_insert_with(|| {
            let dir = tempfile::tempdir().unwrap();
            let header = Header::new(
                JOURNAL_ID,
                1,
                capacity,
                max_record_len,
                1_000,
                TickUnit::Millis,
            )
            .with_link(base, 0, 0);
            let writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
            let path = writer.path().to_path_buf();
            drop(writer);
            let mut bytes = fs::read(path).unwrap();
            bytes.truncate(HEADER_LEN);
            bytes[96..].fill(0);
            bytes
        })
        .clone()
}

// ---------------------------------------------------------------------------------------
// Scratch directories.
// ---------------------------------------------------------------------------------------

/// An empty directory `name` under this process's scratch directory (made under `TMPDIR`
/// once, emptied on every call).
pub fn fresh_dir(name: &str) -> PathBuf {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    let root = ROOT.get_or_init(|| tempfile::tempdir().unwrap());
    let dir = root.path().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `bytes` as the file of channel `id` in `dir`.
pub fn write_channel(dir: &Path, id: u64, bytes: &[u8]) -> PathBuf {
    let path = storage_path(dir, id);
    fs::write(&path, bytes).unwrap();
    path
}

// ---------------------------------------------------------------------------------------
// Allocation tracking.
// ---------------------------------------------------------------------------------------

/// The system allocator, recording the largest single allocation (or reallocation) asked for
/// since [`reset_largest`].
pub struct Tracking;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

pub fn reset_largest() {
    LARGEST.store(0, Ordering::Relaxed);
}

pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

/// What decoding `input_len` bytes may allocate at once: the input times 16 (a one-byte
/// varint may become an 8-byte integer, a field a pointer-sized slot), plus 2 MiB for
/// fixed-size buffers (serde preallocates at most 1 MiB for a sequence of unknown honesty).
pub fn allocation_bound(input_len: usize) -> usize {
    (2 << 20) + 16 * input_len
}

/// Panics if anything since [`reset_largest`] allocated more than `input_len` allows.
pub fn check_allocations(input_len: usize, what: &str) {
    let largest = largest();
    assert!(
        largest <= allocation_bound(input_len),
        "{what}: a single allocation of {largest} bytes for a {input_len}-byte input \
         (bound {})",
        allocation_bound(input_len)
    );
}

// ---------------------------------------------------------------------------------------
// Checking a channel reader against the reference decoder.
// ---------------------------------------------------------------------------------------

/// Reads `reader` (at position 0) to its stop and checks every step against the reference
/// decoding of `area` (the channel's data area as written); then checks `iter`, `move_to`
/// to every record start and into records, and the durable-only setting. Returns the
/// reference decoding.
pub fn check_channel(reader: &mut ShmReader, area: &[u8]) -> Reference {
    let header = reader.header().clone();
    let reference = reference_read(
        &area[..header.capacity() as usize],
        header.channel_id(),
        header.max_record_len(),
    );
    let n = reference.records.len();
    let mut i = 0;
    loop {
        let before = reader.position();
        match reader.try_read() {
            Ok(Some(record)) => {
                let (at, want) = reference.records.get(i).unwrap_or_else(|| {
                    panic!(
                        "kekbit returned a record at {before} the reference decoder does not \
                         find (it stops with {:?})",
                        reference.stop
                    )
                });
                assert_eq!(before, *at, "record {i} position");
                assert_eq!(record, want.as_slice(), "record {i} at {at}");
                i += 1;
            }
            Ok(None) => {
                assert_eq!(i, n, "end of data after {i} of {n} records");
                assert_eq!(reference.stop, Stop::End { at: before }, "end of data");
                break;
            }
            Err(ReadError::Closed { .. }) => {
                assert_eq!(i, n, "closing marker after {i} of {n} records");
                let trailer = reader.closing().expect("a closed reader has a marker").0;
                assert_eq!(
                    reference.stop,
                    Stop::Closed {
                        at: before,
                        trailer: trailer.to_vec()
                    },
                    "closing marker"
                );
                assert_eq!(reader.position(), before);
                break;
            }
            Err(e) => {
                assert_eq!(i, n, "damage ({e}) after {i} of {n} records");
                assert_eq!(reference.stop, Stop::Damage { at: before }, "damage: {e}");
                assert_eq!(reader.position(), before, "the reader stays at damage");
                break;
            }
        }
    }
    let stop_at = reference.stop.at();

    // The iterator sees the same records.
    reader
        .move_to(0)
        .expect("position 0 is always a record start");
    let seen: Vec<Vec<u8>> = reader
        .iter()
        .map_while(Result::ok)
        .map(<[u8]>::to_vec)
        .collect();
    assert!(
        seen.iter().eq(reference.records.iter().map(|(_, r)| r)),
        "iter() disagrees with try_read"
    );

    // Every record start (and the stop) can be moved to; the inside of a record cannot.
    for (at, want) in &reference.records {
        assert_eq!(reader.move_to(*at).ok(), Some(*at), "move_to({at})");
        assert_eq!(reader.try_read().ok().flatten(), Some(want.as_slice()));
        if !want.is_empty() {
            assert!(reader.move_to(at + 8).is_err(), "move_to into a record");
        }
    }
    assert_eq!(
        reader.move_to(stop_at).ok(),
        Some(stop_at),
        "move_to the stop"
    );
    if stop_at + 8 <= header.capacity() {
        assert!(
            reader.move_to(stop_at + 8).is_err(),
            "move_to past the stop"
        );
    }
    assert!(reader.move_to(1).is_err(), "unaligned move_to");

    // Durable only: the records that end at or below the watermark.
    let watermark = reader.durable_position();
    reader.set_durable_only(true);
    reader.move_to(0).unwrap();
    let mut durable = 0;
    while let Ok(Some(record)) = reader.try_read() {
        let (at, want) = reference
            .records
            .get(durable)
            .expect("a durable-only reader returned more records than there are");
        assert_eq!(record, want.as_slice());
        assert!(at + align8(8 + want.len() as u64) <= watermark);
        durable += 1;
    }
    let expected = reference
        .records
        .iter()
        .take_while(|(at, r)| at + align8(8 + r.len() as u64) <= watermark)
        .count();
    assert_eq!(durable, expected, "durable-only records below {watermark}");
    reader.set_durable_only(false);
    reader.move_to(0).unwrap();
    reference
}

// ---------------------------------------------------------------------------------------
// The sample state of the snapshot target.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: u64,
    pub owner: String,
    pub balance: i64,
    pub history: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Open,
    Frozen { reason: String, since: u64 },
    Closed(u32),
}

/// A state with the shapes applications use: strings, nested vectors, a map, an enum, an
/// option, a tuple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub name: String,
    pub version: u32,
    pub accounts: Vec<Account>,
    pub index: BTreeMap<String, u64>,
    pub status: Status,
    pub notes: Option<Vec<u8>>,
    pub flags: (bool, u8, u16, char),
}

/// A few states, for seed corpora.
pub fn sample_states() -> Vec<State> {
    let empty = State {
        name: String::new(),
        version: 0,
        accounts: Vec::new(),
        index: BTreeMap::new(),
        status: Status::Open,
        notes: None,
        flags: (false, 0, 0, 'a'),
    };
    let bank = State {
        name: "bank".into(),
        version: 7,
        accounts: (0..5)
            .map(|i| Account {
                id: i,
                owner: format!("owner {i}"),
                balance: (i as i64 - 2) * 1_000,
                history: vec![i as i32, -(i as i32), 1 << 20],
            })
            .collect(),
        index: (0..5).map(|i| (format!("owner {i}"), i)).collect(),
        status: Status::Frozen {
            reason: "audit".into(),
            since: 1_700_000_000,
        },
        notes: Some(b"notes".to_vec()),
        flags: (true, 255, 65_535, '\u{1F980}'),
    };
    let closed = State {
        status: Status::Closed(3),
        notes: Some(vec![0; 300]),
        ..bank.clone()
    };
    vec![empty, bank, closed]
}
