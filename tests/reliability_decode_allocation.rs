//! The finding of the `snapshot_decoder` fuzz target (fuzz/), kept as a test: decoding a
//! few bytes must not allocate far more than those bytes can describe.
//!
//! `kekbit::codec::Bincode` promises to refuse "any single allocation larger than the input
//! could describe", and docs/FORMAT.md says that reading a snapshot "never allocates more
//! than the file's length". A body whose first field is a `String` with a length prefix of
//! 2^28 (five bytes: `FC 00 00 00 10`) makes the decode allocate 2^28 zeroed bytes before it
//! finds that the input ends: bincode checks a length claim only against the codec's
//! 1 GiB limit (`DECODE_LIMIT` in src/codec.rs), not against the bytes left. A fuzz input of 6
//! bytes did the same with 50 MB (fuzz/regressions/snapshot_decoder/).
//!
//! Fixed: the codec now gives each decode a memory budget proportional to its input.
//!
//! Each test measures the largest single allocation its own thread makes, with an allocator
//! that counts per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use kekbit::codec::{Bincode, Codec};
use kekbit::snapshot::SnapshotStore;

struct PerThreadLargest;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: forwards every call to the system allocator unchanged; only records sizes in a
// const-initialized thread-local cell (which never allocates).
unsafe impl GlobalAlloc for PerThreadLargest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: PerThreadLargest = PerThreadLargest;

/// The largest single allocation `f` makes on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

/// A `String` whose length prefix (bincode varint: `FC` then a u32) claims 2^28 bytes.
const CLAIM: [u8; 5] = [0xFC, 0x00, 0x00, 0x00, 0x10];

/// Generous: what anything may allocate at once for a few bytes of input.
const SMALL: usize = 64 << 10;

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct State {
    name: String,
    balance: i64,
}

// Regression: Bincode::decode allocated a length prefix's claim (up to its 1 GiB limit)
// before noticing the input ended.
#[test]
fn a_length_claim_beyond_the_input_is_refused_before_it_is_allocated() {
    // CLAIM, and the body of the fuzzer's reproducer
    // (fuzz/regressions/snapshot_decoder/string-length-claim-50MB without its control byte),
    // whose `String` claims 0x03030001 bytes.
    for input in [&CLAIM[..], &[0xFC, 0x01, 0x00, 0x03, 0x03]] {
        let (decoded, largest) = largest_allocation(|| Bincode.decode::<State>(input));
        assert!(decoded.is_err());
        assert!(
            largest <= SMALL,
            "decoding {input:02x?} allocated {largest} bytes at once"
        );
    }
}

#[test]
fn loading_a_tiny_snapshot_never_allocates_more_than_the_file_describes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), 2).unwrap();
    let info = store.write(1, &CLAIM).unwrap();
    let file_len = std::fs::metadata(&info.path).unwrap().len();
    let ((loaded, rejected), largest) = largest_allocation(|| {
        store
            .load_newest(|_, body| Bincode.decode::<State>(body).map_err(|e| e.to_string()))
            .unwrap()
    });
    assert!(loaded.is_none());
    assert_eq!(rejected.len(), 1);
    assert!(
        largest <= SMALL,
        "loading a {file_len}-byte snapshot allocated {largest} bytes at once"
    );
}
