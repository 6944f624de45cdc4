//! Schema migrations of plugin-jobs. The migration table is `plugin_jobs_migrations`, so it
//! never collides with a host application's own `seaql_migrations`. A migration that has
//! landed is never edited: add a new one.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_create_plugin_jobs;
mod m20261128_000002_create_plugin_job_runs;
mod m20261130_000003_job_health;
mod m20261130_000004_notification_outbox;
mod m20261130_000005_index_runs_by_age;
mod m20261130_000006_add_run_traceparent;
mod m20261130_000007_retries;
mod m20261130_000008_index_listings;
mod m20261130_000009_job_policies;
mod m20261130_000010_backfills;
mod m20261130_000011_index_due_by_plugin;
mod m20261130_000012_lighter_writes;
mod m20261201_000013_index_jittered_due;
mod m20261202_000014_job_bookkeeping;
mod m20261202_000015_paused_at;
mod m20261203_000016_failing_jobs;
mod m20261203_000017_index_runs_by_trigger;

pub use m20261203_000016_failing_jobs::FAILING;
pub use m20261203_000017_index_runs_by_trigger::NOT_SCHEDULED;

/// Applies every migration of plugin-jobs, in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migration_table_name() -> DynIden {
        "plugin_jobs_migrations".into_iden()
    }

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_create_plugin_jobs::Migration),
            Box::new(m20261128_000002_create_plugin_job_runs::Migration),
            Box::new(m20261130_000003_job_health::Migration),
            Box::new(m20261130_000004_notification_outbox::Migration),
            Box::new(m20261130_000005_index_runs_by_age::Migration),
            Box::new(m20261130_000006_add_run_traceparent::Migration),
            Box::new(m20261130_000007_retries::Migration),
            Box::new(m20261130_000008_index_listings::Migration),
            Box::new(m20261130_000009_job_policies::Migration),
            Box::new(m20261130_000010_backfills::Migration),
            Box::new(m20261130_000011_index_due_by_plugin::Migration),
            Box::new(m20261130_000012_lighter_writes::Migration),
            Box::new(m20261201_000013_index_jittered_due::Migration),
            Box::new(m20261202_000014_job_bookkeeping::Migration),
            Box::new(m20261202_000015_paused_at::Migration),
            Box::new(m20261203_000016_failing_jobs::Migration),
            Box::new(m20261203_000017_index_runs_by_trigger::Migration),
        ]
    }
}
