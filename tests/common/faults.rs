//! Helpers shared by the reliability tests that count failure points
//! (`reliability_full_disk`, `reliability_sync_errors`): the lock that serializes tests using
//! the process-wide I/O observer and the guard that installs one, the violation tally, record
//! payloads, reading a journal back, and the prevalent store's state and command.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
#[cfg(feature = "fault-injection")]
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

#[cfg(feature = "fault-injection")]
use kekbit::fault::{set_observer, IoObserver};
use kekbit::journal::{JournalError, JournalReader};
use kekbit::prevalence::Command;
use serde::{Deserialize, Serialize};

/// Serializes the tests of this binary (the I/O observer is process-wide).
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Installs an I/O observer for the whole process (`kekbit::fault::set_observer`) until the
/// guard is dropped.
#[cfg(feature = "fault-injection")]
pub struct Installed;

#[cfg(feature = "fault-injection")]
impl Installed {
    pub fn new<O: IoObserver + 'static>(observer: &Arc<O>) -> Installed {
        set_observer(Some(Arc::clone(observer) as Arc<dyn IoObserver>));
        Installed
    }
}

#[cfg(feature = "fault-injection")]
impl Drop for Installed {
    fn drop(&mut self) {
        set_observer(None);
    }
}

/// Failure points covered and invariants broken, printed at the end.
pub struct Tally {
    name: &'static str,
    /// Failure points exercised so far.
    pub covered: u64,
    violations: Vec<String>,
    notes: BTreeMap<String, u64>,
    started: Instant,
}

impl Tally {
    pub fn new(name: &'static str) -> Tally {
        Tally {
            name,
            covered: 0,
            violations: Vec::new(),
            notes: BTreeMap::new(),
            started: Instant::now(),
        }
    }

    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            let message = what();
            eprintln!("VIOLATION [{}]: {message}", self.name);
            self.violations.push(message);
        }
    }

    /// Counts an observation that is not a violation (printed at the end).
    pub fn note(&mut self, what: &str) {
        *self.notes.entry(what.to_string()).or_insert(0) += 1;
    }

    pub fn finish(self) {
        println!(
            "{}: failure points covered {}, violations {} ({:.1?})",
            self.name,
            self.covered,
            self.violations.len(),
            self.started.elapsed()
        );
        for (what, n) in &self.notes {
            println!("  {what}: {n}");
        }
        assert!(
            self.violations.is_empty(),
            "{}: {} violation(s), first: {}",
            self.name,
            self.violations.len(),
            self.violations[0]
        );
    }
}

/// Record `seq`: 8 to `max` bytes, starting with `seq`, the rest derived from it.
pub fn payload(seq: u64, max: usize) -> Vec<u8> {
    let mut x = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = 8 + (next() % (max as u64 - 7)) as usize;
    let mut bytes = seq.to_le_bytes().to_vec();
    while bytes.len() < len {
        bytes.push(next() as u8);
    }
    bytes
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

pub fn temporaries(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// Every record of the journal in `dir`, with its sequence number.
pub fn read_all(dir: &Path) -> Result<Vec<(u64, Vec<u8>)>, JournalError> {
    let mut reader = JournalReader::open(dir, 0)?;
    let mut records = Vec::new();
    let mut idle = 0;
    while idle < 3 {
        match reader.try_next()? {
            Some((seq, record)) => {
                records.push((seq, record.to_vec()));
                idle = 0;
            }
            None => idle += 1,
        }
    }
    Ok(records)
}

/// Checks that the journal in `dir` holds exactly records `0..count` as `payload` makes them.
pub fn check_records(tally: &mut Tally, dir: &Path, count: u64, max: usize, when: &str) {
    match read_all(dir) {
        Ok(records) => {
            tally.check(records.len() as u64 == count, || {
                format!("{when}: {} records read, {count} expected", records.len())
            });
            for (i, (seq, record)) in records.iter().enumerate() {
                if *seq != i as u64 || *record != payload(i as u64, max) {
                    tally.check(false, || {
                        format!("{when}: record {i} read as sequence {seq}, wrong or misplaced")
                    });
                    break;
                }
            }
        }
        Err(e) => tally.check(false, || format!("{when}: reading the journal failed: {e}")),
    }
}

/// The state of the prevalent-store tests: every command's id and blob, in order.
pub type Items = Vec<(u64, Vec<u8>)>;

/// The command of the prevalent-store tests: adds its id and blob to [`Items`] and returns
/// their count.
#[derive(Serialize, Deserialize)]
pub struct Put {
    pub id: u64,
    pub blob: Vec<u8>,
}

impl Command<Items> for Put {
    type Output = usize;

    fn apply(&self, items: &mut Items) -> usize {
        items.push((self.id, self.blob.clone()));
        items.len()
    }
}

/// The item command `id` adds: `id` and [`payload`]`(id, max)`.
pub fn item(id: u64, max: usize) -> (u64, Vec<u8>) {
    (id, payload(id, max))
}

/// Command `id`, which adds [`item`]`(id, max)`.
pub fn put(id: u64, max: usize) -> Put {
    let (id, blob) = item(id, max);
    Put { id, blob }
}
