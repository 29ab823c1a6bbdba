//! `kekbit dump` and `kekbit tail`: printing records.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use kekbit::journal::{self, JournalReader, RecoveryMode};
use kekbit::replay::{self, CorruptRange, Decision, Replay, ReplayError};

use crate::{Failure, Format, Outcome};

/// Writes one record in `format`.
pub fn write_record(
    out: &mut impl Write,
    format: Format,
    seq: u64,
    payload: &[u8],
) -> io::Result<()> {
    match format {
        Format::Text => {
            writeln!(out, "{seq}\t{}", String::from_utf8_lossy(payload))
        }
        Format::Hex => writeln!(out, "{seq}\t{}", hex(payload)),
        Format::Json => {
            write!(
                out,
                "{{\"seq\":{seq},\"len\":{},\"hex\":\"{}\"",
                payload.len(),
                hex(payload)
            )?;
            if let Ok(text) = std::str::from_utf8(payload) {
                write!(out, ",\"text\":{}", json_string(text))?;
            }
            writeln!(out, "}}")
        }
    }
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A JSON string literal for `text`, escaped as RFC 8259 requires.
pub fn json_string(text: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(text.len() + 2);
    s.push('"');
    for c in text.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Whether writing failed only because the reader of standard output went away (`| head`).
fn closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

/// Prints records and reports damaged ranges on standard error.
struct Printer<'a, W: Write> {
    out: &'a mut W,
    format: Format,
    to: Option<u64>,
    damaged: u64,
}

/// Ends the replay once past `--to`, or when standard output is closed.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("past the last sequence number asked for")]
    Past,
    #[error("writing to standard output: {0}")]
    Output(#[from] io::Error),
}

impl<W: Write> Replay for Printer<'_, W> {
    type Error = Stop;

    fn record(&mut self, seq: u64, record: &[u8]) -> Result<(), Stop> {
        if self.to.is_some_and(|to| seq > to) {
            return Err(Stop::Past);
        }
        write_record(self.out, self.format, seq, record)?;
        Ok(())
    }

    fn damaged(&mut self, range: &CorruptRange) -> Decision {
        self.damaged += 1;
        eprintln!(
            "kekbit: {}: damaged record at offset {} ({} bytes to the end of the segment skipped, \
             {} records lost from sequence {}): {}",
            range.path.display(),
            range.offset,
            range.length,
            range.records_lost,
            range.first_sequence_lost,
            range.reason
        );
        Decision::Skip
    }
}

/// Runs `kekbit dump`: every readable record from `from` to `to`; damaged ranges are
/// skipped, reported on standard error, and make the exit status 2.
pub fn dump(dir: &Path, from: Option<u64>, to: Option<u64>, format: Format) -> Outcome {
    // Also refuses a directory that holds no journal.
    let stats = journal::stats(dir)?;
    let from = from.unwrap_or(stats.first_sequence.unwrap_or(0));
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let mut printer = Printer {
        out: &mut out,
        format,
        to,
        damaged: 0,
    };
    match replay::replay(dir, from, RecoveryMode::SkipCorrupt, &mut printer) {
        Ok(_) => {}
        Err(ReplayError::Application { source, .. }) => match source.downcast_ref::<Stop>() {
            Some(Stop::Past) => {}
            Some(Stop::Output(e)) if closed_pipe(e) => return Ok(0),
            _ => return Err(Failure::new(source, 1)),
        },
        Err(e) => return Err(e.into()),
    }
    let damaged = printer.damaged;
    match out.flush() {
        Err(e) if !closed_pipe(&e) => {
            return Err(Failure::new(format!("writing to standard output: {e}"), 1))
        }
        _ => {}
    }
    Ok(if damaged > 0 { 2 } else { 0 })
}

/// Runs `kekbit tail`: records from `from` (default: the last ten), then, with `follow`,
/// new ones as they are appended, until interrupted.
pub fn tail(dir: &Path, from: Option<u64>, follow: bool, format: Format) -> Outcome {
    // Also refuses a directory that holds no journal.
    let stats = journal::stats(dir)?;
    let first = stats.first_sequence.unwrap_or(0);
    let from = from.unwrap_or_else(|| {
        stats
            .last_sequence
            .map_or(first, |last| last.saturating_sub(9).max(first))
    });
    let mut reader = JournalReader::open(dir, from)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    loop {
        let next = if follow {
            reader.next_timeout(Duration::from_millis(200))
        } else {
            reader.try_next()
        };
        match next {
            Ok(Some((seq, record))) => {
                if let Err(e) =
                    write_record(&mut out, format, seq, record).and_then(|()| out.flush())
                {
                    if closed_pipe(&e) {
                        return Ok(0);
                    }
                    return Err(Failure::new(format!("writing to standard output: {e}"), 1));
                }
            }
            Ok(None) if follow => {}
            Ok(None) => return Ok(0),
            Err(e @ kekbit::journal::JournalError::Corrupt { .. }) => {
                return Err(Failure::new(e, 2))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }

    #[test]
    fn records_print_in_each_format() {
        let mut out = Vec::new();
        write_record(&mut out, Format::Text, 3, b"hi").unwrap();
        write_record(&mut out, Format::Hex, 4, b"hi").unwrap();
        write_record(&mut out, Format::Json, 5, b"hi").unwrap();
        write_record(&mut out, Format::Json, 6, &[0xff]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "3\thi\n4\t6869\n{\"seq\":5,\"len\":2,\"hex\":\"6869\",\"text\":\"hi\"}\n{\"seq\":6,\"len\":1,\"hex\":\"ff\"}\n"
        );
    }
}
