//! Plain-language descriptions of common cron shapes, for operators ("every 15 minutes",
//! "at 09:00 on weekdays"). Pure logic. Shapes it does not know, or cannot put into words
//! exactly (`L`, `W`, `#`, uneven steps, both day fields restricted), come back as the
//! expression itself: a description is never a guess.

/// Describes a cron expression in words; `""` is "manual only". Falls back to the expression.
pub fn describe(expr: &str) -> String {
    let expr = expr.trim();
    if expr.is_empty() {
        return "manual only".to_owned();
    }
    describe_fields(expand_macro(expr)).unwrap_or_else(|| expr.to_owned())
}

fn expand_macro(expr: &str) -> &str {
    match expr.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => expr,
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
/// Weekday names by cron number (0 = Sunday).
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

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

/// How a field's names are spelled: `JAN`–`DEC` (from 1) or `SUN`–`SAT` (from 0).
#[derive(Debug, Clone, Copy)]
enum Names {
    None,
    Months,
    Weekdays,
}

fn value(token: &str, names: Names) -> Option<u32> {
    if let Ok(number) = token.parse::<u32>() {
        return Some(number);
    }
    let (table, first): (&[&str], u32) = match names {
        Names::None => return None,
        Names::Months => (&MONTHS, 1),
        Names::Weekdays => (&WEEKDAYS, 0),
    };
    let index = table
        .iter()
        .position(|name| name[..3].eq_ignore_ascii_case(token))?;
    Some(first + u32::try_from(index).ok()?)
}

fn field(token: &str, names: Names) -> Option<Field> {
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
        let values: Option<Vec<u32>> = token.split(',').map(|part| value(part, names)).collect();
        return values.map(Field::List);
    }
    if let Some((from, to)) = token.split_once('-') {
        return Some(Field::Range(value(from, names)?, value(to, names)?));
    }
    value(token, names).map(Field::Value)
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
}

fn describe_fields(expr: &str) -> Option<String> {
    let tokens: Vec<&str> = expr.split_whitespace().collect();
    let (second, rest) = match tokens.len() {
        5 => ("0", &tokens[..]),
        6 => (tokens[0], &tokens[1..]),
        7 if matches!(tokens[6], "*" | "?") => (tokens[0], &tokens[1..6]),
        _ => return None,
    };
    let [minute, hour, day, month, weekday] = rest else {
        return None;
    };
    let time = time(
        &field(second, Names::None)?,
        &field(minute, Names::None)?,
        &field(hour, Names::None)?,
    )?;
    let days = days(
        &field(day, Names::None)?,
        &field(month, Names::Months)?,
        &field(weekday, Names::Weekdays)?,
    )?;
    Some(match (time, days) {
        (Time::Every(every), Days::Every) => every,
        (Time::At(at), Days::Every) => format!("every day {at}"),
        (Time::Every(every), Days::Weekdays(on) | Days::Monthly(on)) => format!("{every} {on}"),
        (Time::At(at), Days::Weekdays(on) | Days::Monthly(on)) => format!("{at} {on}"),
        (Time::Every(every), Days::Yearly(on)) => format!("{every} {on}, every year"),
        (Time::At(at), Days::Yearly(on)) => format!("every year {on} {at}"),
    })
}

fn plural(count: u32, unit: &str) -> String {
    format!("every {count} {unit}s")
}

fn clock(hour: u32, minute: u32, second: u32) -> Option<String> {
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(if second == 0 {
        format!("{hour:02}:{minute:02}")
    } else {
        format!("{hour:02}:{minute:02}:{second:02}")
    })
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
        (Any, Any, Value(s)) if *s < 60 => Time::Every(format!("every minute at second {s}")),
        (Any, Step(m), Value(0)) if even(*m, 60) => Time::Every(plural(*m, "minute")),
        (Any, Value(0), Value(0)) => Time::Every("every hour".to_owned()),
        (Any, Value(m), Value(0)) if *m < 60 => Time::Every(format!("every hour at minute {m}")),
        (Any, List(ms), Value(0)) if ms.iter().all(|m| *m < 60) => {
            let ms: Vec<String> = ms.iter().map(u32::to_string).collect();
            Time::Every(format!("every hour at minutes {}", join(&ms)))
        }
        (Step(h), Value(m), Value(0)) if even(*h, 24) && *m < 60 => {
            let every = plural(*h, "hour");
            Time::Every(if *m == 0 {
                every
            } else {
                format!("{every} at minute {m}")
            })
        }
        (Range(from, to), Value(m), Value(0)) if from < to => Time::Every(format!(
            "every hour from {} to {}",
            clock(*from, *m, 0)?,
            clock(*to, *m, 0)?
        )),
        (Value(h), Value(m), Value(s)) => Time::At(format!("at {}", clock(*h, *m, *s)?)),
        (List(hs), Value(m), Value(0)) => {
            let times: Option<Vec<String>> = hs.iter().map(|h| clock(*h, *m, 0)).collect();
            Time::At(format!("at {}", join(&times?)))
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

fn days(day: &Field, month: &Field, weekday: &Field) -> Option<Days> {
    use Field::{Any, List, Value};
    let valid_day = |d: &u32| (1..=31).contains(d);
    match (month, day, weekday) {
        (Any, Any, Any) => Some(Days::Every),
        (Any, Any, weekday) => weekdays(weekday).map(Days::Weekdays),
        (Any, Value(d), Any) if valid_day(d) => Some(Days::Monthly(format!(
            "on the {} of every month",
            ordinal(*d)
        ))),
        (Any, List(ds), Any) if ds.iter().all(valid_day) => {
            let ds: Vec<String> = ds.iter().copied().map(ordinal).collect();
            Some(Days::Monthly(format!(
                "on the {} of every month",
                join(&ds)
            )))
        }
        (Value(m), Value(d), Any) if valid_day(d) => {
            let name = MONTHS.get(usize::try_from(m.checked_sub(1)?).ok()?)?;
            Some(Days::Yearly(format!("on {name} {d}")))
        }
        _ => None,
    }
}

fn weekday_name(day: u32) -> Option<&'static str> {
    // 7 is Sunday too.
    WEEKDAYS.get(usize::try_from(day % 7).ok()?).copied()
}

fn weekdays(field: &Field) -> Option<String> {
    let mut set: Vec<u32> = match field {
        Field::Value(d) if *d <= 7 => vec![d % 7],
        Field::Range(from, to) if from < to && *to <= 7 => (*from..=*to).map(|d| d % 7).collect(),
        Field::List(ds) if ds.iter().all(|d| *d <= 7) => ds.iter().map(|d| d % 7).collect(),
        _ => return None,
    };
    // Monday first, Sunday last, as a week reads.
    set.sort_by_key(|d| (d + 6) % 7);
    set.dedup();
    Some(match set.as_slice() {
        [1, 2, 3, 4, 5] => "on weekdays".to_owned(),
        [6, 0] => "on weekends".to_owned(),
        [one] => format!("on {}s", weekday_name(*one)?),
        _ => {
            if let Field::Range(from, to) = field
                && to - from >= 2
            {
                return Some(format!(
                    "from {} to {}",
                    weekday_name(*from)?,
                    weekday_name(*to)?
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
