//! From the text of one field to its values: ranges, steps, lists and names expand to sorted
//! values; `L`, `W` and `#` become month-dependent day items. Every rejection is a [`CronError`]
//! that names the field and quotes the token.

use super::days::{DomSpecial, DowSpecial};
use super::grammar::{self, CronField};

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

impl CronError {
    /// The field the error is about; `None` for errors of the whole expression or the timezone.
    pub fn field(&self) -> Option<CronField> {
        match self {
            CronError::OutOfRange { field, .. }
            | CronError::StartAfterEnd { field, .. }
            | CronError::ZeroStep { field, .. }
            | CronError::InvalidToken { field, .. } => Some(*field),
            CronError::Empty
            | CronError::UnknownMacro { .. }
            | CronError::FieldCount { .. }
            | CronError::UnknownTimezone { .. } => None,
        }
    }
}

/// One field after parsing: its plain values plus the month-dependent day items.
#[derive(Debug, Default)]
pub(super) struct ParsedField {
    /// Sorted and deduplicated; day-of-week 0..=6 with 7 folded to 0.
    pub values: Vec<u32>,
    /// The field is `*` or `?` exactly.
    pub star: bool,
    pub dom_specials: Vec<DomSpecial>,
    pub dow_specials: Vec<DowSpecial>,
}

pub(super) fn parse_field(field: CronField, token: &str) -> Result<ParsedField, CronError> {
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
    } else if let Some((start_text, end_text)) = base.split_once('-') {
        let start = parse_value(field, start_text, item)?;
        let end = match parse_value(field, end_text, item)? {
            // `FRI-SUN` runs from Friday to Sunday, so a named Sunday after another weekday
            // ends the range as 7. `SUN-SUN` and `0-SUN` stay Sunday alone, as crontab reads
            // SUN as 0.
            0 if field == CronField::DayOfWeek && start > 0 && end_text == "SUN" => 7,
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

/// A step must fit in the field: Vixie cron reads `*/90` in the minute field as minute 0 alone,
/// which is never what its author meant, so a step larger than the field's span is rejected.
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
    if let Some(number) = grammar::name_value(field, value) {
        return Ok(number);
    }
    let reason = if value.is_empty() {
        "a value is missing".to_string()
    } else if value == "?" {
        "? stands for * and must be the whole day-of-month or day-of-week field".to_string()
    } else if let Some(reason) = misplaced_day_modifier(field, value) {
        reason.to_string()
    } else {
        match field {
            CronField::Month => "expected a number 1-12 or a name JAN-DEC".to_string(),
            CronField::DayOfWeek => "expected a number 0-7 or a name SUN-SAT".to_string(),
            _ => format!("expected a number {min}-{max}"),
        }
    };
    Err(invalid(field, item, &reason))
}

/// Why `value` (part of a range, a step or a field that takes no modifiers) may not use `L`,
/// `W` or `#` there; `None` when it uses none of them.
fn misplaced_day_modifier(field: CronField, value: &str) -> Option<&'static str> {
    let suffix = value.trim_start_matches(|c: char| c.is_ascii_digit());
    let has_hash = value.contains('#');
    if !(matches!(suffix, "L" | "W" | "LW") || has_hash) {
        return None;
    }
    Some(match field {
        CronField::DayOfMonth if has_hash => {
            "# is only allowed in day-of-week (5#3: the third Friday)"
        }
        CronField::DayOfMonth if suffix == "L" && suffix != value => {
            "a weekday before L (5L) is only allowed in day-of-week; L alone is the last day of the month"
        }
        CronField::DayOfWeek if suffix.contains('W') => {
            "W is only allowed in day-of-month (15W, LW)"
        }
        _ if field.is_day() => {
            "L, W and # stand alone as list items (L, LW, 15W in day-of-month; 5L, 5#3 in day-of-week), never in a range or a step; offsets such as L-2 are not supported"
        }
        _ => "L, W and # are only allowed in day-of-month or day-of-week",
    })
}

fn invalid(field: CronField, token: &str, reason: &str) -> CronError {
    CronError::InvalidToken {
        field,
        token: token.to_string(),
        reason: reason.to_string(),
    }
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
        assert_eq!(field(CronField::DayOfWeek, "5-7"), vec![0, 5, 6]);
        assert_eq!(field(CronField::DayOfWeek, "*/2"), vec![0, 2, 4, 6]);
    }

    #[test]
    fn sunday_ends_a_range_after_another_weekday_but_alone_it_is_sunday() {
        assert_eq!(field(CronField::DayOfWeek, "FRI-SUN"), vec![0, 5, 6]);
        assert_eq!(
            field(CronField::DayOfWeek, "mon-sun"),
            (0..=6).collect::<Vec<_>>()
        );
        assert_eq!(field(CronField::DayOfWeek, "SUN-SUN"), vec![0]);
        assert_eq!(field(CronField::DayOfWeek, "0-SUN"), vec![0]);
        assert_eq!(field(CronField::DayOfWeek, "sun-sun/2"), vec![0]);
        assert_eq!(
            field(CronField::DayOfWeek, "SUN-SAT"),
            (0..=6).collect::<Vec<_>>()
        );
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
    fn a_misplaced_l_w_or_hash_is_explained_for_the_field_it_is_in() {
        let message = error(CronField::Minute, "L-2").to_string();
        assert!(
            message.starts_with("minute token \"L-2\"")
                && message.contains("only allowed in day-of-month or day-of-week"),
            "{message}"
        );
        let message = error(CronField::DayOfMonth, "L-2").to_string();
        assert!(
            message.starts_with("day-of-month token \"L-2\"")
                && message.contains("offsets such as L-2 are not supported")
                && !message.contains("not in day-of-month"),
            "{message}"
        );
        let message = error(CronField::DayOfMonth, "1#2").to_string();
        assert!(message.contains("only allowed in day-of-week"), "{message}");
        let message = error(CronField::DayOfMonth, "5L").to_string();
        assert!(message.contains("only allowed in day-of-week"), "{message}");
        let message = error(CronField::DayOfWeek, "15W").to_string();
        assert!(
            message.contains("only allowed in day-of-month"),
            "{message}"
        );
        let message = error(CronField::DayOfWeek, "5L-6").to_string();
        assert!(message.contains("never in a range"), "{message}");
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
}
