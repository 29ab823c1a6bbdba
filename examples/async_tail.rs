//! A tokio service journaling commands: 16 tasks append durably (each `await`s its record's
//! durability, sharing group commits; no thread waits per append), 4 tasks tail the journal
//! as streams, and a second process (this example run again with `tail DIR`) tails it too.
//! Every tail checks it sees every record once, in order, and stops when the writer closes
//! the journal.
//!
//! cargo run --release --features async --example async_tail

use std::time::Instant;

use kekbit::journal::{Journal, JournalError};
use kekbit::stream::JournalStream;

const WRITERS: u64 = 16;
const PER_WRITER: u64 = 500;
const TOTAL: u64 = WRITERS * PER_WRITER;

/// Follows the journal in `dir` to its close; returns the records seen.
async fn tail(dir: std::path::PathBuf) -> Result<u64, JournalError> {
    let mut stream = JournalStream::open(&dir, 0)?;
    let mut seen = 0;
    while let Some(item) = stream.next().await {
        match item {
            Ok((seq, record)) => {
                assert_eq!(seq, seen, "records in order, none missed");
                assert!(record.starts_with(b"command "));
                seen += 1;
            }
            Err(JournalError::WriterClosed { .. }) => break,
            Err(e) => return Err(e),
        }
    }
    Ok(seen)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "tail" {
        let seen = tail(args[2].clone().into()).await?;
        println!("other process: tailed {seen} records");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let journal = std::sync::Arc::new(Journal::open(dir.path())?);

    let tails: Vec<_> = (0..4)
        .map(|_| tokio::spawn(tail(dir.path().to_path_buf())))
        .collect();
    let mut other = std::process::Command::new(std::env::current_exe()?)
        .arg("tail")
        .arg(dir.path())
        .spawn()?;

    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let journal = std::sync::Arc::clone(&journal);
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let command = format!("command {w}/{i}");
                    // Appended now; the future resolves once the record is durable.
                    journal.append_durable(command.as_bytes()).await?;
                }
                Ok::<(), kekbit::journal::AppendError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let elapsed = started.elapsed();
    println!(
        "{TOTAL} durable appends from {WRITERS} tasks in {elapsed:?} ({:.0}/s)",
        TOTAL as f64 / elapsed.as_secs_f64()
    );
    drop(journal); // closes the journal: every tail ends

    for tail in tails {
        assert_eq!(tail.await??, TOTAL);
    }
    let status = tokio::task::spawn_blocking(move || other.wait()).await??;
    assert!(status.success(), "the other process failed");
    println!("4 tasks and another process tailed all {TOTAL} records");
    Ok(())
}
