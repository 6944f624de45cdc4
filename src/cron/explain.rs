//! Slots that explain themselves: each upcoming slot with its local time and, where daylight
//! saving decided something, a [`DstNote`] saying what ("02:30 does not exist on 2027-03-14:
//! runs at 03:00 EDT"). The preview of `plugin-jobs cron`, a job's `upcoming` in the API and the
//! dashboard all show these.

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::ser::{Serialize, SerializeStruct, Serializer};

use super::Schedule;
use super::search::{Found, MAX_CANDIDATES, Resolution};

/// One upcoming slot: the instant, the wall clock of the schedule's timezone, and what daylight
/// saving decided about it, if anything.
///
/// Serialised as `{"utc": "2027-03-14T07:05:00.000Z", "local": "2027-03-14T03:05:00-04:00",
/// "zone": "EDT", "note": "02:05 does not exist on 2027-03-14: skipped, wildcard job"}`, with
/// `note` null when daylight saving decided nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub at: DateTime<Utc>,
    pub local: DateTime<Tz>,
    pub note: Option<DstNote>,
}

/// A decision of the daylight-saving rules (see the module docs of [`super`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DstNote {
    /// A fixed-time job's slots inside a spring-forward gap (`count` of them, `first` to `last`)
    /// run once, at the first instant after the gap.
    MovedOutOfGap {
        first: NaiveDateTime,
        last: NaiveDateTime,
        count: usize,
        runs_at: DateTime<Tz>,
    },
    /// A wildcard job's slots inside a spring-forward gap do not exist: they were skipped
    /// before this slot.
    SkippedInGap {
        first: NaiveDateTime,
        last: NaiveDateTime,
        count: usize,
    },
    /// A fixed-time job's slot repeated at a fall-back runs once, at its first pass.
    RunsOnceAtFirstPass { wall: NaiveDateTime },
    /// A wildcard job's slot repeated at a fall-back runs in both passes.
    RunsInBothPasses {
        first: DateTime<Tz>,
        second: DateTime<Tz>,
    },
}

impl Schedule {
    /// Up to `count` successive slots strictly after `after`, as [`Schedule::upcoming`], each
    /// with its local time and the daylight-saving decision behind it.
    pub fn upcoming_slots(&self, after: DateTime<Utc>, count: usize) -> Vec<Slot> {
        let mut slots = Vec::with_capacity(count.min(1024));
        let mut cursor = after;
        while slots.len() < count {
            let Some(found) = self.search(cursor) else {
                break;
            };
            slots.push(Slot {
                at: found.at,
                local: found.at.with_timezone(&self.timezone),
                note: self.note(&found),
            });
            cursor = found.at;
        }
        slots
    }

    fn note(&self, found: &Found) -> Option<DstNote> {
        let local = |at: DateTime<Utc>| at.with_timezone(&self.timezone);
        match found.resolution {
            Resolution::Single => {
                let (first, end) = found.skipped?;
                let (last, count) = self.gap_slots(first, end);
                Some(DstNote::SkippedInGap { first, last, count })
            }
            Resolution::MovedOutOfGap => {
                let (last, count) = self.gap_slots(found.wall, found.at);
                Some(DstNote::MovedOutOfGap {
                    first: found.wall,
                    last,
                    count,
                    runs_at: local(found.at),
                })
            }
            Resolution::FirstPassOnly => Some(DstNote::RunsOnceAtFirstPass { wall: found.wall }),
            Resolution::FirstOfTwoPasses | Resolution::SecondOfTwoPasses => {
                match self.timezone.from_local_datetime(&found.wall) {
                    LocalResult::Ambiguous(a, b) => Some(DstNote::RunsInBothPasses {
                        first: a.min(b),
                        second: a.max(b),
                    }),
                    _ => None,
                }
            }
        }
    }

    /// The last slot and the number of slots of the gap that starts at slot `first` and ends at
    /// the instant `end`.
    fn gap_slots(&self, first: NaiveDateTime, end: DateTime<Utc>) -> (NaiveDateTime, usize) {
        let (mut last, mut count) = (first, 1);
        let Some(end_wall) = self.wall_clock(end) else {
            return (last, count);
        };
        let mut cursor = first;
        while count < MAX_CANDIDATES {
            let Some(next) = cursor
                .checked_add_signed(chrono::TimeDelta::seconds(1))
                .and_then(|from| self.next_candidate(from, end_wall.date()))
                .filter(|next| *next < end_wall)
            else {
                break;
            };
            (last, count, cursor) = (next, count + 1, next);
        }
        (last, count)
    }
}

/// `02:30`, or `02:30:15` when any of the times shown has seconds.
fn clock(time: NaiveDateTime, seconds: bool) -> String {
    let format = if seconds { "%H:%M:%S" } else { "%H:%M" };
    time.format(format).to_string()
}

/// "02:30 does not exist on 2027-03-14", or for several slots "02:00 and 02:30 do not exist…"
/// and "4 slots from 02:00 to 02:45 do not exist…".
fn missing(first: NaiveDateTime, last: NaiveDateTime, count: usize) -> String {
    let seconds = first.second() != 0 || last.second() != 0;
    let same_day = first.date() == last.date();
    let at = |time: NaiveDateTime| {
        if same_day {
            clock(time, seconds)
        } else {
            format!("{} {}", time.date(), clock(time, seconds))
        }
    };
    let on = if same_day {
        format!(" on {}", first.date())
    } else {
        String::new()
    };
    match count {
        0 | 1 => format!("{} does not exist{on}", at(first)),
        2 => format!("{} and {} do not exist{on}", at(first), at(last)),
        _ => format!(
            "{count} slots from {} to {} do not exist{on}",
            at(first),
            at(last)
        ),
    }
}

impl fmt::Display for DstNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DstNote::MovedOutOfGap {
                first,
                last,
                count,
                runs_at,
            } => {
                let runs = if *count > 1 {
                    "run once, at"
                } else {
                    "runs at"
                };
                let seconds = runs_at.second() != 0 || first.second() != 0;
                let at = clock(runs_at.naive_local(), seconds);
                write!(
                    f,
                    "{}: {runs} {at} {}",
                    missing(*first, *last, *count),
                    runs_at.format("%Z")
                )
            }
            DstNote::SkippedInGap { first, last, count } => {
                write!(
                    f,
                    "{}: skipped, wildcard job",
                    missing(*first, *last, *count)
                )
            }
            DstNote::RunsOnceAtFirstPass { wall } => write!(
                f,
                "{} repeats on {}: runs once, at the first pass",
                clock(*wall, wall.second() != 0),
                wall.date()
            ),
            DstNote::RunsInBothPasses { first, second } => {
                let seconds = first.second() != 0;
                write!(
                    f,
                    "{} {} and {} {} both run: wildcard job",
                    clock(first.naive_local(), seconds),
                    first.format("%Z"),
                    clock(second.naive_local(), seconds),
                    second.format("%Z")
                )
            }
        }
    }
}

/// One line of the preview: UTC, the local time with its zone and offset, and the note.
impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}  {}",
            crate::time::iso(self.at),
            self.local.format("%Y-%m-%d %H:%M:%S %Z (%:z)")
        )?;
        match &self.note {
            Some(note) => write!(f, "  {note}"),
            None => Ok(()),
        }
    }
}

impl Serialize for Slot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut object = serializer.serialize_struct("Slot", 4)?;
        object.serialize_field("utc", &crate::time::iso(self.at))?;
        object.serialize_field(
            "local",
            &self
                .local
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
        )?;
        object.serialize_field("zone", &self.local.format("%Z").to_string())?;
        object.serialize_field("note", &self.note.as_ref().map(ToString::to_string))?;
        object.end()
    }
}
