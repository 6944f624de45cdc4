//! The next slot of an expression in UTC: every "Cron (all UTC)" vector of SEED-TESTS.md, the
//! day fields as crontab(5) combines them, `L`/`W`/`#`, macros, the year field, impossible
//! expressions, seconds and `upcoming`.

mod cron_support;

use std::time::{Duration, Instant};

use cron_support::{next, schedule, upcoming, utc, zoned};

// --- Next slot strictly after a time ---

#[test]
fn next_slot_matches_every_row_of_the_seed_table() {
    let rows = [
        (
            "30 14 * * *",
            "2024-01-15T14:00:00Z",
            "2024-01-15T14:30:00Z",
        ),
        ("0 8 * * *", "2024-01-15T09:00:00Z", "2024-01-16T08:00:00Z"),
        (
            "30 14 * * *",
            "2024-01-15T14:30:00Z",
            "2024-01-16T14:30:00Z",
        ),
        ("* * * * *", "2024-01-15T10:25:30Z", "2024-01-15T10:26:00Z"),
        ("5 * * * *", "2024-01-15T10:10:00Z", "2024-01-15T11:05:00Z"),
        ("0 0 1 3 *", "2024-03-02T00:00:00Z", "2025-03-01T00:00:00Z"),
        ("0 9 * * 1", "2024-01-15T09:00:00Z", "2024-01-22T09:00:00Z"),
        ("* * * * *", "2024-01-15T10:30:00Z", "2024-01-15T10:31:00Z"),
        (
            "0,15,30,45 * * * *",
            "2024-01-15T10:20:00Z",
            "2024-01-15T10:30:00Z",
        ),
        ("0 * * * *", "2024-01-15T10:00:00Z", "2024-01-15T11:00:00Z"),
        ("0 9 * * *", "2024-01-15T08:00:00Z", "2024-01-15T09:00:00Z"),
        ("0 6 * * *", "2024-01-15T10:00:00Z", "2024-01-16T06:00:00Z"),
        ("0 0 1 * *", "2024-01-15T00:00:00Z", "2024-02-01T00:00:00Z"),
        ("0 0 1 6 *", "2024-01-15T00:00:00Z", "2024-06-01T00:00:00Z"),
        ("0 0 * * *", "2024-03-10T12:00:00Z", "2024-03-11T00:00:00Z"),
        ("0 0 * * 0", "2024-01-15T00:00:00Z", "2024-01-21T00:00:00Z"),
        (
            "*/5 * * * *",
            "2024-01-15T10:07:00Z",
            "2024-01-15T10:10:00Z",
        ),
        (
            "*/30 * * * *",
            "2024-01-15T10:30:00Z",
            "2024-01-15T11:00:00Z",
        ),
        (
            "*/15 * * * *",
            "2025-01-15T10:30:00Z",
            "2025-01-15T10:45:00Z",
        ),
        (
            "0 9 * * 1-5",
            "2025-01-15T10:30:00Z",
            "2025-01-16T09:00:00Z",
        ),
        ("0 0 1 * *", "2025-01-31T23:50:00Z", "2025-02-01T00:00:00Z"),
        ("0 0 1 1 *", "2025-12-31T23:50:00Z", "2026-01-01T00:00:00Z"),
    ];
    for (expr, after, expected) in rows {
        assert_eq!(
            next(expr, after),
            Some(utc(expected)),
            "{expr} after {after}"
        );
    }
}

#[test]
fn a_slot_equal_to_the_start_is_not_returned() {
    assert_eq!(
        next("30 14 * * *", "2024-01-15T14:30:00Z"),
        Some(utc("2024-01-16T14:30:00Z"))
    );
}

#[test]
fn a_start_with_fractional_seconds_rounds_up_to_the_next_slot() {
    let after = utc("2024-01-15T10:25:59.999Z");
    assert_eq!(
        schedule("* * * * *").next_after(after),
        Some(utc("2024-01-15T10:26:00Z"))
    );
    let after = utc("2024-01-15T10:26:00.001Z");
    assert_eq!(
        schedule("* * * * *").next_after(after),
        Some(utc("2024-01-15T10:27:00Z"))
    );
}

#[test]
fn slots_are_wall_clock_times_in_the_schedule_timezone() {
    let new_york = zoned("0 9 * * *", "America/New_York");
    assert_eq!(
        new_york.next_after(utc("2024-01-15T00:00:00Z")),
        Some(utc("2024-01-15T14:00:00Z"))
    );
    assert_eq!(
        new_york.next_after(utc("2024-07-15T00:00:00Z")),
        Some(utc("2024-07-15T13:00:00Z"))
    );
}

// --- L, W, # ---

#[test]
fn l_in_day_of_month_is_the_last_day_of_each_month() {
    let s = schedule("0 0 L * *");
    assert_eq!(
        upcoming(&s, "2024-01-15T00:00:00Z", 4),
        [
            "2024-01-31T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2024-03-31T00:00:00Z",
            "2024-04-30T00:00:00Z"
        ]
    );
    assert_eq!(
        next("0 0 L 2 *", "2023-01-01T00:00:00Z"),
        Some(utc("2023-02-28T00:00:00Z"))
    );
}

#[test]
fn lw_is_the_last_weekday_of_the_month() {
    // 2024-03-31 is a Sunday, so the last weekday is Friday the 29th.
    assert_eq!(
        next("0 0 LW * *", "2024-03-01T00:00:00Z"),
        Some(utc("2024-03-29T00:00:00Z"))
    );
}

#[test]
fn w_is_the_weekday_nearest_the_given_day() {
    // 2024-06-15 is a Saturday: 15W is Friday the 14th.
    assert_eq!(
        next("0 0 15W * *", "2024-06-01T00:00:00Z"),
        Some(utc("2024-06-14T00:00:00Z"))
    );
    // 2024-09-15 is a Sunday: 15W is Monday the 16th.
    assert_eq!(
        next("0 0 15W * *", "2024-09-01T00:00:00Z"),
        Some(utc("2024-09-16T00:00:00Z"))
    );
    // 2024-06-01 is a Saturday: 1W does not leave the month, it is Monday the 3rd.
    assert_eq!(
        next("0 0 1W * *", "2024-05-31T00:00:00Z"),
        Some(utc("2024-06-03T00:00:00Z"))
    );
}

#[test]
fn hash_is_the_nth_weekday_of_the_month() {
    // Fridays of January 2024: 5, 12, 19, 26.
    assert_eq!(
        next("0 0 * * 5#3", "2024-01-01T00:00:00Z"),
        Some(utc("2024-01-19T00:00:00Z"))
    );
    assert_eq!(
        next("0 0 * * FRI#1", "2024-01-06T00:00:00Z"),
        Some(utc("2024-02-02T00:00:00Z"))
    );
}

#[test]
fn weekday_l_is_the_last_such_weekday_of_the_month() {
    assert_eq!(
        next("0 0 * * 5L", "2024-01-01T00:00:00Z"),
        Some(utc("2024-01-26T00:00:00Z"))
    );
    assert_eq!(
        next("0 0 * * 5#L", "2024-01-27T00:00:00Z"),
        Some(utc("2024-02-23T00:00:00Z"))
    );
}

#[test]
fn a_rare_fifth_weekday_is_found_decades_ahead() {
    // A fifth Friday in February needs a leap year starting on a Friday: 2036, then 2064.
    assert_eq!(
        next("0 0 * 2 5#5", "2024-03-01T00:00:00Z"),
        Some(utc("2036-02-29T00:00:00Z"))
    );
    assert_eq!(
        next("0 0 * 2 5#5", "2036-03-01T00:00:00Z"),
        Some(utc("2064-02-29T00:00:00Z"))
    );
}

// --- Macros ---

#[test]
fn macros_expand_to_their_expressions() {
    let after = "2024-01-15T10:30:00Z";
    for (macro_name, expected) in [
        ("@yearly", "2025-01-01T00:00:00Z"),
        ("@annually", "2025-01-01T00:00:00Z"),
        ("@monthly", "2024-02-01T00:00:00Z"),
        ("@weekly", "2024-01-21T00:00:00Z"),
        ("@daily", "2024-01-16T00:00:00Z"),
        ("@midnight", "2024-01-16T00:00:00Z"),
        ("@hourly", "2024-01-15T11:00:00Z"),
        ("@DAILY", "2024-01-16T00:00:00Z"),
        ("@Hourly", "2024-01-15T11:00:00Z"),
    ] {
        assert_eq!(
            next(macro_name, after),
            Some(utc(expected)),
            "{macro_name} after {after}"
        );
    }
}

// --- Day-of-month OR day-of-week ---

#[test]
fn restricted_day_of_month_and_day_of_week_are_ored() {
    let s = schedule("0 0 13 * 5");
    // September 2024: Fridays 6, 13 (also the 13th), 20, 27; October: Friday 4, 11, Sunday 13.
    assert_eq!(
        upcoming(&s, "2024-09-01T00:00:00Z", 7),
        [
            "2024-09-06T00:00:00Z",
            "2024-09-13T00:00:00Z",
            "2024-09-20T00:00:00Z",
            "2024-09-27T00:00:00Z",
            "2024-10-04T00:00:00Z",
            "2024-10-11T00:00:00Z",
            "2024-10-13T00:00:00Z"
        ]
    );
}

#[test]
fn a_star_day_field_leaves_the_other_to_restrict() {
    // Only the 13th: 2024-10-13 is a Sunday.
    assert_eq!(
        next("0 0 13 * *", "2024-09-14T00:00:00Z"),
        Some(utc("2024-10-13T00:00:00Z"))
    );
    // Only Fridays, with ? standing for *.
    assert_eq!(
        next("0 0 ? * 5", "2024-09-14T00:00:00Z"),
        Some(utc("2024-09-20T00:00:00Z"))
    );
    assert_eq!(
        next("0 0 13 * ?", "2024-09-14T00:00:00Z"),
        Some(utc("2024-10-13T00:00:00Z"))
    );
}

/// The days of December 2026 on which `expr` fires (the 1st is a Tuesday; Mondays are the 7th,
/// 14th, 21st and 28th, Fridays the 4th, 11th, 18th and 25th, Sundays the 6th, 13th, 20th and
/// 27th).
fn december_2026_days(expr: &str) -> Vec<u32> {
    use chrono::Datelike;
    schedule(expr)
        .upcoming(utc("2026-11-30T12:00:00Z"), 40)
        .into_iter()
        .take_while(|slot| slot.month() == 12)
        .map(|slot| slot.day())
        .collect()
}

/// crontab(5): "If both fields are restricted (i.e., do not start with *), the command will be
/// run when either field matches the current time. For example, "30 4 1,15 * 5" would cause a
/// command to be run at 4:30 am on the 1st and 15th of each month, plus every Friday." A field
/// that starts with `*` (`*/2` included) restricts together with the other.
#[test]
fn day_fields_combine_as_crontab_5_says() {
    let rows: &[(&str, &[u32])] = &[
        // crontab(5)'s own example: either field.
        ("30 4 1,15 * 5", &[1, 4, 11, 15, 18, 25]),
        ("0 0 1-7 * 1", &[1, 2, 3, 4, 5, 6, 7, 14, 21, 28]),
        // A field starting with `*`: both must match.
        ("0 0 */2 * 1", &[7, 21]),
        ("0 0 */1 * 5", &[4, 11, 18, 25]),
        ("0 0 1-10 * */7", &[6]),
        ("0 0 * * 1", &[7, 14, 21, 28]),
        ("0 0 13 * *", &[13]),
        // `?` is `*`.
        ("0 0 ? * 1", &[7, 14, 21, 28]),
        ("0 0 13 * ?", &[13]),
        // `L`, `W` and `#` restrict their field like any value.
        ("0 0 L * 5", &[4, 11, 18, 25, 31]),
        ("0 0 15W * 1", &[7, 14, 15, 21, 28]),
        ("0 0 */2 * 5#2", &[11]),
        ("0 0 * * 5L", &[25]),
        // A range ending in SUN: through Sunday after another weekday, else Sunday alone.
        (
            "0 0 * * FRI-SUN",
            &[4, 5, 6, 11, 12, 13, 18, 19, 20, 25, 26, 27],
        ),
        ("0 0 * * SUN-SUN", &[6, 13, 20, 27]),
        ("0 0 * * 0-SUN", &[6, 13, 20, 27]),
    ];
    for (expr, days) in rows {
        assert_eq!(december_2026_days(expr), *days, "{expr}");
    }
}

#[test]
fn odd_days_and_mondays_means_mondays_on_odd_days() {
    // The case: not "odd days, or Mondays".
    assert_eq!(
        upcoming(&schedule("0 0 */2 * 1"), "2026-11-30T12:00:00Z", 4),
        [
            "2026-12-07T00:00:00Z",
            "2026-12-21T00:00:00Z",
            "2027-01-11T00:00:00Z",
            "2027-01-25T00:00:00Z"
        ]
    );
}

// --- Year field ---

#[test]
fn a_seventh_field_restricts_the_year() {
    let s = schedule("0 0 0 1 1 * 2026");
    assert_eq!(
        s.next_after(utc("2024-01-15T00:00:00Z")),
        Some(utc("2026-01-01T00:00:00Z"))
    );
    assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")), None);
}

#[test]
fn a_year_range_fires_until_it_is_exhausted() {
    let s = schedule("0 0 0 1 1 * 2025-2026");
    assert_eq!(
        upcoming(&s, "2024-06-01T00:00:00Z", 5),
        ["2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z"]
    );
}

#[test]
fn a_year_in_the_past_never_fires() {
    assert_eq!(next("0 0 0 1 1 * 2020", "2024-01-15T00:00:00Z"), None);
}

#[test]
fn nothing_fires_after_the_year_9999() {
    assert_eq!(next("@yearly", "9999-06-01T00:00:00Z"), None);
    assert_eq!(
        next("0 0 0 31 12 * 9999", "2024-01-01T00:00:00Z"),
        Some(utc("9999-12-31T00:00:00Z"))
    );
    // 23:00 on the last day of 9999 in New York is already 10000 in UTC.
    let late = zoned("0 0 23 31 12 * 9999", "America/New_York");
    assert_eq!(late.next_after(utc("2024-01-01T00:00:00Z")), None);
    // East of UTC the new year of 10000 comes first on the wall clock.
    let tokyo = zoned("@yearly", "Asia/Tokyo");
    assert_eq!(tokyo.next_after(utc("9999-06-01T00:00:00Z")), None);
    assert!(
        schedule("* * * * * *")
            .upcoming(utc("9999-12-31T23:59:58Z"), 5)
            .len()
            == 1
    );
}

// --- Impossible expressions ---

fn assert_never_fires_quickly(expr: &str) {
    let s = schedule(expr);
    let started = Instant::now();
    assert_eq!(s.next_after(utc("2024-01-15T00:00:00Z")), None, "{expr}");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(50),
        "{expr} took {elapsed:?}"
    );
}

#[test]
fn february_thirtieth_never_fires_and_says_so_quickly() {
    assert_never_fires_quickly("0 0 30 2 *");
}

#[test]
fn april_thirty_first_never_fires_and_says_so_quickly() {
    assert_never_fires_quickly("0 0 31 4 *");
}

#[test]
fn thirty_first_of_every_short_month_never_fires() {
    assert_never_fires_quickly("0 0 31 2,4,6,9,11 *");
    assert_never_fires_quickly("0 0 0 30 2 * 2024-2999");
}

#[test]
fn a_leap_day_is_still_found() {
    assert_eq!(
        next("0 0 29 2 *", "2024-03-01T00:00:00Z"),
        Some(utc("2028-02-29T00:00:00Z"))
    );
    // 2100 is not a leap year, so from 2097 the next 29 February is in 2104.
    assert_eq!(
        next("0 0 29 2 *", "2097-03-01T00:00:00Z"),
        Some(utc("2104-02-29T00:00:00Z"))
    );
}

#[test]
fn an_impossible_expression_has_no_upcoming_slots() {
    assert!(
        schedule("0 0 30 2 *")
            .upcoming(utc("2024-01-15T00:00:00Z"), 3)
            .is_empty()
    );
}

// --- Seconds ---

#[test]
fn a_seconds_field_schedules_to_the_second() {
    assert_eq!(
        next("*/10 * * * * *", "2024-01-15T10:00:05Z"),
        Some(utc("2024-01-15T10:00:10Z"))
    );
    assert_eq!(
        next("30 * * * * *", "2024-01-15T10:00:30Z"),
        Some(utc("2024-01-15T10:01:30Z"))
    );
    assert_eq!(
        next("15 30 9 * * *", "2024-01-15T10:00:00Z"),
        Some(utc("2024-01-16T09:30:15Z"))
    );
}

#[test]
fn five_field_slots_fire_at_second_zero() {
    for slot in schedule("*/7 * * * *").upcoming(utc("2024-01-15T10:00:17Z"), 20) {
        assert_eq!(slot.timestamp() % 60, 0, "{slot}");
    }
}

// --- upcoming ---

#[test]
fn upcoming_lists_successive_slots() {
    let s = schedule("*/15 * * * *");
    assert_eq!(
        upcoming(&s, "2024-01-15T10:07:00Z", 4),
        [
            "2024-01-15T10:15:00Z",
            "2024-01-15T10:30:00Z",
            "2024-01-15T10:45:00Z",
            "2024-01-15T11:00:00Z"
        ]
    );
    assert!(s.upcoming(utc("2024-01-15T10:07:00Z"), 0).is_empty());
}

#[test]
fn next_after_is_fast_for_every_kind_of_expression() {
    let after = utc("2024-11-03T05:30:00Z");
    for expr in [
        "* * * * * *",
        "*/15 * * * *",
        "0 0 29 2 *",
        "0 0 * 2 5#5",
        "0 0 LW * *",
        "0 0 0 1 1 * 2999",
    ] {
        let s = zoned(expr, "America/New_York");
        let started = Instant::now();
        assert!(s.next_after(after).is_some(), "{expr}");
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_millis(50),
            "{expr} took {elapsed:?}"
        );
    }
}
