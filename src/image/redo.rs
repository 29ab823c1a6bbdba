//! The redo record: one journal record per change of an image, physical and idempotent
//! (docs/FORMAT.md, "Mapped image", "Redo record"): the length after the change, and the
//! new bytes of the elements `[index, index + n)`, `n` possibly 0. Applying it twice, or
//! applying it over a data area that already holds its effect, gives the same state.

/// The record kind of a write: the new bytes of a run of elements.
pub(crate) const KIND_WRITE: u8 = 1;
/// The record kind of a scatter: the new bytes of elements at any indices, length unchanged
/// (`MappedVec::set_many`). Its `index` field is the number of entries, each an index (8
/// bytes) and the element's bytes.
pub(crate) const KIND_SCATTER: u8 = 2;
/// Bytes before the element bytes: kind, new length, first index.
pub(crate) const REDO_HEADER_LEN: usize = 17;

/// A decoded redo record, borrowing its element bytes from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Redo<'a> {
    /// A scatter record ([`KIND_SCATTER`]), whose `index` is its number of entries and
    /// whose `bytes` are the entries.
    pub(crate) scatter: bool,
    /// The image's length after the change.
    pub(crate) new_len: u64,
    /// The first element written.
    pub(crate) index: u64,
    /// The new bytes of the elements written (a whole number of elements).
    pub(crate) bytes: &'a [u8],
}

/// The header of a write record; the record is it followed by the new element bytes
/// (appended as two parts, without a copy into one buffer).
pub(crate) fn write_header(new_len: u64, index: u64) -> [u8; REDO_HEADER_LEN] {
    header(KIND_WRITE, new_len, index)
}

/// Writes a scatter record of `entries` (index, element bytes) into `out` (cleared first).
pub(crate) fn encode_scatter_into<'e>(
    out: &mut Vec<u8>,
    len: u64,
    entries: impl ExactSizeIterator<Item = (u64, &'e [u8])>,
) {
    out.clear();
    out.extend_from_slice(&header(KIND_SCATTER, len, entries.len() as u64));
    for (index, bytes) in entries {
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(bytes);
    }
}

fn header(kind: u8, new_len: u64, index: u64) -> [u8; REDO_HEADER_LEN] {
    let mut header = [0u8; REDO_HEADER_LEN];
    header[0] = kind;
    header[1..9].copy_from_slice(&new_len.to_le_bytes());
    header[9..].copy_from_slice(&index.to_le_bytes());
    header
}

/// The entries of a checked scatter record, as (index, element bytes).
pub(crate) fn scatter_entries<'a>(
    redo: &Redo<'a>,
    elem_size: usize,
) -> impl Iterator<Item = (u64, &'a [u8])> + 'a {
    redo.bytes
        .chunks_exact(8 + elem_size)
        .map(|entry: &'a [u8]| {
            let index = u64::from_le_bytes(entry[..8].try_into().expect("8 bytes"));
            (index, &entry[8..])
        })
}

/// Decodes and checks a record of an image of `elem_size`-byte elements: a known kind, a
/// whole number of elements, and the written elements within the new length (a change that
/// grows the image writes every element it adds; one that writes elsewhere keeps them in
/// range).
pub(crate) fn decode(record: &[u8], elem_size: usize) -> Result<Redo<'_>, String> {
    if record.len() < REDO_HEADER_LEN {
        return Err(format!(
            "{} bytes, shorter than the {REDO_HEADER_LEN}-byte redo header",
            record.len()
        ));
    }
    let word = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"));
    let (new_len, index) = (word(1), word(9));
    let bytes = &record[REDO_HEADER_LEN..];
    match record[0] {
        KIND_WRITE => {}
        KIND_SCATTER => return decode_scatter(new_len, index, bytes, elem_size),
        kind => return Err(format!("unknown kind {kind}")),
    }
    if !bytes.len().is_multiple_of(elem_size) {
        return Err(format!(
            "{} element bytes are not a whole number of {elem_size}-byte elements",
            bytes.len()
        ));
    }
    let count = (bytes.len() / elem_size) as u64;
    match index.checked_add(count) {
        Some(end) if end <= new_len => Ok(Redo {
            scatter: false,
            new_len,
            index,
            bytes,
        }),
        _ => Err(format!(
            "writes elements from {index}, {count} of them, past the new length {new_len}"
        )),
    }
}

fn decode_scatter(
    len: u64,
    count: u64,
    bytes: &[u8],
    elem_size: usize,
) -> Result<Redo<'_>, String> {
    let entry = 8 + elem_size as u64;
    if count.checked_mul(entry) != Some(bytes.len() as u64) {
        return Err(format!(
            "{} entry bytes are not {count} entries of {entry} bytes",
            bytes.len()
        ));
    }
    let redo = Redo {
        scatter: true,
        new_len: len,
        index: count,
        bytes,
    };
    if let Some((index, _)) = scatter_entries(&redo, elem_size).find(|(i, _)| *i >= len) {
        return Err(format!("scatters element {index}, past the length {len}"));
    }
    Ok(redo)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write record as the journal stores it: its header, then the element bytes.
    fn encode_into(out: &mut Vec<u8>, new_len: u64, index: u64, bytes: &[u8]) {
        out.clear();
        out.extend_from_slice(&write_header(new_len, index));
        out.extend_from_slice(bytes);
    }

    #[test]
    fn a_record_round_trips_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        encode_into(&mut out, 3, 2, &[9; 8]);
        assert_eq!(out.len(), REDO_HEADER_LEN + 8);
        let redo = decode(&out, 8).unwrap();
        assert_eq!(
            (redo.new_len, redo.index, redo.bytes),
            (3, 2, &[9u8; 8][..])
        );
        assert!(decode(&out, 16).is_err(), "half an element");
        assert!(decode(&out[..10], 8).is_err(), "short header");
        encode_into(&mut out, 2, 2, &[9; 8]);
        assert!(decode(&out, 8).is_err(), "writes past the new length");
        encode_into(&mut out, 1, u64::MAX, &[9; 8]);
        assert!(decode(&out, 8).is_err(), "index overflow");
        out[0] = 7;
        assert!(decode(&out, 8).unwrap_err().contains("kind 7"));
    }

    #[test]
    fn a_scatter_round_trips_and_bad_ones_are_refused() {
        let mut out = Vec::new();
        let entries = [(4u64, &[1u8; 4][..]), (0, &[2; 4][..])];
        encode_scatter_into(&mut out, 5, entries.iter().copied());
        let redo = decode(&out, 4).unwrap();
        assert!(redo.scatter);
        assert_eq!(scatter_entries(&redo, 4).collect::<Vec<_>>(), entries);
        assert!(decode(&out, 8).is_err(), "entry size");
        assert!(decode(&out[..out.len() - 1], 4).is_err(), "short");
        encode_scatter_into(&mut out, 4, entries.iter().copied());
        assert!(decode(&out, 4).unwrap_err().contains("past the length"));
    }
}
