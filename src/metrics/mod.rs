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

mod families;

use std::sync::Arc;

use actix::prelude::*;

use families::Metrics;
pub use families::{CONTENT_TYPE, MAX_LABELLED_JOBS, OTHER_JOBS};

use crate::Result;
use crate::events::RunEvent;
use crate::scheduler::{GetDiagnostics, SchedulerActor};
use crate::store::{ListJobs, StoreActor};
use crate::worker::WorkerManager;

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
        Box::pin(
            async move {
                let diagnostics = scheduler.send(GetDiagnostics).await?;
                let jobs = crate::store::ask(&store, ListJobs::default()).await?;
                Ok::<_, crate::Error>((diagnostics, jobs))
            }
            .into_actor(self)
            .map(|read, act, _ctx| {
                let (diagnostics, jobs) = read?;
                act.metrics
                    .observe_state(&diagnostics, act.workers.as_ref());
                act.metrics.observe_jobs(jobs);
                Ok(act.metrics.encode())
            }),
        )
    }
}
