//! The grammar every reader of a cron expression shares: the fields and their bounds, the month
//! and weekday names, the `@` macros, and the split of an expression into its fields. The parser
//! (`parse`) and the plain-language describer (`crate::describe`) both read expressions through
//! it, so they cannot disagree about what a token means.

use std::fmt;

use super::CronError;

/// Year values a 7-field expression may name; no slot is ever later than the end of `YEAR_MAX`.
pub(crate) const YEAR_MIN: u32 = 1970;
pub(crate) const YEAR_MAX: u32 = 9999;

/// Month names, January first. Cron spells them by their first three letters (`JAN`).
pub(crate) const MONTH_NAMES: [&str; 12] = [
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

/// Weekday names by cron number (0 = Sunday). Cron spells them by their first three letters.
pub(crate) const WEEKDAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The `@` macros and the expressions they stand for.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

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
    /// The field's name as error messages and the docs spell it (`day-of-month`).
    pub fn name(self) -> &'static str {
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
    pub(crate) fn bounds(self) -> (u32, u32) {
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
    pub(crate) fn star_max(self) -> u32 {
        match self {
            CronField::DayOfWeek => 6,
            other => other.bounds().1,
        }
    }

    pub(crate) fn is_day(self) -> bool {
        matches!(self, CronField::DayOfMonth | CronField::DayOfWeek)
    }

    /// The names the field accepts, with the number of the first: months from 1, weekdays
    /// from 0 (Sunday).
    fn names(self) -> Option<(&'static [&'static str], u32)> {
        match self {
            CronField::Month => Some((&MONTH_NAMES, 1)),
            CronField::DayOfWeek => Some((&WEEKDAY_NAMES, 0)),
            _ => None,
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A number within the field's bounds or, for month and day-of-week, a three-letter name in
/// any case; `None` for anything else.
pub(crate) fn value(field: CronField, text: &str) -> Option<u32> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let (min, max) = field.bounds();
        return text.parse::<u32>().ok().filter(|n| (min..=max).contains(n));
    }
    name_value(field, text)
}

/// The number of a month or weekday name (`JAN` → 1, `sun` → 0); `None` for a field without
/// names or a text that is not one.
pub(crate) fn name_value(field: CronField, text: &str) -> Option<u32> {
    let (names, first) = field.names()?;
    let index = names
        .iter()
        .position(|name| text.len() == 3 && name[..3].eq_ignore_ascii_case(text))?;
    Some(first + u32::try_from(index).ok()?)
}

/// The expression a macro stands for (`@daily` → `0 0 * * *`), in any case.
pub(crate) fn expand_macro(token: &str) -> Option<&'static str> {
    MACROS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(token))
        .map(|(_, expression)| *expression)
}

/// The fields of an expression as written, macros expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldTokens<'a> {
    /// `None` for a 5-field expression, which fires at second 0.
    pub second: Option<&'a str>,
    pub minute: &'a str,
    pub hour: &'a str,
    pub day_of_month: &'a str,
    pub month: &'a str,
    pub day_of_week: &'a str,
    /// `None` unless the expression has 7 fields.
    pub year: Option<&'a str>,
}

/// Splits `expr` into its 5, 6 or 7 fields, expanding a macro first.
pub(crate) fn split(expr: &str) -> Result<FieldTokens<'_>, CronError> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(CronError::Empty);
    }
    let expanded = if trimmed.starts_with('@') {
        expand_macro(trimmed).ok_or_else(|| CronError::UnknownMacro {
            token: trimmed.to_string(),
        })?
    } else {
        trimmed
    };
    let tokens: Vec<&str> = expanded.split_whitespace().collect();
    let (second, rest, year) = match tokens.as_slice() {
        [m, h, dom, mon, dow] => (None, [*m, *h, *dom, *mon, *dow], None),
        [s, m, h, dom, mon, dow] => (Some(*s), [*m, *h, *dom, *mon, *dow], None),
        [s, m, h, dom, mon, dow, y] => (Some(*s), [*m, *h, *dom, *mon, *dow], Some(*y)),
        other => {
            return Err(CronError::FieldCount {
                count: other.len(),
                expression: trimmed.to_string(),
            });
        }
    };
    let [minute, hour, day_of_month, month, day_of_week] = rest;
    Ok(FieldTokens {
        second,
        minute,
        hour,
        day_of_month,
        month,
        day_of_week,
        year,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_numbers_in_bounds_or_three_letter_names() {
        assert_eq!(value(CronField::Minute, "59"), Some(59));
        assert_eq!(value(CronField::Minute, "60"), None);
        assert_eq!(value(CronField::Month, "jan"), Some(1));
        assert_eq!(value(CronField::Month, "January"), None);
        assert_eq!(value(CronField::DayOfWeek, "SUN"), Some(0));
        assert_eq!(value(CronField::DayOfWeek, "7"), Some(7));
        assert_eq!(value(CronField::Hour, "MON"), None);
    }

    #[test]
    fn split_expands_macros_and_counts_fields() {
        let tokens = split(" @Hourly ").expect("a macro");
        assert_eq!(
            (tokens.second, tokens.minute, tokens.hour),
            (None, "0", "*")
        );
        let tokens = split("1 2 3 4 5 6 2030").expect("seven fields");
        assert_eq!((tokens.second, tokens.year), (Some("1"), Some("2030")));
        assert_eq!(split("").err(), Some(CronError::Empty));
        assert!(matches!(
            split("* * * *"),
            Err(CronError::FieldCount { count: 4, .. })
        ));
        assert!(matches!(
            split("@every"),
            Err(CronError::UnknownMacro { .. })
        ));
    }
}
