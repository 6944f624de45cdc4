//! A job's scheduling policies as pure functions: the deterministic jitter offset of a slot and
//! the instant the slot is due (slot + offset), and the misfire grace that applies to the job.
//! The claim, the scheduler's wake, the `JobRunActor`'s wait and the lateness measures all read
//! them from here, so every instance and every restart agrees on them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::prelude::*;
use uuid::Uuid;

use crate::time::plus;

/// The offset in `[0, jitter_ms)` by which the slot `slot` of job `job_id` starts late. A hash of
/// the job id and the slot (to the millisecond): the same on every instance and after every
/// restart, different from slot to slot and from job to job. No jitter (`None`, 0 or negative)
/// is no offset.
pub fn jitter_offset(job_id: Uuid, slot: DateTime<Utc>, jitter_ms: Option<i64>) -> Duration {
    let Some(jitter) = jitter_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .filter(|ms| *ms > 0)
    else {
        return Duration::ZERO;
    };
    let id = job_id.as_u128();
    // Two's complement keeps instants before 1970 distinct too.
    let millis = slot.timestamp_millis() as u64;
    let hash = mix(mix(mix(id as u64) ^ (id >> 64) as u64) ^ millis);
    Duration::from_millis(hash % jitter)
}

/// Why a job's jitter window cannot be kept with its schedule, or `None`: a window longer than
/// the time between two of its slots lets a slot start after the next one (offsets are below
/// the window, so one as long as the gap still keeps the slots in order) (an every-second job
/// with a day of jitter starts at random instants a day apart, its pointer on a slot long past).
/// Looks at the next 1,000 slots after `now`, at most a year of them: a day's jitter (the
/// longest) against a schedule's gaps, those of its daylight-saving days included.
pub fn jitter_too_long(
    expression: &str,
    schedule: &crate::cron::Schedule,
    jitter_ms: Option<u64>,
    now: DateTime<Utc>,
) -> Option<String> {
    let jitter = jitter_ms.filter(|ms| *ms > 0)?;
    let horizon = now + chrono::TimeDelta::days(366);
    let mut previous = schedule.next_after(now)?;
    for _ in 0..1_000 {
        let next = schedule.next_after(previous)?;
        if next > horizon {
            return None;
        }
        let gap = u64::try_from((next - previous).num_milliseconds()).unwrap_or(0);
        if gap < jitter {
            return Some(format!(
                "jitterMs ({jitter}) must be at most the time between two slots of {:?}: \
                 {} passes from {} to {}, so a slot could start after the next one",
                expression.trim(),
                crate::config::HumanDuration(Duration::from_millis(gap)),
                crate::time::iso(previous),
                crate::time::iso(next)
            ));
        }
        previous = next;
    }
    None
}

/// When the slot `slot` of `job` is due: the slot plus its jitter offset.
pub fn due_at(job: &PluginJobModel, slot: DateTime<Utc>) -> DateTime<Utc> {
    plus(slot, jitter_offset(job.id, slot, job.jitter_ms))
}

/// How late a slot of `job` may start before it is a misfire: the job's own `misfireGraceMs`,
/// else the server's.
pub fn misfire_grace(job: &PluginJobModel, server: Duration) -> Duration {
    job.misfire_grace_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(server, Duration::from_millis)
}

/// splitmix64's finaliser: every input bit moves every output bit, so neighbouring slots and
/// job ids that differ in one bit get unrelated offsets.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn no_jitter_is_no_offset() {
        let job = Uuid::now_v7();
        let slot = at("2024-01-15T10:00:00Z");
        assert_eq!(jitter_offset(job, slot, None), Duration::ZERO);
        assert_eq!(jitter_offset(job, slot, Some(0)), Duration::ZERO);
        assert_eq!(jitter_offset(job, slot, Some(-5)), Duration::ZERO);
        assert_eq!(jitter_offset(job, slot, Some(1)), Duration::ZERO);
    }

    #[test]
    fn a_jitter_as_long_as_the_gap_between_two_slots_is_refused_naming_the_gap() {
        let now = at("2026-12-03T19:10:00Z");
        let check = |expression: &str, timezone: &str, jitter_ms: Option<u64>| {
            let schedule = crate::cron::Schedule::parse(expression, timezone).expect("schedule");
            jitter_too_long(expression, &schedule, jitter_ms, now)
        };
        assert_eq!(
            check("* * * * * *", "UTC", Some(86_400_000)).as_deref(),
            Some(
                "jitterMs (86400000) must be at most the time between two slots of \
                 \"* * * * * *\": 1s passes from 2026-12-03T19:10:01.000Z to \
                 2026-12-03T19:10:02.000Z, so a slot could start after the next one"
            )
        );
        assert!(check("* * * * * *", "UTC", Some(1_001)).is_some());
        assert_eq!(check("* * * * * *", "UTC", Some(1_000)), None);
        assert!(check("0 * * * *", "UTC", Some(3_600_001)).is_some());
        assert_eq!(check("0 * * * *", "UTC", Some(3_600_000)), None);
        assert_eq!(check("0 0 * * *", "UTC", Some(86_400_000)), None);
        // The short gap of an uneven list, hours after the first slot.
        assert!(check("0 9,10 * * *", "UTC", Some(3_600_001)).is_some());
        // A daily job's day of jitter is longer than the 23 hours of a spring-forward day.
        let spring = check("0 1 * * *", "Europe/Paris", Some(86_400_000)).expect("refused");
        assert!(
            spring.contains("23h passes from 2027-03-28T00:00:00.000Z"),
            "{spring}"
        );
        assert_eq!(check("0 1 * * *", "Europe/Paris", Some(82_800_000)), None);
        assert_eq!(check("* * * * * *", "UTC", None), None);
        assert_eq!(check("* * * * * *", "UTC", Some(0)), None);
    }

    #[test]
    fn the_offset_is_stable_and_below_the_jitter() {
        let job = Uuid::parse_str("0190f0a2-1c2b-7d3e-8f40-123456789abc").expect("uuid");
        let slot = at("2024-01-15T10:00:00Z");
        let first = jitter_offset(job, slot, Some(60_000));
        assert_eq!(first, jitter_offset(job, slot, Some(60_000)));
        // Pinned: a change of the hash would move every job's start on upgrade.
        assert_eq!(first, Duration::from_millis(7_983));
        for minute in 0..500 {
            let slot = plus(slot, Duration::from_secs(60 * minute));
            assert!(jitter_offset(job, slot, Some(60_000)) < Duration::from_millis(60_000));
        }
    }

    #[test]
    fn offsets_spread_over_the_window_across_slots_and_jobs() {
        let slot = at("2024-01-15T10:00:00Z");
        let mut buckets = [0u32; 10];
        for n in 0..2_000u64 {
            let job = Uuid::from_u128(0x0190_f0a2_0000_7000_8000_0000_0000_0000 + u128::from(n));
            let slot = plus(slot, Duration::from_secs(60 * (n % 7)));
            let offset = jitter_offset(job, slot, Some(10_000)).as_millis() as usize;
            buckets[offset / 1_000] += 1;
        }
        // 200 expected per bucket; a hash that clusters would leave some nearly empty.
        assert!(
            buckets.iter().all(|count| (120..=280).contains(count)),
            "{buckets:?}"
        );
        let job = Uuid::now_v7();
        let offsets: std::collections::HashSet<Duration> = (0..50)
            .map(|minute| {
                jitter_offset(
                    job,
                    plus(slot, Duration::from_secs(60 * minute)),
                    Some(3_600_000),
                )
            })
            .collect();
        assert!(offsets.len() > 45, "slots of one job get different offsets");
    }

    #[test]
    fn a_job_grace_overrides_the_server_grace() {
        let mut job = PluginJobModel {
            id: Uuid::now_v7(),
            plugin_id: "p".to_owned(),
            job_key: "k".to_owned(),
            display_name: String::new(),
            description: String::new(),
            schedule: "* * * * *".to_owned(),
            timezone: "UTC".to_owned(),
            status: JobStatus::Active,
            timeout_ms: None,
            misfire: MisfirePolicy::Skip,
            last_error: None,
            blocked_until: None,
            last_run_at: None,
            next_run_at: None,
            pause_after_failures: None,
            consecutive_failures: 0,
            unrecovered_failures: 0,
            pruned_through: None,
            paused_at: None,
            failing: false,
            last_success_at: None,
            paused_reason: None,
            created_at: at("2024-01-15T00:00:00Z"),
            updated_at: at("2024-01-15T00:00:00Z"),
            retry_max_attempts: 1,
            retry_backoff_ms: None,
            retry_max_backoff_ms: None,
            origin: JobOrigin::Manifest,
            payload: None,
            overlap: OverlapPolicy::Skip,
            jitter_ms: Some(1_000),
            misfire_grace_ms: None,
        };
        let server = Duration::from_secs(60);
        assert_eq!(misfire_grace(&job, server), server);
        job.misfire_grace_ms = Some(5_000);
        assert_eq!(misfire_grace(&job, server), Duration::from_secs(5));
        let slot = at("2024-01-15T10:00:00Z");
        let due = due_at(&job, slot);
        assert!(due >= slot && due < plus(slot, Duration::from_secs(1)));
    }
}
