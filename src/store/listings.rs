//! The paginated listings behind the API: a page of jobs with each job's newest run, and a page
//! of runs filtered by job, plugin, status, trigger and creation time. Each page is read in
//! keyset order (jobs by plugin and key, runs newest first by creation time and id), so a page
//! costs the same at the millionth row as at the first, and the next page starts strictly after
//! the last row of this one whatever was inserted meanwhile.
//!
//! Reads only, on the pool's other connections. The API calls them through a [`StoreReader`],
//! not the `StoreActor`'s mailbox: a message there waits behind every write queued before it
//! (writes hold the mailbox while they run), which at a thousand runs a second put hundreds of
//! milliseconds on a listing whenever the writer fell behind. The same reads are also messages
//! of the `StoreActor`, for callers that hold only its address.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, Select,
};
use uuid::Uuid;

use crate::Result;

/// Where a job listing goes on from: the plugin and key of the last job of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    pub plugin_id: String,
    pub job_key: String,
}

/// Jobs ordered by plugin and key, optionally of one plugin and one status, starting after
/// `after`, at most `limit` of them (all when `None`). With `with_last_run`, each job comes with
/// its newest run, all of them read in one statement.
#[derive(Message, Debug, Clone, Default)]
#[rtype(result = "Result<JobPage>")]
pub struct ListJobPage {
    pub plugin_id: Option<String>,
    pub status: Option<JobStatus>,
    /// `Some(true)`: only the jobs that are `failed` or failing, their last run to reach an
    /// outcome failed (what needs an operator's eye), retired ones left out. `Some(false)`: only
    /// the others. `None`: both.
    pub failing: Option<bool>,
    /// Only the jobs with these keys (of `plugin_id`, when given); empty: any key. At most a
    /// thousand, to stay under the databases' limits on bound parameters.
    pub job_keys: Vec<String>,
    pub after: Option<JobCursor>,
    pub limit: Option<u64>,
    pub with_last_run: bool,
}

/// A page of jobs.
#[derive(Debug, Clone, Default)]
pub struct JobPage {
    /// Each job with its newest run (always `None` unless asked `with_last_run`).
    pub jobs: Vec<(PluginJobModel, Option<PluginJobRunModel>)>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<JobCursor>,
}

/// Where a run listing goes on from: the creation time and id of the last run of the previous
/// page (runs are listed newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

/// Runs, newest first (`created_at`, then `id`, both descending), filtered by every field that
/// is set, starting after `before`, at most `limit` of them.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<RunPage>")]
pub struct ListRunPage {
    pub job_id: Option<Uuid>,
    pub plugin_id: Option<String>,
    pub status: Option<RunStatus>,
    pub trigger: Option<RunTrigger>,
    /// Runs created at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Runs created before this instant.
    pub until: Option<DateTime<Utc>>,
    pub before: Option<RunCursor>,
    pub limit: u64,
}

impl Default for ListRunPage {
    fn default() -> Self {
        Self {
            job_id: None,
            plugin_id: None,
            status: None,
            trigger: None,
            since: None,
            until: None,
            before: None,
            limit: super::ListRuns::DEFAULT_LIMIT,
        }
    }
}

/// A page of runs.
#[derive(Debug, Clone, Default)]
pub struct RunPage {
    pub runs: Vec<PluginJobRunModel>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<RunCursor>,
}

/// How many jobs each plugin has in the database, whatever their status, by plugin id.
#[derive(Message, Debug, Clone, Copy, Default)]
#[rtype(result = "Result<Vec<(String, u64)>>")]
pub struct CountJobsByPlugin;

/// The listing reads on a connection of their own pool, beside the `StoreActor` (see the
/// module's header). Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreReader {
    db: DatabaseConnection,
}

impl StoreReader {
    /// Reads over `db` (the pool the `StoreActor` writes through: a clone shares it).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// See [`ListJobPage`].
    pub async fn list_job_page(&self, msg: ListJobPage) -> Result<JobPage> {
        list_job_page(&self.db, msg).await
    }

    /// See [`ListRunPage`].
    pub async fn list_run_page(&self, msg: ListRunPage) -> Result<RunPage> {
        list_run_page(&self.db, msg).await
    }

    /// See [`CountJobsByPlugin`].
    pub async fn count_jobs_by_plugin(&self) -> Result<Vec<(String, u64)>> {
        count_jobs_by_plugin(&self.db, CountJobsByPlugin).await
    }
}

/// `column` of the newest run of the job in the enclosing query's `plugin_jobs` row: one probe of
/// the `(job_id, created_at, id)` index per job. Plain SQL that SQLite and PostgreSQL read alike.
fn newest_run(column: &str) -> String {
    format!(
        "(SELECT r.{column} FROM plugin_job_runs r WHERE r.job_id = plugin_jobs.id \
         ORDER BY r.created_at DESC, r.id DESC LIMIT 1)"
    )
}

/// The jobs of a page, with the filters, the keyset start and the order, but not the limit.
fn job_page_query(msg: &ListJobPage) -> Select<PluginJob> {
    let mut query = PluginJob::find();
    if let Some(plugin_id) = &msg.plugin_id {
        query = query.filter(PluginJobColumn::PluginId.eq(plugin_id.as_str()));
    }
    if let Some(status) = msg.status {
        query = query.filter(PluginJobColumn::Status.eq(status));
    }
    if !msg.job_keys.is_empty() {
        query =
            query.filter(PluginJobColumn::JobKey.is_in(msg.job_keys.iter().map(String::as_str)));
    }
    match msg.failing {
        // The predicate of the partial index of failing jobs, word for word, so that both
        // databases read that index (in key order) instead of every job.
        Some(true) => {
            query = query
                .filter(Expr::cust(migration::FAILING))
                .filter(PluginJobColumn::Status.ne(JobStatus::Retired));
        }
        Some(false) => {
            query = query.filter(
                Condition::any()
                    .add(Expr::cust(format!("NOT {}", migration::FAILING)))
                    .add(PluginJobColumn::Status.eq(JobStatus::Retired)),
            );
        }
        None => {}
    }
    if let Some(after) = &msg.after {
        // `plugin_id >= p` alone bounds an index range; the rest picks the keys after `k`.
        query = query
            .filter(PluginJobColumn::PluginId.gte(after.plugin_id.as_str()))
            .filter(
                Condition::any()
                    .add(PluginJobColumn::PluginId.gt(after.plugin_id.as_str()))
                    .add(PluginJobColumn::JobKey.gt(after.job_key.as_str())),
            );
    }
    query
        .order_by_asc(PluginJobColumn::PluginId)
        .order_by_asc(PluginJobColumn::JobKey)
}

pub(super) async fn list_job_page(db: &DatabaseConnection, msg: ListJobPage) -> Result<JobPage> {
    // One row more than asked tells whether there is a next page.
    let fetch = msg.limit.map(|limit| limit.saturating_add(1));
    let mut jobs = job_page_query(&msg).limit(fetch).all(db).await?;
    let next = match msg.limit {
        Some(limit) if jobs.len() as u64 > limit => {
            jobs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            jobs.last().map(|job| JobCursor {
                plugin_id: job.plugin_id.clone(),
                job_key: job.job_key.clone(),
            })
        }
        _ => None,
    };
    let mut last_runs = std::collections::HashMap::new();
    if msg.with_last_run && !jobs.is_empty() {
        // The same page again as a subquery, so the statement binds no list of ids however
        // many jobs the page holds.
        let last_run_ids = job_page_query(&msg)
            .select_only()
            .expr(Expr::cust(newest_run("id")))
            .limit(msg.limit)
            .into_query();
        let runs = PluginJobRun::find()
            .filter(PluginJobRunColumn::Id.in_subquery(last_run_ids))
            .all(db)
            .await?;
        last_runs = runs.into_iter().map(|run| (run.job_id, run)).collect();
    }
    Ok(JobPage {
        jobs: jobs
            .into_iter()
            .map(|job| {
                let run = last_runs.remove(&job.id);
                (job, run)
            })
            .collect(),
        next,
    })
}

pub(super) async fn list_run_page(db: &DatabaseConnection, msg: ListRunPage) -> Result<RunPage> {
    let mut query = PluginJobRun::find();
    if let Some(job_id) = msg.job_id {
        query = query.filter(PluginJobRunColumn::JobId.eq(job_id));
    }
    if let Some(plugin_id) = msg.plugin_id {
        query = query.filter(PluginJobRunColumn::PluginId.eq(plugin_id));
    }
    if let Some(status) = msg.status {
        query = query.filter(PluginJobRunColumn::Status.eq(status));
    }
    if let Some(trigger) = msg.trigger {
        query = query.filter(PluginJobRunColumn::Trigger.eq(trigger));
        // The runs a schedule did not start have an index of their own, read only when the
        // query holds its predicate word for word. A job's runs are fewer (its kept history),
        // so a job's listing keeps to the job's index.
        if trigger != RunTrigger::Schedule && msg.job_id.is_none() {
            query = query.filter(Expr::cust(migration::NOT_SCHEDULED));
        }
    }
    if let Some(since) = msg.since {
        query = query.filter(PluginJobRunColumn::CreatedAt.gte(since));
    }
    if let Some(until) = msg.until {
        query = query.filter(PluginJobRunColumn::CreatedAt.lt(until));
    }
    if let Some(before) = msg.before {
        // The cursor's instant is bound exactly as it was read, so `=` finds the rows that
        // share it; `created_at <= c` alone bounds the index range.
        query = query
            .filter(PluginJobRunColumn::CreatedAt.lte(before.created_at))
            .filter(
                Condition::any()
                    .add(PluginJobRunColumn::CreatedAt.lt(before.created_at))
                    .add(PluginJobRunColumn::Id.lt(before.id)),
            );
    }
    let mut runs = query
        .order_by_desc(PluginJobRunColumn::CreatedAt)
        .order_by_desc(PluginJobRunColumn::Id)
        .limit(msg.limit.saturating_add(1))
        .all(db)
        .await?;
    let next = if runs.len() as u64 > msg.limit {
        runs.truncate(usize::try_from(msg.limit).unwrap_or(usize::MAX));
        runs.last().map(|run| RunCursor {
            created_at: run.created_at,
            id: run.id,
        })
    } else {
        None
    };
    Ok(RunPage { runs, next })
}

pub(super) async fn count_jobs_by_plugin(
    db: &DatabaseConnection,
    _msg: CountJobsByPlugin,
) -> Result<Vec<(String, u64)>> {
    let counts: Vec<(String, i64)> = PluginJob::find()
        .select_only()
        .column(PluginJobColumn::PluginId)
        .column_as(PluginJobColumn::Id.count(), "count")
        .group_by(PluginJobColumn::PluginId)
        .order_by_asc(PluginJobColumn::PluginId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(counts
        .into_iter()
        .map(|(plugin, count)| (plugin, u64::try_from(count).unwrap_or(0)))
        .collect())
}
