//! Creating and opening an image, and bringing it up to date from the journal.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytemuck::Pod;

use super::dirty::{DirtyPages, PAGE};
use super::file::{self, area_len, JOURNAL_DIR};
use super::header::{Layout, Slot, DATA_OFFSET};
use super::redo::{self, REDO_HEADER_LEN};
use super::{ImageError, ImageOptions, MappedVec, OpenReport};
use crate::journal::{Journal, JournalError};
use crate::mmap::CowMap;

/// The header fields `T` and the options fix, after checking `T` can be stored.
fn layout<T: Pod>(path: &Path, options: &ImageOptions<T>) -> Result<Layout, ImageError> {
    let (size, align) = (size_of::<T>(), align_of::<T>());
    let unsupported = |reason: String| ImageError::Unsupported {
        path: path.to_path_buf(),
        reason,
    };
    if size == 0 {
        return Err(unsupported(
            "zero-sized element types cannot be stored".into(),
        ));
    }
    if align > PAGE || size > u32::MAX as usize {
        return Err(unsupported(format!(
            "element size {size} or alignment {align} is too large (alignment at most {PAGE})"
        )));
    }
    Ok(Layout {
        elem_size: size as u32,
        elem_align: align as u32,
        type_tag: options.type_tag,
        type_version: options.type_version,
    })
}

fn open_journal<T>(dir: &Path, options: &ImageOptions<T>) -> Result<Journal, ImageError> {
    let jdir = dir.join(JOURNAL_DIR);
    match options.journal.clone().open(&jdir) {
        Ok(journal) => {
            // The image closes after a checkpoint, which made every record durable: its
            // journal's seal is made durable too, so that reopening has nothing to sync.
            journal.close_durably();
            Ok(journal)
        }
        Err(JournalError::Locked { dir }) => Err(ImageError::Locked { path: dir }),
        Err(e) => Err(e.into()),
    }
}

/// The most elements one redo record carries.
fn chunk_elems<T>(path: &Path, journal: &Journal) -> Result<usize, ImageError> {
    let max = journal.max_record_len() as usize;
    let elems = max.saturating_sub(REDO_HEADER_LEN) / size_of::<T>();
    if elems == 0 {
        return Err(ImageError::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "a journal record of at most {max} bytes cannot carry one {}-byte element",
                size_of::<T>()
            ),
        });
    }
    Ok(elems)
}

pub(super) fn create<T: Pod>(
    dir: &Path,
    options: ImageOptions<T>,
) -> Result<MappedVec<T>, ImageError> {
    let path = dir.join(file::IMAGE_FILE);
    let layout = layout(&path, &options)?;
    crate::core::make_dir_durable(dir).map_err(|(path, action, source)| ImageError::Io {
        path,
        action,
        source,
    })?;
    let area =
        area_len(options.capacity, size_of::<T>()).ok_or_else(|| ImageError::Unsupported {
            path: path.clone(),
            reason: format!("capacity {} is too large", options.capacity),
        })?;
    // The journal's lock first: it keeps a concurrent `create` out until this one is done,
    // so the check for an existing image below cannot race.
    let journal = open_journal(dir, &options)?;
    if path.exists() || journal.next_sequence() != 0 {
        return Err(ImageError::AlreadyExists { path });
    }
    let capacity = (area / size_of::<T>()) as u64;
    let (path, file, slot) = file::create(dir, layout, area, capacity)?;
    assemble(path, file, (0, slot), journal)
}

pub(super) fn open<T: Pod>(
    dir: &Path,
    options: ImageOptions<T>,
) -> Result<MappedVec<T>, ImageError> {
    let layout = layout(&dir.join(file::IMAGE_FILE), &options)?;
    let (path, file) = file::open(dir)?;
    let current = file::read_header(&path, &file, &layout)?;
    let journal = open_journal(dir, &options)?;
    let mut image = assemble(path, file, current, journal)?;
    // Poisoned until replay completes: if it fails, dropping the image must not checkpoint
    // a partly replayed state as complete.
    image.poisoned = true;
    image.replay()?;
    image.poisoned = false;
    Ok(image)
}

/// Maps the data area the header describes and builds the image (not yet replayed).
fn assemble<T: Pod>(
    path: PathBuf,
    file: File,
    (slot_index, slot): (usize, Slot),
    journal: Journal,
) -> Result<MappedVec<T>, ImageError> {
    let area = area_len(slot.capacity, size_of::<T>()).expect("checked by read_header");
    let map = CowMap::map(&file, DATA_OFFSET, area)
        .map_err(file::io_err(&path, "mapping the image's data area"))?;
    let chunk = chunk_elems::<T>(&path, &journal)?;
    Ok(MappedVec {
        len: slot.len as usize,
        capacity: area / size_of::<T>(),
        report: OpenReport {
            checkpoint: slot.checkpoint,
            replayed: 0,
        },
        path,
        file,
        map,
        journal,
        slot,
        slot_index,
        dirty: DirtyPages::default(),
        record: Vec::new(),
        chunk,
        poisoned: false,
        _type: std::marker::PhantomData,
    })
}

impl<T: Pod> MappedVec<T> {
    /// Applies the journal's records from the header's checkpoint to its end.
    fn replay(&mut self) -> Result<(), ImageError> {
        let checkpoint = self.slot.checkpoint;
        let next = self.journal.next_sequence();
        let first = self.journal.first_sequence()?;
        let dir = self.journal.dir().to_path_buf();
        if checkpoint > next || (checkpoint < next && first > checkpoint) {
            return Err(ImageError::JournalGap {
                dir,
                checkpoint,
                first,
                next,
            });
        }
        let mut reader = self.journal.reader(checkpoint)?;
        let mut expected = checkpoint;
        while expected < next {
            let Some((seq, record)) = reader.try_next()? else {
                return Err(ImageError::JournalGap {
                    dir,
                    checkpoint: expected,
                    first,
                    next,
                });
            };
            let bad = |reason: String| ImageError::BadRecord {
                dir: dir.clone(),
                seq,
                reason,
            };
            let redo = redo::decode(record, size_of::<T>()).map_err(bad)?;
            if redo.scatter {
                if redo.new_len != self.len as u64 {
                    return Err(bad(format!(
                        "a scatter keeps the length, {}, but names {}",
                        self.len, redo.new_len
                    )));
                }
                for (index, bytes) in redo::scatter_entries(&redo, size_of::<T>()) {
                    self.apply(redo.new_len, index, bytes)?;
                }
                expected = seq + 1;
                continue;
            }
            let count = (redo.bytes.len() / size_of::<T>()) as u64;
            if redo.new_len > self.len as u64
                && (redo.index > self.len as u64 || redo.index + count != redo.new_len)
            {
                return Err(bad(format!(
                    "grows the image from {} to {} without writing every new element",
                    self.len, redo.new_len
                )));
            }
            self.apply(redo.new_len, redo.index, redo.bytes)?;
            expected = seq + 1;
        }
        self.report.replayed = next - checkpoint;
        Ok(())
    }
}
