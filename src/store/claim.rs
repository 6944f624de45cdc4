//! The claim: in one transaction, every due slot of the jobs this instance can run (up to the
//! budget, oldest first) gets a `queued` run and its job's pointer moves to the next slot, by a
//! compare-and-set that another instance's claim cannot pass; slots missed beyond the misfire
//! grace are skipped or fired once as the job's policy says.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::jobs::fail_job;
use super::{ClaimDueJobs, begin_write, runs};
use crate::Result;
use crate::cron::Schedule;
use crate::events::SkipReason;
use crate::time::{delta, plus, to_millis};

/// A run created by a claim, with the job as it is after the claim.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedRun {
    pub run: PluginJobRunModel,
    pub job: PluginJobModel,
}

/// A due slot that was passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSlot {
    pub job_id: Uuid,
    pub plugin_id: String,
    pub job_key: String,
    pub slot: DateTime<Utc>,
    pub reason: SkipReason,
}

/// What one claim did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimOutcome {
    pub claimed: Vec<ClaimedRun>,
    pub skipped: Vec<SkippedSlot>,
}

/// How a claim moves one job's pointer; jobs with equal moves share one statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PointerMove {
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    /// The slot runs (so `last_run_at` moves too); false when it is skipped.
    fires: bool,
}

pub(super) async fn claim_due_jobs(
    db: &DatabaseConnection,
    msg: ClaimDueJobs,
) -> Result<ClaimOutcome> {
    let mut outcome = ClaimOutcome::default();
    if msg.limit == 0 || msg.plugin_ids.is_empty() {
        return Ok(outcome);
    }
    let now = to_millis(msg.now);
    let grace = delta(msg.misfire_grace);
    let horizon = to_millis(plus(now, msg.lookahead));
    let txn = begin_write(db).await?;
    let mut due_query = PluginJob::find()
        .filter(PluginJobColumn::Status.eq(JobStatus::Active))
        .filter(PluginJobColumn::NextRunAt.lte(horizon))
        .filter(PluginJobColumn::PluginId.is_in(msg.plugin_ids.iter().cloned()))
        .filter(
            Condition::any()
                .add(PluginJobColumn::BlockedUntil.is_null())
                .add(PluginJobColumn::BlockedUntil.lte(now)),
        )
        .order_by_asc(PluginJobColumn::NextRunAt)
        .limit(msg.limit);
    if super::is_postgres(&txn) {
        // Other instances skip the rows this claim holds instead of queueing behind it.
        due_query = due_query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let due = due_query.all(&txn).await?;
    if due.is_empty() {
        txn.commit().await?;
        return Ok(outcome);
    }
    let live: HashSet<Uuid> = runs::live_job_ids(&txn, due.iter().map(|job| job.id)).await?;

    // Decide each job's fate, parsing each distinct schedule once.
    let mut schedules: HashMap<(String, String), std::result::Result<Schedule, String>> =
        HashMap::new();
    let mut decided = Vec::with_capacity(due.len());
    let mut moves: HashMap<PointerMove, Vec<Uuid>> = HashMap::new();
    for job in due {
        let Some(slot) = job.next_run_at else {
            continue;
        };
        if slot > now && live.contains(&job.id) {
            // Not due yet and still running: whether the slot overlaps is decided when it is due.
            continue;
        }
        let schedule = schedules
            .entry((job.schedule.clone(), job.timezone.clone()))
            .or_insert_with(|| {
                Schedule::parse(&job.schedule, &job.timezone).map_err(|e| e.to_string())
            });
        let next = match schedule {
            Ok(schedule) => schedule.next_after(now.max(slot)).map(to_millis),
            Err(err) => {
                // The row was edited behind our back: never leave a job silently dormant.
                let reason = format!("invalid schedule {:?}: {err}", job.schedule);
                fail_job(&txn, &job, reason, now).await?;
                continue;
            }
        };
        let skip = if live.contains(&job.id) {
            Some(SkipReason::Overlap)
        } else if now - slot > grace && job.misfire == MisfirePolicy::Skip {
            Some(SkipReason::Misfire)
        } else {
            None
        };
        let pointer = PointerMove {
            from: slot,
            to: next,
            fires: skip.is_none(),
        };
        moves.entry(pointer).or_default().push(job.id);
        decided.push((job, pointer, skip));
    }

    // Compare-and-set every pointer, one statement per distinct move: a job whose pointer
    // another instance moved first is theirs.
    let mut ours = HashSet::with_capacity(decided.len());
    for (pointer, ids) in &moves {
        for chunk in ids.chunks(super::IDS_PER_STATEMENT) {
            let mut update = PluginJob::update_many()
                .col_expr(PluginJobColumn::NextRunAt, Expr::value(pointer.to))
                .col_expr(PluginJobColumn::UpdatedAt, Expr::value(now))
                .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
                .filter(PluginJobColumn::NextRunAt.eq(pointer.from));
            if pointer.fires {
                update = update.col_expr(PluginJobColumn::LastRunAt, Expr::value(pointer.from));
            }
            let moved = update.exec(&txn).await?.rows_affected;
            if moved as usize == chunk.len() {
                ours.extend(chunk.iter().copied());
            } else {
                // Some pointers moved under us (possible only without row locks): keep the
                // rows that now carry our move. The unique index on (job, slot) still stops a
                // second run of a slot if two instances ever both believe they moved it.
                let mut query = PluginJob::find()
                    .select_only()
                    .column(PluginJobColumn::Id)
                    .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
                    .filter(PluginJobColumn::UpdatedAt.eq(now));
                query = match pointer.to {
                    Some(to) => query.filter(PluginJobColumn::NextRunAt.eq(to)),
                    None => query.filter(PluginJobColumn::NextRunAt.is_null()),
                };
                ours.extend(query.into_tuple::<Uuid>().all(&txn).await?);
            }
        }
    }

    let mut to_insert = Vec::new();
    let mut fired = Vec::new();
    for (mut job, pointer, skip) in decided {
        if !ours.contains(&job.id) {
            continue;
        }
        let slot = pointer.from;
        job.next_run_at = pointer.to;
        job.updated_at = now;
        if let Some(reason) = skip {
            outcome.skipped.push(SkippedSlot {
                job_id: job.id,
                plugin_id: job.plugin_id.clone(),
                job_key: job.job_key.clone(),
                slot,
                reason,
            });
            continue;
        }
        job.last_run_at = Some(slot);
        let run = runs::new_run(&job, RunTrigger::Schedule, slot, &msg.instance_id, now);
        to_insert.push(runs::active_model(run.clone()));
        fired.push((run, job));
    }

    let inserted = runs::insert_ignoring_conflicts(&txn, to_insert).await?;
    for (run, job) in fired {
        if inserted.contains(&run.id) {
            outcome.claimed.push(ClaimedRun { run, job });
        } else {
            // A live run of this job appeared in another process between our read and insert.
            outcome.skipped.push(SkippedSlot {
                job_id: job.id,
                plugin_id: job.plugin_id.clone(),
                job_key: job.job_key.clone(),
                slot: run.scheduled_for,
                reason: SkipReason::Overlap,
            });
        }
    }
    txn.commit().await?;
    Ok(outcome)
}
