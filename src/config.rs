//! The scheduler's settings, each with a named default (DESIGN §4), the one function that
//! checks them ([`SchedulerConfig::validate`]), and the parser and formatter for human durations
//! such as `30s`, `5m` or `1h30m` used by the command line and the environment.

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

/// Longest duration any setting accepts: 100 years. Every timestamp the scheduler computes
/// from a setting stays far inside what dates can hold, so no date arithmetic can overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// Most live runs one instance may be asked to hold.
pub const MAX_CONCURRENT_RUNS: usize = 1_000_000;
/// Most runs kept per job.
pub const MAX_KEEP_RUNS_PER_JOB: u64 = 100_000_000;

/// A setting of [`SchedulerConfig`], named as the builder and as the command line know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    TickInterval,
    MaxConcurrentRuns,
    JobTimeout,
    MisfireGrace,
    CancelGrace,
    HeartbeatInterval,
    RunLease,
    MaintenanceInterval,
    KeepRunsPerJob,
    RunRetention,
    ShutdownGrace,
    ClaimLookahead,
}

impl Setting {
    /// The field of [`SchedulerConfig`].
    pub fn field(self) -> &'static str {
        match self {
            Self::TickInterval => "tick_interval",
            Self::MaxConcurrentRuns => "max_concurrent_runs",
            Self::JobTimeout => "job_timeout",
            Self::MisfireGrace => "misfire_grace",
            Self::CancelGrace => "cancel_grace",
            Self::HeartbeatInterval => "heartbeat_interval",
            Self::RunLease => "run_lease",
            Self::MaintenanceInterval => "maintenance_interval",
            Self::KeepRunsPerJob => "keep_runs_per_job",
            Self::RunRetention => "run_retention",
            Self::ShutdownGrace => "shutdown_grace",
            Self::ClaimLookahead => "claim_lookahead",
        }
    }

    /// The `plugin-jobs serve` flag (also `PLUGIN_JOBS_<FLAG>` in the environment).
    pub fn flag(self) -> &'static str {
        match self {
            Self::TickInterval => "--tick-interval",
            Self::MaxConcurrentRuns => "--max-concurrent",
            Self::JobTimeout => "--job-timeout",
            Self::MisfireGrace => "--misfire-grace",
            Self::CancelGrace => "--cancel-grace",
            Self::HeartbeatInterval => "--heartbeat-interval",
            Self::RunLease => "--run-lease",
            Self::MaintenanceInterval => "--maintenance-interval",
            Self::KeepRunsPerJob => "--keep-runs-per-job",
            Self::RunRetention => "--run-retention",
            Self::ShutdownGrace => "--shutdown-grace",
            Self::ClaimLookahead => "--claim-lookahead",
        }
    }
}

/// A setting that breaks one of the rules of [`SchedulerConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({}): {rule}", .setting.flag(), .setting.field())]
pub struct ConfigError {
    pub setting: Setting,
    /// The rule and the value that broke it, e.g. `must be more than 0 (got 0ms)`.
    pub rule: String,
}

impl SchedulerConfig {
    /// Checks every setting, and the settings against each other. The one place these rules
    /// live: the builder and the command line both call it.
    ///
    /// - intervals (tick, heartbeat, maintenance) are more than 0;
    /// - `job_timeout` is at least 1 ms; `run_retention` at least 1 s;
    /// - `max_concurrent_runs` and `keep_runs_per_job` are at least 1;
    /// - no duration exceeds [`MAX_DURATION`] (100 years);
    /// - `run_lease` is more than twice `heartbeat_interval` (else an instance rescues its own
    ///   live runs between two heartbeats);
    /// - `claim_lookahead` is less than `tick_interval`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        use Setting::*;
        let durations = [
            (TickInterval, self.tick_interval),
            (JobTimeout, self.job_timeout),
            (MisfireGrace, self.misfire_grace),
            (CancelGrace, self.cancel_grace),
            (HeartbeatInterval, self.heartbeat_interval),
            (RunLease, self.run_lease),
            (MaintenanceInterval, self.maintenance_interval),
            (RunRetention, self.run_retention),
            (ShutdownGrace, self.shutdown_grace),
            (ClaimLookahead, self.claim_lookahead),
        ];
        for (setting, value) in durations {
            if value > MAX_DURATION {
                return Err(broken(
                    setting,
                    format!(
                        "must be at most {} (got {})",
                        format_duration(MAX_DURATION),
                        format_duration(value)
                    ),
                ));
            }
        }
        for (setting, value) in [
            (TickInterval, self.tick_interval),
            (HeartbeatInterval, self.heartbeat_interval),
            (MaintenanceInterval, self.maintenance_interval),
        ] {
            if value.is_zero() {
                return Err(broken(setting, "must be more than 0 (got 0ms)".to_owned()));
            }
        }
        at_least(JobTimeout, self.job_timeout, Duration::from_millis(1))?;
        at_least(RunRetention, self.run_retention, Duration::from_secs(1))?;
        if !(1..=MAX_CONCURRENT_RUNS).contains(&self.max_concurrent_runs) {
            return Err(broken(
                MaxConcurrentRuns,
                format!(
                    "must be between 1 and {MAX_CONCURRENT_RUNS} (got {})",
                    self.max_concurrent_runs
                ),
            ));
        }
        if !(1..=MAX_KEEP_RUNS_PER_JOB).contains(&self.keep_runs_per_job) {
            return Err(broken(
                KeepRunsPerJob,
                format!(
                    "must be between 1 and {MAX_KEEP_RUNS_PER_JOB} (got {})",
                    self.keep_runs_per_job
                ),
            ));
        }
        let twice_heartbeat = self.heartbeat_interval.saturating_mul(2);
        if self.run_lease <= twice_heartbeat {
            return Err(broken(
                RunLease,
                format!(
                    "must be more than twice --heartbeat-interval ({}), else live runs are \
                     rescued between two heartbeats (got {})",
                    format_duration(twice_heartbeat),
                    format_duration(self.run_lease)
                ),
            ));
        }
        if self.claim_lookahead >= self.tick_interval {
            return Err(broken(
                ClaimLookahead,
                format!(
                    "must be less than --tick-interval ({}) (got {})",
                    format_duration(self.tick_interval),
                    format_duration(self.claim_lookahead)
                ),
            ));
        }
        Ok(())
    }
}

fn broken(setting: Setting, rule: String) -> ConfigError {
    ConfigError { setting, rule }
}

fn at_least(setting: Setting, value: Duration, min: Duration) -> Result<(), ConfigError> {
    if value < min {
        return Err(broken(
            setting,
            format!(
                "must be at least {} (got {})",
                format_duration(min),
                format_duration(value)
            ),
        ));
    }
    Ok(())
}

/// A duration as [`parse_duration`] reads it back, in whole units: `250ms`, `30s`, `5m`,
/// `1h30m`, `30d`.
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = d.as_millis();
    if rest == 0 {
        return "0ms".to_owned();
    }
    let mut text = String::new();
    for (unit, millis) in UNITS {
        if rest >= millis {
            text.push_str(&format!("{}{unit}", rest / millis));
            rest %= millis;
        }
    }
    text
}

/// A duration setting on the command line: parsed by [`parse_duration`], shown by
/// [`format_duration`] (so `--help` prints the defaults of this module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl std::fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text).map(Self)
    }
}

/// Parses a duration written as one or more `<number><unit>` parts (`ms`, `s`, `m`, `h`, `d`),
/// such as `250ms`, `30s`, `5m` or `1h30m`. A bare number is seconds. A duration too large to
/// hold is an error, never a silently saturated value.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration (expected e.g. 30s, 5m, 1h30m)".to_owned());
    }
    let too_large = || format!("invalid duration {text:?}: too large");
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
        let value: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let seconds_per = match unit {
            "ms" => None,
            "s" => Some(1),
            "m" => Some(60),
            "h" => Some(3_600),
            "d" => Some(86_400),
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
        let part = match seconds_per {
            None => Duration::from_millis(value),
            Some(per) => Duration::from_secs(value.checked_mul(per).ok_or_else(too_large)?),
        };
        total = total.checked_add(part).ok_or_else(too_large)?;
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
        let huge = parse_duration("99999999999999999999d").expect_err("too large");
        assert!(huge.contains("too large"), "{huge}");
        let overflow = parse_duration("999999999999999d").expect_err("overflows");
        assert!(overflow.contains("too large"), "{overflow}");
    }

    #[test]
    fn durations_format_as_they_parse() {
        for (text, millis) in [
            ("0ms", 0),
            ("250ms", 250),
            ("1s", 1_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("30d", 2_592_000_000),
            ("1d1h1m1s1ms", 90_061_001),
        ] {
            let d = Duration::from_millis(millis);
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(text), Ok(d));
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(SchedulerConfig::default().validate(), Ok(()));
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
