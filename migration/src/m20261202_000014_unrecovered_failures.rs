//! Adds `unrecovered_failures` to `plugin_jobs`: the failed runs of a streak that a resume
//! cleared and no success has answered yet. A resume starts the streak that pauses a job again
//! from zero, but the first success after it still reports `job.recovered`, with these failures.

use sea_orm_migration::prelude::*;

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
                        ColumnDef::new(PluginJobs::UnrecoveredFailures)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobs::Table)
                    .drop_column(PluginJobs::UnrecoveredFailures)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PluginJobs {
    Table,
    UnrecoveredFailures,
}
