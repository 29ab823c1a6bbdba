//! The reading half of a two-terminal echo: prints every record of a channel as it arrives.
//!
//! ```text
//! cargo run --example echo_out -- [DIR] [CHANNEL_ID]
//! ```
//!
//! `DIR` defaults to `<system temp dir>/kekbit_echo` and `CHANNEL_ID` to 42, as for
//! `cargo run --example echo_in`, the writing half. It waits up to a minute for the channel
//! to appear, prints each record as a line (invalid UTF-8 replaced), and exits when the
//! writer closes the channel (status 0) or when the writer has been silent for longer than
//! the channel's timeout, for instance because it was killed (status 1). When there is
//! nothing new it sleeps between polls, backing off up to 50 ms, so it does not spin.
//!
//! It also reads a channel written earlier: `printf 'a\nb\n' | cargo run --example echo_in
//! -- /tmp/k 7`, then `cargo run --example echo_out -- /tmp/k 7` prints `a` and `b`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use kekbit::core::{try_shm_reader, ChannelError, ReadError, Reader};

#[path = "support/channel_args.rs"]
mod channel_args;

/// How long to wait for the channel to appear, and in how many tries.
const WAIT_MILLIS: u64 = 60_000;
const WAIT_TRIES: u32 = 600;
/// Sleep bounds between polls that found nothing.
const MIN_PAUSE: Duration = Duration::from_micros(100);
const MAX_PAUSE: Duration = Duration::from_millis(50);

const USAGE: &str = "\
usage: echo_out [DIR] [CHANNEL_ID]

Waits for a kekbit channel and prints its records as they arrive, until the writer
closes it (exit 0) or goes silent for longer than the channel's timeout (exit 1).

  DIR         folder of the channel (default: <temp dir>/kekbit_echo)
  CHANNEL_ID  channel id (default: 42)

Write to the channel with: echo_in [DIR] [CHANNEL_ID]";

fn main() -> ExitCode {
    let (dir, channel_id) = match channel_args::channel_from_args("echo_out", USAGE) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    eprintln!(
        "echo_out: waiting for channel {channel_id} in {}",
        dir.display()
    );
    let reader = match try_shm_reader(&dir, channel_id, WAIT_MILLIS, WAIT_TRIES) {
        Ok(reader) => reader,
        Err(ChannelError::NotFound { path }) => {
            eprintln!(
                "echo_out: {} did not appear within {} s",
                path.display(),
                WAIT_MILLIS / 1000
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("echo_out: cannot open the channel: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut reader = reader.with_timeout();
    eprintln!(
        "echo_out: reading {} (gives up after {:?} without news from the writer)",
        reader.path().display(),
        reader.timeout()
    );

    let mut out = io::stdout().lock();
    let mut pause = MIN_PAUSE;
    let mut count = 0u64;
    let error = loop {
        match reader.try_read() {
            Ok(Some(record)) => {
                let printed =
                    writeln!(out, "{}", String::from_utf8_lossy(record)).and_then(|()| out.flush());
                if printed.is_err() {
                    // Standard output is gone (a closed pipe): nobody is listening any more.
                    return ExitCode::SUCCESS;
                }
                count += 1;
                pause = MIN_PAUSE;
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => break e,
        }
    };
    match error {
        ReadError::Closed { .. } => {
            eprintln!(
                "echo_out: {}; the writer closed the channel",
                records(count)
            );
            ExitCode::SUCCESS
        }
        ReadError::Timeout { silent, .. } => {
            let alive = reader.into_inner().writer_alive();
            let why = if alive {
                "the writer is still running but idle (echo_in sends no heartbeats)"
            } else {
                "the writer is gone without closing the channel (killed or crashed)"
            };
            eprintln!(
                "echo_out: {}; no news from the writer for {:.1} s: {why}",
                records(count),
                silent.as_secs_f64()
            );
            ExitCode::FAILURE
        }
        other => {
            eprintln!(
                "echo_out: {}; stopped at a damaged record: {other}",
                records(count)
            );
            ExitCode::FAILURE
        }
    }
}

/// "1 record", "2 records".
fn records(count: u64) -> String {
    if count == 1 {
        "1 record".to_string()
    } else {
        format!("{count} records")
    }
}
