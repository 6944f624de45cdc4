//! `serve --log-format json`: every line the server logs is one JSON object with `time`,
//! `level`, `target` and `message`.

mod common;

use common::server::{Server, test_plugin};
use serde_json::{Value, json};

#[test]
fn serve_with_json_logs_writes_one_object_per_line() {
    let server = Server::start(
        &[test_plugin("good", &[], json!([{"jobKey": "ok"}]))],
        &["--log-format", "json"],
    );
    server.wait_worker("good", "running");
    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let time = line["time"].as_str().expect("time");
        assert!(time.ends_with('Z') && time.len() == 24, "{line}");
        assert!(
            ["error", "warn", "info", "debug", "trace"]
                .contains(&line["level"].as_str().unwrap_or("")),
            "{line}"
        );
        assert!(
            line["target"].is_string() && line["message"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|line| line["target"] == "plugin_jobs::server"
                && line["message"] == "plugin good: 1 job(s) registered"),
        "{log}"
    );
}
