//! Adds `failing` to `plugin_jobs`: whether the job's last attempt to reach an outcome failed.
//! The run outcome that fails or succeeds sets it in the same transaction, so the API's
//! `failing=true` listing reads an index of the failing jobs instead of probing every job's
//! newest run (0.6 s a page at a million jobs when few fail). Runs that are live or cancelled
//! do not change it: a failing job stays failing while its next run is queued or running, and
//! when a pause cancels the runs claimed ahead of it.
//!
//! The partial index holds the jobs [`FAILING`] selects, in the listings' order; a query uses it
//! only when its `WHERE` holds that very expression (SQLite matches a partial index's predicate
//! by its text), so the store filters with the constant.

use sea_orm_migration::prelude::*;

/// The jobs that need an operator's eye: failing, or `failed` themselves (their schedule is
/// invalid). The predicate of `ix_plugin_jobs_failing`.
pub const FAILING: &str = "(failing OR status = 'failed')";

const INDEX: &str = "ix_plugin_jobs_failing";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobs::Table)
                    .add_column(
                        ColumnDef::new(PluginJobs::Failing)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Jobs with a history: failing when the newest of their runs that reached an outcome
        // failed (one probe of the `(job_id, created_at, id)` index per job).
        db.execute_unprepared(
            "UPDATE plugin_jobs SET failing = TRUE WHERE \
             (SELECT r.status FROM plugin_job_runs r \
              WHERE r.job_id = plugin_jobs.id AND r.status IN ('succeeded', 'failed') \
              ORDER BY r.created_at DESC, r.id DESC LIMIT 1) = 'failed'",
        )
        .await?;
        db.execute_unprepared(&format!(
            "CREATE INDEX {INDEX} ON plugin_jobs (plugin_id, job_key) WHERE {FAILING}"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(PluginJobs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobs::Table)
                    .drop_column(PluginJobs::Failing)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PluginJobs {
    Table,
    Failing,
}
