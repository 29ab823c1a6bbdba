//! What a reader does about truncations and skips: where the current segment's records stop
//! counting, the `voided_from` hint that tells a reader in any process that they may have
//! stopped, reporting records it returned that were discarded, and moving to another
//! sequence number (docs/FORMAT.md, "Truncating the tail").

use std::path::Path;
use std::time::{Duration, Instant};

use super::super::segment;
use super::super::truncate::Linked;
use super::{JournalError, JournalReader};
use crate::core::{Reader, ShmReader};

/// How often a `voided_from` hint that the chain did not confirm is checked again: a hint left
/// by a truncation that a crash interrupted (recovery then keeps the records), which a later
/// truncation at the very same record would store again unchanged.
const HINT_RECHECK: Duration = Duration::from_millis(50);

/// A `voided_from` hint checked against the chain: the segment, the value, and when.
#[derive(Debug, Clone, Copy)]
pub(super) struct HintCheck {
    id: u64,
    value: u64,
    at: Instant,
}

/// Whether linked segment `id`, the newest of `ids`, belongs to the chain: it is the first
/// one, or its predecessor is sealed (through its locator). A rollover, and a truncation or a
/// skip, link a segment before they seal its predecessor; a crash in between leaves a linked
/// segment that recovery removes, and whose first sequence number must not count meanwhile.
pub(super) fn confirmed(dir: &Path, ids: &[u64], id: u64) -> bool {
    if ids.first() == Some(&id) {
        return true;
    }
    let Some(previous) = id.checked_sub(1) else {
        return true;
    };
    match ShmReader::open(segment::segment_path(dir, previous)) {
        Ok(reader) => reader.located_closing().is_some(),
        // Reported when the reader reaches it.
        Err(_) => true,
    }
}

/// The chain's truncation epoch as the newest seal among the last two of `ids` names (the
/// last segment is the one appended to, unsealed while a writer holds it).
pub(super) fn chain_epoch(dir: &Path, ids: &[u64]) -> u64 {
    for &id in ids.iter().rev().take(2) {
        if let Ok(reader) = ShmReader::open(segment::segment_path(dir, id)) {
            if let Some((_, trailer, _)) = reader.located_closing() {
                return segment::trailer_epoch(&trailer);
            }
        }
    }
    0
}

impl JournalReader {
    /// The journal's truncation epoch as this reader last saw it: how many truncations
    /// ([`Journal::truncate_from`](super::super::Journal::truncate_from)) its chain holds. It
    /// is learnt when the reader is opened or moved, when it crosses into a segment, and when
    /// a truncation stops it; compare it with
    /// [`Journal::truncation_epoch`](super::super::Journal::truncation_epoch).
    ///
    /// ```
    /// use kekbit::journal::{Journal, JournalError};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::open(dir.path()).unwrap();
    /// journal.append(b"a").unwrap();
    /// journal.append(b"b").unwrap();
    /// let mut reader = journal.reader(0).unwrap();
    /// assert_eq!(reader.try_next().unwrap(), Some((0, &b"a"[..])));
    /// assert_eq!(reader.try_next().unwrap(), Some((1, &b"b"[..])));
    /// journal.truncate_from(1).unwrap();
    /// assert!(matches!(reader.try_next(), Err(JournalError::Truncated { from: 1, next: 2, .. })));
    /// assert_eq!(reader.truncation_epoch(), 1);
    /// ```
    pub fn truncation_epoch(&self) -> u64 {
        self.epoch
    }

    /// Moves the reader so that its next record is sequence number `seq`, as
    /// [`JournalReader::open`] would place a new reader: the way to go on after
    /// [`JournalError::Truncated`]. A `seq` before the journal's first record is refused with
    /// [`JournalError::Pruned`]; one beyond its last is waited for.
    ///
    /// ```
    /// use kekbit::journal::{Journal, JournalError};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::open(dir.path()).unwrap();
    /// for record in [&b"a"[..], b"b", b"c"] {
    ///     journal.append(record).unwrap();
    /// }
    /// let mut reader = journal.reader(0).unwrap();
    /// while reader.try_next().unwrap().is_some() {}
    /// journal.truncate_from(1).unwrap();
    /// journal.append(b"B").unwrap();
    /// assert!(matches!(reader.try_next(), Err(JournalError::Truncated { from: 1, .. })));
    /// reader.seek(1).unwrap();
    /// assert_eq!(reader.try_next().unwrap(), Some((1, &b"B"[..])));
    /// ```
    pub fn seek(&mut self, seq: u64) -> Result<(), JournalError> {
        self.current = None;
        self.next_seq = 0;
        self.skip_until = seq;
        self.returned = 0;
        self.truncated = None;
        self.failed = false;
        self.hint_checked = None;
        self.end_checked = None;
        match self.locate() {
            Err(e @ JournalError::Pruned { .. }) => Err(e),
            // Damage is reported by the next read, as after `open`.
            _ => Ok(()),
        }
    }

    /// Records from `from` on, some of which this reader returned, were discarded: the error
    /// to report now and at every read until [`seek`](JournalReader::seek).
    pub(super) fn report_truncated(&mut self, from: u64) -> JournalError {
        let from = self.truncated.map_or(from, |earlier| earlier.min(from));
        self.truncated = Some(from);
        JournalError::Truncated {
            dir: self.dir.clone(),
            from,
            next: self.next_sequence(),
        }
    }

    /// The limit (see `Current::limit`) of segment `id`, just entered: from the segments seen
    /// after it, or from the directory when none was.
    pub(super) fn limit_after(&mut self, id: u64) -> Result<u64, JournalError> {
        self.later.retain(|l| l.id > id);
        if self.later.is_empty() {
            self.refresh_later(id)?;
        }
        Ok(self.later.iter().map(|l| l.base).min().unwrap_or(u64::MAX))
    }

    /// Reads the headers of the segments after segment `id` (the linked ones the chain
    /// confirms), and the chain's epoch.
    fn refresh_later(&mut self, id: u64) -> Result<(), JournalError> {
        let ids: Vec<u64> = segment::list(&self.dir)?;
        let mut later = Vec::new();
        for &next in ids.iter().filter(|&&other| other > id) {
            match segment::header(&self.dir, next) {
                Ok(header) if header.is_pending() => break,
                Ok(header) => later.push(Linked {
                    id: next,
                    base: header.base_sequence(),
                }),
                // Removed meanwhile, or damaged: reported when the reader reaches it.
                Err(_) => break,
            }
        }
        if let Some(last) = later.last() {
            if !confirmed(&self.dir, &ids, last.id) {
                later.pop();
            }
        }
        let linked: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&other| other <= later.last().map_or(id, |l| l.id))
            .collect();
        self.epoch = self.epoch.max(chain_epoch(&self.dir, &linked));
        self.later = later;
        Ok(())
    }

    /// Before reading on in the current segment: whether its records still count. A
    /// `voided_from` hint at or before the reader's position sends it to the chain (at once
    /// for a new value, then at most every [`HINT_RECHECK`]) to learn where they stop. Past
    /// that point, the reader returned discarded records: [`JournalError::Truncated`]. Right
    /// at it, before a record, the reader moves to the segment that holds that sequence
    /// number now and `Ok(false)` says so. `Ok(true)`: read on here.
    pub(super) fn check_truncation(&mut self) -> Result<bool, JournalError> {
        if let Some(from) = self.truncated {
            return Err(self.report_truncated(from));
        }
        let current = self.current.as_ref().expect("located");
        let hint = current.reader.voided_from();
        if hint != 0 && hint - 1 <= current.reader.position() {
            let now = Instant::now();
            let due = self.hint_checked.is_none_or(|checked| {
                checked.id != current.id
                    || checked.value != hint
                    || now.duration_since(checked.at) >= HINT_RECHECK
            });
            if due {
                let id = current.id;
                self.hint_checked = Some(HintCheck {
                    id,
                    value: hint,
                    at: now,
                });
                self.refresh_later(id)?;
                let limit = self.later.iter().map(|l| l.base).min().unwrap_or(u64::MAX);
                self.current.as_mut().expect("located").limit = limit;
            }
        }
        let current = self.current.as_ref().expect("located");
        let limit = current.limit;
        if limit < self.returned {
            return Err(self.report_truncated(limit));
        }
        // Past the limit (while seeking, or after crossing a skip that a later truncation
        // undid), or at it with a verified record (not the seal, which leads on by itself, nor
        // damage, which the read reports: a damaged seal must not be taken for a truncation) or
        // a mark before one in front:
        // the records from here on were discarded, and the sequence numbers live on in a later
        // segment. No record between the last one this segment counts and the limit counts
        // anywhere (the segments after this one start at or after the limit), so the reader
        // goes on from the limit, or from further on if it was asked to.
        if limit < self.next_seq || (limit == self.next_seq && current.reader.at_verified_record())
        {
            self.skip_until = self.skip_until.max(self.returned).max(limit);
            self.current = None;
            return Ok(false);
        }
        Ok(true)
    }
}
