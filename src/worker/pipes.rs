//! The stdio pipes of a worker process, one task each: the writer drains queued lines into stdin
//! (the SDK's side uses it too), the stdout reader decodes each line and resolves the call it
//! answers or keeps the `log` line of a run in flight, and the stderr reader logs lines and keeps
//! their tail for error messages. Nothing here waits on an actor.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
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
    let mut echoes = Throttles {
        logs: Throttle::new(format!("[{plugin}] log notification")),
        drops: Throttle::new(format!(
            "plugin {plugin}: stdout line(s) not JSON-RPC or unanswerable:"
        )),
    };
    loop {
        echoes.logs.say_when_quiet(&mut stdout).await;
        echoes.drops.say_when_quiet(&mut stdout).await;
        let line = match rpc::read_line(&mut stdout, rpc::MAX_LINE_BYTES).await {
            Ok(Line::Text(line)) => line,
            Ok(Line::Oversized { bytes, outline }) => {
                let error = || {
                    format!(
                        "the worker's answer was {bytes} bytes long, over the limit of {} bytes \
                         on a line",
                        rpc::MAX_LINE_BYTES
                    )
                };
                let id = outline.answered_id();
                if id.is_some_and(|id| fail_call(&plugin, &connection, &id, error())) {
                    continue;
                }
                if echoes.drops.admit() {
                    log::warn!(
                        "plugin {plugin}: dropped a stdout line of {bytes} bytes (too long)"
                    );
                }
                // A run's log line that was dropped leaves a trace in the run's logs.
                if let Some(run_id) = outline
                    .logged_run_id()
                    .filter(|run_id| connection.run_in_flight(run_id))
                {
                    let note = format!(
                        "a log line of {bytes} bytes was dropped: over the limit of {} bytes \
                         on a line",
                        rpc::MAX_LINE_BYTES
                    );
                    logs.keep(&run_id, "warn", &note);
                }
                continue;
            }
            Ok(Line::Eof) => {
                echoes.finish();
                return;
            }
            Err(err) => {
                echoes.finish();
                log::warn!("plugin {plugin}: reading stdout failed: {err}");
                return;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        dispatch(&line, &plugin, &connection, &logs, &mut echoes);
    }
}

/// How many messages run together in one line are read, past the first: a worker that lost a
/// newline loses it once, and a hostile line costs a bounded number of parses.
const MESSAGES_RUN_TOGETHER: usize = 4;

/// Acts on one line of the worker's stdout. A line that is not a message may be two run
/// together (a worker wrote half an answer without its newline, then the next one): the message
/// that starts inside it is read too, so that only the broken call pays for the broken line.
fn dispatch(
    line: &str,
    plugin: &str,
    connection: &Connection,
    logs: &RunLogs,
    echoes: &mut Throttles,
) {
    let mut line = line;
    for _ in 0..=MESSAGES_RUN_TOGETHER {
        let bad = match rpc::parse(line) {
            Ok(message) => {
                act_on(message, plugin, connection, logs, echoes);
                return;
            }
            Err(bad) => bad,
        };
        let shown: String = line.chars().take(200).collect();
        let error = format!("the worker answered with a malformed response ({bad}): {shown}");
        let id = bad.id.as_ref().filter(|_| !names_a_method(line));
        if !id.is_some_and(|id| fail_call(plugin, connection, id, error)) && echoes.drops.admit() {
            let shown = for_host_log(&shown);
            log::warn!(
                "plugin {plugin}: dropped a stdout line that is not JSON-RPC ({bad}): {shown}"
            );
        }
        // Only a broken start of a message can have the next one run into it: a batch's
        // messages, or output of the worker's own that holds a message, are not that.
        if !rpc::begins_a_message(line) {
            return;
        }
        match line.get(1..).and_then(|rest| rest.find("{\"jsonrpc\"")) {
            Some(at) => line = &line[1 + at..],
            None => return,
        }
    }
}

fn act_on(
    message: Message,
    plugin: &str,
    connection: &Connection,
    logs: &RunLogs,
    echoes: &mut Throttles,
) {
    match message {
        Message::Response { id, result } => {
            if !connection.resolve(&id, result) && echoes.drops.admit() {
                log::warn!(
                    "plugin {plugin}: dropped a response with id {}: {}",
                    for_host_log(&id.to_string()),
                    unanswered_why(&id, connection)
                );
            }
        }
        Message::Notification { method, params } if method == "log" => {
            worker_log(plugin, &params, connection, logs, &mut echoes.logs);
        }
        Message::Notification { method, .. } => {
            log::debug!("plugin {plugin}: ignored notification {method}");
        }
        Message::Request { id, method, .. } => {
            let message = if method == "log" {
                "log is a notification: send it without an \"id\"".to_owned()
            } else {
                format!("the host has no method {method}")
            };
            let refusal = WorkerError::new(codes::METHOD_NOT_FOUND, message);
            connection.send_line(rpc::response(&id, &Err(refusal)));
        }
    }
}

/// Why an answer's id matched no call: a call long over, or an id the host never sends (its
/// calls have integer ids, echoed as sent: `"5"`, `5.0` or `null` answer none of them).
fn unanswered_why(id: &Value, connection: &Connection) -> String {
    if id.is_u64() {
        return "no call with that id is waiting (answered already, given up on, or never sent)"
            .to_owned();
    }
    let meant = match id {
        Value::String(text) => text.trim().parse::<u64>().ok(),
        Value::Number(number) => number
            .as_f64()
            .filter(|n| n.fract() == 0.0 && *n >= 0.0)
            .map(|n| n as u64),
        _ => None,
    };
    let waiting = meant
        .filter(|meant| connection.is_waiting(*meant))
        .map(|meant| format!("; call {meant} is waiting for an answer with \"id\": {meant}"))
        .unwrap_or_default();
    format!(
        "the host's calls have integer ids, and an answer must echo its call's id as sent{waiting}"
    )
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

/// A `log` notification: to the run's `logs` when it names one of this worker's runs in flight,
/// and to the host's log within the [`Throttle`] (a worker that logs 50,000 lines a run would
/// otherwise fill the host's disk, whatever the run keeps). The level is one of the five the
/// host logs with (`warning` reads as `warn`, anything else as `info`), so a stored level is
/// never a worker's arbitrary text.
fn worker_log(
    plugin: &str,
    params: &Value,
    connection: &Connection,
    logs: &RunLogs,
    echoes: &mut Throttle,
) {
    let Some(message) = params.get("message").and_then(Value::as_str) else {
        log::warn!("plugin {plugin}: dropped a log notification without a string \"message\"");
        return;
    };
    let (level, host_level) = match params.get("level").and_then(Value::as_str) {
        Some("error") => ("error", log::Level::Error),
        Some("warn" | "warning") => ("warn", log::Level::Warn),
        Some("debug") => ("debug", log::Level::Debug),
        Some("trace") => ("trace", log::Level::Trace),
        _ => ("info", log::Level::Info),
    };
    let run_id = params.get("runId").and_then(Value::as_str);
    let ours = run_id.filter(|run_id| connection.run_in_flight(run_id));
    if log::log_enabled!(host_level) && echoes.admit() {
        let shown = for_host_log(message);
        // A run id that is not one of this worker's calls is not printed as if it were.
        let run = match (ours, run_id) {
            (Some(run_id), _) => format!(" run {run_id}"),
            (None, Some(_)) => " (a run id not in flight on this worker)".to_owned(),
            (None, None) => String::new(),
        };
        log::log!(host_level, "[{plugin}{run}] {shown}");
    }
    if let Some(run_id) = ours {
        logs.keep(run_id, level, message);
    }
}

/// Most lines a second that one worker's stderr, or its `log` notifications, put in the host's
/// log; the rest are counted, and the count is logged once the second is over.
const LINES_PER_SECOND: u32 = 50;

/// Most bytes of one worker line put in the host's log.
const LINE_LOGGED: usize = 4 * 1024;

/// A worker's line as the host's log shows it: cut to [`LINE_LOGGED`] bytes, with every control
/// character (newline, carriage return, terminal escape) and text-direction mark escaped
/// (`\n`, `\u{1b}`), so a worker can neither forge a record of the host's nor recolour or
/// retitle the operator's terminal.
fn for_host_log(line: &str) -> String {
    let mut bounded = line.to_owned();
    crate::store::bound_text(&mut bounded, LINE_LOGGED);
    if !bounded.chars().any(needs_escape) {
        return bounded;
    }
    let mut shown = String::with_capacity(bounded.len() + 16);
    for c in bounded.chars() {
        if needs_escape(c) {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The budgets of one worker's stdout: its `log` notifications, and the warnings about lines
/// dropped (not JSON-RPC, too long, answering no call), which a worker that prints its own
/// output to stdout would otherwise turn into one host warning per line.
struct Throttles {
    logs: Throttle,
    drops: Throttle,
}

impl Throttles {
    fn finish(&mut self) {
        self.logs.finish();
        self.drops.finish();
    }
}

/// A per-second budget of lines for the host's log, which says how many it left out.
struct Throttle {
    what: String,
    window: std::time::Instant,
    admitted: u32,
    skipped: u64,
}

impl Throttle {
    fn new(what: String) -> Self {
        Self {
            what,
            window: std::time::Instant::now(),
            admitted: 0,
            skipped: 0,
        }
    }

    /// Whether one more line may be logged in this second.
    fn admit(&mut self) -> bool {
        if self.window.elapsed() >= std::time::Duration::from_secs(1) {
            self.finish();
            self.window = std::time::Instant::now();
            self.admitted = 0;
        }
        if self.admitted < LINES_PER_SECOND {
            self.admitted += 1;
            true
        } else {
            self.skipped += 1;
            false
        }
    }

    /// With lines left out and not said yet, waits for the worker's next output until this
    /// second is over, and then says how many: a worker that goes quiet after a burst (a daily
    /// job) is not left with its count unsaid until its next line, hours later. Reads nothing
    /// (`fill_buf` is cancel-safe).
    async fn say_when_quiet<R: AsyncBufRead + Unpin>(&mut self, reader: &mut R) {
        if self.skipped == 0 {
            return;
        }
        let left = std::time::Duration::from_secs(1).saturating_sub(self.window.elapsed());
        if tokio::time::timeout(left, reader.fill_buf()).await.is_err() {
            self.finish();
        }
    }

    /// Says how many lines were left out since it last said so.
    fn finish(&mut self) {
        let skipped = std::mem::take(&mut self.skipped);
        if skipped > 0 {
            log::warn!(
                "{} {skipped} line(s) not logged: more than {LINES_PER_SECOND} a second",
                self.what
            );
        }
    }
}

/// Logs a worker's stderr (at most [`LINES_PER_SECOND`] lines a second, each cut to
/// [`LINE_LOGGED`] bytes; how many were left out is said) and keeps its last `keep` bytes in
/// `tail`, for the error of a crash. Answers how many lines it logged and left out.
pub(super) async fn read_stderr<R: AsyncBufRead + Unpin>(
    mut stderr: R,
    plugin: String,
    tail: Arc<Mutex<String>>,
    keep: usize,
) -> (u64, u64) {
    let mut totals = (0_u64, 0_u64);
    let mut throttle = Throttle::new(format!("[{plugin} stderr]"));
    loop {
        throttle.say_when_quiet(&mut stderr).await;
        let line = match rpc::read_text_line(&mut stderr, rpc::MAX_LINE_BYTES).await {
            Ok(Line::Text(line)) => line,
            Ok(Line::Oversized { bytes, .. }) => format!("<{bytes} bytes>"),
            Ok(Line::Eof) | Err(_) => {
                throttle.finish();
                return totals;
            }
        };
        if throttle.admit() {
            totals.0 += 1;
            let shown = for_host_log(&line);
            log::info!("[{plugin} stderr] {shown}");
        } else {
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

    #[test]
    fn a_worker_line_cannot_forge_a_host_record_or_drive_the_terminal() {
        let forged = "line1\n[2026-12-02T00:00:00Z ERROR plugin_jobs::server] FORGED\u{1b}[31m \
                      red \u{1b}]0;title\u{7} \r overwrite \u{202E}txt.exe";
        let shown = for_host_log(forged);
        assert!(!shown.chars().any(needs_escape), "{shown:?}");
        assert_eq!(
            shown,
            "line1\\n[2026-12-02T00:00:00Z ERROR plugin_jobs::server] FORGED\\u{1b}[31m red \
             \\u{1b}]0;title\\u{7} \\r overwrite \\u{202e}txt.exe"
        );
        assert_eq!(for_host_log("plain, ünïcode ✓"), "plain, ünïcode ✓");
    }

    /// A worker that goes quiet after a burst has its count said once the second is over, not
    /// at its next line (hours later, for a daily job).
    #[tokio::test]
    async fn a_throttle_says_its_count_when_the_worker_goes_quiet() {
        let mut throttle = Throttle::new("[p]".to_owned());
        let admitted = (0..60).filter(|_| throttle.admit()).count();
        assert_eq!((admitted, throttle.skipped), (50, 10));
        let (_quiet_writer, quiet) = tokio::io::duplex(64);
        let mut quiet = tokio::io::BufReader::new(quiet);
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            throttle.say_when_quiet(&mut quiet),
        )
        .await
        .expect("said within the second");
        assert_eq!(throttle.skipped, 0, "the count was said");
    }

    #[test]
    fn a_throttle_admits_fifty_lines_a_second() {
        let mut throttle = Throttle::new("[p]".to_owned());
        let admitted = (0..200).filter(|_| throttle.admit()).count();
        assert_eq!((admitted, throttle.skipped), (50, 150));
        throttle.window -= std::time::Duration::from_secs(1);
        assert!(throttle.admit(), "a new second, a new budget");
        assert_eq!(throttle.skipped, 0, "the count was said and reset");
    }

    #[tokio::test]
    async fn a_run_keeps_its_own_log_lines_with_a_known_level_and_no_one_elses() {
        let (writer, _lines) = tokio::sync::mpsc::unbounded_channel();
        let logs = Arc::new(RunLogs::new(64 * 1024));
        let connection = Arc::new(Connection::new("p", writer, Arc::clone(&logs)));
        let call = connection.run_job(&super::rpc::RunJob::new("k", "r", "manual", ""));
        let log = |run: &str, level: &str, message: &str| {
            let params = serde_json::json!({"runId": run, "level": level, "message": message});
            format!("{}\n", rpc::notification("log", &params).trim_end())
        };
        let stdout = [
            log("r", "\u{1b}[31merror\u{1b}[0m", "odd level"),
            log("r", "warning", "a warning"),
            log("someone-else", "info", "not this worker's run"),
            log("r", "info", &"x".repeat(rpc::MAX_LINE_BYTES)),
        ]
        .concat();
        let reader = tokio::io::BufReader::new(stdout.as_bytes());
        read_stdout(
            reader,
            "p".to_owned(),
            Arc::clone(&connection),
            Arc::clone(&logs),
        )
        .await;
        let kept = logs.take("r").expect("the run's lines");
        let levels: Vec<&str> = kept
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(|line| line["level"].as_str())
            .collect();
        assert_eq!(levels, ["info", "warn", "warn"]);
        let dropped = kept[2]["message"].as_str().unwrap_or_default();
        assert!(dropped.starts_with("a log line of "), "{dropped}");
        assert_eq!(logs.take("someone-else"), None);
        drop(call);
    }

    #[tokio::test]
    async fn half_an_answer_without_its_newline_costs_only_its_own_call() {
        let (writer, _lines) = tokio::sync::mpsc::unbounded_channel();
        let logs = Arc::new(RunLogs::new(64 * 1024));
        let connection = Arc::new(Connection::new("p", writer, Arc::clone(&logs)));
        let broken = connection.run_job(&super::rpc::RunJob::new("k", "a", "manual", ""));
        let fine = connection.run_job(&super::rpc::RunJob::new("k", "b", "manual", ""));
        let stdout =
            "{\"jsonrpc\":\"2.0\",\"id\":1{\"jsonrpc\": \"2.0\", \"id\": 2, \"result\": 7}\n";
        let reader = tokio::io::BufReader::new(stdout.as_bytes());
        read_stdout(reader, "p".to_owned(), Arc::clone(&connection), logs).await;
        let broken = broken.await.expect_err("the half answer fails its call");
        assert!(broken.message.contains("malformed response"), "{broken:?}");
        // Answered already, or never: the stream has ended.
        let fine = tokio::time::timeout(std::time::Duration::from_secs(5), fine).await;
        assert_eq!(
            fine,
            Ok(Ok(serde_json::json!(7))),
            "the whole answer is read"
        );
    }

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
