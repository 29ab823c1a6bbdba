//! The journal's background thread: prepares the next segments before they are needed (create,
//! reserve, prefault) and drops retired segments (unmapping costs time), so that neither
//! happens on an appending thread.

use std::collections::VecDeque;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use super::segment;
use super::Prefault;
use crate::core::{
    shm_writer_pending, take_for_recycling, ChannelError, EncoderHandler, Pooled, Populate,
    ShmWriter, PREFAULT_WINDOW,
};

/// Pruned segments' files kept to become the journal's next segments (docs/FORMAT.md,
/// "Recycled segments"): filled by pruning, emptied by preparing segments, shared by the
/// journal and its background thread. Files left in it are removed when it is dropped.
#[derive(Clone)]
pub(crate) struct Pool {
    files: Arc<Mutex<VecDeque<Pooled>>>,
    limit: usize,
    file_len: u64,
}

impl Pool {
    /// An empty pool of at most `limit` files of `file_len` bytes.
    pub(crate) fn new(limit: usize, file_len: u64) -> Pool {
        Pool {
            files: Arc::default(),
            limit,
            file_len,
        }
    }

    fn files(&self) -> std::sync::MutexGuard<'_, VecDeque<Pooled>> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many more files the pool takes.
    pub(crate) fn room(&self) -> usize {
        self.limit.saturating_sub(self.files().len())
    }

    /// Takes the pruned segment file at `path` for the pool, if it can be (see
    /// `take_for_recycling`; and only a file of the size new segments have). The caller
    /// syncs the directory, then [`fill`](Pool::fill)s the pool.
    pub(crate) fn take(&self, path: &Path) -> Option<Pooled> {
        let len = std::fs::metadata(path).ok()?.len();
        if len != self.file_len {
            return None;
        }
        take_for_recycling(path)
    }

    /// Adds files taken (and made durable) to the pool.
    pub(crate) fn fill(&self, taken: Vec<Pooled>) {
        self.files().extend(taken);
    }

    /// A file to make the next segment of, if one is kept that can be reused now: the
    /// oldest whose old writer, and every mapping made from it, is gone. Under
    /// `Durability::Never` the pending syncs of a pruned segment are dropped on this thread
    /// just after the prune, and a sync running when it pruned drops its own when done; a
    /// file still held waits in the pool for a later segment instead of being removed.
    fn next(&self) -> Option<Pooled> {
        let mut files = self.files();
        let at = files
            .iter()
            .position(|pooled| pooled.file_len() == self.file_len && !pooled.in_use())?;
        files.remove(at)
    }

    /// Removes every file kept.
    pub(crate) fn clear(&self) {
        let files: Vec<Pooled> = self.files().drain(..).collect();
        drop(files);
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("limit", &self.limit)
            .field("file_len", &self.file_len)
            .finish()
    }
}

/// What every new segment of a journal looks like.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSpec {
    pub(crate) dir: PathBuf,
    pub(crate) journal_id: u64,
    pub(crate) capacity: u64,
    pub(crate) max_record_len: u32,
    pub(crate) prefault: Prefault,
    /// log2 of the resynchronisation mark block (0: no marks).
    pub(crate) mark_shift: u8,
    /// Files to make new segments of before creating any.
    pub(crate) pool: Pool,
    /// Whether the journal syncs (its durability policy does, or a sync ran): new segments'
    /// mappings then cache their pages one page each from the start (see
    /// `WriteMap::cache_by_page`). Shared with the background thread.
    pub(crate) will_sync: Arc<AtomicBool>,
    /// Whether a writer that does not sync has the pages it moved past written back
    /// ([`JournalOptions::write_behind`](super::JournalOptions::write_behind)).
    pub(crate) write_behind: bool,
}

impl SegmentSpec {
    /// Whether new segments are made for a writer that syncs (see `will_sync`).
    fn syncs(&self) -> bool {
        self.will_sync.load(Ordering::Relaxed)
    }

    /// Notes that the journal syncs: segments made from now on cache their pages one page
    /// each from the start, as the segments of a policy that syncs do.
    pub(crate) fn note_sync(&self) {
        self.will_sync.store(true, Ordering::Relaxed);
    }

    /// Creates pending segment `id`, prefaulted as the journal's [`Prefault`] policy asks of
    /// a segment prepared `ahead` of need, or (`ahead` false) of one needed now, which is
    /// returned at once and mapped by its helper thread once it is linked. Under
    /// [`Prefault::Ahead`], a segment prepared ahead gets its first [`PREFAULT`] bytes
    /// mapped, not all of them: on a disk-backed file system every prefaulted page is a dirty
    /// page of zeros written back unless the writer overwrites it first.
    pub(crate) fn create_pending(
        &self,
        id: u64,
        ahead: bool,
    ) -> Result<ShmWriter<EncoderHandler>, ChannelError> {
        let header =
            segment::new_header(self, id).map_err(|reason| ChannelError::InvalidConfig {
                path: crate::core::storage_path(&self.dir, id),
                reason,
            })?;
        let populate = match (self.prefault, ahead) {
            (Prefault::Whole, true) => Populate::Whole,
            (Prefault::Whole, false) => Populate::Ahead {
                now: 0,
                window: u64::MAX,
            },
            (_, true) => Populate::Ahead {
                now: PREFAULT,
                window: PREFAULT_WINDOW,
            },
            (_, false) => Populate::Ahead {
                now: 0,
                window: PREFAULT_WINDOW,
            },
        };
        if let Some(pooled) = self.pool.next() {
            // A file that cannot be recycled (its old mapping not dropped yet, say) is
            // removed, and the segment created as if there had been none.
            if let Ok(writer) = shm_writer_pending(
                &self.dir,
                &header,
                populate,
                Some(pooled),
                self.syncs(),
                self.write_behind,
            ) {
                return Ok(writer);
            }
        }
        shm_writer_pending(
            &self.dir,
            &header,
            populate,
            None,
            self.syncs(),
            self.write_behind,
        )
    }
}

/// How much of a segment prepared ahead is prefaulted before it is handed over, under
/// [`Prefault::Ahead`].
const PREFAULT: u64 = 16 << 20;

type Prepared = (u64, Result<ShmWriter<EncoderHandler>, ChannelError>);

enum Job {
    Prepare(u64),
    Retire(Box<dyn Send>),
}

/// Handle on the background thread.
pub(crate) struct Helper {
    spec: SegmentSpec,
    preallocate: bool,
    jobs: Option<Sender<Job>>,
    prepared: Receiver<Prepared>,
    thread: Option<JoinHandle<()>>,
    /// Segments asked for and not yet received, oldest first.
    requested: VecDeque<u64>,
    /// Segments received and not yet taken, oldest first.
    ready: VecDeque<Prepared>,
}

impl Helper {
    /// Starts the thread. With `preallocate` false it only retires segments, and
    /// [`take`](Helper::take) creates each segment when asked. Fails if the thread cannot be
    /// spawned.
    pub(crate) fn start(spec: SegmentSpec, preallocate: bool) -> std::io::Result<Helper> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, prepared) = mpsc::channel::<Prepared>();
        let theirs = spec.clone();
        let thread = thread::Builder::new()
            .name("kekbit-journal".into())
            .spawn(move || {
                for job in job_rx {
                    match job {
                        Job::Prepare(id) => {
                            let _ = done_tx.send((id, theirs.create_pending(id, true)));
                        }
                        Job::Retire(thing) => drop(thing),
                    }
                }
            })?;
        Ok(Helper {
            spec,
            preallocate,
            jobs: Some(jobs),
            prepared,
            thread: Some(thread),
            requested: VecDeque::new(),
            ready: VecDeque::new(),
        })
    }

    /// Asks for each segment of `ids` not yet asked for to be prepared in the background,
    /// oldest first.
    pub(crate) fn prepare(&mut self, ids: RangeInclusive<u64>) {
        if !self.preallocate {
            return;
        }
        let Some(jobs) = &self.jobs else {
            return;
        };
        let newest = self.requested.back().or(self.ready.back().map(|r| &r.0));
        let first = match newest {
            Some(&newest) => (*ids.start()).max(newest + 1),
            None => *ids.start(),
        };
        for id in first..=*ids.end() {
            if jobs.send(Job::Prepare(id)).is_err() {
                return;
            }
            self.requested.push_back(id);
        }
    }

    /// Notes that the journal syncs (see [`SegmentSpec::note_sync`]).
    pub(crate) fn note_sync(&self) {
        self.spec.note_sync();
    }

    /// Segment `id`, pending and mapped: the one prepared in the background (waiting for it
    /// if it is not ready yet), or one created now. Segments prepared ahead with lower ids
    /// (none, when the journal takes them in order) are removed.
    pub(crate) fn take(&mut self, id: u64) -> Result<ShmWriter<EncoderHandler>, ChannelError> {
        loop {
            while self.ready.front().is_some_and(|r| r.0 < id) {
                if let Some((_, Ok(writer))) = self.ready.pop_front() {
                    remove_unused(writer);
                }
            }
            if self.ready.front().is_some_and(|r| r.0 == id) {
                if let Some((_, prepared)) = self.ready.pop_front() {
                    return prepared;
                }
            }
            if !self.ready.is_empty() || !self.receive_one() {
                return self.spec.create_pending(id, false);
            }
        }
    }

    /// Waits until every segment asked for is prepared. Returns the first error met
    /// preparing one; that segment is then created when it is needed instead.
    pub(crate) fn wait_prepared(&mut self) -> Result<(), ChannelError> {
        while self.receive_one() {}
        match self.ready.iter().position(|r| r.1.is_err()) {
            Some(failed) => match self.ready.remove(failed) {
                Some((_, Err(e))) => Err(e),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Receives the oldest segment asked for into `ready`; false if none is outstanding.
    fn receive_one(&mut self) -> bool {
        if self.requested.pop_front().is_none() {
            return false;
        }
        match self.prepared.recv() {
            Ok(prepared) => {
                self.ready.push_back(prepared);
                true
            }
            // The thread is gone: nothing more will come.
            Err(_) => {
                self.requested.clear();
                false
            }
        }
    }

    /// Drops `thing` on the background thread.
    pub(crate) fn retire<T: Send + 'static>(&self, thing: T) {
        if let Some(jobs) = &self.jobs {
            // If the thread is gone, the job (and `thing`) is dropped here instead.
            let _ = jobs.send(Job::Retire(Box::new(thing)));
        }
    }

    /// Removes the segments prepared ahead, if any: they hold no records.
    pub(crate) fn discard_prepared(&mut self) {
        while self.receive_one() {}
        for (_, prepared) in self.ready.drain(..) {
            if let Ok(writer) = prepared {
                remove_unused(writer);
            }
        }
    }
}

/// Unmaps and deletes a segment prepared ahead and never linked.
fn remove_unused(writer: ShmWriter<EncoderHandler>) {
    let path = writer.path().to_path_buf();
    drop(writer);
    let _ = std::fs::remove_file(path);
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.discard_prepared();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.spec.pool.clear();
    }
}
