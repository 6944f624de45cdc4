//! Jobs managed through the API (`origin: api`): created, changed and retired one at a time, each
//! in one transaction with the job's row locked, so a change lands whole or not at all and the
//! pointer is recomputed with it. Jobs declared by a manifest are refused here (the manifest is
//! their source of truth); manifest syncs leave API jobs alone (`jobs.rs`).

use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::jobs::{
    ScheduleCheck, check_schedule, clean_declaration, lock_rows, upsert_declaration,
};
use super::{begin_write, runs};
use crate::declaration::JobDeclaration;
use crate::time::to_millis;
use crate::{Error, Result};

/// Creates a job of `plugin_id` through the API. A job of the same key that is not retired is
/// [`Error::JobExists`]; a retired one is declared again, now with `origin: api`.
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<PluginJobModel>")]
pub struct CreateJob {
    pub plugin_id: String,
    pub job: JobDeclaration,
    pub now: DateTime<Utc>,
}

/// Changes an API job by a JSON merge patch of its declaration (`schedule`, `timezone`,
/// `timeoutMs`, `misfire`, `payload`, the policies…). A manifest's job is
/// [`Error::DeclaredByManifest`].
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<PluginJobModel>")]
pub struct UpdateJob {
    pub job_id: Uuid,
    pub patch: serde_json::Value,
    pub now: DateTime<Utc>,
}

/// Retires an API job: it is never claimed again and its runs that have not started are
/// cancelled; its history stays, under the retention. A manifest's job is
/// [`Error::DeclaredByManifest`].
#[derive(actix::Message, Debug, Clone)]
#[rtype(result = "Result<PluginJobModel>")]
pub struct DeleteJob {
    pub job_id: Uuid,
    pub now: DateTime<Utc>,
}

pub(super) async fn create_job(db: &DatabaseConnection, msg: CreateJob) -> Result<PluginJobModel> {
    let CreateJob {
        plugin_id,
        mut job,
        now,
    } = msg;
    crate::declaration::validate(&plugin_id, std::slice::from_ref(&job))
        .map_err(|err| Error::InvalidInput(strip_index(&err)))?;
    clean_declaration(&mut job);
    let now = to_millis(now);
    require_valid_schedule(&job, now)?;
    let txn = begin_write(db).await?;
    let existing = lock_rows(
        &txn,
        PluginJob::find()
            .filter(PluginJobColumn::PluginId.eq(&plugin_id))
            .filter(PluginJobColumn::JobKey.eq(&job.job_key)),
    )
    .one(&txn)
    .await?;
    if let Some(found) = existing
        .as_ref()
        .filter(|found| found.status != JobStatus::Retired)
    {
        return Err(Error::JobExists {
            plugin_id,
            job: found.job_key.clone(),
            origin: found.origin.to_string(),
        });
    }
    upsert_declaration(
        &txn,
        &plugin_id,
        &job,
        existing.as_ref(),
        JobOrigin::Api,
        now,
    )
    .await?;
    let created = find_key(&txn, &plugin_id, &job.job_key).await?;
    txn.commit().await?;
    Ok(created)
}

pub(super) async fn update_job(db: &DatabaseConnection, msg: UpdateJob) -> Result<PluginJobModel> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let job = api_job(&txn, msg.job_id).await?;
    if job.status == JobStatus::Retired {
        return Err(Error::JobNotActive {
            job: job.job_key,
            status: job.status.to_string(),
            action: "changed",
        });
    }
    let mut decl = JobDeclaration::of_job(&job)
        .patched(&msg.patch)
        .map_err(Error::InvalidInput)?;
    clean_declaration(&mut decl);
    require_valid_schedule(&decl, now)?;
    upsert_declaration(&txn, &job.plugin_id, &decl, Some(&job), JobOrigin::Api, now).await?;
    let updated = find_key(&txn, &job.plugin_id, &job.job_key).await?;
    txn.commit().await?;
    Ok(updated)
}

pub(super) async fn delete_job(db: &DatabaseConnection, msg: DeleteJob) -> Result<PluginJobModel> {
    let now = to_millis(msg.now);
    let txn = begin_write(db).await?;
    let job = api_job(&txn, msg.job_id).await?;
    if job.status != JobStatus::Retired {
        runs::cancel_unstarted_runs(
            &txn,
            &[job.id],
            false,
            "job deleted before the run started",
            now,
        )
        .await?;
        PluginJob::update_many()
            .col_expr(PluginJobColumn::Status, Expr::value(JobStatus::Retired))
            .col_expr(
                PluginJobColumn::NextRunAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            // A deleted job's pause ends with it: created again, or declared by a manifest,
            // the key starts active.
            .col_expr(
                PluginJobColumn::PausedAt,
                Expr::value(None::<DateTime<Utc>>),
            )
            .col_expr(PluginJobColumn::UpdatedAt, Expr::value(now))
            .filter(PluginJobColumn::Id.eq(job.id))
            .exec(&txn)
            .await?;
    }
    let retired = find_key(&txn, &job.plugin_id, &job.job_key).await?;
    txn.commit().await?;
    Ok(retired)
}

/// A job created or changed through the API must have a schedule and timezone that parse, a
/// schedule that fires again, and a jitter shorter than its slots' gaps: the caller hears why at
/// once (a manifest's bad schedule instead
/// fails only its job, at load, and `plugin-jobs check` reports one that never fires).
fn require_valid_schedule(job: &JobDeclaration, now: DateTime<Utc>) -> Result<()> {
    match check_schedule(&job.schedule, &job.timezone, job.jitter_ms, now) {
        ScheduleCheck::Invalid(reason) => Err(Error::InvalidInput(reason)),
        ScheduleCheck::Manual | ScheduleCheck::Valid(_) => Ok(()),
    }
}

/// The job, locked, when it was created through the API.
async fn api_job(db: &impl ConnectionTrait, job_id: Uuid) -> Result<PluginJobModel> {
    let job = lock_rows(db, PluginJob::find_by_id(job_id))
        .one(db)
        .await?
        .ok_or_else(|| Error::JobNotFound(job_id.to_string()))?;
    if job.origin != JobOrigin::Api {
        return Err(Error::DeclaredByManifest {
            plugin_id: job.plugin_id,
            job: job.job_key,
        });
    }
    Ok(job)
}

async fn find_key(
    db: &impl ConnectionTrait,
    plugin_id: &str,
    job_key: &str,
) -> Result<PluginJobModel> {
    PluginJob::find()
        .filter(PluginJobColumn::PluginId.eq(plugin_id))
        .filter(PluginJobColumn::JobKey.eq(job_key))
        .one(db)
        .await?
        .ok_or_else(|| Error::JobNotFound(format!("{plugin_id}/{job_key}")))
}

/// One job's refusal names its field without the manifest's `jobs[0].` prefix.
fn strip_index(err: &Error) -> String {
    match err {
        Error::InvalidInput(message) => message.replace("jobs[0].", ""),
        other => other.to_string(),
    }
}
