//! A record handle that outlives its reader: [`Record`].

use std::fmt;
use std::ops::Deref;

use crate::mmap::Pinned;

/// One record's payload, owned: it derefs to `[u8]`, is `Send + Sync + 'static`, and clones
/// cheaply (a reference count), without copying the payload.
///
/// A record handle keeps the mapping of the segment it lives in alive, shared with every
/// reader of that segment in the process (each segment file is mapped once per process,
/// whatever the number of readers): the handle stays valid after its reader is dropped,
/// after the segment is pruned, and after the journal is closed, and the segment is unmapped
/// when the last reader and the last handle on it are gone. Holding handles therefore holds
/// whole segments in the address space (not in memory: the pages are the file's, and the
/// kernel may drop them). A reader in [`ReadMode::Copied`](crate::core::ReadMode::Copied)
/// hands out handles into its private copy of the segment instead.
///
/// The bytes of a record never change: it was verified (checksum, position) when it was
/// read, and a journal never writes a published record again.
///
/// ```
/// use kekbit::journal::{Journal, Record};
///
/// let dir = tempfile::tempdir()?;
/// let journal = Journal::open(dir.path())?;
/// journal.append(b"kept")?;
/// let mut reader = journal.reader(0)?;
/// let (seq, record): (u64, Record) = reader.next_record()?.expect("appended");
/// drop(reader);
/// drop(journal);
/// let elsewhere = std::thread::spawn(move || record.to_vec()).join().unwrap();
/// assert_eq!((seq, elsewhere), (0, b"kept".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Record {
    payload: Pinned,
}

impl Record {
    pub(crate) fn new(payload: Pinned) -> Record {
        Record { payload }
    }
}

impl Deref for Record {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.payload.bytes()
    }
}

impl AsRef<[u8]> for Record {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::borrow::Borrow<[u8]> for Record {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        **self == **other
    }
}

impl Eq for Record {}

impl PartialEq<[u8]> for Record {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for Record {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_a_static_shareable_handle() {
        fn shareable<T: Send + Sync + 'static + Clone>() {}
        shareable::<Record>();
    }
}
