//! The snapshot store: whole-state images in a directory, written atomically, the last K
//! kept, read back newest first with damaged ones skipped and reported.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::format::{SnapshotHeader, SNAPSHOT_HEADER_LEN};
use crate::fault::{self, IoOp};

/// Errors of the snapshot store. A damaged snapshot found while loading is not an error but
/// a [`Rejected`] entry: loading falls back to an older one.
///
/// ```
/// use kekbit::snapshot::{SnapshotError, SnapshotStore};
/// let dir = tempfile::tempdir().unwrap();
/// let file = dir.path().join("not-a-dir");
/// std::fs::write(&file, b"x").unwrap();
/// assert!(matches!(SnapshotStore::open(&file, 2), Err(SnapshotError::Io { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A file-system operation failed.
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot asked for would not be kept: the store already holds `keep` snapshots
    /// covering more of the journal, so retention would remove it as soon as it was written.
    /// Nothing was written.
    #[error("{}: snapshot at sequence {sequence} refused: the store keeps {keep} and holds that many newer ones (the oldest of them at sequence {oldest_kept})", dir.display())]
    Outdated {
        /// The store's directory.
        dir: PathBuf,
        /// The sequence number the refused snapshot covers.
        sequence: u64,
        /// The oldest of the `keep` newer snapshots the store holds.
        oldest_kept: u64,
        /// How many snapshots the store keeps.
        keep: usize,
    },
    /// A snapshot file is damaged or not a snapshot.
    #[error("{}: damaged snapshot: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// A snapshot file in the store.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = kekbit::snapshot::SnapshotStore::open(dir.path(), 2).unwrap();
/// let info = store.write(10, b"image").unwrap();
/// assert_eq!((info.sequence, info.body_len), (10, 5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The image covers journal records `[0, sequence)`: restore it, then replay from
    /// `sequence`.
    pub sequence: u64,
    /// The file.
    pub path: PathBuf,
    /// Length of the image (the file's body).
    pub body_len: u64,
}

/// A snapshot that loading skipped, and why.
///
/// ```
/// use kekbit::snapshot::SnapshotStore;
/// let dir = tempfile::tempdir().unwrap();
/// let store = SnapshotStore::open(dir.path(), 2).unwrap();
/// store.write(1, b"old").unwrap();
/// let newest = store.write(2, b"new").unwrap();
/// std::fs::write(&newest.path, b"garbage").unwrap();
/// let (loaded, rejected) = store.load_newest(|_, body| Ok(body.to_vec())).unwrap();
/// assert_eq!(loaded.unwrap().1, b"old");
/// assert_eq!(rejected[0].path, newest.path);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected {
    /// The snapshot file.
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
}

/// Whole-state images of an application, one file each, in a directory.
///
/// Writing is atomic: the image goes to a temporary file, which is synced, renamed into
/// place, and the directory synced; after each write only the newest `keep` snapshots stay.
/// Each file has a checksummed header (magic, version, the sequence number the image
/// covers, the body's length and checksum), so a damaged image is detected, skipped and
/// reported when loading.
///
/// ```
/// use kekbit::snapshot::SnapshotStore;
/// let dir = tempfile::tempdir().unwrap();
/// let store = SnapshotStore::open(dir.path(), 2).unwrap();
/// for seq in [10, 20, 30] {
///     store.write(seq, format!("state at {seq}").as_bytes()).unwrap();
/// }
/// let kept: Vec<u64> = store.list().unwrap().iter().map(|s| s.sequence).collect();
/// assert_eq!(kept, [30, 20]); // newest first; the oldest was removed
/// ```
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    keep: usize,
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> SnapshotError {
    let path = path.to_path_buf();
    move |source| SnapshotError::Io {
        path,
        action,
        source,
    }
}

fn file_name(sequence: u64) -> String {
    format!("snapshot-{sequence:020}.ksnap")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".ksnap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl SnapshotStore {
    /// Opens (creating if needed) the store in `dir`, keeping the newest `keep` snapshots
    /// (at least 1). Removes every temporary file in the directory: those of writes that never
    /// completed, and that of a write in progress in another process, which then fails (one
    /// process at a time writes to a store; [`PrevalentStore`](crate::prevalence::PrevalentStore)
    /// holds its journal's writer lock while it does).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = kekbit::snapshot::SnapshotStore::open(dir.path().join("snapshots"), 3).unwrap();
    /// assert!(store.list().unwrap().is_empty());
    /// ```
    pub fn open(dir: impl AsRef<Path>, keep: usize) -> Result<SnapshotStore, SnapshotError> {
        let dir = dir.as_ref().to_path_buf();
        crate::core::make_dir_durable(&dir).map_err(|(path, action, source)| {
            SnapshotError::Io {
                path,
                action,
                source,
            }
        })?;
        let entries = fs::read_dir(&dir).map_err(io_err(&dir, "listing snapshots"))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".snapshot-") && name.contains(".tmp-") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(SnapshotStore {
            dir,
            keep: keep.max(1),
        })
    }

    /// The store's directory.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = kekbit::snapshot::SnapshotStore::open(dir.path(), 1).unwrap();
    /// assert_eq!(store.dir(), dir.path());
    /// ```
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes an image covering journal records `[0, sequence)`, atomically and durably,
    /// then removes all but the newest `keep` snapshots.
    ///
    /// A snapshot that would not be among the newest `keep` (the store already holds `keep`
    /// snapshots with a higher sequence number) is refused with [`SnapshotError::Outdated`]
    /// before anything is written: retention would remove it at once. A snapshot with the
    /// same sequence number as an existing one replaces it.
    ///
    /// Steps (each one's crash case is in docs/FORMAT.md, "Writing a snapshot"): write header
    /// and body to a temporary file, `fsync` it, rename it to its final name, `fsync` the
    /// directory, remove old snapshots, `fsync` the directory.
    ///
    /// ```
    /// use kekbit::snapshot::{SnapshotError, SnapshotStore};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = SnapshotStore::open(dir.path(), 1).unwrap();
    /// let info = store.write(5, b"five records in").unwrap();
    /// assert!(info.path.ends_with("snapshot-00000000000000000005.ksnap"));
    /// // Keeping one snapshot, an older one than 5 would be removed at once.
    /// assert!(matches!(store.write(3, b"three"), Err(SnapshotError::Outdated { oldest_kept: 5, .. })));
    /// ```
    pub fn write(&self, sequence: u64, body: &[u8]) -> Result<SnapshotInfo, SnapshotError> {
        let newer: Vec<u64> = self
            .list()?
            .iter()
            .map(|s| s.sequence)
            .filter(|&s| s > sequence)
            .collect();
        if newer.len() >= self.keep {
            return Err(SnapshotError::Outdated {
                dir: self.dir.clone(),
                sequence,
                oldest_kept: newer[self.keep - 1],
                keep: self.keep,
            });
        }
        let path = self.dir.join(file_name(sequence));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = self.dir.join(format!(
            ".{}.tmp-{}-{nanos}",
            file_name(sequence),
            std::process::id()
        ));
        let written = (|| {
            let mut file = fault::run(IoOp::CreateFile(&tmp), || {
                OpenOptions::new().write(true).create_new(true).open(&tmp)
            })
            .map_err(io_err(&tmp, "creating a snapshot"))?;
            let header = SnapshotHeader::for_body(sequence, body);
            file.write_all(&header.encode())
                .and_then(|()| file.write_all(body))
                .map_err(io_err(&tmp, "writing a snapshot"))?;
            fault::run(IoOp::SyncFile(&tmp), || file.sync_all())
                .map_err(io_err(&tmp, "syncing a snapshot"))?;
            fault::run(IoOp::Rename(&tmp, &path), || fs::rename(&tmp, &path))
                .map_err(io_err(&path, "renaming a snapshot into place"))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.sync_dir()?;
        self.retain()?;
        Ok(SnapshotInfo {
            sequence,
            path,
            body_len: body.len() as u64,
        })
    }

    /// The snapshots in the store, newest first (not yet checked: see
    /// [`read`](SnapshotStore::read)).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = kekbit::snapshot::SnapshotStore::open(dir.path(), 5).unwrap();
    /// store.write(1, b"a").unwrap();
    /// store.write(2, b"b").unwrap();
    /// assert_eq!(store.list().unwrap()[0].sequence, 2);
    /// ```
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let entries = fs::read_dir(&self.dir).map_err(io_err(&self.dir, "listing snapshots"))?;
        let mut found: Vec<SnapshotInfo> = entries
            .flatten()
            .filter_map(|e| {
                let sequence = parse_name(&e.file_name().to_string_lossy())?;
                let len = e.metadata().ok()?.len();
                Some(SnapshotInfo {
                    sequence,
                    path: e.path(),
                    body_len: len.saturating_sub(SNAPSHOT_HEADER_LEN as u64),
                })
            })
            .collect();
        found.sort_by_key(|s| std::cmp::Reverse(s.sequence));
        Ok(found)
    }

    /// Reads and checks one snapshot: header (magic, version, checksum), that the header's
    /// sequence number matches the file name, the body's length and checksum. Returns the
    /// body. Never allocates more than the file's size.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = kekbit::snapshot::SnapshotStore::open(dir.path(), 1).unwrap();
    /// let info = store.write(3, b"body").unwrap();
    /// assert_eq!(store.read(&info).unwrap(), b"body");
    /// ```
    pub fn read(&self, info: &SnapshotInfo) -> Result<Vec<u8>, SnapshotError> {
        let damaged = |reason: String| SnapshotError::Damaged {
            path: info.path.clone(),
            reason,
        };
        let mut file = File::open(&info.path).map_err(io_err(&info.path, "opening a snapshot"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_err(&info.path, "reading a snapshot"))?;
        let header = SnapshotHeader::decode(&bytes).map_err(damaged)?;
        if header.sequence != info.sequence {
            return Err(damaged(format!(
                "header covers sequence {}, the file name says {}",
                header.sequence, info.sequence
            )));
        }
        let body = &bytes[SNAPSHOT_HEADER_LEN..];
        if body.len() as u64 != header.body_len {
            return Err(damaged(format!(
                "body is {} bytes, the header says {}",
                body.len(),
                header.body_len
            )));
        }
        let computed = crc32fast::hash(body);
        if computed != header.body_checksum {
            return Err(damaged(format!(
                "body checksum mismatch (stored {:#010x}, computed {computed:#010x})",
                header.body_checksum
            )));
        }
        bytes.drain(..SNAPSHOT_HEADER_LEN);
        Ok(bytes)
    }

    /// Loads the newest snapshot that reads back intact and that `accept` takes (for
    /// instance, decodes), falling back to older ones; returns it with the ones skipped and
    /// why. `Ok((None, _))` when none is usable.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = kekbit::snapshot::SnapshotStore::open(dir.path(), 3).unwrap();
    /// store.write(1, b"1").unwrap();
    /// store.write(2, b"two").unwrap();
    /// // Refuse images that are not one byte long: the newest is skipped.
    /// let (loaded, rejected) = store
    ///     .load_newest(|_, body| if body.len() == 1 { Ok(body[0]) } else { Err("too long".into()) })
    ///     .unwrap();
    /// assert_eq!(loaded.map(|(info, b)| (info.sequence, b)), Some((1, b'1')));
    /// assert_eq!(rejected[0].reason, "too long");
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn load_newest<T>(
        &self,
        mut accept: impl FnMut(&SnapshotInfo, &[u8]) -> Result<T, String>,
    ) -> Result<(Option<(SnapshotInfo, T)>, Vec<Rejected>), SnapshotError> {
        let mut rejected = Vec::new();
        for info in self.list()? {
            let outcome = match self.read(&info) {
                Ok(body) => accept(&info, &body),
                Err(SnapshotError::Damaged { reason, .. }) => Err(reason),
                Err(e) => return Err(e),
            };
            match outcome {
                Ok(value) => return Ok((Some((info, value)), rejected)),
                Err(reason) => rejected.push(Rejected {
                    path: info.path.clone(),
                    reason,
                }),
            }
        }
        Ok((None, rejected))
    }

    /// Sets a snapshot file aside: renames it to `<name>.rejected` (replacing an earlier file
    /// of that name), so that it is no longer listed, kept or loaded, but stays for
    /// inspection.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = kekbit::snapshot::SnapshotStore::open(dir.path(), 2).unwrap();
    /// let info = store.write(4, b"suspect").unwrap();
    /// store.quarantine(&info.path).unwrap();
    /// assert!(store.list().unwrap().is_empty());
    /// assert!(dir.path().join("snapshot-00000000000000000004.ksnap.rejected").exists());
    /// ```
    pub fn quarantine(&self, path: &Path) -> Result<(), SnapshotError> {
        let mut target = path.as_os_str().to_owned();
        target.push(".rejected");
        let target = PathBuf::from(target);
        fault::run(IoOp::Rename(path, &target), || fs::rename(path, &target))
            .map_err(io_err(path, "setting a rejected snapshot aside"))?;
        self.sync_dir()
    }

    /// Removes all but the newest `keep` snapshots.
    fn retain(&self) -> Result<(), SnapshotError> {
        let all = self.list()?;
        if all.len() <= self.keep {
            return Ok(());
        }
        for old in &all[self.keep..] {
            fault::run(IoOp::Remove(&old.path), || fs::remove_file(&old.path))
                .map_err(io_err(&old.path, "removing an old snapshot"))?;
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> Result<(), SnapshotError> {
        crate::core::fsync_directory(&self.dir)
            .map_err(io_err(&self.dir, "syncing the snapshot directory"))
    }
}
