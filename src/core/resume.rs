//! Taking over a channel whose writer is gone, to seal it where its valid records end: what
//! a journal's recovery does to a crashed tail (docs/FORMAT.md, "Opening a journal for
//! appending").

use std::path::Path;

use super::frame::{self, Binder, TRAILER_RESERVE};
use super::header::HEADER_LEN;
use super::open_reader::read_header;
use super::writer::{ShmWriter, State};
use super::{ChannelError, EncoderHandler};
use crate::mmap::WriteMap;

/// Takes over the channel at `path`, whose writer is gone, positioned at `position` (the end
/// of its valid records, found by the caller), so that it can be sealed there. Fails with
/// [`ChannelError::Locked`] while a writer holds it.
pub(crate) fn resume_for_seal(
    path: &Path,
    position: u64,
) -> Result<ShmWriter<EncoderHandler>, ChannelError> {
    let io_err = |action| {
        move |source| ChannelError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("opening the channel for sealing"))?;
    crate::mmap::try_lock_writer(&file).map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => ChannelError::Locked {
            path: path.to_path_buf(),
        },
        std::fs::TryLockError::Error(source) => io_err("locking the channel")(source),
    })?;
    let (header, _) = read_header(&file, path)?;
    let limit = header.capacity() - TRAILER_RESERVE;
    if position > limit || !position.is_multiple_of(frame::RECORD_ALIGN) {
        return Err(ChannelError::InvalidConfig {
            path: path.to_path_buf(),
            reason: format!("cannot seal at offset {position}"),
        });
    }
    let map = WriteMap::map(&file, header.file_len() as usize)
        .map_err(io_err("mapping the channel for sealing"))?;
    // The word at the cut may hold torn bytes of a record that never completed: clear it
    // before the seal's trailer is staged behind it, so that a reader looking now sees the
    // end of the data rather than a header over bytes being rewritten.
    map.store_release(HEADER_LEN + position as usize, 0);
    Ok(ShmWriter {
        map,
        _lock: file,
        path: path.to_path_buf(),
        binder: Binder::new(header.channel_id()),
        position,
        limit,
        synced: 0,
        state: State::Open,
        handler: EncoderHandler,
        pretoucher: None,
        // Only a closing marker is written: no record, so no mark.
        ordinal: 0,
        next_mark: u64::MAX,
        recycled: header.is_recycled(),
        header,
    })
}
