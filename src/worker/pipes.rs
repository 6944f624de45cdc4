//! The stdio pipes of a worker process, one task each: the writer drains queued lines into stdin
//! (the SDK's side uses it too), the stdout reader decodes each line and resolves the call it
//! answers or keeps the `log` line of a run in flight, and the stderr reader logs lines and keeps
//! their tail for error messages. Nothing here waits on an actor.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

use super::connection::Connection;
use super::rpc::{self, Line, Message};
use super::run_logs::RunLogs;
use super::{WorkerError, codes};

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

pub(super) async fn read_stdout<R: AsyncBufRead + Unpin>(
    mut stdout: R,
    plugin: String,
    connection: Arc<Connection>,
    logs: Arc<RunLogs>,
) {
    loop {
        let line = match rpc::read_line(&mut stdout, rpc::MAX_LINE_BYTES).await {
            Ok(Line::Text(line)) => line,
            Ok(Line::Oversized { bytes, head }) => {
                let error = || {
                    format!(
                        "the worker's answer was {bytes} bytes long, over the limit of {} bytes \
                         on a line",
                        rpc::MAX_LINE_BYTES
                    )
                };
                let id = rpc::answered_id(&head);
                if !id.is_some_and(|id| fail_call(&plugin, &connection, &id, error())) {
                    log::warn!(
                        "plugin {plugin}: dropped a stdout line of {bytes} bytes (too long)"
                    );
                }
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
                worker_log(&plugin, &params, &connection, &logs);
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
                let error =
                    format!("the worker answered with a malformed response ({bad}): {shown}");
                let id = bad.id.as_ref().filter(|_| !names_a_method(&line));
                if !id.is_some_and(|id| fail_call(&plugin, &connection, id, error)) {
                    log::warn!(
                        "plugin {plugin}: dropped a stdout line that is not JSON-RPC ({bad}): \
                         {shown}"
                    );
                }
            }
        }
    }
}

/// Fails the call in flight with `id` with `error`: an answer that cannot be read (malformed, or
/// too long) still answers its call, which would otherwise wait for its timeout. Answers whether
/// such a call was in flight.
fn fail_call(plugin: &str, connection: &Connection, id: &Value, error: String) -> bool {
    let shown = format!("plugin {plugin}: call {id} failed: {error}");
    let failed = connection.resolve(id, Err(WorkerError::new(codes::INVALID_REQUEST, error)));
    if failed {
        log::warn!("{shown}");
    }
    failed
}

/// Whether a line (valid JSON, but not a valid message) carries a `method`: then it was meant as
/// a request of the worker's, not as an answer to one of ours.
fn names_a_method(line: &str) -> bool {
    serde_json::from_str::<Value>(line).is_ok_and(|value| value.get("method").is_some())
}

/// A `log` notification: to the host's log, and to the run's `logs` when it names a run in flight.
fn worker_log(plugin: &str, params: &Value, connection: &Connection, logs: &RunLogs) {
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
        logs.keep(run_id, level, message);
    }
}

/// Most stderr lines of one worker logged in a second: a worker that floods its stderr would
/// otherwise flood the host's log, and spend the host's CPU on it. The rest are counted.
const STDERR_LINES_PER_SECOND: u32 = 50;

/// Most bytes of one stderr line logged.
const STDERR_LINE_LOGGED: usize = 4 * 1024;

/// Logs a worker's stderr (at most [`STDERR_LINES_PER_SECOND`] lines a second, each cut to
/// [`STDERR_LINE_LOGGED`] bytes; how many were left out is said) and keeps its last `keep`
/// bytes in `tail`, for the error of a crash. Answers how many lines it logged and left out.
pub(super) async fn read_stderr<R: AsyncBufRead + Unpin>(
    mut stderr: R,
    plugin: String,
    tail: Arc<Mutex<String>>,
    keep: usize,
) -> (u64, u64) {
    let mut totals = (0_u64, 0_u64);
    let mut window = std::time::Instant::now();
    let (mut logged, mut skipped) = (0_u32, 0_u64);
    let say_skipped = |skipped: u64| {
        if skipped > 0 {
            log::warn!(
                "[{plugin} stderr] {skipped} line(s) not logged: more than \
                 {STDERR_LINES_PER_SECOND} a second"
            );
        }
    };
    loop {
        let line = match rpc::read_line(&mut stderr, rpc::MAX_LINE_BYTES).await {
            Ok(Line::Text(line)) => line,
            Ok(Line::Oversized { bytes, .. }) => format!("<{bytes} bytes>"),
            Ok(Line::Eof) | Err(_) => {
                say_skipped(skipped);
                return totals;
            }
        };
        if window.elapsed() >= std::time::Duration::from_secs(1) {
            say_skipped(std::mem::take(&mut skipped));
            window = std::time::Instant::now();
            logged = 0;
        }
        if logged < STDERR_LINES_PER_SECOND {
            logged += 1;
            totals.0 += 1;
            let mut shown = line.clone();
            crate::store::bound_text(&mut shown, STDERR_LINE_LOGGED);
            log::info!("[{plugin} stderr] {shown}");
        } else {
            skipped += 1;
            totals.1 += 1;
        }
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

    #[tokio::test]
    async fn a_stderr_flood_is_logged_at_a_bounded_rate_and_its_tail_kept() {
        let lines: String = (0..200).map(|n| format!("line {n}\n")).collect();
        let tail = Arc::new(Mutex::new(String::new()));
        let reader = tokio::io::BufReader::new(lines.as_bytes());
        let (logged, skipped) = read_stderr(reader, "p".to_owned(), Arc::clone(&tail), 20).await;
        // All 200 lines arrive within a second: the first 50 are logged, the rest counted.
        assert_eq!((logged, skipped), (50, 150));
        let tail = tail.lock().expect("tail").clone();
        assert!(tail.ends_with("line 199\n"), "{tail:?}");
        assert!(tail.len() <= 20);
    }
}
