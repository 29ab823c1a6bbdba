//! Turning values into record and snapshot bytes and back: a small [`Codec`] trait over
//! serde, with [`Bincode`] (bincode 2) as the default.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An encoding or decoding failure, with the codec's own error as its source.
///
/// ```
/// use kekbit::codec::{Bincode, Codec};
/// let err = Bincode.decode::<String>(&[200]).unwrap_err();
/// assert!(err.to_string().contains("decod"));
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{action} failed: {source}")]
pub struct CodecError {
    action: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl CodecError {
    /// An encoding error caused by `source`.
    ///
    /// ```
    /// let err = kekbit::codec::CodecError::encoding(std::io::Error::other("full"));
    /// assert_eq!(err.to_string(), "encoding failed: full");
    /// ```
    pub fn encoding(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CodecError {
        CodecError {
            action: "encoding",
            source: source.into(),
        }
    }

    /// A decoding error caused by `source`.
    ///
    /// ```
    /// let err = kekbit::codec::CodecError::decoding(std::io::Error::other("short"));
    /// assert_eq!(err.to_string(), "decoding failed: short");
    /// ```
    pub fn decoding(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> CodecError {
        CodecError {
            action: "decoding",
            source: source.into(),
        }
    }
}

/// Encodes values to bytes and decodes them back. Implement it to use another format than
/// the default [`Bincode`]; a codec must decode exactly what it encoded, and should reject
/// bytes it did not produce (a decode failure is reported with the record's sequence number).
///
/// ```
/// use kekbit::codec::{Codec, CodecError};
/// use serde::{de::DeserializeOwned, Serialize};
///
/// /// Bincode behind a one-byte version tag.
/// struct Tagged;
/// impl Codec for Tagged {
///     fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
///         out.push(1);
///         kekbit::codec::Bincode.encode(value, out)
///     }
///     fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
///         match bytes.split_first() {
///             Some((1, rest)) => kekbit::codec::Bincode.decode(rest),
///             _ => Err(CodecError::decoding(std::io::Error::other("unknown tag"))),
///         }
///     }
/// }
/// let mut bytes = Vec::new();
/// Tagged.encode(&42u32, &mut bytes).unwrap();
/// assert_eq!(Tagged.decode::<u32>(&bytes).unwrap(), 42);
/// ```
pub trait Codec: Send + Sync {
    /// Appends the encoding of `value` to `out`.
    ///
    /// ```
    /// use kekbit::codec::{Bincode, Codec};
    /// let mut out = vec![9];
    /// Bincode.encode(&7u8, &mut out).unwrap();
    /// assert_eq!(out, [9, 7]);
    /// ```
    fn encode<T: Serialize + ?Sized>(&self, value: &T, out: &mut Vec<u8>)
        -> Result<(), CodecError>;

    /// Decodes a value from all of `bytes`.
    ///
    /// ```
    /// use kekbit::codec::{Bincode, Codec};
    /// assert_eq!(Bincode.decode::<(u8, bool)>(&[7, 1]).unwrap(), (7, true));
    /// ```
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// The default codec: bincode 2 through serde, in its standard configuration (little-endian,
/// variable-length integers), refusing trailing bytes. Decoding is given a memory budget
/// proportional to its input (32 bytes of decoded memory per input byte, at least 4 KiB,
/// rounded up to a power of two), so a damaged or hostile length prefix cannot make it
/// allocate far more than the input describes; a value that really expands more than that
/// in memory is refused.
///
/// ```
/// use kekbit::codec::{Bincode, Codec};
/// let mut bytes = Vec::new();
/// Bincode.encode(&("transfer", 10u64), &mut bytes).unwrap();
/// let (what, amount): (String, u64) = Bincode.decode(&bytes).unwrap();
/// assert_eq!((what.as_str(), amount), ("transfer", 10));
/// assert!(Bincode.decode::<(String, u64)>(&bytes[..bytes.len() - 1]).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

/// Decoded memory allowed per byte of input.
const EXPANSION: usize = 32;
/// The smallest decoding budget.
const MIN_BUDGET: usize = 4 << 10;

/// Decodes with a budget of `LIMIT` bytes of claimed memory.
fn decode_within<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    bincode::serde::decode_from_slice(bytes, config)
}

/// Decodes with the smallest power-of-two budget (from 4 KiB to 1 TiB) that covers `budget`.
fn decode_budgeted<T: DeserializeOwned>(
    bytes: &[u8],
    budget: usize,
) -> Result<(T, usize), bincode::error::DecodeError> {
    macro_rules! classes {
        ($($bits:literal),*) => {
            match budget {
                $(b if b <= 1usize << $bits => decode_within::<T, { 1usize << $bits }>(bytes),)*
                _ => decode_within::<T, { 1usize << 40 }>(bytes),
            }
        };
    }
    classes!(
        12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
        35, 36, 37, 38, 39
    )
}

impl Codec for Bincode {
    fn encode<T: Serialize + ?Sized>(
        &self,
        value: &T,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
            .map(drop)
            .map_err(CodecError::encoding)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let budget = bytes.len().saturating_mul(EXPANSION).max(MIN_BUDGET);
        let (value, read) = decode_budgeted(bytes, budget).map_err(CodecError::decoding)?;
        if read != bytes.len() {
            return Err(CodecError::decoding(format!(
                "{} trailing bytes after the value",
                bytes.len() - read
            )));
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_length_claim_is_an_error_not_an_allocation() {
        // A Vec<u8> whose length prefix claims 2^60 elements: varint tag 0xFD then u64.
        let mut bytes = vec![0xFD];
        bytes.extend((1u64 << 60).to_le_bytes());
        assert!(Bincode.decode::<Vec<u8>>(&bytes).is_err());
        assert!(Bincode.decode::<String>(&bytes).is_err());
        assert!(Bincode.decode::<Vec<u64>>(&bytes).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = Vec::new();
        Bincode.encode(&1u8, &mut bytes).unwrap();
        bytes.push(0);
        assert!(Bincode.decode::<u8>(&bytes).is_err());
    }
}
