//! Replication with [openraft](https://docs.rs/openraft) (feature `raft`): kekbit as the log
//! store, the vote store and the state-machine / snapshot store of a Raft node.
//!
//! - [`LogStore`]: openraft's `RaftLogStorage` on a kekbit journal. Log index `i` is the
//!   journal's sequence number `i`; entries are encoded with bincode; the vote, the committed
//!   log id and the last purged log id live in a crash-atomic
//!   [`MetaFile`](crate::journal::MetaFile). Appends are acknowledged (`IOFlushed`) from the
//!   journal's group commit, through its durability callbacks.
//! - [`StateMachine`]: openraft's `RaftStateMachine` over an application state that
//!   implements [`RaftApp`], kept in memory and snapshotted into a kekbit
//!   [`SnapshotStore`](crate::snapshot::SnapshotStore).
//! - [`KvConfig`], [`KvState`]: a replicated key-value map, for tests and examples.
//!
//! How the metadata and the journal stay consistent across a crash is in docs/FORMAT.md
//! ("Vote, log and the order of writes").
//!
//! ```
//! use kekbit::raft::{KvConfig, KvState, LogStore, StateMachine};
//! use openraft::storage::{RaftLogReader, RaftLogStorage};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let mut log = LogStore::<KvConfig>::open(dir.path()).unwrap();
//! let state = StateMachine::<KvConfig, KvState>::open(dir.path()).unwrap();
//! assert_eq!(log.get_log_state().await.unwrap().last_log_id, None);
//! assert_eq!(log.read_vote().await.unwrap(), None);
//! assert_eq!(state.query(|kv| kv.len()), 0);
//! # });
//! ```

mod entries;
mod kv;
mod log_store;
mod meta;
mod state_machine;

pub use kv::{KvConfig, KvRequest, KvResponse, KvState};
pub use log_store::{LogReader, LogStore, LOG_DIR, META_FILE};
pub use state_machine::{RaftApp, SnapshotBuilder, StateMachine, StateView, SNAPSHOT_DIR};
