//! The outcome writer of `plugin_job_runs`: the `MarkRunning` and `CompleteRun` messages that
//! queued up while the store was busy, applied in one transaction (group commit). Each state
//! transition is an `UPDATE … WHERE status IN (<allowed from>)`, so a terminal run is never
//! written again. A failed outcome asks for its retry in the same transaction and marks its job
//! failing; a succeeded one moves its job's `last_success_at` in it and clears the mark.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait as _, Value};
use sea_orm::{
    ActiveEnum, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::retries;
use super::values::{self, given};
use super::{CompleteRun, MarkRunning, begin_write};
use crate::time::{elapsed_ms, to_millis};
use crate::{Error, Result};

/// A reply to one message of a batch.
pub(super) type Reply = tokio::sync::oneshot::Sender<Result<bool>>;

/// Messages of one kind waiting for a batch, each with its reply.
pub(super) type Queued<M> = Vec<(M, Reply)>;

/// The run starts and outcomes waiting for a batch.
#[derive(Debug, Default)]
pub(super) struct Pending {
    marks: Queued<MarkRunning>,
    completes: Queued<CompleteRun>,
    /// A writer task ([`write_beside`]) runs and takes what is queued.
    writing: bool,
}

impl Pending {
    pub(super) fn push_mark(&mut self, mark: MarkRunning, reply: Reply) {
        self.marks.push((mark, reply));
    }

    pub(super) fn push_complete(&mut self, complete: CompleteRun, reply: Reply) {
        self.completes.push((complete, reply));
    }

    /// Whether the caller is to start the writer task (none runs yet).
    pub(super) fn start_writer(&mut self) -> bool {
        !std::mem::replace(&mut self.writing, true)
    }

    /// Takes up to `limit` of the queued messages, starts first.
    pub(super) fn take(&mut self, limit: usize) -> (Queued<MarkRunning>, Queued<CompleteRun>) {
        let marks: Vec<_> = self.marks.drain(..self.marks.len().min(limit)).collect();
        let rest = limit - marks.len();
        let completes = self
            .completes
            .drain(..self.completes.len().min(rest))
            .collect();
        (marks, completes)
    }
}

/// The queue, whether or not a thread panicked while holding it (no step leaves it half-changed).
pub(super) fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer task beside the atomic writes (PostgreSQL): writes up to `limit` queued messages
/// per batch, one batch after another, until the queue is empty. Before each batch it yields
/// once, so the messages that arrived together with the first reach the queue and share its
/// batch.
pub(super) async fn write_beside(
    db: DatabaseConnection,
    pending: Arc<Mutex<Pending>>,
    limit: usize,
) {
    loop {
        tokio::task::yield_now().await;
        let (marks, completes) = {
            let mut pending = lock(&pending);
            let batch = pending.take(limit);
            if batch.0.is_empty() && batch.1.is_empty() {
                pending.writing = false;
                return;
            }
            batch
        };
        apply_batch(&db, marks, completes).await;
    }
}

/// Applies the `MarkRunning` and `CompleteRun` messages that queued up while the store was busy,
/// in one transaction and a handful of statements: one `UPDATE … WHERE id IN (…)` for all the
/// starts, one read of the finishing runs, one `UPDATE` per distinct outcome (status, error,
/// logs, duration), and one for the jobs that stay blocked. The batch is stamped with its newest
/// `now`. Each message gets the answer it would have had alone: when the batch fails, each
/// message is written again in a transaction of its own, so one bad message never fails another.
pub(super) async fn apply_batch(
    db: &DatabaseConnection,
    marks: Queued<MarkRunning>,
    completes: Queued<CompleteRun>,
) {
    let (marks, mark_replies): (Vec<_>, Vec<_>) = marks.into_iter().unzip();
    let (mut completes, complete_replies): (Vec<_>, Vec<_>) = completes.into_iter().unzip();
    for complete in &mut completes {
        complete.sanitize();
    }
    let answers = match write_batch(db, &marks, &completes).await {
        Ok(answers) => answers,
        Err(err) if marks.len() + completes.len() == 1 => vec![Err(err)],
        Err(err) => {
            log::warn!(
                "a batch of {} run writes failed ({err}); writing them one by one",
                marks.len() + completes.len()
            );
            let mut answers = Vec::with_capacity(marks.len() + completes.len());
            for mark in &marks {
                answers.push(write_one(
                    write_batch(db, std::slice::from_ref(mark), &[]).await,
                ));
            }
            for complete in &completes {
                let alone = write_batch(db, &[], std::slice::from_ref(complete)).await;
                answers.push(write_one(alone));
            }
            answers
        }
    };
    for (reply, answer) in mark_replies
        .into_iter()
        .chain(complete_replies)
        .zip(answers)
    {
        // The sender may have stopped waiting; then nobody needs the answer.
        let _ = reply.send(answer);
    }
}

fn write_one(written: Result<Vec<Result<bool>>>) -> Result<bool> {
    written.and_then(|mut answers| answers.pop().unwrap_or(Ok(false)))
}

async fn write_batch(
    db: &DatabaseConnection,
    marks: &[MarkRunning],
    completes: &[CompleteRun],
) -> Result<Vec<Result<bool>>> {
    let txn = begin_write(db).await?;
    let mut answers = mark_all(&txn, marks).await?;
    answers.extend(complete_all(&txn, completes).await?);
    txn.commit().await?;
    Ok(answers)
}

/// Job, status and start of the given runs. With `lock`, on PostgreSQL, the rows are locked in
/// id order until the transaction ends, so no other write changes them between this read and
/// the batch's updates (the store's other writes run beside the batches there).
async fn states(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
    lock: bool,
) -> Result<HashMap<Uuid, RunState>> {
    let mut states = HashMap::with_capacity(ids.len());
    let lock = lock && super::is_postgres(db);
    for chunk in ids.chunks(super::IDS_PER_STATEMENT) {
        let mut query = PluginJobRun::find()
            .select_only()
            .column(PluginJobRunColumn::Id)
            .column(PluginJobRunColumn::JobId)
            .column(PluginJobRunColumn::Status)
            .column(PluginJobRunColumn::StartedAt)
            .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()));
        if lock {
            query = query.order_by_asc(PluginJobRunColumn::Id).lock_exclusive();
        }
        let rows: Vec<(Uuid, Uuid, RunStatus, Option<DateTime<Utc>>)> =
            query.into_tuple().all(db).await?;
        states.extend(rows.into_iter().map(|(id, job_id, status, started)| {
            (
                id,
                RunState {
                    job_id,
                    status,
                    started,
                },
            )
        }));
    }
    Ok(states)
}

#[derive(Debug, Clone, Copy)]
struct RunState {
    job_id: Uuid,
    status: RunStatus,
    started: Option<DateTime<Utc>>,
}

async fn mark_all(db: &impl ConnectionTrait, marks: &[MarkRunning]) -> Result<Vec<Result<bool>>> {
    let Some(now) = marks.iter().map(|m| to_millis(m.now)).max() else {
        return Ok(Vec::new());
    };
    let ids: Vec<Uuid> = marks.iter().map(|m| m.run_id).collect();
    let distinct: HashSet<Uuid> = ids.iter().copied().collect();
    let mut moved_rows = 0;
    for chunk in ids.chunks(super::IDS_PER_STATEMENT) {
        moved_rows += PluginJobRun::update_many()
            .col_expr(PluginJobRunColumn::Status, Expr::value(RunStatus::Running))
            .col_expr(PluginJobRunColumn::StartedAt, Expr::value(now))
            .col_expr(PluginJobRunColumn::HeartbeatAt, Expr::value(now))
            .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()))
            .filter(PluginJobRunColumn::Status.is_in(RunStatus::Running.allowed_from().to_vec()))
            .exec(db)
            .await?
            .rows_affected;
    }
    // Usually every run was still queued; otherwise (one was cancelled before it started) read
    // which ones this batch moved: its update holds them until the commit, so they still show
    // the batch's stamp.
    let moved: HashSet<Uuid> = if moved_rows as usize == distinct.len() {
        distinct
    } else {
        states(db, distinct.into_iter().collect(), false)
            .await?
            .into_iter()
            .filter(|(_, state)| state.status == RunStatus::Running && state.started == Some(now))
            .map(|(id, _)| id)
            .collect()
    };
    let mut answered = HashSet::new();
    Ok(marks
        .iter()
        .map(|mark| Ok(moved.contains(&mark.run_id) && answered.insert(mark.run_id)))
        .collect())
}

async fn complete_all(
    db: &impl ConnectionTrait,
    completes: &[CompleteRun],
) -> Result<Vec<Result<bool>>> {
    let Some(now) = completes.iter().map(|c| to_millis(c.now)).max() else {
        return Ok(Vec::new());
    };
    let ids: Vec<Uuid> = completes.iter().map(|c| c.run_id).collect();
    let before = states(db, ids, true).await?;
    let mut finished = HashSet::new();
    let mut runs: Vec<FinishedRun<'_>> = Vec::new();
    let mut blocks: HashMap<DateTime<Utc>, Vec<Uuid>> = HashMap::new();
    let answers = completes
        .iter()
        .map(|msg| {
            if msg.status.is_live() {
                return Err(Error::InvalidInput(format!(
                    "a run can only be completed as succeeded, failed or cancelled, not {}",
                    msg.status
                )));
            }
            let Some(state) = before.get(&msg.run_id) else {
                return Err(Error::RunNotFound(msg.run_id));
            };
            // The job stays blocked while its worker may still run it, even when another
            // outcome of the run won: the block is about the worker, not the row.
            if let Some(until) = msg.block_until {
                blocks
                    .entry(to_millis(until))
                    .or_default()
                    .push(state.job_id);
            }
            // The first outcome of a run wins, within the batch as in the table.
            if !msg.status.allowed_from().contains(&state.status) || !finished.insert(msg.run_id) {
                return Ok(false);
            }
            runs.push(FinishedRun {
                id: msg.run_id,
                job_id: state.job_id,
                status: msg.status,
                error: msg.error.as_deref(),
                duration_ms: state.started.map(|started| elapsed_ms(started, now)),
                logs: msg.logs.as_ref(),
            });
            Ok(true)
        })
        .collect();
    let of_status = |status| runs.iter().filter(move |run| run.status == status);
    // A job has one live run at most (a partial unique index), so a batch holds at most one
    // outcome of each job: its jobs that succeeded and those that failed do not meet.
    let jobs_of = |status| {
        let mut jobs: Vec<Uuid> = of_status(status).map(|run| run.job_id).collect();
        jobs.sort();
        jobs.dedup();
        jobs
    };
    let succeeded_jobs = jobs_of(RunStatus::Succeeded);
    let failing_jobs = jobs_of(RunStatus::Failed);
    let failed: Vec<Uuid> = of_status(RunStatus::Failed).map(|run| run.id).collect();
    write_outcomes(db, &runs, now).await?;
    for (until, job_ids) in blocks {
        for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
            PluginJob::update_many()
                .col_expr(PluginJobColumn::BlockedUntil, Expr::value(until))
                .col_expr(PluginJobColumn::UpdatedAt, Expr::value(now))
                .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
                .exec(db)
                .await?;
        }
    }
    record_successes(db, &succeeded_jobs, now).await?;
    mark_failing(db, &failing_jobs).await?;
    retries::schedule_after_failures(db, &failed, &HashSet::new(), now).await?;
    Ok(answers)
}

/// Moves the `last_success_at` of the jobs whose runs this batch recorded as succeeded to the
/// batch's time (never back), and clears their `failing`, with one statement per chunk of jobs:
/// a success is stamped by the write that records it, so the `JobHealthActor` has only failure
/// streaks to keep and a batch of plain successes costs it one read instead of a write
/// transaction behind the claims. (A job that was not failing keeps `failing` as it was, which
/// on PostgreSQL leaves the update free to stay within its page.)
async fn record_successes(
    db: &impl ConnectionTrait,
    jobs: &[Uuid],
    now: DateTime<Utc>,
) -> Result<()> {
    let behind = || {
        Condition::any()
            .add(PluginJobColumn::LastSuccessAt.is_null())
            .add(PluginJobColumn::LastSuccessAt.lt(now))
    };
    for chunk in jobs.chunks(super::IDS_PER_STATEMENT) {
        PluginJob::update_many()
            .col_expr(
                PluginJobColumn::LastSuccessAt,
                Expr::case(behind(), Expr::value(now))
                    .finally(Expr::col(PluginJobColumn::LastSuccessAt))
                    .into(),
            )
            .col_expr(PluginJobColumn::Failing, Expr::value(false))
            .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
            .filter(behind().add(PluginJobColumn::Failing.eq(true)))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Sets `failing` on these jobs, whose runs failed (the API's `failing=true` listing reads them
/// from an index).
pub(super) async fn mark_failing(db: &impl ConnectionTrait, jobs: &[Uuid]) -> Result<()> {
    for chunk in jobs.chunks(super::IDS_PER_STATEMENT) {
        PluginJob::update_many()
            .col_expr(PluginJobColumn::Failing, Expr::value(true))
            .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
            .filter(PluginJobColumn::Failing.eq(false))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// What a finished run is recorded with.
#[derive(Debug, Clone, Copy)]
struct FinishedRun<'a> {
    id: Uuid,
    job_id: Uuid,
    status: RunStatus,
    error: Option<&'a str>,
    duration_ms: Option<i64>,
    /// The worker's log lines; without them the run keeps the ones it has.
    logs: Option<&'a serde_json::Value>,
}

/// Records finished runs with one `UPDATE … FROM (VALUES …)` per chunk, each row carrying its
/// own status, error, duration and log lines: a batch costs the same few statements whether its
/// runs share an outcome or each logged lines of its own (grouping equal outcomes made that one
/// statement per run). The runs without log lines go in a statement that leaves the column as
/// it is. Only live runs move, as in every transition.
async fn write_outcomes(
    db: &impl ConnectionTrait,
    runs: &[FinishedRun<'_>],
    now: DateTime<Utc>,
) -> Result<()> {
    let (with_logs, without_logs): (Vec<_>, Vec<_>) =
        runs.iter().partition(|run| run.logs.is_some());
    for (runs, logs) in [(with_logs, true), (without_logs, false)] {
        for chunk in runs.chunks(super::IDS_PER_STATEMENT) {
            let rows = chunk.iter().map(|run: &&FinishedRun<'_>| {
                let mut row: Vec<Value> = vec![
                    run.status.to_value().into(),
                    run.error.map(str::to_owned).into(),
                    run.duration_ms.into(),
                ];
                if logs {
                    row.push(run.logs.cloned().into());
                }
                (run.id, row)
            });
            let mut update = values::update_by_id::<PluginJobRun>(PluginJobRunColumn::Id, rows);
            update
                .value(PluginJobRunColumn::Status, given(2))
                .value(PluginJobRunColumn::Error, given(3))
                .value(PluginJobRunColumn::DurationMs, given(4))
                .value(PluginJobRunColumn::FinishedAt, Expr::value(now))
                .and_where(
                    Expr::col((PluginJobRun, PluginJobRunColumn::Status))
                        .is_in(RunStatus::LIVE.iter().map(|status| status.to_value())),
                );
            if logs {
                update.value(PluginJobRunColumn::Logs, given(5));
            }
            db.execute(&update).await?;
        }
    }
    Ok(())
}
