//! The journal rolls over at exactly the right byte. With 1 KiB segments (960 bytes for
//! records after the 64-byte closing reserve): a record that exactly fills what is left
//! stays in its segment, a record one byte longer opens the next segment, an empty record
//! rolls over from a full segment but fills the last 8 bytes of an almost full one, a record
//! of the maximum length fills an empty segment alone, a record longer than the maximum is
//! refused with `RecordTooLarge` without using a sequence number, and options whose maximum
//! record cannot fit in a segment are refused with `InvalidOptions` before any segment is
//! created. After every step every record reads back in order with its sequence number,
//! the linked segment files on disk are exactly the expected ones (each holding the expected
//! sequence numbers, sealed with a marker naming its successor's first sequence number), and
//! after the journal is dropped no prepared segment is left behind. A randomised check
//! (quickcheck) compares where records land against a byte-counting model, with and without
//! segments prepared in the background.

#[path = "common/journal.rs"]
mod journal_common;

use std::path::Path;

use journal_common::{
    check_chain, frame_len, linked_segments, max_payload, payload, read_journal, segments, End,
};
use kekbit::journal::{AppendError, Durability, Journal, JournalError, JournalOptions};
use quickcheck::{QuickCheck, TestResult};

const CAPACITY: u64 = 1024;
/// Bytes of a segment that records may use.
const USABLE: u64 = CAPACITY - 64;

fn options(capacity: u64, max: u32) -> JournalOptions {
    Journal::options()
        .segment_capacity(capacity)
        .max_record_len(max)
        .durability(Durability::Never)
}

/// What the test expects of the journal: the length of every record appended, in order, and
/// the sequence numbers each segment holds.
struct Expected {
    lens: Vec<usize>,
    /// For each segment (id 1, 2, ...), the sequence numbers it holds.
    segments: Vec<Vec<u64>>,
}

impl Expected {
    fn content(&self, seq: u64) -> Vec<u8> {
        payload(seq, self.lens[seq as usize], 0)
    }
}

/// Appends a record of `len` bytes, expecting it to land in segment `segment`.
fn append(journal: &Journal, expected: &mut Expected, len: usize, segment: u64) {
    let seq = expected.lens.len() as u64;
    let got = journal.append(&payload(seq, len, 0)).unwrap();
    assert_eq!(got, seq, "sequence number of a {len}-byte record");
    expected.lens.push(len);
    let index = segment as usize - 1;
    if expected.segments.len() <= index {
        expected.segments.resize(index + 1, Vec::new());
    }
    expected.segments[index].push(seq);
    check(journal.dir(), expected, false);
}

/// Checks the records and the segment files against `expected`.
fn check(dir: &Path, expected: &Expected, closed: bool) {
    let total = expected.lens.len() as u64;
    let got = read_journal(dir, 0);
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        seqs,
        (0..total).collect::<Vec<_>>(),
        "sequence numbers read"
    );
    for (seq, bytes) in &got {
        assert!(*bytes == expected.content(*seq), "content of record {seq}");
    }

    let linked = linked_segments(dir);
    let ids: Vec<u64> = linked.iter().map(|s| s.channel_id).collect();
    let want_ids: Vec<u64> = (1..=expected.segments.len() as u64).collect();
    assert_eq!(ids, want_ids, "linked segment files");
    let all = segments(dir);
    let pending: Vec<u64> = all
        .iter()
        .filter(|s| s.pending)
        .map(|s| s.channel_id)
        .collect();
    if closed {
        assert!(
            pending.is_empty(),
            "closed journal keeps prepared segments {pending:?}"
        );
    } else {
        // At most the one segment prepared ahead, right after the active one.
        let next = expected.segments.len() as u64 + 1;
        assert!(
            pending.is_empty() || pending == [next],
            "prepared segments {pending:?}, expected none or [{next}]"
        );
    }

    let walks = check_chain(dir);
    for (walk, want) in walks.iter().zip(&expected.segments) {
        let name = walk.header.path.display();
        let base = walk.header.base_sequence;
        let held: Vec<u64> = (base..base + walk.records.len() as u64).collect();
        assert_eq!(&held, want, "{name}: sequence numbers held");
        assert_eq!(walk.header.capacity, CAPACITY, "{name}: capacity");
    }
    for walk in &walks[..walks.len() - 1] {
        assert!(
            matches!(walk.stop, End::Sealed { .. }) && walk.seal_names().is_some(),
            "{}: a segment rolled over from is sealed with a trailer naming its successor",
            walk.header.path.display()
        );
    }
    let last = walks.last().unwrap();
    if closed {
        // Dropping the journal seals its last segment naming the next sequence number.
        match &last.stop {
            End::Sealed { trailer, .. } => assert_eq!(trailer.len(), 8, "trailer of a close"),
            other => panic!("last segment after close ends with {other:?}"),
        }
    } else {
        assert_eq!(last.stop, End::Open, "the active segment is not sealed");
    }
}

#[test]
fn journal_rollover_happens_at_exactly_the_right_byte() {
    let dir = tempfile::tempdir().unwrap();
    let max = max_payload(CAPACITY);
    assert_eq!(frame_len(max as usize), USABLE);
    let journal = options(CAPACITY, max).open(dir.path()).unwrap();
    let mut expected = Expected {
        lens: Vec::new(),
        segments: Vec::new(),
    };

    // Segment 1: 112 bytes, then a record exactly filling the 848 left.
    append(&journal, &mut expected, 100, 1);
    let fill = (USABLE - frame_len(100) - 8) as usize;
    append(&journal, &mut expected, fill, 1);
    // Nothing fits in a full segment, not even an empty record.
    append(&journal, &mut expected, 0, 2);

    // Segment 2 holds 8 bytes; 952 are left. 944 payload bytes fill them exactly; one more
    // byte does not fit (its frame is 960 bytes) and opens segment 3.
    let exact = (USABLE - 8 - 8) as usize;
    append(&journal, &mut expected, exact + 1, 3);
    // Padding counts: that 945-byte record framed to 960 bytes fills segment 3 alone.
    append(&journal, &mut expected, 1, 4);
    // Back in a segment with 16 bytes used: a record that fits exactly thanks to its
    // padding (929 bytes, framed to 944) stays.
    append(&journal, &mut expected, (USABLE - 16 - 8 - 7) as usize, 4);

    // A maximum-length record fills an empty segment on its own.
    append(&journal, &mut expected, max as usize, 5);
    append(&journal, &mut expected, max as usize, 6);

    // One byte over the maximum is refused; the journal is still usable and no sequence
    // number was used.
    let before = journal.next_sequence();
    match journal.append(&vec![9u8; max as usize + 1]) {
        Err(AppendError::RecordTooLarge {
            len, max: limit, ..
        }) => {
            assert_eq!((len, limit), (u64::from(max) + 1, max));
        }
        other => panic!("a {}-byte record gave {other:?}", max + 1),
    }
    assert_eq!(journal.next_sequence(), before);
    check(dir.path(), &expected, false);

    // An almost full segment: 952 bytes used, 8 left. An empty record fills them exactly,
    // the next empty record rolls over.
    append(&journal, &mut expected, 0, 7);
    append(&journal, &mut expected, (USABLE - 8 - 8 - 8) as usize, 7);
    append(&journal, &mut expected, 0, 7);
    append(&journal, &mut expected, 0, 8);

    drop(journal);
    check(dir.path(), &expected, true);
}

#[test]
fn a_record_larger_than_the_maximum_is_refused_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // A maximum well below what a segment could hold.
    let journal = options(4096, 100).open(dir.path()).unwrap();
    assert_eq!(journal.append(&payload(0, 100, 0)).unwrap(), 0);
    for len in [101usize, 4000, 5000] {
        match journal.append(&vec![1u8; len]) {
            Err(AppendError::RecordTooLarge { len: got, max, .. }) => {
                assert_eq!((got, max), (len as u64, 100))
            }
            other => panic!("a {len}-byte record gave {other:?}"),
        }
    }
    assert_eq!(journal.append(&payload(1, 7, 0)).unwrap(), 1);
    let got = read_journal(dir.path(), 0);
    assert_eq!(
        got,
        vec![(0, payload(0, 100, 0)), (1, payload(1, 7, 0))],
        "records after the refusals"
    );
}

#[test]
fn journal_options_whose_largest_record_cannot_fit_a_segment_are_refused() {
    for (capacity, max) in [(1024u64, 953u32), (4096, 4025), (4096, 1 << 20), (128, 57)] {
        let dir = tempfile::tempdir().unwrap();
        match options(capacity, max).open(dir.path()) {
            Err(JournalError::InvalidOptions { dir: named, .. }) => {
                assert_eq!(named, dir.path(), "directory named by the error")
            }
            other => panic!("capacity {capacity}, max {max}: {other:?}"),
        }
        assert!(
            segments(dir.path()).is_empty(),
            "capacity {capacity}, max {max}: a refused journal created segments"
        );
        // The refusal did not leave the directory locked: the largest record that does fit
        // is accepted, and such a record fills a segment on its own.
        let fits = max_payload(capacity);
        let journal = options(capacity, fits).open(dir.path()).unwrap();
        journal.append(&payload(0, fits as usize, 3)).unwrap();
        journal.append(&payload(1, fits as usize, 3)).unwrap();
        assert_eq!(journal.append(&[]).unwrap(), 2);
        drop(journal);
        let held: Vec<usize> = linked_segments(dir.path())
            .iter()
            .map(|s| journal_common::walk_segment(&s.path).records.len())
            .collect();
        assert_eq!(held, [1, 1, 1], "capacity {capacity}: records per segment");
    }
}

/// Where each record of `lens` lands by counting bytes: the segment (1-based) of each.
fn model(lens: &[usize]) -> Vec<u64> {
    let mut segment = 1;
    let mut used = 0;
    lens.iter()
        .map(|&len| {
            let frame = frame_len(len);
            if used + frame > USABLE {
                segment += 1;
                used = 0;
            }
            used += frame;
            segment
        })
        .collect()
}

fn records_land_where_the_model_says(raw: Vec<u16>, preallocate: bool) -> TestResult {
    if raw.len() > 40 {
        return TestResult::discard();
    }
    let max = max_payload(CAPACITY) as usize;
    // A mix of small records, any size, and sizes just under the maximum.
    let lens: Vec<usize> = raw
        .iter()
        .map(|&r| {
            let r = usize::from(r);
            match r % 3 {
                0 => (r / 3) % 64,
                1 => (r / 3) % (max + 1),
                _ => max - (r / 3) % 16,
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let journal = options(CAPACITY, max as u32)
        .preallocate(preallocate)
        .open(dir.path())
        .unwrap();
    for (seq, &len) in lens.iter().enumerate() {
        assert_eq!(
            journal.append(&payload(seq as u64, len, 1)).unwrap(),
            seq as u64
        );
    }
    let got = read_journal(dir.path(), 0);
    assert_eq!(got.len(), lens.len());
    for (seq, bytes) in &got {
        assert!(
            *bytes == payload(*seq, lens[*seq as usize], 1),
            "record {seq}"
        );
    }
    let want = model(&lens);
    let mut landed = Vec::new();
    for walk in check_chain(dir.path()) {
        landed.extend(std::iter::repeat_n(
            walk.header.channel_id,
            walk.records.len(),
        ));
    }
    assert_eq!(landed, want, "segment of each record, lengths {lens:?}");
    drop(journal);
    assert!(segments(dir.path()).iter().all(|s| !s.pending));
    TestResult::passed()
}

#[test]
fn journal_records_land_where_a_byte_counting_model_says() {
    QuickCheck::new()
        .tests(12)
        .quickcheck(records_land_where_the_model_says as fn(Vec<u16>, bool) -> TestResult);
}
