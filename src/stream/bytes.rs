//! A journal as one byte stream: its records' payloads concatenated, readable and seekable
//! by many readers at their own pace ([`ByteReader`]), and [`capture`] of any `io::Read`
//! into a journal (a child process's output, say: captured once, read by many).

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::journal::{AppendError, Journal, JournalError, JournalReader, Record};

/// Copies `source` into `journal` until its end, in records of at most `chunk` bytes (each
/// read becomes one record; `chunk` is cut to the journal's largest record), and returns the
/// number of bytes captured. Readers see the bytes as soon as each record is appended.
///
/// ```
/// use std::io::Read;
/// use kekbit::journal::Journal;
/// use kekbit::stream::{capture, ByteReader};
///
/// let dir = tempfile::tempdir()?;
/// let journal = Journal::open(dir.path())?;
/// let output = std::process::Command::new("echo").arg("hello, journal").output()?;
/// assert_eq!(capture(&output.stdout[..], &journal, 4)?, 15);
/// let mut text = String::new();
/// ByteReader::open(dir.path())?.read_to_string(&mut text)?;
/// assert_eq!(text, "hello, journal\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn capture(mut source: impl Read, journal: &Journal, chunk: usize) -> io::Result<u64> {
    let chunk = chunk.clamp(1, journal.max_record_len() as usize);
    let mut buf = vec![0u8; chunk];
    let mut total = 0u64;
    loop {
        let n = match source.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        journal.append(&buf[..n]).map_err(append_error)?;
        total += n as u64;
    }
}

fn append_error(e: AppendError) -> io::Error {
    io::Error::other(e)
}

fn journal_error(e: JournalError) -> io::Error {
    io::Error::other(e)
}

/// Where each record read so far starts in the byte stream, shared by the readers cloned
/// from one another: `starts[i]` is the offset of record `first + i`, and `end` where the
/// last indexed record ends. Grows as any reader reads further.
struct ByteIndex {
    first: u64,
    starts: Vec<u64>,
    end: u64,
}

impl ByteIndex {
    /// The sequence number of the record holding byte `offset`, if indexed.
    fn record_at(&self, offset: u64) -> Option<u64> {
        if offset >= self.end {
            return None;
        }
        let i = self.starts.partition_point(|&start| start <= offset) - 1;
        Some(self.first + i as u64)
    }
}

/// A journal's records read as one byte stream ([`io::Read`] + [`io::Seek`]), from a given
/// sequence number on (offset 0 is the first byte of that record).
///
/// Reading returns what the journal holds now: `Ok(0)` means the reader has caught up with
/// the writer (for a finished capture, the end). Each record read is added to an index of
/// record start offsets that every reader cloned with [`try_clone`](ByteReader::try_clone)
/// shares, so that seeking to an offset already read opens the journal at the right record
/// (found by the journal's own search: a binary search over segments, then marks inside one)
/// instead of scanning from the start; seeking past what is indexed reads forward from the
/// end of the index only. Records are [`Record`] handles: a read copies from the mapped
/// segment into the caller's buffer, nothing more.
///
/// ```
/// use std::io::{Read, Seek, SeekFrom};
/// use kekbit::journal::Journal;
/// use kekbit::stream::ByteReader;
///
/// let dir = tempfile::tempdir()?;
/// let journal = Journal::open(dir.path())?;
/// for chunk in [&b"one "[..], b"two ", b"three"] {
///     journal.append(chunk)?;
/// }
/// let mut bytes = ByteReader::open(dir.path())?;
/// let mut all = String::new();
/// bytes.read_to_string(&mut all)?;
/// assert_eq!(all, "one two three");
/// let mut other = bytes.try_clone()?; // shares the index
/// other.seek(SeekFrom::Start(4))?;
/// let mut word = [0u8; 3];
/// other.read_exact(&mut word)?;
/// assert_eq!(&word, b"two");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ByteReader {
    dir: PathBuf,
    reader: JournalReader,
    index: Arc<Mutex<ByteIndex>>,
    /// The record holding the position, and its start offset.
    current: Option<(u64, Record)>,
    /// The offset of the next byte to read.
    pos: u64,
    /// The offset where the reader's next record starts.
    next_start: u64,
}

impl ByteReader {
    /// The journal in `dir` as a byte stream from its first record (sequence number 0).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let bytes = kekbit::stream::ByteReader::open(dir.path()).unwrap();
    /// assert_eq!(bytes.position(), 0);
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<ByteReader, JournalError> {
        ByteReader::open_from(dir, 0)
    }

    /// The journal in `dir` as a byte stream whose offset 0 is the first byte of record
    /// `from`.
    ///
    /// ```
    /// use std::io::Read;
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// journal.append(b"skipped").unwrap();
    /// journal.append(b"kept").unwrap();
    /// let mut text = String::new();
    /// kekbit::stream::ByteReader::open_from(dir.path(), 1).unwrap().read_to_string(&mut text).unwrap();
    /// assert_eq!(text, "kept");
    /// ```
    pub fn open_from(dir: impl AsRef<Path>, from: u64) -> Result<ByteReader, JournalError> {
        let dir = dir.as_ref().to_path_buf();
        let reader = JournalReader::open(&dir, from)?;
        let index = ByteIndex {
            first: from,
            starts: Vec::new(),
            end: 0,
        };
        Ok(ByteReader {
            dir,
            reader,
            index: Arc::new(Mutex::new(index)),
            current: None,
            pos: 0,
            next_start: 0,
        })
    }

    /// Another reader of the same byte stream at the same position, sharing the index.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let bytes = kekbit::stream::ByteReader::open(dir.path()).unwrap();
    /// assert_eq!(bytes.try_clone().unwrap().position(), 0);
    /// ```
    pub fn try_clone(&self) -> Result<ByteReader, JournalError> {
        let mut clone = ByteReader {
            dir: self.dir.clone(),
            reader: JournalReader::open(&self.dir, self.first())?,
            index: Arc::clone(&self.index),
            current: None,
            pos: 0,
            next_start: 0,
        };
        clone.seek_to(self.pos)?;
        Ok(clone)
    }

    /// The offset of the next byte to read.
    ///
    /// ```
    /// use std::io::Read;
    /// let dir = tempfile::tempdir().unwrap();
    /// kekbit::journal::Journal::open(dir.path()).unwrap().append(b"abc").unwrap();
    /// let mut bytes = kekbit::stream::ByteReader::open(dir.path()).unwrap();
    /// bytes.read_exact(&mut [0u8; 2]).unwrap();
    /// assert_eq!(bytes.position(), 2);
    /// ```
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The journal reader inside (for waiting on the writer).
    #[cfg(feature = "async")]
    pub(crate) fn journal_reader(&self) -> &JournalReader {
        &self.reader
    }

    fn first(&self) -> u64 {
        self.index.lock().unwrap_or_else(|p| p.into_inner()).first
    }

    /// Reads the reader's next record into `current`, indexing it; `false` if none is there.
    fn load_next(&mut self) -> Result<bool, JournalError> {
        let Some((seq, record)) = self.reader.next_record()? else {
            return Ok(false);
        };
        let start = self.next_start;
        self.next_start = start + record.len() as u64;
        let mut index = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if seq - index.first == index.starts.len() as u64 {
            index.starts.push(start);
            index.end = self.next_start;
        }
        drop(index);
        self.current = Some((start, record));
        Ok(true)
    }

    /// Moves to `offset`: through the index when it covers it, else forward from the
    /// index's end (or from here, if that is further).
    fn seek_to(&mut self, offset: u64) -> Result<(), JournalError> {
        self.pos = offset;
        if let Some((start, record)) = &self.current {
            if (*start..start + record.len() as u64).contains(&offset) {
                return Ok(());
            }
        }
        let (found, first, resume) = {
            let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
            let resume = (index.first + index.starts.len() as u64, index.end);
            (index.record_at(offset), index.first, resume)
        };
        let (seq, start) = match found {
            Some(seq) => {
                let index = self.index.lock().unwrap_or_else(|p| p.into_inner());
                (seq, index.starts[(seq - first) as usize])
            }
            // Past the index: continue from here if the reader is already beyond its end.
            None if self.next_start >= resume.1 && self.next_start <= offset => return Ok(()),
            None => resume,
        };
        self.reader = JournalReader::open(&self.dir, seq)?;
        self.current = None;
        self.next_start = start;
        Ok(())
    }
}

impl Read for ByteReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some((start, record)) = &self.current {
                let end = start + record.len() as u64;
                if (*start..end).contains(&self.pos) {
                    let from = (self.pos - start) as usize;
                    let n = buf.len().min(record.len() - from);
                    buf[..n].copy_from_slice(&record[from..from + n]);
                    self.pos += n as u64;
                    return Ok(n);
                }
            }
            if !self.load_next().map_err(journal_error)? {
                return Ok(0);
            }
        }
    }
}

impl Seek for ByteReader {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => {
                // The end is what the journal holds now: index up to it first.
                self.seek_to(u64::MAX).map_err(journal_error)?;
                while self.load_next().map_err(journal_error)? {}
                self.next_start.checked_add_signed(delta)
            }
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "seek to {pos:?} from offset {} is before the start",
                    self.pos
                ),
            )
        })?;
        self.seek_to(target).map_err(journal_error)?;
        Ok(target)
    }
}

impl std::fmt::Debug for ByteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteReader")
            .field("dir", &self.dir)
            .field("position", &self.pos)
            .finish()
    }
}
