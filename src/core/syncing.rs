//! What a sync of a channel writes back: the range from the page of the previous durable
//! watermark (and the header page now and then), and the handle a thread syncing on the
//! writer's behalf uses (docs/FORMAT.md, "Syncing").

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::header::{HEADER_LEN, OFF_DURABLE_WATERMARK};
use crate::fault::{self, IoOp};
use crate::mmap::Flusher;

/// The page size syncs are reckoned in: a sync starts at the start of the page holding the
/// previous watermark (memmap2 aligns the range to the system's real page size itself; the
/// rounding keeps the range that the I/O seam reports page-aligned too).
const PAGE: usize = 4096;

/// A sync writes the header page back (carrying the watermark of the sync before) only when
/// the durable position crosses a multiple of this many bytes of the data area, and while
/// records still share the header page; otherwise it writes only the pages written since the
/// last sync (one block for a small record instead of two). The durable watermark on storage
/// therefore trails the acknowledged position by less than this plus one sync (the kernel may
/// also write the dirty header page back by itself sooner). The watermark in memory, which
/// live readers see, is updated at every sync.
const HEADER_REFRESH: u64 = 64 << 10;

/// The file range, as `(offset, len)`, that a sync of the records before data-area offset
/// `position` writes back when an earlier sync made those before `previous` durable: from the
/// page holding `previous` (everything below it is on storage already), or from offset 0, so
/// that the header page goes too, when `previous` and `position` lie in different
/// [`HEADER_REFRESH`] spans. Clean pages in the range cost nothing.
pub(super) fn sync_range(previous: u64, position: u64) -> (usize, usize) {
    let end = HEADER_LEN + position as usize;
    let start = if previous / HEADER_REFRESH != position / HEADER_REFRESH {
        0
    } else {
        (HEADER_LEN + previous as usize) / PAGE * PAGE
    };
    (start, end - start)
}

/// Makes the header of the channel file at `path` durable, as its writer wrote it, unless a
/// sync of the writer did already: a durable watermark other than zero is stored only after
/// a sync, and a channel's first sync writes back from offset 0, header included. Writes
/// back the first page only (`msync(MS_SYNC)` of it through a mapping made for the call),
/// from any process: the page cache is shared. Returns whether it synced.
pub(crate) fn sync_header(path: &Path) -> std::io::Result<bool> {
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut word = [0u8; 8];
    file.read_exact_at(&mut word, OFF_DURABLE_WATERMARK as u64)?;
    if u64::from_le_bytes(word) != 0 {
        return Ok(false);
    }
    fault::run(IoOp::FlushRange(path, 0, HEADER_LEN as u64), || {
        crate::mmap::sync_start(&file, HEADER_LEN)
    })?;
    Ok(true)
}

/// Syncs a writer's channel from another thread (for group commit).
pub(crate) struct SyncHandle {
    pub(super) flusher: Flusher,
    pub(super) path: PathBuf,
}

impl SyncHandle {
    /// Makes the records before data-area offset `position` durable and publishes the new
    /// durable watermark.
    pub(crate) fn sync(&self, position: u64) -> std::io::Result<()> {
        let previous = self.flusher.load(OFF_DURABLE_WATERMARK);
        let (start, len) = sync_range(previous, position);
        fault::run(
            IoOp::FlushRange(&self.path, start as u64, len as u64),
            || self.flusher.flush_range(start, len),
        )?;
        self.flusher.store_release(OFF_DURABLE_WATERMARK, position);
        Ok(())
    }

    /// [`sync`](SyncHandle::sync) for a sealed channel (`position` past its closing marker),
    /// then writes the header back once more so that storage holds a watermark covering the
    /// seal: recovery then knows, without reading the channel, that it is complete.
    pub(crate) fn sync_sealed(&self, position: u64) -> std::io::Result<()> {
        self.sync(position)?;
        let header = HEADER_LEN as u64;
        fault::run(IoOp::FlushRange(&self.path, 0, header), || {
            self.flusher.flush_range(0, HEADER_LEN)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_writes_back_from_the_previous_watermarks_page_or_from_the_header() {
        // Records still share the header page: from 0.
        assert_eq!(sync_range(0, 200), (0, 328));
        assert_eq!(sync_range(200, 400), (0, 528));
        // From the page holding the previous watermark (file offset 128 + 5000).
        assert_eq!(sync_range(5000, 6000), (4096, 128 + 6000 - 4096));
        // Crossing a multiple of HEADER_REFRESH: from 0 again, header page included.
        let refresh = HEADER_REFRESH;
        assert_eq!(
            sync_range(refresh - 8, refresh + 8),
            (0, 128 + refresh as usize + 8)
        );
        assert_eq!(
            sync_range(refresh + 8, refresh + 16).0,
            (128 + refresh as usize + 8) / PAGE * PAGE
        );
    }
}
