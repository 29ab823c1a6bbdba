#![cfg(feature = "cli")]
//! `kekbit tail --follow` on a journal no writer holds costs almost nothing while it waits
//! for the next writer, and prints that writer's records. With `--until-closed` it exits
//! instead, saying why: status 0 when the writer closed the journal, 7 when it died. And `dump`/`tail` without `--from` start at the
//! first record still there after `prune` removed every record.

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;
use std::time::Duration;

use cli_common::*;

/// A process's CPU time in clock ticks (utime + stime of /proc/PID/stat) and its voluntary
/// context switches (from /proc/PID/status): how often it went to sleep and woke up.
fn cost(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let switches = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (ticks, switches)
}

/// A journal of records `0..3` in `dir`, closed.
fn closed_journal(dir: &Path) {
    run_in(
        "append",
        dir,
        &["--create", "--segment-size", "4096"],
        b"a\nb\nc\n",
    )
    .expect_ok();
}

#[test]
fn an_idle_follower_of_a_closed_journal_costs_almost_nothing() {
    // Regression: issue 11 item 9: an idle `kekbit tail --follow` on a cleanly closed
    // journal opened and listed the directory thousands of times a second (seen here: 1,571
    // listings, about 2,500 wakeups and 100 ms of CPU per second), and could not say that
    // the journal was closed (see `until_closed_*`).
    let (_tmp, dir) = journal_dir();
    closed_journal(&dir);
    let mut follower = Live::spawn(sub_args("tail", &dir, &["--follow"]));
    for expected in ["0\ta", "1\tb", "2\tc"] {
        assert_eq!(follower.line(), expected);
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid = follower.pid();
    let (ticks_before, switches_before) = cost(pid);
    std::thread::sleep(Duration::from_secs(1));
    let (ticks_after, switches_after) = cost(pid);
    let (ticks, wakeups) = (ticks_after - ticks_before, switches_after - switches_before);
    assert!(follower.running(), "{}", follower.take_stderr());
    // Looking for a new writer every 100 ms: about ten wakeups a second, no measurable CPU.
    assert!(wakeups < 60, "{wakeups} wakeups in a second");
    assert!(ticks <= 3, "{ticks} clock ticks of CPU in a second");

    // A new writer's records are printed.
    run_in("append", &dir, &[], b"d\n").expect_ok();
    assert_eq!(follower.line(), "3\td");
    assert!(follower.running());
    follower.kill();
    assert_eq!(follower.take_stderr(), "");
}

#[test]
fn until_closed_exits_0_when_the_writer_closes_the_journal() {
    let (_tmp, dir) = journal_dir();
    closed_journal(&dir);
    let run = run("tail", &dir, &["--follow", "--until-closed"]);
    run.expect_code(0);
    assert_eq!(run.out(), "0\ta\n1\tb\n2\tc\n");
    let lines = run.err_lines();
    assert!(
        lines.len() == 1
            && lines[0]
                .contains("the writer closed the journal; its next record will be sequence 3"),
        "{}",
        run.describe()
    );

    // Following a live writer to its close.
    let mut writer = holding_writer(&dir, &[], 3);
    let mut follower = Live::spawn(sub_args(
        "tail",
        &dir,
        &["--follow", "--until-closed", "--from", "3"],
    ));
    assert_eq!(follower.line(), "3\theld");
    writer.send(b"more\n");
    assert_eq!(follower.line(), "4\tmore");
    assert!(follower.running());
    assert_eq!(writer.finish_ok(), ["4"]);
    let (status, rest, stderr) = follower.finish();
    assert!(status.success() && rest.is_empty(), "{status:?} {rest:?}");
    assert!(stderr.contains("sequence 5"), "{stderr}");
}

#[test]
fn until_closed_exits_7_when_the_writer_dies() {
    let (_tmp, dir) = journal_dir();
    closed_journal(&dir);
    let mut writer = holding_writer(&dir, &[], 3);
    writer.kill();
    let run = run("tail", &dir, &["--follow", "--until-closed", "--from", "3"]);
    run.expect_one_line_error(&["stopped without closing the journal"]);
    run.expect_code(7);
    assert_eq!(run.out(), "3\theld\n");
}

#[test]
fn dump_and_tail_start_at_the_first_record_left_after_pruning_every_record() {
    // Regression: issue 16 item 7: after `prune` removed every record, `dump` and `tail`
    // failed with "sequence 0 was pruned" while `verify` said the journal was clean.
    let (_tmp, dir) = journal_dir();
    closed_journal(&dir);
    // A second session starts a new, empty segment: pruning may then remove every record.
    run_in("append", &dir, &[], b"").expect_ok();
    run("prune", &dir, &["--before", "100"]).expect_ok();
    for command in ["dump", "tail"] {
        let run = run(command, &dir, &[]);
        run.expect_ok();
        assert_eq!(run.out(), "", "{command} of a journal holding no record");
    }
    run_in("append", &dir, &[], b"d\ne\n").expect_ok();
    assert_eq!(run("dump", &dir, &[]).expect_ok().out(), "3\td\n4\te\n");
    assert_eq!(run("tail", &dir, &[]).expect_ok().out(), "3\td\n4\te\n");
}
