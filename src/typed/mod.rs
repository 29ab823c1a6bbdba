//! A typed view of a journal: a persistent, append-only sequence of values.

use std::marker::PhantomData;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{Bincode, Codec, CodecError};
use crate::journal::{AppendError, Journal, JournalError, JournalOptions, JournalReader};

#[cfg(feature = "async")]
mod stream;
#[cfg(feature = "async")]
pub use stream::TypedStream;

/// Errors of a [`TypedJournal`].
///
/// ```
/// use kekbit::typed::{TypedError, TypedJournal};
/// let dir = tempfile::tempdir().unwrap();
/// let words = TypedJournal::<String>::open(dir.path()).unwrap();
/// words.journal().append(&[0xff]).unwrap(); // not a bincode String
/// assert!(matches!(words.get(0), Err(TypedError::Decode { seq: 0, .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypedError {
    /// Opening or reading the journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Appending failed.
    #[error(transparent)]
    Append(#[from] AppendError),
    /// A value could not be encoded.
    #[error(transparent)]
    Encode(#[from] CodecError),
    /// The record at `seq` does not decode as a value of the journal's type.
    #[error("record {seq} does not decode: {source}")]
    Decode {
        /// The record's sequence number.
        seq: u64,
        /// The codec's error.
        #[source]
        source: CodecError,
    },
}

/// A persistent, append-only sequence of `T`, stored in a [`Journal`] with the codec `K`:
/// push values, get one by its index (its sequence number), iterate from any index.
///
/// ```
/// use kekbit::typed::TypedJournal;
/// let dir = tempfile::tempdir().unwrap();
/// {
///     let points = TypedJournal::<(i32, i32)>::open(dir.path()).unwrap();
///     assert_eq!(points.push(&(1, 2)).unwrap(), 0);
///     assert_eq!(points.push(&(3, 4)).unwrap(), 1);
/// }
/// let points = TypedJournal::<(i32, i32)>::open(dir.path()).unwrap();
/// assert_eq!(points.len(), 2);
/// assert_eq!(points.get(1).unwrap(), Some((3, 4)));
/// let all: Vec<(i32, i32)> = points.iter_from(0).unwrap().map(|r| r.unwrap().1).collect();
/// assert_eq!(all, [(1, 2), (3, 4)]);
/// ```
pub struct TypedJournal<T, K: Codec = Bincode> {
    journal: Journal,
    codec: K,
    _values: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> TypedJournal<T, Bincode> {
    /// Opens (or creates) the typed journal in `dir` with default journal options.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u64>::open(dir.path()).unwrap();
    /// assert!(values.is_empty());
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, TypedError> {
        Ok(Self::with_journal(Journal::open(dir)?, Bincode))
    }

    /// Opens (or creates) the typed journal in `dir` with `options`.
    ///
    /// ```
    /// use kekbit::journal::{Durability, JournalOptions};
    /// let dir = tempfile::tempdir().unwrap();
    /// let options = JournalOptions::new().durability(Durability::Never);
    /// let values = kekbit::typed::TypedJournal::<u64>::open_with(dir.path(), options).unwrap();
    /// # drop(values);
    /// ```
    pub fn open_with(dir: impl AsRef<Path>, options: JournalOptions) -> Result<Self, TypedError> {
        Ok(Self::with_journal(options.open(dir)?, Bincode))
    }
}

impl<T: Serialize + DeserializeOwned, K: Codec> TypedJournal<T, K> {
    /// A typed view of an open journal, with the codec `codec`.
    ///
    /// ```
    /// use kekbit::{codec::Bincode, journal::Journal, typed::TypedJournal};
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = TypedJournal::<String, _>::with_journal(Journal::open(dir.path()).unwrap(), Bincode);
    /// values.push(&"x".to_string()).unwrap();
    /// ```
    pub fn with_journal(journal: Journal, codec: K) -> Self {
        TypedJournal {
            journal,
            codec,
            _values: PhantomData,
        }
    }

    /// Appends `value` and returns its index (durable as the journal's policy says).
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
    /// assert_eq!(values.push(&9).unwrap(), 0);
    /// ```
    pub fn push(&self, value: &T) -> Result<u64, TypedError> {
        let mut bytes = Vec::new();
        self.codec.encode(value, &mut bytes)?;
        Ok(self.journal.append(&bytes)?)
    }

    /// The value at `index`, or `None` if nothing was pushed there yet. Finds the segment by
    /// a binary search, then reads within it.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
    /// values.push(&7).unwrap();
    /// assert_eq!(values.get(0).unwrap(), Some(7));
    /// assert_eq!(values.get(1).unwrap(), None);
    /// ```
    pub fn get(&self, index: u64) -> Result<Option<T>, TypedError> {
        if index >= self.journal.next_sequence() {
            return Ok(None);
        }
        let mut reader = JournalReader::open(self.journal.dir(), index)?;
        match reader.try_next()? {
            Some((seq, bytes)) => self
                .codec
                .decode(bytes)
                .map(Some)
                .map_err(|source| TypedError::Decode { seq, source }),
            None => Ok(None),
        }
    }

    /// The values from `index` on, with their indexes, as far as they have been pushed.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
    /// for v in [10, 11, 12] {
    ///     values.push(&v).unwrap();
    /// }
    /// let tail: Vec<(u64, u8)> = values.iter_from(1).unwrap().map(Result::unwrap).collect();
    /// assert_eq!(tail, [(1, 11), (2, 12)]);
    /// ```
    pub fn iter_from(&self, index: u64) -> Result<TypedIter<'_, T, K>, TypedError> {
        Ok(TypedIter {
            reader: JournalReader::open(self.journal.dir(), index)?,
            codec: &self.codec,
            failed: false,
            _values: PhantomData,
        })
    }

    /// How many values were pushed.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
    /// values.push(&1).unwrap();
    /// assert_eq!(values.len(), 1);
    /// ```
    pub fn len(&self) -> u64 {
        self.journal.next_sequence()
    }

    /// Whether nothing was pushed.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// assert!(kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The journal underneath.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
    /// values.journal().sync().unwrap();
    /// ```
    pub fn journal(&self) -> &Journal {
        &self.journal
    }
}

/// Iterator over a [`TypedJournal`]'s values, from [`TypedJournal::iter_from`]. Ends when it
/// has caught up with the writer; yields an error once, then ends.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
/// values.push(&3).unwrap();
/// assert_eq!(values.iter_from(0).unwrap().count(), 1);
/// ```
pub struct TypedIter<'a, T, K> {
    reader: JournalReader,
    codec: &'a K,
    failed: bool,
    _values: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned, K: Codec> Iterator for TypedIter<'_, T, K> {
    type Item = Result<(u64, T), TypedError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = match self.reader.try_next() {
            Ok(Some((seq, bytes))) => self
                .codec
                .decode(bytes)
                .map(|value| (seq, value))
                .map_err(|source| TypedError::Decode { seq, source }),
            Ok(None) => return None,
            Err(e) => Err(e.into()),
        };
        self.failed = item.is_err();
        Some(item)
    }
}

impl<T, K: Codec> std::fmt::Debug for TypedJournal<T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedJournal")
            .field("journal", &self.journal)
            .finish()
    }
}
