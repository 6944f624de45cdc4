//! Store operations on `plugin_job_retries`: asking for the retry of failed runs (in the
//! transaction that records the failure, so a crash cannot lose it), listing the retries that
//! are due, and starting one (its run is created and the retry marked `started` in one
//! transaction, so across instances each retry runs exactly once).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{begin_write, runs};
use crate::Result;
use crate::declaration::{DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF};
use crate::time::{iso, plus, to_millis};

/// The retries whose time has come (oldest first), and when the next pending one is due.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<DueRetries>")]
pub struct ListDueRetries {
    pub now: DateTime<Utc>,
    pub limit: u64,
}

/// The answer to [`ListDueRetries`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DueRetries {
    pub due: Vec<RetryModel>,
    /// The earliest `due_at` of a pending retry that is not due yet.
    pub next_due_at: Option<DateTime<Utc>>,
}

/// Starts a pending retry: creates its run (`queued`, trigger `retry`, the slot's
/// `scheduled_for`, the retry's attempt) and marks the retry `started`, in one transaction; or
/// drops it when the job's next slot has come or the job is no longer active.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<RetryStart>")]
pub struct StartRetry {
    pub retry_id: Uuid,
    pub instance_id: String,
    pub now: DateTime<Utc>,
}

/// What [`StartRetry`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryStart {
    /// The run was created; it waits in the scheduler's queue for a free slot.
    Started {
        run: PluginJobRunModel,
        job: PluginJobModel,
    },
    /// The job's next slot came first: the retry is `superseded` and the slot's last attempt
    /// has failed.
    Superseded {
        retry: RetryModel,
        job: PluginJobModel,
        reason: String,
        /// The error of the failed run the retry was for.
        error: Option<String>,
    },
    /// The job is paused, retired or failed: the retry is `cancelled`.
    Cancelled { retry: RetryModel, reason: String },
    /// Not now: the job has a live run or is blocked by a timed-out call. It stays pending.
    Busy,
    /// Someone else started or dropped it (another instance), or it is gone.
    Taken,
}

/// The wait before attempt `attempt + 1` after attempt `attempt` failed: `backoff` doubled per
/// attempt up to `max_backoff`, then jittered by ±25 % with a factor drawn from the failed run's
/// id (random, but the same wherever it is computed).
pub fn backoff(job: &PluginJobModel, attempt: i32, failed_run: Uuid) -> Duration {
    let millis = |ms: Option<i64>, default: Duration| {
        ms.and_then(|ms| u64::try_from(ms).ok())
            .map_or(default, Duration::from_millis)
    };
    let base = millis(job.retry_backoff_ms, DEFAULT_BACKOFF);
    let cap = Ord::max(millis(job.retry_max_backoff_ms, DEFAULT_MAX_BACKOFF), base);
    let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0);
    let doublings = Ord::min(doublings, 30);
    let wait = Ord::min(base.saturating_mul(1 << doublings), cap);
    // The low 64 bits of a v7 id are random; 0..=10_000 maps to a factor of 0.75..=1.25.
    let draw = (failed_run.as_u128() as u64 % 10_001) as f64 / 10_000.0;
    wait.mul_f64(0.75 + draw / 2.0)
}

/// Asks for the retry of each of these just-failed runs whose job has attempts left. Called in
/// the transaction that records the failures. A retry due at or after the job's next slot is
/// stored `superseded` at once: the next slot will run instead.
///
/// `unstarted` are runs that never started (claimed ahead by an instance that died or shut down
/// before their slot), failed or cancelled: nothing ran, so their retry is due at once, and the
/// slot of a `fire_once` job gets that one late attempt even when its retry policy has none
/// left, as a slot missed while the scheduler was down does.
pub(super) async fn schedule_after_failures(
    db: &impl ConnectionTrait,
    failed_runs: &[Uuid],
    unstarted: &HashSet<Uuid>,
    now: DateTime<Utc>,
) -> Result<()> {
    for chunk in failed_runs.chunks(super::IDS_PER_STATEMENT) {
        // The runs, then their jobs that retry at all: two reads by primary key. (PostgreSQL
        // planned one join of the two as a merge join over the whole jobs index: 25–31 ms per
        // batch of 500 failures among 100,000 jobs.) The status is checked here, not in SQL:
        // while the table's statistics lag behind its growth, `status = 'failed'` made
        // PostgreSQL AND every failed run of the `(status, created_at, id)` index into the
        // read (28 ms per batch at 100,000 failed runs, growing with the table).
        let failed: Vec<PluginJobRunModel> = PluginJobRun::find()
            .filter(PluginJobRunColumn::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
            .into_iter()
            .filter(|run| {
                run.status == RunStatus::Failed
                    || (run.status == RunStatus::Cancelled && unstarted.contains(&run.id))
            })
            .collect();
        let mut job_ids: Vec<Uuid> = failed.iter().map(|run| run.job_id).collect();
        job_ids.sort();
        job_ids.dedup();
        let mut jobs = PluginJob::find().filter(PluginJobColumn::Id.is_in(job_ids));
        if !failed.iter().any(|run| unstarted.contains(&run.id)) {
            jobs = jobs.filter(PluginJobColumn::RetryMaxAttempts.gt(1));
        }
        let jobs: HashMap<Uuid, PluginJobModel> = jobs
            .all(db)
            .await?
            .into_iter()
            .map(|job| (job.id, job))
            .collect();
        let mut rows = Vec::with_capacity(failed.len());
        for run in failed {
            let Some(job) = jobs.get(&run.job_id) else {
                continue;
            };
            let never_ran = unstarted.contains(&run.id);
            let catch_up = never_ran
                && run.trigger == RunTrigger::Schedule
                && job.misfire == MisfirePolicy::FireOnce;
            if job.retry_max_attempts <= run.attempt && !catch_up {
                continue;
            }
            let due_at = if never_ran {
                now
            } else {
                to_millis(plus(now, backoff(job, run.attempt, run.id)))
            };
            let attempt = run.attempt.saturating_add(1);
            let superseded = job.next_run_at.filter(|next| due_at >= *next).map(|next| {
                format!(
                    "attempt {attempt} would start at {}, at or after the next slot {}",
                    iso(due_at),
                    iso(next)
                )
            });
            let status = if superseded.is_some() {
                RetryStatus::Superseded
            } else {
                RetryStatus::Pending
            };
            if let Some(reason) = &superseded {
                log::info!(
                    "job {} of plugin {}: no retry of run {}: {reason}",
                    job.job_key,
                    job.plugin_id,
                    run.id
                );
            }
            rows.push(RetryActiveModel {
                id: Set(Uuid::now_v7()),
                job_id: Set(job.id),
                plugin_id: Set(job.plugin_id.clone()),
                failed_run_id: Set(run.id),
                retry_of: Set(run.retry_of.unwrap_or(run.id)),
                attempt: Set(attempt),
                scheduled_for: Set(run.scheduled_for),
                due_at: Set(due_at),
                status: Set(status),
                reason: Set(superseded),
                run_id: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
        if rows.is_empty() {
            continue;
        }
        // A failure is recorded once (the first outcome of a run wins), so a second row for the
        // same run cannot come from here; the conflict clause keeps a replayed batch harmless.
        Retry::insert_many(rows)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(RetryColumn::FailedRunId)
                    .do_nothing()
                    .to_owned(),
            )
            .try_insert()
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}

/// Which of these failed runs have a retry still to come or running: their slot is not over
/// yet, so the failure does not count towards the job's failure streak.
pub(super) async fn retries_to_come(
    db: &impl ConnectionTrait,
    failed_runs: &[Uuid],
) -> Result<HashSet<Uuid>> {
    let mut found = HashSet::new();
    for chunk in failed_runs.chunks(super::IDS_PER_STATEMENT) {
        // Read by the unique `failed_run_id` and the status checked here: a status condition
        // beside the ids is one the `(status, due_at)` index answers, and while the table's
        // statistics lag behind its growth PostgreSQL ANDed every pending retry into the read.
        let rows: Vec<(Uuid, RetryStatus)> = Retry::find()
            .select_only()
            .column(RetryColumn::FailedRunId)
            .column(RetryColumn::Status)
            .filter(RetryColumn::FailedRunId.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        found.extend(rows.into_iter().filter_map(|(id, status)| {
            matches!(status, RetryStatus::Pending | RetryStatus::Started).then_some(id)
        }));
    }
    Ok(found)
}

pub(super) async fn list_due_retries(
    db: &DatabaseConnection,
    msg: ListDueRetries,
) -> Result<DueRetries> {
    let now = to_millis(msg.now);
    let due = Retry::find()
        .filter(RetryColumn::Status.eq(RetryStatus::Pending))
        .filter(RetryColumn::DueAt.lte(now))
        .order_by_asc(RetryColumn::DueAt)
        .limit(msg.limit)
        .all(db)
        .await?;
    let next_due_at = Retry::find()
        .select_only()
        .column(RetryColumn::DueAt)
        .filter(RetryColumn::Status.eq(RetryStatus::Pending))
        .filter(RetryColumn::DueAt.gt(now))
        .order_by_asc(RetryColumn::DueAt)
        .into_tuple::<DateTime<Utc>>()
        .one(db)
        .await?;
    Ok(DueRetries { due, next_due_at })
}

pub(super) async fn start_retry(db: &DatabaseConnection, msg: StartRetry) -> Result<RetryStart> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let mut query = Retry::find_by_id(msg.retry_id);
    if super::is_postgres(&txn) {
        // A second instance starting the same retry waits here, then finds it taken.
        query = query.lock(LockType::Update);
    }
    let Some(retry) = query.one(&txn).await? else {
        return Ok(RetryStart::Taken);
    };
    if retry.status != RetryStatus::Pending {
        return Ok(RetryStart::Taken);
    }
    let Some(job) = runs::job_to_start(&txn, retry.job_id).await? else {
        return Ok(RetryStart::Taken);
    };
    let attempt = retry.attempt;
    if job.status != JobStatus::Active {
        let reason = format!("attempt {attempt} dropped: the job is {}", job.status);
        let retry = drop_retry(&txn, retry, RetryStatus::Cancelled, &reason, now).await?;
        txn.commit().await?;
        return Ok(RetryStart::Cancelled { retry, reason });
    }
    if let Some(next) = next_slot_reached(&txn, &job, &retry, now).await? {
        let reason = format!(
            "attempt {attempt} superseded: the next slot {} came before it could start",
            iso(next)
        );
        let error = PluginJobRun::find_by_id(retry.failed_run_id)
            .one(&txn)
            .await?
            .and_then(|run| run.error);
        let retry = drop_retry(&txn, retry, RetryStatus::Superseded, &reason, now).await?;
        txn.commit().await?;
        return Ok(RetryStart::Superseded {
            retry,
            job,
            reason,
            error,
        });
    }
    let mut run = runs::pending_run(
        &job,
        retry.id,
        RunTrigger::Retry,
        retry.scheduled_for,
        &msg.instance_id,
        now,
    );
    run.attempt = attempt;
    run.retry_of = Some(retry.retry_of);
    // The retry runs with what the failed attempt ran with (a trigger's one-off payload too).
    run.payload = PluginJobRun::find_by_id(retry.failed_run_id)
        .one(&txn)
        .await?
        .map_or(run.payload, |failed| failed.payload);
    if !runs::insert_if_free(&txn, &job, &run, now).await? {
        return Ok(RetryStart::Busy);
    }
    let moved = Retry::update_many()
        .col_expr(RetryColumn::Status, Expr::value(RetryStatus::Started))
        .col_expr(RetryColumn::RunId, Expr::value(run.id))
        .col_expr(RetryColumn::UpdatedAt, Expr::value(now))
        .filter(RetryColumn::Id.eq(retry.id))
        .filter(RetryColumn::Status.eq(RetryStatus::Pending))
        .exec(&txn)
        .await?
        .rows_affected;
    if moved != 1 {
        return Ok(RetryStart::Taken);
    }
    txn.commit().await?;
    Ok(RetryStart::Started { run, job })
}

/// The job's next slot when it has come (or was already claimed) since the slot being retried.
async fn next_slot_reached(
    db: &impl ConnectionTrait,
    job: &PluginJobModel,
    retry: &RetryModel,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    if let Some(next) = job.next_run_at.filter(|next| *next <= now) {
        return Ok(Some(next));
    }
    let later = PluginJobRun::find()
        .select_only()
        .column(PluginJobRunColumn::ScheduledFor)
        .filter(PluginJobRunColumn::JobId.eq(job.id))
        .filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Schedule))
        .filter(PluginJobRunColumn::ScheduledFor.gt(retry.scheduled_for))
        .order_by_asc(PluginJobRunColumn::ScheduledFor)
        .into_tuple::<DateTime<Utc>>()
        .one(db)
        .await?;
    Ok(later)
}

async fn drop_retry(
    db: &impl ConnectionTrait,
    mut retry: RetryModel,
    status: RetryStatus,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<RetryModel> {
    Retry::update_many()
        .col_expr(RetryColumn::Status, Expr::value(status))
        .col_expr(RetryColumn::Reason, Expr::value(reason.to_owned()))
        .col_expr(RetryColumn::UpdatedAt, Expr::value(now))
        .filter(RetryColumn::Id.eq(retry.id))
        .exec(db)
        .await?;
    log::info!(
        "retry {} of run {}: {reason}",
        retry.id,
        retry.failed_run_id
    );
    retry.status = status;
    retry.reason = Some(reason.to_owned());
    retry.updated_at = now;
    Ok(retry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(backoff_ms: Option<i64>, max_ms: Option<i64>) -> PluginJobModel {
        PluginJobModel {
            id: Uuid::nil(),
            plugin_id: "p".to_owned(),
            job_key: "j".to_owned(),
            display_name: String::new(),
            description: String::new(),
            schedule: String::new(),
            timezone: "UTC".to_owned(),
            status: JobStatus::Active,
            timeout_ms: None,
            misfire: MisfirePolicy::default(),
            last_error: None,
            blocked_until: None,
            last_run_at: None,
            next_run_at: None,
            pause_after_failures: None,
            consecutive_failures: 0,
            unrecovered_failures: 0,
            pruned_through: None,
            paused_at: None,
            failing: false,
            last_success_at: None,
            paused_reason: None,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
            retry_max_attempts: 5,
            retry_backoff_ms: backoff_ms,
            retry_max_backoff_ms: max_ms,
            origin: JobOrigin::Manifest,
            payload: None,
            overlap: OverlapPolicy::Skip,
            jitter_ms: None,
            misfire_grace_ms: None,
        }
    }

    #[test]
    fn backoff_doubles_per_attempt_up_to_the_cap_within_a_quarter_either_way() {
        let job = job(Some(10_000), Some(60_000));
        for (attempt, base) in [(1, 10_000.0), (2, 20_000.0), (3, 40_000.0), (4, 60_000.0)] {
            for _ in 0..200 {
                let wait = backoff(&job, attempt, Uuid::now_v7()).as_secs_f64() * 1000.0;
                assert!(
                    (base * 0.75..=base * 1.25).contains(&wait),
                    "attempt {attempt}: {wait} ms against {base} ms"
                );
            }
        }
        let defaults = backoff(&self::job(None, None), 1, Uuid::now_v7());
        assert!(
            (7_500..=12_500).contains(&defaults.as_millis()),
            "{defaults:?}"
        );
    }

    #[test]
    fn the_jitter_is_the_same_for_one_run_and_spread_across_runs() {
        let job = job(Some(10_000), None);
        let run = Uuid::now_v7();
        assert_eq!(backoff(&job, 1, run), backoff(&job, 1, run));
        let spread: std::collections::HashSet<u128> = (0..50)
            .map(|_| backoff(&job, 1, Uuid::now_v7()).as_millis())
            .collect();
        assert!(spread.len() > 10, "{spread:?}");
    }

    #[test]
    fn a_huge_attempt_number_saturates_at_the_cap() {
        let wait = backoff(&job(Some(1_000), Some(5_000)), i32::MAX, Uuid::now_v7());
        assert!(wait <= Duration::from_millis(6_250), "{wait:?}");
    }
}
