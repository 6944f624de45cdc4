//! The next slot: a walk over the wall-clock times the fields match, from the wall clock of the
//! starting instant, each resolved to a real instant by the daylight-saving rules (module docs).
//! The walk is bounded, so an expression that can never fire answers `None` within
//! milliseconds.

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeDelta,
    TimeZone, Timelike, Utc,
};

use super::days::first_of_next_month;
use super::grammar::YEAR_MAX;
use super::{CronFields, Schedule};

/// The Gregorian calendar repeats every 400 years, so a day pattern that matches nothing in
/// 400 consecutive years never matches; this bounds the search for impossible expressions.
const CALENDAR_CYCLE_YEARS: i32 = 400;

/// A safety net for the candidate walk. Real timezones need at most a few thousand candidates
/// (a second-level expression across a one-hour fall-back); this only stops a pathological loop.
pub(super) const MAX_CANDIDATES: usize = 200_000;

/// Longest fall-back any timezone has used, rounded up; it decides how far back the walk starts
/// so that the second pass of a repeated hour is not missed.
const MAX_FOLD: TimeDelta = TimeDelta::hours(4);

/// 10000-01-01T00:00:00Z: no slot is at or after it, so every slot prints as RFC 3339.
const END_OF_YEAR_MAX: i64 = 253_402_300_800;

/// Longest spring-forward gap searched for its end (Pacific/Apia skipped a whole day in 2011).
const MAX_GAP_SECONDS: i64 = 4 * 86_400;

/// What the daylight-saving rules made of the wall-clock slot a found instant stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resolution {
    /// The wall-clock time exists once.
    Single,
    /// A fixed-time slot inside a spring-forward gap, run at the first instant after it.
    MovedOutOfGap,
    /// A fixed-time slot repeated at a fall-back, run at its first pass only.
    FirstPassOnly,
    /// A wildcard slot repeated at a fall-back: its first pass (the second follows).
    FirstOfTwoPasses,
    /// A wildcard slot repeated at a fall-back: its second pass.
    SecondOfTwoPasses,
}

/// The next slot and how it was decided.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub at: DateTime<Utc>,
    /// The wall-clock slot `at` stands for; for a slot moved out of a gap, the first one of the
    /// gap.
    pub wall: NaiveDateTime,
    pub resolution: Resolution,
    /// For a wildcard job: the first slot skipped inside a gap between the start and `at`, and
    /// the instant the gap ended.
    pub skipped: Option<(NaiveDateTime, DateTime<Utc>)>,
}

impl Schedule {
    /// The first slot strictly after `after`, in UTC; `None` if the expression can never fire
    /// again (`0 0 30 2 *`, a year field in the past, or nothing before the end of 9999).
    ///
    /// Slots are wall-clock times in the schedule's timezone, resolved by Debian cron's rules
    /// (module docs): a wildcard job's slot inside a spring-forward gap does not exist and a
    /// repeated time runs in both passes; a fixed-time job's slots inside a gap run once at the
    /// first instant after it and a repeated time runs once, at its first pass.
    ///
    /// The search is bounded (one 400-year calendar cycle past the first allowed year), so an
    /// impossible expression returns `None` within milliseconds.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.search(after).map(|found| found.at)
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

    pub(super) fn search(&self, after: DateTime<Utc>) -> Option<Found> {
        let mut start = self.wall_clock(after)?.with_nanosecond(0)?;
        if self.wildcard {
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

        let mut best: Option<Found> = None;
        let mut skipped = None;
        let mut cursor = start;
        for _ in 0..MAX_CANDIDATES {
            let Some(candidate) = self.next_candidate(cursor, limit) else {
                break;
            };
            // A candidate's first instant never decreases as the wall clock advances, so once
            // one reaches the best answer nothing later can beat it.
            let reached =
                |first: DateTime<Utc>, best: &Option<Found>| best.is_some_and(|b| first >= b.at);
            let offer = |at: DateTime<Utc>, resolution, best: &mut Option<Found>| {
                if at > after && best.is_none_or(|b| at < b.at) {
                    *best = Some(Found {
                        at,
                        wall: candidate,
                        resolution,
                        skipped: None,
                    });
                }
            };
            let next_cursor = match self.timezone.from_local_datetime(&candidate) {
                LocalResult::Single(at) => {
                    let at = at.to_utc();
                    if reached(at, &best) {
                        break;
                    }
                    offer(at, Resolution::Single, &mut best);
                    candidate.checked_add_signed(TimeDelta::seconds(1))
                }
                LocalResult::Ambiguous(a, b) => {
                    let (first, second) = (a.to_utc().min(b.to_utc()), a.to_utc().max(b.to_utc()));
                    if reached(first, &best) {
                        break;
                    }
                    if self.wildcard {
                        offer(first, Resolution::FirstOfTwoPasses, &mut best);
                        offer(second, Resolution::SecondOfTwoPasses, &mut best);
                    } else {
                        offer(first, Resolution::FirstPassOnly, &mut best);
                    }
                    candidate.checked_add_signed(TimeDelta::seconds(1))
                }
                LocalResult::None => {
                    let Some(end) = self.gap_end(candidate) else {
                        break;
                    };
                    if reached(end, &best) {
                        break;
                    }
                    if !self.wildcard {
                        offer(end, Resolution::MovedOutOfGap, &mut best);
                    } else if end > after && skipped.is_none() {
                        skipped = Some((candidate, end));
                    }
                    // Every later slot of the gap resolves alike: go on from its end.
                    self.wall_clock(end)
                }
            };
            let Some(next_cursor) = next_cursor else {
                break;
            };
            cursor = next_cursor;
        }
        let mut found = best.filter(|found| found.at.timestamp() < END_OF_YEAR_MAX)?;
        found.skipped = skipped.filter(|(_, end)| *end <= found.at);
        Some(found)
    }

    /// The first real instant of wall-clock time `local`; `None` inside a gap.
    fn earliest_instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.timezone.from_local_datetime(&local) {
            LocalResult::Single(at) => Some(at.to_utc()),
            LocalResult::Ambiguous(a, b) => Some(a.to_utc().min(b.to_utc())),
            LocalResult::None => None,
        }
    }

    /// The wall-clock time of `at` in the schedule's timezone; `None` at the very edge of
    /// chrono's range, where `naive_local` would panic.
    pub(super) fn wall_clock(&self, at: DateTime<Utc>) -> Option<NaiveDateTime> {
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
            None => (year, to_year(YEAR_MAX)),
            Some(years) => {
                let first = years.iter().map(|&y| to_year(y)).find(|&y| y >= year)?;
                let last = years.last().map_or(first, |&y| to_year(y));
                (first.max(year), last)
            }
        };
        if first_year > to_year(YEAR_MAX) {
            return None;
        }
        let limit_year = first_year
            .saturating_add(CALENDAR_CYCLE_YEARS)
            .min(last_year);
        NaiveDate::from_ymd_opt(limit_year, 12, 31)
    }

    /// The earliest wall-clock time at or after `from` (and on or before `limit`) that every
    /// field matches.
    pub(super) fn next_candidate(
        &self,
        from: NaiveDateTime,
        limit: NaiveDate,
    ) -> Option<NaiveDateTime> {
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
            if self.days.matches(date)
                && let Some(time) = self.first_time_from(from_time)
            {
                return Some(date.and_time(time));
            }
            date = date.succ_opt()?;
            from_time = None;
        }
        None
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

    /// The first real instant after the gap containing the wall-clock time `slot`.
    pub(super) fn gap_end(&self, slot: NaiveDateTime) -> Option<DateTime<Utc>> {
        let at = |seconds: i64| slot.checked_add_signed(TimeDelta::seconds(seconds));
        // Gaps are usually an hour but have been a whole day: widen the probe until it leaves
        // the gap, then bisect to the second, since historical offsets are not always whole
        // minutes.
        let mut outside = 60;
        while self.earliest_instant(at(outside)?).is_none() {
            outside *= 2;
            if outside > MAX_GAP_SECONDS {
                return None;
            }
        }
        let mut inside = 0;
        while outside - inside > 1 {
            let mid = inside + (outside - inside) / 2;
            if self.earliest_instant(at(mid)?).is_some() {
                outside = mid;
            } else {
                inside = mid;
            }
        }
        self.earliest_instant(at(outside)?)
    }
}

fn to_year(year: u32) -> i32 {
    // Years are validated to YEAR_MIN..=YEAR_MAX, far inside i32.
    i32::try_from(year).unwrap_or(i32::MAX)
}
