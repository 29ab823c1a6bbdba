//! The journal's doorbell: how a writer tells sleeping readers, in any process, that it
//! published something, without a system call when no one sleeps.
//!
//! The bell is the first word of the file [`BELL_FILE`] in the journal's directory, mapped
//! read-write by the writer and by each process that waits (docs/FORMAT.md, "The doorbell
//! file"). The writer rings after each append, after each sync (durable-only readers wait for
//! the durable watermark) and when it closes the journal. A ring is one atomic add; it makes
//! the `futex` system call only when a reader said it is about to sleep, and clears that.
//! The bell carries no data and nothing depends on its value for correctness: a reader that
//! cannot map it polls instead.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::mmap::{Bell, BELL_LEN};

/// Name of the doorbell file in a journal's directory.
pub(crate) const BELL_FILE: &str = "kekbit.bell";

/// Maps the doorbell of the journal in `dir`; with `create`, creates the file first if it is
/// missing (the writer does). `None` if it cannot be opened read-write or mapped: the bell is
/// an optimisation, never a reason to fail.
pub(crate) fn open(dir: &Path, create: bool) -> Option<Bell> {
    let path = dir.join(BELL_FILE);
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .ok()?;
    // Grown, never shrunk: a mapping of a shrunk file would fault.
    if file.metadata().ok()?.len() < BELL_LEN as u64 {
        if !create {
            return None;
        }
        file.set_len(BELL_LEN as u64).ok()?;
    }
    Bell::map(&file).ok()
}

/// The writer's side of the bell: rings one last time when the journal closes (after its
/// active segment was sealed, before its lock is released), so that waiting readers see the
/// seal at once.
pub(crate) struct WriterBell {
    bell: Option<Bell>,
}

impl WriterBell {
    pub(crate) fn open(dir: &Path) -> WriterBell {
        WriterBell {
            bell: open(dir, true),
        }
    }

    #[inline]
    pub(crate) fn ring(&self) {
        if let Some(bell) = &self.bell {
            bell.ring();
        }
    }
}

impl Drop for WriterBell {
    fn drop(&mut self) {
        self.ring();
    }
}
