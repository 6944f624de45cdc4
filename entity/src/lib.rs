//! sea-orm entities of plugin-jobs: the `plugin_jobs` table (one row per declared job), the
//! `plugin_job_runs` table (one row per run) and the `plugin_job_notifications` outbox of webhook
//! deliveries, the `plugin_job_retries` a failed run asked for, with the enums their text columns hold.

pub mod plugin_job;
pub mod plugin_job_backfill;
pub mod plugin_job_notification;
pub mod plugin_job_retry;
pub mod plugin_job_run;
pub mod prelude;
pub mod sea_orm_active_enums;
