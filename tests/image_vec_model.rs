//! `MappedVec` against a `Vec` model (quickcheck): random sequences of changes, checkpoints,
//! clean reopens and process crashes (the image's directory copied while it is open, as a
//! `kill -9` leaves it: what the process wrote to files, and nothing of its private
//! mapping), checked after every step. Also: a second opener is refused, and a header that
//! does not match the element type, tag or version is refused by field name.

use std::path::Path;

use kekbit::image::{ImageError, MappedVec};
use kekbit::journal::{Durability, JournalOptions};
use quickcheck::{Arbitrary, Gen, QuickCheck};

/// A 24-byte element with an 8-byte alignment.
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Elem {
    id: u64,
    a: u32,
    b: u32,
    c: u64,
}

fn elem(x: u64) -> Elem {
    Elem {
        id: x,
        a: x as u32 ^ 0xA5A5,
        b: (x >> 3) as u32,
        c: x.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Push(u64),
    Pop,
    Extend(u64, u16),
    Truncate(u16),
    Clear,
    Reserve(u16),
    Set(u16, u64),
    SwapRemove(u16),
    Modify(u16, u16, u64),
    SetMany(Vec<(u16, u64)>),
    Checkpoint,
    Reopen,
    Crash,
}

impl Arbitrary for Op {
    fn arbitrary(g: &mut Gen) -> Op {
        let x = u64::arbitrary(g);
        let (i, j) = (u16::arbitrary(g) % 600, u16::arbitrary(g) % 600);
        match u8::arbitrary(g) % 26 {
            0..=5 => Op::Push(x),
            6 => Op::Pop,
            7..=9 => Op::Extend(x, i % 400),
            10 => Op::Truncate(i),
            11 => Op::Clear,
            12 => Op::Reserve(i * 8),
            13..=15 => Op::Set(i, x),
            16 => Op::SwapRemove(i),
            17..=19 => Op::Modify(i, j, x),
            20 => Op::Checkpoint,
            21 | 22 => Op::Reopen,
            23 | 24 => Op::SetMany(Vec::arbitrary(g).into_iter().take(20).collect()),
            _ => Op::Crash,
        }
    }
}

fn options() -> kekbit::image::ImageOptions<Elem> {
    // Small segments and records: extends span several records, checkpoints prune segments.
    let journal = JournalOptions::new()
        .segment_capacity(16 << 10)
        .max_record_len(2048)
        .durability(Durability::Never);
    MappedVec::<Elem>::options()
        .type_tag(0xE1E, 1)
        .journal(journal)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if let Err(e) = std::fs::copy(entry.path(), target) {
            // A segment the journal's helper thread renamed or removed meanwhile.
            assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        }
    }
}

fn run(ops: Vec<Op>) -> bool {
    let root = tempfile::tempdir().unwrap();
    let mut dir = root.path().join("0");
    let mut image = options().create(&dir).unwrap();
    let mut model: Vec<Elem> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        let len = model.len();
        match op {
            Op::Push(x) => {
                image.push(elem(x)).unwrap();
                model.push(elem(x));
            }
            Op::Pop => assert_eq!(image.pop().unwrap(), model.pop()),
            Op::Extend(x, n) => {
                let values: Vec<Elem> = (0..n as u64).map(|k| elem(x ^ k)).collect();
                image.extend_from_slice(&values).unwrap();
                model.extend_from_slice(&values);
            }
            Op::Truncate(n) => {
                image.truncate(n as usize).unwrap();
                model.truncate(n as usize);
            }
            Op::Clear => {
                image.clear().unwrap();
                model.clear();
            }
            Op::Reserve(n) => {
                image.reserve(n as usize).unwrap();
                assert!(image.capacity() >= len + n as usize);
            }
            Op::Set(i, x) if (i as usize) < len => {
                image.set(i as usize, elem(x)).unwrap();
                model[i as usize] = elem(x);
            }
            Op::Set(i, x) => assert!(matches!(
                image.set(i as usize, elem(x)),
                Err(ImageError::OutOfBounds { .. })
            )),
            Op::SwapRemove(i) if (i as usize) < len => {
                assert_eq!(
                    image.swap_remove(i as usize).unwrap(),
                    model.swap_remove(i as usize)
                );
            }
            Op::SwapRemove(i) => assert!(image.swap_remove(i as usize).is_err()),
            Op::Modify(i, j, x) => {
                let (a, b) = ((i.min(j) as usize).min(len), (i.max(j) as usize).min(len));
                let change = |s: &mut [Elem]| {
                    for (k, e) in s.iter_mut().enumerate() {
                        if (k as u64).wrapping_add(x) % 3 == 0 {
                            e.c ^= x;
                        }
                    }
                };
                image.modify(a..b, change).unwrap();
                change(&mut model[a..b]);
            }
            Op::SetMany(writes) => {
                let writes: Vec<(usize, Elem)> =
                    writes.iter().map(|&(i, x)| (i as usize, elem(x))).collect();
                if writes.iter().all(|(i, _)| *i < len) {
                    image.set_many(&writes).unwrap();
                    writes.iter().for_each(|&(i, e)| model[i] = e);
                } else {
                    let before = image.changes();
                    assert!(image.set_many(&writes).is_err());
                    assert_eq!(image.changes(), before, "a refused scatter changes nothing");
                }
            }
            Op::Checkpoint => {
                let done = image.checkpoint().unwrap();
                assert_eq!(done.checkpoint, image.changes());
            }
            Op::Reopen => {
                drop(image);
                image = options().open(&dir).unwrap();
                assert_eq!(
                    image.open_report().replayed,
                    0,
                    "a clean close replays nothing"
                );
            }
            Op::Crash => {
                let copy = root.path().join(format!("{}", step + 1));
                copy_dir(&dir, &copy);
                drop(image);
                dir = copy;
                image = options().open(&dir).unwrap();
            }
        }
        assert_eq!(&image[..], &model[..], "after step {step}");
        assert!(image.capacity() >= image.len());
    }
    drop(image);
    let image = options().open(&dir).unwrap();
    image[..] == model[..]
}

#[test]
fn a_mapped_vec_behaves_as_a_vec_across_checkpoints_reopens_and_crashes() {
    QuickCheck::new()
        .tests(25)
        .quickcheck(run as fn(Vec<Op>) -> bool);
}

#[test]
fn a_second_opener_is_locked_out_until_the_first_closes() {
    let dir = tempfile::tempdir().unwrap();
    let first = options().create(dir.path()).unwrap();
    match options().open(dir.path()) {
        Err(ImageError::Locked { path }) => assert!(path.starts_with(dir.path())),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(matches!(
        options().create(dir.path()),
        Err(ImageError::Locked { .. }) | Err(ImageError::AlreadyExists { .. })
    ));
    drop(first);
    let second = options().open(dir.path()).unwrap();
    assert!(second.is_empty());
}

#[test]
fn a_header_for_another_type_tag_or_version_is_refused_by_field() {
    let dir = tempfile::tempdir().unwrap();
    drop(options().create(dir.path()).unwrap());
    let field = |e: ImageError| match e {
        ImageError::Mismatch { field, path, .. } => {
            assert!(path.starts_with(dir.path()));
            field
        }
        other => panic!("expected a mismatch, got {other:?}"),
    };
    let size = MappedVec::<[u64; 4]>::options()
        .type_tag(0xE1E, 1)
        .open(dir.path());
    assert_eq!(field(size.unwrap_err()), "elem_size");
    let align = MappedVec::<[u32; 6]>::options()
        .type_tag(0xE1E, 1)
        .open(dir.path());
    assert_eq!(field(align.unwrap_err()), "elem_align");
    let tag = MappedVec::<Elem>::options()
        .type_tag(0xE1F, 1)
        .open(dir.path());
    assert_eq!(field(tag.unwrap_err()), "type_tag");
    let version = MappedVec::<Elem>::options()
        .type_tag(0xE1E, 2)
        .open(dir.path());
    assert_eq!(field(version.unwrap_err()), "type_version");
    // The right type still opens.
    options().open(dir.path()).unwrap();
}

#[test]
fn a_file_shorter_than_its_header_says_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = options().capacity(10_000).create(dir.path()).unwrap();
    image.push(elem(1)).unwrap();
    let path = image.path().to_path_buf();
    drop(image);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(8192).unwrap();
    assert!(matches!(
        options().open(dir.path()),
        Err(ImageError::Truncated { file_len: 8192, .. })
    ));
    std::fs::write(&path, [0u8; 4096]).unwrap();
    assert!(matches!(
        options().open(dir.path()),
        Err(ImageError::NotAnImage { .. })
    ));
}

#[test]
fn reopening_after_a_crash_replays_only_the_journal_since_the_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("live");
    let mut image = options().create(&dir).unwrap();
    image.extend_from_slice(&[elem(1); 50]).unwrap(); // one record
    image.checkpoint().unwrap();
    image.set(5, elem(5)).unwrap();
    image.push(elem(6)).unwrap();
    let crashed = root.path().join("crashed");
    copy_dir(&dir, &crashed);
    let reopened = options().open(&crashed).unwrap();
    assert_eq!(reopened.open_report().checkpoint, 1);
    assert_eq!(reopened.open_report().replayed, 2);
    assert_eq!(
        (reopened.len(), reopened[5], reopened[50]),
        (51, elem(5), elem(6))
    );
}

#[test]
fn a_failed_replay_checkpoints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = options().create(dir.path()).unwrap();
    image.extend_from_slice(&[elem(1); 10]).unwrap();
    image.checkpoint().unwrap();
    image.set(3, elem(3)).unwrap();
    std::mem::drop(image); // checkpoints the set
    {
        // A record that is not a change of this image, after one that is.
        let journal = kekbit::journal::Journal::open(dir.path().join("journal")).unwrap();
        let mut set = vec![1u8];
        set.extend_from_slice(&10u64.to_le_bytes());
        set.extend_from_slice(&4u64.to_le_bytes());
        set.extend_from_slice(bytemuck::bytes_of(&elem(4)));
        journal.append(&set).unwrap();
        journal.append(b"\x07 not a redo record").unwrap();
    }
    let header = std::fs::read(dir.path().join("image.kbimg")).unwrap();
    for _ in 0..2 {
        // Refused every time: the failed open did not checkpoint past the bad record.
        match options().open(dir.path()) {
            Err(ImageError::BadRecord { seq, .. }) => assert_eq!(seq, 3),
            other => panic!("expected BadRecord, got {other:?}"),
        }
    }
    assert_eq!(
        std::fs::read(dir.path().join("image.kbimg")).unwrap(),
        header
    );
}
