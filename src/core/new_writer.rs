//! Creating a channel's writer: a new channel ([`shm_writer`]), or a journal segment
//! prepared ahead of need, new or recycled ([`shm_writer_pending`]), with the prefaulting
//! each asks for.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::create::create_channel;
use super::frame::{Binder, TRAILER_RESERVE};
use super::header::HEADER_LEN;
use super::pretouch::{Pretoucher, AHEAD};
use super::recycle::{recycle_channel, Pooled};
use super::writer::{ShmWriter, State};
use super::{ChannelError, EncoderHandler, Handler, Header};
use crate::mmap::WriteMap;

/// Where the first mark of a channel with this header goes: block 0 needs none.
fn first_mark(header: &Header) -> u64 {
    match header.mark_shift() {
        0 => u64::MAX,
        shift => 1 << shift,
    }
}

/// Creates a channel under `root` as described by `header` (its file is
/// [`storage_path`](super::storage_path)`(root, header.channel_id())`) and returns its writer,
/// which stages every record through `handler`.
///
/// The channel appears under its name only once complete: space reserved on storage, header
/// written and synced. Fails with [`ChannelError::Locked`] if a live writer holds the channel,
/// [`ChannelError::AlreadyExists`] if the channel exists and its writer is gone, and
/// [`ChannelError::Io`] of kind `StorageFull` if the disk cannot hold it.
///
/// ```
/// use kekbit::core::{shm_writer, ChannelError, EncoderHandler, Header, TickUnit};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 9, 1 << 16, 1024, 1_000, TickUnit::Millis);
/// let writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
/// let second = shm_writer(dir.path(), &header, EncoderHandler);
/// assert!(matches!(second, Err(ChannelError::Locked { .. })));
/// # drop(writer);
/// ```
pub fn shm_writer<H: Handler>(
    root: &Path,
    header: &Header,
    handler: H,
) -> Result<ShmWriter<H>, ChannelError> {
    let mut writer = create_writer(root, header, handler)?;
    let (from, end) = (HEADER_LEN as u64, header.file_len());
    writer.pretoucher = Pretoucher::start(
        writer.map.populator(),
        writer.path.clone(),
        from,
        end,
        AHEAD,
        true,
        true,
    );
    Ok(writer)
}

/// Creates the channel and its writer, without a prefaulting thread.
fn create_writer<H: Handler>(
    root: &Path,
    header: &Header,
    handler: H,
) -> Result<ShmWriter<H>, ChannelError> {
    let (file, path) = create_channel(root, header)?;
    writer_over(file, path, header, handler)
}

/// The writer of the channel `header` describes, whose file, just made, is `file` (locked)
/// under `path`.
fn writer_over<H: Handler>(
    file: File,
    path: PathBuf,
    header: &Header,
    handler: H,
) -> Result<ShmWriter<H>, ChannelError> {
    let map =
        WriteMap::map(&file, header.file_len() as usize).map_err(|source| ChannelError::Io {
            path: path.clone(),
            action: "mapping the channel",
            source,
        })?;
    Ok(ShmWriter {
        map,
        _lock: file,
        binder: Binder::new(header.channel_id()),
        position: 0,
        limit: header.capacity() - TRAILER_RESERVE,
        synced: 0,
        state: State::Open,
        handler,
        pretoucher: None,
        path,
        ordinal: 0,
        next_mark: first_mark(header),
        recycled: header.is_recycled(),
        header: header.clone(),
    })
}

/// How much of a pending channel is mapped writable (prefaulted), and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Populate {
    /// The first `now` bytes of the data area before the channel is returned; from its
    /// [`link`](ShmWriter::link) on, a helper thread stays up to `window` bytes ahead of the
    /// writer.
    Ahead {
        /// Bytes mapped at once.
        now: u64,
        /// How far ahead of the writer the helper thread maps, once linked.
        window: u64,
    },
    /// The whole data area before the channel is returned; no helper thread (unless the
    /// kernel refuses to prefault, in which case one maps ahead as with `Ahead`).
    Whole,
}

/// Creates a pending channel: a journal segment prepared ahead of need, linked later with
/// [`ShmWriter::link`], and prefaulted as `populate` says. Prefaulting is best effort: a
/// channel that could not be prefaulted still works.
/// With `recycle`, the channel is made of that file (docs/FORMAT.md, "Recycled segments")
/// instead of a new one, and marked recycled. With `will_sync`, the writer's mapping caches
/// its pages one page each from the start (`WriteMap::cache_by_page`), as it would from its
/// first sync on. With `write_behind`, its helper thread writes back the pages the writer
/// has moved past while it does not sync (see `core::pretouch`).
pub(crate) fn shm_writer_pending(
    root: &Path,
    header: &Header,
    populate: Populate,
    recycle: Option<Pooled>,
    will_sync: bool,
    write_behind: bool,
) -> Result<ShmWriter<EncoderHandler>, ChannelError> {
    let pending = header.clone().into_pending();
    let mut writer = match recycle {
        None => create_writer(root, &pending, EncoderHandler)?,
        Some(pooled) => {
            let recycled = pending.into_recycled();
            let (file, path) = recycle_channel(root, &recycled, pooled)?;
            writer_over(file, path, &recycled, EncoderHandler)?
        }
    };
    if will_sync {
        writer.map.cache_by_page();
    }
    let (now, window) = match populate {
        Populate::Whole => {
            if writer.prefault().is_ok() {
                return Ok(writer);
            }
            (0, AHEAD)
        }
        Populate::Ahead { now, window } => match writer.prefault_ahead(now) {
            Ok(()) => (now, window),
            Err(_) => (0, window),
        },
    };
    let end = header.file_len();
    let from = end.min(HEADER_LEN as u64 + now);
    writer.pretoucher = Pretoucher::start(
        writer.map.populator(),
        writer.path.clone(),
        from,
        end,
        window,
        false,
        write_behind,
    );
    Ok(writer)
}
