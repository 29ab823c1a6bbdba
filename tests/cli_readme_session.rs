#![cfg(feature = "cli")]
//! The README's command-line session is real output: each `$ ` command of the session is run
//! through `sh` (with the `kekbit` under test first on `PATH` and `/tmp/orders` replaced by a
//! fresh directory) and what it prints, standard error included, must be the lines the README
//! shows under it. Two commands need a second actor, named in their trailing comment:
//! `# meanwhile: CMD` (CMD runs while the command follows the journal, which is then
//! interrupted where the README shows `^C`) and `# while another append is running`.

#[path = "common/cli.rs"]
mod cli_common;

use std::path::Path;
use std::process::{Command, Stdio};

use cli_common::*;

/// The directory the README's session uses.
const README_DIR: &str = "/tmp/orders";

/// One `$ ` line of the session and the lines shown under it.
struct Step {
    command: String,
    meanwhile: Option<String>,
    while_writing: bool,
    expected: Vec<String>,
}

/// The steps of the README's session: the `text` block after the line "A session".
fn session(readme: &str) -> Vec<Step> {
    let after = &readme[readme.find("A session").expect("README has a session")..];
    let block = after
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the session is a text block");
    let mut steps: Vec<Step> = Vec::new();
    for line in block.lines() {
        if let Some(command) = line.strip_prefix("$ ") {
            let (command, comment) = match command.split_once(" # ") {
                Some((c, comment)) => (c.trim().to_string(), Some(comment.trim())),
                None => (command.trim().to_string(), None),
            };
            steps.push(Step {
                command,
                meanwhile: comment
                    .and_then(|c| c.strip_prefix("meanwhile: "))
                    .map(str::to_string),
                while_writing: comment == Some("while another append is running"),
                expected: Vec::new(),
            });
        } else if line != "^C" {
            let step = steps.last_mut().expect("output before the first command");
            step.expected.push(line.to_string());
        }
    }
    steps
}

/// `sh -c COMMAND` with the `kekbit` under test first on `PATH`.
fn shell(command: &str) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_kekbit"))
        .parent()
        .expect("the binary's directory");
    let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(command).env("PATH", path);
    sh
}

/// Runs a one-shot step; returns its standard output and error, interleaved as printed.
fn run_step(command: &str) -> Vec<String> {
    let output = shell(&format!("{{ {command}\n}} 2>&1"))
        .stdin(Stdio::null())
        .output()
        .expect("running sh");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs a following step while `meanwhile` appends; returns the lines it printed once it
/// printed as many as expected (or its output stalled), then interrupts it.
fn follow_step(command: &str, meanwhile: &str, count: usize) -> Vec<String> {
    let mut live = Live::spawn_command(
        shell(&format!("exec {command}")),
        args(&[&"sh", &"-c", &command]),
    );
    let appended = run_step(meanwhile);
    assert!(appended.is_empty(), "{meanwhile} printed {appended:?}");
    let mut lines = Vec::new();
    while lines.len() < count {
        match live.line_within(LINE_LIMIT) {
            Some(line) => lines.push(line),
            None => break,
        }
    }
    live.kill();
    lines
}

#[test]
fn the_readme_session_matches_real_output() {
    let readme = include_str!("../README.md");
    let steps = session(readme);
    assert!(steps.len() >= 5, "the session has {} commands", steps.len());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("orders");
    let real = dir.to_str().expect("a UTF-8 temporary path");
    let localize = |s: &str| s.replace(README_DIR, real);
    for step in &steps {
        let command = localize(&step.command);
        let expected: Vec<String> = step.expected.iter().map(|l| localize(l)).collect();
        let got = if let Some(meanwhile) = &step.meanwhile {
            follow_step(&command, &localize(meanwhile), expected.len())
        } else if step.while_writing {
            let held = holding_writer(&dir, &[], next_sequence(&dir));
            let got = run_step(&command);
            drop(held);
            got
        } else {
            run_step(&command)
        };
        assert_eq!(
            got, expected,
            "README session: `{}` printed something else",
            step.command
        );
    }
}

/// The sequence number the next record appended to `dir` gets.
fn next_sequence(dir: &Path) -> u64 {
    stats_json(dir)
        .field("last_sequence")
        .as_u64()
        .map_or(0, |last| last + 1)
}

// Regression: issue 16 item 4: `cargo install` without `--locked` re-resolved 53 packages.
#[test]
fn every_cargo_install_line_is_locked() {
    let readme = include_str!("../README.md");
    let installs: Vec<&str> = readme
        .lines()
        .filter(|l| l.contains("cargo install"))
        .collect();
    assert!(!installs.is_empty(), "the README shows no install command");
    for line in installs {
        assert!(line.contains("--locked"), "not locked: {line}");
    }
}

// Regression: issue 16 item 1: the README opened with commands before saying what kekbit is,
// and gave no dependency line (`cargo add kekbit` installs the unrelated 0.3.5).
#[test]
fn the_readme_says_what_kekbit_is_before_any_command() {
    let readme = include_str!("../README.md");
    let first_paragraph = readme
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap_or_default();
    assert!(
        first_paragraph.starts_with("kekbit is"),
        "{first_paragraph}"
    );
    let quick_start = readme.find("## Quick start").expect("a quick start");
    assert!(readme.find("```").expect("code blocks") > quick_start);
    let dependency = &readme[quick_start..];
    for needed in [
        "kekbit = {",
        "tempfile",
        "features = [\"derive\"]",
        "cargo add kekbit",
    ] {
        assert!(dependency.contains(needed), "quick start lacks {needed}");
    }
}
