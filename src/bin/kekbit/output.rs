//! `kekbit dump` and `kekbit tail`: printing records.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use kekbit::journal::{self, JournalError, JournalReader, RecoveryMode};
use kekbit::replay::{self, CorruptRange, Decision, Replay, ReplayError};

use crate::status::{DAMAGED, FAILED, OK, USAGE};
use crate::{locate, Failure, Format, Outcome};

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
        let lost = match range.records_lost {
            Some(0) => "no record lost".to_string(),
            Some(1) => format!("record {} lost", range.first_sequence_lost),
            Some(n) => format!(
                "{n} records lost, sequence {} to {}",
                range.first_sequence_lost,
                range.first_sequence_lost + n - 1
            ),
            None => format!(
                "records from sequence {} on lost, how many is unknown (no seal or later \
                 segment to count them by)",
                range.first_sequence_lost
            ),
        };
        if range.whole_segment {
            eprintln!(
                "kekbit: {}: segment {} skipped whole ({lost}): {}",
                range.path.display(),
                range.segment,
                range.reason
            );
        } else {
            eprintln!(
                "kekbit: {}: damaged record at data offset {} ({} bytes skipped; {lost}): {}",
                range.path.display(),
                range.offset,
                range.length,
                range.reason
            );
        }
        Decision::Skip
    }
}

/// Runs `kekbit dump`: every readable record from `from` to `to`; damaged ranges are
/// skipped, reported on standard error, and make the exit status 2.
pub fn dump(dir: &Path, from: Option<u64>, to: Option<u64>, format: Format) -> Outcome {
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(Failure::new(
                format!("--from {from} is after --to {to}: the range holds no record"),
                USAGE,
            ));
        }
    }
    locate::journal(dir)?;
    // A journal whose statistics cannot be read (a damaged last segment, say) is still
    // dumped: the replay reads what it can and reports the rest. By default from the first
    // record still there, even if pruning removed every record.
    let from = match from {
        Some(from) => from,
        None => JournalReader::open_first(dir).map_or(0, |reader| reader.next_sequence()),
    };
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
            Some(Stop::Output(e)) if closed_pipe(e) => return Ok(OK),
            _ => return Err(Failure::new(source, FAILED)),
        },
        Err(e) => return Err(e.into()),
    }
    let damaged = printer.damaged;
    match out.flush() {
        Err(e) if !closed_pipe(&e) => {
            return Err(Failure::new(
                format!("writing to standard output: {e}"),
                FAILED,
            ))
        }
        _ => {}
    }
    Ok(if damaged > 0 { DAMAGED } else { OK })
}

/// Where `tail` starts.
pub enum Start {
    /// At this sequence number.
    At(u64),
    /// At the last this many records (all of them if the journal holds fewer).
    Last(u64),
}

/// Whether and how long `kekbit tail` follows the journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// Print what is there and exit.
    No,
    /// Follow across writer sessions until interrupted.
    Forever,
    /// Follow until the journal has no writer.
    UntilClosed,
}

impl Follow {
    /// From the `--follow` and `--until-closed` flags.
    pub fn new(follow: bool, until_closed: bool) -> Follow {
        match (follow, until_closed) {
            (false, _) => Follow::No,
            (true, false) => Follow::Forever,
            (true, true) => Follow::UntilClosed,
        }
    }
}

/// How often a follower looks for a new writer while the journal has none.
const NO_WRITER_POLL: Duration = Duration::from_millis(100);

/// Runs `kekbit tail`: records from `start`, then, when following, new ones as they are
/// appended, until interrupted, until the reader of standard output goes away, or (with
/// `--until-closed`) until the journal has no writer.
pub fn tail(dir: &Path, start: Start, follow: Follow, format: Format) -> Outcome {
    locate::journal(dir)?;
    let stats = journal::stats(dir)?;
    if follow != Follow::No {
        exit_when_output_closes();
    }
    let mut reader = match (start, stats.first_sequence, stats.last_sequence) {
        (Start::At(seq), _, _) => JournalReader::open(dir, seq)?,
        (Start::Last(count), Some(first), Some(last)) => {
            JournalReader::open(dir, (last + 1).saturating_sub(count).max(first))?
        }
        // No record (an empty journal, or pruning removed them all): from the next one.
        (Start::Last(_), _, _) => JournalReader::open_first(dir)?,
    };
    let stdout = io::stdout();
    let mut out = stdout.lock();
    loop {
        let next = match follow {
            Follow::No => reader.try_next(),
            _ => reader.next_timeout(Duration::from_secs(1)),
        };
        match next {
            Ok(Some((seq, record))) => {
                if let Err(e) =
                    write_record(&mut out, format, seq, record).and_then(|()| out.flush())
                {
                    if closed_pipe(&e) {
                        return Ok(OK);
                    }
                    return Err(Failure::new(
                        format!("writing to standard output: {e}"),
                        FAILED,
                    ));
                }
            }
            Ok(None) if follow != Follow::No => {}
            Ok(None) => return Ok(OK),
            Err(e @ JournalError::WriterClosed { .. }) if follow == Follow::UntilClosed => {
                eprintln!("kekbit: {e}");
                return Ok(OK);
            }
            // No writer: wait for the next one, quietly (`--until-closed` stops instead,
            // with WRITER_GONE for a writer that died).
            Err(JournalError::WriterClosed { .. } | JournalError::WriterGone { .. })
                if follow == Follow::Forever =>
            {
                std::thread::sleep(NO_WRITER_POLL)
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Ends the process (status 0) as soon as the reader of standard output goes away, even
/// while `tail --follow` waits for records and so writes nothing that could fail: a thread
/// waits in poll(2) for the error or hang-up condition of standard output, which a pipe
/// reports once its reading end is closed. Terminals and files never report it.
fn exit_when_output_closes() {
    use rustix::event::{poll, PollFd, PollFlags};
    let spawned = std::thread::Builder::new()
        .name("stdout-watch".into())
        .spawn(|| {
            let stdout = io::stdout();
            loop {
                let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
                match poll(&mut fds, None) {
                    Ok(_) => {
                        let revents = fds[0].revents();
                        if revents.intersects(PollFlags::ERR | PollFlags::HUP) {
                            std::process::exit(i32::from(OK));
                        }
                        if revents.contains(PollFlags::NVAL) {
                            return;
                        }
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(_) => return,
                }
            }
        });
    // Without the thread, `tail --follow` still stops at its next write.
    drop(spawned);
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
