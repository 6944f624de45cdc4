//! The `MetricsActor`: a run-event subscriber that keeps Prometheus metrics (through the
//! `prometheus-client` crate) and renders them for `GET /metrics`.
//!
//! Handles: `RunEvent` (counts and histograms as runs and ticks happen) and `RenderMetrics`
//! (reads the scheduler's diagnostics, the workers' state and the jobs' health from the
//! database at scrape time, then encodes every metric in the Prometheus text format). Sends:
//! `GetDiagnostics` to the scheduler, `ListJobPage` to the store.
//!
//! A scrape reads the jobs that have series of their own by key, and gives the labels still
//! free (at most [`MAX_LABELLED_JOBS`] in all) to the first other jobs in key order, a page at a
//! time: with a million jobs in the table it reads about a thousand jobs, never the table.
//!
//! The per-job gauges (last success, failure streak, next run) come from the database, not from
//! this instance's events: every instance of a cluster reports the same values for a job, and
//! they survive restarts.

mod families;

use std::sync::Arc;

use actix::prelude::*;

use families::Metrics;
pub use families::{CONTENT_TYPE, MAX_LABELLED_JOBS, OTHER_JOBS};

use crate::Result;
use crate::events::RunEvent;
use crate::scheduler::{GetDiagnostics, SchedulerActor};
use crate::store::{JobCursor, ListJobPage, StoreActor};
use crate::worker::WorkerManager;

/// Jobs read per statement at scrape time.
const SCRAPE_PAGE: u64 = 1_000;

/// Labelled jobs read by key per statement, under the databases' limits on bound parameters.
const KEYS_PER_READ: usize = 500;

/// Renders every metric in the Prometheus text format; answers the text.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<String>")]
pub struct RenderMetrics;

/// Keeps the metrics of one scheduler instance.
pub struct MetricsActor {
    scheduler: Addr<SchedulerActor>,
    store: Addr<StoreActor>,
    workers: Arc<dyn WorkerManager>,
    metrics: Metrics,
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
        Self {
            scheduler,
            store,
            workers,
            metrics: Metrics::new(),
        }
    }
}

impl Actor for MetricsActor {
    type Context = Context<Self>;
}

impl Handler<RunEvent> for MetricsActor {
    type Result = ();

    fn handle(&mut self, event: RunEvent, _ctx: &mut Self::Context) {
        self.metrics.record(event);
    }
}

impl Handler<RenderMetrics> for MetricsActor {
    type Result = ResponseActFuture<Self, Result<String>>;

    fn handle(&mut self, _msg: RenderMetrics, _ctx: &mut Self::Context) -> Self::Result {
        let (scheduler, store) = (self.scheduler.clone(), self.store.clone());
        let (labelled, free) = self.metrics.labels();
        // A scrape is wanted most when the database is down, and then the scheduler (holding
        // its mailbox while a claim waits) and the store may not answer: what they do not tell
        // within the wait keeps its last values, and the counters kept here are served anyway.
        Box::pin(
            async move {
                let diagnostics =
                    tokio::time::timeout(SCRAPE_WAIT, scheduler.send(GetDiagnostics)).await;
                let jobs =
                    tokio::time::timeout(SCRAPE_WAIT, labelled_jobs(&store, &labelled, free)).await;
                (diagnostics, jobs)
            }
            .into_actor(self)
            .map(|(diagnostics, jobs), act, _ctx| {
                match diagnostics {
                    Ok(Ok(diagnostics)) => act
                        .metrics
                        .observe_state(&diagnostics, act.workers.as_ref()),
                    Ok(Err(err)) => return Err(err.into()),
                    Err(_) => log::warn!(
                        "metrics: the scheduler did not answer within {} s; its gauges keep \
                         their last values",
                        SCRAPE_WAIT.as_secs()
                    ),
                }
                match jobs {
                    Ok(Ok(jobs)) => act.metrics.observe_jobs(jobs),
                    Ok(Err(err)) => log::warn!(
                        "metrics: reading the jobs failed ({err}); their gauges keep their last \
                         values"
                    ),
                    Err(_) => log::warn!(
                        "metrics: the database did not answer within {} s; the jobs' gauges \
                         keep their last values",
                        SCRAPE_WAIT.as_secs()
                    ),
                }
                Ok(act.metrics.encode())
            }),
        )
    }
}

/// How long a scrape waits for the scheduler's state and for the jobs.
const SCRAPE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The jobs that have (or, while there is room, get) series of their own: the ones already
/// `labelled`, read by key wherever they sit in the table, and the first `free` others in
/// (plugin, key) order, read a page at a time. Retired jobs have no gauges and are left out.
async fn labelled_jobs(
    store: &Addr<StoreActor>,
    labelled: &families::Labelled,
    mut free: usize,
) -> Result<Vec<entity::prelude::PluginJobModel>> {
    use entity::prelude::JobStatus;

    let mut kept = Vec::new();
    for (plugin_id, keys) in labelled {
        let keys: Vec<String> = keys.iter().cloned().collect();
        for chunk in keys.chunks(KEYS_PER_READ) {
            let page = crate::store::ask(
                store,
                ListJobPage {
                    plugin_id: Some(plugin_id.clone()),
                    job_keys: chunk.to_vec(),
                    ..ListJobPage::default()
                },
            )
            .await?;
            kept.extend(
                page.jobs
                    .into_iter()
                    .map(|(job, _)| job)
                    .filter(|job| job.status != JobStatus::Retired),
            );
        }
    }
    let mut after: Option<JobCursor> = None;
    while free > 0 {
        let page = crate::store::ask(
            store,
            ListJobPage {
                after,
                limit: Some(SCRAPE_PAGE),
                ..ListJobPage::default()
            },
        )
        .await?;
        for (job, _) in page.jobs {
            let known = labelled
                .get(&job.plugin_id)
                .is_some_and(|keys| keys.contains(&job.job_key));
            if !known && job.status != JobStatus::Retired && free > 0 {
                free -= 1;
                kept.push(job);
            }
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(kept)
}
