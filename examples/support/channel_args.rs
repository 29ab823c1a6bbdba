//! The command line of `examples/echo_in.rs` and `examples/echo_out.rs`: `[DIR] [CHANNEL_ID]`,
//! the same for both halves of the echo so that they meet on one channel.
//!
//! Not an example of its own (Cargo builds `examples/*.rs` and `examples/*/main.rs` only):
//! both include it with `#[path = "support/channel_args.rs"] mod channel_args;`.

use std::path::PathBuf;
use std::process::ExitCode;

/// The channel id when none is given.
const DEFAULT_CHANNEL_ID: u64 = 42;

/// The channel's folder and id from the command line, or the status to exit with at once:
/// `-h`/`--help` prints `usage` (status 0); a bad command line prints the error, prefixed
/// with `program`, and `usage` to stderr (status 2).
pub fn channel_from_args(program: &str, usage: &str) -> Result<(PathBuf, u64), ExitCode> {
    match parse(std::env::args().skip(1).collect()) {
        Ok(Some(parsed)) => Ok(parsed),
        Ok(None) => {
            println!("{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(message) => {
            eprintln!("{program}: {message}\n\n{usage}");
            Err(ExitCode::from(2))
        }
    }
}

/// `None` for `--help`.
fn parse(args: Vec<String>) -> Result<Option<(PathBuf, u64)>, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(None);
    }
    if args.len() > 2 {
        return Err(format!("too many arguments: {}", args.join(" ")));
    }
    let dir = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("kekbit_echo"));
    let channel_id = match args.get(1) {
        Some(id) => id
            .parse()
            .map_err(|_| format!("channel id {id:?} is not a non-negative integer"))?,
        None => DEFAULT_CHANNEL_ID,
    };
    Ok(Some((dir, channel_id)))
}
