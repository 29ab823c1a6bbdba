//! `kekbit append`: records from standard input into a journal.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use kekbit::journal::{Durability, JournalOptions};

use crate::status::{FAILED, USAGE};
use crate::{locate, Failure, Outcome};

/// Arguments of `kekbit append`.
#[derive(Args)]
pub struct AppendArgs {
    /// The journal's directory.
    dir: PathBuf,
    /// Create the journal if the directory holds none.
    #[arg(long)]
    create: bool,
    /// Capacity of each new segment in bytes, from 128 to 1099511627776 (1 TiB), rounded up
    /// to a multiple of 8 (default: the journal's current segment size; 64 MiB for a new
    /// journal).
    #[arg(long, value_name = "BYTES")]
    segment_size: Option<u64>,
    /// Largest record accepted, in bytes (default: the journal's current limit unless
    /// --segment-size is given; otherwise, and for a new journal, 1 MiB or what fits a
    /// segment).
    #[arg(long, value_name = "BYTES")]
    max_record: Option<u32>,
    /// When records are made durable: never (only at the end of input), every-record,
    /// every:N (every N records) or interval:MS (every MS milliseconds). Everything is synced
    /// at the end of input in any case. The same words as the library's `Durability`.
    #[arg(
        long,
        default_value = "every-record",
        value_name = "POLICY",
        alias = "sync"
    )]
    durability: Durability,
    /// Print each record's sequence number on standard output, one per line, once the record
    /// is durable under the chosen policy.
    #[arg(long)]
    ack: bool,
    /// Records are separated by NUL bytes instead of newlines.
    #[arg(long, conflicts_with = "crlf")]
    null: bool,
    /// Lines end with CR LF: strip the carriage return too. Without it a record is every
    /// byte before the newline, a carriage return included (records are bytes, and a
    /// trailing CR may be data).
    #[arg(long)]
    crlf: bool,
}

/// Refuses a `--segment-size` no segment can have, in the words of the number given (not
/// of the capacity it would be rounded to).
fn check_segment_size(dir: &Path, bytes: u64) -> Result<(), Failure> {
    use kekbit::core::{MAX_CAPACITY, MIN_CAPACITY};
    if (MIN_CAPACITY..=MAX_CAPACITY).contains(&bytes) {
        return Ok(());
    }
    Err(Failure::new(
        format!(
            "{}: --segment-size {bytes}: a segment holds from {MIN_CAPACITY} to {MAX_CAPACITY} \
             bytes (1 TiB)",
            dir.display()
        ),
        USAGE,
    ))
}

/// Prints sequence numbers as they become durable, in order, exactly once.
struct Acks {
    next: u64,
}

impl Acks {
    /// Prints every appended sequence number below `durable` not printed yet.
    fn print_up_to(&mut self, durable: u64, appended: u64) -> std::io::Result<()> {
        let end = durable.min(appended);
        if self.next >= end {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        while self.next < end {
            writeln!(out, "{}", self.next)?;
            self.next += 1;
        }
        out.flush()
    }
}

/// Runs `kekbit append`.
pub fn run(args: &AppendArgs) -> Outcome {
    if args.create {
        locate::new_journal(&args.dir)?;
    } else {
        locate::journal(&args.dir)?;
    }
    let mut options = JournalOptions::new().durability(args.durability);
    if let Some(bytes) = args.segment_size {
        check_segment_size(&args.dir, bytes)?;
        options = options.segment_capacity(bytes);
    }
    if let Some(bytes) = args.max_record {
        options = options.max_record_len(bytes);
    }
    let journal = Arc::new(options.open(&args.dir)?);
    let first = journal.next_sequence();
    let appended = Arc::new(std::sync::atomic::AtomicU64::new(first));
    let acks = Arc::new(Mutex::new(Acks { next: first }));
    let done = Arc::new(AtomicBool::new(false));
    // Under an interval policy records become durable while input is idle: a thread prints
    // their acknowledgements as the background syncs land.
    let acker = match (args.ack, args.durability) {
        (true, Durability::Interval(every)) => {
            let (journal, appended, acks, done) = (
                Arc::clone(&journal),
                Arc::clone(&appended),
                Arc::clone(&acks),
                Arc::clone(&done),
            );
            Some(std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(every.min(Duration::from_millis(5)));
                    let durable = journal.durable_count();
                    let upto = appended.load(Ordering::Acquire);
                    if let Ok(mut acks) = acks.lock() {
                        let _ = acks.print_up_to(durable, upto);
                    }
                }
            }))
        }
        _ => None,
    };
    let separator = if args.null { 0 } else { b'\n' };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut record = Vec::new();
    let result = (|| -> Result<(), Failure> {
        loop {
            record.clear();
            let read = input
                .read_until(separator, &mut record)
                .map_err(|e| Failure::new(format!("reading standard input: {e}"), FAILED))?;
            if read == 0 {
                return Ok(());
            }
            if record.last() == Some(&separator) {
                record.pop();
                if args.crlf && record.last() == Some(&b'\r') {
                    record.pop();
                }
            }
            let seq = journal.append(&record)?;
            appended.store(seq + 1, Ordering::Release);
            if args.ack {
                let mut acks = acks
                    .lock()
                    .map_err(|_| Failure::new("acknowledgement printer failed", FAILED))?;
                acks.print_up_to(journal.durable_count(), seq + 1)
                    .map_err(|e| {
                        Failure::new(format!("writing to standard output: {e}"), FAILED)
                    })?;
            }
        }
    })();
    // Whatever the policy, everything appended is made durable before exiting.
    let synced = journal.sync();
    done.store(true, Ordering::Relaxed);
    if let Some(acker) = acker {
        let _ = acker.join();
    }
    // Records appended before a failure are durable now: acknowledge them before failing.
    if args.ack && synced.is_ok() {
        let mut acks = acks
            .lock()
            .map_err(|_| Failure::new("acknowledgement printer failed", FAILED))?;
        acks.print_up_to(journal.durable_count(), appended.load(Ordering::Acquire))
            .map_err(|e| Failure::new(format!("writing to standard output: {e}"), FAILED))?;
    }
    result?;
    synced?;
    Ok(0)
}
