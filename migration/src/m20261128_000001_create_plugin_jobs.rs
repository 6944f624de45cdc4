//! Creates `plugin_jobs` with its unique `(plugin_id, job_key)` and its due-scan index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PluginJobs::Table)
                    .col(
                        ColumnDef::new(PluginJobs::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(PluginJobs::PluginId).text().not_null())
                    .col(ColumnDef::new(PluginJobs::JobKey).text().not_null())
                    .col(ColumnDef::new(PluginJobs::DisplayName).text().not_null())
                    .col(ColumnDef::new(PluginJobs::Description).text().not_null())
                    .col(ColumnDef::new(PluginJobs::Schedule).text().not_null())
                    .col(
                        ColumnDef::new(PluginJobs::Timezone)
                            .text()
                            .not_null()
                            .default("UTC"),
                    )
                    .col(ColumnDef::new(PluginJobs::Status).text().not_null())
                    .col(ColumnDef::new(PluginJobs::TimeoutMs).big_integer().null())
                    .col(
                        ColumnDef::new(PluginJobs::Misfire)
                            .text()
                            .not_null()
                            .default("fire_once"),
                    )
                    .col(ColumnDef::new(PluginJobs::LastError).text().null())
                    .col(
                        ColumnDef::new(PluginJobs::BlockedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobs::LastRunAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobs::NextRunAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobs::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobs::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_plugin_jobs_plugin_job_key")
                    .table(PluginJobs::Table)
                    .col(PluginJobs::PluginId)
                    .col(PluginJobs::JobKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_plugin_jobs_status_next_run_at")
                    .table(PluginJobs::Table)
                    .col(PluginJobs::Status)
                    .col(PluginJobs::NextRunAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_plugin_jobs_plugin_id")
                    .table(PluginJobs::Table)
                    .col(PluginJobs::PluginId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(PluginJobs::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
pub enum PluginJobs {
    Table,
    Id,
    PluginId,
    JobKey,
    DisplayName,
    Description,
    Schedule,
    Timezone,
    Status,
    TimeoutMs,
    Misfire,
    LastError,
    BlockedUntil,
    LastRunAt,
    NextRunAt,
    CreatedAt,
    UpdatedAt,
}
