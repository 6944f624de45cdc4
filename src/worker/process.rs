//! Plugins as child processes speaking JSON-RPC over stdio (DESIGN §5): [`ProcessWorkers`], the
//! `WorkerManager`. It keeps one [`WorkerActor`] per plugin (`supervisor`) and reads each
//! plugin's [`Slot`] for status; `runJob` and `cancelJob` go straight to the process's
//! [`Connection`], never through the actor's mailbox. Starting and stopping a plugin's worker,
//! and the counters operators and tests read, are here too.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use super::config::{PluginProcess, ProcessWorkerConfig};
use super::connection::Connection;
use super::rpc::{self, CancelJob, RunJob, RunOutcome};
use super::run_logs::RunLogs;
use super::supervisor::{RestartWorker, Slot, StopWorker, WorkerActor};
use super::{RunCall, RunningListener, WorkerError, WorkerManager, WorkerStatus};

/// A plugin: what the API reads, and the actor that owns the process (`None` for a plugin
/// refused before its worker could start, kept so that operators see why).
type Registered = (Arc<Slot>, Option<Addr<WorkerActor>>);

#[derive(Debug)]
struct Shared {
    config: Arc<ProcessWorkerConfig>,
    /// See [`WorkerManager::set_leash`]; in milliseconds, 0 for none. Read at each spawn.
    leash_ms: Arc<AtomicU64>,
    workers: RwLock<HashMap<String, Registered>>,
    logs: Arc<RunLogs>,
    running: Arc<RunningSlot>,
}

/// Who is told when a worker starts taking calls (see [`WorkerManager::on_running`]).
#[derive(Default)]
pub(super) struct RunningSlot(RwLock<Option<RunningListener>>);

impl RunningSlot {
    /// Tells the listener, if one is set, that `plugin_id`'s worker takes calls.
    pub(super) fn tell(&self, plugin_id: &str) {
        let listener = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(listener) = listener {
            listener(plugin_id);
        }
    }
}

impl fmt::Debug for RunningSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunningSlot")
    }
}

/// Whether `plugin_id` has a worker (not only a refusal).
fn has_worker(workers: &HashMap<String, Registered>, plugin_id: &str) -> bool {
    workers
        .get(plugin_id)
        .is_some_and(|(_, actor)| actor.is_some())
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Registered>> {
        self.workers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Registered>> {
        self.workers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slot(&self, plugin_id: &str) -> Option<Arc<Slot>> {
        let workers = self.read();
        workers.get(plugin_id).map(|(slot, _)| Arc::clone(slot))
    }

    fn actor(&self, plugin_id: &str) -> Option<Addr<WorkerActor>> {
        let workers = self.read();
        workers.get(plugin_id).and_then(|(_, actor)| actor.clone())
    }

    fn connection(&self, plugin_id: &str) -> Option<Arc<Connection>> {
        let slot = self.slot(plugin_id)?;
        let state = slot.lock();
        (state.status == WorkerStatus::Running)
            .then(|| state.connection.clone())
            .flatten()
    }
}

/// Process workers: one child process per plugin. Clones share the same workers.
#[derive(Clone)]
pub struct ProcessWorkers {
    shared: Arc<Shared>,
}

impl fmt::Debug for ProcessWorkers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let workers = self.shared.read();
        f.debug_struct("ProcessWorkers")
            .field("plugins", &workers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ProcessWorkers {
    pub fn new(config: ProcessWorkerConfig) -> Self {
        let logs = Arc::new(RunLogs::new(config.log_cap_bytes));
        Self {
            shared: Arc::new(Shared {
                config: Arc::new(config),
                leash_ms: Arc::new(AtomicU64::new(0)),
                workers: RwLock::new(HashMap::new()),
                logs,
                running: Arc::default(),
            }),
        }
    }

    /// Starts a plugin's worker (call inside an actix System). Its status is `starting` until the
    /// handshake succeeds. A plugin that already has a worker keeps it: stop it first.
    pub fn start(&self, process: PluginProcess) -> crate::Result<()> {
        let mut workers = self.shared.write();
        if has_worker(&workers, &process.plugin_id) {
            return Err(crate::Error::InvalidInput(format!(
                "plugin {} already has a worker",
                process.plugin_id
            )));
        }
        let slot = Arc::new(Slot::starting());
        let plugin_id = process.plugin_id.clone();
        let actor = WorkerActor::new(
            process,
            Arc::clone(&self.shared.config),
            Arc::clone(&self.shared.leash_ms),
            Arc::clone(&self.shared.logs),
            Arc::clone(&slot),
            Arc::clone(&self.shared.running),
        )
        .start();
        workers.insert(plugin_id, (slot, Some(actor)));
        Ok(())
    }

    /// Records a plugin whose worker will not be started (its manifest was rejected, say):
    /// its status is `failed` and its last error `reason`, so the API and the dashboard list it
    /// with why. A plugin that has a worker keeps it.
    pub fn refuse(&self, plugin_id: &str, reason: String) {
        let mut workers = self.shared.write();
        if has_worker(&workers, plugin_id) {
            return;
        }
        let slot = Slot::starting();
        {
            let mut state = slot.lock();
            state.status = WorkerStatus::Failed;
            state.last_error = Some(reason);
        }
        workers.insert(plugin_id.to_owned(), (Arc::new(slot), None));
    }

    /// Stops a plugin's worker gracefully and forgets it: `shutdown`, then SIGTERM after the
    /// shutdown timeout, then SIGKILL. Resolves once the process is gone, with how it ended
    /// (`None` when the plugin had no worker).
    pub async fn stop(&self, plugin_id: &str) -> Option<String> {
        let actor = self
            .shared
            .write()
            .remove(plugin_id)
            .and_then(|(_, actor)| actor);
        let done = actor?.send(StopWorker).await.ok()?;
        done.await.ok()
    }

    /// Stops every worker at once and waits for all of them.
    pub async fn stop_all(&self) {
        let plugins: Vec<String> = {
            let workers = self.shared.read();
            workers.keys().cloned().collect()
        };
        futures_util::future::join_all(plugins.iter().map(|plugin| self.stop(plugin))).await;
    }

    /// The process id of the plugin's current worker process.
    pub fn pid(&self, plugin_id: &str) -> Option<u32> {
        self.shared.slot(plugin_id)?.lock().pid
    }

    /// Why the worker last failed (a crash, a failed handshake, a failed spawn).
    pub fn last_error(&self, plugin_id: &str) -> Option<String> {
        self.shared.slot(plugin_id)?.lock().last_error.clone()
    }

    /// How many processes were started for the plugin so far.
    pub fn starts(&self, plugin_id: &str) -> u64 {
        self.shared
            .slot(plugin_id)
            .map_or(0, |slot| slot.lock().starts)
    }

    /// Calls waiting for an answer on the plugin's current process.
    pub fn in_flight(&self, plugin_id: &str) -> usize {
        self.shared
            .slot(plugin_id)
            .and_then(|slot| slot.lock().connection.clone())
            .map_or(0, |connection| connection.in_flight())
    }
}

impl WorkerManager for ProcessWorkers {
    fn is_running(&self, plugin_id: &str) -> bool {
        self.status(plugin_id) == WorkerStatus::Running
    }

    fn on_running(&self, listener: RunningListener) {
        *self
            .shared
            .running
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(listener);
    }

    fn status(&self, plugin_id: &str) -> WorkerStatus {
        self.shared
            .slot(plugin_id)
            .map_or(WorkerStatus::Stopped, |slot| slot.lock().status)
    }

    /// Every process started after the first one is a restart.
    fn restarts(&self, plugin_id: &str) -> u64 {
        self.starts(plugin_id).saturating_sub(1)
    }

    fn recent_crashes(&self, plugin_id: &str) -> usize {
        self.shared
            .slot(plugin_id)
            .map_or(0, |slot| slot.lock().recent_crashes)
    }

    fn last_error(&self, plugin_id: &str) -> Option<String> {
        ProcessWorkers::last_error(self, plugin_id)
    }

    fn set_leash(&self, leash: Duration) {
        let ms = u64::try_from(leash.as_millis()).unwrap_or(u64::MAX).max(1);
        self.shared.leash_ms.store(ms, Ordering::Relaxed);
    }

    fn plugin_ids(&self) -> Vec<String> {
        let workers = self.shared.read();
        workers.keys().cloned().collect()
    }

    fn run_job(&self, plugin_id: &str, job: RunJob, _timeout: Duration) -> RunCall {
        let Some(connection) = self.shared.connection(plugin_id) else {
            return RunCall::refused(WorkerError::unavailable(plugin_id));
        };
        let answer = connection.run_job(&job);
        let (logs, run_id) = (Arc::clone(&self.shared.logs), job.run_id);
        let (so_far, so_far_run) = (Arc::clone(&logs), run_id.clone());
        RunCall::new(async move {
            let answer = answer.await;
            RunOutcome::from_answer(answer, logs.take(&run_id))
        })
        .with_logs_so_far(move || so_far.take(&so_far_run))
    }

    fn cancel_job(&self, plugin_id: &str, cancel: CancelJob) {
        if let Some(connection) = self.shared.connection(plugin_id) {
            connection.notify(rpc::CANCEL_JOB, &cancel.to_params());
        }
    }

    fn restart(&self, plugin_id: &str) -> BoxFuture<'static, ()> {
        self.restart_because(plugin_id, "on request")
    }

    fn restart_because(&self, plugin_id: &str, why: &str) -> BoxFuture<'static, ()> {
        let actor = self.shared.actor(plugin_id);
        let restart = RestartWorker {
            why: why.to_owned(),
        };
        async move {
            if let Some(actor) = actor
                && let Ok(gone) = actor.send(restart).await
            {
                let _ = gone.await;
            }
        }
        .boxed()
    }
}
