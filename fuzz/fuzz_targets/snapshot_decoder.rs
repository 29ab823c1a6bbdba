//! Any bytes as a snapshot file: `SnapshotStore::list`, `read` and `load_newest` with a
//! Bincode decode of a sample state return results and never panic, and nothing they do
//! allocates more at once than the input allows (`kekbit_fuzz::allocation_bound`), checked
//! separately for the store (reading and checking files) and for the decode. A state that
//! decodes round-trips through the codec.
//!
//! With `KEKBIT_FUZZ_CODEC_LIMIT=documented` the decode may allocate up to the codec's own
//! documented limit (1 GiB, `DECODE_LIMIT` in src/codec.rs) instead: this masks the known
//! finding (a length claim in the body is allocated before it is checked against the bytes
//! left) so that a run can look for others.
//!
//! Input: a control byte, then the file or the body. Control bit 0 clear: the bytes are the
//! file, named for the sequence number in its header (or, with bit 1, for `control >> 2`).
//! Bit 0 set: the bytes are the body of a snapshot written by `SnapshotStore::write`, so that
//! its checksums are right and the decoder sees every body the fuzzer makes. Bit 7 adds an
//! older good snapshot for loading to fall back to.
#![no_main]

use std::fs;

use kekbit::codec::{Bincode, Codec};
use kekbit::snapshot::SnapshotStore;
use kekbit_fuzz::{
    allocation_bound, check_allocations, fresh_dir, largest, le_u64, reset_largest, sample_states,
    State, Tracking,
};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fuzz_target!(|data: &[u8]| {
    let Some((&control, bytes)) = data.split_first() else {
        return;
    };
    let dir = fresh_dir("snapshot_decoder");
    let store = SnapshotStore::open(&dir, 3).expect("open the store");
    let seq = if control & 1 == 0 && control & 2 == 0 && bytes.len() >= 24 {
        le_u64(bytes, 16)
    } else {
        u64::from(control >> 2) + 1
    };
    if control & 0x80 != 0 && seq > 0 {
        let mut body = Vec::new();
        Bincode.encode(&sample_states()[1], &mut body).unwrap();
        store.write(0, &body).expect("write the older snapshot");
    }
    if control & 1 == 0 {
        fs::write(dir.join(format!("snapshot-{seq:020}.ksnap")), bytes).unwrap();
    } else {
        store.write(seq, bytes).expect("write the snapshot");
    }

    // The store alone: listing, reading and checking files.
    reset_largest();
    for info in store.list().expect("list") {
        let _ = store.read(&info);
    }
    let (_, _) = store
        .load_newest(|_, body| Ok(body.len()))
        .expect("load_newest reports damage as rejections");
    check_allocations(data.len(), "snapshot_decoder: SnapshotStore");

    // The store with the decode.
    reset_largest();
    let (loaded, _rejected) = store
        .load_newest(|_, body| Bincode.decode::<State>(body).map_err(|e| e.to_string()))
        .expect("load_newest reports damage as rejections");
    if std::env::var_os("KEKBIT_FUZZ_CODEC_LIMIT").is_some_and(|v| v == "documented") {
        assert!(
            largest() <= allocation_bound(data.len()) + (1 << 30),
            "snapshot_decoder: Bincode decode allocated {} bytes, beyond its 1 GiB limit",
            largest()
        );
    } else {
        check_allocations(data.len(), "snapshot_decoder: Bincode decode of the body");
    }

    if let Some((_, state)) = loaded {
        let mut again = Vec::new();
        Bincode.encode(&state, &mut again).unwrap();
        assert_eq!(
            Bincode.decode::<State>(&again).unwrap(),
            state,
            "round trip"
        );
    }
});
