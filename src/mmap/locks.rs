//! Open-file-description locks (`fcntl(F_OFD_SETLK)`): the writer's lock, the readers' lock on
//! the mapping byte, and probes that take no lock.

use super::*;

/// Takes a writer's lock on `file` without blocking: an exclusive open-file-description lock
/// (`fcntl(F_OFD_SETLK)`, a write lock over the writer's range, [`WRITER_RANGE`]), which
/// [`lock_held`] observes without taking any lock, and, under it, an exclusive `flock`, which
/// writers of format 1 that predate the OFD lock take. `WouldBlock` if another open file
/// description holds either. Both live on the open file: the OS releases them when the file
/// (and every mapping of it) is closed, or the process dies. Needs `file` open for writing.
pub(crate) fn try_lock_writer(file: &File) -> Result<(), std::fs::TryLockError> {
    use std::fs::TryLockError;
    let took_ofd = match ofd_lock(file, OFD_SET, LockKind::Write, WRITER_RANGE) {
        Ok(true) => true,
        Ok(false) => return Err(TryLockError::WouldBlock),
        // No OFD locks here: the `flock` alone is the lock (and `lock_held` probes it).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
        Err(e) => return Err(TryLockError::Error(e)),
    };
    let flock = file.try_lock();
    if flock.is_err() && took_ofd {
        let _ = ofd_lock(file, OFD_SET, LockKind::Unlock, WRITER_RANGE);
    }
    flock
}

/// Whether another open file description holds a writer's lock on `file` (see
/// [`try_lock_writer`]), asked with `fcntl(F_OFD_GETLK)` over the first byte of the writer's
/// range: a query, not a lock, so that a reader's probe can never make a writer's (or a
/// recovery's) `try_lock_writer` fail, and one that the readers' locks on [`MAPPING_BYTE`]
/// do not answer. Where the system has no OFD locks, falls back to probing the `flock` with a
/// shared lock, which can make a concurrent `try_lock_writer` fail for that moment.
pub(crate) fn lock_held(file: &File) -> io::Result<bool> {
    match ofd_lock(file, OFD_GET, LockKind::Write, (0, 1)) {
        Ok(free) => Ok(!free),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(false)
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(true),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The byte range `(start, len)` of a writer's OFD lock: everything below [`MAPPING_BYTE`].
const WRITER_RANGE: (u64, u64) = (0, MAPPING_BYTE);

/// The byte (far past the end of any channel file: OFD locks may lie beyond it) that every
/// reader mapping a channel holds a shared lock on for as long as it maps it, and that a
/// journal recycling a pruned segment locks exclusively (docs/FORMAT.md, "Recycled
/// segments").
const MAPPING_BYTE: u64 = 1 << 62;

/// What [`lock_mapping_shared`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MappingLock {
    /// The shared lock is held: the file cannot be recycled while `file` stays open.
    Held,
    /// An exclusive lock on the mapping byte is held elsewhere: the file is being recycled
    /// (it was pruned), and must not be read as what its name said.
    Recycling,
    /// No lock could be placed for a reason that does not concern recycling (no OFD locks
    /// on this system, or a writer of kekbit 0.5.0 holding the whole file): read without one.
    /// Nothing recycles a file without taking the exclusive OFD lock, so a writer that could
    /// recycle would have excluded this reader by then.
    Unavailable,
}

/// Takes the shared lock readers hold on [`MAPPING_BYTE`] while they map `file` (released
/// when `file` is closed), without blocking.
pub(crate) fn lock_mapping_shared(file: &File) -> io::Result<MappingLock> {
    let byte = (MAPPING_BYTE, 1);
    match ofd_lock(file, OFD_SET, LockKind::Read, byte) {
        Ok(true) => Ok(MappingLock::Held),
        Ok(false) => {
            // Who holds it: a lock on exactly the mapping byte is a recycler's; a lock over
            // the whole file (`l_len` 0) is a writer of kekbit 0.5.0, which never recycles.
            match ofd_conflict(file, LockKind::Read, byte)? {
                Some((start, _)) if start == MAPPING_BYTE => Ok(MappingLock::Recycling),
                _ => Ok(MappingLock::Unavailable),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(MappingLock::Unavailable),
        Err(e) => Err(e),
    }
}

/// Takes the exclusive lock on [`MAPPING_BYTE`] without blocking: `Ok(true)` if no reader
/// holds its shared lock (no one maps the file), `Ok(false)` if one does or the system has
/// no OFD locks (recycling is then never safe). Needs `file` open for writing.
pub(crate) fn try_lock_mapping_exclusive(file: &File) -> io::Result<bool> {
    match ofd_lock(file, OFD_SET, LockKind::Write, (MAPPING_BYTE, 1)) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        other => other,
    }
}

/// Releases the exclusive lock of [`try_lock_mapping_exclusive`].
pub(crate) fn unlock_mapping(file: &File) -> io::Result<()> {
    ofd_lock(file, OFD_SET, LockKind::Unlock, (MAPPING_BYTE, 1)).map(drop)
}

#[derive(Clone, Copy)]
enum LockKind {
    Read,
    Write,
    Unlock,
}

impl LockKind {
    fn l_type(self) -> libc::c_short {
        (match self {
            LockKind::Read => libc::F_RDLCK,
            LockKind::Write => libc::F_WRLCK,
            LockKind::Unlock => libc::F_UNLCK,
        }) as libc::c_short
    }
}

const OFD_SET: libc::c_int = libc::F_OFD_SETLK;
const OFD_GET: libc::c_int = libc::F_OFD_GETLK;

/// A `libc::flock` for `kind` over `(start, len)` bytes (`len` 0: to the end of the file and
/// beyond).
fn flock_struct(kind: LockKind, (start, len): (u64, u64)) -> io::Result<libc::flock> {
    let range = |v: u64| {
        libc::off_t::try_from(v)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "lock range too large"))
    };
    // SAFETY: `libc::flock` is a C struct of plain integers, for which all zeros is a valid
    // value (and the one F_OFD_* commands want in `l_pid`).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind.l_type();
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = range(start)?;
    lock.l_len = range(len)?;
    Ok(lock)
}

/// Runs one `fcntl` OFD command on `lock`.
fn ofd_fcntl(file: &File, cmd: libc::c_int, lock: &mut libc::flock) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `fcntl` with an F_OFD_* command reads (and, for GETLK, writes) one `flock`
    // struct through the pointer, which points to `lock`, alive and exclusively borrowed for
    // the call; `file` keeps the descriptor open for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, lock as *mut libc::flock) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One `fcntl` OFD lock command over `range`. For `F_OFD_SETLK`: `Ok(true)` if done,
/// `Ok(false)` if another lock conflicts. For `F_OFD_GETLK`: `Ok(true)` if the lock could be
/// placed (no conflicting lock), `Ok(false)` if one conflicts. `EINVAL` where OFD locks do not
/// exist (Linux before 3.15).
fn ofd_lock(file: &File, cmd: libc::c_int, kind: LockKind, range: (u64, u64)) -> io::Result<bool> {
    let mut lock = flock_struct(kind, range)?;
    match ofd_fcntl(file, cmd, &mut lock) {
        Ok(()) => Ok(cmd == OFD_SET || lock.l_type == libc::F_UNLCK as libc::c_short),
        Err(e)
            if cmd == OFD_SET && matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES)) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The range `(start, len)` of a lock that conflicts with `kind` over `range`, if any
/// (`F_OFD_GETLK`).
fn ofd_conflict(file: &File, kind: LockKind, range: (u64, u64)) -> io::Result<Option<(u64, u64)>> {
    let mut lock = flock_struct(kind, range)?;
    ofd_fcntl(file, OFD_GET, &mut lock)?;
    if lock.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    Ok(Some((lock.l_start as u64, lock.l_len as u64)))
}
