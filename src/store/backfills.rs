//! Backfill: replaying a job's past slots on an operator's request. A request stores one
//! `pending` row per slot of `[from, to)` that has no run yet (bounded, in one transaction); the
//! `RetryActor` then starts them oldest first, one run of the job at a time, through the
//! scheduler's queue (under the concurrency caps). Starting one creates its run (trigger
//! `backfill`, the slot as `scheduled_for`, the row's id as the run's id) and marks it `started`
//! in one transaction, so across instances each slot is replayed at most once; the unique
//! indexes on runs per job and slot (`schedule` and `backfill` triggers) are the final arbiter.

use chrono::{DateTime, TimeDelta, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{begin_write, runs};
use crate::cron::Schedule;
use crate::time::{iso, to_millis};
use crate::{Error, Result};

/// Most slots one backfill request may replay.
pub const MAX_BACKFILL_SLOTS: usize = 1_000;

/// Asks for the replay of every slot of the job in `[from, to)` that has no run yet.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<BackfillRequested>")]
pub struct RequestBackfill {
    pub job_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// What a backfill request stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillRequested {
    pub job_id: Uuid,
    /// The slots that will be replayed, oldest first (ISO 8601, UTC).
    pub queued: Vec<String>,
    /// Slots of the range that already have a run (or a pending replay): left alone.
    pub already_covered: usize,
}

/// Cancels the job's pending replays. Answers how many were cancelled.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<u64>")]
pub struct CancelBackfill {
    pub job_id: Uuid,
    pub now: DateTime<Utc>,
}

/// One job's slots waiting to be replayed, oldest first.
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<DateTime<Utc>>>")]
pub struct PendingBackfillOf {
    pub job_id: Uuid,
}

/// The pending replays, oldest slot first.
#[derive(actix::Message, Debug, Clone, Copy)]
#[rtype(result = "Result<Vec<BackfillModel>>")]
pub struct ListPendingBackfills {
    pub limit: u64,
}

/// Starts a pending replay: creates its run and marks it `started`, in one transaction.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<BackfillStart>")]
pub struct StartBackfill {
    pub backfill_id: Uuid,
    pub instance_id: String,
    /// The server's misfire grace: a due slot of the job's own within it goes first.
    pub misfire_grace: std::time::Duration,
    pub now: DateTime<Utc>,
}

/// What [`StartBackfill`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum BackfillStart {
    /// The run was created; it waits in the scheduler's queue for a free slot.
    Started {
        run: Box<PluginJobRunModel>,
        job: Box<PluginJobModel>,
    },
    /// Dropped: the job is no longer active, or the slot has run meanwhile.
    Cancelled { reason: String },
    /// Not now: an older slot of the job waits first, a run of the job is live, or it is blocked.
    Busy,
    /// Started or cancelled by someone else.
    Taken,
}

pub(super) async fn request_backfill(
    db: &DatabaseConnection,
    msg: RequestBackfill,
) -> Result<BackfillRequested> {
    let (from, to, now) = (to_millis(msg.from), to_millis(msg.to), to_millis(msg.now));
    if from >= to {
        return Err(Error::InvalidInput(format!(
            "from ({}) must be before to ({})",
            iso(from),
            iso(to)
        )));
    }
    if from < DateTime::UNIX_EPOCH {
        return Err(Error::InvalidInput(format!(
            "from ({}) is before 1970-01-01T00:00:00.000Z: slots before 1970, the first year a \
             schedule can name, cannot be backfilled",
            iso(from)
        )));
    }
    if to > now {
        return Err(Error::InvalidInput(format!(
            "to ({}) is in the future: only past slots can be backfilled (now is {})",
            iso(to),
            iso(now)
        )));
    }
    let txn = begin_write(db).await?;
    let job = super::jobs::lock_rows(&txn, PluginJob::find_by_id(msg.job_id))
        .one(&txn)
        .await?
        .ok_or_else(|| Error::JobNotFound(msg.job_id.to_string()))?;
    if job.status != JobStatus::Active {
        return Err(Error::JobNotActive {
            job: job.job_key,
            status: job.status.to_string(),
            action: "backfilled",
        });
    }
    if job.schedule.trim().is_empty() {
        return Err(Error::InvalidInput(format!(
            "job {} has no schedule, so it has no slots to backfill",
            job.job_key
        )));
    }
    let schedule = Schedule::parse(&job.schedule, &job.timezone)?;
    let mut slots = Vec::new();
    let mut cursor = from - TimeDelta::milliseconds(1);
    while let Some(slot) = schedule.next_after(cursor).map(to_millis) {
        if slot >= to {
            break;
        }
        if slots.len() == MAX_BACKFILL_SLOTS {
            return Err(Error::InvalidInput(format!(
                "[{}, {}) holds more than {MAX_BACKFILL_SLOTS} slots of {:?}; ask for a shorter range",
                iso(from),
                iso(to),
                job.schedule
            )));
        }
        slots.push(slot);
        cursor = slot;
    }
    let mut covered: std::collections::HashSet<DateTime<Utc>> = PluginJobRun::find()
        .select_only()
        .column(PluginJobRunColumn::ScheduledFor)
        .filter(PluginJobRunColumn::JobId.eq(job.id))
        .filter(PluginJobRunColumn::Trigger.is_in([RunTrigger::Schedule, RunTrigger::Backfill]))
        .filter(PluginJobRunColumn::ScheduledFor.gte(from))
        .filter(PluginJobRunColumn::ScheduledFor.lt(to))
        .into_tuple::<DateTime<Utc>>()
        .all(&txn)
        .await?
        .into_iter()
        .collect();
    covered.extend(
        Backfill::find()
            .select_only()
            .column(BackfillColumn::ScheduledFor)
            .filter(BackfillColumn::JobId.eq(job.id))
            .filter(BackfillColumn::Status.ne(BackfillStatus::Cancelled))
            .filter(BackfillColumn::ScheduledFor.gte(from))
            .filter(BackfillColumn::ScheduledFor.lt(to))
            .into_tuple::<DateTime<Utc>>()
            .all(&txn)
            .await?,
    );
    // A slot at or before the newest pruned one may have run: its history is gone, and a replay
    // could run it twice.
    let (open, done): (Vec<_>, Vec<_>) = slots.into_iter().partition(|slot| {
        !covered.contains(slot) && job.pruned_through.is_none_or(|pruned| *slot > pruned)
    });
    if !open.is_empty() {
        // A cancelled replay of a slot may be asked for again: its row is reused.
        Backfill::delete_many()
            .filter(BackfillColumn::JobId.eq(job.id))
            .filter(BackfillColumn::Status.eq(BackfillStatus::Cancelled))
            .filter(BackfillColumn::ScheduledFor.is_in(open.clone()))
            .exec(&txn)
            .await?;
        let rows = open.iter().map(|slot| BackfillActiveModel {
            id: Set(Uuid::now_v7()),
            job_id: Set(job.id),
            plugin_id: Set(job.plugin_id.clone()),
            scheduled_for: Set(*slot),
            status: Set(BackfillStatus::Pending),
            run_id: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
        Backfill::insert_many(rows)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(BackfillRequested {
        job_id: job.id,
        queued: open.into_iter().map(iso).collect(),
        already_covered: done.len(),
    })
}

pub(super) async fn cancel_backfill(db: &DatabaseConnection, msg: CancelBackfill) -> Result<u64> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let cancelled = cancel_pending(&txn, &[msg.job_id], now).await?;
    txn.commit().await?;
    Ok(cancelled)
}

/// Cancels every backfilled slot of the job that has not started; answers how many. Called
/// inside the caller's transaction: a `DELETE …/backfill`, and a job that stops being active
/// (paused, deleted, retired; see `runs::cancel_unstarted_runs`).
pub(super) async fn cancel_pending(
    txn: &impl ConnectionTrait,
    job_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64> {
    let mut cancelled = 0;
    for chunk in job_ids.chunks(super::IDS_PER_STATEMENT) {
        cancelled += Backfill::update_many()
            .col_expr(
                BackfillColumn::Status,
                Expr::value(BackfillStatus::Cancelled),
            )
            .col_expr(BackfillColumn::UpdatedAt, Expr::value(now))
            .filter(BackfillColumn::JobId.is_in(chunk.to_vec()))
            .filter(BackfillColumn::Status.eq(BackfillStatus::Pending))
            .exec(txn)
            .await?
            .rows_affected;
    }
    Ok(cancelled)
}

pub(super) async fn pending_backfill_of(
    db: &DatabaseConnection,
    msg: PendingBackfillOf,
) -> Result<Vec<DateTime<Utc>>> {
    // At most MAX_BACKFILL_SLOTS per request, and one request's slots at a time are pending
    // in practice; the read is bounded by what requests could store.
    Ok(Backfill::find()
        .select_only()
        .column(BackfillColumn::ScheduledFor)
        .filter(BackfillColumn::JobId.eq(msg.job_id))
        .filter(BackfillColumn::Status.eq(BackfillStatus::Pending))
        .order_by_asc(BackfillColumn::ScheduledFor)
        .into_tuple()
        .all(db)
        .await?)
}

pub(super) async fn list_pending_backfills(
    db: &DatabaseConnection,
    msg: ListPendingBackfills,
) -> Result<Vec<BackfillModel>> {
    // The oldest pending slot of each job: the only one that may start next.
    let heads: Vec<(Uuid, DateTime<Utc>)> = Backfill::find()
        .select_only()
        .column(BackfillColumn::JobId)
        .column_as(BackfillColumn::ScheduledFor.min(), "oldest")
        .filter(BackfillColumn::Status.eq(BackfillStatus::Pending))
        .group_by(BackfillColumn::JobId)
        .limit(msg.limit)
        .into_tuple()
        .all(db)
        .await?;
    let mut rows = Vec::with_capacity(heads.len());
    for (job_id, slot) in heads {
        rows.extend(
            Backfill::find()
                .filter(BackfillColumn::JobId.eq(job_id))
                .filter(BackfillColumn::ScheduledFor.eq(slot))
                .filter(BackfillColumn::Status.eq(BackfillStatus::Pending))
                .one(db)
                .await?,
        );
    }
    rows.sort_by_key(|row| row.scheduled_for);
    Ok(rows)
}

pub(super) async fn start_backfill(
    db: &DatabaseConnection,
    msg: StartBackfill,
) -> Result<BackfillStart> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let mut query = Backfill::find_by_id(msg.backfill_id);
    if super::is_postgres(&txn) {
        query = query.lock(LockType::Update);
    }
    let Some(row) = query.one(&txn).await? else {
        return Ok(BackfillStart::Taken);
    };
    if row.status != BackfillStatus::Pending {
        return Ok(BackfillStart::Taken);
    }
    let Some(job) = runs::job_to_start(&txn, row.job_id).await? else {
        return Ok(BackfillStart::Taken);
    };
    let cancel = |reason: String| async {
        Backfill::update_many()
            .col_expr(
                BackfillColumn::Status,
                Expr::value(BackfillStatus::Cancelled),
            )
            .col_expr(BackfillColumn::UpdatedAt, Expr::value(now))
            .filter(BackfillColumn::Id.eq(row.id))
            .exec(&txn)
            .await?;
        Ok::<_, Error>(BackfillStart::Cancelled { reason })
    };
    if job.status != JobStatus::Active {
        // The whole backfill stops with the job, not one slot per pass.
        let cancelled = cancel_pending(&txn, &[job.id], now).await?;
        txn.commit().await?;
        return Ok(BackfillStart::Cancelled {
            reason: format!(
                "the job is {}: {cancelled} backfilled slot(s) cancelled",
                job.status
            ),
        });
    }
    let ran = PluginJobRun::find()
        .select_only()
        .column(PluginJobRunColumn::Id)
        .filter(PluginJobRunColumn::JobId.eq(job.id))
        .filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Schedule))
        .filter(PluginJobRunColumn::ScheduledFor.eq(row.scheduled_for))
        .into_tuple::<Uuid>()
        .one(&txn)
        .await?;
    if ran.is_some() {
        let answer = cancel(format!(
            "the slot {} has run meanwhile",
            iso(row.scheduled_for)
        ))
        .await?;
        txn.commit().await?;
        return Ok(answer);
    }
    let older = Backfill::find()
        .select_only()
        .column(BackfillColumn::Id)
        .filter(BackfillColumn::JobId.eq(job.id))
        .filter(BackfillColumn::Status.eq(BackfillStatus::Pending))
        .filter(BackfillColumn::ScheduledFor.lt(row.scheduled_for))
        .into_tuple::<Uuid>()
        .one(&txn)
        .await?;
    // The job's own slots come first: one that is due within its misfire grace (it may be
    // waiting for the backfilled run that just ended) starts before the next backfilled slot.
    // One due for longer is the claim's to coalesce or skip, and does not hold the backfill.
    let grace = crate::policy::misfire_grace(&job, msg.misfire_grace);
    let own_slot_due = job
        .next_run_at
        .is_some_and(|next| next <= now && (now - next).to_std().is_ok_and(|late| late <= grace));
    if older.is_some() || own_slot_due {
        return Ok(BackfillStart::Busy);
    }
    let run = runs::pending_run(
        &job,
        row.id,
        RunTrigger::Backfill,
        row.scheduled_for,
        &msg.instance_id,
        now,
    );
    if !runs::insert_if_free(&txn, &job, &run, now).await? {
        return Ok(BackfillStart::Busy);
    }
    Backfill::update_many()
        .col_expr(BackfillColumn::Status, Expr::value(BackfillStatus::Started))
        .col_expr(BackfillColumn::RunId, Expr::value(run.id))
        .col_expr(BackfillColumn::UpdatedAt, Expr::value(now))
        .filter(BackfillColumn::Id.eq(row.id))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(BackfillStart::Started {
        run: Box::new(run),
        job: Box::new(job),
    })
}
