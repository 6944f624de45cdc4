//! The `JobHealthActor`: a run-event subscriber that keeps each job's failure bookkeeping
//! (streak of failed runs, last success) in the database and pauses a job automatically once
//! its streak reaches `pauseAfterFailures` (or the server's `--pause-after-failures`).
//!
//! Outcomes are written in batches: while one `RecordRunOutcomes` is in flight, the next
//! outcomes wait and go together in the following one, so a burst of runs costs a few
//! transactions, not one each. The actor never blocks the scheduler: it only hears events.
//!
//! Handles: `RunEvent` (`RunFinished` and `RunRescued`; the rest is ignored). Sends:
//! `RecordRunOutcomes` (store), `JobPaused` and `JobRecovered` events.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use entity::prelude::RunStatus;

use crate::clock::Clock;
use crate::events::{EventBus, RunEvent};
use crate::store::{HealthChange, HealthChangeKind, RecordRunOutcomes, RunOutcome, StoreActor};

/// Most outcomes waiting to be written; beyond it the oldest are dropped (and logged), so a
/// database that is down for long cannot grow the actor without bound.
const MAX_PENDING: usize = 100_000;
/// How long a failed write waits before it is tried again.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Keeps job health for one instance: the outcomes of the runs this instance finished.
#[derive(Debug)]
pub struct JobHealthActor {
    store: Addr<StoreActor>,
    clock: Arc<dyn Clock>,
    events: EventBus,
    default_pause_after: Option<u32>,
    pending: VecDeque<RunOutcome>,
    writing: bool,
}

impl JobHealthActor {
    /// `default_pause_after` pauses jobs that declare no `pauseAfterFailures`; `None` leaves
    /// them running however often they fail.
    pub fn new(
        store: Addr<StoreActor>,
        clock: Arc<dyn Clock>,
        events: EventBus,
        default_pause_after: Option<u32>,
    ) -> Self {
        Self {
            store,
            clock,
            events,
            default_pause_after,
            pending: VecDeque::new(),
            writing: false,
        }
    }

    fn push(&mut self, outcome: RunOutcome, ctx: &mut Context<Self>) {
        if self.pending.len() >= MAX_PENDING
            && let Some(dropped) = self.pending.pop_front()
        {
            log::error!(
                "job health: {MAX_PENDING} outcomes wait to be written; dropping run {}",
                dropped.run_id
            );
        }
        self.pending.push_back(outcome);
        self.write(ctx);
    }

    /// Writes every waiting outcome in one message, unless a write is already in flight (its
    /// completion starts the next one).
    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.pending.is_empty() {
            return;
        }
        self.writing = true;
        let outcomes: Vec<RunOutcome> = self.pending.drain(..).collect();
        let msg = RecordRunOutcomes {
            outcomes: outcomes.clone(),
            default_pause_after: self.default_pause_after,
            now: self.clock.now(),
        };
        let store = self.store.clone();
        async move { crate::store::ask(&store, msg).await }
            .into_actor(self)
            .map(move |result, act, ctx| {
                act.writing = false;
                match result {
                    Ok(changes) => {
                        changes.into_iter().for_each(|change| act.announce(change));
                        act.write(ctx);
                    }
                    Err(err) => {
                        log::error!(
                            "job health: recording {} run outcome(s) failed, retrying: {err}",
                            outcomes.len()
                        );
                        for outcome in outcomes.into_iter().rev() {
                            act.pending.push_front(outcome);
                        }
                        ctx.run_later(RETRY_DELAY, |act, ctx| act.write(ctx));
                    }
                }
            })
            .spawn(ctx);
    }

    fn announce(&self, change: HealthChange) {
        let HealthChange {
            job,
            run_id,
            attempt,
            error,
            kind,
        } = change;
        match kind {
            HealthChangeKind::Paused { reason } => {
                log::warn!("job {} of plugin {}: {reason}", job.job_key, job.plugin_id);
                self.events.emit(RunEvent::JobPaused {
                    job_id: job.id,
                    plugin_id: job.plugin_id,
                    job_key: job.job_key,
                    run_id,
                    attempt,
                    failures: job.consecutive_failures,
                    reason,
                    error,
                });
            }
            HealthChangeKind::Recovered { failures } => {
                log::info!(
                    "job {} of plugin {} recovered after {failures} failed run(s)",
                    job.job_key,
                    job.plugin_id
                );
                self.events.emit(RunEvent::JobRecovered {
                    job_id: job.id,
                    plugin_id: job.plugin_id,
                    job_key: job.job_key,
                    run_id,
                    attempt,
                    failures,
                });
            }
        }
    }
}

impl Actor for JobHealthActor {
    type Context = Context<Self>;
}

impl Handler<RunEvent> for JobHealthActor {
    type Result = ();

    fn handle(&mut self, event: RunEvent, ctx: &mut Self::Context) {
        let outcome = match event {
            RunEvent::RunFinished {
                run_id,
                job_id,
                attempt,
                status,
                error,
                ..
            } => match status {
                RunStatus::Succeeded | RunStatus::Failed => RunOutcome {
                    job_id,
                    run_id,
                    attempt,
                    succeeded: status == RunStatus::Succeeded,
                    error,
                    at: self.clock.now(),
                },
                // A cancelled run says nothing about the job's health.
                RunStatus::Cancelled | RunStatus::Queued | RunStatus::Running => return,
            },
            RunEvent::RunRescued {
                run_id,
                job_id,
                attempt,
                error,
                ..
            } => RunOutcome {
                job_id,
                run_id,
                attempt,
                succeeded: false,
                error: Some(error),
                at: self.clock.now(),
            },
            // The slot's last attempt failed when its retry was superseded.
            RunEvent::RetryDropped {
                run_id,
                job_id,
                attempt,
                superseded: true,
                error,
                ..
            } => RunOutcome {
                job_id,
                run_id,
                attempt,
                succeeded: false,
                error,
                at: self.clock.now(),
            },
            _ => return,
        };
        self.push(outcome, ctx);
    }
}
