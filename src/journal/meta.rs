//! A small crash-atomic metadata file: two checksummed slots written alternately, each
//! write a `pwrite` of one slot and an `fdatasync`. The layout and the crash cases are in
//! `docs/FORMAT.md` ("Metadata file").

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::fault::{self, IoOp};
use crate::le;

/// Bytes of one slot; the file holds two. A slot is a page of its own, so that writing one
/// never rewrites a page (or a sector) of the other.
pub const META_SLOT_LEN: usize = 4096;
/// Bytes of a slot's header: magic, generation, value length, checksum.
pub const META_SLOT_HEADER_LEN: usize = 24;
/// The largest value a [`MetaFile`] holds.
pub const MAX_META_LEN: usize = META_SLOT_LEN - META_SLOT_HEADER_LEN;
/// A slot's first eight bytes.
pub const META_MAGIC: [u8; 8] = *b"KEKMETA1";

/// Field offsets in a slot (name, offset, size), as `docs/FORMAT.md` gives them.
#[cfg(test)]
pub(crate) const META_FIELDS: [(&str, usize, usize); 5] = [
    ("magic", 0, 8),
    ("generation", 8, 8),
    ("len", 16, 4),
    ("checksum", 20, 4),
    ("value", 24, MAX_META_LEN),
];

/// Errors of a [`MetaFile`].
///
/// ```
/// use kekbit::journal::{MetaError, MetaFile, MAX_META_LEN};
/// let dir = tempfile::tempdir().unwrap();
/// let mut meta = MetaFile::open(dir.path().join("vote")).unwrap();
/// assert!(matches!(meta.store(&vec![0; MAX_META_LEN + 1]), Err(MetaError::TooLarge { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// A file-system operation failed.
    #[error("{}: {action} failed: {source}", path.display())]
    Io {
        /// The metadata file (or its directory).
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Neither slot holds a valid value: the file is damaged (a crash damages at most the
    /// slot being written; the other keeps the last value stored).
    #[error("{}: metadata file damaged: {reason}", path.display())]
    Damaged {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong with each slot.
        reason: String,
    },
    /// The value is longer than [`MAX_META_LEN`]; nothing was written.
    #[error("{}: metadata value of {len} bytes exceeds the maximum {max}", path.display())]
    TooLarge {
        /// The metadata file.
        path: PathBuf,
        /// The value's length.
        len: usize,
        /// The maximum ([`MAX_META_LEN`]).
        max: usize,
    },
    /// An earlier store failed to sync: the file refuses stores until reopened, as the
    /// kernel may have dropped the page it failed to write.
    #[error("{}: metadata file poisoned by an earlier failed sync", path.display())]
    Poisoned {
        /// The metadata file.
        path: PathBuf,
    },
}

/// A small value (up to [`MAX_META_LEN`] bytes) replaced atomically and durably: after a
/// crash or power loss at any point, [`open`](MetaFile::open) finds the last value whose
/// [`store`](MetaFile::store) returned `Ok`, or the one being stored; never a mix or a
/// damaged value. Each store costs one `pwrite` and one `fdatasync`, no rename and no
/// directory sync. For a vote, a commit index, a last purged position beside a journal.
///
/// ```
/// use kekbit::journal::MetaFile;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("raft.meta");
/// let mut meta = MetaFile::open(&path).unwrap();
/// assert_eq!(meta.value(), b"");
/// meta.store(b"term 3, voted for 2").unwrap();
/// meta.store(b"term 4, voted for 1").unwrap();
/// drop(meta);
/// let meta = MetaFile::open(&path).unwrap();
/// assert_eq!(meta.value(), b"term 4, voted for 1");
/// assert_eq!(meta.generation(), 2);
/// ```
#[derive(Debug)]
pub struct MetaFile {
    path: PathBuf,
    file: File,
    generation: u64,
    value: Vec<u8>,
    poisoned: bool,
}

impl MetaFile {
    /// Opens the metadata file at `path`, creating it durably (both slots holding the empty
    /// value at generation 0: written to a temporary file, synced, renamed, directory synced)
    /// if it does not exist. Fails with [`MetaError::Damaged`] if neither slot is valid.
    pub fn open(path: impl AsRef<Path>) -> Result<MetaFile, MetaError> {
        let path = path.as_ref().to_path_buf();
        if !path.exists() {
            create(&path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path, "opening the metadata file"))?;
        let mut bytes = vec![0u8; 2 * META_SLOT_LEN];
        let read = read_full(&file, &mut bytes).map_err(io_err(&path, "reading the metadata"))?;
        let slots = [
            decode(&bytes[..read.min(META_SLOT_LEN)]),
            decode(bytes.get(META_SLOT_LEN..read).unwrap_or(&[])),
        ];
        let best = match slots {
            [Ok(a), Ok(b)] => Some(if b.0 > a.0 { b } else { a }),
            [Ok(a), Err(_)] => Some(a),
            [Err(_), Ok(b)] => Some(b),
            [Err(a), Err(b)] => {
                return Err(MetaError::Damaged {
                    path,
                    reason: format!("slot 0: {a}; slot 1: {b}"),
                })
            }
        };
        let (generation, value) = best.unwrap_or_default();
        Ok(MetaFile {
            path,
            file,
            generation,
            value,
            poisoned: false,
        })
    }

    /// The value last stored (empty before the first store).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// How many stores the value went through (0 before the first).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut meta = kekbit::journal::MetaFile::open(dir.path().join("m")).unwrap();
    /// meta.store(b"x").unwrap();
    /// assert_eq!(meta.generation(), 1);
    /// ```
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The file's path.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let meta = kekbit::journal::MetaFile::open(dir.path().join("m")).unwrap();
    /// assert_eq!(meta.path(), dir.path().join("m"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the value durably: returns once it is on storage. Writes the slot the
    /// current value is not in, with the next generation, then `fdatasync`s. If the sync
    /// fails the file is poisoned (every later store fails); reopening it then finds the old
    /// value or the new one.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut meta = kekbit::journal::MetaFile::open(dir.path().join("m")).unwrap();
    /// meta.store(b"committed 7").unwrap();
    /// assert_eq!(meta.value(), b"committed 7");
    /// ```
    pub fn store(&mut self, value: &[u8]) -> Result<(), MetaError> {
        if value.len() > MAX_META_LEN {
            return Err(MetaError::TooLarge {
                path: self.path.clone(),
                len: value.len(),
                max: MAX_META_LEN,
            });
        }
        if self.poisoned {
            return Err(MetaError::Poisoned {
                path: self.path.clone(),
            });
        }
        let generation = self.generation + 1;
        let slot = encode(generation, value);
        let offset = (generation % 2) * META_SLOT_LEN as u64;
        fault::run(IoOp::WriteAt(&self.path, offset, slot.len() as u64), || {
            self.file.write_all_at(&slot, offset)
        })
        .map_err(io_err(&self.path, "writing a metadata slot"))?;
        let synced = fault::run(IoOp::SyncFile(&self.path), || self.file.sync_data());
        if let Err(source) = synced {
            self.poisoned = true;
            return Err(MetaError::Io {
                path: self.path.clone(),
                action: "syncing the metadata file",
                source,
            });
        }
        self.generation = generation;
        self.value = value.to_vec();
        Ok(())
    }
}

/// Creates the file with both slots at generation 0 (the empty value): a temporary file,
/// synced, renamed into place, its directory synced. A crash before the rename leaves only
/// the temporary, replaced by the next creation.
fn create(path: &Path) -> Result<(), MetaError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let mut bytes = encode(0, b"");
    bytes.extend_from_slice(&encode(0, b""));
    fault::run(IoOp::CreateFile(&temp), || {
        let file = File::create(&temp)?;
        file.write_all_at(&bytes, 0)?;
        Ok(file)
    })
    .and_then(|file| fault::run(IoOp::SyncFile(&temp), || file.sync_all()))
    .map_err(io_err(&temp, "creating the metadata file"))?;
    fault::run(IoOp::Rename(&temp, path), || fs::rename(&temp, path))
        .map_err(io_err(path, "renaming the new metadata file into place"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    crate::core::fsync_directory(dir).map_err(io_err(dir, "syncing the metadata directory"))
}

/// A slot holding `value` at `generation`, `META_SLOT_LEN` bytes.
fn encode(generation: u64, value: &[u8]) -> Vec<u8> {
    let mut slot = vec![0u8; META_SLOT_LEN];
    slot[0..8].copy_from_slice(&META_MAGIC);
    le::put_u64(&mut slot, 8, generation);
    le::put_u32(&mut slot, 16, value.len() as u32);
    slot[24..24 + value.len()].copy_from_slice(value);
    let sum = checksum(&slot[..20], value);
    le::put_u32(&mut slot, 20, sum);
    slot
}

/// CRC-32 of the header's first 20 bytes and the value.
fn checksum(head: &[u8], value: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(head);
    hasher.update(value);
    hasher.finalize()
}

/// The generation and value of a slot, or why it is not valid.
fn decode(slot: &[u8]) -> Result<(u64, Vec<u8>), String> {
    if slot.len() < META_SLOT_LEN {
        return Err(format!("{} of {META_SLOT_LEN} bytes", slot.len()));
    }
    if slot[0..8] != META_MAGIC {
        return Err("bad magic".into());
    }
    let generation = le::get_u64(slot, 8);
    let len = le::get_u32(slot, 16) as usize;
    if len > MAX_META_LEN {
        return Err(format!("length {len} exceeds {MAX_META_LEN}"));
    }
    let stored = le::get_u32(slot, 20);
    let value = &slot[24..24 + len];
    if checksum(&slot[..20], value) != stored {
        return Err(format!("checksum mismatch (generation {generation})"));
    }
    Ok((generation, value.to_vec()))
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut read = 0;
    while read < buf.len() {
        match file.read_at(&mut buf[read..], read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    Ok(read)
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> MetaError + 'a {
    move |source| MetaError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_slot_leaves_the_other_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        let mut meta = MetaFile::open(&path).unwrap();
        meta.store(b"one").unwrap();
        meta.store(b"two").unwrap();
        drop(meta);
        // Generation 3 would go to slot 1: tear it (half written over generation 1).
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let torn = encode(3, b"three");
        file.write_all_at(&torn[..22], META_SLOT_LEN as u64)
            .unwrap();
        let meta = MetaFile::open(&path).unwrap();
        assert_eq!((meta.generation(), meta.value()), (2, &b"two"[..]));
        // Both slots damaged: an error naming each, never a guess.
        file.write_all_at(&[0xff; 2], 24).unwrap();
        match MetaFile::open(&path) {
            Err(MetaError::Damaged { reason, .. }) => {
                assert!(reason.contains("slot 0: checksum") && reason.contains("slot 1:"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_short_file_is_damaged_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        fs::write(&path, &encode(1, b"x")[..100]).unwrap();
        assert!(matches!(
            MetaFile::open(&path),
            Err(MetaError::Damaged { .. })
        ));
        // A hostile length is refused, not followed.
        let mut slot = encode(1, b"x");
        slot[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&slot).unwrap_err().contains("exceeds"));
    }
}
