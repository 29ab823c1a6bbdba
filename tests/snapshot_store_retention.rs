//! Snapshot retention never removes the snapshot just written: a write that would not be
//! among the newest `keep` is refused before anything is written, and every write that
//! succeeds leaves its file in place and listed.

use kekbit::snapshot::{SnapshotError, SnapshotStore};

fn listed(store: &SnapshotStore) -> Vec<u64> {
    store.list().unwrap().iter().map(|s| s.sequence).collect()
}

#[test]
fn an_older_snapshot_than_the_kept_ones_is_refused() {
    // Regression: issue 11 item 7: write(5) with snapshot 10 present and keep = 1 returned
    // Ok after retention had deleted the file it wrote.
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), 1).unwrap();
    store.write(10, b"ten").unwrap();
    match store.write(5, b"five") {
        Err(
            e @ SnapshotError::Outdated {
                sequence: 5,
                oldest_kept: 10,
                keep: 1,
                ..
            },
        ) => assert!(e.to_string().contains("sequence 5"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(listed(&store), [10]);
    assert!(!dir
        .path()
        .join("snapshot-00000000000000000005.ksnap")
        .exists());
    // No temporary file left either.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The same sequence replaces it; a newer one is taken.
    store.write(10, b"ten again").unwrap();
    assert_eq!(store.read(&store.list().unwrap()[0]).unwrap(), b"ten again");
    store.write(11, b"eleven").unwrap();
    assert_eq!(listed(&store), [11]);
}

#[test]
fn every_successful_write_is_kept() {
    // With keep = 3, a snapshot between kept ones is kept; one below all three is refused.
    let dir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(dir.path(), 3).unwrap();
    for seq in [10, 30, 20, 25, 5, 40, 15] {
        let newer = listed(&store).iter().filter(|&&s| s > seq).count();
        match store.write(seq, b"x") {
            Ok(info) => {
                assert!(newer < 3, "{seq} accepted with {newer} newer");
                assert!(info.path.exists(), "{seq}: written file is gone");
                assert!(listed(&store).contains(&seq), "{seq}: not listed");
            }
            Err(SnapshotError::Outdated { oldest_kept, .. }) => {
                assert!(newer >= 3, "{seq} refused with only {newer} newer");
                assert!(oldest_kept > seq);
            }
            Err(e) => panic!("{seq}: {e}"),
        }
        assert!(listed(&store).len() <= 3);
    }
    assert_eq!(listed(&store), [40, 30, 25]);
}
