//! Waiting for records: the first record present, timed waits that tell "nothing yet" from
//! "no writer", and the blocking [`Follow`] iterator.

use std::path::Path;
use std::time::{Duration, Instant};

use super::super::{bell, segment};
use super::{JournalError, JournalReader};
use crate::core::Reader;
use crate::mmap::Bell;

/// How often a waiting reader looks again whether the journal's writer closed it or died.
const STATUS_INTERVAL: Duration = Duration::from_millis(50);

/// Polls of a wait that spin or yield before it sleeps (half spin, half yield).
const BUSY_POLLS: u32 = 128;

/// The first pause of a wait that sleeps without the doorbell; each next one is twice as
/// long, up to [`MAX_PAUSE`] (reached after about 2 ms of sleeping).
const FIRST_PAUSE: Duration = Duration::from_micros(16);

/// The longest pause between two polls of a wait without the doorbell.
const MAX_PAUSE: Duration = Duration::from_millis(1);

/// The journal's doorbell (docs/FORMAT.md, "The doorbell file") as a reader knows it: mapped
/// the first time one of its waits sleeps; when it cannot be (no file yet, no write
/// permission), the reader polls and tries again at most every [`STATUS_INTERVAL`].
#[derive(Default)]
pub(super) enum Doorbell {
    #[default]
    Untried,
    Missing(Instant),
    Mapped(Bell),
}

impl Doorbell {
    /// The mapped bell of the journal in `dir`, mapping it if it is time to try.
    fn get(&mut self, dir: &Path) -> Option<&Bell> {
        let retry = match self {
            Doorbell::Untried => true,
            Doorbell::Missing(at) => at.elapsed() >= STATUS_INTERVAL,
            Doorbell::Mapped(_) => false,
        };
        if retry {
            *self = match bell::open(dir, false) {
                Some(bell) => Doorbell::Mapped(bell),
                None => Doorbell::Missing(Instant::now()),
            };
        }
        match self {
            Doorbell::Mapped(bell) => Some(bell),
            _ => None,
        }
    }
}

/// How long one wait of [`Follow`] lasts before it starts the next (it returns only with a
/// record or an error; this only bounds each inner wait).
const FOLLOW_WAIT: Duration = Duration::from_secs(1);

impl JournalReader {
    /// A reader of the journal in `dir` whose first record is the first one the journal
    /// still holds, whatever its sequence number (records before it may have been pruned).
    /// If the journal holds no record (it is empty, or pruning removed every record), the
    /// reader starts at the sequence number the next record will have, and waits for it;
    /// a journal with no segment yet starts at 0.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal, JournalReader};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().segment_capacity(4096).max_record_len(1000)
    ///     .durability(Durability::Never).open(dir.path()).unwrap();
    /// for _ in 0..10 {
    ///     journal.append(&[7u8; 1000]).unwrap(); // four records per segment
    /// }
    /// journal.prune_before(9).unwrap(); // removes the segments holding 0 to 7
    /// let mut reader = JournalReader::open_first(dir.path()).unwrap();
    /// assert_eq!(reader.next_sequence(), 8);
    /// assert_eq!(reader.try_next().unwrap().map(|(seq, _)| seq), Some(8));
    /// ```
    pub fn open_first(dir: impl AsRef<Path>) -> Result<JournalReader, JournalError> {
        let dir = dir.as_ref();
        let mut attempts = 0;
        loop {
            match JournalReader::open(dir, first_present(dir)?) {
                // Pruned between the look and the open: look again.
                Err(JournalError::Pruned { .. }) if attempts < 3 => attempts += 1,
                other => return other,
            }
        }
    }

    /// Like [`try_next`](JournalReader::try_next), but waits up to `timeout` for a record.
    /// `Ok(None)` means nothing yet: a writer holds the journal and may append.
    ///
    /// Waiting: the reader polls the mapped segment, spinning briefly, then yielding, then
    /// sleeps on the journal's doorbell, a futex that the writer (in any process) rings
    /// after each append and sync: a record wakes it within tens of microseconds, and a
    /// reader waiting long costs nothing between records. The writer makes the system call
    /// only when a reader sleeps. A wait finds out whether a writer is still there when it
    /// starts sleeping (at once when the reader stands on a segment's seal), before it
    /// returns `Ok(None)`, and every 50 ms between (a writer that died rings no more).
    /// Without the doorbell (a reader that cannot open `kekbit.bell` for writing, or a
    /// journal no writer of kekbit 0.6 or later has opened), it sleeps with a pause that
    /// doubles up to a millisecond instead, so a record is seen at most about a millisecond
    /// late. A writer of kekbit 0.5 or older does not ring: a reader sleeping on a bell that
    /// an earlier writer created sees its records at most 50 ms late.
    ///
    /// When no writer will append, it returns at once (having read every record):
    /// [`JournalError::WriterClosed`] if the writer closed the journal (the last segment is
    /// sealed and no segment follows), [`JournalError::WriterGone`] if the writer stopped
    /// without closing it (its process died and the OS released its lock). Neither is
    /// damage: the reader stays where it is, and once a writer opens the journal again
    /// (recovering it, after a death), the next call returns its records. A caller that
    /// wants to wait for that sleeps between calls, since each returns at once.
    ///
    /// ```
    /// use kekbit::journal::{Journal, JournalError};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::open(dir.path()).unwrap();
    /// let mut reader = journal.reader(0).unwrap();
    /// assert_eq!(reader.next_timeout(Duration::from_millis(5)).unwrap(), None);
    /// journal.append(b"x").unwrap();
    /// assert!(reader.next_timeout(Duration::from_secs(1)).unwrap().is_some());
    /// drop(journal);
    /// let closed = reader.next_timeout(Duration::from_secs(10));
    /// assert!(matches!(closed, Err(JournalError::WriterClosed { next: 1, .. })));
    /// ```
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(u64, &[u8])>, JournalError> {
        let deadline = Instant::now() + timeout;
        let mut idle = 0u32;
        let mut checked: Option<Instant> = None;
        let mut pause = FIRST_PAUSE;
        loop {
            if self.ready()? {
                return self.try_next();
            }
            let now = Instant::now();
            let due = match checked {
                None => idle >= BUSY_POLLS || now >= deadline || self.at_seal(),
                Some(at) => now - at >= STATUS_INTERVAL,
            };
            if due {
                checked = Some(now);
                self.check_writer()?;
            }
            if now >= deadline {
                return Ok(None);
            }
            idle += 1;
            if idle < BUSY_POLLS / 2 {
                std::hint::spin_loop();
            } else if idle < BUSY_POLLS {
                std::thread::yield_now();
            } else if let Some(armed) = self.bell.get(&self.dir).map(Bell::arm) {
                // Armed before the last look: a record published after the arm rings the
                // bell, which wakes the wait below or makes it return at once, so none is
                // slept through; one published before it is seen by this look.
                if self.ready()? {
                    return self.try_next();
                }
                // Until the deadline, or the next look at the writer (none taken yet: take
                // it first, at the top of the loop).
                let status_due = checked.map_or(now, |at| at + STATUS_INTERVAL);
                let left = deadline
                    .min(status_due)
                    .saturating_duration_since(Instant::now());
                match &self.bell {
                    Doorbell::Mapped(bell) if !left.is_zero() => bell.wait(armed, left),
                    _ => {}
                }
            } else {
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(MAX_PAUSE);
            }
        }
    }

    /// A blocking iterator: each `next` waits, as long as it takes, for the next record and
    /// yields an owned copy with its sequence number. It ends after yielding an error: the
    /// writer closed the journal ([`JournalError::WriterClosed`]) or died
    /// ([`JournalError::WriterGone`]) once every record was read, or damage. It waits as
    /// [`next_timeout`](JournalReader::next_timeout) does (on the journal's doorbell). The
    /// reader stays usable afterwards: calling `follow` again after a
    /// writer reopened the journal continues where it stopped.
    ///
    /// ```
    /// use kekbit::journal::{Journal, JournalError, JournalReader};
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::open(dir.path()).unwrap();
    /// let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    /// let writer = std::thread::spawn(move || {
    ///     for i in 0..3u8 {
    ///         journal.append(&[i]).unwrap();
    ///     }
    ///     // Dropping the journal closes it: the follower's iterator ends.
    /// });
    /// let mut records = Vec::new();
    /// for item in reader.follow() {
    ///     match item {
    ///         Ok(record) => records.push(record),
    ///         Err(JournalError::WriterClosed { next, .. }) => assert_eq!(next, 3),
    ///         Err(e) => panic!("{e}"),
    ///     }
    /// }
    /// writer.join().unwrap();
    /// assert_eq!(records, [(0, vec![0]), (1, vec![1]), (2, vec![2])]);
    /// ```
    pub fn follow(&mut self) -> Follow<'_> {
        Follow {
            reader: self,
            ended: false,
        }
    }

    /// Whether the reader stands on its segment's closing marker (one load; the marker is
    /// verified when it is crossed).
    pub(crate) fn at_seal(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|current| current.reader.at_closing_marker())
    }

    /// Called when nothing is there to read: an error if no writer will append.
    ///
    /// Closed: the reader stands on a seal and the next segment is absent or still pending.
    /// A rollover links the next segment before it publishes the seal, and a closing
    /// journal seals its last segment and leaves no linked successor, so this is a close
    /// (a writer reopening the journal links a successor, and the reader then crosses).
    ///
    /// Gone: nothing is published at the reader's position and no process holds the
    /// segment's lock (which the writer of a journal holds on the segment it appends to).
    /// The lock is released after the last store, so a look after the probe sees anything
    /// the writer published; only if still nothing is there is the writer gone.
    pub(crate) fn check_writer(&self) -> Result<(), JournalError> {
        let Some(current) = &self.current else {
            return Ok(());
        };
        let closed = || JournalError::WriterClosed {
            dir: self.dir.clone(),
            next: self.next_seq,
        };
        if current.reader.at_closing_marker() {
            return match segment::header(&self.dir, current.id + 1) {
                Ok(next) if next.is_pending() => Err(closed()),
                Err(JournalError::MissingSegment { .. }) => Err(closed()),
                // Linked (crossed by the next read, once durable for a durable-only
                // reader), or damaged (reported by the next read).
                _ => Ok(()),
            };
        }
        if current.reader.writer_alive() || current.reader.at_closing_marker() {
            return Ok(());
        }
        if !current.reader.at_end() {
            // A record published since the last poll is read next. For a durable-only
            // reader, one the writer never made durable will not become so: the writer
            // closed (its header locates the seal) or died.
            let durable = current.reader.durable_position() > current.reader.position();
            if !self.durable_only || durable {
                return Ok(());
            }
            if current.reader.located_closing().is_some() {
                return Err(closed());
            }
        }
        Err(JournalError::WriterGone {
            segment: current.reader.path().to_path_buf(),
            position: current.reader.position(),
            next: self.next_seq,
        })
    }
}

/// The first sequence number the journal in `dir` holds: the first linked segment's; 0 when
/// there is none. A segment removed meanwhile is passed over; a segment that cannot be read
/// gives 0, so that the reader reports the damage when it reaches it.
fn first_present(dir: &Path) -> Result<u64, JournalError> {
    for id in segment::list(dir)? {
        match segment::header(dir, id) {
            Ok(header) if header.is_pending() => return Ok(0),
            Ok(header) => return Ok(header.base_sequence()),
            Err(JournalError::MissingSegment { .. }) => continue,
            Err(_) => return Ok(0),
        }
    }
    Ok(0)
}

/// The blocking iterator of [`JournalReader::follow`].
///
/// ```
/// use kekbit::journal::Journal;
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::open(dir.path()).unwrap();
/// journal.append(b"first").unwrap();
/// let mut reader = journal.reader(0).unwrap();
/// let mut follow = reader.follow();
/// assert_eq!(follow.next().unwrap().unwrap(), (0, b"first".to_vec()));
/// ```
pub struct Follow<'a> {
    reader: &'a mut JournalReader,
    ended: bool,
}

impl Iterator for Follow<'_> {
    type Item = Result<(u64, Vec<u8>), JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        loop {
            match self.reader.next_timeout(FOLLOW_WAIT) {
                Ok(Some((seq, record))) => return Some(Ok((seq, record.to_vec()))),
                Ok(None) => {}
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl std::fmt::Debug for Follow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follow")
            .field("reader", &self.reader)
            .field("ended", &self.ended)
            .finish()
    }
}
