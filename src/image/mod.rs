//! Mapped images: [`MappedVec`], a persistent, growable array of plain-old-data elements
//! kept in a memory-mapped file in its in-memory representation, crash-consistent through a
//! [`Journal`](crate::journal::Journal) beside it.
//!
//! A restart maps the file without reading it (pages load on demand), then replays only
//! the journal since the last checkpoint. The design avoids the trap of mapped files as
//! database storage (Crotty, Leis, Pavlo, *Are You Sure You Want to Use MMAP in Your
//! DBMS?*, CIDR 2022), where the kernel writes a changed page back before the log record of
//! its change is durable:
//! - the file is mapped private (copy-on-write): a change stays in this process's memory,
//!   and the kernel never writes it to the file;
//! - every change is first appended to the journal as a physical redo record (the new
//!   length, and the new bytes of the elements written);
//! - a [`checkpoint`](MappedVec::checkpoint) syncs the journal, writes the changed pages to
//!   the file (`pwrite`), syncs it, then records the new checkpoint position in the older
//!   of two checksummed header slots, syncs, and prunes the journal. A crash at any step
//!   leaves a header naming a checkpoint whose journal records are all still there; redo
//!   from it repairs any page a torn checkpoint left half written.
//!
//! The layout and every crash case are in docs/FORMAT.md, "Mapped image".
//!
//! ```
//! use kekbit::image::MappedVec;
//! use kekbit::journal::Durability;
//!
//! let dir = tempfile::tempdir()?;
//! let mut balances = MappedVec::<u64>::options()
//!     .capacity(1_000)
//!     .durability(Durability::Never) // acknowledge before durable; `sync` when it matters
//!     .create(dir.path())?;
//! balances.extend_from_slice(&[100; 1_000])?;
//! balances.modify(3..5, |b| { b[0] -= 30; b[1] += 30; })?; // one atomic change
//! balances.sync()?; // every change so far is durable
//! balances.checkpoint()?; // the file holds them all; the journal before is pruned
//! assert_eq!(balances[3..5], [70, 130]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What it does not protect against: see the README's "Mapped images" section and
//! docs/FORMAT.md ("Mapped image", "What the image does not protect against").

mod checkpoint;
mod dirty;
mod error;
mod file;
#[cfg(test)]
mod format_doc;
mod header;
mod open;
mod options;
mod redo;
mod vec;

pub use checkpoint::Checkpoint;
pub use error::ImageError;
pub use options::{ImageOptions, DEFAULT_SEGMENT_CAPACITY};
pub use vec::{MappedVec, OpenReport};

/// Re-exported so that users derive [`Pod`](bytemuck::Pod) with the same `bytemuck` this
/// crate uses.
pub use bytemuck;
