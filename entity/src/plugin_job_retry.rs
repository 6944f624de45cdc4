//! `plugin_job_retries`: the retry a failed run asked for under its job's retry policy. One row
//! per failed run: `pending` until `due_at`, then `started` (`run_id` is the retry's run),
//! `superseded` (the job's next slot came first) or `cancelled` (the job stopped being active).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sea_orm_active_enums::RetryStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_job_retries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub job_id: Uuid,
    pub plugin_id: String,
    /// The failed run that asked for this retry.
    pub failed_run_id: Uuid,
    /// The first run of the slot (the failed run itself when it was the first attempt).
    pub retry_of: Uuid,
    /// The attempt the retry will be (2 for the first retry).
    pub attempt: i32,
    /// The slot being retried: the retry run keeps it.
    pub scheduled_for: DateTimeUtc,
    /// Not started before this instant (the backoff, jittered).
    pub due_at: DateTimeUtc,
    pub status: RetryStatus,
    /// Why the retry was superseded or cancelled.
    pub reason: Option<String>,
    /// The run the retry created, once started.
    pub run_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
    #[sea_orm(
        belongs_to = "super::plugin_job_run::Entity",
        from = "Column::FailedRunId",
        to = "super::plugin_job_run::Column::Id",
        on_delete = "Cascade"
    )]
    FailedRun,
}

impl ActiveModelBehavior for ActiveModel {}
