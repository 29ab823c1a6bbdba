//! The raft log store reopened after every operation (openraft's suite never reopens one):
//! appends, votes, commits, truncations and purges (also past the last entry, as after a
//! snapshot is installed), each followed by dropping the store and opening it again. The log
//! state, the vote, the committed log id and every entry must be what the operations left;
//! every append is first acknowledged through `IOFlushed`.
#![cfg(feature = "raft")]

use std::collections::BTreeMap;
use std::path::Path;

use kekbit::journal::Journal;
use kekbit::raft::{KvConfig, KvRequest, LogStore};
use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::vote::leader_id_adv::LeaderId;
use openraft::vote::RaftLeaderIdExt;
use openraft::{LogId, RaftTypeConfig, Vote};

type C = KvConfig;
type EntryOf = <C as RaftTypeConfig>::Entry;

fn log_id(term: u64, index: u64) -> LogIdOf<C> {
    LogId::new(LeaderId::<u64, u64>::new_committed(term, 1), index)
}

fn entry(term: u64, index: u64) -> EntryOf {
    EntryOf::new_normal(
        log_id(term, index),
        KvRequest::Set {
            key: format!("k{index}"),
            value: format!("term {term}"),
        },
    )
}

#[derive(Debug, Clone)]
enum Op {
    Append { term: u64, from: u64, count: u64 },
    SaveVote { term: u64, node: u64 },
    SaveCommitted { term: u64, index: u64 },
    TruncateAfter(Option<(u64, u64)>),
    Purge { term: u64, index: u64 },
}

/// What the store must hold.
#[derive(Default)]
struct Model {
    entries: BTreeMap<u64, LogIdOf<C>>,
    purged: Option<LogIdOf<C>>,
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Append { term, from, count } => {
                for i in from..from + count {
                    self.entries.insert(i, log_id(term, i));
                }
            }
            Op::SaveVote { term, node } => self.vote = Some(Vote::new(term, node)),
            Op::SaveCommitted { term, index } => self.committed = Some(log_id(term, index)),
            Op::TruncateAfter(last) => {
                let from = last.map_or(0, |(_, i)| i + 1);
                self.entries.retain(|&i, _| i < from);
            }
            Op::Purge { term, index } => {
                self.purged = Some(log_id(term, index));
                self.entries.retain(|&i, _| i > index);
            }
        }
    }

    fn last_log_id(&self) -> Option<LogIdOf<C>> {
        self.entries.values().next_back().cloned().or(self.purged)
    }
}

async fn run(store: &mut LogStore<C>, op: &Op) {
    match *op {
        Op::Append { term, from, count } => {
            let (tx, rx) = C::oneshot();
            let entries: Vec<EntryOf> = (from..from + count).map(|i| entry(term, i)).collect();
            store.append(entries, IOFlushed::signal(tx)).await.unwrap();
            rx.await.unwrap().unwrap();
        }
        Op::SaveVote { term, node } => store.save_vote(&Vote::new(term, node)).await.unwrap(),
        Op::SaveCommitted { term, index } => store
            .save_committed(Some(log_id(term, index)))
            .await
            .unwrap(),
        Op::TruncateAfter(last) => store
            .truncate_after(last.map(|(t, i)| log_id(t, i)))
            .await
            .unwrap(),
        Op::Purge { term, index } => store.purge(log_id(term, index)).await.unwrap(),
    }
}

fn open(dir: &Path) -> LogStore<C> {
    let options = Journal::options()
        .segment_capacity(8 << 10)
        .max_record_len(1024);
    LogStore::open_with(dir, options).unwrap()
}

async fn check(store: &mut LogStore<C>, model: &Model, after: &str) {
    let state = store.get_log_state().await.unwrap();
    assert_eq!(
        state.last_purged_log_id, model.purged,
        "purged, after {after}"
    );
    assert_eq!(
        state.last_log_id,
        model.last_log_id(),
        "last log id, after {after}"
    );
    assert_eq!(
        store.read_vote().await.unwrap(),
        model.vote,
        "vote, after {after}"
    );
    assert_eq!(
        store.read_committed().await.unwrap(),
        model.committed,
        "committed, after {after}"
    );
    let entries = store.try_get_log_entries(0..10_000).await.unwrap();
    let got: Vec<LogIdOf<C>> = entries.iter().map(|e| e.log_id()).collect();
    let want: Vec<LogIdOf<C>> = model.entries.values().cloned().collect();
    assert_eq!(got, want, "entries, after {after}");
    for e in &entries {
        assert_eq!(
            format!("{}", e.payload),
            format!("{}", entry(e.log_id().leader_id.term, e.index()).payload)
        );
    }
}

#[test]
fn every_operation_survives_a_reopen() {
    use Op::*;
    // Entries of about 40 bytes in 8 KiB segments: the log crosses segments, so that purges
    // remove some.
    let script = [
        Append {
            term: 1,
            from: 0,
            count: 1,
        },
        SaveVote { term: 1, node: 1 },
        Append {
            term: 1,
            from: 1,
            count: 300,
        },
        SaveCommitted {
            term: 1,
            index: 250,
        },
        TruncateAfter(Some((1, 280))),
        Append {
            term: 2,
            from: 281,
            count: 40,
        },
        SaveVote { term: 2, node: 2 },
        TruncateAfter(Some((2, 290))),
        Purge {
            term: 1,
            index: 200,
        },
        Append {
            term: 3,
            from: 291,
            count: 5,
        },
        TruncateAfter(Some((3, 291))),
        // A snapshot installed past the log: purge beyond the last entry.
        Purge {
            term: 4,
            index: 1_000,
        },
        Append {
            term: 4,
            from: 1_001,
            count: 30,
        },
        SaveCommitted {
            term: 4,
            index: 1_010,
        },
        TruncateAfter(Some((4, 1_020))),
        Purge {
            term: 4,
            index: 1_015,
        },
        Append {
            term: 5,
            from: 1_021,
            count: 400,
        },
        SaveVote { term: 5, node: 3 },
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::default();
        let mut store = open(dir.path());
        check(&mut store, &model, "opening").await;
        for op in &script {
            run(&mut store, op).await;
            model.apply(op);
            let after = format!("{op:?}");
            check(&mut store, &model, &after).await;
            drop(store);
            store = open(dir.path());
            check(&mut store, &model, &format!("reopening after {after}")).await;
        }
    });
}
