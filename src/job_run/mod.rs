//! The `JobRunActor`: one per run. It waits for its slot (a run claimed ahead), marks the run
//! running (unless the claim wrote it running, its slot being due), calls `runJob` on the
//! plugin's worker, enforces the job's timeout, records the outcome through the `StoreActor`,
//! tells the `SchedulerActor` `RunFinished`, and stops.
//!
//! A job is free again only when its worker is done with it. After a timeout or a `Cancel`
//! (operator, unregister, shutdown) the outcome is recorded at once together with a block on the
//! job (`blocked_until`, one transaction, seen by every instance), `cancelJob` goes to the
//! worker, and the actor keeps waiting: until the worker answers the call, or its process group
//! is gone (it exited, was stopped, or was restarted after the cancel grace). Only then is the
//! block cleared (a write retried like an outcome) and `RunFinished` reported.
//!
//! Handles: `Cancel`. Sends: `MarkRunning`, `CompleteRun`, `SetJobBlock` (store), `RunSettled`
//! and `RunFinished` (scheduler), `RunEvent`s (subscribers).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;

use crate::clock::Clock;
use crate::events::{EventBus, RunEvent};
use crate::store::{CompleteRun, GetRun, MarkRunning, SetJobBlock, StoreActor};
use crate::time::{elapsed_ms, iso, plus};
use crate::worker::{CancelJob, RunJob, RunLines, RunOutcome, WorkerManager};

mod writes;

use writes::{record_outcome, retry_write};

/// What a block lasts beyond the cancel grace: time for the worker's process group to be killed
/// and reaped (5 s) and for clock skew between instances (5 s). The block is cleared explicitly
/// as soon as the worker is done; the expiry only matters when this instance dies, and then its
/// worker dies with it.
pub const RELEASE_MARGIN: Duration = Duration::from_secs(10);

/// How long after asking for a worker restart the actor still waits for it to be done.
const RESTART_BOUND: Duration = Duration::from_secs(30);

/// Tells the scheduler a run is over and its job and slot are free.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RunFinished {
    pub job_id: uuid::Uuid,
    pub run_id: uuid::Uuid,
}

/// Tells the scheduler a run's outcome is recorded while its worker may still hold the job (a
/// timed-out or cancelled call): the job stays blocked until `RunFinished`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RunSettled {
    pub job_id: uuid::Uuid,
    pub run_id: uuid::Uuid,
}

/// Stops a run early: `cancelJob` goes to the worker and the run is recorded `cancelled` with
/// `reason`; the job stays blocked until the worker is done with the run.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Cancel {
    pub reason: String,
    /// The reason to record instead when the run is still waiting for its slot (nothing reached
    /// the worker).
    pub before_start: Option<String>,
}

impl Cancel {
    /// A cancellation with one reason, whether or not the run has started.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            before_start: None,
        }
    }
}

/// Stops a run whose lease is lost (see [`crate::maintenance`], "Fencing"): as [`Cancel`], but
/// a worker that may still run it is restarted at once rather than after the cancel grace, since
/// another instance may already run the job. Its outcome is recorded only if the run is still
/// live.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Fence {
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Claimed ahead of its slot; nothing has reached the worker.
    Waiting,
    Starting,
    Calling,
    /// The outcome is recorded (or being recorded) with a block; the worker may still run it.
    Releasing,
    Done,
}

/// Everything a `JobRunActor` needs besides the run and its job.
#[derive(Clone, Debug)]
pub struct RunDeps {
    pub store: Addr<StoreActor>,
    pub scheduler: Recipient<RunFinished>,
    pub settled: Recipient<RunSettled>,
    pub workers: Arc<dyn WorkerManager>,
    pub clock: Arc<dyn Clock>,
    pub events: EventBus,
    pub default_timeout: Duration,
    pub cancel_grace: Duration,
}

/// Supervises one run from `queued` to its outcome, and the job until its worker lets go.
#[derive(Debug)]
pub struct JobRunActor {
    run: PluginJobRunModel,
    job: PluginJobModel,
    deps: RunDeps,
    phase: Phase,
    started_at: Option<DateTime<Utc>>,
    call: Option<SpawnHandle>,
    timer: Option<SpawnHandle>,
    /// The run's log lines for its outcome.
    logs: RunLines,
}

impl JobRunActor {
    pub fn new(run: PluginJobRunModel, job: PluginJobModel, deps: RunDeps) -> Self {
        Self {
            run,
            job,
            deps,
            phase: Phase::Waiting,
            started_at: None,
            call: None,
            timer: None,
            logs: RunLines::default(),
        }
    }

    /// When the run is meant to start: a scheduled slot plus the job's jitter offset for it;
    /// a manual run at once (its `scheduled_for` is when it was asked for); a retry or a
    /// backfilled slot at once too, from when it was created: its `scheduled_for` is the slot it
    /// stands for, maybe months ago, which is no measure of how late it started.
    fn due_at(&self) -> DateTime<Utc> {
        match self.run.trigger {
            RunTrigger::Schedule => crate::policy::due_at(&self.job, self.run.scheduled_for),
            RunTrigger::Manual => self.run.scheduled_for,
            RunTrigger::Retry | RunTrigger::Backfill => self.run.created_at,
        }
    }

    fn timeout(&self) -> Duration {
        self.job
            .timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(self.deps.default_timeout, Duration::from_millis)
    }

    fn label(&self) -> String {
        format!(
            "run {} of {}/{}",
            self.run.id, self.job.plugin_id, self.job.job_key
        )
    }

    /// Logs `what` about this run, with its plugin, job and run as structured fields.
    fn log(&self, level: log::Level, what: &str) {
        log::log!(
            level,
            plugin = self.job.plugin_id.as_str(),
            job = self.job.job_key.as_str(),
            run:% = self.run.id;
            "{} {what}",
            self.label()
        );
    }

    fn emit(&self, event: RunEvent) {
        self.deps.events.emit(event);
    }

    fn cancel_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
    }

    /// Marks the run running and calls the worker. A start that fails on a transient database
    /// error is retried; the run is failed only when the database refuses it for good.
    fn start(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        self.phase = Phase::Starting;
        let store = self.deps.store.clone();
        let clock = Arc::clone(&self.deps.clock);
        let run_id = self.run.id;
        let mark = move || MarkRunning {
            run_id,
            now: clock.now(),
        };
        ctx.wait(
            retry_write(store, mark, "marking the run running")
                .into_actor(self)
                .map(|marked, act, ctx| match marked {
                    Ok(true) => act.call_worker(ctx),
                    Ok(false) => {
                        // Cancelled (paused, retired, rescued) before it started: nothing to run.
                        act.phase = Phase::Done;
                        act.report_ended_unstarted();
                        act.report_finished();
                        ctx.stop();
                    }
                    Err(crate::Error::Mailbox(err)) => {
                        log::error!("store unavailable; {} not started: {err}", act.label());
                        act.phase = Phase::Done;
                        act.report_finished();
                        ctx.stop();
                    }
                    Err(err) => act.finish(
                        RunStatus::Failed,
                        Some(format!("could not start the run: {err}")),
                        ctx,
                    ),
                }),
        );
    }

    fn call_worker(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Calling;
        let now = self.deps.clock.now();
        self.started_at = Some(now);
        self.emit(RunEvent::RunStarted {
            run_id: self.run.id,
            job_id: self.job.id,
            plugin_id: self.job.plugin_id.clone(),
            job_key: self.job.job_key.clone(),
            trigger: self.run.trigger,
            scheduled_for: self.run.scheduled_for,
            due_at: self.due_at(),
            started_at: now,
        });
        let job = RunJob {
            traceparent: self.run.traceparent.clone(),
            attempt: u32::try_from(self.run.attempt).unwrap_or(1),
            retry_of: self.run.retry_of,
            payload: self.run.payload.clone(),
            ..RunJob::new(
                &self.job.job_key,
                self.run.id.to_string(),
                self.run.trigger.to_string(),
                iso(self.run.scheduled_for),
            )
        };
        let timeout = self.timeout();
        let (call, lines) = self
            .deps
            .workers
            .run_job(&self.job.plugin_id, job, timeout)
            .into_parts();
        self.logs = lines;
        self.call = Some(
            ctx.spawn(
                call.into_actor(self)
                    .map(|reply, act, ctx| act.on_reply(reply, ctx)),
            ),
        );
        self.timer = Some(ctx.run_later(timeout, |act, ctx| act.on_timeout(ctx)));
    }

    fn on_reply(&mut self, outcome: RunOutcome, ctx: &mut Context<Self>) {
        self.call = None;
        match self.phase {
            Phase::Calling => {
                self.cancel_timer(ctx);
                self.logs.ended(outcome.logs);
                let (status, error) = match outcome.result {
                    Ok(()) => (RunStatus::Succeeded, None),
                    Err(err) => {
                        let mut error = err.message;
                        crate::store::bound_error(&mut error);
                        (RunStatus::Failed, Some(error))
                    }
                };
                self.finish(status, error, ctx);
            }
            Phase::Releasing => {
                let how = match &outcome.result {
                    // The call failed because its worker is gone (exited, killed, restarted).
                    Err(err) if err.code == crate::worker::codes::WORKER_UNAVAILABLE => {
                        format!("ended with its worker ({})", err.message)
                    }
                    _ => "ended in its worker".to_owned(),
                };
                self.log(
                    log::Level::Info,
                    &format!("{how} after it was given up on; the job is free again"),
                );
                self.release(ctx);
            }
            Phase::Waiting | Phase::Starting | Phase::Done => {}
        }
    }

    fn on_timeout(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Calling {
            return;
        }
        let error = format!("timed out after {} ms", self.timeout().as_millis());
        self.log(log::Level::Warn, &format!("{error}; sending cancelJob"));
        self.give_up(RunStatus::Failed, error, ctx);
    }

    /// Ends the run while its worker may still be running it: `cancelJob`, then the outcome and
    /// the job's block in one write, then wait for the worker to let go.
    fn give_up(&mut self, status: RunStatus, error: String, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        self.give_up_without_grace(status, error, ctx);
        self.timer = Some(ctx.run_later(self.deps.cancel_grace, |act, ctx| {
            if act.phase != Phase::Releasing {
                return;
            }
            act.log(
                log::Level::Warn,
                "did not end in its worker within the cancel grace; restarting the worker",
            );
            let why = format!(
                "to stop {}, which was given up and did not end within the cancel grace",
                act.label()
            );
            act.restart_worker(&why, ctx);
        }));
    }

    /// Records the run given up (with a block while the worker may still run it) and tells the
    /// worker; whoever calls it restarts the worker, now or after the cancel grace.
    fn give_up_without_grace(&mut self, status: RunStatus, error: String, ctx: &mut Context<Self>) {
        self.phase = Phase::Releasing;
        self.send_cancel(&error);
        let block_until = plus(
            self.deps.clock.now(),
            self.deps.cancel_grace.saturating_add(RELEASE_MARGIN),
        );
        let record = self.record(status, Some(error), Some(block_until));
        ctx.wait(record.into_actor(self).map(|(), act, _ctx| {
            act.deps.settled.do_send(RunSettled {
                job_id: act.job.id,
                run_id: act.run.id,
            });
        }));
    }

    /// Asks the worker to stop the run (`cancelJob`); it may or may not listen.
    fn send_cancel(&self, reason: &str) {
        let cancel = CancelJob::new(self.run.id.to_string(), reason);
        self.deps.workers.cancel_job(&self.job.plugin_id, cancel);
    }

    /// Restarts the worker and releases the job once its old process group is gone.
    fn restart_worker(&mut self, why: &str, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        // Started outside the actor's context: a write the actor waits on (the outcome, while
        // the database is down) must not hold the restart back.
        let restarted = self.deps.workers.restart_because(&self.job.plugin_id, why);
        let me = ctx.address();
        actix::spawn(async move {
            restarted.await;
            me.do_send(WorkerRestarted);
        });
        self.timer = Some(ctx.run_later(RESTART_BOUND, |act, ctx| {
            log::error!(
                "the worker of {} did not restart within {} s; releasing the job anyway",
                act.label(),
                RESTART_BOUND.as_secs()
            );
            act.release(ctx);
        }));
    }

    /// The worker is done with the run: clear the job's block, report `RunFinished`, stop.
    fn release(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Releasing {
            return;
        }
        self.phase = Phase::Done;
        self.cancel_timer(ctx);
        if let Some(call) = self.call.take() {
            ctx.cancel_future(call);
        }
        let store = self.deps.store.clone();
        let clock = Arc::clone(&self.deps.clock);
        let job_id = self.job.id;
        let unblock = move || SetJobBlock {
            job_id,
            blocked_until: None,
            now: clock.now(),
        };
        let label = self.label();
        ctx.wait(
            async move {
                if let Err(err) = retry_write(store, unblock, "unblocking the job").await {
                    log::error!(
                        "{label}: could not unblock the job ({err}); it is free again when the \
                         block expires"
                    );
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                act.report_finished();
                ctx.stop();
            }),
        );
    }

    /// Records the outcome, reports `RunFinished`, and stops.
    fn finish(&mut self, status: RunStatus, error: Option<String>, ctx: &mut Context<Self>) {
        self.phase = Phase::Done;
        let record = self.record(status, error, None);
        // One future: actix polls the newest `wait` first, so two would run out of order.
        ctx.wait(record.into_actor(self).map(|(), act, ctx| {
            act.report_finished();
            ctx.stop();
        }));
    }

    fn report_finished(&self) {
        self.deps.scheduler.do_send(RunFinished {
            job_id: self.job.id,
            run_id: self.run.id,
        });
    }

    /// See [`report_ended_unstarted`]: a run claimed ahead and cancelled before its slot.
    fn report_ended_unstarted(&self) {
        let (store, events) = (self.deps.store.clone(), self.deps.events.clone());
        report_ended_unstarted(store, events, self.run.id, &self.job);
    }

    /// The write of the outcome (see [`record_outcome`]). Callers hold the actor on it
    /// (`ctx.wait`), so nothing else happens to the run until it is recorded.
    fn record(
        &mut self,
        status: RunStatus,
        error: Option<String>,
        block_until: Option<DateTime<Utc>>,
    ) -> impl std::future::Future<Output = ()> + 'static + use<> {
        let now = self.deps.clock.now();
        let duration_ms = self
            .started_at
            .map_or(0, |started| elapsed_ms(started, now));
        let finished = RunEvent::RunFinished {
            run_id: self.run.id,
            job_id: self.job.id,
            plugin_id: self.job.plugin_id.clone(),
            job_key: self.job.job_key.clone(),
            trigger: self.run.trigger,
            attempt: self.run.attempt,
            status,
            duration_ms,
            error: error.clone(),
        };
        let msg = CompleteRun {
            run_id: self.run.id,
            status,
            error,
            logs: self.logs.take(),
            block_until,
            now,
        };
        let (store, events) = (self.deps.store.clone(), self.deps.events.clone());
        let run_id = self.run.id;
        async move {
            if record_outcome(store, msg).await {
                // Subscribers hear of the outcome once it is in the database.
                events.emit(finished);
            } else if let RunEvent::RunFinished { status, .. } = &finished {
                // The run ended elsewhere first (a rescue, a fence): that outcome stands, and
                // no webhook, metric or failure streak hears of this one.
                log::warn!(
                    "run {run_id} ended {status} here after it had already ended; its recorded \
                     outcome stands"
                );
            }
        }
    }
}

impl Actor for JobRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.run.status == RunStatus::Running {
            // The claim wrote it running: its slot was due, and nothing is left to mark.
            self.call_worker(ctx);
            return;
        }
        // A slot claimed ahead of time (the claim lookahead) starts when it is due (the slot
        // plus its jitter offset), not before.
        let early = (self.run.trigger == RunTrigger::Schedule)
            .then(|| (self.due_at() - self.deps.clock.now()).to_std().ok())
            .flatten()
            .filter(|wait| !wait.is_zero());
        match early {
            Some(wait) => self.timer = Some(ctx.run_later(wait, |act, ctx| act.start(ctx))),
            None => self.start(ctx),
        }
    }
}

impl Handler<Cancel> for JobRunActor {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Self::Context) {
        match self.phase {
            Phase::Waiting => {
                // Nothing reached the worker: the run simply ends.
                self.cancel_timer(ctx);
                let reason = msg.before_start.unwrap_or(msg.reason);
                self.finish(RunStatus::Cancelled, Some(reason), ctx);
            }
            Phase::Calling if self.deps.workers.cancels_on_drop() => {
                // Dropping the call ends it: the job is free as soon as the outcome is written.
                if let Some(call) = self.call.take() {
                    ctx.cancel_future(call);
                }
                self.cancel_timer(ctx);
                self.send_cancel(&msg.reason);
                self.finish(RunStatus::Cancelled, Some(msg.reason), ctx);
            }
            Phase::Calling => self.give_up(RunStatus::Cancelled, msg.reason, ctx),
            // Starting holds the mailbox until it is done; the others have their outcome.
            Phase::Starting | Phase::Releasing | Phase::Done => {}
        }
    }
}

/// The worker restarted by [`JobRunActor::restart_worker`] is up again.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct WorkerRestarted;

impl Handler<WorkerRestarted> for JobRunActor {
    type Result = ();

    fn handle(&mut self, _msg: WorkerRestarted, ctx: &mut Self::Context) {
        self.release(ctx);
    }
}

impl Handler<Fence> for JobRunActor {
    type Result = ();

    /// Only a call in flight has work to stop. A run waiting for its slot finds at its start
    /// that it ended (its start moves only a queued run); one that has its outcome is left alone.
    fn handle(&mut self, msg: Fence, ctx: &mut Self::Context) {
        if self.phase != Phase::Calling {
            return;
        }
        self.log(log::Level::Error, &format!("fenced: {}", msg.reason));
        let reason = format!("cancelled: {}", msg.reason);
        if self.deps.workers.cancels_on_drop() {
            ctx.notify(Cancel::new(reason));
            return;
        }
        // The restart goes first: giving up waits on the outcome's write.
        let why = format!("to stop {}, whose lease was lost", self.label());
        self.restart_worker(&why, ctx);
        self.give_up_without_grace(RunStatus::Cancelled, reason, ctx);
    }
}

/// Tells subscribers how a run that never started ended, once the database says: a run
/// cancelled before it started (its job paused, deleted or rescheduled) is a finished run like
/// any other, counted `cancelled`. A run failed before it started was rescued, which
/// `RunRescued` reports. Used by a run's actor that finds its run ended when it was to start,
/// and by the scheduler for queued manual runs it drops with their job.
pub(crate) fn report_ended_unstarted(
    store: Addr<StoreActor>,
    events: EventBus,
    run_id: uuid::Uuid,
    job: &PluginJobModel,
) {
    let (job_id, plugin_id, job_key) = (job.id, job.plugin_id.clone(), job.job_key.clone());
    actix::spawn(async move {
        let run = match crate::store::ask(&store, GetRun(run_id)).await {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(err) => {
                log::warn!("reading run {run_id}, ended before it started: {err}");
                return;
            }
        };
        if run.status == RunStatus::Cancelled {
            events.emit(RunEvent::RunFinished {
                run_id,
                job_id,
                plugin_id,
                job_key,
                trigger: run.trigger,
                attempt: run.attempt,
                status: run.status,
                duration_ms: 0,
                error: run.error,
            });
        }
    });
}
