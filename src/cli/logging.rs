//! `--log-format text|json` of `serve`. Text is env_logger's usual line; json writes one object
//! per record for log shippers: `time` (ISO 8601 UTC, milliseconds), `level`, `target`,
//! `message`, plus every key-value pair the record carries (such as `plugin`, `job` and `run`,
//! written `log::info!(plugin = id, run = run_id; "…")`). `RUST_LOG` filters either way.

use std::io::Write;

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use log::kv::{Error as KvError, Key, Value as KvValue, VisitSource};
use serde_json::{Map, Value};

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
    builder.init();
}

/// The JSON object of one record.
pub fn json_line(record: &log::Record<'_>, now: DateTime<Utc>) -> Value {
    let mut line = Map::new();
    line.insert("time".into(), plugin_jobs::time::iso(now).into());
    line.insert(
        "level".into(),
        record.level().as_str().to_ascii_lowercase().into(),
    );
    line.insert("target".into(), record.target().into());
    line.insert("message".into(), record.args().to_string().into());
    let mut pairs = Pairs(&mut line);
    // Visiting an in-memory source only fails if the visitor does, and ours never does.
    let _ = record.key_values().visit(&mut pairs);
    Value::Object(line)
}

/// Adds a record's key-value pairs to the line; a key that would overwrite one of the four
/// fixed fields is dropped.
struct Pairs<'a>(&'a mut Map<String, Value>);

impl<'kvs> VisitSource<'kvs> for Pairs<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: KvValue<'kvs>) -> Result<(), KvError> {
        let value = if let Some(number) = value.to_i64() {
            Value::from(number)
        } else if let Some(number) = value.to_u64() {
            Value::from(number)
        } else if let Some(flag) = value.to_bool() {
            Value::from(flag)
        } else {
            Value::from(value.to_string())
        };
        self.0.entry(key.as_str().to_owned()).or_insert(value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        assert_eq!(line.as_object().map(|o| o.len()), Some(4), "{line}");
    }
}
