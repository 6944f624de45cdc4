//! One live stdio connection to a worker process: the calls waiting for their answers, the line
//! writer, and the runs whose `log` lines may be kept. The hot path (call, answer) stays here,
//! off the `WorkerActor`'s mailbox, so one worker can take tens of thousands of calls a second.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, oneshot};

use super::{WorkerError, codes, rpc};

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
}

impl Connection {
    /// A connection whose lines go to `writer` (see [`write_lines`]).
    pub(super) fn new(plugin_id: &str, writer: mpsc::UnboundedSender<String>) -> Self {
        Self {
            plugin_id: plugin_id.to_owned(),
            writer,
            next_id: AtomicU64::new(1),
            calls: Mutex::new(Calls::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Calls> {
        // Nothing panics under this lock; a poisoned one still holds consistent maps.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends a request; the future resolves with its answer, with the close error when the
    /// process goes away first, or with a timeout error after `deadline`. Dropping the future
    /// forgets the call, so a late answer is dropped as an unknown id.
    pub(super) fn call(
        self: &Arc<Self>,
        method: &str,
        params: &Value,
        deadline: Duration,
    ) -> impl Future<Output = Result<Value, WorkerError>> + Send + 'static + use<> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let run_id = (method == "runJob")
            .then(|| params["job"]["runId"].as_str().map(str::to_owned))
            .flatten();
        let refused = {
            let mut calls = self.lock();
            match &calls.closed {
                Some(err) => Some(err.clone()),
                None => {
                    if let Some(run_id) = &run_id {
                        calls.runs.insert(run_id.clone(), id);
                    }
                    calls.pending.insert(id, Pending { reply, run_id });
                    None
                }
            }
        };
        let sent = refused.is_none() && self.writer.send(rpc::request(id, method, params)).is_ok();
        let guard = CallGuard {
            connection: Arc::clone(self),
            id,
        };
        let unavailable = refused.unwrap_or_else(|| WorkerError::unavailable(&self.plugin_id));
        let method = method.to_owned();
        async move {
            let _guard = guard;
            if !sent {
                return Err(unavailable);
            }
            match tokio::time::timeout(deadline, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(unavailable),
                Err(_) => Err(WorkerError::new(
                    codes::TIMEOUT,
                    format!("no answer to {method} within {} ms", deadline.as_millis()),
                )),
            }
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
            calls.runs.clear();
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

/// Writes queued lines, flushing once the queue is empty, so a burst of calls costs one write
/// system call rather than one each. Ends when every sender is gone or the pipe breaks; dropping
/// the writer then closes the worker's stdin.
pub async fn write_lines<W: AsyncWrite + Unpin>(
    output: W,
    mut lines: mpsc::UnboundedReceiver<String>,
) -> std::io::Result<()> {
    let mut output = BufWriter::with_capacity(64 * 1024, output);
    while let Some(line) = lines.recv().await {
        output.write_all(line.as_bytes()).await?;
        while let Ok(line) = lines.try_recv() {
            output.write_all(line.as_bytes()).await?;
        }
        output.flush().await?;
    }
    output.shutdown().await
}
