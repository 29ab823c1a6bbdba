//! Creating a channel file without ever exposing a half-made one, and naming channel files.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{ChannelError, Header};
use crate::fault::{self, IoOp};

/// Returns the path of the file that holds channel `channel_id` under the folder `root`:
/// `root/<channel id as 16 hex digits>.kekbit`.
///
/// ```
/// use kekbit::core::storage_path;
/// use std::path::Path;
/// assert_eq!(storage_path(Path::new("/tmp/k"), 255), Path::new("/tmp/k/00000000000000ff.kekbit"));
/// ```
pub fn storage_path(root: &Path, channel_id: u64) -> PathBuf {
    root.join(format!("{channel_id:016x}.kekbit"))
}

pub(super) fn io_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(io::Error) -> ChannelError + 'a {
    move |source| ChannelError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Creates the channel described by `header` under `root` and returns its file, open for
/// reading and writing and exclusively locked, with the path it was published under.
///
/// Steps (each one's crash case is in docs/FORMAT.md, "Creating a channel"): create a
/// temporary file, lock it, reserve the whole file with fallocate, write the header, sync the
/// file, hard-link it under its final name (which fails instead of replacing an existing
/// channel), remove the temporary name, sync the directory.
pub(crate) fn create_channel(
    root: &Path,
    header: &Header,
) -> Result<(File, PathBuf), ChannelError> {
    create_dir_durable(root)?;
    let path = free_path(root, header)?;
    let name = file_name(&path);
    remove_stale_temporaries(root, &name);
    let tmp = temporary_path(root, &name, "tmp");
    let file = fault::run(IoOp::CreateFile(&tmp), || {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
    })
    .map_err(io_err(&tmp, "creating the temporary channel file"))?;
    if let Err(e) = prepare(&file, &tmp, header) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    name_durably(root, &tmp, &path)?;
    Ok((file, path))
}

/// The path of the channel `header` describes under `root`, once its limits are checked and
/// the name is found free.
pub(super) fn free_path(root: &Path, header: &Header) -> Result<PathBuf, ChannelError> {
    let path = storage_path(root, header.channel_id());
    header
        .check_limits()
        .map_err(|reason| ChannelError::InvalidConfig {
            path: path.clone(),
            reason,
        })?;
    if path.exists() {
        return Err(existing(&path));
    }
    Ok(path)
}

/// A temporary name in `root` for a file that is to become (or was) the channel file `name`:
/// `.<name>.<kind>-<pid>-<nanoseconds>`, a name readers never open (`kind` is `tmp` for a
/// channel being created, `recycle` for a pruned segment kept to be recycled).
pub(super) fn temporary_path(root: &Path, name: &str, kind: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    root.join(format!(".{name}.{kind}-{}-{nanos}", std::process::id()))
}

/// The last steps of making a channel file (created or recycled, complete under its
/// temporary name `tmp`, whose lock the caller holds): link it under its final name `path`
/// (failing if that is taken), remove the temporary name, sync the directory. On failure
/// no name of it is left.
pub(super) fn name_durably(root: &Path, tmp: &Path, path: &Path) -> Result<(), ChannelError> {
    if let Err(e) = publish(tmp, path) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    let _ = fault::run(IoOp::Remove(tmp), || fs::remove_file(tmp));
    if let Err(e) = sync_directory(root) {
        // The channel is not durably named: withdraw the name (this creator still holds the
        // file's lock, so no writer uses it) so that creating it again can succeed.
        let _ = fault::run(IoOp::Remove(path), || fs::remove_file(path));
        return Err(e);
    }
    Ok(())
}

/// Lock, reserve, write the header, sync: everything done to the temporary file.
fn prepare(file: &File, tmp: &Path, header: &Header) -> Result<(), ChannelError> {
    crate::mmap::try_lock_writer(file).map_err(|e| match e {
        TryLockError::WouldBlock => ChannelError::Locked {
            path: tmp.to_path_buf(),
        },
        TryLockError::Error(source) => io_err(tmp, "locking the channel file")(source),
    })?;
    fault::run(IoOp::Reserve(tmp, header.file_len()), || {
        crate::mmap::reserve(file, header.file_len())
    })
    .map_err(io_err(tmp, "reserving space for the channel"))?;
    file.write_all_at(&header.encode(), 0)
        .map_err(io_err(tmp, "writing the channel header"))?;
    fault::run(IoOp::SyncFile(tmp), || file.sync_all())
        .map_err(io_err(tmp, "syncing the new channel file"))
}

/// Gives the prepared file its final name, failing if the name is taken.
pub(super) fn publish(tmp: &Path, path: &Path) -> Result<(), ChannelError> {
    match fault::run(IoOp::Link(tmp, path), || fs::hard_link(tmp, path)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(existing(path)),
        Err(e) => Err(io_err(path, "publishing the channel file")(e)),
    }
}

/// The error for a channel file that already exists: locked by a live writer, or not.
pub(super) fn existing(path: &Path) -> ChannelError {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) => return io_err(path, "opening the existing channel")(e),
    };
    match crate::mmap::lock_held(&file) {
        Ok(false) => ChannelError::AlreadyExists {
            path: path.to_path_buf(),
        },
        Ok(true) => ChannelError::Locked {
            path: path.to_path_buf(),
        },
        Err(e) => io_err(path, "checking the channel's lock")(e),
    }
}

/// Removes temporary files of this channel left by crashed creators (unlocked ones only).
/// Best effort: a failure here leaves litter, never a wrong channel.
fn remove_stale_temporaries(root: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        if let Ok(f) = File::open(entry.path()) {
            if f.try_lock().is_ok() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Makes the records of the channel at `path` durable up to data-area offset `position`
/// and records it in the header's durable watermark: syncs the file, writes the watermark,
/// syncs again (so that the watermark never reaches storage before the data it vouches
/// for). For a channel no writer holds any more, such as a sealed journal segment that was
/// never synced; the watermark only ever grows.
pub(crate) fn mark_durable(path: &Path, position: u64) -> Result<(), ChannelError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path, "opening the channel to sync it"))?;
    fault::run(IoOp::SyncFile(path), || file.sync_data())
        .map_err(io_err(path, "syncing the channel"))?;
    // Written and synced even when the page cache already shows it: storage may not.
    let offset = super::header::OFF_DURABLE_WATERMARK as u64;
    file.write_all_at(&position.to_le_bytes(), offset)
        .map_err(io_err(path, "writing the durable watermark"))?;
    fault::run(IoOp::SyncFile(path), || file.sync_data())
        .map_err(io_err(path, "syncing the durable watermark"))
}

/// The live `voided_from` word of the channel at `path` (a sealed journal segment whose
/// records a truncation voids), mapped shared so that a store reaches readers in every process
/// whole. Opened before anything changes, so that setting it cannot fail half-way through a
/// truncation. Not synced: the word is a hint the chain confirms (docs/FORMAT.md, "Truncating
/// the tail"). Holds the readers' shared lock on the mapping byte, as a reader does, so that a
/// prune running meanwhile cannot recycle the segment (docs/FORMAT.md, "Recycled segments")
/// while the hint may still store into its header.
pub(crate) struct VoidedHint {
    map: crate::mmap::WriteMap,
    _locked: File,
}

impl VoidedHint {
    /// Maps the header of the segment at `path`; `NotFound` if it is being recycled, or was
    /// renamed away to be, since it was listed.
    pub(crate) fn open(path: &Path) -> Result<VoidedHint, ChannelError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path, "opening the channel to mark voided records"))?;
        if !super::open_reader::mapping_locked(&file, path)? {
            return Err(ChannelError::NotFound {
                path: path.to_path_buf(),
            });
        }
        let map = crate::mmap::WriteMap::map(&file, super::header::HEADER_LEN)
            .map_err(io_err(path, "mapping the channel's header"))?;
        Ok(VoidedHint { map, _locked: file })
    }

    /// Release-stores `value`: 0, or the data-area offset plus one of the first voided record.
    pub(crate) fn store(&self, value: u64) {
        self.map
            .store_release(super::header::OFF_VOIDED_FROM, value);
    }
}

/// Creates `dir` and its missing parents, then syncs the parent of each directory created,
/// so that the new directories survive a power loss (a name is durable only once its
/// directory is synced).
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), ChannelError> {
    make_dir_durable(dir).map_err(|(path, action, source)| ChannelError::Io {
        path,
        action,
        source,
    })
}

/// [`create_dir_durable`] for callers with their own error type: a failure is the path
/// concerned, what was being done and the I/O error.
pub(crate) fn make_dir_durable(dir: &Path) -> Result<(), (PathBuf, &'static str, io::Error)> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path.to_path_buf());
        at = path.parent();
    }
    fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), "creating the directory", e))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            fsync_directory(parent).map_err(|e| {
                (
                    parent.to_path_buf(),
                    "syncing the parent of a new directory",
                    e,
                )
            })?;
        }
    }
    Ok(())
}

/// Makes the directory's entries (new names, removals) durable.
pub(crate) fn sync_directory(dir: &Path) -> Result<(), ChannelError> {
    fsync_directory(dir).map_err(io_err(dir, "syncing the channel directory"))
}

/// `fsync` of the directory `dir` (through the I/O seam), so that the names created or
/// removed in it are durable; the caller names the error.
pub(crate) fn fsync_directory(dir: &Path) -> std::io::Result<()> {
    fault::run(IoOp::SyncDir(dir), || {
        File::open(dir).and_then(|d| d.sync_all())
    })
}
