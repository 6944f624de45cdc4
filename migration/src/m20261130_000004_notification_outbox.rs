//! Creates `plugin_job_notifications`, the durable outbox of webhook deliveries: one row per
//! event and destination, deleted once delivered or given up.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PluginJobNotifications::Table)
                    .col(
                        ColumnDef::new(PluginJobNotifications::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::EventId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::EventType)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::Url)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::Body)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::NextAttemptAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::ClaimedBy)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::ClaimedUntil)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::LastError)
                            .text()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(PluginJobNotifications::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_plugin_job_notifications_next_attempt_at")
                    .table(PluginJobNotifications::Table)
                    .col(PluginJobNotifications::NextAttemptAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(PluginJobNotifications::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum PluginJobNotifications {
    Table,
    Id,
    EventId,
    EventType,
    Url,
    Body,
    Attempts,
    NextAttemptAt,
    ClaimedBy,
    ClaimedUntil,
    LastError,
    CreatedAt,
}
