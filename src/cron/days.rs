//! Which days an expression fires on: the day-of-month and day-of-week fields, combined as
//! Vixie and Debian cron combine them, and the month-dependent items `L`, `LW`, `15W`, `5L` and
//! `5#3`.

use chrono::{Datelike, NaiveDate};

use super::parse::ParsedField;

/// Day-of-month items whose day depends on the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DomSpecial {
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
pub(super) enum DowSpecial {
    /// `5L` or `5#L`: the last such weekday of the month.
    Last(u32),
    /// `5#3`: the third such weekday of the month.
    Nth(u32, u32),
}

/// The two day fields, ready to test a date against.
#[derive(Debug, Clone)]
pub(super) struct DayRule {
    /// Bit `n` set when the plain value `n` is in the field.
    dom_mask: u32,
    dow_mask: u8,
    dom_specials: Vec<DomSpecial>,
    dow_specials: Vec<DowSpecial>,
    /// The field is `*` or `?`: every day matches it, so it need not be asked.
    dom_any: bool,
    dow_any: bool,
    /// crontab(5): "If both fields are restricted (i.e., do not start with *), the command will
    /// be run when either field matches the current time." Otherwise both must match, so a
    /// field such as `*/2` restricts together with the other.
    either: bool,
}

impl DayRule {
    /// `dom_token` and `dow_token` are the fields as written: whether they start with `*` (or
    /// are `?`) decides between OR and AND.
    pub(super) fn new(
        dom: &ParsedField,
        dom_token: &str,
        dow: &ParsedField,
        dow_token: &str,
    ) -> DayRule {
        let unrestricted = |token: &str| token.starts_with('*') || token == "?";
        let mask = |values: &[u32]| values.iter().fold(0u32, |acc, v| acc | (1 << v));
        DayRule {
            dom_mask: mask(&dom.values),
            // Weekdays are 0..=6, so their mask fits a byte.
            dow_mask: u8::try_from(mask(&dow.values)).unwrap_or(u8::MAX),
            dom_specials: dom.dom_specials.clone(),
            dow_specials: dow.dow_specials.clone(),
            dom_any: dom.star,
            dow_any: dow.star,
            either: !unrestricted(dom_token) && !unrestricted(dow_token),
        }
    }

    pub(super) fn matches(&self, date: NaiveDate) -> bool {
        let dom = || {
            self.dom_mask & (1 << date.day()) != 0
                || self.dom_specials.iter().any(|s| s.matches(date))
        };
        let dow = || {
            self.dow_mask & (1 << date.weekday().num_days_from_sunday()) != 0
                || self.dow_specials.iter().any(|s| s.matches(date))
        };
        if self.either {
            dom() || dow()
        } else {
            (self.dom_any || dom()) && (self.dow_any || dow())
        }
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

pub(super) fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
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
    use super::super::grammar::CronField;
    use super::super::parse::parse_field;
    use super::*;

    fn rule(dom: &str, dow: &str) -> DayRule {
        let parsed_dom = parse_field(CronField::DayOfMonth, dom).expect("day-of-month parses");
        let parsed_dow = parse_field(CronField::DayOfWeek, dow).expect("day-of-week parses");
        DayRule::new(&parsed_dom, dom, &parsed_dow, dow)
    }

    /// Days of December 2026 (the 1st is a Tuesday) that `rule` matches.
    fn december_days(rule: &DayRule) -> Vec<u32> {
        (1..=31)
            .filter_map(|d| NaiveDate::from_ymd_opt(2026, 12, d))
            .filter(|date| rule.matches(*date))
            .map(|date| date.day())
            .collect()
    }

    #[test]
    fn restricted_day_fields_are_ored_and_a_star_field_ands() {
        // Mondays of December 2026: 7, 14, 21, 28.
        assert_eq!(december_days(&rule("1,15", "1")), [1, 7, 14, 15, 21, 28]);
        assert_eq!(december_days(&rule("*/2", "1")), [7, 21]);
        assert_eq!(december_days(&rule("*", "1")), [7, 14, 21, 28]);
        assert_eq!(december_days(&rule("?", "1")), [7, 14, 21, 28]);
        assert_eq!(december_days(&rule("13", "*")), [13]);
        assert_eq!(december_days(&rule("1-10", "*/7")), [6]);
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
