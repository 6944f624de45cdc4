//! The `JobRunActor`: one per run. It waits for its slot (a run claimed ahead), marks the run
//! running, calls `runJob` on the plugin's worker, enforces the job's timeout, records the
//! outcome through the `StoreActor`, tells the `SchedulerActor` `RunFinished`, and stops.
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
use serde_json::json;

use crate::clock::Clock;
use crate::events::{EventBus, RunEvent};
use crate::store::{CompleteRun, MarkRunning, SetJobBlock, StoreActor};
use crate::time::{elapsed_ms, iso, plus};
use crate::worker::{WorkerError, WorkerManager};

/// Longest wait between retries of a write while the database is unavailable.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(5);

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
        }
    }

    /// When the run is meant to start: a scheduled slot plus the job's jitter offset for it;
    /// a manual or retry run at once (its `scheduled_for` is when it was asked for).
    fn due_at(&self) -> DateTime<Utc> {
        match self.run.trigger {
            RunTrigger::Schedule => crate::policy::due_at(&self.job, self.run.scheduled_for),
            _ => self.run.scheduled_for,
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
        let params = json!({
            "job": {
                "jobKey": self.job.job_key,
                "runId": self.run.id.to_string(),
                "trigger": self.run.trigger.to_string(),
                "scheduledAt": iso(self.run.scheduled_for),
                "traceparent": self.run.traceparent,
                "attempt": self.run.attempt,
                "retryOf": self.run.retry_of.map(|id| id.to_string()),
                "payload": self.run.payload,
            }
        });
        let timeout = self.timeout();
        let call = self
            .deps
            .workers
            .call(&self.job.plugin_id, "runJob", params, timeout);
        self.call = Some(
            ctx.spawn(
                call.into_actor(self)
                    .map(|reply, act, ctx| act.on_reply(reply, ctx)),
            ),
        );
        self.timer = Some(ctx.run_later(timeout, |act, ctx| act.on_timeout(ctx)));
    }

    fn on_reply(&mut self, reply: Result<serde_json::Value, WorkerError>, ctx: &mut Context<Self>) {
        self.call = None;
        match self.phase {
            Phase::Calling => {
                self.cancel_timer(ctx);
                let (status, error) = match reply {
                    Ok(_) => (RunStatus::Succeeded, None),
                    Err(err) => (RunStatus::Failed, Some(err.message)),
                };
                self.finish(status, error, ctx);
            }
            Phase::Releasing => {
                if let Err(err) = &reply
                    && err.code == crate::worker::codes::TIMEOUT
                {
                    // The worker manager stopped waiting, not the worker: it may still run it.
                    self.restart_worker(ctx);
                    return;
                }
                log::info!(
                    plugin = self.job.plugin_id.as_str(),
                    job = self.job.job_key.as_str(),
                    run:% = self.run.id;
                    "{} ended in its worker after it was given up on; the job is free again",
                    self.label()
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
        log::warn!(
            plugin = self.job.plugin_id.as_str(),
            job = self.job.job_key.as_str(),
            run:% = self.run.id;
            "{} {error}; sending cancelJob",
            self.label()
        );
        self.give_up(RunStatus::Failed, error, ctx);
    }

    /// Ends the run while its worker may still be running it: `cancelJob`, then the outcome and
    /// the job's block in one write, then wait for the worker to let go.
    fn give_up(&mut self, status: RunStatus, error: String, ctx: &mut Context<Self>) {
        self.phase = Phase::Releasing;
        self.cancel_timer(ctx);
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
        self.timer = Some(ctx.run_later(self.deps.cancel_grace, |act, ctx| {
            if act.phase != Phase::Releasing {
                return;
            }
            log::warn!(
                plugin = act.job.plugin_id.as_str(),
                job = act.job.job_key.as_str(),
                run:% = act.run.id;
                "{} did not end in its worker within the cancel grace; restarting the worker",
                act.label()
            );
            act.restart_worker(ctx);
        }));
    }

    /// Asks the worker to stop the run (`cancelJob`); it may or may not listen.
    fn send_cancel(&self, reason: &str) {
        self.deps.workers.notify(
            &self.job.plugin_id,
            "cancelJob",
            json!({"runId": self.run.id.to_string(), "reason": reason}),
        );
    }

    /// Restarts the worker and releases the job once its old process group is gone.
    fn restart_worker(&mut self, ctx: &mut Context<Self>) {
        self.cancel_timer(ctx);
        let restarted = self.deps.workers.restart(&self.job.plugin_id);
        ctx.spawn(
            restarted
                .into_actor(self)
                .map(|(), act, ctx| act.release(ctx)),
        );
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
            logs: self.deps.workers.take_logs(&self.run.id.to_string()),
            block_until,
            now,
        };
        let (store, events) = (self.deps.store.clone(), self.deps.events.clone());
        async move {
            record_outcome(store, msg).await;
            // Subscribers hear of the outcome once it is in the database.
            events.emit(finished);
        }
    }
}

/// Sends a write, retrying with backoff (100 ms doubling to 5 s) while it fails for a reason
/// that can pass (see [`crate::Error::is_transient`]); answers the first other result.
async fn retry_write<M, T>(
    store: Addr<StoreActor>,
    msg: impl Fn() -> M,
    what: &str,
) -> crate::Result<T>
where
    M: Message<Result = crate::Result<T>> + Send + 'static,
    StoreActor: Handler<M>,
    T: Send + 'static,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match crate::store::ask(&store, msg()).await {
            Err(err) if err.is_transient() => {
                log::error!("{what} failed, retrying in {backoff:?}: {err}");
                actix_rt::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
            }
            result => return result,
        }
    }
}

/// Writes a run's outcome: retried while the database is unavailable; when the database
/// refuses it for good, a fallback outcome without the worker's text is written instead (the
/// run still ends), and the failure is logged loudly.
async fn record_outcome(store: Addr<StoreActor>, msg: CompleteRun) {
    let run_id = msg.run_id;
    let first = msg.clone();
    let err = match retry_write(store.clone(), move || first.clone(), "recording an outcome").await
    {
        Ok(_) => return,
        Err(crate::Error::RunNotFound(id)) => {
            log::warn!("run {id} vanished before its outcome was recorded");
            return;
        }
        Err(err @ crate::Error::Mailbox(_)) => {
            log::error!("store unavailable; outcome of run {run_id} not recorded: {err}");
            return;
        }
        Err(err) => err,
    };
    log::error!(
        "the database refused the outcome of run {run_id} ({err}); recording it without the \
         worker's error text and logs"
    );
    let fallback = CompleteRun {
        error: Some(format!(
            "the run ended {} but its outcome could not be stored as reported: {err}",
            msg.status
        )),
        logs: None,
        ..msg
    };
    if let Err(err) = retry_write(
        store,
        move || fallback.clone(),
        "recording a fallback outcome",
    )
    .await
    {
        log::error!(
            "run {run_id}: even the fallback outcome was refused ({err}); the rescue pass will \
             fail the run once its heartbeat stops"
        );
    }
}

impl Actor for JobRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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
                self.finish(RunStatus::Cancelled, Some(msg.reason), ctx);
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
