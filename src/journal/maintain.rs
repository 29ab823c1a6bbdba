//! Working on a journal without appending to it: verify every record, gather statistics,
//! repair a torn tail, prune old segments. What the `kekbit` command-line tool runs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::helper::Pool;
use super::journal::{lock_journal, LOCK_FILE};
use super::recovery;
use super::scan::{self, scan, Stop};
use super::segment;
use super::truncate;
use super::{JournalError, OpenReport, PruneReport, RecoveryMode};
use crate::core::Reader;

/// A problem [`verify`] found: damage, or a segment that does not fit the chain.
///
/// ```
/// let problem = kekbit::journal::Problem::default();
/// assert_eq!(problem.offset, None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The segment's id.
    pub segment: u64,
    /// The segment's file.
    pub path: PathBuf,
    /// Data-area offset of the damage, when it is a damaged record.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
    /// Sequence number of the first record lost to a damaged record, when it is one.
    pub first_sequence_lost: Option<u64>,
    /// Records lost to a damaged record (`first_sequence_lost` onwards), when known:
    /// reading resumed at the segment's next resynchronisation mark, or the segment's seal
    /// names where its records end.
    pub records_lost: Option<u64>,
}

/// The verdict of [`verify`].
///
/// ```
/// use kekbit::journal::VerifyStatus;
/// assert_eq!(VerifyStatus::TornTail.exit_code(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyStatus {
    /// Every record verifies and the chain holds.
    Clean,
    /// Only a torn tail: bytes after the last valid record of the last segment, above its
    /// durable watermark, left by a crashed writer. Nothing acknowledged is lost;
    /// [`repair`] or opening the journal drops it.
    TornTail,
    /// Damage elsewhere, or a missing, swapped or foreign segment.
    Corrupt,
}

impl VerifyStatus {
    /// The `kekbit verify` exit status: 0 clean, 1 torn tail only, 2 corruption.
    ///
    /// ```
    /// use kekbit::journal::VerifyStatus;
    /// assert_eq!(VerifyStatus::Clean.exit_code(), 0);
    /// assert_eq!(VerifyStatus::Corrupt.exit_code(), 2);
    /// ```
    pub fn exit_code(self) -> u8 {
        match self {
            VerifyStatus::Clean => 0,
            VerifyStatus::TornTail => 1,
            VerifyStatus::Corrupt => 2,
        }
    }
}

/// What [`verify`] found.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
/// journal.append(b"x").unwrap();
/// let report = kekbit::journal::verify(dir.path(), &mut |_, _| {}).unwrap();
/// assert_eq!(report.records, 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segment files checked.
    pub segments: u64,
    /// Valid records, not counting those a truncation discarded
    /// ([`Journal::truncate_from`](super::Journal::truncate_from)).
    pub records: u64,
    /// Bytes the valid records occupy in the segments, framing (record headers and padding)
    /// included, and records a truncation discarded: not the size of the files.
    pub record_bytes: u64,
    /// Sequence number of the first valid record.
    pub first_sequence: Option<u64>,
    /// Sequence number of the last valid record.
    pub last_sequence: Option<u64>,
    /// Bytes of torn tail.
    pub torn_tail_bytes: u64,
    /// Everything else that is wrong.
    pub problems: Vec<Problem>,
    /// Whether a writer holds the journal (its tail is then still being written and is not
    /// judged torn).
    pub writer_active: bool,
}

impl VerifyReport {
    /// The verdict.
    ///
    /// ```
    /// use kekbit::journal::{VerifyReport, VerifyStatus};
    /// assert_eq!(VerifyReport::default().status(), VerifyStatus::Clean);
    /// ```
    pub fn status(&self) -> VerifyStatus {
        if !self.problems.is_empty() {
            VerifyStatus::Corrupt
        } else if self.torn_tail_bytes > 0 {
            VerifyStatus::TornTail
        } else {
            VerifyStatus::Clean
        }
    }
}

/// Statistics of a journal, from [`stats`].
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
/// journal.append(b"x").unwrap();
/// let stats = kekbit::journal::stats(dir.path()).unwrap();
/// assert_eq!((stats.records, stats.writer_active), (1, true));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalStats {
    /// Segment files (prepared ones not counted).
    pub segments: u64,
    /// Sequence numbers from the first to the last: the records held, except that numbers
    /// a journal skipped ([`Journal::skip_to`](super::Journal::skip_to)) count although they
    /// hold no record ([`verify`] counts records exactly, reading them all).
    pub records: u64,
    /// Bytes of the segment files: the sum of their lengths, segments prepared ahead
    /// included. Not the bytes of records (see [`VerifyReport::record_bytes`]).
    pub file_bytes: u64,
    /// Sequence number of the first record held.
    pub first_sequence: Option<u64>,
    /// Sequence number of the last record.
    pub last_sequence: Option<u64>,
    /// When the first segment held was created (the creation time in its header). A file
    /// time: records carry no time of their own.
    pub first_segment_created: Option<SystemTime>,
    /// When the last segment was last written: its file's modification time, or its
    /// creation time, whichever is later. A file time, not a record's.
    pub last_written: Option<SystemTime>,
    /// Whether a writer holds the journal.
    pub writer_active: bool,
}

/// Whether a writer holds the journal in `dir`.
fn writer_active(dir: &Path) -> bool {
    match File::open(dir.join(LOCK_FILE)) {
        Ok(file) => crate::mmap::lock_held(&file).unwrap_or(false),
        Err(_) => false,
    }
}

/// The linked segments of the journal in `dir` (pending ones at the end left out), or
/// [`JournalError::NotAJournal`] if there are none.
fn linked_segments(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut ids = segment::list(dir)?;
    while let Some(&last) = ids.last() {
        match segment::header(dir, last) {
            Ok(h) if h.is_pending() => {
                ids.pop();
            }
            _ => break,
        }
    }
    if ids.is_empty() {
        return Err(JournalError::NotAJournal {
            dir: dir.to_path_buf(),
        });
    }
    Ok(ids)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Checks every record of every segment of the journal in `dir`, and the chain that links
/// them, without changing anything. `progress(done, total)` is called after each segment
/// with bytes of segment files checked so far and in all. An error only when `dir` holds no
/// journal or cannot be read; damage is reported in the [`VerifyReport`].
///
/// ```
/// use kekbit::journal::{verify, Journal, VerifyStatus};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::open(dir.path()).unwrap();
/// journal.append(b"a").unwrap();
/// drop(journal);
/// let report = verify(dir.path(), &mut |done, total| assert!(done <= total)).unwrap();
/// assert_eq!(report.status(), VerifyStatus::Clean);
/// assert_eq!((report.first_sequence, report.last_sequence), (Some(0), Some(0)));
/// ```
pub fn verify(
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, JournalError> {
    let ids = linked_segments(dir)?;
    let mut report = VerifyReport {
        writer_active: writer_active(dir),
        ..VerifyReport::default()
    };
    let total: u64 = ids
        .iter()
        .map(|&id| file_len(&segment::segment_path(dir, id)))
        .sum();
    let mut done = 0;
    let mut readable = 0;
    // (id, next sequence number, seal checksum if sealed, journal id) of the previous one.
    let mut previous: Option<(u64, u64, Option<u32>, u64)> = None;
    let mut spans = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let path = segment::segment_path(dir, id);
        let is_last = i + 1 == ids.len();
        let problem = |offset, reason: String| Problem {
            segment: id,
            path: path.clone(),
            offset,
            reason,
            ..Problem::default()
        };
        report.segments += 1;
        done += file_len(&path);
        if let Some((prev, ..)) = previous {
            if id != prev + 1 {
                report.problems.push(Problem {
                    segment: prev + 1,
                    path: segment::segment_path(dir, prev + 1),
                    offset: None,
                    reason: format!("segment {} is missing", prev + 1),
                    ..Problem::default()
                });
                previous = None;
            }
        }
        let mut found = match scan(dir, id) {
            Ok(found) => {
                readable += 1;
                found
            }
            Err(e) => {
                report.problems.push(problem(None, e.to_string()));
                previous = None;
                progress(done, total);
                continue;
            }
        };
        let header = &found.header;
        let base = header.base_sequence();
        if header.channel_id() != id {
            report.problems.push(problem(
                None,
                format!(
                    "file is named for segment {id} but its header says {}",
                    header.channel_id()
                ),
            ));
        }
        if let Some((prev, next_seq, seal, journal_id)) = previous {
            let link = seal.map(|previous_checksum| segment::Link {
                journal_id,
                previous_id: prev,
                base: next_seq,
                previous_checksum,
            });
            if let Some(link) = link {
                if let Err(e) = segment::check_link(header, &link, &path) {
                    report.problems.push(problem(None, e.to_string()));
                }
            }
        }
        let durable = found.reader.durable_position();
        let torn = |position| is_last && position >= durable;
        // Past each damaged record (not in a torn tail), reading resumes at the segment's
        // next resynchronisation mark, and the records lost in between are reported exactly.
        while let Stop::Open {
            position,
            damage: Some(e),
        } = &found.stop
        {
            if torn(*position) {
                break;
            }
            let first_lost = base + found.reader.ordinal();
            let Some(resumed) = found.reader.resync() else {
                break;
            };
            report.problems.push(Problem {
                first_sequence_lost: Some(first_lost),
                records_lost: Some(resumed.resumed - resumed.first_lost),
                ..problem(Some(*position), e.to_string())
            });
            found.stop = scan::read_on(&mut found.reader, &mut found.records);
        }
        let end = base + found.reader.ordinal();
        match found.stop {
            Stop::Sealed { trailer, checksum } => {
                report.record_bytes += found.reader.position();
                let next = match recovery::check_trailer(&trailer, end, dir, id) {
                    Ok(next) => next,
                    Err(e) => {
                        report.problems.push(problem(None, e.to_string()));
                        end
                    }
                };
                spans.push(Span {
                    base,
                    end,
                    next,
                    records: found.records,
                });
                previous = Some((id, next, Some(checksum), header.writer_id()));
            }
            Stop::Open { position, damage } => {
                report.record_bytes += position;
                let extent = found.reader.written_extent(position);
                if torn(position) {
                    if !report.writer_active {
                        report.torn_tail_bytes = extent - position;
                    }
                } else {
                    let why = match (&damage, is_last) {
                        (Some(e), _) => e.to_string(),
                        (None, true) => format!(
                            "records end at offset {position}, below the durable watermark {durable}"
                        ),
                        (None, false) => "segment is not sealed but another follows it".into(),
                    };
                    let first_lost = base + found.reader.ordinal();
                    let sealed = found.reader.located_closing();
                    let records_lost = sealed
                        .and_then(|(_, trailer, _)| segment::parse_trailer(&trailer).ok()?)
                        .map(|next| next.saturating_sub(first_lost));
                    report.problems.push(Problem {
                        first_sequence_lost: damage.is_some().then_some(first_lost),
                        records_lost: records_lost.filter(|_| damage.is_some()),
                        ..problem(Some(position), why)
                    });
                }
                spans.push(Span {
                    base,
                    end,
                    next: end,
                    records: found.records,
                });
                previous = Some((id, end, None, header.writer_id()));
            }
        }
        progress(done, total);
    }
    if readable == 0 {
        // Files named like segments, none of which is one.
        return Err(JournalError::NotAJournal {
            dir: dir.to_path_buf(),
        });
    }
    count_live(&spans, &mut report);
    Ok(report)
}

/// What [`verify`] read of one segment: its records' sequence numbers `base..end`, how many
/// of them were valid, and the sequence number its seal names next (`end` when open).
struct Span {
    base: u64,
    end: u64,
    next: u64,
    records: u64,
}

/// Counts the records that count: a record at sequence number `s` in a segment is
/// discarded when this segment's seal or a later one names a next sequence number at or
/// below `s` (a truncating link, docs/FORMAT.md "Truncating the tail").
fn count_live(spans: &[Span], report: &mut VerifyReport) {
    let mut limit = u64::MAX;
    let mut live = vec![(0, 0); spans.len()];
    for (i, span) in spans.iter().enumerate().rev() {
        limit = limit.min(span.next);
        let kept_end = span.end.min(limit).max(span.base);
        let discarded = span.end - kept_end;
        live[i] = (span.records.saturating_sub(discarded), kept_end);
    }
    for (span, &(records, kept_end)) in spans.iter().zip(&live) {
        if records > 0 {
            report.first_sequence.get_or_insert(span.base);
            report.last_sequence = Some(kept_end - 1);
        }
        report.records += records;
    }
}

/// Statistics of the journal in `dir`. Reads the segment headers and the last segment.
///
/// ```
/// use kekbit::journal::{stats, Journal};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::open(dir.path()).unwrap();
/// journal.append(b"a").unwrap();
/// journal.append(b"b").unwrap();
/// let s = stats(dir.path()).unwrap();
/// assert_eq!((s.first_sequence, s.last_sequence, s.segments), (Some(0), Some(1), 1));
/// ```
pub fn stats(dir: &Path) -> Result<JournalStats, JournalError> {
    let ids = linked_segments(dir)?;
    let first_id = ids[0];
    let last_id = ids[ids.len() - 1];
    let first = segment::header(dir, first_id)?;
    let last = scan(dir, last_id)?;
    let next = last.header.base_sequence() + last.records;
    let first_seq = first.base_sequence();
    let stamp = |header: &crate::core::Header| {
        UNIX_EPOCH.checked_add(header.tick_unit().duration(header.creation_time()))
    };
    let last_path = segment::segment_path(dir, last_id);
    let modified = std::fs::metadata(&last_path)
        .and_then(|m| m.modified())
        .ok();
    let file_bytes = segment::list(dir)?
        .iter()
        .map(|&id| file_len(&segment::segment_path(dir, id)))
        .sum();
    Ok(JournalStats {
        segments: ids.len() as u64,
        records: next.saturating_sub(first_seq),
        file_bytes,
        first_sequence: (next > first_seq).then_some(first_seq),
        last_sequence: next.checked_sub(1).filter(|&l| l >= first_seq),
        first_segment_created: stamp(&first),
        last_written: stamp(&last.header).max(modified),
        writer_active: writer_active(dir),
    })
}

/// Repairs the journal in `dir` after a crash, without appending: seals a torn tail at the
/// last valid record (so that the torn bytes are never read), removes segments prepared
/// ahead and never used, and settles an interrupted rollover, as opening the journal would.
/// Refuses with [`JournalError::Locked`] while a writer holds the journal. Files are never
/// shrunk. Damage below the durable watermark (acknowledged records) is an error, not
/// something to repair.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
/// assert!(matches!(kekbit::journal::repair(dir.path()), Err(kekbit::journal::JournalError::Locked { .. })));
/// drop(journal);
/// let report = kekbit::journal::repair(dir.path()).unwrap();
/// assert_eq!(report.torn_bytes_dropped, 0);
/// ```
pub fn repair(dir: &Path) -> Result<OpenReport, JournalError> {
    // Without a segment file there is nothing to repair, and no lock file is left behind.
    if !dir.is_dir() || segment::list(dir)?.is_empty() {
        return Err(JournalError::NotAJournal {
            dir: dir.to_path_buf(),
        });
    }
    let _lock = lock_journal(dir)?;
    let mut report = OpenReport::default();
    if recovery::settle(dir, RecoveryMode::TolerateTornTail, &mut report)?.is_none() {
        return Err(JournalError::NotAJournal {
            dir: dir.to_path_buf(),
        });
    }
    Ok(report)
}

/// Removes the oldest segments of the journal in `dir` whose records all have sequence
/// numbers below `before`; never the last segment (a writer may be appending to it).
/// Readers that have a removed segment open keep reading it. The directory is synced.
///
/// ```
/// use kekbit::journal::{prune, Durability, Journal};
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::options().segment_capacity(4096).durability(Durability::Never).open(dir.path()).unwrap();
/// for _ in 0..20 {
///     journal.append(&[1u8; 1000]).unwrap(); // four records per segment
/// }
/// drop(journal);
/// assert_eq!(prune(dir.path(), 8).unwrap().segments_removed, 2);
/// ```
pub fn prune(dir: &Path, before: u64) -> Result<PruneReport, JournalError> {
    let ids = linked_segments(dir)?;
    prune_segments(dir, before, ids[ids.len() - 1], None, None)
}

/// Removes segments below `keep_from` (an id) whose records are all below `before`; with a
/// `pool`, takes as many of them as it has room for to be recycled instead (docs/FORMAT.md,
/// "Recycled segments"), and hands them to it once the directory is synced. First makes the
/// header of every segment that it leaves first, for a moment or for good, durable
/// (docs/FORMAT.md, "Pruning"), except those whose id is at most `head_synced`: the highest
/// this journal made durable so (a linked header is never rewritten, and every segment
/// below that one left was made durable too), which it then raises.
pub(crate) fn prune_segments(
    dir: &Path,
    before: u64,
    keep_from: u64,
    pool: Option<&Pool>,
    head_synced: Option<&AtomicU64>,
) -> Result<PruneReport, JournalError> {
    let chain = truncate::linked(dir)?;
    let limits = truncate::limits(&chain);
    // How many of the oldest segments go.
    let mut going = 0;
    for (i, pair) in chain.windows(2).enumerate() {
        let (segment, next) = (pair[0], pair[1]);
        if segment.id >= keep_from || next.id != segment.id + 1 {
            break;
        }
        // Its records count up to the lowest first sequence number after it (a truncation
        // voids the rest): it goes when they all lie below `before`, or when none counts.
        let end = limits[i];
        if end > before && end > segment.base {
            break;
        }
        going += 1;
    }
    let mut report = PruneReport::default();
    // Each segment kept or removed after the first is, for a moment, the first one left:
    // its link must be on storage before the removal of those before it can be.
    let synced = head_synced.map_or(0, |s| s.load(Ordering::Relaxed));
    for link in chain.iter().take(going + 1).skip(1) {
        if link.id <= synced {
            continue;
        }
        let path = segment::segment_path(dir, link.id);
        crate::core::sync_header(&path).map_err(|source| JournalError::Io {
            path,
            action: "syncing the header of a segment that a prune leaves first",
            source,
        })?;
        if let Some(head) = head_synced {
            head.store(link.id, Ordering::Relaxed);
        }
    }
    let mut room = pool.map_or(0, Pool::room);
    let mut taken = Vec::new();
    for segment in &chain[..going] {
        let recycled = match pool {
            Some(pool) if room > 0 => pool.take(&segment::segment_path(dir, segment.id)),
            _ => None,
        };
        match recycled {
            Some(pooled) => {
                taken.push(pooled);
                room -= 1;
            }
            None => recovery::remove(dir, segment.id)?,
        }
        report.segments_removed += 1;
    }
    if report.segments_removed > 0 {
        crate::core::sync_directory(dir)?;
    }
    if let Some(pool) = pool {
        pool.fill(taken);
    }
    if let Some(&first) = segment::list(dir)?.first() {
        report.first_sequence = segment::header(dir, first)?.base_sequence();
    }
    Ok(report)
}
