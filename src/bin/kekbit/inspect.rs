//! `kekbit verify`, `stats`, `repair` and `prune`.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use indicatif::{ProgressBar, ProgressStyle};
use kekbit::journal::{self, JournalError, VerifyStatus};

use crate::output::json_string;
use crate::status::FAILED;
use crate::{locate, Failure, Outcome};

/// Appends a line to a `String` (writing to a `String` cannot fail).
macro_rules! put {
    ($($arg:tt)*) => {{
        let _ = writeln!($($arg)*);
    }};
}

/// Writes `text` to standard output. A reader that went away (`| head`) is not an error:
/// the command's work is done and its exit status stands.
fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::new(
            format!("writing to standard output: {e}"),
            FAILED,
        )),
        _ => Ok(()),
    }
}

fn opt(value: Option<u64>) -> String {
    value.map_or("-".into(), |v| v.to_string())
}

fn json_opt(value: Option<u64>) -> String {
    value.map_or("null".into(), |v| v.to_string())
}

/// Runs `kekbit verify`: exit status 0 clean, 1 torn tail only, 2 corruption, 3 not a
/// journal.
pub fn verify(dir: &Path, json: bool) -> Outcome {
    locate::journal(dir)?;
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("verifying {bar:40} {bytes}/{total_bytes} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut progress = |done: u64, total: u64| {
        if let Some(bar) = &bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    };
    let report = match journal::verify(dir, &mut progress) {
        // Segment files are there (locate found headers) but none reads: fail with the
        // error that names the file, as dump, tail and stats do.
        Err(e @ JournalError::NotAJournal { .. }) => {
            journal::stats(dir)?;
            return Err(e.into());
        }
        result => result?,
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut text = String::new();
    let status = report.status();
    let status_name = match status {
        VerifyStatus::Clean => "clean",
        VerifyStatus::TornTail => "torn tail",
        VerifyStatus::Corrupt => "corrupt",
    };
    if json {
        let problems: Vec<String> = report
            .problems
            .iter()
            .map(|p| {
                format!(
                    "{{\"segment\":{},\"path\":{},\"offset\":{},\"reason\":{},\"first_sequence_lost\":{},\"records_lost\":{}}}",
                    p.segment,
                    json_string(&p.path.to_string_lossy()),
                    json_opt(p.offset),
                    json_string(&p.reason),
                    json_opt(p.first_sequence_lost),
                    json_opt(p.records_lost)
                )
            })
            .collect();
        put!(
            text,
            "{{\"status\":\"{status_name}\",\"segments\":{},\"records\":{},\"record_bytes\":{},\"first_sequence\":{},\"last_sequence\":{},\"torn_tail_bytes\":{},\"writer_active\":{},\"problems\":[{}]}}",
            report.segments,
            report.records,
            report.record_bytes,
            json_opt(report.first_sequence),
            json_opt(report.last_sequence),
            report.torn_tail_bytes,
            report.writer_active,
            problems.join(",")
        );
    } else {
        put!(text, "segments:        {}", report.segments);
        put!(text, "records:         {}", report.records);
        put!(text, "record bytes:    {}", report.record_bytes);
        put!(text, "first sequence:  {}", opt(report.first_sequence));
        put!(text, "last sequence:   {}", opt(report.last_sequence));
        put!(text, "torn tail bytes: {}", report.torn_tail_bytes);
        put!(
            text,
            "writer active:   {}",
            if report.writer_active { "yes" } else { "no" }
        );
        put!(text, "corrupt ranges:  {}", report.problems.len());
        for p in &report.problems {
            let lost = match (p.first_sequence_lost, p.records_lost) {
                (Some(first), Some(0)) => format!(" (no record lost from sequence {first})"),
                (Some(first), Some(n)) => {
                    format!(" ({n} records lost: sequence {first} to {})", first + n - 1)
                }
                (Some(first), None) => {
                    format!(" (records from sequence {first} on lost, how many is unknown)")
                }
                _ => String::new(),
            };
            match p.offset {
                Some(offset) => put!(
                    text,
                    "  segment {} ({}) at data offset {offset}: {}{lost}",
                    p.segment,
                    p.path.display(),
                    p.reason
                ),
                None => put!(
                    text,
                    "  segment {} ({}): {}",
                    p.segment,
                    p.path.display(),
                    p.reason
                ),
            }
        }
        put!(text, "status:          {status_name}");
    }
    emit(&text)?;
    Ok(status.exit_code())
}

/// `YYYY-MM-DD hh:mm:ss.mmm UTC` for a time after the UNIX epoch.
fn utc(time: SystemTime) -> String {
    let Ok(since) = time.duration_since(UNIX_EPOCH) else {
        return "-".into();
    };
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03} UTC",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

fn millis(time: Option<SystemTime>) -> String {
    time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or("null".into(), |d| d.as_millis().to_string())
}

/// Runs `kekbit stats`.
pub fn stats(dir: &Path, json: bool) -> Outcome {
    locate::journal(dir)?;
    let stats = journal::stats(dir)?;
    let mut text = String::new();
    if json {
        put!(
            text,
            "{{\"segments\":{},\"records\":{},\"file_bytes\":{},\"first_sequence\":{},\"last_sequence\":{},\"first_segment_created_ms\":{},\"last_written_ms\":{},\"writer_active\":{}}}",
            stats.segments,
            stats.records,
            stats.file_bytes,
            json_opt(stats.first_sequence),
            json_opt(stats.last_sequence),
            millis(stats.first_segment_created),
            millis(stats.last_written),
            stats.writer_active
        );
    } else {
        let time = |t: Option<SystemTime>| t.map_or("-".into(), utc);
        put!(text, "segments:              {}", stats.segments);
        put!(text, "records:               {}", stats.records);
        put!(text, "file bytes:            {}", stats.file_bytes);
        put!(text, "first sequence:        {}", opt(stats.first_sequence));
        put!(text, "last sequence:         {}", opt(stats.last_sequence));
        put!(
            text,
            "first segment created: {}",
            time(stats.first_segment_created)
        );
        put!(text, "last written:          {}", time(stats.last_written));
        put!(
            text,
            "writer active:         {}",
            if stats.writer_active { "yes" } else { "no" }
        );
    }
    emit(&text)?;
    Ok(0)
}

/// Runs `kekbit repair`.
pub fn repair(dir: &Path) -> Outcome {
    // A directory without a journal is left as it was (no lock file).
    locate::journal(dir)?;
    let report = journal::repair(dir)?;
    let mut text = String::new();
    match report.sealed_segment {
        Some(segment) => put!(
            text,
            "sealed segment {segment} at its last valid record; dropped {} torn bytes; the next record will be sequence {}",
            report.torn_bytes_dropped, report.next_sequence
        ),
        None => put!(text, "nothing to repair: the last segment is sealed"),
    }
    if report.pending_removed + report.orphans_removed > 0 {
        put!(
            text,
            "removed {} unused prepared segments and {} segments of an interrupted rollover",
            report.pending_removed,
            report.orphans_removed
        );
    }
    emit(&text)?;
    Ok(0)
}

/// Runs `kekbit prune`.
pub fn prune(dir: &Path, before: u64) -> Outcome {
    locate::journal(dir)?;
    let report = journal::prune(dir, before)?;
    let mut text = String::new();
    put!(
        text,
        "removed {} segments; the journal now starts at sequence {}",
        report.segments_removed,
        report.first_sequence
    );
    emit(&text)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_dates_are_civil_dates() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00.000 UTC");
        // 2000-02-29 12:34:56.789 (a leap day).
        let t = UNIX_EPOCH + Duration::from_millis(951_827_696_789);
        assert_eq!(utc(t), "2000-02-29 12:34:56.789 UTC");
    }
}
