//! The `RetryActor`: carries out the runs that wait in the database for their turn — the retries
//! failed runs asked for, and the past slots an operator asked to backfill. A subscriber of run
//! events, started by the builder like the other subscribers.
//!
//! Backfilled slots (`store/backfills.rs`) take the same path as retries: each pass hands the
//! oldest pending slot of each job to the scheduler (`RunBackfill`), which starts it under the
//! concurrency budget; the next slot of the job follows once that run has finished (the pass
//! that `RunFinished` of a backfill run arms).
//!
//! Why a policy the store applies plus an actor, rather than an actor alone: a retry must
//! survive a crash between the failure and the retry, so it is asked for in the transaction
//! that records the failure (`plugin_job_retries`, see `store/retries.rs`), never in memory.
//! This actor only notices when retries come due — a timer armed at the next due time after
//! every pass and after every failure this instance records, plus a poll every tick interval
//! for retries asked for by other instances — and hands each due retry to the scheduler, which
//! starts it like a manual run (`RunRetry`), under the same concurrency budget. The store moves
//! a retry from `pending` to `started` in the transaction that creates its run, so with several
//! instances on one PostgreSQL each retry runs exactly once; the partial unique index on live
//! runs keeps a retry from overlapping any other run of its job.
//!
//! Handles: `StartRetries`, `RetryPass`, `PendingWorkAdded`, `RunEvent` (a failure, or the end of a backfill run,
//! arms a pass). Sends: `ListDueRetries`, `ListPendingBackfills` (store), `RunRetry`,
//! `RunBackfill` (scheduler), `RetryDropped` events.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::{RunStatus, RunTrigger};

use crate::Result;
use crate::clock::Clock;
use crate::events::{EventBus, RunEvent};
use crate::scheduler::{RunBackfill, RunRetry, SchedulerActor};
use crate::store::{BackfillStart, ListDueRetries, ListPendingBackfills, RetryStart, StoreActor};

/// Most retries one pass hands to the scheduler.
const RETRIES_PER_PASS: u64 = 500;

/// Runs a pass now, then keeps passing on the timers.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct StartRetries;

/// New pending work was stored (a backfill request): a pass follows at once (with timers).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct PendingWorkAdded;

/// Hands every due retry to the scheduler. Answers what became of them.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<RetryPassReport>")]
pub struct RetryPass;

/// What one [`RetryPass`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPassReport {
    /// Retries whose run was created.
    pub started: usize,
    /// Retries dropped because the job's next slot came first.
    pub superseded: usize,
    /// Retries dropped because the job is no longer active.
    pub cancelled: usize,
    /// Due retries left pending: the job had a live run, or this instance could not run it.
    pub waiting: usize,
    /// When the next pending retry comes due.
    pub next_due_at: Option<DateTime<Utc>>,
    /// Backfilled slots whose run was created.
    pub backfills_started: usize,
    /// Backfilled slots dropped (the job is no longer active, or the slot ran meanwhile).
    pub backfills_cancelled: usize,
    /// Backfilled slots left pending (another run of the job is live, or not here).
    pub backfills_waiting: usize,
}

/// Starts the retries of one instance.
#[derive(Debug)]
pub struct RetryActor {
    store: Addr<StoreActor>,
    scheduler: Addr<SchedulerActor>,
    clock: Arc<dyn Clock>,
    events: EventBus,
    /// The longest wait between passes: retries of other instances are seen this late at most.
    poll: Duration,
    timers: bool,
    passing: bool,
    /// A pass was asked for while one ran: another follows at once.
    again: bool,
    timer: Option<SpawnHandle>,
}

impl RetryActor {
    pub fn new(
        store: Addr<StoreActor>,
        scheduler: Addr<SchedulerActor>,
        clock: Arc<dyn Clock>,
        events: EventBus,
        poll: Duration,
    ) -> Self {
        Self {
            store,
            scheduler,
            clock,
            events,
            poll,
            timers: false,
            passing: false,
            again: false,
            timer: None,
        }
    }

    /// Arms the timer for a pass after `delay`, replacing the one armed before.
    fn arm(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if !self.timers {
            return;
        }
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.timer = Some(ctx.run_later(delay, |act, ctx| {
            act.timer = None;
            act.pass_on_timer(ctx);
        }));
    }

    fn pass_on_timer(&mut self, ctx: &mut Context<Self>) {
        if self.passing {
            self.again = true;
            return;
        }
        ctx.notify(RetryPass);
    }

    /// The wait until the next pass: the next due retry, but never longer than `poll`.
    fn next_delay(&self, report: &RetryPassReport) -> Duration {
        let until_due = report.next_due_at.map_or(self.poll, |due| {
            (due - self.clock.now()).to_std().unwrap_or(Duration::ZERO)
        });
        until_due.min(self.poll)
    }
}

impl Actor for RetryActor {
    type Context = Context<Self>;
}

impl Handler<StartRetries> for RetryActor {
    type Result = ();

    fn handle(&mut self, _msg: StartRetries, ctx: &mut Self::Context) {
        if !self.timers {
            self.timers = true;
            self.pass_on_timer(ctx);
        }
    }
}

impl Handler<PendingWorkAdded> for RetryActor {
    type Result = ();

    fn handle(&mut self, _msg: PendingWorkAdded, ctx: &mut Self::Context) {
        if self.passing {
            self.again = true;
        } else {
            self.arm(Duration::ZERO, ctx);
        }
    }
}

impl Handler<RetryPass> for RetryActor {
    type Result = ResponseActFuture<Self, Result<RetryPassReport>>;

    fn handle(&mut self, _msg: RetryPass, _ctx: &mut Self::Context) -> Self::Result {
        self.passing = true;
        let (store, scheduler, events) = (
            self.store.clone(),
            self.scheduler.clone(),
            self.events.clone(),
        );
        let now = self.clock.now();
        let pass = async move {
            let listing = ListDueRetries {
                now,
                limit: RETRIES_PER_PASS,
            };
            let due = crate::store::ask(&store, listing).await?;
            let mut report = RetryPassReport {
                next_due_at: due.next_due_at,
                ..RetryPassReport::default()
            };
            for retry in due.due {
                let retry_id = retry.id;
                let started = scheduler.send(RunRetry(retry)).await?;
                match started {
                    Ok(RetryStart::Started { .. }) => report.started += 1,
                    Ok(RetryStart::Superseded {
                        retry,
                        job,
                        reason,
                        error,
                    }) => {
                        report.superseded += 1;
                        events.emit(RunEvent::RetryDropped {
                            job_id: job.id,
                            plugin_id: job.plugin_id,
                            job_key: job.job_key,
                            run_id: retry.failed_run_id,
                            attempt: retry.attempt,
                            superseded: true,
                            reason,
                            error,
                        });
                    }
                    Ok(RetryStart::Cancelled { retry, reason }) => {
                        report.cancelled += 1;
                        events.emit(RunEvent::RetryDropped {
                            job_id: retry.job_id,
                            plugin_id: retry.plugin_id,
                            job_key: String::new(),
                            run_id: retry.failed_run_id,
                            attempt: retry.attempt,
                            superseded: false,
                            reason,
                            error: None,
                        });
                    }
                    Ok(RetryStart::Busy) => report.waiting += 1,
                    Ok(RetryStart::Taken) => {}
                    // One retry that cannot be started does not hold up the others; it stays
                    // pending and is tried again on the next pass.
                    Err(err) => {
                        log::warn!("retry {retry_id}: starting it failed, trying again: {err}");
                        report.waiting += 1;
                    }
                }
            }
            let pending = ListPendingBackfills {
                limit: RETRIES_PER_PASS,
            };
            for slot in crate::store::ask(&store, pending).await? {
                let slot_id = slot.id;
                match scheduler.send(RunBackfill(slot)).await? {
                    Ok(BackfillStart::Started { .. }) => report.backfills_started += 1,
                    Ok(BackfillStart::Cancelled { reason }) => {
                        log::info!("backfill {slot_id} dropped: {reason}");
                        report.backfills_cancelled += 1;
                    }
                    Ok(BackfillStart::Busy) => report.backfills_waiting += 1,
                    Ok(BackfillStart::Taken) => {}
                    Err(err) => {
                        log::warn!("backfill {slot_id}: starting it failed, trying again: {err}");
                        report.backfills_waiting += 1;
                    }
                }
            }
            Ok(report)
        };
        Box::pin(
            pass.into_actor(self)
                .map(|report: Result<RetryPassReport>, act, ctx| {
                    act.passing = false;
                    let delay = match &report {
                        Ok(_) if act.again => Duration::ZERO,
                        Ok(report) => act.next_delay(report),
                        Err(err) => {
                            log::log!(
                                err.pass_level(),
                                "retry pass failed, trying again in {:?}: {err}",
                                act.poll
                            );
                            act.poll
                        }
                    };
                    act.again = false;
                    act.arm(delay, ctx);
                    report
                }),
        )
    }
}

impl Handler<RunEvent> for RetryActor {
    type Result = ();

    fn handle(&mut self, event: RunEvent, ctx: &mut Self::Context) {
        // A failure this instance recorded may have asked for a retry: a pass now reads when it
        // comes due and arms the timer for it.
        // A backfill run that ended lets the job's next backfilled slot start.
        let failed = matches!(
            event,
            RunEvent::RunFinished {
                status: RunStatus::Failed,
                ..
            } | RunEvent::RunFinished {
                trigger: RunTrigger::Backfill,
                ..
            } | RunEvent::RunRescued { .. }
        );
        if failed && self.timers {
            if self.passing {
                self.again = true;
            } else {
                self.arm(Duration::ZERO, ctx);
            }
        }
    }
}
