//! The writing half of a two-terminal echo: every line typed on stdin becomes a record.
//!
//! ```text
//! cargo run --example echo_in -- [DIR] [CHANNEL_ID]
//! ```
//!
//! `DIR` defaults to `<system temp dir>/kekbit_echo` and `CHANNEL_ID` to 42. Start
//! `cargo run --example echo_out` with the same arguments in another terminal, in either
//! order, then type lines here; end with Ctrl-D (end of input), which closes the channel and
//! ends the reader too. A channel is written once: to run again with the same id, delete its
//! file (the error message names it) or pick another id.
//!
//! Each line (without its line ending, up to 1 KiB) is written and flushed (synced) at once.
//! The writer sends no heartbeats, so a reader gives up after 30 s without a new line.
//!
//! Piped input works too: `printf 'a\nb\n' | cargo run --example echo_in -- /tmp/k 7`.

use std::io::{self, BufRead};
use std::process::ExitCode;

use kekbit::core::{
    shm_writer, ChannelError, EncoderHandler, Header, TickUnit, WriteError, Writer,
};

#[path = "support/channel_args.rs"]
mod channel_args;

const CAPACITY: u64 = 4 << 20;
const MAX_RECORD_LEN: u32 = 1024;
const TIMEOUT_MILLIS: u64 = 30_000;

const USAGE: &str = "\
usage: echo_in [DIR] [CHANNEL_ID]

Writes every line read from stdin as a record of a kekbit channel, flushing each one;
closes the channel at end of input (Ctrl-D).

  DIR         folder of the channel (default: <temp dir>/kekbit_echo)
  CHANNEL_ID  channel id (default: 42)

Read the channel with: echo_out [DIR] [CHANNEL_ID]";

fn main() -> ExitCode {
    let (dir, channel_id) = match channel_args::channel_from_args("echo_in", USAGE) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let header = Header::new(
        u64::from(std::process::id()),
        channel_id,
        CAPACITY,
        MAX_RECORD_LEN,
        TIMEOUT_MILLIS,
        TickUnit::Millis,
    );
    let mut writer = match shm_writer(&dir, &header, EncoderHandler) {
        Ok(writer) => writer,
        Err(e) => {
            let hint = match e {
                ChannelError::AlreadyExists { .. } => {
                    "\nhint: delete that file or choose another channel id"
                }
                ChannelError::Locked { .. } => "\nhint: another writer is using that channel",
                _ => "",
            };
            eprintln!("echo_in: cannot create the channel: {e}{hint}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "echo_in: writing to {} (channel {channel_id}); type lines, Ctrl-D to close",
        writer.path().display()
    );

    let mut stdin = io::stdin().lock();
    let mut line = Vec::new();
    let mut written = 0u64;
    loop {
        line.clear();
        match stdin.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("echo_in: reading stdin failed: {e}; closing the channel");
                break;
            }
        }
        let text = trim_line_ending(&line);
        match writer.write(text).and_then(|_| writer.flush()) {
            Ok(()) => written += 1,
            Err(WriteError::RecordTooLarge { len, max, .. }) => {
                eprintln!("echo_in: line of {len} bytes skipped: the limit is {max} bytes");
            }
            Err(e @ WriteError::ChannelFull { .. }) => {
                eprintln!("echo_in: {e}; closing the channel");
                break;
            }
            Err(e) => {
                eprintln!("echo_in: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    match writer.close() {
        Ok(()) => {
            let lines = if written == 1 { "line" } else { "lines" };
            eprintln!("echo_in: {written} {lines} written, channel closed");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_in: closing the channel failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The line without its `\n` or `\r\n`.
fn trim_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
