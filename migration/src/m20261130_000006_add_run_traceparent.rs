//! Adds `plugin_job_runs.traceparent`: each run's W3C trace context, sent to its worker.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobRuns::Table)
                    .add_column(ColumnDef::new(PluginJobRuns::Traceparent).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobRuns::Table)
                    .drop_column(PluginJobRuns::Traceparent)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PluginJobRuns {
    Table,
    Traceparent,
}
