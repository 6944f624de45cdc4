//! Indexes the runs that a schedule did not start (`manual`, `retry`, `backfill`) by trigger
//! and creation: `("trigger", created_at, id)` where the trigger is not `schedule`.
//!
//! `GET /api/runs?trigger=backfill` had no index to read: it walked the runs newest first
//! through `(created_at, id)` and kept those of the trigger, so a trigger with no runs read the
//! whole table (1.3–3.9 s a page at 1,000,000 runs on SQLite). Scheduled runs are most of the
//! table and the cheap case of that walk, so the index leaves them out: a claim's insert never
//! writes it, and it holds only the runs an operator or a retry started.
//!
//! A query uses the index only when its `WHERE` holds [`NOT_SCHEDULED`] itself (SQLite matches
//! a partial index's predicate by its expression, and PostgreSQL cannot prove it from a bound
//! trigger), so the store adds the constant beside the trigger it filters by.

use sea_orm_migration::prelude::*;

/// The runs a schedule did not start: the predicate of `ix_plugin_job_runs_trigger_created_id`.
pub const NOT_SCHEDULED: &str = "\"trigger\" <> 'schedule'";

const INDEX: &str = "ix_plugin_job_runs_trigger_created_id";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A partial index is written as SQL: SQLite and PostgreSQL accept the same text.
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX {INDEX} ON plugin_job_runs (\"trigger\", created_at, id) \
                 WHERE {NOT_SCHEDULED}"
            ))
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!("DROP INDEX {INDEX}"))
            .await
            .map(|_| ())
    }
}
