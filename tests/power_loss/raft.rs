//! The raft log store under simulated power loss (feature `raft`): a script of appends (each
//! acknowledged through openraft's `IOFlushed`), votes, commits, truncations, purges (one past
//! the last entry, as after a snapshot is installed) and a clean reopen, recorded at every
//! sync point of every step. On every crash image the reopened store must hold exactly the
//! state after some prefix of the script that contains every acknowledged step (an
//! unacknowledged append may have left a prefix of its entries): the vote, the committed and
//! last purged log ids, the last log id and every entry with its payload. A vote or a commit
//! therefore never survives beside a lost truncation or append issued before it, and nothing
//! acknowledged is lost. The recovered store must then take one more append and keep it
//! across another reopen.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kekbit::raft::{KvConfig, KvRequest, LogStore};
use openraft::alias::{LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
use openraft::type_config::TypeConfigExt;
use openraft::vote::leader_id_adv::LeaderId;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, LogId, RaftTypeConfig, Vote};

use super::{
    assert_clean, check_images, journal_options, mix, payload, record, report, scratch_dir, serial,
    settings, Outcome,
};

type C = KvConfig;
type EntryOf = <C as RaftTypeConfig>::Entry;
type Flushed = openraft::alias::OneshotReceiverOf<C, Result<(), std::io::Error>>;

/// Largest random part of an entry's value (hex-encoded, so twice as many bytes): entries of
/// up to about 2.9 KB cross the 8 KiB segments every two or three entries.
const MAX_VALUE: usize = 1400;

fn log_id(term: u64, index: u64) -> LogIdOf<C> {
    LogId::new(LeaderId::<u64, u64>::new_committed(term, 1), index)
}

fn value(seed: u64, term: u64, index: u64) -> String {
    let bytes = payload(mix(seed, term), index, MAX_VALUE);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry(seed: u64, term: u64, index: u64) -> EntryOf {
    EntryOf::new_normal(
        log_id(term, index),
        KvRequest::Set {
            key: format!("k{index}"),
            value: value(seed, term, index),
        },
    )
}

#[derive(Debug, Clone, Copy)]
enum Step {
    Append {
        term: u64,
        from: u64,
        count: u64,
    },
    /// An append whose `IOFlushed` is awaited only after the next step: that step (a vote)
    /// is issued while the entries may not be durable yet, as openraft may do.
    AppendUnawaited {
        term: u64,
        from: u64,
        count: u64,
    },
    Vote {
        term: u64,
        node: u64,
    },
    Committed {
        term: u64,
        index: u64,
    },
    TruncateAfter {
        term: u64,
        index: u64,
    },
    Purge {
        term: u64,
        index: u64,
    },
    Reopen,
}

/// The script: every kind of write, a truncation followed by a vote of a later term, a vote
/// issued before the append ahead of it is durable, a purge inside the log and one past its
/// end.
const SCRIPT: [Step; 17] = [
    Step::Append {
        term: 1,
        from: 0,
        count: 3,
    },
    Step::Vote { term: 1, node: 1 },
    Step::Append {
        term: 1,
        from: 3,
        count: 6,
    },
    Step::Committed { term: 1, index: 5 },
    Step::TruncateAfter { term: 1, index: 6 },
    Step::Vote { term: 2, node: 2 },
    Step::Append {
        term: 2,
        from: 7,
        count: 5,
    },
    Step::Reopen,
    Step::Purge { term: 1, index: 4 },
    Step::AppendUnawaited {
        term: 2,
        from: 12,
        count: 4,
    },
    Step::Vote { term: 3, node: 1 },
    Step::TruncateAfter { term: 2, index: 13 },
    Step::Purge { term: 3, index: 30 },
    Step::Append {
        term: 3,
        from: 31,
        count: 4,
    },
    Step::Committed { term: 3, index: 33 },
    Step::Vote { term: 3, node: 3 },
    Step::Append {
        term: 3,
        from: 35,
        count: 3,
    },
];

/// What the store holds after a prefix of the script.
#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    /// Index → term of each entry.
    entries: BTreeMap<u64, u64>,
    purged: Option<LogIdOf<C>>,
    vote: Option<VoteOf<C>>,
    committed: Option<LogIdOf<C>>,
    /// The committed log ids saved before `committed`: the store keeps the newest durably
    /// only from time to time, so after a power loss any of them (or none) may come back.
    earlier: Vec<LogIdOf<C>>,
}

impl State {
    fn apply(&mut self, step: Step) {
        match step {
            Step::Append { term, from, count } | Step::AppendUnawaited { term, from, count } => {
                for index in from..from + count {
                    self.entries.insert(index, term);
                }
            }
            Step::Vote { term, node } => self.vote = Some(Vote::new(term, node)),
            Step::Committed { term, index } => {
                self.earlier.extend(self.committed.take());
                self.committed = Some(log_id(term, index));
            }
            Step::TruncateAfter { index, .. } => self.entries.retain(|&i, _| i <= index),
            Step::Purge { term, index } => {
                self.purged = Some(log_id(term, index));
                self.entries.retain(|&i, _| i > index);
            }
            Step::Reopen => {}
        }
    }

    /// Whether the store may hold `got` in this state: the same log, purge and vote, and
    /// this committed log id or an earlier one (or none).
    fn admits(&self, got: &State) -> bool {
        let committed = got.committed.is_none()
            || got.committed == self.committed
            || got.committed.is_some_and(|c| self.earlier.contains(&c));
        got.entries == self.entries
            && got.purged == self.purged
            && got.vote == self.vote
            && committed
    }

    fn last_log_id(&self) -> Option<LogIdOf<C>> {
        match self.entries.iter().next_back() {
            Some((&index, &term)) => Some(log_id(term, index)),
            None => self.purged,
        }
    }
}

/// Every state a crash image may recover to when `acked` steps were acknowledged: the state
/// after any longer prefix of the script, or one that ends with a prefix of an append's
/// entries. (The count is a lower bound: a crash point noted on a background thread may see
/// the files of later steps.)
fn allowed(acked: usize) -> Vec<(String, State)> {
    let mut state = State::default();
    let mut allowed = Vec::new();
    for (done, &step) in SCRIPT.iter().enumerate() {
        if done >= acked {
            allowed.push((format!("after {done} steps"), state.clone()));
            if let Step::Append { term, from, count }
            | Step::AppendUnawaited { term, from, count } = step
            {
                for n in 1..count {
                    let mut partial = state.clone();
                    partial.apply(Step::Append {
                        term,
                        from,
                        count: n,
                    });
                    allowed.push((
                        format!("after {done} steps and {n} entries of the next"),
                        partial,
                    ));
                }
            }
        }
        state.apply(step);
    }
    allowed.push((format!("after {} steps", SCRIPT.len()), state));
    allowed
}

fn open(dir: &Path, preallocate: bool) -> Result<LogStore<C>, String> {
    LogStore::open_with(dir, journal_options().preallocate(preallocate))
        .map_err(|e| format!("opening the log store failed: {e}"))
}

async fn append(store: &mut LogStore<C>, entries: Vec<EntryOf>) -> Result<(), String> {
    let (tx, rx) = C::oneshot();
    store
        .append(entries, IOFlushed::signal(tx))
        .await
        .map_err(|e| format!("append failed: {e}"))?;
    rx.await
        .map_err(|e| format!("IOFlushed dropped: {e}"))?
        .map_err(|e| format!("IOFlushed reported an error: {e}"))
}

/// Runs one step; the store is handed back (reopened for `Reopen`), with the receiver of an
/// `IOFlushed` not awaited yet.
async fn run_step(
    mut store: LogStore<C>,
    root: &Path,
    seed: u64,
    step: Step,
) -> (LogStore<C>, Option<Flushed>) {
    match step {
        Step::Append { term, from, count } => {
            let entries = (from..from + count).map(|i| entry(seed, term, i)).collect();
            append(&mut store, entries).await.unwrap();
        }
        Step::AppendUnawaited { term, from, count } => {
            let entries: Vec<EntryOf> =
                (from..from + count).map(|i| entry(seed, term, i)).collect();
            let (tx, rx) = C::oneshot();
            store.append(entries, IOFlushed::signal(tx)).await.unwrap();
            return (store, Some(rx));
        }
        Step::Vote { term, node } => store.save_vote(&Vote::new(term, node)).await.unwrap(),
        Step::Committed { term, index } => store
            .save_committed(Some(log_id(term, index)))
            .await
            .unwrap(),
        Step::TruncateAfter { term, index } => store
            .truncate_after(Some(log_id(term, index)))
            .await
            .unwrap(),
        Step::Purge { term, index } => store.purge(log_id(term, index)).await.unwrap(),
        Step::Reopen => {
            // The journal's lock goes with the store: close before opening again.
            drop(store);
            store = open(root, true).unwrap();
        }
    }
    (store, None)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Runs the script; a step counts as acknowledged once it returned and every append before
/// it was acknowledged through `IOFlushed`.
fn workload(root: &Path, seed: u64, acked: &AtomicU64) {
    runtime().block_on(async {
        let mut store = open(root, true).unwrap();
        let mut pending = Vec::new();
        for (done, &step) in SCRIPT.iter().enumerate() {
            let (next, flushed) = run_step(store, root, seed, step).await;
            store = next;
            if let Some(rx) = flushed {
                pending.push(rx);
                continue;
            }
            for rx in pending.drain(..) {
                rx.await.unwrap().unwrap();
            }
            acked.fetch_max(done as u64 + 1, Ordering::SeqCst);
        }
    });
}

/// What the reopened store holds, in the model's terms.
async fn observe(
    store: &mut LogStore<C>,
    seed: u64,
) -> Result<(State, Option<LogIdOf<C>>), String> {
    let log_state = store
        .get_log_state()
        .await
        .map_err(|e| format!("get_log_state failed: {e}"))?;
    let mut state = State {
        purged: log_state.last_purged_log_id,
        vote: store
            .read_vote()
            .await
            .map_err(|e| format!("read_vote failed: {e}"))?,
        committed: store
            .read_committed()
            .await
            .map_err(|e| format!("read_committed failed: {e}"))?,
        ..State::default()
    };
    let entries = store
        .try_get_log_entries(0..u64::MAX)
        .await
        .map_err(|e| format!("reading the entries failed: {e}"))?;
    for e in entries {
        let (term, index) = (e.log_id().leader_id.term, e.index());
        let want = entry(seed, term, index);
        if e.payload.to_string() != want.payload.to_string()
            || !matches!(e.payload, EntryPayload::Normal(_))
        {
            return Err(format!(
                "entry {index} of term {term} holds a payload never appended there"
            ));
        }
        state.entries.insert(index, term);
    }
    Ok((state, log_state.last_log_id))
}

fn check(dir: &Path, acked: u64, seed: u64) -> Result<Outcome, String> {
    runtime().block_on(async {
        let mut store = open(dir, false)?;
        let (state, last) = observe(&mut store, seed).await?;
        let candidates = allowed(acked as usize);
        let Some((label, matched)) = candidates.iter().find(|(_, s)| s.admits(&state)) else {
            return Err(format!(
                "{acked} steps acknowledged; the reopened store holds {state:?}, which is none \
                 of the states allowed: {candidates:?}"
            ));
        };
        if last != matched.last_log_id() {
            return Err(format!(
                "the store ({label}) reports last log id {last:?}, not {:?}",
                matched.last_log_id()
            ));
        }
        // The recovered store goes on: one more entry, acknowledged, kept across a reopen.
        let next = last.map_or(0, |l| l.index() + 1);
        append(&mut store, vec![entry(seed, 9, next)]).await?;
        drop(store);
        let mut again = open(dir, false)?;
        let (after, last) = observe(&mut again, seed).await?;
        let mut want = state.clone();
        want.entries.insert(next, 9);
        if after != want || last != Some(log_id(9, next)) {
            return Err(format!(
                "after recovery ({label}) and one more append, reopening holds {after:?} \
                 (last {last:?}), not {want:?}"
            ));
        }
        Ok(Outcome {
            recovered: matched.entries.len() as u64,
            torn_bytes: 0,
            raw_reached_acked: true,
        })
    })
}

#[test]
fn power_loss_raft_log_store() {
    let name = "raft log store";
    let _serial = serial();
    let settings = settings();
    let mut tallies = Vec::new();
    for round in 0..settings.rounds {
        let started = Instant::now();
        let seed = mix(settings.seed, 300 + round);
        let workload_dir = scratch_dir("kekbit-power-loss-raft-");
        let root = workload_dir.path().to_path_buf();
        let dirs = vec![root.clone(), root.join(kekbit::raft::LOG_DIR)];
        let model = record(&root, dirs, false, |acked| workload(&root, seed, acked));
        let check = move |dir: &Path, acked: u64| check(dir, acked, seed);
        let tally = check_images(name, &model, &check, settings.mixes, seed);
        let entries = SCRIPT
            .iter()
            .map(|s| match s {
                Step::Append { count, .. } | Step::AppendUnawaited { count, .. } => *count,
                _ => 0,
            })
            .sum();
        report(
            &format!("{name}, seed {} round {round}", settings.seed),
            entries,
            &tally,
            started,
        );
        tallies.push(tally);
    }
    assert_clean(name, &tallies);
}
