//! Helpers shared by the cron test files: instants from RFC 3339 text, schedules that must
//! parse, and slots as text for compact assertions.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use plugin_jobs::cron::Schedule;

pub fn utc(text: &str) -> DateTime<Utc> {
    text.parse().expect("test timestamps are valid RFC 3339")
}

/// `10:20` means 2024-01-15 at that time, UTC, as in the seed table.
pub fn on_jan_15(time: &str) -> DateTime<Utc> {
    utc(&format!("2024-01-15T{time}:00Z"))
}

pub fn schedule(expr: &str) -> Schedule {
    Schedule::parse(expr, "UTC").expect("expression is valid")
}

pub fn zoned(expr: &str, timezone: &str) -> Schedule {
    Schedule::parse(expr, timezone).expect("expression and timezone are valid")
}

pub fn next(expr: &str, after: &str) -> Option<DateTime<Utc>> {
    schedule(expr).next_after(utc(after))
}

pub fn upcoming(schedule: &Schedule, after: &str, count: usize) -> Vec<String> {
    schedule
        .upcoming(utc(after), count)
        .iter()
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect()
}

pub fn rejection(expr: &str) -> String {
    Schedule::parse(expr, "UTC")
        .expect_err("expression is rejected")
        .to_string()
}

pub fn assert_mentions(message: &str, words: &[&str]) {
    let lower = message.to_lowercase();
    for word in words {
        assert!(
            lower.contains(&word.to_lowercase()),
            "message {message:?} should mention {word:?}"
        );
    }
}
