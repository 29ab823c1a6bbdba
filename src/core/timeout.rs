//! Declaring a silent writer gone: the timeout reader.

use std::path::Path;
use std::time::{Duration, Instant};

use super::header::OFF_HEARTBEAT;
use super::reader::Channel;
use super::records::{seek, step, Records};
use super::{Header, InvalidPosition, ReadError, Reader, ShmReader};

/// Tracks the writer's last sign of life: a new record, or a change of the heartbeat stamp.
pub(crate) struct Watch {
    /// `None` when the header's timeout is 0: no timeout.
    timeout: Option<Duration>,
    heartbeat: u64,
    last_progress: Instant,
}

impl Watch {
    /// Starts watching. The writer's last sign of life before the reader came is the newer of
    /// the channel's creation time and its heartbeat stamp, so a channel whose writer went
    /// silent long ago is declared abandoned at the first empty read.
    pub(crate) fn new(chan: &Channel) -> Watch {
        let header = chan.header();
        let unit = header.tick_unit();
        let heartbeat = chan.load_live(OFF_HEARTBEAT);
        let last_sign = heartbeat.max(header.creation_time());
        let age = unit.duration(unit.nix_time().saturating_sub(last_sign));
        let now = Instant::now();
        Watch {
            timeout: (header.timeout() > 0).then(|| unit.duration(header.timeout())),
            heartbeat,
            last_progress: now.checked_sub(age).unwrap_or(now),
        }
    }

    #[inline]
    pub(crate) fn progress(&mut self) {
        self.last_progress = Instant::now();
    }

    /// Called when nothing new was published: an error once the writer has been silent for
    /// longer than the timeout.
    pub(crate) fn idle(&mut self, chan: &Channel, position: u64) -> Result<(), ReadError> {
        let Some(timeout) = self.timeout else {
            return Ok(());
        };
        let heartbeat = chan.load_live(OFF_HEARTBEAT);
        if heartbeat != self.heartbeat {
            self.heartbeat = heartbeat;
            self.progress();
            return Ok(());
        }
        let silent = self.last_progress.elapsed();
        if silent > timeout {
            return Err(ReadError::Timeout {
                path: chan.path().to_path_buf(),
                position,
                timeout,
                silent,
            });
        }
        Ok(())
    }
}

/// A reader that declares the channel abandoned, with [`ReadError::Timeout`], when the writer
/// has neither published a record nor sent a [`heartbeat`](super::Writer::heartbeat) for
/// longer than the channel's timeout (the header's `timeout` in its tick unit). A writer that
/// may be idle longer than that should heartbeat. A timeout of 0 means no timeout: the
/// reader then never declares the channel abandoned and behaves as a plain [`ShmReader`].
/// Journal segments are created with timeout 0: a journal's writer does not heartbeat, and
/// its liveness is its journal lock, not the silence of one segment.
///
/// Made with [`ShmReader::with_timeout`].
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, ReadError, Reader, TickUnit, Writer};
/// use std::time::Duration;
///
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 4, 4096, 64, 20, TickUnit::Millis);
/// let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
/// let mut reader = shm_reader(dir.path(), 4).unwrap().with_timeout();
/// writer.write("alive").unwrap();
/// assert!(reader.try_read().unwrap().is_some());
/// std::thread::sleep(Duration::from_millis(40));
/// assert!(matches!(reader.try_read(), Err(ReadError::Timeout { .. })));
/// # drop(writer);
/// ```
pub struct TimeoutReader {
    inner: ShmReader,
}

impl TimeoutReader {
    pub(crate) fn wrap(inner: ShmReader) -> TimeoutReader {
        TimeoutReader { inner }
    }

    /// How long the writer may stay silent; [`Duration::ZERO`] for no timeout.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let _w = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 3, TickUnit::Secs), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap().with_timeout();
    /// assert_eq!(reader.timeout(), std::time::Duration::from_secs(3));
    /// ```
    pub fn timeout(&self) -> Duration {
        let header = self.header();
        header.tick_unit().duration(header.timeout())
    }

    /// The channel's header.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let _w = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 3, TickUnit::Secs), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap().with_timeout();
    /// assert_eq!(reader.header().channel_id(), 2);
    /// ```
    pub fn header(&self) -> &Header {
        self.inner.header()
    }

    /// The channel's file.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, storage_path, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let _w = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 3, TickUnit::Secs), EncoderHandler).unwrap();
    /// let reader = shm_reader(dir.path(), 2).unwrap().with_timeout();
    /// assert_eq!(reader.path(), storage_path(dir.path(), 2));
    /// ```
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// A non-blocking iterator, as [`ShmReader::iter`], that yields
    /// [`ReadError::Timeout`] once the writer is declared gone.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit, Writer};
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut writer = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 3, TickUnit::Secs), EncoderHandler).unwrap();
    /// writer.write("r").unwrap();
    /// let mut reader = shm_reader(dir.path(), 2).unwrap().with_timeout();
    /// assert_eq!(reader.iter().count(), 1);
    /// ```
    pub fn iter(&mut self) -> Records<'_> {
        Records::new(&self.inner.chan, &mut self.inner.cursor)
    }

    /// The plain reader inside, without the timeout.
    ///
    /// ```
    /// # use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit};
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let _w = shm_writer(dir.path(), &Header::new(1, 2, 4096, 64, 3, TickUnit::Secs), EncoderHandler).unwrap();
    /// let plain = shm_reader(dir.path(), 2).unwrap().with_timeout().into_inner();
    /// assert_eq!(plain.header().channel_id(), 2);
    /// ```
    pub fn into_inner(mut self) -> ShmReader {
        self.inner.cursor.watch = None;
        self.inner
    }
}

impl Reader for TimeoutReader {
    fn try_read(&mut self) -> Result<Option<&[u8]>, ReadError> {
        step(&self.inner.chan, &mut self.inner.cursor)
    }

    fn position(&self) -> u64 {
        self.inner.position()
    }

    fn move_to(&mut self, position: u64) -> Result<u64, InvalidPosition> {
        seek(&self.inner.chan, &mut self.inner.cursor, position)
    }
}

impl std::fmt::Debug for TimeoutReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeoutReader")
            .field("reader", &self.inner)
            .field("timeout", &self.timeout())
            .finish()
    }
}
