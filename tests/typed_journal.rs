//! `TypedJournal<T>`: a persistent sequence of serde values over a segmented journal.
//!
//! With 512-byte segments, 120 values of varying size span several segments. Checked:
//! `push` returns consecutive indexes and `len` follows; `get` returns every value, at every
//! segment boundary too, and `None` at or beyond the end (up to `u64::MAX`); `iter_from`
//! from any index (0, segment boundaries, the last, the end, beyond) yields exactly the
//! values from there with their indexes; all of it again after dropping and reopening, where
//! `push` continues at the old length. A record of another type (appended through
//! `journal()`) is `TypedError::Decode` with its sequence number from `get`, and from
//! `iter_from` once, after the values before it, after which the iterator ends; the values
//! around it stay readable.

#[path = "common/prevalence.rs"]
mod prevalence_common;

use kekbit::codec::{Bincode, Codec};
use kekbit::journal::{Durability, JournalOptions};
use kekbit::typed::{TypedError, TypedJournal};
use prevalence_common::{is_pending, scan_segment, segments};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reading {
    sensor: String,
    value: u32,
    tags: Vec<u8>,
}

/// Value `i`: from about 10 to about 30 bytes encoded.
fn reading(i: u64) -> Reading {
    Reading {
        sensor: format!("sensor-{}", i % 7),
        value: (i * 37 % 1000) as u32,
        tags: vec![i as u8; (i % 13) as usize],
    }
}

const COUNT: u64 = 120;

fn options() -> JournalOptions {
    JournalOptions::new()
        .segment_capacity(512)
        .durability(Durability::Never)
}

/// The first sequence numbers of the journal's linked segments.
fn segment_bases(dir: &std::path::Path) -> Vec<u64> {
    segments(dir)
        .into_iter()
        .filter(|(_, path)| !is_pending(path))
        .map(|(_, path)| scan_segment(&path).base)
        .collect()
}

/// Checks every way of reading the first `len` values of `values`.
fn check_all(values: &TypedJournal<Reading>, len: u64, bases: &[u64]) {
    assert_eq!(values.len(), len);
    assert_eq!(values.is_empty(), len == 0);
    for i in 0..len {
        assert_eq!(values.get(i).unwrap(), Some(reading(i)), "value {i}");
    }
    for beyond in [len, len + 1, len + 1_000, u64::MAX] {
        assert_eq!(values.get(beyond).unwrap(), None, "get({beyond})");
    }
    let mut starts: Vec<u64> = vec![0, 1, len.saturating_sub(1), len, len + 5];
    starts.extend(bases.iter().flat_map(|&b| [b.saturating_sub(1), b, b + 1]));
    for from in starts {
        let got: Vec<(u64, Reading)> = values
            .iter_from(from)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let expected: Vec<(u64, Reading)> = (from..len).map(|i| (i, reading(i))).collect();
        assert_eq!(got, expected, "iter_from({from})");
    }
}

#[test]
fn push_get_iterate_across_rollovers_and_reopening() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    {
        let values = TypedJournal::<Reading>::open_with(dir, options()).unwrap();
        assert!(values.is_empty());
        assert_eq!(values.get(0).unwrap(), None);
        assert_eq!(values.iter_from(0).unwrap().count(), 0);
        for i in 0..COUNT {
            assert_eq!(values.push(&reading(i)).unwrap(), i);
            assert_eq!(values.len(), i + 1);
        }
        let bases = segment_bases(dir);
        assert!(bases.len() >= 5, "several segments: {bases:?}");
        check_all(&values, COUNT, &bases);
    }

    // Reopened: the same values, and pushing continues at the old length.
    {
        let values = TypedJournal::<Reading>::open_with(dir, options()).unwrap();
        let bases = segment_bases(dir);
        check_all(&values, COUNT, &bases);
        for i in COUNT..COUNT + 40 {
            assert_eq!(values.push(&reading(i)).unwrap(), i);
        }
        check_all(&values, COUNT + 40, &segment_bases(dir));
    }
    let values = TypedJournal::<Reading>::open(dir).unwrap();
    check_all(&values, COUNT + 40, &segment_bases(dir));
}

#[test]
fn a_record_of_another_type_is_a_decode_error_with_its_sequence() {
    let root = tempfile::tempdir().unwrap();
    let values = TypedJournal::<Reading>::open_with(root.path(), options()).unwrap();
    for i in 0..30 {
        values.push(&reading(i)).unwrap();
    }
    // A u64, not a Reading: 300 encodes as a varint [0xFB, 0x2C, 0x01], which as a Reading
    // would be a 300-byte sensor name with two bytes to hold it.
    let mut foreign = Vec::new();
    Bincode.encode(&300u64, &mut foreign).unwrap();
    assert_eq!(values.journal().append(&foreign).unwrap(), 30);
    for i in 31..40 {
        assert_eq!(values.push(&reading(i)).unwrap(), i);
    }

    match values.get(30) {
        Err(TypedError::Decode { seq, source }) => {
            assert_eq!(seq, 30);
            assert!(
                source.to_string().starts_with("decoding failed"),
                "{source}"
            );
        }
        other => panic!("expected a decode error at 30, got {other:?}"),
    }
    let err = values.get(30).unwrap_err();
    assert!(
        err.to_string().starts_with("record 30 does not decode"),
        "{err}"
    );
    assert_eq!(values.get(29).unwrap(), Some(reading(29)));
    assert_eq!(values.get(31).unwrap(), Some(reading(31)));

    let mut iter = values.iter_from(0).unwrap();
    for i in 0..30 {
        assert_eq!(iter.next().unwrap().unwrap(), (i, reading(i)));
    }
    assert!(matches!(
        iter.next(),
        Some(Err(TypedError::Decode { seq: 30, .. }))
    ));
    assert!(iter.next().is_none(), "the iterator ends after its error");
    assert!(iter.next().is_none());

    let after: Vec<(u64, Reading)> = values.iter_from(31).unwrap().map(Result::unwrap).collect();
    assert_eq!(after, (31..40).map(|i| (i, reading(i))).collect::<Vec<_>>());
    assert_eq!(values.len(), 40);

    // The same after reopening.
    drop(values);
    let values = TypedJournal::<Reading>::open_with(root.path(), options()).unwrap();
    assert!(matches!(
        values.get(30),
        Err(TypedError::Decode { seq: 30, .. })
    ));
    assert_eq!(values.get(39).unwrap(), Some(reading(39)));
}
