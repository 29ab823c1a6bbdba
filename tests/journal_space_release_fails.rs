#![cfg(feature = "fault-injection")]
//! A release of a sealed segment's unused space that fails (a file system that cannot punch
//! holes says `EOPNOTSUPP`) is ignored: closing and opening succeed, every record reads back,
//! and the segment simply stays allocated (docs/FORMAT.md, "Releasing a sealed segment's
//! unused space"). The failure is injected through the I/O seam (`IoOp::Punch`); the
//! observer is process-wide, so this scenario has its own test binary.

#[path = "common/journal.rs"]
mod journal_common;

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use journal_common::{read_journal, segment_file};
use kekbit::fault::{set_observer, IoObserver, IoOp};
use kekbit::journal::Journal;

/// Fails every punch under `dir` as a file system without hole punching would.
struct NoPunch {
    dir: PathBuf,
    refused: AtomicUsize,
}

impl IoObserver for NoPunch {
    fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
        match op {
            IoOp::Punch(path, _, _) if path.starts_with(&self.dir) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
            }
            _ => Ok(()),
        }
    }
}

#[test]
fn a_refused_release_leaves_the_segment_allocated_and_the_journal_whole() {
    let dir = tempfile::tempdir().unwrap();
    let observer = Arc::new(NoPunch {
        dir: dir.path().to_path_buf(),
        refused: AtomicUsize::new(0),
    });
    let previous = set_observer(Some(observer.clone() as Arc<dyn IoObserver>));
    let options = || Journal::options().segment_capacity(1 << 20);
    for i in 0..3u64 {
        let journal = options().open(dir.path()).unwrap();
        assert_eq!(journal.append(&i.to_le_bytes()).unwrap(), i);
    }
    set_observer(previous);
    // Each close tried once, and each opening tried the tail again.
    assert_eq!(observer.refused.load(Ordering::SeqCst), 5);
    for id in 1..=3 {
        let used = fs::metadata(segment_file(dir.path(), id)).unwrap().blocks() * 512;
        assert!(used >= 1 << 20, "segment {id}: {used} bytes allocated");
    }
    let records = read_journal(dir.path(), 0);
    assert_eq!(records.len(), 3);
    // Without the failure, the next opening releases the tail.
    drop(options().open(dir.path()).unwrap());
    let used = fs::metadata(segment_file(dir.path(), 3)).unwrap().blocks() * 512;
    assert!(used <= 2 * 4096, "segment 3: {used} bytes allocated");
}
