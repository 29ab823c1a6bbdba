//! Reading raft entries back from the journal, with a reader kept between reads: openraft
//! reads the log in consecutive ranges (replication to each follower, applying), so a read
//! that starts where the last one stopped continues with the same [`JournalReader`] instead
//! of opening one (listing the directory, mapping segments) every time.

use std::io;

use openraft::entry::RaftEntry;
use openraft::RaftTypeConfig;

use crate::codec::{Bincode, Codec};
use crate::journal::{Journal, JournalError, JournalReader};

/// A journal reader kept between reads of the log.
#[derive(Default)]
pub(super) struct Cursor {
    reader: Option<JournalReader>,
}

/// How one attempt at a read ended.
enum Attempt<E> {
    Read(Vec<E>),
    /// The reader had returned records that were discarded since: read again with a new one.
    Truncated,
}

impl Cursor {
    /// The entries in `[start, end)` that `journal` holds (sequence numbers it skipped hold
    /// none); `end` is at most its next sequence number.
    pub(super) fn read<C: RaftTypeConfig>(
        &mut self,
        journal: &Journal,
        start: u64,
        end: u64,
    ) -> io::Result<Vec<C::Entry>> {
        if start >= end {
            return Ok(Vec::new());
        }
        for _ in 0..2 {
            match self.attempt::<C>(journal, start, end) {
                Ok(Attempt::Read(entries)) => return Ok(entries),
                Ok(Attempt::Truncated) => self.reader = None,
                Err(e) => {
                    self.reader = None;
                    return Err(e);
                }
            }
        }
        Err(io::Error::other(format!(
            "{}: reading raft entries {start}..{end}: the log was truncated twice while it was \
             read",
            journal.dir().display()
        )))
    }

    fn attempt<C: RaftTypeConfig>(
        &mut self,
        journal: &Journal,
        start: u64,
        end: u64,
    ) -> io::Result<Attempt<C::Entry>> {
        let reader = match self.reader.take() {
            Some(mut reader) => {
                if reader.next_sequence() != start {
                    reader.seek(start).map_err(io::Error::other)?;
                }
                reader
            }
            None => JournalReader::open(journal.dir(), start).map_err(io::Error::other)?,
        };
        let reader = self.reader.insert(reader);
        let mut entries = Vec::new();
        // `try_next` answers `None` once, transiently, when the writer seals a segment
        // between its looking and its reading (a rollover by a concurrent append); the next
        // call crosses the seal. Only a repeated `None` is the end of what the journal holds.
        let mut idle = 0;
        loop {
            let (seq, bytes) = match reader.try_next() {
                Ok(Some(record)) => record,
                Ok(None) => {
                    idle += 1;
                    if idle == 3 {
                        break;
                    }
                    continue;
                }
                Err(JournalError::Truncated { .. }) => return Ok(Attempt::Truncated),
                Err(e) => return Err(io::Error::other(e)),
            };
            idle = 0;
            if seq >= end {
                break;
            }
            let entry: C::Entry = Bincode.decode(bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: raft entry {seq}: {e}", journal.dir().display()),
                )
            })?;
            if entry.index() != seq {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: record {seq} holds raft entry {}",
                        journal.dir().display(),
                        entry.index()
                    ),
                ));
            }
            entries.push(entry);
            if seq + 1 >= end {
                break;
            }
        }
        Ok(Attempt::Read(entries))
    }
}
