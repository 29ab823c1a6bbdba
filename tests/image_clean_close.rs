//! A clean close leaves the image's journal with a durable seal and its tail's unused space
//! released, whatever the durability policy (even `Durability::Never`, under which a plain
//! journal syncs only when asked), so that reopening syncs nothing of what is there (and its
//! release of the tail finds nothing left to free): it reads the headers and creates the one
//! (small) segment appends continue in (issue 15, "reopen after a clean close").

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kekbit::image::{MappedVec, DEFAULT_SEGMENT_CAPACITY};
use kekbit::journal::Durability;

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir.join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "kekbit"))
        .collect();
    found.sort();
    found
}

fn close_one(dir: &Path) {
    let mut image = MappedVec::<[u64; 8]>::options()
        .durability(Durability::Never)
        .create(dir)
        .unwrap();
    image.extend_from_slice(&[[7; 8]; 100]).unwrap();
    image.close().unwrap();
}

#[test]
fn a_clean_close_releases_the_journal_tail_and_keeps_segments_small() {
    let dir = tempfile::tempdir().unwrap();
    close_one(dir.path());
    let tail = segments(dir.path()).pop().expect("the sealed tail");
    let meta = std::fs::metadata(&tail).unwrap();
    let header = kekbit::core::HEADER_LEN as u64;
    assert_eq!(meta.len(), header + DEFAULT_SEGMENT_CAPACITY);
    // 100 records of 529 bytes: about 52 KiB written; the rest of the 4 MiB released on
    // close (left allocated, before, until the next open).
    let allocated = meta.blocks() * 512;
    assert!(
        allocated < DEFAULT_SEGMENT_CAPACITY / 4,
        "{allocated} bytes still allocated in {}",
        tail.display()
    );
    let image = MappedVec::<[u64; 8]>::options()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    assert_eq!((image.len(), image.open_report().replayed), (100, 0));
}

#[cfg(feature = "fault-injection")]
#[test]
fn reopening_after_a_clean_close_syncs_nothing_already_there() {
    use kekbit::fault::{set_observer, IoObserver, IoOp};
    use std::sync::{Arc, Mutex};

    /// Notes the syncs of the files that existed before the open.
    struct Note {
        before: Vec<PathBuf>,
        seen: Mutex<Vec<String>>,
    }
    impl IoObserver for Note {
        fn before(&self, op: &IoOp<'_>) -> std::io::Result<()> {
            let old = self.before.iter().any(|p| p == op.path());
            if old && op.is_sync() {
                self.seen.lock().unwrap().push(format!("{op:?}"));
            }
            Ok(())
        }
    }

    let dir = tempfile::tempdir().unwrap();
    close_one(dir.path());
    let note = Arc::new(Note {
        before: segments(dir.path()),
        seen: Mutex::default(),
    });
    set_observer(Some(note.clone()));
    let image = MappedVec::<[u64; 8]>::options()
        .durability(Durability::Never)
        .open(dir.path());
    set_observer(None);
    assert_eq!(image.unwrap().len(), 100);
    assert_eq!(*note.seen.lock().unwrap(), Vec::<String>::new());
}

// Regression: issue 15 item 1: an empty `set_many` journaled a record that no checkpoint
// covered, so reopening after a clean close replayed it (found by tests/image_vec_model.rs,
// case `[SetMany([]), Reopen]`).
#[test]
fn an_empty_set_many_leaves_nothing_to_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut image = MappedVec::<u64>::options().create(dir.path()).unwrap();
    image.set_many(&[]).unwrap();
    drop(image);
    let image = MappedVec::<u64>::options().open(dir.path()).unwrap();
    let replayed = image.open_report().replayed;
    assert_eq!(replayed, 0, "a clean close replays nothing");
    assert!(image.is_empty());
}
