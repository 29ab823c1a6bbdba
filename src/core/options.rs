//! Named-setter forms of the channel's positional constructors: [`HeaderBuilder`] for
//! [`Header::new`] and [`ReaderOptions`] for [`try_shm_reader`](super::try_shm_reader).

use std::path::Path;
use std::time::{Duration, Instant};

use super::{shm_reader, ChannelError, Header, ShmReader, TickUnit};
use super::{MAX_RECORD_LEN, RECORD_HEADER_LEN, TRAILER_RESERVE};

/// Builds a [`Header`] with named setters, each saying its default; the same header as
/// [`Header::new`] with the same values (which stays, for code written for kekbit 0.3).
/// Limits are checked when the channel is created.
///
/// ```
/// use kekbit::core::{Header, TickUnit};
/// let header = Header::builder()
///     .writer_id(1)
///     .channel_id(42)
///     .capacity(1 << 20)
///     .max_record_len(4096)
///     .timeout(5_000)
///     .tick_unit(TickUnit::Millis)
///     .build();
/// let positional = Header::new(1, 42, 1 << 20, 4096, 5_000, TickUnit::Millis);
/// assert_eq!(header.channel_id(), positional.channel_id());
/// assert_eq!(header.max_record_len(), positional.max_record_len());
/// assert_eq!(header.timeout(), positional.timeout());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct HeaderBuilder {
    writer_id: u64,
    channel_id: u64,
    capacity: u64,
    max_record_len: Option<u32>,
    timeout: u64,
    tick_unit: TickUnit,
}

impl Default for HeaderBuilder {
    fn default() -> Self {
        HeaderBuilder::new()
    }
}

impl Header {
    /// A [`HeaderBuilder`] with every value at its default.
    ///
    /// ```
    /// let header = kekbit::core::Header::builder().channel_id(7).build();
    /// assert_eq!((header.channel_id(), header.capacity()), (7, 1 << 20));
    /// ```
    pub fn builder() -> HeaderBuilder {
        HeaderBuilder::new()
    }
}

impl HeaderBuilder {
    /// Every value at its default (see each setter).
    ///
    /// ```
    /// let header = kekbit::core::HeaderBuilder::new().build();
    /// assert_eq!(header.writer_id(), 0);
    /// ```
    pub fn new() -> HeaderBuilder {
        HeaderBuilder {
            writer_id: 0,
            channel_id: 0,
            capacity: 1 << 20,
            max_record_len: None,
            timeout: 5_000,
            tick_unit: TickUnit::Millis,
        }
    }

    /// The writer's id, stored in the header for readers to check. Defaults to 0.
    ///
    /// ```
    /// let header = kekbit::core::Header::builder().writer_id(9).build();
    /// assert_eq!(header.writer_id(), 9);
    /// ```
    pub fn writer_id(mut self, id: u64) -> HeaderBuilder {
        self.writer_id = id;
        self
    }

    /// The channel's id, which also names its file (see
    /// [`storage_path`](super::storage_path)). Defaults to 0.
    ///
    /// ```
    /// let header = kekbit::core::Header::builder().channel_id(42).build();
    /// assert_eq!(header.channel_id(), 42);
    /// ```
    pub fn channel_id(mut self, id: u64) -> HeaderBuilder {
        self.channel_id = id;
        self
    }

    /// Size of the data area in bytes, rounded up to a multiple of 8; between
    /// [`MIN_CAPACITY`](super::MIN_CAPACITY) and [`MAX_CAPACITY`](super::MAX_CAPACITY).
    /// Defaults to 1 MiB.
    ///
    /// ```
    /// let header = kekbit::core::Header::builder().capacity(1001).build();
    /// assert_eq!(header.capacity(), 1008);
    /// ```
    pub fn capacity(mut self, bytes: u64) -> HeaderBuilder {
        self.capacity = bytes;
        self
    }

    /// Largest record payload accepted; a record of this size must fit in the empty
    /// channel. Defaults to the largest that does (capacity less 8 bytes of framing and the
    /// 64-byte closing reserve), at most 1 MiB.
    ///
    /// ```
    /// use kekbit::core::Header;
    /// assert_eq!(Header::builder().capacity(4096).build().max_record_len(), 4024);
    /// assert_eq!(Header::builder().max_record_len(100).build().max_record_len(), 100);
    /// ```
    pub fn max_record_len(mut self, bytes: u32) -> HeaderBuilder {
        self.max_record_len = Some(bytes);
        self
    }

    /// How long, in [`tick_unit`](HeaderBuilder::tick_unit)s, a
    /// [`TimeoutReader`](super::TimeoutReader) waits for a silent writer before it declares
    /// the channel abandoned. Defaults to 5,000 (five seconds in the default unit).
    ///
    /// ```
    /// let header = kekbit::core::Header::builder().timeout(250).build();
    /// assert_eq!(header.timeout(), 250);
    /// ```
    pub fn timeout(mut self, ticks: u64) -> HeaderBuilder {
        self.timeout = ticks;
        self
    }

    /// The unit of the timeout and of the header's creation time. Defaults to
    /// [`TickUnit::Millis`].
    ///
    /// ```
    /// use kekbit::core::{Header, TickUnit};
    /// let header = Header::builder().tick_unit(TickUnit::Secs).build();
    /// assert_eq!(header.tick_unit(), TickUnit::Secs);
    /// ```
    pub fn tick_unit(mut self, unit: TickUnit) -> HeaderBuilder {
        self.tick_unit = unit;
        self
    }

    /// The header, stamped with the current time in the tick unit.
    ///
    /// ```
    /// use kekbit::core::{shm_writer, EncoderHandler, Header, Writer};
    /// let dir = tempfile::tempdir().unwrap();
    /// let header = Header::builder().channel_id(3).capacity(4096).build();
    /// let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
    /// writer.write("hello").unwrap();
    /// ```
    pub fn build(&self) -> Header {
        let max_record_len = self.max_record_len.unwrap_or_else(|| {
            let fits = (self.capacity.saturating_add(7) & !7)
                .saturating_sub(RECORD_HEADER_LEN as u64 + TRAILER_RESERVE);
            fits.min(1 << 20).min(u64::from(MAX_RECORD_LEN)) as u32
        });
        Header::new(
            self.writer_id,
            self.channel_id,
            self.capacity,
            max_record_len,
            self.timeout,
            self.tick_unit,
        )
    }
}

/// How to open a channel for reading: whether to wait for it to appear. The named form of
/// [`try_shm_reader`](super::try_shm_reader)`(root, id, duration_millis, tries)`, which
/// stays for code written for kekbit 0.3: `ReaderOptions::new().wait(duration)
/// .poll_interval(duration / tries).open(root, id)`.
///
/// ```
/// use kekbit::core::{ChannelError, ReaderOptions};
/// use std::time::Duration;
/// let dir = tempfile::tempdir().unwrap();
/// let missing = ReaderOptions::new()
///     .wait(Duration::from_millis(20))
///     .poll_interval(Duration::from_millis(5))
///     .open(dir.path(), 42);
/// assert!(matches!(missing, Err(ChannelError::NotFound { .. })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ReaderOptions {
    wait: Duration,
    poll_interval: Duration,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions::new()
    }
}

impl ReaderOptions {
    /// The defaults: no waiting.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// assert!(kekbit::core::ReaderOptions::new().open(dir.path(), 1).is_err());
    /// ```
    pub fn new() -> ReaderOptions {
        ReaderOptions {
            wait: Duration::ZERO,
            poll_interval: Duration::from_millis(10),
        }
    }

    /// How long to wait for a channel that does not exist yet; any other error is returned
    /// at once. Defaults to zero: a missing channel is [`ChannelError::NotFound`] at once.
    ///
    /// ```
    /// use kekbit::core::{shm_writer, EncoderHandler, Header, ReaderOptions};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir().unwrap();
    /// let root = dir.path().to_path_buf();
    /// let writer = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     shm_writer(&root, &Header::builder().channel_id(5).capacity(4096).build(), EncoderHandler).unwrap()
    /// });
    /// let reader = ReaderOptions::new().wait(Duration::from_secs(10)).open(dir.path(), 5).unwrap();
    /// assert_eq!(reader.header().channel_id(), 5);
    /// # drop(writer.join().unwrap());
    /// ```
    pub fn wait(mut self, wait: Duration) -> ReaderOptions {
        self.wait = wait;
        self
    }

    /// The pause between two looks for the channel while waiting. Defaults to 10 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = kekbit::core::ReaderOptions::new().poll_interval(Duration::from_millis(100));
    /// # drop(options);
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> ReaderOptions {
        self.poll_interval = interval;
        self
    }

    /// Opens channel `channel_id` under `root` for reading (see
    /// [`shm_reader`](super::shm_reader)), waiting for it as set.
    ///
    /// ```
    /// use kekbit::core::{shm_writer, EncoderHandler, Header, ReaderOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let _writer = shm_writer(dir.path(), &Header::builder().channel_id(8).build(), EncoderHandler).unwrap();
    /// let reader = ReaderOptions::new().open(dir.path(), 8).unwrap();
    /// assert_eq!(reader.header().channel_id(), 8);
    /// ```
    pub fn open(&self, root: &Path, channel_id: u64) -> Result<ShmReader, ChannelError> {
        let deadline = Instant::now() + self.wait;
        loop {
            match shm_reader(root, channel_id) {
                Err(ChannelError::NotFound { .. }) if Instant::now() < deadline => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    std::thread::sleep(self.poll_interval.min(left));
                }
                other => return other,
            }
        }
    }
}
