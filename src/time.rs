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

/// `t` moved back by `d`, or the earliest representable time when that would overflow (a
/// bound that every real timestamp is past, so a cutoff computed with it matches nothing).
pub fn minus(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    t.checked_sub_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t` moved forward by `d`, or the latest representable time when that would overflow.
pub fn plus(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    t.checked_add_signed(delta(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_arithmetic_saturates_instead_of_panicking() {
        let now = Utc::now();
        let huge = std::time::Duration::from_secs(u64::MAX);
        assert_eq!(minus(now, huge), DateTime::<Utc>::MIN_UTC);
        assert_eq!(plus(now, huge), DateTime::<Utc>::MAX_UTC);
        let second = std::time::Duration::from_secs(1);
        assert_eq!(minus(now, second), now - TimeDelta::seconds(1));
        assert_eq!(plus(now, second), now + TimeDelta::seconds(1));
        assert!(elapsed_ms(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC) > 0);
    }
}
