//! Staged writes: how a value becomes a record's payload. The writer runs its [`Handler`]
//! chain, which writes prefix fields, then encodes the value itself, straight into the
//! channel's memory (no intermediate buffer).

use std::borrow::Cow;
use std::io::{self, Write};
use std::rc::Rc;
use std::sync::Arc;

use super::TickUnit;

/// A value that can be written as a record's payload.
///
/// Implemented for byte slices, byte arrays, strings and their owned forms, and through
/// references, `Box`, `Rc`, `Arc` and `Cow` of any of them (so `Box<[u8]>`, `Cow<str>` or
/// `Arc<[u8]>` write their bytes, as they did in kekbit 0.3); implement it for your own
/// types to encode them in place.
///
/// ```
/// use kekbit::core::Encodable;
/// use std::io::Write;
///
/// struct Point { x: i32, y: i32 }
/// impl Encodable for Point {
///     fn encode<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
///         out.write_all(&self.x.to_le_bytes())?;
///         out.write_all(&self.y.to_le_bytes())
///     }
/// }
/// let mut buf = Vec::new();
/// Point { x: 1, y: -1 }.encode(&mut buf).unwrap();
/// assert_eq!(buf, [1, 0, 0, 0, 255, 255, 255, 255]);
/// ```
pub trait Encodable {
    /// Writes the value's bytes to `out`.
    ///
    /// ```
    /// use kekbit::core::Encodable;
    /// let mut out = Vec::new();
    /// "text".encode(&mut out).unwrap();
    /// assert_eq!(out, b"text");
    /// ```
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()>;
}

impl Encodable for [u8] {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(self)
    }
}

impl<const N: usize> Encodable for [u8; N] {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(self)
    }
}

impl Encodable for Vec<u8> {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(self)
    }
}

impl Encodable for str {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(self.as_bytes())
    }
}

impl Encodable for String {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(self.as_bytes())
    }
}

impl<T: Encodable + ?Sized> Encodable for &T {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        (**self).encode(out)
    }
}

/// ```
/// use kekbit::core::Encodable;
/// let boxed: Box<[u8]> = vec![1, 2].into_boxed_slice();
/// let mut out = Vec::new();
/// boxed.encode(&mut out).unwrap();
/// assert_eq!(out, [1, 2]);
/// ```
impl<T: Encodable + ?Sized> Encodable for Box<T> {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        (**self).encode(out)
    }
}

/// ```
/// use kekbit::core::Encodable;
/// let shared: std::rc::Rc<str> = "rc".into();
/// let mut out = Vec::new();
/// shared.encode(&mut out).unwrap();
/// assert_eq!(out, b"rc");
/// ```
impl<T: Encodable + ?Sized> Encodable for Rc<T> {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        (**self).encode(out)
    }
}

/// ```
/// use kekbit::core::Encodable;
/// let shared: std::sync::Arc<[u8]> = vec![3u8, 4].into();
/// let mut out = Vec::new();
/// shared.encode(&mut out).unwrap();
/// assert_eq!(out, [3, 4]);
/// ```
impl<T: Encodable + ?Sized> Encodable for Arc<T> {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        (**self).encode(out)
    }
}

/// ```
/// use kekbit::core::Encodable;
/// use std::borrow::Cow;
/// let mut out = Vec::new();
/// Cow::<str>::Borrowed("a").encode(&mut out).unwrap();
/// Cow::<[u8]>::Owned(vec![b'b']).encode(&mut out).unwrap();
/// assert_eq!(out, b"ab");
/// ```
impl<B: Encodable + ToOwned + ?Sized> Encodable for Cow<'_, B> {
    fn encode<W: Write>(&self, out: &mut W) -> io::Result<()> {
        (**self).encode(out)
    }
}

/// One stage of a staged write: writes its fields in front of the encoded value.
///
/// [`handle`](Handler::handle) runs for every write attempt; [`committed`](Handler::committed)
/// runs only once the record is published, so a stage that counts (such as
/// [`SequenceHandler`]) leaves no gap when a write fails.
///
/// ```
/// use kekbit::core::Handler;
/// use std::io::Write;
///
/// /// Tags every record with a fixed byte.
/// struct Tag(u8);
/// impl Handler for Tag {
///     fn handle<W: Write>(&mut self, out: &mut W) -> std::io::Result<()> {
///         out.write_all(&[self.0])
///     }
/// }
/// let mut buf = Vec::new();
/// Tag(7).handle(&mut buf).unwrap();
/// assert_eq!(buf, [7]);
/// ```
pub trait Handler {
    /// Writes this stage's fields to `out`, ahead of the value.
    ///
    /// ```
    /// use kekbit::core::{Handler, SequenceHandler};
    /// let mut out = Vec::new();
    /// SequenceHandler::starting_at(2).handle(&mut out).unwrap();
    /// assert_eq!(out, 2u64.to_le_bytes());
    /// ```
    fn handle<W: Write>(&mut self, out: &mut W) -> io::Result<()>;

    /// Called after the record was published. Does nothing by default.
    ///
    /// ```
    /// use kekbit::core::{Handler, SequenceHandler};
    /// let mut handler = SequenceHandler::default();
    /// handler.committed();
    /// assert_eq!(handler.next(), 1);
    /// ```
    fn committed(&mut self) {}
}

/// The plain stage: adds nothing, so the payload is exactly the encoded value.
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 5, 4096, 64, 1_000, TickUnit::Millis);
/// let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
/// writer.write("plain").unwrap();
/// let mut reader = shm_reader(dir.path(), 5).unwrap();
/// assert_eq!(reader.try_read().unwrap(), Some(&b"plain"[..]));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct EncoderHandler;

impl Handler for EncoderHandler {
    #[inline]
    fn handle<W: Write>(&mut self, _out: &mut W) -> io::Result<()> {
        Ok(())
    }
}

/// Prefixes each record with its sequence number, a little-endian `u64` counting the
/// records this writer published, from a chosen start.
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, Header, Reader, SequenceHandler, TickUnit, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 6, 4096, 64, 1_000, TickUnit::Millis);
/// let mut writer = shm_writer(dir.path(), &header, SequenceHandler::starting_at(10)).unwrap();
/// writer.write("a").unwrap();
/// writer.write("b").unwrap();
/// let mut reader = shm_reader(dir.path(), 6).unwrap();
/// let first = reader.try_read().unwrap().unwrap().to_vec();
/// let second = reader.try_read().unwrap().unwrap().to_vec();
/// assert_eq!(first[..8], 10u64.to_le_bytes());
/// assert_eq!(second[..8], 11u64.to_le_bytes());
/// assert_eq!(&second[8..], b"b");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SequenceHandler {
    next: u64,
}

impl SequenceHandler {
    /// A stage whose first record gets sequence number `first`.
    ///
    /// ```
    /// let handler = kekbit::core::SequenceHandler::starting_at(5);
    /// assert_eq!(handler.next(), 5);
    /// ```
    pub fn starting_at(first: u64) -> SequenceHandler {
        SequenceHandler { next: first }
    }

    /// The sequence number the next record will get.
    ///
    /// ```
    /// assert_eq!(kekbit::core::SequenceHandler::default().next(), 0);
    /// ```
    pub fn next(&self) -> u64 {
        self.next
    }
}

impl Handler for SequenceHandler {
    fn handle<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(&self.next.to_le_bytes())
    }

    fn committed(&mut self) {
        self.next += 1;
    }
}

/// Prefixes each record with the time of the write, a little-endian `u64` of ticks since the
/// UNIX epoch in the handler's [`TickUnit`].
///
/// ```
/// use kekbit::core::{shm_reader, shm_writer, Header, Reader, TickUnit, TimestampHandler, Writer};
/// let dir = tempfile::tempdir().unwrap();
/// let header = Header::new(1, 7, 4096, 64, 1_000, TickUnit::Millis);
/// let mut writer = shm_writer(dir.path(), &header, TimestampHandler::new(TickUnit::Millis)).unwrap();
/// let before = TickUnit::Millis.nix_time();
/// writer.write("x").unwrap();
/// let mut reader = shm_reader(dir.path(), 7).unwrap();
/// let record = reader.try_read().unwrap().unwrap();
/// let stamp = u64::from_le_bytes(record[..8].try_into().unwrap());
/// assert!(stamp >= before && stamp <= TickUnit::Millis.nix_time());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct TimestampHandler {
    unit: TickUnit,
}

impl TimestampHandler {
    /// A stage that stamps records in `unit`s.
    ///
    /// ```
    /// use kekbit::core::{TickUnit, TimestampHandler};
    /// assert_eq!(TimestampHandler::new(TickUnit::Nanos).unit(), TickUnit::Nanos);
    /// ```
    pub fn new(unit: TickUnit) -> TimestampHandler {
        TimestampHandler { unit }
    }

    /// The unit of the stamps.
    ///
    /// ```
    /// use kekbit::core::{TickUnit, TimestampHandler};
    /// assert_eq!(TimestampHandler::new(TickUnit::Secs).unit(), TickUnit::Secs);
    /// ```
    pub fn unit(&self) -> TickUnit {
        self.unit
    }
}

impl Handler for TimestampHandler {
    fn handle<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        out.write_all(&self.unit.nix_time().to_le_bytes())
    }
}

/// Two stages in a row: `first` writes its fields, then `second`. Chains nest, so any number
/// of stages can be combined.
///
/// ```
/// use kekbit::core::{ChainedHandler, Handler, SequenceHandler, TickUnit, TimestampHandler};
/// let mut chain = ChainedHandler::new(SequenceHandler::starting_at(1), TimestampHandler::new(TickUnit::Secs));
/// let mut buf = Vec::new();
/// chain.handle(&mut buf).unwrap();
/// assert_eq!(buf.len(), 16);
/// assert_eq!(buf[..8], 1u64.to_le_bytes());
/// ```
#[derive(Debug, Clone)]
pub struct ChainedHandler<A, B> {
    first: A,
    second: B,
}

impl<A: Handler, B: Handler> ChainedHandler<A, B> {
    /// Runs `first`, then `second`.
    ///
    /// ```
    /// use kekbit::core::{ChainedHandler, EncoderHandler, SequenceHandler};
    /// let _chain = ChainedHandler::new(SequenceHandler::default(), EncoderHandler);
    /// ```
    pub fn new(first: A, second: B) -> ChainedHandler<A, B> {
        ChainedHandler { first, second }
    }
}

impl<A: Handler, B: Handler> Handler for ChainedHandler<A, B> {
    fn handle<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        self.first.handle(out)?;
        self.second.handle(out)
    }

    fn committed(&mut self) {
        self.first.committed();
        self.second.committed();
    }
}
