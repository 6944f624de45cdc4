//! The `MaintenanceActor`: the background passes of one instance — heartbeat its runs, rescue
//! runs abandoned by dead instances, prune history. Each pass is a message answered when the
//! pass is done, so a test can run and await one pass at a time (as River's maintenance
//! services do); the timers only send those messages.
//!
//! Handles: `StartMaintenance`, `HeartbeatPass`, `RescuePass`, `PrunePass`. Sends: `Heartbeat`,
//! `RescueStaleRuns`, `PruneRuns` (store), `GetTrackedRuns` (scheduler), `RunRescued` events.

use std::sync::Arc;

use actix::prelude::*;
use uuid::Uuid;

use crate::Result;
use crate::clock::Clock;
use crate::config::SchedulerConfig;
use crate::events::{EventBus, RunEvent};
use crate::store::{Heartbeat, PruneRuns, RescueStaleRuns, RescuedRun, StoreActor};

/// Asks the scheduler for the runs it owns: they are heartbeated, and never rescued by it.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<Uuid>")]
pub struct GetTrackedRuns;

/// Runs a rescue and a prune pass now, then arms the timers of every pass.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StartMaintenance;

/// Refreshes the heartbeat of every run this instance owns, in one statement (chunked). Answers
/// how many rows moved.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<u64>")]
pub struct HeartbeatPass;

/// Fails live runs whose heartbeat is older than the lease (sparing this instance's own).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<RescuedRun>>")]
pub struct RescuePass;

/// Deletes history past the retention and beyond the runs kept per job. Answers how many rows
/// went.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<u64>")]
pub struct PrunePass;

/// The maintenance of one instance.
#[derive(Debug)]
pub struct MaintenanceActor {
    store: Addr<StoreActor>,
    scheduler: Recipient<GetTrackedRuns>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    events: EventBus,
    started: bool,
}

impl MaintenanceActor {
    pub fn new(
        store: Addr<StoreActor>,
        scheduler: Recipient<GetTrackedRuns>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
        events: EventBus,
    ) -> Self {
        Self {
            store,
            scheduler,
            clock,
            config,
            events,
            started: false,
        }
    }
}

impl Actor for MaintenanceActor {
    type Context = Context<Self>;
}

impl Handler<StartMaintenance> for MaintenanceActor {
    type Result = ();

    fn handle(&mut self, _msg: StartMaintenance, ctx: &mut Self::Context) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let passes = |ctx: &mut Context<Self>| {
            let me = ctx.address();
            actix::spawn(async move {
                // Rescue first: a prune never races the failing of abandoned runs.
                if let Ok(Err(err)) = me.send(RescuePass).await {
                    log::error!("rescue pass failed: {err}");
                }
                match me.send(PrunePass).await {
                    Ok(Ok(0)) | Err(_) => {}
                    Ok(Ok(pruned)) => log::info!("pruned {pruned} runs"),
                    Ok(Err(err)) => log::error!("prune pass failed: {err}"),
                }
            });
        };
        passes(ctx);
        ctx.run_interval(self.config.maintenance_interval, move |_act, ctx| {
            passes(ctx);
        });
        ctx.run_interval(self.config.heartbeat_interval, |_act, ctx| {
            let me = ctx.address();
            actix::spawn(async move {
                if let Ok(Err(err)) = me.send(HeartbeatPass).await {
                    log::error!("heartbeat failed: {err}");
                }
            });
        });
    }
}

impl Handler<HeartbeatPass> for MaintenanceActor {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(&mut self, _msg: HeartbeatPass, _ctx: &mut Self::Context) -> Self::Result {
        let (store, scheduler, clock) = (
            self.store.clone(),
            self.scheduler.clone(),
            Arc::clone(&self.clock),
        );
        Box::pin(async move {
            let run_ids = scheduler.send(GetTrackedRuns).await?;
            if run_ids.is_empty() {
                return Ok(0);
            }
            // The store stamps the heartbeat again when it writes it.
            let now = clock.now();
            crate::store::ask(&store, Heartbeat { run_ids, now }).await
        })
    }
}

impl Handler<RescuePass> for MaintenanceActor {
    type Result = ResponseFuture<Result<Vec<RescuedRun>>>;

    fn handle(&mut self, _msg: RescuePass, _ctx: &mut Self::Context) -> Self::Result {
        let (store, scheduler, events) = (
            self.store.clone(),
            self.scheduler.clone(),
            self.events.clone(),
        );
        let (now, lease) = (self.clock.now(), self.config.run_lease);
        Box::pin(async move {
            let spare = scheduler.send(GetTrackedRuns).await?;
            let rescued = crate::store::ask(&store, RescueStaleRuns { now, lease, spare }).await?;
            for run in &rescued {
                log::warn!(
                    "run {} of plugin {} {}",
                    run.run_id,
                    run.plugin_id,
                    run.error
                );
                events.emit(RunEvent::RunRescued {
                    run_id: run.run_id,
                    job_id: run.job_id,
                    plugin_id: run.plugin_id.clone(),
                    attempt: run.attempt,
                    error: run.error.clone(),
                });
            }
            Ok(rescued)
        })
    }
}

impl Handler<PrunePass> for MaintenanceActor {
    type Result = ResponseFuture<Result<u64>>;

    fn handle(&mut self, _msg: PrunePass, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let prune = PruneRuns {
            now: self.clock.now(),
            keep_per_job: self.config.keep_runs_per_job,
            retention: self.config.run_retention,
        };
        Box::pin(async move { crate::store::ask(&store, prune).await })
    }
}
