//! Indexes for the API's paginated listings. Runs are listed newest first by
//! `(created_at, id)`, alone or by job, plugin or status: each of those gets an index that ends
//! in `created_at, id`, so a page is one index range read backwards, whatever the table holds.
//! They replace the narrower `(job_id, created_at)`, `(plugin_id)` and `(created_at)` indexes
//! (every query those served, the prune included, is served by the wider ones), so a run insert
//! maintains one index more than before, not four. Jobs filtered by status are listed through
//! `(status, plugin_id, job_key)`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The indexes this migration replaces: (name, columns), as the earlier migrations made them.
const REPLACED: [(&str, &[PluginJobRuns]); 3] = [
    (
        "ix_plugin_job_runs_job_created",
        &[PluginJobRuns::JobId, PluginJobRuns::CreatedAt],
    ),
    ("ix_plugin_job_runs_plugin_id", &[PluginJobRuns::PluginId]),
    ("ix_plugin_job_runs_created", &[PluginJobRuns::CreatedAt]),
];

/// The run indexes this migration creates.
const CREATED: [(&str, &[PluginJobRuns]); 4] = [
    (
        "ix_plugin_job_runs_created_id",
        &[PluginJobRuns::CreatedAt, PluginJobRuns::Id],
    ),
    (
        "ix_plugin_job_runs_job_created_id",
        &[
            PluginJobRuns::JobId,
            PluginJobRuns::CreatedAt,
            PluginJobRuns::Id,
        ],
    ),
    (
        "ix_plugin_job_runs_plugin_created_id",
        &[
            PluginJobRuns::PluginId,
            PluginJobRuns::CreatedAt,
            PluginJobRuns::Id,
        ],
    ),
    (
        "ix_plugin_job_runs_status_created_id",
        &[
            PluginJobRuns::Status,
            PluginJobRuns::CreatedAt,
            PluginJobRuns::Id,
        ],
    ),
];

const JOBS_BY_STATUS: &str = "ix_plugin_jobs_status_plugin_key";

fn run_index(name: &str, columns: &[PluginJobRuns]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(PluginJobRuns::Table);
    for column in columns {
        index.col(*column);
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, columns) in CREATED {
            manager.create_index(run_index(name, columns)).await?;
        }
        for (name, _) in REPLACED {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(PluginJobRuns::Table)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(JOBS_BY_STATUS)
                    .table(PluginJobs::Table)
                    .col(PluginJobs::Status)
                    .col(PluginJobs::PluginId)
                    .col(PluginJobs::JobKey)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(JOBS_BY_STATUS)
                    .table(PluginJobs::Table)
                    .to_owned(),
            )
            .await?;
        for (name, columns) in REPLACED {
            manager.create_index(run_index(name, columns)).await?;
        }
        for (name, _) in CREATED {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(PluginJobRuns::Table)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden, Clone, Copy)]
enum PluginJobRuns {
    Table,
    Id,
    JobId,
    PluginId,
    Status,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PluginJobs {
    Table,
    PluginId,
    JobKey,
    Status,
}
