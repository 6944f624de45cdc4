//! Store operations on `plugin_job_runs`: creating runs, their state transitions (each one an
//! `UPDATE … WHERE status IN (<allowed from>)`, so a terminal run is never written again),
//! heartbeats, rescue of abandoned runs, pruning, and the run reads.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, Order, Query, SelectStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait, TryInsertResult,
};
use uuid::Uuid;

use super::jobs::on_conflict_do_nothing;
use super::retries;
use super::{
    CancelPluginRuns, CompleteRun, CreateRun, GetRun, Heartbeat, ListRuns, MarkRunning, PruneRuns,
    RescueStaleRuns, begin_write,
};
use crate::time::{elapsed_ms, minus, to_millis};
use crate::{Error, Result};

/// A live run that was failed because its instance stopped heartbeating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescuedRun {
    pub run_id: Uuid,
    pub job_id: Uuid,
    pub plugin_id: String,
    pub instance_id: Option<String>,
    pub attempt: i32,
    pub error: String,
}

/// A fresh `queued` run of `job`, heartbeated now.
pub(super) fn new_run(
    job: &PluginJobModel,
    trigger: RunTrigger,
    scheduled_for: DateTime<Utc>,
    instance_id: &str,
    now: DateTime<Utc>,
) -> PluginJobRunModel {
    let id = Uuid::now_v7();
    PluginJobRunModel {
        id,
        job_id: job.id,
        plugin_id: job.plugin_id.clone(),
        trigger,
        status: RunStatus::Queued,
        scheduled_for,
        instance_id: Some(instance_id.to_owned()),
        heartbeat_at: Some(now),
        duration_ms: None,
        error: None,
        logs: serde_json::Value::Array(Vec::new()),
        started_at: None,
        finished_at: None,
        created_at: now,
        traceparent: Some(traceparent(id)),
        attempt: 1,
        retry_of: None,
    }
}

/// A W3C `traceparent` for a run: the run id is the trace id (unique, and findable from either
/// side), with a random span id, sampled.
pub(super) fn traceparent(run_id: Uuid) -> String {
    let span = Uuid::new_v4().as_u128() as u64;
    format!("00-{}-{span:016x}-01", run_id.simple())
}

pub(super) fn active_model(run: PluginJobRunModel) -> PluginJobRunActiveModel {
    PluginJobRunActiveModel {
        id: Set(run.id),
        job_id: Set(run.job_id),
        plugin_id: Set(run.plugin_id),
        trigger: Set(run.trigger),
        status: Set(run.status),
        scheduled_for: Set(run.scheduled_for),
        instance_id: Set(run.instance_id),
        heartbeat_at: Set(run.heartbeat_at),
        duration_ms: Set(run.duration_ms),
        error: Set(run.error),
        logs: Set(run.logs),
        started_at: Set(run.started_at),
        finished_at: Set(run.finished_at),
        created_at: Set(run.created_at),
        traceparent: Set(run.traceparent),
        attempt: Set(run.attempt),
        retry_of: Set(run.retry_of),
    }
}

/// Inserts the runs in one statement, skipping any that a partial unique index rejects (a live
/// run of the same job, or the same slot already fired). Answers the ids that went in.
pub(super) async fn insert_ignoring_conflicts(
    db: &impl ConnectionTrait,
    runs: Vec<PluginJobRunActiveModel>,
) -> Result<HashSet<Uuid>> {
    let ids: Vec<Uuid> = runs
        .iter()
        .filter_map(|run| run.id.try_as_ref().copied())
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut inserted = 0;
    let mut runs = runs.into_iter().peekable();
    while runs.peek().is_some() {
        // Each row binds one value per column: chunk so no statement passes the bind limit.
        let chunk: Vec<_> = runs.by_ref().take(super::ROWS_PER_INSERT).collect();
        inserted += match PluginJobRun::insert_many(chunk)
            .on_conflict(on_conflict_do_nothing())
            .try_insert()
            .exec_without_returning(db)
            .await?
        {
            TryInsertResult::Inserted(count) => count,
            TryInsertResult::Empty | TryInsertResult::Conflicted => 0,
        };
    }
    if inserted as usize == ids.len() {
        return Ok(ids.into_iter().collect());
    }
    let mut present = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(super::IDS_PER_STATEMENT) {
        present.extend(
            PluginJobRun::find()
                .select_only()
                .column(PluginJobRunColumn::Id)
                .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()))
                .into_tuple::<Uuid>()
                .all(db)
                .await?,
        );
    }
    Ok(present)
}

/// Which of these jobs have a live run.
pub(super) async fn live_job_ids(
    db: &impl ConnectionTrait,
    job_ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashSet<Uuid>> {
    let job_ids: Vec<Uuid> = job_ids.into_iter().collect();
    let mut live = HashSet::new();
    for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
        live.extend(
            PluginJobRun::find()
                .select_only()
                .column(PluginJobRunColumn::JobId)
                .filter(PluginJobRunColumn::JobId.is_in(chunk.to_vec()))
                .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
                .into_tuple::<Uuid>()
                .all(db)
                .await?,
        );
    }
    Ok(live)
}

/// Cancels the runs of these jobs that were created but have not started (a run claimed ahead
/// of its slot, a queued manual run): pause, retire and a schedule change win over them. With
/// `only_scheduled`, manual runs are left alone. Answers how many were cancelled.
pub(super) async fn cancel_unstarted_runs(
    db: &impl ConnectionTrait,
    job_ids: &[Uuid],
    only_scheduled: bool,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut cancelled = 0;
    for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
        let mut update = PluginJobRun::update_many()
            .col_expr(
                PluginJobRunColumn::Status,
                Expr::value(RunStatus::Cancelled),
            )
            .col_expr(PluginJobRunColumn::Error, Expr::value(reason.to_owned()))
            .col_expr(PluginJobRunColumn::FinishedAt, Expr::value(now))
            .filter(PluginJobRunColumn::JobId.is_in(chunk.to_vec()))
            .filter(PluginJobRunColumn::Status.eq(RunStatus::Queued));
        if only_scheduled {
            update = update.filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Schedule));
        }
        cancelled += update.exec(db).await?.rows_affected;
    }
    Ok(cancelled)
}

pub(super) async fn create_run(
    db: &DatabaseConnection,
    msg: CreateRun,
) -> Result<PluginJobRunModel> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let job = PluginJob::find_by_id(msg.job_id)
        .one(&txn)
        .await?
        .ok_or_else(|| Error::JobNotFound(msg.job_id.to_string()))?;
    if job.status != JobStatus::Active {
        return Err(Error::JobNotActive {
            job: job.job_key,
            status: job.status.to_string(),
        });
    }
    if let Some(until) = job.blocked_until.filter(|until| *until > now) {
        return Err(Error::AlreadyRunning {
            job: job.job_key,
            detail: format!(
                " (a timed-out call has not answered; blocked until {})",
                crate::time::iso(until)
            ),
        });
    }
    let already_running = || Error::AlreadyRunning {
        job: job.job_key.clone(),
        detail: String::new(),
    };
    if !live_job_ids(&txn, [job.id]).await?.is_empty() {
        return Err(already_running());
    }
    let run = new_run(&job, msg.trigger, now, &msg.instance_id, now);
    let inserted = insert_ignoring_conflicts(&txn, vec![active_model(run.clone())]).await?;
    if !inserted.contains(&run.id) {
        return Err(already_running());
    }
    txn.commit().await?;
    Ok(run)
}

/// A reply to one message of a batch.
pub(super) type Reply = tokio::sync::oneshot::Sender<Result<bool>>;

/// Applies the `MarkRunning` and `CompleteRun` messages that queued up while the store was busy,
/// in one transaction and a handful of statements: one `UPDATE … WHERE id IN (…)` for all the
/// starts, one read of the finishing runs, one `UPDATE` per distinct outcome (status, error,
/// logs, duration), and one for the jobs that stay blocked. The batch is stamped with its newest
/// `now`. Each message gets the answer it would have had alone: when the batch fails, each
/// message is written again in a transaction of its own, so one bad message never fails another.
pub(super) async fn apply_batch(
    db: &DatabaseConnection,
    marks: Vec<(MarkRunning, Reply)>,
    completes: Vec<(CompleteRun, Reply)>,
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

/// Job, status and start of the given runs.
async fn states(db: &impl ConnectionTrait, ids: Vec<Uuid>) -> Result<HashMap<Uuid, RunState>> {
    let mut states = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(super::IDS_PER_STATEMENT) {
        let rows: Vec<(Uuid, Uuid, RunStatus, Option<DateTime<Utc>>)> = PluginJobRun::find()
            .select_only()
            .column(PluginJobRunColumn::Id)
            .column(PluginJobRunColumn::JobId)
            .column(PluginJobRunColumn::Status)
            .column(PluginJobRunColumn::StartedAt)
            .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
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
    // which ones this batch moved. Inside the write transaction nothing else changes them.
    let moved: HashSet<Uuid> = if moved_rows as usize == distinct.len() {
        distinct
    } else {
        states(db, distinct.into_iter().collect())
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
    let before = states(db, ids).await?;
    let mut finished = HashSet::new();
    let mut groups: HashMap<Outcome, (Option<&serde_json::Value>, Vec<Uuid>)> = HashMap::new();
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
            let outcome = Outcome {
                status: msg.status,
                error: msg.error.clone(),
                logs: msg.logs.as_ref().map(ToString::to_string),
                duration_ms: state.started.map(|started| elapsed_ms(started, now)),
            };
            groups
                .entry(outcome)
                .or_insert_with(|| (msg.logs.as_ref(), Vec::new()))
                .1
                .push(msg.run_id);
            Ok(true)
        })
        .collect();
    let failed: Vec<Uuid> = groups
        .iter()
        .filter(|(outcome, _)| outcome.status == RunStatus::Failed)
        .flat_map(|(_, (_, ids))| ids.iter().copied())
        .collect();
    for (outcome, (logs, ids)) in groups {
        for chunk in ids.chunks(super::IDS_PER_STATEMENT) {
            let mut update = PluginJobRun::update_many()
                .col_expr(PluginJobRunColumn::Status, Expr::value(outcome.status))
                .col_expr(
                    PluginJobRunColumn::Error,
                    Expr::value(outcome.error.clone()),
                )
                .col_expr(
                    PluginJobRunColumn::DurationMs,
                    Expr::value(outcome.duration_ms),
                )
                .col_expr(PluginJobRunColumn::FinishedAt, Expr::value(now))
                .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()))
                .filter(PluginJobRunColumn::Status.is_in(outcome.status.allowed_from().to_vec()));
            if let Some(logs) = logs {
                update = update.col_expr(PluginJobRunColumn::Logs, Expr::value(logs.clone()));
            }
            update.exec(db).await?;
        }
    }
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
    retries::schedule_after_failures(db, &failed, now).await?;
    Ok(answers)
}

/// What a finished run is recorded with; runs with equal outcomes share one `UPDATE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Outcome {
    status: RunStatus,
    error: Option<String>,
    /// The log lines as JSON text: the key only; the update writes the message's own value.
    logs: Option<String>,
    duration_ms: Option<i64>,
}

pub(super) async fn heartbeat(db: &DatabaseConnection, msg: Heartbeat) -> Result<u64> {
    let now = to_millis(msg.now);
    let mut moved = 0;
    for chunk in msg.run_ids.chunks(super::IDS_PER_STATEMENT) {
        moved += PluginJobRun::update_many()
            .col_expr(PluginJobRunColumn::HeartbeatAt, Expr::value(now))
            .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()))
            .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
            .exec(db)
            .await?
            .rows_affected;
    }
    Ok(moved)
}

pub(super) async fn rescue_stale_runs(
    db: &DatabaseConnection,
    msg: RescueStaleRuns,
) -> Result<Vec<RescuedRun>> {
    let now = to_millis(msg.now);
    let cutoff = minus(now, msg.lease);
    let txn = begin_write(db).await?;
    let spare: HashSet<Uuid> = msg.spare.iter().copied().collect();
    let stale: Vec<_> = PluginJobRun::find()
        .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
        .filter(PluginJobRunColumn::HeartbeatAt.lt(cutoff))
        .all(&txn)
        .await?
        .into_iter()
        .filter(|run| !spare.contains(&run.id))
        .collect();
    let mut rescued = Vec::with_capacity(stale.len());
    for run in stale {
        let instance = run.instance_id.as_deref().unwrap_or("an unknown instance");
        let last_beat = run
            .heartbeat_at
            .map_or_else(|| "never".to_owned(), crate::time::iso);
        let error = format!(
            "abandoned: instance {instance} stopped heartbeating this run (last heartbeat {last_beat}, run lease {} s)",
            msg.lease.as_secs()
        );
        let duration = run.started_at.map(|started| elapsed_ms(started, now));
        let result = PluginJobRun::update_many()
            .col_expr(PluginJobRunColumn::Status, Expr::value(RunStatus::Failed))
            .col_expr(PluginJobRunColumn::Error, Expr::value(error.clone()))
            .col_expr(PluginJobRunColumn::DurationMs, Expr::value(duration))
            .col_expr(PluginJobRunColumn::FinishedAt, Expr::value(now))
            .filter(PluginJobRunColumn::Id.eq(run.id))
            .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
            .filter(PluginJobRunColumn::HeartbeatAt.lt(cutoff))
            .exec(&txn)
            .await?;
        if result.rows_affected == 1 {
            rescued.push(RescuedRun {
                run_id: run.id,
                job_id: run.job_id,
                plugin_id: run.plugin_id,
                instance_id: run.instance_id,
                attempt: run.attempt,
                error,
            });
        }
    }
    let failed: Vec<Uuid> = rescued.iter().map(|run| run.run_id).collect();
    retries::schedule_after_failures(&txn, &failed, now).await?;
    txn.commit().await?;
    Ok(rescued)
}

pub(super) async fn cancel_plugin_runs(
    db: &DatabaseConnection,
    msg: CancelPluginRuns,
) -> Result<Vec<Uuid>> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let mut query = PluginJobRun::find()
        .filter(PluginJobRunColumn::PluginId.eq(&msg.plugin_id))
        .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE));
    if let Some(instance_id) = &msg.instance_id {
        query = query.filter(PluginJobRunColumn::InstanceId.eq(instance_id));
    }
    let live = query.all(&txn).await?;
    let mut cancelled = Vec::with_capacity(live.len());
    for run in live {
        let duration = run.started_at.map(|started| elapsed_ms(started, now));
        let result = PluginJobRun::update_many()
            .col_expr(
                PluginJobRunColumn::Status,
                Expr::value(RunStatus::Cancelled),
            )
            .col_expr(PluginJobRunColumn::Error, Expr::value(msg.reason.clone()))
            .col_expr(PluginJobRunColumn::DurationMs, Expr::value(duration))
            .col_expr(PluginJobRunColumn::FinishedAt, Expr::value(now))
            .filter(PluginJobRunColumn::Id.eq(run.id))
            .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
            .exec(&txn)
            .await?;
        if result.rows_affected == 1 {
            cancelled.push(run.id);
        }
    }
    txn.commit().await?;
    Ok(cancelled)
}

/// Most rows one prune statement deletes.
const PRUNE_BATCH: u64 = 1_000;

/// Most jobs whose surplus one prune pass trims; the next pass goes on after the last one, so
/// with many jobs each is trimmed every few passes and no pass scans every job's history.
const PRUNE_JOBS_PER_PASS: u64 = 100;

/// Prunes history in bounded batches, each its own short transaction run beside the store's
/// writes (finished runs are never written again, so nothing else touches these rows): first
/// the finished runs past the retention, oldest first from the `created_at` index; then, for up
/// to 100 jobs after `cursor` (wrapping around), the finished runs beyond the newest
/// `keep_per_job`, from the `(job_id, created_at)` index. On PostgreSQL each batch takes a
/// transaction-level advisory lock, so one instance prunes at a time; an instance that finds it
/// taken leaves the pass to the other.
pub(super) async fn prune_runs(
    db: &DatabaseConnection,
    msg: PruneRuns,
    cursor: &std::sync::Mutex<Option<Uuid>>,
) -> Result<u64> {
    let now = to_millis(msg.now);
    let cutoff = minus(now, msg.retention);
    let finished = || {
        [
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .to_vec()
    };
    let mut pruned = 0;
    loop {
        let oldest = Query::select()
            .column(PluginJobRunColumn::Id)
            .from(PluginJobRun)
            .and_where(PluginJobRunColumn::CreatedAt.lt(cutoff))
            .and_where(PluginJobRunColumn::Status.is_in(finished()))
            .order_by(PluginJobRunColumn::CreatedAt, Order::Asc)
            .limit(PRUNE_BATCH)
            .to_owned();
        let Some(deleted) = delete_batch(db, oldest).await? else {
            return Ok(pruned);
        };
        pruned += deleted;
        if deleted < PRUNE_BATCH {
            break;
        }
    }
    let after = *cursor
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut page = PluginJob::find()
        .select_only()
        .column(PluginJobColumn::Id)
        .order_by_asc(PluginJobColumn::Id)
        .limit(PRUNE_JOBS_PER_PASS);
    if let Some(after) = after {
        page = page.filter(PluginJobColumn::Id.gt(after));
    }
    let jobs: Vec<Uuid> = page.into_tuple().all(db).await?;
    for job_id in &jobs {
        loop {
            let surplus = Query::select()
                .column(PluginJobRunColumn::Id)
                .from(PluginJobRun)
                .and_where(PluginJobRunColumn::JobId.eq(*job_id))
                .and_where(PluginJobRunColumn::Status.is_in(finished()))
                .order_by(PluginJobRunColumn::CreatedAt, Order::Desc)
                .order_by(PluginJobRunColumn::Id, Order::Desc)
                .limit(PRUNE_BATCH)
                .offset(msg.keep_per_job)
                .to_owned();
            let Some(deleted) = delete_batch(db, surplus).await? else {
                return Ok(pruned);
            };
            pruned += deleted;
            if deleted < PRUNE_BATCH {
                break;
            }
        }
        *cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(*job_id);
    }
    if (jobs.len() as u64) < PRUNE_JOBS_PER_PASS {
        // The end of the table: the next pass starts from the first job again.
        *cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
    Ok(pruned)
}

/// Deletes the runs `ids` selects, in a transaction of its own. Answers `None` when another
/// instance holds the prune lock (PostgreSQL).
async fn delete_batch(db: &DatabaseConnection, ids: SelectStatement) -> Result<Option<u64>> {
    /// The advisory lock class of the prune ("pjpr"); the other key is the schema, so
    /// plugin-jobs installations in different schemas of one database prune independently.
    const PRUNE_LOCK: i32 = 0x706a_7072;
    let txn = db.begin().await?;
    if super::is_postgres(&txn) {
        let locked = txn
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT pg_try_advisory_xact_lock({PRUNE_LOCK}, hashtext(current_schema())) \
                     AS locked"
                ),
            ))
            .await?
            .map(|row| row.try_get::<bool>("", "locked"))
            .transpose()?
            .unwrap_or(false);
        if !locked {
            txn.rollback().await?;
            return Ok(None);
        }
    }
    let deleted = PluginJobRun::delete_many()
        .filter(PluginJobRunColumn::Id.in_subquery(ids))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(Some(deleted))
}

pub(super) async fn list_runs(
    db: &DatabaseConnection,
    msg: ListRuns,
) -> Result<Vec<PluginJobRunModel>> {
    let mut query = PluginJobRun::find();
    if let Some(job_id) = msg.job_id {
        query = query.filter(PluginJobRunColumn::JobId.eq(job_id));
    }
    if let Some(plugin_id) = msg.plugin_id {
        query = query.filter(PluginJobRunColumn::PluginId.eq(plugin_id));
    }
    Ok(query
        .order_by_desc(PluginJobRunColumn::CreatedAt)
        .order_by_desc(PluginJobRunColumn::Id)
        .limit(msg.limit)
        .all(db)
        .await?)
}

pub(super) async fn get_run(
    db: &DatabaseConnection,
    msg: GetRun,
) -> Result<Option<PluginJobRunModel>> {
    Ok(PluginJobRun::find_by_id(msg.0).one(db).await?)
}
