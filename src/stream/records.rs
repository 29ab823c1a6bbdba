//! [`JournalStream`]: a journal's records as a `futures::Stream`.

use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::waiter::{next_id, Waiter};
use crate::journal::{JournalError, JournalReader, Record};

/// A journal's records from a sequence number on, as a [`Stream`](futures_core::Stream) of
/// `(sequence, Record)`, live: when it has caught up it waits, without a thread of its own
/// and without polling, until the writer publishes, in this process or another.
///
/// Records are [`Record`] handles: zero-copy, `'static`, shared with every other reader of
/// the segment in the process. The stream follows the writer across rollovers; a stream
/// lagging in a segment that is pruned keeps reading it, and gets [`JournalError::Pruned`]
/// if the segment after it is gone too. It ends after yielding an error: the writer closed the
/// journal ([`JournalError::WriterClosed`]), the writer died ([`JournalError::WriterGone`],
/// seen within about 100 ms of its death), or damage.
///
/// Waiting: the journal's writer rings a doorbell (a futex word in the file `kekbit.bell`
/// beside the segments) after each append and each sync; one thread per journal and process
/// sleeps on it and wakes the waiting tasks. An idle stream costs no CPU: that thread wakes
/// ten times a second to see whether the writer is still there, and wakes no task unless
/// something changed. Needs the feature `async`.
///
/// ```
/// use kekbit::journal::{Journal, JournalError};
/// use kekbit::stream::JournalStream;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let journal = Journal::open(dir.path())?;
/// let mut stream = JournalStream::open(dir.path(), 0)?;
/// let writer = tokio::task::spawn_blocking(move || {
///     for i in 0..3u8 {
///         journal.append(&[i]).unwrap();
///     }
///     // Dropping the journal closes it: the stream ends.
/// });
/// let mut seen = Vec::new();
/// while let Some(item) = stream.next().await {
///     match item {
///         Ok((seq, record)) => seen.push((seq, record.to_vec())),
///         Err(JournalError::WriterClosed { next, .. }) => assert_eq!(next, 3),
///         Err(e) => return Err(e.into()),
///     }
/// }
/// writer.await?;
/// assert_eq!(seen, [(0, vec![0]), (1, vec![1]), (2, vec![2])]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct JournalStream {
    reader: JournalReader,
    waiter: Arc<Waiter>,
    id: u64,
    ended: bool,
}

impl JournalStream {
    /// A stream of the journal in `dir` from sequence number `from` (see
    /// [`JournalReader::open`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let stream = kekbit::stream::JournalStream::open(dir.path(), 0).unwrap();
    /// assert_eq!(stream.next_sequence(), 0);
    /// ```
    pub fn open(dir: impl AsRef<Path>, from: u64) -> Result<JournalStream, JournalError> {
        JournalStream::new(JournalReader::open(dir, from)?)
    }

    /// A stream continuing where `reader` stands (keeping its durable-only setting).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// journal.append(b"x").unwrap();
    /// let stream = kekbit::stream::JournalStream::new(journal.reader(1).unwrap()).unwrap();
    /// assert_eq!(stream.next_sequence(), 1);
    /// ```
    pub fn new(reader: JournalReader) -> Result<JournalStream, JournalError> {
        let waiter = Waiter::for_dir(reader.dir()).map_err(|source| JournalError::Io {
            path: reader.dir().to_path_buf(),
            action: "starting the journal's waiter thread",
            source,
        })?;
        Ok(JournalStream {
            reader,
            waiter,
            id: next_id(),
            ended: false,
        })
    }

    /// When `true`, yields only records the writer has made durable (see
    /// [`JournalReader::set_durable_only`]); the stream is woken by each sync.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// use kekbit::stream::JournalStream;
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// let mut stream = JournalStream::open(dir.path(), 0).unwrap();
    /// stream.set_durable_only(true);
    /// journal.append(b"x").unwrap();
    /// assert!(stream.try_next().unwrap().is_none()); // appended, not durable
    /// journal.sync().unwrap();
    /// let (seq, record) = stream.next().await.unwrap().unwrap();
    /// assert_eq!((seq, &record[..]), (0, &b"x"[..]));
    /// # });
    /// ```
    pub fn set_durable_only(&mut self, durable_only: bool) {
        self.reader.set_durable_only(durable_only);
    }

    /// The sequence number of the next record the stream yields.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let stream = kekbit::stream::JournalStream::open(dir.path(), 5).unwrap();
    /// assert_eq!(stream.next_sequence(), 5);
    /// ```
    pub fn next_sequence(&self) -> u64 {
        self.reader.next_sequence()
    }

    /// The next record if one is there now, without waiting (see
    /// [`JournalReader::next_record`]).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// let mut stream = kekbit::stream::JournalStream::open(dir.path(), 0).unwrap();
    /// assert!(stream.try_next().unwrap().is_none());
    /// journal.append(b"x").unwrap();
    /// assert_eq!(stream.try_next().unwrap().map(|(seq, _)| seq), Some(0));
    /// ```
    pub fn try_next(&mut self) -> Result<Option<(u64, Record)>, JournalError> {
        self.reader.next_record()
    }

    /// The next item, waiting for it: the stream's `next`, without needing `StreamExt`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
    /// journal.append(b"x").unwrap();
    /// let mut stream = kekbit::stream::JournalStream::open(dir.path(), 0).unwrap();
    /// assert_eq!(stream.next().await.unwrap().unwrap().0, 0);
    /// # });
    /// ```
    pub async fn next(&mut self) -> Option<Result<(u64, Record), JournalError>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<<Self as Stream>::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let mut registered = false;
        loop {
            match self.reader.next_record() {
                Ok(Some(item)) => return Poll::Ready(Some(Ok(item))),
                Ok(None) => {}
                Err(e) => return self.end(e),
            }
            if registered {
                break;
            }
            // Register, then look once more: a ring after the registration wakes this task.
            self.waiter.register(self.id, cx.waker());
            registered = true;
        }
        // Nothing to read: is a writer still there to publish more? Asked only when it may
        // not be (the waiter saw no lock) or the stream stands on a seal, since the answer
        // costs system calls.
        if !self.waiter.writer_alive() || self.reader.at_seal() {
            if let Err(e) = self.reader.check_writer() {
                return self.end(e);
            }
        }
        Poll::Pending
    }

    fn end(&mut self, e: JournalError) -> Poll<Option<<Self as Stream>::Item>> {
        self.ended = true;
        self.waiter.unregister(self.id);
        Poll::Ready(Some(Err(e)))
    }
}

use futures_core::Stream;

impl Stream for JournalStream {
    type Item = Result<(u64, Record), JournalError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}

impl Drop for JournalStream {
    fn drop(&mut self) {
        self.waiter.unregister(self.id);
    }
}

impl std::fmt::Debug for JournalStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalStream")
            .field("reader", &self.reader)
            .field("ended", &self.ended)
            .finish()
    }
}
