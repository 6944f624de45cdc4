//! The enums stored in text columns. Each is a sea-orm active enum over a string, so an unknown
//! value in the database is an error on read, never a silent default.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Lifecycle of a declared job.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Scheduled and triggerable.
    #[sea_orm(string_value = "active")]
    Active,
    /// Paused by an operator: never claimed, never triggered.
    #[sea_orm(string_value = "paused")]
    Paused,
    /// Its schedule or timezone is invalid; `last_error` says why.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// No longer declared by its plugin.
    #[sea_orm(string_value = "retired")]
    Retired,
}

/// State of one run. `Queued` and `Running` are live; the rest are terminal.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "succeeded")]
    Succeeded,
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl RunStatus {
    /// The statuses of a run that is not finished.
    pub const LIVE: [RunStatus; 2] = [RunStatus::Queued, RunStatus::Running];

    /// True for `Queued` and `Running`.
    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }

    /// The statuses a run may move to this one from; a terminal run is never updated again.
    pub fn allowed_from(self) -> &'static [RunStatus] {
        match self {
            RunStatus::Queued => &[],
            RunStatus::Running => &[RunStatus::Queued],
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled => &Self::LIVE,
        }
    }
}

/// Why a run was created.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// A slot of the job's cron schedule.
    #[sea_orm(string_value = "schedule")]
    Schedule,
    /// An operator or the host application asked for it.
    #[sea_orm(string_value = "manual")]
    Manual,
    /// A manual re-run after a failure.
    #[sea_orm(string_value = "retry")]
    Retry,
    /// A past slot replayed on an operator's request.
    #[sea_orm(string_value = "backfill")]
    Backfill,
}

/// What to do with a slot missed by more than the misfire grace.
/// Where a job comes from.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum JobOrigin {
    /// Declared by its plugin (manifest or `RegisterPlugin`); synced with it.
    #[default]
    #[sea_orm(string_value = "manifest")]
    Manifest,
    /// Created through the HTTP API or the embedding handle; manifest syncs leave it alone.
    #[sea_orm(string_value = "api")]
    Api,
}

/// What a due slot does while the job's previous run is still live.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// The slot is skipped (recorded as `overlap`).
    #[default]
    #[sea_orm(string_value = "skip")]
    Skip,
    /// At most one slot waits for the live run, then starts with its own `scheduledFor`.
    #[sea_orm(string_value = "queue_one")]
    QueueOne,
    /// The live run is cancelled; the slot starts once its worker is done with it.
    #[sea_orm(string_value = "cancel_previous")]
    CancelPrevious,
}

/// Where a backfilled slot stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum BackfillStatus {
    /// Waiting for its turn (oldest slot first, one run of the job at a time).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Its run was created.
    #[sea_orm(string_value = "started")]
    Started,
    /// Cancelled before it started (by the operator, or the job is no longer active).
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// Where a retry of a failed run stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum RetryStatus {
    /// Waiting for its due time.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Its run was created.
    #[sea_orm(string_value = "started")]
    Started,
    /// Dropped: the job's next slot came first.
    #[sea_orm(string_value = "superseded")]
    Superseded,
    /// Dropped: the job was paused, retired or unloaded first.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum MisfirePolicy {
    /// Run once for all the missed slots.
    #[default]
    #[sea_orm(string_value = "fire_once")]
    FireOnce,
    /// Move the pointer past the missed slots without a run.
    #[sea_orm(string_value = "skip")]
    Skip,
}

/// `Display` and `FromStr` use the database value (`"fire_once"`, `"running"`, ...), so the text
/// an operator types in the API is the text stored in the table.
macro_rules! text_enum {
    ($($ty:ident: $label:literal),*) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&ActiveEnum::to_value(self))
            }
        }

        impl std::str::FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$ty as ActiveEnum>::try_from_value(&s.to_owned()).map_err(|_| {
                    let allowed: Vec<String> = <$ty as sea_orm::strum::IntoEnumIterator>::iter()
                        .map(|v| ActiveEnum::to_value(&v))
                        .collect();
                    format!(
                        "unknown {} {s:?} (expected one of: {})",
                        $label,
                        allowed.join(", ")
                    )
                })
            }
        }
    )*};
}

text_enum!(JobStatus: "job status", RunStatus: "run status", RetryStatus: "retry status", BackfillStatus: "backfill status", JobOrigin: "job origin", OverlapPolicy: "overlap policy", RunTrigger: "trigger", MisfirePolicy: "misfire policy");
