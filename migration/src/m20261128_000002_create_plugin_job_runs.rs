//! Creates `plugin_job_runs` and its indexes, including the two partial unique indexes that make
//! the scheduling guarantees hold across processes: at most one live run per job, and each
//! scheduled slot of a job at most once.

use sea_orm_migration::prelude::*;

use crate::m20261128_000001_create_plugin_jobs::PluginJobs;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Partial indexes are written as SQL: SQLite and PostgreSQL accept the same text.
const PARTIAL_UNIQUE_INDEXES: [&str; 2] = [
    "CREATE UNIQUE INDEX ux_plugin_job_runs_one_live_per_job \
     ON plugin_job_runs (job_id) WHERE status IN ('queued', 'running')",
    "CREATE UNIQUE INDEX ux_plugin_job_runs_one_per_slot \
     ON plugin_job_runs (job_id, scheduled_for) WHERE \"trigger\" = 'schedule'",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PluginJobRuns::Table)
                    .col(
                        ColumnDef::new(PluginJobRuns::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PluginJobRuns::JobId).uuid().not_null())
                    .col(ColumnDef::new(PluginJobRuns::PluginId).text().not_null())
                    .col(ColumnDef::new(PluginJobRuns::Trigger).text().not_null())
                    .col(ColumnDef::new(PluginJobRuns::Status).text().not_null())
                    .col(
                        ColumnDef::new(PluginJobRuns::ScheduledFor)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PluginJobRuns::InstanceId).text().null())
                    .col(
                        ColumnDef::new(PluginJobRuns::HeartbeatAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobRuns::DurationMs)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(PluginJobRuns::Error).text().null())
                    .col(ColumnDef::new(PluginJobRuns::Logs).json().not_null())
                    .col(
                        ColumnDef::new(PluginJobRuns::StartedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobRuns::FinishedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobRuns::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_plugin_job_runs_job_id")
                            .from(PluginJobRuns::Table, PluginJobRuns::JobId)
                            .to(PluginJobs::Table, PluginJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let indexes = [
            (
                "ix_plugin_job_runs_job_created",
                vec![PluginJobRuns::JobId, PluginJobRuns::CreatedAt],
            ),
            (
                "ix_plugin_job_runs_plugin_id",
                vec![PluginJobRuns::PluginId],
            ),
            (
                "ix_plugin_job_runs_status_heartbeat",
                vec![PluginJobRuns::Status, PluginJobRuns::HeartbeatAt],
            ),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.name(name).table(PluginJobRuns::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index).await?;
        }
        let db = manager.get_connection();
        for sql in PARTIAL_UNIQUE_INDEXES {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PluginJobRuns::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum PluginJobRuns {
    Table,
    Id,
    JobId,
    PluginId,
    Trigger,
    Status,
    ScheduledFor,
    InstanceId,
    HeartbeatAt,
    DurationMs,
    Error,
    Logs,
    StartedAt,
    FinishedAt,
    CreatedAt,
}
