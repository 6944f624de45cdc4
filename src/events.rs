//! Run events: the extension point. Any actor can `Subscribe` to the scheduler's `RunEvent`s;
//! metrics, notifications or auto-pause are added as new subscribers, not by editing the
//! scheduler.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::{RunStatus, RunTrigger};
use uuid::Uuid;

use crate::store::SkipReason;

/// Something that happened to a run or a slot.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub enum RunEvent {
    /// A run was created `queued` (by a claim or a trigger).
    RunQueued {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        trigger: RunTrigger,
        scheduled_for: DateTime<Utc>,
    },
    /// A run was marked `running` and its worker called.
    RunStarted {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        scheduled_for: DateTime<Utc>,
        started_at: DateTime<Utc>,
    },
    /// A run reached a terminal status.
    RunFinished {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        status: RunStatus,
        duration_ms: i64,
        error: Option<String>,
    },
    /// A due slot passed without a run.
    SlotSkipped {
        job_id: Uuid,
        plugin_id: String,
        slot: DateTime<Utc>,
        reason: SkipReason,
    },
    /// A live run was failed because its instance stopped heartbeating it.
    RunRescued {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        error: String,
    },
}

/// Subscribes a recipient to every `RunEvent` of the scheduler.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<RunEvent>);
