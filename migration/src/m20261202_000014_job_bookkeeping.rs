//! Adds two pieces of bookkeeping to `plugin_jobs`:
//!
//! - `unrecovered_failures`: the failed runs of a streak that a resume cleared and no success
//!   has answered yet. A resume starts the streak that pauses a job again from zero, but the
//!   first success after it still reports `job.recovered`, with these failures.
//! - `pruned_through`: the newest slot of the job whose run (scheduled or backfilled) the prune
//!   deleted. Whether a slot at or before it ran can no longer be told from the history, so a
//!   backfill never replays it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one column per `ALTER TABLE`.
        let columns = [
            ColumnDef::new(PluginJobs::UnrecoveredFailures)
                .integer()
                .not_null()
                .default(0)
                .to_owned(),
            ColumnDef::new(PluginJobs::PrunedThrough)
                .timestamp_with_time_zone()
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
        for column in [PluginJobs::UnrecoveredFailures, PluginJobs::PrunedThrough] {
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
    UnrecoveredFailures,
    PrunedThrough,
}
