//! Indexes `plugin_job_runs` by `created_at`, so the retention prune deletes the oldest finished
//! runs in bounded batches straight from the index instead of scanning the table.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_plugin_job_runs_created")
                    .table(PluginJobRuns::Table)
                    .col(PluginJobRuns::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_plugin_job_runs_created")
                    .table(PluginJobRuns::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PluginJobRuns {
    Table,
    CreatedAt,
}
