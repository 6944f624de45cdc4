//! The Prometheus metrics of one instance as plain data ([`Metrics`], no actix): the registry
//! and every family with its labels and buckets, the cap on jobs with series of their own,
//! counting a run event, setting the scrape-time gauges from the scheduler's diagnostics, the
//! workers and the jobs as stored, and encoding it all in the text format.

use std::sync::atomic::AtomicU64;

use entity::prelude::{JobStatus, PluginJobModel};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::events::RunEvent;
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
/// The keys of the jobs with series of their own, by plugin.
pub(super) type Labelled = std::collections::HashMap<String, std::collections::HashSet<String>>;

/// The `job` label of jobs past [`MAX_LABELLED_JOBS`].
pub const OTHER_JOBS: &str = "_other";

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

/// The registry and every metric family of one instance.
pub(super) struct Metrics {
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
    labelled_jobs: Labelled,
    labelled_count: usize,
}

impl Metrics {
    /// Every family registered, every counter at zero.
    pub(super) fn new() -> Self {
        let mut registry = Registry::with_prefix("plugin_jobs");
        // Registered in this order, and encoded in it.
        Self {
            runs_queued: register(
                &mut registry,
                "runs_queued",
                "Runs created queued, by plugin, job and trigger (schedule, manual, retry)",
                Family::default(),
            ),
            runs_finished: register(
                &mut registry,
                "runs_finished",
                "Runs that reached a terminal status, by plugin, job, trigger and status \
                 (succeeded, failed, cancelled)",
                Family::default(),
            ),
            start_lateness: register(
                &mut registry,
                "run_start_lateness_seconds",
                "How long after its scheduled time (the slot, or the request for manual runs) a run \
                 started",
                Family::new_with_constructor(lateness_histogram),
            ),
            run_duration: register(
                &mut registry,
                "run_duration_seconds",
                "How long runs took from start to outcome, by plugin, job and status",
                Family::new_with_constructor(duration_histogram),
            ),
            slots_skipped: register(
                &mut registry,
                "slots_skipped",
                "Due slots that passed without a run, by reason (overlap: the previous run was \
                 still live; misfire: missed by more than the grace under the skip policy, or \
                 passed while an older slot waited to start under fire_once)",
                Family::default(),
            ),
            runs_rescued: register(
                &mut registry,
                "runs_rescued",
                "Live runs failed by a rescue pass because their instance stopped heartbeating them",
                Family::default(),
            ),
            tick_duration: register(
                &mut registry,
                "tick_duration_seconds",
                "Wall time of one scheduler tick: claiming due jobs and spawning their runs",
                Histogram::new(TICK_BUCKETS),
            ),
            runs_live: register(
                &mut registry,
                "runs_live",
                "Runs of this instance holding a concurrency slot (starting, running, or timed out \
                 and waiting for the worker)",
                Gauge::default(),
            ),
            runs_waiting: register(
                &mut registry,
                "runs_waiting",
                "Manual and retry runs queued, waiting for a free concurrency slot",
                Gauge::default(),
            ),
            max_concurrent_runs: register(
                &mut registry,
                "max_concurrent_runs",
                "The concurrency budget of this instance",
                Gauge::default(),
            ),
            worker_status: register(
                &mut registry,
                "worker_status",
                "1 for the state each registered plugin's worker is in (starting, running, \
                 restarting, failed, stopped), 0 for the others",
                Family::default(),
            ),
            worker_restarts: register(
                &mut registry,
                "worker_restarts",
                "Restarts of each plugin's worker since it was first started (after crashes, or \
                 after a timed-out run did not answer)",
                Family::default(),
            ),
            job_last_success: register(
                &mut registry,
                "job_last_success_timestamp_seconds",
                "When a run of the job last succeeded (Unix seconds); absent until one has",
                Family::default(),
            ),
            job_consecutive_failures: register(
                &mut registry,
                "job_consecutive_failures",
                "Failed runs of the job since it last succeeded (or was resumed)",
                Family::default(),
            ),
            job_next_run: register(
                &mut registry,
                "job_next_run_timestamp_seconds",
                "The next slot of an active scheduled job (Unix seconds); absent for paused, \
                 failed, retired and manual-only jobs",
                Family::default(),
            ),
            job_interval: register(
                &mut registry,
                "job_interval_seconds",
                "Seconds from the next slot of an active scheduled job to the one after: its \
                 interval, for alerts such as 'no success in 2 x the interval'",
                Family::default(),
            ),
            notifications: register(
                &mut registry,
                "notifications",
                "Webhook deliveries by event type and outcome: delivered, failed (retried later), \
                 gave_up (failed past the give-up time), dropped (the outbox was full)",
                Family::default(),
            ),
            registry,
            labelled_jobs: std::collections::HashMap::new(),
            labelled_count: 0,
        }
    }

    /// Counts a run that ended with `status`, and its duration when it started.
    fn count_finished(
        &mut self,
        plugin: String,
        job: String,
        trigger: entity::prelude::RunTrigger,
        status: entity::prelude::RunStatus,
        duration_ms: Option<i64>,
    ) {
        let job = self.job_label(&plugin, job);
        self.runs_finished
            .get_or_create(&FinishedLabels {
                plugin: plugin.clone(),
                job: job.clone(),
                trigger: trigger.to_string(),
                status: status.to_string(),
            })
            .inc();
        if let Some(duration_ms) = duration_ms {
            self.run_duration
                .get_or_create(&DurationLabels {
                    plugin,
                    job,
                    status: status.to_string(),
                })
                .observe(seconds_from_ms(duration_ms));
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

    /// The jobs with series of their own, and how many more may get one.
    pub(super) fn labels(&self) -> (Labelled, usize) {
        (
            self.labelled_jobs.clone(),
            MAX_LABELLED_JOBS.saturating_sub(self.labelled_count),
        )
    }

    /// Sets the scrape-time gauges: live and waiting runs, and each registered plugin's worker.
    pub(super) fn observe_state(
        &self,
        diagnostics: &crate::scheduler::Diagnostics,
        workers: &dyn WorkerManager,
    ) {
        self.runs_live.set(gauge(diagnostics.active_job_count));
        self.runs_waiting.set(gauge(diagnostics.queued_manual_runs));
        self.max_concurrent_runs
            .set(gauge(diagnostics.max_concurrent_runs));
        // Only the plugins registered now: an unregistered plugin's worker state disappears.
        self.worker_status.clear();
        for plugin in &diagnostics.registered_plugins {
            let current = workers.status(plugin);
            for status in WORKER_STATUSES {
                self.worker_status
                    .get_or_create(&WorkerStatusLabels {
                        plugin: plugin.clone(),
                        status: status.to_string(),
                    })
                    .set(i64::from(status == current));
            }
            // The worker manager keeps the total; the counter catches up with it.
            let restarts = workers.restarts(plugin);
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
    pub(super) fn observe_jobs(&mut self, jobs: Vec<PluginJobModel>) {
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

    pub(super) fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("the encoder fails only when its writer does, and a String never does");
        text
    }

    /// Counts what `event` says happened. Events only ever add: states are read at scrape time.
    pub(super) fn record(&mut self, event: RunEvent) {
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
            } => self.count_finished(plugin_id, job_key, trigger, status, Some(duration_ms)),
            RunEvent::SlotSkipped {
                plugin_id,
                job_key,
                reason,
                count,
                ..
            } => {
                let job_key = self.job_label(&plugin_id, job_key);
                self.slots_skipped
                    .get_or_create(&SkippedLabels {
                        plugin: plugin_id,
                        job: job_key,
                        reason: reason.to_string(),
                    })
                    .inc_by(u64::from(count));
            }
            RunEvent::RunRescued {
                plugin_id,
                job_key,
                trigger,
                duration_ms,
                ..
            } => {
                self.runs_rescued
                    .get_or_create(&PluginLabels {
                        plugin: plugin_id.clone(),
                    })
                    .inc();
                // A rescued run is a failed run like any other: the failure alerts built on
                // `runs_finished_total{status="failed"}` must see it.
                self.count_finished(
                    plugin_id,
                    job_key,
                    trigger,
                    entity::prelude::RunStatus::Failed,
                    duration_ms,
                );
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

/// Registers `metric` under `name` with its `help` text; answers the handle that feeds it.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
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
