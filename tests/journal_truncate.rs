//! Truncating a journal's tail (`truncate_from`) and continuing past a gap (`skip_to`): at
//! every position of a small journal of several segments, then appending, reopening and
//! reading from every sequence number, against a model of what the journal must hold.

use std::path::Path;

use kekbit::journal::{Durability, Journal, JournalError, JournalReader};

/// Small segments: about 9 records of 100 bytes each, so that a few dozen records make
/// several segments.
fn open(dir: &Path) -> Journal {
    Journal::options()
        .segment_capacity(1024)
        .max_record_len(128)
        .durability(Durability::Never)
        .open(dir)
        .unwrap()
}

fn record(tag: u64, seq: u64) -> Vec<u8> {
    let mut r = format!("{tag}:{seq}:").into_bytes();
    r.resize(100, b'.');
    r
}

/// What the journal must hold: `first..next`, with `None` for sequence numbers skipped.
#[derive(Default)]
struct Model {
    records: Vec<Option<Vec<u8>>>,
    first: u64,
}

impl Model {
    fn next(&self) -> u64 {
        self.records.len() as u64
    }

    fn append(&mut self, journal: &Journal, tag: u64) {
        let seq = self.next();
        let r = record(tag, seq);
        assert_eq!(journal.append(&r).unwrap(), seq);
        self.records.push(Some(r));
    }

    fn truncate(&mut self, journal: &Journal, from: u64) {
        let report = journal.truncate_from(from).unwrap();
        assert_eq!(report.from, from);
        assert_eq!(report.discarded, self.next() - from);
        self.records.truncate(from as usize);
    }

    fn skip(&mut self, journal: &Journal, to: u64) {
        journal.skip_to(to).unwrap();
        self.records.resize(to as usize, None);
    }

    fn prune(&mut self, journal: &Journal, before: u64) {
        let report = journal.prune_before(before).unwrap();
        assert!(report.first_sequence <= before.max(self.first).min(self.next()));
        self.first = report.first_sequence;
    }

    /// Reads from every sequence number and compares with the model.
    fn check(&self, dir: &Path, journal: Option<&Journal>) {
        if let Some(journal) = journal {
            assert_eq!(journal.next_sequence(), self.next());
            assert_eq!(journal.first_sequence().unwrap(), self.first);
        }
        for from in 0..=self.next() + 1 {
            let opened = JournalReader::open(dir, from);
            if from < self.first {
                assert!(
                    matches!(opened, Err(JournalError::Pruned { .. })),
                    "from {from}: {opened:?}"
                );
                continue;
            }
            let got: Vec<(u64, Vec<u8>)> = opened
                .unwrap()
                .map(|r| r.unwrap_or_else(|e| panic!("from {from}: {e}")))
                .collect();
            let want: Vec<(u64, Vec<u8>)> = (from..self.next())
                .filter_map(|seq| Some((seq, self.records[seq as usize].clone()?)))
                .collect();
            assert_eq!(
                got.iter().map(|r| r.0).collect::<Vec<_>>(),
                want.iter().map(|r| r.0).collect::<Vec<_>>(),
                "from {from}"
            );
            assert_eq!(got, want, "from {from}");
        }
    }
}

#[test]
fn truncating_at_every_position_then_appending_and_reopening_reads_exactly_the_new_log() {
    const RECORDS: u64 = 30;
    for at in 0..=RECORDS {
        let dir = tempfile::tempdir().unwrap();
        let mut model = Model::default();
        {
            let journal = open(dir.path());
            for _ in 0..RECORDS {
                model.append(&journal, 1);
            }
            model.truncate(&journal, at);
            model.check(dir.path(), Some(&journal));
            for _ in 0..5 {
                model.append(&journal, 2);
            }
            model.check(dir.path(), Some(&journal));
        }
        model.check(dir.path(), None);
        let journal = open(dir.path());
        model.check(dir.path(), Some(&journal));
        model.append(&journal, 3);
        model.check(dir.path(), Some(&journal));
        assert_eq!(journal.truncation_epoch(), u64::from(at < RECORDS));
    }
}

#[test]
fn repeated_truncations_skips_and_prunes_with_reopens_follow_the_model() {
    // A fixed pseudo-random walk over the operations (xorshift), reopening now and then.
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::default();
    let mut journal = open(dir.path());
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for step in 0..60u64 {
        match rand(10) {
            0..=4 => {
                for _ in 0..=rand(12) {
                    model.append(&journal, step);
                }
            }
            5 | 6 => {
                let span = model.next() - model.first + 1;
                model.truncate(&journal, model.first + rand(span));
            }
            7 => model.skip(&journal, model.next() + rand(15)),
            8 => {
                let span = model.next() - model.first + 1;
                model.prune(&journal, model.first + rand(span));
            }
            _ => {
                drop(journal);
                journal = open(dir.path());
            }
        }
        model.check(dir.path(), Some(&journal));
    }
}

#[test]
fn skip_then_prune_leaves_an_empty_journal_continuing_at_the_chosen_sequence() {
    let dir = tempfile::tempdir().unwrap();
    {
        let journal = open(dir.path());
        for i in 0..25u64 {
            journal.append(&record(0, i)).unwrap();
        }
        journal.skip_to(1_000).unwrap();
        journal.prune_before(1_000).unwrap();
        assert_eq!(journal.first_sequence().unwrap(), 1_000);
        assert_eq!(journal.next_sequence(), 1_000);
        assert!(matches!(
            JournalReader::open(dir.path(), 999),
            Err(JournalError::Pruned { first: 1_000, .. })
        ));
        let mut reader = JournalReader::open_first(dir.path()).unwrap();
        assert_eq!(reader.next_sequence(), 1_000);
        assert_eq!(reader.try_next().unwrap(), None);
    }
    let journal = open(dir.path());
    assert_eq!(journal.first_sequence().unwrap(), 1_000);
    assert_eq!(journal.next_sequence(), 1_000);
    assert_eq!(journal.append(b"after the snapshot").unwrap(), 1_000);
    let records: Vec<_> = JournalReader::open(dir.path(), 1_000)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records, [(1_000, b"after the snapshot".to_vec())]);
}

#[test]
fn sequence_numbers_out_of_range_are_refused_with_the_valid_range() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path());
    for i in 0..20u64 {
        journal.append(&record(0, i)).unwrap();
    }
    journal.prune_before(12).unwrap();
    let first = journal.first_sequence().unwrap();
    assert!(first > 0);
    for bad in [0, first - 1, 21, u64::MAX] {
        match journal.truncate_from(bad) {
            Err(JournalError::SequenceOutOfRange {
                dir: d,
                operation: "truncate_from",
                requested,
                lowest,
                highest: 20,
            }) => {
                assert_eq!((d.as_path(), requested, lowest), (dir.path(), bad, first));
            }
            other => panic!("truncate_from({bad}): {other:?}"),
        }
    }
    for bad in [0, 19, u64::MAX] {
        match journal.skip_to(bad) {
            Err(JournalError::SequenceOutOfRange {
                operation: "skip_to",
                lowest: 20,
                ..
            }) => {}
            other => panic!("skip_to({bad}): {other:?}"),
        }
    }
    let message = journal.truncate_from(0).unwrap_err().to_string();
    assert!(message.contains("truncate_from(0)"), "{message}");
    assert!(
        message.contains(&dir.path().display().to_string()),
        "{message}"
    );
    // A no-op each: the next sequence number.
    assert_eq!(journal.truncate_from(20).unwrap().discarded, 0);
    journal.skip_to(20).unwrap();
    assert_eq!(journal.truncation_epoch(), 0);
    assert_eq!(journal.append(b"x").unwrap(), 20);
}
