//! JSON-RPC 2.0 messages of the worker protocol (DESIGN §5): one JSON object per line, both ways.
//! Both sides use it: the host's process workers and the Rust worker SDK.

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::{WorkerError, codes};

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
    let value: Value = serde_json::from_str(line).map_err(|err| Malformed {
        code: codes::PARSE_ERROR,
        message: format!("not JSON: {err}"),
        id: None,
    })?;
    let Value::Object(mut object) = value else {
        return Err(Malformed::invalid("not a JSON object", None));
    };
    let id = object.remove("id").filter(|id| !id.is_null());
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Malformed::invalid("\"jsonrpc\" is not \"2.0\"", id));
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
        return Err(Malformed::invalid(
            "neither \"method\" nor \"id\": not a request, a notification or a response",
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
    Text(String),
    /// A line longer than [`MAX_LINE_BYTES`] (or not UTF-8), discarded.
    Oversized(usize),
    Eof,
}

/// Reads one line of at most `max` bytes without ever buffering more: a longer line is skipped
/// to its newline and reported, so a misbehaving peer cannot exhaust memory.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut buffer = Vec::new();
    let mut skipped = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(if skipped > 0 {
                Line::Oversized(skipped)
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
            skipped += buffer.len() + piece.len();
            buffer.clear();
        } else {
            buffer.extend_from_slice(piece);
        }
        reader.consume(taken);
        if done {
            return Ok(if skipped > 0 {
                Line::Oversized(skipped)
            } else {
                into_line(buffer)
            });
        }
    }
}

fn into_line(mut buffer: Vec<u8>) -> Line {
    if buffer.last() == Some(&b'\r') {
        buffer.pop();
    }
    match String::from_utf8(buffer) {
        Ok(text) => Line::Text(text),
        Err(err) => Line::Oversized(err.as_bytes().len()),
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
            Some(Line::Oversized(100))
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
}
