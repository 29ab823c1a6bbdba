//! The replay engine: feeds a journal's records, from any sequence number, to application
//! code, handling damage as the [`RecoveryMode`](crate::journal::RecoveryMode) says and
//! reporting what it did.
//!
//! ```
//! use kekbit::journal::{Journal, RecoveryMode};
//! use kekbit::replay::{replay, Replay};
//!
//! struct Balance(i64);
//! impl Replay for Balance {
//!     type Error = std::num::ParseIntError;
//!     fn record(&mut self, _seq: u64, record: &[u8]) -> Result<(), Self::Error> {
//!         self.0 += String::from_utf8_lossy(record).parse::<i64>()?;
//!         Ok(())
//!     }
//! }
//! let dir = tempfile::tempdir()?;
//! let journal = Journal::open(dir.path())?;
//! for delta in ["100", "-30", "5"] {
//!     journal.append(delta.as_bytes())?;
//! }
//! let mut balance = Balance(0);
//! let report = replay(dir.path(), 0, RecoveryMode::TolerateTornTail, &mut balance)?;
//! assert_eq!((balance.0, report.records_replayed), (75, 3));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod engine;
mod report;

pub use engine::{replay, Decision, Replay, ReplayError};
pub use report::{CorruptRange, RecoveryReport, SnapshotUsed};
