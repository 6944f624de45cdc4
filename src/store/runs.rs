//! Store operations on `plugin_job_runs`: creating runs (a claim's, a manual trigger's, a
//! retry's), the partial-unique-index-aware insert, cancelling runs that have not started, and
//! the run reads. The outcome writes are in `outcomes.rs`; heartbeats, rescue and pruning in
//! `upkeep.rs`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TryInsertResult,
};
use uuid::Uuid;

use super::{CreateRun, GetRun, ListRuns, begin_write};
use crate::time::to_millis;
use crate::{Error, Result};

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
        payload: job.payload.clone(),
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
        payload: Set(run.payload),
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
            .on_conflict(super::on_conflict_do_nothing())
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

/// The live run of a job: which run, and which instance owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LiveRunRef {
    pub run_id: Uuid,
    pub instance_id: Option<String>,
    pub trigger: RunTrigger,
}

/// The live runs of these jobs, by job (one statement per thousand jobs).
pub(super) async fn live_runs(
    db: &impl ConnectionTrait,
    job_ids: impl IntoIterator<Item = Uuid>,
) -> Result<HashMap<Uuid, LiveRunRef>> {
    let job_ids: Vec<Uuid> = job_ids.into_iter().collect();
    let mut live = HashMap::new();
    for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
        let rows = PluginJobRun::find()
            .select_only()
            .column(PluginJobRunColumn::JobId)
            .column(PluginJobRunColumn::Id)
            .column(PluginJobRunColumn::InstanceId)
            .column(PluginJobRunColumn::Trigger)
            .filter(PluginJobRunColumn::JobId.is_in(chunk.to_vec()))
            .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
            .into_tuple::<(Uuid, Uuid, Option<String>, RunTrigger)>()
            .all(db)
            .await?;
        live.extend(
            rows.into_iter()
                .map(|(job_id, run_id, instance_id, trigger)| {
                    let live = LiveRunRef {
                        run_id,
                        instance_id,
                        trigger,
                    };
                    (job_id, live)
                }),
        );
    }
    Ok(live)
}

/// Cancels the runs of these jobs that were created but have not started (a run claimed ahead
/// of its slot, a queued manual run): pause, retire and a schedule change win over them. With
/// `only_scheduled` (a schedule change), manual runs are left alone; without it (the job stops
/// being active), its backfilled slots that have not started are cancelled too, all at once, as
/// its pending retries are. Answers how many runs were cancelled.
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
    if !only_scheduled {
        super::backfills::cancel_pending(db, job_ids, now).await?;
    }
    Ok(cancelled)
}

/// The run of a pending retry or backfilled slot: it takes the pending row's id, so a run is
/// created for the row at most once, whatever happens.
pub(super) fn pending_run(
    job: &PluginJobModel,
    id: Uuid,
    trigger: RunTrigger,
    slot: DateTime<Utc>,
    instance_id: &str,
    now: DateTime<Utc>,
) -> PluginJobRunModel {
    let mut run = new_run(job, trigger, slot, instance_id, now);
    run.id = id;
    run.traceparent = Some(traceparent(id));
    run
}

/// Inserts `run` unless its job is blocked (a timed-out call has not answered) or has a live run.
/// Answers whether it went in.
pub(super) async fn insert_if_free(
    db: &impl ConnectionTrait,
    job: &PluginJobModel,
    run: &PluginJobRunModel,
    now: DateTime<Utc>,
) -> Result<bool> {
    if job.blocked_until.is_some_and(|until| until > now)
        || !live_job_ids(db, [job.id]).await?.is_empty()
    {
        return Ok(false);
    }
    let inserted = insert_ignoring_conflicts(db, vec![active_model(run.clone())]).await?;
    Ok(inserted.contains(&run.id))
}

/// Reads a job for a write that may start a run of it. On PostgreSQL the row stays locked until
/// the transaction ends: the block and live-run checks that follow then see one state of the
/// job. Without the lock, an outcome that ends the job's live run and blocks the job (its worker
/// may still run it) could commit between the two reads, so that neither saw it: the job read
/// before it (no block), the runs after it (no live run), and a second run started beside the
/// worker. The outcome's write takes the same row, so it waits for this transaction or this one
/// for it. (SQLite has one writer at a time.)
pub(super) async fn job_to_start(
    db: &impl ConnectionTrait,
    job_id: Uuid,
) -> Result<Option<PluginJobModel>> {
    let query = super::jobs::lock_rows(db, PluginJob::find_by_id(job_id));
    Ok(query.one(db).await?)
}

pub(super) async fn create_run(
    db: &DatabaseConnection,
    msg: CreateRun,
) -> Result<PluginJobRunModel> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let job = job_to_start(&txn, msg.job_id)
        .await?
        .ok_or_else(|| Error::JobNotFound(msg.job_id.to_string()))?;
    if job.status != JobStatus::Active {
        return Err(Error::JobNotActive {
            job: job.job_key,
            status: job.status.to_string(),
            action: "triggered",
        });
    }
    if let Some(until) = job.blocked_until.filter(|until| *until > now) {
        return Err(Error::AlreadyRunning {
            job: job.job_key,
            detail: format!(
                " (a timed-out or cancelled call has not answered; blocked until {})",
                crate::time::iso(until)
            ),
        });
    }
    let already_running = || Error::AlreadyRunning {
        job: job.job_key.clone(),
        detail: String::new(),
    };
    let live = PluginJobRun::find()
        .filter(PluginJobRunColumn::JobId.eq(job.id))
        .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
        .one(&txn)
        .await?;
    if let Some(live) = live {
        // Queued (waiting for its slot or for a free one) or running: the caller is told which.
        return Err(Error::AlreadyRunning {
            job: job.job_key.clone(),
            detail: format!(" (run {} is {})", live.id, live.status),
        });
    }
    let mut run = new_run(&job, msg.trigger, now, &msg.instance_id, now);
    if let Some(mut payload) = msg.payload {
        crate::declaration::check_payload(&payload)
            .map_err(|err| Error::InvalidInput(format!("payload {err}")))?;
        super::clean_json(&mut payload);
        run.payload = Some(payload);
    }
    let inserted = insert_ignoring_conflicts(&txn, vec![active_model(run.clone())]).await?;
    if !inserted.contains(&run.id) {
        return Err(already_running());
    }
    txn.commit().await?;
    Ok(run)
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
