//! `Record` handles are `'static`: a record read as a handle keeps its segment's mapping
//! alive after its reader is dropped, its segment pruned and the journal closed, and its bytes
//! stay those appended. Readers of one segment in one process share a single mapping of it
//! (counted in /proc/self/maps), whether they are many readers or one reader and many handles.

use kekbit::core::{set_read_mode, ReadMode};
use kekbit::journal::{Durability, Journal, JournalReader, Record};

/// The read mode is process-wide: the tests here take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn payload(seq: u64) -> Vec<u8> {
    let mut p = vec![(seq % 251) as u8; 700];
    p[..8].copy_from_slice(&seq.to_le_bytes());
    p
}

/// Mappings in this process of the file named `name`.
fn mappings_of(name: &str) -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|line| line.ends_with(name) || line.ends_with(&format!("{name} (deleted)")))
        .count()
}

#[test]
fn a_record_outlives_its_reader_a_prune_and_the_journal() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(4096)
        .max_record_len(1000)
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    for seq in 0..40 {
        journal.append(&payload(seq)).unwrap();
    }
    let mut reader = journal.reader(0).unwrap();
    let mut kept: Vec<(u64, Record)> = Vec::new();
    while let Some(item) = reader.next_record().unwrap() {
        kept.push(item);
    }
    assert_eq!(kept.len(), 40);
    drop(reader);
    let pruned = journal.prune_before(36).unwrap();
    assert!(pruned.segments_removed >= 6, "{pruned:?}");
    // Unlinked files, still mapped: the handles hold them.
    assert!(mappings_of("0000000000000001.kekbit") >= 1);
    drop(journal);
    let clones: Vec<Record> = kept.iter().map(|(_, r)| r.clone()).collect();
    let checked = std::thread::spawn(move || {
        for (seq, record) in kept {
            assert_eq!(&record[..], &payload(seq)[..], "record {seq}");
        }
    });
    checked.join().unwrap();
    assert_eq!(&clones[3][..], &payload(3)[..]);
    drop(clones);
    assert_eq!(
        mappings_of("0000000000000001.kekbit"),
        0,
        "unmapped with its last handle"
    );
}

#[test]
fn many_readers_share_one_mapping_per_segment() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .segment_capacity(1 << 20)
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    for seq in 0..10 {
        journal.append(&payload(seq)).unwrap();
    }
    let before = mappings_of("0000000000000001.kekbit");
    let mut readers: Vec<JournalReader> = (0..100).map(|_| journal.reader(0).unwrap()).collect();
    let mut handles = Vec::new();
    for reader in &mut readers {
        while let Some((_, record)) = reader.next_record().unwrap() {
            handles.push(record);
        }
    }
    assert_eq!(handles.len(), 1000);
    // The writer's own mapping, and one shared by the 100 readers and their 1000 handles.
    assert_eq!(mappings_of("0000000000000001.kekbit"), before + 1);
    drop(readers);
    assert_eq!(mappings_of("0000000000000001.kekbit"), before + 1);
    drop(handles);
    assert_eq!(mappings_of("0000000000000001.kekbit"), before);
}

#[test]
fn a_copied_reader_hands_out_handles_into_its_copy() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path()).unwrap();
    journal.append(b"copied").unwrap();
    set_read_mode(ReadMode::Copied);
    let mut reader = journal.reader(0).unwrap();
    set_read_mode(ReadMode::Mapped);
    let (seq, record) = reader.next_record().unwrap().unwrap();
    drop(reader);
    drop(journal);
    assert_eq!((seq, &record[..]), (0, &b"copied"[..]));
}
