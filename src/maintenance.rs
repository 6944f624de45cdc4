//! The `MaintenanceActor`: the background passes of one instance — heartbeat its runs, rescue
//! runs abandoned by dead instances, prune history. Each pass is a message answered when the
//! pass is done, so a test can run and await one pass at a time (as River's maintenance
//! services do); the timers only send those messages.
//!
//! Handles: `StartMaintenance`, `HeartbeatPass`, `RescuePass`, `PrunePass`. Sends: `Heartbeat`,
//! `EndedRuns`, `RescueStaleRuns`, `PruneRuns` (store), `GetTrackedRuns` (scheduler),
//! `FenceRuns` (the `RunFence`, which reaches the runs without waiting for the scheduler's
//! mailbox, held while a claim waits for the database), `RunRescued` events.
//!
//! **Fencing.** A run's lease is its heartbeat: once this instance has not heartbeated a run for
//! `run_lease`, another instance may fail it as abandoned and start its job again. So this
//! instance must stop the worker's work on such a run itself (`FenceRuns`: the call is cancelled
//! and the worker restarted at once, not after the cancel grace):
//! - when a heartbeat finds runs it still runs no longer live (this instance stalled past the
//!   lease, say stopped or starved, and another took them over): those runs, at once;
//! - when heartbeats have failed (the database is unreachable) for the lease less two heartbeat
//!   intervals: every run it owns, before another instance can take any of them over.

use std::sync::Arc;

use actix::prelude::*;
use uuid::Uuid;

use crate::Result;
use crate::clock::Clock;
use crate::config::SchedulerConfig;
use crate::events::{EventBus, RunEvent};
use crate::store::{EndedRuns, Heartbeat, PruneRuns, RescueStaleRuns, RescuedRun, StoreActor};
use crate::time::iso;
use chrono::{DateTime, Utc};

/// Asks the scheduler for the runs it owns: they are heartbeated, and never rescued by it.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Vec<Uuid>")]
pub struct GetTrackedRuns;

/// Tells the scheduler to stop these runs' work in their workers at once: their lease is lost
/// (see the module's "Fencing").
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct FenceRuns {
    /// The runs to fence; `None`: every run of this instance.
    pub run_ids: Option<Vec<Uuid>>,
    pub reason: String,
}

/// Runs a rescue and a prune pass now, then arms the timers of every pass.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StartMaintenance;

/// Refreshes the heartbeat of every run this instance owns, in one statement (chunked), and
/// fences the runs whose lease is lost (see the module's "Fencing"). Answers how many rows
/// moved.
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
    fence: Recipient<FenceRuns>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    events: EventBus,
    started: bool,
    /// When a heartbeat last reached the database (from the start, before the first).
    last_beat: Option<DateTime<Utc>>,
    /// The runs were fenced for failing heartbeats; not again until one succeeds.
    fenced: bool,
    /// A heartbeat pass is waiting for the database.
    beating: bool,
}

impl MaintenanceActor {
    pub fn new(
        store: Addr<StoreActor>,
        scheduler: Recipient<GetTrackedRuns>,
        fence: Recipient<FenceRuns>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
        events: EventBus,
    ) -> Self {
        Self {
            store,
            scheduler,
            fence,
            clock,
            config,
            events,
            started: false,
            last_beat: None,
            fenced: false,
            beating: false,
        }
    }

    /// How long heartbeats may fail before this instance fences its runs: the lease less two
    /// heartbeat intervals (the configuration keeps the lease above two), so the worker is
    /// stopped before another instance can rescue a run.
    fn fence_after(&self) -> chrono::TimeDelta {
        let margin = self.config.heartbeat_interval.saturating_mul(2);
        let after = self.config.run_lease.saturating_sub(margin);
        chrono::TimeDelta::from_std(after).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Fences every run of this instance once heartbeats have failed, or hung, since `since`
    /// for [`Self::fence_after`].
    fn fence_if_lapsing(&mut self, since: DateTime<Utc>, now: DateTime<Utc>, cause: &str) {
        if self.fenced || now - since < self.fence_after() {
            return;
        }
        self.fenced = true;
        let reason = format!(
            "its lease is about to lapse: no heartbeat has reached the database since {} ({cause})",
            iso(since)
        );
        log::error!("fencing every run of this instance: {reason}");
        self.fence.do_send(FenceRuns {
            run_ids: None,
            reason,
        });
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
                    log::log!(err.pass_level(), "rescue pass failed: {err}");
                }
                match me.send(PrunePass).await {
                    Ok(Ok(0)) | Err(_) => {}
                    Ok(Ok(pruned)) => log::info!("pruned {pruned} runs"),
                    Ok(Err(err)) => log::log!(err.pass_level(), "prune pass failed: {err}"),
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
                    log::log!(err.pass_level(), "heartbeat failed: {err}");
                }
            });
        });
    }
}

impl Handler<HeartbeatPass> for MaintenanceActor {
    type Result = ResponseActFuture<Self, Result<u64>>;

    fn handle(&mut self, _msg: HeartbeatPass, _ctx: &mut Self::Context) -> Self::Result {
        let (store, scheduler, clock) = (
            self.store.clone(),
            self.scheduler.clone(),
            Arc::clone(&self.clock),
        );
        let started = clock.now();
        let since = *self.last_beat.get_or_insert(started);
        if self.beating {
            // The last pass still waits for the database: this one would only queue behind it.
            self.fence_if_lapsing(since, started, "the last heartbeat has not returned");
            return Box::pin(actix::fut::ready(Ok(0)));
        }
        self.beating = true;
        Box::pin(
            async move {
                let run_ids = scheduler.send(GetTrackedRuns).await?;
                if run_ids.is_empty() {
                    return Ok((0, Vec::new()));
                }
                // The store stamps the heartbeat again when it writes it.
                let now = clock.now();
                let beat = Heartbeat {
                    run_ids: run_ids.clone(),
                    now,
                };
                let moved = crate::store::ask(&store, beat).await?;
                // Fewer rows than runs: some ended meanwhile, most by their own outcome. Those
                // this instance still runs were ended by another: their lease is lost.
                let lost = if moved < run_ids.len() as u64 {
                    crate::store::ask(&store, EndedRuns(run_ids)).await?
                } else {
                    Vec::new()
                };
                Ok((moved, lost))
            }
            .into_actor(self)
            .map(move |beat: Result<(u64, Vec<Uuid>)>, act, _ctx| {
                act.beating = false;
                match beat {
                    Ok((moved, lost)) => {
                        act.last_beat = Some(started);
                        act.fenced = false;
                        if !lost.is_empty() {
                            let reason = "its lease was lost: another instance ended it while \
                                          this one, stalled past the run lease, still ran it"
                                .to_owned();
                            act.fence.do_send(FenceRuns {
                                run_ids: Some(lost),
                                reason,
                            });
                        }
                        Ok(moved)
                    }
                    Err(err) => {
                        act.fence_if_lapsing(since, act.clock.now(), &err.to_string());
                        Err(err)
                    }
                }
            }),
        )
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
                    job_key: run.job_key.clone(),
                    trigger: run.trigger,
                    attempt: run.attempt,
                    error: run.error.clone(),
                    duration_ms: run.duration_ms,
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
            pass_budget: PruneRuns::PASS_BUDGET,
        };
        Box::pin(async move { crate::store::ask(&store, prune).await })
    }
}
