//! Any bytes as a channel file: `ShmReader::open` returns `Ok` or `Err`, never panics, and
//! never maps more than the file holds; an opened channel reads exactly as the reference
//! decoder of docs/FORMAT.md says (records, closing marker, damage, `move_to`, durable-only),
//! through the timeout reader too; the same file as a one-segment journal is read by
//! `JournalReader` and `journal::verify` without a panic. No single allocation beyond what the
//! input allows.
//!
//! Input: a control byte, then the file. Control bits 0 to 2 repair the fixed header before
//! it is written (bit 1: magic and version; bit 2: header length; bit 0: header checksum), so
//! that the fuzzer reaches the field checks and the data area instead of stopping at the
//! checksum.
#![no_main]

use kekbit::core::{shm_reader, Reader, ShmReader, HEADER_LEN};
use kekbit::journal::{verify, JournalReader};
use kekbit_fuzz::{
    check_allocations, check_channel, fix_header, fresh_dir, le_u64, reset_largest, write_channel,
    Tracking,
};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fuzz_target!(|data: &[u8]| {
    let Some((&control, file)) = data.split_first() else {
        return;
    };
    let mut file = file.to_vec();
    fix_header(&mut file, control);
    let dir = fresh_dir("segment_header");
    // Named for the channel its header claims, so that the name check passes too.
    let id = if file.len() >= 32 {
        le_u64(&file, 24)
    } else {
        1
    };
    let path = write_channel(&dir, id, &file);
    reset_largest();

    match ShmReader::open(&path) {
        Err(_) => {}
        Ok(mut reader) => {
            let header = reader.header().clone();
            let capacity = header.capacity();
            assert!(
                file.len() as u64 >= HEADER_LEN as u64 + capacity,
                "opened a {}-byte file whose header claims a {capacity}-byte data area",
                file.len()
            );
            assert_eq!(header.channel_id(), id);
            let _ = reader.writer_alive();
            check_channel(&mut reader, &file[HEADER_LEN..]);
            // The timeout reader on the same channel.
            let mut timed = reader.with_timeout();
            let _ = timed.timeout();
            for _ in 0..=capacity / 8 {
                match timed.try_read() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
    if let Ok(mut reader) = shm_reader(&dir, id) {
        let _ = reader.try_read();
    }

    // The same file as the only segment of a journal.
    if let Ok(mut reader) = JournalReader::open(&dir, 0) {
        for _ in 0..=file.len() / 8 {
            match reader.try_next() {
                Ok(Some(_)) => {}
                _ => break,
            }
        }
    }
    let _ = verify(&dir, &mut |_, _| {});
    check_allocations(data.len(), "segment_header");
});
