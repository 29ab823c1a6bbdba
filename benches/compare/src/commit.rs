//! Leader-based group commit for the two raw logs (W4): the first thread that needs a sync
//! becomes the leader and syncs everything appended so far; threads arriving meanwhile wait
//! for it and return if its sync covered them, or one of them leads the next one.

use std::io;
use std::sync::{Condvar, Mutex};

#[derive(Default)]
struct State {
    /// Records `[0, durable)` are durable.
    durable: u64,
    /// A thread is syncing now.
    leading: bool,
    failed: bool,
}

#[derive(Default)]
pub struct GroupCommit {
    state: Mutex<State>,
    changed: Condvar,
}

impl GroupCommit {
    /// Returns once records `[0, target)` are durable. `sync` runs on the leader's thread
    /// without the group-commit lock held, and returns how many records it made durable.
    pub fn through(&self, target: u64, sync: impl FnOnce() -> io::Result<u64>) -> io::Result<()> {
        let mut sync = Some(sync);
        let mut state = self.state.lock().unwrap();
        loop {
            if state.failed {
                return Err(io::Error::other("an earlier sync failed"));
            }
            if state.durable >= target {
                return Ok(());
            }
            if !state.leading {
                let Some(sync) = sync.take() else {
                    // Already led once and still not covered: cannot happen, since the leader
                    // syncs everything appended before it started.
                    return Err(io::Error::other("sync did not cover its own record"));
                };
                state.leading = true;
                drop(state);
                let result = sync();
                state = self.state.lock().unwrap();
                state.leading = false;
                match result {
                    Ok(n) => state.durable = state.durable.max(n),
                    Err(e) => {
                        state.failed = true;
                        self.changed.notify_all();
                        return Err(e);
                    }
                }
                self.changed.notify_all();
                continue;
            }
            state = self.changed.wait(state).unwrap();
        }
    }
}
