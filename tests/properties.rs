//! Property tests of the inputs the host parses from outside: durations (flags and environment),
//! plugin manifests (any bytes, any JSON) and worker stdout lines (JSON-RPC). None of them may
//! panic, and every rejection names what was wrong.

use std::time::Duration;

use plugin_jobs::config::{format_duration, parse_duration};
use plugin_jobs::manifest;
use plugin_jobs::worker::rpc::{self, Line};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        Just(Value::String("./worker".into())),
        Just(Value::String("61 * * * *".into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const MANIFEST_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "description",
    "command",
    "env",
    "config",
    "jobs",
];
const JOB_FIELDS: &[&str] = &[
    "jobKey",
    "displayName",
    "description",
    "schedule",
    "timezone",
    "timeoutMs",
    "misfire",
];

/// An object with some of `fields` (and sometimes an unknown one), each with any value.
fn object_of(fields: &'static [&'static str], value: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    let key = prop_oneof![
        prop::sample::select(fields).prop_map(str::to_owned),
        Just("colour".to_owned()),
    ];
    prop::collection::vec((key, value), 0..6)
        .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>()))
        .boxed()
}

/// A manifest-shaped object: known fields with any values, jobs that are job-shaped objects.
fn manifest_like() -> impl Strategy<Value = Value> {
    let job = object_of(JOB_FIELDS, json().boxed());
    let jobs = prop::collection::vec(job, 0..3).prop_map(Value::Array);
    let value = prop_oneof![json(), jobs].boxed();
    object_of(MANIFEST_FIELDS, value)
}

fn load(text: &[u8]) -> Result<manifest::Plugin, manifest::ManifestError> {
    let dir = tempfile::tempdir().expect("temp");
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, text).expect("write");
    std::fs::write(dir.path().join("worker"), "").expect("worker");
    manifest::load(&path)
}

fn read_all_lines(bytes: &[u8], max: usize) -> Vec<Line> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // A small buffer, so lines straddle reads.
        let mut reader = tokio::io::BufReader::with_capacity(7, bytes);
        let mut lines = Vec::new();
        loop {
            match rpc::read_line(&mut reader, max)
                .await
                .expect("in-memory read")
            {
                Line::Eof => return lines,
                line => lines.push(line),
            }
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_duration_text_parses_or_says_why(text in ".{0,24}") {
        if let Err(message) = parse_duration(&text) {
            prop_assert!(message.contains("duration"), "{}", message);
        }
    }

    #[test]
    fn duration_like_text_parses_or_says_why(text in "[0-9]{0,22}(ms|s|m|h|d|x)?([0-9]{0,20}(ms|s|m|h|d))?") {
        if let Err(message) = parse_duration(&text) {
            prop_assert!(message.contains("duration"), "{}", message);
        }
    }

    #[test]
    fn formatted_durations_parse_back(millis in 0u64..=u64::MAX / 2) {
        let d = Duration::from_millis(millis);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn any_bytes_as_a_manifest_load_or_are_rejected_with_a_reason(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Err(err) = load(&bytes) {
            prop_assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn any_json_manifest_loads_or_names_the_field_at_fault(value in manifest_like()) {
        let text = serde_json::to_vec(&value).expect("encode");
        if let Err(err) = load(&text) {
            // The message starts with the field's path (`command: …`, `jobs[1].timeoutMs: …`) or
            // quotes it (`missing field `jobKey``).
            let named = err.message.starts_with("jobs[")
                || MANIFEST_FIELDS.iter().chain(JOB_FIELDS).chain(&["colour"]).any(|field| {
                    [":", ".", "["]
                        .iter()
                        .any(|after| err.message.starts_with(&format!("{field}{after}")))
                        || err.message.contains(&format!("`{field}`"))
                });
            prop_assert!(named, "{}", err.message);
        }
    }

    #[test]
    fn any_line_from_a_worker_parses_or_names_the_field_at_fault(line in ".{0,80}") {
        if let Err(err) = rpc::parse(&line) {
            prop_assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn any_json_rpc_shaped_line_parses_or_names_the_field_at_fault(
        value in object_of(&["jsonrpc", "id", "method", "params", "result", "error"], prop_oneof![
            json(),
            Just(Value::String("2.0".into())),
        ].boxed()),
    ) {
        if let Err(err) = rpc::parse(&value.to_string()) {
            let named = ["jsonrpc", "id", "method", "result", "error"]
                .iter()
                .any(|field| err.message.contains(&format!("\"{field}\"")));
            prop_assert!(named, "{}", err.message);
        }
    }

    #[test]
    fn any_bytes_split_into_bounded_lines(bytes in prop::collection::vec(any::<u8>(), 0..400), max in 0usize..64) {
        for line in read_all_lines(&bytes, max) {
            if let Line::Text(text) = line {
                // At most `max` bytes were read; each byte that is not UTF-8 reads as U+FFFD
                // (three bytes), so the text is at most three times as long.
                let replaced = text.matches('\u{FFFD}').count();
                prop_assert!(text.len() - 2 * replaced <= max);
                prop_assert!(!text.contains('\n'));
            }
        }
    }
}
