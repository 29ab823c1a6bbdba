//! `kekbit`: append to, inspect, follow, verify, repair and prune kekbit journals.
//!
//! Installed with `cargo install --locked --path . --features cli`. Every error is one line
//! on standard error naming the file and the reason, with the exit status of its condition
//! (the table in [`status::TABLE`]).

mod append;
mod inspect;
mod locate;
mod output;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Append to, inspect, follow, verify, repair and prune kekbit journals.
#[derive(Parser)]
#[command(name = "kekbit", version, about, long_about = None, after_help = status::TABLE)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How records are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `SEQ<TAB>PAYLOAD`, the payload as UTF-8 (invalid bytes replaced).
    Text,
    /// `SEQ<TAB>PAYLOAD`, the payload in lowercase hexadecimal.
    Hex,
    /// One JSON object per line: `seq`, `len`, `hex` and, when the payload is UTF-8, `text`.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Append records read from standard input, one per line (or NUL-separated).
    Append(append::AppendArgs),
    /// Print records in order; damaged records are reported on standard error, never printed.
    Dump {
        /// The journal's directory.
        dir: PathBuf,
        /// First sequence number to print (default: the journal's first).
        #[arg(long)]
        from: Option<u64>,
        /// Last sequence number to print, inclusive (default: the last one).
        #[arg(long)]
        to: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Print the last records and, with --follow, keep printing new ones across segment
    /// rollovers and writer sessions, until interrupted.
    ///
    /// A follower sleeps on the journal's doorbell (a futex the writer rings after each
    /// append), looking whether the writer is still there every 50 ms. When the writer closes
    /// the journal, or stops without closing it (it died), the follower looks for the next
    /// writer every 100 ms, or with --until-closed says why it stops and exits.
    Tail {
        /// The journal's directory.
        dir: PathBuf,
        /// First sequence number to print (default: the journal's last records, see --lines).
        #[arg(long, conflicts_with = "lines")]
        from: Option<u64>,
        /// How many of the last records to print first.
        #[arg(short = 'n', long, value_name = "N", default_value_t = 10)]
        lines: u64,
        /// Keep following the journal; stops when interrupted or when the reader of standard
        /// output goes away.
        #[arg(long)]
        follow: bool,
        /// With --follow, stop once every record was printed and the journal has no writer:
        /// exit status 0 when the writer closed the journal, 7 when it stopped without
        /// closing it (it died).
        #[arg(long, requires = "follow")]
        until_closed: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check every record of every segment and the chain linking them; `record bytes` are
    /// the bytes the valid records occupy, framing included. Exit status: 0 clean,
    /// 1 torn tail only (recoverable, nothing acknowledged lost), 2 corruption or a
    /// missing/foreign segment, 3 not a journal (see `kekbit --help`).
    Verify {
        /// The journal's directory.
        dir: PathBuf,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print segments, records, the segment files' size in bytes, first/last sequence, when
    /// the first segment was created and the last one written (file times: records carry no
    /// time), and whether a writer holds the journal.
    Stats {
        /// The journal's directory.
        dir: PathBuf,
        /// Print the statistics as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Make a torn tail unreadable (seal the last segment at its last valid record) so that
    /// verify exits 0. Refuses while a writer holds the journal; never shrinks a file.
    Repair {
        /// The journal's directory.
        dir: PathBuf,
    },
    /// Remove whole segments whose records are all below a sequence number.
    Prune {
        /// The journal's directory.
        dir: PathBuf,
        /// Remove segments whose records are all below this sequence number.
        #[arg(long)]
        before: u64,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and version go to standard output and are no failure.
            return ExitCode::from(if e.use_stderr() { status::USAGE } else { 0 });
        }
    };
    // The read-only commands copy segments into memory (pread) instead of mapping them, so
    // that another process truncating a segment cannot kill them with SIGBUS.
    if let Command::Dump { .. } | Command::Verify { .. } | Command::Stats { .. } = cli.command {
        kekbit::core::set_read_mode(kekbit::core::ReadMode::Copied);
    }
    let outcome = match cli.command {
        Command::Append(args) => append::run(&args),
        Command::Dump {
            dir,
            from,
            to,
            format,
        } => output::dump(&dir, from, to, format),
        Command::Tail {
            dir,
            from,
            lines,
            follow,
            until_closed,
            format,
        } => output::tail(
            &dir,
            from.map_or(output::Start::Last(lines), output::Start::At),
            output::Follow::new(follow, until_closed),
            format,
        ),
        Command::Verify { dir, json } => inspect::verify(&dir, json),
        Command::Stats { dir, json } => inspect::stats(&dir, json),
        Command::Repair { dir } => inspect::repair(&dir),
        Command::Prune { dir, before } => inspect::prune(&dir, before),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("kekbit: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// A command's failure: a one-line message and the exit status.
pub struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// A failure with exit status `code`.
    pub fn new(message: impl std::fmt::Display, code: u8) -> Failure {
        Failure {
            message: message.to_string().replace('\n', " "),
            code,
        }
    }
}

/// What a command returns: its exit status, or a failure.
pub type Outcome = Result<u8, Failure>;
