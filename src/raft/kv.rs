//! A replicated key-value map: the application the tests and the example run on raft.

use std::collections::BTreeMap;
use std::fmt;

use openraft::EntryPayload;
use serde::{Deserialize, Serialize};

use super::RaftApp;

/// A write to the key-value map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvRequest {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
}

impl fmt::Display for KvRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvRequest::Set { key, value } => write!(f, "set {key} = {value}"),
            KvRequest::Delete { key } => write!(f, "delete {key}"),
        }
    }
}

/// What a write answers: the key's previous value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponse {
    /// The value the key had before the write, if any.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The raft types of the key-value map: `u64` node ids, [`openraft::BasicNode`] nodes
    /// (an address), [`KvRequest`] entries answered with [`KvResponse`], on tokio.
    pub KvConfig:
        D = KvRequest,
        R = KvResponse,
);

/// The key-value map's state.
///
/// ```
/// use kekbit::raft::{KvConfig, KvRequest, KvState, RaftApp};
/// use openraft::entry::RaftEntry;
/// use openraft::vote::leader_id_adv::LeaderId;
/// use openraft::vote::RaftLeaderIdExt;
/// use openraft::{Entry, LogId};
/// let mut state = KvState::default();
/// let set = KvRequest::Set { key: "a".into(), value: "1".into() };
/// let entry = Entry::new_normal(LogId::new(LeaderId::<u64, u64>::new_committed(1, 1), 1), set);
/// assert_eq!(RaftApp::<KvConfig>::apply(&mut state, &entry).previous, None);
/// assert_eq!(state.get("a"), Some("1"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    map: BTreeMap<String, String>,
}

impl KvState {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// How many keys the map holds.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl RaftApp<KvConfig> for KvState {
    fn apply(&mut self, entry: &<KvConfig as openraft::RaftTypeConfig>::Entry) -> KvResponse {
        let previous = match &entry.payload {
            EntryPayload::Normal(KvRequest::Set { key, value }) => {
                self.map.insert(key.clone(), value.clone())
            }
            EntryPayload::Normal(KvRequest::Delete { key }) => self.map.remove(key),
            _ => None,
        };
        KvResponse { previous }
    }
}
