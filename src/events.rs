//! Run events: the extension point. Any actor can subscribe to the `RunEvent`s on the
//! [`EventBus`]; metrics, notifications or auto-pause are added as new subscribers, not by
//! editing the scheduler. Events carry the job's key and the run's trigger beside the ids, so a
//! subscriber can label what it records without reading the database.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::{RunStatus, RunTrigger};
use serde::Serialize;
use uuid::Uuid;

/// Every subscriber of one plugin-jobs instance. Clones share the subscribers: the scheduler,
/// the run actors and the maintenance actor all publish on the same bus. Events are sent with
/// `do_send` and never wait on a subscriber.
#[derive(Debug, Clone, Default)]
pub struct EventBus {
    subscribers: Arc<RwLock<Vec<Recipient<RunEvent>>>>,
}

impl EventBus {
    pub fn subscribe(&self, recipient: Recipient<RunEvent>) {
        self.subscribers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(recipient);
    }

    pub fn emit(&self, event: RunEvent) {
        let subscribers = self
            .subscribers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for subscriber in subscribers.iter() {
            subscriber.do_send(event.clone());
        }
    }
}

/// Why a due slot passed without a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The job's previous run was still live.
    Overlap,
    /// The slot was older than the misfire grace and the job's policy is `skip`; or, under
    /// `fire_once`, it came due while an older slot of the job waited to start, and that slot's
    /// one late run stands for it.
    Misfire,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Overlap => "overlap",
            SkipReason::Misfire => "misfire",
        })
    }
}

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
        /// When the run was meant to start: `scheduled_for` plus the job's jitter offset for
        /// the slot. Lateness is measured from here.
        due_at: DateTime<Utc>,
        started_at: DateTime<Utc>,
    },
    /// A run reached a terminal status, sent once the outcome is in the database (a timed-out
    /// or cancelled run as soon as its outcome is recorded, before its worker lets go).
    RunFinished {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        trigger: RunTrigger,
        /// 1 for the first run of a slot, 2 for its first retry, …
        attempt: i32,
        status: RunStatus,
        duration_ms: i64,
        error: Option<String>,
    },
    /// Due slots passed without a run: `slot` and the `count - 1` slots of the job after it.
    SlotSkipped {
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        slot: DateTime<Utc>,
        reason: SkipReason,
        count: u32,
    },
    /// A live run was failed because its instance stopped heartbeating it.
    RunRescued {
        run_id: Uuid,
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        trigger: RunTrigger,
        attempt: i32,
        error: String,
        /// From its start to the rescue; `None` for a run that never started.
        duration_ms: Option<i64>,
    },
    /// A failed run's retry was dropped: `superseded` when the job's next slot came before it
    /// could start (the slot's last attempt has then failed), otherwise cancelled because the
    /// job stopped being active (by the `RetryActor`).
    RetryDropped {
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        /// The failed run the retry was for.
        run_id: Uuid,
        attempt: i32,
        superseded: bool,
        reason: String,
        error: Option<String>,
    },
    /// A job was paused automatically after `failures` consecutive failed runs (by the
    /// `JobHealthActor`); `reason` is its `pausedReason`.
    JobPaused {
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        run_id: Uuid,
        /// The attempt of that run: 1 for the first run of a slot, 2 for its first retry, …
        attempt: i32,
        failures: i32,
        reason: String,
        error: Option<String>,
    },
    /// A job's run succeeded after `failures` consecutive failed runs.
    JobRecovered {
        job_id: Uuid,
        plugin_id: String,
        job_key: String,
        run_id: Uuid,
        attempt: i32,
        failures: i32,
    },
    /// A webhook delivery attempt ended (`delivered`, `failed` and retried later, `gave_up`) or
    /// an event was `dropped` because the outbox was full (by the `NotifierActor`).
    NotificationSent {
        event_type: String,
        outcome: &'static str,
    },
    /// A `Tick` finished: due jobs were claimed and their runs spawned. `duration` is the wall
    /// time the tick took, the claim's database round trips included.
    TickFinished { duration: Duration },
}

/// Subscribes a recipient to every `RunEvent` (sent to the scheduler, which owns the bus).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<RunEvent>);
