//! Journals as streams: records as an async `futures::Stream` that wakes when the writer
//! publishes, in this process or another (feature `async`).
//!
//! A `JournalStream` yields `(sequence, Record)` items, zero-copy [`Record`] handles shared
//! with every reader of the segment in the process. Waiting costs no thread per stream and
//! no polling: the journal's writer rings a doorbell (a futex word in a file beside the
//! segments) after each append and sync, and one thread per journal and process sleeps on it
//! and wakes the streams.
//!
//! [`Record`]: crate::journal::Record

#[cfg(feature = "async")]
mod records;
#[cfg(feature = "async")]
mod waiter;

#[cfg(feature = "async")]
pub use records::JournalStream;
