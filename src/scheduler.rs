//! The `SchedulerActor`: dispatch. It owns the run table (job id → its `JobRunActor`, the manual
//! queue and the concurrency budget, see [`crate::run_table`]), the tick counters, the plugin
//! registry and the event bus; heartbeats, rescue and pruning are the `MaintenanceActor`'s.
//!
//! A `Tick` claims as many due jobs as there are free slots (for plugins whose worker is
//! running), spawns one `JobRunActor` per claimed run, re-arms a one-shot wake for the earliest
//! `next_run_at`, and returns: it never waits for runs. A finished run frees its slot at once and
//! hands it to the oldest queued manual run, or to a due job.
//!
//! Handles: `Start`, `Tick`, `TriggerJob`, `RegisterPlugin`, `UnregisterPlugin`, `PauseJob`,
//! `ResumeJob`, `RunFinished`, `RunSettled`, `GetTrackedRuns`, `GetDiagnostics`, `Subscribe`,
//! `Shutdown`, `AwaitReleased`. Sends: store messages, `Cancel` to its `JobRunActor`s,
//! `RunEvent`s on the bus.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::SchedulerConfig;
use crate::events::{EventBus, RunEvent, Subscribe};
use crate::job_run::{Cancel, JobRunActor, RunDeps, RunFinished, RunSettled};
use crate::maintenance::GetTrackedRuns;
use crate::run_table::{LiveRun, RunTable};
use crate::store::{
    ClaimDueJobs, CompleteRun, CreateRun, GetJob, GetNextDueAt, JobDeclaration, JobRef,
    SetJobStatus, StoreActor, SyncJobDeclarations,
};
use crate::time::iso;
use crate::worker::WorkerManager;
use crate::{Error, Result};

/// Starts ticking (the timer, unless ticks are manual). A second `Start` is a no-op.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Start;

/// Claims and dispatches due jobs. Sent by the timers; tests send it themselves.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Tick;

/// Runs a job now. Answers as soon as the run is created `queued`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<TriggeredRun>")]
pub struct TriggerJob {
    pub job: JobRef,
    /// `Manual` or `Retry`.
    pub trigger: RunTrigger,
}

/// The run a trigger created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggeredRun {
    pub run_id: Uuid,
    pub job_id: Uuid,
}

/// Registers a plugin and syncs the jobs it declares. Answers the plugin's jobs.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<PluginJobModel>>")]
pub struct RegisterPlugin {
    pub plugin_id: String,
    pub jobs: Vec<JobDeclaration>,
}

/// Forgets a plugin and cancels its live runs (`Plugin unregistered`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<()>")]
pub struct UnregisterPlugin {
    pub plugin_id: String,
}

/// Pauses a job: it is never claimed until resumed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<PluginJobModel>")]
pub struct PauseJob(pub JobRef);

/// Resumes a paused job from the next slot after now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<PluginJobModel>")]
pub struct ResumeJob(pub JobRef);

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

/// Asks for the scheduler's state.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Diagnostics")]
pub struct GetDiagnostics;

/// The scheduler's state, as `GET /api/scheduler` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diagnostics {
    pub running: bool,
    pub active_job_count: usize,
    pub active_job_ids: Vec<Uuid>,
    pub queued_manual_runs: usize,
    pub tick_count: u64,
    pub last_tick_at: Option<String>,
    pub instance_id: String,
    pub max_concurrent_runs: usize,
    pub registered_plugins: Vec<String>,
    pub skipped_slots: u64,
}

/// A manual run waiting for a free slot.
type QueuedRun = (PluginJobRunModel, PluginJobModel);

/// The scheduler of one instance.
#[derive(Debug)]
pub struct SchedulerActor {
    store: Addr<StoreActor>,
    workers: Arc<dyn WorkerManager>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    instance_id: String,
    /// Timers run only when true; tests with a manual clock send `Tick` themselves.
    timers: bool,
    running: bool,
    stopped: bool,
    tick_count: u64,
    last_tick_at: Option<DateTime<Utc>>,
    skipped_slots: u64,
    plugins: HashSet<String>,
    runs: RunTable<Addr<JobRunActor>, QueuedRun>,
    events: EventBus,
    wake: Option<SpawnHandle>,
    /// True when the last claim filled every free slot, so a freed slot should claim again.
    saturated: bool,
    /// A `ClaimFreedSlots` is on its way.
    claim_queued: bool,
}

impl SchedulerActor {
    pub fn new(
        store: Addr<StoreActor>,
        workers: Arc<dyn WorkerManager>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
        instance_id: String,
        timers: bool,
        events: EventBus,
    ) -> Self {
        Self {
            runs: RunTable::new(config.max_concurrent_runs),
            store,
            workers,
            clock,
            config,
            instance_id,
            timers,
            running: false,
            stopped: false,
            tick_count: 0,
            last_tick_at: None,
            skipped_slots: 0,
            plugins: HashSet::new(),
            events,
            wake: None,
            saturated: false,
            claim_queued: false,
        }
    }

    fn free_slots(&self) -> usize {
        self.runs.free_slots()
    }

    fn emit(&self, event: RunEvent) {
        self.events.emit(event);
    }

    fn spawn_run(&mut self, run: PluginJobRunModel, job: PluginJobModel, ctx: &mut Context<Self>) {
        let deps = RunDeps {
            store: self.store.clone(),
            scheduler: ctx.address().recipient(),
            settled: ctx.address().recipient(),
            workers: self.workers.clone(),
            clock: self.clock.clone(),
            events: self.events.clone(),
            default_timeout: self.config.job_timeout,
            cancel_grace: self.config.cancel_grace,
        };
        let job_id = job.id;
        let plugin_id = job.plugin_id.clone();
        let run_id = run.id;
        let handle = JobRunActor::new(run, job, deps).start();
        self.runs.insert(
            job_id,
            LiveRun {
                run_id,
                plugin_id,
                handle,
                settled: false,
            },
        );
    }

    /// Starts queued manual runs, oldest first, while there are free slots.
    fn start_queued_manual(&mut self, ctx: &mut Context<Self>) {
        while let Some((run, job)) = self.runs.pop_startable() {
            self.spawn_run(run, job, ctx);
        }
    }

    /// Claims due jobs for the free slots and spawns their runs; then re-arms the wake. The
    /// returned future must run atomically (`ctx.wait` or `AtomicResponse`), so that the budget
    /// it computed cannot change under it.
    fn dispatch(&mut self, ctx: &mut Context<Self>) -> ResponseActFuture<Self, ()> {
        self.start_queued_manual(ctx);
        let free = self.free_slots();
        let plugin_ids: Vec<String> = self
            .plugins
            .iter()
            .filter(|plugin| self.workers.is_running(plugin))
            .cloned()
            .collect();
        let now = self.clock.now();
        let claim = ClaimDueJobs {
            now,
            limit: free as u64,
            plugin_ids: plugin_ids.clone(),
            instance_id: self.instance_id.clone(),
            misfire_grace: self.config.misfire_grace,
            lookahead: self.config.claim_lookahead,
        };
        let store = self.store.clone();
        let next_due = GetNextDueAt {
            plugin_ids,
            after: now,
        };
        Box::pin(
            async move {
                let claimed = crate::store::ask(&store, claim).await;
                // A claim that filled every free slot claims again as soon as a slot frees, so
                // it needs no wake-up (and skips a query that costs the most under load).
                let filled =
                    matches!(&claimed, Ok(outcome) if free > 0 && outcome.claimed.len() >= free);
                let next = if filled {
                    Ok(None)
                } else {
                    crate::store::ask(&store, next_due).await
                };
                (claimed, next)
            }
            .into_actor(self)
            .map(move |(claimed, next), act, ctx| {
                match claimed {
                    Ok(outcome) => {
                        act.saturated = free > 0 && outcome.claimed.len() >= free;
                        for skipped in outcome.skipped {
                            act.skipped_slots += 1;
                            log::info!(
                                "skipped slot {} of {}/{}: {}",
                                iso(skipped.slot),
                                skipped.plugin_id,
                                skipped.job_key,
                                skipped.reason
                            );
                            act.emit(RunEvent::SlotSkipped {
                                job_id: skipped.job_id,
                                plugin_id: skipped.plugin_id,
                                job_key: skipped.job_key,
                                slot: skipped.slot,
                                reason: skipped.reason,
                            });
                        }
                        for claimed in outcome.claimed {
                            act.emit(RunEvent::RunQueued {
                                run_id: claimed.run.id,
                                job_id: claimed.job.id,
                                plugin_id: claimed.job.plugin_id.clone(),
                                job_key: claimed.job.job_key.clone(),
                                trigger: claimed.run.trigger,
                                scheduled_for: claimed.run.scheduled_for,
                            });
                            act.spawn_run(claimed.run, claimed.job, ctx);
                        }
                    }
                    Err(err) => log::error!("claiming due jobs failed: {err}"),
                }
                match next {
                    Ok(next) => act.arm_wake(next, ctx),
                    Err(err) => log::error!("reading the next due slot failed: {err}"),
                }
            }),
        )
    }

    /// Arms a one-shot `Tick` for the earliest slot, so runs start within milliseconds of it
    /// however long the tick interval is.
    fn arm_wake(&mut self, next: Option<DateTime<Utc>>, ctx: &mut Context<Self>) {
        if !self.timers || !self.running {
            return;
        }
        if let Some(handle) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        let Some(next) = next else {
            return;
        };
        // Wake early by the lookahead, so the claim creates the runs ahead of the slot; a slot
        // already inside the lookahead (its job was still running) is claimed when it is due. A
        // slot that is already due but was not claimable (no free slot, a blocked job) waits for
        // a freed slot or the next tick; arming for it would spin.
        let now = self.clock.now();
        let early = crate::time::minus(next, self.config.claim_lookahead);
        let wake_at = if early > now { early } else { next };
        let Ok(delay) = (wake_at - now).to_std() else {
            return;
        };
        if delay.is_zero() || delay >= self.config.tick_interval {
            return;
        }
        self.wake = Some(ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            ctx.notify(Tick);
        }));
    }

    fn start_timers(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.tick_interval, |act, ctx| {
            if act.running {
                ctx.notify(Tick);
            }
        });
    }

    fn job_lookup(
        &self,
        job: JobRef,
    ) -> impl std::future::Future<Output = Result<PluginJobModel>> + 'static {
        let store = self.store.clone();
        async move {
            let label = match &job {
                JobRef::Id(id) => id.to_string(),
                JobRef::Key { plugin_id, job_key } => format!("{plugin_id}/{job_key}"),
            };
            store
                .send(GetJob(job))
                .await??
                .ok_or(Error::JobNotFound(label))
        }
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;
}

impl Handler<Start> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _msg: Start, ctx: &mut Self::Context) {
        if self.running || self.stopped {
            return;
        }
        self.running = true;
        if self.timers {
            self.start_timers(ctx);
            ctx.notify(Tick);
        }
    }
}

impl Handler<Tick> for SchedulerActor {
    type Result = AtomicResponse<Self, ()>;

    /// Answers once the claim is done and its runs are spawned (not finished).
    fn handle(&mut self, _msg: Tick, ctx: &mut Self::Context) -> Self::Result {
        if !self.running {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        self.tick_count += 1;
        self.last_tick_at = Some(self.clock.now());
        // Wall time, not the scheduler's clock: a manual clock does not move during a tick.
        let started = std::time::Instant::now();
        AtomicResponse::new(Box::pin(self.dispatch(ctx).map(move |(), act, _ctx| {
            act.emit(RunEvent::TickFinished {
                duration: started.elapsed(),
            });
        })))
    }
}

impl Handler<RunFinished> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: RunFinished, ctx: &mut Self::Context) {
        self.runs.finish(msg.job_id, msg.run_id);
        if !self.running {
            return;
        }
        if self.runs.queued_count() > 0 {
            self.start_queued_manual(ctx);
        } else if self.saturated && !self.claim_queued {
            // Due jobs may be waiting for this slot: claim now rather than at the next tick,
            // once for all the runs that finish meanwhile rather than once per freed slot.
            self.claim_queued = true;
            ctx.notify(ClaimFreedSlots);
        }
    }
}

impl Handler<RunSettled> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: RunSettled, _ctx: &mut Self::Context) {
        self.runs.settle(msg.job_id, msg.run_id);
    }
}

impl Handler<GetTrackedRuns> for SchedulerActor {
    type Result = MessageResult<GetTrackedRuns>;

    fn handle(&mut self, _msg: GetTrackedRuns, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.runs.tracked_run_ids())
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

/// Claims due jobs for the slots that finished runs freed. Sent by the scheduler to itself.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct ClaimFreedSlots;

impl Handler<ClaimFreedSlots> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _msg: ClaimFreedSlots, ctx: &mut Self::Context) {
        self.claim_queued = false;
        if self.running && self.free_slots() > 0 {
            let dispatch = self.dispatch(ctx);
            ctx.wait(dispatch);
        }
    }
}

impl Handler<TriggerJob> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<TriggeredRun>>;

    fn handle(&mut self, msg: TriggerJob, _ctx: &mut Self::Context) -> Self::Result {
        if !self.running && self.stopped {
            return Box::pin(fut::ready(Err(Error::ShuttingDown)));
        }
        let lookup = self.job_lookup(msg.job);
        let store = self.store.clone();
        let instance_id = self.instance_id.clone();
        let now = self.clock.now();
        let trigger = msg.trigger;
        Box::pin(
            lookup
                .into_actor(self)
                .then(move |job, act, _ctx| {
                    let checked = job.and_then(|job| {
                        if job.status != JobStatus::Active {
                            return Err(Error::JobNotActive {
                                job: job.job_key,
                                status: job.status.to_string(),
                            });
                        }
                        if act.runs.holds(job.id) {
                            return Err(Error::AlreadyRunning {
                                job: job.job_key,
                                detail: String::new(),
                            });
                        }
                        if !act.workers.is_running(&job.plugin_id) {
                            return Err(Error::WorkerNotRunning(job.plugin_id));
                        }
                        Ok(job)
                    });
                    async move {
                        let job = checked?;
                        let run = store
                            .send(CreateRun {
                                job_id: job.id,
                                trigger,
                                instance_id,
                                now,
                            })
                            .await??;
                        Ok((run, job))
                    }
                    .into_actor(act)
                })
                .map(
                    |created: Result<(PluginJobRunModel, PluginJobModel)>, act, ctx| {
                        let (run, job) = created?;
                        let triggered = TriggeredRun {
                            run_id: run.id,
                            job_id: job.id,
                        };
                        act.emit(RunEvent::RunQueued {
                            run_id: run.id,
                            job_id: job.id,
                            plugin_id: job.plugin_id.clone(),
                            job_key: job.job_key.clone(),
                            trigger: run.trigger,
                            scheduled_for: run.scheduled_for,
                        });
                        // First in, first out: a new manual run never overtakes a queued one.
                        act.runs
                            .push_manual(job.id, run.id, job.plugin_id.clone(), (run, job));
                        act.start_queued_manual(ctx);
                        Ok(triggered)
                    },
                ),
        )
    }
}

impl Handler<RegisterPlugin> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<Vec<PluginJobModel>>>;

    fn handle(&mut self, msg: RegisterPlugin, _ctx: &mut Self::Context) -> Self::Result {
        let store = self.store.clone();
        let sync = SyncJobDeclarations {
            plugin_id: msg.plugin_id.clone(),
            jobs: msg.jobs,
            now: self.clock.now(),
        };
        let plugin_id = msg.plugin_id;
        Box::pin(async move { store.send(sync).await? }.into_actor(self).map(
            move |jobs, act, ctx| {
                let jobs = jobs?;
                act.plugins.insert(plugin_id);
                if act.running && act.timers {
                    // A new job may be due sooner than anything the wake was armed for.
                    ctx.notify(Tick);
                }
                Ok(jobs)
            },
        ))
    }
}

impl Handler<UnregisterPlugin> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<()>>;

    /// Answers at once; each live run of the plugin records its cancellation and keeps its job
    /// until its worker lets go of it.
    fn handle(&mut self, msg: UnregisterPlugin, _ctx: &mut Self::Context) -> Self::Result {
        const REASON: &str = "Plugin unregistered";
        self.plugins.remove(&msg.plugin_id);
        for live in self.runs.unsettled(Some(&msg.plugin_id)) {
            live.handle.do_send(Cancel {
                reason: REASON.to_owned(),
            });
        }
        let queued = self.runs.drain_queued(Some(&msg.plugin_id));
        let store = self.store.clone();
        let now = self.clock.now();
        Box::pin(
            async move {
                cancel_queued(&store, &queued, REASON, now).await;
                Ok(())
            }
            .into_actor(self),
        )
    }
}

/// How long the shutdown waits for cancelled runs to record their outcome.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

/// Records queued runs that never started as `cancelled`.
async fn cancel_queued(store: &Addr<StoreActor>, runs: &[Uuid], reason: &str, now: DateTime<Utc>) {
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

fn set_status(
    act: &SchedulerActor,
    job: JobRef,
    status: JobStatus,
) -> ResponseActFuture<SchedulerActor, Result<PluginJobModel>> {
    let lookup = act.job_lookup(job);
    let store = act.store.clone();
    let now = act.clock.now();
    Box::pin(
        async move {
            let job = lookup.await?;
            store
                .send(SetJobStatus {
                    job_id: job.id,
                    status,
                    now,
                })
                .await?
        }
        .into_actor(act)
        .map(move |job, act, ctx| {
            if job.is_ok() && status == JobStatus::Active && act.running && act.timers {
                ctx.notify(Tick);
            }
            job
        }),
    )
}

impl Handler<PauseJob> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<PluginJobModel>>;

    fn handle(&mut self, msg: PauseJob, _ctx: &mut Self::Context) -> Self::Result {
        set_status(self, msg.0, JobStatus::Paused)
    }
}

impl Handler<ResumeJob> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<PluginJobModel>>;

    fn handle(&mut self, msg: ResumeJob, _ctx: &mut Self::Context) -> Self::Result {
        set_status(self, msg.0, JobStatus::Active)
    }
}

impl Handler<GetDiagnostics> for SchedulerActor {
    type Result = MessageResult<GetDiagnostics>;

    fn handle(&mut self, _msg: GetDiagnostics, _ctx: &mut Self::Context) -> Self::Result {
        let active_job_ids = self.runs.live_job_ids();
        let mut registered_plugins: Vec<String> = self.plugins.iter().cloned().collect();
        registered_plugins.sort();
        MessageResult(Diagnostics {
            running: self.running,
            active_job_count: active_job_ids.len(),
            active_job_ids,
            queued_manual_runs: self.runs.queued_count(),
            tick_count: self.tick_count,
            last_tick_at: self.last_tick_at.map(iso),
            instance_id: self.instance_id.clone(),
            max_concurrent_runs: self.runs.max_concurrent(),
            registered_plugins,
            skipped_slots: self.skipped_slots,
        })
    }
}

impl Handler<Subscribe> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        self.events.subscribe(msg.0);
    }
}

impl Handler<Shutdown> for SchedulerActor {
    type Result = ResponseActFuture<Self, ShutdownReport>;

    /// Answers once every run has finished or has its cancellation recorded; a cancelled run's
    /// job stays blocked until its worker lets go (see [`AwaitReleased`]).
    fn handle(&mut self, msg: Shutdown, _ctx: &mut Self::Context) -> Self::Result {
        let first = !self.stopped;
        self.running = false;
        self.stopped = true;
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
                let reason = "Scheduler shutting down before the run started";
                cancel_queued(&store, &queued, reason, now).await;
                let drained = actix_rt::time::timeout(msg.grace, drained).await.is_ok();
                (queued.len(), drained)
            }
            .into_actor(self)
            .then(move |(queued, drained), act, _ctx| {
                let mut cancelled = queued;
                if !drained {
                    for live in act.runs.unsettled(None) {
                        cancelled += 1;
                        live.handle.do_send(Cancel {
                            reason: reason.clone(),
                        });
                    }
                }
                let settled = act.runs.wait_settled();
                let finished = live_before.saturating_sub(cancelled - queued);
                async move {
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
