//! The `MetricsActor`: a run-event subscriber that keeps Prometheus metrics (through the
//! `prometheus-client` crate) and renders them for `GET /metrics`.
//!
//! Handles: `RunEvent` (counts and histograms as runs and ticks happen) and `RenderMetrics`
//! (reads the scheduler's diagnostics, the workers' state and every job's health from the
//! database at scrape time, then encodes every metric in the Prometheus text format). Sends:
//! `GetDiagnostics` to the scheduler, `ListJobs` to the store.
//!
//! The per-job gauges (last success, failure streak, next run) come from the database, not from
//! this instance's events: every instance of a cluster reports the same values for a job, and
//! they survive restarts.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix::prelude::*;
use entity::prelude::{JobStatus, PluginJobModel};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::Result;
use crate::events::RunEvent;
use crate::scheduler::{GetDiagnostics, SchedulerActor};
use crate::store::{ListJobs, StoreActor};
use crate::worker::{WorkerManager, WorkerStatus};

/// The `Content-Type` of what [`RenderMetrics`] answers: the Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the start-lateness buckets: a healthy scheduler starts runs within
/// milliseconds of their slot; seconds mean a saturated budget or a catch-up after downtime.
const LATENESS_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Upper bounds (seconds) of the run-duration buckets, from instant jobs to hour-long ones.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Upper bounds (seconds) of the tick-duration buckets: a tick is one or two statements.
const TICK_BUCKETS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Every state a worker can be in, for the one-hot `worker_status` gauge.
const WORKER_STATUSES: [WorkerStatus; 5] = [
    WorkerStatus::Starting,
    WorkerStatus::Running,
    WorkerStatus::Restarting,
    WorkerStatus::Failed,
    WorkerStatus::Stopped,
];

/// Most jobs that get series of their own. Runs of further jobs are counted under the job label
/// [`OTHER_JOBS`], so a plugin with a hundred thousand jobs cannot grow the metrics (and every
/// scrape) without bound.
pub const MAX_LABELLED_JOBS: usize = 1_000;
/// The `job` label of jobs past [`MAX_LABELLED_JOBS`].
pub const OTHER_JOBS: &str = "_other";

/// Renders every metric in the Prometheus text format; answers the text.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<String>")]
pub struct RenderMetrics;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FinishedLabels {
    plugin: String,
    job: String,
    trigger: String,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobTriggerLabels {
    plugin: String,
    job: String,
    trigger: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DurationLabels {
    plugin: String,
    job: String,
    status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SkippedLabels {
    plugin: String,
    job: String,
    reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct JobLabels {
    plugin: String,
    job: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NotificationLabels {
    event: String,
    outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WorkerStatusLabels {
    plugin: String,
    status: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn lateness_histogram() -> Histogram {
    Histogram::new(LATENESS_BUCKETS)
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// Keeps the metrics of one scheduler instance.
pub struct MetricsActor {
    scheduler: Addr<SchedulerActor>,
    store: Addr<StoreActor>,
    workers: Arc<dyn WorkerManager>,
    registry: Registry,
    runs_queued: Family<JobTriggerLabels, Counter>,
    runs_finished: Family<FinishedLabels, Counter>,
    start_lateness: HistogramFamily<JobTriggerLabels>,
    run_duration: HistogramFamily<DurationLabels>,
    slots_skipped: Family<SkippedLabels, Counter>,
    runs_rescued: Family<PluginLabels, Counter>,
    tick_duration: Histogram,
    runs_live: Gauge,
    runs_waiting: Gauge,
    max_concurrent_runs: Gauge,
    worker_status: Family<WorkerStatusLabels, Gauge>,
    worker_restarts: Family<PluginLabels, Counter>,
    job_last_success: Family<JobLabels, Gauge<f64, AtomicU64>>,
    job_consecutive_failures: Family<JobLabels, Gauge>,
    job_next_run: Family<JobLabels, Gauge<f64, AtomicU64>>,
    job_interval: Family<JobLabels, Gauge<f64, AtomicU64>>,
    notifications: Family<NotificationLabels, Counter>,
    /// Jobs with series of their own, as `plugin` → job keys.
    labelled_jobs: std::collections::HashMap<String, std::collections::HashSet<String>>,
    labelled_count: usize,
}

impl std::fmt::Debug for MetricsActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsActor").finish_non_exhaustive()
    }
}

impl MetricsActor {
    /// Metrics for the scheduler at `scheduler` over `store`, whose workers are `workers`.
    /// Subscribe the started actor to the scheduler's run events (the builder does).
    pub fn new(
        scheduler: Addr<SchedulerActor>,
        store: Addr<StoreActor>,
        workers: Arc<dyn WorkerManager>,
    ) -> Self {
        let mut registry = Registry::with_prefix("plugin_jobs");
        let runs_queued = Family::default();
        registry.register(
            "runs_queued",
            "Runs created queued, by plugin, job and trigger (schedule, manual, retry)",
            runs_queued.clone(),
        );
        let runs_finished = Family::default();
        registry.register(
            "runs_finished",
            "Runs that reached a terminal status, by plugin, job, trigger and status \
             (succeeded, failed, cancelled)",
            runs_finished.clone(),
        );
        let start_lateness: HistogramFamily<JobTriggerLabels> =
            Family::new_with_constructor(lateness_histogram);
        registry.register(
            "run_start_lateness_seconds",
            "How long after its scheduled time (the slot, or the request for manual runs) a run \
             started",
            start_lateness.clone(),
        );
        let run_duration: HistogramFamily<DurationLabels> =
            Family::new_with_constructor(duration_histogram);
        registry.register(
            "run_duration_seconds",
            "How long runs took from start to outcome, by plugin, job and status",
            run_duration.clone(),
        );
        let slots_skipped = Family::default();
        registry.register(
            "slots_skipped",
            "Due slots that passed without a run, by reason (overlap: the previous run was \
             still live; misfire: missed by more than the grace under the skip policy)",
            slots_skipped.clone(),
        );
        let runs_rescued = Family::default();
        registry.register(
            "runs_rescued",
            "Live runs failed by a rescue pass because their instance stopped heartbeating them",
            runs_rescued.clone(),
        );
        let tick_duration = Histogram::new(TICK_BUCKETS);
        registry.register(
            "tick_duration_seconds",
            "Wall time of one scheduler tick: claiming due jobs and spawning their runs",
            tick_duration.clone(),
        );
        let runs_live = Gauge::default();
        registry.register(
            "runs_live",
            "Runs of this instance holding a concurrency slot (starting, running, or timed out \
             and waiting for the worker)",
            runs_live.clone(),
        );
        let runs_waiting = Gauge::default();
        registry.register(
            "runs_waiting",
            "Manual and retry runs queued, waiting for a free concurrency slot",
            runs_waiting.clone(),
        );
        let max_concurrent_runs = Gauge::default();
        registry.register(
            "max_concurrent_runs",
            "The concurrency budget of this instance",
            max_concurrent_runs.clone(),
        );
        let worker_status = Family::default();
        registry.register(
            "worker_status",
            "1 for the state each registered plugin's worker is in (starting, running, \
             restarting, failed, stopped), 0 for the others",
            worker_status.clone(),
        );
        let worker_restarts = Family::default();
        registry.register(
            "worker_restarts",
            "Restarts of each plugin's worker since it was first started (after crashes, or \
             after a timed-out run did not answer)",
            worker_restarts.clone(),
        );
        let job_last_success = Family::default();
        registry.register(
            "job_last_success_timestamp_seconds",
            "When a run of the job last succeeded (Unix seconds); absent until one has",
            job_last_success.clone(),
        );
        let job_consecutive_failures = Family::default();
        registry.register(
            "job_consecutive_failures",
            "Failed runs of the job since it last succeeded (or was resumed)",
            job_consecutive_failures.clone(),
        );
        let job_next_run = Family::default();
        registry.register(
            "job_next_run_timestamp_seconds",
            "The next slot of an active scheduled job (Unix seconds); absent for paused, \
             failed, retired and manual-only jobs",
            job_next_run.clone(),
        );
        let job_interval = Family::default();
        registry.register(
            "job_interval_seconds",
            "Seconds from the next slot of an active scheduled job to the one after: its \
             interval, for alerts such as 'no success in 2 x the interval'",
            job_interval.clone(),
        );
        let notifications = Family::default();
        registry.register(
            "notifications",
            "Webhook deliveries by event type and outcome: delivered, failed (retried later), \
             gave_up (failed past the give-up time), dropped (the outbox was full)",
            notifications.clone(),
        );
        Self {
            scheduler,
            store,
            workers,
            registry,
            runs_queued,
            runs_finished,
            start_lateness,
            run_duration,
            slots_skipped,
            runs_rescued,
            tick_duration,
            runs_live,
            runs_waiting,
            max_concurrent_runs,
            worker_status,
            worker_restarts,
            job_last_success,
            job_consecutive_failures,
            job_next_run,
            job_interval,
            notifications,
            labelled_jobs: std::collections::HashMap::new(),
            labelled_count: 0,
        }
    }

    /// The `job` label for a job: its key while fewer than [`MAX_LABELLED_JOBS`] jobs have
    /// series, [`OTHER_JOBS`] after.
    fn job_label(&mut self, plugin: &str, job: String) -> String {
        if let Some(jobs) = self.labelled_jobs.get(plugin)
            && jobs.contains(&job)
        {
            return job;
        }
        if self.labelled_count >= MAX_LABELLED_JOBS {
            return OTHER_JOBS.to_owned();
        }
        self.labelled_count += 1;
        if self.labelled_count == MAX_LABELLED_JOBS {
            log::warn!(
                "metrics: {MAX_LABELLED_JOBS} jobs have series of their own; runs of further jobs are counted under job=\"{OTHER_JOBS}\""
            );
        }
        self.labelled_jobs
            .entry(plugin.to_owned())
            .or_default()
            .insert(job.clone());
        job
    }

    /// Sets the scrape-time gauges: live and waiting runs, and each registered plugin's worker.
    fn observe_state(&self, diagnostics: &crate::scheduler::Diagnostics) {
        self.runs_live.set(gauge(diagnostics.active_job_count));
        self.runs_waiting.set(gauge(diagnostics.queued_manual_runs));
        self.max_concurrent_runs
            .set(gauge(diagnostics.max_concurrent_runs));
        // Only the plugins registered now: an unregistered plugin's worker state disappears.
        self.worker_status.clear();
        for plugin in &diagnostics.registered_plugins {
            let current = self.workers.status(plugin);
            for status in WORKER_STATUSES {
                self.worker_status
                    .get_or_create(&WorkerStatusLabels {
                        plugin: plugin.clone(),
                        status: status.to_string(),
                    })
                    .set(i64::from(status == current));
            }
            // The worker manager keeps the total; the counter catches up with it.
            let restarts = self.workers.restarts(plugin);
            let counter = self.worker_restarts.get_or_create(&PluginLabels {
                plugin: plugin.clone(),
            });
            let seen = counter.get();
            if restarts > seen {
                counter.inc_by(restarts - seen);
            }
        }
    }

    /// Sets the per-job gauges from the jobs as the database holds them. Retired jobs have
    /// none; jobs past the series cap neither (a gauge cannot be summed under `_other`).
    fn observe_jobs(&mut self, jobs: Vec<PluginJobModel>) {
        self.job_last_success.clear();
        self.job_consecutive_failures.clear();
        self.job_next_run.clear();
        self.job_interval.clear();
        for job in jobs {
            if job.status == JobStatus::Retired {
                continue;
            }
            let key = self.job_label(&job.plugin_id, job.job_key);
            if key == OTHER_JOBS {
                continue;
            }
            let labels = JobLabels {
                plugin: job.plugin_id,
                job: key,
            };
            if let Some(at) = job.last_success_at {
                self.job_last_success
                    .get_or_create(&labels)
                    .set(unix_seconds(at));
            }
            self.job_consecutive_failures
                .get_or_create(&labels)
                .set(i64::from(job.consecutive_failures));
            if job.status == JobStatus::Active
                && let Some(at) = job.next_run_at
            {
                self.job_next_run
                    .get_or_create(&labels)
                    .set(unix_seconds(at));
                let after = crate::cron::Schedule::parse(&job.schedule, &job.timezone)
                    .ok()
                    .and_then(|schedule| schedule.next_after(at));
                if let Some(after) = after {
                    self.job_interval
                        .get_or_create(&labels)
                        .set(seconds_from_ms((after - at).num_milliseconds()));
                }
            }
        }
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("the encoder fails only when its writer does, and a String never does");
        text
    }
}

fn gauge(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unix_seconds(at: chrono::DateTime<chrono::Utc>) -> f64 {
    // Stored timestamps are whole milliseconds: exact in f64 for millennia.
    at.timestamp_millis() as f64 / 1000.0
}

fn seconds_from_ms(ms: i64) -> f64 {
    // Whole milliseconds are exact in f64 far beyond any run's length.
    ms.max(0) as f64 / 1000.0
}

impl Actor for MetricsActor {
    type Context = Context<Self>;
}

impl Handler<RunEvent> for MetricsActor {
    type Result = ();

    fn handle(&mut self, event: RunEvent, _ctx: &mut Self::Context) {
        match event {
            RunEvent::RunQueued {
                plugin_id,
                job_key,
                trigger,
                ..
            } => {
                let job_key = self.job_label(&plugin_id, job_key);
                self.runs_queued
                    .get_or_create(&JobTriggerLabels {
                        plugin: plugin_id,
                        job: job_key,
                        trigger: trigger.to_string(),
                    })
                    .inc();
            }
            RunEvent::RunStarted {
                plugin_id,
                job_key,
                trigger,
                due_at,
                started_at,
                ..
            } => {
                let job_key = self.job_label(&plugin_id, job_key);
                // From slot + jitter offset: a jittered start is on time, not late.
                let late_ms = (started_at - due_at).num_milliseconds();
                self.start_lateness
                    .get_or_create(&JobTriggerLabels {
                        plugin: plugin_id,
                        job: job_key,
                        trigger: trigger.to_string(),
                    })
                    .observe(seconds_from_ms(late_ms));
            }
            RunEvent::RunFinished {
                plugin_id,
                job_key,
                trigger,
                status,
                duration_ms,
                ..
            } => {
                let job_key = self.job_label(&plugin_id, job_key);
                self.runs_finished
                    .get_or_create(&FinishedLabels {
                        plugin: plugin_id.clone(),
                        job: job_key.clone(),
                        trigger: trigger.to_string(),
                        status: status.to_string(),
                    })
                    .inc();
                self.run_duration
                    .get_or_create(&DurationLabels {
                        plugin: plugin_id,
                        job: job_key,
                        status: status.to_string(),
                    })
                    .observe(seconds_from_ms(duration_ms));
            }
            RunEvent::SlotSkipped {
                plugin_id,
                job_key,
                reason,
                ..
            } => {
                let job_key = self.job_label(&plugin_id, job_key);
                self.slots_skipped
                    .get_or_create(&SkippedLabels {
                        plugin: plugin_id,
                        job: job_key,
                        reason: reason.to_string(),
                    })
                    .inc();
            }
            RunEvent::RunRescued { plugin_id, .. } => {
                self.runs_rescued
                    .get_or_create(&PluginLabels { plugin: plugin_id })
                    .inc();
            }
            RunEvent::TickFinished { duration } => {
                self.tick_duration.observe(duration.as_secs_f64());
            }
            // The job gauges read these from the database at scrape time.
            RunEvent::JobPaused { .. }
            | RunEvent::JobRecovered { .. }
            | RunEvent::RetryDropped { .. } => {}
            RunEvent::NotificationSent {
                event_type,
                outcome,
            } => {
                self.notifications
                    .get_or_create(&NotificationLabels {
                        event: event_type,
                        outcome: outcome.to_owned(),
                    })
                    .inc();
            }
        }
    }
}

impl Handler<RenderMetrics> for MetricsActor {
    type Result = ResponseActFuture<Self, Result<String>>;

    fn handle(&mut self, _msg: RenderMetrics, _ctx: &mut Self::Context) -> Self::Result {
        let (scheduler, store) = (self.scheduler.clone(), self.store.clone());
        Box::pin(
            async move {
                let diagnostics = scheduler.send(GetDiagnostics).await?;
                let jobs = crate::store::ask(&store, ListJobs::default()).await?;
                Ok::<_, crate::Error>((diagnostics, jobs))
            }
            .into_actor(self)
            .map(|read, act, _ctx| {
                let (diagnostics, jobs) = read?;
                act.observe_state(&diagnostics);
                act.observe_jobs(jobs);
                Ok(act.encode())
            }),
        )
    }
}
