//! The claim: in one transaction, every due slot of the jobs this instance can run (up to the
//! budget; oldest first within a plugin, round-robin across plugins, never more of a plugin's
//! jobs than its own limit) gets a run and its job's pointer moves to the next slot, by a
//! compare-and-set that another instance's claim cannot pass. A slot that is already due gets a
//! `running` run (its actor calls the worker at once); a slot claimed ahead by the lookahead gets
//! a `queued` one, which its actor marks running when the slot comes. A slot is due at slot + its
//! jitter offset; slots due longer ago than the job's misfire grace are skipped or fired once as
//! its misfire policy says; a slot that comes due while the job's previous run is live is
//! skipped, waits (`queue_one`), or waits and has the live run cancelled (`cancel_previous`).

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{BinOper, Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::jobs::fail_job;
use super::runs::LiveRunRef;
use super::values::{self, given};
use super::{ClaimDueJobs, begin_write, runs};
use crate::Result;
use crate::cron::Schedule;
use crate::events::SkipReason;
use crate::policy::{due_at, misfire_grace};
use crate::time::{delta, plus, to_millis};

/// The fewest rows one page of a plugin's due jobs reads: rows that fire nothing (a slot
/// deferred by its jitter, a slot waiting behind a live run) do not use up the budget, so a
/// page larger than the budget saves a round trip when there are some.
const MIN_PAGE: u64 = 32;

/// How many of a plugin's oldest due jobs a claim with no free slot looks at for overlap
/// decisions.
const OVERLAP_PAGE: u64 = 256;
/// The most pages one claim reads per plugin. Only rows that fire nothing make a claim read a
/// second page; this bounds what a backlog of them costs one claim (the next claim goes on).
const MAX_PAGES: usize = 8;

/// The most slots one claim walks past for a job that waits behind a live run (`queue_one`,
/// `cancel_previous`) to find the newest due one; the next claim walks on.
const MAX_CATCH_UP: usize = 1_000;

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
    /// How many due slots passed, from `slot` on: 1 for `slot` alone; more when the pointer
    /// moved past several at once (a late claim, or a run that held the job for several slots).
    /// At most [`MAX_CATCH_UP`] are counted per record.
    pub count: u32,
}

/// A due slot that waits for its job's live run to end (overlap `queue_one` or
/// `cancel_previous`): the job's pointer stays on it, and the first claim after the live run
/// ends starts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingSlot {
    pub job_id: Uuid,
    pub plugin_id: String,
    pub job_key: String,
    pub slot: DateTime<Utc>,
    /// The live run to cancel for it (`cancel_previous`), when this instance owns that run:
    /// only the instance running a run can stop its worker, so only it is asked to.
    pub preempt: Option<Uuid>,
}

/// What one claim did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClaimOutcome {
    pub claimed: Vec<ClaimedRun>,
    pub skipped: Vec<SkippedSlot>,
    pub waiting: Vec<WaitingSlot>,
    /// Due jobs were left out because another transaction held their rows (PostgreSQL's
    /// `SKIP LOCKED`: another instance's claim, or a batch of outcomes stamping the jobs it
    /// finished): the caller should claim again shortly rather than at its next tick.
    pub contended: bool,
}

/// How a claim moves one job's pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PointerMove {
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
    /// The slot that runs (`last_run_at` moves to it); `None` when the pointer's slot is skipped
    /// or waits.
    fired: Option<DateTime<Utc>>,
}

/// What the claim does with one due job.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    /// A run of the slot; the pointer moves to the next slot. A claim late by more than a
    /// period fires the oldest slot once (`fire_once`), or under overlap `queue_one` and
    /// `cancel_previous` the newest due one (only the newest waits): `coalesced` is the first of
    /// the slots that pass without a run, how many there are, and why (`misfire`: a late claim;
    /// `overlap`: they came due while the job's previous run was live).
    Fire {
        coalesced: Option<(DateTime<Utc>, u32, SkipReason)>,
    },
    /// The slot is skipped, with `count - 1` due slots after it; the pointer moves past them.
    Skip(SkipReason, u32),
    /// The slot waits behind the live run. With `passed` (how many), newer slots came due
    /// meanwhile: the pointer moves to the newest (`to`), and the slots it leaves are recorded
    /// skipped.
    Wait { passed: u32, preempt: Option<Uuid> },
}

#[derive(Debug)]
struct Decided {
    job: PluginJobModel,
    slot: DateTime<Utc>,
    /// Where the pointer goes; `None` when it stays (a slot that waits where it is).
    pointer: Option<PointerMove>,
    fate: Fate,
}

/// Everything one claim shares while deciding.
struct Claim<'a> {
    txn: &'a DatabaseTransaction,
    msg: &'a ClaimDueJobs,
    now: DateTime<Utc>,
    horizon: DateTime<Utc>,
    schedules: HashMap<(String, String), std::result::Result<Schedule, String>>,
    /// Some due row was held by another transaction and skipped.
    contended: bool,
}

pub(super) async fn claim_due_jobs(
    db: &DatabaseConnection,
    msg: ClaimDueJobs,
) -> Result<ClaimOutcome> {
    let mut outcome = ClaimOutcome::default();
    if msg.plugin_ids.is_empty() {
        return Ok(outcome);
    }
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let mut claim = Claim {
        txn: &txn,
        msg: &msg,
        now,
        horizon: to_millis(plus(now, msg.lookahead)),
        schedules: HashMap::new(),
        contended: false,
    };

    // Each plugin's due jobs, oldest first, as many firing ones as it may start: one query per
    // plugin (not per job), so one plugin's backlog never hides another plugin's due job.
    let mut firing: Vec<VecDeque<Decided>> = Vec::new();
    let mut passive = Vec::new();
    for plugin_id in &msg.plugin_ids {
        let cap = msg
            .plugin_limits
            .get(plugin_id)
            .map_or(msg.limit, |free| (*free).min(msg.limit));
        if cap == 0 {
            // Nothing of this plugin can start here, but a slot of a `queue_one` or
            // `cancel_previous` job may have to wait, or cancel the run that holds the slot.
            passive.extend(claim.decide_overlaps(plugin_id).await?);
            continue;
        }
        let (fires, others) = claim.decide_plugin(plugin_id, cap).await?;
        passive.extend(others);
        if !fires.is_empty() {
            firing.push(fires);
        }
    }

    // Round-robin across plugins, in the order the caller listed them (the scheduler lists the
    // plugins with the fewest live runs first, so a plugin that holds many slots goes last when
    // there are fewer free slots than plugins with due jobs).
    let mut budget = msg.limit;
    let mut decided = passive;
    while budget > 0 && firing.iter().any(|queue| !queue.is_empty()) {
        for queue in &mut firing {
            if budget == 0 {
                break;
            }
            if let Some(next) = queue.pop_front() {
                decided.push(next);
                budget -= 1;
            }
        }
    }

    let ours = move_pointers(&txn, &decided, now).await?;

    let mut to_insert = Vec::new();
    let mut fired = Vec::new();
    for Decided {
        mut job,
        slot,
        pointer,
        fate,
    } in decided
    {
        if pointer.is_some() && !ours.contains(&job.id) {
            continue;
        }
        if let Some(pointer) = pointer {
            job.next_run_at = pointer.to;
            job.updated_at = now;
        }
        let skipped = |job: &PluginJobModel, slot, reason, count| SkippedSlot {
            job_id: job.id,
            plugin_id: job.plugin_id.clone(),
            job_key: job.job_key.clone(),
            slot,
            reason,
            count,
        };
        match fate {
            Fate::Skip(reason, count) => outcome.skipped.push(skipped(&job, slot, reason, count)),
            Fate::Wait { passed, preempt } => {
                if passed > 0 {
                    let overlap = SkipReason::Overlap;
                    outcome.skipped.push(skipped(&job, slot, overlap, passed));
                }
                outcome.waiting.push(WaitingSlot {
                    job_id: job.id,
                    plugin_id: job.plugin_id.clone(),
                    job_key: job.job_key.clone(),
                    slot: job.next_run_at.unwrap_or(slot),
                    preempt,
                });
            }
            Fate::Fire { coalesced } => {
                if let Some((first, count, reason)) = coalesced {
                    outcome.skipped.push(skipped(&job, first, reason, count));
                }
                job.last_run_at = Some(slot);
                let mut run =
                    runs::new_run(&job, RunTrigger::Schedule, slot, &msg.instance_id, now);
                if due_at(&job, slot) <= now {
                    // Due already: its actor calls the worker at once, so the run is written
                    // running here instead of by a start write of its own a moment later.
                    run.status = RunStatus::Running;
                    run.started_at = Some(now);
                }
                to_insert.push(runs::active_model(run.clone()));
                fired.push((run, job));
            }
        }
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
                count: 1,
            });
        }
    }
    outcome.contended = claim.contended;
    txn.commit().await?;
    Ok(outcome)
}

impl Claim<'_> {
    /// Reads one plugin's due jobs page by page and decides each, until `cap` of them fire or
    /// none is left. Answers the firing ones (oldest first) and the others.
    async fn decide_plugin(
        &mut self,
        plugin_id: &str,
        cap: u64,
    ) -> Result<(VecDeque<Decided>, Vec<Decided>)> {
        let mut fires = VecDeque::new();
        let mut others = Vec::new();
        let page = cap.max(MIN_PAGE);
        // The ids already read: a next page reads past them. (Paging by the pointer alone would
        // miss rows that share the last one's slot; ordering by (slot, id) would make the
        // first page, the hot path, sort every due row on SQLite.)
        let mut seen: Vec<Uuid> = Vec::new();
        for _ in 0..MAX_PAGES {
            let due = self.due_page(plugin_id, page, &seen).await?;
            let full = due.len() as u64 == page;
            seen.extend(due.iter().map(|job| job.id));
            let live = runs::live_runs(self.txn, due.iter().map(|job| job.id)).await?;
            for job in due {
                if fires.len() as u64 >= cap {
                    break;
                }
                let live_run = live.get(&job.id);
                if let Some(decided) = self.decide(job, live_run).await? {
                    if matches!(decided.fate, Fate::Fire { .. }) {
                        fires.push_back(decided);
                    } else {
                        others.push(decided);
                    }
                }
            }
            if fires.len() as u64 >= cap {
                break;
            }
            if !full {
                if !self.contended {
                    self.contended = self.held_elsewhere(plugin_id, &seen).await?;
                }
                break;
            }
        }
        Ok((fires, others))
    }

    /// With no slot free for a plugin: decides its due jobs whose overlap policy is not `skip`,
    /// so that their slots wait, and a `cancel_previous` slot cancels the live run, even while
    /// the plugin or the instance is at its limit. Nothing fires. It reads one bounded page of
    /// the oldest due jobs and keeps those: filtering on the policy in SQL would make a plugin
    /// with a large backlog of `skip` jobs scan all of them on every claim.
    async fn decide_overlaps(&mut self, plugin_id: &str) -> Result<Vec<Decided>> {
        let due: Vec<PluginJobModel> = self
            .due_query(plugin_id, OVERLAP_PAGE, &[])
            .all(self.txn)
            .await?
            .into_iter()
            .filter(|job| job.overlap != OverlapPolicy::Skip)
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let live = runs::live_runs(self.txn, due.iter().map(|job| job.id)).await?;
        let mut decided = Vec::new();
        for job in due {
            let live_run = live.get(&job.id);
            if live_run.is_none() {
                continue;
            }
            if let Some(fate) = self.decide(job, live_run).await? {
                decided.push(fate);
            }
        }
        Ok(decided)
    }

    /// One page of a plugin's claimable jobs whose slot is within the horizon, oldest first,
    /// leaving out the ones already read. On PostgreSQL the rows are locked, skipping the rows
    /// another instance's claim holds.
    async fn due_page(
        &self,
        plugin_id: &str,
        page: u64,
        seen: &[Uuid],
    ) -> Result<Vec<PluginJobModel>> {
        Ok(self.due_query(plugin_id, page, seen).all(self.txn).await?)
    }

    /// Whether a short page of due jobs left out a due job because another transaction holds
    /// its row (PostgreSQL): more jobs are due, counted without the lock, than the pages read.
    /// The rows read stay locked by this claim, so they are all still counted; nothing else is
    /// bound again. Always false on SQLite, where a claim never skips a row.
    async fn held_elsewhere(&self, plugin_id: &str, seen: &[Uuid]) -> Result<bool> {
        if !super::is_postgres(self.txn) {
            return Ok(false);
        }
        let due: Option<i64> = self
            .due_filter(plugin_id)
            .select_only()
            .column_as(PluginJobColumn::Id.count(), "due")
            .into_tuple()
            .one(self.txn)
            .await?;
        Ok(due.unwrap_or(0) > seen.len() as i64)
    }

    /// A plugin's claimable jobs whose slot is within the horizon.
    fn due_filter(&self, plugin_id: &str) -> sea_orm::Select<PluginJob> {
        PluginJob::find()
            .filter(PluginJobColumn::Status.eq(JobStatus::Active))
            .filter(PluginJobColumn::NextRunAt.lte(self.horizon))
            .filter(PluginJobColumn::PluginId.eq(plugin_id))
            .filter(
                Condition::any()
                    .add(PluginJobColumn::BlockedUntil.is_null())
                    .add(PluginJobColumn::BlockedUntil.lte(self.now)),
            )
    }

    /// One page of [`Self::due_filter`], oldest first, past the rows already read; on PostgreSQL
    /// locked, skipping the rows other transactions hold.
    fn due_query(&self, plugin_id: &str, page: u64, seen: &[Uuid]) -> sea_orm::Select<PluginJob> {
        let mut query = self.due_filter(plugin_id);
        if !seen.is_empty() {
            query = query.filter(PluginJobColumn::Id.is_not_in(seen.to_vec()));
        }
        query = query.order_by_asc(PluginJobColumn::NextRunAt).limit(page);
        if super::is_postgres(self.txn) {
            // Other instances skip the rows this claim holds instead of queueing behind it.
            query = query.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }
        query
    }

    /// Decides one job's fate, or `None` when there is nothing to do yet (its slot is not due
    /// within the horizon once jittered, or not due and the job still runs).
    async fn decide(
        &mut self,
        job: PluginJobModel,
        live: Option<&LiveRunRef>,
    ) -> Result<Option<Decided>> {
        let Some(slot) = job.next_run_at else {
            return Ok(None);
        };
        let now = self.now;
        let due = due_at(&job, slot);
        if due > self.horizon || (due > now && live.is_some()) {
            // Deferred by its jitter, or not due while still running: whether the slot overlaps
            // is decided when it is due.
            return Ok(None);
        }
        // Under `queue_one` and `cancel_previous` a past slot with no run live may be one that
        // waited for a run which has ended since (only the newest due slot then runs, standing
        // for the ones after it), or one nothing ran at, missed while no instance claimed (a
        // stop, a late claim): that one misfires like any other policy's.
        let waited = live.is_none()
            && slot < now
            && matches!(
                job.overlap,
                OverlapPolicy::QueueOne | OverlapPolicy::CancelPrevious
            )
            && self.ended_after(job.id, due).await?;
        let schedule = self
            .schedules
            .entry((job.schedule.clone(), job.timezone.clone()))
            .or_insert_with(|| {
                Schedule::parse(&job.schedule, &job.timezone).map_err(|e| e.to_string())
            });
        let schedule = match schedule {
            Ok(schedule) => schedule,
            Err(err) => {
                // The row was edited behind our back: never leave a job silently dormant.
                let reason = format!("invalid schedule {:?}: {err}", job.schedule);
                fail_job(self.txn, &job, reason, now).await?;
                return Ok(None);
            }
        };
        let next = schedule.next_after(now.max(slot)).map(to_millis);
        let moves_on = |fired| {
            Some(PointerMove {
                from: slot,
                to: next,
                fired,
            })
        };
        // The due slots after this one that the pointer's move to `next` passes.
        let passed = || slots_between(schedule, slot, next);
        // A backfilled slot's run holds the job only for a while: the job's own slot waits for
        // it rather than being skipped, or cancelling it, whatever the overlap policy.
        let overlap = match live {
            Some(live) if live.trigger == RunTrigger::Backfill => OverlapPolicy::QueueOne,
            _ => job.overlap,
        };
        let (pointer, fate) = match (live, overlap) {
            (Some(_), OverlapPolicy::Skip) => {
                let count = 1 + passed().1;
                (moves_on(None), Fate::Skip(SkipReason::Overlap, count))
            }
            (Some(live), OverlapPolicy::QueueOne | OverlapPolicy::CancelPrevious) => {
                // One slot waits: the newest that is due. The ones it replaces are skipped.
                let (newest, passed) = newest_due_slot(schedule, &job, slot, now);
                let preempt = (overlap == OverlapPolicy::CancelPrevious
                    && live.instance_id.as_deref() == Some(self.msg.instance_id.as_str()))
                .then_some(live.run_id);
                let pointer = (newest != slot).then_some(PointerMove {
                    from: slot,
                    to: Some(newest),
                    fired: None,
                });
                (pointer, Fate::Wait { passed, preempt })
            }
            (None, OverlapPolicy::QueueOne | OverlapPolicy::CancelPrevious) if waited => {
                // The slot waited for a run that has ended; newer slots may have come due
                // meanwhile (the run ended here before a claim moved the wait on). Only the
                // newest waits, so it is the one that runs (or misfires), standing for them.
                let (newest, before) = newest_due_slot(schedule, &job, slot, now);
                let grace = delta(misfire_grace(&job, self.msg.misfire_grace));
                if now - due_at(&job, newest) > grace && job.misfire == MisfirePolicy::Skip {
                    let count = 1 + passed().1;
                    (moves_on(None), Fate::Skip(SkipReason::Misfire, count))
                } else {
                    let coalesced = (before > 0).then_some((slot, before, SkipReason::Overlap));
                    (moves_on(Some(newest)), Fate::Fire { coalesced })
                }
            }
            (None, _)
                if now - due > delta(misfire_grace(&job, self.msg.misfire_grace))
                    && job.misfire == MisfirePolicy::Skip =>
            {
                let count = 1 + passed().1;
                (moves_on(None), Fate::Skip(SkipReason::Misfire, count))
            }
            (None, _) => {
                // Claimed ahead of its slot, the pointer passes nothing; claimed late, it may.
                let coalesced = if slot < now {
                    let (first, count) = passed();
                    first
                        .filter(|_| count > 0)
                        .map(|first| (first, count, SkipReason::Misfire))
                } else {
                    None
                };
                (moves_on(Some(slot)), Fate::Fire { coalesced })
            }
        };
        Ok(Some(Decided {
            job,
            // The slot that fires, when one does (the newest of a wait); else the pointer's.
            slot: pointer.and_then(|pointer| pointer.fired).unwrap_or(slot),
            pointer,
            fate,
        }))
    }
}

impl Claim<'_> {
    /// Whether a run of the job ended at or after `due`: the slot due then waited for it.
    async fn ended_after(&self, job_id: Uuid, due: DateTime<Utc>) -> Result<bool> {
        let ended = PluginJobRun::find()
            .select_only()
            .column(PluginJobRunColumn::Id)
            .filter(PluginJobRunColumn::JobId.eq(job_id))
            .filter(PluginJobRunColumn::FinishedAt.gte(due))
            .limit(1)
            .into_tuple::<Uuid>()
            .one(self.txn)
            .await?;
        Ok(ended.is_some())
    }
}

/// The slots strictly between `slot` and `until` (all of them after `slot` when `until` is
/// `None`): the first, and how many (walking at most [`MAX_CATCH_UP`]).
fn slots_between(
    schedule: &Schedule,
    slot: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> (Option<DateTime<Utc>>, u32) {
    let mut first = None;
    let mut count = 0;
    let mut at = slot;
    while count < MAX_CATCH_UP as u32 {
        match schedule.next_after(at).map(to_millis) {
            Some(next) if until.is_none_or(|until| next < until) => {
                first.get_or_insert(next);
                count += 1;
                at = next;
            }
            _ => break,
        }
    }
    (first, count)
}

/// The newest slot of `job`, from `slot` on, that is due at `now` (walking at most
/// [`MAX_CATCH_UP`] slots), and how many slots it is after `slot`: the slots a wait there
/// passes over.
fn newest_due_slot(
    schedule: &Schedule,
    job: &PluginJobModel,
    slot: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, u32) {
    let (mut newest, mut passed) = (slot, 0);
    for _ in 0..MAX_CATCH_UP {
        match schedule.next_after(newest).map(to_millis) {
            Some(next) if due_at(job, next) <= now => {
                newest = next;
                passed += 1;
            }
            _ => break,
        }
    }
    (newest, passed)
}

/// Compare-and-sets every pointer: one `UPDATE … FROM (VALUES …) … RETURNING` per chunk of
/// jobs, each row with its own move, so a claim of jobs with as many schedules costs the same
/// few statements as a claim of jobs that share one. A job whose pointer another instance moved
/// first is theirs. Answers the jobs whose pointer this claim moved.
async fn move_pointers(
    txn: &DatabaseTransaction,
    decided: &[Decided],
    now: DateTime<Utc>,
) -> Result<HashSet<Uuid>> {
    use sea_orm::sea_query::{ExprTrait as _, Value};
    let moves: Vec<(Uuid, PointerMove)> = decided
        .iter()
        .filter_map(|decided| Some((decided.job.id, decided.pointer?)))
        .collect();
    let mut ours = HashSet::with_capacity(moves.len());
    for chunk in moves.chunks(super::IDS_PER_STATEMENT) {
        let rows = chunk.iter().map(|(id, pointer)| {
            let row: Vec<Value> =
                vec![pointer.from.into(), pointer.to.into(), pointer.fired.into()];
            (*id, row)
        });
        let own = |column| Expr::col((PluginJob, column));
        let mut update = values::update_by_id::<PluginJob>(PluginJobColumn::Id, rows);
        update
            .value(PluginJobColumn::NextRunAt, given(3))
            .value(PluginJobColumn::UpdatedAt, Expr::value(now))
            .value(
                PluginJobColumn::LastRunAt,
                Expr::case(given(4).is_not_null(), given(4))
                    .finally(own(PluginJobColumn::LastRunAt)),
            )
            // `IS NOT DISTINCT FROM`, not `=`: the same test here, but one that PostgreSQL's
            // planner cannot answer from the `next_run_at` index. When many jobs share a slot
            // (100,000 hourly jobs, say), that slot is never in the statistics, which were taken
            // before the pointers moved onto it; the planner then took it for a rare value and
            // scanned every job of the slot for each claim's 1,000 ids.
            .and_where(
                own(PluginJobColumn::NextRunAt)
                    .binary(BinOper::Custom("IS NOT DISTINCT FROM"), given(2)),
            )
            .returning_col(PluginJobColumn::Id);
        for row in txn.query_all(&update).await? {
            ours.insert(row.try_get::<Uuid>("", "id")?);
        }
    }
    Ok(ours)
}
