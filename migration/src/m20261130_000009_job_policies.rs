//! Schedules at runtime and per-job policies: where a job comes from (`origin`: `manifest` or
//! `api`), the JSON `payload` its runs carry, its `overlap` policy (`skip`, `queue_one`,
//! `cancel_previous`), its start `jitter_ms` and its own `misfire_grace_ms`; and on each run the
//! `payload` it was started with (the job's, or a trigger's one-off payload).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per `ALTER TABLE`.
        let job_columns = [
            ColumnDef::new(PluginJobs::Origin)
                .text()
                .not_null()
                .default("manifest")
                .to_owned(),
            ColumnDef::new(PluginJobs::Payload).json().null().to_owned(),
            ColumnDef::new(PluginJobs::Overlap)
                .text()
                .not_null()
                .default("skip")
                .to_owned(),
            ColumnDef::new(PluginJobs::JitterMs)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(PluginJobs::MisfireGraceMs)
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
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobRuns::Table)
                    .add_column(ColumnDef::new(PluginJobRuns::Payload).json().null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobRuns::Table)
                    .drop_column(PluginJobRuns::Payload)
                    .to_owned(),
            )
            .await?;
        for column in [
            PluginJobs::Origin,
            PluginJobs::Payload,
            PluginJobs::Overlap,
            PluginJobs::JitterMs,
            PluginJobs::MisfireGraceMs,
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
    Origin,
    Payload,
    Overlap,
    JitterMs,
    MisfireGraceMs,
}

#[derive(DeriveIden)]
enum PluginJobRuns {
    Table,
    Payload,
}
