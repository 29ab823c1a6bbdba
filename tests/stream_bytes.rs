//! The byte-stream view: `capture` copies a child process's output into a journal (records
//! across many rollovers), several `ByteReader`s read it back at their own pace, byte for
//! byte, and seek anywhere (start, current, end) to the right bytes. Seeking uses the index of
//! record offsets that clones share: after the first segments are pruned, a seek to a late
//! offset still works (it opens the journal at the indexed record; a scan from the start would
//! meet the pruned segments), and a seek into pruned bytes is an error. With the feature
//! `async`, `AsyncByteReader` reads a live capture to its end (the writer's close) and seeks.

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};

use kekbit::journal::{Durability, Journal};
use kekbit::stream::{capture, ByteReader};

fn small_journal(dir: &std::path::Path) -> Journal {
    Journal::options()
        .segment_capacity(4096)
        .max_record_len(512)
        .durability(Durability::Never)
        .open(dir)
        .unwrap()
}

fn expected() -> Vec<u8> {
    (1..=20_000)
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn a_captured_process_output_reads_back_and_seeks() {
    let dir = tempfile::tempdir().unwrap();
    let journal = small_journal(dir.path());
    let mut child = Command::new("seq")
        .arg("20000")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let captured = capture(child.stdout.take().unwrap(), &journal, 300).unwrap();
    child.wait().unwrap();
    let want = expected();
    assert_eq!(captured, want.len() as u64);
    assert!(journal.next_sequence() > 100, "many records, many segments");

    let mut first = ByteReader::open(dir.path()).unwrap();
    let mut all = Vec::new();
    first.read_to_end(&mut all).unwrap();
    assert_eq!(all, want);

    // A clone shares the index: seeks anywhere it covers land on the right bytes.
    let mut other = first.try_clone().unwrap();
    assert_eq!(other.position(), want.len() as u64);
    for offset in [0u64, 1, 299, 300, 301, 4_000, 50_000, want.len() as u64 - 3] {
        other.seek(SeekFrom::Start(offset)).unwrap();
        let mut three = [0u8; 3];
        other.read_exact(&mut three).unwrap();
        assert_eq!(
            three,
            want[offset as usize..offset as usize + 3],
            "at {offset}"
        );
    }
    other.seek(SeekFrom::Current(-3)).unwrap();
    assert_eq!(other.position(), want.len() as u64 - 3);
    let end = other.seek(SeekFrom::End(-6)).unwrap();
    assert_eq!(end, want.len() as u64 - 6);
    let mut tail = String::new();
    other.read_to_string(&mut tail).unwrap();
    assert_eq!(tail, "20000\n");
    assert!(other
        .seek(SeekFrom::Current(-(want.len() as i64) - 1))
        .is_err());

    // A fresh reader seeks past what it indexed by reading forward from its index's end.
    let mut fresh = ByteReader::open(dir.path()).unwrap();
    fresh.seek(SeekFrom::Start(70_000)).unwrap();
    let mut five = [0u8; 5];
    fresh.read_exact(&mut five).unwrap();
    assert_eq!(five, want[70_000..70_005]);

    // Pruned under the index: late offsets are still found without the early segments.
    let pruned = journal.prune_before(journal.next_sequence() - 10).unwrap();
    assert!(pruned.segments_removed > 10);
    let late = want.len() as u64 - 100;
    other.seek(SeekFrom::Start(late)).unwrap();
    let mut rest = Vec::new();
    other.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, want[late as usize..]);
    assert!(other.seek(SeekFrom::Start(10)).is_err(), "pruned bytes");
}

#[cfg(feature = "async")]
#[test]
fn an_async_reader_follows_a_live_capture_to_its_end() {
    use kekbit::stream::AsyncByteReader;
    use tokio::io::{AsyncReadExt, AsyncSeekExt};

    let dir = tempfile::tempdir().unwrap();
    let journal = small_journal(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut bytes = AsyncByteReader::new(ByteReader::open(dir.path()).unwrap()).unwrap();
        let writer = tokio::task::spawn_blocking(move || {
            let want = expected();
            for chunk in want.chunks(477) {
                journal.append(chunk).unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            // Closing the journal is the end of the byte stream.
        });
        let mut all = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            bytes.read_to_end(&mut all),
        )
        .await
        .expect("the reader saw the end");
        read.unwrap();
        writer.await.unwrap();
        assert_eq!(all, expected());
        bytes.seek(SeekFrom::Start(10)).await.unwrap();
        let mut four = [0u8; 4];
        bytes.read_exact(&mut four).await.unwrap();
        assert_eq!(four, expected()[10..14]);
    });
}
