//! One live stdio connection to a worker process: the calls waiting for their answers (by id),
//! the queue of lines to write, and which runs' `runJob` calls are in flight, so that only their
//! `log` lines are kept ([`RunLogs`]). The hot path (call, answer) stays here, off the
//! `WorkerActor`'s mailbox, so one worker can take tens of thousands of calls a second.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::WorkerError;
use super::rpc::{self, RunJob};
use super::run_logs::RunLogs;

type Reply = oneshot::Sender<Result<Value, WorkerError>>;

#[derive(Debug)]
struct Pending {
    reply: Reply,
    run_id: Option<String>,
}

#[derive(Debug, Default)]
struct Calls {
    pending: HashMap<u64, Pending>,
    /// Run ids of `runJob` calls in flight: only their `log` lines are kept.
    runs: HashMap<String, u64>,
    /// Set once the process is gone: every later call fails with it at once.
    closed: Option<WorkerError>,
}

/// The host's side of one worker process.
#[derive(Debug)]
pub(super) struct Connection {
    plugin_id: String,
    writer: mpsc::UnboundedSender<String>,
    next_id: AtomicU64,
    calls: Mutex<Calls>,
    /// Where the `log` lines of this connection's `runJob` calls are kept.
    logs: Arc<RunLogs>,
}

impl Connection {
    /// A connection whose lines go to `writer` (see [`write_lines`]); the log lines of its runs
    /// go to `logs` while their calls are in flight.
    pub(super) fn new(
        plugin_id: &str,
        writer: mpsc::UnboundedSender<String>,
        logs: Arc<RunLogs>,
    ) -> Self {
        Self {
            plugin_id: plugin_id.to_owned(),
            writer,
            next_id: AtomicU64::new(1),
            calls: Mutex::new(Calls::default()),
            logs,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Calls> {
        // Nothing panics under this lock; a poisoned one still holds consistent maps.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends a request; the future resolves with its answer, or with the close error when the
    /// process goes away first. It has no deadline of its own: a caller that wants one wraps it
    /// (the handshake does; a run's timeout is its `JobRunActor`'s). Dropping the future forgets
    /// the call, so a late answer is dropped as an unknown id.
    pub(super) fn call(
        self: &Arc<Self>,
        method: &str,
        params: &Value,
    ) -> impl Future<Output = Result<Value, WorkerError>> + Send + 'static + use<> {
        self.send(method, params, None)
    }

    /// Sends `runJob`; while it is in flight the run's `log` lines are kept in [`RunLogs`].
    pub(super) fn run_job(
        self: &Arc<Self>,
        job: &RunJob,
    ) -> impl Future<Output = Result<Value, WorkerError>> + Send + 'static + use<> {
        self.send(rpc::RUN_JOB, &job.to_params(), Some(job.run_id.clone()))
    }

    fn send(
        self: &Arc<Self>,
        method: &str,
        params: &Value,
        run_id: Option<String>,
    ) -> impl Future<Output = Result<Value, WorkerError>> + Send + 'static + use<> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let line = rpc::request(id, method, params);
        // What a worker reads of it: the line without its newline.
        let bytes = line.len() - 1;
        let refused = {
            let mut calls = self.lock();
            match &calls.closed {
                Some(err) => Some(err.clone()),
                // The worker would drop the line unread and the call would wait forever.
                None if bytes > rpc::MAX_LINE_BYTES => {
                    Some(rpc::WorkerError::too_long(method, bytes))
                }
                None => {
                    if let Some(run_id) = &run_id {
                        calls.runs.insert(run_id.clone(), id);
                        self.logs.open(run_id);
                    }
                    calls.pending.insert(id, Pending { reply, run_id });
                    None
                }
            }
        };
        let sent = refused.is_none() && self.writer.send(line).is_ok();
        let guard = CallGuard {
            connection: Arc::clone(self),
            id,
        };
        let unavailable = refused.unwrap_or_else(|| WorkerError::unavailable(&self.plugin_id));
        async move {
            let _guard = guard;
            if !sent {
                return Err(unavailable);
            }
            answer.await.unwrap_or(Err(unavailable))
        }
    }

    /// Sends a notification. Nothing happens when the process is gone.
    pub(super) fn notify(&self, method: &str, params: &Value) {
        if self.lock().closed.is_none() {
            let _ = self.writer.send(rpc::notification(method, params));
        }
    }

    /// Sends a raw line (answers to the worker's own requests).
    pub(super) fn send_line(&self, line: String) {
        let _ = self.writer.send(line);
    }

    /// Whether the call with `id` is waiting for its answer.
    pub(super) fn is_waiting(&self, id: u64) -> bool {
        self.lock().pending.contains_key(&id)
    }

    /// Hands an answer to its caller. False when no call has that id (never sent, already
    /// answered, or given up on).
    pub(super) fn resolve(&self, id: &Value, result: Result<Value, WorkerError>) -> bool {
        let Some(id) = id.as_u64() else {
            return false;
        };
        let pending = {
            let mut calls = self.lock();
            let pending = calls.pending.remove(&id);
            if let Some(run_id) = pending.as_ref().and_then(|p| p.run_id.as_ref()) {
                calls.runs.remove(run_id);
                self.logs.close(run_id);
            }
            pending
        };
        match pending {
            Some(pending) => {
                // The caller may have gone since; then the answer has nobody to tell.
                let _ = pending.reply.send(result);
                true
            }
            None => false,
        }
    }

    /// True while a `runJob` call for `run_id` waits for its answer.
    pub(super) fn run_in_flight(&self, run_id: &str) -> bool {
        self.lock().runs.contains_key(run_id)
    }

    /// Number of calls waiting for an answer.
    pub(super) fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Fails every waiting call with `error`, and every later one too.
    pub(super) fn close(&self, error: WorkerError) {
        let pending = {
            let mut calls = self.lock();
            calls.closed = Some(error.clone());
            for (run_id, _) in calls.runs.drain() {
                self.logs.close(&run_id);
            }
            std::mem::take(&mut calls.pending)
        };
        for (_, call) in pending {
            let _ = call.reply.send(Err(error.clone()));
        }
    }

    fn forget(&self, id: u64) {
        let mut calls = self.lock();
        if let Some(Pending {
            run_id: Some(run_id),
            ..
        }) = calls.pending.remove(&id)
        {
            calls.runs.remove(&run_id);
            self.logs.close(&run_id);
        }
    }
}

/// Forgets a call whose caller stopped waiting.
struct CallGuard {
    connection: Arc<Connection>,
    id: u64,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.connection.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CAP: usize = 64 * 1024;

    fn connection() -> (Arc<Connection>, mpsc::UnboundedReceiver<String>) {
        let (writer, lines) = mpsc::unbounded_channel();
        let logs = Arc::new(RunLogs::new(CAP));
        (Arc::new(Connection::new("p", writer, logs)), lines)
    }

    fn run_job(run_id: &str) -> RunJob {
        RunJob::new("k", run_id, "manual", "")
    }

    #[tokio::test]
    async fn an_answered_call_hands_its_lines_over_once_and_keeps_nothing_after() {
        let (connection, mut lines) = connection();
        let call = connection.run_job(&run_job("r"));
        connection.logs.keep("r", "info", "during");
        assert!(lines.recv().await.is_some(), "the request was written");
        assert!(connection.resolve(&json!(1), Ok(Value::Null)));
        assert_eq!(call.await, Ok(Value::Null));
        connection.logs.keep("r", "info", "after the answer");
        let taken = connection.logs.take("r").expect("lines");
        assert_eq!(taken.as_array().map(Vec::len), Some(1));
        assert_eq!(connection.logs.buffered_runs(), 0);
    }

    #[tokio::test]
    async fn a_request_longer_than_a_worker_reads_is_refused_unsent() {
        let (connection, mut lines) = connection();
        let params = json!({"manifest": "m".repeat(rpc::MAX_LINE_BYTES)});
        let err = connection
            .call("initialize", &params)
            .await
            .expect_err("refused");
        assert_eq!(err.code, rpc::codes::INVALID_REQUEST);
        assert!(
            err.message
                .starts_with("the initialize request is 1048647 bytes long")
                && err.message.contains("1 MiB")
                && err.message.ends_with("it was not sent"),
            "{}",
            err.message
        );
        assert!(lines.try_recv().is_err(), "nothing was written");
        assert_eq!(connection.in_flight(), 0);
        // A line of exactly the limit, its newline aside, is what a worker still reads: sent.
        let envelope = rpc::request(2, "initialize", &json!({"manifest": ""})).len() - 1;
        let params = json!({"manifest": "m".repeat(rpc::MAX_LINE_BYTES - envelope)});
        let call = connection.call("initialize", &params);
        let line = lines.try_recv().expect("the request was written at once");
        assert_eq!(line.trim_end_matches('\n').len(), rpc::MAX_LINE_BYTES);
        assert!(connection.resolve(&json!(2), Ok(Value::Null)));
        assert_eq!(call.await, Ok(Value::Null));
    }

    #[tokio::test]
    async fn a_call_given_up_on_releases_its_buffer() {
        let (connection, _lines) = connection();
        let call = connection.run_job(&run_job("r"));
        connection.logs.keep("r", "info", "before the timeout");
        // The scheduler's timeout: the outcome is recorded with the lines so far while the
        // call still waits for a late answer; lines after that are dropped.
        let taken = connection.logs.take("r").expect("lines");
        assert_eq!(taken.as_array().map(Vec::len), Some(1));
        for _ in 0..1_000 {
            connection.logs.keep("r", "info", "late");
        }
        assert_eq!(connection.logs.take("r"), None);
        drop(call);
        assert_eq!(connection.logs.buffered_runs(), 0);
        assert_eq!(connection.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_closed_connection_releases_the_buffers_of_its_calls() {
        let (connection, _lines) = connection();
        let first = connection.run_job(&run_job("a"));
        let second = connection.run_job(&run_job("b"));
        connection.logs.keep("a", "info", "a line");
        connection.close(WorkerError::unavailable("p"));
        assert!(first.await.is_err());
        assert!(second.await.is_err());
        assert!(
            connection.logs.take("a").is_some(),
            "lines before the exit are kept"
        );
        assert_eq!(connection.logs.take("b"), None);
        assert_eq!(connection.logs.buffered_runs(), 0);
    }
}
