//! `plugin_jobs`: one row per job a plugin declares, with its schedule and its slot pointer.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sea_orm_active_enums::{JobStatus, MisfirePolicy};

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
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
