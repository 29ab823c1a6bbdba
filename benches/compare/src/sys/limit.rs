//! The limit probe: what framing alone costs on this machine. Each record's CRC32 is
//! computed and the framed bytes (the same 8-byte header and padding as the logs) are copied
//! into a heap buffer whose pages were touched beforehand (used as a ring in W6). No lock, no
//! system call, no file.

use std::io;

use crate::util::Records;

pub struct Limit {
    buf: Vec<u8>,
    position: usize,
}

impl Limit {
    /// A buffer for `count` records of `size` bytes, every page already touched.
    pub fn new(count: u64, size: usize) -> Limit {
        let len = count as usize * (8 + size).next_multiple_of(8);
        let mut buf = vec![0u8; len];
        // vec![0; n] of a large n maps zero pages lazily: write one byte per page.
        for i in (0..len).step_by(4096) {
            buf[i] = 1;
        }
        std::hint::black_box(&mut buf);
        Limit { buf, position: 0 }
    }

    #[inline]
    pub fn append(&mut self, record: &[u8]) {
        let crc = crc32fast::hash(record);
        let frame = (8 + record.len()).next_multiple_of(8);
        // A full buffer starts again from its start (W6's ring; W1/W2 never fill theirs).
        let at = if self.position + frame > self.buf.len() {
            0
        } else {
            self.position
        };
        let dst = &mut self.buf[at..at + frame];
        dst[..4].copy_from_slice(&(record.len() as u32).to_le_bytes());
        dst[4..8].copy_from_slice(&crc.to_le_bytes());
        dst[8..8 + record.len()].copy_from_slice(record);
        dst[8 + record.len()..].fill(0);
        self.position = at + frame;
    }

    /// Reads the framed records back from the buffer, checking CRC and content (the replay
    /// limit).
    pub fn replay(&self, records: &Records) -> io::Result<u64> {
        let mut at = 0;
        let mut count = 0;
        while at < self.position {
            let len = u32::from_le_bytes(self.buf[at..at + 4].try_into().unwrap()) as usize;
            let crc = u32::from_le_bytes(self.buf[at + 4..at + 8].try_into().unwrap());
            let payload = &self.buf[at + 8..at + 8 + len];
            if crc32fast::hash(payload) != crc {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "CRC mismatch"));
            }
            records.check(count, payload)?;
            count += 1;
            at += (8 + len).next_multiple_of(8);
        }
        Ok(count)
    }
}
