//! The file system calls std lacks, on channel files: skipping holes (`lseek`), reserving and
//! releasing storage (`fallocate`), and writing ranges back (`msync`, `sync_file_range`).

use super::*;

/// The first stretch of `file` within the file offsets `[from, to)` that may hold data, as
/// `(start, end)`, found with `lseek(SEEK_DATA)` and `lseek(SEEK_HOLE)`: holes (never
/// written, never allocated) are skipped without reading, or mapping, a byte of them. `None`
/// when only holes remain. Where the file system cannot tell, all of `[from, to)` may hold
/// data. Moves the file's offset, which the crate never uses (it reads with `pread`).
pub(crate) fn next_data(file: &File, from: u64, to: u64) -> Option<(u64, u64)> {
    use std::os::fd::AsRawFd;
    if from >= to {
        return None;
    }
    let seek = |at: u64, whence: libc::c_int| {
        let at = libc::off_t::try_from(at).ok()?;
        // SAFETY: plain system call on a descriptor that `file` keeps open for the duration of
        // the call; no memory is passed.
        let found = unsafe { libc::lseek(file.as_raw_fd(), at, whence) };
        Some(u64::try_from(found).map_err(|_| io::Error::last_os_error()))
    };
    let start = match seek(from, libc::SEEK_DATA) {
        Some(Ok(start)) => start,
        // Nothing but holes from `from` to the end of the file.
        Some(Err(e)) if e.raw_os_error() == Some(libc::ENXIO) => return None,
        _ => return Some((from, to)),
    };
    if start >= to {
        return None;
    }
    let end = match seek(start, libc::SEEK_HOLE) {
        Some(Ok(end)) if end > start => end.min(to),
        _ => to,
    };
    Some((start, end))
}

/// Whether `file` has storage for all of its first `len` bytes: no hole before `len`
/// (`lseek(SEEK_HOLE)` from 0 finds the first at `len` or later) and at least `len` bytes of
/// blocks allocated. `false` when the system cannot tell, so that the caller reserves.
pub(crate) fn fully_allocated(file: &File, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    if !file
        .metadata()
        .is_ok_and(|meta| meta.blocks().saturating_mul(512) >= len)
    {
        return false;
    }
    let Ok(len_off) = libc::off_t::try_from(len) else {
        return false;
    };
    // SAFETY: plain system call on a descriptor that `file` keeps open for the duration of
    // the call; no memory is passed. It moves the file's offset, which the crate never uses.
    let hole = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_HOLE) };
    hole >= len_off
}

/// Writes the dirty pages holding the first `len` bytes of `file` back to storage and waits
/// for them (`msync(MS_SYNC)` of a shared mapping made for the call, which on Linux syncs
/// that range of the file, with the metadata needed to read it, and not the rest of the
/// file's dirty pages). `file` must be open for reading and writing.
pub(crate) fn sync_start(file: &File, len: usize) -> io::Result<()> {
    let map = MmapOptions::new().len(len).map_raw(file)?;
    map.flush_range(0, len)
}

/// Reserves `len` bytes of real disk space for `file` (not a sparse hole), extending it to
/// `len` bytes: a full disk is reported here as `StorageFull` instead of a SIGBUS later.
pub(crate) fn reserve(file: &File, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let len_off = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file size too large"))?;
        // SAFETY: plain system call on a file descriptor that `file` keeps open for the
        // duration of the call; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len_off) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(err);
        }
    }
    write_zeros(file, len)
}

/// Releases the storage of the file range `[offset, offset + len)` of `file` without changing
/// its size (`fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`): the range reads as
/// zeros afterwards, from the file and through every mapping of it, and no mapping can fault
/// past the end of the file, since the end does not move. The kernel zeroes any partial
/// block at either end of the range in place. `EOPNOTSUPP` where the file system cannot
/// punch holes (and everywhere but Linux).
pub(crate) fn punch_hole(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    // SAFETY: plain system call on a file descriptor that `file` keeps open for the duration
    // of the call; no memory is passed. It changes the file's contents, not memory this
    // process owns: pages of the range that are mapped read as zeros after it, which the
    // callers allow only over bytes no one reads as data (past a seal).
    range_call(file, offset, len, |fd, offset, len| unsafe {
        libc::fallocate(fd, mode, offset, len)
    })
}

/// Whether `file` lives on a file system kept in memory only (tmpfs, ramfs: `fstatfs`), whose
/// pages are never written back to a device: a sync through a mapping of it has nothing to
/// write, so the page-table work meant to make writeback cheaper would be spent for nothing.
/// `false` where it cannot tell.
pub(crate) fn memory_backed(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        const RAMFS_MAGIC: u64 = 0x8584_58f6;
        let mut stat = std::mem::MaybeUninit::<libc::statfs>::zeroed();
        // SAFETY: plain system call on a descriptor `file` keeps open for the duration of the
        // call; the kernel writes a whole `struct statfs` into `stat`, which is that type's
        // size and alignment, and nothing else.
        let rc = unsafe { libc::fstatfs(file.as_raw_fd(), stat.as_mut_ptr()) };
        if rc != 0 {
            return false;
        }
        // SAFETY: `fstatfs` returned 0, so it filled the struct (and it was zeroed before,
        // which is a valid `statfs` too: plain integers).
        let stat = unsafe { stat.assume_init() };
        // `f_type` is signed on some targets: compare its bits.
        let kind = stat.f_type as u64 & 0xffff_ffff;
        kind == TMPFS_MAGIC || kind == RAMFS_MAGIC
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// Writes the dirty pages of the file range `[offset, offset + len)` of `file` back to the
/// device and waits for that writeback (`sync_file_range` with `WAIT_BEFORE | WRITE |
/// WAIT_AFTER`): no metadata and no flush of the device's cache, so nothing is durable by
/// it; the file system allocates the range's blocks (ext4 converts unwritten extents).
/// An error of this writeback is reported to this open file only: open `file` apart from
/// the file a mapping was made of, so that the syncs through that mapping still see every
/// writeback error of the pages they cover. `EOPNOTSUPP` everywhere but Linux.
pub(crate) fn write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: plain system call on a file descriptor that `file` keeps open for the duration
    // of the call; no memory is passed, and writing pages back changes no byte of the file
    // or of any mapping of it.
    range_call(file, offset, len, |fd, offset, len| unsafe {
        libc::sync_file_range(fd, offset, len, flags)
    })
}

/// Starts writing the dirty pages of `[offset, offset + len)` of `file` back to storage and
/// returns without waiting for them (`sync_file_range(SYNC_FILE_RANGE_WRITE)`).
pub(crate) fn start_write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: plain system call on a file descriptor that `file` keeps open for the duration
    // of the call; no memory is passed, and writing pages back changes no byte of the file
    // or of any mapping of it.
    range_call(file, offset, len, |fd, offset, len| unsafe {
        libc::sync_file_range(fd, offset, len, libc::SYNC_FILE_RANGE_WRITE)
    })
}

/// Pages of `[offset, offset + len)` of `file` that the page cache holds dirty
/// (`cachestat`, Linux 6.5 on; x86-64 only: `libc` has no name for its number). For tests.
#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
pub(crate) fn dirty_pages(file: &File, offset: u64, len: u64) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    const SYS_CACHESTAT: libc::c_long = 451;
    let range = [offset, len];
    // nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted
    let mut stat = [0u64; 5];
    // SAFETY: `cachestat(fd, &range, &stat, 0)` reads the two `u64` of `range` and writes the
    // five of `stat`, both live arrays of that layout for the duration of the call; `file`
    // keeps the descriptor open.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            range.as_ptr(),
            stat.as_mut_ptr(),
            0u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stat[1])
}

/// Runs `call` with `file`'s descriptor and the range `[offset, offset + len)`, a Linux
/// system call returning 0 on success and -1 with `errno` set on failure; `EOPNOTSUPP`
/// everywhere but Linux.
fn range_call(
    file: &File,
    offset: u64,
    len: u64,
    call: impl FnOnce(libc::c_int, libc::off_t, libc::off_t) -> libc::c_int,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let too_large = || io::Error::new(io::ErrorKind::InvalidInput, "range too large");
        let offset = libc::off_t::try_from(offset).map_err(|_| too_large())?;
        let len = libc::off_t::try_from(len).map_err(|_| too_large())?;
        if call(file.as_raw_fd(), offset, len) == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len, call);
        Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
    }
}

/// The portable way to allocate: write every byte (for file systems without fallocate).
fn write_zeros(file: &File, len: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let zeros = vec![0u8; 1 << 20];
    let mut f = file;
    let mut done = f.seek(SeekFrom::End(0))?;
    while done < len {
        let n = (len - done).min(zeros.len() as u64) as usize;
        f.write_all(&zeros[..n])?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file system of `path` as `/proc/mounts` names it (the longest mount point that
    /// is a prefix of it).
    fn fs_type(path: &std::path::Path) -> Option<String> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        mounts
            .lines()
            .filter_map(|l| {
                let mut fields = l.split(' ');
                let (_, at, kind) = (fields.next()?, fields.next()?, fields.next()?);
                path.starts_with(at).then(|| (at.len(), kind.to_string()))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, kind)| kind)
    }

    #[test]
    fn memory_backed_agrees_with_the_mount_table() {
        let mut checked = 0;
        for dir in [std::env::temp_dir(), "/dev/shm".into()] {
            let Ok(dir) = tempfile::tempdir_in(&dir) else {
                continue;
            };
            let path = dir.path().join("f");
            let file = File::create(&path).unwrap();
            let Some(kind) = fs_type(&std::fs::canonicalize(&path).unwrap()) else {
                continue;
            };
            let in_memory = kind == "tmpfs" || kind == "ramfs";
            assert_eq!(
                memory_backed(&file),
                in_memory,
                "{} on {kind}",
                path.display()
            );
            checked += 1;
        }
        assert!(checked > 0, "no folder to check");
    }
}
