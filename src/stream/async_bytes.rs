//! [`AsyncByteReader`]: the byte-stream view of a journal as tokio's `AsyncRead` and
//! `AsyncSeek`, waiting for the writer like a [`JournalStream`](super::JournalStream).

use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};

use super::waiter::{next_id, Waiter};
use super::ByteReader;
use crate::journal::JournalError;

/// A [`ByteReader`] that, when it has caught up with the writer, waits for more instead of
/// returning end of file: reading ends (`Ok(0)`) only once the writer closed the journal, and
/// fails with [`io::ErrorKind::UnexpectedEof`] if the writer died first. Seeking is as
/// [`ByteReader`]'s (through the shared index, never a scan from the start). Needs the
/// feature `async`.
///
/// ```
/// use kekbit::journal::Journal;
/// use kekbit::stream::{AsyncByteReader, ByteReader};
/// use tokio::io::AsyncReadExt;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir()?;
/// let journal = Journal::open(dir.path())?;
/// let mut bytes = AsyncByteReader::new(ByteReader::open(dir.path())?)?;
/// let writer = tokio::task::spawn_blocking(move || {
///     journal.append(b"streamed ").unwrap();
///     journal.append(b"bytes").unwrap();
///     // Dropping the journal closes it: end of file.
/// });
/// let mut text = String::new();
/// bytes.read_to_string(&mut text).await?;
/// writer.await?;
/// assert_eq!(text, "streamed bytes");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub struct AsyncByteReader {
    inner: ByteReader,
    waiter: Arc<Waiter>,
    id: u64,
    seeking: Option<SeekFrom>,
}

impl AsyncByteReader {
    /// Wraps `inner`, at its position.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let bytes = kekbit::stream::ByteReader::open(dir.path()).unwrap();
    /// let bytes = kekbit::stream::AsyncByteReader::new(bytes).unwrap();
    /// assert_eq!(bytes.get_ref().position(), 0);
    /// ```
    pub fn new(inner: ByteReader) -> Result<AsyncByteReader, JournalError> {
        let dir = inner.journal_reader().dir().to_path_buf();
        let waiter = Waiter::for_dir(&dir).map_err(|source| JournalError::Io {
            path: dir,
            action: "starting the journal's waiter thread",
            source,
        })?;
        Ok(AsyncByteReader {
            inner,
            waiter,
            id: next_id(),
            seeking: None,
        })
    }

    /// The byte reader inside.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let bytes = kekbit::stream::ByteReader::open(dir.path()).unwrap();
    /// let bytes = kekbit::stream::AsyncByteReader::new(bytes).unwrap();
    /// assert_eq!(bytes.get_ref().position(), 0);
    /// ```
    pub fn get_ref(&self) -> &ByteReader {
        &self.inner
    }
}

impl AsyncRead for AsyncByteReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let mut registered = false;
        loop {
            let n = this.inner.read(buf.initialize_unfilled())?;
            if n > 0 {
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            if registered {
                break;
            }
            this.waiter.register(this.id, cx.waker());
            registered = true;
        }
        let reader = this.inner.journal_reader();
        if !this.waiter.writer_alive() || reader.at_seal() {
            match reader.check_writer() {
                Ok(()) => {}
                Err(JournalError::WriterClosed { .. }) => {
                    this.waiter.unregister(this.id);
                    return Poll::Ready(Ok(()));
                }
                Err(e) => {
                    this.waiter.unregister(this.id);
                    let kind = match e {
                        JournalError::WriterGone { .. } => io::ErrorKind::UnexpectedEof,
                        _ => io::ErrorKind::Other,
                    };
                    return Poll::Ready(Err(io::Error::new(kind, e)));
                }
            }
        }
        Poll::Pending
    }
}

impl AsyncSeek for AsyncByteReader {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        if this.seeking.is_some() {
            return Err(io::Error::other("a seek is already in progress"));
        }
        this.seeking = Some(position);
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        // A seek reads at most the records past the index, which are in memory already
        // (mapped): done at once.
        match this.seeking.take() {
            Some(position) => Poll::Ready(this.inner.seek(position)),
            None => Poll::Ready(Ok(this.inner.position())),
        }
    }
}

impl Drop for AsyncByteReader {
    fn drop(&mut self) {
        self.waiter.unregister(self.id);
    }
}

impl std::fmt::Debug for AsyncByteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncByteReader")
            .field("inner", &self.inner)
            .finish()
    }
}
