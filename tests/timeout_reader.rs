//! A `TimeoutReader` on a channel with a 50 ms timeout: new records and heartbeats keep the
//! channel alive over periods several times longer than the timeout; 50 ms of silence yields
//! `ReadError::Timeout` (with the right timeout, silence and position), which a plain reader
//! never reports; a reader opened on a channel whose writer went silent long ago (no records,
//! or only an old heartbeat) times out at its first empty read, while a closed channel reads
//! as `Closed`, never as a timeout. A timeout of 0 is no timeout (journal segments use it).

use std::thread::sleep;
use std::time::Duration;

use kekbit::core::{
    shm_reader, shm_writer, EncoderHandler, Header, ReadError, Reader, ShmWriter, TickUnit, Writer,
};

const TIMEOUT: Duration = Duration::from_millis(50);
/// Well below the timeout, so that a late wake-up does not cause a false timeout.
const BEAT: Duration = Duration::from_millis(10);

fn new_writer(dir: &std::path::Path, channel: u64) -> ShmWriter<EncoderHandler> {
    let header = Header::new(1, channel, 1 << 16, 64, 50, TickUnit::Millis);
    shm_writer(dir, &header, EncoderHandler).unwrap()
}

fn assert_timeout(result: Result<Option<&[u8]>, ReadError>, at: u64, at_least: Duration) {
    match result {
        Err(ReadError::Timeout {
            position,
            timeout,
            silent,
            ..
        }) => {
            assert_eq!(position, at);
            assert_eq!(timeout, TIMEOUT);
            assert!(silent > TIMEOUT && silent >= at_least, "silent {silent:?}");
        }
        other => panic!("expected Timeout at {at}, got {other:?}"),
    }
}

#[test]
fn records_keep_the_channel_alive() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path(), 1);
    let mut reader = shm_reader(dir.path(), 1).unwrap().with_timeout();
    assert_eq!(reader.timeout(), TIMEOUT);
    // 200 ms of activity, four times the timeout.
    for i in 0..20u8 {
        writer.write(&[i]).unwrap();
        sleep(BEAT);
        assert_eq!(reader.try_read().unwrap(), Some(&[i][..]), "record {i}");
        assert_eq!(reader.try_read().unwrap(), None, "after record {i}");
    }
}

#[test]
fn heartbeats_keep_the_channel_alive_then_silence_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path(), 2);
    writer.write("only record").unwrap();
    let mut reader = shm_reader(dir.path(), 2).unwrap().with_timeout();
    assert!(reader.try_read().unwrap().is_some());
    for beat in 0..20 {
        writer.heartbeat().unwrap();
        sleep(BEAT);
        assert_eq!(reader.try_read().unwrap(), None, "after heartbeat {beat}");
    }
    // Silence for longer than the timeout.
    sleep(TIMEOUT + Duration::from_millis(30));
    let end = writer.position();
    assert_timeout(reader.try_read(), end, TIMEOUT);
    assert_eq!(reader.position(), end);
    // A plain reader of the same channel has no opinion about silence.
    let mut plain = shm_reader(dir.path(), 2).unwrap();
    assert!(plain.try_read().unwrap().is_some());
    assert_eq!(plain.try_read().unwrap(), None);
    drop(writer);
}

#[test]
fn silence_after_records_times_out_and_iter_yields_the_timeout_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = new_writer(dir.path(), 3);
    let mut reader = shm_reader(dir.path(), 3).unwrap().with_timeout();
    writer.write("a").unwrap();
    writer.write("b").unwrap();
    assert_eq!(reader.iter().count(), 2);
    assert_eq!(
        reader.try_read().unwrap(),
        None,
        "just caught up: not silent yet"
    );

    sleep(TIMEOUT + Duration::from_millis(30));
    let items: Vec<_> = reader.iter().collect();
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(
        items[0],
        Err(ReadError::Timeout { position: 32, .. })
    ));
    // Still silent: still timed out.
    assert_timeout(reader.try_read(), 32, TIMEOUT);
    drop(writer);
}

#[test]
fn a_reader_opened_long_after_the_writer_went_silent_times_out_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let never = new_writer(dir.path(), 4);
    let mut beat_once = new_writer(dir.path(), 5);
    beat_once.heartbeat().unwrap();
    let closed = new_writer(dir.path(), 6);
    closed.close().unwrap();

    sleep(Duration::from_millis(120));

    // No record, no heartbeat since creation 120 ms ago.
    let mut reader = shm_reader(dir.path(), 4).unwrap().with_timeout();
    assert_timeout(reader.try_read(), 0, Duration::from_millis(100));
    // One heartbeat, 120 ms ago.
    let mut reader = shm_reader(dir.path(), 5).unwrap().with_timeout();
    assert_timeout(reader.try_read(), 0, Duration::from_millis(100));
    // Closed long ago is closed, not abandoned.
    let mut reader = shm_reader(dir.path(), 6).unwrap().with_timeout();
    assert!(matches!(
        reader.try_read(),
        Err(ReadError::Closed { position: 0, .. })
    ));

    // A heartbeat now revives the silent channel for the reader that saw it time out.
    let mut reader = shm_reader(dir.path(), 5).unwrap().with_timeout();
    assert!(reader.try_read().is_err());
    beat_once.heartbeat().unwrap();
    assert_eq!(reader.try_read().unwrap(), None);
    drop((never, beat_once));
}

#[test]
fn a_zero_timeout_means_none_so_journal_segments_do_not_time_out_at_once() {
    // Trap (issue 11, "API traps"): journal segments are created with timeout 0, and
    // `with_timeout()` on a segment reader timed out at the first empty read.
    let dir = tempfile::tempdir().unwrap();
    let header = Header::new(1, 7, 1 << 16, 64, 0, TickUnit::Millis);
    let mut writer = shm_writer(dir.path(), &header, EncoderHandler).unwrap();
    let mut reader = shm_reader(dir.path(), 7).unwrap().with_timeout();
    assert_eq!(reader.timeout(), Duration::ZERO);
    sleep(Duration::from_millis(5));
    assert_eq!(reader.try_read().unwrap(), None);
    writer.write("late").unwrap();
    assert_eq!(reader.try_read().unwrap(), Some(&b"late"[..]));

    let journal_dir = tempfile::tempdir().unwrap();
    let journal = kekbit::journal::Journal::open(journal_dir.path()).unwrap();
    journal.append(b"x").unwrap();
    let mut segment = shm_reader(journal_dir.path(), 1).unwrap().with_timeout();
    assert_eq!(segment.try_read().unwrap(), Some(&b"x"[..]));
    sleep(Duration::from_millis(5));
    assert_eq!(segment.try_read().unwrap(), None);
}
