//! Opening a channel for reading: finding its file, checking its header against what
//! this build reads, and whether a writer is still filling it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use super::header::{HeaderDefect, FORMAT_VERSION, HEADER_LEN};
use super::reader::ShmReader;
use super::{storage_path, ChannelError, Header};

/// Opens channel `channel_id` under `root` for reading.
///
/// The header is read and checked (magic, version, checksum, limits, and the file's real
/// length against the capacity) before anything is mapped, so a damaged, hostile or
/// truncated file is an error, never a crash. That holds when the reader opens: a mapped
/// reader (the default [`ReadMode`](super::ReadMode)) gets SIGBUS, which kills the process, if another process
/// shrinks the file afterwards, while a reader in [`ReadMode::Copied`](super::ReadMode::Copied) cannot.
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 77, 4096, 64, 1_000, TickUnit::Millis);
/// let _writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
/// let reader = shm_reader(dir.path(), 77).unwrap();
/// assert_eq!(reader.header(), &header);
/// ```
pub fn shm_reader(root: &Path, channel_id: u64) -> Result<ShmReader, ChannelError> {
    let reader = ShmReader::open(storage_path(root, channel_id))?;
    let found = reader.header().channel_id();
    if found != channel_id {
        return Err(ChannelError::InvalidHeader {
            path: reader.chan.path,
            reason: format!("file is named for channel {channel_id} but its header says {found}"),
        });
    }
    Ok(reader)
}

/// Like [`shm_reader`], but waits for the channel to appear: tries up to `tries` times (at
/// least once), sleeping `duration_millis / tries` milliseconds between tries while the
/// channel does not exist yet. Any other error is returned at once.
///
/// ```
/// use kekbit::core::{try_shm_reader, ChannelError};
/// let dir = tempfile::tempdir().unwrap();
/// let missing = try_shm_reader(dir.path(), 5, 20, 4);
/// assert!(matches!(missing, Err(ChannelError::NotFound { .. })));
/// ```
pub fn try_shm_reader(
    root: &Path,
    channel_id: u64,
    duration_millis: u64,
    tries: u32,
) -> Result<ShmReader, ChannelError> {
    let tries = tries.max(1);
    let pause = Duration::from_millis(duration_millis / u64::from(tries));
    let mut attempt = 1;
    loop {
        match shm_reader(root, channel_id) {
            Err(ChannelError::NotFound { .. }) if attempt < tries => {
                attempt += 1;
                std::thread::sleep(pause);
            }
            other => return other,
        }
    }
}

pub(crate) fn read_header(file: &File, path: &Path) -> Result<(Header, u64), ChannelError> {
    let io_err = |action| {
        move |source| ChannelError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let len = file
        .metadata()
        .map_err(io_err("reading the channel's metadata"))?
        .len();
    let mut buf = [0u8; HEADER_LEN];
    let want = (HEADER_LEN as u64).min(len) as usize;
    file.read_exact_at(&mut buf[..want], 0)
        .map_err(io_err("reading the channel header"))?;
    let header = Header::decode(&buf[..want]).map_err(|defect| {
        let path = path.to_path_buf();
        match defect {
            HeaderDefect::Short { len } => ChannelError::Truncated {
                path,
                len: len as u64,
                expected: HEADER_LEN as u64,
            },
            HeaderDefect::Magic { found } => ChannelError::InvalidMagic { path, found },
            HeaderDefect::Version { found } => ChannelError::UnsupportedVersion {
                path,
                found,
                supported: FORMAT_VERSION,
            },
            HeaderDefect::Checksum { stored, computed } => ChannelError::HeaderChecksumMismatch {
                path,
                stored,
                computed,
            },
            HeaderDefect::Field(reason) => ChannelError::InvalidHeader { path, reason },
        }
    })?;
    if len < header.file_len() {
        return Err(ChannelError::Truncated {
            path: path.to_path_buf(),
            len,
            expected: header.file_len(),
        });
    }
    Ok((header, len))
}

/// Takes the shared lock a reader holds while it maps a channel file, and checks that `path`
/// still names `file`: `false` when the file is being recycled, or was renamed away (pruned
/// and recycled) since it was opened, so that it is no longer what its name said. Either way
/// the channel is gone under that name, as if it had been removed.
pub(super) fn mapping_locked(file: &File, path: &Path) -> Result<bool, ChannelError> {
    use std::os::unix::fs::MetadataExt;
    let locked = crate::mmap::lock_mapping_shared(file).map_err(|source| ChannelError::Io {
        path: path.to_path_buf(),
        action: "locking the channel for reading",
        source,
    })?;
    if locked == crate::mmap::MappingLock::Recycling {
        return Ok(false);
    }
    let (Ok(named), Ok(opened)) = (std::fs::metadata(path), file.metadata()) else {
        return Ok(false);
    };
    Ok(named.dev() == opened.dev() && named.ino() == opened.ino())
}
