//! Run events: the extension point. Any actor can `Subscribe` to the scheduler's `RunEvent`s;
//! metrics, notifications or auto-pause are added as new subscribers, not by editing the
//! scheduler. Events carry the job's key and the run's trigger beside the ids, so a subscriber
//! can label what it records without reading the database.

use std::time::Duration;

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
        job_key: String,
        trigger: RunTrigger,
        scheduled_for: DateTime<Utc>,
    },
    /// A run was marked `running` and its worker called.
    RunStarted {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        trigger: RunTrigger,
        scheduled_for: DateTime<Utc>,
        started_at: DateTime<Utc>,
    },
    /// A run reached a terminal status (a timed-out run as soon as its failure is recorded).
    RunFinished {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        trigger: RunTrigger,
        status: RunStatus,
        duration_ms: i64,
        error: Option<String>,
    },
    /// A due slot passed without a run.
    SlotSkipped {
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
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
    /// A `Tick` finished: due jobs were claimed and their runs spawned. `duration` is the wall
    /// time the tick took, the claim's database round trips included.
    TickFinished { duration: Duration },
}

/// Subscribes a recipient to every `RunEvent` of the scheduler.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<RunEvent>);
