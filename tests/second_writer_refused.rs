//! A channel has one writer, ever. While a writer lives, in this process or another, a second
//! `shm_writer` fails with `ChannelError::Locked`, whose message names the channel file; once
//! the writer is gone (dropped, or its process killed with SIGKILL, which releases the lock)
//! `writer_alive()` turns false and a new `shm_writer` fails with `AlreadyExists`: a channel is
//! written once. Refused or successful, creation leaves no temporary ('.'-prefixed) files.

mod common;

use std::time::{Duration, Instant};

use common::{child_dir, dir_entries, drain, read_log, spawn_child, Stop};
use kekbit::core::{
    shm_reader, shm_writer, storage_path, ChannelError, EncoderHandler, Header, ReadError,
    TickUnit, Writer,
};

const CHANNEL: u64 = 0xC0FFEE;

fn header() -> Header {
    Header::new(1, CHANNEL, 1 << 16, 256, 1_000, TickUnit::Millis)
}

fn assert_locked(result: Result<impl std::fmt::Debug, ChannelError>, root: &std::path::Path) {
    let path = storage_path(root, CHANNEL);
    match result {
        Err(e @ ChannelError::Locked { .. }) => {
            let ChannelError::Locked { path: named } = &e else {
                unreachable!()
            };
            assert_eq!(named, &path);
            let message = e.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "message does not name the file: {message}"
            );
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

fn assert_already_exists(
    result: Result<impl std::fmt::Debug, ChannelError>,
    root: &std::path::Path,
) {
    match result {
        Err(e @ ChannelError::AlreadyExists { .. }) => {
            let path = storage_path(root, CHANNEL);
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}

fn assert_no_temporaries(root: &std::path::Path) {
    let names = dir_entries(root);
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "temporary files left behind: {names:?}"
    );
}

#[test]
fn a_second_writer_in_the_same_process_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    first.write("from the first writer").unwrap();

    assert_locked(
        shm_writer(dir.path(), &header(), EncoderHandler),
        dir.path(),
    );
    // A different header for the same channel id changes nothing.
    let other = Header::new(2, CHANNEL, 1 << 20, 16, 5, TickUnit::Secs);
    assert_locked(shm_writer(dir.path(), &other, EncoderHandler), dir.path());

    // The first writer is unaffected, and the channel is the one it created.
    first.write("still writing").unwrap();
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    assert!(reader.writer_alive());
    let found = reader.header();
    assert_eq!(
        (found.writer_id(), found.capacity(), found.max_record_len()),
        (1, 1 << 16, 256),
        "the channel is the first writer's"
    );
    let (read, _) = drain(&mut reader);
    assert_eq!(read, [&b"from the first writer"[..], b"still writing"]);
    assert_no_temporaries(dir.path());
}

#[test]
fn after_the_writer_is_dropped_the_channel_cannot_be_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = shm_writer(dir.path(), &header(), EncoderHandler).unwrap();
    first.write("once").unwrap();
    let reader = shm_reader(dir.path(), CHANNEL).unwrap();
    drop(first);
    // A child that a concurrent test of this binary forks shares the writer's file until it
    // calls exec, so the lock may outlive the writer for that moment (docs/FORMAT.md, "The
    // single writer"): wait for it, boundedly.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reader.writer_alive() {
        assert!(
            Instant::now() < deadline,
            "the dropped writer's lock is still held"
        );
        std::thread::sleep(Duration::from_millis(1));
    }

    assert_already_exists(
        shm_writer(dir.path(), &header(), EncoderHandler),
        dir.path(),
    );
    // The refused attempt did not touch the channel.
    let mut reader = shm_reader(dir.path(), CHANNEL).unwrap();
    let (read, stop) = drain(&mut reader);
    assert_eq!(read, [b"once".to_vec()]);
    assert!(matches!(stop, Stop::Error(ReadError::Closed { .. })));
    assert_eq!(dir_entries(dir.path()), ["0000000000c0ffee.kekbit"]);
}

#[test]
fn creation_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let writers: Vec<_> = (1..=5u64)
        .map(|id| {
            let header = Header::new(1, id, 4096, 64, 1_000, TickUnit::Millis);
            shm_writer(dir.path(), &header, EncoderHandler).unwrap()
        })
        .collect();
    let expected: Vec<String> = (1..=5u64).map(|id| format!("{id:016x}.kekbit")).collect();
    assert_eq!(dir_entries(dir.path()), expected);
    drop(writers);
    assert_eq!(dir_entries(dir.path()), expected);
}

/// How many records the child writes before it reports ready.
const CHILD_RECORDS: u8 = 10;

/// Child: creates the channel, writes some records, reports ready, then idles until killed
/// (or, should the parent be gone, gives up after 30 s).
#[test]
fn child_holds_the_writer() {
    let Some(dir) = child_dir() else { return };
    let mut writer = shm_writer(&dir, &header(), EncoderHandler).unwrap();
    for i in 0..CHILD_RECORDS {
        writer.write(&[i; 5]).unwrap();
    }
    std::fs::File::create(dir.join("ready")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("child_holds_the_writer: never killed");
    std::process::exit(3);
}

/// Child: tries to create the channel the parent's writer holds; exits 0 on `Locked`.
#[test]
fn child_tries_a_second_writer() {
    let Some(dir) = child_dir() else { return };
    assert_locked(shm_writer(&dir, &header(), EncoderHandler), &dir);
    let reader = shm_reader(&dir, CHANNEL).unwrap();
    assert!(reader.writer_alive(), "the parent's lock is visible here");
    // Proof for the parent that this entry point really ran and got this far.
    std::fs::File::create(dir.with_file_name("child-checked")).unwrap();
}

#[test]
fn a_writer_in_another_process_locks_out_this_one() {
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("channels");
    std::fs::create_dir(&dir).unwrap();
    let log = shared.path().join("child.log");
    let mut child = spawn_child("child_holds_the_writer", &dir, &log);
    let ready = common::wait_for_file(&dir.join("ready"), &mut child, Duration::from_secs(20));
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        panic!("child never got ready:\n{}", read_log(&log));
    }

    assert_locked(shm_writer(&dir, &header(), EncoderHandler), &dir);
    let mut reader = shm_reader(&dir, CHANNEL).unwrap();
    assert!(reader.writer_alive());
    let (read, stop) = drain(&mut reader);
    assert_eq!(read.len(), usize::from(CHILD_RECORDS));
    assert!(matches!(stop, Stop::CaughtUp));

    // SIGKILL: no destructor runs, no closing marker is written, the OS drops the lock.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    assert!(
        !reader.writer_alive(),
        "the dead writer's lock was not released"
    );
    assert_already_exists(shm_writer(&dir, &header(), EncoderHandler), &dir);
    let (more, stop) = drain(&mut reader);
    assert!(more.is_empty());
    assert!(
        matches!(stop, Stop::CaughtUp),
        "a killed writer leaves no marker: {stop:?}"
    );
    assert!(reader.closing().is_none());
    assert_no_temporaries(&dir);
}

#[test]
fn a_writer_in_this_process_locks_out_another_process() {
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().join("channels");
    let mut writer = shm_writer(&dir, &header(), EncoderHandler).unwrap();
    writer.write("parent").unwrap();
    let log = shared.path().join("child.log");
    let mut child = spawn_child("child_tries_a_second_writer", &dir, &log);
    let status = common::wait_with_deadline(&mut child, Duration::from_secs(20));
    assert!(
        status.is_some_and(|s| s.success()),
        "child failed ({status:?}):\n{}",
        read_log(&log)
    );
    assert!(
        shared.path().join("child-checked").exists(),
        "the child entry point did not run:\n{}",
        read_log(&log)
    );
    writer.write("still mine").unwrap();
    let mut reader = shm_reader(&dir, CHANNEL).unwrap();
    assert_eq!(reader.iter().count(), 2);
    assert_no_temporaries(&dir);
}
