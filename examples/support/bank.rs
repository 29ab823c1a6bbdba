//! The bank of `examples/ledger.rs`, also measured by `benches/prevalence.rs`: the state is
//! one `i64` balance per account, the command a transfer between two accounts.
//!
//! Not an example of its own (Cargo builds `examples/*.rs` and `examples/*/main.rs` only):
//! both include it with a `#[path]` attribute on `mod bank;`.

use kekbit::prevalence::{Command, PrevalentStore};
use serde::{Deserialize, Serialize};

/// The whole application state: one balance per account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bank {
    pub balances: Vec<i64>,
}

impl Bank {
    /// `accounts` accounts holding `balance` each.
    pub fn new(accounts: u32, balance: i64) -> Bank {
        Bank {
            balances: vec![balance; accounts as usize],
        }
    }
}

/// Why a transfer was refused. Refusals are deterministic, so replay refuses the same ones.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    NoSuchAccount,
    InsufficientFunds,
}

/// Moves `amount` from one account to another, unless the payer cannot cover it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Transfer {
    pub from: u32,
    pub to: u32,
    pub amount: i64,
}

impl Command<Bank> for Transfer {
    type Output = Result<(), Refused>;

    fn apply(&self, bank: &mut Bank) -> Self::Output {
        let (from, to) = (self.from as usize, self.to as usize);
        if from >= bank.balances.len() || to >= bank.balances.len() {
            return Err(Refused::NoSuchAccount);
        }
        if bank.balances[from] < self.amount {
            return Err(Refused::InsufficientFunds);
        }
        bank.balances[from] -= self.amount;
        bank.balances[to] += self.amount;
        Ok(())
    }
}

/// The bank as a prevalent store.
pub type Ledger = PrevalentStore<Bank, Transfer>;

/// A small deterministic generator (SplitMix64), so that every run executes the same
/// transfers for the same seed.
pub struct Rng(pub u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A transfer of 1 to 200 between two of the first `accounts` accounts (possibly the
    /// same one twice).
    pub fn transfer(&mut self, accounts: u32) -> Transfer {
        let from = (self.next() % u64::from(accounts)) as u32;
        let to = (self.next() % u64::from(accounts)) as u32;
        let amount = 1 + (self.next() % 200) as i64;
        Transfer { from, to, amount }
    }
}
