//! Prevalence: keep the whole application state in memory, journal every command before
//! applying it, snapshot the state now and then, and after a restart rebuild it from the
//! latest good snapshot plus the commands journaled after it.
//!
//! ```
//! use kekbit::prevalence::{Command, PrevalentStore, StoreOptions};
//! use serde::{Deserialize, Serialize};
//! use std::collections::BTreeMap;
//!
//! #[derive(Serialize, Deserialize)]
//! enum Inventory {
//!     Add { item: String, count: u32 },
//!     Take { item: String, count: u32 },
//! }
//!
//! impl Command<BTreeMap<String, u32>> for Inventory {
//!     type Output = Result<u32, String>;
//!     fn apply(&self, stock: &mut BTreeMap<String, u32>) -> Self::Output {
//!         match self {
//!             Inventory::Add { item, count } => {
//!                 let n = stock.entry(item.clone()).or_default();
//!                 *n += count;
//!                 Ok(*n)
//!             }
//!             Inventory::Take { item, count } => {
//!                 let n = stock.get_mut(item).filter(|n| **n >= *count).ok_or("not enough")?;
//!                 *n -= count;
//!                 Ok(*n)
//!             }
//!         }
//!     }
//! }
//!
//! let dir = tempfile::tempdir()?;
//! let store = PrevalentStore::<_, Inventory>::open(dir.path(), BTreeMap::new(), StoreOptions::new())?;
//! store.execute(Inventory::Add { item: "bolt".into(), count: 10 })?.unwrap();
//! assert!(store.execute(Inventory::Take { item: "bolt".into(), count: 11 })?.is_err());
//! assert_eq!(store.query(|stock| stock["bolt"])?, 10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod command;
mod error;
mod options;
mod store;

pub use command::Command;
pub use error::StoreError;
pub use options::StoreOptions;
pub use store::{PrevalentStore, SnapshotTaken};
