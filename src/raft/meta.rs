//! What the raft log store keeps beside its journal: the vote, the last committed log id and
//! the last purged log id, in one [`MetaFile`] (see docs/FORMAT.md, "Vote, log and the order
//! of writes").

use std::io;
use std::path::Path;

use openraft::alias::{LogIdOf, VoteOf};
use openraft::RaftTypeConfig;
use serde::{Deserialize, Serialize};

use crate::codec::{Bincode, Codec};
use crate::journal::MetaFile;

/// The metadata's value, encoded with bincode into the file.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Saved<C: RaftTypeConfig> {
    pub(crate) vote: Option<VoteOf<C>>,
    pub(crate) committed: Option<LogIdOf<C>>,
    pub(crate) last_purged: Option<LogIdOf<C>>,
}

impl<C: RaftTypeConfig> Clone for Saved<C> {
    fn clone(&self) -> Self {
        Saved {
            vote: self.vote.clone(),
            committed: self.committed.clone(),
            last_purged: self.last_purged.clone(),
        }
    }
}

/// The metadata file and its value.
pub(crate) struct Meta<C: RaftTypeConfig> {
    file: MetaFile,
    pub(crate) saved: Saved<C>,
}

impl<C: RaftTypeConfig> Meta<C> {
    /// Opens (or creates) the metadata file at `path`.
    pub(crate) fn open(path: &Path) -> io::Result<Meta<C>> {
        let file = MetaFile::open(path).map_err(io::Error::other)?;
        let saved = if file.value().is_empty() {
            Saved {
                vote: None,
                committed: None,
                last_purged: None,
            }
        } else {
            Bincode.decode(file.value()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: raft metadata: {e}", path.display()),
                )
            })?
        };
        Ok(Meta { file, saved })
    }

    /// Stores `saved` durably, then keeps it as the current value.
    pub(crate) fn store(&mut self, saved: Saved<C>) -> io::Result<()> {
        let mut bytes = Vec::new();
        Bincode
            .encode(&saved, &mut bytes)
            .map_err(io::Error::other)?;
        self.file.store(&bytes).map_err(io::Error::other)?;
        self.saved = saved;
        Ok(())
    }
}
