//! Each job's failure bookkeeping: the streak of failed runs since its last success and the
//! automatic pause once the streak reaches the job's threshold. Written by the `JobHealthActor`
//! (a run-event subscriber) after the run's own outcome is recorded, which also stamped the
//! job's `last_success_at` (`outcomes.rs`); read by the metrics at scrape time.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use std::collections::{HashMap, HashSet};

use sea_orm::sea_query::LockType;
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::values::{self, given};
use super::{StoreActor, begin_write, retries, runs};
use crate::Result;
use crate::time::to_millis;

/// The outcome of one finished run, as the job's health counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub job_id: Uuid,
    pub run_id: Uuid,
    /// The run's attempt: 1 for the first run of a slot, 2 for its first retry, …
    pub attempt: i32,
    /// `true` for a success; `false` for a failure (a timeout and a rescue are failures).
    pub succeeded: bool,
    pub error: Option<String>,
    /// When the run finished.
    pub at: DateTime<Utc>,
}

/// Records run outcomes on their jobs, in order and in one transaction: a success resets the
/// streak (its `last_success_at` is stamped by the write of its outcome, not here); a failure
/// extends the streak and pauses an active job whose streak reaches its `pause_after_failures`
/// (or `default_pause_after`). Answers the jobs that were paused or recovered by these outcomes.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<Vec<HealthChange>>")]
pub struct RecordRunOutcomes {
    pub outcomes: Vec<RunOutcome>,
    /// The threshold of jobs that declare none; `None` never pauses them.
    pub default_pause_after: Option<u32>,
    pub now: DateTime<Utc>,
}

/// What an outcome changed beyond the counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChangeKind {
    /// The job was paused; `reason` is its `paused_reason`.
    Paused { reason: String },
    /// The job succeeded after `failures` consecutive failed runs.
    Recovered { failures: i32 },
}

/// A job paused or recovered by an outcome, with the job as it is afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub job: PluginJobModel,
    pub run_id: Uuid,
    /// The attempt of that run.
    pub attempt: i32,
    pub error: Option<String>,
    pub kind: HealthChangeKind,
}

/// The `paused_reason` of a job paused after `failures` failed runs.
pub fn pause_reason(failures: i32, error: Option<&str>) -> String {
    let mut reason = format!(
        "paused after {failures} consecutive failures; last error: {}",
        error.unwrap_or("(none given)")
    );
    super::clean_text(&mut reason);
    reason
}

pub(super) async fn record_run_outcomes(
    db: &DatabaseConnection,
    msg: RecordRunOutcomes,
) -> Result<Vec<HealthChange>> {
    let now = to_millis(msg.now);
    let default_pause_after = msg
        .default_pause_after
        .and_then(|failures| i32::try_from(failures).ok());
    // Rows are locked in job order, so two instances' batches cannot deadlock; the sort is
    // stable, so one job's outcomes keep their order.
    let mut outcomes = msg.outcomes;
    outcomes.sort_by_key(|outcome| outcome.job_id);
    if outcomes.iter().all(|outcome| outcome.succeeded) {
        // The outcome's own write stamped `last_success_at`: a success only has something to
        // do here when it ends a failure streak. The common batch, all successes and no
        // streak, is one read and no write.
        let ended = jobs_with_a_streak(db, &outcomes).await?;
        outcomes.retain(|outcome| ended.contains(&outcome.job_id));
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
    }
    let txn = begin_write(db).await?;
    let (outcomes, mut jobs) = drop_plain_successes(&txn, outcomes).await?;
    // Which failures have a retry to come, read once for the batch; the outcomes then apply to
    // the jobs in memory, in order, and every job they changed is written by one statement per
    // chunk.
    let failed: Vec<Uuid> = outcomes
        .iter()
        .filter(|outcome| !outcome.succeeded)
        .map(|outcome| outcome.run_id)
        .collect();
    let retried = retries::retries_to_come(&txn, &failed).await?;
    let mut changed: Vec<Uuid> = Vec::new();
    let mut changes = Vec::new();
    for outcome in outcomes {
        let Some(job) = jobs.get_mut(&outcome.job_id) else {
            continue;
        };
        // A failure with a retry to come is not the slot's last attempt: it counts only if
        // the retry is superseded (and then it is reported again).
        if !outcome.succeeded && retried.contains(&outcome.run_id) {
            continue;
        }
        if changed.last() != Some(&job.id) {
            changed.push(job.id);
        }
        let kind = if outcome.succeeded {
            let failures = std::mem::take(&mut job.consecutive_failures)
                .saturating_add(std::mem::take(&mut job.unrecovered_failures));
            (failures > 0).then_some(HealthChangeKind::Recovered { failures })
        } else {
            job.consecutive_failures = job.consecutive_failures.saturating_add(1);
            let threshold = job.pause_after_failures.or(default_pause_after);
            let streak = job.consecutive_failures;
            if job.status == JobStatus::Active && threshold.is_some_and(|limit| streak >= limit) {
                let reason = pause_reason(streak, outcome.error.as_deref());
                job.status = JobStatus::Paused;
                job.paused_reason = Some(reason.clone());
                job.paused_at = Some(now);
                job.updated_at = now;
                Some(HealthChangeKind::Paused { reason })
            } else {
                None
            }
        };
        if let Some(kind) = kind {
            changes.push(HealthChange {
                job: job.clone(),
                run_id: outcome.run_id,
                attempt: outcome.attempt,
                error: outcome.error,
                kind,
            });
        }
    }
    let changed: Vec<&PluginJobModel> = changed.iter().filter_map(|id| jobs.get(id)).collect();
    write_health(&txn, &changed).await?;
    let paused: Vec<Uuid> = changes
        .iter()
        .filter(|change| matches!(change.kind, HealthChangeKind::Paused { .. }))
        .map(|change| change.job.id)
        .collect();
    if !paused.is_empty() {
        // As an operator's pause: no run of the job starts once it is paused.
        let reason = "job paused after consecutive failures";
        runs::cancel_unstarted_runs(&txn, &paused, false, reason, now).await?;
    }
    txn.commit().await?;
    Ok(changes)
}

/// Writes the streak, status and pause of each job, one statement per chunk of jobs, each row
/// with the job's own values (the jobs are locked, or on SQLite the transaction is the only
/// writer, so writing back what was read changes nothing else).
async fn write_health(txn: &DatabaseTransaction, jobs: &[&PluginJobModel]) -> Result<()> {
    use sea_orm::sea_query::Value;
    for chunk in jobs.chunks(super::IDS_PER_STATEMENT) {
        let rows = chunk.iter().map(|job| {
            let row: Vec<Value> = vec![
                job.consecutive_failures.into(),
                job.status.to_value().into(),
                job.paused_reason.clone().into(),
                job.updated_at.into(),
                job.unrecovered_failures.into(),
                job.paused_at.into(),
            ];
            (job.id, row)
        });
        let mut update = values::update_by_id::<PluginJob>(PluginJobColumn::Id, rows);
        update
            .value(PluginJobColumn::ConsecutiveFailures, given(2))
            .value(PluginJobColumn::Status, given(3))
            .value(PluginJobColumn::PausedReason, given(4))
            .value(PluginJobColumn::UpdatedAt, given(5))
            .value(PluginJobColumn::UnrecoveredFailures, given(6))
            .value(PluginJobColumn::PausedAt, given(7));
        txn.execute(&update).await?;
    }
    Ok(())
}

/// The jobs of `outcomes` with failures no success has answered yet (a streak, or the failures
/// a resume cleared from one).
async fn jobs_with_a_streak(
    db: &DatabaseConnection,
    outcomes: &[RunOutcome],
) -> Result<HashSet<Uuid>> {
    let mut job_ids: Vec<Uuid> = outcomes.iter().map(|outcome| outcome.job_id).collect();
    job_ids.dedup();
    let mut streaks = HashSet::new();
    for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
        let ids: Vec<Uuid> = PluginJob::find()
            .select_only()
            .column(PluginJobColumn::Id)
            .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
            .filter(
                Condition::any()
                    .add(PluginJobColumn::ConsecutiveFailures.gt(0))
                    .add(PluginJobColumn::UnrecoveredFailures.gt(0)),
            )
            .into_tuple()
            .all(db)
            .await?;
        streaks.extend(ids);
    }
    Ok(streaks)
}

/// Locks and reads every job of the batch, in id order, before any is written (so two
/// instances cannot deadlock), and drops the common case: a job whose outcomes in this batch are
/// all successes and that has no failure streak has nothing to record (the outcome write stamped
/// its `last_success_at`). Answers the outcomes that still count (failures, and successes that
/// end a streak) and their jobs.
async fn drop_plain_successes(
    txn: &DatabaseTransaction,
    outcomes: Vec<RunOutcome>,
) -> Result<(Vec<RunOutcome>, HashMap<Uuid, PluginJobModel>)> {
    let has_failure: HashSet<Uuid> = outcomes
        .iter()
        .filter(|outcome| !outcome.succeeded)
        .map(|outcome| outcome.job_id)
        .collect();
    let mut job_ids: Vec<Uuid> = outcomes.iter().map(|outcome| outcome.job_id).collect();
    job_ids.sort();
    job_ids.dedup();
    let mut jobs = HashMap::with_capacity(job_ids.len());
    for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
        let mut query = PluginJob::find()
            .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
            .order_by_asc(PluginJobColumn::Id);
        if super::is_postgres(txn) {
            query = query.lock(LockType::Update);
        }
        for job in query.all(txn).await? {
            let streak = job.consecutive_failures > 0 || job.unrecovered_failures > 0;
            if streak || has_failure.contains(&job.id) {
                jobs.insert(job.id, job);
            }
        }
    }
    let outcomes = outcomes
        .into_iter()
        .filter(|outcome| jobs.contains_key(&outcome.job_id))
        .collect();
    Ok((outcomes, jobs))
}

impl Handler<RecordRunOutcomes> for StoreActor {
    type Result = AtomicResponse<Self, Result<Vec<HealthChange>>>;

    fn handle(&mut self, msg: RecordRunOutcomes, _ctx: &mut Self::Context) -> Self::Result {
        let db = self.db.clone();
        AtomicResponse::new(Box::pin(
            async move { record_run_outcomes(&db, msg).await }.into_actor(self),
        ))
    }
}
