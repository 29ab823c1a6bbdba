//! The `main` of the ledger examples: parse the arguments (printing the usage on error),
//! run, and turn the outcome into an exit code. Included with `#[path]`, like `bank.rs`.

use std::process::ExitCode;
use std::time::Duration;

/// Runs `body` on the arguments `parse` returns; exit code 2 for bad arguments (with
/// `usage`), 1 for a failed check or an error, 0 otherwise.
pub fn run<A>(
    name: &str,
    usage: &str,
    parse: fn() -> Result<A, String>,
    body: fn(&A) -> Result<bool, Box<dyn std::error::Error>>,
) -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("{name}: {message}");
            }
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match body(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `count` per second of `elapsed`.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
