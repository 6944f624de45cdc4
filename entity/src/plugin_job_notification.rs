//! `plugin_job_notifications`: the outbox of webhook deliveries, one row per event and
//! destination until it is delivered or given up.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "plugin_job_notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The event's id, the same for every destination (receivers deduplicate on it).
    pub event_id: Uuid,
    /// `run.failed`, `job.paused`, …
    pub event_type: String,
    pub url: String,
    /// The exact JSON body that is posted and signed.
    pub body: String,
    /// Delivery attempts made so far.
    pub attempts: i32,
    /// Not tried again before this instant.
    pub next_attempt_at: DateTimeUtc,
    /// The instance delivering it now, until `claimed_until`.
    pub claimed_by: Option<String>,
    pub claimed_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
