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
//! - [`stream`]: journals as async streams of records (feature `async`), woken by the
//!   writer of any process;
//! - [`typed`]: a persistent append-only sequence of serde values;
//! - [`image`]: a persistent, mutable, memory-mapped array of plain-old-data elements
//!   (`MappedVec`), crash-consistent through a journal of redo records, restarting without
//!   reading its data;
//! - [`codec`]: the serde codec used by the last three (bincode 2 by default).
//!
//! The on-disk formats are specified in `docs/FORMAT.md`. Linux only (see the README's
//! Platforms section): the build fails on other targets.
//!
//! # A journal
//!
//! Records get gapless sequence numbers; `append` returns once the record is durable (the
//! default [`Durability`](journal::Durability)); a reader, in this or another process,
//! reads from any sequence number.
//!
//! ```
//! use kekbit::journal::{Durability, Journal, JournalReader};
//!
//! let dir = tempfile::tempdir()?;
//! let journal = Journal::options()
//!     .segment_capacity(1 << 20) // 1 MiB segments, chained as they fill
//!     .durability(Durability::EveryRecord)
//!     .open(dir.path())?;
//! assert_eq!(journal.append(b"deposit 100")?, 0);
//! assert_eq!(journal.append(b"withdraw 30")?, 1);
//!
//! let mut reader = JournalReader::open(dir.path(), 0)?;
//! assert_eq!(reader.try_next()?, Some((0, &b"deposit 100"[..])));
//! assert_eq!(reader.try_next()?, Some((1, &b"withdraw 30"[..])));
//! assert_eq!(reader.try_next()?, None); // nothing more yet
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # A prevalent store
//!
//! The state lives in memory and changes only through commands, each journaled before it is
//! applied; a restart loads the newest snapshot and replays the commands after it. The
//! second argument of [`open`](prevalence::PrevalentStore::open) is the initial state, used
//! when the directory holds nothing yet.
//!
//! ```
//! use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Deposit(u64);
//!
//! impl Command<u64> for Deposit {
//!     type Output = u64;
//!     fn apply(&self, balance: &mut u64) -> u64 {
//!         *balance += self.0; // deterministic: no clock, no randomness, no I/O
//!         *balance
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! {
//!     let store = PrevalentStore::<u64, Deposit>::open(dir.path(), 0, StoreOptions::new())?;
//!     store.execute(Deposit(70))?;
//!     store.snapshot()?;
//!     store.execute(Deposit(30))?;
//! }
//! let store = PrevalentStore::<u64, Deposit>::open(dir.path(), 0, StoreOptions::new())?;
//! assert_eq!(store.query(|balance| *balance)?, 100);
//! assert_eq!(store.recovery_report().records_replayed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # A channel
//!
//! ```
//! use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, Reader, TickUnit, Writer};
//!
//! let dir = tempfile::tempdir()?;
//! let header = Header::builder()
//!     .writer_id(1)
//!     .channel_id(1)
//!     .capacity(1 << 16)
//!     .max_record_len(256)
//!     .timeout(1_000)
//!     .tick_unit(TickUnit::Millis)
//!     .build(); // or positionally: Header::new(1, 1, 1 << 16, 256, 1_000, TickUnit::Millis)
//! let mut writer = shm_writer(dir.path(), &header, EncoderHandler)?;
//! writer.write("journal entry")?;
//! let mut reader = shm_reader(dir.path(), 1)?;
//! assert_eq!(reader.try_read()?, Some(&b"journal entry"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! - `cli`: the `kekbit` command-line tool (`cargo install --locked --path . --features cli`).
//! - `async`: `stream::JournalStream`, a journal's records as a `futures` `Stream` that
//!   waits without a thread or polling; pulls in `futures-core` and `tokio` (traits only).
//! - `fault-injection`: the `fault` module, an observer of every file-system operation the
//!   crate performs, for tests that record what reached storage or make an operation fail.
//!   Test support only: without the feature the module is not public.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "kekbit supports Linux only: it relies on fallocate(2), madvise(MADV_POPULATE_WRITE) and \
     flock(2) semantics (see the README's Platforms section)"
);

pub mod codec;
pub mod core;
// Test support (feature `fault-injection`): public only with the feature.
#[cfg(feature = "fault-injection")]
pub mod fault;
#[cfg(not(feature = "fault-injection"))]
mod fault;
pub mod image;
pub mod journal;
mod le;
mod mmap;
pub mod prevalence;
#[cfg(feature = "raft")]
pub mod raft;
pub mod replay;
pub mod snapshot;
pub mod stream;
pub mod typed;

/// The README's examples, compiled and run as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
