//! Plugins as child processes speaking JSON-RPC over stdio (DESIGN §5).
//!
//! [`ProcessWorkers`] is the `WorkerManager`; it owns one [`WorkerActor`] per plugin. The actor
//! owns the process's life: spawn with an environment allowlist, the `initialize` handshake,
//! restarts with backoff after a crash (and giving up after too many), restarts on request, and
//! the graceful stop (`shutdown`, then SIGTERM, then SIGKILL). Calls and answers bypass the actor:
//! they go through the process's [`Connection`], which the reader task resolves directly.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::connection::{Connection, RunLogs, write_lines};
use super::rpc::{self, CancelJob, Line, Message, RunJob, RunOutcome};
use super::{RunCall, WorkerError, WorkerManager, WorkerStatus, codes};

/// How to start one plugin's worker: its manifest's `command`, `env` and folder.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginProcess {
    pub plugin_id: String,
    /// Program and arguments. A program starting with `./` is relative to `dir`; a bare name is
    /// looked up in the child's `PATH`.
    pub command: Vec<String>,
    /// The plugin folder: the worker's working directory.
    pub dir: PathBuf,
    /// Added to the allowlisted environment.
    pub env: BTreeMap<String, String>,
    /// Sent in `initialize` as `manifest`.
    pub manifest: Value,
    /// Sent in `initialize` as `config`.
    pub config: Value,
}

/// Timings and limits of process workers; the defaults are DESIGN §5's.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessWorkerConfig {
    pub handshake_timeout: Duration,
    /// Wait after the `shutdown` request before SIGTERM.
    pub shutdown_timeout: Duration,
    /// Wait after SIGTERM before SIGKILL.
    pub terminate_timeout: Duration,
    /// First restart delay after a crash; it doubles per crash in the window.
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
    /// More crashes than this within `crash_window` and the worker is given up on.
    pub crash_limit: usize,
    pub crash_window: Duration,
    /// Cap on the `log` lines kept per run, in bytes as stored (every entry's timestamp, level,
    /// message and JSON punctuation count).
    pub log_cap_bytes: usize,
    /// How much of the end of stderr is kept for error messages.
    pub stderr_tail_bytes: usize,
    /// Folders put in front of the worker's `PATH` (the server adds its own, so bundled workers
    /// are found by name).
    pub extra_path: Vec<PathBuf>,
    /// Sent in `initialize` as `instanceInfo.instanceId`.
    pub instance_id: String,
    /// A program that acts as the worker guard (see [`super::guard`]) when given
    /// [`GUARD_ARG`](super::guard::GUARD_ARG) as its first argument: every worker is then
    /// started under it, so the worker and all it starts die with the host, even on `SIGKILL`.
    /// `plugin-jobs serve` names its own binary. Without a guard, every signal still goes to the
    /// worker's whole process group and every exit path kills that group, but a host killed
    /// with `SIGKILL` leaves the worker to notice its closed stdin by itself.
    pub guard: Option<PathBuf>,
}

impl Default for ProcessWorkerConfig {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(15),
            shutdown_timeout: Duration::from_secs(10),
            terminate_timeout: Duration::from_secs(5),
            restart_backoff: Duration::from_secs(1),
            max_restart_backoff: Duration::from_secs(5 * 60),
            crash_limit: 10,
            crash_window: Duration::from_secs(10 * 60),
            log_cap_bytes: 64 * 1024,
            stderr_tail_bytes: 4 * 1024,
            extra_path: Vec::new(),
            instance_id: String::new(),
            guard: None,
        }
    }
}

/// Restart delay after `crashes` crashes in the window: `base` doubling per crash, capped at
/// `max`, then moved by `jitter` (in -1..=1) times 25 %.
pub fn restart_delay(base: Duration, max: Duration, crashes: usize, jitter: f64) -> Duration {
    let doublings = u32::try_from(crashes.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(30);
    let delay = base.saturating_mul(1 << doublings).min(max);
    delay.mul_f64(1.0 + 0.25 * jitter.clamp(-1.0, 1.0))
}

#[derive(Debug)]
struct SlotState {
    status: WorkerStatus,
    connection: Option<Arc<Connection>>,
    pid: Option<u32>,
    last_error: Option<String>,
    starts: u64,
}

/// What the manager and the API see of one plugin's worker.
#[derive(Debug)]
struct Slot {
    state: Mutex<SlotState>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A started plugin: what the API reads, and the actor that owns the process.
type Registered = (Arc<Slot>, Addr<WorkerActor>);

#[derive(Debug)]
struct Shared {
    config: ProcessWorkerConfig,
    workers: RwLock<HashMap<String, Registered>>,
    logs: Arc<RunLogs>,
}

impl Shared {
    fn slot(&self, plugin_id: &str) -> Option<Arc<Slot>> {
        let workers = self
            .workers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        workers.get(plugin_id).map(|(slot, _)| Arc::clone(slot))
    }

    fn actor(&self, plugin_id: &str) -> Option<Addr<WorkerActor>> {
        let workers = self
            .workers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        workers.get(plugin_id).map(|(_, actor)| actor.clone())
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
        let workers = self
            .shared
            .workers
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
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
                config,
                workers: RwLock::new(HashMap::new()),
                logs,
            }),
        }
    }

    /// Starts a plugin's worker (call inside an actix System). Its status is `starting` until the
    /// handshake succeeds. A plugin that already has a worker keeps it: stop it first.
    pub fn start(&self, process: PluginProcess) -> crate::Result<()> {
        let mut workers = self
            .shared
            .workers
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if workers.contains_key(&process.plugin_id) {
            return Err(crate::Error::InvalidInput(format!(
                "plugin {} already has a worker",
                process.plugin_id
            )));
        }
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                status: WorkerStatus::Starting,
                connection: None,
                pid: None,
                last_error: None,
                starts: 0,
            }),
        });
        let plugin_id = process.plugin_id.clone();
        let actor = WorkerActor::new(process, Arc::clone(&self.shared), Arc::clone(&slot)).start();
        workers.insert(plugin_id, (slot, actor));
        Ok(())
    }

    /// Stops a plugin's worker gracefully and forgets it: `shutdown`, then SIGTERM after the
    /// shutdown timeout, then SIGKILL. Resolves once the process is gone, with how it ended
    /// (`None` when the plugin had no worker).
    pub async fn stop(&self, plugin_id: &str) -> Option<String> {
        let actor = {
            let mut workers = self
                .shared
                .workers
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            workers.remove(plugin_id).map(|(_, actor)| actor)
        };
        let done = actor?.send(StopWorker).await.ok()?;
        done.await.ok()
    }

    /// Stops every worker at once and waits for all of them.
    pub async fn stop_all(&self) {
        let plugins: Vec<String> = {
            let workers = self
                .shared
                .workers
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
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

    fn status(&self, plugin_id: &str) -> WorkerStatus {
        self.shared
            .slot(plugin_id)
            .map_or(WorkerStatus::Stopped, |slot| slot.lock().status)
    }

    /// Every process started after the first one is a restart.
    fn restarts(&self, plugin_id: &str) -> u64 {
        self.starts(plugin_id).saturating_sub(1)
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
        let actor = self.shared.actor(plugin_id);
        async move {
            if let Some(actor) = actor
                && let Ok(gone) = actor.send(RestartWorker).await
            {
                let _ = gone.await;
            }
        }
        .boxed()
    }
}

/// Ends the current process (SIGKILL to its whole group) and starts a new one at once, without
/// counting a crash. Answers a receiver that resolves once the old process group is gone.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "oneshot::Receiver<()>")]
struct RestartWorker;

/// Stops the worker for good; answers a receiver that resolves once the process is gone.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "oneshot::Receiver<String>")]
struct StopWorker;

/// The process of generation `generation` exited.
#[derive(Message, Debug)]
#[rtype(result = "()")]
struct Exited {
    generation: u64,
    status: String,
}

/// Owns one plugin's worker process over its restarts.
#[derive(Debug)]
pub struct WorkerActor {
    process: PluginProcess,
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    /// Increases with every spawn; events of older processes are ignored.
    generation: u64,
    pid: Option<u32>,
    connection: Option<Arc<Connection>>,
    stderr_tail: Arc<Mutex<String>>,
    crashes: VecDeque<Instant>,
    /// Why the current process is being ended by us, when it is.
    ending: Option<String>,
    restart_requested: bool,
    /// Told when the current process (and its group) is gone.
    exit_waiters: Vec<oneshot::Sender<()>>,
    stopping: bool,
    stop_waiters: Vec<oneshot::Sender<String>>,
}

impl WorkerActor {
    fn new(process: PluginProcess, shared: Arc<Shared>, slot: Arc<Slot>) -> Self {
        Self {
            process,
            shared,
            slot,
            generation: 0,
            pid: None,
            connection: None,
            stderr_tail: Arc::new(Mutex::new(String::new())),
            crashes: VecDeque::new(),
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

    fn command(&self) -> Result<tokio::process::Command, String> {
        let Some((program, args)) = self.process.command.split_first() else {
            return Err("the manifest's command is empty".to_owned());
        };
        let program = if program.starts_with("./") {
            self.process.dir.join(program)
        } else {
            PathBuf::from(program)
        };
        let config = &self.shared.config;
        let mut paths: Vec<PathBuf> = config.extra_path.clone();
        if let Some(path) = std::env::var_os("PATH") {
            paths.extend(std::env::split_paths(&path));
        }
        let path = std::env::join_paths(paths).map_err(|err| format!("bad PATH: {err}"))?;
        let mut command = match &config.guard {
            Some(guard) => {
                let mut command = tokio::process::Command::new(guard);
                command
                    .arg(super::guard::GUARD_ARG)
                    .arg(std::process::id().to_string())
                    .arg(program);
                command
            }
            None => tokio::process::Command::new(program),
        };
        command
            .args(args)
            .current_dir(&self.process.dir)
            .env_clear()
            .env("PATH", path)
            .env("TZ", "UTC")
            .env("PLUGIN_JOBS_PLUGIN_ID", self.plugin())
            .envs(&self.process.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a Ctrl-C meant for the host must not kill the worker under
            // runs that the host's shutdown lets finish, and every signal of ours reaches all
            // that the worker started.
            .process_group(0)
            // Killing a guard with SIGKILL would orphan its worker; it is told to end instead.
            .kill_on_drop(config.guard.is_none());
        if let Some(home) = std::env::var_os("HOME") {
            command.env("HOME", home);
        }
        Ok(command)
    }

    fn spawn_process(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        self.ending = None;
        self.set_status(WorkerStatus::Starting);
        let spawned = self
            .command()
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
            Arc::clone(&self.shared.logs),
        ));
        self.connection = Some(Arc::clone(&connection));
        self.pid = child.id();
        {
            let mut state = self.slot.lock();
            state.pid = self.pid;
            state.starts += 1;
        }
        self.stderr_tail = Arc::new(Mutex::new(String::new()));
        let plugin = self.plugin().to_owned();
        actix_rt::spawn(async move {
            if let Err(err) = write_lines(stdin, queued).await {
                log::debug!("stdin of the worker of plugin {plugin} closed: {err}");
            }
        });
        actix_rt::spawn(read_stderr(
            BufReader::new(stderr),
            self.plugin().to_owned(),
            Arc::clone(&self.stderr_tail),
            self.shared.config.stderr_tail_bytes,
        ));
        let reader = actix_rt::spawn(read_stdout(
            BufReader::new(stdout),
            self.plugin().to_owned(),
            Arc::clone(&connection),
            Arc::clone(&self.shared),
        ));
        let generation = self.generation;
        let actor = ctx.address();
        let group = self.pid.and_then(|pid| i32::try_from(pid).ok());
        actix_rt::spawn(async move {
            let status = match child.wait().await {
                Ok(status) => status.to_string(),
                Err(err) => format!("unknown exit status ({err})"),
            };
            // Whatever the worker left running in its group goes with it (a guard has already
            // done this for its worker's group; then the guard's own group is empty).
            if let Some(group) = group {
                kill_group_and_wait(Pid::from_raw(group)).await;
            }
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
                "instanceId": self.shared.config.instance_id,
                "hostVersion": env!("CARGO_PKG_VERSION"),
            },
            "apiVersion": 1,
        });
        // The handshake's deadline is the one timeout kept on this side of the seam.
        let handshake = tokio::time::timeout(
            self.shared.config.handshake_timeout,
            connection.call("initialize", &params),
        );
        ctx.spawn(handshake.into_actor(self).map(move |answer, act, _ctx| {
            act.on_handshake(generation, answer.ok());
        }));
    }

    /// The answer to `initialize`, or `None` when none came within the handshake timeout.
    fn on_handshake(&mut self, generation: u64, answer: Option<Result<Value, WorkerError>>) {
        if generation != self.generation || self.ending.is_some() || self.stopping {
            return;
        }
        let refusal = match answer {
            Some(Ok(result)) if result.get("ok") == Some(&Value::Bool(true)) => None,
            Some(Ok(result)) => Some(format!(
                "answered initialize without \"ok\": true: {result}"
            )),
            None => Some(format!(
                "did not answer initialize within {} ms",
                self.shared.config.handshake_timeout.as_millis()
            )),
            Some(Err(err)) => Some(format!("failed initialize: {err}")),
        };
        match refusal {
            None => {
                let mut state = self.slot.lock();
                state.status = WorkerStatus::Running;
                state.connection = self.connection.clone();
                log::info!("the worker of plugin {} is running", self.plugin());
            }
            Some(refusal) => {
                let message = format!("the worker of plugin {} {refusal}", self.plugin());
                log::error!("{message}; killing it");
                self.end_process(message, Signal::SIGKILL);
            }
        }
    }

    /// Signals the current process; `reason` becomes the error of its pending calls.
    fn end_process(&mut self, reason: String, signal: Signal) {
        self.ending.get_or_insert(reason);
        self.signal(signal);
    }

    /// Signals the current worker's whole process group. Under a guard, `SIGKILL` becomes the
    /// guard's kill signal (the guard kills the worker's group and exits once it is gone) and
    /// other signals go to the guard, which forwards them.
    fn signal(&self, signal: Signal) {
        let Some(pid) = self.pid.and_then(|pid| i32::try_from(pid).ok()) else {
            return;
        };
        let pid = Pid::from_raw(pid);
        let sent = match (&self.shared.config.guard, signal) {
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
    fn crashed(&mut self, message: String, ctx: &mut Context<Self>) {
        self.set_error(&message);
        let now = Instant::now();
        let window = self.shared.config.crash_window;
        self.crashes.push_back(now);
        while self
            .crashes
            .front()
            .is_some_and(|&at| now.duration_since(at) > window)
        {
            self.crashes.pop_front();
        }
        let crashes = self.crashes.len();
        if crashes > self.shared.config.crash_limit {
            log::error!(
                "giving up on the worker of plugin {}: {crashes} crashes within {} s; last: {message}",
                self.plugin(),
                window.as_secs()
            );
            self.set_status(WorkerStatus::Failed);
            return;
        }
        let jitter = (uuid::Uuid::new_v4().as_u128() % 2001) as f64 / 1000.0 - 1.0;
        let config = &self.shared.config;
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

    fn handle(&mut self, _msg: RestartWorker, _ctx: &mut Self::Context) -> Self::Result {
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
        let reason = format!("the worker of plugin {} was restarted", self.plugin());
        self.end_process(reason, Signal::SIGKILL);
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
        let config = &self.shared.config;
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
            act.end_process("stopped with SIGTERM".to_owned(), Signal::SIGTERM);
            ctx.run_later(terminate_timeout, move |act, _ctx| {
                if act.generation == generation && act.pid.is_some() {
                    log::warn!(
                        "the worker of plugin {} ignored SIGTERM; sending SIGKILL",
                        act.plugin()
                    );
                    act.signal(Signal::SIGKILL);
                }
            });
        });
        MessageResult(stopped)
    }
}

/// How long an exit path waits for a worker's process group to be gone.
const GROUP_EXIT_BOUND: Duration = Duration::from_secs(5);

/// Sends `SIGKILL` to a process group and waits (up to a bound) until no process of it is left.
async fn kill_group_and_wait(group: Pid) {
    let deadline = Instant::now() + GROUP_EXIT_BOUND;
    loop {
        match killpg(group, Signal::SIGKILL) {
            Err(Errno::ESRCH) => return,
            Err(err) => {
                log::warn!("could not kill process group {group}: {err}");
                return;
            }
            // Killed members that nobody reaps linger as zombies: they run nothing.
            Ok(()) if !group_has_living_member(group) => return,
            Ok(()) if Instant::now() >= deadline => {
                log::error!(
                    "process group {group} still has members {} s after SIGKILL",
                    GROUP_EXIT_BOUND.as_secs()
                );
                return;
            }
            Ok(()) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Whether a process of `group` is still alive (not a zombie). Without `/proc` to look at,
/// every member counts as alive.
fn group_has_living_member(group: Pid) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|pgrp| pgrp.parse::<i32>().ok());
        pgrp == Some(group.as_raw()) && !matches!(state, Some("Z" | "X"))
    })
}

async fn read_stdout<R: AsyncBufRead + Unpin>(
    mut stdout: R,
    plugin: String,
    connection: Arc<Connection>,
    shared: Arc<Shared>,
) {
    loop {
        let line = match rpc::read_line(&mut stdout, rpc::MAX_LINE_BYTES).await {
            Ok(Line::Text(line)) => line,
            Ok(Line::Oversized(bytes)) => {
                log::warn!(
                    "plugin {plugin}: dropped a stdout line of {bytes} bytes (too long or not UTF-8)"
                );
                continue;
            }
            Ok(Line::Eof) => return,
            Err(err) => {
                log::warn!("plugin {plugin}: reading stdout failed: {err}");
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match rpc::parse(&line) {
            Ok(Message::Response { id, result }) => {
                if !connection.resolve(&id, result) {
                    log::warn!("plugin {plugin}: dropped a response with unknown id {id}");
                }
            }
            Ok(Message::Notification { method, params }) if method == "log" => {
                worker_log(&plugin, &params, &connection, &shared);
            }
            Ok(Message::Notification { method, .. }) => {
                log::debug!("plugin {plugin}: ignored notification {method}");
            }
            Ok(Message::Request { id, method, .. }) => {
                let refusal = WorkerError::new(
                    codes::METHOD_NOT_FOUND,
                    format!("the host has no method {method}"),
                );
                connection.send_line(rpc::response(&id, &Err(refusal)));
            }
            Err(bad) => {
                let shown: String = line.chars().take(200).collect();
                log::warn!(
                    "plugin {plugin}: dropped a stdout line that is not JSON-RPC ({bad}): {shown}"
                );
            }
        }
    }
}

/// A `log` notification: to the host's log, and to the run's `logs` when it names a run in flight.
fn worker_log(plugin: &str, params: &Value, connection: &Connection, shared: &Shared) {
    let Some(message) = params.get("message").and_then(Value::as_str) else {
        log::warn!("plugin {plugin}: dropped a log notification without a string \"message\"");
        return;
    };
    let level = params
        .get("level")
        .and_then(Value::as_str)
        .unwrap_or("info");
    let host_level = match level {
        "error" => log::Level::Error,
        "warn" | "warning" => log::Level::Warn,
        "debug" => log::Level::Debug,
        "trace" => log::Level::Trace,
        _ => log::Level::Info,
    };
    let run_id = params.get("runId").and_then(Value::as_str);
    log::log!(
        host_level,
        "[{plugin}{}] {message}",
        run_id.map(|id| format!(" run {id}")).unwrap_or_default()
    );
    if let Some(run_id) = run_id
        && connection.run_in_flight(run_id)
    {
        shared.logs.keep(run_id, level, message);
    }
}

async fn read_stderr<R: AsyncBufRead + Unpin>(
    mut stderr: R,
    plugin: String,
    tail: Arc<Mutex<String>>,
    keep: usize,
) {
    loop {
        let line = match rpc::read_line(&mut stderr, rpc::MAX_LINE_BYTES).await {
            Ok(Line::Text(line)) => line,
            Ok(Line::Oversized(bytes)) => format!("<{bytes} bytes>"),
            Ok(Line::Eof) | Err(_) => return,
        };
        log::info!("[{plugin} stderr] {line}");
        let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.push_str(&line);
        tail.push('\n');
        if tail.len() > keep {
            let mut cut = tail.len() - keep;
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_delay_doubles_from_one_second_to_five_minutes() {
        let (base, max) = (Duration::from_secs(1), Duration::from_secs(300));
        let delays: Vec<u64> = (1..=11)
            .map(|n| restart_delay(base, max, n, 0.0).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(
            restart_delay(base, max, 1, 1.0),
            Duration::from_millis(1250)
        );
        assert_eq!(
            restart_delay(base, max, 1, -1.0),
            Duration::from_millis(750)
        );
        assert_eq!(
            restart_delay(base, max, 1, 9.0),
            Duration::from_millis(1250)
        );
    }
}
