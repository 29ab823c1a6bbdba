//! Opening a journal for appending: find the tail, handle what a crash left there, and
//! prepare the segment appends continue in. Only the last segment (and, after a crash during
//! a rollover, the one before it) is read: sealed segments are not scanned, so opening costs
//! the same however long the journal is.

use std::fs::File;
use std::path::Path;

use super::helper::SegmentSpec;
use super::segment::{self, Link};
use super::{DroppedRange, JournalError, OpenReport, RecoveryMode};
use crate::core::{
    closing_checksum, frame_len, mark_durable, resume_for_seal, EncoderHandler, Header, ReadError,
    Reader, ShmReader, ShmWriter,
};
use crate::fault::{self, IoOp};

/// The segment appends continue in.
pub(crate) struct Active {
    pub(crate) writer: ShmWriter<EncoderHandler>,
    pub(crate) id: u64,
}

/// How reading a segment from its start ended.
pub(crate) enum Stop {
    /// Sealed: the marker's trailer and checksum.
    Sealed { trailer: Vec<u8>, checksum: u32 },
    /// No marker: valid records end at `position`; `damage` if what follows is damaged.
    Open {
        position: u64,
        damage: Option<ReadError>,
    },
}

/// A segment read from its start: its header, record count and how it ended.
pub(crate) struct Scan {
    pub(crate) header: Header,
    pub(crate) reader: ShmReader,
    pub(crate) records: u64,
    pub(crate) stop: Stop,
}

pub(crate) fn scan(dir: &Path, id: u64) -> Result<Scan, JournalError> {
    let mut reader = ShmReader::open(segment::segment_path(dir, id))?;
    let mut records = 0;
    let stop = loop {
        match reader.try_read() {
            Ok(Some(_)) => records += 1,
            Ok(None) => {
                break Stop::Open {
                    position: reader.position(),
                    damage: None,
                }
            }
            Err(ReadError::Closed { .. }) => {
                let (trailer, checksum) = reader.closing().expect("closed reader has a marker");
                break Stop::Sealed {
                    trailer: trailer.to_vec(),
                    checksum,
                };
            }
            Err(e) => {
                break Stop::Open {
                    position: reader.position(),
                    damage: Some(e),
                }
            }
        }
    };
    Ok(Scan {
        header: reader.header().clone(),
        reader,
        records,
        stop,
    })
}

/// Removes temporary files left by creators that died (those nobody holds locked).
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
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
    pub(crate) journal_id: u64,
    pub(crate) id: u64,
    /// First sequence number of the segment that follows.
    pub(crate) next_base: u64,
    /// Checksum of the tail's seal.
    pub(crate) checksum: u32,
}

/// Brings the journal in `dir` to a clean state without creating anything: removes stray
/// temporaries, pending segments and orphans of an interrupted rollover, and seals a crashed
/// writer's tail at its last valid record (dropping the torn bytes as `mode` allows). The
/// caller holds the journal lock. `None` when the journal has no segment.
pub(crate) fn settle(
    dir: &Path,
    mode: RecoveryMode,
    report: &mut OpenReport,
) -> Result<Option<Tail>, JournalError> {
    if mode == RecoveryMode::AbsoluteConsistency {
        // Refuse before changing anything: the journal is left as it is for inspection.
        check_untouched_tail(dir)?;
    }
    remove_stale_temporaries(dir);
    let mut ids = segment::list(dir)?;
    report.segments = ids.len();

    // Segments prepared ahead and never linked hold no acknowledged record: remove them.
    while let Some(&last) = ids.last() {
        if !segment::header(dir, last)?.is_pending() {
            break;
        }
        remove(dir, last)?;
        ids.pop();
        report.pending_removed += 1;
    }
    let Some(&last) = ids.last() else {
        return Ok(None);
    };
    let journal_id = segment::header(dir, last)?.writer_id();

    let mut tail = last;
    if ids.len() >= 2 && ids[ids.len() - 2] == last - 1 {
        tail = settle_rollover(dir, last, mode, report)?;
    }
    let Scan {
        header,
        reader,
        records,
        stop,
    } = scan(dir, tail)?;
    let next_base = header.base_sequence() + records;
    let checksum = match stop {
        Stop::Sealed { trailer, checksum } => {
            check_trailer(&trailer, next_base, dir, tail)?;
            checksum
        }
        Stop::Open { position, damage } => {
            let extent = reader.written_extent(position);
            let torn = extent - position;
            let durable = reader.durable_position();
            if position < durable && mode != RecoveryMode::SkipCorrupt {
                return Err(match damage {
                    Some(source) => JournalError::Corrupt { source },
                    None => JournalError::BrokenChain {
                        segment: segment::segment_path(dir, tail),
                        reason: format!(
                            "records end at offset {position}, below the durable watermark \
                             {durable}: acknowledged records are missing"
                        ),
                    },
                });
            }
            if torn > 0 && mode == RecoveryMode::AbsoluteConsistency {
                return Err(JournalError::TornTail {
                    segment: segment::segment_path(dir, tail),
                    position,
                    bytes: torn,
                    mode: mode_name(mode),
                });
            }
            drop(reader);
            let path = segment::segment_path(dir, tail);
            let sealer = resume_for_seal(&path, position)?;
            let checksum = sealer
                .close_with_trailer(&segment::trailer(next_base))
                .map_err(|e| JournalError::Io {
                    path: path.clone(),
                    action: "sealing the recovered tail",
                    source: std::io::Error::other(e),
                })?;
            if position < durable {
                // Only SkipCorrupt gets here: acknowledged records are dropped, which is
                // damage, not a torn tail.
                report.damage_dropped.push(DroppedRange {
                    segment: tail,
                    path: path.clone(),
                    offset: position,
                    length: torn,
                    first_sequence_lost: next_base,
                    reason: match &damage {
                        Some(e) => e.to_string(),
                        None => format!(
                            "records end at offset {position}, below the durable watermark {durable}"
                        ),
                    },
                });
            } else {
                report.torn_bytes_dropped += torn;
            }
            report.sealed_segment = Some(tail);
            checksum
        }
    };
    // Everything recovered is made durable, and recorded so in the watermarks, before
    // anything follows it.
    make_recovered_durable(dir, tail)?;
    report.next_sequence = next_base;
    Ok(Some(Tail {
        journal_id,
        id: tail,
        next_base,
        checksum,
    }))
}

/// Makes every record of the sealed segments up to `tail` durable. The tail is synced
/// whatever its watermark says (recovery may just have sealed it); then, walking back, each
/// segment whose watermark does not cover its seal is synced and its watermark advanced,
/// until one that is already durable: a sync writes sealed segments oldest first, so
/// everything before a durable seal is durable too.
fn make_recovered_durable(dir: &Path, tail: u64) -> Result<(), JournalError> {
    mark_segment_durable(dir, tail)?;
    let mut id = tail;
    while id > 1 {
        id -= 1;
        if !segment::segment_path(dir, id).exists() || !mark_segment_durable(dir, id)? {
            break;
        }
    }
    Ok(())
}

/// Syncs sealed segment `id` and advances its watermark past its seal; `false` if it was
/// already durable.
fn mark_segment_durable(dir: &Path, id: u64) -> Result<bool, JournalError> {
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
                        reason: "segment is followed by another but is not sealed".into(),
                    })
                }
            }
        }
    };
    if ShmReader::open(&path)?.durable_position() >= end {
        return Ok(false);
    }
    mark_durable(&path, end)?;
    Ok(true)
}

/// Settles the journal (see [`settle`]) and creates the segment appends continue in: a
/// sealed segment is never written again.
pub(crate) fn recover(
    mut spec: SegmentSpec,
    mode: RecoveryMode,
) -> Result<(Active, SegmentSpec, OpenReport), JournalError> {
    let mut report = OpenReport::default();
    let (id, base, previous, checksum) = match settle(&spec.dir, mode, &mut report)? {
        Some(tail) => {
            spec.journal_id = tail.journal_id;
            (tail.id + 1, tail.next_base, tail.id, tail.checksum)
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

/// For [`RecoveryMode::AbsoluteConsistency`]: fails, without changing anything, if opening
/// would have to repair the tail: a torn or damaged tail, or a rollover a crash
/// interrupted (the last segment's predecessor unsealed).
fn check_untouched_tail(dir: &Path) -> Result<(), JournalError> {
    let mut ids = segment::list(dir)?;
    while let Some(&last) = ids.last() {
        if !segment::header(dir, last)?.is_pending() {
            break;
        }
        ids.pop();
    }
    let Some(&tail) = ids.last() else {
        return Ok(());
    };
    if ids.len() >= 2 && ids[ids.len() - 2] == tail - 1 {
        if let Stop::Open { position, .. } = scan(dir, tail - 1)?.stop {
            return Err(JournalError::BrokenChain {
                segment: segment::segment_path(dir, tail - 1),
                reason: format!(
                    "segment ends at offset {position} without a seal but segment {tail} \
                     follows (a rollover was interrupted)"
                ),
            });
        }
    }
    let found = scan(dir, tail)?;
    if let Stop::Open { position, damage } = found.stop {
        if position < found.reader.durable_position() {
            if let Some(source) = damage {
                return Err(JournalError::Corrupt { source });
            }
        }
        let torn = found.reader.written_extent(position) - position;
        if torn > 0 {
            return Err(JournalError::TornTail {
                segment: segment::segment_path(dir, tail),
                position,
                bytes: torn,
                mode: mode_name(RecoveryMode::AbsoluteConsistency),
            });
        }
    }
    Ok(())
}

/// After a crash during a rollover the last segment may be linked while its predecessor was
/// never sealed (the seal did not reach storage). Returns the segment to recover as the
/// tail: `last` when the chain holds (re-sealing the predecessor exactly as it was), or the
/// predecessor when `last` is an orphan holding no acknowledged record (it is removed).
fn settle_rollover(
    dir: &Path,
    last: u64,
    mode: RecoveryMode,
    report: &mut OpenReport,
) -> Result<u64, JournalError> {
    let previous = last - 1;
    let last_header = segment::header(dir, last)?;
    // The usual case, without a scan: the predecessor's seal is where its header says, and
    // it is the one the last segment links to.
    let prev_reader = ShmReader::open(segment::segment_path(dir, previous))?;
    let prev_journal = prev_reader.header().writer_id();
    if prev_journal != last_header.writer_id() {
        return Err(JournalError::BrokenChain {
            segment: segment::segment_path(dir, last),
            reason: format!(
                "segment belongs to journal {:#x}, its predecessor to {prev_journal:#x}",
                last_header.writer_id()
            ),
        });
    }
    let located = prev_reader.located_closing();
    drop(prev_reader);
    if let Some((_, trailer, checksum)) = located {
        // The checksum binds the marker's place and trailer; a marker without a trailer
        // (closed by dropping its writer) was counted when the last segment was linked.
        let named = segment::parse_trailer(&trailer);
        if checksum == last_header.previous_checksum()
            && last_header.previous_channel_id() == previous
            && named.is_ok_and(|n| n.is_none_or(|b| b == last_header.base_sequence()))
        {
            return Ok(last);
        }
    }
    let prev = scan(dir, previous)?;
    let next_base = prev.header.base_sequence() + prev.records;
    let link = |previous_checksum| Link {
        journal_id: prev.header.writer_id(),
        previous_id: previous,
        base: next_base,
        previous_checksum,
    };
    let last_path = segment::segment_path(dir, last);
    match prev.stop {
        Stop::Sealed { checksum, .. } => {
            segment::check_link(&last_header, &link(checksum), &last_path)?;
            Ok(last)
        }
        Stop::Open { position, .. } => {
            let trailer = segment::trailer(next_base);
            if last_header.base_sequence() == next_base
                && closing_checksum(previous, position, &trailer) == last_header.previous_checksum()
            {
                // The seal that was lost is rebuilt exactly: same place, same trailer, so the
                // same checksum the last segment recorded.
                drop(prev);
                let path = segment::segment_path(dir, previous);
                {
                    resume_for_seal(&path, position)?
                        .close_with_trailer(&trailer)
                        .map_err(|e| JournalError::Io {
                            path: path.clone(),
                            action: "re-sealing a segment",
                            source: std::io::Error::other(e),
                        })?;
                    sync_file(&path)?;
                    return Ok(last);
                }
            }
            // The last segment follows a seal that never reached storage, so none of its
            // records was acknowledged (a sync writes the seal first).
            let orphan = ShmReader::open(&last_path)?;
            if orphan.durable_position() > 0 && mode != RecoveryMode::SkipCorrupt {
                return Err(JournalError::BrokenChain {
                    segment: last_path,
                    reason: "segment holds durable records but its predecessor is not sealed"
                        .into(),
                });
            }
            report.torn_bytes_dropped += orphan.written_extent(0);
            drop(orphan);
            remove(dir, last)?;
            report.orphans_removed += 1;
            Ok(previous)
        }
    }
}

pub(crate) fn check_trailer(
    trailer: &[u8],
    next_base: u64,
    dir: &Path,
    id: u64,
) -> Result<(), JournalError> {
    match segment::parse_trailer(trailer) {
        Ok(None) => Ok(()),
        Ok(Some(b)) if b == next_base => Ok(()),
        Ok(Some(b)) => Err(JournalError::BrokenChain {
            segment: segment::segment_path(dir, id),
            reason: format!("seal names next sequence {b}, but the segment ends at {next_base}"),
        }),
        Err(reason) => Err(JournalError::BrokenChain {
            segment: segment::segment_path(dir, id),
            reason,
        }),
    }
}

fn sync_file(path: &Path) -> Result<(), JournalError> {
    fault::run(IoOp::SyncFile(path), || {
        File::open(path).and_then(|f| f.sync_data())
    })
    .map_err(|source| JournalError::Io {
        path: path.to_path_buf(),
        action: "syncing a recovered segment",
        source,
    })
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
