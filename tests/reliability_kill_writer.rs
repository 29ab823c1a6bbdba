//! Kill -9 of a journal writer at random moments loses no acknowledged-durable record and
//! recovery never returns a record that was not written (docs/FORMAT.md, "Rolling over" and
//! "Opening a journal for appending"; ../shared/RELIABILITY.md, promises 1 to 3).
//!
//! Each trial re-runs this test binary as a child writer: it opens the journal (16 KiB
//! segments, records of 0 to 4,000 bytes, so that the writer rolls over to a new segment
//! every few appends and the kills land on both sides of segment ends) under one durability
//! policy and appends records derived from (seed, sequence number)
//! until it is killed. After each append it tells the parent, on its stdout pipe, the
//! sequence number written and `durable_count()`: an acknowledgement covers exactly the
//! records the journal says are durable (under `EveryRecord` that is the record just
//! appended; under `EveryN(7)` and `Interval(2 ms)` what the policy's syncs covered; under
//! `Never` what the child's explicit `sync()` calls, one append in five, covered). The parent
//! kills the child with SIGKILL (`Child::kill`) 0 to 100 ms after the child said it had
//! opened the journal, or, in one trial in eight, 0 to 20 ms after the spawn, so that the
//! kill may land while the child is still opening and recovering the journal. It then
//! checks:
//! - durability accounting, on the files the dead child left: every acknowledged record
//!   ends at or below its segment's durable watermark;
//! - reopening succeeds; its report drops only a torn tail of at most one record's frame
//!   (no damage, no orphan segment), and its `next_sequence` is the number of records read;
//! - reading from 0: sequence numbers are gapless, every record is exactly the (seed, seq)
//!   derivation (a bad record is one that is not), every acknowledged record is there
//!   (records lost), every record whose append returned is there (a process kill loses
//!   nothing published), and no record beyond the one append in flight exists;
//! - reopen-and-continue: three more records are appended to the recovered journal by the
//!   parent; a reader opened before them crosses the recovery seal into the new segment;
//!   after closing, the whole journal reads back exactly and `kekbit::journal::verify`
//!   finds it clean.
//!
//! A journal directory lives through four kills in a row (each child continues the journal
//! the previous trial left), then a fresh one starts. The four policies run side by side,
//! one thread each. A summary line per policy and one in total report trials, acknowledged
//! records checked, records lost (0), bad records (0) and torn bytes dropped; a failing
//! trial's directory is kept and named.
//!
//! `KEKBIT_KILL_TRIALS` sets the number of trials in total across the four policies
//! (default 200); `KEKBIT_SEED` replays a run's payloads and choices (not its timing). The
//! full run:
//!
//! ```text
//! KEKBIT_KILL_TRIALS=10000 cargo test --release --test reliability_kill_writer -- --nocapture
//! ```

#[path = "common/reliability.rs"]
mod reliability;

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use kekbit::journal::{verify, Durability, Journal, JournalOptions, JournalReader, VerifyStatus};
use reliability::{env_count, holding_locks, mix, payload, run_seed, tell_parent, ChildProc, Rng};

const CHILD: &str = "child_writer_appends_until_killed";
const ENV_DIR: &str = "KEKBIT_KILL_CHILD_DIR";
const ENV_SEED: &str = "KEKBIT_KILL_CHILD_JOURNAL_SEED";
const ENV_POLICY: &str = "KEKBIT_KILL_CHILD_POLICY";
const ENV_CHILD_SEED: &str = "KEKBIT_KILL_CHILD_SEED";

const SEGMENT_CAPACITY: u64 = 16 << 10;
const MAX_RECORD: u32 = 4_000;
/// Bytes a maximal record occupies: 8-byte header and payload, padded to 8.
const MAX_FRAME: u64 = (8 + MAX_RECORD as u64).next_multiple_of(8);
const POLICIES: [&str; 4] = ["never", "every-record", "every-7", "interval-2ms"];
const DEFAULT_TRIALS: u64 = 200;
/// Kills a journal directory goes through before a fresh one is started.
const KILLS_PER_JOURNAL: u32 = 4;
/// Longest random delay between the child's "open" and the kill.
const MAX_DELAY: Duration = Duration::from_millis(100);
/// Longest random delay between the spawn and the kill, for the early kills.
const MAX_EARLY_DELAY: Duration = Duration::from_millis(20);
/// Records the parent appends after each recovery.
const CONTINUE: u64 = 3;
const LINE_WAIT: Duration = Duration::from_secs(30);

fn durability(policy: &str) -> Durability {
    match policy {
        "never" => Durability::Never,
        "every-record" => Durability::EveryRecord,
        "every-7" => Durability::EveryN(7),
        "interval-2ms" => Durability::Interval(Duration::from_millis(2)),
        other => panic!("unknown durability policy {other:?}"),
    }
}

fn options(policy: &str) -> JournalOptions {
    Journal::options()
        .segment_capacity(SEGMENT_CAPACITY)
        .max_record_len(MAX_RECORD)
        .durability(durability(policy))
}

fn record(seed: u64, seq: u64) -> Vec<u8> {
    payload(seed, seq, MAX_RECORD as usize)
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child: {name} is not set"))
}

/// Child entry point; returns at once in an ordinary test run. Appends until killed (60 s
/// at most), telling the parent `open <next sequence>` once, then `w <seq> <durable count>`
/// after every append.
#[test]
fn child_writer_appends_until_killed() {
    let Some(dir) = std::env::var_os(ENV_DIR) else {
        return;
    };
    let seed: u64 = env(ENV_SEED).parse().unwrap();
    let policy = env(ENV_POLICY);
    let mut rng = Rng::new(env(ENV_CHILD_SEED).parse().unwrap());
    let journal = options(&policy)
        .open(&dir)
        .unwrap_or_else(|e| panic!("child: opening the journal: {e}"));
    let start = journal.next_sequence();
    tell_parent(&format!("open {start}"));
    let explicit_syncs = policy == "never";
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let seq = journal.next_sequence();
        let got = journal
            .append(&record(seed, seq))
            .unwrap_or_else(|e| panic!("child: appending {seq}: {e}"));
        assert_eq!(got, seq, "child: sequence number of an append");
        if explicit_syncs && rng.below(5) == 0 {
            journal
                .sync()
                .unwrap_or_else(|e| panic!("child: syncing: {e}"));
        }
        // Read after the append (and sync) returned: everything below it is durable.
        let durable = journal.durable_count();
        tell_parent(&format!("w {seq} {durable}"));
    }
}

/// What the child said before it died.
#[derive(Debug, Default)]
struct Heard {
    /// The journal's next sequence number when the child had opened it.
    start: Option<u64>,
    /// Records whose append had returned: `[0, written)`.
    written: u64,
    /// Records acknowledged durable: `[0, acked)`.
    acked: u64,
    /// Lines that made no sense (out of order, unknown).
    garbled: Vec<String>,
}

fn listen(lines: &[String], before: u64) -> Heard {
    let mut heard = Heard {
        written: before,
        acked: before,
        ..Heard::default()
    };
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["open", n] if heard.start.is_none() => heard.start = n.parse().ok(),
            ["w", seq, durable] => {
                let (Ok(seq), Ok(durable)) = (seq.parse::<u64>(), durable.parse::<u64>()) else {
                    heard.garbled.push(line.clone());
                    continue;
                };
                if seq != heard.written || durable > seq + 1 || durable < heard.acked {
                    heard.garbled.push(line.clone());
                }
                heard.written = heard.written.max(seq + 1);
                heard.acked = heard.acked.max(durable);
            }
            _ => heard.garbled.push(line.clone()),
        }
    }
    heard
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// A segment file as the dead writer left it, read by hand from docs/FORMAT.md: its first
/// sequence number, durable watermark, and the end offset of each data record (stopping at
/// the first word that is not a data record; checksums are the reader's business).
struct RawSegment {
    base: u64,
    watermark: u64,
    record_ends: Vec<u64>,
}

fn raw_segments(dir: &Path) -> Vec<RawSegment> {
    let mut ids: Vec<u64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".kekbit")?;
            (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
        })
        .collect();
    ids.sort_unstable();
    let mut found = Vec::new();
    for id in ids {
        let bytes = fs::read(dir.join(format!("{id:016x}.kekbit"))).unwrap();
        if bytes.len() < 128 || u32::from_le_bytes(bytes[44..48].try_into().unwrap()) & 1 == 1 {
            continue; // pending: prepared ahead, never linked
        }
        let capacity = le_u64(&bytes, 32);
        let mut record_ends = Vec::new();
        let mut at = 0u64;
        while at + 8 <= capacity && 128 + at + 8 <= bytes.len() as u64 {
            let meta = le_u64(&bytes, (128 + at) as usize) as u32;
            if meta >> 28 != 1 {
                break;
            }
            at += (8 + u64::from(meta & 0x0FFF_FFFF)).next_multiple_of(8);
            record_ends.push(at);
        }
        found.push(RawSegment {
            base: le_u64(&bytes, 72),
            watermark: le_u64(&bytes, 96),
            record_ends,
        });
    }
    found
}

/// Acknowledged records in `[from, acked)` that end beyond their segment's durable
/// watermark: the child was told they were durable, but the journal had not synced them.
fn acks_beyond_watermark(dir: &Path, from: u64, acked: u64) -> u64 {
    let mut beyond = 0;
    for segment in raw_segments(dir) {
        for (i, &end) in segment.record_ends.iter().enumerate() {
            let seq = segment.base + i as u64;
            if (from..acked).contains(&seq) && end > segment.watermark {
                beyond += 1;
            }
        }
    }
    beyond
}

/// Totals of one policy (or of all).
#[derive(Debug, Default, Clone)]
struct Tally {
    trials: u64,
    early_kills: u64,
    acked_checked: u64,
    records_read: u64,
    lost: u64,
    bad: u64,
    published_lost: u64,
    phantom: u64,
    acks_unsynced: u64,
    torn_bytes: u64,
    torn_trials: u64,
    sealed_on_open: u64,
    violations: Vec<String>,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.trials += other.trials;
        self.early_kills += other.early_kills;
        self.acked_checked += other.acked_checked;
        self.records_read += other.records_read;
        self.lost += other.lost;
        self.bad += other.bad;
        self.published_lost += other.published_lost;
        self.phantom += other.phantom;
        self.acks_unsynced += other.acks_unsynced;
        self.torn_bytes += other.torn_bytes;
        self.torn_trials += other.torn_trials;
        self.sealed_on_open += other.sealed_on_open;
        self.violations.extend(other.violations.iter().cloned());
    }

    fn summary(&self, what: &str, elapsed: Duration) -> String {
        format!(
            "kill -9 trials [{what}]: trials {}, acknowledged records checked {}, records lost {}, \
             bad records {}, torn bytes dropped {} (in {} trials), published records lost {}, \
             records never written {}, acks beyond the durable watermark {}, records read {}, \
             kills before or during open {}, tails sealed on reopen {}, violations {}, {:.1} s",
            self.trials,
            self.acked_checked,
            self.lost,
            self.bad,
            self.torn_bytes,
            self.torn_trials,
            self.published_lost,
            self.phantom,
            self.acks_unsynced,
            self.records_read,
            self.early_kills,
            self.sealed_on_open,
            self.violations.len(),
            elapsed.as_secs_f64()
        )
    }
}

/// A journal directory and what the parent knows of it.
struct Life {
    dir: tempfile::TempDir,
    seed: u64,
    /// Records it holds, all verified: `[0, records)`.
    records: u64,
    kills: u32,
}

/// Reads the journal from 0 to its end: the number of records read, the length of the
/// prefix that matches the (seed, seq) derivation, mismatching records, and the error that
/// stopped the read, if any.
fn read_back(dir: &Path, seed: u64) -> (u64, u64, u64, Option<String>) {
    let mut reader = match JournalReader::open(dir, 0) {
        Ok(reader) => reader,
        Err(e) => return (0, 0, 0, Some(format!("opening a reader: {e}"))),
    };
    let (mut read, mut good_prefix, mut bad) = (0u64, 0u64, 0u64);
    loop {
        match reader.try_next() {
            Ok(Some((seq, bytes))) => {
                if seq != read {
                    return (
                        read,
                        good_prefix,
                        bad,
                        Some(format!("record {read} read with sequence number {seq}")),
                    );
                }
                if bytes == record(seed, seq) {
                    if good_prefix == read {
                        good_prefix += 1;
                    }
                } else {
                    bad += 1;
                }
                read += 1;
            }
            Ok(None) => return (read, good_prefix, bad, None),
            Err(e) => return (read, good_prefix, bad, Some(format!("reading: {e}"))),
        }
    }
}

/// One kill, recovery and continuation. Returns the problems found (empty when the trial
/// passed) and updates `tally` and `life`.
fn trial(policy: &str, life: &mut Life, rng: &mut Rng, tally: &mut Tally) -> Vec<String> {
    let dir = life.dir.path().to_path_buf();
    let before = life.records;
    let mut problems = Vec::new();
    let mut child = ChildProc::spawn(
        CHILD,
        &[
            (ENV_DIR, dir.display().to_string()),
            (ENV_SEED, life.seed.to_string()),
            (ENV_POLICY, policy.to_string()),
            (ENV_CHILD_SEED, rng.next_u64().to_string()),
        ],
        false,
    );
    let mut lines = Vec::new();
    if rng.below(8) == 0 {
        tally.early_kills += 1;
        thread::sleep(Duration::from_micros(
            rng.below(MAX_EARLY_DELAY.as_micros() as u64 + 1),
        ));
    } else {
        lines.push(child.expect_line(LINE_WAIT, "\"open\" line"));
        thread::sleep(Duration::from_micros(
            rng.below(MAX_DELAY.as_micros() as u64 + 1),
        ));
    }
    lines.extend(child.kill());
    let heard = listen(&lines, before);
    if !heard.garbled.is_empty() {
        problems.push(format!(
            "child lines out of order: {:?}",
            &heard.garbled[..heard.garbled.len().min(3)]
        ));
    }
    if let Some(start) = heard.start {
        if start != before {
            problems.push(format!(
                "the child opened at sequence {start}, the journal held {before} records"
            ));
        }
    }
    tally.trials += 1;
    tally.acked_checked += heard.acked - before;

    // The durability accounting, on the files exactly as the dead child left them.
    let unsynced = acks_beyond_watermark(&dir, before, heard.acked);
    if unsynced > 0 {
        tally.acks_unsynced += unsynced;
        problems.push(format!(
            "{unsynced} acknowledged records end beyond their segment's durable watermark"
        ));
    }

    // From here the parent holds the journal's lock (or verify's shared one): no child may
    // be spawned meanwhile, or it could carry the lock into the next trial (see
    // `holding_locks`).
    let _locks = holding_locks();
    let journal = match options(policy).open(&dir) {
        Ok(journal) => journal,
        Err(e) => {
            tally.lost += heard.acked;
            problems.push(format!("reopening after the kill failed: {e}"));
            return problems;
        }
    };
    let report = journal.open_report().clone();
    tally.torn_bytes += report.torn_bytes_dropped;
    if report.torn_bytes_dropped > 0 {
        tally.torn_trials += 1;
    }
    if report.sealed_segment.is_some() {
        tally.sealed_on_open += 1;
    }
    // A kill between linking the next segment and sealing the current one (a rollover's
    // steps 2 and 3 in docs/FORMAT.md) leaves one linked, empty segment after an unsealed
    // one: recovery cuts there and removes it. More than that, or damage, is a violation.
    if report.torn_bytes_dropped > MAX_FRAME
        || report.orphans_removed > 1
        || !report.damage_dropped.is_empty()
    {
        problems.push(format!(
            "open report: more than one record's frame of torn tail, more than one orphan, or damage: \
             {report:?}"
        ));
    }

    let (read, good_prefix, bad, error) = read_back(&dir, life.seed);
    tally.records_read += read;
    tally.bad += bad;
    let lost = heard.acked.saturating_sub(good_prefix);
    tally.lost += lost;
    let published_lost = heard.written.saturating_sub(read);
    tally.published_lost += published_lost;
    // The append in flight may have published its record before the kill; nothing more.
    let phantom = read.saturating_sub(heard.written + 1);
    tally.phantom += phantom;
    if let Some(error) = error {
        problems.push(format!("reading the recovered journal: {error}"));
    }
    if lost + bad + published_lost + phantom > 0 {
        problems.push(format!(
            "read {read} records ({good_prefix} good from 0, {bad} bad); acknowledged \
             {}, written {}: {lost} acknowledged lost, {published_lost} published lost, \
             {phantom} never written",
            heard.acked, heard.written
        ));
    }
    if report.next_sequence != read || journal.next_sequence() != read {
        problems.push(format!(
            "open report says next sequence {}, the journal {}, {read} records read",
            report.next_sequence,
            journal.next_sequence()
        ));
    }
    if !problems.is_empty() {
        return problems;
    }

    // Reopen and continue: new records after the recovered tail; a reader opened before
    // them crosses the recovery seal into the new segment.
    let from = read.saturating_sub(1);
    let mut follower = match journal.reader(from) {
        Ok(reader) => reader,
        Err(e) => return vec![format!("opening a reader at {from}: {e}")],
    };
    for seq in read..read + CONTINUE {
        match journal.append(&record(life.seed, seq)) {
            Ok(got) if got == seq => {}
            other => return vec![format!("appending {seq} after recovery: {other:?}")],
        }
    }
    if let Err(e) = journal.sync() {
        return vec![format!("syncing after recovery: {e}")];
    }
    let mut expected = from;
    loop {
        match follower.try_next() {
            Ok(Some((seq, bytes))) => {
                if seq != expected || bytes != record(life.seed, seq) {
                    problems.push(format!(
                        "a reader across the recovery seal: record {seq} where {expected} was due, \
                         or its content differs"
                    ));
                    break;
                }
                expected += 1;
            }
            Ok(None) => break,
            Err(e) => {
                problems.push(format!("a reader across the recovery seal: {e}"));
                break;
            }
        }
    }
    if problems.is_empty() && expected != read + CONTINUE {
        problems.push(format!(
            "a reader across the recovery seal stopped at {expected}, not {}",
            read + CONTINUE
        ));
    }
    drop(follower);
    drop(journal);

    let total = read + CONTINUE;
    let (again, good, bad, error) = read_back(&dir, life.seed);
    if again != total || good != total || bad != 0 || error.is_some() {
        problems.push(format!(
            "after continuing: {again} records read, {good} good from 0, {bad} bad, error \
             {error:?}; {total} expected"
        ));
    }
    match verify(&dir, &mut |_, _| {}) {
        Ok(found) => {
            if found.status() != VerifyStatus::Clean || found.records != total {
                problems.push(format!(
                    "verify after continuing: {:?}, {} records (expected {total}): {:?}",
                    found.status(),
                    found.records,
                    found.problems
                ));
            }
        }
        Err(e) => problems.push(format!("verify after continuing: {e}")),
    }
    life.records = total;
    problems
}

fn run_policy(policy: &str, trials: u64, seed: u64) -> Tally {
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    let mut life: Option<Life> = None;
    for n in 0..trials {
        let mut current = match life.take() {
            Some(l) if l.kills < KILLS_PER_JOURNAL => l,
            _ => Life {
                dir: tempfile::tempdir().unwrap(),
                seed: rng.next_u64(),
                records: 0,
                kills: 0,
            },
        };
        current.kills += 1;
        let problems = trial(policy, &mut current, &mut rng, &mut tally);
        if problems.is_empty() {
            life = Some(current);
        } else {
            let kept = current.dir.keep();
            for p in problems {
                tally.violations.push(format!(
                    "{policy}, trial {n}, journal seed {}, directory kept at {}: {p}",
                    current.seed,
                    kept.display()
                ));
            }
        }
    }
    tally
}

#[test]
fn every_acknowledged_record_survives_kill_9_under_every_policy() {
    let trials = env_count("KEKBIT_KILL_TRIALS", DEFAULT_TRIALS);
    let seed = run_seed();
    println!("kill -9 trials: {trials} in total, seed {seed} (KEKBIT_SEED to replay)");
    let started = Instant::now();
    let results: Vec<(&str, Tally, Duration)> = thread::scope(|scope| {
        let handles: Vec<_> = POLICIES
            .iter()
            .enumerate()
            .map(|(i, &policy)| {
                let share = trials / 4 + u64::from((i as u64) < trials % 4);
                let policy_seed = mix(seed, i as u64);
                scope.spawn(move || {
                    let began = Instant::now();
                    let tally = run_policy(policy, share, policy_seed);
                    (policy, tally, began.elapsed())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut total = Tally::default();
    for (policy, tally, elapsed) in &results {
        println!("{}", tally.summary(policy, *elapsed));
        total.add(tally);
    }
    println!("{}", total.summary("all policies", started.elapsed()));
    for v in total.violations.iter().take(20) {
        println!("VIOLATION {v}");
    }
    assert_eq!(total.trials, trials);
    assert!(total.acked_checked > 0, "no record was ever acknowledged");
    assert_eq!(total.lost, 0, "acknowledged records lost");
    assert_eq!(total.bad, 0, "bad records returned");
    assert!(
        total.violations.is_empty(),
        "{} violations, the first: {}",
        total.violations.len(),
        total.violations[0]
    );
}
