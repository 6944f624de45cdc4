//! The `SchedulerActor`'s commands: run a job now (`TriggerJob`), start a due retry
//! (`RunRetry`), register and unregister a plugin, pause and resume a job, cancel a run
//! (`CancelRun`). Each checks what this
//! instance knows (the job is not held here, its worker runs), then lets the store decide
//! atomically.

use actix::prelude::*;
use entity::prelude::*;
use serde::Serialize;
use uuid::Uuid;

use crate::events::RunEvent;
use crate::job_run::Cancel;
use crate::store::{
    BackfillStart, CancelStaleRun, CreateRun, GetJob, GetRun, JobDeclaration, JobRef, RetryStart,
    SetJobStatus, StartBackfill, StartRetry, StoreActor, SyncJobDeclarations,
};
use crate::{Error, Result};

use super::shutdown::cancel_queued;
use super::{Lifecycle, SchedulerActor, Tick};

/// Runs a job now. Answers as soon as the run is created `queued`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<TriggeredRun>")]
pub struct TriggerJob {
    pub job: JobRef,
    /// `Manual` or `Retry`.
    pub trigger: RunTrigger,
    /// A one-off payload for this run instead of the job's (at most 16 KiB as JSON).
    pub payload: Option<serde_json::Value>,
}

/// Starts a due retry on this instance, if it can run the job now. Sent by the `RetryActor`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<RetryStart>")]
pub struct RunRetry(pub RetryModel);

/// Starts a pending backfilled slot on this instance, if it can run the job now. Sent by the
/// `RetryActor`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<BackfillStart>")]
pub struct RunBackfill(pub BackfillModel);

/// The run a trigger created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggeredRun {
    pub run_id: Uuid,
    pub job_id: Uuid,
}

/// Registers a plugin and syncs the jobs it declares. Answers its declared jobs, the ones it no
/// longer declares (retired) and any API job holding a declared key; see
/// [`SyncJobDeclarations`].
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<PluginJobModel>>")]
pub struct RegisterPlugin {
    pub plugin_id: String,
    pub jobs: Vec<JobDeclaration>,
    /// The plugin's own settings (its manifest's top level); the default has none.
    pub options: PluginOptions,
}

/// A plugin's own scheduling settings, beside its jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginOptions {
    /// At most this many runs of the plugin's jobs at once on this instance (manifest
    /// `maxConcurrentRuns`), under the instance's `max_concurrent_runs`. `None`: only the
    /// instance's limit bounds it.
    pub max_concurrent_runs: Option<usize>,
}

impl PluginOptions {
    /// Settings with a limit of `max` runs at once.
    pub fn max_concurrent_runs(max: usize) -> Self {
        Self {
            max_concurrent_runs: Some(max),
        }
    }
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

/// An operator's cancellation of a live run of this instance: a run waiting for its slot or for
/// a free one ends `cancelled` at once; a running one gets `cancelJob`, is recorded `cancelled`,
/// and keeps its job until its worker lets go (as after a timeout). Answers the run once its
/// outcome is recorded (or as it is after [`CANCEL_ANSWER_WAIT`]).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<PluginJobRunModel>")]
pub struct CancelRun(pub Uuid);

/// The error recorded on a run an operator cancelled.
pub const CANCELLED_BY_OPERATOR: &str = "cancelled by an operator";

/// What a [`CancelRun`] found the run to be.
enum Cancelling {
    /// Its actor here was told to cancel it; it records the outcome.
    Held,
    /// A manual run queued here for a free slot, taken off the queue: its row is cancelled.
    Queued(Box<PluginJobModel>),
    /// Not held here: this instance's run that has just ended (its outcome is being written),
    /// or another instance's, which is ended here only if that instance stopped heartbeating it.
    Elsewhere,
}

/// How long [`CancelRun`] waits for the run's outcome to be written before it answers.
pub const CANCEL_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl SchedulerActor {
    /// Stops `run` if this instance holds it, and says what is left to do.
    fn cancel_held(&mut self, run: &PluginJobRunModel) -> Result<Cancelling> {
        if !RunStatus::LIVE.contains(&run.status) {
            return Err(Error::RunEnded {
                run: run.id,
                status: run.status.to_string(),
            });
        }
        if let Some(live) = self
            .runs
            .live(run.job_id)
            .filter(|live| live.run_id == run.id)
        {
            if live.settled {
                // Its outcome is recorded (the worker may still hold the job): it has ended.
                return Ok(Cancelling::Elsewhere);
            }
            if !self.cancelling.insert(run.id) {
                return Err(Error::RunCancelling(run.id));
            }
            live.handle.do_send(Cancel {
                reason: CANCELLED_BY_OPERATOR.to_owned(),
                before_start: Some(format!("{CANCELLED_BY_OPERATOR} before the run started")),
            });
            return Ok(Cancelling::Held);
        }
        if let Some((_, job)) = self.runs.remove_queued(run.id) {
            return Ok(Cancelling::Queued(Box::new(job)));
        }
        Ok(Cancelling::Elsewhere)
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

impl Handler<TriggerJob> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<TriggeredRun>>;

    fn handle(&mut self, msg: TriggerJob, _ctx: &mut Self::Context) -> Self::Result {
        if self.lifecycle == Lifecycle::Stopped {
            return Box::pin(fut::ready(Err(Error::ShuttingDown)));
        }
        let lookup = self.job_lookup(msg.job);
        let store = self.store.clone();
        let instance_id = self.instance_id.clone();
        let now = self.clock.now();
        let trigger = msg.trigger;
        let payload = msg.payload;
        Box::pin(
            lookup
                .into_actor(self)
                .then(move |job, act, _ctx| {
                    let checked = job.and_then(|job| {
                        if job.status != JobStatus::Active {
                            return Err(Error::JobNotActive {
                                job: job.job_key,
                                status: job.status.to_string(),
                                action: "triggered",
                            });
                        }
                        if let Some(live) = act.runs.live(job.id) {
                            // A settled run is over in the database, but its worker has not
                            // answered the timed-out or cancelled call: say so, not "running".
                            let detail = if live.settled {
                                format!(
                                    " (its run {} has ended, but the worker has not let go of \
                                     the call yet; the job is free once it answers or is \
                                     restarted)",
                                    live.run_id
                                )
                            } else {
                                format!(" (run {})", live.run_id)
                            };
                            return Err(Error::AlreadyRunning {
                                job: job.job_key,
                                detail,
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
                                payload,
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
                        act.queue_run(run, job, ctx);
                        Ok(triggered)
                    },
                ),
        )
    }
}

impl SchedulerActor {
    /// Queues a created manual or retry run behind the ones already waiting (first in, first
    /// out: a new run never overtakes a queued one) and starts what the budget allows.
    fn queue_run(&mut self, run: PluginJobRunModel, job: PluginJobModel, ctx: &mut Context<Self>) {
        self.emit(RunEvent::RunQueued {
            run_id: run.id,
            job_id: job.id,
            plugin_id: job.plugin_id.clone(),
            job_key: job.job_key.clone(),
            trigger: run.trigger,
            scheduled_for: run.scheduled_for,
        });
        self.runs
            .push_manual(job.id, run.id, job.plugin_id.clone(), (run, job));
        self.start_queued_manual(ctx);
    }
}

impl Handler<RunRetry> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<RetryStart>>;

    fn handle(&mut self, msg: RunRetry, _ctx: &mut Self::Context) -> Self::Result {
        let retry = msg.0;
        let start = StartRetry {
            retry_id: retry.id,
            instance_id: self.instance_id.clone(),
            now: self.clock.now(),
        };
        self.start_pending(retry.job_id, &retry.plugin_id, start)
    }
}

impl Handler<RunBackfill> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<BackfillStart>>;

    fn handle(&mut self, msg: RunBackfill, _ctx: &mut Self::Context) -> Self::Result {
        let slot = msg.0;
        let start = StartBackfill {
            backfill_id: slot.id,
            instance_id: self.instance_id.clone(),
            misfire_grace: self.config.misfire_grace,
            now: self.clock.now(),
        };
        self.start_pending(slot.job_id, &slot.plugin_id, start)
    }
}

/// A store's answer to starting a pending run (a retry, a backfilled slot).
trait PendingStart: Send + 'static {
    /// The answer when this instance leaves the start to another, or to a later pass.
    const NOT_HERE: Self;
    /// The run and its job, when the run was created.
    fn created(&self) -> Option<(&PluginJobRunModel, &PluginJobModel)>;
}

impl PendingStart for RetryStart {
    const NOT_HERE: Self = RetryStart::Busy;

    fn created(&self) -> Option<(&PluginJobRunModel, &PluginJobModel)> {
        match self {
            RetryStart::Started { run, job } => Some((run, job)),
            _ => None,
        }
    }
}

impl PendingStart for BackfillStart {
    const NOT_HERE: Self = BackfillStart::Busy;

    fn created(&self) -> Option<(&PluginJobRunModel, &PluginJobModel)> {
        match self {
            BackfillStart::Started { run, job } => Some((run.as_ref(), job.as_ref())),
            _ => None,
        }
    }
}

impl SchedulerActor {
    /// Lets the store start a pending run of `job_id` and queues the run it created. This
    /// instance leaves it to another (or to a later pass) when it is stopping, when it already
    /// runs the job, or when the plugin's worker is not running here.
    fn start_pending<M, A>(
        &mut self,
        job_id: Uuid,
        plugin_id: &str,
        start: M,
    ) -> ResponseActFuture<Self, Result<A>>
    where
        M: Message<Result = Result<A>> + Send + 'static,
        StoreActor: Handler<M>,
        A: PendingStart,
    {
        if self.lifecycle == Lifecycle::Stopped
            || self.runs.holds(job_id)
            || !self.workers.is_running(plugin_id)
        {
            return Box::pin(fut::ready(Ok(A::NOT_HERE)));
        }
        let store = self.store.clone();
        Box::pin(
            async move { crate::store::ask(&store, start).await }
                .into_actor(self)
                .map(|started, act, ctx| {
                    let started = started?;
                    if let Some((run, job)) = started.created() {
                        act.queue_run(run.clone(), job.clone(), ctx);
                    }
                    Ok(started)
                }),
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
        let cap = msg.options.max_concurrent_runs;
        Box::pin(async move { store.send(sync).await? }.into_actor(self).map(
            move |jobs, act, ctx| {
                let jobs = jobs?;
                for job in &jobs {
                    act.job_changed(job);
                }
                act.runs.set_plugin_cap(&plugin_id, cap);
                act.plugins.insert(plugin_id);
                if act.is_running() && act.timers {
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
        self.runs.set_plugin_cap(&msg.plugin_id, None);
        for live in self.runs.unsettled(Some(&msg.plugin_id)) {
            live.handle.do_send(Cancel::new(REASON));
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

impl Handler<CancelRun> for SchedulerActor {
    type Result = ResponseActFuture<Self, Result<PluginJobRunModel>>;

    fn handle(&mut self, msg: CancelRun, _ctx: &mut Self::Context) -> Self::Result {
        let run_id = msg.0;
        let store = self.store.clone();
        let lookup = async move {
            store
                .send(GetRun(run_id))
                .await??
                .ok_or(Error::RunNotFound(run_id))
        };
        Box::pin(lookup.into_actor(self).then(move |found, act, _ctx| {
            let decided = found.and_then(|run| Ok((act.cancel_held(&run)?, run)));
            let ours = act.instance_id.clone();
            let (store, events) = (act.store.clone(), act.events.clone());
            let (now, lease) = (act.clock.now(), act.config.run_lease);
            async move {
                let (cancelling, run) = decided?;
                match cancelling {
                    Cancelling::Held => {}
                    Cancelling::Queued(job) => {
                        let reason = format!("{CANCELLED_BY_OPERATOR} before the run started");
                        cancel_queued(&store, &[run_id], &reason, now).await;
                        crate::job_run::report_ended_unstarted(store.clone(), events, run_id, &job);
                    }
                    Cancelling::Elsewhere if run.instance_id.as_deref() == Some(ours.as_str()) => {
                        // Ours, but no longer in the run table: it ended between the read and
                        // now (another cancellation, its own outcome). Its outcome is being
                        // written; the caller hears how it ended.
                        let run = run_once_ended(&store, run_id).await?;
                        return Err(if RunStatus::LIVE.contains(&run.status) {
                            Error::RunCancelling(run_id)
                        } else {
                            Error::RunEnded {
                                run: run_id,
                                status: run.status.to_string(),
                            }
                        });
                    }
                    Cancelling::Elsewhere => {
                        let instance = run.instance_id.as_deref().unwrap_or("(none recorded)");
                        let reason = format!(
                            "{CANCELLED_BY_OPERATOR} (instance {instance}, which ran it, had \
                             stopped heartbeating it)"
                        );
                        let stale = CancelStaleRun {
                            run_id,
                            lease,
                            reason,
                            now,
                        };
                        if !crate::store::ask(&store, stale).await? {
                            return Err(Error::RunElsewhere {
                                run: run_id,
                                instance: instance.to_owned(),
                            });
                        }
                        let job = store.send(GetJob(JobRef::Id(run.job_id))).await??;
                        if let Some(job) = job {
                            crate::job_run::report_ended_unstarted(
                                store.clone(),
                                events,
                                run_id,
                                &job,
                            );
                        }
                    }
                }
                // The run's actor records the outcome; answer with it once it is there.
                run_once_ended(&store, run_id).await
            }
            .into_actor(act)
        }))
    }
}

/// The run once its outcome is recorded, or as it is after [`CANCEL_ANSWER_WAIT`].
async fn run_once_ended(store: &Addr<StoreActor>, run_id: Uuid) -> Result<PluginJobRunModel> {
    let deadline = tokio::time::Instant::now() + CANCEL_ANSWER_WAIT;
    loop {
        let run = store
            .send(GetRun(run_id))
            .await??
            .ok_or(Error::RunNotFound(run_id))?;
        if !RunStatus::LIVE.contains(&run.status) || tokio::time::Instant::now() >= deadline {
            return Ok(run);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
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
            if job.is_ok() && status == JobStatus::Active && act.is_running() && act.timers {
                ctx.notify(Tick);
            }
            if let Ok(changed) = &job {
                act.job_changed(changed);
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
