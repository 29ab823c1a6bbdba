//! Reading a segment from its start to its seal, the end of its data or its first damage,
//! counting its valid records: what recovery, `verify` and `stats` learn a segment by.

use std::path::Path;

use super::segment;
use super::JournalError;
use crate::core::{Header, ReadError, Reader, ShmReader};

/// How reading a segment from its start ended.
pub(crate) enum Stop {
    /// Sealed: the marker's trailer and checksum.
    Sealed { trailer: Vec<u8>, checksum: u32 },
    /// No marker: valid records end at `position`; `damage` if what follows is damaged.
    Open {
        position: u64,
        damage: Option<ReadError>,
    },
}

/// A segment read from its start: its header, record count and how it ended.
pub(crate) struct Scan {
    pub(crate) header: Header,
    pub(crate) reader: ShmReader,
    pub(crate) records: u64,
    pub(crate) stop: Stop,
}

pub(crate) fn scan(dir: &Path, id: u64) -> Result<Scan, JournalError> {
    let mut reader = ShmReader::open(segment::segment_path(dir, id))?;
    let mut records = 0;
    let stop = read_on(&mut reader, &mut records);
    Ok(Scan {
        header: reader.header().clone(),
        reader,
        records,
        stop,
    })
}

/// Reads a segment on from the reader's position, counting valid records into `records`,
/// up to its seal, the end of its data or damage.
pub(crate) fn read_on(reader: &mut ShmReader, records: &mut u64) -> Stop {
    loop {
        match reader.try_read() {
            Ok(Some(_)) => *records += 1,
            Ok(None) => {
                return Stop::Open {
                    position: reader.position(),
                    damage: None,
                }
            }
            Err(ReadError::Closed { .. }) => {
                let (trailer, checksum) = reader.closing().expect("closed reader has a marker");
                return Stop::Sealed {
                    trailer: trailer.to_vec(),
                    checksum,
                };
            }
            Err(e) => {
                return Stop::Open {
                    position: reader.position(),
                    damage: Some(e),
                }
            }
        }
    }
}
