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
use crate::scheduler::{
    AwaitReleased, Diagnostics, GetDiagnostics, PauseJob, RegisterPlugin, ResumeJob,
    SchedulerActor, Shutdown, ShutdownReport, Start, TriggerJob, TriggeredRun, UnregisterPlugin,
};
use crate::store::{JobDeclaration, JobRef, StoreActor, StoreReader};
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
    /// run events (MetricsActor, JobHealthActor, and the NotifierActor when configured) in the
    /// current actix System, and starts ticking. A setting that breaks a rule of
    /// [`SchedulerConfig::validate`] is [`crate::Error::Config`], and nothing is started.
    pub fn start(self) -> Result<PluginJobsHandle> {
        self.config.validate()?;
        let instance_id = self.instance_id.unwrap_or_else(new_instance_id);
        let reader = StoreReader::new(self.db.clone());
        let store = StoreActor::new(self.db)
            .with_clock(Arc::clone(&self.clock))
            .start();
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
        )
        .start();
        let maintenance = MaintenanceActor::new(
            store.clone(),
            scheduler.clone().recipient(),
            Arc::clone(&self.clock),
            self.config,
            events.clone(),
        )
        .start();
        let metrics =
            MetricsActor::new(scheduler.clone(), store.clone(), Arc::clone(&workers)).start();
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
        }
        Ok(PluginJobsHandle {
            scheduler,
            maintenance,
            events,
            store,
            reader,
            metrics,
            health,
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
        self.scheduler.send(TriggerJob { job, trigger }).await?
    }

    pub async fn pause(&self, job: JobRef) -> Result<PluginJobModel> {
        self.scheduler.send(PauseJob(job)).await?
    }

    pub async fn resume(&self, job: JobRef) -> Result<PluginJobModel> {
        self.scheduler.send(ResumeJob(job)).await?
    }

    /// Registers a plugin and syncs its declared jobs.
    pub async fn register(
        &self,
        plugin_id: impl Into<String>,
        jobs: Vec<JobDeclaration>,
    ) -> Result<Vec<PluginJobModel>> {
        self.scheduler
            .send(RegisterPlugin {
                plugin_id: plugin_id.into(),
                jobs,
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
        ]
        .into_iter()
        .filter(|(_, up)| !up)
        .map(|(name, _)| name)
        .collect()
    }

    /// Waits up to `timeout` until no run holds a job any more. Answers how many still do.
    pub async fn await_released(&self, timeout: Duration) -> Result<usize> {
        Ok(self.scheduler.send(AwaitReleased { timeout }).await?)
    }
}
