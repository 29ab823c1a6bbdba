//! A bank ledger whose state is a mapped image: 10 million accounts as a
//! `MappedVec<Account>`, each transfer one journaled, atomic change of two accounts
//! (`set_many`), restarting in milliseconds because nothing is deserialized. Beside it, the
//! same accounts in the serde-snapshot ledger (`examples/ledger.rs`'s prevalent store), to
//! compare restart times.
//!
//! ```text
//! cargo run --release --example image_ledger [-- --accounts N] [--transfers N] [--durability POLICY] [--dir DIR] [--no-compare]
//! ```
//!
//! It creates `N` accounts (default 10,000,000) holding 1,000 each, checkpoints, executes the
//! transfers (default 1,000,000) with a checkpoint half-way, closes, reopens (timed), checks
//! that every account survived and that the total is unchanged; then restores the same
//! balances from a serde snapshot (timed) and prints the ratio. `POLICY` as in
//! `examples/ledger.rs` (default `interval:10`). `DIR` defaults to a fresh temporary
//! directory, removed at the end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kekbit::image::{ImageOptions, MappedVec};
use kekbit::journal::{Durability, JournalOptions};
use kekbit::prevalence::StoreOptions;

#[path = "support/bank.rs"]
mod bank;
#[path = "support/example_main.rs"]
mod example_main;

use bank::{Bank, Ledger, Rng};
use example_main::per_second;

/// Every account's opening balance.
const INITIAL_BALANCE: i64 = 1_000;

/// One account, in the file as in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Account {
    balance: i64,
    transfers: u64,
}

struct Args {
    accounts: u32,
    transfers: u64,
    durability: Durability,
    dir: Option<PathBuf>,
    compare: bool,
}

const USAGE: &str = "\
usage: image_ledger [--accounts N] [--transfers N] [--durability POLICY] [--dir DIR] [--no-compare]

Keeps N accounts (default 10000000) in a kekbit mapped image, executes transfers (default
1000000), reopens it and checks every account; then restores the same balances from a serde
snapshot for comparison (unless --no-compare).
POLICY: interval:MS (default interval:10), never, every-record or every:N.";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        accounts: 10_000_000,
        transfers: 1_000_000,
        durability: Durability::Interval(Duration::from_millis(10)),
        dir: None,
        compare: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--accounts" => {
                args.accounts = value()?.parse().map_err(|e| format!("--accounts: {e}"))?;
                if args.accounts == 0 {
                    return Err("--accounts must be at least 1".into());
                }
            }
            "--transfers" => {
                args.transfers = value()?.parse().map_err(|e| format!("--transfers: {e}"))?
            }
            "--durability" => {
                args.durability = value()?.parse().map_err(|e| format!("--durability: {e}"))?
            }
            "--dir" => args.dir = Some(value()?.into()),
            "--no-compare" => args.compare = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn options(args: &Args) -> ImageOptions<Account> {
    let journal = JournalOptions::new()
        .segment_capacity(64 << 20)
        .durability(args.durability);
    MappedVec::<Account>::options()
        .type_tag(u64::from_le_bytes(*b"account\0"), 1)
        .journal(journal)
}

/// Executes `count` transfers; returns (accepted, refused).
fn transfers(
    accounts: &mut MappedVec<Account>,
    rng: &mut Rng,
    n: u32,
    count: u64,
) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..count {
        let t = rng.transfer(n);
        let (from, to) = (t.from as usize, t.to as usize);
        let (mut a, mut b) = (accounts[from], accounts[to]);
        if a.balance < t.amount || from == to {
            refused += 1;
            continue;
        }
        a.balance -= t.amount;
        a.transfers += 1;
        b.balance += t.amount;
        b.transfers += 1;
        accounts.set_many(&[(from, a), (to, b)])?; // both or neither, after any crash
        accepted += 1;
    }
    Ok((accepted, refused))
}

/// A cheap fingerprint of every account (FNV-1a over the balances and counters).
fn fingerprint(accounts: &[Account]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for a in accounts {
        for word in [a.balance as u64, a.transfers] {
            h = (h ^ word).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

fn main() -> ExitCode {
    example_main::run("image_ledger", USAGE, parse_args, ledger)
}

fn ledger(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let temp = tempfile::Builder::new()
        .prefix("kekbit-image-ledger-")
        .tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let n = args.accounts;
    println!(
        "kekbit image ledger: {n} accounts, {} transfers, durability {}, in {}",
        args.transfers,
        args.durability,
        dir.display()
    );
    let image_dir = dir.join("image");

    let started = Instant::now();
    let mut accounts = options(args).capacity(u64::from(n)).create(&image_dir)?;
    let opening = Account {
        balance: INITIAL_BALANCE,
        transfers: 0,
    };
    for _ in 0..n.div_ceil(1 << 16) {
        let left = n as usize - accounts.len();
        accounts.extend_from_slice(&vec![opening; left.min(1 << 16)])?;
    }
    let created = started.elapsed();
    let checkpointed = Instant::now();
    let done = accounts.checkpoint()?;
    println!(
        "  create    {n} accounts in {created:.2?}, checkpoint of {} pages in {:.2?}",
        done.pages_written,
        checkpointed.elapsed()
    );

    let mut rng = Rng(0x6b65_6b62_6974);
    let half = args.transfers / 2;
    let run = Instant::now();
    let (a1, r1) = transfers(&mut accounts, &mut rng, n, half)?;
    let t1 = run.elapsed();
    let checkpointed = Instant::now();
    let done = accounts.checkpoint()?;
    println!(
        "  transfer  {half} in {t1:.2?}: {:.0}/s ({a1} accepted, {r1} refused); checkpoint of {} pages in {:.2?}",
        per_second(half, t1),
        done.pages_written,
        checkpointed.elapsed()
    );
    let rest = args.transfers - half;
    let run = Instant::now();
    let (a2, r2) = transfers(&mut accounts, &mut rng, n, rest)?;
    println!(
        "  transfer  {rest} more in {:.2?} ({a2} accepted, {r2} refused)",
        run.elapsed()
    );
    let expected = fingerprint(&accounts);
    let closing = Instant::now();
    accounts.close()?;
    println!("  close     {:.2?} (checkpoint)", closing.elapsed());

    let reopening = Instant::now();
    let accounts = options(args).open(&image_dir)?;
    let restart = reopening.elapsed();
    println!(
        "  restart   {restart:.2?}: {} accounts mapped, {} changes replayed",
        accounts.len(),
        accounts.open_report().replayed
    );
    let total: i64 = accounts.iter().map(|a| a.balance).sum();
    let moves: u64 = accounts.iter().map(|a| a.transfers).sum();
    let ok = accounts.len() == n as usize
        && total == INITIAL_BALANCE * i64::from(n)
        && moves == 2 * (a1 + a2)
        && fingerprint(&accounts) == expected;
    println!(
        "  check     total {total}, {moves} account updates: {}",
        if ok {
            "every account as before the restart"
        } else {
            "MISMATCH"
        }
    );
    let balances: Vec<i64> = accounts.iter().map(|a| a.balance).collect();
    drop(accounts);

    if args.compare {
        compare(&dir, args, balances, restart)?;
    }
    Ok(ok)
}

/// Restores the same balances through the serde-snapshot ledger, and prints the ratio.
fn compare(
    dir: &Path,
    args: &Args,
    balances: Vec<i64>,
    image_restart: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let store_dir = dir.join("snapshot-ledger");
    let options = || StoreOptions::new().journal(JournalOptions::new().durability(args.durability));
    let ledger = Ledger::open(&store_dir, Bank { balances }, options())?;
    let taken = ledger.snapshot()?;
    drop(ledger);
    let reopening = Instant::now();
    let ledger = Ledger::open(&store_dir, Bank::new(0, 0), options())?;
    let restore = reopening.elapsed();
    let accounts = ledger.query(|bank| bank.balances.len())?;
    println!(
        "  snapshot  the serde-snapshot ledger restores the same {accounts} balances ({} bytes) in {restore:.2?}: {:.0}× the image's restart",
        taken.info.body_len,
        restore.as_secs_f64() / image_restart.as_secs_f64().max(1e-9)
    );
    Ok(())
}
