//! Cron parsing: the values each field expands to, the expressions accepted, and the errors
//! that name the field and the token (SEED-TESTS.md "Cron" vectors included).

mod cron_support;

use cron_support::{assert_mentions, on_jan_15, rejection, schedule, utc, zoned};
use plugin_jobs::cron::{CronError, CronField, Schedule, parse_timezone};

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
fn a_misplaced_l_is_explained_for_the_field_it_is_in() {
    assert_mentions(
        &rejection("L-2 * * * *"),
        &[
            "minute token \"L-2\"",
            "only allowed in day-of-month or day-of-week",
        ],
    );
    let message = rejection("0 0 L-2 * *");
    assert_mentions(
        &message,
        &["day-of-month token \"L-2\"", "offsets such as L-2"],
    );
    assert!(!message.contains("not in day-of-month"), "{message}");
    assert_mentions(
        &rejection("0 0 5L * *"),
        &["day-of-month", "only allowed in day-of-week"],
    );
    assert_mentions(
        &rejection("0 0 * * 15W"),
        &["day-of-week", "only allowed in day-of-month"],
    );
}

#[test]
fn a_step_larger_than_its_field_is_rejected_deliberately() {
    // Vixie cron reads */90 as minute 0 alone; here it is an error that says why.
    assert_mentions(
        &rejection("*/90 * * * *"),
        &["minute", "\"*/90\"", "larger than the field's span of 60"],
    );
    assert_mentions(&rejection("0 */25 * * *"), &["hour", "span of 24"]);
}

#[test]
fn every_field_error_says_which_field() {
    for (expr, field) in [
        ("x * * * * *", CronField::Second),
        ("* x * * *", CronField::Hour),
        ("* * x * *", CronField::DayOfMonth),
        ("* * * x *", CronField::Month),
        ("* * * * x", CronField::DayOfWeek),
        ("0 0 0 1 1 * x", CronField::Year),
    ] {
        let error = Schedule::parse(expr, "UTC").expect_err("rejected");
        assert_eq!(error.field(), Some(field), "{expr}");
        assert!(error.to_string().starts_with(field.name()), "{error}");
    }
    assert_eq!(
        Schedule::parse("* * *", "UTC")
            .err()
            .and_then(|e| e.field()),
        None
    );
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
