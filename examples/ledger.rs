//! A bank ledger on kekbit's prevalent store: the README's main job.
//!
//! ```text
//! cargo run --release --example ledger [-- --commands N] [--accounts N] [--durability POLICY] [--dir DIR]
//! ```
//!
//! It executes `N` transfers (default 1,000,000) between accounts, journaling each one before
//! applying it, takes a snapshot half-way, drops the store, reopens it (snapshot plus the
//! journal after it) and checks that every balance and the total survived. It prints the
//! throughput of `execute`, the snapshot's size and time (and how long it blocked
//! `execute`), and the restore time.
//!
//! `POLICY` is the journal's durability policy, in the words of the `kekbit` tool and of
//! `Durability`'s `FromStr`: `interval:MS` (default `interval:10`, a background sync every
//! 10 ms), `never` (sync only at the end), `every-record` (each transfer durable before
//! `execute` returns; slow on a real disk) or `every:N` (every N transfers).
//! `DIR` defaults to a fresh temporary directory, removed at the end.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use kekbit::journal::{Durability, JournalOptions};
use kekbit::prevalence::StoreOptions;

#[path = "support/bank.rs"]
mod bank;
#[path = "support/example_main.rs"]
mod example_main;

use bank::{Bank, Ledger, Refused, Rng};
use example_main::per_second;

/// Every account's opening balance.
const INITIAL_BALANCE: i64 = 1_000;

struct Args {
    commands: u64,
    accounts: u32,
    durability: Durability,
    dir: Option<std::path::PathBuf>,
}

const USAGE: &str = "\
usage: ledger [--commands N] [--accounts N] [--durability POLICY] [--dir DIR]

Executes N transfers (default 1000000) between accounts (default 10000) through a kekbit
prevalent store, snapshots half-way, reopens the store and checks every balance.
POLICY: interval:MS (default interval:10), never, every-record or every:N.";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        commands: 1_000_000,
        accounts: 10_000,
        durability: Durability::Interval(Duration::from_millis(10)),
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--commands" => {
                args.commands = value()?.parse().map_err(|e| format!("--commands: {e}"))?
            }
            "--accounts" => {
                args.accounts = value()?.parse().map_err(|e| format!("--accounts: {e}"))?;
                if args.accounts == 0 {
                    return Err("--accounts must be at least 1".into());
                }
            }
            "--durability" => {
                args.durability = value()?.parse().map_err(|e| format!("--durability: {e}"))?;
            }
            "--dir" => args.dir = Some(value()?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn open(dir: &std::path::Path, args: &Args) -> Result<Ledger, Box<dyn std::error::Error>> {
    let initial = Bank::new(args.accounts, INITIAL_BALANCE);
    let options = StoreOptions::new().journal(JournalOptions::new().durability(args.durability));
    Ok(Ledger::open(dir, initial, options)?)
}

/// Executes `count` transfers; returns (accepted, refused, elapsed).
fn run(
    ledger: &Ledger,
    rng: &mut Rng,
    accounts: u32,
    count: u64,
) -> Result<(u64, u64, Duration), Box<dyn std::error::Error>> {
    let (mut accepted, mut refused) = (0, 0);
    let started = Instant::now();
    for _ in 0..count {
        match ledger.execute(rng.transfer(accounts))? {
            Ok(()) => accepted += 1,
            Err(Refused::InsufficientFunds) => refused += 1,
            Err(Refused::NoSuchAccount) => {
                return Err("generated a transfer to a missing account".into())
            }
        }
    }
    Ok((accepted, refused, started.elapsed()))
}

fn main() -> ExitCode {
    example_main::run("ledger", USAGE, parse_args, ledger)
}

fn ledger(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let temp = tempfile::Builder::new()
        .prefix("kekbit-ledger-")
        .tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    println!(
        "kekbit ledger: {} transfers between {} accounts, durability {}, in {}",
        args.commands,
        args.accounts,
        args.durability,
        dir.display()
    );

    let ledger = open(&dir, args)?;
    let mut rng = Rng(0x6b65_6b62_6974);
    let first_half = args.commands / 2;
    let (a1, r1, t1) = run(&ledger, &mut rng, args.accounts, first_half)?;
    println!(
        "  execute   {first_half} transfers in {:.2?}: {:.0} commands/s ({a1} accepted, {r1} refused for lack of funds)",
        t1,
        per_second(first_half, t1)
    );

    let taken = ledger.snapshot()?;
    println!(
        "  snapshot  {} bytes covering {} commands in {:.2?} (execute blocked {:.2?} while the state was serialized; {} journal segments pruned)",
        taken.info.body_len, taken.info.sequence, taken.total, taken.blocked, taken.segments_pruned
    );

    let second_half = args.commands - first_half;
    let (a2, r2, t2) = run(&ledger, &mut rng, args.accounts, second_half)?;
    println!(
        "  execute   {second_half} more in {:.2?}: {:.0} commands/s ({a2} accepted, {r2} refused)",
        t2,
        per_second(second_half, t2)
    );

    let expected = ledger.query(Bank::clone)?;
    let synced = Instant::now();
    ledger.journal().sync()?;
    println!("  sync      {:.2?}", synced.elapsed());
    drop(ledger);

    let reopened = Instant::now();
    let ledger = open(&dir, args)?;
    let restore = reopened.elapsed();
    let report = ledger.recovery_report();
    println!(
        "  restore   {:.2?}: snapshot of {} commands ({} bytes) + {} commands replayed from the journal ({:.0} commands/s)",
        restore,
        report.snapshot.as_ref().map_or(0, |s| s.sequence),
        report.snapshot.as_ref().map_or(0, |s| s.body_len),
        report.records_replayed,
        per_second(report.records_replayed, restore)
    );

    let restored = ledger.query(Bank::clone)?;
    let total: i64 = restored.balances.iter().sum();
    let expected_total = INITIAL_BALANCE * i64::from(args.accounts);
    let mismatched = expected
        .balances
        .iter()
        .zip(&restored.balances)
        .filter(|(a, b)| a != b)
        .count();
    if restored.balances.len() != expected.balances.len()
        || mismatched > 0
        || total != expected_total
    {
        println!(
            "MISMATCH: {mismatched} balances differ, total {total} (expected {expected_total})"
        );
        return Ok(false);
    }
    println!(
        "all {} balances match after the restart; total {total} = {} accounts x {INITIAL_BALANCE}",
        restored.balances.len(),
        args.accounts
    );
    Ok(true)
}
