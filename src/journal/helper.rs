//! The journal's background thread: prepares the next segment before it is needed (create,
//! reserve, prefault) and drops retired segments (unmapping costs time), so that neither
//! happens on an appending thread.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle};

use super::segment;
use crate::core::{shm_writer_pending, ChannelError, EncoderHandler, ShmWriter};

/// What every new segment of a journal looks like.
#[derive(Debug, Clone)]
pub(crate) struct SegmentSpec {
    pub(crate) dir: PathBuf,
    pub(crate) journal_id: u64,
    pub(crate) capacity: u64,
    pub(crate) max_record_len: u32,
}

impl SegmentSpec {
    /// Creates pending segment `id`. With `prefault`, also maps the first [`PREFAULT`]
    /// bytes of its data area, as a segment prepared ahead of need does (the writer's own
    /// helper thread keeps mapping ahead from there); not the whole segment, since on a
    /// disk-backed file system every prefaulted page is a dirty page of zeros written back
    /// unless the writer overwrites it first.
    pub(crate) fn create_pending(
        &self,
        id: u64,
        prefault: bool,
    ) -> Result<ShmWriter<EncoderHandler>, ChannelError> {
        let header = segment::new_header(self.journal_id, id, self.capacity, self.max_record_len);
        let writer = shm_writer_pending(&self.dir, &header)?;
        if prefault {
            // Best effort: a segment that could not be prefaulted still works.
            let _ = writer.prefault_ahead(PREFAULT);
        }
        Ok(writer)
    }
}

/// How much of a segment prepared ahead is prefaulted before it is handed over.
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
    requested: Option<u64>,
}

impl Helper {
    /// Starts the thread. With `preallocate` false it only retires segments, and
    /// [`take`](Helper::take) creates each segment when asked.
    pub(crate) fn start(spec: SegmentSpec, preallocate: bool) -> Helper {
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
            })
            .ok();
        Helper {
            spec,
            preallocate,
            jobs: thread.as_ref().map(|_| jobs),
            prepared,
            thread,
            requested: None,
        }
    }

    /// Asks for segment `id` to be prepared in the background.
    pub(crate) fn prepare(&mut self, id: u64) {
        if !self.preallocate || self.requested.is_some() {
            return;
        }
        if let Some(jobs) = &self.jobs {
            if jobs.send(Job::Prepare(id)).is_ok() {
                self.requested = Some(id);
            }
        }
    }

    /// Segment `id`, pending and mapped: the one prepared in the background (waiting for it
    /// if it is not ready yet), or one created now.
    pub(crate) fn take(&mut self, id: u64) -> Result<ShmWriter<EncoderHandler>, ChannelError> {
        if self.requested == Some(id) {
            self.requested = None;
            if let Ok((got, prepared)) = self.prepared.recv() {
                if got == id {
                    return prepared;
                }
            }
        }
        self.spec.create_pending(id, false)
    }

    /// Drops `thing` on the background thread.
    pub(crate) fn retire<T: Send + 'static>(&self, thing: T) {
        if let Some(jobs) = &self.jobs {
            // If the thread is gone, the job (and `thing`) is dropped here instead.
            let _ = jobs.send(Job::Retire(Box::new(thing)));
        }
    }

    /// Removes the segment prepared ahead, if any: it holds no records.
    pub(crate) fn discard_prepared(&mut self) {
        if self.requested.take().is_none() {
            return;
        }
        if let Ok((_, Ok(writer))) = self.prepared.recv() {
            let path = writer.path().to_path_buf();
            drop(writer);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.discard_prepared();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
