//! How the scheduler reaches the programs that run jobs. [`WorkerManager`] is the seam: the
//! scheduler asks whether a plugin's worker is running, sends a typed [`RunJob`] and gets back a
//! [`RunCall`] that resolves with the [`RunOutcome`] (the answer and the run's log lines), sends
//! [`CancelJob`], and asks for a restart after a call that did not end in time. The timeout is the
//! caller's: no manager ends a call on its own clock.
//!
//! [`InProcessWorkers`] runs jobs as async handlers inside the host process (tests, and
//! applications that embed plugin-jobs with their own Rust jobs). [`ProcessWorkers`] runs each
//! plugin as a child process speaking JSON-RPC over stdio ([`rpc`]), one [`WorkerActor`] per
//! process. [`sdk`] is the other side: a small library for writing such workers in Rust.

mod config;
mod connection;
pub mod demo;
mod group;
pub mod guard;
mod in_process;
pub mod outline;
mod pipes;
mod process;
pub mod rpc;
mod run_logs;
pub mod sdk;
mod supervisor;

use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;

pub use config::{PluginProcess, ProcessWorkerConfig, restart_delay};
pub use in_process::{InProcessWorkers, JobContext, JobHandler};
pub use process::ProcessWorkers;
pub use rpc::{CancelJob, RunJob, RunOutcome, WorkerError, codes};
pub use supervisor::WorkerActor;

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

/// Called with a plugin's id each time its worker becomes able to take calls.
pub type RunningListener = Arc<dyn Fn(&str) + Send + Sync>;

/// The scheduler's view of the workers. Implementations must be cheap to share across actors.
pub trait WorkerManager: Send + Sync + Debug + 'static {
    /// True when the plugin's worker can take calls now.
    fn is_running(&self, plugin_id: &str) -> bool;

    /// Sets who is told when a plugin's worker starts taking calls (its first start, and every
    /// restart): the scheduler, which then claims the plugin's due jobs and arms its wake for
    /// their next slots at once instead of at the next safety tick. Workers that take calls from
    /// the moment they exist (the default) never call it.
    fn on_running(&self, _listener: RunningListener) {}

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

    /// Sends `runJob` for one run. The [`RunCall`] resolves with the outcome when the worker
    /// answers or is gone, never on a clock: `timeout` is the deadline the caller enforces (the
    /// `JobRunActor`), given here for bookkeeping only. Dropping the call forgets it.
    fn run_job(&self, plugin_id: &str, job: RunJob, timeout: Duration) -> RunCall;

    /// Whether dropping a call's future ends the call's execution (async handlers in this
    /// process). A cancelled run of such a worker is over once its call is dropped; for any
    /// other worker the job stays blocked until the worker answers or is gone.
    fn cancels_on_drop(&self) -> bool {
        false
    }

    /// Sends `cancelJob` (a notification: the worker may or may not listen).
    fn cancel_job(&self, plugin_id: &str, cancel: CancelJob);

    /// Restarts the plugin's worker: asked for when a timed-out or cancelled call did not end
    /// within the cancel grace, so that the job cannot keep running in the worker beside its
    /// next run. Resolves once the old worker is gone (for a process, its whole process group),
    /// so every call that was in flight on it is over.
    fn restart(&self, plugin_id: &str) -> BoxFuture<'static, ()>;

    /// How many times the plugin's worker crashed within its crash window, as counted at its
    /// latest crash: the notifier says a worker keeps crashing before it is given up on. The
    /// default knows of none.
    fn recent_crashes(&self, _plugin_id: &str) -> usize {
        0
    }

    /// Told by [`crate::PluginJobsBuilder::start`] how long a worker may go on without its host
    /// renewing it: shorter than the run lease, so that a host that is alive but frozen (and
    /// renews no run's lease) has lost its workers before another instance rescues their runs
    /// and starts the jobs again. Process workers under a guard are killed by the guard; other
    /// managers ignore it (the default).
    fn set_leash(&self, _leash: Duration) {}

    /// The plugins this manager knows, started or refused, beside those the scheduler has
    /// registered jobs for: the API lists them all. The default knows of none.
    fn plugin_ids(&self) -> Vec<String> {
        Vec::new()
    }

    /// Why the plugin's worker last crashed or was given up on, when the manager knows.
    fn last_error(&self, plugin_id: &str) -> Option<String> {
        let _ = plugin_id;
        None
    }

    /// [`Self::restart`], saying why (`to stop run … of billing/sync, which timed out`): the
    /// other calls in flight on the worker end with the reason, so their runs say what cost
    /// them their worker. By default the reason is not used.
    fn restart_because(&self, plugin_id: &str, why: &str) -> BoxFuture<'static, ()> {
        let _ = why;
        self.restart(plugin_id)
    }
}

/// Takes the lines a run has logged so far.
type TakeLogs = Arc<dyn Fn() -> Option<Value> + Send + Sync>;

/// A `runJob` call in flight: a future of its [`RunOutcome`], and the run's log lines so far for a
/// caller that gives up on the call before it ends (a timeout records the run with them).
pub struct RunCall {
    outcome: BoxFuture<'static, RunOutcome>,
    logs_so_far: Option<TakeLogs>,
}

impl Debug for RunCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunCall").finish_non_exhaustive()
    }
}

impl RunCall {
    /// A call that resolves with `outcome` and keeps no lines before it ends.
    pub fn new(outcome: impl Future<Output = RunOutcome> + Send + 'static) -> Self {
        Self {
            outcome: outcome.boxed(),
            logs_so_far: None,
        }
    }

    /// A call refused at once (the worker is not there, the job has no handler).
    pub fn refused(error: WorkerError) -> Self {
        Self::new(std::future::ready(RunOutcome::new(Err(error))))
    }

    /// Lets the caller take the lines logged so far with `take`; lines after that are not kept.
    pub fn with_logs_so_far(
        mut self,
        take: impl Fn() -> Option<Value> + Send + Sync + 'static,
    ) -> Self {
        self.logs_so_far = Some(Arc::new(take));
        self
    }

    /// The outcome's future, and the run's lines for whoever records the run.
    pub fn into_parts(self) -> (BoxFuture<'static, RunOutcome>, RunLines) {
        let lines = RunLines {
            so_far: self.logs_so_far,
            ended: None,
        };
        (self.outcome, lines)
    }
}

impl Future for RunCall {
    type Output = RunOutcome;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<RunOutcome> {
        self.outcome.poll_unpin(cx)
    }
}

/// A run's `log` lines as its recorder sees them: those its call ended with, or, when the run is
/// recorded before its call ended (a timeout, a cancellation), those logged so far.
#[derive(Default)]
pub struct RunLines {
    so_far: Option<TakeLogs>,
    ended: Option<Option<Value>>,
}

impl Debug for RunLines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunLines")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl RunLines {
    /// The call ended with these lines (its [`RunOutcome::logs`]).
    pub fn ended(&mut self, logs: Option<Value>) {
        self.ended = Some(logs);
    }

    /// Takes the lines as the JSON array stored in the run's `logs`. Before the call ended, these
    /// are the lines so far, and later ones are not kept.
    pub fn take(&mut self) -> Option<Value> {
        match self.ended.take() {
            Some(logs) => logs,
            None => self.so_far.as_ref().and_then(|take| take()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn a_run_recorded_before_its_call_ended_takes_the_lines_so_far() {
        let call = RunCall::new(std::future::pending())
            .with_logs_so_far(|| Some(json!([{"message": "so far"}])));
        let (_outcome, mut lines) = call.into_parts();
        assert_eq!(lines.take(), Some(json!([{"message": "so far"}])));
    }

    #[tokio::test]
    async fn a_run_whose_call_ended_takes_the_lines_it_ended_with() {
        let call = RunCall::new(std::future::ready(RunOutcome {
            result: Ok(()),
            logs: Some(json!([{"message": "at the end"}])),
        }))
        .with_logs_so_far(|| Some(json!([{"message": "so far"}])));
        let (outcome, mut lines) = call.into_parts();
        let outcome = outcome.await;
        lines.ended(outcome.logs);
        assert_eq!(lines.take(), Some(json!([{"message": "at the end"}])));
        assert_eq!(
            RunCall::refused(WorkerError::unavailable("p")).await.result,
            Err(WorkerError::unavailable("p"))
        );
    }
}
