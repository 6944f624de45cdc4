//! Daylight saving, by Debian cron's rules (module docs of `plugin_jobs::cron`): a wildcard job
//! (second, minute or hour field starting with `*`) follows real time, a fixed-time job moves a
//! slot out of a gap and runs a repeated time once. Each rule in America/New_York,
//! Europe/Berlin, Australia/Lord_Howe (a 30-minute shift), America/Santiago and America/Havana
//! (transitions at midnight), with the note the preview shows.

mod cron_support;

use cron_support::{upcoming, utc, zoned};

/// The slots after `from` as "local date, time and zone", with " | note" where daylight saving
/// decided something. Also checks that the explained slots are exactly the plain ones.
fn preview(expr: &str, timezone: &str, from: &str, count: usize) -> Vec<String> {
    let schedule = zoned(expr, timezone);
    let slots = schedule.upcoming_slots(utc(from), count);
    let instants: Vec<_> = slots.iter().map(|slot| slot.at).collect();
    assert_eq!(instants, schedule.upcoming(utc(from), count), "{expr}");
    slots
        .iter()
        .map(|slot| {
            let local = slot.local.format("%Y-%m-%d %H:%M %Z").to_string();
            match &slot.note {
                Some(note) => format!("{local} | {note}"),
                None => local,
            }
        })
        .collect()
}

// --- America/New_York, 2027: 02:00 EST jumps to 03:00 EDT on 03-14 (07:00Z); 01:00–01:59
// --- repeats on 11-07 (EDT from 05:00Z, then EST from 06:00Z).

#[test]
fn new_york_wildcard_job_skips_the_slot_in_the_gap() {
    assert_eq!(
        preview("5 * * * *", "America/New_York", "2027-03-14T06:00:00Z", 4),
        [
            "2027-03-14 01:05 EST",
            "2027-03-14 03:05 EDT | 02:05 does not exist on 2027-03-14: skipped, wildcard job",
            "2027-03-14 04:05 EDT",
            "2027-03-14 05:05 EDT",
        ]
    );
}

#[test]
fn new_york_wildcard_job_whose_only_slots_are_in_the_gap_skips_the_day() {
    assert_eq!(
        preview(
            "*/30 2 * * *",
            "America/New_York",
            "2027-03-14T06:00:00Z",
            2
        ),
        [
            "2027-03-15 02:00 EDT | 02:00 and 02:30 do not exist on 2027-03-14: skipped, wildcard job",
            "2027-03-15 02:30 EDT",
        ]
    );
}

#[test]
fn new_york_fixed_time_job_runs_the_gap_slot_at_the_gap_end() {
    assert_eq!(
        preview("30 2 * * *", "America/New_York", "2027-03-13T12:00:00Z", 2),
        [
            "2027-03-14 03:00 EDT | 02:30 does not exist on 2027-03-14: runs at 03:00 EDT",
            "2027-03-15 02:30 EDT",
        ]
    );
    assert_eq!(
        preview(
            "0,30 2 * * *",
            "America/New_York",
            "2027-03-13T12:00:00Z",
            2
        ),
        [
            "2027-03-14 03:00 EDT | 02:00 and 02:30 do not exist on 2027-03-14: run once, at 03:00 EDT",
            "2027-03-15 02:00 EDT",
        ]
    );
}

#[test]
fn new_york_fixed_time_job_naming_every_hour_runs_once_at_the_gap_end() {
    // 02:00 moves to 03:00, which is a slot itself: one run, not two.
    assert_eq!(
        preview(
            "0 0-23 * * *",
            "America/New_York",
            "2027-03-14T05:30:00Z",
            3
        ),
        [
            "2027-03-14 01:00 EST",
            "2027-03-14 03:00 EDT | 02:00 does not exist on 2027-03-14: runs at 03:00 EDT",
            "2027-03-14 04:00 EDT",
        ]
    );
}

#[test]
fn new_york_wildcard_job_runs_both_passes_of_the_repeated_hour() {
    assert_eq!(
        preview("5 * * * *", "America/New_York", "2027-11-07T04:00:00Z", 4),
        [
            "2027-11-07 00:05 EDT",
            "2027-11-07 01:05 EDT | 01:05 EDT and 01:05 EST both run: wildcard job",
            "2027-11-07 01:05 EST | 01:05 EDT and 01:05 EST both run: wildcard job",
            "2027-11-07 02:05 EST",
        ]
    );
    assert_eq!(
        preview(
            "*/30 1 * * *",
            "America/New_York",
            "2027-11-07T04:00:00Z",
            5
        ),
        [
            "2027-11-07 01:00 EDT | 01:00 EDT and 01:00 EST both run: wildcard job",
            "2027-11-07 01:30 EDT | 01:30 EDT and 01:30 EST both run: wildcard job",
            "2027-11-07 01:00 EST | 01:00 EDT and 01:00 EST both run: wildcard job",
            "2027-11-07 01:30 EST | 01:30 EDT and 01:30 EST both run: wildcard job",
            "2027-11-08 01:00 EST",
        ]
    );
}

#[test]
fn new_york_fixed_time_job_runs_a_repeated_time_once_at_the_first_pass() {
    assert_eq!(
        preview("30 1 * * *", "America/New_York", "2027-11-06T12:00:00Z", 2),
        [
            "2027-11-07 01:30 EDT | 01:30 repeats on 2027-11-07: runs once, at the first pass",
            "2027-11-08 01:30 EST",
        ]
    );
    assert_eq!(
        preview(
            "0 0-23 * * *",
            "America/New_York",
            "2027-11-07T04:30:00Z",
            3
        ),
        [
            "2027-11-07 01:00 EDT | 01:00 repeats on 2027-11-07: runs once, at the first pass",
            "2027-11-07 02:00 EST",
            "2027-11-07 03:00 EST",
        ]
    );
    // From inside the second pass the repeated time has already run.
    assert_eq!(
        preview("30 1 * * *", "America/New_York", "2027-11-07T06:15:00Z", 1),
        ["2027-11-08 01:30 EST"]
    );
}

// --- Europe/Berlin, 2027: 02:00 CET jumps to 03:00 CEST on 03-28 (01:00Z); 02:00–02:59
// --- repeats on 10-31 (CEST from 00:00Z, then CET from 01:00Z).

#[test]
fn berlin_wildcard_and_fixed_time_jobs_across_spring_forward() {
    assert_eq!(
        preview("0 * * * *", "Europe/Berlin", "2027-03-27T23:30:00Z", 3),
        [
            "2027-03-28 01:00 CET",
            "2027-03-28 03:00 CEST | 02:00 does not exist on 2027-03-28: skipped, wildcard job",
            "2027-03-28 04:00 CEST",
        ]
    );
    assert_eq!(
        preview("30 2 * * *", "Europe/Berlin", "2027-03-27T12:00:00Z", 2),
        [
            "2027-03-28 03:00 CEST | 02:30 does not exist on 2027-03-28: runs at 03:00 CEST",
            "2027-03-29 02:30 CEST",
        ]
    );
}

#[test]
fn berlin_wildcard_and_fixed_time_jobs_across_fall_back() {
    assert_eq!(
        preview("0 */2 * * *", "Europe/Berlin", "2027-10-30T21:30:00Z", 4),
        [
            "2027-10-31 00:00 CEST",
            "2027-10-31 02:00 CEST | 02:00 CEST and 02:00 CET both run: wildcard job",
            "2027-10-31 02:00 CET | 02:00 CEST and 02:00 CET both run: wildcard job",
            "2027-10-31 04:00 CET",
        ]
    );
    assert_eq!(
        preview("30 2 * * *", "Europe/Berlin", "2027-10-30T12:00:00Z", 2),
        [
            "2027-10-31 02:30 CEST | 02:30 repeats on 2027-10-31: runs once, at the first pass",
            "2027-11-01 02:30 CET",
        ]
    );
}

#[test]
fn berlin_seconds_field_starting_with_a_star_makes_a_wildcard_job() {
    assert_eq!(
        preview(
            "*/30 30 2 * * *",
            "Europe/Berlin",
            "2027-03-27T12:00:00Z",
            1
        ),
        [
            "2027-03-29 02:30 CEST | 02:30:00 and 02:30:30 do not exist on 2027-03-28: skipped, wildcard job"
        ]
    );
    assert_eq!(
        preview("15 30 2 * * *", "Europe/Berlin", "2027-03-27T12:00:00Z", 1),
        ["2027-03-28 03:00 CEST | 02:30:15 does not exist on 2027-03-28: runs at 03:00:00 CEST"]
    );
}

// --- Australia/Lord_Howe, 2027: 01:30–01:59 repeats on 04-04 (+11 from 14:30Z, then +10:30
// --- from 15:00Z); 02:00 +10:30 jumps to 02:30 +11 on 10-03 (10-02 15:30Z).

#[test]
fn lord_howe_half_hour_fall_back() {
    assert_eq!(
        preview(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2027-04-03T14:20:00Z",
            5
        ),
        [
            "2027-04-04 01:30 +11 | 01:30 +11 and 01:30 +1030 both run: wildcard job",
            "2027-04-04 01:45 +11 | 01:45 +11 and 01:45 +1030 both run: wildcard job",
            "2027-04-04 01:30 +1030 | 01:30 +11 and 01:30 +1030 both run: wildcard job",
            "2027-04-04 01:45 +1030 | 01:45 +11 and 01:45 +1030 both run: wildcard job",
            "2027-04-04 02:00 +1030",
        ]
    );
    assert_eq!(
        preview(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2027-04-03T12:00:00Z",
            2
        ),
        [
            "2027-04-04 01:45 +11 | 01:45 repeats on 2027-04-04: runs once, at the first pass",
            "2027-04-05 01:45 +1030",
        ]
    );
}

#[test]
fn lord_howe_half_hour_spring_forward() {
    assert_eq!(
        preview(
            "*/15 * * * *",
            "Australia/Lord_Howe",
            "2027-10-02T15:10:00Z",
            3
        ),
        [
            "2027-10-03 01:45 +1030",
            "2027-10-03 02:30 +11 | 02:00 and 02:15 do not exist on 2027-10-03: skipped, wildcard job",
            "2027-10-03 02:45 +11",
        ]
    );
    assert_eq!(
        preview(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2027-10-02T12:00:00Z",
            2
        ),
        [
            "2027-10-03 02:30 +11 | 02:15 does not exist on 2027-10-03: runs at 02:30 +11",
            "2027-10-04 02:15 +11",
        ]
    );
}

// --- America/Santiago, 2027: 23:00–23:59 repeats on 04-03 (-03 from 02:00Z, then -04 from
// --- 03:00Z); midnight -04 jumps to 01:00 -03 on 09-05 (04:00Z).

#[test]
fn santiago_midnight_spring_forward() {
    assert_eq!(
        preview("0 0 * * *", "America/Santiago", "2027-09-04T12:00:00Z", 2),
        [
            "2027-09-05 01:00 -03 | 00:00 does not exist on 2027-09-05: runs at 01:00 -03",
            "2027-09-06 00:00 -03",
        ]
    );
    assert_eq!(
        preview("30 * * * *", "America/Santiago", "2027-09-05T03:00:00Z", 2),
        [
            "2027-09-04 23:30 -04",
            "2027-09-05 01:30 -03 | 00:30 does not exist on 2027-09-05: skipped, wildcard job",
        ]
    );
}

#[test]
fn santiago_late_evening_fall_back() {
    assert_eq!(
        preview("30 23 * * *", "America/Santiago", "2027-04-03T12:00:00Z", 2),
        [
            "2027-04-03 23:30 -03 | 23:30 repeats on 2027-04-03: runs once, at the first pass",
            "2027-04-04 23:30 -04",
        ]
    );
    assert_eq!(
        preview("30 * * * *", "America/Santiago", "2027-04-04T01:00:00Z", 4),
        [
            "2027-04-03 22:30 -03",
            "2027-04-03 23:30 -03 | 23:30 -03 and 23:30 -04 both run: wildcard job",
            "2027-04-03 23:30 -04 | 23:30 -03 and 23:30 -04 both run: wildcard job",
            "2027-04-04 00:30 -04",
        ]
    );
}

// --- America/Havana, 2027: midnight CST jumps to 01:00 CDT on 03-14 (05:00Z); 00:00–00:59
// --- repeats on 11-07 (CDT from 04:00Z, then CST from 05:00Z).

#[test]
fn havana_midnight_transitions_for_a_daily_job() {
    assert_eq!(
        preview("@daily", "America/Havana", "2027-03-13T12:00:00Z", 2),
        [
            "2027-03-14 01:00 CDT | 00:00 does not exist on 2027-03-14: runs at 01:00 CDT",
            "2027-03-15 00:00 CDT",
        ]
    );
    assert_eq!(
        preview("@daily", "America/Havana", "2027-11-06T12:00:00Z", 2),
        [
            "2027-11-07 00:00 CDT | 00:00 repeats on 2027-11-07: runs once, at the first pass",
            "2027-11-08 00:00 CST",
        ]
    );
}

#[test]
fn havana_hourly_macro_is_a_wildcard_job() {
    assert_eq!(
        preview("@hourly", "America/Havana", "2027-11-07T03:30:00Z", 3),
        [
            "2027-11-07 00:00 CDT | 00:00 CDT and 00:00 CST both run: wildcard job",
            "2027-11-07 00:00 CST | 00:00 CDT and 00:00 CST both run: wildcard job",
            "2027-11-07 01:00 CST",
        ]
    );
}

// --- America/New_York, 2024 (spring forward 03-10, fall back 11-03): instants only ---

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
fn interval_slots_across_spring_forward_skip_the_gap() {
    let s = zoned("*/30 * * * *", "America/New_York");
    // A wildcard job: 01:00 EST, 01:30 EST, then 02:00 and 02:30 do not exist, then 03:00 EDT.
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
fn listed_minutes_of_a_repeated_hour_fire_only_in_the_first_pass() {
    // A fixed-time job: neither minute nor hour starts with `*`.
    let s = zoned("0,15,30,45 1 * * *", "America/New_York");
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
fn stepped_minutes_of_a_repeated_hour_fire_in_both_passes() {
    // A wildcard job: the minute field starts with `*`.
    let s = zoned("*/15 1 * * *", "America/New_York");
    assert_eq!(
        upcoming(&s, "2024-11-03T04:50:00Z", 9),
        [
            "2024-11-03T05:00:00Z",
            "2024-11-03T05:15:00Z",
            "2024-11-03T05:30:00Z",
            "2024-11-03T05:45:00Z",
            "2024-11-03T06:00:00Z",
            "2024-11-03T06:15:00Z",
            "2024-11-03T06:30:00Z",
            "2024-11-03T06:45:00Z",
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

// --- Europe/Berlin, 2024 (spring forward 03-31, fall back 10-27): instants only ---

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
    // 01:00 CET, then 02:00 does not exist, then 03:00 CEST (01:00Z).
    assert_eq!(
        upcoming(&s, "2024-03-30T23:30:00Z", 3),
        [
            "2024-03-31T00:00:00Z",
            "2024-03-31T01:00:00Z",
            "2024-03-31T02:00:00Z"
        ]
    );
}
