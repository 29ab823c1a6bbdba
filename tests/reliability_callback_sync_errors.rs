//! Durability callbacks under sync failures injected through the I/O seam (`kekbit::fault`):
//! a journal whose syncs start failing at the k-th sync operation, for every k, while two
//! threads append with `append_then`. Checked each time: every registered callback fires
//! exactly once; those that got `Ok` are a prefix of the sequence numbers (nothing reported
//! durable after a gap or after a failure); every other one got `SyncFailed` or `Poisoned`;
//! the records acknowledged `Ok` are all found, with their contents, when the journal is
//! reopened. Prints the failure points covered and the violations (0).
#![cfg(feature = "fault-injection")]

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use kekbit::fault::{IoObserver, IoOp};
use kekbit::journal::{AppendError, Durability, Journal, JournalReader};

#[path = "common/faults.rs"]
mod faults;
use faults::{serial, Installed, Tally};

/// Fails every sync operation from the `fail_from`-th one (counting from 0) on.
struct FailFrom {
    seen: AtomicU64,
    fail_from: u64,
}

impl IoObserver for FailFrom {
    fn before(&self, op: &IoOp<'_>) -> io::Result<()> {
        if !op.is_sync() {
            return Ok(());
        }
        if self.seen.fetch_add(1, Ordering::SeqCst) >= self.fail_from {
            return Err(io::Error::other("injected EIO"));
        }
        Ok(())
    }
}

fn record(thread: u64, i: u64) -> Vec<u8> {
    format!("thread {thread} record {i:04}").into_bytes()
}

/// Runs the workload with syncs failing from `fail_from` on; returns how many sync
/// operations were attempted.
fn run(tally: &mut Tally, fail_from: u64) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let observer = Arc::new(FailFrom {
        seen: AtomicU64::new(0),
        fail_from,
    });
    let installed = Installed::new(&observer);
    let journal = match Journal::options()
        .segment_capacity(4096)
        .max_record_len(64)
        .durability(Durability::Never)
        .open(dir.path())
    {
        Ok(j) => Arc::new(j),
        Err(_) => {
            // Opening itself syncs; a failure there is the open's business.
            tally.note("open failed");
            return observer.seen.load(Ordering::SeqCst);
        }
    };
    // seq -> (thread, i, result)
    type Fired = BTreeMap<u64, Vec<(Vec<u8>, Result<u64, String>)>>;
    let fired: Arc<Mutex<Fired>> = Arc::default();
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..2u64)
        .map(|t| {
            let journal = Arc::clone(&journal);
            let fired = Arc::clone(&fired);
            let tx = tx.clone();
            thread::spawn(move || {
                let mut registered = BTreeMap::new();
                for i in 0..150 {
                    let fired = Arc::clone(&fired);
                    let tx = tx.clone();
                    let bytes = record(t, i);
                    let mine = bytes.clone();
                    let appended = journal.append_then(&bytes, move |r| {
                        let r = r.map_err(|e| match e {
                            AppendError::SyncFailed { .. } => "SyncFailed".to_string(),
                            AppendError::Poisoned { .. } => "Poisoned".to_string(),
                            other => format!("{other:?}"),
                        });
                        let seq = *r.as_ref().unwrap_or(&u64::MAX);
                        fired
                            .lock()
                            .unwrap()
                            .entry(seq)
                            .or_default()
                            .push((mine, r));
                        tx.send(()).unwrap();
                    });
                    if let Ok(seq) = appended {
                        registered.insert(seq, bytes);
                    }
                }
                registered
            })
        })
        .collect();
    drop(tx);
    let registered: BTreeMap<u64, Vec<u8>> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let mut count = 0;
    while count < registered.len() {
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            tally.check(false, || {
                format!(
                    "fail_from {fail_from}: {count} of {} callbacks fired",
                    registered.len()
                )
            });
            break;
        }
        count += 1;
    }
    let attempted = observer.seen.load(Ordering::SeqCst);
    drop(Arc::try_unwrap(journal).unwrap());
    drop(installed);
    let fired = fired.lock().unwrap();
    tally.check(rx.try_recv().is_err(), || {
        format!("fail_from {fail_from}: a callback fired after the others or twice")
    });
    let oks: Vec<u64> = fired.keys().copied().filter(|&s| s != u64::MAX).collect();
    let errors = fired.get(&u64::MAX).map_or(0, Vec::len);
    tally.check(oks.len() + errors == registered.len(), || {
        format!(
            "fail_from {fail_from}: {} Ok + {errors} errors for {} callbacks",
            oks.len(),
            registered.len()
        )
    });
    tally.check(oks.iter().copied().eq(0..oks.len() as u64), || {
        format!("fail_from {fail_from}: Ok sequence numbers are not a prefix: {oks:?}")
    });
    for (seq, calls) in fired.iter().filter(|(&s, _)| s != u64::MAX) {
        tally.check(
            calls.len() == 1 && registered.get(seq) == Some(&calls[0].0),
            || format!("fail_from {fail_from}: seq {seq} fired {calls:?}"),
        );
    }
    for (_, r) in fired.get(&u64::MAX).into_iter().flatten() {
        let e = r.as_ref().unwrap_err();
        tally.check(e == "SyncFailed" || e == "Poisoned", || {
            format!("error {e}")
        });
    }
    if errors > 0 {
        tally.note("callbacks failed");
    }
    // Every record acknowledged Ok is found again.
    let reopened = Journal::open(dir.path()).unwrap();
    drop(reopened);
    let mut reader = JournalReader::open(dir.path(), 0).unwrap();
    let mut found = BTreeMap::new();
    while let Ok(Some((seq, bytes))) = reader.try_next() {
        found.insert(seq, bytes.to_vec());
    }
    for seq in &oks {
        tally.check(found.get(seq) == registered.get(seq), || {
            format!("fail_from {fail_from}: acknowledged seq {seq} lost after reopening")
        });
    }
    attempted
}

#[test]
fn callbacks_fail_exactly_once_and_never_report_a_lost_record() {
    let _serial = serial();
    let mut tally = Tally::new("callback sync errors");
    let total = run(&mut tally, u64::MAX);
    let points = total.min(60);
    for fail_from in 0..points {
        run(&mut tally, fail_from);
        tally.covered += 1;
    }
    tally.finish();
}
