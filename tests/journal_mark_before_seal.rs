// Regression: found by the power-loss suite once it ran with resynchronisation marks: when a
// crash tore the record after a mark, recovery sealed the segment right after the mark, and
// a reader then stepped over the mark inside `try_next`, met the seal and returned `Ok(None)`
// as if caught up: replays stopped there and lost every later record (a prevalent store lost
// the commands executed after recovery).
//
//! A mark directly followed by a seal is crossed like any seal: every reader reads on into
//! the next segment.

#[path = "common/journal.rs"]
mod journal_common;

use journal_common::{copy_dir, patch, segment_file, walk_segment, HEADER_LEN};
use kekbit::journal::{Durability, Journal, JournalReader};

fn rec(seq: u64) -> Vec<u8> {
    format!("record {seq:05} {}", "x".repeat((seq % 50) as usize)).into_bytes()
}

fn options() -> kekbit::journal::JournalOptions {
    Journal::options()
        .segment_capacity(8192)
        .max_record_len(256)
        .resync_marks(9)
}

#[test]
fn a_seal_right_after_a_mark_is_crossed() {
    let live = tempfile::tempdir().unwrap();
    // Nothing synced: the torn record is above the durable watermark, a torn tail.
    let journal = options()
        .durability(Durability::Never)
        .open(live.path())
        .unwrap();
    for seq in 0..20 {
        journal.append(&rec(seq)).unwrap();
    }
    // The journal as a crash would leave it: copied while its writer holds it.
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(live.path(), crashed.path());
    drop(journal);

    // Tear the record after the last mark: zero its header word.
    let path = segment_file(crashed.path(), 1);
    let walk = walk_segment(&path);
    let &(mark_at, ordinal) = walk.marks.last().expect("a mark");
    let (torn_at, _) = walk.records[ordinal as usize];
    assert_eq!(torn_at, mark_at + 24, "the record follows its mark");
    patch(&path, HEADER_LEN + torn_at, &[0; 8]);

    // Recovery seals segment 1 right after the mark; appends go on in segment 2.
    let journal = options().open(crashed.path()).unwrap();
    assert_eq!(journal.next_sequence(), ordinal);
    let sealed = walk_segment(&path);
    assert_eq!(sealed.end, mark_at + 24, "sealed after the mark");
    for seq in ordinal..ordinal + 5 {
        assert_eq!(journal.append(&rec(seq)).unwrap(), seq);
    }
    for from in [0, ordinal - 1, ordinal] {
        let got: Vec<(u64, Vec<u8>)> = JournalReader::open(crashed.path(), from)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expected: Vec<(u64, Vec<u8>)> = (from..ordinal + 5).map(|s| (s, rec(s))).collect();
        assert_eq!(got, expected, "from {from}");
    }
}
