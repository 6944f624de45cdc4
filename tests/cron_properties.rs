//! Property tests of the cron engine (proptest): parsing never panics and names the field it
//! rejects; on valid expressions in zones with daylight saving, `next_after(t) > t`, `upcoming`
//! is strictly increasing, every slot matches the fields in local time (or is the documented
//! gap instant of a fixed-time job), and no slot is missed against a minute-by-minute scan that
//! applies Debian cron's rules directly.

use chrono::{DateTime, LocalResult, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use plugin_jobs::cron::{CronField, Schedule};
use proptest::prelude::*;

// --- Parsing ---

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Schedule::parse(&text, "UTC");
    }

    #[test]
    fn rejections_of_cron_like_text_name_their_field(
        text in "[ 0-9*/,#?LWJANFEBMONSUn@-]{0,32}"
    ) {
        if let Err(error) = Schedule::parse(&text, "America/New_York") {
            let message = error.to_string();
            prop_assert!(!message.is_empty());
            if let Some(field) = error.field() {
                prop_assert!(message.starts_with(field.name()), "{message}");
                prop_assert!(message.contains('"'), "{message} quotes the token");
            }
        }
    }

    #[test]
    fn one_bad_field_is_the_field_the_error_names(
        index in 0usize..7,
        bad in bad_token(),
    ) {
        let mut tokens = ["0", "30", "9", "*", "*", "1-5", "*"];
        let token = bad.token(FIELDS[index]);
        tokens[index] = &token;
        let expression = tokens.join(" ");
        let error = Schedule::parse(&expression, "UTC").expect_err("one field is bad");
        prop_assert_eq!(error.field(), Some(FIELDS[index]), "{}: {}", expression, error);
        let message = error.to_string();
        prop_assert!(message.starts_with(FIELDS[index].name()), "{message}");
    }
}

/// The fields of a 7-field expression, in order.
const FIELDS: [CronField; 7] = [
    CronField::Second,
    CronField::Minute,
    CronField::Hour,
    CronField::DayOfMonth,
    CronField::Month,
    CronField::DayOfWeek,
    CronField::Year,
];

fn bounds(field: CronField) -> (u32, u32) {
    match field {
        CronField::Second | CronField::Minute => (0, 59),
        CronField::Hour => (0, 23),
        CronField::DayOfMonth => (1, 31),
        CronField::Month => (1, 12),
        CronField::DayOfWeek => (0, 7),
        CronField::Year => (1970, 9999),
    }
}

/// A token that no field accepts, in one of the ways a token goes wrong.
#[derive(Debug, Clone)]
enum Bad {
    AboveRange(u32),
    Backwards,
    ZeroStep,
    Word(u32),
    EmptyItem,
    MissingStep,
}

impl Bad {
    fn token(&self, field: CronField) -> String {
        let (min, max) = bounds(field);
        match self {
            Bad::AboveRange(n) => (max + n).to_string(),
            Bad::Backwards => format!("{max}-{min}"),
            Bad::ZeroStep => "*/0".to_owned(),
            Bad::Word(n) => format!("x{n}"),
            Bad::EmptyItem => format!("{min},,"),
            Bad::MissingStep => format!("{min}/"),
        }
    }
}

fn bad_token() -> impl Strategy<Value = Bad> {
    prop_oneof![
        (1u32..1000).prop_map(Bad::AboveRange),
        Just(Bad::Backwards),
        Just(Bad::ZeroStep),
        (0u32..100).prop_map(Bad::Word),
        Just(Bad::EmptyItem),
        Just(Bad::MissingStep),
    ]
}

// --- Valid expressions ---

/// `*`, `N`, `N-M`, `*/S`, `N/S` or `N-M/S` within `min..=max`, or a list of two of them.
/// Steps go up to the span of `*` (day-of-week's `*` is 0-6, though 7 is Sunday too).
fn item(min: u32, max: u32) -> BoxedStrategy<String> {
    let span = max.min(if min == 0 && max == 7 { 6 } else { max }) - min + 1;
    let single = prop_oneof![
        3 => Just("*".to_owned()),
        3 => (min..=max).prop_map(|n| n.to_string()),
        2 => (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
        2 => (1..=span).prop_map(|s| format!("*/{s}")),
        1 => (min..=max, 1..=span).prop_map(|(n, s)| format!("{n}/{s}")),
        1 => (min..=max, min..=max, 1..=span)
            .prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
    ];
    prop_oneof![
        4 => single.clone(),
        1 => (single.clone(), single).prop_map(|(a, b)| format!("{a},{b}")),
    ]
    .boxed()
}

fn day_of_month() -> BoxedStrategy<String> {
    prop_oneof![
        6 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        3 => item(1, 31),
        1 => prop_oneof![
            Just("L".to_owned()),
            Just("LW".to_owned()),
            (1u32..=31).prop_map(|d| format!("{d}W")),
        ],
    ]
    .boxed()
}

fn day_of_week() -> BoxedStrategy<String> {
    let names = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    prop_oneof![
        6 => Just("*".to_owned()),
        1 => Just("?".to_owned()),
        3 => item(0, 7),
        // Names run forwards, or through Sunday: `FRI-SUN`.
        1 => (0usize..7, 0usize..7).prop_map(move |(a, b)| {
            let end = if a <= b { names[b] } else { "SUN" };
            format!("{}-{end}", names[a])
        }),
        1 => prop_oneof![
            (0u32..=6).prop_map(|d| format!("{d}L")),
            (0u32..=6, 1u32..=5).prop_map(|(d, n)| format!("{d}#{n}")),
        ],
    ]
    .boxed()
}

#[derive(Debug, Clone)]
struct Expression {
    text: String,
    has_seconds: bool,
}

/// A valid expression whose hour field comes from `hour`.
fn expression(hour: BoxedStrategy<String>) -> impl Strategy<Value = Expression> {
    (
        prop::option::weighted(0.2, item(0, 59)),
        item(0, 59),
        hour,
        day_of_month(),
        prop_oneof![3 => Just("*".to_owned()), 1 => item(1, 12)],
        day_of_week(),
        prop::option::weighted(
            0.1,
            prop_oneof![Just("*".to_owned()), Just("2020-2045".to_owned())],
        ),
    )
        .prop_map(|(second, minute, hour, dom, month, dow, year)| {
            let mut fields = Vec::new();
            let has_seconds = second.is_some() || year.is_some();
            if has_seconds {
                fields.push(second.unwrap_or_else(|| "0".to_owned()));
            }
            fields.extend([minute, hour, dom, month, dow]);
            fields.extend(year);
            Expression {
                text: fields.join(" "),
                has_seconds,
            }
        })
}

/// A timezone, its daylight-saving transitions of 2027 (UTC), and the local hours the gap and
/// the repeated stretch fall in.
struct Zone {
    name: &'static str,
    transitions: [&'static str; 2],
    hours: &'static [u32],
}

const ZONES: [Zone; 8] = [
    Zone {
        name: "UTC",
        transitions: ["2027-03-14T07:00:00Z", "2027-11-07T06:00:00Z"],
        hours: &[0],
    },
    Zone {
        name: "America/New_York",
        transitions: ["2027-03-14T07:00:00Z", "2027-11-07T06:00:00Z"],
        hours: &[1, 2],
    },
    Zone {
        name: "Europe/Berlin",
        transitions: ["2027-03-28T01:00:00Z", "2027-10-31T01:00:00Z"],
        hours: &[2],
    },
    Zone {
        name: "Australia/Lord_Howe",
        transitions: ["2027-04-03T15:00:00Z", "2027-10-02T15:30:00Z"],
        hours: &[1, 2],
    },
    Zone {
        name: "America/Santiago",
        transitions: ["2027-04-04T03:00:00Z", "2027-09-05T04:00:00Z"],
        hours: &[23, 0],
    },
    Zone {
        name: "America/Havana",
        transitions: ["2027-03-14T05:00:00Z", "2027-11-07T05:00:00Z"],
        hours: &[0],
    },
    Zone {
        name: "Pacific/Chatham",
        transitions: ["2027-04-03T14:00:00Z", "2027-09-25T14:00:00Z"],
        hours: &[2, 3],
    },
    Zone {
        // Irish time is "standard" in summer: tzdb gives it a negative DST in winter.
        name: "Europe/Dublin",
        transitions: ["2027-03-28T01:00:00Z", "2027-10-31T01:00:00Z"],
        hours: &[1],
    },
];

/// One case: an expression, a zone, and a start that is mostly within half a day of one of the
/// zone's transitions, with an hour field that often names the hours the transitions touch.
fn case() -> impl Strategy<Value = (Expression, &'static str, DateTime<Utc>)> {
    (0..ZONES.len()).prop_flat_map(|index| {
        let zone = &ZONES[index];
        let listed = zone
            .hours
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let hour = prop_oneof![
            3 => item(0, 23),
            1 => Just(listed),
            1 => prop::sample::select(zone.hours).prop_map(|h| h.to_string()),
            1 => prop::sample::select(zone.hours).prop_map(|h| format!("*/{}", h.max(1))),
        ]
        .boxed();
        let near = (
            prop::sample::select(&zone.transitions[..]),
            -43_200i64..43_200,
        )
            .prop_map(|(transition, seconds)| {
                let at: DateTime<Utc> = transition.parse().expect("valid instant");
                at + TimeDelta::seconds(seconds)
            });
        let anywhere =
            (1_577_836_800i64..2_240_524_800, 0u32..1_000_000_000).prop_map(|(seconds, nanos)| {
                Utc.timestamp_opt(seconds, nanos)
                    .single()
                    .expect("in range")
            });
        (
            expression(hour),
            Just(zone.name),
            prop_oneof![3 => near, 1 => anywhere],
        )
    })
}

fn wall(zone: Tz, at: DateTime<Utc>) -> chrono::NaiveDateTime {
    at.with_timezone(&zone).naive_local()
}

/// The first real instant of a wall-clock time; `None` inside a gap.
fn first_instant(zone: Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => Some(at.to_utc()),
        LocalResult::Ambiguous(a, b) => Some(a.to_utc().min(b.to_utc())),
        LocalResult::None => None,
    }
}

/// Whether `slot` is where Debian cron runs a fixed-time job's slots that fell in the gap just
/// before it: the wall clock jumped there, and some skipped wall time matches.
fn is_gap_instant(schedule: &Schedule, slot: DateTime<Utc>) -> bool {
    let zone = schedule.timezone();
    let before = wall(zone, slot - TimeDelta::seconds(1));
    let after = wall(zone, slot);
    let mut skipped = before + TimeDelta::seconds(1);
    while skipped < after {
        if schedule.matches(skipped) {
            return true;
        }
        skipped += TimeDelta::seconds(1);
    }
    false
}

/// The first slot after `after` by a minute-by-minute scan of real time, applying Debian cron's
/// rules directly; `None` if there is none within `horizon`. Only for expressions that fire at
/// second 0.
fn scan_next(
    schedule: &Schedule,
    after: DateTime<Utc>,
    horizon: TimeDelta,
) -> Option<DateTime<Utc>> {
    let zone = schedule.timezone();
    let minute = TimeDelta::minutes(1);
    let mut at = Utc
        .timestamp_opt(after.timestamp().div_euclid(60) * 60, 0)
        .single()?
        + minute;
    while at <= after + horizon {
        let local = wall(zone, at);
        let first_pass = first_instant(zone, local) == Some(at);
        if schedule.matches(local) && (schedule.is_wildcard() || first_pass) {
            return Some(at);
        }
        if !schedule.is_wildcard() {
            let mut skipped = wall(zone, at - minute) + minute;
            while skipped < local {
                if schedule.matches(skipped) {
                    return Some(at);
                }
                skipped += minute;
            }
        }
        at += minute;
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn slots_come_after_the_start_in_order_and_match_their_fields(
        (expression, zone, after) in case(),
    ) {
        let schedule = Schedule::parse(&expression.text, zone).expect("generated expressions are valid");
        let slots = schedule.upcoming(after, 6);
        prop_assert_eq!(slots.first().copied(), schedule.next_after(after));
        let mut previous = after;
        for slot in &slots {
            prop_assert!(*slot > previous, "{} after {}", slot, previous);
            prop_assert_eq!(schedule.next_after(previous), Some(*slot));
            let local = wall(schedule.timezone(), *slot);
            let gap_instant = !schedule.is_wildcard() && is_gap_instant(&schedule, *slot);
            prop_assert!(
                schedule.matches(local) || gap_instant,
                "{} ({}) does not match {:?} in {}", slot, local, expression.text, zone
            );
            if !schedule.is_wildcard() && !gap_instant {
                prop_assert_eq!(
                    first_instant(schedule.timezone(), local),
                    Some(*slot),
                    "a fixed-time job runs a repeated time at its first pass only"
                );
            }
            previous = *slot;
        }
        let explained: Vec<_> = schedule.upcoming_slots(after, 6).iter().map(|slot| slot.at).collect();
        prop_assert_eq!(explained, slots);
    }

    #[test]
    fn no_slot_is_missed_against_a_minute_by_minute_scan(
        (expression, zone, after) in case().prop_filter("fires at second 0", |(e, _, _)| !e.has_seconds),
    ) {
        let schedule = Schedule::parse(&expression.text, zone).expect("generated expressions are valid");
        let horizon = TimeDelta::days(2);
        // Four slots in a row, each the first the scan finds after the one before.
        let mut from = after;
        for _ in 0..4 {
            let next = schedule.next_after(from);
            let Some(expected) = scan_next(&schedule, from, horizon) else {
                prop_assert!(
                    next.is_none_or(|n| n > from + horizon),
                    "{:?} in {}: {:?}", expression.text, zone, next
                );
                break;
            };
            prop_assert_eq!(next, Some(expected), "{:?} in {} after {}", expression.text, zone, from);
            from = expected;
        }
    }
}
