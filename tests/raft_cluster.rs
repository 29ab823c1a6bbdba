//! A three-node cluster in one process on kekbit storage, its nodes linked by an in-memory
//! router (openraft's own cluster tests use the same pattern): writes through the leader, the
//! leader shut down and the others electing a new one, the old leader restarted from its
//! directory and catching up, a membership change adding a fourth node, and a lagging node
//! that must install a snapshot because the log it misses was purged. Every acknowledged write
//! must be in the state of every node at the end.
#![cfg(feature = "raft")]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kekbit::journal::Journal;
use kekbit::raft::{KvConfig, KvRequest, KvState, LogStore, StateMachine, StateView};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{
    NetworkError, RPCError, RaftError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, OptionalSend, RaftNetworkFactory, SnapshotPolicy};

type Sm = StateMachine<KvConfig, KvState>;
type Raft = openraft::Raft<KvConfig, Sm>;

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

/// The nodes that are up, by id: a node missing from the map is unreachable.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, Raft>>>,
}

impl Router {
    fn get(&self, id: u64) -> Result<Raft, Unreachable<KvConfig>> {
        let nodes = self.nodes.lock().unwrap();
        nodes
            .get(&id)
            .cloned()
            .ok_or_else(|| Unreachable::from_string(format!("node {id} is down")))
    }
}

struct Connection {
    router: Router,
    target: u64,
}

impl RaftNetworkFactory<KvConfig> for Router {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Connection {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

/// A remote error as the caller sees it: the target failed (shut down while answering).
fn failed<E: std::error::Error + 'static>(e: &E) -> NetworkError<KvConfig> {
    NetworkError::new(e)
}

impl RaftNetworkV2<KvConfig> for Connection {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<KvConfig>, RPCError<KvConfig>> {
        let node = self.router.get(self.target)?;
        node.append_entries(rpc)
            .await
            .map_err(|e: RaftError<KvConfig>| RPCError::Network(failed(&e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<KvConfig>, RPCError<KvConfig>> {
        let node = self.router.get(self.target)?;
        node.vote(rpc)
            .await
            .map_err(|e: RaftError<KvConfig>| RPCError::Network(failed(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<KvConfig>,
        snapshot: SnapshotOf<KvConfig, Vec<u8>>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<KvConfig>, StreamingError<KvConfig>> {
        let node = self.router.get(self.target)?;
        node.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Network(failed(&e)))
    }
}

/// A node that is up: its raft handle and a view of its state.
struct Node {
    raft: Raft,
    state: StateView<KvConfig, KvState>,
}

struct Cluster {
    root: PathBuf,
    router: Router,
    config: Arc<Config>,
    up: BTreeMap<u64, Node>,
    /// Every write acknowledged to the client: key → value.
    acked: BTreeMap<String, String>,
}

impl Cluster {
    fn new(root: &Path) -> Cluster {
        let config = Config {
            cluster_name: "kekbit-test".into(),
            // Timeouts generous enough for a loaded machine (CI runs tests in parallel on
            // two cores): a leader that loses its lease only slows the test down, since
            // writes are retried, but elections in a loop would make it slow.
            heartbeat_interval: 100,
            election_timeout_min: 800,
            election_timeout_max: 1_600,
            // A snapshot every 50 entries, keeping no log behind it: a node that was down
            // while the leader purged must install a snapshot.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(50),
            max_in_snapshot_log_to_keep: 0,
            purge_batch_size: 1,
            ..Config::default()
        };
        Cluster {
            root: root.to_path_buf(),
            router: Router::default(),
            config: Arc::new(config.validate().unwrap()),
            up: BTreeMap::new(),
            acked: BTreeMap::new(),
        }
    }

    /// Starts node `id` on its directory (what it stored before, if it ran before).
    async fn start(&mut self, id: u64) {
        let dir = self.root.join(format!("node-{id}"));
        let options = Journal::options().segment_capacity(256 << 10);
        let log = LogStore::<KvConfig>::open_with(&dir, options).unwrap();
        let sm = Sm::open(&dir).unwrap();
        let state = sm.view();
        let raft = Raft::new(id, Arc::clone(&self.config), self.router.clone(), log, sm)
            .await
            .unwrap();
        self.router.nodes.lock().unwrap().insert(id, raft.clone());
        self.up.insert(id, Node { raft, state });
    }

    /// Shuts node `id` down and closes its storage: from now on it is unreachable.
    async fn stop(&mut self, id: u64) {
        let node = self.up.remove(&id).unwrap();
        self.router.nodes.lock().unwrap().remove(&id);
        node.raft.shutdown().await.unwrap();
    }

    fn node(&self, id: u64) -> &Raft {
        &self.up[&id].raft
    }

    /// The leader all running nodes agree on, once there is one.
    async fn leader(&self) -> u64 {
        let any = self.up.values().next().unwrap();
        for _ in 0..1200 {
            if let Some(leader) = any.raft.current_leader().await {
                if self.up.contains_key(&leader) && self.node(leader).is_leader() {
                    return leader;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "no leader among {:?} after 30 s",
            self.up.keys().collect::<Vec<_>>()
        );
    }

    /// Writes `count` keys with `prefix` through the leader; returns the last log index.
    async fn write(&mut self, prefix: &str, count: u64) -> u64 {
        let leader = self.leader().await;
        let mut last = 0;
        for i in 0..count {
            let (key, value) = (format!("{prefix}-{i}"), format!("value {i} of {prefix}"));
            let request = KvRequest::Set {
                key: key.clone(),
                value: value.clone(),
            };
            last = self.write_one(leader, request).await;
            self.acked.insert(key, value);
        }
        last
    }

    /// Writes `request` through `leader`, or through whichever node leads once `leader`
    /// refuses it (it lost its lease or its leadership: openraft refuses before appending,
    /// so a retry never writes twice; and a write here sets a key to one value anyway);
    /// returns its log index.
    async fn write_one(&self, mut leader: u64, request: KvRequest) -> u64 {
        for _ in 0..50 {
            match self.node(leader).client_write(request.clone()).await {
                Ok(response) => return response.log_id.index,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    leader = self.leader().await;
                }
            }
        }
        panic!("no node took the write {request:?}");
    }

    /// Waits until every running node applied `index`, then checks that its state holds
    /// every acknowledged write.
    async fn converge(&self, index: u64, when: &str) {
        for (id, node) in &self.up {
            node.raft
                .wait(WAIT)
                .applied_index_at_least(Some(index), format!("node {id} applies {index} {when}"))
                .await
                .unwrap();
            let missing: Vec<&String> = node.state.query(|kv| {
                self.acked
                    .iter()
                    .filter(|(k, v)| kv.get(k) != Some(v.as_str()))
                    .map(|(k, _)| k)
                    .take(5)
                    .collect::<Vec<_>>()
            });
            assert!(
                missing.is_empty(),
                "node {id} {when}: acknowledged writes missing or wrong, e.g. {missing:?}"
            );
            assert_eq!(
                node.state.query(KvState::len),
                self.acked.len(),
                "node {id} {when}: keys never written"
            );
        }
    }
}

#[test]
fn three_nodes_survive_a_leader_restart_a_membership_change_and_a_lagging_node() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let root = tempfile::tempdir().unwrap();
        let mut cluster = Cluster::new(root.path());
        for id in 1..=3 {
            cluster.start(id).await;
        }
        let members: BTreeMap<u64, BasicNode> = (1..=3)
            .map(|id| (id, BasicNode::new(format!("node-{id}"))))
            .collect();
        cluster.node(1).initialize(members).await.unwrap();

        // Writes through the leader reach every node.
        let last = cluster.write("first", 40).await;
        cluster.converge(last, "after the first writes").await;

        // The leader goes down: the two others elect a new one and take writes.
        let old = cluster.leader().await;
        cluster.stop(old).await;
        let last = cluster.write("without-old-leader", 30).await;
        let new = cluster.leader().await;
        assert_ne!(new, old, "a stopped node cannot lead");

        // The old leader restarts from its directory and catches up.
        cluster.start(old).await;
        cluster
            .converge(last, "after the old leader restarted")
            .await;

        // Membership change: node 4 joins as a learner, then as a voter in place of a
        // follower (the old leader unless it leads again), which is then shut down.
        cluster.start(4).await;
        let mut leader = cluster.leader().await;
        while let Err(e) = cluster
            .node(leader)
            .add_learner(4, BasicNode::new("node-4"), true)
            .await
        {
            eprintln!("add_learner through node {leader} failed ({e}); again");
            leader = cluster.leader().await;
        }
        let removed = if old != leader {
            old
        } else {
            (1..=3).find(|&id| id != leader).unwrap()
        };
        let voters: BTreeSet<u64> = (1..=4).filter(|&id| id != removed).collect();
        while let Err(e) = cluster
            .node(leader)
            .change_membership(voters.clone(), false)
            .await
        {
            eprintln!("change_membership through node {leader} failed ({e}); again");
            leader = cluster.leader().await;
        }
        cluster.stop(removed).await;
        let last = cluster.write("after-membership", 10).await;
        cluster.converge(last, "after the membership change").await;
        let leader = cluster.leader().await;
        let metrics = cluster.node(leader).metrics().borrow_watched().clone();
        let now: BTreeSet<u64> = metrics.membership_config.membership().voter_ids().collect();
        assert_eq!(now, voters);

        // A lagging node: a voter goes down, the cluster writes past several snapshots and
        // purges its log, and the node can only catch up by installing a snapshot.
        let lagging = voters.iter().copied().find(|&id| id != leader).unwrap();
        let had = cluster
            .node(lagging)
            .metrics()
            .borrow_watched()
            .last_log_index;
        cluster.stop(lagging).await;
        let last = cluster.write("while-lagging", 160).await;
        let leader = cluster.leader().await;
        // The leader purged past the lagging node's last entry: the log it misses is gone,
        // so catching up proves a snapshot was sent and installed.
        cluster
            .node(leader)
            .wait(WAIT)
            .metrics(
                |m| m.purged.is_some_and(|p| Some(p.index) > had),
                "the leader snapshots and purges past the lagging node",
            )
            .await
            .unwrap();
        cluster.start(lagging).await;
        cluster
            .converge(last, "after the lagging node came back")
            .await;
        let metrics = cluster.node(lagging).metrics().borrow_watched().clone();
        assert!(
            metrics.snapshot.is_some_and(|s| Some(s.index) > had),
            "node {lagging} has no snapshot past its old log end {had:?}: {:?}",
            metrics.snapshot
        );

        for id in cluster.up.keys().copied().collect::<Vec<_>>() {
            cluster.stop(id).await;
        }
    });
}
