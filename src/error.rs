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
    /// The job exists but is paused, failed or retired, so it cannot be what `action` says
    /// (`triggered`, `paused`, …).
    #[error("Job {job} is {status}, so it cannot be {action}")]
    JobNotActive {
        job: String,
        status: String,
        action: &'static str,
    },
    /// The run has its outcome already, so there is nothing to cancel.
    #[error("Run {run} has already ended ({status}), so it cannot be cancelled")]
    RunEnded { run: Uuid, status: String },
    /// Another cancellation of the run is on its way.
    #[error("Run {0} is being cancelled already")]
    RunCancelling(Uuid),
    /// The run is live on another instance, which alone can stop its call.
    #[error(
        "Run {run} runs on instance {instance}: cancel it through that server (if it is gone, the \
         run can be cancelled from any server once its lease lapses, or is failed as abandoned)"
    )]
    RunElsewhere { run: Uuid, instance: String },
    /// The job has a live (queued or running) run, or is blocked by a timed-out call.
    #[error("Job {job} is already running{detail}")]
    AlreadyRunning { job: String, detail: String },
    /// The plugin's worker is not running, so its jobs cannot be dispatched.
    #[error("Job {job} of plugin {plugin_id} already exists (origin: {origin})")]
    JobExists {
        plugin_id: String,
        job: String,
        origin: String,
    },

    #[error(
        "Job {job} is declared in the manifest of plugin {plugin_id}: change or remove it there"
    )]
    DeclaredByManifest { plugin_id: String, job: String },

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
    /// The database cannot be opened or reached; the message names it and says why.
    #[error("{0}")]
    Unreachable(String),
    /// The scheduler is shutting down and takes no new work.
    #[error("scheduler is shutting down")]
    ShuttingDown,
}

impl Error {
    /// Whether the same write can succeed if tried again later: the connection was lost, the
    /// pool had no connection in time, the database is starting or shutting down, or a
    /// transaction lost a serialization or deadlock race. Everything else (a constraint, a value
    /// the database rejects, a bug) fails the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) => db_err_is_transient(err),
            _ => false,
        }
    }

    /// Whether the database pool was closed: the server is stopping, and a background pass that
    /// fails on it is no error.
    pub fn is_pool_closed(&self) -> bool {
        use sea_orm::{ConnAcquireErr, RuntimeErr, SqlxError};
        match self {
            Self::Database(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)) => true,
            Self::Database(
                DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)),
            ) => matches!(**err, SqlxError::PoolClosed),
            _ => false,
        }
    }

    /// The level at which a background pass (retries, heartbeats, rescue, prune, webhooks) logs
    /// its failure: `debug` for a pool closed by the shutdown, `error` otherwise.
    pub fn pass_level(&self) -> log::Level {
        if self.is_pool_closed() {
            log::Level::Debug
        } else {
            log::Level::Error
        }
    }
}

fn db_err_is_transient(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)) => {
            sqlx_err_is_transient(err)
        }
        _ => false,
    }
}

fn sqlx_err_is_transient(err: &sea_orm::SqlxError) -> bool {
    use sea_orm::SqlxError;
    match err {
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::Protocol(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed => true,
        SqlxError::Database(db) => match db.code() {
            // PostgreSQL: connection exceptions (08), insufficient resources (53), operator
            // intervention such as a restart (57P), serialization failure, deadlock, lock timeout.
            Some(code)
                if db
                    .try_downcast_ref::<sea_orm::SqlxPostgresError>()
                    .is_some() =>
            {
                code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || matches!(code.as_ref(), "40001" | "40P01" | "55P03")
            }
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
            Some(code) => code
                .parse::<i32>()
                .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
            None => text_is_transient(db.message()),
        },
        _ => false,
    }
}

fn text_is_transient(text: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "database is locked",
        "database is busy",
        "connection",
        "pool timed out",
        "terminating",
        "the database system is",
    ];
    let text = text.to_ascii_lowercase();
    MARKERS.iter().any(|marker| text.contains(marker))
}
