//! Workers inside the host process: async handlers registered per plugin and job key. A run's
//! handler gets a [`JobContext`] whose cancellation signal fires on `cancelJob`. What is kept per
//! call is released when the call ends or is dropped, and only the latest notifications are
//! remembered, so a long-running host holds a bounded amount.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::watch;

use super::rpc::{self, CancelJob, RunJob, RunOutcome};
use super::{RunCall, WorkerError, WorkerManager, codes};

/// What a handler knows about the run it serves.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub plugin_id: String,
    pub job_key: String,
    pub run_id: String,
    pub trigger: String,
    /// The slot (scheduled runs) or the request time, as ISO 8601 with milliseconds and `Z`.
    pub scheduled_at: String,
    /// The run's W3C trace context, when it has one.
    pub traceparent: Option<String>,
    /// 1 for the first run of a slot, 2 for its first retry, …
    pub attempt: u32,
    /// For a retry: the id of the slot's first run.
    pub retry_of: Option<uuid::Uuid>,
    /// The run's payload: its job's, or a trigger's one-off payload (`None` when it has none).
    pub payload: Option<serde_json::Value>,
    /// The whole `runJob` params, as a process worker would receive them.
    pub params: Value,
    cancelled: watch::Receiver<Option<String>>,
}

impl JobContext {
    /// The cancellation reason, once `cancelJob` arrived for this run.
    pub fn cancel_reason(&self) -> Option<String> {
        self.cancelled.borrow().clone()
    }

    /// Resolves when the run is cancelled, with the reason.
    pub async fn cancelled(&mut self) -> String {
        loop {
            if let Some(reason) = self.cancelled.borrow_and_update().clone() {
                return reason;
            }
            if self.cancelled.changed().await.is_err() {
                // The sender went away without a cancellation: wait forever, like an
                // uncancelled run would.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// An async job handler: `Ok` means the run succeeded, `Err(message)` that it failed with that
/// message.
pub type JobHandler =
    Arc<dyn Fn(JobContext) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

#[derive(Default)]
struct Plugin {
    running: bool,
    handlers: HashMap<String, JobHandler>,
    restarts: u64,
}

#[derive(Default)]
struct State {
    plugins: HashMap<String, Plugin>,
    /// Cancellation senders of calls in flight, by run id, with their plugin.
    cancels: HashMap<String, (String, watch::Sender<Option<String>>)>,
    /// The latest notifications, oldest first, at most [`KEPT_NOTIFICATIONS`].
    notifications: VecDeque<(String, String, Value)>,
}

/// How many notifications [`InProcessWorkers::notifications`] remembers.
pub const KEPT_NOTIFICATIONS: usize = 1_000;

/// In-process workers. Clones share the same registry.
#[derive(Clone, Default)]
pub struct InProcessWorkers {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for InProcessWorkers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("InProcessWorkers")
            .field("plugins", &state.plugins.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl InProcessWorkers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for `job_key` of `plugin_id`, and marks that plugin's worker running.
    pub fn register<F, Fut>(&self, plugin_id: &str, job_key: &str, handler: F) -> &Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
    {
        let handler: JobHandler = Arc::new(move |ctx| handler(ctx).boxed());
        let mut state = self.lock();
        let plugin = state.plugins.entry(plugin_id.to_owned()).or_default();
        plugin.running = true;
        plugin.handlers.insert(job_key.to_owned(), handler);
        self
    }

    /// Marks a plugin's worker running or stopped (a stopped worker takes no calls).
    pub fn set_running(&self, plugin_id: &str, running: bool) {
        self.lock()
            .plugins
            .entry(plugin_id.to_owned())
            .or_default()
            .running = running;
    }

    /// How often the scheduler asked to restart this plugin's worker.
    pub fn restarts(&self, plugin_id: &str) -> u64 {
        self.lock().plugins.get(plugin_id).map_or(0, |p| p.restarts)
    }

    /// The latest notifications (at most [`KEPT_NOTIFICATIONS`]), oldest first, as
    /// `(plugin_id, method, params)`.
    pub fn notifications(&self) -> Vec<(String, String, Value)> {
        self.lock().notifications.iter().cloned().collect()
    }

    /// How many calls are in flight (their cancellation signals are held).
    pub fn in_flight(&self) -> usize {
        self.lock().cancels.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Handlers never run under this lock, so a poisoned lock still holds consistent maps.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl WorkerManager for InProcessWorkers {
    fn is_running(&self, plugin_id: &str) -> bool {
        self.lock()
            .plugins
            .get(plugin_id)
            .is_some_and(|p| p.running)
    }

    fn run_job(&self, plugin_id: &str, job: RunJob, _timeout: Duration) -> RunCall {
        let mut state = self.lock();
        let handler = match state.plugins.get(plugin_id) {
            Some(plugin) if plugin.running => plugin.handlers.get(&job.job_key).cloned(),
            _ => return RunCall::refused(WorkerError::unavailable(plugin_id)),
        };
        let Some(handler) = handler else {
            return RunCall::refused(WorkerError::new(
                codes::INVALID_PARAMS,
                format!(
                    "Plugin {plugin_id} has no handler for job {:?}",
                    job.job_key
                ),
            ));
        };
        let (cancel_tx, cancel_rx) = watch::channel(None);
        state
            .cancels
            .insert(job.run_id.clone(), (plugin_id.to_owned(), cancel_tx));
        drop(state);
        // Released when the call ends, and also when the caller drops it (a timeout).
        let release = ReleaseCancel {
            workers: self.clone(),
            run_id: job.run_id.clone(),
        };
        let ctx = JobContext {
            plugin_id: plugin_id.to_owned(),
            params: job.to_params(),
            job_key: job.job_key,
            run_id: job.run_id,
            trigger: job.trigger,
            scheduled_at: job.scheduled_at,
            traceparent: job.traceparent.filter(|t| !t.is_empty()),
            attempt: job.attempt,
            retry_of: job.retry_of,
            payload: job.payload,
            cancelled: cancel_rx,
        };
        RunCall::new(async move {
            let _release = release;
            let handled = handler(ctx).await;
            RunOutcome::from_answer(RunOutcome::answer(handled), None)
        })
    }

    fn cancel_job(&self, plugin_id: &str, cancel: CancelJob) {
        let mut state = self.lock();
        if let Some((_, sender)) = state.cancels.get(&cancel.run_id) {
            sender.send_replace(Some(cancel.reason.clone()));
        }
        if state.notifications.len() >= KEPT_NOTIFICATIONS {
            state.notifications.pop_front();
        }
        state.notifications.push_back((
            plugin_id.to_owned(),
            rpc::CANCEL_JOB.to_owned(),
            cancel.to_params(),
        ));
    }

    fn restarts(&self, plugin_id: &str) -> u64 {
        InProcessWorkers::restarts(self, plugin_id)
    }

    /// A handler is a future the run actor owns: dropping it ends it.
    fn cancels_on_drop(&self) -> bool {
        true
    }

    /// In-process calls end when the run actor drops them, so the restart is over at once.
    fn restart(&self, plugin_id: &str) -> BoxFuture<'static, ()> {
        let mut state = self.lock();
        // A restart ends every call in flight: their cancellation signals fire.
        for (owner, sender) in state.cancels.values() {
            if owner == plugin_id {
                sender.send_replace(Some("worker restarted".to_owned()));
            }
        }
        state
            .plugins
            .entry(plugin_id.to_owned())
            .or_default()
            .restarts += 1;
        async {}.boxed()
    }
}

/// Forgets a call's cancellation signal when the call ends or is dropped.
struct ReleaseCancel {
    workers: InProcessWorkers,
    run_id: String,
}

impl Drop for ReleaseCancel {
    fn drop(&mut self) {
        self.workers.lock().cancels.remove(&self.run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_job(run_id: &str) -> RunJob {
        RunJob::new("hang", run_id, "manual", "")
    }

    #[tokio::test]
    async fn a_dropped_call_releases_its_cancellation_signal() {
        let workers = InProcessWorkers::new();
        workers.register("p", "hang", |_ctx| std::future::pending());
        let call = workers.run_job("p", run_job("r"), Duration::from_secs(1));
        assert_eq!(workers.in_flight(), 1);
        let timed_out = tokio::time::timeout(Duration::from_millis(10), call).await;
        assert!(timed_out.is_err(), "the handler never answers");
        assert_eq!(workers.in_flight(), 0);
    }

    #[test]
    fn only_the_latest_notifications_are_kept() {
        let workers = InProcessWorkers::new();
        for n in 0..KEPT_NOTIFICATIONS + 500 {
            workers.cancel_job("p", CancelJob::new(n.to_string(), "stop"));
        }
        let kept = workers.notifications();
        assert_eq!(kept.len(), KEPT_NOTIFICATIONS);
        assert_eq!(kept[0].2["runId"], "500");
    }
}
