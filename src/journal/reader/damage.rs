//! What a reader does after damage: describe where it stands (for recovery and replay to
//! judge a torn tail), resume at the next resynchronisation mark, or give up the rest of a
//! segment, or a whole unusable segment, and move to the next one that fits the chain.

use std::path::PathBuf;

use super::{segment, Current, JournalReader};
use crate::core::{ChannelError, Reader, ShmReader};
use crate::journal::JournalError;

/// Where a reader stands when it meets damage: what recovery needs to decide whether the
/// damage is a torn tail and how much to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DamageContext {
    pub(crate) segment: u64,
    pub(crate) path: PathBuf,
    /// Data-area offset of the damaged record.
    pub(crate) offset: u64,
    /// End of the bytes written in the segment (non-zero words).
    pub(crate) extent: u64,
    /// The segment's durable watermark.
    pub(crate) durable: u64,
    /// Whether no later segment exists.
    pub(crate) is_last: bool,
}

impl JournalReader {
    /// The id of the segment being read.
    pub(crate) fn segment_id(&self) -> Option<u64> {
        self.current.as_ref().map(|c| c.id)
    }

    /// Describes the reader's position, after a read reported damage there.
    pub(crate) fn damage_context(&self) -> Result<Option<DamageContext>, JournalError> {
        let Some(current) = &self.current else {
            return Ok(None);
        };
        let offset = current.reader.position();
        // A segment prepared ahead (pending) is not there yet for readers (docs/FORMAT.md).
        let mut is_last = true;
        for id in segment::list(&self.dir)?
            .into_iter()
            .filter(|&id| id > current.id)
        {
            if !matches!(segment::header(&self.dir, id), Ok(h) if h.is_pending()) {
                is_last = false;
                break;
            }
        }
        Ok(Some(DamageContext {
            segment: current.id,
            path: current.reader.path().to_path_buf(),
            offset,
            extent: current.reader.written_extent(offset),
            durable: current.reader.durable_position(),
            is_last,
        }))
    }

    /// After a read reported damage inside the current segment, resumes at the segment's
    /// next resynchronisation mark (docs/FORMAT.md): returns the sequence numbers lost,
    /// `first..resumed` (only those at or after where the reader was asked to start), and
    /// the data-area offset where reading resumes. `None` when no mark follows (the segment
    /// has none, or none after the damage within the data that is safe to scan).
    pub(crate) fn resync(&mut self) -> Option<(u64, u64, u64)> {
        let current = self.current.as_mut()?;
        let resynced = current.reader.resync()?;
        let base = current.reader.header().base_sequence();
        let first = (base + resynced.first_lost).max(self.skip_until);
        let resumed = base + resynced.resumed;
        self.next_seq = resumed;
        Some((first, resumed.max(first), resynced.position))
    }

    /// The first sequence number after the current segment, if its seal can be found
    /// without reading it (through the header's locator): how far the records lost to
    /// damage with no later mark reach.
    pub(crate) fn sealed_end(&self) -> Option<u64> {
        let current = self.current.as_ref()?;
        let (_, trailer, _) = current.reader.located_closing()?;
        segment::parse_trailer(&trailer).ok().flatten()
    }

    /// Gives up the rest of the current (damaged) segment and moves to the start of the
    /// next one, checking that it belongs to the same journal and follows this segment.
    /// Returns the next segment's first sequence number, or `None` if there is no next
    /// segment (the reader then stays where it is).
    pub(crate) fn skip_segment(&mut self) -> Result<Option<u64>, JournalError> {
        let Some(current) = &self.current else {
            return Ok(None);
        };
        let Some(next_id) = segment::successor(current.id) else {
            return Ok(None);
        };
        let next_path = segment::segment_path(&self.dir, next_id);
        let journal_id = current.reader.header().writer_id();
        let mut reader = match ShmReader::open(&next_path) {
            Ok(reader) => reader,
            Err(ChannelError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let header = reader.header();
        if header.is_pending() {
            return Ok(None);
        }
        if header.writer_id() != journal_id
            || header.previous_channel_id() != current.id
            || header.base_sequence() < self.next_seq
        {
            return Err(JournalError::BrokenChain {
                segment: next_path,
                reason: format!(
                    "after a damaged segment: journal {:#x}, previous segment {}, first \
                     sequence {}",
                    header.writer_id(),
                    header.previous_channel_id(),
                    header.base_sequence()
                ),
            });
        }
        let base = header.base_sequence();
        reader.set_durable_only(self.durable_only);
        self.next_seq = base;
        self.skip_until = self.skip_until.max(base);
        let limit = self.limit_after(next_id)?;
        self.hint_checked = None;
        self.current = Some(Current {
            reader,
            id: next_id,
            limit,
        });
        Ok(Some(base))
    }
}

impl JournalReader {
    /// After an error about a segment that cannot be opened or does not fit the chain (not
    /// a damaged record inside one), gives up that segment and any unusable ones after it,
    /// and moves to the start of the next segment that opens, belongs to the journal, is
    /// named for itself and does not go back in sequence. Returns the first segment given up
    /// and the next one's first sequence number; `None` for the second when no usable
    /// segment follows (the reader then stays where it was).
    pub(crate) fn skip_broken(&mut self) -> Result<(u64, Option<u64>), JournalError> {
        let ids = segment::list(&self.dir)?;
        let start = match &self.current {
            Some(current) => current.id.saturating_add(1),
            None => ids.first().copied().unwrap_or(1),
        };
        for &id in ids
            .iter()
            .filter(|&&id| id > start || (id == start && self.current.is_some()))
        {
            let Ok(mut reader) = ShmReader::open(segment::segment_path(&self.dir, id)) else {
                continue;
            };
            let header = reader.header();
            let fits = !header.is_pending()
                && header.channel_id() == id
                && self.journal_id.is_none_or(|j| header.writer_id() == j)
                && header.base_sequence() >= self.next_seq;
            if !fits {
                continue;
            }
            let base = header.base_sequence();
            reader.set_durable_only(self.durable_only);
            self.next_seq = base;
            self.skip_until = self.skip_until.max(base);
            let limit = self.limit_after(id)?;
            self.hint_checked = None;
            self.current = Some(Current { reader, id, limit });
            return Ok((start, Some(base)));
        }
        Ok((start, None))
    }
}
