//! Snapshots: whole-state images of an application, so that a restart loads the latest
//! image and replays only the journal records after it.
//!
//! ```
//! use kekbit::snapshot::SnapshotStore;
//! let dir = tempfile::tempdir()?;
//! let store = SnapshotStore::open(dir.path(), 2)?;
//! store.write(1_000, b"the state after records 0..1000")?;
//! let (newest, rejected) = store.load_newest(|_, body| Ok(body.to_vec()))?;
//! let (info, body) = newest.expect("a snapshot");
//! assert_eq!(info.sequence, 1_000);
//! assert!(body.starts_with(b"the state"));
//! assert!(rejected.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod format;
mod store;

pub use format::{SNAPSHOT_HEADER_LEN, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
pub use store::{Rejected, SnapshotError, SnapshotInfo, SnapshotStore};
