//! Journals as streams: records as an async `futures::Stream` that wakes when the writer
//! publishes, in this process or another (feature `async`).
//!
//! A `JournalStream` yields `(sequence, Record)` items, zero-copy [`Record`] handles shared
//! with every reader of the segment in the process. Waiting costs no thread per stream and
//! no polling: the journal's writer rings a doorbell (a futex word in a file beside the
//! segments) after each append and sync, and one thread per journal and process sleeps on it
//! and wakes the streams.
//!
//! A [`ByteReader`] reads a journal's records as one byte stream (`io::Read + io::Seek`, no
//! feature needed), and [`capture`] copies any `io::Read` into a journal; `AsyncByteReader`
//! is the byte stream as tokio's `AsyncRead + AsyncSeek`, waiting for the writer.
//!
//! [`Record`]: crate::journal::Record

#[cfg(feature = "async")]
mod async_bytes;
mod bytes;
#[cfg(feature = "async")]
mod durable;
#[cfg(feature = "async")]
mod records;
#[cfg(feature = "async")]
mod waiter;

#[cfg(feature = "async")]
pub use async_bytes::AsyncByteReader;
pub use bytes::{capture, ByteReader};
#[cfg(feature = "async")]
pub use durable::Durable;
#[cfg(feature = "async")]
pub use records::JournalStream;
