//! The channel core: one fixed-capacity, memory-mapped file per channel, one writer and any
//! number of readers in any process.
//!
//! A writer creates a channel with [`shm_writer`] from a [`Header`] and appends records with
//! [`Writer::write`]; each record is framed, 8-byte aligned and CRC32-checksummed, and bound
//! to its channel and position. Readers open the channel with [`shm_reader`] and poll it
//! without blocking, through [`Reader::try_read`] or an [`Iterator`]. The byte layout, the
//! publish protocol and what survives each kind of crash are specified in `docs/FORMAT.md`.
//!
//! ```
//! use kekbit::core::{shm_reader, shm_writer, EncoderHandler, Header, TickUnit, Writer};
//!
//! let dir = tempfile::tempdir()?;
//! let header = Header::new(1, 42, 1 << 20, 1024, 5_000, TickUnit::Millis);
//! let mut writer = shm_writer(dir.path(), &header, EncoderHandler)?;
//! writer.write("hello")?;
//! writer.write(&b"world"[..])?;
//! writer.flush()?; // durable from here on
//!
//! let mut reader = shm_reader(dir.path(), 42)?;
//! let records: Vec<Vec<u8>> = reader.iter().map(|r| r.map(<[u8]>::to_vec)).collect::<Result<_, _>>()?;
//! assert_eq!(records, [b"hello".to_vec(), b"world".to_vec()]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod checksum;
mod create;
mod error;
mod frame;
mod handler;
mod header;
mod map_cache;
mod new_writer;
mod open_reader;
mod options;
mod pretouch;
mod read_mode;
mod reader;
mod records;
mod recycle;
mod resume;
mod seek;
mod syncing;
mod tick;
mod timeout;
mod writer;

#[cfg(test)]
pub(crate) mod format_doc;

pub use create::storage_path;
pub use error::{ChannelError, InvalidPosition, ReadError, WriteError};
pub use frame::{
    MAX_RECORD_LEN, MAX_TRAILER_LEN, RECORD_ALIGN, RECORD_HEADER_LEN, TRAILER_RESERVE,
};
pub use handler::{
    ChainedHandler, Encodable, EncoderHandler, Handler, SequenceHandler, TimestampHandler,
};
pub use header::{
    Header, DEFAULT_MARK_SHIFT, FORMAT_VERSION, HEADER_LEN, MAGIC, MAX_CAPACITY, MAX_MARK_SHIFT,
    MIN_CAPACITY, MIN_MARK_SHIFT, OLDEST_FORMAT_VERSION,
};
pub use new_writer::shm_writer;
pub use open_reader::{shm_reader, try_shm_reader};
pub use options::{HeaderBuilder, ReaderOptions};
pub use read_mode::{read_mode, set_read_mode, ReadMode};
pub use reader::{Reader, ShmReader};
pub use records::Records;
pub use tick::TickUnit;
pub use timeout::TimeoutReader;
pub use writer::{ShmWriter, Writer};

pub(crate) use create::{
    create_dir_durable, fsync_directory, make_dir_durable, mark_durable, sync_directory, VoidedHint,
};
pub(crate) use frame::frame_len;
pub(crate) use header::{CHECKED_LEN, OFF_CLOSED_AT, OFF_DURABLE_WATERMARK};
pub(crate) use new_writer::{shm_writer_pending, Populate};
pub(crate) use open_reader::read_header;
pub(crate) use pretouch::AHEAD as PREFAULT_WINDOW;
pub(crate) use reader::Peek;
pub(crate) use recycle::{take_for_recycling, Pooled};
pub(crate) use resume::resume_for_seal;
pub(crate) use seek::SeekStop;
pub(crate) use syncing::{sync_header, SyncHandle};
