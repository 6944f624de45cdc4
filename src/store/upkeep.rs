//! The maintenance statements of `plugin_job_runs`: heartbeats of live runs, rescue of runs whose
//! instance stopped heartbeating them (a failure, so it may ask for a retry), cancelling a
//! plugin's runs, and pruning finished history in bounded batches.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait as _, Order, Query, SelectStatement, Value};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use uuid::Uuid;

use super::retries;
use super::values::{self, given};
use super::{
    CancelPluginRuns, CancelStaleRun, CancelUnstarted, EndedRuns, Heartbeat, PruneRuns,
    RescueStaleRuns, begin_write,
};
use crate::Result;
use crate::time::{elapsed_ms, minus, to_millis};

/// A live run that was failed because its instance stopped heartbeating it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RescuedRun {
    pub run_id: Uuid,
    pub job_id: Uuid,
    pub plugin_id: String,
    /// The job's key, for the metrics' labels and the webhook.
    pub job_key: String,
    pub trigger: RunTrigger,
    pub instance_id: Option<String>,
    pub attempt: i32,
    pub error: String,
    /// From its start to the rescue; `None` for a run that never started.
    pub duration_ms: Option<i64>,
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

pub(super) async fn ended_runs(db: &DatabaseConnection, msg: EndedRuns) -> Result<Vec<Uuid>> {
    let mut live = HashSet::with_capacity(msg.0.len());
    for chunk in msg.0.chunks(super::IDS_PER_STATEMENT) {
        let ids: Vec<Uuid> = PluginJobRun::find()
            .select_only()
            .column(PluginJobRunColumn::Id)
            .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()))
            .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
            .into_tuple()
            .all(db)
            .await?;
        live.extend(ids);
    }
    Ok(msg.0.into_iter().filter(|id| !live.contains(id)).collect())
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
    let mut unstarted = HashSet::new();
    for run in stale {
        let instance = run.instance_id.as_deref().unwrap_or("an unknown instance");
        let last_beat = run
            .heartbeat_at
            .map_or_else(|| "never".to_owned(), crate::time::iso);
        // A run claimed ahead of its slot and never started says so: its job did not run.
        let when = if run.started_at.is_none() {
            " before it started"
        } else {
            ""
        };
        let error = format!(
            "abandoned{when}: instance {instance} stopped heartbeating this run (last heartbeat {last_beat}, run lease {} s)",
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
            if run.started_at.is_none() {
                unstarted.insert(run.id);
            }
            rescued.push(RescuedRun {
                run_id: run.id,
                job_id: run.job_id,
                plugin_id: run.plugin_id,
                job_key: String::new(),
                trigger: run.trigger,
                instance_id: run.instance_id,
                attempt: run.attempt,
                error,
                duration_ms: duration,
            });
        }
    }
    // The jobs' keys, in one read (a rescue is rare; its events name the job).
    let job_ids: Vec<Uuid> = rescued.iter().map(|run| run.job_id).collect();
    let mut keys = std::collections::HashMap::new();
    for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
        let found: Vec<(Uuid, String)> = PluginJob::find()
            .select_only()
            .column(PluginJobColumn::Id)
            .column(PluginJobColumn::JobKey)
            .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
            .into_tuple()
            .all(&txn)
            .await?;
        keys.extend(found);
    }
    for run in &mut rescued {
        if let Some(key) = keys.get(&run.job_id) {
            run.job_key.clone_from(key);
        }
    }
    let failed: Vec<Uuid> = rescued.iter().map(|run| run.run_id).collect();
    retries::schedule_after_failures(&txn, &failed, &unstarted, now).await?;
    let mut failing: Vec<Uuid> = rescued.iter().map(|run| run.job_id).collect();
    failing.sort();
    failing.dedup();
    super::outcomes::mark_failing(&txn, &failing).await?;
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
        if cancel_run(&txn, run.id, &RunStatus::LIVE, &msg.reason, duration, now).await? {
            cancelled.push(run.id);
        }
    }
    txn.commit().await?;
    Ok(cancelled)
}

/// Records one run `cancelled` with `reason` if it is still in one of the `from` statuses (a
/// compare-and-set); answers whether it was.
async fn cancel_run(
    txn: &DatabaseTransaction,
    run_id: Uuid,
    from: &[RunStatus],
    reason: &str,
    duration_ms: Option<i64>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let result = PluginJobRun::update_many()
        .col_expr(
            PluginJobRunColumn::Status,
            Expr::value(RunStatus::Cancelled),
        )
        .col_expr(PluginJobRunColumn::Error, Expr::value(reason.to_owned()))
        .col_expr(PluginJobRunColumn::DurationMs, Expr::value(duration_ms))
        .col_expr(PluginJobRunColumn::FinishedAt, Expr::value(now))
        .filter(PluginJobRunColumn::Id.eq(run_id))
        .filter(PluginJobRunColumn::Status.is_in(from.iter().copied()))
        .exec(txn)
        .await?;
    Ok(result.rows_affected == 1)
}

pub(super) async fn cancel_stale_run(db: &DatabaseConnection, msg: CancelStaleRun) -> Result<bool> {
    let now = to_millis(msg.now);
    let cutoff = minus(now, msg.lease);
    let txn = begin_write(db).await?;
    // The same compare-and-set as the rescue's: live, and not heartbeated within the lease.
    let result = PluginJobRun::update_many()
        .col_expr(
            PluginJobRunColumn::Status,
            Expr::value(RunStatus::Cancelled),
        )
        .col_expr(PluginJobRunColumn::Error, Expr::value(msg.reason.clone()))
        .col_expr(PluginJobRunColumn::FinishedAt, Expr::value(now))
        .filter(PluginJobRunColumn::Id.eq(msg.run_id))
        .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
        .filter(PluginJobRunColumn::HeartbeatAt.lt(cutoff))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(result.rows_affected == 1)
}

pub(super) async fn cancel_unstarted(
    db: &DatabaseConnection,
    msg: CancelUnstarted,
) -> Result<Vec<Uuid>> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let mut cancelled = Vec::with_capacity(msg.run_ids.len());
    // One statement per run, each a compare-and-set: a run whose start is written meanwhile (on
    // PostgreSQL the starts are written beside) has started, and is not this message's to end.
    for run_id in msg.run_ids {
        // A queued run has not started: its start moves it to running.
        if cancel_run(&txn, run_id, &[RunStatus::Queued], &msg.reason, None, now).await? {
            cancelled.push(run_id);
        }
    }
    let unstarted: HashSet<Uuid> = cancelled.iter().copied().collect();
    retries::schedule_after_failures(&txn, &cancelled, &unstarted, now).await?;
    txn.commit().await?;
    Ok(cancelled)
}

/// Most rows one prune statement deletes.
const PRUNE_BATCH: u64 = 1_000;

/// Most jobs whose surplus one prune pass looks for; the next pass goes on after the last one,
/// so with many jobs each is trimmed every few passes and no pass reads every job's history.
const PRUNE_JOBS_PER_PASS: u64 = 1_000;

/// A pass looks at [`PRUNE_JOBS_AT_LEAST`] jobs, then at more while it has taken less than its
/// budget ([`PruneRuns::PASS_BUDGET`] from the maintenance): at 40,000 jobs a pass of 100
/// every 10 s took 67 minutes to come round (an every-second job held about 4,000 runs beyond
/// its keep by then), while 1,000 jobs a pass, each a few reads, tripled the scheduler's
/// lateness p99 in the history bench.
const PRUNE_JOBS_AT_LEAST: usize = 100;

/// Prunes history in bounded batches, each its own short transaction run beside the store's
/// writes (finished runs are never written again, so nothing else touches these rows): first
/// the finished runs past the retention, oldest first from the `created_at` index; then, for
/// 100 to 1,000 jobs after `cursor` (wrapping around), the finished runs beyond the newest
/// `keep_per_job`, from the `(job_id, created_at, id)` index (see [`surplus_of`]). On
/// PostgreSQL each batch takes a transaction-level advisory lock, so one instance prunes at a
/// time; an instance that finds it taken leaves the pass to the other.
pub(super) async fn prune_runs(
    db: &DatabaseConnection,
    msg: PruneRuns,
    cursor: &std::sync::Mutex<Option<Uuid>>,
) -> Result<u64> {
    let now = to_millis(msg.now);
    let cutoff = minus(now, msg.retention);
    // Finished runs are written as "not live" rather than as the list of finished statuses: a
    // list is a condition the `(status, created_at, id)` index answers, and while the table's
    // statistics lag behind its growth (a burst, a fresh installation) PostgreSQL ANDed that
    // index's whole range of finished runs into each job's lookup: 14 ms per job at 100,000
    // runs, growing with the table. `NOT IN` leaves it the ordered index scan, which stops
    // after the rows it needs.
    let finished = || PluginJobRunColumn::Status.is_not_in(RunStatus::LIVE);
    let mut pruned = 0;
    loop {
        let oldest = Query::select()
            .column(PluginJobRunColumn::Id)
            .from(PluginJobRun)
            .and_where(PluginJobRunColumn::CreatedAt.lt(cutoff))
            .and_where(finished())
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
    let page = |after: Option<Uuid>| {
        let mut page = PluginJob::find()
            .select_only()
            .column(PluginJobColumn::Id)
            .order_by_asc(PluginJobColumn::Id)
            .limit(PRUNE_JOBS_PER_PASS);
        if let Some(after) = after {
            page = page.filter(PluginJobColumn::Id.gt(after));
        }
        page.into_tuple::<Uuid>().all(db)
    };
    let mut jobs: Vec<Uuid> = page(after).await?;
    if jobs.is_empty() && after.is_some() {
        // The last pass ended on the last job (a table of exactly a page): start over now,
        // rather than spend this pass on nothing.
        jobs = page(None).await?;
    }
    // Each job's surplus is read without the write lock (finished runs are never written
    // again, and a run beyond the newest `keep_per_job` stays beyond them as runs are added), and
    // the surplus of many jobs is deleted together, a batch at a time.
    let mut doomed: Vec<Uuid> = Vec::new();
    let started = std::time::Instant::now();
    let mut looked = 0;
    for job_id in &jobs {
        if looked >= PRUNE_JOBS_AT_LEAST && started.elapsed() >= msg.pass_budget {
            break;
        }
        looked += 1;
        loop {
            let surplus = surplus_of(db, *job_id, msg.keep_per_job).await?;
            // A job with a batch or more beyond its keep is read again once that batch is gone.
            let more = surplus.len() as u64 == PRUNE_BATCH;
            doomed.extend(surplus);
            if more || doomed.len() as u64 >= PRUNE_BATCH {
                let Some(deleted) = delete_runs(db, std::mem::take(&mut doomed)).await? else {
                    return Ok(pruned);
                };
                pruned += deleted;
            }
            if !more {
                break;
            }
        }
        *cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(*job_id);
    }
    if let Some(deleted) = delete_runs(db, doomed).await? {
        pruned += deleted;
    }
    if looked == jobs.len() && (jobs.len() as u64) < PRUNE_JOBS_PER_PASS {
        // The end of the table: the next pass starts from the first job again.
        *cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }
    Ok(pruned)
}

/// Up to [`PRUNE_BATCH`] finished runs of `job_id` beyond its newest `keep` finished runs,
/// oldest first.
///
/// Found without reading the status of the runs kept: a job has at most one live run (the
/// `ux_plugin_job_runs_one_live_per_job` index), so the boundary is the run at position `keep`
/// (0-based, newest first) when no live run is newer than it, else the one after it; both come
/// from the `(job_id, created_at, id)` index alone. Only the runs at or before the boundary are
/// read from the table. Filtering every run by status took a table read per kept run, 1,000
/// per job per pass by default. The live run is looked up after the boundary: a run then live
/// among the newest that has finished since counts as finished, which it now is, and a run
/// added since is newer than the boundary.
async fn surplus_of(db: &DatabaseConnection, job_id: Uuid, keep: u64) -> Result<Vec<Uuid>> {
    type Place = (DateTime<Utc>, Uuid);
    let places: Vec<Place> = PluginJobRun::find()
        .select_only()
        .column(PluginJobRunColumn::CreatedAt)
        .column(PluginJobRunColumn::Id)
        .filter(PluginJobRunColumn::JobId.eq(job_id))
        .order_by_desc(PluginJobRunColumn::CreatedAt)
        .order_by_desc(PluginJobRunColumn::Id)
        .offset(keep)
        .limit(2)
        .into_tuple()
        .all(db)
        .await?;
    let Some(&first) = places.first() else {
        return Ok(Vec::new());
    };
    let live: Vec<Place> = PluginJobRun::find()
        .select_only()
        .column(PluginJobRunColumn::CreatedAt)
        .column(PluginJobRunColumn::Id)
        .filter(PluginJobRunColumn::JobId.eq(job_id))
        .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
        .into_tuple()
        .all(db)
        .await?;
    let boundary = if live.iter().any(|place| *place > first) {
        match places.get(1) {
            Some(&next) => next,
            None => return Ok(Vec::new()),
        }
    } else {
        first
    };
    let candidates: Vec<Place> = PluginJobRun::find()
        .select_only()
        .column(PluginJobRunColumn::CreatedAt)
        .column(PluginJobRunColumn::Id)
        .filter(PluginJobRunColumn::JobId.eq(job_id))
        .filter(PluginJobRunColumn::CreatedAt.lte(boundary.0))
        .filter(PluginJobRunColumn::Status.is_not_in(RunStatus::LIVE))
        .order_by_asc(PluginJobRunColumn::CreatedAt)
        .order_by_asc(PluginJobRunColumn::Id)
        .limit(PRUNE_BATCH)
        .into_tuple()
        .all(db)
        .await?;
    // Runs of the boundary's instant that sort after it are newer than it: kept.
    Ok(candidates
        .into_iter()
        .filter(|place| *place <= boundary)
        .map(|(_, id)| id)
        .collect())
}

/// The run ids `select` (a query of run ids) finds.
async fn run_ids(db: &impl ConnectionTrait, select: &SelectStatement) -> Result<Vec<Uuid>> {
    Ok(db
        .query_all(select)
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<Uuid>(0))
        .collect::<std::result::Result<_, _>>()?)
}

/// Deletes the finished runs `ids` finds, read in the same transaction; `None` when another
/// instance is pruning.
async fn delete_batch(db: &DatabaseConnection, ids: SelectStatement) -> Result<Option<u64>> {
    let Some(txn) = begin_prune(db).await? else {
        return Ok(None);
    };
    let ids = run_ids(&txn, &ids).await?;
    delete_in(txn, ids).await.map(Some)
}

/// Deletes the finished runs `ids` (rows another pass deleted already count for nothing);
/// `None` when another instance is pruning.
async fn delete_runs(db: &DatabaseConnection, ids: Vec<Uuid>) -> Result<Option<u64>> {
    if ids.is_empty() {
        return Ok(Some(0));
    }
    let Some(txn) = begin_prune(db).await? else {
        return Ok(None);
    };
    delete_in(txn, ids).await.map(Some)
}

/// A write transaction for one prune batch, or `None` when another instance holds the
/// prune's lock.
async fn begin_prune(db: &DatabaseConnection) -> Result<Option<DatabaseTransaction>> {
    /// The advisory lock class of the prune ("pjpr"); the other key is the schema, so
    /// plugin-jobs installations in different schemas of one database prune independently.
    const PRUNE_LOCK: i32 = 0x706a_7072;
    // Immediate on SQLite: the batch reads its rows before it writes, and two deferred
    // transactions that both read would deadlock on the upgrade ("database is locked").
    let txn = begin_write(db).await?;
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
    Ok(Some(txn))
}

async fn delete_in(txn: DatabaseTransaction, ids: Vec<Uuid>) -> Result<u64> {
    if ids.is_empty() {
        txn.commit().await?;
        return Ok(0);
    }
    mark_pruned_slots(&txn, &ids).await?;
    let deleted = PluginJobRun::delete_many()
        .filter(PluginJobRunColumn::Id.is_in(ids))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(deleted)
}

/// Moves each job's `pruned_through` up to the newest slot among the scheduled and backfilled
/// runs `ids` (about to be deleted): once their rows are gone, only this says that those slots
/// may have run, and a backfill must not replay them.
async fn mark_pruned_slots(txn: &DatabaseTransaction, ids: &[Uuid]) -> Result<()> {
    let newest: Vec<(Uuid, DateTime<Utc>)> = PluginJobRun::find()
        .select_only()
        .column(PluginJobRunColumn::JobId)
        .column_as(PluginJobRunColumn::ScheduledFor.max(), "newest")
        .filter(PluginJobRunColumn::Id.is_in(ids.to_vec()))
        .filter(PluginJobRunColumn::Trigger.is_in([RunTrigger::Schedule, RunTrigger::Backfill]))
        .group_by(PluginJobRunColumn::JobId)
        .into_tuple()
        .all(txn)
        .await?;
    // One statement per chunk of jobs, not one per job: a batch may span a thousand jobs, and
    // their rows stay locked (claims skip them) until the batch commits.
    let pruned = || Expr::col((PluginJob, PluginJobColumn::PrunedThrough));
    for chunk in newest.chunks(super::IDS_PER_STATEMENT) {
        let rows = chunk
            .iter()
            .map(|(job_id, slot)| (*job_id, vec![Value::from(*slot)]));
        let mut update = values::update_by_id::<PluginJob>(PluginJobColumn::Id, rows);
        update
            .value(PluginJobColumn::PrunedThrough, given(2))
            .and_where(pruned().is_null().or(pruned().lt(given(2))));
        txn.execute(&update).await?;
    }
    Ok(())
}
