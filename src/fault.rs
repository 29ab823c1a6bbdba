//! Test support (feature `fault-injection`; without it this module is not public). The I/O
//! seam: every file-system operation that durability depends on is announced here
//! before it runs and after it succeeded, so that tests can record what reached storage
//! (to build the files a power loss would leave) or make an operation fail (a full disk, a
//! failed sync).
//!
//! Without the `fault-injection` feature the announcements compile to nothing. With it, a
//! test installs an [`IoObserver`] with [`set_observer`]; the observer is process-wide, so
//! tests that install one should run in their own test binary, one at a time.
//!
//! ```
//! # #[cfg(feature = "fault-injection")] {
//! use kekbit::fault::IoOp;
//! use std::path::Path;
//! let op = IoOp::SyncDir(Path::new("/tmp"));
//! assert_eq!(op.path(), Path::new("/tmp"));
//! # }
//! ```

use std::io;
use std::path::Path;

/// A file-system operation kekbit is about to perform (or has performed).
///
/// ```
/// # #[cfg(feature = "fault-injection")] {
/// use kekbit::fault::IoOp;
/// use std::path::Path;
/// let op = IoOp::FlushRange(Path::new("a.kekbit"), 0, 4096);
/// assert!(op.is_sync());
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp<'a> {
    /// A new file is created (exclusively).
    CreateFile(&'a Path),
    /// A file's space is reserved (`fallocate`), extending it to this length.
    Reserve(&'a Path, u64),
    /// A file's contents are synced (`fsync`/`fdatasync`).
    SyncFile(&'a Path),
    /// A range `[offset, offset + len)` of a mapped file is written back (`msync(MS_SYNC)`).
    FlushRange(&'a Path, u64, u64),
    /// A directory is synced, making the names created, renamed or removed in it durable.
    SyncDir(&'a Path),
    /// A second name (the second path) is given to a file (the first).
    Link(&'a Path, &'a Path),
    /// A file is renamed from the first path to the second.
    Rename(&'a Path, &'a Path),
    /// A name is removed.
    Remove(&'a Path),
    /// The storage of the range `[offset, offset + len)` of a file is released without
    /// changing the file's size (`fallocate(FALLOC_FL_PUNCH_HOLE)`): the unused part of a
    /// sealed journal segment. The range reads as zeros afterwards.
    Punch(&'a Path, u64, u64),
    /// Bytes `[offset, offset + len)` of a file are written with `pwrite` (not yet durable:
    /// a `SyncFile` follows): a mapped image's checkpoint writing changed pages and a header
    /// slot.
    WriteAt(&'a Path, u64, u64),
    /// The pages of `[offset, offset + len)` of a file are written back without making
    /// anything durable (`sync_file_range`, no metadata, no cache flush): zero pages ahead of
    /// a journal segment's writer, so that the file system allocates their blocks before
    /// records land there. Nothing depends on it.
    WriteBack(&'a Path, u64, u64),
}

#[cfg(feature = "fault-injection")]
impl IoOp<'_> {
    /// The file or directory the operation is about (for links and renames, the new name).
    ///
    /// ```
    /// use kekbit::fault::IoOp;
    /// use std::path::Path;
    /// assert_eq!(IoOp::Rename(Path::new("a"), Path::new("b")).path(), Path::new("b"));
    /// ```
    pub fn path(&self) -> &Path {
        match self {
            IoOp::CreateFile(p)
            | IoOp::Reserve(p, _)
            | IoOp::SyncFile(p)
            | IoOp::FlushRange(p, _, _)
            | IoOp::SyncDir(p)
            | IoOp::Remove(p)
            | IoOp::Punch(p, _, _)
            | IoOp::WriteAt(p, _, _)
            | IoOp::WriteBack(p, _, _) => p,
            IoOp::Link(_, to) | IoOp::Rename(_, to) => to,
        }
    }

    /// Whether the operation makes data or names durable (a sync of a file, a range or a
    /// directory).
    ///
    /// ```
    /// use kekbit::fault::IoOp;
    /// use std::path::Path;
    /// assert!(!IoOp::Remove(Path::new("a")).is_sync());
    /// ```
    pub fn is_sync(&self) -> bool {
        matches!(
            self,
            IoOp::SyncFile(_) | IoOp::FlushRange(..) | IoOp::SyncDir(_)
        )
    }
}

/// Observes kekbit's file-system operations (installed with [`set_observer`], feature
/// `fault-injection`).
///
/// ```
/// use kekbit::fault::{IoObserver, IoOp};
/// /// Fails every directory sync.
/// struct NoDirSync;
/// impl IoObserver for NoDirSync {
///     fn before(&self, op: &IoOp<'_>) -> std::io::Result<()> {
///         match op {
///             IoOp::SyncDir(_) => Err(std::io::Error::other("injected")),
///             _ => Ok(()),
///         }
///     }
/// }
/// assert!(NoDirSync.before(&IoOp::SyncDir(std::path::Path::new("/"))).is_err());
/// ```
#[cfg(feature = "fault-injection")]
pub trait IoObserver: Send + Sync {
    /// Called before the operation; an error is returned by kekbit in place of the
    /// operation's own result, and the operation is not performed.
    fn before(&self, op: &IoOp<'_>) -> io::Result<()>;

    /// Called after the operation succeeded. Does nothing by default.
    ///
    /// ```
    /// use kekbit::fault::{IoObserver, IoOp};
    /// struct Quiet;
    /// impl IoObserver for Quiet {
    ///     fn before(&self, _: &IoOp<'_>) -> std::io::Result<()> { Ok(()) }
    /// }
    /// Quiet.after(&IoOp::SyncDir(std::path::Path::new("/")));
    /// ```
    fn after(&self, op: &IoOp<'_>) {
        let _ = op;
    }
}

#[cfg(feature = "fault-injection")]
mod hook {
    use super::IoObserver;
    use std::sync::{Arc, RwLock};

    pub(super) static OBSERVER: RwLock<Option<Arc<dyn IoObserver>>> = RwLock::new(None);

    pub(super) fn current() -> Option<Arc<dyn IoObserver>> {
        OBSERVER.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Installs `observer` for the whole process (or removes it with `None`); returns the one
/// it replaces. Only with the `fault-injection` feature.
///
/// ```
/// # #[cfg(feature = "fault-injection")] {
/// use kekbit::fault::{set_observer, IoObserver, IoOp};
/// use std::sync::Arc;
/// struct Allow;
/// impl IoObserver for Allow {
///     fn before(&self, _: &IoOp<'_>) -> std::io::Result<()> { Ok(()) }
/// }
/// let previous = set_observer(Some(Arc::new(Allow)));
/// set_observer(previous);
/// # }
/// ```
#[cfg(feature = "fault-injection")]
pub fn set_observer(
    observer: Option<std::sync::Arc<dyn IoObserver>>,
) -> Option<std::sync::Arc<dyn IoObserver>> {
    let mut slot = hook::OBSERVER.write().unwrap_or_else(|p| p.into_inner());
    std::mem::replace(&mut *slot, observer)
}

/// Announces `op` before it runs: the observer may fail it.
#[inline]
pub(crate) fn before(op: IoOp<'_>) -> io::Result<()> {
    #[cfg(feature = "fault-injection")]
    if let Some(observer) = hook::current() {
        return observer.before(&op);
    }
    let _ = op;
    Ok(())
}

/// Announces that `op` succeeded.
#[inline]
pub(crate) fn after(op: IoOp<'_>) {
    #[cfg(feature = "fault-injection")]
    if let Some(observer) = hook::current() {
        observer.after(&op);
    }
    let _ = op;
}

/// Runs `f` as `op`: announced before (and failed if the observer says so) and after.
#[inline]
pub(crate) fn run<T>(op: IoOp<'_>, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    before(op)?;
    let value = f()?;
    after(op);
    Ok(value)
}
