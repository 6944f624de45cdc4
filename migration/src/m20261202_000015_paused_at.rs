//! Adds `paused_at` to `plugin_jobs`: when the job was paused (by an operator, or after too many
//! failed runs), cleared by a resume. The status alone forgets a pause once the job goes
//! `failed` (its manifest declares a bad schedule) or `retired` (its manifest drops it); this
//! column outlives both, so the job comes back paused when it is declared again.

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
                        ColumnDef::new(PluginJobs::PausedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        // Jobs paused before this migration: their pause dates from their last change.
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE plugin_jobs SET paused_at = updated_at WHERE status = 'paused'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(PluginJobs::Table)
                    .drop_column(PluginJobs::PausedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PluginJobs {
    Table,
    PausedAt,
}
