//! [`TypedStream`]: a typed journal's values as a `futures::Stream` (feature `async`).

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{TypedError, TypedJournal};
use crate::codec::Codec;
use crate::stream::JournalStream;

/// A [`TypedJournal`]'s values from an index on, decoded, as a live
/// [`Stream`](futures_core::Stream) of `(index, value)`: a [`JournalStream`] through the
/// journal's codec. It yields an error once (a value that does not decode, or the stream's
/// end: the writer closed or died), then ends. Made by [`TypedJournal::stream`].
///
/// ```
/// use kekbit::typed::TypedJournal;
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let prices = TypedJournal::<(String, u32)>::open(dir.path()).unwrap();
/// prices.push(&("tea".into(), 3)).unwrap();
/// let mut stream = prices.stream(0).unwrap();
/// prices.push(&("cake".into(), 5)).unwrap();
/// assert_eq!(stream.next().await.unwrap().unwrap(), (0, ("tea".into(), 3)));
/// assert_eq!(stream.next().await.unwrap().unwrap(), (1, ("cake".into(), 5)));
/// # });
/// ```
pub struct TypedStream<T, K> {
    records: JournalStream,
    codec: K,
    failed: bool,
    _values: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned, K: Codec + Clone> TypedJournal<T, K> {
    /// The values from `index` on as a live stream (feature `async`); see [`TypedStream`].
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
    /// let stream = values.stream(0).unwrap();
    /// # drop(stream);
    /// ```
    pub fn stream(&self, index: u64) -> Result<TypedStream<T, K>, TypedError> {
        Ok(TypedStream {
            records: JournalStream::open(self.journal.dir(), index)?,
            codec: self.codec.clone(),
            failed: false,
            _values: PhantomData,
        })
    }
}

impl<T: DeserializeOwned, K: Codec> TypedStream<T, K> {
    /// The next value, waiting for it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let dir = tempfile::tempdir().unwrap();
    /// let values = kekbit::typed::TypedJournal::<u8>::open(dir.path()).unwrap();
    /// values.push(&9).unwrap();
    /// assert_eq!(values.stream(0).unwrap().next().await.unwrap().unwrap(), (0, 9));
    /// # });
    /// ```
    pub async fn next(&mut self) -> Option<Result<(u64, T), TypedError>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<(u64, T), TypedError>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let item = match Pin::new(&mut self.records).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Ok((seq, record)))) => self
                .codec
                .decode(&record)
                .map(|value| (seq, value))
                .map_err(|source| TypedError::Decode { seq, source }),
            Poll::Ready(Some(Err(e))) => Err(e.into()),
        };
        self.failed = item.is_err();
        Poll::Ready(Some(item))
    }
}

impl<T: DeserializeOwned, K: Codec + Unpin> Stream for TypedStream<T, K> {
    type Item = Result<(u64, T), TypedError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_item(cx)
    }
}

impl<T, K> std::fmt::Debug for TypedStream<T, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedStream")
            .field("records", &self.records)
            .finish()
    }
}
