//! Adds the failure bookkeeping of a job to `plugin_jobs`: its auto-pause threshold, its
//! current streak of failed runs, when it last succeeded, and why it was paused.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per `ALTER TABLE`.
        let columns = [
            ColumnDef::new(PluginJobs::PauseAfterFailures)
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new(PluginJobs::ConsecutiveFailures)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(PluginJobs::LastSuccessAt)
                .timestamp_with_time_zone()
                .null()
                .to_owned(),
            ColumnDef::new(PluginJobs::PausedReason)
                .text()
                .null()
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(PluginJobs::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            PluginJobs::PauseAfterFailures,
            PluginJobs::ConsecutiveFailures,
            PluginJobs::LastSuccessAt,
            PluginJobs::PausedReason,
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
    PauseAfterFailures,
    ConsecutiveFailures,
    LastSuccessAt,
    PausedReason,
}
