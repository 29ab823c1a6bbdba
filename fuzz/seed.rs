//! Writes the seed corpora of the fuzz targets: valid files made by kekbit itself (channels
//! open and closed, journal segments sealed and pending, snapshots of the sample states) and
//! operation streams for `record_frame`, under `<corpus dir>/<target>/seed-*`.
//!
//! `cargo +nightly run --manifest-path fuzz/Cargo.toml --bin seed -- fuzz/corpus`

use std::fs;
use std::path::{Path, PathBuf};

use kekbit::codec::{Bincode, Codec};
use kekbit::core::{shm_writer, EncoderHandler, Header, TickUnit, Writer};
use kekbit::journal::{Durability, Journal};
use kekbit::snapshot::SnapshotStore;
use kekbit_fuzz::{ops_for, sample_states};

fn put(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn with_control(control: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![control];
    v.extend_from_slice(bytes);
    v
}

/// Channel files: (name, bytes).
fn channels() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    for (i, capacity) in [128u64, 256, 1024].into_iter().enumerate() {
        let id = 10 + i as u64;
        let max = (capacity - 72) as u32;
        let header = Header::new(3, id, capacity, max, 500, TickUnit::Millis);
        let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
        let path = writer.path().to_path_buf();
        out.push((format!("empty-{capacity}"), fs::read(&path).unwrap()));
        let mut k = 0u8;
        while writer.available() >= 24 {
            let len = usize::from(k % 13);
            if writer.write(&vec![k; len]).is_err() {
                break;
            }
            k += 1;
            if k == 3 {
                writer.sync().unwrap();
                out.push((format!("open-{capacity}"), fs::read(&path).unwrap()));
            }
        }
        writer.close().unwrap();
        out.push((format!("closed-{capacity}"), fs::read(&path).unwrap()));
    }
    // Journal segments: sealed with a trailer, the active one, a pending one.
    let jdir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(512)
        .max_record_len(100)
        .durability(Durability::Never)
        .open(jdir.path())
        .unwrap();
    for i in 0..40u8 {
        journal.append(&vec![i; usize::from(i % 30)]).unwrap();
    }
    journal.sync().unwrap();
    let mut names: Vec<PathBuf> = fs::read_dir(jdir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "kekbit"))
        .collect();
    names.sort();
    for (i, path) in names.iter().enumerate() {
        out.push((format!("segment-{i}"), fs::read(path).unwrap()));
    }
    drop(journal);
    out
}

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));

    // segment_header: each file raw, with its checksum repaired, and cut short.
    for (name, bytes) in channels() {
        put(
            &root,
            "segment_header",
            &format!("{name}-raw"),
            &with_control(0, &bytes),
        );
        put(
            &root,
            "segment_header",
            &format!("{name}-fix"),
            &with_control(7, &bytes),
        );
        put(
            &root,
            "segment_header",
            &format!("{name}-short"),
            &with_control(0, &bytes[..bytes.len().min(100)]),
        );
    }

    // record_frame: operation streams, and raw data areas of real channels.
    let seal = |n: u64| n.to_le_bytes();
    let small: Vec<&[u8]> = vec![b"a", b"", b"hello, world", &[0xFF; 100], b"12345678"];
    let streams: Vec<(&str, u8, u8, Vec<u8>)> = vec![
        ("records-end", 0x02, 0, ops_for(&small, None)),
        ("records-seal", 0x02, 0, ops_for(&small, Some(&seal(5)))),
        ("records-empty-seal", 0x02, 0, ops_for(&small, Some(b""))),
        ("records-bad-seal", 0x02, 0, ops_for(&small, Some(b"xyz"))),
        ("recover-tolerate", 0x02, 1, ops_for(&small, None)),
        ("recover-skip", 0x02, 3, ops_for(&small[..2], None)),
        (
            "small-capacity",
            0x00,
            0,
            ops_for(&[b"0123456789"], Some(&seal(1))),
        ),
        (
            "max-len-8",
            0x0B,
            0,
            ops_for(&[b"12345678", b"123456789"], None),
        ),
        (
            "lying-header",
            0x02,
            0,
            [ops_for(&small[..1], None), vec![3, 0xFF, 0xFF, 0xFF, 0x1F]].concat(),
        ),
        (
            "raw-between",
            0x02,
            1,
            [ops_for(&small[..2], None), vec![0, 4, 1, 2, 3, 4]].concat(),
        ),
    ];
    for (name, c0, c1, ops) in streams {
        let mut input = vec![c0, c1];
        input.extend(ops);
        put(&root, "record_frame", name, &input);
    }
    let mut live = vec![0x22u8, 1];
    live.extend(48u64.to_le_bytes());
    live.extend([0u8; 24]);
    live.extend(ops_for(&small, None));
    put(&root, "record_frame", "watermark", &live);
    let mut based = vec![0x82u8, 0];
    based.extend(1_000u64.to_le_bytes());
    based.extend(ops_for(&small, Some(&seal(1_005))));
    put(&root, "record_frame", "base-1000", &based);
    for (name, bytes) in channels() {
        if name.starts_with("closed-1024") || name.starts_with("open-1024") {
            let mut raw = vec![0x12u8, 0];
            raw.extend_from_slice(&bytes[128..]);
            put(&root, "record_frame", &format!("raw-{name}"), &raw);
        }
    }

    // snapshot_decoder: whole files and bodies of the sample states, and a hostile body.
    let sdir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(sdir.path(), 10).unwrap();
    for (i, state) in sample_states().iter().enumerate() {
        let mut body = Vec::new();
        Bincode.encode(state, &mut body).unwrap();
        let info = store.write(i as u64 + 1, &body).unwrap();
        let file = fs::read(&info.path).unwrap();
        put(
            &root,
            "snapshot_decoder",
            &format!("file-{i}"),
            &with_control(0, &file),
        );
        put(
            &root,
            "snapshot_decoder",
            &format!("file-fallback-{i}"),
            &with_control(0x80, &file),
        );
        put(
            &root,
            "snapshot_decoder",
            &format!("body-{i}"),
            &with_control(1, &body),
        );
    }
    put(
        &root,
        "snapshot_decoder",
        "garbage",
        &with_control(0, b"not a snapshot"),
    );
    println!("seed corpora written under {}", root.display());
}
