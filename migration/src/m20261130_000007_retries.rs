//! Retries with backoff: each job's retry policy (`retry_max_attempts`, `retry_backoff_ms`,
//! `retry_max_backoff_ms`), each run's `attempt` and `retry_of` (the first run of its slot), and
//! `plugin_job_retries`, the durable record of every retry a failed run asked for: pending until
//! it is due, then `started` (with the run it created), `superseded` (the job's next slot came
//! first) or `cancelled` (the job stopped being active). One row per failed run, deleted with it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per `ALTER TABLE`.
        let job_columns = [
            ColumnDef::new(PluginJobs::RetryMaxAttempts)
                .integer()
                .not_null()
                .default(1)
                .to_owned(),
            ColumnDef::new(PluginJobs::RetryBackoffMs)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(PluginJobs::RetryMaxBackoffMs)
                .big_integer()
                .null()
                .to_owned(),
        ];
        for mut column in job_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(PluginJobs::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let run_columns = [
            ColumnDef::new(PluginJobRuns::Attempt)
                .integer()
                .not_null()
                .default(1)
                .to_owned(),
            ColumnDef::new(PluginJobRuns::RetryOf)
                .uuid()
                .null()
                .to_owned(),
        ];
        for mut column in run_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(PluginJobRuns::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(PluginJobRetries::Table)
                    .col(
                        ColumnDef::new(PluginJobRetries::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PluginJobRetries::JobId).uuid().not_null())
                    .col(ColumnDef::new(PluginJobRetries::PluginId).text().not_null())
                    .col(
                        ColumnDef::new(PluginJobRetries::FailedRunId)
                            .uuid()
                            .not_null()
                            .unique_key(),
                    )
                    .col(ColumnDef::new(PluginJobRetries::RetryOf).uuid().not_null())
                    .col(
                        ColumnDef::new(PluginJobRetries::Attempt)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobRetries::ScheduledFor)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobRetries::DueAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PluginJobRetries::Status).text().not_null())
                    .col(ColumnDef::new(PluginJobRetries::Reason).text().null())
                    .col(ColumnDef::new(PluginJobRetries::RunId).uuid().null())
                    .col(
                        ColumnDef::new(PluginJobRetries::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobRetries::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_plugin_job_retries_job")
                            .from(PluginJobRetries::Table, PluginJobRetries::JobId)
                            .to(PluginJobs::Table, PluginJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_plugin_job_retries_failed_run")
                            .from(PluginJobRetries::Table, PluginJobRetries::FailedRunId)
                            .to(PluginJobRuns::Table, PluginJobRuns::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_plugin_job_retries_status_due_at")
                    .table(PluginJobRetries::Table)
                    .col(PluginJobRetries::Status)
                    .col(PluginJobRetries::DueAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PluginJobRetries::Table).to_owned())
            .await?;
        for column in [PluginJobRuns::Attempt, PluginJobRuns::RetryOf] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PluginJobRuns::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            PluginJobs::RetryMaxAttempts,
            PluginJobs::RetryBackoffMs,
            PluginJobs::RetryMaxBackoffMs,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(PluginJobs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum PluginJobs {
    Table,
    Id,
    RetryMaxAttempts,
    RetryBackoffMs,
    RetryMaxBackoffMs,
}

#[derive(DeriveIden)]
enum PluginJobRuns {
    Table,
    Id,
    Attempt,
    RetryOf,
}

#[derive(DeriveIden)]
enum PluginJobRetries {
    Table,
    Id,
    JobId,
    PluginId,
    FailedRunId,
    RetryOf,
    Attempt,
    ScheduledFor,
    DueAt,
    Status,
    Reason,
    RunId,
    CreatedAt,
    UpdatedAt,
}
