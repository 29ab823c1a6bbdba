//! The image file's operations, each through the I/O seam (`crate::fault`): creating it
//! crash-atomically, opening and locking it, reading and rewriting a header slot, growing
//! it, and writing changed pages back at a checkpoint.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::dirty::PAGE;
use super::header::{self, Layout, Slot, DATA_OFFSET, SLOT_OFFSETS};
use super::ImageError;
use crate::fault::{self, IoOp};

/// The image file's name inside the image directory.
pub(crate) const IMAGE_FILE: &str = "image.kbimg";
/// The file a new image is built in before it is renamed to [`IMAGE_FILE`].
const IMAGE_TMP: &str = "image.kbimg.tmp";
/// The journal's directory inside the image directory.
pub(crate) const JOURNAL_DIR: &str = "journal";

pub(crate) fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> ImageError {
    let path = path.to_path_buf();
    move |source| ImageError::Io {
        path,
        action,
        source,
    }
}

/// The data area's length for `capacity` elements of `elem_size` bytes: whole pages, at
/// least one (a mapping is never empty). `None` if it overflows.
pub(crate) fn area_len(capacity: u64, elem_size: usize) -> Option<usize> {
    let bytes = usize::try_from(capacity)
        .ok()?
        .checked_mul(elem_size)?
        .max(1);
    let len = bytes.checked_next_multiple_of(PAGE)?;
    // The whole file must stay addressable as an `off_t`.
    (len as u64)
        .checked_add(DATA_OFFSET)
        .filter(|&n| n <= i64::MAX as u64)?;
    Some(len)
}

/// Creates the image file in `dir` with `capacity` elements and an empty data area:
/// built under a temporary name (header slot 0 written, space reserved, synced), renamed
/// into place, directory synced. A crash leaves no image or a complete one. Returns the
/// file, open and locked, with its first slot.
pub(crate) fn create(
    dir: &Path,
    layout: Layout,
    area: usize,
    capacity: u64,
) -> Result<(PathBuf, File, Slot), ImageError> {
    let (path, tmp) = (dir.join(IMAGE_FILE), dir.join(IMAGE_TMP));
    let file = fault::run(IoOp::CreateFile(&tmp), || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
    })
    .map_err(io_err(&tmp, "creating the image file"))?;
    lock(&tmp, &file)?;
    let slot = Slot {
        layout,
        generation: 1,
        len: 0,
        capacity,
        checkpoint: 0,
    };
    write_slot(&tmp, &file, 0, &slot)?;
    grow(&tmp, &file, area)?;
    sync(&tmp, &file)?;
    fault::run(IoOp::Rename(&tmp, &path), || fs::rename(&tmp, &path))
        .map_err(io_err(&path, "renaming the new image into place"))?;
    crate::core::fsync_directory(dir).map_err(io_err(dir, "syncing the image directory"))?;
    Ok((path, file, slot))
}

/// Opens the image file in `dir` for reading and writing and takes its lock.
pub(crate) fn open(dir: &Path) -> Result<(PathBuf, File), ImageError> {
    let path = dir.join(IMAGE_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path, "opening the image file"))?;
    lock(&path, &file)?;
    Ok((path, file))
}

/// Takes the image's exclusive lock (an open-file-description lock, as a journal writer's),
/// released by the OS when the file is closed or the process dies.
fn lock(path: &Path, file: &File) -> Result<(), ImageError> {
    match crate::mmap::try_lock_writer(file) {
        Ok(()) => Ok(()),
        Err(fs::TryLockError::WouldBlock) => Err(ImageError::Locked {
            path: path.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io_err(path, "locking the image file")(e)),
    }
}

/// Reads the header and returns its current slot (with its index), checked against
/// `expected`, after checking the file is long enough for the slot's capacity.
pub(crate) fn read_header(
    path: &Path,
    file: &File,
    expected: &Layout,
) -> Result<(usize, Slot), ImageError> {
    let file_len = file
        .metadata()
        .map_err(io_err(path, "reading the image file's length"))?
        .len();
    if file_len < DATA_OFFSET {
        return Err(ImageError::Truncated {
            path: path.to_path_buf(),
            file_len,
            needed: DATA_OFFSET,
        });
    }
    let mut bytes = vec![0u8; DATA_OFFSET as usize];
    file.read_exact_at(&mut bytes, 0)
        .map_err(io_err(path, "reading the image header"))?;
    let (index, slot) = header::read_current(path, &bytes, expected)?;
    let needed = area_len(slot.capacity, expected.elem_size as usize)
        .map(|area| area as u64 + DATA_OFFSET)
        .ok_or_else(|| ImageError::CorruptHeader {
            path: path.to_path_buf(),
            detail: format!("capacity {} is too large to map", slot.capacity),
        })?;
    if file_len < needed {
        return Err(ImageError::Truncated {
            path: path.to_path_buf(),
            file_len,
            needed,
        });
    }
    Ok((index, slot))
}

/// Writes `slot` into header slot `index` (not synced).
pub(crate) fn write_slot(
    path: &Path,
    file: &File,
    index: usize,
    slot: &Slot,
) -> Result<(), ImageError> {
    let at = SLOT_OFFSETS[index];
    let bytes = slot.encode();
    fault::run(IoOp::WriteAt(path, at, bytes.len() as u64), || {
        file.write_all_at(&bytes, at)
    })
    .map_err(io_err(path, "writing an image header slot"))
}

/// Writes `bytes` of the data area at its `offset` (not synced).
pub(crate) fn write_area(
    path: &Path,
    file: &File,
    offset: usize,
    bytes: &[u8],
) -> Result<(), ImageError> {
    let at = DATA_OFFSET + offset as u64;
    fault::run(IoOp::WriteAt(path, at, bytes.len() as u64), || {
        file.write_all_at(bytes, at)
    })
    .map_err(io_err(path, "writing changed pages to the image"))
}

/// `fdatasync` of the image file.
pub(crate) fn sync(path: &Path, file: &File) -> Result<(), ImageError> {
    fault::run(IoOp::SyncFile(path), || file.sync_data())
        .map_err(io_err(path, "syncing the image file"))
}

/// Reserves space for a data area of `area` bytes (`fallocate`): the file only grows, and a
/// full disk is an error here rather than a fault later.
pub(crate) fn grow(path: &Path, file: &File, area: usize) -> Result<(), ImageError> {
    let len = DATA_OFFSET + area as u64;
    fault::run(IoOp::Reserve(path, len), || crate::mmap::reserve(file, len))
        .map_err(io_err(path, "reserving space for the image"))
}
