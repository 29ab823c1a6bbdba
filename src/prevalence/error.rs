//! Errors of the prevalent store.

use std::path::PathBuf;

use crate::codec::CodecError;
use crate::journal::{AppendError, JournalError};
use crate::replay::ReplayError;
use crate::snapshot::{Rejected, SnapshotError};

/// Errors opening, executing on or snapshotting a [`PrevalentStore`](super::PrevalentStore).
///
/// ```
/// use kekbit::prevalence::{PrevalentStore, StoreError, StoreOptions};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Noop;
/// # impl kekbit::prevalence::Command<u64> for Noop { type Output = (); fn apply(&self, _: &mut u64) {} }
/// let dir = tempfile::tempdir().unwrap();
/// let first = PrevalentStore::<u64, Noop>::open(dir.path(), 0, StoreOptions::new()).unwrap();
/// let second = PrevalentStore::<u64, Noop>::open(dir.path(), 0, StoreOptions::new());
/// assert!(matches!(second, Err(StoreError::Journal(_))));
/// # drop(first);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Opening or pruning the journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Journaling a command failed; the command was not applied (or, if the failure was a
    /// sync after it, the store is poisoned: reopen it to continue from what is durable).
    #[error(transparent)]
    Append(#[from] AppendError),
    /// Replaying the journal failed (the error names the record's sequence number).
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// Reading or writing snapshots failed.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Encoding a command or the state failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// No snapshot is usable and the journal no longer starts at sequence 0, so the state
    /// cannot be rebuilt.
    #[error("{}: no usable snapshot and the journal starts at sequence {first_sequence}; rejected: {rejected:?}", dir.display())]
    NoUsableSnapshot {
        /// The store's directory.
        dir: PathBuf,
        /// The journal's first sequence number.
        first_sequence: u64,
        /// The snapshots found and why each was refused.
        rejected: Vec<Rejected>,
    },
    /// A command panicked while being applied: the state is unknown, so the store refuses
    /// further work. Reopen it (and fix the command).
    #[error("{}: a command panicked while being applied; reopen the store", dir.display())]
    Poisoned {
        /// The store's directory.
        dir: PathBuf,
    },
}
