//! The lab's one time type: an instant as microseconds since the Unix epoch, UTC.
//!
//! Every time the lab records — collection, receipt, release, a QC rejection, a lock-out, an
//! audit event — is a [`Timestamp`]. It is stored as a `BIGINT` of microseconds and leaves
//! the store as this type, never as a bare integer, so a time cannot be added to an id or a
//! count by mistake. Arithmetic reads in the lab's terms: [`Timestamp::minutes_since`]
//! (minutes since collection), [`Timestamp::days_since`] (age of a lot), [`Timestamp::since`]
//! for anything finer. The type never reads the clock: "now" is always a parameter.

use std::fmt;
use std::ops::{Add, Sub};

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_MINUTE: i64 = 60 * MICROS_PER_SECOND;
const MICROS_PER_DAY: i64 = 24 * 60 * MICROS_PER_MINUTE;

/// An instant, in microseconds since the Unix epoch, UTC. Serialised as that integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// From microseconds since the epoch (how the store keeps every time).
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the epoch (how the store keeps every time).
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The time elapsed from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> SignedDuration {
        SignedDuration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// Whole minutes from `earlier` to `self`, rounded down: "minutes since collection".
    pub fn minutes_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0).div_euclid(MICROS_PER_MINUTE)
    }

    /// Whole days from `earlier` to `self`, rounded down: "days since the lot was opened".
    pub fn days_since(self, earlier: Timestamp) -> i64 {
        self.0.saturating_sub(earlier.0).div_euclid(MICROS_PER_DAY)
    }

    /// `self` moved by `by`, saturating at the ends of the range.
    pub fn plus(self, by: SignedDuration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_micros(by)))
    }

    /// `self` moved back by `by`, saturating at the ends of the range.
    pub fn minus(self, by: SignedDuration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_micros(by)))
    }

    /// As a `jiff` timestamp, for display in a zone and calendar arithmetic; `None` outside
    /// the range `jiff` represents (years -9999 to 9999), which no clock produces.
    pub fn to_jiff(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::from_microsecond(self.0).ok()
    }
}

/// The microseconds of a duration, saturating beyond `i64`.
fn duration_micros(d: SignedDuration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(if d.is_negative() { i64::MIN } else { i64::MAX })
}

impl From<jiff::Timestamp> for Timestamp {
    fn from(t: jiff::Timestamp) -> Timestamp {
        Timestamp(t.as_microsecond())
    }
}

impl Add<SignedDuration> for Timestamp {
    type Output = Timestamp;
    fn add(self, by: SignedDuration) -> Timestamp {
        self.plus(by)
    }
}

impl Sub<SignedDuration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, by: SignedDuration) -> Timestamp {
        self.minus(by)
    }
}

impl Sub for Timestamp {
    type Output = SignedDuration;
    fn sub(self, earlier: Timestamp) -> SignedDuration {
        self.since(earlier)
    }
}

/// RFC 3339 in UTC (`2026-11-24T08:00:00Z`), or the raw microseconds outside `jiff`'s range.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_jiff() {
            Some(t) => write!(f, "{t}"),
            None => write!(f, "{}us", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::from(s.parse::<jiff::Timestamp>().unwrap())
    }

    #[test]
    fn minutes_since_collection_count_whole_minutes() {
        let collected = at("2026-11-24T08:00:00Z");
        assert_eq!(at("2026-11-24T08:59:59Z").minutes_since(collected), 59);
        assert_eq!(at("2026-11-24T09:00:00Z").minutes_since(collected), 60);
        assert_eq!(at("2026-11-24T07:59:30Z").minutes_since(collected), -1);
    }

    #[test]
    fn a_lot_opened_thirty_days_ago_is_thirty_days_old() {
        let opened = at("2026-10-25T12:00:00Z");
        assert_eq!(at("2026-11-24T12:00:00Z").days_since(opened), 30);
        assert_eq!(at("2026-11-24T11:59:59Z").days_since(opened), 29);
    }

    #[test]
    fn a_time_moved_by_a_duration_and_back_is_the_same_time() {
        let t = at("2026-11-24T08:00:00Z");
        let later = t + SignedDuration::from_mins(90);
        assert_eq!(later, at("2026-11-24T09:30:00Z"));
        assert_eq!(later - t, SignedDuration::from_mins(90));
        assert_eq!(later - SignedDuration::from_mins(90), t);
    }

    #[test]
    fn a_time_serialises_as_its_microseconds_and_converts_to_jiff_exactly() {
        let t = at("2026-11-24T08:00:00.000001Z");
        assert_eq!(serde_json::to_string(&t).unwrap(), t.as_micros().to_string());
        assert_eq!(Timestamp::from(t.to_jiff().unwrap()), t);
        assert_eq!(t.to_string(), "2026-11-24T08:00:00.000001Z");
    }

    #[test]
    fn a_time_beyond_the_calendar_has_no_jiff_form_and_saturates() {
        assert_eq!(Timestamp::from_micros(i64::MAX).to_jiff(), None);
        assert_eq!(
            Timestamp::from_micros(i64::MAX).plus(SignedDuration::from_secs(1)).as_micros(),
            i64::MAX
        );
    }
}
