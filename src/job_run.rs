//! The `JobRunActor`: one per run. It marks the run running, calls `runJob` on the plugin's
//! worker, enforces the job's timeout, records the outcome through the `StoreActor`, tells the
//! `SchedulerActor` `RunFinished`, and stops.
//!
//! On timeout the run is recorded `failed` at once, `cancelJob` goes to the worker, and the job is
//! blocked (`blocked_until`, seen by every instance) until the worker answers the timed-out call
//! or the cancel grace passes; then the worker is restarted. Only then does the actor report
//! `RunFinished`, so the scheduler never starts the job again while the worker may still run it.
//!
//! Handles: `Cancel`. Sends: `MarkRunning`, `CompleteRun`, `SetJobBlock` (store), `RunFinished`
//! (scheduler), `RunEvent`s (subscribers).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use serde_json::json;

use crate::clock::Clock;
use crate::events::RunEvent;
use crate::store::{CompleteRun, MarkRunning, SetJobBlock, StoreActor};
use crate::time::{delta, elapsed_ms, iso};
use crate::worker::{WorkerError, WorkerManager};

/// Longest wait between retries of an outcome write while the database is unavailable.
const MAX_RECORD_BACKOFF: Duration = Duration::from_secs(5);

/// Tells the scheduler a run is over and its job and slot are free.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RunFinished {
    pub job_id: uuid::Uuid,
    pub run_id: uuid::Uuid,
}

/// Stops a run early: the call in flight is dropped, `cancelJob` goes to the worker, and the run
/// is recorded `cancelled` with `reason`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Cancel {
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Calling,
    /// The outcome is recorded; waiting for the timed-out call to answer or the grace to pass.
    TimedOut,
    Done,
}

/// Everything a `JobRunActor` needs besides the run and its job.
#[derive(Clone, Debug)]
pub struct RunDeps {
    pub store: Addr<StoreActor>,
    pub scheduler: Recipient<RunFinished>,
    pub workers: Arc<dyn WorkerManager>,
    pub clock: Arc<dyn Clock>,
    pub events: Vec<Recipient<RunEvent>>,
    pub default_timeout: Duration,
    pub cancel_grace: Duration,
}

/// Supervises one run from `queued` to its outcome.
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
            phase: Phase::Starting,
            started_at: None,
            call: None,
            timer: None,
        }
    }

    fn timeout(&self) -> Duration {
        self.job
            .timeout_ms
            .and_then(|ms| u64::try_from(ms).ok())
            .map_or(self.deps.default_timeout, Duration::from_millis)
    }

    fn emit(&self, event: RunEvent) {
        for subscriber in &self.deps.events {
            subscriber.do_send(event.clone());
        }
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
            started_at: now,
        });
        let params = json!({
            "job": {
                "jobKey": self.job.job_key,
                "runId": self.run.id.to_string(),
                "trigger": self.run.trigger.to_string(),
                "scheduledAt": iso(self.run.scheduled_for),
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
                if let Some(timer) = self.timer.take() {
                    ctx.cancel_future(timer);
                }
                let (status, error) = match reply {
                    Ok(_) => (RunStatus::Succeeded, None),
                    Err(err) => (RunStatus::Failed, Some(err.message)),
                };
                self.finish(status, error, ctx);
            }
            Phase::TimedOut => {
                if let Err(err) = &reply
                    && err.code == crate::worker::codes::TIMEOUT
                {
                    // The worker manager gave up waiting: the job may still run in the worker.
                    if let Some(timer) = self.timer.take() {
                        ctx.cancel_future(timer);
                    }
                    self.deps.workers.restart(&self.job.plugin_id);
                    self.unblock_and_stop(ctx);
                    return;
                }
                // The worker answered the timed-out call: the job may run again.
                log::info!(
                    "run {} of {}/{} answered after its timeout; unblocking the job",
                    self.run.id,
                    self.job.plugin_id,
                    self.job.job_key
                );
                if let Some(timer) = self.timer.take() {
                    ctx.cancel_future(timer);
                }
                self.unblock_and_stop(ctx);
            }
            Phase::Starting | Phase::Done => {}
        }
    }

    fn on_timeout(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Calling {
            return;
        }
        self.phase = Phase::TimedOut;
        let timeout_ms = self.timeout().as_millis();
        let error = format!("timed out after {timeout_ms} ms");
        log::warn!(
            "run {} of {}/{} {error}; sending cancelJob",
            self.run.id,
            self.job.plugin_id,
            self.job.job_key
        );
        self.deps.workers.notify(
            &self.job.plugin_id,
            "cancelJob",
            json!({"runId": self.run.id.to_string(), "reason": error}),
        );
        let now = self.deps.clock.now();
        let block = SetJobBlock {
            job_id: self.job.id,
            blocked_until: Some(now + delta(self.deps.cancel_grace)),
            now,
        };
        let store = self.deps.store.clone();
        ctx.spawn(
            async move {
                if let Err(err) = crate::store::ask(&store, block).await {
                    log::error!("could not block job after a timeout: {err}");
                }
            }
            .into_actor(self),
        );
        let record = self.record(RunStatus::Failed, Some(error));
        ctx.wait(record.into_actor(self));
        self.timer = Some(ctx.run_later(self.deps.cancel_grace, |act, ctx| {
            if act.phase != Phase::TimedOut {
                return;
            }
            log::warn!(
                "timed-out run {} of {}/{} did not answer within the cancel grace; restarting the worker",
                act.run.id,
                act.job.plugin_id,
                act.job.job_key
            );
            if let Some(call) = act.call.take() {
                ctx.cancel_future(call);
            }
            act.deps.workers.restart(&act.job.plugin_id);
            act.unblock_and_stop(ctx);
        }));
    }

    /// Records the outcome, reports `RunFinished`, and stops.
    fn finish(&mut self, status: RunStatus, error: Option<String>, ctx: &mut Context<Self>) {
        self.phase = Phase::Done;
        let record = self.record(status, error);
        // One future: actix polls the newest `wait` first, so two would run out of order.
        ctx.wait(record.into_actor(self).map(|(), act, ctx| {
            act.report_finished();
            ctx.stop();
        }));
    }

    fn unblock_and_stop(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Done;
        let store = self.deps.store.clone();
        let unblock = SetJobBlock {
            job_id: self.job.id,
            blocked_until: None,
            now: self.deps.clock.now(),
        };
        ctx.wait(
            async move {
                if let Err(err) = crate::store::ask(&store, unblock).await {
                    log::error!("could not unblock job: {err}");
                }
            }
            .into_actor(self)
            .map(|(), act, ctx| {
                act.report_finished();
                ctx.stop();
            }),
        );
    }

    fn report_finished(&self) {
        self.deps.scheduler.do_send(RunFinished {
            job_id: self.job.id,
            run_id: self.run.id,
        });
    }

    /// The write of the outcome, retrying with backoff while the database is unavailable.
    /// Callers hold the actor on it (`ctx.wait`), so nothing else happens to the run until it is
    /// recorded.
    fn record(
        &mut self,
        status: RunStatus,
        error: Option<String>,
    ) -> impl std::future::Future<Output = ()> + 'static + use<> {
        let now = self.deps.clock.now();
        let duration_ms = self
            .started_at
            .map_or(0, |started| elapsed_ms(started, now));
        self.emit(RunEvent::RunFinished {
            run_id: self.run.id,
            job_id: self.job.id,
            plugin_id: self.job.plugin_id.clone(),
            job_key: self.job.job_key.clone(),
            trigger: self.run.trigger,
            status,
            duration_ms,
            error: error.clone(),
        });
        let store = self.deps.store.clone();
        let msg = CompleteRun {
            run_id: self.run.id,
            status,
            error,
            logs: self.deps.workers.take_logs(&self.run.id.to_string()),
            now,
        };
        record_with_retry(store, msg)
    }
}

async fn record_with_retry(store: Addr<StoreActor>, msg: CompleteRun) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.send(msg.clone()).await {
            Ok(Ok(_)) => return,
            Ok(Err(crate::Error::RunNotFound(id))) => {
                log::warn!("run {id} vanished before its outcome was recorded");
                return;
            }
            Ok(Err(err)) => {
                log::error!(
                    "recording the outcome of run {} failed, retrying in {backoff:?}: {err}",
                    msg.run_id
                );
            }
            Err(err) => {
                log::error!(
                    "store unavailable; outcome of run {} not recorded: {err}",
                    msg.run_id
                );
                return;
            }
        }
        actix_rt::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RECORD_BACKOFF);
    }
}

impl Actor for JobRunActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A slot claimed ahead of time (the claim lookahead) starts when it is due, not before.
        let early = (self.run.trigger == RunTrigger::Schedule)
            .then(|| {
                (self.run.scheduled_for - self.deps.clock.now())
                    .to_std()
                    .ok()
            })
            .flatten()
            .filter(|wait| !wait.is_zero());
        match early {
            Some(wait) => self.timer = Some(ctx.run_later(wait, |act, ctx| act.start(ctx))),
            None => self.start(ctx),
        }
    }
}

impl JobRunActor {
    /// Marks the run running and calls the worker.
    fn start(&mut self, ctx: &mut Context<Self>) {
        self.timer = None;
        let store = self.deps.store.clone();
        let msg = MarkRunning {
            run_id: self.run.id,
            now: self.deps.clock.now(),
        };
        ctx.wait(
            async move { store.send(msg).await }
                .into_actor(self)
                .map(|marked, act, ctx| match marked {
                    Ok(Ok(true)) => act.call_worker(ctx),
                    Ok(Ok(false)) => {
                        // Cancelled (or rescued) before it started: nothing to run.
                        act.phase = Phase::Done;
                        act.report_finished();
                        ctx.stop();
                    }
                    Ok(Err(err)) => {
                        act.finish(
                            RunStatus::Failed,
                            Some(format!("could not start the run: {err}")),
                            ctx,
                        );
                    }
                    Err(err) => {
                        log::error!("store unavailable; run {} not started: {err}", act.run.id);
                        act.phase = Phase::Done;
                        act.report_finished();
                        ctx.stop();
                    }
                }),
        );
    }
}

impl Handler<Cancel> for JobRunActor {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Self::Context) {
        match self.phase {
            Phase::Starting | Phase::Calling => {
                if let Some(call) = self.call.take() {
                    ctx.cancel_future(call);
                }
                if let Some(timer) = self.timer.take() {
                    ctx.cancel_future(timer);
                }
                if self.phase == Phase::Calling {
                    self.deps.workers.notify(
                        &self.job.plugin_id,
                        "cancelJob",
                        json!({"runId": self.run.id.to_string(), "reason": msg.reason}),
                    );
                }
                self.finish(RunStatus::Cancelled, Some(msg.reason), ctx);
            }
            Phase::TimedOut => {
                // Already recorded as failed; stop waiting for the worker.
                if let Some(call) = self.call.take() {
                    ctx.cancel_future(call);
                }
                if let Some(timer) = self.timer.take() {
                    ctx.cancel_future(timer);
                }
                self.unblock_and_stop(ctx);
            }
            Phase::Done => {}
        }
    }
}
