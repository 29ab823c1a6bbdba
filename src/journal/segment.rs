//! Segment files of a journal: naming, listing, reading headers and checking links.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::helper::SegmentSpec;
use super::JournalError;
use crate::core::{read_header, storage_path, Header, TickUnit, HEADER_LEN};
use crate::fault::IoOp;

/// Length of the trailer in a segment's sealing marker: the successor's first sequence
/// number, little-endian.
pub(crate) const TRAILER_LEN: usize = 8;

/// Length of the trailer once the journal has been truncated: the successor's first sequence
/// number, then the truncation epoch (both little-endian u64).
pub(crate) const EPOCH_TRAILER_LEN: usize = 16;

/// The file of segment `id` in `dir`.
pub(crate) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    storage_path(dir, id)
}

/// The ids of the segment files in `dir`, ascending; none if `dir` does not exist (yet).
pub(crate) fn list(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(JournalError::Io {
                path: dir.to_path_buf(),
                action: "listing the journal directory",
                source,
            })
        }
    };
    let mut ids: Vec<u64> = entries
        .flatten()
        .filter_map(|e| parse_name(&e.file_name().to_string_lossy()))
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// The largest segment id. Ids run from 1 to `u64::MAX - 1`: a journal always names the
/// next id, so `u64::MAX` is no segment's, and a journal whose segment [`MAX_SEGMENT_ID`]
/// is full cannot roll over.
pub(crate) const MAX_SEGMENT_ID: u64 = u64::MAX - 1;

/// The segment id a file name stands for, if it is a segment's name (see
/// [`MAX_SEGMENT_ID`]).
fn parse_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".kekbit")?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16)
        .ok()
        .filter(|&id| (1..=MAX_SEGMENT_ID).contains(&id))
}

/// The id of the segment after `id`, or `None` past [`MAX_SEGMENT_ID`].
pub(crate) fn successor(id: u64) -> Option<u64> {
    id.checked_add(1).filter(|&next| next <= MAX_SEGMENT_ID)
}

/// The ids of the `ahead` segments after `id`, the range cut at [`MAX_SEGMENT_ID`] (empty
/// when `id` is the last).
pub(crate) fn ids_after(id: u64, ahead: u64) -> std::ops::RangeInclusive<u64> {
    id.saturating_add(1)..=id.saturating_add(ahead).min(MAX_SEGMENT_ID)
}

/// Reads and validates segment `id`'s header without mapping it.
pub(crate) fn header(dir: &Path, id: u64) -> Result<Header, JournalError> {
    let path = segment_path(dir, id);
    let file = File::open(&path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            JournalError::MissingSegment {
                dir: dir.to_path_buf(),
                id,
            }
        } else {
            JournalError::Io {
                path: path.clone(),
                action: "opening a segment",
                source,
            }
        }
    })?;
    let (header, _) = read_header(&file, &path)?;
    if header.channel_id() != id {
        if !still_named(&file, &path) {
            // Renamed away since it was opened: pruned and being recycled under a new id
            // (docs/FORMAT.md, "Recycled segments"), so gone under this name.
            return Err(JournalError::MissingSegment {
                dir: dir.to_path_buf(),
                id,
            });
        }
        return Err(JournalError::BrokenChain {
            segment: path,
            reason: format!(
                "file is named for segment {id} but its header says {}",
                header.channel_id()
            ),
        });
    }
    Ok(header)
}

/// Whether `path` still names `file` (same device and inode).
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), file.metadata()) {
        (Ok(named), Ok(opened)) => named.dev() == opened.dev() && named.ino() == opened.ino(),
        _ => false,
    }
}

/// The header of a new segment of journal `journal_id`.
pub(crate) fn new_header(spec: &SegmentSpec, id: u64) -> Result<Header, String> {
    Header::new(
        spec.journal_id,
        id,
        spec.capacity,
        spec.max_record_len,
        0,
        TickUnit::Millis,
    )
    .with_resync_marks(spec.mark_shift)
}

/// The trailer of a sealing marker whose successor starts at `next_base`, in a journal that
/// was truncated `epoch` times up to this seal (8 bytes while that is 0, else 16).
pub(crate) fn trailer(next_base: u64, epoch: u64) -> Vec<u8> {
    let mut bytes = next_base.to_le_bytes().to_vec();
    if epoch > 0 {
        bytes.extend_from_slice(&epoch.to_le_bytes());
    }
    bytes
}

/// The successor's first sequence number from a sealing marker's trailer; `None` for an
/// empty trailer (a segment closed by dropping its writer names no successor).
pub(crate) fn parse_trailer(trailer: &[u8]) -> Result<Option<u64>, String> {
    match trailer.len() {
        0 => Ok(None),
        TRAILER_LEN | EPOCH_TRAILER_LEN => Ok(Some(crate::le::get_u64(trailer, 0))),
        n => Err(format!(
            "sealing trailer of {n} bytes, expected {TRAILER_LEN} or {EPOCH_TRAILER_LEN}"
        )),
    }
}

/// The truncation epoch a sealing marker's trailer names: how many truncating links the chain
/// holds up to and including the one this seal leads to (0 in an 8-byte or empty trailer).
pub(crate) fn trailer_epoch(trailer: &[u8]) -> u64 {
    if trailer.len() == EPOCH_TRAILER_LEN {
        crate::le::get_u64(trailer, TRAILER_LEN)
    } else {
        0
    }
}

/// The unit in which the storage past a seal is released: a page (4 KiB), so that the page
/// holding the seal is never touched.
const RELEASE_ALIGN: u64 = 4096;

/// Releases the storage of the sealed segment at `path` that no record will ever use: from the
/// first page boundary after its seal, which ends at data-area offset `seal_end`, to the end
/// of the file (see docs/FORMAT.md, "Releasing a sealed segment's unused space"). The file
/// keeps its size, so a reader that has it mapped cannot fault; the range reads as zeros, as
/// it did. The caller has made the seal durable and nothing will write the segment again.
/// Best effort: an error (a file system that cannot punch holes says `EOPNOTSUPP`) leaves the
/// segment allocated, which costs space and nothing else.
pub(crate) fn release_unused(path: &Path, seal_end: u64) -> std::io::Result<()> {
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len();
    let from = (HEADER_LEN as u64 + seal_end).next_multiple_of(RELEASE_ALIGN);
    if from >= len {
        return Ok(());
    }
    crate::fault::run(IoOp::Punch(path, from, len - from), || {
        crate::mmap::punch_hole(&file, from, len - from)
    })
}

/// What a segment's header must say to follow its predecessor.
pub(crate) struct Link {
    pub(crate) journal_id: u64,
    pub(crate) previous_id: u64,
    pub(crate) base: u64,
    pub(crate) previous_checksum: u32,
}

/// Checks that `header` (of the segment at `path`) follows as `link` says.
pub(crate) fn check_link(header: &Header, link: &Link, path: &Path) -> Result<(), JournalError> {
    let broken = |reason: String| {
        Err(JournalError::BrokenChain {
            segment: path.to_path_buf(),
            reason,
        })
    };
    if header.writer_id() != link.journal_id {
        return broken(format!(
            "segment belongs to journal {:#x}, not {:#x}",
            header.writer_id(),
            link.journal_id
        ));
    }
    if header.is_pending() {
        return broken("segment was never linked (pending)".into());
    }
    if header.previous_channel_id() != link.previous_id {
        return broken(format!(
            "segment follows segment {}, expected {}",
            header.previous_channel_id(),
            link.previous_id
        ));
    }
    if header.base_sequence() != link.base {
        return broken(format!(
            "segment starts at sequence {}, expected {}",
            header.base_sequence(),
            link.base
        ));
    }
    if header.previous_checksum() != link.previous_checksum {
        return broken(format!(
            "segment records predecessor checksum {:#010x}, the predecessor's seal has {:#010x}",
            header.previous_checksum(),
            link.previous_checksum
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_only_for_segment_files() {
        assert_eq!(parse_name("00000000000000ff.kekbit"), Some(255));
        assert_eq!(parse_name(".00000000000000ff.kekbit.tmp-1-2"), None);
        assert_eq!(parse_name("ff.kekbit"), None);
        assert_eq!(parse_name("kekbit.lock"), None);
        assert_eq!(parse_name("0000000000000000.kekbit"), None);
        assert_eq!(parse_name("fffffffffffffffe.kekbit"), Some(MAX_SEGMENT_ID));
        assert_eq!(parse_name("ffffffffffffffff.kekbit"), None);
    }

    #[test]
    fn successors_stop_at_the_largest_id() {
        assert_eq!(successor(1), Some(2));
        assert_eq!(successor(MAX_SEGMENT_ID - 1), Some(MAX_SEGMENT_ID));
        assert_eq!(successor(MAX_SEGMENT_ID), None);
        assert_eq!(successor(u64::MAX), None);
        assert_eq!(ids_after(1, 3), 2..=4);
        assert_eq!(
            ids_after(MAX_SEGMENT_ID - 2, 64),
            MAX_SEGMENT_ID - 1..=MAX_SEGMENT_ID
        );
        assert!(ids_after(MAX_SEGMENT_ID, 64).is_empty());
        assert!(ids_after(u64::MAX, 64).is_empty());
    }

    #[test]
    fn trailers_round_trip() {
        assert_eq!(parse_trailer(&trailer(77, 0)), Ok(Some(77)));
        assert_eq!(trailer(77, 0).len(), TRAILER_LEN);
        assert_eq!(parse_trailer(&trailer(77, 3)), Ok(Some(77)));
        assert_eq!(trailer_epoch(&trailer(77, 3)), 3);
        assert_eq!(trailer_epoch(&trailer(77, 0)), 0);
        assert_eq!(parse_trailer(&[]), Ok(None));
        assert!(parse_trailer(&[1, 2, 3]).is_err());
    }
}
