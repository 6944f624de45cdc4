//! The scheduler's settings, each with a named default (DESIGN §4), and the parser for human
//! durations such as `30s`, `5m` or `1h30m` used by the command line and the environment.

use std::time::Duration;

/// Default interval between timer `Tick`s.
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_secs(1);
/// Default cap on live runs (scheduled and manual) of one instance.
pub const DEFAULT_MAX_CONCURRENT_RUNS: usize = 10;
/// Default timeout of a run whose job sets none.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default age past which a missed slot is a misfire (then the job's misfire policy decides).
pub const DEFAULT_MISFIRE_GRACE: Duration = Duration::from_secs(60);
/// Default wait for a timed-out call to answer before its worker is restarted.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(30);
/// Default interval between heartbeats of an instance's live runs.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Default age of a heartbeat past which a live run counts as abandoned.
pub const DEFAULT_RUN_LEASE: Duration = Duration::from_secs(30);
/// Default interval between maintenance passes (rescue and prune).
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(10);
/// Default number of runs kept per job.
pub const DEFAULT_KEEP_RUNS_PER_JOB: u64 = 1_000;
/// Default age past which finished runs are pruned.
pub const DEFAULT_RUN_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default lead with which slots are claimed before they are due, so their runs are created
/// and waiting when the slot comes and start within a few milliseconds of it.
pub const DEFAULT_CLAIM_LOOKAHEAD: Duration = Duration::from_millis(250);
/// Default time live runs get to finish at shutdown before they are cancelled.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything the scheduler can be tuned with. `SchedulerConfig::default()` gives the
/// defaults above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    pub tick_interval: Duration,
    pub max_concurrent_runs: usize,
    pub job_timeout: Duration,
    pub misfire_grace: Duration,
    pub cancel_grace: Duration,
    pub heartbeat_interval: Duration,
    pub run_lease: Duration,
    pub maintenance_interval: Duration,
    pub keep_runs_per_job: u64,
    pub run_retention: Duration,
    pub shutdown_grace: Duration,
    /// How long before its slot a job is claimed; its run then waits `queued` for the slot.
    /// Zero claims only what is due. Keep it well under `tick_interval`.
    pub claim_lookahead: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            tick_interval: DEFAULT_TICK_INTERVAL,
            max_concurrent_runs: DEFAULT_MAX_CONCURRENT_RUNS,
            job_timeout: DEFAULT_JOB_TIMEOUT,
            misfire_grace: DEFAULT_MISFIRE_GRACE,
            cancel_grace: DEFAULT_CANCEL_GRACE,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            run_lease: DEFAULT_RUN_LEASE,
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
            keep_runs_per_job: DEFAULT_KEEP_RUNS_PER_JOB,
            run_retention: DEFAULT_RUN_RETENTION,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            claim_lookahead: DEFAULT_CLAIM_LOOKAHEAD,
        }
    }
}

/// Parses a duration written as one or more `<number><unit>` parts (`ms`, `s`, `m`, `h`, `d`),
/// such as `250ms`, `30s`, `5m` or `1h30m`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration (expected e.g. 30s, 5m, 1h30m)".to_owned());
    }
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number at {rest:?}"
            ));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3_600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit after {value} (use ms, s, m, h or d)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h or d)"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_units_and_combinations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn bad_durations_name_what_is_wrong() {
        let unit = parse_duration("5x").expect_err("unknown unit");
        assert!(unit.contains("unknown unit \"x\""), "{unit}");
        let empty = parse_duration("").expect_err("empty");
        assert!(empty.contains("empty"), "{empty}");
        let number = parse_duration("m5").expect_err("no number");
        assert!(number.contains("expected a number"), "{number}");
        let missing = parse_duration("1h30").expect_err("missing unit");
        assert!(missing.contains("missing unit"), "{missing}");
    }

    #[test]
    fn defaults_match_the_design() {
        let config = SchedulerConfig::default();
        assert_eq!(config.tick_interval, Duration::from_secs(1));
        assert_eq!(config.max_concurrent_runs, 10);
        assert_eq!(config.job_timeout, Duration::from_secs(300));
        assert_eq!(config.misfire_grace, Duration::from_secs(60));
        assert_eq!(config.cancel_grace, Duration::from_secs(30));
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.run_lease, Duration::from_secs(30));
        assert_eq!(config.keep_runs_per_job, 1_000);
        assert_eq!(config.run_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    }
}
