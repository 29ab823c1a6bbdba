//! A process killed while it rewrote a segment's header in place to link it (step 2 of a
//! rollover, or the open that created the segment) leaves a header whose checksum fails,
//! with nothing published after it. Recovery removes that segment, as after step 2, and
//! keeps every record: seen in the kill -9 suite as `header checksum mismatch` on reopening.
//! The crash image is built from a copy of an open journal (see [`crash_image`]). A torn
//! header with a record after it is still damage.

use std::fs;
use std::path::Path;

use kekbit::journal::{Durability, Journal, JournalError};

/// Header offsets (docs/FORMAT.md, "Channel header").
const OFF_FLAGS: usize = 44;
const OFF_PREVIOUS_CHANNEL_ID: usize = 80;
const HEADER_LEN: usize = 128;

fn segment(dir: &Path, id: u64) -> std::path::PathBuf {
    dir.join(format!("{id:016x}.kekbit"))
}

/// A crash image: three acknowledged records in segment 1, sealed durably by a reopen,
/// whose recovery created segment 2 and was killed while writing its link: segment 2's
/// header has the pending flag cleared but not yet the predecessor's id (the image copies the
/// reopened journal, then zeroes that id without fixing the checksum). Segment 3 is pending.
fn crash_image() -> tempfile::TempDir {
    let live = tempfile::tempdir().unwrap();
    let options = || {
        Journal::options()
            .segment_capacity(4096)
            .durability(Durability::EveryRecord)
    };
    let journal = options().open(live.path()).unwrap();
    for i in 0..3u8 {
        journal.append(&[i; 10]).unwrap();
    }
    drop(journal);
    let journal = options().open(live.path()).unwrap();
    journal.warm_up().unwrap();
    let image = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(live.path()).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), image.path().join(entry.file_name())).unwrap();
    }
    drop(journal);
    let path = segment(image.path(), 2);
    let mut bytes = fs::read(&path).unwrap();
    assert_eq!(bytes[OFF_FLAGS] & 1, 0, "segment 2 is linked");
    assert_eq!(bytes[OFF_PREVIOUS_CHANNEL_ID], 1);
    bytes[OFF_PREVIOUS_CHANNEL_ID] = 0;
    fs::write(&path, bytes).unwrap();
    image
}

#[test]
fn a_segment_killed_while_being_linked_is_removed_and_no_record_is_lost() {
    // Regression: reopening after a kill -9 during a segment's link failed with "header
    // checksum mismatch" (reliability_kill_writer, policy never, trial 31).
    let image = crash_image();
    let journal = Journal::open(image.path()).unwrap();
    assert_eq!(journal.next_sequence(), 3);
    assert_eq!(journal.open_report().orphans_removed, 1);
    journal.append(b"after").unwrap();
    drop(journal);
    let records: Vec<(u64, Vec<u8>)> = kekbit::journal::JournalReader::open(image.path(), 0)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let want: Vec<(u64, Vec<u8>)> = vec![
        (0, vec![0; 10]),
        (1, vec![1; 10]),
        (2, vec![2; 10]),
        (3, b"after".to_vec()),
    ];
    assert_eq!(records, want);
}

#[test]
fn a_torn_header_with_data_after_it_is_still_damage() {
    let image = crash_image();
    let path = segment(image.path(), 2);
    let mut bytes = fs::read(&path).unwrap();
    bytes[HEADER_LEN] = 1;
    fs::write(&path, bytes).unwrap();
    let opened = Journal::open(image.path());
    assert!(
        matches!(opened, Err(JournalError::Channel(_))),
        "{opened:?}"
    );
}
