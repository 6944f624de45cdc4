//! The `SchedulerActor`'s shutdown: stop ticking, let live runs finish within the grace, cancel
//! the rest and answer once their outcomes are recorded; `AwaitReleased` then waits until their
//! workers let go of the jobs.

use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use uuid::Uuid;

use crate::job_run::{Cancel, JobRunActor};
use crate::store::{CancelUnstarted, CompleteRun, StoreActor};

use super::{Lifecycle, SchedulerActor};

/// Stops ticking, lets live runs finish within `grace`, then cancels the rest.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "ShutdownReport")]
pub struct Shutdown {
    pub grace: Duration,
}

/// Waits up to `timeout` until no run holds a job (cancelled runs release their jobs once their
/// workers let go). Answers how many runs still hold one.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "usize")]
pub struct AwaitReleased {
    pub timeout: Duration,
}

/// What a shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Runs that finished on their own within the grace.
    pub finished: usize,
    /// Runs that were cancelled when the grace ran out (queued manual runs included).
    pub cancelled: usize,
}

/// How long the shutdown waits for cancelled runs to record their outcome.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// The error of a run that a shutdown ended before it started.
const BEFORE_START: &str = "Scheduler shutting down before the run started";

/// Ends the runs claimed ahead of their slot that have not started, before the live runs are
/// told to stop: a slot that a stop ended before it came gets what a slot that passed while the
/// server was down gets ([`CancelUnstarted`]), in the transaction that ends its run. The runs
/// that have started are left to their cancellation.
async fn hand_back_unstarted(
    store: &Addr<StoreActor>,
    live: &[(Uuid, Addr<JobRunActor>)],
    now: DateTime<Utc>,
) {
    let cancel = CancelUnstarted {
        run_ids: live.iter().map(|(run_id, _)| *run_id).collect(),
        reason: BEFORE_START.to_owned(),
        now,
    };
    if let Err(err) = crate::store::ask(store, cancel).await {
        log::error!("ending the runs that had not started failed: {err}");
    }
}

/// Records queued runs that never started as `cancelled`.
pub(super) async fn cancel_queued(
    store: &Addr<StoreActor>,
    runs: &[Uuid],
    reason: &str,
    now: DateTime<Utc>,
) {
    for run_id in runs {
        let cancel = CompleteRun {
            run_id: *run_id,
            status: RunStatus::Cancelled,
            error: Some(reason.to_owned()),
            logs: None,
            block_until: None,
            now,
        };
        if let Err(err) = crate::store::ask(store, cancel).await {
            log::error!("cancelling queued run {run_id} failed: {err}");
        }
    }
}

impl Handler<AwaitReleased> for SchedulerActor {
    type Result = ResponseActFuture<Self, usize>;

    fn handle(&mut self, msg: AwaitReleased, _ctx: &mut Self::Context) -> Self::Result {
        let drained = self.runs.wait_drained();
        Box::pin(
            async move {
                let _ = actix_rt::time::timeout(msg.timeout, drained).await;
            }
            .into_actor(self)
            .map(|(), act, _ctx| act.runs.live_count()),
        )
    }
}

impl Handler<Shutdown> for SchedulerActor {
    type Result = ResponseActFuture<Self, ShutdownReport>;

    /// Answers once every run has finished or has its cancellation recorded; a cancelled run's
    /// job stays blocked until its worker lets go (see [`AwaitReleased`]).
    fn handle(&mut self, msg: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        let first = self.lifecycle != Lifecycle::Stopped;
        self.lifecycle = Lifecycle::Stopped;
        let reason = format!(
            "Scheduler shutting down: run did not finish within the {} ms shutdown grace",
            msg.grace.as_millis()
        );
        // Queued manual runs never started: cancel them at once.
        let queued = self.runs.drain_queued(None);
        let store = self.store.clone();
        let now = self.clock.now();
        let live_before = self.runs.live_count();
        let drained = self.runs.wait_drained();
        Box::pin(
            async move {
                cancel_queued(&store, &queued, BEFORE_START, now).await;
                let drained = actix_rt::time::timeout(msg.grace, drained).await.is_ok();
                (queued.len(), drained)
            }
            .into_actor(self)
            .then(move |(queued, drained), act, _ctx| {
                let mut cancelled = queued;
                let mut live = Vec::new();
                if !drained {
                    live = act
                        .runs
                        .unsettled(None)
                        .map(|run| (run.run_id, run.handle.clone()))
                        .collect();
                    cancelled += live.len();
                }
                let settled = act.runs.wait_settled();
                let finished = live_before.saturating_sub(cancelled - queued);
                let (store, now) = (act.store.clone(), act.clock.now());
                async move {
                    if !live.is_empty() {
                        hand_back_unstarted(&store, &live, now).await;
                    }
                    for (_, handle) in live {
                        handle.do_send(Cancel {
                            reason: reason.clone(),
                            before_start: Some(BEFORE_START.to_owned()),
                        });
                    }
                    // The cancelled runs record their outcome before they report settled.
                    let _ = actix_rt::time::timeout(SETTLE_WAIT, settled).await;
                    ShutdownReport {
                        finished: if first { finished } else { 0 },
                        cancelled,
                    }
                }
                .into_actor(act)
            }),
        )
    }
}
