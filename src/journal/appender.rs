//! The state appends change, behind the journal's lock: the active segment, the next
//! sequence number, what a sync must cover, and rolling over to the next segment.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::helper::Helper;
use super::recovery::Active;
use super::segment;
use super::shared::Wait;
use super::{AppendError, Journal};
use crate::core::{Encodable, SyncHandle, WriteError, Writer};

/// The sealed segments whose seal, and the records before it, are not yet known durable.
pub(crate) struct Unsynced {
    pub(crate) handle: SyncHandle,
    pub(crate) position: u64,
    pub(crate) path: PathBuf,
    pub(crate) sealed: bool,
}

/// Everything appends change, behind one lock.
pub(crate) struct Appender {
    pub(crate) active: Active,
    pub(crate) next_seq: u64,
    pub(crate) unsynced: Vec<Unsynced>,
    pub(crate) helper: Helper,
    /// How many segments the helper keeps prepared ahead.
    pub(crate) ahead: u64,
    pub(crate) poisoned: bool,
    /// How many truncating links the chain holds: named in every seal once it is not 0.
    pub(crate) epoch: u64,
    /// Whether dropping makes the seal durable and releases the active segment's unused
    /// space (every policy but `Never`, which syncs only when asked).
    pub(crate) close_durably: bool,
}

impl Appender {
    pub(crate) fn append<D: Encodable + ?Sized>(
        &mut self,
        record: &D,
        dir: &Path,
    ) -> Result<u64, AppendError> {
        if self.poisoned {
            return Err(AppendError::Poisoned {
                dir: dir.to_path_buf(),
            });
        }
        match self.active.writer.write(record) {
            Ok(_) => {}
            Err(WriteError::ChannelFull { .. }) => {
                self.roll_over(dir)?;
                self.active.writer.write(record)?;
            }
            Err(e) => return Err(e.into()),
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
    }

    /// Seals the active segment with a marker naming its successor's first sequence number
    /// and continues in the successor, prepared ahead by the helper. The successor is linked
    /// (its header names this segment, its seal's checksum and its first sequence number)
    /// before the seal is published, so a reader that follows the seal finds it linked.
    fn roll_over(&mut self, dir: &Path) -> Result<(), AppendError> {
        let next_id =
            segment::successor(self.active.id).ok_or_else(|| AppendError::SegmentIdsExhausted {
                dir: dir.to_path_buf(),
                last: self.active.id,
            })?;
        let mut next = self.helper.take(next_id)?;
        let trailer = segment::trailer(self.next_seq, self.epoch);
        let checksum = self.active.writer.closing_checksum(&trailer);
        next.link(self.next_seq, self.active.id, checksum);
        let sealed = self.active.writer.seal(&trailer)?;
        debug_assert_eq!(sealed, checksum);
        let old = std::mem::replace(
            &mut self.active,
            Active {
                writer: next,
                id: next_id,
            },
        );
        self.unsynced.push(Unsynced {
            handle: old.writer.sync_handle(),
            position: old.writer.position(),
            path: old.writer.path().to_path_buf(),
            sealed: true,
        });
        self.helper.retire(old.writer);
        self.helper.prepare(segment::ids_after(next_id, self.ahead));
        Ok(())
    }

    /// Drops, on the helper thread, the pending syncs of sealed segments that a prune
    /// removed (their files are gone from their names: unlinked, or taken for recycling).
    /// Their records are gone, so no sync needs them; and each held its segment's mapping,
    /// which kept the removed file's storage allocated for as long as no sync came: for
    /// ever under `Durability::Never`, which syncs only when asked.
    pub(crate) fn forget_pruned(&mut self) {
        let (gone, kept): (Vec<Unsynced>, Vec<Unsynced>) = self
            .unsynced
            .drain(..)
            .partition(|u| u.sealed && !u.path.exists());
        self.unsynced = kept;
        if !gone.is_empty() {
            self.helper.retire(gone);
        }
    }

    /// What a sync must cover now, and the record count it makes durable.
    pub(crate) fn sync_work(&mut self) -> (Vec<Unsynced>, u64) {
        self.helper.note_sync();
        let mut work: Vec<Unsynced> = self.unsynced.drain(..).collect();
        work.push(Unsynced {
            handle: self.active.writer.sync_handle(),
            position: self.active.writer.position(),
            path: self.active.writer.path().to_path_buf(),
            sealed: false,
        });
        (work, self.next_seq)
    }
}

/// A record given as two parts, encoded one after the other: the bytes of their
/// concatenation, without copying them into one buffer first.
struct Parts<'a>(&'a [u8], &'a [u8]);

impl Encodable for Parts<'_> {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(self.0)?;
        out.write_all(self.1)
    }
}

impl Journal {
    /// Appends `record`, `len` bytes once encoded, without waiting for durability (see
    /// [`append_deferred`](Journal::append_deferred)).
    pub(super) fn append_encoded<D: Encodable + ?Sized>(
        &self,
        record: &D,
        len: usize,
    ) -> Result<u64, AppendError> {
        let max = self.shared.options.max_record_len_bytes();
        if len as u64 > u64::from(max) {
            return Err(AppendError::RecordTooLarge {
                dir: self.shared.dir.clone(),
                len: len as u64,
                max,
            });
        }
        let seq = self.shared.appender().append(record, &self.shared.dir)?;
        self.shared.bell.ring();
        Ok(seq)
    }

    /// Appends one record made of `head` then `body`, as [`append`](Journal::append) of
    /// their concatenation would, under the durability policy: for an owner that frames a
    /// payload with its own header (the mapped image's redo records), without a copy.
    pub(crate) fn append_parts(&self, head: &[u8], body: &[u8]) -> Result<u64, AppendError> {
        let seq = self.append_encoded(&Parts(head, body), head.len() + body.len())?;
        if self.policy_syncs(seq) {
            self.shared.sync_through(seq + 1, Wait::Forever)?;
        }
        Ok(seq)
    }

    /// Makes dropping this journal sync its seal and release its active segment's unused
    /// space whatever the durability policy, as every policy but `Never` does. For an owner
    /// that has just made every record durable before it closes (the mapped image's
    /// checkpoint): the seal then costs one more sync, and the next opening finds a durable
    /// seal, with nothing to sync or release.
    pub(crate) fn close_durably(&self) {
        self.shared.appender().close_durably = true;
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        // Seal the active segment naming the next sequence number, as a rollover does (the
        // writer's own drop would leave a marker without it).
        let trailer = segment::trailer(self.next_seq, self.epoch);
        if self.active.writer.seal(&trailer).is_err() || self.poisoned || !self.close_durably {
            // Not synced: what was not durable stays so, and recovery knows where the chain
            // ends either way (and releases the tail's unused space once it made it durable).
            return;
        }
        // Make the seal durable as a sync after a rollover would (sealed segments oldest
        // first, each with a watermark covering its seal), then release the space the
        // segment will never use: it is never written again.
        let end = self.active.writer.position();
        let mut work: Vec<Unsynced> = self.unsynced.drain(..).collect();
        work.push(Unsynced {
            handle: self.active.writer.sync_handle(),
            position: end,
            path: self.active.writer.path().to_path_buf(),
            sealed: true,
        });
        if work
            .iter()
            .all(|u| u.handle.sync_sealed(u.position).is_ok())
        {
            self.active.writer.stop_prefault();
            let _ = segment::release_unused(self.active.writer.path(), end);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::{Durability, Journal, JournalReader};

    #[test]
    fn a_record_in_two_parts_reads_as_their_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::options()
            .durability(Durability::EveryRecord)
            .open(dir.path())
            .unwrap();
        assert_eq!(journal.append_parts(b"head|", b"body").unwrap(), 0);
        assert_eq!(journal.append_parts(b"", b"").unwrap(), 1);
        assert_eq!(journal.durable_count(), 2, "the policy applies");
        let mut reader = JournalReader::open(dir.path(), 0).unwrap();
        assert_eq!(reader.try_next().unwrap().unwrap(), (0, &b"head|body"[..]));
        assert_eq!(reader.try_next().unwrap().unwrap(), (1, &b""[..]));
        let max = journal.max_record_len() as usize;
        assert!(
            journal.append_parts(&vec![0; max], b"x").is_err(),
            "too large"
        );
    }
}
