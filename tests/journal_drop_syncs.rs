//! What dropping a journal makes durable, read from the segment's durable watermark (header
//! offset 96, docs/FORMAT.md "Channel header"): under `Interval` and `EveryN` every record
//! appended is covered (drop syncs, best effort); under `EveryRecord` they were already;
//! under `Never` drop syncs nothing.

use std::path::Path;
use std::time::Duration;

use kekbit::journal::{Durability, Journal};

const OFF_DURABLE_WATERMARK: usize = 96;

fn watermark(dir: &Path) -> u64 {
    let bytes = std::fs::read(dir.join("0000000000000001.kekbit")).unwrap();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[OFF_DURABLE_WATERMARK..OFF_DURABLE_WATERMARK + 8]);
    u64::from_le_bytes(word)
}

#[test]
fn dropping_a_journal_syncs_under_interval_and_every_n() {
    // Trap (issue 11, "API traps"): dropping a Journal under Interval or EveryN did not sync.
    // Three 8-byte records take 3 × 16 bytes of the data area.
    for (durability, synced) in [
        (Durability::Interval(Duration::from_secs(3600)), true),
        (Durability::EveryN(100), true),
        (Durability::EveryRecord, true),
        (Durability::Never, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::options()
            .durability(durability)
            .open(dir.path())
            .unwrap();
        for i in 0..3u64 {
            journal.append(&i.to_le_bytes()).unwrap();
        }
        drop(journal);
        let covered = watermark(dir.path()) >= 48;
        assert_eq!(
            covered,
            synced,
            "{durability:?}: watermark {}",
            watermark(dir.path())
        );
    }
}
