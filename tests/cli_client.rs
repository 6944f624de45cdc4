//! The CLI client (`plugin-jobs jobs|runs|run|trigger|cancel|pause|resume`) against a real
//! `plugin-jobs serve`: its tables, its `--json` (the API's JSON as is), and its exit codes
//! (404 → 3, 409 → 4, 401 → 5, unreachable → 6, other errors → 1, bad usage → 2).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use common::server::{BIN, Server, test_plugin, wait_until_sync as wait_until};
use serde_json::{Value, json};

/// What one run of the client gave.
#[derive(Debug)]
struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| {
            panic!("stdout is not JSON ({err}): {self:?}");
        })
    }
}

/// Runs `plugin-jobs ARGS` against `url`, with no token from the environment.
fn client_at(url: &str, args: &[&str]) -> Output {
    let output = Command::new(BIN)
        .args(args)
        .env("PLUGIN_JOBS_URL", url)
        .env_remove("PLUGIN_JOBS_API_TOKEN")
        .output()
        .expect("run the client");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn client(server: &Server, args: &[&str]) -> Output {
    client_at(&format!("http://{}", server.addr), args)
}

/// A plugin with a manual `ok`, `fail` and `sleep` job and a yearly `yearly` job.
fn good_server() -> Server {
    let good = test_plugin(
        "good",
        &[],
        json!([
            {"jobKey": "ok"}, {"jobKey": "fail"}, {"jobKey": "sleep"},
            {"jobKey": "yearly", "schedule": "0 0 1 1 *", "timezone": "Europe/Paris"}
        ]),
    );
    let server = Server::start(&[good], &[]);
    server.wait_worker("good", "running");
    server
}

/// The run id in `trigger`'s answer.
fn triggered_run(output: &Output) -> String {
    assert_eq!(output.code, Some(0), "{output:?}");
    let id = output
        .stdout
        .split_whitespace()
        .skip_while(|word| *word != "run")
        .nth(1)
        .expect("a run id");
    id.to_owned()
}

fn wait_for_status(server: &Server, run_id: &str, status: &str) {
    wait_until(
        &format!("run {run_id} is {status}"),
        Duration::from_secs(20),
        || server.run(run_id)["status"] == status,
    );
}

/// The column at which `header` starts in the table's first line.
fn column(table: &str, header: &str) -> usize {
    table
        .lines()
        .next()
        .and_then(|line| line.find(header))
        .unwrap_or_else(|| panic!("no column {header} in {table}"))
}

#[test]
fn jobs_prints_an_aligned_table_and_the_apis_json() {
    let server = good_server();
    let table = client(&server, &["jobs"]);
    assert_eq!(table.code, Some(0), "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "a header and four jobs: {}", table.stdout);
    assert!(lines[0].starts_with("JOB "), "{}", table.stdout);
    let yearly = lines
        .iter()
        .find(|line| line.starts_with("good/yearly "))
        .expect("the yearly job");
    let at = column(&table.stdout, "STATUS");
    assert_eq!(&yearly[at..at + 6], "active", "{}", table.stdout);
    let at = column(&table.stdout, "SCHEDULE");
    assert!(yearly[at..].starts_with("0 0 1 1 *"), "{}", table.stdout);
    let at = column(&table.stdout, "TZ");
    assert!(yearly[at..].starts_with("Europe/Paris"), "{}", table.stdout);
    let at = column(&table.stdout, "NEXT");
    assert!(yearly[at..].starts_with("in "), "{}", table.stdout);
    let ok = lines
        .iter()
        .find(|line| line.starts_with("good/ok "))
        .expect("the ok job");
    assert!(ok.contains(" manual "), "{ok}");

    let json = client(&server, &["jobs", "--json"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    assert_eq!(
        json.json(),
        server.get("/api/jobs").1,
        "the API's JSON as is"
    );

    let paused = client(&server, &["jobs", "--status", "paused", "--json"]);
    assert_eq!(paused.json(), json!([]));
    let one = client(&server, &["jobs", "--plugin", "good", "--status", "active"]);
    assert_eq!(one.stdout.lines().count(), 5, "{one:?}");

    let missing = client(&server, &["jobs", "--plugin", "nope"]);
    assert_eq!(
        missing.code,
        Some(3),
        "an unknown plugin is a 404: {missing:?}"
    );
    assert!(
        missing.stderr.contains("Plugin not found: nope (HTTP 404"),
        "{missing:?}"
    );
    let usage = client(&server, &["jobs", "--status", "sleeping"]);
    assert_eq!(usage.code, Some(2), "{usage:?}");
}

#[test]
fn trigger_run_and_runs_follow_a_run_to_its_logs() {
    let server = good_server();
    let triggered = client(&server, &["trigger", "good/ok"]);
    let ok_run = triggered_run(&triggered);
    assert!(
        triggered.stdout.starts_with("good/ok triggered: run "),
        "{triggered:?}"
    );
    wait_for_status(&server, &ok_run, "succeeded");
    let failing = client(&server, &["trigger", "good/fail", "--json"]);
    assert_eq!(failing.code, Some(0), "{failing:?}");
    let fail_run = failing.json()["runId"]
        .as_str()
        .expect("runId in the API's answer")
        .to_owned();
    wait_for_status(&server, &fail_run, "failed");

    let detail = client(&server, &["run", &ok_run]);
    assert_eq!(detail.code, Some(0), "{detail:?}");
    assert!(
        detail
            .stdout
            .starts_with(&format!("Run:        {ok_run}\n")),
        "{}",
        detail.stdout
    );
    for expected in [
        "Job:        good/ok\n",
        "Status:     succeeded\n",
        "Trigger:    manual\n",
        "Attempt:    1\n",
        "Error:      -\n",
        "Logs (2):\n",
        &format!("info   hello from run {ok_run}\n"),
        "warn   a warning line\n",
    ] {
        assert!(
            detail.stdout.contains(expected),
            "{expected:?} in {}",
            detail.stdout
        );
    }
    let detail = client(&server, &["run", &fail_run]);
    assert!(
        detail
            .stdout
            .contains("Error:      boom: failed on purpose\n"),
        "{}",
        detail.stdout
    );
    let json = client(&server, &["run", &ok_run, "--json"]);
    assert_eq!(json.json(), server.run(&ok_run));
    // The job whose newest run failed is the one failing.
    let failing = client(&server, &["jobs", "--failing", "--json"]).json();
    let keys: Vec<&str> = failing
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|job| job["jobKey"].as_str())
        .collect();
    assert_eq!(keys, ["fail"], "{failing}");

    let runs = client(&server, &["runs"]);
    assert_eq!(runs.code, Some(0), "{runs:?}");
    let lines: Vec<&str> = runs.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", runs.stdout);
    assert!(lines[0].starts_with("RUN "), "{}", runs.stdout);
    assert!(
        lines[1].starts_with(&fail_run),
        "newest first: {}",
        runs.stdout
    );
    let at = column(&runs.stdout, "JOB");
    assert!(lines[1][at..].starts_with("good/fail "), "{}", runs.stdout);
    let at = column(&runs.stdout, "STATUS");
    assert!(lines[1][at..].starts_with("failed "), "{}", runs.stdout);
    let at = column(&runs.stdout, "ERROR");
    assert_eq!(&lines[1][at..], "boom: failed on purpose");
    assert!(lines[2].starts_with(&ok_run), "{}", runs.stdout);

    let failed = client(&server, &["runs", "--status", "failed", "--json"]).json();
    let ids: Vec<&str> = failed
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|run| run["id"].as_str())
        .collect();
    assert_eq!(ids, [fail_run.as_str()]);
    let of_job = client(&server, &["runs", "good/ok", "--json"]);
    assert_eq!(of_job.json(), json!(server.runs("good", "ok")));
    let limited = client(&server, &["runs", "good", "--limit", "1"]);
    assert_eq!(limited.stdout.lines().count(), 2, "{limited:?}");
    let none = client(&server, &["runs", "good/sleep"]);
    assert_eq!(none.stdout, "No runs.\n");
}

#[test]
fn pause_and_resume_change_the_job_and_say_so() {
    let server = good_server();
    let paused = client(&server, &["pause", "good/yearly"]);
    assert_eq!(
        (paused.code, paused.stdout.as_str()),
        (Some(0), "good/yearly is paused\n")
    );
    let listed = client(&server, &["jobs", "--status", "paused", "--json"]).json();
    assert_eq!(listed[0]["jobKey"], "yearly", "{listed}");
    let refused = client(&server, &["trigger", "good/yearly"]);
    assert_eq!(refused.code, Some(4), "a paused job is a 409: {refused:?}");

    let resumed = client(&server, &["resume", "good/yearly", "--json"]);
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    let job = resumed.json();
    assert_eq!(job["status"], "active");
    assert_eq!(job["jobKey"], "yearly");
    // Midnight of 1 January in Paris is 23:00 UTC on 31 December (winter time).
    let resumed = client(&server, &["resume", "good/yearly"]);
    assert!(
        resumed
            .stdout
            .starts_with("good/yearly is active; next slot ")
            && resumed.stdout.contains("-12-31T23:00:00.000Z (in "),
        "{resumed:?}"
    );
}

#[test]
fn cancel_stops_a_run_and_its_job_waits_for_a_worker_that_ignores_it() {
    let good = test_plugin(
        "good",
        &[],
        json!([{"jobKey": "sleep"}, {"jobKey": "hang"}]),
    );
    let server = Server::start(&[good], &["--cancel-grace", "2s", "--max-concurrent", "1"]);
    server.wait_worker("good", "running");

    // A worker that honours cancelJob stops the run early.
    let sleeping = triggered_run(&client(&server, &["trigger", "good/sleep"]));
    wait_for_status(&server, &sleeping, "running");
    let cancelled = client(&server, &["cancel", &sleeping]);
    assert_eq!(
        (cancelled.code, cancelled.stdout.clone()),
        (Some(0), format!("run {sleeping} is cancelled\n")),
        "{cancelled:?}"
    );
    let run = server.run(&sleeping);
    assert_eq!(run["error"], "cancelled by an operator", "{run}");
    let again = client(&server, &["cancel", &sleeping]);
    assert_eq!(again.code, Some(4), "an ended run is a 409: {again:?}");
    assert!(
        again.stderr.contains("has already ended (cancelled)"),
        "{again:?}"
    );

    // One that ignores it: the run is recorded cancelled at once, and its job stays held (no
    // second call beside the first) until the worker is restarted after the cancel grace.
    let hanging = triggered_run(&client(&server, &["trigger", "good/hang"]));
    wait_for_status(&server, &hanging, "running");
    let cancelled = client(&server, &["cancel", &hanging, "--json"]);
    assert_eq!(cancelled.code, Some(0), "{cancelled:?}");
    assert_eq!(cancelled.json()["status"], "cancelled");
    let held = client(&server, &["trigger", "good/hang"]);
    assert_eq!(
        held.code,
        Some(4),
        "the worker still holds the job: {held:?}"
    );
    // The one slot is held too: a manual run waits for it, and then for the worker that the
    // restart stops, rather than failing against a worker that is not up yet.
    let waiting = triggered_run(&client(&server, &["trigger", "good/sleep"]));
    assert_eq!(server.run(&waiting)["status"], "queued");
    wait_for_status(&server, &waiting, "succeeded");
    wait_until("the job is free again", Duration::from_secs(30), || {
        client(&server, &["trigger", "good/hang"]).code == Some(0)
    });
}

#[test]
fn exit_codes_follow_the_http_status() {
    let good = test_plugin("good", &[], json!([{"jobKey": "sleep"}]));
    let down = test_plugin("down", &["--crash-on-start"], json!([{"jobKey": "ok"}]));
    let server = Server::start(&[good, down], &[]);
    server.wait_worker("good", "running");

    let missing = client(&server, &["trigger", "good/nope"]);
    assert_eq!(missing.code, Some(3), "{missing:?}");
    let missing = client(&server, &["run", "01234567-89ab-7def-8123-456789abcdef"]);
    assert_eq!(missing.code, Some(3), "{missing:?}");
    assert!(missing.stderr.contains("HTTP 404"), "{missing:?}");

    let run = triggered_run(&client(&server, &["trigger", "good/sleep"]));
    let busy = client(&server, &["trigger", "good/sleep"]);
    assert_eq!(busy.code, Some(4), "{busy:?}");
    // The answer names the live run (queued or running by now).
    assert!(
        busy.stderr
            .starts_with(&format!("error: Job sleep is already running (run {run}"))
            && busy.stderr.ends_with(") (HTTP 409 Conflict)\n"),
        "{busy:?}"
    );
    assert_eq!(busy.stdout, "");
    wait_for_status(&server, &run, "succeeded");

    let unavailable = client(&server, &["trigger", "down/ok"]);
    assert_eq!(
        unavailable.code,
        Some(1),
        "a 503 is any other error: {unavailable:?}"
    );
    assert!(
        unavailable
            .stderr
            .contains("Worker for plugin down is not running (HTTP 503"),
        "{unavailable:?}"
    );
    let bad_id = client(&server, &["run", "not-a-uuid"]);
    assert_eq!(bad_id.code, Some(1), "a 400 is any other error: {bad_id:?}");

    for usage in [
        &["trigger", "good"][..],
        &["trigger", "good/sleep", "--payload", "{oops"],
        &[
            "trigger",
            "good/sleep",
            "--payload",
            r#"{"id": 123456789012345678901234}"#,
        ],
        &["runs", "--limit", "0"],
        &["jobs", "--url", "ftp://host"],
        &["jobs", "--url", "http://127.0.0.1:1#frag"],
        &["jobs", "--token", "s3cret\n"],
        &["run", ""],
        &["cancel", " "],
    ] {
        let output = client(&server, usage);
        assert_eq!(output.code, Some(2), "{usage:?}: {output:?}");
    }

    // A base URL with the API's own prefix reaches no route: that is the URL's fault (exit 1,
    // with the URL and how to fix it), not a missing job (exit 3).
    let api_prefix = client_at(&format!("http://{}/api", server.addr), &["jobs"]);
    assert_eq!(api_prefix.code, Some(1), "{api_prefix:?}");
    assert!(
        api_prefix
            .stderr
            .contains(&format!("http://{}/api/api/jobs", server.addr))
            && api_prefix.stderr.contains("without /api"),
        "{api_prefix:?}"
    );
    // A bad value set through the environment names the variable, not only the flag.
    let from_env = client_at("localhost:1", &["jobs"]);
    assert_eq!(from_env.code, Some(2), "{from_env:?}");
    assert!(
        from_env
            .stderr
            .contains("the value comes from the environment variable PLUGIN_JOBS_URL"),
        "{from_env:?}"
    );

    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let unreachable = client_at(&format!("http://127.0.0.1:{port}"), &["jobs"]);
    assert_eq!(unreachable.code, Some(6), "{unreachable:?}");
    assert!(
        unreachable.stderr.contains(&format!(
            "cannot reach the server at http://127.0.0.1:{port}"
        )),
        "{unreachable:?}"
    );
}

#[test]
fn with_an_api_token_the_client_needs_it_and_exits_5_without() {
    let server = Server::start(
        &[test_plugin("good", &[], json!([{"jobKey": "ok"}]))],
        &["--api-token", "s3cret"],
    );
    let refused = client(&server, &["jobs"]);
    assert_eq!(refused.code, Some(5), "{refused:?}");
    assert!(
        refused.stderr.contains("Unauthorized (HTTP 401") && refused.stderr.contains("--token"),
        "{refused:?}"
    );
    let wrong = client(&server, &["jobs", "--token", "wrong"]);
    assert_eq!(wrong.code, Some(5), "{wrong:?}");
    assert!(
        wrong.stderr.contains("the server refused the token given"),
        "{wrong:?}"
    );
    let allowed = client(&server, &["jobs", "--token", "s3cret"]);
    assert_eq!(allowed.code, Some(0), "{allowed:?}");
    assert!(allowed.stdout.contains("good/ok "), "{allowed:?}");

    // The token from the environment; the server given by `--server`, the other name of `--url`.
    let from_env = Command::new(BIN)
        .args([
            "jobs",
            "--json",
            "--server",
            &format!("http://{}", server.addr),
        ])
        .env("PLUGIN_JOBS_API_TOKEN", "s3cret")
        .output()
        .expect("run the client");
    assert_eq!(from_env.status.code(), Some(0), "{from_env:?}");
    let jobs: Value = serde_json::from_slice(&from_env.stdout).expect("JSON");
    assert!(
        jobs.as_array()
            .is_some_and(|jobs| jobs.iter().any(|job| job["jobKey"] == "ok")),
        "{jobs}"
    );
}

/// A one-request HTTP server that records the request and answers `status` with `body`.
fn answer_once(status: &str, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let status = status.to_owned();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("a request");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().expect("length");
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body_in = vec![0; length];
        reader.read_exact(&mut body_in).expect("body");
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        reader
            .get_mut()
            .write_all(response.as_bytes())
            .expect("answer");
        head + &String::from_utf8_lossy(&body_in)
    });
    (url, handle)
}

#[test]
fn trigger_sends_the_payload_and_the_token_in_one_request() {
    let (url, request) = answer_once(
        "202 Accepted",
        r#"{"runId":"01234567-89ab-7def-8123-456789abcdef","jobId":"j"}"#,
    );
    let output = client_at(
        &format!("{url}/prefix/"),
        &[
            "trigger",
            "demo/report daily",
            "--payload",
            r#"{"day": "2026-03-01"}"#,
            "--token",
            "t0k",
        ],
    );
    assert_eq!(output.code, Some(0), "{output:?}");
    assert!(
        output
            .stdout
            .contains("run 01234567-89ab-7def-8123-456789abcdef is queued"),
        "{output:?}"
    );
    let request = request.join().expect("the request");
    assert!(
        request.starts_with("POST /prefix/api/plugins/demo/jobs/report%20daily/trigger HTTP/1.1"),
        "{request}"
    );
    assert!(
        request
            .to_ascii_lowercase()
            .contains("authorization: bearer t0k\r\n"),
        "{request}"
    );
    let body = request.split("\r\n\r\n").nth(1).expect("a body");
    assert_eq!(
        serde_json::from_str::<Value>(body).expect("JSON body"),
        json!({"payload": {"day": "2026-03-01"}})
    );
}

#[test]
fn an_answer_that_is_not_the_apis_is_an_error_not_a_crash() {
    // Another web server's error pages, a 404 among them, are not the API's "not found".
    for status in ["500 Internal Server Error", "404 Not Found"] {
        let (url, request) = answer_once(status, "<html>oops</html>");
        let output = client_at(&url, &["jobs"]);
        request.join().expect("the request");
        assert_eq!(output.code, Some(1), "{output:?}");
        assert!(
            output.stderr.contains(&format!(
                "HTTP {status} that is not the plugin-jobs API's: <html>oops</html>"
            )),
            "{output:?}"
        );
    }
    let (url, request) = answer_once("200 OK", r#"{"not": "a list"}"#);
    let output = client_at(&url, &["jobs"]);
    request.join().expect("the request");
    assert_eq!(output.code, Some(1), "{output:?}");
    assert!(
        output.stderr.contains("not the documented JSON shape"),
        "{output:?}"
    );
}
