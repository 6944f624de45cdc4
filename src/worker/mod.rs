//! How the scheduler reaches the programs that run jobs. [`WorkerManager`] is the seam: the
//! scheduler asks whether a plugin's worker is running, calls `runJob` with a timeout, sends
//! `cancelJob`, and asks for a restart after a call that never answered.
//!
//! [`InProcessWorkers`] runs jobs as async handlers inside the host process (tests, and
//! applications that embed plugin-jobs with their own Rust jobs). [`ProcessWorkers`] runs each
//! plugin as a child process speaking JSON-RPC over stdio ([`rpc`]), one [`WorkerActor`] per
//! process. [`sdk`] is the other side: a small library for writing such workers in Rust.

mod connection;
pub mod demo;
pub mod guard;
mod in_process;
mod process;
pub mod rpc;
pub mod sdk;

use std::fmt::Debug;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

pub use in_process::{InProcessWorkers, JobContext, JobHandler};
pub use process::{PluginProcess, ProcessWorkerConfig, ProcessWorkers, WorkerActor, restart_delay};

/// JSON-RPC error codes of the worker protocol.
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The worker is not running, or exited.
    pub const WORKER_UNAVAILABLE: i64 = -32000;
    /// The job's handler failed.
    pub const WORKER_ERROR: i64 = -32002;
    /// The call timed out.
    pub const TIMEOUT: i64 = -32003;
}

/// A failed worker call: a JSON-RPC error code and the worker's message, which becomes the run's
/// `error` as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WorkerError {
    pub code: i64,
    pub message: String,
}

impl WorkerError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The job's handler failed with `message`.
    pub fn job_failed(message: impl Into<String>) -> Self {
        Self::new(codes::WORKER_ERROR, message)
    }

    /// The plugin's worker is not there to take the call.
    pub fn unavailable(plugin_id: &str) -> Self {
        Self::new(
            codes::WORKER_UNAVAILABLE,
            format!("Worker for plugin {plugin_id} is not running"),
        )
    }
}

/// What an operator sees of a plugin's worker (`workerStatus` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Spawned, handshake not finished yet.
    Starting,
    /// Takes calls.
    Running,
    /// Exited or restarted; waiting out its backoff before the next start.
    Restarting,
    /// Crashed too often and given up on, or failed to start; see the host's log.
    Failed,
    /// Not started, stopped, or unknown to this manager.
    Stopped,
}

impl WorkerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scheduler's view of the workers. Implementations must be cheap to share across actors.
pub trait WorkerManager: Send + Sync + Debug + 'static {
    /// True when the plugin's worker can take calls now.
    fn is_running(&self, plugin_id: &str) -> bool;

    /// The worker's state for operators. The default derives it from [`Self::is_running`].
    fn status(&self, plugin_id: &str) -> WorkerStatus {
        if self.is_running(plugin_id) {
            WorkerStatus::Running
        } else {
            WorkerStatus::Stopped
        }
    }

    /// How many times the plugin's worker was restarted (after a crash, or on request) since it
    /// was first started: a counter for operators. The default knows of none.
    fn restarts(&self, _plugin_id: &str) -> u64 {
        0
    }

    /// Takes the `log` lines the worker sent for a run, as the JSON array stored in the run's
    /// `logs`. The default has none.
    fn take_logs(&self, _run_id: &str) -> Option<Value> {
        None
    }

    /// Sends a request and resolves with its result. `timeout` is the caller's deadline; the
    /// scheduler enforces it itself, so an implementation may use it only to free resources.
    fn call(
        &self,
        plugin_id: &str,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Value, WorkerError>>;

    /// Whether dropping a call's future ends the call's execution (async handlers in this
    /// process). A cancelled run of such a worker is over once its call is dropped; for any
    /// other worker the job stays blocked until the worker answers or is gone.
    fn cancels_on_drop(&self) -> bool {
        false
    }

    /// Sends a notification (no answer), such as `cancelJob`.
    fn notify(&self, plugin_id: &str, method: &str, params: Value);

    /// Restarts the plugin's worker: asked for when a timed-out or cancelled call did not end
    /// within the cancel grace, so that the job cannot keep running in the worker beside its
    /// next run. Resolves once the old worker is gone (for a process, its whole process group),
    /// so every call that was in flight on it is over.
    fn restart(&self, plugin_id: &str) -> BoxFuture<'static, ()>;
}
