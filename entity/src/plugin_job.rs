//! `plugin_jobs`: one row per job a plugin declares, with its schedule and its slot pointer.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sea_orm_active_enums::{JobOrigin, JobStatus, MisfirePolicy, OverlapPolicy};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub plugin_id: String,
    pub job_key: String,
    pub display_name: String,
    pub description: String,
    /// Cron expression; empty means the job only runs when triggered.
    pub schedule: String,
    /// IANA timezone the schedule is evaluated in.
    pub timezone: String,
    pub status: JobStatus,
    /// Per-job timeout; `None` means the scheduler default.
    pub timeout_ms: Option<i64>,
    pub misfire: MisfirePolicy,
    /// Why the job is `failed`.
    pub last_error: Option<String>,
    /// No instance claims or triggers the job before this instant (a timed-out call is pending).
    pub blocked_until: Option<DateTimeUtc>,
    /// Slot of the latest scheduled run.
    pub last_run_at: Option<DateTimeUtc>,
    /// Next slot to fire.
    pub next_run_at: Option<DateTimeUtc>,
    /// Pause the job after this many consecutive failed runs; `None` means the server default.
    pub pause_after_failures: Option<i32>,
    /// Failed runs since the job last succeeded or was resumed (reset by a success; a resume
    /// moves them to `unrecovered_failures`).
    pub consecutive_failures: i32,
    /// When a run of the job last succeeded.
    pub last_success_at: Option<DateTimeUtc>,
    /// Why the job was paused automatically; cleared on resume.
    pub paused_reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Attempts per slot, the first included (1: no retry).
    pub retry_max_attempts: i32,
    /// Wait before the first retry, doubled per attempt; `None` means the default (10 s).
    pub retry_backoff_ms: Option<i64>,
    /// The longest wait between attempts; `None` means the default (5 min).
    pub retry_max_backoff_ms: Option<i64>,
    /// `manifest` (declared by its plugin) or `api` (created through the HTTP API or the handle).
    pub origin: JobOrigin,
    /// JSON handed to every run of the job in `runJob` (at most 16 KiB).
    pub payload: Option<Json>,
    /// What a due slot does while the previous run is still live.
    pub overlap: OverlapPolicy,
    /// Each slot starts this deterministic offset in `[0, jitter_ms)` after it.
    pub jitter_ms: Option<i64>,
    /// The job's own misfire grace; `None` means the server's.
    pub misfire_grace_ms: Option<i64>,
    /// Failed runs of a streak a resume cleared that no success has answered yet: the next
    /// success reports `job.recovered` with them (and the streak's own failures).
    pub unrecovered_failures: i32,
    /// The newest slot whose run (scheduled or backfilled) was pruned: whether a slot at or
    /// before it ran is no longer known, so a backfill never replays it.
    pub pruned_through: Option<DateTimeUtc>,
    /// When the job was paused (by an operator, or after too many failed runs); cleared by a
    /// resume. It outlives the job going `failed` or `retired`, so a job declared again comes
    /// back paused.
    pub paused_at: Option<DateTimeUtc>,
    /// Whether the job's last run to reach an outcome failed: set by a failed run, cleared by
    /// a succeeded one; live and cancelled runs leave it as it is.
    pub failing: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::plugin_job_run::Entity")]
    Runs,
}

impl Related<super::plugin_job_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Runs.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
