//! Crossing from a segment read to its seal into its successor: the seal verified, the link
//! checked, a missing successor told apart (not created yet, pruned, a hole in the chain).

use super::{Current, JournalReader};
use crate::core::{ChannelError, ReadError, Reader, ShmReader};
use crate::journal::segment::{self, Link};
use crate::journal::JournalError;

impl JournalReader {
    /// Verifies the current segment's seal and moves to its successor; `false` if the
    /// successor is not there yet.
    pub(super) fn cross(&mut self) -> Result<bool, JournalError> {
        let current = self.current.as_mut().expect("located");
        match current.reader.try_read() {
            Err(ReadError::Closed { .. }) => {}
            Err(source) => return Err(JournalError::Corrupt { source }),
            // Not yet durable, for a durable-only reader.
            Ok(_) => return Ok(false),
        }
        let (trailer, checksum) = current
            .reader
            .closing()
            .expect("a closed reader has a marker");
        let path = current.reader.path().to_path_buf();
        let named =
            segment::parse_trailer(trailer).map_err(|reason| JournalError::BrokenChain {
                segment: path.clone(),
                reason,
            })?;
        let epoch = segment::trailer_epoch(trailer);
        let link = Link {
            journal_id: self
                .journal_id
                .unwrap_or_else(|| current.reader.header().writer_id()),
            previous_id: current.id,
            // The seal names where the chain goes on: lower than the records read after a
            // truncation, higher after a skip.
            base: named.unwrap_or(self.next_seq),
            previous_checksum: checksum,
        };
        let current_id = current.id;
        self.epoch = self.epoch.max(epoch);
        if link.base < self.returned {
            return Err(self.report_truncated(link.base));
        }
        let next_base = link.base;
        // The last possible segment: nothing can follow it.
        let Some(next_id) = segment::successor(current_id) else {
            return Ok(false);
        };
        let next_path = segment::segment_path(&self.dir, next_id);
        let mut reader = match ShmReader::open(&next_path) {
            Ok(reader) => reader,
            Err(ChannelError::NotFound { .. }) => return self.successor_gone(next_id),
            Err(e) => return Err(e.into()),
        };
        if reader.header().is_pending() {
            return Ok(false);
        }
        segment::check_link(reader.header(), &link, &next_path)?;
        reader.set_durable_only(self.durable_only);
        self.next_seq = next_base;
        let limit = self.limit_after(next_id)?;
        self.hint_checked = None;
        let left = self.current.replace(Current {
            reader,
            id: next_id,
            limit,
        });
        // Read to its seal: unmapped off this thread, which goes on reading.
        if let Some(left) = left {
            left.reader.release_later();
        }
        Ok(true)
    }

    /// Segment `next_id`, the successor of the segment just read to its seal, is not there:
    /// `Ok(false)` if no later segment exists either (not created yet); [`JournalError::Pruned`]
    /// if every segment up to a later one was removed and that one starts after the records
    /// read so far (pruning removes the oldest segments, this one included, while the reader
    /// still had it open); [`JournalError::MissingSegment`] for a hole in the chain.
    fn successor_gone(&self, next_id: u64) -> Result<bool, JournalError> {
        let ids = segment::list(&self.dir)?;
        let Some(&later) = ids.iter().find(|&&id| id > next_id) else {
            return Ok(false);
        };
        let missing = JournalError::MissingSegment {
            dir: self.dir.clone(),
            id: next_id,
        };
        if ids[0] != later {
            return Err(missing);
        }
        match segment::header(&self.dir, later) {
            Ok(header) if header.base_sequence() >= self.next_seq => Err(JournalError::Pruned {
                dir: self.dir.clone(),
                requested: self.next_seq,
                first: header.base_sequence(),
            }),
            _ => Err(missing),
        }
    }
}
