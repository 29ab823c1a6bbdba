//! How a journal's writer asks the kernel to cache its segments' pages: one page per cache
//! entry (`MADV_RANDOM` on its mapping, `rr` in `/proc/self/smaps`) when its durability policy
//! syncs, from the segment's creation, and otherwise from its first sync (and from their
//! creation for the segments made after the journal's first sync). ext4 grows its
//! page-cache folios up to 2 MiB with read-around, and a sync of one record into such a folio
//! writes all of it back (docs/PERFORMANCE.md, "Durable appends past 40 MiB").
//!
//! Only where the temporary folder is on a file system that writes pages back (not tmpfs).

use std::path::Path;

use kekbit::journal::{Durability, Journal};

/// The `VmFlags` of every mapping of a segment file in `dir` that this process has.
fn mapping_flags(dir: &Path) -> Vec<Vec<String>> {
    segment_flags(dir, ".kekbit")
}

/// The `VmFlags` of every mapping of a file in `dir` whose name contains `name`.
fn segment_flags(dir: &Path, name: &str) -> Vec<Vec<String>> {
    smaps_lines(dir, name, "VmFlags:")
        .into_iter()
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .collect()
}

/// The resident KiB of every mapping of a file in `dir` whose name contains `name`.
fn segment_rss_kib(dir: &Path, name: &str) -> Vec<u64> {
    smaps_lines(dir, name, "Rss:")
        .into_iter()
        .map(|rest| rest.trim().trim_end_matches("kB").trim().parse().unwrap())
        .collect()
}

/// What follows `field` in `/proc/self/smaps` for every mapping of a file in `dir` whose
/// name contains `name`.
fn smaps_lines(dir: &Path, name: &str, field: &str) -> Vec<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let dir = std::fs::canonicalize(dir).unwrap();
    let dir = dir.to_str().unwrap();
    let mut found = Vec::new();
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A segment is mapped under the temporary name it was created with (linked to
            // its own name afterwards), or under its own name.
            inside = line.contains(dir) && line.contains(name);
        } else if let Some(rest) = line.strip_prefix(field).filter(|_| inside) {
            found.push(rest.to_string());
        }
    }
    found
}

fn in_memory(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let dir = std::fs::canonicalize(dir).unwrap();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split(' ');
            let (_, at, kind) = (f.next()?, f.next()?, f.next()?);
            dir.starts_with(at)
                .then_some((at.len(), kind == "tmpfs" || kind == "ramfs"))
        })
        .max_by_key(|(len, _)| *len)
        .is_some_and(|(_, memory)| memory)
}

/// A temporary folder on a file system that writes pages back, or `None` (said on standard
/// error) where the temporary folder is kept in memory: nothing to check there.
fn disk_dir() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    if in_memory(dir.path()) {
        eprintln!("the temporary folder is kept in memory: nothing to check");
        return None;
    }
    Some(dir)
}

fn random_read(flags: &[String]) -> bool {
    flags.iter().any(|f| f == "rr")
}

/// The flags of the mappings of files in `dir` named like `name`, once they exist and are all
/// advised, or as they are after 10 s.
fn advised_within(dir: &Path, name: &str) -> Vec<Vec<String>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let flags = segment_flags(dir, name);
        let advised = !flags.is_empty() && flags.iter().all(|f| random_read(f));
        if advised || std::time::Instant::now() > deadline {
            return flags;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_syncing_journal_caches_its_segments_by_page_from_the_start() {
    // Regression: issue 14 item 3: past ~40 MiB into a segment every durable append wrote a
    // 2 MiB folio back and took 4.5 times as long.
    let Some(dir) = disk_dir() else {
        return;
    };
    let journal = Journal::options()
        .durability(Durability::EveryRecord)
        .open(dir.path())
        .unwrap();
    // The segment prepared ahead is mapped by the background thread, which advises the
    // mapping just after making it (before it prefaults a page): wait for that.
    let flags = advised_within(dir.path(), ".kekbit");
    assert!(!flags.is_empty(), "the writer maps its segment");
    assert!(flags.iter().all(|f| random_read(f)), "{flags:?}");
    drop(journal);
}

#[test]
fn a_journal_that_does_not_sync_keeps_the_kernels_choice_until_it_syncs() {
    let Some(dir) = disk_dir() else {
        return;
    };
    let journal = Journal::options()
        .durability(Durability::Never)
        .open(dir.path())
        .unwrap();
    journal.append(b"not synced").unwrap();
    let before = mapping_flags(dir.path());
    assert!(!before.is_empty(), "the writer maps its segment");
    assert!(before.iter().all(|f| !random_read(f)), "{before:?}");
    journal.sync().unwrap();
    let after = mapping_flags(dir.path());
    assert!(after.iter().any(|f| random_read(f)), "{after:?}");
}

#[test]
fn segments_made_after_a_journals_first_sync_are_cached_by_page_from_the_start() {
    let Some(dir) = disk_dir() else {
        return;
    };
    let journal = Journal::options()
        .durability(Durability::Never)
        .segment_capacity(1 << 20)
        .open(dir.path())
        .unwrap();
    journal.append(b"first").unwrap();
    journal.sync().unwrap();
    // Into segment 2, without a sync: segment 3 is made after the sync.
    let record = [3u8; 128];
    for _ in 0..(1100 << 10) / 136 {
        journal.append(&record).unwrap();
    }
    // The background thread maps segment 3, then advises the mapping before it prefaults
    // any page of it: wait for the advice, which a segment made before the sync would only
    // get from a sync of its own (none comes).
    let third = advised_within(dir.path(), "0000000000000003.kekbit");
    assert!(!third.is_empty(), "segment 3 was never prepared");
    assert!(third.iter().all(|f| random_read(f)), "{third:?}");
}

/// A journal under `Never` in `dir` with `write_behind`, having appended 48 MiB of records
/// into its first segment (of 64 MiB).
fn stream_without_syncs(dir: &Path, write_behind: bool) -> Journal {
    let journal = Journal::options()
        .durability(Durability::Never)
        .write_behind(write_behind)
        .open(dir)
        .unwrap();
    let record = [5u8; 1000];
    for _ in 0..(48 << 20) / 1024 {
        journal.append(&record).unwrap();
    }
    journal
}

/// The least resident KiB of the writer's mapping of segment 1 in `dir` seen within `wait`,
/// or once at or under `low`.
fn least_rss_of_first_segment(dir: &Path, wait: std::time::Duration, low: u64) -> u64 {
    let deadline = std::time::Instant::now() + wait;
    let mut least = u64::MAX;
    loop {
        let rss = segment_rss_kib(dir, "0000000000000001.kekbit");
        assert_eq!(rss.len(), 1, "one mapping of segment 1: the writer's");
        least = least.min(rss[0]);
        if least <= low || std::time::Instant::now() > deadline {
            return least;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_journal_that_does_not_sync_has_the_pages_behind_its_writer_written_back_unless_told_not_to() {
    let (Some(behind), Some(kept)) = (disk_dir(), disk_dir()) else {
        return;
    };
    // The helper thread drops the pages it hands to writeback from the writer's mapping:
    // what stays resident is the last few MiB and the window it prefaults ahead (16 MiB),
    // about 20 MiB. (It may map pages ahead between two looks: the least seen counts.)
    let _writing = stream_without_syncs(behind.path(), true);
    let wait = std::time::Duration::from_secs(10);
    let written_behind = least_rss_of_first_segment(behind.path(), wait, 40 << 10);
    assert!(written_behind <= 40 << 10, "{written_behind} KiB resident");
    // Turned off, every page written stays mapped (and dirty) until a sync: 48 MiB at least.
    let _keeping = stream_without_syncs(kept.path(), false);
    let wait = std::time::Duration::from_millis(300);
    let resident = least_rss_of_first_segment(kept.path(), wait, 0);
    assert!(resident >= 48 << 10, "{resident} KiB resident");
}
