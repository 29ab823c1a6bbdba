//! Exit statuses: one per condition, the same in every command, and the table that documents
//! them (printed by `kekbit --help`, copied in the README; a test keeps the two equal).

use kekbit::core::ChannelError;
use kekbit::journal::{AppendError, JournalError};
use kekbit::replay::ReplayError;

use crate::Failure;

// `verify`'s 0, 1 and 2 are `VerifyStatus::exit_code`; the tests below keep them in line.

/// Success; for `verify`, a clean journal.
pub const OK: u8 = 0;
/// Damage: a corrupt record, a broken chain, a missing or foreign segment.
pub const DAMAGED: u8 = 2;
/// No journal at the path given.
pub const NO_JOURNAL: u8 = 3;
/// The journal is held by another writer.
pub const LOCKED: u8 = 4;
/// An invalid argument or option value.
pub const USAGE: u8 = 5;
/// Any other failure.
pub const FAILED: u8 = 6;
/// `tail --until-closed`: the journal's writer stopped without closing it.
pub const WRITER_GONE: u8 = 7;

/// The table of exit statuses, as `kekbit --help` prints it.
pub const TABLE: &str = "\
Exit status (the same in every command):
  0  success; verify: the journal is clean
  1  verify: a torn tail only (nothing acknowledged is lost; `kekbit repair` seals it)
  2  damage: a corrupt record, a broken segment chain, a missing or foreign segment
  3  no journal at the path given (missing, not a directory, no segment files)
  4  the journal is locked by another writer
  5  usage: an invalid argument or option value
  6  any other failure: reading input, the file system (full disk, permissions), a failed
     sync, a record too large
  7  tail --until-closed: the journal's writer stopped without closing it (it died;
     opening the journal for appending recovers it)
When the reader of standard output goes away (`| head`), dump, tail, verify, stats, repair
and prune stop quietly with the status they had so far; append --ack fails with 6, since
its acknowledgements are lost.";

/// The status for an error opening or reading a channel (a segment).
fn channel(e: &ChannelError) -> u8 {
    match e {
        ChannelError::NotFound { .. } => NO_JOURNAL,
        ChannelError::Locked { .. } => LOCKED,
        ChannelError::InvalidConfig { .. } => USAGE,
        ChannelError::InvalidMagic { .. }
        | ChannelError::HeaderChecksumMismatch { .. }
        | ChannelError::InvalidHeader { .. }
        | ChannelError::Truncated { .. } => DAMAGED,
        _ => FAILED,
    }
}

/// The status for a journal error.
fn journal(e: &JournalError) -> u8 {
    match e {
        JournalError::Locked { .. } => LOCKED,
        JournalError::InvalidOptions { .. } => USAGE,
        JournalError::NotAJournal { .. } => NO_JOURNAL,
        JournalError::Channel(e) => channel(e),
        JournalError::Corrupt { .. }
        | JournalError::TornTail { .. }
        | JournalError::Unsealed { .. }
        | JournalError::MissingSegment { .. }
        | JournalError::BrokenChain { .. } => DAMAGED,
        JournalError::WriterGone { .. } => WRITER_GONE,
        _ => FAILED,
    }
}

impl From<JournalError> for Failure {
    fn from(e: JournalError) -> Failure {
        let code = journal(&e);
        Failure::new(e, code)
    }
}

impl From<AppendError> for Failure {
    fn from(e: AppendError) -> Failure {
        let code = match &e {
            AppendError::Segment(c) => channel(c),
            _ => FAILED,
        };
        Failure::new(e, code)
    }
}

impl From<ReplayError> for Failure {
    fn from(e: ReplayError) -> Failure {
        let code = match &e {
            ReplayError::Journal(j) => journal(j),
            ReplayError::Damaged { .. } => DAMAGED,
            _ => FAILED,
        };
        Failure::new(e, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kekbit::journal::VerifyStatus;

    #[test]
    fn verify_statuses_are_rows_of_the_table() {
        assert_eq!(VerifyStatus::Clean.exit_code(), OK);
        assert_eq!(VerifyStatus::Corrupt.exit_code(), DAMAGED);
        for status in [
            VerifyStatus::Clean,
            VerifyStatus::TornTail,
            VerifyStatus::Corrupt,
        ] {
            let row = format!("  {}  ", status.exit_code());
            assert!(TABLE.contains(&row), "no row for {status:?}");
        }
    }
}
