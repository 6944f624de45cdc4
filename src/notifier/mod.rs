//! The `NotifierActor`: a run-event subscriber that posts webhooks. Each event it is configured
//! for (`run.failed`, `run.succeeded`, `job.paused`, `job.recovered`, `slot.missed`,
//! `worker.failed`) becomes one row per destination in the durable outbox
//! (`plugin_job_notifications`); delivery passes claim due rows (a lease taken with a
//! compare-and-set, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so with several instances each row is
//! delivered by one of them), POST them signed with HMAC-SHA256, and delete them once delivered
//! or reschedule them with exponential backoff until `give_up_after`. Deliveries are at least
//! once: a receiver deduplicates on the event `id`.
//!
//! It never blocks the scheduler: it only hears events (sent with `do_send`), and its HTTP calls
//! run in its own futures. It may enqueue, claim and finish outbox rows, and ask the scheduler
//! for its registered plugins; it never writes jobs or runs.
//!
//! Handles: `RunEvent`, `DeliverPass`, `Drain`. Sends: `EnqueueNotifications`,
//! `ClaimNotifications`, `FinishNotification` (store), `GetDiagnostics` (scheduler),
//! `NotificationSent` events.

mod config;
mod payload;
mod post;

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use entity::prelude::RunStatus;

pub use config::{NotificationEvent, NotifierConfig};
pub use payload::{
    DELIVERY_HEADER, EVENT_HEADER, NotificationPayload, SIGNATURE_HEADER, signature,
};
use post::{deliver, tls_config};

use crate::clock::Clock;
use crate::events::{EventBus, RunEvent};
use crate::scheduler::{GetDiagnostics, SchedulerActor};
use crate::store::{
    ClaimNotifications, DeliveryResult, EnqueueNotifications, FinishNotification, NewNotification,
    StoreActor,
};
use crate::time::iso;
use crate::worker::{WorkerManager, WorkerStatus};

/// Runs one delivery pass now: each destination whose lane is idle claims its due deliveries
/// and posts them, beside the others (a lane's failures are logged by the lane). Answers how
/// many lanes it started.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "usize")]
pub struct DeliverPass;

/// Stops starting deliveries and answers once the batches in flight are recorded (or `timeout`
/// passed): a server that is stopping drains the notifier before it closes the database pool,
/// or a delivery the receiver already took could not be recorded and would be posted again at
/// the next start. Rows not yet claimed stay in the outbox for the next start.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Drain {
    pub timeout: std::time::Duration,
}

/// A destination's batch is done (its lane is idle again).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
struct LaneDone(String);

/// Crashes within its crash window after which a worker that is still being restarted is
/// reported (`worker.failed` with status `restarting`), once until its count drops below again:
/// with the default backoff a worker that dies at every start is only given up on about 14
/// minutes in, and its jobs run nowhere meanwhile.
const CRASH_LOOP_CRASHES: usize = 3;

/// How often at most the notifier says it dropped deliveries of a full outbox (with how many).
const DROP_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Posts the webhooks of one instance.
pub struct NotifierActor {
    store: Addr<StoreActor>,
    scheduler: Addr<SchedulerActor>,
    workers: Arc<dyn WorkerManager>,
    clock: Arc<dyn Clock>,
    events: EventBus,
    config: Arc<NotifierConfig>,
    instance_id: String,
    client: awc::Client,
    /// Destinations whose batch is in flight (each URL is a lane of its own, so a slow or dead
    /// receiver delays only its own deliveries), and those asked for again meanwhile.
    delivering: std::collections::HashSet<String>,
    again: std::collections::HashSet<String>,
    /// Deliveries dropped for a full outbox since it was last said, and when that was.
    dropped_unsaid: u64,
    dropped_said_at: Option<std::time::Instant>,
    worker_states: HashMap<String, WorkerStatus>,
    /// Plugins whose worker was reported as crashing over and over and has not settled since.
    crash_loops_said: std::collections::HashSet<String>,
    /// Set by [`Drain`]: no new batch starts; the waiters are told once none is in flight.
    draining: bool,
    drained: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for NotifierActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierActor")
            .field("config", &self.config)
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl NotifierActor {
    pub fn new(
        store: Addr<StoreActor>,
        scheduler: Addr<SchedulerActor>,
        workers: Arc<dyn WorkerManager>,
        clock: Arc<dyn Clock>,
        events: EventBus,
        config: NotifierConfig,
        instance_id: String,
    ) -> Self {
        let client = awc::Client::builder()
            .connector(awc::Connector::new().rustls_0_23(tls_config()))
            .timeout(config.request_timeout)
            // A redirect would be followed with a GET and no body, and its 2xx taken for a
            // delivery: a 3xx is an answer like any other that is not 2xx.
            .disable_redirects()
            .finish();
        Self {
            store,
            scheduler,
            workers,
            clock,
            events,
            config: Arc::new(config),
            instance_id,
            client,
            delivering: std::collections::HashSet::new(),
            again: std::collections::HashSet::new(),
            dropped_unsaid: 0,
            dropped_said_at: None,
            worker_states: HashMap::new(),
            crash_loops_said: std::collections::HashSet::new(),
            draining: false,
            drained: Vec::new(),
        }
    }

    fn wants(&self, event: NotificationEvent) -> bool {
        self.config.events.contains(&event)
    }

    /// A payload of `kind` about `plugin_id` seen now by this instance, or `None` when this
    /// notifier does not send `kind`.
    fn payload(&self, kind: NotificationEvent, plugin_id: &str) -> Option<NotificationPayload> {
        self.wants(kind)
            .then(|| NotificationPayload::new(kind, self.clock.now(), &self.instance_id, plugin_id))
    }

    /// Puts a payload in the outbox, one row per destination, then starts a pass.
    fn enqueue(&self, payload: NotificationPayload, ctx: &mut Context<Self>) {
        let body = match serde_json::to_string(&payload) {
            Ok(body) => body,
            Err(err) => {
                log::error!(
                    "webhook: cannot encode a {} event: {err}",
                    payload.event_type
                );
                return;
            }
        };
        let rows: Vec<NewNotification> = self
            .config
            .urls
            .iter()
            .map(|url| NewNotification {
                event_id: payload.id,
                event_type: payload.event_type.clone(),
                url: url.clone(),
                body: body.clone(),
            })
            .collect();
        let wanted = rows.len();
        let msg = EnqueueNotifications {
            rows,
            max_rows: self.config.max_outbox,
            now: self.clock.now(),
        };
        let (store, events, event_type) = (
            self.store.clone(),
            self.events.clone(),
            payload.event_type.clone(),
        );
        async move { crate::store::ask(&store, msg).await }
            .into_actor(self)
            .map(move |dropped_to, act, ctx| {
                let dropped_to = match dropped_to {
                    Ok(urls) => urls,
                    Err(err) => {
                        log::error!("webhook: cannot store a {event_type} event: {err}");
                        vec![String::new(); wanted]
                    }
                };
                let dropped = dropped_to.len();
                if dropped > 0 {
                    act.say_dropped(dropped as u64, &event_type, &dropped_to);
                    for _ in 0..dropped {
                        events.emit(RunEvent::NotificationSent {
                            event_type: event_type.clone(),
                            outcome: "dropped",
                        });
                    }
                }
                act.deliver_soon(ctx);
            })
            .spawn(ctx);
    }

    /// Logs dropped deliveries at most once a minute, with how many since the last time: a
    /// receiver that is down for long would otherwise put an ERROR line in the log per event.
    fn say_dropped(&mut self, dropped: u64, event_type: &str, urls: &[String]) {
        self.dropped_unsaid += dropped;
        if self
            .dropped_said_at
            .is_some_and(|at| at.elapsed() < DROP_LOG_EVERY)
        {
            return;
        }
        let urls: std::collections::BTreeSet<String> =
            urls.iter().map(|url| post::redact(url)).collect();
        log::error!(
            "webhook: {} delivery(ies) dropped since the last report (the latest of a \
             {event_type} event, to {}): the outbox holds {} rows for that URL already, or is \
             unwritable",
            self.dropped_unsaid,
            urls.into_iter().collect::<Vec<_>>().join(", "),
            self.config.max_outbox
        );
        self.dropped_unsaid = 0;
        self.dropped_said_at = Some(std::time::Instant::now());
    }

    fn deliver_soon(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(DeliverPass);
    }

    /// Sends `worker.failed` for each plugin whose worker has turned `failed` since the last
    /// look, and once for a worker still being restarted that has crashed
    /// [`CRASH_LOOP_CRASHES`] times within its crash window (again only after its count fell
    /// below that).
    fn check_workers(&mut self, ctx: &mut Context<Self>) {
        if !self.wants(NotificationEvent::WorkerFailed) {
            return;
        }
        let scheduler = self.scheduler.clone();
        async move { scheduler.send(GetDiagnostics).await }
            .into_actor(self)
            .map(|diagnostics, act, ctx| {
                let Ok(diagnostics) = diagnostics else {
                    return;
                };
                for plugin in diagnostics.registered_plugins {
                    act.check_worker(plugin, ctx);
                }
            })
            .spawn(ctx);
    }

    fn check_worker(&mut self, plugin: String, ctx: &mut Context<Self>) {
        let status = self.workers.status(&plugin);
        let crashes = self.workers.recent_crashes(&plugin);
        let before = self.worker_states.insert(plugin.clone(), status);
        if crashes < CRASH_LOOP_CRASHES {
            self.crash_loops_said.remove(&plugin);
        }
        // The manager says why (11 crashes, and the last one's exit and stderr).
        let last = self.workers.last_error(&plugin);
        let (status, error) = if status == WorkerStatus::Failed {
            if before == Some(WorkerStatus::Failed) {
                return;
            }
            let error = last.unwrap_or_else(|| format!("the worker of plugin {plugin} failed"));
            (status, error)
        } else if crashes >= CRASH_LOOP_CRASHES
            && matches!(status, WorkerStatus::Restarting | WorkerStatus::Starting)
            && self.crash_loops_said.insert(plugin.clone())
        {
            // Caught between two starts or during one: either way it is being restarted.
            let error = format!(
                "the worker of plugin {plugin} keeps crashing ({crashes} crashes within its \
                 crash window) and is being restarted; last: {}",
                last.as_deref().unwrap_or("unknown")
            );
            (WorkerStatus::Restarting, error)
        } else {
            return;
        };
        let Some(mut payload) = self.payload(NotificationEvent::WorkerFailed, &plugin) else {
            return;
        };
        payload.status = Some(status.to_string());
        payload.error = Some(error);
        self.enqueue(payload, ctx);
    }
}

impl Actor for NotifierActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.config.poll_interval, |act, ctx| {
            act.deliver_soon(ctx);
            act.check_workers(ctx);
        });
        // Deliveries left in the outbox by an earlier start (or another instance) go now.
        self.deliver_soon(ctx);
    }
}

impl Handler<RunEvent> for NotifierActor {
    type Result = ();

    fn handle(&mut self, event: RunEvent, ctx: &mut Self::Context) {
        let payload = match event {
            RunEvent::RunFinished {
                run_id,
                job_id,
                plugin_id,
                job_key,
                status,
                error,
                attempt,
                ..
            } => {
                let kind = match status {
                    RunStatus::Failed => NotificationEvent::RunFailed,
                    RunStatus::Succeeded => NotificationEvent::RunSucceeded,
                    RunStatus::Cancelled | RunStatus::Queued | RunStatus::Running => return,
                };
                let Some(payload) = self.payload(kind, &plugin_id) else {
                    return;
                };
                let mut payload = payload.with_job(job_id, Some(job_key)).with_run(run_id);
                payload.status = Some(status.to_string());
                payload.error = error;
                payload.attempt = u32::try_from(attempt).ok();
                payload
            }
            RunEvent::RunRescued {
                run_id,
                job_id,
                plugin_id,
                job_key,
                attempt,
                error,
                ..
            } => {
                let Some(payload) = self.payload(NotificationEvent::RunFailed, &plugin_id) else {
                    return;
                };
                let mut payload = payload.with_job(job_id, Some(job_key)).with_run(run_id);
                payload.status = Some(RunStatus::Failed.to_string());
                payload.error = Some(error);
                payload.attempt = u32::try_from(attempt).ok();
                payload
            }
            RunEvent::JobPaused {
                job_id,
                plugin_id,
                job_key,
                run_id,
                attempt,
                failures,
                reason,
                error,
            } => {
                let Some(payload) = self.payload(NotificationEvent::JobPaused, &plugin_id) else {
                    return;
                };
                let mut payload = payload.with_job(job_id, Some(job_key)).with_run(run_id);
                payload.status = Some("paused".to_owned());
                payload.attempt = u32::try_from(attempt).ok();
                payload.reason = Some(reason);
                payload.failures = Some(failures);
                payload.error = error;
                payload
            }
            RunEvent::JobRecovered {
                job_id,
                plugin_id,
                job_key,
                run_id,
                attempt,
                failures,
            } => {
                let Some(payload) = self.payload(NotificationEvent::JobRecovered, &plugin_id)
                else {
                    return;
                };
                let mut payload = payload.with_job(job_id, Some(job_key)).with_run(run_id);
                payload.status = Some(RunStatus::Succeeded.to_string());
                payload.attempt = u32::try_from(attempt).ok();
                payload.failures = Some(failures);
                payload
            }
            RunEvent::SlotSkipped {
                job_id,
                plugin_id,
                job_key,
                slot,
                reason,
                count,
            } => {
                let Some(payload) = self.payload(NotificationEvent::SlotMissed, &plugin_id) else {
                    return;
                };
                let mut payload = payload.with_job(job_id, Some(job_key));
                payload.status = Some(reason.to_string());
                payload.slot = Some(iso(slot));
                if count > 1 {
                    // One delivery for slots that passed together, not one each.
                    payload.reason = Some(format!("{count} slots from {} passed", iso(slot)));
                }
                payload
            }
            RunEvent::RunQueued { .. }
            | RunEvent::RunStarted { .. }
            | RunEvent::TickFinished { .. }
            | RunEvent::RetryDropped { .. }
            | RunEvent::NotificationSent { .. } => return,
        };
        self.enqueue(payload, ctx);
    }
}

impl Handler<DeliverPass> for NotifierActor {
    type Result = usize;

    fn handle(&mut self, _msg: DeliverPass, ctx: &mut Self::Context) -> Self::Result {
        let mut started = 0;
        if self.draining {
            return started;
        }
        for url in self.config.urls.clone() {
            if self.delivering.contains(&url) {
                // One batch per destination at a time; the one in flight asks for another.
                self.again.insert(url);
                continue;
            }
            self.delivering.insert(url.clone());
            started += 1;
            self.deliver_to(url, ctx);
        }
        started
    }
}

impl Handler<LaneDone> for NotifierActor {
    type Result = ();

    fn handle(&mut self, msg: LaneDone, ctx: &mut Self::Context) {
        self.delivering.remove(&msg.0);
        if self.draining {
            if self.delivering.is_empty() {
                for waiter in self.drained.drain(..) {
                    let _ = waiter.send(());
                }
            }
            return;
        }
        if self.again.remove(&msg.0) {
            self.deliver_soon(ctx);
        }
    }
}

impl Handler<Drain> for NotifierActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, _ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        if self.delivering.is_empty() {
            return Box::pin(async {});
        }
        let (done, drained) = tokio::sync::oneshot::channel();
        self.drained.push(done);
        Box::pin(async move {
            if tokio::time::timeout(msg.timeout, drained).await.is_err() {
                log::warn!(
                    "webhook: deliveries still in flight after {} s of the shutdown; a receiver \
                     that took one may get it again after the next start",
                    msg.timeout.as_secs()
                );
            }
        })
    }
}

impl NotifierActor {
    /// One batch to one destination: claims its due rows, posts them side by side, and records
    /// each result; then the lane is idle again ([`LaneDone`]).
    fn deliver_to(&self, url: String, ctx: &mut Context<Self>) {
        let (store, client, config, clock, events, instance_id) = (
            self.store.clone(),
            self.client.clone(),
            Arc::clone(&self.config),
            Arc::clone(&self.clock),
            self.events.clone(),
            self.instance_id.clone(),
        );
        let me = ctx.address();
        actix::spawn(async move {
            let claim = ClaimNotifications {
                instance_id: instance_id.clone(),
                url: url.clone(),
                limit: config.batch,
                lease: config.lease(),
                now: clock.now(),
            };
            match crate::store::ask(&store, claim).await {
                Ok(rows) => {
                    // Each delivery is logged and recorded as soon as it is done, not after the
                    // batch's slowest: under load the records queue in the store, and a log
                    // line written after them would name a retry time already past.
                    let posts = rows.into_iter().map(|row| {
                        let post =
                            deliver(client.clone(), row, Arc::clone(&config), Arc::clone(&clock));
                        let (store, events, instance_id) = (&store, &events, &instance_id);
                        async move {
                            let (row, result, error) = post.await;
                            record(store, events, instance_id, row, result, error).await;
                        }
                    });
                    futures_util::future::join_all(posts).await;
                }
                Err(err) => log::log!(err.pass_level(), "webhook delivery pass failed: {err}"),
            }
            me.do_send(LaneDone(url));
        });
    }
}

/// Logs, counts and stores what became of one delivery.
async fn record(
    store: &Addr<StoreActor>,
    events: &EventBus,
    instance_id: &str,
    row: entity::prelude::NotificationModel,
    result: DeliveryResult,
    error: Option<String>,
) {
    let to = post::redact(&row.url);
    let outcome = match (&result, &error) {
        (DeliveryResult::Delivered, _) => "delivered",
        (DeliveryResult::Retry { at, .. }, Some(error)) => {
            log::warn!(
                "webhook {} of event {} to {to} failed (attempt {}): {error}; retrying at {}",
                row.event_type,
                row.event_id,
                row.attempts + 1,
                iso(*at)
            );
            "failed"
        }
        (_, error) => {
            log::error!(
                "webhook {} of event {} to {to} given up after {} attempts: {}",
                row.event_type,
                row.event_id,
                row.attempts + 1,
                error.as_deref().unwrap_or("failed")
            );
            "gave_up"
        }
    };
    events.emit(RunEvent::NotificationSent {
        event_type: row.event_type.clone(),
        outcome,
    });
    let finish = FinishNotification {
        id: row.id,
        instance_id: instance_id.to_owned(),
        result,
    };
    if let Err(err) = crate::store::ask(store, finish).await {
        // The lease runs out and the row is delivered again: at least once.
        log::error!("webhook: recording delivery {} failed: {err}", row.id);
    }
}
