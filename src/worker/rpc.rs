//! JSON-RPC 2.0 messages of the worker protocol (DESIGN §5): one JSON object per line, both ways,
//! and the typed calls of a run ([`RunJob`], [`CancelJob`]) with what a run's call comes back with
//! ([`RunOutcome`]). This is the one place where they become JSON and back: the run actor, every
//! `WorkerManager` (in-process and process) and the Rust worker SDK go through it. It passes 500
//! lines only with its unit tests: the codec stays whole so that the wire format reads in one
//! file.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

pub use super::outline::Outline;

/// JSON-RPC error codes of the worker protocol.
pub mod codes {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The worker is not running, or exited.
    pub const WORKER_UNAVAILABLE: i64 = -32000;
    /// The job's handler failed.
    pub const WORKER_ERROR: i64 = -32002;
    /// The call timed out (DESIGN §5). The host keeps a run's timeout in its `JobRunActor` and
    /// no longer answers a call with it; a worker may.
    pub const TIMEOUT: i64 = -32003;
}

/// A failed worker call: a JSON-RPC error code and the worker's message, which becomes the run's
/// `error` as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct WorkerError {
    pub code: i64,
    pub message: String,
}

impl WorkerError {
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The job's handler failed with `message`.
    pub fn job_failed(message: impl Into<String>) -> Self {
        Self::new(codes::WORKER_ERROR, message)
    }

    /// A request of the host's own that is longer than a worker reads ([`MAX_LINE_BYTES`]): it
    /// is not sent, since the worker would drop it unread and never answer.
    pub fn too_long(method: &str, bytes: usize) -> Self {
        Self::new(
            codes::INVALID_REQUEST,
            format!(
                "the {method} request is {bytes} bytes long, over the {MAX_LINE_BYTES}-byte (1 MiB) \
                 line limit a worker reads; it was not sent"
            ),
        )
    }

    /// The plugin's worker is not there to take the call.
    pub fn unavailable(plugin_id: &str) -> Self {
        Self::new(
            codes::WORKER_UNAVAILABLE,
            format!("Worker for plugin {plugin_id} is not running"),
        )
    }
}

/// Method name of [`RunJob`].
pub const RUN_JOB: &str = "runJob";
/// Method name of [`CancelJob`].
pub const CANCEL_JOB: &str = "cancelJob";

/// The `runJob` request: run one job once. On the wire it is `{"job": {…}}` with camelCase
/// fields (DESIGN §5). Ids, trigger and slot are kept as the protocol's strings, so that a
/// worker decodes whatever a host sends without guessing at types.
///
/// New fields are optional with a default and are sent only when they differ from it, so that
/// adding one never changes what existing workers receive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunJob {
    pub job_key: String,
    pub run_id: String,
    /// `schedule`, `manual` or `retry`.
    #[serde(default)]
    pub trigger: String,
    /// The slot (scheduled runs) or the request time, ISO 8601 with milliseconds and `Z`.
    #[serde(default)]
    pub scheduled_at: String,
    /// The run's W3C trace context; sent as `null` when the run has none.
    #[serde(default)]
    pub traceparent: Option<String>,
    /// Which attempt of the job's slot this run is, from 1 (a worker that sees none reads 1).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// For a retry: the first run of its slot; `null` otherwise.
    #[serde(default)]
    pub retry_of: Option<uuid::Uuid>,
    /// The run's payload (its job's, or a trigger's one-off payload); `null` for none.
    #[serde(default)]
    pub payload: Option<Value>,
}

fn first_attempt() -> u32 {
    1
}

/// `runJob`'s params as they are on the wire.
#[derive(Serialize, Deserialize)]
struct RunJobParams<J> {
    job: J,
}

impl RunJob {
    /// A first attempt of `job_key` as run `run_id`, without payload or trace context.
    pub fn new(
        job_key: impl Into<String>,
        run_id: impl Into<String>,
        trigger: impl Into<String>,
        scheduled_at: impl Into<String>,
    ) -> Self {
        Self {
            job_key: job_key.into(),
            run_id: run_id.into(),
            trigger: trigger.into(),
            scheduled_at: scheduled_at.into(),
            traceparent: None,
            attempt: first_attempt(),
            retry_of: None,
            payload: None,
        }
    }

    /// The request's params: `{"job": {"jobKey", "runId", "trigger", "scheduledAt", …}}`.
    pub fn to_params(&self) -> Value {
        serde_json::to_value(RunJobParams { job: self })
            .expect("a RunJob always serialises: string keys, no maps with other keys")
    }

    /// Decodes a `runJob` request's params; an error is the answer to send back.
    pub fn from_params(params: &Value) -> Result<Self, WorkerError> {
        RunJobParams::<Self>::deserialize(params)
            .map(|params| params.job)
            .map_err(|err| {
                WorkerError::new(
                    codes::INVALID_PARAMS,
                    format!(
                        "runJob needs params.job.jobKey and params.job.runId as strings ({err})"
                    ),
                )
            })
    }
}

/// The `cancelJob` notification: stop run `run_id`, because of `reason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelJob {
    #[serde(default)]
    pub run_id: String,
    #[serde(default = "default_cancel_reason")]
    pub reason: String,
}

fn default_cancel_reason() -> String {
    "cancelled".to_owned()
}

impl CancelJob {
    pub fn new(run_id: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            reason: reason.into(),
        }
    }

    /// The notification's params: `{"runId", "reason"}`.
    pub fn to_params(&self) -> Value {
        serde_json::to_value(self).expect("a CancelJob always serialises: two strings")
    }

    /// Decodes a `cancelJob` notification's params, leniently: it is only a request to stop, so a
    /// missing reason reads as `cancelled` and anything unreadable names no run.
    pub fn from_params(params: &Value) -> Self {
        Self::deserialize(params).unwrap_or_else(|_| Self::new("", default_cancel_reason()))
    }
}

/// What a run's `runJob` call came back with: the worker's answer (any result is success; an
/// error is the run's failure, its message the run's `error`) and the `log` lines the worker sent
/// for the run while the call was in flight, as the JSON array stored in the run's `logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub result: Result<(), WorkerError>,
    pub logs: Option<Value>,
}

impl RunOutcome {
    /// An outcome without log lines.
    pub fn new(result: Result<(), WorkerError>) -> Self {
        Self { result, logs: None }
    }

    /// Decodes the answer to a `runJob` request (its result is `null`; any other counts too).
    pub fn from_answer(answer: Result<Value, WorkerError>, logs: Option<Value>) -> Self {
        Self {
            result: answer.map(drop),
            logs,
        }
    }

    /// The answer to send for a handler's result: `null`, or a worker error with its message.
    pub fn answer(handled: Result<(), String>) -> Result<Value, WorkerError> {
        handled
            .map(|()| Value::Null)
            .map_err(WorkerError::job_failed)
    }
}

/// Longest line either side accepts. Longer lines are discarded whole.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One decoded line.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A call that expects an answer with the same `id`.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// A call without an `id`: nobody answers it.
    Notification { method: String, params: Value },
    /// The answer to a request: its result, or its error code and message.
    Response {
        id: Value,
        result: Result<Value, WorkerError>,
    },
}

/// Why a line is not a protocol message, with the JSON-RPC code it earns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Malformed {
    pub code: i64,
    pub message: String,
    /// The line's `id` when it had one, so a request can still be answered with the error.
    pub id: Option<Value>,
}

impl Malformed {
    fn invalid(message: impl Into<String>, id: Option<Value>) -> Self {
        Self {
            code: codes::INVALID_REQUEST,
            message: message.into(),
            id,
        }
    }
}

/// Decodes one line.
pub fn parse(line: &str) -> Result<Message, Malformed> {
    // A byte-order mark some writers put first is not part of the message.
    let line = line.strip_prefix('\u{feff}').unwrap_or(line);
    let value: Value = serde_json::from_str(line).map_err(|err| Malformed {
        code: codes::PARSE_ERROR,
        message: format!("not JSON: {err}"),
        // A line that begins as an answer does (`{"jsonrpc":"2.0","id":7,"result":nul}`) still
        // names the call it answers, which then fails at once instead of at its timeout.
        id: TopLevel::scan(line)
            .filter(|members| members.jsonrpc && !members.method)
            .and_then(|members| members.id),
    })?;
    let mut object = match value {
        Value::Object(object) => object,
        // A batch answers the calls it holds, which then fail at once rather than at their
        // timeout; the first one's id is the one named.
        Value::Array(batch) => {
            let id = batch.iter().find_map(|message| {
                message.get("jsonrpc")?;
                message.get("id").filter(|id| !id.is_null()).cloned()
            });
            return Err(Malformed::invalid(
                "a batch (a JSON array): the host reads one message per line, not batches",
                id,
            ));
        }
        _ => return Err(Malformed::invalid("not a JSON object", None)),
    };
    let id = object.remove("id");
    let null_id = id.as_ref().is_some_and(Value::is_null);
    let id = id.filter(|id| !id.is_null());
    match object.get("jsonrpc").map(|version| version.as_str()) {
        Some(Some("2.0")) => {}
        // An object without `"jsonrpc"` is output of the worker's own (a record it printed,
        // `{"id": 2, "customer": …}`), not an answer: its `id` names none of the host's calls,
        // and taking it for one would end a call the worker is still running.
        None => return Err(Malformed::invalid("no \"jsonrpc\" member", None)),
        Some(_) => return Err(Malformed::invalid("\"jsonrpc\" is not \"2.0\"", id)),
    }
    if let Some(method) = object.remove("method") {
        let Value::String(method) = method else {
            return Err(Malformed::invalid("\"method\" is not a string", id));
        };
        let params = object.remove("params").unwrap_or(Value::Null);
        return Ok(match id {
            Some(id) => Message::Request { id, method, params },
            None => Message::Notification { method, params },
        });
    }
    let Some(id) = id else {
        let answer = object.contains_key("result") || object.contains_key("error");
        return Err(Malformed::invalid(
            if null_id && answer {
                "a response with \"id\": null answers no call (it must echo its request's id)"
            } else {
                "neither \"method\" nor \"id\": not a request, a notification or a response"
            },
            None,
        ));
    };
    let result = match (object.remove("result"), object.remove("error")) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(parse_error_object(error, &id)?),
        _ => {
            return Err(Malformed::invalid(
                "a response needs exactly one of \"result\" and \"error\"",
                Some(id),
            ));
        }
    };
    Ok(Message::Response { id, result })
}

fn parse_error_object(error: Value, id: &Value) -> Result<WorkerError, Malformed> {
    let code = error.get("code").and_then(Value::as_i64);
    let message = error.get("message").and_then(Value::as_str);
    match (code, message) {
        // An empty message would record a failed run with a blank error.
        (Some(code), Some(message)) if message.trim().is_empty() => Ok(WorkerError::new(
            code,
            format!("the worker answered an error with no message (code {code})"),
        )),
        (Some(code), Some(message)) => Ok(WorkerError::new(code, message)),
        _ => Err(Malformed::invalid(
            "\"error\" needs an integer \"code\" and a string \"message\"",
            Some(id.clone()),
        )),
    }
}

/// Encodes a request as one line (with its newline).
pub fn request(id: u64, method: &str, params: &Value) -> String {
    line(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
}

/// Encodes a notification as one line.
pub fn notification(method: &str, params: &Value) -> String {
    line(json!({"jsonrpc": "2.0", "method": method, "params": params}))
}

/// Encodes a response as one line.
pub fn response(id: &Value, result: &Result<Value, WorkerError>) -> String {
    let mut object = Map::new();
    object.insert("jsonrpc".into(), "2.0".into());
    object.insert("id".into(), id.clone());
    match result {
        Ok(value) => object.insert("result".into(), value.clone()),
        Err(err) => object.insert(
            "error".into(),
            json!({"code": err.code, "message": err.message}),
        ),
    };
    line(Value::Object(object))
}

fn line(value: Value) -> String {
    let mut text = value.to_string();
    text.push('\n');
    text
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line; bytes that are not UTF-8 are replaced with U+FFFD, so that one odd byte does not
    /// cost a whole answer.
    Text(String),
    /// A line longer than the limit, discarded: how long it was, and the [`Outline`] of its
    /// JSON (whose answer or log line it was, wherever the worker wrote its members).
    Oversized {
        bytes: usize,
        outline: Outline,
    },
    Eof,
}

/// Reads one line of at most `max` bytes without ever buffering more: a longer line is skipped
/// to its newline and reported, so a misbehaving peer cannot exhaust memory. The skipped bytes
/// are followed through their JSON structure, so that the [`Outline`] can name the call a
/// discarded answer was for.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    read_bounded(reader, max, true).await
}

/// [`read_line`] for lines that are never answers, or whose oversized ones are only dropped (a
/// worker's stderr, the SDK's input): a longer line is skipped without following its JSON, and
/// its [`Outline`] is empty (it names no call).
pub async fn read_text_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    read_bounded(reader, max, false).await
}

async fn read_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
    outlined: bool,
) -> std::io::Result<Line> {
    let mut buffer = Vec::new();
    let mut skipped = 0usize;
    let mut outline = Outline::default();
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if skipped > 0 {
                Line::Oversized {
                    bytes: skipped,
                    outline,
                }
            } else if buffer.is_empty() {
                Line::Eof
            } else {
                into_line(buffer)
            });
        }
        let (taken, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (chunk.len(), false),
        };
        let piece = &chunk[..if done { taken - 1 } else { taken }];
        if skipped > 0 || buffer.len() + piece.len() > max {
            if outlined {
                outline.feed(&buffer);
                outline.feed(piece);
            }
            skipped += buffer.len() + piece.len();
            buffer = Vec::new();
        } else {
            buffer.extend_from_slice(piece);
        }
        reader.consume(taken);
        if done {
            return Ok(if skipped > 0 {
                Line::Oversized {
                    bytes: skipped,
                    outline,
                }
            } else {
                into_line(buffer)
            });
        }
    }
}

/// Whether `line` begins as a JSON-RPC message does (an object whose first members include
/// `"jsonrpc"`): only then can a message that starts inside it be one run into its broken
/// start. A line that merely holds one (`exported {"jsonrpc":…}`, a record quoting one) is
/// output of the worker's own.
pub fn begins_a_message(line: &str) -> bool {
    TopLevel::scan(line).is_some_and(|members| members.jsonrpc)
}

/// What the start of a JSON object says at its top level.
#[derive(Debug, Default, PartialEq)]
struct TopLevel {
    jsonrpc: bool,
    method: bool,
    id: Option<Value>,
}

impl TopLevel {
    /// Reads the top-level members of the object `text` begins, as far as `text` goes. `None`
    /// when `text` does not begin with an object.
    fn scan(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let mut at = skip_space(bytes, 0);
        if bytes.get(at) != Some(&b'{') {
            return None;
        }
        let mut found = Self::default();
        at += 1;
        loop {
            at = skip_space(bytes, at);
            match bytes.get(at) {
                Some(b',') => {
                    at += 1;
                    continue;
                }
                Some(b'"') => {}
                _ => return Some(found),
            }
            let Some(key_end) = string_end(bytes, at) else {
                return Some(found);
            };
            let key = &text[at + 1..key_end - 1];
            at = skip_space(bytes, key_end);
            if bytes.get(at) != Some(&b':') {
                return Some(found);
            }
            at = skip_space(bytes, at + 1);
            // A value the text cuts short says nothing for sure (`"id":12` of `"id":123`).
            let Some(end) = value_end(bytes, at) else {
                return Some(found);
            };
            match key {
                "jsonrpc" => found.jsonrpc = true,
                "method" => found.method = true,
                "id" => found.id = exact_id(&text[at..end]),
                _ => {}
            }
            at = end;
        }
    }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The index just past the JSON string that starts at `at` (its opening quote), or `None` when
/// the text ends first.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The index just past the JSON value that starts at `at`, or `None` when the text ends first.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            None
        }
        _ => {
            // A number or literal ends at the first byte that cannot go on with it: `1` of
            // `"id":1{"jsonrpc"…` (a message run into a broken one) is the whole value.
            let end = bytes[at..]
                .iter()
                .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')))?;
            Some(at + end)
        }
    }
}

/// An id as the whole of `value`: a string or an integer (`7.5` and `7e1` are neither, and the
/// host's ids are integers).
pub(super) fn exact_id(value: &str) -> Option<Value> {
    let id: Value = serde_json::from_str(value.trim()).ok()?;
    (id.is_string() || id.is_i64() || id.is_u64()).then_some(id)
}

fn into_line(mut buffer: Vec<u8>) -> Line {
    if buffer.last() == Some(&b'\r') {
        buffer.pop();
    }
    match String::from_utf8(buffer) {
        Ok(text) => Line::Text(text),
        Err(err) => Line::Text(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_kind_of_message() {
        let req = parse(r#"{"jsonrpc":"2.0","id":7,"method":"runJob","params":{"a":1}}"#);
        assert_eq!(
            req,
            Ok(Message::Request {
                id: json!(7),
                method: "runJob".into(),
                params: json!({"a": 1})
            })
        );
        let note = parse(r#"{"jsonrpc":"2.0","method":"log","params":{"message":"hi"}}"#);
        assert!(matches!(note, Ok(Message::Notification { method, .. }) if method == "log"));
        let ok = parse(r#"{"jsonrpc":"2.0","id":1,"result":null}"#);
        assert_eq!(
            ok,
            Ok(Message::Response {
                id: json!(1),
                result: Ok(Value::Null)
            })
        );
        let blank = parse(r#"{"jsonrpc":"2.0","id":2,"error":{"code":1,"message":" "}}"#);
        assert!(
            matches!(&blank, Ok(Message::Response { result: Err(err), .. })
                if err.message == "the worker answered an error with no message (code 1)"),
            "{blank:?}"
        );
        let err = parse(r#"{"jsonrpc":"2.0","id":2,"error":{"code":-32002,"message":"boom"}}"#);
        assert_eq!(
            err,
            Ok(Message::Response {
                id: json!(2),
                result: Err(WorkerError::new(-32002, "boom"))
            })
        );
    }

    #[test]
    fn names_what_is_wrong_with_a_bad_line() {
        assert_eq!(parse("hello").map_err(|e| e.code), Err(codes::PARSE_ERROR));
        let bad = parse(r#"{"jsonrpc":"1.0","id":3,"method":"x"}"#).expect_err("old version");
        assert_eq!((bad.code, bad.id), (codes::INVALID_REQUEST, Some(json!(3))));
        let both = parse(r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{}}"#).expect_err("both");
        assert!(both.message.contains("exactly one"), "{both}");
        let error = parse(r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x"}}"#).expect_err("code");
        assert!(error.message.contains("integer \"code\""), "{error}");
        let batch = parse(r#"[{"jsonrpc":"2.0","id":2,"result":null}]"#).expect_err("batch");
        assert!(batch.message.contains("a batch"), "{batch}");
        assert_eq!(
            batch.id,
            Some(json!(2)),
            "the call it answers fails at once"
        );
        let null_id = parse(r#"{"jsonrpc":"2.0","id":null,"result":1}"#).expect_err("null id");
        assert!(
            null_id.message.contains("\"id\": null answers no call"),
            "{null_id}"
        );
    }

    #[test]
    fn a_byte_order_mark_before_a_message_is_not_part_of_it() {
        assert_eq!(
            parse("\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"ok\":true}}"),
            Ok(Message::Response {
                id: json!(1),
                result: Ok(json!({"ok": true}))
            })
        );
    }

    #[test]
    fn encodes_lines_that_decode_back() {
        let line = response(&json!(4), &Err(WorkerError::new(-32003, "late")));
        assert!(line.ends_with('\n'));
        assert_eq!(
            parse(line.trim_end()),
            Ok(Message::Response {
                id: json!(4),
                result: Err(WorkerError::new(-32003, "late"))
            })
        );
        let line = request(9, "shutdown", &Value::Null);
        assert!(
            matches!(parse(line.trim_end()), Ok(Message::Request { method, .. }) if method == "shutdown")
        );
    }

    #[test]
    fn run_job_params_are_the_documented_wire_format() {
        let mut job = RunJob::new("report", "r1", "schedule", "2025-01-15T10:30:00.000Z");
        assert_eq!(
            job.to_params(),
            json!({"job": {"jobKey": "report", "runId": "r1", "trigger": "schedule",
                           "scheduledAt": "2025-01-15T10:30:00.000Z", "traceparent": null,
                           "attempt": 1, "retryOf": null, "payload": null}})
        );
        assert_eq!(RunJob::from_params(&job.to_params()), Ok(job.clone()));
        job.attempt = 2;
        job.retry_of = Some(uuid::Uuid::nil());
        job.payload = Some(json!({"n": 1}));
        let params = job.to_params();
        assert_eq!(params["job"]["attempt"], 2);
        assert_eq!(params["job"]["retryOf"], uuid::Uuid::nil().to_string());
        assert_eq!(params["job"]["payload"], json!({"n": 1}));
        assert_eq!(RunJob::from_params(&params), Ok(job));
    }

    #[test]
    fn a_run_job_without_its_ids_is_refused_with_invalid_params() {
        let refused = RunJob::from_params(&json!({"job": {"jobKey": "k"}})).expect_err("no runId");
        assert_eq!(refused.code, codes::INVALID_PARAMS);
        assert!(refused.message.starts_with("runJob needs"), "{refused}");
        let minimal = RunJob::from_params(&json!({"job": {"jobKey": "k", "runId": "r"}}));
        assert_eq!(minimal, Ok(RunJob::new("k", "r", "", "")));
    }

    #[test]
    fn cancel_job_round_trips_and_reads_leniently() {
        let cancel = CancelJob::new("r", "timed out after 5 ms");
        assert_eq!(
            cancel.to_params(),
            json!({"runId": "r", "reason": "timed out after 5 ms"})
        );
        assert_eq!(CancelJob::from_params(&cancel.to_params()), cancel);
        assert_eq!(
            CancelJob::from_params(&json!({"runId": "r"})),
            CancelJob::new("r", "cancelled")
        );
        assert_eq!(CancelJob::from_params(&Value::Null).run_id, "");
    }

    #[tokio::test]
    async fn a_line_that_is_not_utf8_is_read_with_replacement_characters() {
        let input = b"{\"error\":\"caf\xe9 failed\"}\n".to_vec();
        let mut reader = tokio::io::BufReader::new(&input[..]);
        assert_eq!(
            read_line(&mut reader, 100).await.ok(),
            Some(Line::Text("{\"error\":\"caf\u{FFFD} failed\"}".into()))
        );
    }

    /// Only a line that begins as a message can hold one run into its broken start; a complete
    /// line without "jsonrpc" is not an answer either. (The ids of discarded lines are tested in
    /// `outline.rs`.)
    #[test]
    fn an_id_that_is_not_the_answers_own_names_no_call() {
        // Only a line that begins as a message can hold one run into its broken start.
        assert!(begins_a_message(
            r#"{"jsonrpc":"2.0","id":7,"res{"jsonrpc":"2.0"}"#
        ));
        assert!(!begins_a_message(
            r#"exported {"jsonrpc":"2.0","id":7,"result":null}"#
        ));
        assert!(!begins_a_message(r#"{"row":"{\"jsonrpc\":\"2.0\"}"}"#));
        // A complete line without "jsonrpc" is not an answer either.
        let record = parse(r#"{"id": 2, "customer": "c2"}"#).expect_err("a record");
        assert_eq!(record.id, None, "{record}");
        let bad = parse(r#"{"id": 2, "result": 1"#).expect_err("cut");
        assert_eq!(bad.id, None, "{bad}");
    }

    #[tokio::test]
    async fn skips_lines_longer_than_the_limit() {
        let input = format!("short\n{}\nnext\nlast", "x".repeat(100));
        let mut reader = tokio::io::BufReader::with_capacity(16, input.as_bytes());
        assert_eq!(
            read_line(&mut reader, 10).await.ok(),
            Some(Line::Text("short".into()))
        );
        assert_eq!(
            read_line(&mut reader, 10).await.ok(),
            Some(Line::Oversized {
                bytes: 100,
                outline: {
                    let mut outline = Outline::default();
                    outline.feed(&[b'x'; 100]);
                    outline
                }
            })
        );
        assert_eq!(
            read_line(&mut reader, 10).await.ok(),
            Some(Line::Text("next".into()))
        );
        assert_eq!(
            read_line(&mut reader, 10).await.ok(),
            Some(Line::Text("last".into()))
        );
        assert_eq!(read_line(&mut reader, 10).await.ok(), Some(Line::Eof));
    }

    /// A text line over the limit is skipped as a message line is, but not followed: its
    /// outline names no call even when it is a whole answer.
    #[tokio::test]
    async fn a_text_line_over_the_limit_is_skipped_without_its_outline() {
        let answer = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":\"{}\"}}\nnext\n",
            "x".repeat(100)
        );
        let mut reader = tokio::io::BufReader::with_capacity(16, answer.as_bytes());
        let Ok(Line::Oversized { bytes, outline }) = read_line(&mut reader, 10).await else {
            panic!("an oversized message line");
        };
        assert_eq!(outline.answered_id(), Some(Value::from(7)));
        let mut reader = tokio::io::BufReader::with_capacity(16, answer.as_bytes());
        assert_eq!(
            read_text_line(&mut reader, 10).await.ok(),
            Some(Line::Oversized {
                bytes,
                outline: Outline::default()
            })
        );
        assert_eq!(
            read_text_line(&mut reader, 10).await.ok(),
            Some(Line::Text("next".into()))
        );
    }
}
