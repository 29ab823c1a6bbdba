//! The background thread of [`Durability::Interval`](super::Durability::Interval): runs a
//! sync at a fixed interval until stopped or until the sync says to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Handle on the flusher thread; dropping it stops the thread and waits for it.
pub(crate) struct IntervalFlusher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl IntervalFlusher {
    /// Starts a thread that calls `sync` every `every` until `sync` returns `false` or the
    /// flusher is dropped. Fails if the thread cannot be spawned.
    pub(crate) fn start(
        every: Duration,
        mut sync: impl FnMut() -> bool + Send + 'static,
    ) -> std::io::Result<IntervalFlusher> {
        let stop = Arc::new(AtomicBool::new(false));
        let theirs = Arc::clone(&stop);
        let builder = thread::Builder::new().name("kekbit-flusher".into());
        #[cfg(test)]
        if tests::FAIL_SPAWN.with(|f| f.get()) {
            return Err(std::io::Error::other("thread spawn refused by the test"));
        }
        let thread = builder.spawn(move || {
            while !theirs.load(Ordering::Relaxed) {
                thread::park_timeout(every);
                if theirs.load(Ordering::Relaxed) || !sync() {
                    break;
                }
            }
        })?;
        Ok(IntervalFlusher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for IntervalFlusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    thread_local! {
        /// Makes [`IntervalFlusher::start`](super::IntervalFlusher::start) fail on this
        /// thread, as a spawn does when the process is out of threads or memory.
        pub(crate) static FAIL_SPAWN: Cell<bool> = const { Cell::new(false) };
    }
}
