//! The Rust SDK for writing workers: register an async handler per job key, then serve the
//! protocol (DESIGN §5) on stdin/stdout. Each run gets a [`Run`] with its ids, a cancellation
//! signal driven by `cancelJob`, and [`Run::log`] to send `log` lines that the host stores with
//! the run.
//!
//! ```no_run
//! use plugin_jobs::worker::sdk::Worker;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() -> std::io::Result<()> {
//!     Worker::new()
//!         .job("heartbeat", |run| async move {
//!             run.info("still alive");
//!             Ok(())
//!         })
//!         .serve_stdio()
//!         .await
//! }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::pipes::write_lines;
use super::rpc::{self, CancelJob, Line, Message, RunJob, RunOutcome};
use super::{WorkerError, codes};

/// A job handler: `Ok` means the run succeeded, `Err(message)` that it failed with `message`.
pub type Handler = Arc<dyn Fn(Run) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One run, as its handler sees it.
pub struct Run {
    pub job_key: String,
    pub run_id: String,
    /// `schedule`, `manual`, `retry` or `backfill`.
    pub trigger: String,
    /// The slot, or the time of the request, as ISO 8601.
    pub scheduled_at: String,
    /// The run's W3C trace context (`00-<trace id>-<span id>-01`), for the worker's own traces.
    pub traceparent: Option<String>,
    /// 1 for the first run of a slot, 2 for its first retry, …
    pub attempt: u32,
    /// For a retry: the id of the slot's first run.
    pub retry_of: Option<uuid::Uuid>,
    /// The run's payload: its job's, or a trigger's one-off payload (`None` when it has none).
    pub payload: Option<serde_json::Value>,
    cancelled: watch::Receiver<Option<String>>,
    out: mpsc::UnboundedSender<String>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("job_key", &self.job_key)
            .field("run_id", &self.run_id)
            .field("trigger", &self.trigger)
            .finish_non_exhaustive()
    }
}

impl Run {
    /// Sends a `log` line for this run at `level` (`debug`, `info`, `warn`, `error`).
    pub fn log(&self, level: &str, message: impl fmt::Display) {
        let params = json!({"runId": self.run_id, "level": level, "message": message.to_string()});
        let _ = self.out.send(rpc::notification("log", &params));
    }

    pub fn info(&self, message: impl fmt::Display) {
        self.log("info", message);
    }

    /// The reason, once the host cancelled this run.
    pub fn cancel_reason(&self) -> Option<String> {
        self.cancelled.borrow().clone()
    }

    /// Resolves with the reason when the host cancels this run (`cancelJob`, or shutdown).
    /// Race it against the work with `tokio::select!`.
    pub async fn cancelled(&self) -> String {
        let mut cancelled = self.cancelled.clone();
        loop {
            if let Some(reason) = cancelled.borrow_and_update().clone() {
                return reason;
            }
            if cancelled.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The worker side of the protocol: handlers by job key, served on a pair of streams.
#[derive(Clone, Default)]
pub struct Worker {
    handlers: HashMap<String, Handler>,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("jobs", &self.handlers.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Default)]
struct Runs {
    cancels: HashMap<String, watch::Sender<Option<String>>>,
}

impl Worker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the handler of `job_key`.
    pub fn job<F, Fut>(mut self, job_key: &str, handler: F) -> Self
    where
        F: Fn(Run) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.handlers.insert(
            job_key.to_owned(),
            Arc::new(move |run| handler(run).boxed()),
        );
        self
    }

    /// Serves the protocol on this process's stdin and stdout until `shutdown` or until stdin
    /// closes. Anything else the program prints must go to stderr.
    pub async fn serve_stdio(self) -> std::io::Result<()> {
        self.serve(tokio::io::stdin(), tokio::io::stdout()).await
    }

    /// Serves the protocol on any pair of streams (tests use in-memory pipes).
    pub async fn serve<R, W>(self, input: R, output: W) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out, lines) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_lines(output, lines));
        let runs = Arc::new(Mutex::new(Runs::default()));
        let mut tasks = JoinSet::new();
        let mut input = BufReader::new(input);
        let shutdown_id = loop {
            let line = match rpc::read_text_line(&mut input, rpc::MAX_LINE_BYTES).await? {
                Line::Text(line) => line,
                Line::Oversized { bytes, .. } => {
                    eprintln!("dropped an input line of {bytes} bytes");
                    continue;
                }
                Line::Eof => break None,
            };
            if line.trim().is_empty() {
                continue;
            }
            match rpc::parse(&line) {
                Ok(Message::Request { id, method, params }) => match method.as_str() {
                    "initialize" => {
                        let result = json!({
                            "ok": true,
                            "supportedMethods": ["initialize", "runJob", "cancelJob", "shutdown"],
                            "jobs": self.handlers.keys().collect::<Vec<_>>(),
                        });
                        let _ = out.send(rpc::response(&id, &Ok(result)));
                    }
                    rpc::RUN_JOB => self.start_run(id, &params, &runs, &out, &mut tasks),
                    "shutdown" => break Some(id),
                    other => {
                        let err = WorkerError::new(
                            codes::METHOD_NOT_FOUND,
                            format!("Method not found: {other}"),
                        );
                        let _ = out.send(rpc::response(&id, &Err(err)));
                    }
                },
                Ok(Message::Notification { method, params }) if method == rpc::CANCEL_JOB => {
                    let CancelJob { run_id, reason } = CancelJob::from_params(&params);
                    if let Some(cancel) = lock(&runs).cancels.get(&run_id) {
                        cancel.send_replace(Some(reason));
                    }
                }
                Ok(Message::Notification { .. } | Message::Response { .. }) => {}
                Err(bad) => {
                    eprintln!("dropped an input line ({bad})");
                    if let Some(id) = bad.id {
                        let err = WorkerError::new(bad.code, bad.message);
                        let _ = out.send(rpc::response(&id, &Err(err)));
                    }
                }
            }
        };
        // Shutting down (or the host is gone): cancel what still runs and let it finish.
        for cancel in lock(&runs).cancels.values() {
            cancel.send_replace(Some("worker shutting down".to_owned()));
        }
        while tasks.join_next().await.is_some() {}
        if let Some(id) = shutdown_id {
            let _ = out.send(rpc::response(&id, &Ok(Value::Null)));
        }
        drop(out);
        writer.await.map_err(std::io::Error::other)?
    }

    fn start_run(
        &self,
        id: Value,
        params: &Value,
        runs: &Arc<Mutex<Runs>>,
        out: &mpsc::UnboundedSender<String>,
        tasks: &mut JoinSet<()>,
    ) {
        let job = match RunJob::from_params(params) {
            Ok(job) => job,
            Err(err) => {
                let _ = out.send(rpc::response(&id, &Err(err)));
                return;
            }
        };
        let Some(handler) = self.handlers.get(&job.job_key).cloned() else {
            let err = WorkerError::new(
                codes::INVALID_PARAMS,
                format!("this worker has no job {:?}", job.job_key),
            );
            let _ = out.send(rpc::response(&id, &Err(err)));
            return;
        };
        let (cancel, cancelled) = watch::channel(None);
        let run_id = job.run_id.clone();
        lock(runs).cancels.insert(run_id.clone(), cancel);
        let run = Run {
            job_key: job.job_key,
            run_id: job.run_id,
            trigger: job.trigger,
            scheduled_at: job.scheduled_at,
            traceparent: job.traceparent,
            attempt: job.attempt,
            retry_of: job.retry_of,
            payload: job.payload,
            cancelled,
            out: out.clone(),
        };
        let (runs, out) = (Arc::clone(runs), out.clone());
        tasks.spawn(async move {
            // A panicking handler fails its run instead of taking the worker down.
            let outcome = std::panic::AssertUnwindSafe(handler(run))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err("the job's handler panicked".to_owned()));
            lock(&runs).cancels.remove(&run_id);
            let _ = out.send(rpc::response(&id, &RunOutcome::answer(outcome)));
        });
        // Reap finished tasks so a long-lived worker does not keep their results.
        while tasks.try_join_next().is_some() {}
    }
}

fn lock(runs: &Mutex<Runs>) -> MutexGuard<'_, Runs> {
    runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
