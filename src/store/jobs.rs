//! Store operations on `plugin_jobs`: syncing declarations, pausing and resuming, blocking after a
//! timeout, and the job reads. The claim of due slots is in `claim.rs`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait as _, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use super::{
    GetJob, JobRef, ListJobs, RetirePluginJobs, SetJobBlock, SetJobStatus, SyncJobDeclarations,
    begin_write, runs,
};
use crate::cron::Schedule;
pub use crate::declaration::JobDeclaration;
use crate::time::to_millis;
use crate::{Error, Result};

/// What a declaration's schedule says about the job's pointer.
pub(super) enum ScheduleCheck {
    /// Empty schedule: manual only, no pointer.
    Manual,
    /// Valid: the first slot after now (`None` when it can never fire again).
    Valid(Option<DateTime<Utc>>),
    /// Invalid expression or timezone: the job is `failed` with this reason.
    Invalid(String),
}

/// A stored reason quotes what it rejects: what a database refuses goes.
fn invalid(mut reason: String) -> ScheduleCheck {
    super::clean_text(&mut reason);
    ScheduleCheck::Invalid(reason)
}

/// Whether `schedule` in `timezone` is manual, valid (with its next slot) or invalid: an
/// expression or timezone that does not parse, a schedule that never fires again, or a
/// `jitter_ms` as long as the time between two of its slots.
pub(super) fn check_schedule(
    schedule: &str,
    timezone: &str,
    jitter_ms: Option<u64>,
    now: DateTime<Utc>,
) -> ScheduleCheck {
    if schedule.trim().is_empty() {
        // The timezone still matters for a later schedule, so a bad one is reported anyway.
        return match crate::cron::parse_timezone(timezone) {
            Ok(_) => ScheduleCheck::Manual,
            Err(err) => invalid(format!("invalid timezone {timezone:?}: {err}")),
        };
    }
    match Schedule::parse(schedule, timezone) {
        Ok(parsed) => match crate::describe::never_fires(schedule, &parsed, now)
            .or_else(|| crate::policy::jitter_too_long(schedule, &parsed, jitter_ms, now))
        {
            Some(reason) => invalid(reason),
            None => ScheduleCheck::Valid(parsed.next_after(now).map(to_millis)),
        },
        Err(err @ crate::cron::CronError::UnknownTimezone { .. }) => {
            invalid(format!("invalid timezone {timezone:?}: {err}"))
        }
        Err(err) => invalid(format!("invalid schedule {schedule:?}: {err}")),
    }
}

/// A pause survives a re-declaration, also of a job that went `failed` or `retired` while
/// paused (its `paused_at` remembers); every other job becomes active.
fn redeclared_status(job: &PluginJobModel) -> JobStatus {
    if job.status == JobStatus::Paused || job.paused_at.is_some() {
        JobStatus::Paused
    } else {
        JobStatus::Active
    }
}

pub(super) async fn sync_job_declarations(
    db: &DatabaseConnection,
    msg: SyncJobDeclarations,
) -> Result<Vec<PluginJobModel>> {
    crate::declaration::validate(&msg.plugin_id, &msg.jobs)?;
    let mut msg = msg;
    msg.jobs.iter_mut().for_each(clean_declaration);
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    // Status and pointer are written from what is read here, so the rows stay locked until the
    // commit: a pause by another instance waits for this sync, or this sync for the pause, and
    // neither overwrites the other. (SQLite writers are serialised by `BEGIN IMMEDIATE`.)
    // Only what the sync may change is read: the jobs of the declared keys whole, and the id and
    // key of each manifest job it may retire. The plugin's API jobs are not read (a plugin may
    // have any number of them), nor are its jobs read whole twice: at 40,000 API jobs that left
    // `serve` holding 220 MB after start.
    let declared: HashSet<&str> = msg.jobs.iter().map(|job| job.job_key.as_str()).collect();
    // In key order, as every instance locks them: two instances registering the same plugin at
    // once must not each hold a chunk the other waits for.
    let mut keys: Vec<&str> = declared.iter().copied().collect();
    keys.sort_unstable();
    let mut existing: HashMap<String, PluginJobModel> = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(super::IDS_PER_STATEMENT) {
        let of_chunk = PluginJob::find()
            .filter(PluginJobColumn::PluginId.eq(&msg.plugin_id))
            .filter(PluginJobColumn::JobKey.is_in(chunk.iter().copied()));
        for job in lock_rows(&txn, of_chunk).all(&txn).await? {
            existing.insert(job.job_key.clone(), job);
        }
    }
    // A job the plugin retired while it was gone or its manifest was rejected keeps no reason
    // of that once the plugin loads again: it is retired because the manifest no longer
    // declares it, which needs none.
    let retirable = PluginJob::find()
        .filter(PluginJobColumn::PluginId.eq(&msg.plugin_id))
        .filter(PluginJobColumn::Origin.eq(JobOrigin::Manifest))
        .filter(
            Condition::any()
                .add(PluginJobColumn::Status.ne(JobStatus::Retired))
                .add(PluginJobColumn::LastError.is_not_null()),
        );
    let gone: Vec<Uuid> = lock_rows(&txn, retirable)
        .select_only()
        .column(PluginJobColumn::Id)
        .column(PluginJobColumn::JobKey)
        .into_tuple::<(Uuid, String)>()
        .all(&txn)
        .await?
        .into_iter()
        .filter(|(_, key)| !declared.contains(key.as_str()))
        .map(|(id, _)| id)
        .collect();

    for decl in &msg.jobs {
        let job = existing.get(&decl.job_key);
        if let Some(job) =
            job.filter(|job| job.origin == JobOrigin::Api && job.status != JobStatus::Retired)
        {
            // A job created through the API keeps its key; the manifest cannot take it over
            // (once it is deleted, the manifest's declaration takes the key, and its history).
            log::warn!(
                "plugin {}: the manifest declares job {:?}, which was created through the API \
                 (id {}); the API job is kept and the declaration ignored",
                msg.plugin_id,
                decl.job_key,
                job.id
            );
            continue;
        }
        upsert_declaration(&txn, &msg.plugin_id, decl, job, JobOrigin::Manifest, now).await?;
    }

    // Jobs no longer declared retire. Their ids are listed in chunks rather than the declared
    // keys in one `NOT IN`, so a plugin with tens of thousands of jobs stays under the
    // databases' limits on bound parameters.
    let reason = "job retired before the run started";
    runs::cancel_unstarted_runs(&txn, &gone, false, reason, now).await?;
    for chunk in gone.chunks(super::IDS_PER_STATEMENT) {
        PluginJob::update_many()
            .col_expr(PluginJobColumn::Status, Expr::value(JobStatus::Retired))
            .col_expr(
                PluginJobColumn::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(PluginJobColumn::UpdatedAt, Expr::value(now))
            .filter(PluginJobColumn::Id.is_in(chunk.to_vec()))
            .exec(&txn)
            .await?;
    }

    let mut jobs = PluginJob::find()
        .filter(PluginJobColumn::PluginId.eq(&msg.plugin_id))
        .filter(PluginJobColumn::Origin.eq(JobOrigin::Manifest))
        .order_by_asc(PluginJobColumn::JobKey)
        .all(&txn)
        .await?;
    txn.commit().await?;
    // The API jobs that kept a key the declaration names, as they were (the sync left them).
    jobs.extend(
        existing
            .into_values()
            .filter(|job| job.origin == JobOrigin::Api && job.status != JobStatus::Retired),
    );
    jobs.sort_by(|a, b| a.job_key.cmp(&b.job_key));
    Ok(jobs)
}

pub(super) async fn fail_job(
    db: &impl ConnectionTrait,
    job: &PluginJobModel,
    reason: String,
    now: DateTime<Utc>,
) -> Result<()> {
    PluginJob::update_many()
        .col_expr(PluginJobColumn::Status, Expr::value(JobStatus::Failed))
        .col_expr(PluginJobColumn::LastError, Expr::value(reason))
        .col_expr(
            PluginJobColumn::NextRunAt,
            Expr::value(None::<DateTime<Utc>>),
        )
        .col_expr(PluginJobColumn::UpdatedAt, Expr::value(now))
        .filter(PluginJobColumn::Id.eq(job.id))
        .exec(db)
        .await?;
    Ok(())
}

/// Replaces what the databases refuse in a declaration's text and payload. A schedule or
/// timezone holding such a character is invalid anyway: it fails to parse, and the job is
/// stored `failed` with the reason.
pub(super) fn clean_declaration(decl: &mut JobDeclaration) {
    for text in [
        &mut decl.display_name,
        &mut decl.description,
        &mut decl.schedule,
        &mut decl.timezone,
    ] {
        super::clean_text(text);
    }
    if let Some(payload) = &mut decl.payload {
        super::clean_json(payload);
    }
}

/// Writes one declaration: inserts the job (`origin`) when `existing` is `None`, else updates
/// it in place. A changed schedule cancels runs claimed ahead for the old one; an unchanged
/// schedule keeps its pointer, so missed slots meet the misfire policy. Called inside the
/// caller's write transaction, with the job's row locked.
pub(super) async fn upsert_declaration(
    txn: &impl ConnectionTrait,
    plugin_id: &str,
    decl: &JobDeclaration,
    existing: Option<&PluginJobModel>,
    origin: JobOrigin,
    now: DateTime<Utc>,
) -> Result<()> {
    let display_name = if decl.display_name.is_empty() {
        decl.job_key.clone()
    } else {
        decl.display_name.clone()
    };
    let check = check_schedule(&decl.schedule, &decl.timezone, decl.jitter_ms, now);
    let retry = decl.stored_retry();
    let Some(job) = existing else {
        let (status, last_error, next_run_at) = match check {
            ScheduleCheck::Manual => (JobStatus::Active, None, None),
            ScheduleCheck::Valid(next) => (JobStatus::Active, None, next),
            ScheduleCheck::Invalid(reason) => (JobStatus::Failed, Some(reason), None),
        };
        PluginJob::insert(PluginJobActiveModel {
            id: Set(Uuid::now_v7()),
            plugin_id: Set(plugin_id.to_owned()),
            job_key: Set(decl.job_key.clone()),
            display_name: Set(display_name),
            description: Set(decl.description.clone()),
            schedule: Set(decl.schedule.clone()),
            timezone: Set(decl.timezone.clone()),
            status: Set(status),
            timeout_ms: Set(decl.timeout_ms),
            misfire: Set(decl.misfire),
            last_error: Set(last_error),
            blocked_until: Set(None),
            last_run_at: Set(None),
            next_run_at: Set(next_run_at),
            created_at: Set(now),
            updated_at: Set(now),
            pause_after_failures: Set(decl.pause_after()),
            retry_max_attempts: Set(retry.0),
            retry_backoff_ms: Set(retry.1),
            retry_max_backoff_ms: Set(retry.2),
            origin: Set(origin),
            payload: Set(decl.payload.clone()),
            overlap: Set(decl.overlap),
            jitter_ms: Set(as_ms(decl.jitter_ms)),
            misfire_grace_ms: Set(as_ms(decl.misfire_grace_ms)),
            // The failure streak, last success and pause reason start empty.
            ..Default::default()
        })
        // Another instance may register the same plugin at the same moment: its row wins
        // and the declarations are the same, so a conflict is not an error.
        .on_conflict(super::on_conflict_do_nothing())
        .try_insert()
        .exec_without_returning(txn)
        .await?;
        return Ok(());
    };

    let schedule_changed = job.schedule != decl.schedule || job.timezone != decl.timezone;
    if schedule_changed {
        // A run claimed ahead for the old schedule's slot must not start.
        let reason = "job rescheduled before its slot";
        runs::cancel_unstarted_runs(txn, &[job.id], true, reason, now).await?;
    }
    let (status, last_error, next_run_at) = match check {
        ScheduleCheck::Invalid(reason) => (JobStatus::Failed, Some(reason), None),
        ScheduleCheck::Manual => (redeclared_status(job), None, None),
        ScheduleCheck::Valid(next) => {
            // A past pointer of an unchanged schedule is kept on purpose: the misfire policy
            // decides at the next tick what to do with slots missed while we were down.
            let recompute = schedule_changed
                || job.next_run_at.is_none()
                || matches!(job.status, JobStatus::Retired | JobStatus::Failed);
            let pointer = if recompute { next } else { job.next_run_at };
            (redeclared_status(job), None, pointer)
        }
    };
    PluginJob::update_many()
        .col_expr(PluginJobColumn::DisplayName, Expr::value(display_name))
        .col_expr(
            PluginJobColumn::Description,
            Expr::value(decl.description.clone()),
        )
        .col_expr(
            PluginJobColumn::Schedule,
            Expr::value(decl.schedule.clone()),
        )
        .col_expr(
            PluginJobColumn::Timezone,
            Expr::value(decl.timezone.clone()),
        )
        .col_expr(PluginJobColumn::Status, Expr::value(status))
        .col_expr(PluginJobColumn::TimeoutMs, Expr::value(decl.timeout_ms))
        .col_expr(PluginJobColumn::Misfire, Expr::value(decl.misfire))
        .col_expr(
            PluginJobColumn::PauseAfterFailures,
            Expr::value(decl.pause_after()),
        )
        .col_expr(PluginJobColumn::RetryMaxAttempts, Expr::value(retry.0))
        .col_expr(PluginJobColumn::RetryBackoffMs, Expr::value(retry.1))
        .col_expr(PluginJobColumn::RetryMaxBackoffMs, Expr::value(retry.2))
        .col_expr(PluginJobColumn::Origin, Expr::value(origin))
        .col_expr(PluginJobColumn::Payload, Expr::value(decl.payload.clone()))
        .col_expr(PluginJobColumn::Overlap, Expr::value(decl.overlap))
        .col_expr(
            PluginJobColumn::JitterMs,
            Expr::value(as_ms(decl.jitter_ms)),
        )
        .col_expr(
            PluginJobColumn::MisfireGraceMs,
            Expr::value(as_ms(decl.misfire_grace_ms)),
        )
        .col_expr(PluginJobColumn::LastError, Expr::value(last_error))
        .col_expr(PluginJobColumn::NextRunAt, Expr::value(next_run_at))
        .col_expr(PluginJobColumn::UpdatedAt, Expr::value(now))
        .filter(PluginJobColumn::Id.eq(job.id))
        .exec(txn)
        .await?;
    Ok(())
}

/// A stored millisecond count (validated to fit).
fn as_ms(ms: Option<u64>) -> Option<i64> {
    ms.and_then(|ms| i64::try_from(ms).ok())
}

pub(super) async fn set_job_status(
    db: &DatabaseConnection,
    msg: SetJobStatus,
) -> Result<PluginJobModel> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    // Locked until the commit, like the rows of a sync (see there).
    let job = lock_rows(&txn, PluginJob::find_by_id(msg.job_id))
        .one(&txn)
        .await?
        .ok_or_else(|| Error::JobNotFound(msg.job_id.to_string()))?;
    let next_run_at = match (job.status, msg.status) {
        (JobStatus::Active, JobStatus::Paused) => job.next_run_at,
        (JobStatus::Paused, JobStatus::Active) => {
            let jitter_ms = job.jitter_ms.and_then(|ms| u64::try_from(ms).ok());
            match check_schedule(&job.schedule, &job.timezone, jitter_ms, now) {
                ScheduleCheck::Valid(next) => next,
                ScheduleCheck::Manual => None,
                ScheduleCheck::Invalid(reason) => {
                    fail_job(&txn, &job, reason, now).await?;
                    txn.commit().await?;
                    return Err(Error::JobNotActive {
                        job: job.job_key,
                        status: JobStatus::Failed.to_string(),
                        action: "resumed",
                    });
                }
            }
        }
        (current, wanted) if current == wanted => {
            txn.commit().await?;
            return Ok(job);
        }
        (JobStatus::Failed | JobStatus::Retired, wanted) => {
            return Err(Error::JobNotActive {
                job: job.job_key,
                status: job.status.to_string(),
                action: if wanted == JobStatus::Paused {
                    "paused"
                } else {
                    "resumed"
                },
            });
        }
        (_, wanted) => {
            return Err(Error::InvalidInput(format!(
                "a job can only be set to active or paused, not {wanted}"
            )));
        }
    };
    let mut update = PluginJob::update_many()
        .col_expr(PluginJobColumn::Status, Expr::value(msg.status))
        .col_expr(PluginJobColumn::NextRunAt, Expr::value(next_run_at))
        .col_expr(PluginJobColumn::UpdatedAt, Expr::value(now))
        .col_expr(
            PluginJobColumn::PausedAt,
            Expr::value((msg.status == JobStatus::Paused).then_some(now)),
        );
    if msg.status == JobStatus::Active {
        // A resume clears an automatic pause: its reason, and the streak that caused it (so
        // the job is paused again only after as many new failures). The streak's failures wait
        // for the next success, which reports the job recovered from them. (Every expression of
        // an UPDATE reads the row as it was before it.)
        update = update
            .col_expr(PluginJobColumn::PausedReason, Expr::value(None::<String>))
            .col_expr(
                PluginJobColumn::UnrecoveredFailures,
                Expr::col(PluginJobColumn::UnrecoveredFailures)
                    .add(Expr::col(PluginJobColumn::ConsecutiveFailures)),
            )
            .col_expr(PluginJobColumn::ConsecutiveFailures, Expr::value(0));
    }
    update
        .filter(PluginJobColumn::Id.eq(job.id))
        .exec(&txn)
        .await?;
    if msg.status == JobStatus::Paused {
        // Once the pause is answered, no run of the job starts: not even one claimed ahead.
        let reason = "job paused before the run started";
        runs::cancel_unstarted_runs(&txn, &[job.id], false, reason, now).await?;
    }
    let job = PluginJob::find_by_id(msg.job_id)
        .one(&txn)
        .await?
        .ok_or_else(|| Error::JobNotFound(msg.job_id.to_string()))?;
    txn.commit().await?;
    Ok(job)
}

pub(super) async fn retire_plugin_jobs(
    db: &DatabaseConnection,
    msg: RetirePluginJobs,
) -> Result<u64> {
    let result = PluginJob::update_many()
        .col_expr(PluginJobColumn::Status, Expr::value(JobStatus::Retired))
        .col_expr(PluginJobColumn::LastError, Expr::value(msg.reason.clone()))
        .col_expr(PluginJobColumn::UpdatedAt, Expr::value(to_millis(msg.now)))
        .filter(PluginJobColumn::PluginId.eq(msg.plugin_id))
        // Jobs created through the API are the API's to retire, whatever the manifest does.
        .filter(PluginJobColumn::Origin.eq(JobOrigin::Manifest))
        // Already retired with this very reason: nothing to write (every start checks again).
        .filter(
            Condition::any()
                .add(PluginJobColumn::Status.ne(JobStatus::Retired))
                .add(PluginJobColumn::LastError.is_null())
                .add(PluginJobColumn::LastError.ne(msg.reason.clone())),
        )
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

pub(super) async fn set_job_block(db: &DatabaseConnection, msg: SetJobBlock) -> Result<()> {
    let result = PluginJob::update_many()
        .col_expr(
            PluginJobColumn::BlockedUntil,
            Expr::value(msg.blocked_until.map(to_millis)),
        )
        .col_expr(PluginJobColumn::UpdatedAt, Expr::value(to_millis(msg.now)))
        .filter(PluginJobColumn::Id.eq(msg.job_id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(Error::JobNotFound(msg.job_id.to_string()));
    }
    Ok(())
}

pub(super) async fn list_jobs(
    db: &DatabaseConnection,
    msg: ListJobs,
) -> Result<Vec<PluginJobModel>> {
    let mut query = PluginJob::find();
    if let Some(plugin_id) = msg.plugin_id {
        query = query.filter(PluginJobColumn::PluginId.eq(plugin_id));
    }
    if let Some(status) = msg.status {
        query = query.filter(PluginJobColumn::Status.eq(status));
    }
    Ok(query
        .order_by_asc(PluginJobColumn::PluginId)
        .order_by_asc(PluginJobColumn::JobKey)
        .all(db)
        .await?)
}

pub(super) async fn get_job(
    db: &DatabaseConnection,
    msg: GetJob,
) -> Result<Option<PluginJobModel>> {
    let query = match msg.0 {
        JobRef::Id(id) => PluginJob::find_by_id(id),
        JobRef::Key { plugin_id, job_key } => PluginJob::find()
            .filter(PluginJobColumn::PluginId.eq(plugin_id))
            .filter(PluginJobColumn::JobKey.eq(job_key)),
    };
    Ok(query.one(db).await?)
}

/// On PostgreSQL, reads the rows `FOR UPDATE`: they stay locked until the transaction ends.
pub(super) fn lock_rows(
    txn: &impl ConnectionTrait,
    query: sea_orm::Select<PluginJob>,
) -> sea_orm::Select<PluginJob> {
    if super::is_postgres(txn) {
        query.lock(LockType::Update)
    } else {
        query
    }
}
