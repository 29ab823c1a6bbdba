//! Reading a journal: from any sequence number, across segments, live.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::segment;
use super::truncate::Linked;
use super::{JournalError, Record};
use crate::core::{Peek, ReadError, Reader, SeekStop, ShmReader};

mod cross;
mod damage;
mod live;
mod truncation;
pub use live::Follow;
use truncation::HintCheck;

/// The segment being read.
struct Current {
    reader: ShmReader,
    id: u64,
    /// The sequence number where its records stop counting: the lowest first sequence number
    /// of the segments after it, as last seen (`u64::MAX` for none). A truncating link lowers
    /// it below the records the segment holds (docs/FORMAT.md, "The effective chain").
    limit: u64,
}

/// Reads a journal's records in order, with their sequence numbers, from any sequence
/// number on, in this process or another, while the writer appends.
///
/// [`try_next`](JournalReader::try_next) never blocks: it returns `Ok(None)` when the
/// reader has caught up. [`next_timeout`](JournalReader::next_timeout) waits, and tells
/// "nothing yet" from a journal its writer closed or a writer that died;
/// [`follow`](JournalReader::follow) is a blocking iterator. The reader
/// follows the writer across segment rollovers, checking that each segment is the one its
/// predecessor's seal leads to, and keeps only the segment it reads mapped (a segment it has
/// read to its seal is unmapped by a background thread, `kekbit-unmap`, so that the reader
/// does not wait for it). As an [`Iterator`] it yields owned copies and ends when caught up.
///
/// ```
/// use kekbit::journal::{Journal, JournalReader};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::open(dir.path()).unwrap();
/// for i in 0..5u8 {
///     journal.append(&[i]).unwrap();
/// }
/// let reader = JournalReader::open(dir.path(), 2).unwrap();
/// let records: Vec<(u64, Vec<u8>)> = reader.map(Result::unwrap).collect();
/// assert_eq!(records, [(2, vec![2]), (3, vec![3]), (4, vec![4])]);
/// ```
pub struct JournalReader {
    dir: PathBuf,
    current: Option<Current>,
    next_seq: u64,
    skip_until: u64,
    durable_only: bool,
    failed: bool,
    /// The segment whose end of data was last checked for a missing seal, and when.
    end_checked: Option<(u64, Instant)>,
    /// The journal's id, from its newest segment, once known.
    journal_id: Option<u64>,
    /// The segments after the current one, with their first sequence numbers, as last seen.
    later: Vec<Linked>,
    /// One past the sequence number of the last record returned (0 before the first, and
    /// after a seek): a truncation below it discarded records this reader returned.
    returned: u64,
    /// Set once records this reader returned were discarded by a truncation: the first
    /// sequence number discarded, reported until [`JournalReader::seek`].
    truncated: Option<u64>,
    /// The truncation epoch of the chain as last seen.
    epoch: u64,
    /// The last `voided_from` hint of the current segment that was checked against the chain.
    hint_checked: Option<HintCheck>,
    /// The journal's doorbell, mapped the first time a wait sleeps (see `live.rs`).
    bell: live::Doorbell,
}

/// How often the same end of data is checked for a missing seal.
const END_CHECK_INTERVAL: Duration = Duration::from_millis(50);

impl JournalReader {
    /// A reader of the journal in `dir` whose first record will be sequence number `from`.
    /// The segment holding it is found by a binary search over the segments' first sequence
    /// numbers, then a scan inside that one segment. A `from` beyond the last record is
    /// allowed: the reader waits for it. A journal with no segment yet is allowed too.
    ///
    /// ```
    /// use kekbit::journal::{Journal, JournalReader};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::open(dir.path()).unwrap();
    /// let mut reader = JournalReader::open(dir.path(), 1).unwrap();
    /// assert_eq!(reader.try_next().unwrap(), None);
    /// journal.append(b"zero").unwrap();
    /// journal.append(b"one").unwrap();
    /// assert_eq!(reader.try_next().unwrap(), Some((1, &b"one"[..])));
    /// ```
    pub fn open(dir: impl AsRef<Path>, from: u64) -> Result<JournalReader, JournalError> {
        let mut reader = JournalReader {
            dir: dir.as_ref().to_path_buf(),
            current: None,
            next_seq: 0,
            skip_until: from,
            durable_only: false,
            failed: false,
            end_checked: None,
            journal_id: None,
            later: Vec::new(),
            returned: 0,
            truncated: None,
            epoch: 0,
            hint_checked: None,
            bell: live::Doorbell::default(),
        };
        // Damage found while locating is reported by the first read, so that the records
        // before it can still be read; only a pruned start is refused here.
        if let Err(e @ JournalError::Pruned { .. }) = reader.locate() {
            return Err(e);
        }
        Ok(reader)
    }

    /// When `true`, returns only records the writer has made durable. Defaults to `false`:
    /// every published record.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// let mut reader = journal.reader(0).unwrap();
    /// reader.set_durable_only(true);
    /// journal.append(b"x").unwrap();
    /// assert_eq!(reader.try_next().unwrap(), None);
    /// journal.sync().unwrap();
    /// assert_eq!(reader.try_next().unwrap(), Some((0, &b"x"[..])));
    /// ```
    pub fn set_durable_only(&mut self, durable_only: bool) {
        self.durable_only = durable_only;
        if let Some(current) = &mut self.current {
            current.reader.set_durable_only(durable_only);
        }
    }

    /// The journal's directory.
    #[cfg(feature = "async")]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sequence number of the next record this reader returns.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// journal.append(b"x").unwrap();
    /// let mut reader = journal.reader(0).unwrap();
    /// reader.try_next().unwrap();
    /// assert_eq!(reader.next_sequence(), 1);
    /// ```
    pub fn next_sequence(&self) -> u64 {
        self.next_seq.max(self.skip_until)
    }

    /// The next record and its sequence number, or `Ok(None)` if there is none yet. Damage
    /// (a record failing its checksum, a segment that does not follow its predecessor, a
    /// missing segment) is an error; the reader stays where it was. A reader whose next
    /// segment was pruned while it read the one before gets [`JournalError::Pruned`], as a
    /// new reader from its position would.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// let mut reader = journal.reader(0).unwrap();
    /// assert_eq!(reader.try_next().unwrap(), None);
    /// journal.append(b"x").unwrap();
    /// assert_eq!(reader.try_next().unwrap(), Some((0, &b"x"[..])));
    /// ```
    #[inline(always)]
    pub fn try_next(&mut self) -> Result<Option<(u64, &[u8])>, JournalError> {
        // The common case first: a data record waits at the position, so `advance` would find
        // no seal to cross, nothing to skip and no end of data to check; read it directly.
        // Always inlined into the caller's loop with the verified read (`frame::data_at`);
        // the rest stays out of line. With a plain `#[inline]` the compiler kept it out of a
        // loop that also compares each record (benches/compare's W5: 6% slower).
        if !self.at_record() && !self.advance()? {
            return Ok(None);
        }
        let Some(current) = self.current.as_mut() else {
            return Ok(None);
        };
        match current.reader.try_read() {
            Ok(Some(record)) => {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.returned = self.next_seq;
                Ok(Some((seq, record)))
            }
            Ok(None) => Ok(None),
            Err(source) => read_failed(source),
        }
    }

    /// Like [`try_next`](JournalReader::try_next), but the record comes as a [`Record`]: a
    /// handle that owns its place in the segment's shared mapping, outlives this reader and
    /// can be sent to other threads, without copying the payload.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// let mut reader = journal.reader(0).unwrap();
    /// assert!(reader.next_record().unwrap().is_none());
    /// journal.append(b"x").unwrap();
    /// let (seq, record) = reader.next_record().unwrap().unwrap();
    /// assert_eq!((seq, &record[..]), (0, &b"x"[..]));
    /// ```
    pub fn next_record(&mut self) -> Result<Option<(u64, Record)>, JournalError> {
        let Some((seq, payload)) = self.try_next()? else {
            return Ok(None);
        };
        let (addr, len) = (payload.as_ptr() as usize, payload.len());
        let current = self.current.as_ref().expect("a record was read");
        Ok(Some((seq, Record::new(current.reader.pin(addr, len)))))
    }

    /// Whether the word at the reader's position announces a record (data, or damage that is
    /// not a closing marker) and no record before `skip_until` remains to be skipped: then
    /// `advance` has nothing to do (no seal to cross, no end of data to check) and would
    /// return `true`, so the caller may read at once. One acquire load of the header word.
    #[inline]
    fn at_record(&self) -> bool {
        match &self.current {
            Some(current) => {
                // No truncation stops the reader here: it is below its segment's limit, and
                // no `voided_from` hint lies at or before its position.
                let hint = current.reader.voided_from();
                self.truncated.is_none()
                    && self.next_seq >= self.skip_until
                    && self.next_seq < current.limit
                    && (hint == 0 || hint - 1 > current.reader.position())
                    && current.reader.at_record()
            }
            None => false,
        }
    }

    /// Whether the next `try_next` has something to return (or an error to report).
    fn ready(&mut self) -> Result<bool, JournalError> {
        loop {
            if !self.advance()? {
                return Ok(false);
            }
            let Some(current) = self.current.as_mut() else {
                return Ok(false);
            };
            // A seal published since `advance` looked is crossed by the next `advance`:
            // only a record counts as ready. One load decides (two could see nothing, then
            // a seal published in between, and report it as a record).
            match current.reader.peek() {
                Peek::Closing => continue,
                Peek::Record => return Ok(true),
                Peek::Nothing => return Ok(false),
            }
        }
    }

    /// Opens the segment that holds `skip_until`; `false` if the journal has none yet.
    /// Segments removed by a concurrent prune while this looks are looked for again.
    fn locate(&mut self) -> Result<bool, JournalError> {
        let mut attempts = 0;
        loop {
            match self.locate_once() {
                Err(JournalError::MissingSegment { .. }) if attempts < 3 => attempts += 1,
                other => return other,
            }
        }
    }

    fn locate_once(&mut self) -> Result<bool, JournalError> {
        let mut ids = segment::list(&self.dir)?;
        while let Some(&last) = ids.last() {
            match segment::header(&self.dir, last) {
                Ok(header) if header.is_pending() => {
                    ids.pop();
                }
                // Linked, but its predecessor not sealed yet (a rollover or a truncation
                // under way, or one a crash interrupted): not part of the chain yet.
                Ok(_) if !truncation::confirmed(&self.dir, &ids, last) => {
                    ids.pop();
                }
                _ => break,
            }
        }
        let Some(&first) = ids.first() else {
            return Ok(false);
        };
        let target = self.skip_until;
        let journal_id = self.journal_id(&ids)?;
        self.journal_id = Some(journal_id);
        // Back from the newest segment to the newest one whose first sequence number is at
        // most the target: every later segment starts after the target, and the lowest of
        // their first sequence numbers is where this one's records stop counting (a
        // truncation links a segment that starts below its predecessor's records). Without
        // truncations this reads the headers of the segments after the target's, which the
        // reader will read anyway. A segment that cannot be read on the way ends the search
        // at the first segment: the chain is then walked from there, and the damage
        // reported when it is reached.
        let mut later = Vec::new();
        let mut owner = None;
        for &id in ids.iter().rev() {
            match segment::header(&self.dir, id) {
                Ok(header) if header.base_sequence() <= target => {
                    owner = Some(id);
                    break;
                }
                Ok(header) => later.push(Linked {
                    id,
                    base: header.base_sequence(),
                }),
                Err(e @ JournalError::MissingSegment { .. }) => return Err(e),
                Err(_) => {
                    owner = Some(first);
                    later.clear();
                    break;
                }
            }
        }
        later.reverse();
        let lowest_later = later.iter().map(|l| l.base).min().unwrap_or(u64::MAX);
        let Some(id) = owner else {
            return Err(JournalError::Pruned {
                dir: self.dir.clone(),
                requested: target,
                first: lowest_later,
            });
        };
        // A header named for another segment is damage, reported by the first read.
        let base = segment::header(&self.dir, id)?.base_sequence();
        if base > target {
            return Err(JournalError::Pruned {
                dir: self.dir.clone(),
                requested: target,
                first: base,
            });
        }
        let path = segment::segment_path(&self.dir, id);
        let mut reader = ShmReader::open(&path)?;
        if reader.header().writer_id() != journal_id {
            return Err(JournalError::BrokenChain {
                segment: path,
                reason: format!(
                    "segment belongs to journal {:#x}, the journal's newest segment to {:#x}",
                    reader.header().writer_id(),
                    journal_id
                ),
            });
        }
        reader.set_durable_only(self.durable_only);
        self.next_seq = reader.header().base_sequence();
        self.later = later;
        self.hint_checked = None;
        self.epoch = self.epoch.max(truncation::chain_epoch(&self.dir, &ids));
        self.current = Some(Current {
            reader,
            id,
            limit: lowest_later,
        });
        Ok(true)
    }

    /// The journal's id: the one most of the first, second and last segments name (the
    /// first's when they all differ). A single foreign segment at either end is outvoted by
    /// its neighbours, so it is reported when reached instead of hiding the journal.
    fn journal_id(&self, ids: &[u64]) -> Result<u64, JournalError> {
        let mut probes = vec![ids[0]];
        if ids.len() > 1 {
            probes.push(ids[1]);
        }
        if ids.len() > 2 {
            probes.push(ids[ids.len() - 1]);
        }
        let named: Vec<u64> = probes
            .iter()
            .filter_map(|&id| segment::header(&self.dir, id).ok())
            .map(|h| h.writer_id())
            .collect();
        let Some(&first) = named.first() else {
            return segment::header(&self.dir, ids[0]).map(|h| h.writer_id());
        };
        Ok(named
            .iter()
            .copied()
            .find(|&id| named.iter().filter(|&&other| other == id).count() * 2 > named.len())
            .unwrap_or(first))
    }

    /// Crosses closing markers and skips records before `skip_until`; `false` if nothing
    /// is available now.
    #[inline(never)]
    fn advance(&mut self) -> Result<bool, JournalError> {
        loop {
            if self.current.is_none() && !self.locate()? {
                return Ok(false);
            }
            let current = self.current.as_mut().expect("located");
            // A mark may stand before a seal: step over it, so that the seal is seen here.
            current
                .reader
                .skip_marks()
                .map_err(|source| JournalError::Corrupt { source })?;
            if !self.check_truncation()? {
                continue;
            }
            let current = self.current.as_mut().expect("located");
            if current.reader.at_closing_marker() {
                if !self.cross()? {
                    return Ok(false);
                }
                continue;
            }
            if self.next_seq >= self.skip_until {
                self.check_unsealed_end()?;
                return Ok(true);
            }
            // Seeking: every record passed is verified, from the last resynchronisation
            // mark before the target where the segment has marks (docs/FORMAT.md).
            let base = current.reader.header().base_sequence();
            let stop = current.reader.seek_ordinal(self.skip_until - base);
            self.next_seq = base + current.reader.ordinal();
            match stop {
                Ok(SeekStop::Reached) => {}
                Ok(SeekStop::Short) => {
                    if current.reader.at_closing_marker() {
                        continue;
                    }
                    self.check_unsealed_end()?;
                    return Ok(false);
                }
                Err(source) => return Err(JournalError::Corrupt { source }),
            }
        }
    }

    /// At the end of the current segment's published data: if the next segment already holds
    /// a record, this segment lost its seal, since the writer publishes a segment's seal
    /// before it appends to the next one. Checked at the first end of data met in a segment,
    /// then at most every [`END_CHECK_INTERVAL`] while the reader stays in that segment.
    fn check_unsealed_end(&mut self) -> Result<(), JournalError> {
        let current = self.current.as_ref().expect("located");
        if !current.reader.at_end() {
            return Ok(());
        }
        let (id, position) = (current.id, current.reader.position());
        // Throttled per segment, not per position: a reader at the live tail reaches a new
        // end of data after every record, and opening the next segment each time would cost
        // an open, a map and an unmap per record. A check that finds proof reports at once,
        // and a segment has at most one place where its chain can break.
        let now = Instant::now();
        if let Some((checked, when)) = self.end_checked {
            if checked == id && now - when < END_CHECK_INTERVAL {
                return Ok(());
            }
        }
        self.end_checked = Some((id, now));
        let Some(next_id) = segment::successor(id) else {
            return Ok(());
        };
        let Ok(mut next) = ShmReader::open(segment::segment_path(&self.dir, next_id)) else {
            return Ok(());
        };
        if next.header().is_pending() || !next.has_next() {
            return Ok(());
        }
        // The writer publishes a segment's seal before it appends to the next one. Having
        // seen a record there, look again here: a seal published meanwhile is visible now.
        if !current.reader.at_end() {
            return Ok(());
        }
        Err(JournalError::Unsealed {
            segment: current.reader.path().to_path_buf(),
            position,
            next: next_id,
        })
    }
}

/// What `try_next` makes of a failed read: a seal published since `advance` looked is crossed
/// by the next call; anything else is damage.
#[cold]
#[inline(never)]
fn read_failed<T>(source: ReadError) -> Result<Option<T>, JournalError> {
    match source {
        ReadError::Closed { .. } => Ok(None),
        source => Err(JournalError::Corrupt { source }),
    }
}

impl Iterator for JournalReader {
    type Item = Result<(u64, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.try_next() {
            Ok(Some((seq, record))) => Some(Ok((seq, record.to_vec()))),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl std::fmt::Debug for JournalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalReader")
            .field("dir", &self.dir)
            .field("segment", &self.current.as_ref().map(|c| c.id))
            .field("next_sequence", &self.next_sequence())
            .finish()
    }
}
