//! kekbit-compare: kekbit's journal side by side with okaywal, raft-engine, raft-log, a raw file log,
//! a raw mmap log and a limit probe, on this machine, in one run. See README.md.
//!
//! Without `--system`, runs the comparison (`--quick` for the short run; `--rounds N`,
//! `--only W1,W3,...`, `--out DIR`, `--disk-dir DIR` to adjust). With `--system X --workload
//! Y --dir D`, runs one measurement and prints `RESULT key=value ...` (what the comparison
//! does in each of its child processes).

mod commit;
mod machine;
mod orchestrate;
mod plan;
mod report;
mod steady;
mod svg;
mod sys;
mod util;
mod worker;

use util::Args;

/// Parses the `key=value` pairs of a RESULT line.
pub fn parse_result(line: &str) -> Vec<(String, f64)> {
    line.split_whitespace()
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args = Args::parse(&raw);
    if args.flag("help") || args.flag("h") {
        eprintln!(
            "usage: kekbit-compare [--quick] [--rounds N] [--only W1,W2,W3,W4,W5,W6,L1,R1,O1] [--out DIR] [--disk-dir DIR]\n\
             \x20      [--settle SECONDS] [--quiet FRACTION] [--priority high|nice|normal]\n\
             \x20      kekbit-compare --system S --workload W --dir D [...]   (one measurement)\n\
             systems: {}",
            sys::ALL.join(", ")
        );
        return;
    }
    let result = if args.get("system").is_some() {
        worker::main(&args)
    } else {
        orchestrate::main(&args, &raw)
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
