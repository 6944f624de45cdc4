//! Timestamp helpers shared by the store and the actors.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// Truncates to whole milliseconds: every stored timestamp has this precision, so values read
/// back compare equal to the values written (the compare-and-set on `next_run_at` relies on it).
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// A `std::time::Duration` as a chrono delta, saturating instead of failing on huge values.
pub fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Milliseconds from `from` to `to`, never negative.
pub fn elapsed_ms(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds().max(0)
}

/// ISO 8601 in UTC with milliseconds and `Z`, the one format of every timestamp plugin-jobs
/// shows (`2025-01-15T10:45:00.000Z`).
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
