//! The crate's error type. A job's failure is data on its run row, not an `Error`; these are the
//! errors that start-up, the store and the API return to their callers.

use sea_orm::DbErr;
use uuid::Uuid;

use crate::config::ConfigError;
use crate::cron::CronError;

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong when calling into plugin-jobs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
    /// An actor could not be reached (stopped, or its mailbox is closed).
    #[error("actor unavailable: {0}")]
    Mailbox(#[from] actix::MailboxError),
    /// No job has that id (or that key within the plugin).
    #[error("Job not found: {0}")]
    JobNotFound(String),
    /// No run has that id.
    #[error("Run not found: {0}")]
    RunNotFound(Uuid),
    /// No plugin with that id is registered.
    #[error("Plugin not found: {0}")]
    PluginNotFound(String),
    /// The job exists but is paused, failed or retired.
    #[error("Job {job} is not active (status: {status})")]
    JobNotActive { job: String, status: String },
    /// The job has a live (queued or running) run, or is blocked by a timed-out call.
    #[error("Job {job} is already running{detail}")]
    AlreadyRunning { job: String, detail: String },
    /// The plugin's worker is not running, so its jobs cannot be dispatched.
    #[error("Worker for plugin {0} is not running")]
    WorkerNotRunning(String),
    /// A job declaration or another input was rejected; the message names the field.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A cron expression or timezone was rejected.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// A scheduler setting breaks a rule; the message names the setting and the rule.
    #[error("invalid setting {0}")]
    Config(#[from] ConfigError),
    /// The scheduler is shutting down and takes no new work.
    #[error("scheduler is shutting down")]
    ShuttingDown,
}
