//! The API's JSON as far as the client's text reads it (typed views, so a changed field is a
//! clear error rather than a blank cell), and the text itself: the jobs and runs tables and
//! the detail of one run. Pure: the commands fetch, these render at a given "now".

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::format::{Table, clean, duration_ms, fields, instant, relative, truncate};

/// Longest error shown in a table cell; `plugin-jobs run` shows it whole.
const ERROR_WIDTH: usize = 60;
/// Widest schedule shown in the jobs table (`--json` has it whole).
const SCHEDULE_WIDTH: usize = 40;

/// A job object (with `lastRun` when it comes from `GET /api/jobs`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: String,
    pub plugin_id: String,
    pub job_key: String,
    pub schedule: String,
    pub timezone: String,
    pub status: String,
    pub last_error: Option<String>,
    pub blocked_until: Option<DateTime<Utc>>,
    pub next_run_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_run: Option<RunSummary>,
    /// Why the job was paused automatically (none for an operator's pause).
    #[serde(default)]
    pub paused_reason: Option<String>,
    /// Its last run to reach an outcome failed (or it is `failed` itself).
    #[serde(default)]
    pub failing: bool,
}

impl Job {
    /// `plugin/key`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.plugin_id, self.job_key)
    }
}

/// A job's `lastRun`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    pub status: String,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run object.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    pub job_id: String,
    pub plugin_id: String,
    pub trigger: String,
    pub status: String,
    pub scheduled_for: DateTime<Utc>,
    #[serde(default)]
    pub instance_id: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    #[serde(default)]
    pub logs: Vec<LogLine>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// 1 for a slot's first run, 2 for its first retry, …
    #[serde(default)]
    pub attempt: Option<i32>,
    /// For a retry: the slot's first run.
    #[serde(default)]
    pub retry_of: Option<String>,
}

impl Run {
    /// The trigger, with the attempt when the run is a retry: `retry #3`.
    fn trigger_text(&self) -> String {
        match self.attempt {
            Some(attempt) if attempt > 1 => format!("{} #{attempt}", self.trigger),
            _ => self.trigger.clone(),
        }
    }
}

/// One of a run's `logs`.
#[derive(Debug, Deserialize)]
pub struct LogLine {
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The answer to a trigger.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Triggered {
    pub run_id: String,
}

/// The jobs table. `workers` maps each plugin to its worker's status on the server asked
/// (`/api/plugins`): an active job whose worker does not run there says so, since that server
/// does not start its slots.
pub fn render_jobs(
    jobs: &[Job],
    workers: &std::collections::HashMap<String, String>,
    now: DateTime<Utc>,
) -> String {
    if jobs.is_empty() {
        return "No jobs.\n".to_owned();
    }
    let mut table = Table::new(&[
        "JOB", "STATUS", "SCHEDULE", "TZ", "NEXT", "LAST RUN", "NOTE",
    ]);
    for job in jobs {
        let schedule = if job.schedule.is_empty() {
            "manual".to_owned()
        } else {
            truncate(&clean(&job.schedule), SCHEDULE_WIDTH)
        };
        let next = match job.next_run_at {
            Some(next) if job.status == "active" && !job.schedule.is_empty() => relative(next, now),
            _ => "-".to_owned(),
        };
        let last = job.last_run.as_ref().map_or_else(
            || "-".to_owned(),
            |run| {
                let when = run
                    .finished_at
                    .or(run.started_at)
                    .unwrap_or(run.scheduled_for);
                format!("{} {}", run.status, relative(when, now))
            },
        );
        let note = match (&job.last_error, job.blocked_until) {
            (Some(error), _) if job.status == "failed" => truncate(&clean(error), ERROR_WIDTH),
            _ if job.status == "paused" && job.paused_reason.is_some() => truncate(
                &clean(job.paused_reason.as_deref().unwrap_or("")),
                ERROR_WIDTH,
            ),
            (_, Some(until)) if until > now => {
                format!(
                    // The block is lifted as soon as the worker lets go of the call (it answers,
                    // or is restarted after the cancel grace); `blockedUntil` is the latest.
                    "blocked until its worker lets go of a timed-out or cancelled run, at the \
                     latest {}",
                    relative(until, now)
                )
            }
            _ => match workers.get(&job.plugin_id).map(String::as_str) {
                Some(status) if job.status == "active" && status != "running" => {
                    format!("worker {status}: its runs wait for it")
                }
                _ if job.status == "active"
                    && !job.schedule.is_empty()
                    && job.next_run_at.is_none() =>
                {
                    "never fires again: its schedule has no slot left".to_owned()
                }
                // The last run shown is live or cancelled: say that the outcome before it
                // failed.
                _ if job.failing
                    && job
                        .last_run
                        .as_ref()
                        .is_some_and(|run| run.status != "failed") =>
                {
                    "failing: its last run to finish failed".to_owned()
                }
                _ => String::new(),
            },
        };
        table.row(vec![
            job.name(),
            job.status.clone(),
            schedule,
            job.timezone.clone(),
            next,
            last,
            note,
        ]);
    }
    table.render()
}

/// A job's state after `pause` or `resume`, with its next slot when it is active.
pub fn render_job_state(job: &Job, now: DateTime<Utc>) -> String {
    let next = match job.next_run_at {
        Some(next) if job.status == "active" => format!("; next slot {}", instant(Some(next), now)),
        _ => String::new(),
    };
    format!("{} is {}{next}\n", job.name(), job.status)
}

/// The runs table; `names` maps job ids to `plugin/key`.
pub fn render_runs(runs: &[Run], names: &HashMap<String, String>, now: DateTime<Utc>) -> String {
    if runs.is_empty() {
        return "No runs.\n".to_owned();
    }
    let mut table = Table::new(&[
        "RUN",
        "JOB",
        "TRIGGER",
        "STATUS",
        "SCHEDULED",
        "DURATION",
        "ERROR",
    ]);
    for run in runs {
        let name = names
            .get(&run.job_id)
            .cloned()
            .unwrap_or_else(|| format!("{}/{}", run.plugin_id, run.job_id));
        table.row(vec![
            run.id.clone(),
            name,
            run.trigger_text(),
            run.status.clone(),
            relative(run.scheduled_for, now),
            run.duration_ms.map_or_else(|| "-".to_owned(), duration_ms),
            run.error
                .as_deref()
                .map(|error| truncate(&clean(error), ERROR_WIDTH))
                .unwrap_or_default(),
        ]);
    }
    table.render()
}

/// One run: its fields, then its log lines.
pub fn render_run(run: &Run, name: &str, now: DateTime<Utc>) -> String {
    let late = match (run.trigger.as_str(), run.started_at) {
        ("schedule", Some(started)) => {
            let ms = started
                .signed_duration_since(run.scheduled_for)
                .num_milliseconds();
            format!(", {} after its slot", duration_ms(ms))
        }
        _ => String::new(),
    };
    let mut out = fields(&[
        ("Run", run.id.clone()),
        ("Job", name.to_owned()),
        ("Status", run.status.clone()),
        ("Trigger", run.trigger.clone()),
        (
            "Attempt",
            match (&run.attempt, &run.retry_of) {
                (Some(attempt), Some(first)) => format!("{attempt} (retry of run {first})"),
                (Some(attempt), None) => attempt.to_string(),
                (None, _) => "-".to_owned(),
            },
        ),
        ("Scheduled", instant(Some(run.scheduled_for), now)),
        ("Started", format!("{}{late}", instant(run.started_at, now))),
        ("Finished", instant(run.finished_at, now)),
        (
            "Duration",
            run.duration_ms.map_or_else(|| "-".to_owned(), duration_ms),
        ),
        (
            "Instance",
            run.instance_id.clone().unwrap_or_else(|| "-".to_owned()),
        ),
        ("Error", run.error.clone().unwrap_or_else(|| "-".to_owned())),
    ]);
    if run.logs.is_empty() {
        out.push_str("\nNo log lines.\n");
        return out;
    }
    out.push_str(&format!("\nLogs ({}):\n", run.logs.len()));
    let mut logs = Table::new(&["TIME", "LEVEL", "MESSAGE"]);
    for line in &run.logs {
        logs.row(vec![
            line.at
                .map_or_else(|| "-".to_owned(), plugin_jobs::time::iso),
            line.level.clone().unwrap_or_default(),
            line.message.clone().unwrap_or_default(),
        ]);
    }
    out.push_str(&logs.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().expect("instant")
    }

    #[test]
    fn the_jobs_table_shows_next_slot_last_run_and_why_a_job_failed() {
        let jobs: Vec<Job> = serde_json::from_value(json!([
            {"id": "1", "pluginId": "demo", "jobKey": "heartbeat", "schedule": "*/5 * * * * *",
             "timezone": "UTC", "status": "active", "lastError": null, "blockedUntil": null,
             "nextRunAt": "2026-03-01T12:00:03.000Z",
             "lastRun": {"status": "succeeded", "scheduledFor": "2026-03-01T11:59:58.000Z",
                         "startedAt": "2026-03-01T11:59:58.001Z",
                         "finishedAt": "2026-03-01T11:59:58.002Z"}},
            {"id": "2", "pluginId": "demo", "jobKey": "broken", "schedule": "99 * * * *",
             "timezone": "Europe/Paris", "status": "failed",
             "lastError": "minute value 99 out of range", "blockedUntil": null,
             "nextRunAt": null, "lastRun": null},
            {"id": "3", "pluginId": "demo", "jobKey": "slow", "schedule": "", "timezone": "UTC",
             "status": "active", "lastError": null, "blockedUntil": "2026-03-01T12:00:20.000Z",
             "nextRunAt": null,
             "lastRun": {"status": "failed", "scheduledFor": "2026-03-01T11:58:00.000Z",
                         "startedAt": "2026-03-01T11:58:00.000Z", "finishedAt": null}},
            {"id": "4", "pluginId": "down", "jobKey": "tick", "schedule": "* * * * *",
             "timezone": "UTC", "status": "active", "lastError": null, "blockedUntil": null,
             "nextRunAt": "2026-03-01T11:59:00.000Z", "lastRun": null},
            {"id": "5", "pluginId": "demo", "jobKey": "sync", "schedule": "0 * * * *",
             "timezone": "UTC", "status": "paused", "lastError": null, "blockedUntil": null,
             "nextRunAt": null, "lastRun": null,
             "pausedReason": "paused after 3 consecutive failures; last error: boom"},
            {"id": "6", "pluginId": "demo", "jobKey": "flaky", "schedule": "* * * * *",
             "timezone": "UTC", "status": "active", "lastError": null, "blockedUntil": null,
             "nextRunAt": "2026-03-01T12:00:00.000Z", "failing": true,
             "lastRun": {"status": "running", "scheduledFor": "2026-03-01T11:59:00.000Z",
                         "startedAt": "2026-03-01T11:59:00.001Z", "finishedAt": null}},
            {"id": "7", "pluginId": "demo", "jobKey": "fails", "schedule": "* * * * *",
             "timezone": "UTC", "status": "active", "lastError": null, "blockedUntil": null,
             "nextRunAt": "2026-03-01T12:00:00.000Z", "failing": true,
             "lastRun": {"status": "failed", "scheduledFor": "2026-03-01T11:59:00.000Z",
                         "startedAt": "2026-03-01T11:59:00.001Z",
                         "finishedAt": "2026-03-01T11:59:00.500Z"}}
        ]))
        .expect("jobs");
        let workers = [("demo", "running"), ("down", "restarting")]
            .map(|(plugin, status)| (plugin.to_owned(), status.to_owned()))
            .into();
        assert_eq!(
            render_jobs(&jobs, &workers, now()),
            "JOB             STATUS  SCHEDULE       TZ            NEXT    LAST RUN          NOTE\n\
             demo/heartbeat  active  */5 * * * * *  UTC           in 3s   succeeded 1s ago\n\
             demo/broken     failed  99 * * * *     Europe/Paris  -       -                 \
             minute value 99 out of range\n\
             demo/slow       active  manual         UTC           -       failed 2m ago     \
             blocked until its worker lets go of a timed-out or cancelled run, at the latest in \
             20s\n\
             down/tick       active  * * * * *      UTC           1m ago  -                 \
             worker restarting: its runs wait for it\n\
             demo/sync       paused  0 * * * *      UTC           -       -                 \
             paused after 3 consecutive failures; last error: boom\n\
             demo/flaky      active  * * * * *      UTC           now     running 59s ago   \
             failing: its last run to finish failed\n\
             demo/fails      active  * * * * *      UTC           now     failed 59s ago\n"
        );
    }

    #[test]
    fn a_run_shows_its_lateness_error_and_logs() {
        let run: Run = serde_json::from_value(json!({
            "id": "r1", "jobId": "j1", "pluginId": "demo", "trigger": "schedule",
            "status": "failed", "scheduledFor": "2026-03-01T11:59:00.000Z",
            "instanceId": "host-1", "durationMs": 1500, "error": "boom",
            "logs": [{"at": "2026-03-01T11:59:00.010Z", "level": "info", "message": "start"}],
            "startedAt": "2026-03-01T11:59:00.004Z", "finishedAt": "2026-03-01T11:59:01.504Z",
            "createdAt": "2026-03-01T11:58:59.750Z"
        }))
        .expect("run");
        let text = render_run(&run, "demo/report", now());
        assert!(
            text.starts_with("Run:        r1\nJob:        demo/report\n"),
            "{text}"
        );
        assert!(
            text.contains("Started:    2026-03-01T11:59:00.004Z (59s ago), 4ms after its slot\n"),
            "{text}"
        );
        assert!(text.contains("Duration:   1.5s\n"), "{text}");
        assert!(text.contains("Attempt:    -\n"), "{text}");
        assert!(text.contains("Error:      boom\n"), "{text}");
        assert!(text.contains("Logs (1):\nTIME"), "{text}");
        assert!(
            text.contains("2026-03-01T11:59:00.010Z  info   start\n"),
            "{text}"
        );
        let retry: Run = serde_json::from_value(json!({
            "id": "r3", "jobId": "j1", "pluginId": "demo", "trigger": "retry",
            "status": "succeeded", "scheduledFor": "2026-03-01T11:59:00.000Z",
            "durationMs": 3, "error": null, "startedAt": null, "finishedAt": null,
            "attempt": 3, "retryOf": "r1"
        }))
        .expect("retry");
        let text = render_run(&retry, "demo/report", now());
        assert!(text.contains("Attempt:    3 (retry of run r1)\n"), "{text}");
        let names = HashMap::from([("j1".to_owned(), "demo/report".to_owned())]);
        let table = render_runs(&[retry], &names, now());
        assert!(table.contains("  retry #3  "), "{table}");
    }
}
