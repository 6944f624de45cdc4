//! Cron expressions: parsing with errors that name the field and the bad token, and evaluation
//! of the next slot in a job's IANA timezone.
//!
//! Pure logic, no I/O: [`Schedule::parse`] validates once, [`Schedule::next_after`] answers
//! "when does this fire next" with a bounded search, including the daylight-saving rules of
//! DESIGN.md §4 (a slot in a spring-forward gap fires at the gap's end, a repeated wall-clock
//! time fires once).

use std::fmt;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

/// The Gregorian calendar repeats every 400 years, so a day pattern that matches nothing in
/// 400 consecutive years never matches; this bounds the search for impossible expressions.
const CALENDAR_CYCLE_YEARS: i32 = 400;

/// A safety net for the candidate walk. Real timezones need at most a few thousand candidates
/// (a second-level expression across a one-hour fall-back); this only stops a pathological loop.
const MAX_CANDIDATES: usize = 200_000;

/// Longest fall-back any timezone has used, rounded up; it decides how far back the walk starts
/// so that the second pass of a repeated hour is not missed.
const MAX_FOLD: TimeDelta = TimeDelta::hours(4);

/// Year values a 7-field expression may name.
const YEAR_MIN: u32 = 1970;
const YEAR_MAX: u32 = 9999;

/// One field of a cron expression, as named in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

impl CronField {
    fn name(self) -> &'static str {
        match self {
            CronField::Second => "second",
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day-of-month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day-of-week",
            CronField::Year => "year",
        }
    }

    /// Smallest and largest value a token may name.
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Second | CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            // 7 is accepted as a second spelling of Sunday and folded to 0.
            CronField::DayOfWeek => (0, 7),
            CronField::Year => (YEAR_MIN, YEAR_MAX),
        }
    }

    /// Largest value `*` and `N/S` run up to; differs from `bounds` only for day-of-week,
    /// where `*` must not count Sunday twice.
    fn star_max(self) -> u32 {
        match self {
            CronField::DayOfWeek => 6,
            other => other.bounds().1,
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &[
                "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
            ],
            CronField::DayOfWeek => &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
            _ => &[],
        }
    }

    fn is_day(self) -> bool {
        matches!(self, CronField::DayOfMonth | CronField::DayOfWeek)
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an expression or timezone was rejected. Every message names the field and quotes the
/// offending token, so an operator can fix the declaration from the error alone.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CronError {
    #[error("cron expression is empty")]
    Empty,
    #[error(
        "unknown macro \"{token}\" (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly)"
    )]
    UnknownMacro { token: String },
    #[error("expected 5, 6 or 7 fields (field count {count}) in \"{expression}\"")]
    FieldCount { count: usize, expression: String },
    #[error("{field} value {value} out of range {min}-{max} in \"{token}\"")]
    OutOfRange {
        field: CronField,
        token: String,
        value: String,
        min: u32,
        max: u32,
    },
    #[error("{field} range \"{token}\" has start > end")]
    StartAfterEnd { field: CronField, token: String },
    #[error("{field} step of 0 in \"{token}\" (a step must be at least 1)")]
    ZeroStep { field: CronField, token: String },
    #[error("{field} token \"{token}\" is invalid: {reason}")]
    InvalidToken {
        field: CronField,
        token: String,
        reason: String,
    },
    #[error("unknown timezone \"{name}\"")]
    UnknownTimezone { name: String },
}

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

/// Day-of-month items whose day depends on the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DomSpecial {
    /// `L`: the last day of the month.
    Last,
    /// `LW`: the last Monday–Friday of the month.
    LastWeekday,
    /// `15W`: the Monday–Friday nearest the 15th, never crossing into another month. A day
    /// the month does not have (`31W` in April) never matches.
    NearestWeekday(u32),
}

/// Day-of-week items whose day depends on the month; weekdays are 0..=6, 0 = Sunday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DowSpecial {
    /// `5L` or `5#L`: the last such weekday of the month.
    Last(u32),
    /// `5#3`: the third such weekday of the month.
    Nth(u32, u32),
}

/// A validated cron expression bound to a timezone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expression: String,
    timezone: Tz,
    fields: CronFields,
    /// `None` when the year field is absent or `*`.
    years: Option<Vec<u32>>,
    dom_specials: Vec<DomSpecial>,
    dow_specials: Vec<DowSpecial>,
    /// `*` or `?`: the field does not restrict, so only the other day field does.
    dom_star: bool,
    dow_star: bool,
    /// Bit `n` set when the plain value `n` is in the field.
    dom_mask: u32,
    dow_mask: u8,
    month_mask: u16,
    /// Every hour of the day is a slot hour, so the expression is "every hour or finer" and
    /// fires in both passes of a repeated fall-back hour; see [`Schedule::next_after`].
    fires_in_both_passes: bool,
}

impl Schedule {
    /// Parse and validate `expr` evaluated in IANA timezone `timezone` (e.g. "UTC",
    /// "America/New_York").
    pub fn parse(expr: &str, timezone: &str) -> Result<Schedule, CronError> {
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(CronError::Empty);
        }
        let expanded = if trimmed.starts_with('@') {
            expand_macro(trimmed)?
        } else {
            trimmed
        };
        let tokens: Vec<&str> = expanded.split_whitespace().collect();
        let (second, standard, year) = match tokens.as_slice() {
            [m, h, dom, mon, dow] => ("0", [*m, *h, *dom, *mon, *dow], None),
            [s, m, h, dom, mon, dow] => (*s, [*m, *h, *dom, *mon, *dow], None),
            [s, m, h, dom, mon, dow, y] => (*s, [*m, *h, *dom, *mon, *dow], Some(*y)),
            other => {
                return Err(CronError::FieldCount {
                    count: other.len(),
                    expression: trimmed.to_string(),
                });
            }
        };
        let [minute, hour, dom, month, dow] = standard;

        let seconds = parse_field(CronField::Second, second)?;
        let minutes = parse_field(CronField::Minute, minute)?;
        let hours = parse_field(CronField::Hour, hour)?;
        let days_of_month = parse_field(CronField::DayOfMonth, dom)?;
        let months = parse_field(CronField::Month, month)?;
        let days_of_week = parse_field(CronField::DayOfWeek, dow)?;
        let years = match year {
            Some(token) => {
                let parsed = parse_field(CronField::Year, token)?;
                (!parsed.star).then_some(parsed.values)
            }
            None => None,
        };
        let timezone = parse_timezone(timezone)?;

        let mask = |values: &[u32]| values.iter().fold(0u32, |acc, v| acc | (1 << v));
        Ok(Schedule {
            expression: expr.to_string(),
            timezone,
            dom_mask: mask(&days_of_month.values),
            // Masks of 0..=6 and 1..=12 fit the narrower types.
            dow_mask: u8::try_from(mask(&days_of_week.values)).unwrap_or(u8::MAX),
            month_mask: u16::try_from(mask(&months.values)).unwrap_or(u16::MAX),
            fires_in_both_passes: hours.values.len() == 24,
            dom_star: days_of_month.star,
            dow_star: days_of_week.star,
            dom_specials: days_of_month.dom_specials,
            dow_specials: days_of_week.dow_specials,
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

    /// The first slot strictly after `after`, in UTC; `None` if the expression can never fire
    /// again (`0 0 30 2 *`, or a year field in the past).
    ///
    /// Slots are wall-clock times in the schedule's timezone:
    /// - a slot inside a spring-forward gap fires at the first real instant after the gap
    ///   (`30 2 * * *` in New York on 2024-03-10 fires at 03:00 EDT); several slots in one gap
    ///   collapse into that one firing;
    /// - a wall-clock time repeated at a fall-back fires once, at its first pass
    ///   (`30 1 * * *` in New York on 2024-11-03 fires at 01:30 EDT only) — unless the
    ///   expression names every hour of the day (`0 * * * *`, `*/15 * * * *`): such an
    ///   "every hour or finer" expression fires in both passes, i.e. once per real hour, so
    ///   its interval stays regular across the change.
    ///
    /// The search is bounded (one 400-year calendar cycle past the first allowed year), so an
    /// impossible expression returns `None` within milliseconds.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut start = self.wall_clock(after)?.with_nanosecond(0)?;
        if self.fires_in_both_passes {
            // While `after` is in the first pass of a repeated hour, the second pass is still
            // ahead in real time but behind `after` on the wall clock. The wall clock MAX_FOLD
            // of real time ahead, minus MAX_FOLD, reaches back exactly over the repeated
            // stretch (and is `after`'s own wall clock when no fall-back is near).
            if let Some(ahead) = after.checked_add_signed(MAX_FOLD) {
                let reach = self.wall_clock(ahead)?.checked_sub_signed(MAX_FOLD)?;
                start = start.min(reach.with_nanosecond(0)?);
            }
        }
        let limit = self.search_limit(start.date())?;

        let mut best: Option<DateTime<Utc>> = None;
        let mut cursor = start;
        for _ in 0..MAX_CANDIDATES {
            let Some(candidate) = self.next_candidate(cursor, limit) else {
                break;
            };
            let Some((first, second)) = self.resolve(candidate) else {
                break;
            };
            // A candidate's first instant never decreases as the wall clock advances, so once
            // it passes the best answer nothing later can beat it.
            if best.is_some_and(|b| first >= b) {
                break;
            }
            for instant in std::iter::once(first).chain(second) {
                if instant > after && best.is_none_or(|b| instant < b) {
                    best = Some(instant);
                }
            }
            let Some(following) = candidate.checked_add_signed(TimeDelta::seconds(1)) else {
                break;
            };
            cursor = following;
        }
        best
    }

    /// Up to `count` successive slots strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut slots = Vec::with_capacity(count.min(1024));
        let mut cursor = after;
        while slots.len() < count {
            match self.next_after(cursor) {
                Some(next) => {
                    slots.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        slots
    }

    /// The expression as given to [`Schedule::parse`].
    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The expanded, sorted set of values for each standard field, for inspection/tests.
    pub fn fields(&self) -> &CronFields {
        &self.fields
    }

    /// The wall-clock time of `at` in the schedule's timezone; `None` at the very edge of
    /// chrono's range, where `naive_local` would panic.
    fn wall_clock(&self, at: DateTime<Utc>) -> Option<NaiveDateTime> {
        let offset = self
            .timezone
            .offset_from_utc_datetime(&at.naive_utc())
            .fix();
        at.naive_utc().checked_add_offset(offset)
    }

    /// The last date the walk may reach, or `None` when every allowed year is past.
    fn search_limit(&self, start: NaiveDate) -> Option<NaiveDate> {
        let year = start.year();
        let (first_year, last_year) = match &self.years {
            None => (year, i32::MAX),
            Some(years) => {
                let first = years.iter().map(|&y| to_year(y)).find(|&y| y >= year)?;
                let last = years.last().map_or(first, |&y| to_year(y));
                (first.max(year), last)
            }
        };
        let limit_year = first_year
            .saturating_add(CALENDAR_CYCLE_YEARS)
            .min(last_year);
        Some(NaiveDate::from_ymd_opt(limit_year, 12, 31).unwrap_or(NaiveDate::MAX))
    }

    /// The earliest wall-clock time at or after `from` (and on or before `limit`) that every
    /// field matches.
    fn next_candidate(&self, from: NaiveDateTime, limit: NaiveDate) -> Option<NaiveDateTime> {
        let mut date = from.date();
        let mut from_time = Some(from.time());
        while date <= limit {
            if let Some(years) = &self.years
                && !u32::try_from(date.year()).is_ok_and(|y| years.binary_search(&y).is_ok())
            {
                let next = years
                    .iter()
                    .map(|&y| to_year(y))
                    .find(|&y| y > date.year())?;
                date = NaiveDate::from_ymd_opt(next, 1, 1)?;
                from_time = None;
                continue;
            }
            if self.month_mask & (1 << date.month()) == 0 {
                date = first_of_next_month(date)?;
                from_time = None;
                continue;
            }
            if self.day_matches(date)
                && let Some(time) = self.first_time_from(from_time)
            {
                return Some(date.and_time(time));
            }
            date = date.succ_opt()?;
            from_time = None;
        }
        None
    }

    /// Day-of-month and day-of-week are ORed when both restrict (crontab(5)); a `*` or `?`
    /// field leaves the decision to the other.
    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = || {
            self.dom_mask & (1 << date.day()) != 0
                || self.dom_specials.iter().any(|s| s.matches(date))
        };
        let dow = || {
            self.dow_mask & (1 << date.weekday().num_days_from_sunday()) != 0
                || self.dow_specials.iter().any(|s| s.matches(date))
        };
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (true, false) => dow(),
            (false, true) => dom(),
            (false, false) => dom() || dow(),
        }
    }

    /// The first slot time of day at or after `from` (midnight when `None`).
    fn first_time_from(&self, from: Option<NaiveTime>) -> Option<NaiveTime> {
        let (h0, m0, s0) = from.map_or((0, 0, 0), |t| (t.hour(), t.minute(), t.second()));
        let CronFields {
            seconds,
            minutes,
            hours,
            ..
        } = &self.fields;
        for &h in hours.iter().filter(|&&h| h >= h0) {
            let min_minute = if h == h0 { m0 } else { 0 };
            for &m in minutes.iter().filter(|&&m| m >= min_minute) {
                let min_second = if h == h0 && m == m0 { s0 } else { 0 };
                if let Some(&s) = seconds.iter().find(|&&s| s >= min_second) {
                    return NaiveTime::from_hms_opt(h, m, s);
                }
            }
        }
        None
    }

    /// The instants a wall-clock slot stands for: the first, and for a repeated wall-clock time
    /// the second pass when this expression fires in both. A time inside a gap stands for the
    /// first instant after the gap.
    fn resolve(&self, slot: NaiveDateTime) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
        match self.timezone.from_local_datetime(&slot) {
            LocalResult::Single(at) => Some((at.to_utc(), None)),
            LocalResult::Ambiguous(a, b) => {
                let (first, second) = (a.to_utc().min(b.to_utc()), a.to_utc().max(b.to_utc()));
                Some((first, self.fires_in_both_passes.then_some(second)))
            }
            LocalResult::None => self.gap_end(slot).map(|end| (end, None)),
        }
    }

    /// The first real instant after the gap containing `slot`.
    fn gap_end(&self, slot: NaiveDateTime) -> Option<DateTime<Utc>> {
        let earliest = |n: NaiveDateTime| match self.timezone.from_local_datetime(&n) {
            LocalResult::Single(at) => Some(at.to_utc()),
            LocalResult::Ambiguous(a, b) => Some(a.to_utc().min(b.to_utc())),
            LocalResult::None => None,
        };
        let at = |seconds: i64| slot.checked_add_signed(TimeDelta::seconds(seconds));
        // Gaps are usually an hour but have been a whole day (Pacific/Apia, 2011): widen the
        // probe until it leaves the gap, then bisect to the second, since historical offsets
        // are not always whole minutes.
        let mut outside = 60;
        while earliest(at(outside)?).is_none() {
            outside *= 2;
            if outside > 4 * 86_400 {
                return None;
            }
        }
        let mut inside = 0;
        while outside - inside > 1 {
            let mid = inside + (outside - inside) / 2;
            if earliest(at(mid)?).is_some() {
                outside = mid;
            } else {
                inside = mid;
            }
        }
        earliest(at(outside)?)
    }
}

impl DomSpecial {
    fn matches(self, date: NaiveDate) -> bool {
        let last = last_day_of_month(date);
        let target = match self {
            DomSpecial::Last => last,
            DomSpecial::LastWeekday => match weekday_of(date, last) {
                6 => last - 1,
                0 => last - 2,
                _ => last,
            },
            DomSpecial::NearestWeekday(day) if day > last => return false,
            DomSpecial::NearestWeekday(day) => match weekday_of(date, day) {
                // Saturday moves to Friday, unless that leaves the month.
                6 if day == 1 => 3,
                6 => day - 1,
                // Sunday moves to Monday, unless that leaves the month.
                0 if day == last => day - 2,
                0 => day + 1,
                _ => day,
            },
        };
        date.day() == target
    }
}

impl DowSpecial {
    fn matches(self, date: NaiveDate) -> bool {
        let weekday = date.weekday().num_days_from_sunday();
        match self {
            DowSpecial::Last(w) => weekday == w && date.day() + 7 > last_day_of_month(date),
            DowSpecial::Nth(w, n) => weekday == w && (date.day() - 1) / 7 + 1 == n,
        }
    }
}

/// Parse an IANA timezone name such as "UTC" or "Europe/Berlin".
pub fn parse_timezone(name: &str) -> Result<Tz, CronError> {
    name.parse::<Tz>().map_err(|_| CronError::UnknownTimezone {
        name: name.to_string(),
    })
}

fn expand_macro(token: &str) -> Result<&'static str, CronError> {
    Ok(match token.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => {
            return Err(CronError::UnknownMacro {
                token: token.to_string(),
            });
        }
    })
}

/// One field after tokenizing: its plain values plus the month-dependent items.
#[derive(Debug, Default)]
struct ParsedField {
    values: Vec<u32>,
    star: bool,
    dom_specials: Vec<DomSpecial>,
    dow_specials: Vec<DowSpecial>,
}

fn parse_field(field: CronField, token: &str) -> Result<ParsedField, CronError> {
    let mut parsed = ParsedField::default();
    if token == "*" || (token == "?" && field.is_day()) {
        parsed.star = true;
        let (min, _) = field.bounds();
        parsed.values = (min..=field.star_max()).collect();
        return Ok(parsed);
    }
    for item in token.split(',') {
        let upper = item.to_ascii_uppercase();
        if upper.is_empty() {
            return Err(invalid(field, token, "empty list item"));
        }
        match field {
            CronField::DayOfMonth if upper == "L" => parsed.dom_specials.push(DomSpecial::Last),
            CronField::DayOfMonth if upper == "LW" => {
                parsed.dom_specials.push(DomSpecial::LastWeekday);
            }
            CronField::DayOfMonth if upper.ends_with('W') => {
                let day = parse_value(field, &upper[..upper.len() - 1], item)?;
                parsed.dom_specials.push(DomSpecial::NearestWeekday(day));
            }
            CronField::DayOfWeek if upper.contains('#') => {
                let (day, nth) = upper.split_once('#').unwrap_or((&upper, ""));
                let weekday = parse_value(field, day, item)? % 7;
                let special = match nth {
                    "L" => DowSpecial::Last(weekday),
                    "1" | "2" | "3" | "4" | "5" => {
                        DowSpecial::Nth(weekday, nth.parse().unwrap_or(1))
                    }
                    _ => {
                        return Err(invalid(
                            field,
                            item,
                            "the occurrence after # must be 1 to 5 or L",
                        ));
                    }
                };
                parsed.dow_specials.push(special);
            }
            CronField::DayOfWeek if upper == "L" => {
                return Err(invalid(
                    field,
                    item,
                    "L in day-of-week needs a weekday before it, e.g. 5L for the last Friday",
                ));
            }
            CronField::DayOfWeek if upper.ends_with('L') => {
                let weekday = parse_value(field, &upper[..upper.len() - 1], item)? % 7;
                parsed.dow_specials.push(DowSpecial::Last(weekday));
            }
            _ => parsed.values.extend(parse_range(field, &upper, item)?),
        }
    }
    if field == CronField::DayOfWeek {
        for value in &mut parsed.values {
            *value %= 7;
        }
    }
    parsed.values.sort_unstable();
    parsed.values.dedup();
    Ok(parsed)
}

/// `*`, `N`, `N-M`, each optionally followed by `/S`. `item` is the original spelling, for errors.
fn parse_range(field: CronField, upper: &str, item: &str) -> Result<Vec<u32>, CronError> {
    let (base, step) = match upper.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(field, step, item)?)),
        None => (upper, None),
    };
    let (min, _) = field.bounds();
    let (start, end) = if base == "*" {
        (min, field.star_max())
    } else if let Some((start, end)) = base.split_once('-') {
        let start = parse_value(field, start, item)?;
        let end = match parse_value(field, end, item)? {
            // `FRI-SUN` means Friday to Sunday, so Sunday ends a range as 7.
            0 if field == CronField::DayOfWeek && end.eq_ignore_ascii_case("SUN") => 7,
            end => end,
        };
        if start > end {
            return Err(CronError::StartAfterEnd {
                field,
                token: item.to_string(),
            });
        }
        (start, end)
    } else {
        let start = parse_value(field, base, item)?;
        match step {
            Some(_) => (start, field.star_max().max(start)),
            None => (start, start),
        }
    };
    let step = step.unwrap_or(1);
    Ok((start..=end).step_by(step as usize).collect())
}

fn parse_step(field: CronField, step: &str, item: &str) -> Result<u32, CronError> {
    if step.is_empty() || !step.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(field, item, "the step after / must be a number"));
    }
    let (min, _) = field.bounds();
    let span = field.star_max() - min + 1;
    match step.parse::<u32>() {
        Ok(0) => Err(CronError::ZeroStep {
            field,
            token: item.to_string(),
        }),
        Ok(step) if step <= span => Ok(step),
        _ => Err(invalid(
            field,
            item,
            &format!("the step {step} is larger than the field's span of {span}"),
        )),
    }
}

/// A number or, for month and day-of-week, a three-letter name.
fn parse_value(field: CronField, value: &str, item: &str) -> Result<u32, CronError> {
    let (min, max) = field.bounds();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            // Too large for u32 is still just out of range.
            _ => Err(CronError::OutOfRange {
                field,
                token: item.to_string(),
                value: value.to_string(),
                min,
                max,
            }),
        };
    }
    let names = field.names();
    if let Some(index) = names.iter().position(|n| n.eq_ignore_ascii_case(value)) {
        // Months count from 1, weekdays from 0 (Sunday).
        let offset = if field == CronField::Month { 1 } else { 0 };
        return Ok(u32::try_from(index).unwrap_or(0) + offset);
    }
    let reason = match field {
        _ if value.is_empty() => "a value is missing".to_string(),
        CronField::Month => "expected a number 1-12 or a name JAN-DEC".to_string(),
        CronField::DayOfWeek => "expected a number 0-7 or a name SUN-SAT".to_string(),
        _ if value == "?" => {
            "? stands for * and must be the whole day-of-month or day-of-week field".to_string()
        }
        _ if is_day_modifier(value) => {
            format!("L, W and # are only allowed in day-of-month or day-of-week, not in {field}")
        }
        _ => format!("expected a number {min}-{max}"),
    };
    Err(invalid(field, item, &reason))
}

/// `L`, `5L`, `15W`, `LW` or anything with `#`: a modifier used in a field that has none.
fn is_day_modifier(value: &str) -> bool {
    let suffix = value.trim_start_matches(|c: char| c.is_ascii_digit());
    matches!(suffix, "L" | "W" | "LW") || value.contains('#')
}

fn invalid(field: CronField, token: &str, reason: &str) -> CronError {
    CronError::InvalidToken {
        field,
        token: token.to_string(),
        reason: reason.to_string(),
    }
}

fn to_year(year: u32) -> i32 {
    // Years are validated to YEAR_MIN..=YEAR_MAX, far inside i32.
    i32::try_from(year).unwrap_or(i32::MAX)
}

fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    match date.month() {
        12 => NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1),
        month => NaiveDate::from_ymd_opt(date.year(), month + 1, 1),
    }
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    first_of_next_month(date)
        .and_then(|next| next.pred_opt())
        .map_or(31, |last| last.day())
}

/// Weekday (0 = Sunday) of `day` in `date`'s month.
fn weekday_of(date: NaiveDate, day: u32) -> u32 {
    date.with_day(day)
        .map_or(7, |d| d.weekday().num_days_from_sunday())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(f: CronField, token: &str) -> Vec<u32> {
        parse_field(f, token).expect("token parses").values
    }

    fn error(f: CronField, token: &str) -> CronError {
        parse_field(f, token).expect_err("token is rejected")
    }

    #[test]
    fn star_expands_to_the_whole_field() {
        assert_eq!(field(CronField::Minute, "*").len(), 60);
        assert_eq!(field(CronField::Hour, "*").len(), 24);
        assert_eq!(field(CronField::DayOfMonth, "*").len(), 31);
        assert_eq!(field(CronField::Month, "*").len(), 12);
        assert_eq!(field(CronField::DayOfWeek, "*"), vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn steps_ranges_and_lists_expand_sorted_and_deduplicated() {
        assert_eq!(field(CronField::Minute, "*/15"), vec![0, 15, 30, 45]);
        assert_eq!(field(CronField::Minute, "10/10"), vec![10, 20, 30, 40, 50]);
        assert_eq!(field(CronField::Minute, "0-30/10"), vec![0, 10, 20, 30]);
        assert_eq!(field(CronField::Minute, "30,0,15,45"), vec![0, 15, 30, 45]);
        assert_eq!(
            field(CronField::Minute, "0,10-12,30"),
            vec![0, 10, 11, 12, 30]
        );
        assert_eq!(field(CronField::Minute, "0,0,0"), vec![0]);
        assert_eq!(field(CronField::Hour, "22/5"), vec![22]);
    }

    #[test]
    fn names_are_case_insensitive_and_sunday_folds_to_zero() {
        assert_eq!(field(CronField::Month, "jan,Jun-AUG"), vec![1, 6, 7, 8]);
        assert_eq!(field(CronField::DayOfWeek, "mon-FRI"), vec![1, 2, 3, 4, 5]);
        assert_eq!(field(CronField::DayOfWeek, "7"), vec![0]);
        assert_eq!(field(CronField::DayOfWeek, "FRI-SUN"), vec![0, 5, 6]);
        assert_eq!(field(CronField::DayOfWeek, "5-7"), vec![0, 5, 6]);
        assert_eq!(field(CronField::DayOfWeek, "*/2"), vec![0, 2, 4, 6]);
    }

    #[test]
    fn question_mark_is_a_star_only_in_day_fields() {
        assert!(
            parse_field(CronField::DayOfMonth, "?")
                .expect("parses")
                .star
        );
        assert!(parse_field(CronField::DayOfWeek, "?").expect("parses").star);
        assert!(matches!(
            error(CronField::Minute, "?"),
            CronError::InvalidToken { .. }
        ));
    }

    #[test]
    fn month_dependent_items_are_kept_apart_from_plain_values() {
        let dom = parse_field(CronField::DayOfMonth, "L,LW,15W,1").expect("parses");
        assert_eq!(dom.values, vec![1]);
        assert_eq!(
            dom.dom_specials,
            vec![
                DomSpecial::Last,
                DomSpecial::LastWeekday,
                DomSpecial::NearestWeekday(15)
            ]
        );
        let dow = parse_field(CronField::DayOfWeek, "5L,fri#3,7#L,1").expect("parses");
        assert_eq!(dow.values, vec![1]);
        assert_eq!(
            dow.dow_specials,
            vec![
                DowSpecial::Last(5),
                DowSpecial::Nth(5, 3),
                DowSpecial::Last(0)
            ]
        );
    }

    #[test]
    fn errors_name_the_field_and_quote_the_token() {
        let message = error(CronField::Minute, "0,10-70").to_string();
        assert!(
            message.contains("minute") && message.contains("\"10-70\""),
            "{message}"
        );
        assert!(message.contains("out of range"), "{message}");

        let message = error(CronField::Hour, "5-3").to_string();
        assert!(message.contains("start > end") && message.contains("\"5-3\""));

        let message = error(CronField::Second, "*/0").to_string();
        assert!(message.contains("second") && message.contains("step of 0"));

        let message = error(CronField::Minute, "*/61").to_string();
        assert!(message.contains("larger than"), "{message}");

        let message = error(CronField::Hour, "5L").to_string();
        assert!(
            message.contains("hour") && message.contains("\"5L\""),
            "{message}"
        );

        let message = error(CronField::DayOfWeek, "5#6").to_string();
        assert!(message.contains("day-of-week") && message.contains("\"5#6\""));

        let message = error(CronField::Month, "foo").to_string();
        assert!(message.contains("month") && message.contains("\"foo\""));

        let message = error(CronField::Minute, "1,,2").to_string();
        assert!(message.contains("empty list item"), "{message}");

        let message = error(CronField::Minute, "99999999999").to_string();
        assert!(message.contains("out of range"), "{message}");
    }

    #[test]
    fn day_of_week_rejects_a_bare_l_and_day_of_month_rejects_a_hash() {
        assert!(matches!(
            error(CronField::DayOfWeek, "L"),
            CronError::InvalidToken { .. }
        ));
        assert!(matches!(
            error(CronField::DayOfMonth, "1#2"),
            CronError::InvalidToken { .. }
        ));
    }

    #[test]
    fn nearest_weekday_stays_inside_the_month() {
        let nearest = |day, y, m| {
            let special = DomSpecial::NearestWeekday(day);
            (1..=31)
                .filter_map(|d| NaiveDate::from_ymd_opt(y, m, d))
                .find(|date| special.matches(*date))
                .map(|date| date.day())
        };
        // 2024-06-01 is a Saturday: 1W moves forward to Monday the 3rd.
        assert_eq!(nearest(1, 2024, 6), Some(3));
        // 2024-06-15 is a Saturday: 15W is Friday the 14th.
        assert_eq!(nearest(15, 2024, 6), Some(14));
        // 2024-06-16 is a Sunday: 16W is Monday the 17th.
        assert_eq!(nearest(16, 2024, 6), Some(17));
        // 2024-03-31 is a Sunday: 31W moves back to Friday the 29th.
        assert_eq!(nearest(31, 2024, 3), Some(29));
        // April has no 31st.
        assert_eq!(nearest(31, 2024, 4), None);
    }
}
