//! `plugin_job_backfills`: one slot of a job an operator asked to replay, `pending` until its run
//! is created (`started`, `run_id`) or the request is `cancelled`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sea_orm_active_enums::BackfillStatus;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_job_backfills")]
pub struct Model {
    /// Also the id of the run it creates.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub job_id: Uuid,
    pub plugin_id: String,
    /// The slot replayed: its run keeps it as `scheduled_for`.
    pub scheduled_for: DateTimeUtc,
    pub status: BackfillStatus,
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
}

impl ActiveModelBehavior for ActiveModel {}
