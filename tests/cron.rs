//! Cron parsing and next-slot evaluation: every "Cron (all UTC)" vector of SEED-TESTS.md, plus
//! the daylight-saving rules of DESIGN.md §4, `L`/`W`/`#`, macros, the dom/dow OR, the year
//! field, impossible expressions and seconds.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use plugin_jobs::cron::{CronError, Schedule, parse_timezone};

fn utc(text: &str) -> DateTime<Utc> {
    text.parse().expect("test timestamps are valid RFC 3339")
}

/// `10:20` means 2024-01-15 at that time, UTC, as in the seed table.
fn on_jan_15(time: &str) -> DateTime<Utc> {
    utc(&format!("2024-01-15T{time}:00Z"))
}

fn schedule(expr: &str) -> Schedule {
    Schedule::parse(expr, "UTC").expect("expression is valid")
}

fn zoned(expr: &str, timezone: &str) -> Schedule {
    Schedule::parse(expr, timezone).expect("expression and timezone are valid")
}

fn next(expr: &str, after: &str) -> Option<DateTime<Utc>> {
    schedule(expr).next_after(utc(after))
}

fn upcoming(schedule: &Schedule, after: &str, count: usize) -> Vec<String> {
    schedule
        .upcoming(utc(after), count)
        .iter()
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect()
}

fn rejection(expr: &str) -> String {
    Schedule::parse(expr, "UTC")
        .expect_err("expression is rejected")
        .to_string()
}

fn assert_mentions(message: &str, words: &[&str]) {
    let lower = message.to_lowercase();
    for word in words {
        assert!(
            lower.contains(&word.to_lowercase()),
            "message {message:?} should mention {word:?}"
        );
    }
}

// --- Parsing, as the sorted set of values per field ---

#[test]
fn all_stars_expand_to_every_value_of_every_field() {
    let fields = schedule("* * * * *").fields().clone();
    assert_eq!(fields.minutes.len(), 60);
    assert_eq!(fields.hours.len(), 24);
    assert_eq!(fields.days_of_month.len(), 31);
    assert_eq!(fields.months.len(), 12);
    assert_eq!(fields.days_of_week.len(), 7);
    assert_eq!(fields.seconds, vec![0]);
}

#[test]
fn single_values_expand_to_themselves() {
    let fields = schedule("5 14 3 7 1").fields().clone();
    assert_eq!(fields.minutes, vec![5]);
    assert_eq!(fields.hours, vec![14]);
    assert_eq!(fields.days_of_month, vec![3]);
    assert_eq!(fields.months, vec![7]);
    assert_eq!(fields.days_of_week, vec![1]);
}

#[test]
fn ranges_expand_inclusively() {
    let fields = schedule("0-5 9-17 * * *").fields().clone();
    assert_eq!(fields.minutes, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(fields.hours, (9..=17).collect::<Vec<_>>());
}

#[test]
fn steps_expand_from_their_start() {
    let minutes = |expr: &str| schedule(expr).fields().minutes.clone();
    assert_eq!(minutes("*/15 * * * *"), vec![0, 15, 30, 45]);
    assert_eq!(minutes("10/10 * * * *"), vec![10, 20, 30, 40, 50]);
    assert_eq!(minutes("0-30/10 * * * *"), vec![0, 10, 20, 30]);
}

#[test]
fn lists_expand_sorted_and_deduplicated() {
    let minutes = |expr: &str| schedule(expr).fields().minutes.clone();
    assert_eq!(minutes("0,15,30,45 * * * *"), vec![0, 15, 30, 45]);
    assert_eq!(minutes("0,10-12,30 * * * *"), vec![0, 10, 11, 12, 30]);
    assert_eq!(minutes("0,0,0 * * * *"), vec![0]);
    assert_eq!(minutes("30,0,15,45 * * * *"), vec![0, 15, 30, 45]);
}

#[test]
fn month_and_weekday_names_are_accepted_in_any_case() {
    let fields = schedule("0 0 * jan,Jul-sep MON-fri").fields().clone();
    assert_eq!(fields.months, vec![1, 7, 8, 9]);
    assert_eq!(fields.days_of_week, vec![1, 2, 3, 4, 5]);
}

// --- Rejected expressions ---

#[test]
fn an_empty_expression_is_rejected_as_empty() {
    assert_mentions(&rejection(""), &["empty"]);
    assert_mentions(&rejection("   \t "), &["empty"]);
    assert_eq!(Schedule::parse("", "UTC").err(), Some(CronError::Empty));
}

#[test]
fn four_fields_are_rejected_by_field_count() {
    assert_mentions(&rejection("* * * *"), &["field count"]);
}

#[test]
fn eight_fields_are_rejected_by_field_count() {
    assert_mentions(&rejection("0 0 0 1 1 * 2030 x"), &["field count"]);
}

#[test]
fn minute_sixty_is_out_of_range() {
    assert_mentions(
        &rejection("60 * * * *"),
        &["out of range", "minute", "\"60\""],
    );
}

#[test]
fn hour_twenty_four_is_out_of_range() {
    assert_mentions(
        &rejection("* 24 * * *"),
        &["out of range", "hour", "\"24\""],
    );
}

#[test]
fn hour_twenty_five_is_out_of_range() {
    assert_mentions(
        &rejection("* 25 * * *"),
        &["out of range", "hour", "\"25\""],
    );
}

#[test]
fn a_backwards_range_is_rejected_as_start_after_end() {
    assert_mentions(
        &rejection("5-3 * * * *"),
        &["start > end", "minute", "\"5-3\""],
    );
}

#[test]
fn a_word_in_the_minute_field_is_rejected_naming_field_and_token() {
    assert_mentions(&rejection("abc * * * *"), &["minute", "\"abc\""]);
}

#[test]
fn a_single_word_is_rejected_by_field_count() {
    assert_mentions(&rejection("invalid"), &["field count", "\"invalid\""]);
}

#[test]
fn a_sentence_is_rejected_by_field_count() {
    assert_mentions(&rejection("not a cron"), &["field count", "\"not a cron\""]);
}

#[test]
fn month_zero_is_rejected_naming_the_month_field() {
    assert_mentions(&rejection("* * * 0 *"), &["out of range", "month", "\"0\""]);
}

#[test]
fn month_thirteen_is_rejected_naming_the_month_field() {
    assert_mentions(
        &rejection("* * * 13 *"),
        &["out of range", "month", "\"13\""],
    );
}

#[test]
fn a_step_of_zero_is_rejected() {
    assert_mentions(
        &rejection("*/0 * * * *"),
        &["minute", "step of 0", "\"*/0\""],
    );
}

#[test]
fn errors_in_other_fields_name_those_fields() {
    assert_mentions(&rejection("60 * * * * *"), &["second", "\"60\""]);
    assert_mentions(&rejection("* * 32 * *"), &["day-of-month", "\"32\""]);
    assert_mentions(&rejection("* * * * 8"), &["day-of-week", "\"8\""]);
    assert_mentions(&rejection("* * * * MOO"), &["day-of-week", "\"MOO\""]);
    assert_mentions(&rejection("0 0 0 1 1 * 1969"), &["year", "\"1969\""]);
    assert_mentions(&rejection("* 5L * * *"), &["hour", "\"5L\""]);
    assert_mentions(&rejection("* * * * 5#6"), &["day-of-week", "\"5#6\""]);
}

#[test]
fn an_unknown_macro_is_rejected_naming_it() {
    assert_mentions(&rejection("@every"), &["unknown macro", "\"@every\""]);
}

#[test]
fn an_unknown_timezone_is_rejected_naming_it() {
    let error = Schedule::parse("* * * * *", "Mars/Olympus_Mons").expect_err("rejected");
    assert_mentions(
        &error.to_string(),
        &["unknown timezone", "Mars/Olympus_Mons"],
    );
    let error = parse_timezone("Not/AZone").expect_err("rejected");
    assert_mentions(&error.to_string(), &["unknown timezone", "Not/AZone"]);
}

#[test]
fn iana_timezone_names_are_accepted() {
    assert_eq!(
        parse_timezone("America/New_York").expect("known"),
        chrono_tz::America::New_York
    );
    assert_eq!(parse_timezone("UTC").expect("known"), chrono_tz::UTC);
    let berlin = zoned("0 9 * * *", "Europe/Berlin");
    assert_eq!(berlin.timezone(), chrono_tz::Europe::Berlin);
    assert_eq!(berlin.expression(), "0 9 * * *");
}

// --- Accepted expressions ---

#[test]
fn common_expressions_are_valid() {
    for expr in ["* * * * *", "0 12 * * 1", "*/15 9-17 * * 1-5"] {
        assert!(
            Schedule::parse(expr, "UTC").is_ok(),
            "{expr} should be valid"
        );
    }
}

#[test]
fn seven_in_day_of_week_is_accepted_as_sunday() {
    let sunday = schedule("* * * * 7");
    assert_eq!(sunday.fields().days_of_week, vec![0]);
    // 2024-01-15 is a Monday; the next Sunday is the 21st.
    assert_eq!(
        schedule("0 0 * * 7").next_after(on_jan_15("10:00")),
        Some(utc("2024-01-21T00:00:00Z"))
    );
}

#[test]
fn six_fields_are_accepted_with_a_leading_seconds_field() {
    let every_second = schedule("* * * * * *");
    assert_eq!(every_second.fields().seconds.len(), 60);
    assert_eq!(
        every_second.next_after(utc("2024-01-15T10:25:30Z")),
        Some(utc("2024-01-15T10:25:31Z"))
    );
}

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

// --- Daylight saving: America/New_York (2024-03-10 spring forward, 2024-11-03 fall back) ---

#[test]
fn slot_in_spring_forward_gap_fires_at_first_instant_after_it() {
    let s = zoned("30 2 * * *", "America/New_York");
    // 02:30 does not exist on 2024-03-10; 03:00 EDT is 07:00Z. The next day 02:30 EDT exists.
    assert_eq!(
        upcoming(&s, "2024-03-10T05:00:00Z", 2),
        ["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z"]
    );
}

#[test]
fn several_slots_in_one_gap_fire_once_at_its_end() {
    let s = zoned("0,30 2 * * *", "America/New_York");
    assert_eq!(
        upcoming(&s, "2024-03-10T05:00:00Z", 2),
        ["2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z"]
    );
}

#[test]
fn interval_slots_across_spring_forward_continue_after_the_gap() {
    let s = zoned("*/30 * * * *", "America/New_York");
    // 01:00 EST, 01:30 EST, then the gap's slots collapse into 03:00 EDT, then 03:30 EDT.
    assert_eq!(
        upcoming(&s, "2024-03-10T05:45:00Z", 4),
        [
            "2024-03-10T06:00:00Z",
            "2024-03-10T06:30:00Z",
            "2024-03-10T07:00:00Z",
            "2024-03-10T07:30:00Z"
        ]
    );
}

#[test]
fn slot_in_repeated_hour_fires_once_at_its_first_pass() {
    let s = zoned("30 1 * * *", "America/New_York");
    // 01:30 EDT is 05:30Z; 01:30 EST (06:30Z) is skipped; the next day 01:30 EST is 06:30Z.
    assert_eq!(
        upcoming(&s, "2024-11-03T04:00:00Z", 2),
        ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"]
    );
}

#[test]
fn slot_in_repeated_hour_is_not_fired_again_from_inside_the_second_pass() {
    let s = zoned("30 1 * * *", "America/New_York");
    assert_eq!(
        s.next_after(utc("2024-11-03T06:15:00Z")),
        Some(utc("2024-11-04T06:30:00Z"))
    );
}

#[test]
fn minutes_of_a_specific_repeated_hour_fire_only_in_the_first_pass() {
    let s = zoned("*/15 1 * * *", "America/New_York");
    assert_eq!(
        upcoming(&s, "2024-11-03T04:50:00Z", 5),
        [
            "2024-11-03T05:00:00Z",
            "2024-11-03T05:15:00Z",
            "2024-11-03T05:30:00Z",
            "2024-11-03T05:45:00Z",
            "2024-11-04T06:00:00Z"
        ]
    );
}

#[test]
fn hourly_expression_fires_every_real_hour_across_fall_back() {
    let s = zoned("0 * * * *", "America/New_York");
    // 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST: one firing per real hour.
    assert_eq!(
        upcoming(&s, "2024-11-03T03:30:00Z", 4),
        [
            "2024-11-03T04:00:00Z",
            "2024-11-03T05:00:00Z",
            "2024-11-03T06:00:00Z",
            "2024-11-03T07:00:00Z"
        ]
    );
}

#[test]
fn hourly_expression_started_inside_the_first_pass_finds_the_second_pass() {
    let s = zoned("0 * * * *", "America/New_York");
    assert_eq!(
        s.next_after(utc("2024-11-03T05:30:00Z")),
        Some(utc("2024-11-03T06:00:00Z"))
    );
    assert_eq!(
        s.next_after(utc("2024-11-03T06:30:00Z")),
        Some(utc("2024-11-03T07:00:00Z"))
    );
}

#[test]
fn quarter_hourly_expression_fires_every_real_quarter_hour_across_fall_back() {
    let s = zoned("*/15 * * * *", "America/New_York");
    let slots = s.upcoming(utc("2024-11-03T04:50:00Z"), 12);
    let gaps: Vec<i64> = slots
        .windows(2)
        .map(|pair| (pair[1] - pair[0]).num_minutes())
        .collect();
    assert_eq!(slots[0], utc("2024-11-03T05:00:00Z"));
    assert!(gaps.iter().all(|&g| g == 15), "{gaps:?}");
}

#[test]
fn every_second_expression_runs_through_the_repeated_hour_in_order() {
    let s = zoned("* * * * * *", "America/New_York");
    assert_eq!(
        s.next_after(utc("2024-11-03T05:59:59Z")),
        Some(utc("2024-11-03T06:00:00Z"))
    );
    assert_eq!(
        s.next_after(utc("2024-11-03T06:00:00Z")),
        Some(utc("2024-11-03T06:00:01Z"))
    );
}

// --- Daylight saving: Europe/Berlin (2024-03-31 spring forward, 2024-10-27 fall back) ---

#[test]
fn berlin_slot_in_spring_forward_gap_fires_at_three_cest() {
    let s = zoned("30 2 * * *", "Europe/Berlin");
    // 02:30 does not exist on 2024-03-31; 03:00 CEST is 01:00Z.
    assert_eq!(
        upcoming(&s, "2024-03-30T12:00:00Z", 2),
        ["2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z"]
    );
}

#[test]
fn berlin_slot_in_repeated_hour_fires_once() {
    let s = zoned("30 2 * * *", "Europe/Berlin");
    // 02:30 CEST is 00:30Z; 02:30 CET (01:30Z) is skipped; the next day 02:30 CET is 01:30Z.
    assert_eq!(
        upcoming(&s, "2024-10-26T12:00:00Z", 2),
        ["2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"]
    );
}

#[test]
fn berlin_hourly_expression_fires_every_real_hour_across_fall_back() {
    let s = zoned("0 * * * *", "Europe/Berlin");
    // 02:00 CEST, 02:00 CET, 03:00 CET.
    assert_eq!(
        upcoming(&s, "2024-10-26T23:30:00Z", 3),
        [
            "2024-10-27T00:00:00Z",
            "2024-10-27T01:00:00Z",
            "2024-10-27T02:00:00Z"
        ]
    );
}

#[test]
fn berlin_hourly_expression_skips_the_missing_hour_of_spring_forward() {
    let s = zoned("0 * * * *", "Europe/Berlin");
    // 01:00 CET, then 02:00 (missing) and 03:00 CEST are the same instant: 01:00Z.
    assert_eq!(
        upcoming(&s, "2024-03-30T23:30:00Z", 3),
        [
            "2024-03-31T00:00:00Z",
            "2024-03-31T01:00:00Z",
            "2024-03-31T02:00:00Z"
        ]
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

#[test]
fn a_macro_keeps_its_spelling_as_the_expression() {
    assert_eq!(schedule("@daily").expression(), "@daily");
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
