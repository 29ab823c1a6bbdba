//! The mapping layer's tests: syncs, the publish/acquire model, pinned payloads, locks.

use std::io::Write;

use super::*;

/// A new file at `path` of `len` bytes, open for reading and writing (for tests that map
/// one).
pub(crate) fn scratch_file(path: &std::path::Path, len: u64) -> File {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap();
    file.set_len(len).unwrap();
    file
}

/// The fields after `key` (e.g. `Rss:`) of this process's mapping that starts at `addr`
/// (`/proc/self/smaps`).
fn smaps_field(addr: *const u8, key: &str) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let start = format!("{:x}-", addr as usize);
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
    assert!(lines.next().is_some(), "no mapping at {start}");
    let line = lines.find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// The resident size, in KiB, of this process's mapping that starts at `addr`.
fn resident_kib(addr: *const u8) -> u64 {
    smaps_field(addr, "Rss:")[0].parse().unwrap()
}

#[test]
fn a_sync_of_many_pages_unmaps_them_from_the_writer_and_writes_them_back() {
    let dir = tempfile::tempdir().unwrap();
    sync_of_many_pages(dir.path());
}

/// The `VmFlags` of this process's mapping that starts at `addr`.
fn vm_flags(addr: *const u8) -> Vec<String> {
    smaps_field(addr, "VmFlags:")
}

#[test]
fn the_first_sync_on_a_disk_asks_for_page_sized_cache_entries() {
    // Regression: issue 14 item 3: past ~40 MiB into a segment on ext4 every durable
    // append wrote a 2 MiB folio back (the page cache grows folios with read-around).
    let dir = tempfile::tempdir().unwrap();
    let file = scratch_file(&dir.path().join("channel"), 64 << 10);
    let map = WriteMap::map(&file, 64 << 10).unwrap();
    let addr = map.region.ptr.as_ptr();
    assert!(
        !vm_flags(addr).contains(&"rr".to_string()),
        "not before a sync"
    );
    map.store_relaxed(4096, 1);
    map.flush_range(0, 8192).unwrap();
    let random = vm_flags(addr).contains(&"rr".to_string());
    assert_eq!(
        random,
        !files::memory_backed(&file),
        "random-read advice after a sync: only where pages are written back"
    );
}

#[test]
fn a_sync_in_memory_leaves_the_pages_mapped() {
    // Regression: issue 14 item 3: on tmpfs the final sync of W1 spent 8-12 ms per 64 MiB
    // segment unmapping pages that had nothing to write back.
    let shm = std::path::Path::new("/dev/shm");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/dev/shm") && l.contains(" tmpfs "))
    {
        eprintln!("no tmpfs at /dev/shm: nothing to check");
        return;
    }
    let dir = tempfile::tempdir_in(shm).unwrap();
    sync_of_many_pages(dir.path());
}

/// Maps 256 pages of a file in `dir`, writes all of them, syncs nearly all, and checks
/// what stays mapped: on a disk the synced pages are dropped from the page tables, in a
/// file system kept in memory they stay; the bytes are there either way.
fn sync_of_many_pages(dir: &std::path::Path) {
    let page = page_size();
    let len = 256 * page;
    let file = scratch_file(&dir.join("channel"), len as u64);
    let map = WriteMap::map(&file, len).unwrap();
    for p in 1..256 {
        map.store_relaxed(p * page, p as u64);
    }
    let addr = map.region.ptr.as_ptr();
    assert!(resident_kib(addr) >= 255 * page as u64 / 1024);
    // Up to the middle of the last page, as a sync up to a record there would.
    map.flush_range(0, len - page / 2).unwrap();
    if files::memory_backed(&file) {
        assert!(resident_kib(addr) >= 255 * page as u64 / 1024);
    } else {
        // The header page and the last, partly synced page may stay mapped.
        assert!(resident_kib(addr) <= 2 * page as u64 / 1024);
    }
    // The bytes are all there, in the mapping and in the file.
    let mut word = [0u8; 8];
    for p in 1..256 {
        assert_eq!(map.load(p * page), p as u64);
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut word, (p * page) as u64).unwrap();
        assert_eq!(u64::from_le_bytes(word), p as u64);
    }
    // A small sync leaves its pages mapped.
    map.flush_range(page, 8 * page).unwrap();
    assert!(resident_kib(addr) >= 9 * page as u64 / 1024);
}

// The model of the publish/acquire protocol: a writer thread stages each payload through
// its raw pointer and then release-stores the header word; a reader thread acquire-loads
// the word and only then takes the payload slice. On a heap buffer standing in for the
// mapping (Miri cannot map files), through the same `WriteMap`/`ReadMap` code as the
// mapped path. Under Miri (`cargo +nightly miri test --lib mmap::`), a payload read that
// the acquire does not order after the writer's copy is a reported data race, and a write
// through a pointer derived from a shared reference a reported aliasing violation.
#[test]
fn publish_then_acquire_hands_out_only_complete_payloads() {
    const RECORDS: usize = 6;
    const SLOT: usize = 32; // header word + up to 24 payload bytes
    let len = CHECKED_LEN + 8 + RECORDS * SLOT;
    let (reader, mut writer) = ReadMap::heap_pair(len);
    fn payload(i: usize) -> Vec<u8> {
        vec![i as u8 + 1; 1 + i * 4 % 24]
    }
    fn word(i: usize) -> u64 {
        (payload(i).len() as u64) << 8 | 0x5A
    }
    let base = CHECKED_LEN + 8;

    let writing = std::thread::spawn(move || {
        writer.overwrite_header(&[0xEE; CHECKED_LEN]);
        for i in 0..RECORDS {
            let offset = base + i * SLOT;
            let mut stage = writer.stage(offset + 8, SLOT - 8);
            stage.write_all(&payload(i)).unwrap();
            assert_eq!(stage.written(), &payload(i)[..]);
            writer.store_release(offset, word(i));
        }
        writer.store_release(CHECKED_LEN, RECORDS as u64);
        writer
    });
    for i in 0..RECORDS {
        let offset = base + i * SLOT;
        let found = loop {
            match reader.published(offset, |w| (w >> 8) as usize) {
                Published::Nothing => std::thread::yield_now(),
                Published::Word { word, payload } => break (word, payload),
            }
        };
        assert_eq!(found, (word(i), &payload(i)[..]), "record {i}");
    }
    let writer = writing.join().unwrap();
    assert_eq!(reader.load_acquire(CHECKED_LEN), RECORDS as u64);
    assert_eq!(writer.load(CHECKED_LEN), RECORDS as u64);
}

// A pinned payload keeps the memory alive after every other handle on it is gone, and
// reads the published bytes (under Miri: a use after free or a race would be reported).
#[test]
fn a_pinned_payload_outlives_the_map_it_came_from() {
    let (reader, mut writer) = ReadMap::heap_pair(CHECKED_LEN + 64);
    let offset = CHECKED_LEN + 8;
    writer.stage(offset + 8, 16).write_all(b"pinned").unwrap();
    writer.store_release(offset, 6 << 8);
    let reader = Arc::new(reader);
    let (addr, len) = match reader.published(offset, |w| (w >> 8) as usize) {
        Published::Word { payload, .. } => (payload.as_ptr() as usize, payload.len()),
        Published::Nothing => panic!("the word was stored"),
    };
    let pinned = ReadMap::pin(&reader, addr, len);
    drop((reader, writer));
    let elsewhere = std::thread::spawn(move || pinned.bytes().to_vec());
    assert_eq!(elsewhere.join().unwrap(), b"pinned");
}

#[test]
#[should_panic(expected = "outside a mapping")]
fn a_pin_outside_the_map_panics() {
    let (reader, _writer) = ReadMap::heap_pair(CHECKED_LEN + 64);
    let reader = Arc::new(reader);
    let inside = reader.region.ptr.as_ptr() as usize;
    ReadMap::pin(&reader, inside + CHECKED_LEN + 60, 8);
}

#[test]
fn discarded_staging_reads_as_zero_again() {
    let (reader, mut writer) = ReadMap::heap_pair(CHECKED_LEN + 64);
    let mut stage = writer.stage(CHECKED_LEN + 8, 16);
    assert!(stage.write_all(&[7; 17]).is_err());
    stage.write_all(&[7; 16]).unwrap();
    assert!(stage.overflowed());
    stage.discard();
    assert_eq!(stage.len(), 0);
    writer.store_release(CHECKED_LEN, 16 << 8);
    match reader.published(CHECKED_LEN, |w| (w >> 8) as usize) {
        Published::Word { payload, .. } => assert_eq!(payload, &[0; 16]),
        Published::Nothing => panic!("the word was stored"),
    }
}

#[test]
#[cfg_attr(miri, ignore = "fcntl locks are system calls Miri does not run")]
fn a_probe_sees_the_writer_lock_without_taking_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked");
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .unwrap()
    };
    let (writer, rival, probe) = (open(), open(), File::open(&path).unwrap());
    assert!(!lock_held(&probe).unwrap());
    try_lock_writer(&writer).unwrap();
    assert!(lock_held(&probe).unwrap());
    // A probe holds nothing: the writer's locks are still the only ones, so a rival is
    // refused by them, and a writer taking the lock during probes never is.
    assert!(matches!(
        try_lock_writer(&rival),
        Err(std::fs::TryLockError::WouldBlock)
    ));
    assert!(rival.try_lock().is_err(), "the flock is held too");
    drop(writer);
    assert!(!lock_held(&probe).unwrap());
    try_lock_writer(&rival).unwrap();
    assert!(lock_held(&probe).unwrap());
}

// Pins item 2's fix in the source: channel memory is held only as `MmapRaw` (which never
// hands out a slice), and no pointer used for a write is derived from a reference. A
// `Mmap`/`MmapMut` (whose `as_ptr` goes through `Deref` to `&[u8]`) or a `cast_mut` of a
// `*const` would bring the undefined behaviour back.
#[test]
fn channel_memory_is_reached_only_through_raw_pointers() {
    // Regression: issue 11 item 2: writes through a pointer derived from `&[u8]`.
    let source = include_str!("../mmap.rs");
    let code = [
        &source[..source.find("#[cfg(test)]\nmod tests").unwrap()],
        include_str!("bell.rs"),
        include_str!("cow.rs"),
        include_str!("files.rs"),
        include_str!("locks.rs"),
        include_str!("read.rs"),
    ]
    .concat();
    for forbidden in [
        "Mmap,",
        "MmapMut",
        "map_mut(",
        ".map(file",
        "cast_mut()",
        "Deref",
    ] {
        assert!(
            !code.contains(forbidden),
            "the mmap module uses `{forbidden}`"
        );
    }
    assert!(code.contains("map_raw_read_only(file)") && code.contains("map_raw(file)"));
    let map = Region::mapped(MmapOptions::new().len(4096).map_anon().unwrap().into());
    let Backing::Mapped(raw) = &map.backing else {
        unreachable!()
    };
    assert_eq!(map.ptr.as_ptr(), raw.as_mut_ptr());
}
