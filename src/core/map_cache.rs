//! One mapping per channel file per process: readers of the same file share its read-only
//! mapping, which lives as long as a reader or a record handle holds it.
//!
//! A hundred readers tailing one journal map each segment once, not a hundred times. Files
//! are known by their identity (device, inode) and the mapped length, not by their path: a
//! segment removed and created again under the same name is another file, and gets its own
//! mapping. Entries are weak: the cache never keeps a mapping alive, and a dead entry is
//! dropped the next time the cache is used.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};

use crate::mmap::ReadMap;

/// (device, inode, mapped length) of a file.
type Key = (u64, u64, usize);

fn cache() -> &'static Mutex<HashMap<Key, Weak<ReadMap>>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Weak<ReadMap>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The read-only mapping of the first `len` bytes of `file`, shared with every reader of the
/// same file in this process. The caller has checked that the file is at least `len` bytes.
pub(crate) fn shared_map(file: &File, len: usize) -> io::Result<Arc<ReadMap>> {
    let meta = file.metadata()?;
    let key = (meta.dev(), meta.ino(), len);
    let mut cache = cache().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(map) = cache.get(&key).and_then(Weak::upgrade) {
        return Ok(map);
    }
    cache.retain(|_, map| map.strong_count() > 0);
    let map = Arc::new(ReadMap::map(file, len)?);
    cache.insert(key, Arc::downgrade(&map));
    Ok(map)
}

/// Drops `map` on a background thread when it is the last handle on its mapping, so that the
/// caller does not wait for the unmapping: the kernel takes down every page a reader mapped,
/// about a millisecond per 64 MiB segment read in full, which a journal reader crossing into
/// the next segment would otherwise pay before its next record (docs/PERFORMANCE.md, "Replay
/// on ext4"). The mapping, and with it the readers' lock on its file (docs/FORMAT.md,
/// "Recycled segments"), lives until that thread drops it. Dropped at once when other handles
/// remain (nothing is unmapped then) or no thread could be started.
pub(crate) fn release_later(map: Arc<ReadMap>) {
    if Arc::strong_count(&map) > 1 {
        return;
    }
    static UNMAPPER: OnceLock<Option<mpsc::Sender<Arc<ReadMap>>>> = OnceLock::new();
    let unmapper = UNMAPPER.get_or_init(|| {
        let (send, receive) = mpsc::channel::<Arc<ReadMap>>();
        std::thread::Builder::new()
            .name("kekbit-unmap".into())
            .spawn(move || receive.into_iter().for_each(drop))
            .ok()
            .map(|_| send)
    });
    if let Some(send) = unmapper {
        // A failed send hands the map back, and it drops here.
        let _ = send.send(map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_of_one_file_share_its_mapping_until_the_last_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let (a, b) = (File::open(&path).unwrap(), File::open(&path).unwrap());
        let first = shared_map(&a, 4096).unwrap();
        let second = shared_map(&b, 4096).unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        // Another length is another mapping; another file with the same name another too.
        assert!(!Arc::ptr_eq(&first, &shared_map(&a, 1024).unwrap()));
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let replaced = shared_map(&File::open(&path).unwrap(), 4096).unwrap();
        assert!(!Arc::ptr_eq(&first, &replaced));
        let weak = Arc::downgrade(&first);
        drop((first, second));
        assert!(weak.upgrade().is_none(), "the cache keeps no mapping alive");
    }

    #[test]
    fn a_mapping_released_later_is_unmapped_by_the_background_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let file = File::open(&path).unwrap();
        // Another handle remains: nothing is dropped but the handle.
        let (map, kept) = {
            let map = shared_map(&file, 4096).unwrap();
            (Arc::clone(&map), map)
        };
        release_later(map);
        assert_eq!(Arc::strong_count(&kept), 1);
        // The last handle: gone once the thread has dropped it.
        let weak = Arc::downgrade(&kept);
        release_later(kept);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while weak.upgrade().is_some() {
            assert!(std::time::Instant::now() < deadline, "never unmapped");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
