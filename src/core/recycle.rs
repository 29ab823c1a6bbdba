//! Recycling a channel file: a pruned journal segment's file, taken away from its name while
//! no reader maps it, and later made into a new pending segment without allocating storage
//! (docs/FORMAT.md, "Recycled segments": the steps and their crash cases).

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::create::{file_name, free_path, io_err, name_durably, temporary_path};
use super::header::{HEADER_LEN, OFF_CLOSED_AT};
use super::{ChannelError, Header};
use crate::fault::{self, IoOp};

/// A channel file taken for recycling: renamed from its channel name to a temporary one, open
/// for writing, holding the exclusive mapping lock (so that no reader maps it until it is
/// renamed again, as another channel).
pub(crate) struct Pooled {
    /// `None` once handed over as a channel's file.
    file: Option<File>,
    tmp: PathBuf,
    len: u64,
}

impl Pooled {
    /// The file's length: `HEADER_LEN` plus the capacity of any channel it can become.
    pub(crate) fn file_len(&self) -> u64 {
        self.len
    }

    /// Whether a writer's lock on the file is held, so that [`recycle_channel`] would refuse
    /// it now: by the old writer of the segment, or by a mapping made from it that is not
    /// dropped yet (a sync of the old writer, pending or running). A query, not a lock.
    pub(crate) fn in_use(&self) -> bool {
        self.file
            .as_ref()
            .is_none_or(|file| crate::mmap::lock_held(file).unwrap_or(true))
    }
}

impl Drop for Pooled {
    /// A file taken and never used again is removed (the temporary name is its only one).
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fault::run(IoOp::Remove(&self.tmp), || fs::remove_file(&self.tmp));
        }
    }
}

/// Takes the sealed channel file at `path` for recycling (steps 1 and 2 of "Recycling a
/// segment"): opens it, takes the exclusive mapping lock, checks that it is sealed
/// (`closed_at` is set: its writer appends nothing more), and renames it to a temporary name.
/// Its seal need not be durable: the writer's lock, which [`recycle_channel`] takes before it
/// changes a byte, is held for as long as the old writer or any mapping made from it (a sync
/// of the old writer's) is alive, so no store of the earlier life can come after the file is
/// reused. `None` when it cannot be taken: a reader maps it, it is not sealed, or an operation
/// failed; the file is then untouched under its name (the caller removes it as before). The
/// caller syncs the directory before the file is used.
pub(crate) fn take_for_recycling(path: &Path) -> Option<Pooled> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    // Not the writer's lock yet: the journal's own writer of the segment, or a mapping made
    // from it (a pending sync's), may not be dropped yet (its background thread drops them),
    // and each keeps the lock. The lock is taken when the file is reused, before anything
    // is written to it; until then the file is only renamed.
    if !crate::mmap::try_lock_mapping_exclusive(&file).ok()? {
        return None;
    }
    let mut closed_at = [0u8; 8];
    file.read_exact_at(&mut closed_at, OFF_CLOSED_AT as u64)
        .ok()?;
    if u64::from_le_bytes(closed_at) == 0 {
        return None;
    }
    let len = file.metadata().ok()?.len();
    let root = path.parent()?;
    let tmp = temporary_path(root, &file_name(path), "recycle");
    fault::run(IoOp::Rename(path, &tmp), || fs::rename(path, &tmp)).ok()?;
    Some(Pooled {
        file: Some(file),
        tmp,
        len,
    })
}

/// Makes the pooled file into the new channel `header` (pending, marked recycled) under
/// `root` and returns it as [`create_channel`](super::create::create_channel) does: open,
/// locked, under its final name, durably. Steps 4 to 10 of "Recycling a segment": take the
/// writer's lock (refused while the old writer or a mapping made from it lives), allocate
/// whatever a release of space freed, write the header and zero the first record word,
/// write back the page holding both and wait for it, let readers lock it again, link it
/// under its name, sync the directory. Nothing is allocated or zeroed otherwise: the data
/// area keeps the bytes of its earlier life, which bind another channel id, and whose pages
/// need not be on storage (after a power loss they read as any earlier contents, all above
/// the new segment's durable watermark).
pub(crate) fn recycle_channel(
    root: &Path,
    header: &Header,
    mut pooled: Pooled,
) -> Result<(File, PathBuf), ChannelError> {
    let path = free_path(root, header)?;
    if pooled.len != header.file_len() {
        return Err(ChannelError::InvalidConfig {
            path,
            reason: format!(
                "a recycled file of {} bytes cannot hold a channel of {}",
                pooled.len,
                header.file_len()
            ),
        });
    }
    let tmp = pooled.tmp.clone();
    let Some(file) = pooled.file.take() else {
        unreachable!("a pooled file is taken once")
    };
    let ready = (|| {
        crate::mmap::try_lock_writer(&file).map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => ChannelError::Locked { path: tmp.clone() },
            std::fs::TryLockError::Error(source) => {
                io_err(&tmp, "locking the recycled channel file")(source)
            }
        })?;
        // Only a file with a hole (a released sealed tail) needs storage again: reserving a
        // fully allocated one changes nothing and walks every page (on tmpfs a tenth of a
        // steady stream's CPU).
        if !crate::mmap::fully_allocated(&file, header.file_len()) {
            fault::run(IoOp::Reserve(&tmp, header.file_len()), || {
                crate::mmap::reserve(&file, header.file_len())
            })
            .map_err(io_err(&tmp, "reserving space for the recycled channel"))?;
        }
        file.write_all_at(&header.encode(), 0)
            .map_err(io_err(&tmp, "writing the recycled channel's header"))?;
        file.write_all_at(&[0u8; 8], HEADER_LEN as u64)
            .map_err(io_err(&tmp, "clearing the recycled channel's first record"))?;
        // The header and the first record word: one page, not the whole file.
        let start = HEADER_LEN as u64 + 8;
        fault::run(IoOp::FlushRange(&tmp, 0, start), || {
            crate::mmap::sync_start(&file, start as usize)
        })
        .map_err(io_err(&tmp, "syncing the recycled channel's header"))?;
        crate::mmap::unlock_mapping(&file)
            .map_err(io_err(&tmp, "unlocking the recycled channel for readers"))
    })();
    if let Err(e) = ready {
        let _ = fault::run(IoOp::Remove(&tmp), || fs::remove_file(&tmp));
        return Err(e);
    }
    name_durably(root, &tmp, &path)?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::new_writer::{shm_writer, shm_writer_pending, Populate};
    use crate::core::storage_path;
    use crate::core::{EncoderHandler, Reader, ShmReader, TickUnit, Writer};

    fn header(id: u64) -> Header {
        Header::new(7, id, 1 << 16, 4096, 0, TickUnit::Millis)
            .with_resync_marks(9)
            .unwrap()
    }

    /// A channel written full of records of `fill`, closed durably, then taken for recycling.
    fn pooled_after(dir: &Path, fill: u8) -> Pooled {
        let mut old = shm_writer(dir, &header(1), EncoderHandler).unwrap();
        while old.write(&[fill; 200][..]).is_ok() {}
        old.close().unwrap();
        let pooled = take_for_recycling(&storage_path(dir, 1)).expect("taken");
        assert!(!storage_path(dir, 1).exists());
        pooled
    }

    #[test]
    fn a_recycled_writer_keeps_the_word_after_each_record_zero() {
        let dir = tempfile::tempdir().unwrap();
        let pooled = pooled_after(dir.path(), 0xA5);
        let populate = Populate::Ahead { now: 0, window: 0 };
        let mut w =
            shm_writer_pending(dir.path(), &header(9), populate, Some(pooled), false, false)
                .unwrap();
        assert!(w.header().is_recycled() && w.header().is_pending());
        let mut reader = ShmReader::open(storage_path(dir.path(), 9)).unwrap();
        assert_eq!(reader.try_read().unwrap(), None);
        // Records of varied lengths, crossing mark blocks (512 bytes) over stale bytes.
        for i in 0..150u32 {
            let len = (i * 53 % 300) as usize;
            w.write(&vec![i as u8; len][..]).unwrap();
            assert_eq!(
                w.map.load(HEADER_LEN + w.position() as usize),
                0,
                "after {i}"
            );
            assert_eq!(reader.try_read().unwrap(), Some(&vec![i as u8; len][..]));
            assert_eq!(reader.try_read().unwrap(), None, "a stale record after {i}");
        }
    }

    #[test]
    fn a_reader_mapping_the_file_keeps_it_from_being_taken() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = shm_writer(dir.path(), &header(1), EncoderHandler).unwrap();
        old.write("kept").unwrap();
        old.close().unwrap();
        let path = storage_path(dir.path(), 1);
        let mut reader = ShmReader::open(&path).unwrap();
        assert!(take_for_recycling(&path).is_none());
        assert_eq!(reader.try_read().unwrap(), Some(&b"kept"[..]));
        drop(reader);
        assert!(take_for_recycling(&path).is_some());
    }

    #[test]
    fn a_sealed_file_is_taken_without_a_durable_seal_and_an_unsealed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = storage_path(dir.path(), 1);
        let mut old = shm_writer(dir.path(), &header(1), EncoderHandler).unwrap();
        old.write("not synced").unwrap();
        assert!(
            take_for_recycling(&path).is_none(),
            "unsealed: its writer appends"
        );
        drop(old); // sealed without a sync
        let pooled = take_for_recycling(&path).expect("taken");
        assert!(!pooled.in_use());
        let populate = Populate::Ahead { now: 0, window: 0 };
        let w = shm_writer_pending(dir.path(), &header(9), populate, Some(pooled), false, false)
            .unwrap();
        assert!(w.header().is_recycled());
    }

    #[test]
    fn a_mapping_of_the_old_writer_keeps_the_file_from_being_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = storage_path(dir.path(), 1);
        let populate = Populate::Ahead { now: 0, window: 0 };
        let sealed_with_a_sync_pending = || {
            let mut old = shm_writer(dir.path(), &header(1), EncoderHandler).unwrap();
            old.write("pending").unwrap();
            let sync = old.sync_handle();
            drop(old);
            sync
        };
        // A sync of the old writer, pending or running, maps the file: while it lives the
        // file is taken (renamed away) but never rewritten, and its sync still reaches it.
        let sync = sealed_with_a_sync_pending();
        let pooled = take_for_recycling(&path).expect("taken");
        assert!(pooled.in_use());
        let tmp = pooled.tmp.clone();
        match shm_writer_pending(dir.path(), &header(9), populate, Some(pooled), false, false) {
            Err(ChannelError::Locked { .. }) => {}
            other => panic!("reused under a live mapping: {:?}", other.map(|_| ())),
        }
        assert!(!tmp.exists() && !storage_path(dir.path(), 9).exists());
        sync.sync(8).unwrap();
        drop(sync);
        // Once it is dropped, the file is reused.
        let sync = sealed_with_a_sync_pending();
        let pooled = take_for_recycling(&path).expect("taken");
        drop(sync);
        assert!(!pooled.in_use());
        let w = shm_writer_pending(dir.path(), &header(9), populate, Some(pooled), false, false)
            .unwrap();
        assert!(w.header().is_recycled() && w.header().is_pending());
    }

    #[test]
    fn only_a_file_with_a_hole_is_allocated_again() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let allocated = |file: &File| file.metadata().unwrap().blocks() * 512;
        for punched in [false, true] {
            let pooled = pooled_after(dir.path(), 0x5A);
            let len = pooled.file_len();
            let file = pooled.file.as_ref().unwrap();
            if punched {
                if crate::mmap::punch_hole(file, 8192, len - 8192).is_err() {
                    return; // this file system cannot release space
                }
                assert!(!crate::mmap::fully_allocated(file, len));
            } else {
                assert!(crate::mmap::fully_allocated(file, len));
            }
            let (file, path) =
                recycle_channel(dir.path(), &header(9).into_pending(), pooled).unwrap();
            assert!(allocated(&file) >= len, "punched {punched}");
            drop(file);
            std::fs::remove_file(path).unwrap();
        }
    }

    #[test]
    fn a_truncations_hint_keeps_the_file_from_being_taken() {
        // Regression: issue 14 item 1: a truncation's voided_from hint mapped a segment's
        // header without the readers' lock, so a prune could recycle it under the hint.
        let dir = tempfile::tempdir().unwrap();
        let mut old = shm_writer(dir.path(), &header(1), EncoderHandler).unwrap();
        old.write("voided").unwrap();
        old.close().unwrap();
        let path = storage_path(dir.path(), 1);
        // A truncation opens the hint before it changes anything, and stores it later.
        let hint = crate::core::VoidedHint::open(&path).unwrap();
        assert!(take_for_recycling(&path).is_none(), "taken under a hint");
        hint.store(1);
        drop(hint);
        let _pooled = take_for_recycling(&path).expect("taken once the hint is gone");
        assert!(crate::core::VoidedHint::open(&path).is_err());
    }
}
