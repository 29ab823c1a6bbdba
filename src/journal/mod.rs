//! The journal: an unbounded, append-only log of records with global sequence numbers, made
//! of fixed-capacity segments (channels of [`crate::core`]) linked into a chain.
//!
//! When a segment is full the writer seals it with a marker naming its successor's first
//! sequence number and continues in the next segment, which a background thread prepared
//! ahead. Each segment's header records its first sequence number and its predecessor's id
//! and seal checksum, so a missing, swapped, duplicated or foreign segment is detected.
//! The layout and the crash case of each step are in `docs/FORMAT.md`.
//!
//! ```
//! use kekbit::journal::{Durability, Journal, JournalReader};
//!
//! let dir = tempfile::tempdir()?;
//! let journal = Journal::options()
//!     .segment_capacity(64 << 10)
//!     .max_record_len(1024)
//!     .durability(Durability::Never)
//!     .open(dir.path())?;
//! for i in 0..10_000u32 {
//!     journal.append(&i.to_le_bytes())?; // rolls over to new segments as they fill
//! }
//! journal.sync()?;
//!
//! let mut reader = JournalReader::open(dir.path(), 9_990)?;
//! let (seq, record) = reader.try_next()?.expect("record 9990");
//! assert_eq!((seq, record), (9_990, &9_990u32.to_le_bytes()[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod appender;
pub(crate) mod bell;
mod callbacks;
mod durability;
mod error;
mod flusher;
mod helper;
#[allow(clippy::module_inception)]
mod journal;
mod maintain;
mod meta;
mod options;
mod reader;
mod record;
mod recovery;
mod report;
mod scan;
mod segment;
mod shared;
mod sync;
mod syncer;
mod truncate;

#[cfg(feature = "async")]
pub(crate) use callbacks::Resolve;
pub use durability::ParseDurabilityError;
pub use error::{AppendError, JournalError};
pub use journal::Journal;
#[cfg(feature = "async")]
pub(crate) use journal::LOCK_FILE;
pub use maintain::{
    prune, repair, stats, verify, JournalStats, Problem, VerifyReport, VerifyStatus,
};
#[cfg(test)]
pub(crate) use meta::META_FIELDS;
pub use meta::{
    MetaError, MetaFile, MAX_META_LEN, META_MAGIC, META_SLOT_HEADER_LEN, META_SLOT_LEN,
};
pub use options::{
    Durability, JournalOptions, Prefault, RecoveryMode, MAX_RECYCLE_SEGMENTS, MAX_SEGMENTS_AHEAD,
};
pub use reader::{Follow, JournalReader};
pub use record::Record;
pub use report::{DroppedRange, OpenReport, PruneReport, TruncateReport};
