//! Finding records by their ordinal, and finding records again after damage, through the
//! resynchronisation marks of version 2 channels (docs/FORMAT.md, "Resynchronisation
//! marks"). Nothing here trusts a length it has not verified: marks only choose where
//! verification starts, and every record passed on the way to a target is checksummed.

use super::frame::{self, Frame};
use super::header::{MARK_LEN, OFF_CLOSED_AT};
use super::{ReadError, ShmReader};

/// Where [`ShmReader::seek_ordinal`] stopped short of its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeekStop {
    /// At the target record (or at the end of the data exactly there).
    Reached,
    /// At the end of the published (or, for a durable-only reader, durable) data, or at
    /// the closing marker, before the target: the records up to the target are not there.
    Short,
}

/// Where reading resumed after damage ([`ShmReader::resync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resynced {
    /// The ordinal of the first record lost (the one expected at the damaged position).
    pub(crate) first_lost: u64,
    /// The ordinal of the first record after the resumption point: records
    /// `first_lost..resumed` are lost.
    pub(crate) resumed: u64,
    /// The data-area offset of the mark where reading resumes.
    pub(crate) position: u64,
}

/// A mark found by scanning, verified at its position.
#[derive(Debug, Clone, Copy)]
struct Found {
    position: u64,
    ordinal: u64,
}

/// The low half of a mark's header word: kind 3, length 16.
fn mark_meta() -> u32 {
    frame::meta(frame::Kind::Mark, MARK_LEN as u32)
}

impl ShmReader {
    /// The number of data records before the reader's position.
    pub(crate) fn ordinal(&self) -> u64 {
        self.cursor.ordinal
    }

    /// Moves the reader forward to the data record with ordinal `target` (the number of data
    /// records before it), verifying every record it passes. With marks, once a block's worth
    /// of walking has not reached the target, a binary search over the mark blocks finds the
    /// last mark at or before it, so that at most about two blocks of records are verified;
    /// without, every record from the reader's position is. A target at or before the reader's ordinal leaves it where it is.
    ///
    /// Damage on the way is an error; the reader then stands at the damaged record, with its
    /// ordinal, so that [`resync`](ShmReader::resync) can go on from there.
    pub(crate) fn seek_ordinal(&mut self, target: u64) -> Result<SeekStop, ReadError> {
        if target <= self.cursor.ordinal || self.cursor.closed.is_some() {
            return Ok(SeekStop::Reached);
        }
        // A target within a block of the reader is reached by walking; one further off
        // is searched for among the marks first (the search touches a page per probe).
        let shift = self.chan.header.mark_shift();
        let mut search_from = match shift {
            0 => u64::MAX,
            _ => self.cursor.position + (1 << shift),
        };
        while self.cursor.ordinal < target {
            let at = self.cursor.position;
            if at >= search_from {
                search_from = u64::MAX;
                if let Some(mark) = self.last_mark_at_most(target) {
                    self.cursor.position = mark.position;
                    self.cursor.ordinal = mark.ordinal;
                    continue;
                }
            }
            let (end, data) = match self.chan.frame_or_end(at)? {
                Frame::Data { len, .. } => (at + len, true),
                Frame::Mark { ordinal, key } => {
                    self.chan
                        .check_mark(at, ordinal, key, self.cursor.ordinal)?;
                    (at + frame::frame_len(MARK_LEN as u32), false)
                }
                Frame::End | Frame::Closed { .. } => return Ok(SeekStop::Short),
            };
            if !self.cursor.visible(&self.chan, end) {
                return Ok(SeekStop::Short);
            }
            self.cursor.position = end;
            self.cursor.ordinal += u64::from(data);
        }
        Ok(SeekStop::Reached)
    }

    /// Verifies and steps over the resynchronisation marks at the reader's position (at most
    /// one, unless damage chained them), so that what the position then holds is a record, a
    /// seal, damage or the end of the data. A mark a durable-only reader may not see yet is
    /// left in place. Damage in a mark is an error, the reader staying at it.
    pub(crate) fn skip_marks(&mut self) -> Result<(), ReadError> {
        while self.cursor.closed.is_none() {
            let at = self.cursor.position;
            let word = self.chan.load_live(super::header::HEADER_LEN + at as usize);
            if frame::kind_of(word) != Some(frame::Kind::Mark) {
                break;
            }
            let Frame::Mark { ordinal, key } = self.chan.frame_or_end(at)? else {
                break;
            };
            self.chan
                .check_mark(at, ordinal, key, self.cursor.ordinal)?;
            let end = at + frame::frame_len(MARK_LEN as u32);
            if !self.cursor.visible(&self.chan, end) {
                break;
            }
            self.cursor.position = end;
        }
        Ok(())
    }

    /// After a read reported damage at the reader's position, moves the reader to the first
    /// valid mark after it, if there is one within the data that is safe to scan, and says
    /// which records were lost. `None` when the channel has no marks, or no mark follows.
    pub(crate) fn resync(&mut self) -> Option<Resynced> {
        if self.chan.header.mark_shift() == 0 || self.cursor.closed.is_some() {
            return None;
        }
        let from = self.cursor.position + frame::RECORD_ALIGN;
        let end = self.scan_end();
        let shift = self.chan.header.mark_shift();
        let mut block = from >> shift;
        while block << shift < end {
            if let Some(mark) = self.mark_in_block(block, from, end) {
                let first_lost = self.cursor.ordinal;
                if mark.ordinal < first_lost {
                    // A mark that goes back is no place to resume.
                    block += 1;
                    continue;
                }
                self.cursor.position = mark.position;
                self.cursor.ordinal = mark.ordinal;
                return Some(Resynced {
                    first_lost,
                    resumed: mark.ordinal,
                    position: mark.position,
                });
            }
            block += 1;
        }
        None
    }

    /// The last mark after the reader's position whose ordinal is at most `target`, by a
    /// binary search over mark blocks. A block where no mark is found (inside a long record,
    /// past the data, or with its mark damaged) sends the search towards the reader, which
    /// costs verification time but never correctness: the caller verifies from the mark.
    fn last_mark_at_most(&self, target: u64) -> Option<Found> {
        let shift = self.chan.header.mark_shift();
        if shift == 0 {
            return None;
        }
        let from = self.cursor.position + frame::RECORD_ALIGN;
        let end = self.scan_end();
        let (mut lo, mut hi) = (from >> shift, end.div_ceil(1 << shift));
        let mut best = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.mark_in_block(mid, from, end) {
                Some(mark) if mark.ordinal <= target && mark.ordinal >= self.cursor.ordinal => {
                    best = Some(mark);
                    lo = mid + 1;
                }
                _ => hi = mid,
            }
        }
        best
    }

    /// The mark of block `block`, looked for at 8-aligned offsets in `[from, end)`: a word
    /// with a mark's kind and length whose record verifies at that offset and whose key is
    /// the channel's. At most one block's words are loaded.
    fn mark_in_block(&self, block: u64, from: u64, end: u64) -> Option<Found> {
        let shift = self.chan.header.mark_shift();
        let start = (block << shift).max(from);
        let stop = ((block + 1) << shift).min(end);
        let mut at = start.next_multiple_of(frame::RECORD_ALIGN);
        while at < stop {
            if self.chan.load_live(super::header::HEADER_LEN + at as usize) as u32 == mark_meta() {
                if let Ok(Frame::Mark { ordinal, key }) = self.chan.frame_at(at) {
                    if key == self.chan.header.writer_id() {
                        return Some(Found {
                            position: at,
                            ordinal,
                        });
                    }
                }
            }
            at += frame::RECORD_ALIGN;
        }
        None
    }

    /// How far it is safe and useful to scan for marks: to the closing marker of a sealed
    /// channel; to the end of the data area when no writer holds the channel (nothing is
    /// being written into it; at most as far as the file has storage allocated); otherwise only to the durable watermark, because bytes past
    /// the published records may be being copied in by the writer, which a scan must not
    /// read concurrently. Never past the reserve kept for the closing marker.
    fn scan_end(&self) -> u64 {
        let limit = self.chan.header.capacity() - frame::TRAILER_RESERVE;
        if let Some(sealed) = self.chan.load_live(OFF_CLOSED_AT).checked_sub(1) {
            return sealed.min(limit);
        }
        if !self.writer_alive() {
            // Bytes never allocated hold no mark: a sparse file claiming a huge capacity
            // costs a scan of what it really stores, not of what it claims.
            let allocated = self.chan.allocated_bytes();
            return limit.min(allocated.saturating_sub(super::header::HEADER_LEN as u64));
        }
        self.chan.durable_watermark().min(limit)
    }
}
