//! The JSON shapes the API answers with, built from entity rows field by field so the wire format
//! never follows a change of the entities by accident. Timestamps are ISO 8601 with milliseconds
//! and `Z`; field names are camelCase.

use chrono::{DateTime, Utc};
use entity::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::cron::Slot;
use crate::time::iso;
use crate::worker::WorkerStatus;

fn iso_opt(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(iso)
}

/// One plugin in `GET /api/plugins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PluginView {
    pub id: String,
    pub worker_status: WorkerStatus,
    /// Why the worker last crashed, failed its handshake or was given up on, while it is not
    /// running (`null` once it runs again): what an operator needs to see a restart loop's cause
    /// without reading the host's log.
    pub worker_error: Option<String>,
    /// Jobs of the plugin in the database, whatever their status.
    pub job_count: usize,
}

/// A job object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: Uuid,
    pub plugin_id: String,
    pub job_key: String,
    pub display_name: String,
    pub description: String,
    /// Cron expression; `""` means manual only.
    pub schedule: String,
    pub timezone: String,
    /// `active`, `paused`, `failed` or `retired`.
    pub status: String,
    pub timeout_ms: Option<i64>,
    /// `fire_once` or `skip`.
    pub misfire: String,
    pub last_error: Option<String>,
    /// Set while a timed-out call has not answered: the reason a trigger answers 409.
    pub blocked_until: Option<String>,
    pub last_run_at: Option<String>,
    pub next_run_at: Option<String>,
    /// The declared auto-pause threshold; `null` means the server default.
    pub pause_after_failures: Option<i32>,
    /// Failed runs since the job last succeeded (or was resumed).
    pub consecutive_failures: i32,
    /// Whether the job is failed or failing: `failed` itself, or its last run to reach an
    /// outcome failed (a queued, running or cancelled run does not change it); never a retired
    /// job, which needs nobody's eye. What `failing=true` lists.
    pub failing: bool,
    pub last_success_at: Option<String>,
    /// Why the job was paused automatically ("paused after 5 consecutive failures; last error:
    /// …"); `null` otherwise, and cleared on resume.
    pub paused_reason: Option<String>,
    /// The retry policy: `{maxAttempts, backoffMs, maxBackoffMs}` (attempts per slot, the first
    /// included; 1 means no retry).
    pub retry: RetryView,
    /// `manifest` (declared by its plugin) or `api` (created through the API).
    pub origin: String,
    /// The JSON every run of the job gets in `runJob`; `null` for none.
    pub payload: Option<serde_json::Value>,
    /// What a due slot does while the previous run is live: `skip`, `queue_one` or
    /// `cancel_previous`.
    pub overlap: String,
    /// Each slot starts a deterministic offset in `[0, jitterMs)` after it; `null` for none.
    pub jitter_ms: Option<i64>,
    /// The job's own misfire grace; `null` means the server's.
    pub misfire_grace_ms: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// A job's retry policy, with the defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryView {
    pub max_attempts: i32,
    pub backoff_ms: i64,
    pub max_backoff_ms: i64,
}

impl From<&PluginJobModel> for RetryView {
    fn from(job: &PluginJobModel) -> Self {
        let millis = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self {
            max_attempts: job.retry_max_attempts,
            backoff_ms: job
                .retry_backoff_ms
                .unwrap_or_else(|| millis(crate::declaration::DEFAULT_BACKOFF)),
            max_backoff_ms: job
                .retry_max_backoff_ms
                .unwrap_or_else(|| millis(crate::declaration::DEFAULT_MAX_BACKOFF)),
        }
    }
}

impl From<&PluginJobModel> for JobView {
    fn from(job: &PluginJobModel) -> Self {
        Self {
            id: job.id,
            plugin_id: job.plugin_id.clone(),
            job_key: job.job_key.clone(),
            display_name: job.display_name.clone(),
            description: job.description.clone(),
            schedule: job.schedule.clone(),
            timezone: job.timezone.clone(),
            status: job.status.to_string(),
            timeout_ms: job.timeout_ms,
            misfire: job.misfire.to_string(),
            last_error: job.last_error.clone(),
            blocked_until: iso_opt(job.blocked_until),
            last_run_at: iso_opt(job.last_run_at),
            // Only an active job fires: a paused one keeps its pointer in the database (a resume
            // computes a new one), but it is no slot the job will fire at.
            next_run_at: iso_opt(job.next_run_at.filter(|_| job.status == JobStatus::Active)),
            pause_after_failures: job.pause_after_failures,
            consecutive_failures: job.consecutive_failures,
            failing: (job.failing || job.status == JobStatus::Failed)
                && job.status != JobStatus::Retired,
            last_success_at: iso_opt(job.last_success_at),
            paused_reason: job.paused_reason.clone(),
            retry: RetryView::from(job),
            origin: job.origin.to_string(),
            payload: job.payload.clone(),
            overlap: job.overlap.to_string(),
            jitter_ms: job.jitter_ms,
            misfire_grace_ms: job.misfire_grace_ms,
            created_at: iso(job.created_at),
            updated_at: iso(job.updated_at),
        }
    }
}

/// A job object with its next slots, as `GET /api/plugins/{pluginId}/jobs/{jobId}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetailView {
    #[serde(flatten)]
    pub job: JobView,
    /// The next slots after now (UTC instants); empty when the job is not active or has no
    /// valid schedule.
    pub upcoming: Vec<String>,
    /// The same slots, each `{utc, local, zone, note}` with the daylight-saving decision
    /// behind it.
    pub upcoming_slots: Vec<Slot>,
}

/// A job of `GET /api/jobs`: the job object, its schedule in words and its next slots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobOverviewView {
    #[serde(flatten)]
    pub job: JobView,
    /// The schedule in plain words ("every day at 09:00"), or the expression itself when it has
    /// no simple wording; "manual only" for an empty schedule.
    pub schedule_description: String,
    /// The next slots after now, as in the job detail.
    pub upcoming: Vec<String>,
    pub upcoming_slots: Vec<Slot>,
    /// The job's newest run of any trigger, without its logs; `null` when it never ran.
    pub last_run: Option<RunSummaryView>,
}

/// A run object without its logs and bookkeeping, as a job's `lastRun`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummaryView {
    pub id: Uuid,
    pub trigger: String,
    pub status: String,
    pub scheduled_for: String,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub attempt: i32,
    pub retry_of: Option<Uuid>,
}

impl From<&PluginJobRunModel> for RunSummaryView {
    fn from(run: &PluginJobRunModel) -> Self {
        Self {
            id: run.id,
            trigger: run.trigger.to_string(),
            status: run.status.to_string(),
            scheduled_for: iso(run.scheduled_for),
            duration_ms: run.duration_ms,
            error: run.error.clone(),
            started_at: iso_opt(run.started_at),
            finished_at: iso_opt(run.finished_at),
            attempt: run.attempt,
            retry_of: run.retry_of,
        }
    }
}

/// A run object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: Uuid,
    pub job_id: Uuid,
    pub plugin_id: String,
    /// `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub scheduled_for: String,
    /// The scheduler instance that owns the run.
    pub instance_id: Option<String>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    /// The worker's log lines for this run (a JSON array); left out of listings asked with
    /// `view=summary`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<serde_json::Value>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub created_at: String,
    /// The run's W3C trace context, as sent to the worker in `runJob`.
    pub traceparent: Option<String>,
    /// 1 for the first run of a slot, 2 for its first retry, …
    pub attempt: i32,
    /// For a retry: the first run of its slot.
    pub retry_of: Option<Uuid>,
    /// The payload the run was started with (its job's, or a trigger's one-off payload).
    pub payload: Option<serde_json::Value>,
}

impl RunView {
    /// The run object without its logs.
    pub fn without_logs(run: &PluginJobRunModel) -> Self {
        Self {
            logs: None,
            ..Self::from(run)
        }
    }
}

impl From<&PluginJobRunModel> for RunView {
    fn from(run: &PluginJobRunModel) -> Self {
        Self {
            id: run.id,
            job_id: run.job_id,
            plugin_id: run.plugin_id.clone(),
            trigger: run.trigger.to_string(),
            status: run.status.to_string(),
            scheduled_for: iso(run.scheduled_for),
            instance_id: run.instance_id.clone(),
            duration_ms: run.duration_ms,
            error: run.error.clone(),
            logs: Some(run.logs.clone()),
            started_at: iso_opt(run.started_at),
            finished_at: iso_opt(run.finished_at),
            created_at: iso(run.created_at),
            traceparent: run.traceparent.clone(),
            attempt: run.attempt,
            retry_of: run.retry_of,
            payload: run.payload.clone(),
        }
    }
}
