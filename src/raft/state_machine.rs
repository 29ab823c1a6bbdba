//! The raft state machine: the application's state in memory, its snapshots in a kekbit
//! [`SnapshotStore`]. Snapshots are the state's durable form; the log after the last one is
//! replayed by openraft after a restart (up to the committed log id the log store saved).

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_core::Stream;
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{OptionalSend, RaftTypeConfig, StoredMembership};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{Bincode, Codec};
use crate::snapshot::SnapshotStore;

/// Directory of the snapshots in the state machine's directory.
pub const SNAPSHOT_DIR: &str = "snapshots";

/// How many snapshots a state machine keeps.
const KEEP: usize = 2;

/// The application's state: what raft replicates. Applying must be deterministic: every node
/// applies the same entries in the same order and must reach the same state and responses.
///
/// `apply` sees every entry: normal ones (the application's requests), blank ones (a new
/// leader's first entry) and membership changes; it returns the response for the client that
/// proposed the entry (ignored for the others).
pub trait RaftApp<C: RaftTypeConfig>:
    Serialize + DeserializeOwned + Default + Send + Sync + 'static
{
    /// Applies `entry` to the state and returns its response.
    fn apply(&mut self, entry: &C::Entry) -> C::R;
}

/// What a snapshot file holds: the snapshot's meta and the encoded state.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct SnapshotFile<C: RaftTypeConfig> {
    meta: SnapshotMetaOf<C>,
    state: Vec<u8>,
}

/// openraft's state machine over an application state `S` kept in memory and snapshotted
/// into a kekbit [`SnapshotStore`] (the newest two are kept). Opening restores the newest
/// snapshot; installing one writes it durably (temporary file, sync, rename, directory sync)
/// and only then replaces the state, so a crash leaves the old state or the new one.
pub struct StateMachine<C: RaftTypeConfig, S> {
    inner: Arc<Mutex<Inner<C, S>>>,
    snapshots: Arc<SnapshotStore>,
}

/// Builds snapshots of a [`StateMachine`].
pub struct SnapshotBuilder<C: RaftTypeConfig, S> {
    inner: Arc<Mutex<Inner<C, S>>>,
    snapshots: Arc<SnapshotStore>,
}

struct Inner<C: RaftTypeConfig, S> {
    state: S,
    last_applied: Option<LogIdOf<C>>,
    membership: StoredMembershipOf<C>,
    /// The newest snapshot: its meta and encoded state.
    current: Option<(SnapshotMetaOf<C>, Vec<u8>)>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl<C: RaftTypeConfig, S: RaftApp<C>> StateMachine<C, S> {
    /// Opens the state machine in `dir` (creating it): the state of the newest snapshot, or
    /// `S::default()` when there is none.
    pub fn open(dir: impl AsRef<Path>) -> io::Result<StateMachine<C, S>> {
        let dir = dir.as_ref().join(SNAPSHOT_DIR);
        crate::core::create_dir_durable(&dir).map_err(io::Error::other)?;
        let snapshots = SnapshotStore::open(&dir, KEEP).map_err(io::Error::other)?;
        let mut inner = Inner {
            state: S::default(),
            last_applied: None,
            membership: StoredMembership::default(),
            current: None,
        };
        if let Some(newest) = snapshots.list().map_err(io::Error::other)?.first() {
            let body = snapshots.read(newest).map_err(io::Error::other)?;
            let file: SnapshotFile<C> = Bincode
                .decode(&body)
                .map_err(|e| invalid(format!("{}: {e}", newest.path.display())))?;
            inner.state = Bincode
                .decode(&file.state)
                .map_err(|e| invalid(format!("{}: state: {e}", newest.path.display())))?;
            inner.last_applied = file.meta.last_log_id.clone();
            inner.membership = file.meta.last_membership.clone();
            inner.current = Some((file.meta, file.state));
        }
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(inner)),
            snapshots: Arc::new(snapshots),
        })
    }

    /// Reads the state.
    pub fn query<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        read(&lock(&self.inner).state)
    }

    /// A handle that reads the state after the state machine was handed to openraft
    /// (`Raft::new` takes it by value): the application's read path.
    ///
    /// ```
    /// use kekbit::raft::{KvConfig, KvState, StateMachine};
    /// let dir = tempfile::tempdir().unwrap();
    /// let state = StateMachine::<KvConfig, KvState>::open(dir.path()).unwrap();
    /// let view = state.view();
    /// drop(state); // as if moved into openraft
    /// assert_eq!(view.query(|kv| kv.get("a").map(str::to_owned)), None);
    /// ```
    pub fn view(&self) -> StateView<C, S> {
        StateView {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// Reads the state of a [`StateMachine`] (see [`StateMachine::view`]); cheap to clone.
pub struct StateView<C: RaftTypeConfig, S> {
    inner: Arc<Mutex<Inner<C, S>>>,
}

impl<C: RaftTypeConfig, S> Clone for StateView<C, S> {
    fn clone(&self) -> Self {
        StateView {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C: RaftTypeConfig, S> StateView<C, S> {
    /// Reads the state, as it is after the entries applied so far.
    pub fn query<R>(&self, read: impl FnOnce(&S) -> R) -> R {
        read(&lock(&self.inner).state)
    }

    /// The log id of the last entry applied (or of the snapshot installed last).
    pub fn last_applied(&self) -> Option<LogIdOf<C>> {
        lock(&self.inner).last_applied.clone()
    }
}

fn lock<C: RaftTypeConfig, S>(inner: &Mutex<Inner<C, S>>) -> MutexGuard<'_, Inner<C, S>> {
    inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// The file sequence number of a snapshot covering entries up to `last`: one past it.
fn sequence_of<C: RaftTypeConfig>(last: &Option<LogIdOf<C>>) -> u64 {
    last.as_ref().map_or(0, |l| l.index() + 1)
}

/// Writes a snapshot of `meta` and `state` durably.
fn write<C: RaftTypeConfig>(
    snapshots: &SnapshotStore,
    meta: &SnapshotMetaOf<C>,
    state: &[u8],
) -> io::Result<()> {
    let file = SnapshotFile::<C> {
        meta: meta.clone(),
        state: state.to_vec(),
    };
    let mut body = Vec::new();
    Bincode.encode(&file, &mut body).map_err(io::Error::other)?;
    snapshots
        .write(sequence_of::<C>(&meta.last_log_id), &body)
        .map_err(io::Error::other)?;
    Ok(())
}

impl<C: RaftTypeConfig, S: RaftApp<C>> RaftSnapshotBuilder<C> for SnapshotBuilder<C, S> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Vec<u8>>, io::Error> {
        let (meta, state) = {
            let inner = lock(&self.inner);
            let mut state = Vec::new();
            Bincode
                .encode(&inner.state, &mut state)
                .map_err(io::Error::other)?;
            let meta = SnapshotMetaOf::<C> {
                last_log_id: inner.last_applied.clone(),
                last_membership: inner.membership.clone(),
            };
            (meta, state)
        };
        write::<C>(&self.snapshots, &meta, &state)?;
        let mut inner = lock(&self.inner);
        let newer = inner.current.as_ref().is_some_and(|(m, _)| {
            sequence_of::<C>(&m.last_log_id) > sequence_of::<C>(&meta.last_log_id)
        });
        if !newer {
            inner.current = Some((meta.clone(), state.clone()));
        }
        Ok(SnapshotOf::<C, Vec<u8>> {
            meta,
            snapshot: state,
        })
    }
}

impl<C: RaftTypeConfig, S: RaftApp<C>> RaftStateMachine<C> for StateMachine<C, S> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder<C, S>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        let inner = lock(&self.inner);
        Ok((inner.last_applied.clone(), inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(next) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut entries).poll_next(cx)).await
        {
            let (entry, responder) = next?;
            let response = {
                let mut inner = lock(&self.inner);
                inner.last_applied = Some(entry.log_id());
                if let Some(membership) = entry.get_membership() {
                    inner.membership = StoredMembership::new(Some(entry.log_id()), membership);
                }
                inner.state.apply(&entry)
            };
            if let Some(responder) = responder {
                responder.send(response);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            inner: Arc::clone(&self.inner),
            snapshots: Arc::clone(&self.snapshots),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let state: S = Bincode
            .decode(&snapshot)
            .map_err(|e| invalid(format!("installing a snapshot: state: {e}")))?;
        // Durable first, then visible: a crash keeps the old state or the new one.
        write::<C>(&self.snapshots, meta, &snapshot)?;
        let mut inner = lock(&self.inner);
        inner.state = state;
        inner.last_applied = meta.last_log_id.clone();
        inner.membership = meta.last_membership.clone();
        inner.current = Some((meta.clone(), snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
        let inner = lock(&self.inner);
        Ok(inner
            .current
            .as_ref()
            .map(|(meta, state)| SnapshotOf::<C, Vec<u8>> {
                meta: meta.clone(),
                snapshot: state.clone(),
            }))
    }
}
