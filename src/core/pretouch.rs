//! Prefaulting the writer's pages ahead of it, on a background thread.
//!
//! A store to a page of a shared file mapping that is not yet mapped writable costs a page
//! fault (allocation, zeroing, file-system block mapping) on the append path. A helper thread
//! asks the kernel to populate the pages in a window ahead of the writer
//! (`MADV_POPULATE_WRITE`), which maps them without touching their bytes, so it cannot race
//! with the writer or with readers. Best effort: where the kernel refuses, the thread stops
//! and the writer takes the faults itself.
//!
//! One thread maps pages at a bounded rate (about one 4 KiB page per microsecond on the
//! virtual machines we measured, so about 4 GB/s): a writer streaming large records can
//! overtake it. Callers that can pay the faults ahead of time use `ShmWriter::prefault`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crate::mmap::Populator;

/// Bytes populated per call, and how far the writer moves between wake-ups of the helper.
const CHUNK: u64 = 256 << 10;
/// How far ahead of the writer the window reaches by default.
pub(crate) const AHEAD: u64 = 16 << 20;

struct Shared {
    writer_at: AtomicU64,
    stop: AtomicBool,
    armed: AtomicBool,
}

/// The running helper; stops and joins it when dropped.
pub(crate) struct Pretoucher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    next_signal: u64,
}

impl Pretoucher {
    /// Starts populating `[from, end)` of the mapping, staying up to `window` bytes ahead of
    /// the offset last passed to [`advance`](Pretoucher::advance). Unless `armed`, the thread
    /// waits for [`arm`](Pretoucher::arm) before it populates anything (a segment prepared
    /// ahead of need gets its thread then, but no pages before it is used). `None` if no
    /// thread could be started (the writer then simply takes its own page faults).
    pub(crate) fn start(
        populator: Populator,
        from: u64,
        end: u64,
        window: u64,
        armed: bool,
    ) -> Option<Pretoucher> {
        let shared = Arc::new(Shared {
            writer_at: AtomicU64::new(from),
            stop: AtomicBool::new(false),
            armed: AtomicBool::new(armed),
        });
        let theirs = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("kekbit-pretouch".into())
            .spawn(move || run(&populator, &theirs, from, end, window))
            .ok()?;
        Some(Pretoucher {
            shared,
            thread: Some(thread),
            next_signal: from + CHUNK,
        })
    }

    /// Lets a thread started unarmed begin populating.
    pub(crate) fn arm(&self) {
        self.shared.armed.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }

    /// Tells the helper the writer reached mapping offset `at`; wakes it once per `CHUNK`.
    #[inline]
    pub(crate) fn advance(&mut self, at: u64) {
        if at >= self.next_signal {
            self.next_signal = at + CHUNK;
            self.shared.writer_at.store(at, Ordering::Relaxed);
            if let Some(t) = &self.thread {
                t.thread().unpark();
            }
        }
    }
}

fn run(populator: &Populator, shared: &Shared, from: u64, end: u64, window: u64) {
    while !shared.armed.load(Ordering::Acquire) {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        thread::park();
    }
    let mut done = from - from % 4096;
    while !shared.stop.load(Ordering::Relaxed) {
        let writer_at = shared.writer_at.load(Ordering::Relaxed);
        // A writer that overtook the helper has faulted those pages in itself: skip them, so
        // the two do not fault the same pages and the helper gets back in front.
        done = done.max(writer_at - writer_at % 4096);
        let want = end.min(writer_at.saturating_add(window));
        while done < want && !shared.stop.load(Ordering::Relaxed) {
            let n = CHUNK.min(want - done);
            if populator.populate(done as usize, n as usize).is_err() {
                return;
            }
            done += n;
        }
        if done >= end {
            return;
        }
        thread::park();
    }
}

impl Drop for Pretoucher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
