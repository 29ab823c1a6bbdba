//! Async durable appends: futures resolved by the journal's durability callbacks, so that no
//! thread waits per append.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::journal::{AppendError, Journal, Resolve};

/// What the journal's callback and the future share: the result once known, and the waker
/// of the task awaiting it.
#[derive(Default)]
struct Slot(Mutex<SlotState>);

#[derive(Default)]
struct SlotState {
    result: Option<Result<u64, AppendError>>,
    waker: Option<Waker>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Resolve for Slot {
    fn resolve(&self, result: Result<u64, AppendError>) {
        let waker = {
            let mut slot = self.lock();
            slot.result = Some(result);
            slot.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A future resolving to a record's sequence number once that record (and every one before
/// it) is durable, or to the error that made that impossible. Made by
/// [`Journal::append_durable`] and [`Journal::durable`] (feature `async`).
///
/// The append is done when the future is made, not when it is first polled, and dropping
/// the future does **not** cancel it: the record stays appended, readers see it, and it
/// becomes durable with the next sync like any other. Only the wait is abandoned.
#[must_use = "the record is appended already; await the future to know it is durable"]
pub struct Durable {
    slot: Arc<Slot>,
}

impl Durable {
    fn ready(result: Result<u64, AppendError>) -> Durable {
        let slot = Slot::default();
        slot.lock().result = Some(result);
        Durable {
            slot: Arc::new(slot),
        }
    }

    /// A pending future, and its slot for the journal to resolve.
    fn pending() -> (Durable, Arc<dyn Resolve>) {
        let slot = Arc::new(Slot::default());
        let resolve: Arc<dyn Resolve> = Arc::clone(&slot) as _;
        (Durable { slot }, resolve)
    }
}

impl Future for Durable {
    type Output = Result<u64, AppendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.lock();
        if let Some(result) = slot.result.take() {
            return Poll::Ready(result);
        }
        match &slot.waker {
            Some(known) if known.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let done = self.slot.lock().result.is_some();
        f.debug_struct("Durable").field("resolved", &done).finish()
    }
}

impl Journal {
    /// Appends `record` now, and returns a future that resolves to its sequence number once
    /// it is durable, whatever the durability policy (feature `async`). The wait blocks no
    /// thread: the record's durability is a callback of the journal's group commit (see
    /// [`when_durable`](Journal::when_durable)), fired by the thread whose sync covered it,
    /// so any number of tasks appending at once share syncs.
    ///
    /// Cancelling (dropping) the future does not cancel the append: the record is appended
    /// before this returns and stays appended; see [`Durable`].
    ///
    /// ```
    /// use kekbit::journal::Journal;
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::open(dir.path()).unwrap();
    /// let seq = journal.append_durable(b"acknowledged").await.unwrap();
    /// assert_eq!(seq, 0);
    /// assert!(journal.durable_count() >= 1);
    /// # });
    /// ```
    pub fn append_durable(&self, record: &[u8]) -> Durable {
        let (future, resolve) = Durable::pending();
        match self.append_then_resolve(record, resolve) {
            Ok(_) => future,
            Err(e) => Durable::ready(Err(e)),
        }
    }

    /// A future that resolves once record `seq` (appended already) is durable (feature
    /// `async`); as [`wait_durable`](Journal::wait_durable), without blocking a thread.
    ///
    /// ```
    /// use kekbit::journal::{Durability, Journal};
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let journal = Journal::options().durability(Durability::Never).open(dir.path()).unwrap();
    /// let seq = journal.append(b"x").unwrap();
    /// assert_eq!(journal.durable(seq).await.unwrap(), 0);
    /// # });
    /// ```
    pub fn durable(&self, seq: u64) -> Durable {
        let (future, resolve) = Durable::pending();
        self.when_durable_resolve(seq, resolve);
        future
    }
}
