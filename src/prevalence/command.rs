//! Commands: the only way a prevalent state changes.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A change to a state of type `S`, journaled before it is applied and applied again, from
/// the journal, after every restart.
///
/// # The contract
///
/// - **Deterministic.** `apply` must compute the same change and the same output from the
///   same state every time: no clock, no randomness, no I/O, no reading of anything but
///   `self` and `state`. Put the time or a random value *in the command* when it is created.
/// - **Failing the same way.** A command may fail (return an error in its `Output`), but it
///   must then fail the same way on replay, leaving the state as it found it or changed in
///   the same way.
/// - **No panics.** A panic in `apply` leaves the state unknown; the store refuses further
///   work and the command, already journaled, would panic again on every restart.
///
/// ```
/// use kekbit::prevalence::Command;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Deposit { account: usize, amount: u64 }
///
/// impl Command<Vec<u64>> for Deposit {
///     type Output = Result<u64, String>;
///     fn apply(&self, balances: &mut Vec<u64>) -> Self::Output {
///         let balance = balances.get_mut(self.account).ok_or("no such account")?;
///         *balance += self.amount;
///         Ok(*balance)
///     }
/// }
/// let mut balances = vec![0, 10];
/// assert_eq!(Deposit { account: 1, amount: 5 }.apply(&mut balances), Ok(15));
/// assert!(Deposit { account: 7, amount: 5 }.apply(&mut balances).is_err());
/// ```
pub trait Command<S>: Serialize + DeserializeOwned {
    /// What executing the command returns to its caller.
    type Output;

    /// Applies the command to the state.
    fn apply(&self, state: &mut S) -> Self::Output;
}
