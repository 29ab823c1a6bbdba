//! One thread per journal (per process) that sleeps on the journal's doorbell and wakes the
//! tasks waiting for its records.
//!
//! Why a thread and a futex: a writer in another process can only reach this process through
//! something the kernel knows about. The writer already stores into shared memory, so the
//! doorbell is a word in a shared mapping (see `journal::bell`): the writer's ring costs one
//! atomic add, and a `futex` wake-up only when a sleeper armed the bell. An executor cannot
//! wait on a futex, so one thread per journal does, for every task of the process waiting on
//! that journal, and turns a ring into `Waker::wake` calls. An idle journal costs that thread
//! a wake-up every [`STATUS_INTERVAL`], to see whether the writer died (a dead writer cannot
//! ring; the OS releases its lock, which is checked without taking it), and no task is woken
//! unless something changed.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::journal::bell;

/// How often the waiter thread looks whether a writer holds the journal.
pub(crate) const STATUS_INTERVAL: Duration = Duration::from_millis(100);

/// How often the waiter thread wakes its tasks when it cannot map the doorbell (no write
/// permission on the journal's directory or file, say): polling, as a last resort.
const POLL_WITHOUT_BELL: Duration = Duration::from_millis(2);

/// What a waiter thread and the tasks it serves share.
struct Inner {
    dir: PathBuf,
    wakers: Mutex<HashMap<u64, Waker>>,
    /// Whether a writer held the journal's lock when last looked.
    writer_alive: AtomicBool,
    stop: AtomicBool,
}

/// A handle on the waiter thread of one journal; the thread stops when the last handle goes.
pub(crate) struct Waiter {
    inner: Arc<Inner>,
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Waiter>>> {
    static WAITERS: OnceLock<Mutex<HashMap<PathBuf, Weak<Waiter>>>> = OnceLock::new();
    WAITERS.get_or_init(Default::default)
}

/// A process-unique id for a task's registration.
pub(crate) fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Waiter {
    /// The waiter of the journal in `dir`, shared by every stream of it in this process;
    /// started if none runs.
    pub(crate) fn for_dir(dir: &Path) -> std::io::Result<Arc<Waiter>> {
        let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let mut waiters = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiter) = waiters.get(&key).and_then(Weak::upgrade) {
            return Ok(waiter);
        }
        waiters.retain(|_, w| w.strong_count() > 0);
        let inner = Arc::new(Inner {
            writer_alive: AtomicBool::new(writer_alive(dir)),
            dir: dir.to_path_buf(),
            wakers: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        });
        let thread_inner = Arc::clone(&inner);
        std::thread::Builder::new()
            .name("kekbit-waiter".into())
            .spawn(move || run(&thread_inner))?;
        let waiter = Arc::new(Waiter { inner });
        waiters.insert(key, Arc::downgrade(&waiter));
        Ok(waiter)
    }

    /// Wakes `waker` at the next ring, or change of the writer's status (register before the
    /// last look for a record: a ring after the registration is never missed).
    pub(crate) fn register(&self, id: u64, waker: &Waker) {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        match wakers.get_mut(&id) {
            Some(known) if known.will_wake(waker) => {}
            _ => {
                wakers.insert(id, waker.clone());
            }
        }
    }

    /// Forgets a task's registration (a dropped stream).
    pub(crate) fn unregister(&self, id: u64) {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.remove(&id);
    }

    /// Whether a writer held the journal's lock when the thread last looked (at most
    /// [`STATUS_INTERVAL`] ago).
    pub(crate) fn writer_alive(&self) -> bool {
        self.inner.writer_alive.load(Ordering::Acquire)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        // The thread sees it within one wait (at most STATUS_INTERVAL): not joined, so that
        // dropping the last stream never blocks an executor thread.
        self.inner.stop.store(true, Ordering::Release);
    }
}

/// Whether a writer holds the lock of the journal in `dir`, asked without taking it.
fn writer_alive(dir: &Path) -> bool {
    let lock = dir.join(crate::journal::LOCK_FILE);
    File::open(lock)
        .ok()
        .and_then(|file| crate::mmap::lock_held(&file).ok())
        .unwrap_or(false)
}

/// The waiter thread: sleeps on the doorbell, wakes every registered task at each ring and
/// at each change of the writer's status.
fn run(inner: &Inner) {
    let mut bell = None;
    let mut rings_seen = None;
    let mut status_at = Instant::now();
    while !inner.stop.load(Ordering::Acquire) {
        if bell.is_none() {
            bell = bell::open(&inner.dir, false);
        }
        if status_at.elapsed() >= STATUS_INTERVAL {
            status_at = Instant::now();
            let alive = writer_alive(&inner.dir);
            if inner.writer_alive.swap(alive, Ordering::AcqRel) != alive {
                wake_all(inner);
            }
        }
        let Some(bell) = &bell else {
            // No bell (yet): with a writer there, poll; without one, only its arrival can
            // change anything, and the status check above sees it.
            if inner.writer_alive.load(Ordering::Acquire) {
                std::thread::sleep(POLL_WITHOUT_BELL);
                wake_all(inner);
            } else {
                std::thread::sleep(STATUS_INTERVAL);
            }
            continue;
        };
        // Armed before the count is compared: a ring after this wakes the futex below or
        // changes the word it waits on, so none is missed.
        let armed = bell.arm();
        if rings_seen != Some(armed >> 1) {
            rings_seen = Some(armed >> 1);
            wake_all(inner);
            continue;
        }
        let left = STATUS_INTERVAL.saturating_sub(status_at.elapsed());
        bell.wait(armed, left.max(Duration::from_millis(1)));
    }
}

fn wake_all(inner: &Inner) {
    let wakers: Vec<Waker> = {
        let mut wakers = inner.wakers.lock().unwrap_or_else(|p| p.into_inner());
        wakers.drain().map(|(_, waker)| waker).collect()
    };
    for waker in wakers {
        waker.wake();
    }
}
