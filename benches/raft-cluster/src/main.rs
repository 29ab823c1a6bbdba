//! A 3-node openraft cluster in one process, its nodes linked by an in-memory router, under
//! 1, 64 and 256 concurrent clients each writing in a loop through the leader: puts per
//! second and the p50/p99 latency of a write (proposed, committed by a quorum, applied).
//! Two storages in the same run, with the same type configuration (openraft-memstore's):
//! kekbit (`kekbit::raft::LogStore` + `StateMachine`, every entry durable before it is
//! acknowledged, in a directory on the file system under test) and openraft's in-memory
//! store (`openraft-memstore`). Rounds are interleaved; medians and ratios are printed.
//!
//! ```text
//! cargo run --release -- [DIR]        # DIR: where kekbit's nodes live (default /dev/shm)
//! ```
//! Settings: `KEKBIT_RAFT_ROUNDS` (default 5), `KEKBIT_RAFT_SECONDS` (per measurement,
//! default 3), `KEKBIT_RAFT_CLIENTS` (comma-separated, default 1,64,256),
//! `KEKBIT_RAFT_ONLY=kekbit` (or `memstore`: one storage only, e.g. under `perf record`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kekbit::raft::{LogStore, RaftApp, StateMachine};
use openraft::alias::{SnapshotOf, VoteOf};
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{Config, EntryPayload, OptionalSend, Raft, RaftNetworkFactory, SnapshotPolicy};
use openraft_memstore::{new_mem_store, ClientRequest, ClientResponse, TypeConfig};
use serde::{Deserialize, Serialize};

type C = TypeConfig;

// ---------------------------------------------------------------------------------------
// The application on kekbit: the same as openraft-memstore's (each client's last status)

#[derive(Default, Serialize, Deserialize)]
struct Statuses {
    last: HashMap<String, String>,
}

impl RaftApp<C> for Statuses {
    fn apply(&mut self, entry: &<C as openraft::RaftTypeConfig>::Entry) -> ClientResponse {
        match &entry.payload {
            EntryPayload::Normal(request) => {
                ClientResponse(self.last.insert(request.client.clone(), request.status.clone()))
            }
            _ => ClientResponse(None),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The in-memory router

struct Router<SM: RaftStateMachine<C>> {
    nodes: Arc<Mutex<BTreeMap<u64, Raft<C, SM>>>>,
}

impl<SM: RaftStateMachine<C>> Clone for Router<SM> {
    fn clone(&self) -> Self {
        Router {
            nodes: Arc::clone(&self.nodes),
        }
    }
}

impl<SM: RaftStateMachine<C>> Router<SM> {
    fn get(&self, id: u64) -> Result<Raft<C, SM>, Unreachable<C>> {
        let nodes = self.nodes.lock().unwrap();
        nodes
            .get(&id)
            .cloned()
            .ok_or_else(|| Unreachable::from_string(format!("node {id} is down")))
    }
}

struct Connection<SM: RaftStateMachine<C>> {
    router: Router<SM>,
    target: u64,
}

impl<SM: RaftStateMachine<C>> RaftNetworkFactory<C> for Router<SM> {
    type Network = Connection<SM>;

    async fn new_client(&mut self, target: u64, _node: &()) -> Connection<SM> {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

impl<SM: RaftStateMachine<C>> RaftNetworkV2<C> for Connection<SM> {
    type SnapshotData = SM::SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let node = self.router.get(self.target)?;
        node.append_entries(rpc)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<C>,
        _option: RPCOption,
    ) -> Result<VoteResponse<C>, RPCError<C>> {
        let node = self.router.get(self.target)?;
        node.vote(rpc)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, SM::SnapshotData>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let node = self.router.get(self.target)?;
        node.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Network(NetworkError::new(&e)))
    }
}

// ---------------------------------------------------------------------------------------
// One measurement

fn config() -> Arc<Config> {
    let config = Config {
        cluster_name: "kekbit-raft-bench".into(),
        // Generous timeouts: the machine is shared, and a leader that loses its lease in
        // the middle of a measurement measures the scheduler, not the storage.
        heartbeat_interval: 100,
        election_timeout_min: 1_000,
        election_timeout_max: 2_000,
        snapshot_policy: SnapshotPolicy::Never,
        ..Config::default()
    };
    Arc::new(config.validate().expect("a valid configuration"))
}

/// Starts three nodes with the storages `make` builds, forms the cluster, and returns the
/// leader's handle with every node's.
async fn cluster<LS, SM>(make: impl Fn(u64) -> (LS, SM)) -> (Raft<C, SM>, Vec<Raft<C, SM>>)
where
    LS: RaftLogStorage<C>,
    SM: RaftStateMachine<C>,
{
    let router = Router::<SM> {
        nodes: Arc::default(),
    };
    let mut nodes = Vec::new();
    for id in 1..=3 {
        let (log, sm) = make(id);
        let raft = Raft::new(id, config(), router.clone(), log, sm)
            .await
            .expect("a raft node");
        router.nodes.lock().unwrap().insert(id, raft.clone());
        nodes.push(raft);
    }
    let members: BTreeMap<u64, ()> = (1..=3).map(|id| (id, ())).collect();
    nodes[0].initialize(members).await.expect("initialize");
    let leader = loop {
        if let Some(id) = nodes[0].current_leader().await {
            break nodes[id as usize - 1].clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    (leader, nodes)
}

struct Figures {
    puts_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

/// `clients` tasks writing through `leader` for `seconds` (after a warm-up of a fifth of it).
async fn load<SM: RaftStateMachine<C>>(leader: &Raft<C, SM>, clients: usize, seconds: f64) -> Figures {
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (leader, measuring, stop) = (leader.clone(), measuring.clone(), stop.clone());
        let failures = failures.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut serial = 0;
            while !stop.load(Ordering::Relaxed) {
                serial += 1;
                let request = ClientRequest {
                    client: format!("client-{client}"),
                    serial,
                    status: format!("status {serial} of client {client}"),
                };
                let started = Instant::now();
                if leader.client_write(request).await.is_err() {
                    // Leadership lost for a moment (counted, not timed).
                    failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if measuring.load(Ordering::Relaxed) {
                    latencies.push(started.elapsed());
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds / 5.0)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("a client task"));
    }
    all.sort();
    let failed = failures.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("  ({failed} writes refused while the leadership moved; retried)");
    }
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1e6;
    Figures {
        puts_per_s: all.len() as f64 / elapsed,
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

async fn run_kekbit(base: &Path, clients: usize, seconds: f64) -> Figures {
    let dir = tempfile::tempdir_in(base).expect("a directory for the nodes");
    let root: PathBuf = dir.path().to_path_buf();
    let (leader, nodes) = cluster(|id| {
        let node = root.join(format!("node-{id}"));
        let log = LogStore::<C>::open(&node).expect("a log store");
        let sm = StateMachine::<C, Statuses>::open(&node).expect("a state machine");
        (log, sm)
    })
    .await;
    let figures = load(&leader, clients, seconds).await;
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
    figures
}

async fn run_memstore(clients: usize, seconds: f64) -> Figures {
    let (leader, nodes) = cluster(|_| {
        let (log, sm) = new_mem_store();
        (log, sm)
    })
    .await;
    let figures = load(&leader, clients, seconds).await;
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
    figures
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let base = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "/dev/shm".into()));
    let rounds: usize = env_or("KEKBIT_RAFT_ROUNDS", 5);
    let seconds: f64 = env_or("KEKBIT_RAFT_SECONDS", 3.0);
    let clients: Vec<usize> = std::env::var("KEKBIT_RAFT_CLIENTS")
        .unwrap_or_else(|_| "1,64,256".into())
        .split(',')
        .map(|c| c.trim().parse().expect("a client count"))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!(
        "3-node openraft cluster in one process; kekbit nodes in {}; {rounds} rounds of {seconds} s",
        base.display()
    );
    // store → clients → figures of each round
    let mut results: BTreeMap<(&str, usize), Vec<Figures>> = BTreeMap::new();
    let only = std::env::var("KEKBIT_RAFT_ONLY").ok();
    let absent = || Figures {
        puts_per_s: f64::NAN,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
    };
    for round in 0..rounds {
        for &n in &clients {
            let k = match only.as_deref() {
                Some("memstore") => absent(),
                _ => runtime.block_on(run_kekbit(&base, n, seconds)),
            };
            let m = match only.as_deref() {
                Some("kekbit") => absent(),
                _ => runtime.block_on(run_memstore(n, seconds)),
            };
            println!(
                "round {round} clients {n:>3}: kekbit {:>9.0} puts/s p50 {:>7.0} us p99 {:>7.0} us | memstore {:>9.0} puts/s p50 {:>7.0} us p99 {:>7.0} us | ratio {:.2}",
                k.puts_per_s, k.p50_us, k.p99_us, m.puts_per_s, m.p50_us, m.p99_us,
                k.puts_per_s / m.puts_per_s
            );
            results.entry(("kekbit", n)).or_default().push(k);
            results.entry(("memstore", n)).or_default().push(m);
        }
    }
    println!("\nmedians over {rounds} rounds:");
    println!("| clients | kekbit puts/s | p50 | p99 | memstore puts/s | p50 | p99 | kekbit / memstore (median of per-round ratios) |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &clients {
        let k = &results[&("kekbit", n)];
        let m = &results[&("memstore", n)];
        let ratios: Vec<f64> = k.iter().zip(m).map(|(k, m)| k.puts_per_s / m.puts_per_s).collect();
        let med = |f: &[Figures], g: fn(&Figures) -> f64| median(f.iter().map(g).collect());
        println!(
            "| {n} | {:.0} | {:.0} µs | {:.0} µs | {:.0} | {:.0} µs | {:.0} µs | {:.2}× |",
            med(k, |f| f.puts_per_s),
            med(k, |f| f.p50_us),
            med(k, |f| f.p99_us),
            med(m, |f| f.puts_per_s),
            med(m, |f| f.p50_us),
            med(m, |f| f.p99_us),
            median(ratios)
        );
    }
}
