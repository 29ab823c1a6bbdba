//! The metadata file (`kekbit::journal::MetaFile`) across crashes: reopened after every
//! store; the images a power loss can leave at each store (the slot being written untouched,
//! torn at every field boundary and mid-value, zeroed, garbage, complete); a crash while the
//! file is created; a failed sync through the I/O seam (feature `fault-injection`). Each
//! image must reopen to the value before the store or the one being stored, never to an
//! error or another value; a complete slot must give the new value. Prints the crash images
//! checked and the violations (0).

use std::fs;

use kekbit::journal::{MetaError, MetaFile, META_SLOT_LEN};

fn value(i: u64) -> Vec<u8> {
    format!("vote term {i} for node {}", i % 3)
        .into_bytes()
        .repeat((i % 5 + 1) as usize)
}

#[test]
fn every_store_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    for i in 1..=20u64 {
        let mut meta = MetaFile::open(&path).unwrap();
        assert_eq!(meta.generation(), i - 1);
        meta.store(&value(i)).unwrap();
        drop(meta);
        let meta = MetaFile::open(&path).unwrap();
        assert_eq!((meta.generation(), meta.value()), (i, &value(i)[..]));
    }
}

/// The images a power loss during one store can leave: the old file with the slot being
/// written replaced by each of these.
fn crash_images(old: &[u8], new: &[u8]) -> Vec<(String, Vec<u8>, bool)> {
    let slot = (0..2)
        .find(|s| {
            old[s * META_SLOT_LEN..(s + 1) * META_SLOT_LEN]
                != new[s * META_SLOT_LEN..(s + 1) * META_SLOT_LEN]
        })
        .expect("a store changes one slot");
    let at = slot * META_SLOT_LEN;
    let mut images = Vec::new();
    for cut in [
        0,
        1,
        7,
        8,
        12,
        16,
        20,
        23,
        24,
        25,
        40,
        512,
        2048,
        4095,
        META_SLOT_LEN,
    ] {
        let mut image = old.to_vec();
        image[at..at + cut].copy_from_slice(&new[at..at + cut]);
        images.push((
            format!("slot {slot} written up to byte {cut}"),
            image,
            cut == META_SLOT_LEN,
        ));
    }
    // Sectors written out of order: the tail of the slot, not its head.
    let mut image = old.to_vec();
    image[at + 512..at + META_SLOT_LEN].copy_from_slice(&new[at + 512..at + META_SLOT_LEN]);
    images.push((
        format!("slot {slot} written but its first sector"),
        image,
        false,
    ));
    let mut image = old.to_vec();
    image[at..at + META_SLOT_LEN].fill(0);
    images.push((format!("slot {slot} zeroed"), image, false));
    let mut image = old.to_vec();
    for (i, b) in image[at..at + META_SLOT_LEN].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(17);
    }
    images.push((format!("slot {slot} garbage"), image, false));
    images
}

#[test]
fn power_loss_during_a_store_leaves_the_old_value_or_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let mut meta = MetaFile::open(&path).unwrap();
    let mut checked = 0;
    let mut violations = Vec::new();
    let mut previous = Vec::new();
    for i in 1..=12u64 {
        let old = fs::read(&path).unwrap();
        meta.store(&value(i)).unwrap();
        let new = fs::read(&path).unwrap();
        for (what, image, complete) in crash_images(&old, &new) {
            let copy = dir.path().join("crash");
            fs::write(&copy, &image).unwrap();
            checked += 1;
            match MetaFile::open(&copy) {
                Ok(m) if m.value() == value(i) && m.generation() == i => {}
                Ok(m) if !complete && m.value() == previous && m.generation() == i - 1 => {}
                other => violations.push(format!("store {i}, {what}: {other:?}")),
            }
        }
        previous = value(i);
    }
    println!(
        "metadata power loss: crash images checked {checked}, violations {}",
        violations.len()
    );
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn a_crash_while_creating_leaves_no_file_or_a_complete_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    // Died before the rename: only a temporary, possibly torn.
    fs::write(dir.path().join("m.tmp"), [7u8; 100]).unwrap();
    let mut meta = MetaFile::open(&path).unwrap();
    assert_eq!((meta.generation(), meta.value()), (0, &b""[..]));
    meta.store(b"x").unwrap();
    assert!(!dir.path().join("m.tmp").exists());
    assert_eq!(MetaFile::open(&path).unwrap().value(), b"x");
}

#[test]
fn damage_to_both_slots_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    MetaFile::open(&path).unwrap().store(b"x").unwrap();
    let mut bytes = fs::read(&path).unwrap();
    bytes[9] ^= 1;
    bytes[META_SLOT_LEN + 9] ^= 1;
    fs::write(&path, &bytes).unwrap();
    match MetaFile::open(&path) {
        Err(e @ MetaError::Damaged { .. }) => {
            assert!(e.to_string().contains(&path.display().to_string()), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Too short to hold two slots, and empty: errors too, never a panic.
    for len in [0, 10, META_SLOT_LEN, 2 * META_SLOT_LEN - 1] {
        fs::write(&path, vec![0u8; len]).unwrap();
        assert!(
            matches!(MetaFile::open(&path), Err(MetaError::Damaged { .. })),
            "{len}"
        );
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_failed_sync_poisons_the_file_and_the_reopened_value_is_old_or_new() {
    use kekbit::fault::{set_observer, IoObserver, IoOp};
    use std::path::PathBuf;
    use std::sync::Arc;

    struct FailSync(PathBuf);
    impl IoObserver for FailSync {
        fn before(&self, op: &IoOp<'_>) -> std::io::Result<()> {
            match op {
                IoOp::SyncFile(p) if *p == self.0 => Err(std::io::Error::other("injected EIO")),
                _ => Ok(()),
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    let mut meta = MetaFile::open(&path).unwrap();
    meta.store(b"old").unwrap();
    set_observer(Some(Arc::new(FailSync(path.clone()))));
    let failed = meta.store(b"new");
    set_observer(None);
    assert!(matches!(failed, Err(MetaError::Io { .. })), "{failed:?}");
    assert_eq!(meta.value(), b"old");
    assert!(matches!(
        meta.store(b"later"),
        Err(MetaError::Poisoned { .. })
    ));
    drop(meta);
    let reopened = MetaFile::open(&path).unwrap();
    assert!(reopened.value() == b"old" || reopened.value() == b"new");
}
