//! Keeps docs/FORMAT.md and the code in step: every table the document gives for the header,
//! the record header, the kinds and the constants is compared with the code.

use super::frame::{self, Kind};
use super::header::FIELDS;
use super::*;

const DOC: &str = include_str!("../../docs/FORMAT.md");

/// The rows of the first table after the heading `heading`, header and separator skipped
/// (also used by the other layers' format tests).
pub(crate) fn table(heading: &str) -> Vec<Vec<String>> {
    let start = DOC
        .lines()
        .position(|l| l.trim() == heading)
        .unwrap_or_else(|| panic!("FORMAT.md has no heading {heading:?}"));
    DOC.lines()
        .skip(start + 1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

pub(crate) fn number(cell: &str) -> u64 {
    cell.parse()
        .unwrap_or_else(|_| panic!("{cell:?} is not a number"))
}

/// Asserts that the table after `heading` (offset, size, field name in its first three
/// columns) lists exactly `fields`, as (name, offset, size).
pub(crate) fn assert_field_table(heading: &str, fields: &[(&str, usize, usize)]) {
    let doc: Vec<(String, usize, usize)> = table(heading)
        .iter()
        .map(|r| (r[2].clone(), number(&r[0]) as usize, number(&r[1]) as usize))
        .collect();
    let code: Vec<(String, usize, usize)> = fields
        .iter()
        .map(|(name, off, size)| (name.to_string(), *off, *size))
        .collect();
    assert_eq!(doc, code, "{heading}");
}

#[test]
fn header_table_matches_code() {
    assert_field_table("## Channel header", FIELDS);
}

#[test]
fn magic_matches_code() {
    let rows = table("## Channel header");
    let cell = &rows[0][4];
    let hex = cell.split('`').nth(1).expect("magic bytes in backquotes");
    let bytes: Vec<u8> = hex
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    assert_eq!(bytes, MAGIC);
}

#[test]
fn record_header_table_matches_code() {
    let rows = table("### Record header");
    let fields: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str(), r[2].as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("0", "4", "meta"),
            ("4", "4", "checksum"),
            ("8", "len", "payload")
        ]
    );
    assert_eq!(RECORD_HEADER_LEN, 8);
    // The header word's little-endian bytes are meta, then checksum.
    let w = frame::word(0x1122_3344, 0xaabb_ccdd).to_le_bytes();
    assert_eq!(w[..4], 0x1122_3344u32.to_le_bytes());
    assert_eq!(w[4..], 0xaabb_ccddu32.to_le_bytes());
    // Kind in bits 28..31, length in bits 0..27.
    assert_eq!(frame::meta(Kind::Closed, 5), (2 << 28) | 5);
}

#[test]
fn kinds_table_matches_code() {
    let rows = table("### Kinds");
    let kinds: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("0", "end of data"),
            ("1", "data"),
            ("2", "closing marker"),
            ("3", "resynchronisation mark"),
            ("4-15", "reserved")
        ]
    );
    assert_eq!(Kind::Data as u32, 1);
    assert_eq!(Kind::Closed as u32, 2);
    assert_eq!(Kind::Mark as u32, 3);
}

#[test]
fn constants_table_matches_code() {
    let code: &[(&str, u64)] = &[
        ("HEADER_LEN", HEADER_LEN as u64),
        ("FORMAT_VERSION", u64::from(FORMAT_VERSION)),
        ("RECORD_ALIGN", RECORD_ALIGN),
        ("RECORD_HEADER_LEN", RECORD_HEADER_LEN as u64),
        ("TRAILER_RESERVE", TRAILER_RESERVE),
        ("MAX_TRAILER_LEN", MAX_TRAILER_LEN as u64),
        ("MAX_RECORD_LEN", u64::from(MAX_RECORD_LEN)),
        ("MIN_CAPACITY", MIN_CAPACITY),
        ("MARK_LEN", super::header::MARK_LEN as u64),
        ("DEFAULT_MARK_SHIFT", u64::from(DEFAULT_MARK_SHIFT)),
        ("MIN_MARK_SHIFT", u64::from(MIN_MARK_SHIFT)),
        ("MAX_MARK_SHIFT", u64::from(MAX_MARK_SHIFT)),
        ("MAX_CAPACITY", MAX_CAPACITY),
    ];
    let doc: Vec<(String, u64)> = table("### Constants")
        .iter()
        .map(|r| (r[0].clone(), number(&r[1])))
        .collect();
    let code: Vec<(String, u64)> = code.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    assert_eq!(doc, code);
}

#[test]
fn tick_unit_ids_match_doc() {
    let rows = table("## Channel header");
    let cell = &rows.iter().find(|r| r[2] == "tick_unit").unwrap()[4];
    for (id, unit, name) in [
        (1, TickUnit::Nanos, "1 ns"),
        (2, TickUnit::Micros, "2 µs"),
        (3, TickUnit::Millis, "3 ms"),
        (4, TickUnit::Secs, "4 s"),
    ] {
        assert!(cell.contains(name), "tick unit {name} not in {cell:?}");
        assert_eq!(unit.id(), id);
    }
}

#[test]
fn metadata_slot_table_matches_code() {
    use crate::journal::{MAX_META_LEN, META_MAGIC, META_SLOT_HEADER_LEN, META_SLOT_LEN};
    let rows = table("### Metadata slot");
    let doc: Vec<(String, usize, usize)> = rows
        .iter()
        .map(|r| (r[2].clone(), number(&r[0]) as usize, number(&r[1]) as usize))
        .collect();
    let code: Vec<(String, usize, usize)> = crate::journal::META_FIELDS
        .iter()
        .map(|(name, off, size)| (name.to_string(), *off, *size))
        .collect();
    assert_eq!(doc, code);
    assert_eq!(META_SLOT_HEADER_LEN + MAX_META_LEN, META_SLOT_LEN);
    let hex = rows[0][4]
        .split('`')
        .nth(1)
        .expect("magic bytes in backquotes");
    let bytes: Vec<u8> = hex
        .split(' ')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    assert_eq!(bytes, META_MAGIC);
}
