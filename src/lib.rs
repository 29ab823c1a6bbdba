//! kekbit: ultralight persistent data channels and transaction journals.
//!
//! Layers, each built on the ones before it:
//!
//! - [`core`]: channels, fixed-capacity memory-mapped files with one writer and any number
//!   of readers in any process, every record framed and CRC32-checksummed;
//! - [`journal`]: channels chained into an unbounded write-ahead log with global sequence
//!   numbers, rollover, recovery, durability policies and group commit;
//! - [`replay`]: feeding a journal back into application code, with recovery modes and a
//!   report of what was done;
//! - [`snapshot`]: whole-state images written atomically, read back newest-good-first;
//! - [`prevalence`]: an in-memory state changed only by journaled commands and restored
//!   from a snapshot plus the commands after it;
//! - [`typed`]: a persistent append-only sequence of serde values;
//! - [`codec`]: the serde codec used by the last three (bincode 2 by default).
//!
//! The on-disk formats are specified in `docs/FORMAT.md`.
//!
//! ```
//! use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
//!
//! let dir = tempfile::tempdir()?;
//! let mut writer = shm_writer(dir.path(), &Header::new(1, 1, 1 << 16, 256, 1_000, TickUnit::Millis), EncoderHandler)?;
//! writer.write("journal entry")?;
//! let mut reader = shm_reader(dir.path(), 1)?;
//! assert_eq!(reader.try_read()?, Some(&b"journal entry"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod codec;
pub mod core;
pub mod fault;
pub mod journal;
mod le;
mod mmap;
pub mod prevalence;
pub mod replay;
pub mod snapshot;
pub mod typed;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
