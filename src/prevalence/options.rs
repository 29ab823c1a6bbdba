//! Options of the prevalent store.

use crate::journal::JournalOptions;

/// Options for opening a [`PrevalentStore`](super::PrevalentStore); every setter says its
/// default.
///
/// ```
/// use kekbit::journal::{Durability, JournalOptions};
/// use kekbit::prevalence::StoreOptions;
/// let options = StoreOptions::new()
///     .journal(JournalOptions::new().durability(Durability::EveryN(64)))
///     .keep_snapshots(3)
///     .prune_journal(false);
/// assert_eq!(options.snapshots_kept(), 3);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct StoreOptions {
    pub(crate) journal: JournalOptions,
    pub(crate) keep_snapshots: usize,
    pub(crate) prune_journal: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions::new()
    }
}

impl StoreOptions {
    /// The default options.
    ///
    /// ```
    /// let options = kekbit::prevalence::StoreOptions::new();
    /// assert_eq!(options.snapshots_kept(), 2);
    /// assert!(options.prunes_journal());
    /// ```
    pub fn new() -> StoreOptions {
        StoreOptions {
            journal: JournalOptions::new(),
            keep_snapshots: 2,
            prune_journal: true,
        }
    }

    /// Options of the command journal: segment size, durability policy (which decides when
    /// `execute` returns), recovery mode. Defaults to [`JournalOptions::new`].
    ///
    /// ```
    /// use kekbit::journal::{Durability, JournalOptions};
    /// let options = kekbit::prevalence::StoreOptions::new()
    ///     .journal(JournalOptions::new().durability(Durability::Never));
    /// # drop(options);
    /// ```
    pub fn journal(mut self, journal: JournalOptions) -> StoreOptions {
        self.journal = journal;
        self
    }

    /// How many snapshots to keep (at least 1). Defaults to 2, so that a damaged newest
    /// snapshot can fall back to the one before.
    ///
    /// ```
    /// let options = kekbit::prevalence::StoreOptions::new().keep_snapshots(5);
    /// assert_eq!(options.snapshots_kept(), 5);
    /// ```
    pub fn keep_snapshots(mut self, keep: usize) -> StoreOptions {
        self.keep_snapshots = keep.max(1);
        self
    }

    /// Whether taking a snapshot removes the journal segments no kept snapshot needs (those
    /// wholly before the oldest kept snapshot). Defaults to `true`.
    ///
    /// ```
    /// let options = kekbit::prevalence::StoreOptions::new().prune_journal(false);
    /// assert!(!options.prunes_journal());
    /// ```
    pub fn prune_journal(mut self, prune: bool) -> StoreOptions {
        self.prune_journal = prune;
        self
    }

    /// The number of snapshots kept.
    ///
    /// ```
    /// assert_eq!(kekbit::prevalence::StoreOptions::new().snapshots_kept(), 2);
    /// ```
    pub fn snapshots_kept(&self) -> usize {
        self.keep_snapshots
    }

    /// Whether snapshots prune the journal.
    ///
    /// ```
    /// assert!(kekbit::prevalence::StoreOptions::new().prunes_journal());
    /// ```
    pub fn prunes_journal(&self) -> bool {
        self.prune_journal
    }
}
