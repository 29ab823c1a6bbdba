#![cfg(feature = "cli")]
//! The command line on a journal whose tail was truncated and which then skipped ahead
//! (`Journal::truncate_from`, `Journal::skip_to`, as the raft store does): `dump` prints
//! only the records that count, at their sequence numbers, and `verify` counts only them.

#[path = "common/cli.rs"]
mod cli_common;

use cli_common::*;
use kekbit::journal::{Durability, Journal};

fn line<'a>(out: &'a str, field: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(field))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {field} in {out}"))
}

// Regression: issue 12 item 1: `kekbit verify` counted the records a truncation discarded.
#[test]
fn dump_and_verify_skip_discarded_records() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("journal");
    {
        let journal = Journal::options()
            .durability(Durability::Never)
            .open(&dir)
            .unwrap();
        for record in ["old-0", "old-1", "old-2", "old-3", "old-4"] {
            journal.append(record.as_bytes()).unwrap();
        }
        journal.truncate_from(2).unwrap();
        journal.append(b"new-2").unwrap();
        journal.append(b"new-3").unwrap();
        journal.truncate_from(3).unwrap();
        journal.skip_to(10).unwrap();
        journal.append(b"new-10").unwrap();
    }
    let dump = run("dump", &dir, &[]);
    dump.expect_ok();
    assert_eq!(dump.out(), "0\told-0\n1\told-1\n2\tnew-2\n10\tnew-10\n");
    let verify = run("verify", &dir, &[]);
    verify.expect_ok();
    let out = verify.out();
    assert_eq!(line(&out, "records:"), "4", "{out}");
    assert_eq!(line(&out, "first sequence:"), "0", "{out}");
    assert_eq!(line(&out, "last sequence:"), "10", "{out}");
    assert_eq!(line(&out, "status:"), "clean", "{out}");
}
