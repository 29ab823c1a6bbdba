//! Errors keep their structured sources: a caller can tell corruption from I/O from a lock
//! by matching, never by parsing a message. Checked where a source used to be flattened into
//! `io::Error::other`: creating a snapshot store's directory (a `ChannelError` inside a
//! `SnapshotError::Io`) and sealing a crashed journal's tail during recovery (a `WriteError`
//! inside a `JournalError::Io`).

use std::error::Error;
use std::io::ErrorKind;

use kekbit::snapshot::{SnapshotError, SnapshotStore};

#[test]
fn a_snapshot_directory_that_cannot_be_created_is_an_io_error_with_its_io_source() {
    // Trap (issue 11, "API traps"): SnapshotStore::open wrapped a ChannelError in
    // io::Error::other, so the I/O error's kind was `Other` and the path the store's own.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    match SnapshotStore::open(file.join("snapshots"), 2) {
        Err(SnapshotError::Io {
            path,
            action,
            source,
        }) => {
            assert_eq!(source.kind(), ErrorKind::NotADirectory, "{source:?}");
            assert_eq!(action, "creating the directory");
            assert_eq!(path, file.join("snapshots"));
            assert!(source.get_ref().is_none(), "a wrapped error: {source:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_failed_seal_of_a_recovered_tail_keeps_the_write_error() {
    // Trap (issue 11, "API traps"): recovery wrapped the WriteError of sealing the tail in
    // io::Error::other inside JournalError::Io.
    use kekbit::core::WriteError;
    use kekbit::fault::{set_observer, IoObserver, IoOp};
    use kekbit::journal::{Durability, Journal, JournalError};
    use std::sync::Arc;

    /// Fails every sync of segment 1.
    struct FailSegmentOne;
    impl IoObserver for FailSegmentOne {
        fn before(&self, op: &IoOp<'_>) -> std::io::Result<()> {
            let one = op.path().ends_with("0000000000000001.kekbit");
            if one && op.is_sync() {
                return Err(std::io::Error::other("injected EIO"));
            }
            Ok(())
        }
    }

    // A crashed writer's journal: copied while open, so its tail is not sealed.
    let live = tempfile::tempdir().unwrap();
    let journal = Journal::options()
        .durability(Durability::Never)
        .open(live.path())
        .unwrap();
    journal.append(b"unsynced").unwrap();
    // The segments prepared ahead are made by a background thread under a temporary name:
    // wait for it, so that no file is renamed while the directory is copied.
    journal.warm_up().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(live.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), crashed.path().join(entry.file_name())).unwrap();
    }
    drop(journal);

    set_observer(Some(Arc::new(FailSegmentOne)));
    let opened = Journal::open(crashed.path());
    set_observer(None);
    match opened {
        Err(e @ JournalError::Write { .. }) => {
            let source = e.source().expect("a source");
            let write = source
                .downcast_ref::<WriteError>()
                .expect("the source is the WriteError");
            assert!(matches!(write, WriteError::SyncFailed { .. }), "{write:?}");
        }
        other => panic!("{other:?}"),
    }
}
