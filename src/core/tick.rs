//! Time granularity of a channel.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The time granularity shared by every component of a channel: the unit of the header's
/// timeout and creation time, of heartbeats and of [`TimestampHandler`](super::TimestampHandler)
/// stamps. Chosen by the writer at creation and never changed.
///
/// ```
/// use kekbit::core::TickUnit;
/// use std::time::Duration;
///
/// assert_eq!(TickUnit::Millis.convert(Duration::from_secs(2)), 2_000);
/// assert_eq!(TickUnit::from_id(TickUnit::Micros.id()), Some(TickUnit::Micros));
/// assert!(TickUnit::Secs.nix_time() > 1_600_000_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickUnit {
    /// Nanoseconds.
    Nanos,
    /// Microseconds.
    Micros,
    /// Milliseconds.
    Millis,
    /// Seconds.
    Secs,
}

impl TickUnit {
    /// The identifier stored on disk (see `docs/FORMAT.md`): 1 to 4.
    ///
    /// ```
    /// assert_eq!(kekbit::core::TickUnit::Nanos.id(), 1);
    /// ```
    pub fn id(self) -> u32 {
        match self {
            TickUnit::Nanos => 1,
            TickUnit::Micros => 2,
            TickUnit::Millis => 3,
            TickUnit::Secs => 4,
        }
    }

    /// The unit with the given on-disk identifier, or `None` for an unknown one.
    ///
    /// ```
    /// use kekbit::core::TickUnit;
    /// assert_eq!(TickUnit::from_id(3), Some(TickUnit::Millis));
    /// assert_eq!(TickUnit::from_id(0), None);
    /// ```
    pub fn from_id(id: u32) -> Option<TickUnit> {
        match id {
            1 => Some(TickUnit::Nanos),
            2 => Some(TickUnit::Micros),
            3 => Some(TickUnit::Millis),
            4 => Some(TickUnit::Secs),
            _ => None,
        }
    }

    /// Whole ticks in `duration`, saturating at `u64::MAX`.
    ///
    /// ```
    /// use kekbit::core::TickUnit;
    /// use std::time::Duration;
    /// assert_eq!(TickUnit::Micros.convert(Duration::from_millis(3)), 3_000);
    /// ```
    pub fn convert(self, duration: Duration) -> u64 {
        let ticks = match self {
            TickUnit::Nanos => duration.as_nanos(),
            TickUnit::Micros => duration.as_micros(),
            TickUnit::Millis => duration.as_millis(),
            TickUnit::Secs => u128::from(duration.as_secs()),
        };
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }

    /// The duration of `ticks` ticks of this unit, saturating at `Duration::MAX`.
    ///
    /// ```
    /// use kekbit::core::TickUnit;
    /// use std::time::Duration;
    /// assert_eq!(TickUnit::Millis.duration(1_500), Duration::from_millis(1_500));
    /// ```
    pub fn duration(self, ticks: u64) -> Duration {
        match self {
            TickUnit::Nanos => Duration::from_nanos(ticks),
            TickUnit::Micros => Duration::from_micros(ticks),
            TickUnit::Millis => Duration::from_millis(ticks),
            TickUnit::Secs => Duration::from_secs(ticks),
        }
    }

    /// Ticks elapsed since the UNIX epoch by the system clock (0 if the clock is before it).
    ///
    /// ```
    /// use kekbit::core::TickUnit;
    /// // Later than 2020-09-13 (1.6e9 seconds after the epoch), in each unit.
    /// assert!(TickUnit::Nanos.nix_time() > 1_600_000_000_000_000_000);
    /// assert!(TickUnit::Millis.nix_time() > 1_600_000_000_000);
    /// ```
    pub fn nix_time(self) -> u64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        self.convert(since)
    }
}
