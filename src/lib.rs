//! kekbit: ultralight persistent data channels and transaction journals.
//!
//! The [`core`] module provides channels: fixed-capacity, memory-mapped files with one writer
//! and any number of readers in any process, every record framed and CRC32-checksummed.
//! The on-disk format is specified in `docs/FORMAT.md`.
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

pub mod core;
pub mod journal;
mod mmap;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
