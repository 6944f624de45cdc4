//! Plain-language descriptions of common cron shapes, for operators ("every 15 minutes",
//! "at 09:00 on weekdays"). Pure logic. It reads expressions through the cron module's grammar
//! and parser, so it describes exactly what the scheduler runs. Shapes it does not know, or
//! cannot put into words exactly (`L`, `W`, `#`, uneven steps, both day fields restricted),
//! come back as the expression itself: a description is never a guess.

use crate::cron::Schedule;
use crate::cron::grammar::{self, CronField, MONTH_NAMES, WEEKDAY_NAMES};

/// Describes a cron expression in words; `""` is "manual only". Falls back to the expression.
pub fn describe(expr: &str) -> String {
    let expr = expr.trim();
    if expr.is_empty() {
        return "manual only".to_owned();
    }
    describe_fields(expr).unwrap_or_else(|| expr.to_owned())
}

/// Why a parsed `schedule` (written `expr`) has no slot after `now`, when it has none: what
/// its fields rule out ("February has no day 30"), or that its last slot has passed. `serve`
/// fails such a job, the API refuses it and `check` reports it: a job is never silently
/// dormant.
pub fn never_fires(
    expr: &str,
    schedule: &Schedule,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    if schedule.next_after(now).is_some() {
        return None;
    }
    let why = match describe(expr) {
        description if description.starts_with("never: ") => {
            description["never: ".len()..].to_owned()
        }
        _ => format!("it has no slot after {}", crate::time::iso(now)),
    };
    Some(format!("schedule {:?} never fires: {why}", expr.trim()))
}

/// The shapes of one field that have words.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// `*` or `?` (and `*/1`).
    Any,
    Value(u32),
    /// `*/N`.
    Step(u32),
    /// `A-B`.
    Range(u32, u32),
    /// `A,B,C` of plain values.
    List(Vec<u32>),
}

fn field(token: &str, of: CronField) -> Option<Field> {
    let value = |text: &str| grammar::value(of, text);
    if token == "*" || token == "?" {
        return Some(Field::Any);
    }
    if let Some(step) = token.strip_prefix("*/") {
        return match step.parse::<u32>().ok()? {
            0 => None,
            1 => Some(Field::Any),
            step => Some(Field::Step(step)),
        };
    }
    if token.contains(',') {
        let values: Option<Vec<u32>> = token.split(',').map(value).collect();
        return values.map(Field::List);
    }
    if let Some((from, to)) = token.split_once('-') {
        return Some(Field::Range(value(from)?, value(to)?));
    }
    value(token).map(Field::Value)
}

/// When in the day, as a repetition ("every 5 minutes") or as times of day ("at 09:00").
enum Time {
    Every(String),
    At(String),
}

/// Which days.
enum Days {
    Every,
    /// "on weekdays", "on Mondays", "from Monday to Thursday".
    Weekdays(String),
    /// "on the 1st of every month".
    Monthly(String),
    /// "on January 1".
    Yearly(String),
    /// A date no year has: "February has no day 31".
    Never(String),
}

/// The most days each month can have (February in a leap year).
const LONGEST_MONTHS: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn describe_fields(expr: &str) -> Option<String> {
    // Only what the scheduler accepts gets words; its weekday set settles names and ranges.
    let schedule = Schedule::parse(expr, "UTC").ok()?;
    let tokens = grammar::split(expr).ok()?;
    if tokens.year.is_some_and(|year| !matches!(year, "*" | "?")) {
        return None;
    }
    let time = time(
        &field(tokens.second.unwrap_or("0"), CronField::Second)?,
        &field(tokens.minute, CronField::Minute)?,
        &field(tokens.hour, CronField::Hour)?,
    )?;
    let days = days(
        &field(tokens.day_of_month, CronField::DayOfMonth)?,
        &field(tokens.month, CronField::Month)?,
        tokens.day_of_week,
        &schedule.fields().days_of_week,
    )?;
    Some(match (time, days) {
        (Time::Every(every), Days::Every) => every,
        (Time::At(at), Days::Every) => format!("every day {at}"),
        (Time::Every(every), Days::Weekdays(on) | Days::Monthly(on)) => format!("{every} {on}"),
        (Time::At(at), Days::Weekdays(on) | Days::Monthly(on)) => format!("{at} {on}"),
        (Time::Every(every), Days::Yearly(on)) => format!("{every} {on}, every year"),
        (Time::At(at), Days::Yearly(on)) => format!("every year {on} {at}"),
        (_, Days::Never(why)) => format!("never: {why}"),
    })
}

fn plural(count: u32, unit: &str) -> String {
    format!("every {count} {unit}s")
}

fn clock(hour: u32, minute: u32, second: u32) -> String {
    if second == 0 {
        format!("{hour:02}:{minute:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}")
    }
}

/// "a, b and c".
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn time(second: &Field, minute: &Field, hour: &Field) -> Option<Time> {
    use Field::{Any, List, Range, Step, Value};
    // A step that does not divide its cycle restarts unevenly at the top of it: no words for it.
    let even = |step: u32, cycle: u32| cycle.is_multiple_of(step);
    Some(match (hour, minute, second) {
        (Any, Any, Any) => Time::Every("every second".to_owned()),
        (Any, Any, Step(s)) if even(*s, 60) => Time::Every(plural(*s, "second")),
        (Any, Any, Value(0)) => Time::Every("every minute".to_owned()),
        (Any, Any, Value(s)) => Time::Every(format!("every minute at second {s}")),
        (Any, Step(m), Value(0)) if even(*m, 60) => Time::Every(plural(*m, "minute")),
        (Any, Value(0), Value(0)) => Time::Every("every hour".to_owned()),
        (Any, Value(m), Value(0)) => Time::Every(format!("every hour at minute {m}")),
        (Any, List(ms), Value(0)) => {
            let ms: Vec<String> = ms.iter().map(u32::to_string).collect();
            Time::Every(format!("every hour at minutes {}", join(&ms)))
        }
        (Step(h), Value(m), Value(0)) if even(*h, 24) => {
            let every = plural(*h, "hour");
            Time::Every(if *m == 0 {
                every
            } else {
                format!("{every} at minute {m}")
            })
        }
        (Range(from, to), Value(m), Value(0)) if from < to => Time::Every(format!(
            "every hour from {} to {}",
            clock(*from, *m, 0),
            clock(*to, *m, 0)
        )),
        (Value(h), Value(m), Value(s)) => Time::At(format!("at {}", clock(*h, *m, *s))),
        (List(hs), Value(m), Value(0)) => {
            let times: Vec<String> = hs.iter().map(|h| clock(*h, *m, 0)).collect();
            Time::At(format!("at {}", join(&times)))
        }
        _ => return None,
    })
}

fn ordinal(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The days, by crontab(5)'s rule: a day field that starts with `*` leaves the choice to the
/// other, and when both are restricted either may match (which has no short wording here).
fn days(day: &Field, month: &Field, weekday_token: &str, weekdays: &[u32]) -> Option<Days> {
    use Field::{Any, List, Value};
    if weekday_token.contains(['L', 'l', '#']) {
        return None;
    }
    let weekday_restricted = !(weekday_token.starts_with('*') || weekday_token == "?");
    let every_weekday = weekdays.len() == 7;
    match (month, day) {
        (Any, Any) if every_weekday => Some(Days::Every),
        (Any, Any) => weekday_words(weekday_token, weekdays).map(Days::Weekdays),
        _ if weekday_restricted || !every_weekday => None,
        (Any, Value(d)) => Some(Days::Monthly(format!(
            "on the {} of every month",
            ordinal(*d)
        ))),
        (Any, List(ds)) => {
            let ds: Vec<String> = ds.iter().copied().map(ordinal).collect();
            Some(Days::Monthly(format!(
                "on the {} of every month",
                join(&ds)
            )))
        }
        (Value(m), Value(d)) => {
            let index = usize::try_from(m.checked_sub(1)?).ok()?;
            let name = MONTH_NAMES.get(index)?;
            // `0 0 31 2 *` would read "every year on February 31": no year has that date.
            if *d > *LONGEST_MONTHS.get(index)? {
                return Some(Days::Never(format!("{name} has no day {d}")));
            }
            Some(Days::Yearly(format!("on {name} {d}")))
        }
        _ => None,
    }
}

fn weekday_name(day: u32) -> Option<&'static str> {
    // 7 is Sunday too.
    WEEKDAY_NAMES.get(usize::try_from(day % 7).ok()?).copied()
}

/// Words for a set of weekdays (0 = Sunday), as the field spells them: "on weekdays",
/// "on Mondays", "from Friday to Sunday", "on Monday, Wednesday and Friday".
fn weekday_words(token: &str, weekdays: &[u32]) -> Option<String> {
    let mut set = weekdays.to_vec();
    // Monday first, Sunday last, as a week reads.
    set.sort_by_key(|d| (d + 6) % 7);
    Some(match set.as_slice() {
        [1, 2, 3, 4, 5] => "on weekdays".to_owned(),
        [6, 0] => "on weekends".to_owned(),
        [one] => format!("on {}s", weekday_name(*one)?),
        _ => {
            // A single range of three days or more reads as one, in the field's own order.
            if set.len() >= 3
                && !token.contains([',', '/'])
                && let Some((from, to)) = token.split_once('-')
            {
                let from = grammar::value(CronField::DayOfWeek, from)?;
                let to = grammar::value(CronField::DayOfWeek, to)?;
                return Some(format!(
                    "from {} to {}",
                    weekday_name(from)?,
                    weekday_name(to)?
                ));
            }
            let names: Option<Vec<String>> = set
                .iter()
                .map(|d| weekday_name(*d).map(str::to_owned))
                .collect();
            format!("on {}", join(&names?))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_shapes_read_as_words() {
        for (expr, words) in [
            ("", "manual only"),
            ("* * * * * *", "every second"),
            ("*/5 * * * * *", "every 5 seconds"),
            ("0 * * * * *", "every minute"),
            ("30 * * * * *", "every minute at second 30"),
            ("* * * * *", "every minute"),
            ("*/15 * * * *", "every 15 minutes"),
            ("0 * * * *", "every hour"),
            ("@hourly", "every hour"),
            ("30 * * * *", "every hour at minute 30"),
            ("0,30 * * * *", "every hour at minutes 0 and 30"),
            ("0 */2 * * *", "every 2 hours"),
            ("15 */6 * * *", "every 6 hours at minute 15"),
            (
                "0 9-17 * * 1-5",
                "every hour from 09:00 to 17:00 on weekdays",
            ),
            ("0 9 * * *", "every day at 09:00"),
            ("@daily", "every day at 00:00"),
            ("30 2 * * *", "every day at 02:30"),
            ("15 30 2 * * *", "every day at 02:30:15"),
            ("0 9,17 * * *", "every day at 09:00 and 17:00"),
            ("0 9 * * 1-5", "at 09:00 on weekdays"),
            ("0 9 * * MON-FRI", "at 09:00 on weekdays"),
            ("0 10 * * 6,0", "at 10:00 on weekends"),
            ("0 10 * * sat,sun", "at 10:00 on weekends"),
            ("0 0 * * 0", "at 00:00 on Sundays"),
            ("@weekly", "at 00:00 on Sundays"),
            ("0 0 * * 7", "at 00:00 on Sundays"),
            ("0 8 * * 1,3,5", "at 08:00 on Monday, Wednesday and Friday"),
            ("0 8 * * 1-4", "at 08:00 from Monday to Thursday"),
            ("0 8 * * FRI-SUN", "at 08:00 from Friday to Sunday"),
            ("0 8 * * SUN-SUN", "at 08:00 on Sundays"),
            ("0 8 * * 0-SUN", "at 08:00 on Sundays"),
            ("0 8 * * 0-7", "every day at 08:00"),
            ("0 8 * * MON-SUN", "every day at 08:00"),
            ("0 8 1 * */1", "at 08:00 on the 1st of every month"),
            ("*/10 * * * 1-5", "every 10 minutes on weekdays"),
            ("0 0 1 * *", "at 00:00 on the 1st of every month"),
            ("@monthly", "at 00:00 on the 1st of every month"),
            (
                "0 6 1,15 * *",
                "at 06:00 on the 1st and 15th of every month",
            ),
            ("0 6 22 * *", "at 06:00 on the 22nd of every month"),
            ("0 6 13 * *", "at 06:00 on the 13th of every month"),
            ("0 0 1 1 *", "every year on January 1 at 00:00"),
            ("@yearly", "every year on January 1 at 00:00"),
            ("0 12 25 DEC *", "every year on December 25 at 12:00"),
            ("0 0 9 * * * *", "every day at 09:00"),
            ("0 0 31 2 *", "never: February has no day 31"),
            ("0 0 31 APR *", "never: April has no day 31"),
            ("0 0 29 2 *", "every year on February 29 at 00:00"),
        ] {
            assert_eq!(describe(expr), words, "{expr}");
        }
    }

    #[test]
    fn shapes_without_exact_words_fall_back_to_the_expression() {
        for expr in [
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 * * 5#3",
            "0 0 * * 5L",
            "*/7 * * * *",
            "*/7 * * * * *",
            "0 */5 * * *",
            "10/10 * * * *",
            "0 0 1 * 1",
            "30 4 1,15 * 5",
            "0 0 */2 * 1",
            "0 0 1 * 0-7",
            "0 0 1 * */2",
            "0 0 * 1-6 *",
            "0 0 9 * * * 2030",
            "1-5 * * * *",
            "not a cron",
            "61 * * * *",
        ] {
            assert_eq!(describe(expr), expr, "{expr}");
        }
    }
}
