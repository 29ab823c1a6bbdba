//! Two processes that open the same journal for writing at the same moment: exactly one
//! wins, every time, and the journal stays sound; a writer killed with SIGKILL leaves no
//! lock behind (../shared/RELIABILITY.md, promise 5 and "two writers racing to open the
//! same journal").
//!
//! Two contender processes (this test binary re-run) wait on their stdin. For each race the
//! parent sends both, one right after the other in a random order, `go` with the journal's
//! directory; each calls `Journal::open` at once. Exactly one must get the journal (it then
//! appends one to three records derived from (seed, sequence number), syncs, and holds the
//! journal open) and the other `JournalError::Locked`, while the winner still holds it. The
//! winner then closes the journal (drops it) and `kekbit::journal::verify` must find the
//! journal clean and holding exactly the records the winners appended; at the end of each
//! journal's life its records are read back and compared. One race in eight is on a new
//! journal (the directory does not exist yet: both create it), the others on the journal the
//! previous race left.
//!
//! Every 50th race the winner is killed with SIGKILL instead, while it holds the journal.
//! A replacement contender is started before the kill; right after the killed process is
//! reaped the parent checks that the journal's lock file can be locked at once (the OS
//! released the dead writer's lock), then the next race, on the crashed journal, is between
//! the survivor and the replacement: one wins and recovers the journal. The time from the
//! reaping to the new writer's acknowledgement must be under a second.
//!
//! Figures printed: races, double opens (0), races without a winner (0), other errors (0),
//! verify problems (0), the takeovers after kill -9 with their times, and how close the
//! races were: how far apart the two `Journal::open` calls began (each contender reads the
//! wall clock right before its call) and in how many races the two calls overlapped.
//!
//! `KEKBIT_RACES` sets the number of races (default 1,000); `KEKBIT_SEED` replays the
//! choices. A longer run:
//!
//! ```text
//! KEKBIT_RACES=10000 cargo test --release --test reliability_racing_writers -- --nocapture
//! ```

#[path = "common/reliability.rs"]
mod reliability;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kekbit::journal::{verify, Durability, Journal, JournalError, JournalReader, VerifyStatus};
use reliability::{env_count, line_from_parent, payload, run_seed, tell_parent, ChildProc, Rng};

const CONTENDER: &str = "child_contender_opens_on_command";
const ENV_CONTENDER: &str = "KEKBIT_RACE_CONTENDER";
const SEGMENT_CAPACITY: u64 = 16 << 10;
const MAX_RECORD: u32 = 2_000;
const DEFAULT_RACES: u64 = 1_000;
/// Races on one journal directory before a new one is started.
const RACES_PER_JOURNAL: u32 = 8;
/// Every this many races the winner is killed instead of closing the journal.
const KILL_EVERY: u64 = 50;
const TAKEOVER_LIMIT: Duration = Duration::from_secs(1);
const LINE_WAIT: Duration = Duration::from_secs(30);

fn record(seed: u64, seq: u64) -> Vec<u8> {
    payload(seed, seq, MAX_RECORD as usize)
}

fn open(dir: &Path) -> Result<Journal, JournalError> {
    Journal::options()
        .segment_capacity(SEGMENT_CAPACITY)
        .max_record_len(MAX_RECORD)
        .durability(Durability::Never)
        .open(dir)
}

/// Contender entry point; returns at once in an ordinary test run. Says `ready`, then obeys
/// lines on stdin:
/// - `go <dir> <seed> <records>`: opens the journal; on success appends `records` records,
///   syncs, keeps the journal open and says `won <first seq> <start> <open µs>`; says
///   `locked - <start> <open µs>` when refused with `Locked`, `error <message>` otherwise
///   (`<start>`: when the `Journal::open` call began, in µs since the epoch);
/// - `close`: drops the journal it holds and says `closed`;
/// - `exit` or end of input: returns.
#[test]
fn child_contender_opens_on_command() {
    if std::env::var_os(ENV_CONTENDER).is_none() {
        return;
    }
    let mut held: Option<Journal> = None;
    tell_parent("ready");
    while let Some(line) = line_from_parent() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["go", dir, seed, records] => {
                assert!(held.is_none(), "contender: told to open while holding");
                let seed: u64 = seed.parse().unwrap();
                let records: u64 = records.parse().unwrap();
                let wall = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_micros();
                let began = Instant::now();
                let opened = open(Path::new(dir));
                let micros = began.elapsed().as_micros();
                match opened {
                    Ok(journal) => {
                        let first = journal.next_sequence();
                        for seq in first..first + records {
                            let got = journal
                                .append(&record(seed, seq))
                                .unwrap_or_else(|e| panic!("contender: appending {seq}: {e}"));
                            assert_eq!(got, seq, "contender: sequence number");
                        }
                        journal
                            .sync()
                            .unwrap_or_else(|e| panic!("contender: syncing: {e}"));
                        held = Some(journal);
                        tell_parent(&format!("won {first} {wall} {micros}"));
                    }
                    Err(JournalError::Locked { .. }) => {
                        tell_parent(&format!("locked - {wall} {micros}"))
                    }
                    Err(e) => tell_parent(&format!("error {}", e.to_string().replace('\n', " "))),
                }
            }
            ["close"] => {
                drop(held.take());
                tell_parent("closed");
            }
            ["exit"] => return,
            _ => panic!("contender: unknown command {line:?}"),
        }
    }
}

fn spawn_contender() -> ChildProc {
    let mut child = ChildProc::spawn(CONTENDER, &[(ENV_CONTENDER, "1".into())], true);
    let line = child.expect_line(LINE_WAIT, "\"ready\"");
    assert_eq!(line, "ready", "{}", child.name());
    child
}

/// A journal directory and what the winners appended to it.
struct Life {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    seed: u64,
    records: u64,
    races: u32,
}

/// How a race went, by contender.
enum Outcome {
    Won { first: u64 },
    Locked,
    Error(String),
}

/// A contender's answer to `go`: the outcome, and when its `Journal::open` call began and
/// ended (wall clock, µs), if it says.
fn parse_outcome(line: &str) -> (Outcome, Option<(u128, u128)>) {
    let words: Vec<&str> = line.split_whitespace().collect();
    let span = |wall: &str, micros: &str| {
        let wall: u128 = wall.parse().ok()?;
        let micros: u128 = micros.parse().ok()?;
        Some((wall, wall + micros))
    };
    match words[..] {
        ["won", first, wall, micros] => match first.parse() {
            Ok(first) => (Outcome::Won { first }, span(wall, micros)),
            Err(_) => (Outcome::Error(line.to_string()), None),
        },
        ["locked", _, wall, micros] => (Outcome::Locked, span(wall, micros)),
        _ => (Outcome::Error(line.to_string()), None),
    }
}

#[derive(Debug, Default)]
struct Tally {
    races: u64,
    on_new: u64,
    on_existing: u64,
    after_kill: u64,
    double_opens: u64,
    no_winner: u64,
    errors: u64,
    verify_problems: u64,
    wins: [u64; 2],
    /// Between the two `Journal::open` calls' starts, per race (µs).
    start_gaps_us: Vec<u64>,
    /// Races in which the two `Journal::open` calls overlapped in time.
    overlapping: u64,
    takeovers: u64,
    lock_free_at_once: u64,
    slowest_takeover: Duration,
    violations: Vec<String>,
}

/// Reads the whole journal and counts records that are not the (seed, seq) derivation, or
/// missing.
fn read_back(dir: &Path, seed: u64, expected: u64) -> Result<(), String> {
    let mut reader = JournalReader::open(dir, 0).map_err(|e| e.to_string())?;
    let mut next = 0;
    while let Some((seq, bytes)) = reader.try_next().map_err(|e| e.to_string())? {
        if seq != next || bytes != record(seed, seq) {
            return Err(format!("record {seq} (expected {next}) differs"));
        }
        next += 1;
    }
    if next != expected {
        return Err(format!("{next} records read, {expected} appended"));
    }
    Ok(())
}

#[test]
fn exactly_one_of_two_racing_writers_gets_the_journal_every_time() {
    let races = env_count("KEKBIT_RACES", DEFAULT_RACES);
    let seed = run_seed();
    let mut rng = Rng::new(seed);
    println!("racing writers: {races} races, seed {seed} (KEKBIT_SEED to replay)");
    let started = Instant::now();
    let mut contenders = [spawn_contender(), spawn_contender()];
    let mut tally = Tally::default();
    let mut life: Option<Life> = None;
    // Set after a kill: when the killed process was reaped.
    let mut killed_at: Option<Instant> = None;

    for race in 0..races {
        let mut current = match life.take() {
            Some(l) if l.races < RACES_PER_JOURNAL || killed_at.is_some() => l,
            previous => {
                if let Some(previous) = previous {
                    if let Err(e) = read_back(&previous.dir, previous.seed, previous.records) {
                        tally
                            .violations
                            .push(format!("reading back {}: {e}", previous.dir.display()));
                    }
                }
                let tmp = tempfile::tempdir().unwrap();
                let dir = tmp.path().join("journal");
                Life {
                    _tmp: tmp,
                    dir,
                    seed: rng.next_u64(),
                    records: 0,
                    races: 0,
                }
            }
        };
        if killed_at.is_some() {
            tally.after_kill += 1;
        } else if current.races == 0 {
            tally.on_new += 1;
        } else {
            tally.on_existing += 1;
        }
        current.races += 1;
        tally.races += 1;

        let records = 1 + rng.below(3);
        let go = format!("go {} {} {records}", current.dir.display(), current.seed);
        let order = if rng.below(2) == 0 { [0, 1] } else { [1, 0] };
        for &i in &order {
            contenders[i].send(&go);
        }
        let (outcomes, spans): (Vec<Outcome>, Vec<_>) = (0..2)
            .map(|i| parse_outcome(&contenders[i].expect_line(LINE_WAIT, "a race's outcome")))
            .unzip();
        if let [Some(a), Some(b)] = spans[..] {
            let gap = a.0.abs_diff(b.0);
            tally.start_gaps_us.push(gap as u64);
            if a.0 <= b.1 && b.0 <= a.1 {
                tally.overlapping += 1;
            }
        }
        let winners: Vec<usize> = (0..2)
            .filter(|&i| matches!(outcomes[i], Outcome::Won { .. }))
            .collect();
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Outcome::Won { first } if *first != current.records => {
                    tally.violations.push(format!(
                        "race {race}: the winner started at {first}, the journal held {}",
                        current.records
                    ));
                }
                Outcome::Error(message) => {
                    tally.errors += 1;
                    tally
                        .violations
                        .push(format!("race {race}: contender {i}: {message}"));
                }
                _ => {}
            }
        }
        match winners.len() {
            1 => {}
            0 => {
                tally.no_winner += 1;
                tally
                    .violations
                    .push(format!("race {race}: nobody got the journal"));
            }
            _ => {
                tally.double_opens += 1;
                tally
                    .violations
                    .push(format!("race {race}: both contenders got the journal"));
            }
        }
        if let Some(at) = killed_at.take() {
            let took = at.elapsed();
            tally.takeovers += 1;
            tally.slowest_takeover = tally.slowest_takeover.max(took);
            if took >= TAKEOVER_LIMIT {
                tally.violations.push(format!(
                    "race {race}: a new writer got the journal {took:?} after kill -9"
                ));
            }
        }
        for &w in &winners {
            tally.wins[w] += 1;
            current.records += records;
        }

        let kill = (race + 1) % KILL_EVERY == 0 && race + 1 < races && winners.len() == 1;
        if kill {
            // The replacement is idle on its stdin before the kill, so that nothing but the
            // kill stands between the dead writer and the next one.
            let w = winners[0];
            let replacement = spawn_contender();
            let mut dead = std::mem::replace(&mut contenders[w], replacement);
            dead.kill();
            let reaped = Instant::now();
            let lock = File::open(current.dir.join("kekbit.lock")).unwrap();
            if lock.try_lock().is_ok() {
                tally.lock_free_at_once += 1;
            } else {
                tally.violations.push(format!(
                    "race {race}: the journal lock was still held {:?} after the killed \
                     writer was reaped",
                    reaped.elapsed()
                ));
            }
            drop(lock);
            killed_at = Some(reaped);
        } else {
            for &w in &winners {
                contenders[w].send("close");
                let line = contenders[w].expect_line(LINE_WAIT, "\"closed\"");
                assert_eq!(line, "closed");
            }
        }

        match verify(&current.dir, &mut |_, _| {}) {
            Ok(report)
                if report.status() == VerifyStatus::Clean
                    && report.records == current.records
                    && !report.writer_active => {}
            Ok(report) => {
                tally.verify_problems += 1;
                tally.violations.push(format!(
                    "race {race}: verify found {:?}, {} records ({} appended), writer active \
                     {}: {:?}",
                    report.status(),
                    report.records,
                    current.records,
                    report.writer_active,
                    report.problems
                ));
            }
            Err(e) => {
                tally.verify_problems += 1;
                tally.violations.push(format!("race {race}: verify: {e}"));
            }
        }
        life = Some(current);
    }
    if let Some(last) = &life {
        if let Err(e) = read_back(&last.dir, last.seed, last.records) {
            tally
                .violations
                .push(format!("reading back {}: {e}", last.dir.display()));
        }
    }
    for contender in &mut contenders {
        contender.send("exit");
        let status = contender.wait(LINE_WAIT);
        let log = contender.stderr_text();
        if !status.is_some_and(|s| s.success()) {
            tally.violations.push(format!(
                "{} exited with {status:?}: {log}",
                contender.name()
            ));
        }
    }

    println!(
        "racing writers: races {} (on a new journal {}, on an existing one {}, on one whose \
         writer was killed {}), double opens {}, races without a winner {}, other errors {}, \
         verify problems {}, wins by contender slot {:?}, {:.1} s",
        tally.races,
        tally.on_new,
        tally.on_existing,
        tally.after_kill,
        tally.double_opens,
        tally.no_winner,
        tally.errors,
        tally.verify_problems,
        tally.wins,
        started.elapsed().as_secs_f64()
    );
    println!(
        "racing writers: kill -9 of the holding writer {} times; lock free at once {} times; \
         slowest new writer acknowledged {:.1} ms after the reaping (limit {TAKEOVER_LIMIT:?})",
        tally.takeovers,
        tally.lock_free_at_once,
        tally.slowest_takeover.as_secs_f64() * 1e3
    );
    let mut gaps = tally.start_gaps_us.clone();
    gaps.sort_unstable();
    if !gaps.is_empty() {
        println!(
            "racing writers: the two open calls began {} µs apart at the median, {} µs at the \
             90th percentile, {} µs at most; they overlapped in time in {} races",
            gaps[gaps.len() / 2],
            gaps[gaps.len() * 9 / 10],
            gaps[gaps.len() - 1],
            tally.overlapping
        );
    }
    for v in tally.violations.iter().take(20) {
        println!("VIOLATION {v}");
    }
    assert_eq!(tally.double_opens, 0, "double opens");
    assert_eq!(tally.no_winner, 0, "races without a winner");
    assert!(
        tally.violations.is_empty(),
        "{} violations, the first: {}",
        tally.violations.len(),
        tally.violations[0]
    );
}
