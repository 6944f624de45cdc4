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
//! `ResumeJob`, `JobUpdated`, `RunRetry`, `RunFinished`, `RunSettled`, `GetTrackedRuns`,
//! `GetDiagnostics`, `Subscribe`, `Shutdown`, `AwaitReleased`. Sends: store messages, `Cancel` to
//! its `JobRunActor`s, `RunEvent`s on the bus. The `RunFence` beside it (`fence.rs`) fences its
//! runs without going through its mailbox.
//!
//! Rooms: this file is dispatch (the actor, ticks and wakes, claims, spawning runs, the run
//! lifecycle messages); `commands.rs` the operator and plugin commands (trigger, retry,
//! register, unregister, pause, resume); `shutdown.rs` the shutdown and `AwaitReleased`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::SchedulerConfig;
use crate::events::SkipReason;
use crate::events::{EventBus, RunEvent, Subscribe};
use crate::job_run::{Cancel, JobRunActor, RunDeps, RunFinished, RunSettled};
use crate::maintenance::GetTrackedRuns;
use crate::run_table::{LiveRun, RunTable};
use crate::store::{ClaimDueJobs, ClaimOutcome, GetNextDueAt, SkippedSlot, StoreActor};
use crate::time::iso;
use crate::worker::{WorkerManager, WorkerStatus};

mod commands;
mod fence;
mod shutdown;

pub use commands::{
    CANCELLED_BY_OPERATOR, CancelRun, PauseJob, PluginOptions, RegisterPlugin, ResumeJob,
    RunBackfill, RunRetry, TriggerJob, TriggeredRun, UnregisterPlugin,
};
pub use fence::{LiveRunActors, RunFence};
pub use shutdown::{AwaitReleased, Shutdown, ShutdownReport};

/// Starts ticking (the timer, unless ticks are manual). A second `Start` is a no-op.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Start;

/// Claims and dispatches due jobs. Sent by the timers; tests send it themselves.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Tick;

/// Jobs changed in the database (created, changed or retired through the API): a running
/// scheduler with timers claims at once, so the change takes effect without waiting for a tick.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct JobsChanged;

/// A job was changed through the API (created, patched, deleted). When it stopped being active
/// its queued manual runs, cancelled in the database with it, leave the queue now rather than
/// when a slot frees, and are reported finished; when its slot pointer moved past the slot that
/// waited for its live run, that slot is recorded skipped.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct JobUpdated(pub PluginJobModel);

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
    /// The most runs one claim creates: half of `max_concurrent_runs` from a budget of 64 on
    /// (the halves take turns with the store), all of it below.
    pub claim_size: usize,
    pub registered_plugins: Vec<String>,
    pub skipped_slots: u64,
    /// Slots that wait for their job's live run to end (overlap `queue_one` or
    /// `cancel_previous`), by job id, as this instance last saw them.
    pub waiting_slots: BTreeMap<Uuid, String>,
    /// The plugins with a `maxConcurrentRuns` of their own, and that limit.
    pub plugin_limits: BTreeMap<String, usize>,
}

/// A manual run waiting for a free slot.
type QueuedRun = (PluginJobRunModel, PluginJobModel);

/// Where the scheduler is in its life: created, ticking, or stopped for good (a shutdown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    /// Built, not yet sent `Start`: no tick claims anything.
    Created,
    /// Ticking (on its timers, or on the `Tick`s a test sends).
    Running,
    /// Shut down: no tick, trigger or retry is taken any more.
    Stopped,
}

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
    lifecycle: Lifecycle,
    tick_count: u64,
    last_tick_at: Option<DateTime<Utc>>,
    skipped_slots: u64,
    plugins: HashSet<String>,
    runs: RunTable<Addr<JobRunActor>, QueuedRun>,
    events: EventBus,
    wake: Option<SpawnHandle>,
    /// True when the last claim filled every free slot, so a freed slot should claim again.
    saturated: bool,
    /// A `ClaimFreedSlots` is on its way: at once, or after the gather.
    claim_queued: Option<QueuedClaim>,
    /// Slots waiting for their job's live run (overlap `queue_one`, `cancel_previous`): when
    /// that run finishes here, the scheduler claims at once so the slot starts.
    waiting: HashMap<Uuid, DateTime<Utc>>,
    /// Claims in a row that left out due jobs held by another transaction: each claims again
    /// after a delay that doubles with this count, up to the tick.
    contended: u32,
    /// The actors of the runs not settled yet, shared with the `RunFence`.
    live_actors: LiveRunActors,
    /// Runs an operator's cancellation was sent to and that have not settled yet: a second
    /// one, sent meanwhile, is told so rather than answered as if it had cancelled the run.
    cancelling: HashSet<Uuid>,
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
            lifecycle: Lifecycle::Created,
            tick_count: 0,
            last_tick_at: None,
            skipped_slots: 0,
            plugins: HashSet::new(),
            events,
            wake: None,
            saturated: false,
            claim_queued: None,
            waiting: HashMap::new(),
            contended: 0,
            live_actors: LiveRunActors::default(),
            cancelling: HashSet::new(),
        }
    }

    fn is_running(&self) -> bool {
        self.lifecycle == Lifecycle::Running
    }

    fn free_slots(&self) -> usize {
        self.runs.free_slots()
    }

    /// The most runs one claim creates: half the budget when the budget is large, so that one
    /// half's claim is written while the other half's runs go through their actors (see
    /// [`PIPELINED_BUDGET`]); the whole budget otherwise.
    fn claim_size(&self) -> usize {
        claim_size(self.runs.max_concurrent())
    }

    /// Sends a `ClaimFreedSlots` now, replacing one that waits out the gather.
    fn claim_now(&mut self, ctx: &mut Context<Self>) {
        match self.claim_queued.take() {
            Some(QueuedClaim::Now) => {}
            Some(QueuedClaim::Gathering(handle)) => {
                ctx.cancel_future(handle);
                ctx.notify(ClaimFreedSlots);
            }
            None => ctx.notify(ClaimFreedSlots),
        }
        self.claim_queued = Some(QueuedClaim::Now);
    }

    /// The list of this scheduler's live run actors, for a [`RunFence`] (take it before the
    /// actor starts; both must run in the same actix System).
    pub fn live_run_actors(&self) -> LiveRunActors {
        self.live_actors.clone()
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
        self.live_actors.insert(run_id, handle.clone());
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

    /// Drops the queued manual runs of a job that stopped being active (the store cancelled
    /// them with it) and reports each as it ended.
    fn drop_queued_of(&mut self, job_id: Uuid) {
        for (run, job) in self.runs.drop_queued_of(job_id) {
            crate::job_run::report_ended_unstarted(
                self.store.clone(),
                self.events.clone(),
                run.id,
                &job,
            );
        }
    }

    /// Catches up with a job changed in the store. A job paused or retired loses its queued
    /// manual runs: the store cancelled them with the change (those of a job that went `failed`
    /// were not cancelled, and stay queued). The slot it had waiting for its live run (overlap
    /// `queue_one` or `cancel_previous`) is dropped when the job stopped being active (a resume
    /// starts from the next slot) or its pointer moved past the slot (a new schedule): it is
    /// recorded skipped, so that it does not pass unrecorded. A pointer at or before the
    /// waiting slot is the slot itself, or an older view of the job than the claim's.
    fn job_changed(&mut self, job: &PluginJobModel) {
        let halted = job.status != JobStatus::Active;
        if matches!(job.status, JobStatus::Paused | JobStatus::Retired) {
            self.drop_queued_of(job.id);
        }
        let Some(&slot) = self.waiting.get(&job.id) else {
            return;
        };
        if !halted && job.next_run_at.is_some_and(|next| next <= slot) {
            return;
        }
        self.waiting.remove(&job.id);
        self.record_skipped(SkippedSlot {
            job_id: job.id,
            plugin_id: job.plugin_id.clone(),
            job_key: job.job_key.clone(),
            slot,
            reason: SkipReason::Overlap,
            count: 1,
        });
    }

    /// Starts the queued manual runs (triggers, retries, backfilled slots), oldest first, that
    /// slots are free for, except those whose worker is starting or restarting (one a cancel or
    /// a timeout just restarted, say): they wait for it, and go when it runs (`JobsChanged`). A
    /// worker that failed for good or is stopped does not hold them: their runs end failed, not
    /// queued forever.
    fn start_queued_manual(&mut self, ctx: &mut Context<Self>) {
        let workers = Arc::clone(&self.workers);
        let ready = |plugin: &str| {
            !matches!(
                workers.status(plugin),
                WorkerStatus::Starting | WorkerStatus::Restarting
            )
        };
        while let Some((run, job)) = self.runs.pop_startable(ready) {
            self.spawn_run(run, job, ctx);
        }
    }

    /// Claims due jobs for the free slots and spawns their runs; then re-arms the wake. The
    /// returned future must run atomically (`ctx.wait` or `AtomicResponse`), so that the budget
    /// it computed cannot change under it.
    fn dispatch(&mut self, ctx: &mut Context<Self>) -> ResponseActFuture<Self, ()> {
        self.start_queued_manual(ctx);
        let free = self.free_slots();
        let limit = free.min(self.claim_size());
        let mut plugin_ids: Vec<String> = self
            .plugins
            .iter()
            .filter(|plugin| self.workers.is_running(plugin))
            .cloned()
            .collect();
        // Fairness: the plugins holding the fewest slots here get the first turns of the claim.
        plugin_ids.sort_by_cached_key(|plugin| (self.runs.live_count_of(plugin), plugin.clone()));
        let mut plugin_limits = self.runs.plugin_limits();
        plugin_limits.retain(|plugin, _| plugin_ids.contains(plugin));
        let now = self.clock.now();
        let claim = ClaimDueJobs {
            now,
            limit: limit as u64,
            plugin_ids: plugin_ids.clone(),
            plugin_limits: plugin_limits.clone(),
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
                // A claim that created all the runs it could claims again as soon as a slot
                // frees (or at once, when it was cut at the claim size), so it needs no wake-up
                // (and skips a query that costs the most under load).
                let filled =
                    matches!(&claimed, Ok(outcome) if limit > 0 && outcome.claimed.len() >= limit);
                let next = if filled {
                    Ok(None)
                } else {
                    crate::store::ask(&store, next_due).await
                };
                (claimed, next, filled)
            }
            .into_actor(self)
            .map(move |(claimed, next, filled), act, ctx| {
                let contended = matches!(&claimed, Ok(outcome) if outcome.contended);
                match claimed {
                    Ok(outcome) => {
                        act.saturated = saturates(&outcome, limit, &plugin_limits);
                        if filled && limit < free {
                            // Cut at the claim size while more slots are free: the next claim
                            // goes to the store now, and is written while these runs start.
                            act.claim_now(ctx);
                        }
                        if limit > 0 {
                            // The claim saw every due job it could start: what waits now is
                            // what it reports (a slot another instance started waits no more).
                            // A job whose run is live here keeps its entry until that run ends:
                            // while its job is blocked the claim does not see it.
                            let runs = &act.runs;
                            act.waiting.retain(|job, _| runs.live(*job).is_some());
                        }
                        act.apply_claim(outcome, ctx);
                    }
                    Err(err) => log::error!("claiming due jobs failed: {err}"),
                }
                match next {
                    Ok(next) => act.arm_wake(next, ctx),
                    Err(err) => log::error!("reading the next due slot failed: {err}"),
                }
                act.retry_contended(contended, ctx);
            }),
        )
    }

    /// Counts, logs and emits a due slot (or several) that passed without a run.
    fn record_skipped(&mut self, skipped: SkippedSlot) {
        self.skipped_slots += u64::from(skipped.count);
        let (job, first) = (
            format!("{}/{}", skipped.plugin_id, skipped.job_key),
            iso(skipped.slot),
        );
        match skipped.count {
            1 => log::info!("skipped slot {first} of {job}: {}", skipped.reason),
            n => log::info!(
                "skipped {n} slots of {job} from {first}: {}",
                skipped.reason
            ),
        }
        self.emit(RunEvent::SlotSkipped {
            job_id: skipped.job_id,
            plugin_id: skipped.plugin_id,
            job_key: skipped.job_key,
            slot: skipped.slot,
            reason: skipped.reason,
            count: skipped.count,
        });
    }

    /// Records what a claim did: skipped slots, slots that wait (cancelling the live run a
    /// `cancel_previous` slot preempts), and the runs to spawn.
    fn apply_claim(&mut self, outcome: ClaimOutcome, ctx: &mut Context<Self>) {
        for skipped in outcome.skipped {
            self.record_skipped(skipped);
        }
        for waiting in outcome.waiting {
            if let Some(run_id) = waiting.preempt
                && let Some(live) = self.runs.live(waiting.job_id)
                && live.run_id == run_id
                && !live.settled
            {
                let reason = format!(
                    "cancelled: slot {} is due (overlap: cancel_previous)",
                    iso(waiting.slot)
                );
                log::info!(
                    "{}/{}: cancelling run {run_id} for slot {}",
                    waiting.plugin_id,
                    waiting.job_key,
                    iso(waiting.slot)
                );
                live.handle.do_send(Cancel::new(reason));
            }
            self.waiting.insert(waiting.job_id, waiting.slot);
        }
        for claimed in outcome.claimed {
            self.waiting.remove(&claimed.job.id);
            self.emit(RunEvent::RunQueued {
                run_id: claimed.run.id,
                job_id: claimed.job.id,
                plugin_id: claimed.job.plugin_id.clone(),
                job_key: claimed.job.job_key.clone(),
                trigger: claimed.run.trigger,
                scheduled_for: claimed.run.scheduled_for,
            });
            self.spawn_run(claimed.run, claimed.job, ctx);
        }
    }

    /// Arms a one-shot `Tick` for the earliest slot, so runs start within milliseconds of it
    /// however long the tick interval is.
    fn arm_wake(&mut self, next: Option<DateTime<Utc>>, ctx: &mut Context<Self>) {
        if !self.timers || !self.is_running() {
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
        // a freed slot or the next tick; arming for it would spin. (One a claim skipped because
        // another transaction held its row is claimed again by `retry_contended`.)
        let now = self.clock.now();
        let early = crate::time::minus(next, self.config.claim_lookahead);
        let wake_at = if early > now { early } else { next };
        let Ok(delay) = (wake_at - now).to_std() else {
            return;
        };
        if delay.is_zero() || delay >= self.config.tick_interval {
            return;
        }
        self.wake_in(delay, ctx);
    }

    /// Arms the wake: a `Tick` after `delay`, replacing the wake armed before.
    fn wake_in(&mut self, delay: std::time::Duration, ctx: &mut Context<Self>) {
        if let Some(handle) = self.wake.take() {
            ctx.cancel_future(handle);
        }
        self.wake = Some(ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            ctx.notify(Tick);
        }));
    }

    /// After a claim that left out due jobs because another transaction held their rows
    /// (another instance's claim, or a batch of outcomes stamping the jobs it finished): claims
    /// again shortly, as the holder commits within milliseconds, instead of leaving those slots
    /// to the next tick. The delay doubles while claims stay contended (a row held for long
    /// costs a claim per tick at most). The claim it wakes re-arms the wake for the next slot.
    fn retry_contended(&mut self, contended: bool, ctx: &mut Context<Self>) {
        if !contended {
            self.contended = 0;
            return;
        }
        let delay = CONTENDED_RETRY.saturating_mul(1 << self.contended.min(16));
        self.contended = self.contended.saturating_add(1);
        if self.timers && self.is_running() && delay < self.config.tick_interval {
            self.wake_in(delay, ctx);
        }
    }

    fn start_timers(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.config.tick_interval, |act, ctx| {
            if act.is_running() {
                ctx.notify(Tick);
            }
        });
    }
}

/// Whether a claim used every slot it was given (`limit`), the instance's or a plugin's own:
/// then a slot that frees should claim again at once. A claim that had no slot to give (the
/// budget, or a plugin's own limit, already full) cannot tell whether due jobs wait, so it counts
/// as used up too; otherwise such a claim (a safety tick while every slot is busy) would leave
/// the jobs that are due waiting for the next tick instead of the next freed slot.
fn saturates(outcome: &ClaimOutcome, limit: usize, plugin_limits: &BTreeMap<String, u64>) -> bool {
    if outcome.claimed.len() >= limit {
        return true;
    }
    let mut per_plugin: HashMap<&str, u64> = HashMap::new();
    for claimed in &outcome.claimed {
        *per_plugin
            .entry(claimed.job.plugin_id.as_str())
            .or_default() += 1;
    }
    plugin_limits
        .iter()
        .any(|(plugin, limit)| per_plugin.get(plugin.as_str()).copied().unwrap_or(0) >= *limit)
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;
}

impl Handler<Start> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _msg: Start, ctx: &mut Self::Context) {
        if self.lifecycle != Lifecycle::Created {
            return;
        }
        self.lifecycle = Lifecycle::Running;
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
        if !self.is_running() {
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
        self.live_actors.remove(msg.run_id);
        if !self.cancelling.is_empty() {
            self.cancelling.remove(&msg.run_id);
        }
        if !self.is_running() {
            return;
        }
        // A slot that waited for this run (`queue_one`, `cancel_previous`) starts now.
        let slot_waits = self.waiting.remove(&msg.job_id).is_some();
        if self.runs.queued_count() > 0 {
            self.start_queued_manual(ctx);
        }
        if (self.saturated || slot_waits) && self.free_slots() > 0 {
            // Due jobs may be waiting for this slot: claim now rather than at the next tick,
            // once for all the runs that finish meanwhile rather than once per freed slot.
            if slot_waits || self.free_slots() * 2 >= self.runs.max_concurrent() {
                self.claim_now(ctx);
            } else if self.claim_queued.is_none() {
                // Runs end in batches (their outcomes are written together): a claim for the
                // first few freed slots would split the next batch, and every smaller batch
                // pays a claim and two writes of its own. The rest of this batch's ends arrive
                // within a few milliseconds (and once half the slots are free, the claim goes
                // at once).
                let handle = ctx.notify_later(ClaimFreedSlots, FREED_SLOTS_GATHER);
                self.claim_queued = Some(QueuedClaim::Gathering(handle));
            }
        }
    }
}

impl Handler<RunSettled> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: RunSettled, _ctx: &mut Self::Context) {
        self.runs.settle(msg.job_id, msg.run_id);
        self.live_actors.remove(msg.run_id);
        if !self.cancelling.is_empty() {
            self.cancelling.remove(&msg.run_id);
        }
    }
}

impl Handler<GetTrackedRuns> for SchedulerActor {
    type Result = MessageResult<GetTrackedRuns>;

    fn handle(&mut self, _msg: GetTrackedRuns, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.runs.tracked_run_ids())
    }
}

/// The first delay before claiming again after a contended claim; it doubles while claims stay
/// contended.
const CONTENDED_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// How long a claim for freed slots waits for more runs to end, while fewer than half of the
/// slots are free.
const FREED_SLOTS_GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// From this budget (`max_concurrent_runs`) on, one claim creates at most half of it, so a
/// burst goes in two halves that take turns: while the store writes one half's claim or its
/// outcomes, the other half's runs go through their actors on the actix thread, instead of the
/// database and the actors waiting for each other. Below it the claim's own cost outweighs what
/// the overlap saves, and a tick claims every free slot at once.
const PIPELINED_BUDGET: usize = 64;

/// The most runs one claim creates with this budget: half of it from [`PIPELINED_BUDGET`] on,
/// all of it below.
pub(crate) fn claim_size(budget: usize) -> usize {
    if budget >= PIPELINED_BUDGET {
        budget.div_ceil(2)
    } else {
        budget
    }
}

/// A `ClaimFreedSlots` on its way.
#[derive(Debug)]
enum QueuedClaim {
    /// Sent: it is handled after the messages already waiting.
    Now,
    /// Waiting out [`FREED_SLOTS_GATHER`].
    Gathering(SpawnHandle),
}

/// Claims due jobs for the slots that finished runs freed. Sent by the scheduler to itself.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct ClaimFreedSlots;

impl Handler<ClaimFreedSlots> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _msg: ClaimFreedSlots, ctx: &mut Self::Context) {
        self.claim_queued = None;
        if self.is_running() && self.free_slots() > 0 {
            let dispatch = self.dispatch(ctx);
            ctx.wait(dispatch);
        }
    }
}

impl Handler<GetDiagnostics> for SchedulerActor {
    type Result = MessageResult<GetDiagnostics>;

    fn handle(&mut self, _msg: GetDiagnostics, _ctx: &mut Self::Context) -> Self::Result {
        let active_job_ids = self.runs.live_job_ids();
        let mut registered_plugins: Vec<String> = self.plugins.iter().cloned().collect();
        registered_plugins.sort();
        MessageResult(Diagnostics {
            running: self.is_running(),
            active_job_count: active_job_ids.len(),
            active_job_ids,
            queued_manual_runs: self.runs.queued_count(),
            tick_count: self.tick_count,
            last_tick_at: self.last_tick_at.map(iso),
            instance_id: self.instance_id.clone(),
            max_concurrent_runs: self.runs.max_concurrent(),
            claim_size: self.claim_size(),
            registered_plugins,
            skipped_slots: self.skipped_slots,
            waiting_slots: self
                .waiting
                .iter()
                .map(|(job, slot)| (*job, iso(*slot)))
                .collect(),
            plugin_limits: self
                .plugins
                .iter()
                .filter_map(|plugin| Some((plugin.clone(), self.runs.plugin_cap(plugin)?)))
                .collect(),
        })
    }
}

impl Handler<JobsChanged> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, _msg: JobsChanged, ctx: &mut Self::Context) {
        if self.is_running() && self.timers {
            ctx.notify(Tick);
        }
    }
}

impl Handler<JobUpdated> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: JobUpdated, _ctx: &mut Self::Context) {
        self.job_changed(&msg.0);
    }
}

impl Handler<Subscribe> for SchedulerActor {
    type Result = ();

    fn handle(&mut self, msg: Subscribe, _ctx: &mut Self::Context) {
        self.events.subscribe(msg.0);
    }
}
