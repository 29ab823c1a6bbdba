//! Opening a journal for appending: find the tail, handle what a crash left there, and
//! prepare the segment appends continue in. Only the last segment (and, after a crash during
//! a rollover, the one before it) is read: sealed segments are not scanned, so opening costs
//! the same however long the journal is.

use std::fs::File;
use std::path::Path;

use super::helper::SegmentSpec;
use super::scan::{scan, Stop};
use super::segment::{self, Link};
use super::{DroppedRange, JournalError, OpenReport, RecoveryMode};
use crate::core::{
    frame_len, mark_durable, resume_for_seal, ChannelError, EncoderHandler, ReadError, Reader,
    ShmReader, ShmWriter, HEADER_LEN, OFF_CLOSED_AT, OFF_DURABLE_WATERMARK,
};
use crate::fault::{self, IoOp};

/// The segment appends continue in.
pub(crate) struct Active {
    pub(crate) writer: ShmWriter<EncoderHandler>,
    pub(crate) id: u64,
}

/// Removes temporary files left by creators that died (those nobody holds locked), and
/// pruned segments kept for recycling by a journal that died (the journal lock, held here,
/// means no process keeps them).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.contains(".kekbit.recycle-") {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        if !(name.starts_with('.') && name.contains(".kekbit.tmp-")) {
            continue;
        }
        if let Ok(f) = File::open(entry.path()) {
            if f.try_lock().is_ok() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Removes segment `id`'s file.
pub(crate) fn remove(dir: &Path, id: u64) -> Result<(), JournalError> {
    let path = segment::segment_path(dir, id);
    fault::run(IoOp::Remove(&path), || std::fs::remove_file(&path)).map_err(|source| {
        JournalError::Io {
            path: path.clone(),
            action: "removing a segment",
            source,
        }
    })
}

fn mode_name(mode: RecoveryMode) -> &'static str {
    match mode {
        RecoveryMode::TolerateTornTail => "TolerateTornTail",
        RecoveryMode::AbsoluteConsistency => "AbsoluteConsistency",
        RecoveryMode::SkipCorrupt => "SkipCorrupt",
    }
}

/// The recovered tail: the last segment, sealed, and what follows it.
pub(crate) struct Tail {
    /// The journal's id (0 when no segment was left: a new journal starts).
    pub(crate) journal_id: u64,
    pub(crate) id: u64,
    /// First sequence number of the segment that follows.
    pub(crate) next_base: u64,
    /// Checksum of the tail's seal.
    pub(crate) checksum: u32,
}

/// How the tail ends once recovery is done.
#[derive(Clone, Copy)]
enum TailEnd {
    /// Sealed already, with this checksum.
    Sealed(u32),
    /// To be sealed at this data-area offset (the end of its valid records).
    Cut(u64),
}

/// What recovery will do, decided before anything is changed.
struct Plan {
    journal_id: u64,
    /// (segment, what comes next, how it ends); `None` when no segment remains.
    tail: Option<(u64, u64, TailEnd)>,
    /// The truncation epoch of the chain up to the tail's end.
    epoch: u64,
    /// The segment a fresh chain starts with when no segment remains: (id, base).
    fresh: (u64, u64),
    /// Segments to remove, after the cut (highest first), with whether each was linked.
    remove: Vec<(u64, bool)>,
    /// Segments read forward (not known durable): made durable once recovery is done.
    unsynced: Vec<u64>,
    /// Bytes written after the cut: torn, or damaged if acknowledged.
    dropped_bytes: u64,
    /// Acknowledged data lost at the cut: (segment, offset, reason, the damaged record).
    damage: Option<(u64, u64, String, Option<ReadError>)>,
    /// Where the valid records end, if the tail is cut: (segment, offset, first lost).
    cut_at: Option<(u64, u64, u64)>,
}

/// What the next segment of the chain must say: journal, predecessor, first sequence
/// number, and the predecessor's seal checksum.
struct Expected {
    previous: u64,
    base: u64,
    checksum: u32,
}

/// If segment `id` is sealed and its seal is covered by its durable watermark (so, by the
/// order of syncs, it and every segment before it are durable), its seal's checksum, the
/// sequence number it names and the truncation epoch it names.
fn durable_seal(dir: &Path, id: u64) -> Option<(u32, u64, u64)> {
    let reader = ShmReader::open(segment::segment_path(dir, id)).ok()?;
    if reader.header().is_pending() || reader.header().channel_id() != id {
        return None;
    }
    let (at, trailer, checksum) = reader.located_closing()?;
    let next = segment::parse_trailer(&trailer).ok().flatten()?;
    let epoch = segment::trailer_epoch(&trailer);
    (reader.durable_position() >= at + frame_len(trailer.len() as u32))
        .then_some((checksum, next, epoch))
}

/// Whether segment `id`, whose header could not be read (`error`), is one whose link was
/// torn: its header fails only its checksum (a process killed while the checksummed part was
/// rewritten in place, at step 2 of a rollover), nothing was ever published in it (its first
/// record word, durable watermark and seal locator are zero: records are appended only once
/// the link is complete), and only segments prepared ahead (pending) follow it. Such a segment
/// holds no record, acknowledged or not.
fn torn_link(dir: &Path, ids: &[u64], id: u64, error: &JournalError) -> bool {
    use std::os::unix::fs::FileExt;
    if !matches!(
        error,
        JournalError::Channel(ChannelError::HeaderChecksumMismatch { .. })
    ) {
        return false;
    }
    let later_pending = ids
        .iter()
        .filter(|&&later| later > id)
        .all(|&later| matches!(segment::header(dir, later), Ok(h) if h.is_pending()));
    if !later_pending {
        return false;
    }
    let Ok(file) = File::open(segment::segment_path(dir, id)) else {
        return false;
    };
    let mut head = [0u8; HEADER_LEN + 8];
    if file.read_exact_at(&mut head, 0).is_err() {
        return false;
    }
    let zero = |at: usize| head[at..at + 8].iter().all(|&b| b == 0);
    zero(OFF_DURABLE_WATERMARK) && zero(OFF_CLOSED_AT) && zero(HEADER_LEN)
}

/// Bytes written in segment `id` from data-area offset `from` on (0 if unreadable).
fn written_after(dir: &Path, id: u64, from: u64) -> u64 {
    ShmReader::open(segment::segment_path(dir, id))
        .map(|r| r.written_extent(from) - from)
        .unwrap_or(0)
}

/// The durable watermark of segment `id` (0 if unreadable).
fn watermark(dir: &Path, id: u64) -> u64 {
    ShmReader::open(segment::segment_path(dir, id))
        .map(|r| r.durable_position())
        .unwrap_or(0)
}

/// Decides, without changing anything, how to recover the journal in `dir`.
///
/// Walks back from the newest segment to the newest one whose seal is durable: that one and
/// everything before it reached storage, because a sync writes sealed segments oldest first.
/// From there it walks forward, checking each segment's link, every record and every seal,
/// and cuts at the first defect: a pending (never linked) or mislinked segment, a damaged
/// record, a missing seal. A power loss can leave any mix of the pages written since the last
/// sync, in any of these segments, so the cut is where the readable chain ends. What lies
/// beyond it was never acknowledged, unless a durable watermark says otherwise.
fn plan(dir: &Path) -> Result<Plan, JournalError> {
    let ids = segment::list(dir)?;
    let mut plan = Plan {
        journal_id: 0,
        tail: None,
        epoch: 0,
        fresh: (1, 0),
        remove: Vec::new(),
        unsynced: Vec::new(),
        dropped_bytes: 0,
        damage: None,
        cut_at: None,
    };
    // The journal id: the newest linked segment's.
    for &id in ids.iter().rev() {
        if let Ok(h) = segment::header(dir, id) {
            if !h.is_pending() {
                plan.journal_id = h.writer_id();
                break;
            }
        }
    }
    // Back to the newest durable seal (or to a gap: a missing segment, or the first one).
    let mut start = 0;
    let mut expected = None;
    for index in (0..ids.len()).rev() {
        let id = ids[index];
        if index + 1 < ids.len() && ids[index + 1] != id + 1 {
            start = index + 1;
            break;
        }
        if let Some((checksum, next, epoch)) = durable_seal(dir, id) {
            plan.epoch = epoch;
            start = index + 1;
            expected = Some(Expected {
                previous: id,
                base: next,
                checksum,
            });
            plan.tail = Some((id, next, TailEnd::Sealed(checksum)));
            break;
        }
    }
    // Forward from there, to the first defect.
    let mut cut = false;
    for &id in &ids[start..] {
        if cut {
            let header = segment::header(dir, id).ok();
            let linked = header.as_ref().is_some_and(|h| !h.is_pending());
            plan.dropped_bytes += written_after(dir, id, 0);
            if linked && watermark(dir, id) > 0 && plan.damage.is_none() {
                plan.damage = Some((
                    id,
                    0,
                    "segment holds durable records but follows the cut".into(),
                    None,
                ));
            }
            plan.remove.push((id, linked));
            continue;
        }
        let path = segment::segment_path(dir, id);
        let header = match segment::header(dir, id) {
            Ok(h) if !h.is_pending() => h,
            Ok(_) => {
                // Prepared ahead, never linked: the chain ends before it.
                cut = true;
                plan.remove.push((id, false));
                continue;
            }
            // Killed while the header was rewritten in place to link the segment (a rollover,
            // or the open that created it): nothing was ever appended to it.
            Err(e) if torn_link(dir, &ids, id, &e) => {
                cut = true;
                plan.remove.push((id, true));
                continue;
            }
            // Any other unreadable header is damage, never a crash's leftover: a header is
            // written whole (one sector) and synced before its segment is named.
            Err(e) => return Err(e),
        };
        if header.writer_id() != plan.journal_id {
            return Err(JournalError::BrokenChain {
                segment: path,
                reason: format!(
                    "segment belongs to journal {:#x}, the journal's newest segment to {:#x}",
                    header.writer_id(),
                    plan.journal_id
                ),
            });
        }
        if let Some(e) = &expected {
            let link = Link {
                journal_id: plan.journal_id,
                previous_id: e.previous,
                base: e.base,
                previous_checksum: e.checksum,
            };
            if segment::check_link(&header, &link, &path).is_err() {
                // Linked to a seal that did not reach storage (or to another one).
                cut = true;
                plan.dropped_bytes += written_after(dir, id, 0);
                if watermark(dir, id) > 0 {
                    plan.damage = Some((
                        id,
                        0,
                        "segment does not follow its predecessor".into(),
                        None,
                    ));
                }
                plan.remove.push((id, true));
                continue;
            }
        } else if plan.tail.is_none() {
            plan.fresh = (id, header.base_sequence());
        }
        plan.unsynced.push(id);
        let found = scan(dir, id)?;
        let next_base = header.base_sequence() + found.records;
        match found.stop {
            Stop::Sealed { trailer, checksum } => {
                // A seal may name a lower (truncating) or a higher (skipping) next sequence
                // number than the segment's records reach: the successor starts there.
                let next_base = check_trailer(&trailer, next_base, dir, id)?;
                plan.epoch = segment::trailer_epoch(&trailer);
                plan.tail = Some((id, next_base, TailEnd::Sealed(checksum)));
                expected = Some(Expected {
                    previous: id,
                    base: next_base,
                    checksum,
                });
            }
            Stop::Open { position, damage } => {
                cut = true;
                plan.dropped_bytes += found.reader.written_extent(position) - position;
                let durable = found.reader.durable_position();
                if position < durable {
                    let reason = match &damage {
                        Some(e) => e.to_string(),
                        None => format!(
                            "records end at offset {position}, below the durable watermark {durable}"
                        ),
                    };
                    plan.damage = Some((id, position, reason, damage));
                }
                plan.cut_at = Some((id, position, next_base));
                plan.tail = Some((id, next_base, TailEnd::Cut(position)));
            }
        }
    }
    plan.remove.reverse();
    Ok(plan)
}

/// Brings the journal in `dir` to a clean state without creating a segment: removes stray
/// temporaries, segments prepared ahead and never used, and everything after the cut (see
/// [`plan`]), seals the tail at the end of its valid records, and makes every recovered
/// record durable, recording it in the watermarks. The caller holds the journal lock.
/// When no segment is left, the tail returned is the one the first new segment follows:
/// id one below it, no checksum.
pub(crate) fn settle(
    dir: &Path,
    mode: RecoveryMode,
    report: &mut OpenReport,
) -> Result<Option<Tail>, JournalError> {
    if segment::list(dir)?.is_empty() {
        return Ok(None);
    }
    report.segments = segment::list(dir)?.len();
    let plan = plan(dir)?;
    let drops_linked = plan.remove.iter().any(|&(_, linked)| linked);
    // Check first, change after: a refused open leaves the journal as it is.
    if let Some((id, position, reason, record)) = &plan.damage {
        if mode != RecoveryMode::SkipCorrupt {
            return Err(match record {
                Some(source) => JournalError::Corrupt {
                    source: source.clone(),
                },
                None => JournalError::BrokenChain {
                    segment: segment::segment_path(dir, *id),
                    reason: format!("acknowledged records are lost at offset {position}: {reason}"),
                },
            });
        }
    }
    if mode == RecoveryMode::AbsoluteConsistency && (plan.dropped_bytes > 0 || drops_linked) {
        let (segment, position) = plan
            .cut_at
            .map(|(id, at, _)| (id, at))
            .unwrap_or((plan.remove.last().map_or(0, |r| r.0), 0));
        return Err(JournalError::TornTail {
            segment: segment::segment_path(dir, segment),
            position,
            bytes: plan.dropped_bytes,
            mode: mode_name(mode),
        });
    }

    remove_stale_temporaries(dir);
    for &(id, linked) in &plan.remove {
        remove(dir, id)?;
        if linked {
            report.orphans_removed += 1;
        } else {
            report.pending_removed += 1;
        }
    }
    match &plan.damage {
        Some((id, position, reason, _)) => report.damage_dropped.push(DroppedRange {
            segment: *id,
            path: segment::segment_path(dir, *id),
            offset: *position,
            length: plan.dropped_bytes,
            first_sequence_lost: plan.cut_at.map_or(0, |c| c.2),
            reason: reason.clone(),
        }),
        None => report.torn_bytes_dropped += plan.dropped_bytes,
    }
    report.truncation_epoch = plan.epoch;
    let Some((id, next_base, end)) = plan.tail else {
        if !plan.remove.is_empty() {
            crate::core::sync_directory(dir)?;
        }
        report.next_sequence = plan.fresh.1;
        return Ok(Some(Tail {
            journal_id: 0,
            id: plan.fresh.0 - 1,
            next_base: plan.fresh.1,
            checksum: 0,
        }));
    };
    let checksum = match end {
        TailEnd::Sealed(checksum) => checksum,
        TailEnd::Cut(position) => {
            let path = segment::segment_path(dir, id);
            let checksum = resume_for_seal(&path, position)?
                .close_with_trailer(&segment::trailer(next_base, plan.epoch))
                .map_err(|source| JournalError::Write {
                    action: "sealing the recovered tail",
                    source,
                })?;
            report.sealed_segment = Some(id);
            checksum
        }
    };
    // Everything kept is made durable, and recorded so in the watermarks, before anything
    // follows it; the removals are made durable too.
    for &unsynced in &plan.unsynced {
        if unsynced <= id {
            mark_sealed_durable(dir, unsynced)?;
        }
    }
    if !plan.remove.is_empty() {
        crate::core::sync_directory(dir)?;
    }
    // The tail's seal is durable now, and appends continue in a new segment: release what
    // the tail will never use. Already done when its writer closed it (a no-op then); not
    // when that writer crashed, synced nothing on close (`Never`), or died between its
    // sync and its release.
    release_tail(dir, id);
    report.next_sequence = next_base;
    Ok(Some(Tail {
        journal_id: plan.journal_id,
        id,
        next_base,
        checksum,
    }))
}

/// Releases the unused space of sealed segment `id`, whose seal is durable, after the seal
/// its header locates (verified: an unchecksummed locator never chooses what is released).
/// Best effort, as [`segment::release_unused`].
fn release_tail(dir: &Path, id: u64) {
    let path = segment::segment_path(dir, id);
    let Ok(reader) = ShmReader::open(&path) else {
        return;
    };
    let Some((at, trailer, _)) = reader.located_closing() else {
        return;
    };
    drop(reader);
    let _ = segment::release_unused(&path, at + frame_len(trailer.len() as u32));
}

/// Syncs sealed segment `id` and writes a durable watermark that covers its seal.
fn mark_sealed_durable(dir: &Path, id: u64) -> Result<(), JournalError> {
    let path = segment::segment_path(dir, id);
    let reader = ShmReader::open(&path)?;
    let end = match reader.located_closing() {
        Some((at, trailer, _)) => at + frame_len(trailer.len() as u32),
        None => {
            drop(reader);
            let found = scan(dir, id)?;
            match found.stop {
                Stop::Sealed { trailer, .. } => {
                    found.reader.position() + frame_len(trailer.len() as u32)
                }
                Stop::Open { .. } => {
                    return Err(JournalError::BrokenChain {
                        segment: path,
                        reason: "a recovered segment is not sealed".into(),
                    })
                }
            }
        }
    };
    mark_durable(&path, end)?;
    Ok(())
}

/// Settles the journal (see [`settle`]) and creates the segment appends continue in: a
/// sealed segment is never written again.
pub(crate) fn recover(
    mut spec: SegmentSpec,
    mode: RecoveryMode,
) -> Result<(Active, SegmentSpec, OpenReport), JournalError> {
    let mut report = OpenReport::default();
    let tail = settle(&spec.dir, mode, &mut report)?;
    let next_id = |last: u64| {
        segment::successor(last).ok_or_else(|| JournalError::SegmentIdsExhausted {
            dir: spec.dir.clone(),
            last,
        })
    };
    let (id, base, previous, checksum) = match tail {
        Some(tail) if tail.journal_id != 0 => {
            spec.journal_id = tail.journal_id;
            (next_id(tail.id)?, tail.next_base, tail.id, tail.checksum)
        }
        // Nothing (left) to continue: a new chain, from where the old one started.
        Some(tail) => {
            spec.journal_id = random_id();
            (next_id(tail.id)?, tail.next_base, 0, 0)
        }
        None => {
            spec.journal_id = random_id();
            (1, 0, 0, 0)
        }
    };
    // Not prefaulted here: opening should not wait for it, and the writer's helper thread
    // maps pages ahead of the first appends.
    let mut writer = spec.create_pending(id, false)?;
    writer.link(base, previous, checksum);
    Ok((Active { writer, id }, spec, report))
}

/// The first sequence number of the segment after segment `id`, whose records end at
/// `records_end`: the one its seal's trailer names (lower after a truncation, higher after a
/// skip), or `records_end` for an empty trailer. A malformed trailer is a broken chain.
pub(crate) fn check_trailer(
    trailer: &[u8],
    records_end: u64,
    dir: &Path,
    id: u64,
) -> Result<u64, JournalError> {
    match segment::parse_trailer(trailer) {
        Ok(named) => Ok(named.unwrap_or(records_end)),
        Err(reason) => Err(JournalError::BrokenChain {
            segment: segment::segment_path(dir, id),
            reason,
        }),
    }
}

/// A journal id unlikely to repeat: the standard library's randomly keyed hasher over the
/// time and the process id.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    h.finish() | 1
}
