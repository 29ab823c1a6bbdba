//! A replicated key-value service: one process per node, kekbit as each node's log and state
//! store, openraft for elections and replication, HTTP between nodes and clients (axum
//! serves, reqwest calls; the raft messages travel as bincode, the client API as JSON).
//!
//! ```text
//! cargo run --release --features raft --example raft_kv -- --id 1 --dir DIR --addr 127.0.0.1:21001
//! ```
//!
//! Options: `--snapshot-every N` (entries between snapshots, default 10,000) and
//! `--durability power|process` (default `power`: an entry is durable on storage before this
//! node acknowledges it; `process`: acknowledged once in the journal's mapping, which survives
//! a crash of the process but not of the machine).
//!
//! The API:
//! - `POST /cluster/init` with `{"members":{"1":"127.0.0.1:21001",...}}`, on one node: forms
//!   the cluster, answers 200 once the membership is committed;
//! - `PUT /kv/{key}` with the value as the body: 200 `{"index":N}` once the write is committed
//!   and applied; a follower answers 421 `{"leader_id":ID,"leader_addr":"host:port"}` (`null`s
//!   while there is no leader);
//! - `GET /kv/{key}`: a linearizable read through the leader: 200 with the value, 404 when
//!   absent, 421 on a follower;
//! - `GET /status`: `{"id","leader_id","term","last_log_index","last_applied","snapshot_index"}`.
//!
//! Restarting a killed node with the same command rejoins: it reloads its newest snapshot and
//! its journal, and the leader sends it what it missed. The README has a session;
//! `examples/raft_kv_chaos.sh` kills and restarts nodes under load and checks every
//! acknowledged write.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use kekbit::codec::{Bincode, Codec};
use kekbit::journal::{Durability, Journal};
use kekbit::raft::{KvConfig, KvRequest, KvState, LogStore, StateMachine, StateView};
use openraft::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};
use openraft::async_runtime::WatchReceiver;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::v2::RaftNetworkV2;
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ReadPolicy, SnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Config, OptionalSend, RaftNetworkFactory, SnapshotPolicy};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

type Sm = StateMachine<KvConfig, KvState>;
type Raft = openraft::Raft<KvConfig, Sm>;

// ---------------------------------------------------------------------------------------
// Between nodes: raft messages as bincode over HTTP POST

/// Sends raft messages to other nodes.
#[derive(Clone)]
struct Network {
    client: reqwest::Client,
}

struct Connection {
    client: reqwest::Client,
    target: u64,
    addr: String,
}

impl RaftNetworkFactory<KvConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Connection {
        Connection {
            client: self.client.clone(),
            target,
            addr: node.addr.clone(),
        }
    }
}

impl Connection {
    /// POSTs `request` to `path` of the target; an answer other than 200 (the node is
    /// shutting down) or no answer makes the target unreachable for a while.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
    ) -> Result<Resp, RPCError<KvConfig>> {
        let mut body = Vec::new();
        Bincode
            .encode(request, &mut body)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let url = format!("http://{}{path}", self.addr);
        let unreachable = |what: String| {
            Unreachable::from_string(format!("node {} at {}: {what}", self.target, self.addr))
        };
        let response = self
            .client
            .post(&url)
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if status != reqwest::StatusCode::OK {
            return Err(
                unreachable(format!("{status}: {}", String::from_utf8_lossy(&bytes))).into(),
            );
        }
        Bincode
            .decode(&bytes)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<KvConfig> for Connection {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<KvConfig>, RPCError<KvConfig>> {
        self.call("/raft/append", &rpc).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<KvConfig>, RPCError<KvConfig>> {
        self.call("/raft/vote", &rpc).await
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<KvConfig>,
        snapshot: SnapshotOf<KvConfig, Vec<u8>>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<KvConfig>, StreamingError<KvConfig>> {
        let request = (vote, snapshot.meta, snapshot.snapshot);
        self.call("/raft/snapshot", &request)
            .await
            .map_err(|e| match e {
                RPCError::Unreachable(u) => StreamingError::Unreachable(u),
                RPCError::Network(n) => StreamingError::Network(n),
                RPCError::Timeout(t) => StreamingError::Timeout(t),
                other => StreamingError::Network(NetworkError::new(&other)),
            })
    }
}

// ---------------------------------------------------------------------------------------
// The HTTP server

struct App {
    id: u64,
    raft: Raft,
    state: StateView<KvConfig, KvState>,
}

type Shared = Arc<App>;

/// A raft message's answer: 200 with the bincode of `Ok`, 503 with the error's text.
fn reply<T: Serialize, E: std::fmt::Display>(result: Result<T, E>) -> Response {
    match result {
        Ok(value) => {
            let mut body = Vec::new();
            match Bincode.encode(&value, &mut body) {
                Ok(()) => (StatusCode::OK, body).into_response(),
                Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
            }
        }
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    Bincode
        .decode(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())
}

async fn raft_append(State(app): State<Shared>, body: Bytes) -> Response {
    match decode::<AppendEntriesRequest<KvConfig>>(&body) {
        Ok(rpc) => reply(app.raft.append_entries(rpc).await),
        Err(bad) => bad,
    }
}

async fn raft_vote(State(app): State<Shared>, body: Bytes) -> Response {
    match decode::<VoteRequest<KvConfig>>(&body) {
        Ok(rpc) => reply(app.raft.vote(rpc).await),
        Err(bad) => bad,
    }
}

async fn raft_snapshot(State(app): State<Shared>, body: Bytes) -> Response {
    type Request = (VoteOf<KvConfig>, SnapshotMetaOf<KvConfig>, Vec<u8>);
    match decode::<Request>(&body) {
        Ok((vote, meta, snapshot)) => {
            let snapshot = SnapshotOf::<KvConfig, Vec<u8>> { meta, snapshot };
            reply(app.raft.install_full_snapshot(vote, snapshot).await)
        }
        Err(bad) => bad,
    }
}

/// 421 Misdirected Request naming the leader (`null`s while there is none).
fn not_leader(leader_id: Option<u64>, leader: Option<BasicNode>) -> Response {
    let body = json!({ "leader_id": leader_id, "leader_addr": leader.map(|n| n.addr) });
    (StatusCode::MISDIRECTED_REQUEST, Json(body)).into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Init {
    members: BTreeMap<String, String>,
}

async fn cluster_init(State(app): State<Shared>, Json(init): Json<Init>) -> Response {
    let mut members = BTreeMap::new();
    for (id, addr) in init.members {
        let Ok(id) = id.parse::<u64>() else {
            let error = format!("member id {id:?} is not a number");
            return (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
        };
        members.insert(id, BasicNode { addr });
    }
    if let Err(e) = app.raft.initialize(members).await {
        return (
            StatusCode::CONFLICT,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response();
    }
    // Committed: the membership entry is at or below the commit index.
    let committed = app
        .raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(
            |m| {
                let membership = m.membership_config.log_id().map(|l| l.index);
                membership.is_some() && m.cluster_committed.map(|c| c.index) >= membership
            },
            "the initial membership is committed",
        )
        .await;
    match committed {
        Ok(m) => Json(json!({ "committed": m.cluster_committed.map(|c| c.index) })).into_response(),
        Err(e) => unavailable(e),
    }
}

async fn kv_put(State(app): State<Shared>, Path(key): Path<String>, value: String) -> Response {
    match app.raft.client_write(KvRequest::Set { key, value }).await {
        Ok(written) => Json(json!({ "index": written.log_id.index })).into_response(),
        Err(e) => match e.forward_to_leader() {
            Some(f) => not_leader(f.leader_id, f.leader_node.clone()),
            None => unavailable(e),
        },
    }
}

async fn kv_get(State(app): State<Shared>, Path(key): Path<String>) -> Response {
    // Confirms leadership with a quorum and waits until the state machine applied every
    // entry committed before the read.
    if let Err(e) = app.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
        return match e.forward_to_leader() {
            Some(f) => not_leader(f.leader_id, f.leader_node.clone()),
            None => unavailable(e),
        };
    }
    match app.state.query(|kv| kv.get(&key).map(str::to_owned)) {
        Some(value) => (StatusCode::OK, value).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn status(State(app): State<Shared>) -> Response {
    let m = app.raft.metrics().borrow_watched().clone();
    Json(json!({
        "id": app.id,
        "leader_id": m.current_leader,
        "term": m.current_term,
        "last_log_index": m.last_log_index,
        "last_applied": m.last_applied.map(|l| l.index),
        "snapshot_index": m.snapshot.map(|l| l.index),
    }))
    .into_response()
}

// ---------------------------------------------------------------------------------------
// Start-up

struct Args {
    id: u64,
    dir: PathBuf,
    addr: String,
    snapshot_every: u64,
    durability: Durability,
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "raft_kv: {problem}\nusage: raft_kv --id N --dir DIR --addr HOST:PORT \
         [--snapshot-every N] [--durability power|process]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = std::env::args().skip(1);
    let (mut id, mut dir, mut addr) = (None, None, None);
    let (mut snapshot_every, mut durability) = (10_000, Durability::EveryRecord);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            usage(&format!("{flag} needs a value"))
        };
        let number = |v: &str| {
            v.parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{flag} {v}: not a number")))
        };
        match flag.as_str() {
            "--id" => id = Some(number(&value)),
            "--dir" => dir = Some(PathBuf::from(value)),
            "--addr" => addr = Some(value),
            "--snapshot-every" => snapshot_every = number(&value).max(1),
            "--durability" => {
                durability = match value.as_str() {
                    "power" => Durability::EveryRecord,
                    "process" => Durability::Never,
                    other => usage(&format!("--durability {other}: expected power or process")),
                }
            }
            other => usage(&format!("unknown option {other}")),
        }
    }
    Args {
        id: id.unwrap_or_else(|| usage("--id is required")),
        dir: dir.unwrap_or_else(|| usage("--dir is required")),
        addr: addr.unwrap_or_else(|| usage("--addr is required")),
        snapshot_every,
        durability,
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let config = Config {
        cluster_name: "kekbit-raft-kv".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(args.snapshot_every),
        ..Config::default()
    };
    let config = Arc::new(config.validate().expect("a valid raft configuration"));
    let options = Journal::options().durability(args.durability);
    let log = LogStore::<KvConfig>::open_with(&args.dir, options).unwrap_or_else(|e| {
        eprintln!("raft_kv: opening the log in {}: {e}", args.dir.display());
        std::process::exit(1)
    });
    let sm = Sm::open(&args.dir).unwrap_or_else(|e| {
        eprintln!("raft_kv: opening the state in {}: {e}", args.dir.display());
        std::process::exit(1)
    });
    let state = sm.view();
    let network = Network {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client"),
    };
    let raft = Raft::new(args.id, config, network, log, sm)
        .await
        .expect("starting the raft node");
    let app = Arc::new(App {
        id: args.id,
        raft: raft.clone(),
        state,
    });
    let router = axum::Router::new()
        .route("/raft/append", post(raft_append))
        .route("/raft/vote", post(raft_vote))
        .route("/raft/snapshot", post(raft_snapshot))
        .route("/cluster/init", post(cluster_init))
        .route("/kv/{key}", get(kv_get).put(kv_put))
        .route("/status", get(status))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("raft_kv: listening on {}: {e}", args.addr);
            std::process::exit(1)
        });
    eprintln!(
        "raft_kv: node {} serving on {} with its storage in {}",
        args.id,
        args.addr,
        args.dir.display()
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .expect("serving HTTP");
    raft.shutdown().await.expect("shutting raft down");
}
