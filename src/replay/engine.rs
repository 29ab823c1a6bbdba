//! Replaying a journal into application code.

use std::path::Path;

use super::{CorruptRange, RecoveryReport};
use crate::journal::{JournalError, JournalReader, RecoveryMode};

/// The application side of a replay: a callback per record and, under
/// [`RecoveryMode::SkipCorrupt`], a decision per damaged range.
///
/// ```
/// use kekbit::replay::{CorruptRange, Decision, Replay};
///
/// /// Sums little-endian u64 records.
/// struct Sum(u64);
/// impl Replay for Sum {
///     type Error = std::array::TryFromSliceError;
///     fn record(&mut self, _seq: u64, record: &[u8]) -> Result<(), Self::Error> {
///         self.0 += u64::from_le_bytes(record.try_into()?);
///         Ok(())
///     }
///     fn damaged(&mut self, range: &CorruptRange) -> Decision {
///         eprintln!("skipping {:?} records from {}: {}", range.records_lost, range.first_sequence_lost, range.reason);
///         Decision::Skip
///     }
/// }
/// ```
pub trait Replay {
    /// The application's error; it stops the replay.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Applies record `seq`.
    fn record(&mut self, seq: u64, record: &[u8]) -> Result<(), Self::Error>;

    /// Decides what to do with a damaged range, under `SkipCorrupt` only. Defaults to
    /// [`Decision::Skip`].
    ///
    /// ```
    /// use kekbit::replay::{CorruptRange, Decision, Replay};
    /// struct Strict;
    /// impl Replay for Strict {
    ///     type Error = std::convert::Infallible;
    ///     fn record(&mut self, _: u64, _: &[u8]) -> Result<(), Self::Error> { Ok(()) }
    ///     fn damaged(&mut self, _: &CorruptRange) -> Decision { Decision::Fail }
    /// }
    /// assert_eq!(Strict.damaged(&CorruptRange::default()), Decision::Fail);
    /// ```
    fn damaged(&mut self, range: &CorruptRange) -> Decision {
        let _ = range;
        Decision::Skip
    }
}

/// What to do with a damaged range.
///
/// ```
/// assert_ne!(kekbit::replay::Decision::Skip, kekbit::replay::Decision::Fail);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Skip it and continue with the next segment.
    Skip,
    /// Stop the replay with [`ReplayError::Damaged`].
    Fail,
}

/// Errors of a replay.
///
/// ```
/// use kekbit::journal::RecoveryMode;
/// use kekbit::replay::{replay, Replay, ReplayError};
/// struct Refuse;
/// impl Replay for Refuse {
///     type Error = std::io::Error;
///     fn record(&mut self, _: u64, _: &[u8]) -> Result<(), Self::Error> {
///         Err(std::io::Error::other("no"))
///     }
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let journal = kekbit::journal::Journal::open(dir.path()).unwrap();
/// journal.append(b"x").unwrap();
/// let err = replay(dir.path(), 0, RecoveryMode::TolerateTornTail, &mut Refuse).unwrap_err();
/// assert!(matches!(err, ReplayError::Application { seq: 0, .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// Reading the journal failed, or found damage the recovery mode does not allow.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The application refused a record.
    #[error("replaying record {seq} failed: {source}")]
    Application {
        /// The record's sequence number.
        seq: u64,
        /// The application's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The application chose [`Decision::Fail`] for a damaged range.
    #[error("{}: damaged range at offset {} ({} bytes): {}", range.path.display(), range.offset, range.length, range.reason)]
    Damaged {
        /// The range.
        range: CorruptRange,
    },
}

/// Replays the journal in `dir` from sequence number `from` into `target`, in order, and
/// reports what it did.
///
/// Damage is handled by `mode`: under [`RecoveryMode::TolerateTornTail`] a damaged record at
/// the end of the last segment, above its durable watermark (never acknowledged), ends the
/// replay and is reported as a torn tail, while damage anywhere else is an error; under
/// [`RecoveryMode::AbsoluteConsistency`] any damage is an error; under
/// [`RecoveryMode::SkipCorrupt`] a damaged segment's remaining records are skipped (after
/// [`Replay::damaged`] agrees), the replay continues with the next segment, and each range
/// is reported. Records removed by pruning while the replay runs are not damage: under every
/// mode the replay stops with [`JournalError::Pruned`].
///
/// ```
/// use kekbit::journal::{Journal, RecoveryMode};
/// use kekbit::replay::{replay, Replay};
///
/// struct Collect(Vec<(u64, Vec<u8>)>);
/// impl Replay for Collect {
///     type Error = std::convert::Infallible;
///     fn record(&mut self, seq: u64, record: &[u8]) -> Result<(), Self::Error> {
///         self.0.push((seq, record.to_vec()));
///         Ok(())
///     }
/// }
/// let dir = tempfile::tempdir().unwrap();
/// let journal = Journal::open(dir.path()).unwrap();
/// for word in ["a", "b", "c"] {
///     journal.append(word.as_bytes()).unwrap();
/// }
/// let mut seen = Collect(Vec::new());
/// replay(dir.path(), 1, RecoveryMode::TolerateTornTail, &mut seen).unwrap();
/// assert_eq!(seen.0, [(1, b"b".to_vec()), (2, b"c".to_vec())]);
/// ```
pub fn replay<R: Replay>(
    dir: &Path,
    from: u64,
    mode: RecoveryMode,
    target: &mut R,
) -> Result<RecoveryReport, ReplayError> {
    let mut report = RecoveryReport::default();
    let mut reader = JournalReader::open(dir, from)?;
    let mut segment = None;
    loop {
        match reader.try_next() {
            Ok(Some((seq, record))) => {
                target
                    .record(seq, record)
                    .map_err(|e| ReplayError::Application {
                        seq,
                        source: Box::new(e),
                    })?;
                if reader.segment_id() != segment {
                    segment = reader.segment_id();
                    report.segments_read += 1;
                }
                report.records_replayed += 1;
                report.first_sequence.get_or_insert(seq);
                report.last_sequence = Some(seq);
            }
            Ok(None) => return Ok(report),
            Err(damage @ (JournalError::Corrupt { .. } | JournalError::Unsealed { .. })) => {
                let Some(at) = reader.damage_context()? else {
                    return Err(damage.into());
                };
                let torn = at.is_last && at.offset >= at.durable;
                if torn && mode == RecoveryMode::TolerateTornTail {
                    report.torn_bytes_dropped += at.extent.saturating_sub(at.offset);
                    return Ok(report);
                }
                if mode != RecoveryMode::SkipCorrupt {
                    return Err(damage.into());
                }
                let first_lost = reader.next_sequence();
                // Inside the segment, reading resumes at the next resynchronisation mark;
                // never in a torn tail, which recovery cuts whatever follows it.
                if !torn {
                    if let Some((first, resumed, position)) = reader.resync() {
                        if resumed > first {
                            let range = CorruptRange {
                                segment: at.segment,
                                path: at.path,
                                offset: at.offset,
                                length: position - at.offset,
                                first_sequence_lost: first,
                                records_lost: Some(resumed - first),
                                reason: damage.to_string(),
                                whole_segment: false,
                            };
                            skip(target, &mut report, range)?;
                        }
                        continue;
                    }
                }
                let sealed_end = reader.sealed_end();
                let next = reader.skip_segment()?;
                let range = CorruptRange {
                    segment: at.segment,
                    path: at.path,
                    offset: at.offset,
                    length: at.extent.saturating_sub(at.offset),
                    first_sequence_lost: first_lost,
                    records_lost: next
                        .or(sealed_end)
                        .map(|end| end.saturating_sub(first_lost)),
                    reason: damage.to_string(),
                    whole_segment: false,
                };
                skip(target, &mut report, range)?;
                if next.is_none() {
                    return Ok(report);
                }
            }
            // A segment that cannot be opened, or does not fit the chain: skipped whole.
            Err(
                damage @ (JournalError::Channel(_)
                | JournalError::BrokenChain { .. }
                | JournalError::MissingSegment { .. }),
            ) if mode == RecoveryMode::SkipCorrupt => {
                let first_lost = reader.next_sequence();
                let (segment, next) = reader.skip_broken()?;
                let path = crate::core::storage_path(dir, segment);
                let range = CorruptRange {
                    segment,
                    length: std::fs::metadata(&path).map_or(0, |m| m.len()),
                    path,
                    offset: 0,
                    first_sequence_lost: first_lost,
                    records_lost: next.map(|base| base.saturating_sub(first_lost)),
                    reason: damage.to_string(),
                    whole_segment: true,
                };
                skip(target, &mut report, range)?;
                if next.is_none() {
                    return Ok(report);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Asks the application about a damaged range the replay is about to skip, and records it;
/// an error when the application refuses to go on.
fn skip<R: Replay>(
    target: &mut R,
    report: &mut RecoveryReport,
    range: CorruptRange,
) -> Result<(), ReplayError> {
    if target.damaged(&range) == Decision::Fail {
        return Err(ReplayError::Damaged { range });
    }
    report.corrupt_ranges.push(range);
    Ok(())
}
