//! The `WorkerActor`: one per plugin, it owns the worker process over its restarts. It spawns the
//! process (see [`PluginProcess::command`]), runs the `initialize` handshake (status `starting`
//! until it succeeds), counts crashes and restarts after a backoff (giving up after too many),
//! restarts on request, and stops gracefully (`shutdown`, SIGTERM, SIGKILL to the group). Calls
//! and answers bypass it: they go through the process's [`Connection`].
//!
//! Handles: `RestartWorker`, `StopWorker` (from `ProcessWorkers`), `Exited` (from its waiter
//! task). Writes: the plugin's [`Slot`], which the manager and the API read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use actix::prelude::*;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot};

use super::config::{PluginProcess, ProcessWorkerConfig, restart_delay};
use super::connection::Connection;
use super::group::guarded_worker_group;
use super::group::kill_group_and_wait;
use super::pipes::{read_stderr, read_stdout, write_lines};
use super::process::RunningSlot;
use super::run_logs::RunLogs;
use super::{WorkerError, WorkerStatus, codes};

/// One plugin's worker as the actor last wrote it.
#[derive(Debug)]
pub(super) struct SlotState {
    pub(super) status: WorkerStatus,
    pub(super) connection: Option<Arc<Connection>>,
    pub(super) pid: Option<u32>,
    pub(super) last_error: Option<String>,
    pub(super) starts: u64,
    /// Crashes within the crash window as counted at the latest crash (0 before any).
    pub(super) recent_crashes: usize,
}

/// What the manager and the API see of one plugin's worker.
#[derive(Debug)]
pub(super) struct Slot {
    state: Mutex<SlotState>,
}

impl Slot {
    /// The slot of a worker about to be spawned for the first time.
    pub(super) fn starting() -> Self {
        Self {
            state: Mutex::new(SlotState {
                status: WorkerStatus::Starting,
                connection: None,
                pid: None,
                last_error: None,
                starts: 0,
                recent_crashes: 0,
            }),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Ends the current process (SIGKILL to its whole group) and starts a new one at once, without
/// counting a crash. Answers a receiver that resolves once the old process group is gone.
#[derive(Message, Debug, Clone)]
#[rtype(result = "oneshot::Receiver<()>")]
pub(super) struct RestartWorker {
    /// Why, as the calls that were in flight on it are told.
    pub why: String,
}

/// Stops the worker for good; answers a receiver that resolves once the process is gone.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "oneshot::Receiver<String>")]
pub(super) struct StopWorker;

/// The process of generation `generation` exited.
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct Exited {
    generation: u64,
    status: String,
}

/// Waits for the child to exit; under a leash (the child is then the worker's guard) renews it
/// with [`super::guard::LEASH_SIGNAL`] every quarter of the leash (at least once a second) once
/// `armed`. The renewals come from this thread, the one the actors of the host run on, so a host
/// frozen or starved as a whole renews nothing and its guard ends the worker (the guard counts
/// from the first renewal: no run reaches a worker before its first answer). The child is not
/// reaped before `wait` completes, so its pid cannot have been given to another process when a
/// renewal is sent.
async fn renewing_the_leash(
    child: &mut tokio::process::Child,
    leash: Option<Duration>,
    armed: &AtomicBool,
) -> std::io::Result<std::process::ExitStatus> {
    let (Some(leash), Some(pid)) = (leash, child.id().and_then(|pid| i32::try_from(pid).ok()))
    else {
        return child.wait().await;
    };
    let mut renewals = tokio::time::interval((leash / 4).min(Duration::from_secs(1)));
    renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            exited = child.wait() => return exited,
            _ = renewals.tick() => {
                if armed.load(Ordering::Relaxed) {
                    let _ = kill(Pid::from_raw(pid), super::guard::LEASH_SIGNAL);
                }
            }
        }
    }
}

/// Owns one plugin's worker process over its restarts.
#[derive(Debug)]
pub struct WorkerActor {
    process: PluginProcess,
    config: Arc<ProcessWorkerConfig>,
    /// The guard's leash in milliseconds (0: none), read at each spawn.
    leash_ms: Arc<AtomicU64>,
    /// Whether the current process's leash is renewed: from the worker's first answer on,
    /// which shows the guard has its signal handlers (a renewal before them would kill it).
    leash_armed: Arc<AtomicBool>,
    /// Where the `log` lines of runs in flight are kept (one store for all processes).
    logs: Arc<RunLogs>,
    slot: Arc<Slot>,
    /// Told each time this worker starts taking calls.
    running: Arc<RunningSlot>,
    /// Increases with every spawn; events of older processes are ignored.
    generation: u64,
    pid: Option<u32>,
    /// Under a guard, the process group of the worker it started (learnt once the worker
    /// answered `initialize`): a guard killed outright cannot end it, so its exit path does.
    worker_group: Arc<Mutex<Option<Pid>>>,
    connection: Option<Arc<Connection>>,
    stderr_tail: Arc<Mutex<String>>,
    /// The worker's total time up (started to exited) at each recent crash: the crash window
    /// is measured in the worker's own time, not counting the restart backoff.
    crashes: VecDeque<Duration>,
    /// Time up of the processes that have ended, and when the current one started.
    uptime: Duration,
    up_since: Option<Instant>,
    /// Why the current process is being ended by us, when it is.
    ending: Option<String>,
    restart_requested: bool,
    /// Told when the current process (and its group) is gone.
    exit_waiters: Vec<oneshot::Sender<()>>,
    stopping: bool,
    stop_waiters: Vec<oneshot::Sender<String>>,
}

impl WorkerActor {
    pub(super) fn new(
        process: PluginProcess,
        config: Arc<ProcessWorkerConfig>,
        leash_ms: Arc<AtomicU64>,
        logs: Arc<RunLogs>,
        slot: Arc<Slot>,
        running: Arc<RunningSlot>,
    ) -> Self {
        Self {
            process,
            config,
            leash_ms,
            leash_armed: Arc::new(AtomicBool::new(false)),
            logs,
            slot,
            running,
            generation: 0,
            pid: None,
            worker_group: Arc::new(Mutex::new(None)),
            connection: None,
            stderr_tail: Arc::new(Mutex::new(String::new())),
            crashes: VecDeque::new(),
            uptime: Duration::ZERO,
            up_since: None,
            ending: None,
            restart_requested: false,
            exit_waiters: Vec::new(),
            stopping: false,
            stop_waiters: Vec::new(),
        }
    }

    fn plugin(&self) -> &str {
        &self.process.plugin_id
    }

    fn set_status(&self, status: WorkerStatus) {
        let mut state = self.slot.lock();
        state.status = status;
        if status != WorkerStatus::Running {
            state.connection = None;
        }
    }

    fn set_error(&self, error: &str) {
        self.slot.lock().last_error = Some(error.to_owned());
    }

    fn spawn_process(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        self.ending = None;
        self.up_since = Some(Instant::now());
        self.set_status(WorkerStatus::Starting);
        let leash = match self.leash_ms.load(Ordering::Relaxed) {
            _ if self.config.guard.is_none() => None,
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        };
        let spawned = self
            .process
            .command(&self.config, leash)
            .and_then(|mut command| command.spawn().map_err(|err| err.to_string()));
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) => {
                let message = format!(
                    "could not start the worker of plugin {} ({:?}): {err}",
                    self.plugin(),
                    self.process.command
                );
                self.crashed(message, ctx);
                return;
            }
        };
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            self.crashed("the worker's stdio pipes were not opened".to_owned(), ctx);
            return;
        };
        let (lines, queued) = mpsc::unbounded_channel();
        let connection = Arc::new(Connection::new(
            self.plugin(),
            lines,
            Arc::clone(&self.logs),
        ));
        self.connection = Some(Arc::clone(&connection));
        self.pid = child.id();
        {
            let mut state = self.slot.lock();
            state.pid = self.pid;
            state.starts += 1;
        }
        self.stderr_tail = Arc::new(Mutex::new(String::new()));
        let generation = self.generation;
        let actor = ctx.address();
        actix_rt::spawn(async move {
            if let Err(err) = write_lines(stdin, queued).await {
                actor.do_send(StdinClosed {
                    generation,
                    error: err.to_string(),
                });
            }
        });
        actix_rt::spawn(read_stderr(
            BufReader::new(stderr),
            self.plugin().to_owned(),
            Arc::clone(&self.stderr_tail),
            self.config.stderr_tail_bytes,
        ));
        let generation = self.generation;
        let actor = ctx.address();
        let reader = actix_rt::spawn({
            let (plugin, logs, actor) = (
                self.plugin().to_owned(),
                Arc::clone(&self.logs),
                actor.clone(),
            );
            let connection = Arc::clone(&connection);
            async move {
                read_stdout(BufReader::new(stdout), plugin, connection, logs).await;
                actor.do_send(StdoutClosed { generation });
            }
        });
        let group = self.pid.and_then(|pid| i32::try_from(pid).ok());
        self.worker_group = Arc::new(Mutex::new(None));
        let worker_group = Arc::clone(&self.worker_group);
        self.leash_armed = Arc::new(AtomicBool::new(false));
        let armed = Arc::clone(&self.leash_armed);
        actix_rt::spawn(async move {
            let exited = renewing_the_leash(&mut child, leash, &armed).await;
            // Whatever the worker left running in its group goes with it (a guard has already
            // done this for its worker's group; then the guard's own group is empty).
            if let Some(group) = group {
                kill_group_and_wait(Pid::from_raw(group)).await;
            }
            // A guard killed outright (SIGKILL, the OOM killer) could not end its worker, which
            // would run on unsupervised, its calls failed and its jobs freed: its group goes
            // now, before anyone hears the worker is gone. A guard that exited by itself has
            // ended that group already (it reports the worker's death as an exit code).
            let guard_killed = exited.as_ref().is_ok_and(|status| {
                std::os::unix::process::ExitStatusExt::signal(status).is_some()
            });
            let orphaned = worker_group
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            if let (true, Some(orphaned)) = (guard_killed, orphaned) {
                kill_group_and_wait(orphaned).await;
            }
            let status = match exited {
                Ok(status) => status.to_string(),
                Err(err) => format!("unknown exit status ({err})"),
            };
            // Let the reader hand over every answer the worker wrote before it exited.
            let _ = tokio::time::timeout(Duration::from_secs(1), reader).await;
            actor.do_send(Exited { generation, status });
        });
        log::info!(
            "started the worker of plugin {} (pid {}): {:?}",
            self.plugin(),
            self.pid.unwrap_or_default(),
            self.process.command
        );
        let params = json!({
            "pluginId": self.plugin(),
            "manifest": self.process.manifest,
            "config": self.process.config,
            "instanceInfo": {
                "instanceId": self.config.instance_id,
                "hostVersion": env!("CARGO_PKG_VERSION"),
            },
            "apiVersion": 1,
        });
        // The handshake's deadline is the one timeout kept on this side of the seam.
        let handshake = tokio::time::timeout(
            self.config.handshake_timeout,
            connection.call("initialize", &params),
        );
        ctx.spawn(handshake.into_actor(self).map(move |answer, act, ctx| {
            act.on_handshake(generation, answer.ok(), ctx);
        }));
    }

    /// The answer to `initialize`, or `None` when none came within the handshake timeout.
    fn on_handshake(
        &mut self,
        generation: u64,
        answer: Option<Result<Value, WorkerError>>,
        ctx: &mut Context<Self>,
    ) {
        if generation == self.generation
            && self.config.guard.is_some()
            && let Some(guard) = self.pid
        {
            if answer.is_some() {
                self.leash_armed.store(true, Ordering::Relaxed);
            }
            *self
                .worker_group
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = guarded_worker_group(guard);
        }
        // The process may have exited before its answer got here (it answered, then exited at
        // once): the exit has already been handled, and a dead worker must not be marked running.
        if generation != self.generation
            || self.ending.is_some()
            || self.stopping
            || self.pid.is_none()
        {
            return;
        }
        let refusal = match answer {
            Some(Ok(result)) if result.get("ok") == Some(&Value::Bool(true)) => None,
            Some(Ok(result)) => Some(format!(
                "answered initialize without \"ok\": true: {result}"
            )),
            None => Some(format!(
                "did not answer initialize within {} ms",
                self.config.handshake_timeout.as_millis()
            )),
            Some(Err(err)) => Some(format!("failed initialize: {err}")),
        };
        match refusal {
            None => {
                {
                    let mut state = self.slot.lock();
                    state.status = WorkerStatus::Running;
                    state.connection = self.connection.clone();
                }
                log::info!("the worker of plugin {} is running", self.plugin());
                self.running.tell(self.plugin());
            }
            Some(refusal) => {
                let message = format!("the worker of plugin {} {refusal}", self.plugin());
                log::error!("{message}; killing it");
                self.end_process(message, Signal::SIGKILL, ctx);
            }
        }
    }

    /// Signals the current process; `reason` becomes the error of its pending calls.
    fn end_process(&mut self, reason: String, signal: Signal, ctx: &mut Context<Self>) {
        self.ending.get_or_insert(reason);
        self.signal(signal);
        if signal == Signal::SIGKILL {
            self.kill_stuck_guard_later(ctx);
        }
    }

    /// A guard told to kill its worker's group exits within moments (it reaps for at most 5 s).
    /// One that has not by [`GUARD_EXIT_BOUND`] cannot act on signals (stopped with SIGSTOP, as
    /// `pkill -STOP -f <worker command>` stops it together with its worker, or hung): it is
    /// killed outright, and its exit path kills the worker's group it learnt at the handshake.
    /// Otherwise the process would never end, and the runs waiting for it to be gone would
    /// release their jobs with the worker still there.
    fn kill_stuck_guard_later(&self, ctx: &mut Context<Self>) {
        if self.config.guard.is_none() {
            return;
        }
        let generation = self.generation;
        ctx.run_later(GUARD_EXIT_BOUND, move |act, _ctx| {
            let Some(pid) = act.pid.and_then(|pid| i32::try_from(pid).ok()) else {
                return;
            };
            if act.generation != generation {
                return;
            }
            log::error!(
                "the worker guard of plugin {} (pid {pid}) did not exit within {} s of being told \
                 to kill its worker (stopped, or hung); killing it and its worker's group",
                act.plugin(),
                GUARD_EXIT_BOUND.as_secs()
            );
            if let Err(err) = kill(Pid::from_raw(pid), Signal::SIGKILL) {
                log::warn!("could not kill the guard of {}: {err}", act.plugin());
            }
        });
    }

    /// Signals the current worker's whole process group. Under a guard, `SIGKILL` becomes the
    /// guard's kill signal (the guard kills the worker's group and exits once it is gone) and
    /// other signals go to the guard, which forwards them.
    fn signal(&self, signal: Signal) {
        let Some(pid) = self.pid.and_then(|pid| i32::try_from(pid).ok()) else {
            return;
        };
        let pid = Pid::from_raw(pid);
        let sent = match (&self.config.guard, signal) {
            (Some(_), Signal::SIGKILL) => kill(pid, super::guard::KILL_SIGNAL),
            (Some(_), signal) => kill(pid, signal),
            (None, signal) => killpg(pid, signal),
        };
        if let Err(err) = sent {
            log::debug!(
                "could not send {signal} to the worker of {}: {err}",
                self.plugin()
            );
        }
    }

    /// Counts a crash and restarts after the backoff, or gives up.
    ///
    /// The window counts the time the worker was up, not the backoff between its starts: with a
    /// backoff that doubles to 5 minutes, 10 minutes of wall-clock time never hold more than
    /// about nine crashes, and a worker that dies at every start would never be given up on.
    fn crashed(&mut self, message: String, ctx: &mut Context<Self>) {
        self.set_error(&message);
        if let Some(since) = self.up_since.take() {
            self.uptime += since.elapsed();
        }
        let (now, window) = (self.uptime, self.config.crash_window);
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|&at| now.saturating_sub(at) > window)
        {
            self.crashes.pop_front();
        }
        let crashes = self.crashes.len();
        self.slot.lock().recent_crashes = crashes;
        if crashes > self.config.crash_limit {
            let given_up = format!(
                "giving up on the worker of plugin {}: {crashes} crashes within {} s of running; \
                 last: {message}",
                self.plugin(),
                window.as_secs()
            );
            log::error!("{given_up}");
            self.set_error(&given_up);
            self.set_status(WorkerStatus::Failed);
            return;
        }
        let jitter = (uuid::Uuid::new_v4().as_u128() % 2001) as f64 / 1000.0 - 1.0;
        let config = &self.config;
        let delay = restart_delay(
            config.restart_backoff,
            config.max_restart_backoff,
            crashes,
            jitter,
        );
        log::warn!("{message}; restarting in {} ms", delay.as_millis());
        self.set_status(WorkerStatus::Restarting);
        ctx.run_later(delay, |act, ctx| {
            if !act.stopping && act.slot.lock().status == WorkerStatus::Restarting {
                act.spawn_process(ctx);
            }
        });
    }

    fn finish_stop(&mut self, ended: &str) {
        self.set_status(WorkerStatus::Stopped);
        for waiter in self.stop_waiters.drain(..) {
            let _ = waiter.send(ended.to_owned());
        }
    }
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.spawn_process(ctx);
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        // The System is going down: the worker's group goes with it (a guard is told to kill
        // it; an unguarded child also dies with its handle, `kill_on_drop`).
        self.signal(Signal::SIGKILL);
    }
}

/// The worker's stdout reached its end: it can answer nothing more.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct StdoutClosed {
    generation: u64,
}

/// How long a worker whose stdout (or stdin) closed may take to exit on its own before it is
/// ended.
const STDOUT_CLOSED_GRACE: Duration = Duration::from_secs(2);

/// How long a guard told to kill its worker may take to exit before it is killed outright: its
/// own bound on reaping the worker's descendants, and 5 s more.
const GUARD_EXIT_BOUND: Duration = Duration::from_secs(super::guard::REAP_BOUND.as_secs() + 5);

impl Handler<StdoutClosed> for WorkerActor {
    type Result = ();

    /// A worker that closed its stdout but keeps running would take every call and answer none:
    /// each run would wait out its timeout, and the worker would look healthy for ever. Unless it
    /// exits by itself within a moment (as a worker that is ending does), it is ended, and its
    /// exit counts as a crash.
    fn handle(&mut self, msg: StdoutClosed, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        ctx.run_later(STDOUT_CLOSED_GRACE, move |act, ctx| {
            if act.generation != msg.generation || act.pid.is_none() || act.stopping {
                return;
            }
            let reason = format!(
                "the worker of plugin {} closed its stdout but kept running, so it could answer \
                 nothing more",
                act.plugin()
            );
            log::warn!("{reason}; ending it");
            act.end_process(reason, Signal::SIGKILL, ctx);
        });
    }
}

/// Writing to the worker's stdin failed: the worker closed it (or is exiting).
#[derive(Message)]
#[rtype(result = "()")]
struct StdinClosed {
    generation: u64,
    error: String,
}

impl Handler<StdinClosed> for WorkerActor {
    type Result = ();

    /// A worker that closed its stdin but keeps running can take no call: every call already
    /// sent would wait out its run's timeout, and every later one would be refused while the
    /// worker looked healthy. Unless it exits by itself within a moment, it is ended, and its
    /// exit counts as a crash.
    fn handle(&mut self, msg: StdinClosed, ctx: &mut Self::Context) {
        if msg.generation != self.generation || self.stopping {
            return;
        }
        log::debug!(
            "writing to the stdin of the worker of plugin {} failed: {}",
            self.plugin(),
            msg.error
        );
        ctx.run_later(STDOUT_CLOSED_GRACE, move |act, ctx| {
            if act.generation != msg.generation || act.pid.is_none() || act.stopping {
                return;
            }
            let reason = format!(
                "the worker of plugin {} closed its stdin but kept running, so it could be sent \
                 nothing more ({})",
                act.plugin(),
                msg.error
            );
            log::warn!("{reason}; ending it");
            act.end_process(reason, Signal::SIGKILL, ctx);
        });
    }
}

impl Handler<Exited> for WorkerActor {
    type Result = ();

    fn handle(&mut self, msg: Exited, ctx: &mut Self::Context) {
        if msg.generation != self.generation {
            return;
        }
        self.pid = None;
        self.slot.lock().pid = None;
        let tail = self
            .stderr_tail
            .lock()
            .map(|tail| tail.trim().to_owned())
            .unwrap_or_default();
        let exited = format!(
            "the worker of plugin {} exited ({})",
            self.plugin(),
            msg.status
        );
        let exited = if tail.is_empty() {
            exited
        } else {
            format!("{exited}; stderr: {tail}")
        };
        let reason = match self.ending.take() {
            Some(reason) => format!("{reason}; {exited}"),
            None => exited,
        };
        if let Some(connection) = self.connection.take() {
            connection.close(WorkerError::new(codes::WORKER_UNAVAILABLE, reason.clone()));
        }
        for waiter in self.exit_waiters.drain(..) {
            let _ = waiter.send(());
        }
        if self.stopping {
            log::info!("{reason}");
            self.finish_stop(&reason);
            ctx.stop();
        } else if std::mem::take(&mut self.restart_requested) {
            log::warn!("{reason}; restarting now as asked");
            self.spawn_process(ctx);
        } else {
            self.crashed(reason, ctx);
        }
    }
}

impl Handler<RestartWorker> for WorkerActor {
    type Result = MessageResult<RestartWorker>;

    fn handle(&mut self, msg: RestartWorker, ctx: &mut Self::Context) -> Self::Result {
        let (gone, answer) = oneshot::channel();
        if self.pid.is_none() {
            let _ = gone.send(());
            return MessageResult(answer);
        }
        self.exit_waiters.push(gone);
        if self.stopping {
            // Being stopped already: the stop ends the process; no new one follows.
            return MessageResult(answer);
        }
        self.restart_requested = true;
        self.set_status(WorkerStatus::Restarting);
        let reason = format!(
            "the worker of plugin {} was restarted {}",
            self.plugin(),
            msg.why
        );
        self.end_process(reason, Signal::SIGKILL, ctx);
        MessageResult(answer)
    }
}

impl Handler<StopWorker> for WorkerActor {
    type Result = MessageResult<StopWorker>;

    fn handle(&mut self, _msg: StopWorker, ctx: &mut Self::Context) -> Self::Result {
        let (done, stopped) = oneshot::channel();
        self.stop_waiters.push(done);
        self.stopping = true;
        if self.pid.is_none() {
            self.finish_stop("the worker was not running");
            ctx.stop();
            return MessageResult(stopped);
        }
        self.set_status(WorkerStatus::Stopped);
        let config = &self.config;
        if let Some(connection) = &self.connection {
            // The answer does not matter: the process exiting is what the stop waits for.
            let ask = tokio::time::timeout(
                config.shutdown_timeout,
                connection.call("shutdown", &Value::Null),
            );
            actix_rt::spawn(async move {
                let _ = ask.await;
            });
        }
        let generation = self.generation;
        let (shutdown_timeout, terminate_timeout) =
            (config.shutdown_timeout, config.terminate_timeout);
        ctx.run_later(shutdown_timeout, move |act, ctx| {
            if act.generation != generation || act.pid.is_none() {
                return;
            }
            log::warn!(
                "the worker of plugin {} did not exit within {} ms of shutdown; sending SIGTERM",
                act.plugin(),
                shutdown_timeout.as_millis()
            );
            act.end_process("stopped with SIGTERM".to_owned(), Signal::SIGTERM, ctx);
            ctx.run_later(terminate_timeout, move |act, ctx| {
                if act.generation == generation && act.pid.is_some() {
                    log::warn!(
                        "the worker of plugin {} ignored SIGTERM; sending SIGKILL",
                        act.plugin()
                    );
                    act.ending = Some("stopped with SIGKILL: it ignored SIGTERM".to_owned());
                    act.signal(Signal::SIGKILL);
                    act.kill_stuck_guard_later(ctx);
                }
            });
        });
        MessageResult(stopped)
    }
}
