//! Cron expressions: parsing with errors that name the field and the bad token, and the next
//! slot in a job's IANA timezone with Debian cron's daylight-saving rules.
//!
//! Pure logic, no I/O. [`Schedule::parse`] validates once; [`Schedule::next_after`] answers
//! "when does this fire next" with a bounded search; [`Schedule::upcoming_slots`] does the same
//! and says what daylight saving decided ([`DstNote`]). The seams: `grammar` (fields, names,
//! macros: shared with [`crate::describe`]), `parse` (one field's text to its values), `days`
//! (the day fields and `L`/`W`/`#`), `search` (the next slot), `explain` (the DST notes).
//!
//! # Rules
//!
//! | rule | example | from |
//! |---|---|---|
//! | `minute hour day-of-month month day-of-week`; 6 fields add a leading second, 7 a trailing year (1970–9999) | `*/10 * * * * *`: every 10 seconds | crontab(5); seconds and year are extensions |
//! | `*`, `N`, `N-M`, `*/S`, `N/S`, `N-M/S` and lists of them | `0,30 9-17/2 * * *`: 09:00, 09:30, 11:00 … 17:30 | crontab(5); `N/S` as Quartz |
//! | names `JAN`–`DEC`, `SUN`–`SAT` in any case; 0 or 7 is Sunday | `0 0 * jan,Jul sun` | crontab(5) |
//! | `SUN` ending a range that starts on another weekday is 7 (the range runs through Sunday); elsewhere it is 0 | `0 0 * * FRI-SUN`: Friday to Sunday; `0 0 * * SUN-SUN`: Sundays | crontab(5) reads `SUN` as 0 |
//! | a step larger than its field is rejected | `*/90 * * * *`: error | deliberate: Vixie cron reads it as minute 0 alone |
//! | day-of-month and day-of-week are ORed when neither starts with `*`, else ANDed (`*/2` starts with `*`) | `30 4 1,15 * 5`: the 1st, the 15th and every Friday; `0 0 */2 * 1`: Mondays on odd days | crontab(5) |
//! | `?` is `*` in the day fields | `0 0 ? * MON`: Mondays | Quartz |
//! | `L`, `LW`, `15W` in day-of-month; `5L`, `5#3` in day-of-week; a field holding them is restricted | `0 0 L * 5`: the last day of the month and every Friday | Quartz, combined by the crontab(5) rule |
//! | `@yearly @annually @monthly @weekly @daily @midnight @hourly` | `@hourly` is `0 * * * *` | crontab(5) (no `@reboot`) |
//! | a wildcard job — its minute or hour field (or, with 6 or 7 fields, its second field) starts with `*` — follows real time: a slot inside a spring-forward gap does not exist; a repeated fall-back time runs in both passes | `5 * * * *` in New York on 2027-03-14: 01:05 EST, 03:05 EDT (02:05 skipped); on 2027-11-07: 01:05 EDT and 01:05 EST | Debian crontab(5), "daylight saving time" |
//! | every other job is a fixed-time job: the slots inside a gap run once, at the first instant after it; a repeated time runs once, at its first pass | `30 2 * * *` on 2027-03-14: 03:00 EDT; `30 1 * * *` on 2027-11-07: 01:30 EDT only | Debian crontab(5) |
//! | no slot after the year 9999; an expression that can never fire has no next slot | `0 0 30 2 *`: none | |
//!
//! `L`, `W` and `#` choose days only, so they never make a job a wildcard job.

mod days;
mod explain;
pub(crate) mod grammar;
mod parse;
mod search;

use chrono::{Datelike, NaiveDateTime, Timelike};
use chrono_tz::Tz;

pub use explain::{DstNote, Slot};
pub use grammar::CronField;
pub use parse::CronError;

use days::DayRule;
use parse::parse_field;

/// The expanded, sorted values of each standard field.
///
/// `days_of_month` and `days_of_week` hold only the plain values (`*`, numbers, ranges, steps,
/// names; day-of-week 0..=6 with 0 = Sunday and 7 folded to 0). Items whose days depend on the
/// month — `L`, `LW`, `15W` in day-of-month and `5L`, `5#3` in day-of-week — cannot be written
/// as fixed values and are left out; a field made only of them has an empty vector here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronFields {
    pub seconds: Vec<u32>,
    pub minutes: Vec<u32>,
    pub hours: Vec<u32>,
    pub days_of_month: Vec<u32>,
    pub months: Vec<u32>,
    pub days_of_week: Vec<u32>,
}

/// A validated cron expression bound to a timezone.
#[derive(Debug, Clone)]
pub struct Schedule {
    timezone: Tz,
    fields: CronFields,
    /// `None` when the year field is absent or `*`.
    years: Option<Vec<u32>>,
    days: DayRule,
    /// Bit `n` set when month `n` is in the field.
    month_mask: u16,
    /// Debian cron's wildcard job: it follows real time across daylight-saving changes.
    wildcard: bool,
}

impl Schedule {
    /// Parse and validate `expr` evaluated in IANA timezone `timezone` (e.g. "UTC",
    /// "America/New_York").
    pub fn parse(expr: &str, timezone: &str) -> Result<Schedule, CronError> {
        let tokens = grammar::split(expr)?;
        let second = tokens.second.unwrap_or("0");
        let seconds = parse_field(CronField::Second, second)?;
        let minutes = parse_field(CronField::Minute, tokens.minute)?;
        let hours = parse_field(CronField::Hour, tokens.hour)?;
        let days_of_month = parse_field(CronField::DayOfMonth, tokens.day_of_month)?;
        let months = parse_field(CronField::Month, tokens.month)?;
        let days_of_week = parse_field(CronField::DayOfWeek, tokens.day_of_week)?;
        let years = match tokens.year {
            Some(token) => {
                let parsed = parse_field(CronField::Year, token)?;
                (!parsed.star).then_some(parsed.values)
            }
            None => None,
        };
        let timezone = parse_timezone(timezone)?;

        let month_mask = months.values.iter().fold(0u16, |acc, m| acc | (1 << m));
        Ok(Schedule {
            timezone,
            days: DayRule::new(
                &days_of_month,
                tokens.day_of_month,
                &days_of_week,
                tokens.day_of_week,
            ),
            month_mask,
            wildcard: [second, tokens.minute, tokens.hour]
                .iter()
                .any(|token| token.starts_with('*')),
            years,
            fields: CronFields {
                seconds: seconds.values,
                minutes: minutes.values,
                hours: hours.values,
                days_of_month: days_of_month.values,
                months: months.values,
                days_of_week: days_of_week.values,
            },
        })
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The expanded, sorted set of values for each standard field, for inspection/tests.
    pub fn fields(&self) -> &CronFields {
        &self.fields
    }

    /// Whether this is a wildcard job in Debian cron's sense (its second, minute or hour field
    /// starts with `*`): it follows real time across daylight-saving changes, where a fixed-time
    /// job moves a slot out of a gap and runs a repeated time once. See the module's rules.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether every field matches the wall-clock time `local` (in the schedule's timezone;
    /// whether that time exists there is not asked).
    pub fn matches(&self, local: NaiveDateTime) -> bool {
        let date = local.date();
        let year_ok = self.years.as_ref().is_none_or(|years| {
            u32::try_from(date.year()).is_ok_and(|y| years.binary_search(&y).is_ok())
        });
        year_ok
            && self.month_mask & (1 << date.month()) != 0
            && self.days.matches(date)
            && self.fields.hours.binary_search(&local.hour()).is_ok()
            && self.fields.minutes.binary_search(&local.minute()).is_ok()
            && self.fields.seconds.binary_search(&local.second()).is_ok()
    }
}

/// Parse an IANA timezone name such as "UTC" or "Europe/Berlin".
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    name.parse::<Tz>().map_err(|_| CronError::UnknownTimezone {
        name: name.to_string(),
    })
}
