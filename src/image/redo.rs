//! The redo record: one journal record per change of an image, physical and idempotent
//! (docs/FORMAT.md, "Mapped image", "Redo record"): the length after the change, and the
//! new bytes of the elements `[index, index + n)`, `n` possibly 0. Applying it twice, or
//! applying it over a data area that already holds its effect, gives the same state.

/// The record kind of a redo record (the only one in format version 1).
pub(crate) const KIND_WRITE: u8 = 1;
/// Bytes before the element bytes: kind, new length, first index.
pub(crate) const REDO_HEADER_LEN: usize = 17;

/// A decoded redo record, borrowing its element bytes from the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Redo<'a> {
    /// The image's length after the change.
    pub(crate) new_len: u64,
    /// The first element written.
    pub(crate) index: u64,
    /// The new bytes of the elements written (a whole number of elements).
    pub(crate) bytes: &'a [u8],
}

/// Writes the record for `redo` into `out` (cleared first), ready to append.
pub(crate) fn encode_into(out: &mut Vec<u8>, new_len: u64, index: u64, bytes: &[u8]) {
    out.clear();
    out.reserve(REDO_HEADER_LEN + bytes.len());
    out.push(KIND_WRITE);
    out.extend_from_slice(&new_len.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(bytes);
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
    if record[0] != KIND_WRITE {
        return Err(format!("unknown kind {}", record[0]));
    }
    let word = |at: usize| u64::from_le_bytes(record[at..at + 8].try_into().expect("8 bytes"));
    let (new_len, index) = (word(1), word(9));
    let bytes = &record[REDO_HEADER_LEN..];
    if !bytes.len().is_multiple_of(elem_size) {
        return Err(format!(
            "{} element bytes are not a whole number of {elem_size}-byte elements",
            bytes.len()
        ));
    }
    let count = (bytes.len() / elem_size) as u64;
    match index.checked_add(count) {
        Some(end) if end <= new_len => Ok(Redo {
            new_len,
            index,
            bytes,
        }),
        _ => Err(format!(
            "writes elements from {index}, {count} of them, past the new length {new_len}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
