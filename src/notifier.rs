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
//! run in its own futures. It may enqueue, claim and finish outbox rows, read jobs, and ask the
//! scheduler for its registered plugins; it never writes jobs or runs.
//!
//! Handles: `RunEvent`, `DeliverPass`. Sends: `EnqueueNotifications`, `ClaimNotifications`,
//! `FinishNotification`, `GetJob` (store), `GetDiagnostics` (scheduler), `NotificationSent`
//! events.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::{NotificationModel, RunStatus};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use crate::clock::Clock;
use crate::events::{EventBus, RunEvent};
use crate::scheduler::{GetDiagnostics, SchedulerActor};
use crate::store::{
    ClaimNotifications, DeliveryResult, EnqueueNotifications, FinishNotification, GetJob, JobRef,
    NewNotification, StoreActor,
};
use crate::time::{delta, iso};
use crate::worker::{WorkerManager, WorkerStatus};
use crate::{Error, Result};

/// The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Plugin-Jobs-Signature";
/// The header carrying the event type.
pub const EVENT_HEADER: &str = "X-Plugin-Jobs-Event";
/// The header carrying the event id (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Plugin-Jobs-Delivery";

/// The events a webhook can be sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationEvent {
    RunFailed,
    RunSucceeded,
    JobPaused,
    JobRecovered,
    SlotMissed,
    WorkerFailed,
}

impl NotificationEvent {
    /// Every event type.
    pub const ALL: [NotificationEvent; 6] = [
        Self::RunFailed,
        Self::RunSucceeded,
        Self::JobPaused,
        Self::JobRecovered,
        Self::SlotMissed,
        Self::WorkerFailed,
    ];
    /// The events sent when none are chosen: everything but `run.succeeded`.
    pub const DEFAULT: [NotificationEvent; 5] = [
        Self::RunFailed,
        Self::JobPaused,
        Self::WorkerFailed,
        Self::SlotMissed,
        Self::JobRecovered,
    ];

    /// The event's name on the wire (`run.failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "run.failed",
            Self::RunSucceeded => "run.succeeded",
            Self::JobPaused => "job.paused",
            Self::JobRecovered => "job.recovered",
            Self::SlotMissed => "slot.missed",
            Self::WorkerFailed => "worker.failed",
        }
    }
}

impl std::fmt::Display for NotificationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NotificationEvent {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|event| event.as_str() == text.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|event| event.as_str()).collect();
                Error::InvalidInput(format!(
                    "unknown webhook event {text:?}; known events: {}",
                    known.join(", ")
                ))
            })
    }
}

/// Where and how webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Every event goes to each of these (`http://` or `https://`).
    pub urls: Vec<String>,
    /// Signs every delivery when set (see [`signature`]).
    pub secret: Option<String>,
    pub events: Vec<NotificationEvent>,
    /// How often due deliveries are looked for (and worker states checked).
    pub poll_interval: Duration,
    /// How long one POST may take.
    pub request_timeout: Duration,
    /// Wait before the first retry; doubled each attempt up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// A delivery still failing this long after its event is given up (logged and counted).
    pub give_up_after: Duration,
    /// Most deliveries the outbox holds; events beyond are dropped (logged and counted).
    pub max_outbox: u64,
    /// Most deliveries one pass claims.
    pub batch: u64,
}

impl NotifierConfig {
    /// Delivery to `urls` of the default events, unsigned, with the default timings.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            secret: None,
            events: NotificationEvent::DEFAULT.to_vec(),
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
            max_outbox: 10_000,
            batch: 50,
        }
    }

    /// Refuses a destination that is not an absolute `http(s)://` URL, naming it.
    pub fn validate(&self) -> Result<()> {
        for url in &self.urls {
            let parsed: awc::http::Uri = url
                .parse()
                .map_err(|err| Error::InvalidInput(format!("webhook url {url:?}: {err}")))?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
                return Err(Error::InvalidInput(format!(
                    "webhook url {url:?} must be an absolute http:// or https:// URL"
                )));
            }
        }
        Ok(())
    }

    /// How long after `attempts` failed attempts the next one is made.
    fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
        self.first_backoff
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.max_backoff)
    }

    /// The lease of a claimed delivery: long enough for the POST and the write of its result.
    fn lease(&self) -> Duration {
        self.request_timeout * 2 + Duration::from_secs(5)
    }
}

/// The JSON body of every webhook. Fields that do not apply to an event are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPayload {
    /// The event id: the same on every retry and every destination.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened (ISO 8601, UTC, milliseconds).
    pub time: String,
    /// The instance that saw it.
    pub instance: String,
    pub plugin: String,
    pub job: Option<String>,
    pub job_id: Option<Uuid>,
    pub run: Option<Uuid>,
    /// The run's attempt: 1 for the first run of a slot, 2 for its first retry, …
    pub attempt: Option<u32>,
    pub error: Option<String>,
    /// API path of the run (or of the job, or of the plugins for a worker event).
    pub link: String,
    /// `run.*`: the run's status; `slot.missed`: `overlap` or `misfire`; `worker.failed`: the
    /// worker's state.
    pub status: Option<String>,
    /// `job.paused`: the pause reason.
    pub reason: Option<String>,
    /// `job.paused` and `job.recovered`: consecutive failures before the event.
    pub failures: Option<i32>,
    /// `slot.missed`: the slot that passed without a run.
    pub slot: Option<String>,
}

impl NotificationPayload {
    fn new(event: NotificationEvent, time: DateTime<Utc>, instance: &str, plugin: &str) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: event.as_str().to_owned(),
            time: iso(time),
            instance: instance.to_owned(),
            plugin: plugin.to_owned(),
            job: None,
            job_id: None,
            run: None,
            attempt: None,
            error: None,
            link: "/api/plugins".to_owned(),
            status: None,
            reason: None,
            failures: None,
            slot: None,
        }
    }

    fn with_job(mut self, job_id: Uuid, job_key: Option<String>) -> Self {
        self.link = format!(
            "/api/plugins/{}/jobs/{job_id}",
            percent_encoding::utf8_percent_encode(&self.plugin, percent_encoding::NON_ALPHANUMERIC)
        );
        self.job = job_key;
        self.job_id = Some(job_id);
        self
    }

    fn with_run(mut self, run_id: Uuid) -> Self {
        self.link = format!("/api/runs/{run_id}");
        self.run = Some(run_id);
        self.attempt = Some(1);
        self
    }
}

/// The `v1` signature of a delivery: hex HMAC-SHA256 with `secret` over `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> Result<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .map_err(|err| Error::InvalidInput(format!("webhook secret: {err}")))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Runs one delivery pass now: claims due deliveries and posts them. Answers how many were
/// delivered.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<usize>")]
pub struct DeliverPass;

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
    /// A pass is in flight; `again` asks for another one when it ends.
    delivering: bool,
    again: bool,
    worker_states: HashMap<String, WorkerStatus>,
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
            delivering: false,
            again: false,
            worker_states: HashMap::new(),
        }
    }

    fn wants(&self, event: NotificationEvent) -> bool {
        self.config.events.contains(&event)
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
            .map(move |added, act, ctx| {
                let dropped = match added {
                    Ok(added) => wanted - added.min(wanted),
                    Err(err) => {
                        log::error!("webhook: cannot store a {event_type} event: {err}");
                        wanted
                    }
                };
                if dropped > 0 {
                    log::error!(
                        "webhook: {dropped} delivery(ies) of a {event_type} event dropped: the \
                         outbox is full ({} rows) or unwritable",
                        act.config.max_outbox
                    );
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

    fn deliver_soon(&mut self, ctx: &mut Context<Self>) {
        if self.delivering {
            self.again = true;
            return;
        }
        let me = ctx.address();
        actix::spawn(async move {
            if let Ok(Err(err)) = me.send(DeliverPass).await {
                log::error!("webhook delivery pass failed: {err}");
            }
        });
    }

    /// Sends `worker.failed` for each plugin whose worker has turned `failed` since the last
    /// look.
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
                    let status = act.workers.status(&plugin);
                    let before = act.worker_states.insert(plugin.clone(), status);
                    if status == WorkerStatus::Failed && before != Some(WorkerStatus::Failed) {
                        let mut payload = NotificationPayload::new(
                            NotificationEvent::WorkerFailed,
                            act.clock.now(),
                            &act.instance_id,
                            &plugin,
                        );
                        payload.status = Some(status.to_string());
                        payload.error = Some(format!("the worker of plugin {plugin} failed"));
                        act.enqueue(payload, ctx);
                    }
                }
            })
            .spawn(ctx);
    }
}

/// TLS for `https://` destinations: rustls with the `ring` provider and the Mozilla roots.
fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        Err(err) => {
            // The ring provider supports the default versions; this is a build mistake.
            log::error!("webhook TLS: {err}; falling back to rustls' defaults");
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    };
    Arc::new(config)
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
        let now = self.clock.now();
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
                if !self.wants(kind) {
                    return;
                }
                let mut payload =
                    NotificationPayload::new(kind, now, &self.instance_id, &plugin_id)
                        .with_job(job_id, Some(job_key))
                        .with_run(run_id);
                payload.status = Some(status.to_string());
                payload.error = error;
                payload.attempt = u32::try_from(attempt).ok();
                payload
            }
            RunEvent::RunRescued {
                run_id,
                job_id,
                plugin_id,
                attempt,
                error,
            } => {
                if !self.wants(NotificationEvent::RunFailed) {
                    return;
                }
                // The rescue does not carry the job's key: it is read before the event goes out.
                let mut payload = NotificationPayload::new(
                    NotificationEvent::RunFailed,
                    now,
                    &self.instance_id,
                    &plugin_id,
                )
                .with_job(job_id, None)
                .with_run(run_id);
                payload.status = Some(RunStatus::Failed.to_string());
                payload.error = Some(error);
                payload.attempt = u32::try_from(attempt).ok();
                let store = self.store.clone();
                async move { crate::store::ask(&store, GetJob(JobRef::Id(job_id))).await }
                    .into_actor(self)
                    .map(move |job, act, ctx| {
                        payload.job = job.ok().flatten().map(|job| job.job_key);
                        act.enqueue(payload, ctx);
                    })
                    .spawn(ctx);
                return;
            }
            RunEvent::JobPaused {
                job_id,
                plugin_id,
                job_key,
                run_id,
                failures,
                reason,
                error,
            } => {
                if !self.wants(NotificationEvent::JobPaused) {
                    return;
                }
                let mut payload = NotificationPayload::new(
                    NotificationEvent::JobPaused,
                    now,
                    &self.instance_id,
                    &plugin_id,
                )
                .with_job(job_id, Some(job_key))
                .with_run(run_id);
                payload.status = Some("paused".to_owned());
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
                failures,
            } => {
                if !self.wants(NotificationEvent::JobRecovered) {
                    return;
                }
                let mut payload = NotificationPayload::new(
                    NotificationEvent::JobRecovered,
                    now,
                    &self.instance_id,
                    &plugin_id,
                )
                .with_job(job_id, Some(job_key))
                .with_run(run_id);
                payload.status = Some(RunStatus::Succeeded.to_string());
                payload.failures = Some(failures);
                payload
            }
            RunEvent::SlotSkipped {
                job_id,
                plugin_id,
                job_key,
                slot,
                reason,
            } => {
                if !self.wants(NotificationEvent::SlotMissed) {
                    return;
                }
                let mut payload = NotificationPayload::new(
                    NotificationEvent::SlotMissed,
                    now,
                    &self.instance_id,
                    &plugin_id,
                )
                .with_job(job_id, Some(job_key));
                payload.status = Some(reason.to_string());
                payload.slot = Some(iso(slot));
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

/// One POST of one outbox row. Answers what to record for it.
async fn deliver(
    client: awc::Client,
    row: NotificationModel,
    config: Arc<NotifierConfig>,
    now: DateTime<Utc>,
) -> (NotificationModel, DeliveryResult, Option<String>) {
    let sent = async {
        let mut request = client
            .post(&row.url)
            .timeout(config.request_timeout)
            .insert_header(("Content-Type", "application/json"))
            .insert_header((
                "User-Agent",
                concat!("plugin-jobs/", env!("CARGO_PKG_VERSION")),
            ))
            .insert_header((EVENT_HEADER, row.event_type.clone()))
            .insert_header((DELIVERY_HEADER, row.event_id.to_string()));
        if let Some(secret) = &config.secret {
            let timestamp = now.timestamp();
            let v1 = signature(secret, timestamp, &row.body).map_err(|err| err.to_string())?;
            request = request.insert_header((SIGNATURE_HEADER, format!("t={timestamp},v1={v1}")));
        }
        let response = request
            .send_body(row.body.clone())
            .await
            .map_err(|err| err.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status()))
        }
    };
    match sent.await {
        Ok(()) => (row, DeliveryResult::Delivered, None),
        Err(error) => {
            let at = now + delta(config.backoff(row.attempts));
            let deadline = row.created_at + delta(config.give_up_after);
            let result = if at > deadline {
                DeliveryResult::GiveUp
            } else {
                DeliveryResult::Retry {
                    at,
                    error: error.clone(),
                }
            };
            (row, result, Some(error))
        }
    }
}

impl Handler<DeliverPass> for NotifierActor {
    type Result = ResponseActFuture<Self, Result<usize>>;

    fn handle(&mut self, _msg: DeliverPass, _ctx: &mut Self::Context) -> Self::Result {
        if self.delivering {
            // One pass at a time; the one in flight starts another when it ends.
            self.again = true;
            return Box::pin(actix::fut::ready(Ok(0)));
        }
        self.delivering = true;
        self.again = false;
        let (store, client, config, clock, events, instance_id) = (
            self.store.clone(),
            self.client.clone(),
            Arc::clone(&self.config),
            Arc::clone(&self.clock),
            self.events.clone(),
            self.instance_id.clone(),
        );
        let pass = async move {
            let claim = ClaimNotifications {
                instance_id: instance_id.clone(),
                limit: config.batch,
                lease: config.lease(),
                now: clock.now(),
            };
            let rows = crate::store::ask(&store, claim).await?;
            let now = clock.now();
            let posts = rows
                .into_iter()
                .map(|row| deliver(client.clone(), row, Arc::clone(&config), now));
            let mut delivered = 0;
            for (row, result, error) in futures_util::future::join_all(posts).await {
                let outcome = match (&result, &error) {
                    (DeliveryResult::Delivered, _) => {
                        delivered += 1;
                        "delivered"
                    }
                    (DeliveryResult::Retry { at, .. }, Some(error)) => {
                        log::warn!(
                            "webhook {} of event {} to {} failed (attempt {}): {error}; retrying at {}",
                            row.event_type,
                            row.event_id,
                            row.url,
                            row.attempts + 1,
                            iso(*at)
                        );
                        "failed"
                    }
                    (_, error) => {
                        log::error!(
                            "webhook {} of event {} to {} given up after {} attempts: {}",
                            row.event_type,
                            row.event_id,
                            row.url,
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
                    instance_id: instance_id.clone(),
                    result,
                };
                if let Err(err) = crate::store::ask(&store, finish).await {
                    // The lease runs out and the row is delivered again: at least once.
                    log::error!("webhook: recording delivery {} failed: {err}", row.id);
                }
            }
            Ok(delivered)
        };
        Box::pin(pass.into_actor(self).map(|result, act, ctx| {
            act.delivering = false;
            if act.again {
                act.deliver_soon(ctx);
            }
            result
        }))
    }
}
