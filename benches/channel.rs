//! Channel benchmarks: appending records, the limit probe for appending, and reading.
//!
//! Run with `cargo bench --bench channel` (add a filter such as `-- channel_append/append` to
//! run part of it). Two groups, so that the numbers compared come from the same run:
//!
//! - `channel_append` holds `append/<size>`, `ShmWriter::write` of a `<size>`-byte record;
//!   `append_prefaulted/<size>`, the same into channels prefaulted in full before timing
//!   (`ShmWriter::prefault`, as a journal does for segments it prepares ahead); and
//!   `probe/<size>`, the limit an append could reach: the same framed bytes copied into a
//!   pre-touched buffer at an advancing offset, with the same CRC32 the writer computes. The
//!   ratio of their throughputs is the price of the channel itself (mapped memory, page
//!   faults, the publish store, bookkeeping).
//! - `channel_read` holds `read/<size>`, `ShmReader::try_read` of records already written,
//!   each one's checksum verified as readers always do.
//!
//! Throughput is in payload bytes; every record also takes an 8-byte header (the payload
//! sizes here are multiples of 8, so there is no padding). Channels live in a temporary
//! folder under `/dev/shm` when it exists (else the system temporary folder), so that the
//! storage device is not what is measured.
//!
//! Every benchmark times batches with `iter_custom`: what happens between batches (creating
//! a fresh channel when one is full, rewinding a reader or the probe's buffer) is not timed.
//! The page faults of writing into a fresh channel are timed: the benchmark never touches
//! the channel's pages itself, so what the writer does not avoid (with its prefaulting
//! thread) it pays for.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kekbit::core::{
    shm_reader, shm_writer, EncoderHandler, Header, Reader, ShmReader, ShmWriter, TickUnit, Writer,
    RECORD_HEADER_LEN, TRAILER_RESERVE,
};

#[allow(dead_code)] // shared by the benches; this one uses part of it
#[path = "support/mod.rs"]
mod support;

use support::{fast_settings, frame_len, payload};

/// Payload sizes measured.
const SIZES: [usize; 4] = [32, 128, 1024, 4096];
/// Data-area capacity of every channel (and the size of the probe's buffer): larger than the
/// caches, so that all three benchmarks stream through memory.
const CAPACITY: u64 = 64 << 20;
/// Largest payload the channels accept.
const MAX_RECORD_LEN: u32 = 4096;
/// Writer timeout in the channel headers (unused by these benchmarks).
const TIMEOUT_MILLIS: u64 = 60_000;
/// Pause after creating a channel, untimed, so that the writer's prefaulting thread has
/// started before the first timed write, as it would have in a writer that lives longer
/// than a benchmark batch.
const PRETOUCH_HEAD_START: Duration = Duration::from_millis(5);
/// The `meta` word of a data record: kind 1 in the top four bits, the length below.
const DATA_KIND: u32 = 1 << 28;

/// Prefix of the temporary folder the channels live in.
const DIR_PREFIX: &str = "kekbit-bench-";

fn header(channel_id: u64) -> Header {
    Header::new(
        1,
        channel_id,
        CAPACITY,
        MAX_RECORD_LEN,
        TIMEOUT_MILLIS,
        TickUnit::Millis,
    )
}

/// Runs `iters` timed steps in batches. Before each batch, `room` says how many steps fit
/// without a reset; when none do, `reset` runs (untimed). `batch(n)` performs `n` steps.
fn batched<S>(
    state: &mut S,
    iters: u64,
    room: impl Fn(&S) -> u64,
    reset: impl Fn(&mut S),
    batch: impl Fn(&mut S, u64),
) -> Duration {
    let mut left = iters;
    let mut spent = Duration::ZERO;
    while left > 0 {
        let fits = room(state);
        if fits == 0 {
            reset(state);
            continue;
        }
        let n = left.min(fits);
        let start = Instant::now();
        batch(state, n);
        spent += start.elapsed();
        left -= n;
    }
    spent
}

/// The writer under measurement, replaced by a fresh channel whenever it is full.
struct Appender {
    root: PathBuf,
    next_id: u64,
    writer: Option<ShmWriter<EncoderHandler>>,
    /// Whether each fresh channel is prefaulted in full (untimed) before it is written.
    prefault: bool,
}

impl Appender {
    fn new(root: &Path, first_id: u64, prefault: bool) -> Appender {
        Appender {
            root: root.to_path_buf(),
            next_id: first_id,
            writer: None,
            prefault,
        }
    }

    /// Drops the current channel (and deletes its file), then creates the next one.
    fn renew(&mut self) {
        self.retire();
        let writer = shm_writer(&self.root, &header(self.next_id), EncoderHandler)
            .expect("creating a benchmark channel");
        self.next_id += 1;
        if self.prefault {
            writer.prefault().expect("prefaulting a benchmark channel");
        }
        std::thread::sleep(PRETOUCH_HEAD_START);
        self.writer = Some(writer);
    }

    fn retire(&mut self) {
        if let Some(writer) = self.writer.take() {
            let path = writer.path().to_path_buf();
            drop(writer);
            let _ = std::fs::remove_file(path);
        }
    }

    fn room(&self, frame: u64) -> u64 {
        self.writer.as_ref().map_or(0, |w| w.available() / frame)
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        self.retire();
    }
}

/// The limit probe: what an append does at the least (copy the framed record, compute the
/// position-bound CRC32, store the header word), into an ordinary buffer that is already
/// faulted in.
struct Probe {
    buf: Vec<u8>,
    position: u64,
    seeded: crc32fast::Hasher,
}

impl Probe {
    fn new(channel_id: u64) -> Probe {
        // A non-zero fill is a real write of every page: the buffer is touched before timing.
        let buf = vec![0xa5u8; CAPACITY as usize];
        let mut seeded = crc32fast::Hasher::new();
        seeded.update(&channel_id.to_le_bytes());
        Probe {
            buf,
            position: 0,
            seeded,
        }
    }

    fn room(&self, frame: u64) -> u64 {
        (CAPACITY - TRAILER_RESERVE - self.position) / frame
    }

    #[inline]
    fn append(&mut self, data: &[u8]) {
        let at = self.position as usize;
        let start = at + RECORD_HEADER_LEN;
        let meta = DATA_KIND | data.len() as u32;
        let stored = &mut self.buf[start..start + data.len()];
        stored.copy_from_slice(data);
        // Same checksum as the writer's, computed over the copied bytes as the writer does.
        let mut hasher = self.seeded.clone();
        let mut prefix = [0u8; 12];
        prefix[..8].copy_from_slice(&self.position.to_le_bytes());
        prefix[8..].copy_from_slice(&meta.to_le_bytes());
        hasher.update(&prefix);
        hasher.update(stored);
        let crc = hasher.finalize();
        let word = u64::from(meta) | (u64::from(crc) << 32);
        self.buf[at..start].copy_from_slice(&word.to_le_bytes());
        self.position += frame_len(data.len());
    }
}

fn bench_append(c: &mut Criterion) {
    let root = support::memory_dir(DIR_PREFIX);
    let mut group = c.benchmark_group("channel_append");
    fast_settings(&mut group);
    for (n, &size) in SIZES.iter().enumerate() {
        let data = payload(size);
        let frame = frame_len(size);
        group.throughput(Throughput::Bytes(size as u64));

        for (name, prefault, first_id) in [
            ("append", false, 1 + (n as u64) * 1_000_000),
            ("append_prefaulted", true, 500_000 + (n as u64) * 1_000_000),
        ] {
            let mut appender = Appender::new(root.path(), first_id, prefault);
            group.bench_with_input(BenchmarkId::new(name, size), &data, |b, data| {
                b.iter_custom(|iters| {
                    batched(
                        &mut appender,
                        iters,
                        |a| a.room(frame),
                        Appender::renew,
                        |a, n| {
                            let writer = a.writer.as_mut().expect("a channel with room");
                            for _ in 0..n {
                                if let Err(e) = writer.write(black_box(&data[..])) {
                                    panic!("append failed with room left: {e}");
                                }
                            }
                        },
                    )
                })
            });
        }

        let mut probe = Probe::new(1);
        group.bench_with_input(BenchmarkId::new("probe", size), &data, |b, data| {
            b.iter_custom(|iters| {
                batched(
                    &mut probe,
                    iters,
                    |p| p.room(frame),
                    |p| p.position = 0,
                    |p, n| {
                        for _ in 0..n {
                            p.append(black_box(&data[..]));
                        }
                        black_box(&p.buf);
                    },
                )
            })
        });
    }
    group.finish();
}

/// Fills a fresh channel with `size`-byte records and returns a reader at its start and the
/// number of records.
fn filled_channel(root: &Path, channel_id: u64, size: usize) -> (ShmReader, u64) {
    let data = payload(size);
    let mut writer =
        shm_writer(root, &header(channel_id), EncoderHandler).expect("creating a channel");
    let count = writer.available() / frame_len(size);
    for _ in 0..count {
        writer.write(&data[..]).expect("filling the channel");
    }
    writer.close().expect("closing the channel");
    let reader = shm_reader(root, channel_id).expect("opening the channel");
    (reader, count)
}

/// The reader under measurement and how far it has read.
struct ReadState {
    reader: ShmReader,
    count: u64,
    read: u64,
}

fn bench_read(c: &mut Criterion) {
    let root = support::memory_dir(DIR_PREFIX);
    let mut group = c.benchmark_group("channel_read");
    fast_settings(&mut group);
    for (n, &size) in SIZES.iter().enumerate() {
        group.throughput(Throughput::Bytes(size as u64));
        let channel_id = 100 + n as u64;
        let (reader, count) = filled_channel(root.path(), channel_id, size);
        let mut state = ReadState {
            reader,
            count,
            read: 0,
        };
        group.bench_function(BenchmarkId::new("read", size), |b| {
            b.iter_custom(|iters| {
                batched(
                    &mut state,
                    iters,
                    |s| s.count - s.read,
                    |s| {
                        s.reader.move_to(0).expect("rewinding the reader");
                        s.read = 0;
                    },
                    |s, n| {
                        for _ in 0..n {
                            match s.reader.try_read() {
                                Ok(Some(record)) => {
                                    black_box(record);
                                }
                                other => panic!("expected a record, got {other:?}"),
                            }
                        }
                        s.read += n;
                    },
                )
            })
        });
        drop(state);
        let _ = std::fs::remove_file(kekbit::core::storage_path(root.path(), channel_id));
    }
    group.finish();
}

criterion_group!(benches, bench_append, bench_read);
criterion_main!(benches);
