//! openraft's own storage suite (`openraft::testing::log::Suite::test_all`) against the kekbit
//! log store and state machine: every case on a fresh store in a temporary directory.
#![cfg(feature = "raft")]

use kekbit::journal::Journal;
use kekbit::raft::{KvConfig, KvState, LogStore, StateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;

struct Builder;

impl StoreBuilder<KvConfig, LogStore<KvConfig>, StateMachine<KvConfig, KvState>, tempfile::TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<
        (
            tempfile::TempDir,
            LogStore<KvConfig>,
            StateMachine<KvConfig, KvState>,
        ),
        StorageError<KvConfig>,
    > {
        let dir = tempfile::tempdir().unwrap();
        // Small segments: a suite case appends a handful of entries.
        let options = Journal::options()
            .segment_capacity(64 << 10)
            .max_record_len(4096);
        let log = LogStore::open_with(dir.path(), options).unwrap();
        let sm = StateMachine::open(dir.path()).unwrap();
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        Suite::test_all(Builder).await.unwrap();
    });
}
