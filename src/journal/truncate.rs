//! Discarding the records from a sequence number on ([`Journal::truncate_from`]) and going on
//! past a gap ([`Journal::skip_to`]): the active segment is sealed naming the new next
//! sequence number, lower (a *truncating link*) or higher (a *skipping link*) than the records
//! it holds, and its successor is linked there. No published byte is rewritten; a record's
//! place in the chain decides whether it counts (docs/FORMAT.md, "Truncating the tail").
//!
//! [`Journal::truncate_from`]: super::Journal::truncate_from
//! [`Journal::skip_to`]: super::Journal::skip_to

use std::path::Path;

use super::appender::{Appender, Unsynced};
use super::recovery::Active;
use super::segment;
use super::shared::Shared;
use super::{AppendError, Journal, JournalError, TruncateReport};
use crate::core::{Reader, SeekStop, ShmReader, VoidedHint};

impl Journal {
    /// Discards every record whose sequence number is `seq` or more: the next append gets
    /// `seq`. Durable when it returns, whatever the [`Durability`](super::Durability): a crash afterwards never
    /// brings the discarded records back, and a crash during it leaves either the journal as
    /// it was or the truncated one (docs/FORMAT.md, "Truncating the tail"). `seq` equal to
    /// [`next_sequence`](Journal::next_sequence) changes nothing; one below
    /// [`first_sequence`](Journal::first_sequence) or above the next is refused with
    /// [`JournalError::SequenceOutOfRange`].
    ///
    /// No byte already written changes: the active segment is sealed naming `seq` and a new
    /// segment continues from there. A [`JournalReader`](super::JournalReader) that already returned a discarded
    /// record reports [`JournalError::Truncated`] (in any process); one that had not reached
    /// `seq` reads on into the new records. Appends racing a truncation from other threads
    /// are ordered before or after it.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// for record in [&b"a"[..], b"b", b"c"] {
    ///     journal.append(record).unwrap();
    /// }
    /// journal.truncate_from(1).unwrap();
    /// assert_eq!(journal.append(b"B").unwrap(), 1);
    /// let records: Vec<_> = journal.reader(0).unwrap().map(Result::unwrap).collect();
    /// assert_eq!(records, [(0, b"a".to_vec()), (1, b"B".to_vec())]);
    /// assert_eq!(journal.truncation_epoch(), 1);
    /// ```
    pub fn truncate_from(&self, seq: u64) -> Result<TruncateReport, JournalError> {
        self.shared.truncate_from(seq)
    }

    /// Continues the journal at `seq`, which must be at least
    /// [`next_sequence`](Journal::next_sequence): the next append gets `seq`, and the sequence
    /// numbers in between never hold a record (a reader passing them sees the numbers jump;
    /// one asked to start among them starts at `seq`). Durable when it returns. `seq` equal
    /// to the next sequence number changes nothing; a lower one is refused with
    /// [`JournalError::SequenceOutOfRange`].
    ///
    /// After a snapshot of the state up to `seq` is installed, `skip_to(seq)` then
    /// [`prune_before(seq)`](Journal::prune_before) leaves an empty journal that continues at
    /// `seq`.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// journal.append(b"old").unwrap();
    /// journal.skip_to(100).unwrap();
    /// journal.prune_before(100).unwrap();
    /// assert_eq!((journal.first_sequence().unwrap(), journal.next_sequence()), (100, 100));
    /// assert_eq!(journal.append(b"new").unwrap(), 100);
    /// ```
    pub fn skip_to(&self, seq: u64) -> Result<(), JournalError> {
        self.shared.skip_to(seq)
    }

    /// How many truncations ([`truncate_from`](Journal::truncate_from) that discarded
    /// records) the journal has had: it only grows, and a reader can compare it with
    /// [`JournalReader::truncation_epoch`](super::JournalReader::truncation_epoch) to learn cheaply that records may have changed.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// journal.append(b"x").unwrap();
    /// assert_eq!(journal.truncation_epoch(), 0);
    /// journal.truncate_from(0).unwrap();
    /// assert_eq!(journal.truncation_epoch(), 1);
    /// ```
    pub fn truncation_epoch(&self) -> u64 {
        self.shared.appender().epoch
    }
}

/// A linked segment: its id and first sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Linked {
    pub(crate) id: u64,
    pub(crate) base: u64,
}

/// The linked segments of the journal in `dir`, ascending, with their first sequence numbers
/// (segments prepared ahead and not linked left out). Reads every segment's header.
pub(crate) fn linked(dir: &Path) -> Result<Vec<Linked>, JournalError> {
    let mut out = Vec::new();
    for id in segment::list(dir)? {
        let header = segment::header(dir, id)?;
        if !header.is_pending() {
            out.push(Linked {
                id,
                base: header.base_sequence(),
            });
        }
    }
    Ok(out)
}

/// For each segment of `chain`, the lowest first sequence number of the segments after it
/// (`u64::MAX` for the last): where its records stop counting, since a later link at a lower
/// sequence number voids every record from there on (docs/FORMAT.md, "The effective chain").
pub(crate) fn limits(chain: &[Linked]) -> Vec<u64> {
    let mut out = vec![u64::MAX; chain.len()];
    let mut lowest = u64::MAX;
    for i in (0..chain.len()).rev() {
        out[i] = lowest;
        lowest = lowest.min(chain[i].base);
    }
    out
}

/// The first sequence number the journal holds: the lowest first sequence number of its
/// segments (which pruning keeps at the first segment's); 0 without a segment.
pub(crate) fn first_sequence(chain: &[Linked]) -> u64 {
    chain.iter().map(|l| l.base).min().unwrap_or(0)
}

impl Shared {
    /// See [`Journal::truncate_from`](super::Journal::truncate_from).
    pub(crate) fn truncate_from(&self, seq: u64) -> Result<TruncateReport, JournalError> {
        let report = self.truncate_locked(seq)?;
        if let Some(before) = report.1 {
            // Outside the appender's lock: the callbacks of discarded records, now ready.
            self.callbacks.supersede_from(seq, before);
        }
        self.callbacks.fire(self);
        Ok(report.0)
    }

    /// The truncation, with the appender locked; with the number of callbacks registered
    /// when it discarded records.
    fn truncate_locked(&self, seq: u64) -> Result<(TruncateReport, Option<u64>), JournalError> {
        let mut appender = self.appender();
        self.check_usable(&appender)?;
        let next = appender.next_seq;
        let chain = linked(&self.dir)?;
        let first = first_sequence(&chain);
        if seq < first || seq > next {
            return Err(JournalError::SequenceOutOfRange {
                dir: self.dir.clone(),
                operation: "truncate_from",
                requested: seq,
                lowest: first,
                highest: next,
            });
        }
        let mut report = TruncateReport {
            from: seq,
            discarded: 0,
            epoch: appender.epoch,
        };
        if seq == next {
            return Ok((report, None));
        }
        let hints = voided_hints(&self.dir, &chain, appender.active.id, seq)?;
        let epoch = appender.epoch + 1;
        self.relink(&mut appender, seq, epoch, &hints)?;
        report.discarded = next - seq;
        report.epoch = epoch;
        // Read with the appender still locked: every registration after this is for a
        // record appended after the truncation.
        let before = self.callbacks.registrations();
        Ok((report, Some(before)))
    }

    /// See [`Journal::skip_to`](super::Journal::skip_to).
    pub(crate) fn skip_to(&self, seq: u64) -> Result<(), JournalError> {
        let mut appender = self.appender();
        self.check_usable(&appender)?;
        let next = appender.next_seq;
        // A segment's header must leave room for every record it can hold after its base.
        let highest = u64::MAX - appender.active.writer.header().capacity() / 8;
        if seq < next || seq > highest {
            return Err(JournalError::SequenceOutOfRange {
                dir: self.dir.clone(),
                operation: "skip_to",
                requested: seq,
                lowest: next,
                highest,
            });
        }
        if seq == next {
            return Ok(());
        }
        let epoch = appender.epoch;
        self.relink(&mut appender, seq, epoch, &[])
    }

    fn check_usable(&self, appender: &Appender) -> Result<(), JournalError> {
        if appender.poisoned {
            return Err(AppendError::Poisoned {
                dir: self.dir.clone(),
            }
            .into());
        }
        Ok(())
    }

    /// Seals the active segment naming `next_base` (and the truncation `epoch`), links its
    /// successor there, stores the voided hints between the two (so that a reader that sees
    /// a hint finds the link confirming it), makes every segment sealed so far durable, and
    /// continues in the successor. The steps and their crash cases are in docs/FORMAT.md,
    /// "Truncating the tail".
    fn relink(
        &self,
        appender: &mut Appender,
        next_base: u64,
        epoch: u64,
        hints: &[(Option<VoidedHint>, u64)],
    ) -> Result<(), JournalError> {
        let dir = &self.dir;
        let next_id = segment::successor(appender.active.id).ok_or_else(|| {
            JournalError::SegmentIdsExhausted {
                dir: dir.clone(),
                last: appender.active.id,
            }
        })?;
        let mut next = appender.helper.take(next_id)?;
        let trailer = segment::trailer(next_base, epoch);
        let checksum = appender.active.writer.closing_checksum(&trailer);
        next.link(next_base, appender.active.id, checksum);
        for (hint, value) in hints {
            match hint {
                Some(hint) => hint.store(*value),
                None => appender.active.writer.set_voided_from(*value),
            }
        }
        if let Err(e) = appender.active.writer.seal(&trailer) {
            // The successor is linked but this segment not sealed: recovery removes it.
            appender.poisoned = true;
            self.commit.poison();
            return Err(AppendError::from(e).into());
        }
        let mut old = std::mem::replace(
            &mut appender.active,
            Active {
                writer: next,
                id: next_id,
            },
        );
        let end = old.writer.position();
        appender.unsynced.push(Unsynced {
            handle: old.writer.sync_handle(),
            position: end,
            path: old.writer.path().to_path_buf(),
            sealed: true,
        });
        // Sealed segments oldest first, this one last: once its seal is durable the new chain
        // is what recovery finds.
        let work: Vec<Unsynced> = appender.unsynced.drain(..).collect();
        for u in &work {
            if let Err(source) = u.handle.sync_sealed(u.position) {
                appender.poisoned = true;
                self.commit.poison();
                appender.helper.retire(old.writer);
                return Err(AppendError::SyncFailed {
                    segment: u.path.clone(),
                    source,
                }
                .into());
            }
        }
        appender.next_seq = next_base;
        appender.epoch = epoch;
        self.commit.reset(next_base);
        // The sealed segment is never written again: release what it will never use.
        old.writer.stop_prefault();
        let _ = segment::release_unused(old.writer.path(), end);
        appender.helper.retire(old.writer);
        appender.helper.retire(work);
        let ahead = appender.ahead;
        appender.helper.prepare(segment::ids_after(next_id, ahead));
        // Wake readers sleeping on the doorbell: the seal and the hints are there to see.
        self.bell.ring();
        Ok(())
    }
}

/// The `voided_from` hints a truncation at `seq` stores: for each segment holding records
/// from `seq` on (the last one whose first sequence number is at most `seq`, and every one
/// after it, up to the active one), the data-area offset plus one where they start. `None`
/// stands for the active segment, written through its writer. The mappings are opened before
/// anything changes.
fn voided_hints(
    dir: &Path,
    chain: &[Linked],
    active: u64,
    seq: u64,
) -> Result<Vec<(Option<VoidedHint>, u64)>, JournalError> {
    let start = chain.iter().rposition(|l| l.base <= seq).unwrap_or(0);
    let mut hints = Vec::new();
    for link in &chain[start..] {
        if link.id > active {
            break;
        }
        let path = segment::segment_path(dir, link.id);
        let mut reader = ShmReader::open(&path)?;
        let ordinal = seq.saturating_sub(link.base);
        let offset = match reader.seek_ordinal(ordinal) {
            Ok(SeekStop::Reached) => reader.position(),
            // Fewer records than that: nothing of this segment is voided.
            Ok(SeekStop::Short) => continue,
            Err(source) => return Err(JournalError::Corrupt { source }),
        };
        let hint = if link.id == active {
            None
        } else {
            Some(VoidedHint::open(&path)?)
        };
        hints.push((hint, offset + 1));
    }
    Ok(hints)
}
