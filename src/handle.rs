//! The embedding API: one builder call starts the actors inside the caller's actix System and
//! returns a cloneable [`PluginJobsHandle`].
//!
//! ```no_run
//! # async fn demo(db: sea_orm::DatabaseConnection) -> plugin_jobs::Result<()> {
//! use plugin_jobs::{PluginJobs, store::JobDeclaration, worker::InProcessWorkers};
//!
//! let workers = InProcessWorkers::new();
//! workers.register("billing", "invoice", |_ctx| async { Ok(()) });
//! let jobs = PluginJobs::builder(db).workers(workers).start()?;
//! jobs.register("billing", vec![JobDeclaration::new("invoice", "0 * * * *")]).await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use entity::prelude::*;
use sea_orm::DatabaseConnection;

use crate::Result;
use crate::clock::{Clock, SystemClock};
use crate::config::SchedulerConfig;
use crate::events::{EventBus, RunEvent};
use crate::job_health::JobHealthActor;
use crate::maintenance::{MaintenanceActor, StartMaintenance};
use crate::metrics::{MetricsActor, RenderMetrics};
use crate::notifier::{NotifierActor, NotifierConfig};
use crate::retry::{PendingWorkAdded, RetryActor, StartRetries};
use crate::scheduler::{
    AwaitReleased, CancelRun, Diagnostics, GetDiagnostics, JobUpdated, JobsChanged, PauseJob,
    PluginOptions, RegisterPlugin, ResumeJob, RunFence, SchedulerActor, Shutdown, ShutdownReport,
    Start, TriggerJob, TriggeredRun, UnregisterPlugin,
};
use crate::store::{
    BackfillRequested, CancelBackfill, CreateJob, DeleteJob, GetJob, JobDeclaration, JobRef,
    PendingBackfillOf, RequestBackfill, StoreActor, StoreReader, UpdateJob,
};
use crate::worker::{InProcessWorkers, WorkerManager};

/// Entry point of the embedding API.
#[derive(Debug)]
pub struct PluginJobs;

impl PluginJobs {
    /// A builder over an already migrated connection (see [`crate::db::connect_and_migrate`]).
    pub fn builder(db: DatabaseConnection) -> PluginJobsBuilder {
        PluginJobsBuilder {
            db,
            workers: None,
            config: SchedulerConfig::default(),
            clock: Arc::new(SystemClock),
            instance_id: None,
            timers: true,
            pause_after_failures: None,
            notifier: None,
        }
    }
}

/// Configures and starts plugin-jobs.
#[derive(Debug)]
pub struct PluginJobsBuilder {
    db: DatabaseConnection,
    workers: Option<Arc<dyn WorkerManager>>,
    config: SchedulerConfig,
    clock: Arc<dyn Clock>,
    instance_id: Option<String>,
    timers: bool,
    pause_after_failures: Option<u32>,
    notifier: Option<NotifierConfig>,
}

impl PluginJobsBuilder {
    /// Where jobs run (default: an empty [`InProcessWorkers`]).
    pub fn workers(mut self, workers: impl WorkerManager) -> Self {
        self.workers = Some(Arc::new(workers));
        self
    }

    /// Scheduler settings (default: [`SchedulerConfig::default`]); [`Self::start`] checks them
    /// with [`SchedulerConfig::validate`].
    pub fn config(mut self, config: SchedulerConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock every actor reads (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// This instance's id, recorded on its runs (default: host, process id and a random part,
    /// unique per process start).
    pub fn instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.instance_id = Some(instance_id.into());
        self
    }

    /// No timers: the caller sends `Tick` itself (tests with a manual clock).
    pub fn manual_ticks(mut self) -> Self {
        self.timers = false;
        self
    }

    /// Pauses a job after this many consecutive failed runs when it declares no
    /// `pauseAfterFailures` of its own (default: never).
    pub fn pause_after_failures(mut self, failures: Option<u32>) -> Self {
        self.pause_after_failures = failures.filter(|failures| *failures > 0);
        self
    }

    /// Posts webhooks for run events (default: none). See [`crate::notifier`].
    pub fn notifier(mut self, config: NotifierConfig) -> Self {
        self.notifier = Some(config);
        self
    }

    /// Starts the StoreActor, the SchedulerActor, the MaintenanceActor, and the subscribers of
    /// run events (MetricsActor, JobHealthActor, RetryActor, and the NotifierActor when
    /// configured) in the
    /// current actix System, and starts ticking. A setting that breaks a rule of
    /// [`SchedulerConfig::validate`] is [`crate::Error::Config`], and nothing is started.
    pub fn start(self) -> Result<PluginJobsHandle> {
        self.config.validate()?;
        let instance_id = self.instance_id.unwrap_or_else(new_instance_id);
        let retry_poll = self.config.tick_interval;
        let reader = StoreReader::new(self.db.clone());
        let store = StoreActor::new(self.db)
            .with_clock(Arc::clone(&self.clock))
            .with_batch_limit(crate::scheduler::claim_size(
                self.config.max_concurrent_runs,
            ))
            .start_on_own_thread();
        let workers = self
            .workers
            .unwrap_or_else(|| Arc::new(InProcessWorkers::new()));
        let events = EventBus::default();
        let scheduler = SchedulerActor::new(
            store.clone(),
            Arc::clone(&workers),
            Arc::clone(&self.clock),
            self.config.clone(),
            instance_id.clone(),
            self.timers,
            events.clone(),
        );
        let fence = RunFence::new(scheduler.live_run_actors()).start();
        let scheduler = scheduler.start();
        // A worker that starts taking calls (its first start, a restart) is claimed for at once:
        // its due jobs start, and the wake is armed for its next slots.
        let wake = scheduler.clone();
        workers.on_running(Arc::new(move |_plugin| wake.do_send(JobsChanged)));
        // A worker's guard kills it once its host has been frozen this long: before any other
        // instance can see the worker's runs' leases expire (the last heartbeat may be one
        // interval older than the freeze; one more is the margin).
        workers.set_leash(
            self.config
                .run_lease
                .saturating_sub(self.config.heartbeat_interval * 2),
        );
        let maintenance = MaintenanceActor::new(
            store.clone(),
            scheduler.clone().recipient(),
            fence.recipient(),
            Arc::clone(&self.clock),
            self.config,
            events.clone(),
        )
        .start();
        let metrics =
            MetricsActor::new(scheduler.clone(), store.clone(), Arc::clone(&workers)).start();
        let retries = RetryActor::new(
            store.clone(),
            scheduler.clone(),
            Arc::clone(&self.clock),
            events.clone(),
            retry_poll,
        )
        .start();
        let health = JobHealthActor::new(
            store.clone(),
            Arc::clone(&self.clock),
            events.clone(),
            self.pause_after_failures,
        )
        .start();
        // Subscribed before `Start`, so they see the first tick's events.
        events.subscribe(metrics.clone().recipient());
        events.subscribe(health.clone().recipient());
        events.subscribe(retries.clone().recipient());
        let notifier = self.notifier.map(|config| {
            let notifier = NotifierActor::new(
                store.clone(),
                scheduler.clone(),
                Arc::clone(&workers),
                Arc::clone(&self.clock),
                events.clone(),
                config,
                instance_id.clone(),
            )
            .start();
            events.subscribe(notifier.clone().recipient());
            notifier
        });
        scheduler.do_send(Start);
        if self.timers {
            maintenance.do_send(StartMaintenance);
            retries.do_send(StartRetries);
        }
        Ok(PluginJobsHandle {
            scheduler,
            maintenance,
            events,
            store,
            reader,
            metrics,
            health,
            retries,
            notifier,
            workers,
            clock: self.clock,
            instance_id,
        })
    }
}

/// A fresh instance id: host, process id and a random part, unique per process start. The
/// builder uses one when given none; pass the same id to anything else that reports it (such as
/// [`crate::worker::ProcessWorkerConfig::instance_id`]).
pub fn new_instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

/// A cloneable handle on a running plugin-jobs. Every method sends one message.
#[derive(Debug, Clone)]
pub struct PluginJobsHandle {
    pub scheduler: Addr<SchedulerActor>,
    /// Heartbeats, rescue and pruning; tests send it one pass at a time.
    pub maintenance: Addr<MaintenanceActor>,
    /// The run events of this instance: subscribe new actors here.
    pub events: EventBus,
    pub store: Addr<StoreActor>,
    /// The API's listing reads, straight on the pool rather than behind the store's writes.
    pub reader: StoreReader,
    /// Keeps the Prometheus metrics (`GET /metrics`).
    pub metrics: Addr<MetricsActor>,
    /// Keeps each job's failure streak and last success; pauses jobs that fail too often.
    pub health: Addr<JobHealthActor>,
    /// Starts the retries failed runs asked for; tests send it one pass at a time.
    pub retries: Addr<RetryActor>,
    /// Posts webhooks, when the builder was given a [`NotifierConfig`].
    pub notifier: Option<Addr<NotifierActor>>,
    /// The workers the scheduler calls; the API reads their status.
    pub workers: Arc<dyn WorkerManager>,
    /// The clock the actors read; the API computes a job's upcoming slots from it.
    pub clock: Arc<dyn Clock>,
    pub instance_id: String,
}

impl PluginJobsHandle {
    /// Runs a job now (`Manual` or `Retry`); answers once the run is queued.
    pub async fn trigger(&self, job: JobRef, trigger: RunTrigger) -> Result<TriggeredRun> {
        self.trigger_with_payload(job, trigger, None).await
    }

    /// Runs a job now with a one-off `payload` in place of the job's (`None`: the job's).
    pub async fn trigger_with_payload(
        &self,
        job: JobRef,
        trigger: RunTrigger,
        payload: Option<serde_json::Value>,
    ) -> Result<TriggeredRun> {
        self.scheduler
            .send(TriggerJob {
                job,
                trigger,
                payload,
            })
            .await?
    }

    /// Creates a job of `plugin_id` (`origin: api`): validated like a manifest's job, it
    /// survives manifest syncs and takes effect at once.
    pub async fn create_job(
        &self,
        plugin_id: impl Into<String>,
        job: JobDeclaration,
    ) -> Result<PluginJobModel> {
        let msg = CreateJob {
            plugin_id: plugin_id.into(),
            job,
            now: self.clock.now(),
        };
        self.changed(crate::store::ask(&self.store, msg).await)
    }

    /// Changes a job created through the API by a JSON merge patch of its declaration, e.g.
    /// `{"schedule": "*/5 * * * *", "payload": {"region": "eu"}}`; `null` resets a field.
    pub async fn update_job(
        &self,
        job: JobRef,
        patch: serde_json::Value,
    ) -> Result<PluginJobModel> {
        let job_id = self.job_id(job).await?;
        let msg = UpdateJob {
            job_id,
            patch,
            now: self.clock.now(),
        };
        self.changed(crate::store::ask(&self.store, msg).await)
    }

    /// Retires a job created through the API; its history stays.
    pub async fn delete_job(&self, job: JobRef) -> Result<PluginJobModel> {
        let job_id = self.job_id(job).await?;
        let msg = DeleteJob {
            job_id,
            now: self.clock.now(),
        };
        self.changed(crate::store::ask(&self.store, msg).await)
    }

    /// Replays every slot of the job in `[from, to)` that has no run yet (at most
    /// [`crate::store::MAX_BACKFILL_SLOTS`]): oldest first, one run at a time, under the
    /// concurrency caps, with `trigger: backfill`.
    pub async fn backfill(
        &self,
        job: JobRef,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<BackfillRequested> {
        let job_id = self.job_id(job).await?;
        let msg = RequestBackfill {
            job_id,
            from,
            to,
            now: self.clock.now(),
        };
        let requested = crate::store::ask(&self.store, msg).await?;
        self.retries.do_send(PendingWorkAdded);
        Ok(requested)
    }

    /// The job's backfilled slots that have not started, oldest first.
    pub async fn pending_backfill(
        &self,
        job: JobRef,
    ) -> Result<Vec<chrono::DateTime<chrono::Utc>>> {
        let job_id = self.job_id(job).await?;
        crate::store::ask(&self.store, PendingBackfillOf { job_id }).await
    }

    /// Cancels the job's backfilled slots that have not started. Answers how many.
    pub async fn cancel_backfill(&self, job: JobRef) -> Result<u64> {
        let job_id = self.job_id(job).await?;
        let msg = CancelBackfill {
            job_id,
            now: self.clock.now(),
        };
        crate::store::ask(&self.store, msg).await
    }

    async fn job_id(&self, job: JobRef) -> Result<uuid::Uuid> {
        if let JobRef::Id(id) = job {
            return Ok(id);
        }
        let label = match &job {
            JobRef::Id(id) => id.to_string(),
            JobRef::Key { plugin_id, job_key } => format!("{plugin_id}/{job_key}"),
        };
        crate::store::ask(&self.store, GetJob(job))
            .await?
            .map(|job| job.id)
            .ok_or(crate::Error::JobNotFound(label))
    }

    /// Tells the scheduler when a change landed, so it claims without waiting for a tick.
    fn changed(&self, result: Result<PluginJobModel>) -> Result<PluginJobModel> {
        if let Ok(job) = &result {
            self.scheduler.do_send(JobUpdated(job.clone()));
            self.scheduler.do_send(JobsChanged);
        }
        result
    }

    pub async fn pause(&self, job: JobRef) -> Result<PluginJobModel> {
        self.scheduler.send(PauseJob(job)).await?
    }

    pub async fn resume(&self, job: JobRef) -> Result<PluginJobModel> {
        self.scheduler.send(ResumeJob(job)).await?
    }

    /// Cancels a live run of this instance (see [`CancelRun`]); answers the run as recorded.
    pub async fn cancel_run(
        &self,
        run_id: uuid::Uuid,
    ) -> Result<entity::prelude::PluginJobRunModel> {
        self.scheduler.send(CancelRun(run_id)).await?
    }

    /// Registers a plugin and syncs its declared jobs. Answers the declared jobs as stored, with
    /// the ones it no longer declares (retired) and any job created through the API that holds
    /// a declared key, ordered by key; the plugin's other API jobs are not part of it.
    pub async fn register(
        &self,
        plugin_id: impl Into<String>,
        jobs: Vec<JobDeclaration>,
    ) -> Result<Vec<PluginJobModel>> {
        self.register_with(plugin_id, jobs, PluginOptions::default())
            .await
    }

    /// Registers a plugin with its own settings (such as its `maxConcurrentRuns`) and syncs
    /// its declared jobs.
    pub async fn register_with(
        &self,
        plugin_id: impl Into<String>,
        jobs: Vec<JobDeclaration>,
        options: PluginOptions,
    ) -> Result<Vec<PluginJobModel>> {
        self.scheduler
            .send(RegisterPlugin {
                plugin_id: plugin_id.into(),
                jobs,
                options,
            })
            .await?
    }

    pub async fn unregister(&self, plugin_id: impl Into<String>) -> Result<()> {
        self.scheduler
            .send(UnregisterPlugin {
                plugin_id: plugin_id.into(),
            })
            .await?
    }

    pub async fn diagnostics(&self) -> Result<Diagnostics> {
        Ok(self.scheduler.send(GetDiagnostics).await?)
    }

    /// Every metric in the Prometheus text format ([`crate::metrics::CONTENT_TYPE`]).
    pub async fn metrics(&self) -> Result<String> {
        self.metrics.send(RenderMetrics).await?
    }

    /// Subscribes to run events.
    pub fn subscribe(&self, recipient: Recipient<RunEvent>) {
        self.events.subscribe(recipient);
    }

    /// Stops ticking, lets runs finish within `grace`, cancels the rest. Answers once every
    /// outcome is recorded; a cancelled run's job stays blocked until its worker lets go (stop
    /// the workers, then [`Self::await_released`]).
    pub async fn shutdown(&self, grace: Duration) -> Result<ShutdownReport> {
        Ok(self.scheduler.send(Shutdown { grace }).await?)
    }

    /// The actors that have stopped (after a panic, for instance). A plugin-jobs with a dead
    /// actor must not be taken for healthy: `/healthz` answers 503 while this is not empty.
    pub fn down_actors(&self) -> Vec<&'static str> {
        let notifier = self.notifier.as_ref().is_none_or(Addr::connected);
        [
            ("NotifierActor", notifier),
            ("StoreActor", self.store.connected()),
            ("SchedulerActor", self.scheduler.connected()),
            ("MetricsActor", self.metrics.connected()),
            ("JobHealthActor", self.health.connected()),
            ("RetryActor", self.retries.connected()),
        ]
        .into_iter()
        .filter(|(_, up)| !up)
        .map(|(name, _)| name)
        .collect()
    }

    /// Stops the webhook deliveries and waits up to `timeout` for those in flight to be
    /// recorded: call it before closing the database pool. Without a notifier it returns at once.
    pub async fn drain_notifications(&self, timeout: Duration) {
        if let Some(notifier) = &self.notifier {
            let _ = notifier.send(crate::notifier::Drain { timeout }).await;
        }
    }

    /// Waits up to `timeout` until no run holds a job any more. Answers how many still do.
    pub async fn await_released(&self, timeout: Duration) -> Result<usize> {
        Ok(self.scheduler.send(AwaitReleased { timeout }).await?)
    }
}
