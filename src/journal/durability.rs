//! The words for a [`Durability`] policy, shared by every place a user types one (the
//! `kekbit` tool's `--durability`, the examples' options): `never`, `every-record`,
//! `every:N` and `interval:MS`, parsed by [`FromStr`] and printed by [`Display`] so that
//! printing a policy and parsing the text gives it back.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::Durability;

/// The valid spellings, for error messages and help texts.
pub(crate) const WORDS: &str = "never, every-record, every:N (a sync every N records) or \
                                interval:MS (a background sync every MS milliseconds)";

/// A durability policy that is none of `never`, `every-record`, `every:N` or `interval:MS`.
///
/// ```
/// use kekbit::journal::Durability;
/// let err = "always".parse::<Durability>().unwrap_err();
/// assert_eq!(err.input(), "always");
/// assert!(err.to_string().contains("every-record"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurabilityError {
    input: String,
    reason: String,
}

impl ParseDurabilityError {
    fn new(input: &str, reason: impl Into<String>) -> ParseDurabilityError {
        ParseDurabilityError {
            input: input.to_string(),
            reason: reason.into(),
        }
    }

    /// The text that was given.
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl fmt::Display for ParseDurabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid durability policy {:?}: {}; expected {WORDS}",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseDurabilityError {}

/// Parses `never`, `every-record`, `every:N` (N ≥ 1) or `interval:MS` (MS > 0, fractions
/// of a millisecond down to a nanosecond allowed, as `interval:0.25`).
///
/// ```
/// use kekbit::journal::Durability;
/// use std::time::Duration;
/// assert_eq!("never".parse(), Ok(Durability::Never));
/// assert_eq!("every-record".parse(), Ok(Durability::EveryRecord));
/// assert_eq!("every:100".parse(), Ok(Durability::EveryN(100)));
/// assert_eq!("interval:10".parse(), Ok(Durability::Interval(Duration::from_millis(10))));
/// assert!("every:0".parse::<Durability>().is_err());
/// ```
impl FromStr for Durability {
    type Err = ParseDurabilityError;

    fn from_str(s: &str) -> Result<Durability, ParseDurabilityError> {
        let error = |reason: &str| ParseDurabilityError::new(s, reason);
        match s.split_once(':') {
            None => match s {
                "never" => Ok(Durability::Never),
                "every-record" => Ok(Durability::EveryRecord),
                "always" | "every" => Err(error("did you mean every-record?")),
                _ => Err(error("unknown policy")),
            },
            Some(("every", n)) => match n.parse::<u64>() {
                Ok(0) => Err(error("N must be at least 1")),
                Ok(n) => Ok(Durability::EveryN(n)),
                Err(_) => Err(error("N must be a whole number of records")),
            },
            Some(("interval", ms)) => match parse_millis(ms) {
                Some(d) if d.is_zero() => Err(error("the interval must be more than 0")),
                Some(d) => Ok(Durability::Interval(d)),
                None => Err(error("MS must be a number of milliseconds, as 10 or 0.5")),
            },
            Some(("n", k)) => Err(ParseDurabilityError::new(
                s,
                format!("did you mean every:{k}?"),
            )),
            Some(_) => Err(error("unknown policy")),
        }
    }
}

/// `MS` or `MS.FRACTION` (at most six fraction digits: nanoseconds) as a duration.
fn parse_millis(text: &str) -> Option<Duration> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !digits(whole) || (text.contains('.') && !digits(fraction)) || fraction.len() > 6 {
        return None;
    }
    let millis: u64 = whole.parse().ok()?;
    let nanos: u32 = format!("{fraction:0<6}").parse().ok()?;
    Duration::from_millis(millis).checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Prints the policy in the words [`FromStr`] reads: `never`, `every-record`, `every:N` or
/// `interval:MS`.
///
/// ```
/// use kekbit::journal::Durability;
/// use std::time::Duration;
/// let policy = Durability::Interval(Duration::from_micros(2_500));
/// assert_eq!(policy.to_string(), "interval:2.5");
/// assert_eq!(policy.to_string().parse(), Ok(policy));
/// ```
impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Durability::Never => f.write_str("never"),
            Durability::EveryRecord => f.write_str("every-record"),
            Durability::EveryN(n) => write!(f, "every:{n}"),
            Durability::Interval(d) => {
                let nanos = d.as_nanos();
                let (millis, rest) = (nanos / 1_000_000, nanos % 1_000_000);
                if rest == 0 {
                    write!(f, "interval:{millis}")
                } else {
                    let fraction = format!("{rest:06}");
                    write!(f, "interval:{millis}.{}", fraction.trim_end_matches('0'))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_round_trips_through_its_words() {
        for policy in [
            Durability::Never,
            Durability::EveryRecord,
            Durability::EveryN(1),
            Durability::EveryN(u64::MAX),
            Durability::Interval(Duration::from_millis(10)),
            Durability::Interval(Duration::from_nanos(1)),
            Durability::Interval(Duration::from_nanos(1_234_567_891)),
            Durability::Interval(Duration::from_millis(u64::MAX)),
        ] {
            let words = policy.to_string();
            assert_eq!(words.parse::<Durability>(), Ok(policy), "{words}");
        }
    }

    #[test]
    fn malformed_policies_are_refused_naming_the_valid_words() {
        for bad in [
            "",
            "Never",
            "every:",
            "every:0",
            "every:-1",
            "every:1.5",
            "interval:",
            "interval:0",
            "interval:0.0",
            "interval:x",
            "interval:1.",
            "interval:.5",
            "interval:1.0000001",
            "interval:1e3",
            "always",
            "every",
            "n:5",
            "sometimes",
            "every:10:2",
        ] {
            let err = bad.parse::<Durability>().unwrap_err();
            assert_eq!(err.input(), bad);
            assert!(err.to_string().contains(WORDS), "{err}");
        }
        let hint = "n:5".parse::<Durability>().unwrap_err().to_string();
        assert!(hint.contains("every:5"), "{hint}");
    }
}
