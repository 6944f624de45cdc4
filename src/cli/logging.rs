//! `--log-format text|json` of `serve`. Text is env_logger's usual line; json writes one object
//! per record for log shippers: `time` (ISO 8601 UTC, milliseconds), `level`, `target`,
//! `message`, plus every key-value pair the record carries (such as `plugin`, `job` and `run`,
//! written `log::info!(plugin = id, run = run_id; "…")`). `RUST_LOG` filters either way.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use log::kv::{Error as KvError, Key, Value as KvValue, VisitSource};
use serde::Serialize;
use serde_json::Value;

/// How log records are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One line of text per record, for people.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Installs the logger; `RUST_LOG` sets the level (default `info`).
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| writeln!(buf, "{}", json_line(record, Utc::now())));
    }
    let logger = builder.build();
    log::set_max_level(logger.filter());
    // Only fails when a logger is installed already, as in a test that called `init` before.
    let _ = log::set_boxed_logger(Box::new(ClientFaultsAsDebug(logger)));
}

/// Logs what a client's bad request makes actix-http say at `ERROR` ("stream error: request
/// parse error: invalid Header provided", "URI error: uri too long", a connection reset) at
/// `DEBUG` instead: anyone who can reach the port could otherwise write error lines into the
/// server's log (and page whoever alerts on them). `RUST_LOG=actix_http=debug` shows them.
struct ClientFaultsAsDebug(env_logger::Logger);

/// Whether a record tells of a client's fault, not the server's.
fn is_client_fault(record: &log::Record<'_>) -> bool {
    let message = record.args().as_str().map_or_else(
        || std::borrow::Cow::Owned(record.args().to_string()),
        std::borrow::Cow::Borrowed,
    );
    match record.target() {
        "actix_http::h1::dispatcher" => message.starts_with("stream error: "),
        "actix_http::h1::decoder" => message.starts_with("MAX_BUFFER_SIZE unprocessed data"),
        _ => false,
    }
}

impl log::Log for ClientFaultsAsDebug {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.0.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() < log::Level::Debug && is_client_fault(record) {
            let demoted = record.to_builder().level(log::Level::Debug).build();
            if self.0.enabled(demoted.metadata()) {
                self.0.log(&demoted);
            }
        } else {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// One log line: the four fixed fields first, in this order, then the record's key-value pairs.
#[derive(Debug, Serialize)]
struct Line<'a> {
    time: String,
    level: String,
    target: &'a str,
    message: String,
    #[serde(flatten)]
    fields: BTreeMap<String, Value>,
}

/// The JSON line of one record, without its newline.
pub fn json_line(record: &log::Record<'_>, now: DateTime<Utc>) -> String {
    let mut pairs = Pairs(BTreeMap::new());
    // Visiting an in-memory source only fails if the visitor does, and ours never does.
    let _ = record.key_values().visit(&mut pairs);
    let line = Line {
        time: plugin_jobs::time::iso(now),
        level: record.level().as_str().to_ascii_lowercase(),
        target: record.target(),
        message: record.args().to_string(),
        fields: pairs.0,
    };
    // Strings, and maps with string keys, always serialise.
    serde_json::to_string(&line).unwrap_or_else(|err| format!(r#"{{"error":"{err}"}}"#))
}

/// Collects a record's key-value pairs; one named like a fixed field is dropped.
struct Pairs(BTreeMap<String, Value>);

impl<'kvs> VisitSource<'kvs> for Pairs {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), KvError> {
        if ["time", "level", "target", "message"].contains(&key.as_str()) {
            return Ok(());
        }
        let value = if let Some(number) = value.to_i64() {
            Value::from(number)
        } else if let Some(number) = value.to_u64() {
            Value::from(number)
        } else if let Some(flag) = value.to_bool() {
            Value::from(flag)
        } else {
            Value::from(value.to_string())
        };
        self.0.insert(key.as_str().to_owned(), value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_clients_malformed_request_is_not_an_error_of_the_server() {
        let record = |target: &'static str, args: std::fmt::Arguments<'static>| {
            is_client_fault(
                &log::Record::builder()
                    .args(args)
                    .level(log::Level::Error)
                    .target(target)
                    .build(),
            )
        };
        assert!(record(
            "actix_http::h1::dispatcher",
            format_args!("stream error: request parse error: invalid Header provided")
        ));
        assert!(record(
            "actix_http::h1::decoder",
            format_args!("MAX_BUFFER_SIZE unprocessed data reached, closing")
        ));
        assert!(!record(
            "actix_http::h1::dispatcher",
            format_args!("Internal server error: unexpected eof")
        ));
        assert!(!record(
            "plugin_jobs::server",
            format_args!("stream error: a message of ours")
        ));
    }

    #[test]
    fn a_record_becomes_one_object_with_its_key_values() {
        let now = "2026-03-01T12:00:00.5Z".parse().expect("now");
        let pairs = [
            ("plugin", KvValue::from("demo")),
            ("job", KvValue::from("heartbeat")),
            ("level", KvValue::from("x")),
            ("attempt", KvValue::from(2_i64)),
        ];
        let line = json_line(
            &log::Record::builder()
                .args(format_args!("run {} finished", 7))
                .level(log::Level::Warn)
                .target("plugin_jobs::job_run")
                .key_values(&pairs)
                .build(),
            now,
        );
        assert!(
            line.starts_with(r#"{"time":"2026-03-01T12:00:00.500Z","level":"warn","target":"#),
            "the fixed fields come first: {line}"
        );
        let line: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(
            line,
            json!({
                "time": "2026-03-01T12:00:00.500Z", "level": "warn",
                "target": "plugin_jobs::job_run", "message": "run 7 finished",
                "plugin": "demo", "job": "heartbeat", "attempt": 2
            })
        );
    }

    #[test]
    fn a_record_without_key_values_has_the_four_fields() {
        let now = "2026-03-01T12:00:00Z".parse().expect("now");
        let line = json_line(
            &log::Record::builder()
                .args(format_args!("hello"))
                .level(log::Level::Info)
                .target("t")
                .build(),
            now,
        );
        assert_eq!(
            line,
            r#"{"time":"2026-03-01T12:00:00.000Z","level":"info","target":"t","message":"hello"}"#
        );
    }
}
