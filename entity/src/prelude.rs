//! The entities and enums under their short names.

pub use super::plugin_job::{
    ActiveModel as PluginJobActiveModel, Column as PluginJobColumn, Entity as PluginJob,
    Model as PluginJobModel,
};
pub use super::plugin_job_backfill::{
    ActiveModel as BackfillActiveModel, Column as BackfillColumn, Entity as Backfill,
    Model as BackfillModel,
};
pub use super::plugin_job_notification::{
    ActiveModel as NotificationActiveModel, Column as NotificationColumn, Entity as Notification,
    Model as NotificationModel,
};
pub use super::plugin_job_retry::{
    ActiveModel as RetryActiveModel, Column as RetryColumn, Entity as Retry, Model as RetryModel,
};
pub use super::plugin_job_run::{
    ActiveModel as PluginJobRunActiveModel, Column as PluginJobRunColumn, Entity as PluginJobRun,
    Model as PluginJobRunModel,
};
pub use super::sea_orm_active_enums::{
    BackfillStatus, JobOrigin, JobStatus, MisfirePolicy, OverlapPolicy, RetryStatus, RunStatus,
    RunTrigger,
};
