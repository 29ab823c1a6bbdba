//! A journal's segment size is a property of the journal: reopened without one, it keeps the
//! size (and maximum record length) of its newest segment; a size set explicitly wins, and
//! is kept from then on.

use std::path::Path;

use kekbit::core::{storage_path, HEADER_LEN};
use kekbit::journal::{AppendError, Durability, Journal, JournalError, JournalOptions};

fn options() -> JournalOptions {
    Journal::options().durability(Durability::Never)
}

/// The data-area capacity of every segment file in `dir` (from the file lengths), by id.
fn capacities(dir: &Path) -> Vec<u64> {
    let mut capacities = Vec::new();
    let mut id = 1;
    while let Ok(meta) = std::fs::metadata(storage_path(dir, id)) {
        capacities.push(meta.len() - HEADER_LEN as u64);
        id += 1;
    }
    capacities
}

#[test]
fn reopening_without_a_size_keeps_the_journals_segment_size() {
    // Regression: issue 16 item 8: a journal created with 4 KiB segments made 64 MiB ones
    // once reopened with default options.
    let dir = tempfile::tempdir().unwrap();
    let journal = options()
        .segment_capacity(4096)
        .max_record_len(1000)
        .open(dir.path())
        .unwrap();
    for _ in 0..10 {
        journal.append(&[1; 1000]).unwrap();
    }
    drop(journal);

    let journal = options().open(dir.path()).unwrap();
    for _ in 0..10 {
        journal.append(&[2; 1000]).unwrap();
    }
    assert!(matches!(
        journal.append(&[3; 1001]),
        Err(AppendError::RecordTooLarge { max: 1000, .. })
    ));
    drop(journal);
    let sizes = capacities(dir.path());
    assert!(sizes.len() >= 6, "{sizes:?}");
    assert!(sizes.iter().all(|&c| c == 4096), "{sizes:?}");

    // An explicit size wins, and is the journal's from then on; the record limit then
    // defaults for that size unless set.
    let journal = options().segment_capacity(8192).open(dir.path()).unwrap();
    journal.append(&[4; 8000]).unwrap();
    drop(journal);
    let journal = options().open(dir.path()).unwrap();
    journal.append(&[5; 8000]).unwrap();
    drop(journal);
    let sizes = capacities(dir.path());
    assert_eq!(sizes.last(), Some(&8192), "{sizes:?}");
    assert_eq!(sizes.iter().filter(|&&c| c == 8192).count(), 2, "{sizes:?}");
}

#[test]
fn an_explicit_record_limit_must_fit_the_journals_segment_size() {
    let dir = tempfile::tempdir().unwrap();
    drop(options().segment_capacity(4096).open(dir.path()).unwrap());
    let refused = options().max_record_len(10_000).open(dir.path());
    match refused {
        Err(JournalError::InvalidOptions { reason, .. }) => {
            assert!(reason.contains("the journal's segment size"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // With a larger segment size, it is accepted.
    let journal = options()
        .segment_capacity(1 << 16)
        .max_record_len(10_000)
        .open(dir.path())
        .unwrap();
    journal.append(&[0; 10_000]).unwrap();
}
