//! `plugin_job_runs`: one row per run of a job, from `queued` to a terminal status.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sea_orm_active_enums::{RunStatus, RunTrigger};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_job_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub job_id: Uuid,
    pub plugin_id: String,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    /// The slot (scheduled runs) or the request time (manual and retry runs).
    pub scheduled_for: DateTimeUtc,
    /// The scheduler instance that owns the run.
    pub instance_id: Option<String>,
    /// Refreshed while the run is live; a stale one marks the run abandoned.
    pub heartbeat_at: Option<DateTimeUtc>,
    pub duration_ms: Option<i64>,
    /// Failure, timeout or cancellation reason.
    pub error: Option<String>,
    /// Worker log lines of this run (a JSON array, capped).
    pub logs: Json,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// The run's W3C trace context (`00-<trace id>-<span id>-01`), sent to the worker in
    /// `runJob` so its logs and spans can be correlated with the host's.
    pub traceparent: Option<String>,
    /// 1 for the first run of a slot, 2 for its first retry, …
    pub attempt: i32,
    /// The first run of the slot, for a retry.
    pub retry_of: Option<Uuid>,
    /// The payload the run was started with: its job's, or a trigger's one-off payload.
    pub payload: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::plugin_job::Entity",
        from = "Column::JobId",
        to = "super::plugin_job::Column::Id",
        on_delete = "Cascade"
    )]
    Job,
}

impl Related<super::plugin_job::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Job.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
