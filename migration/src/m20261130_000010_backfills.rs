//! Backfill: `plugin_job_backfills` holds each slot an operator asked to replay, `pending` until
//! its run is created (`started`, with `run_id`) or the request is `cancelled`. One row per job
//! and slot, so two requests over the same range never replay a slot twice; and runs of trigger
//! `backfill` are unique per job and slot, as scheduled runs are.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UNIQUE_BACKFILL_SLOT: &str = "CREATE UNIQUE INDEX ux_plugin_job_runs_backfill_slot \
     ON plugin_job_runs (job_id, scheduled_for) WHERE \"trigger\" = 'backfill'";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PluginJobBackfills::Table)
                    .col(
                        ColumnDef::new(PluginJobBackfills::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PluginJobBackfills::JobId).uuid().not_null())
                    .col(
                        ColumnDef::new(PluginJobBackfills::PluginId)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobBackfills::ScheduledFor)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(PluginJobBackfills::Status).text().not_null())
                    .col(ColumnDef::new(PluginJobBackfills::RunId).uuid().null())
                    .col(
                        ColumnDef::new(PluginJobBackfills::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobBackfills::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_plugin_job_backfills_job")
                            .from(PluginJobBackfills::Table, PluginJobBackfills::JobId)
                            .to(PluginJobs::Table, PluginJobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_plugin_job_backfills_job_slot")
                    .table(PluginJobBackfills::Table)
                    .col(PluginJobBackfills::JobId)
                    .col(PluginJobBackfills::ScheduledFor)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_plugin_job_backfills_status_slot")
                    .table(PluginJobBackfills::Table)
                    .col(PluginJobBackfills::Status)
                    .col(PluginJobBackfills::ScheduledFor)
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(UNIQUE_BACKFILL_SLOT)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS ux_plugin_job_runs_backfill_slot")
            .await?;
        manager
            .drop_table(Table::drop().table(PluginJobBackfills::Table).to_owned())
            .await?;
        Ok(())
    }
}

#[derive(DeriveIden)]
enum PluginJobs {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum PluginJobBackfills {
    Table,
    Id,
    JobId,
    PluginId,
    ScheduledFor,
    Status,
    RunId,
    CreatedAt,
    UpdatedAt,
}
