//! The built `plugin-jobs serve` as a real process: a temporary SQLite database, a plugins
//! directory, HTTP over loopback, and signals.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::server::{BIN, Server, test_plugin, wait_until_sync as wait_until};
use entity::prelude::*;
use sea_orm::EntityTrait;
use serde_json::json;

fn demo_plugin() -> (String, String) {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plugins/demo/manifest.json");
    let text = std::fs::read_to_string(manifest).expect("demo manifest");
    ("demo".to_owned(), text)
}

#[test]
fn the_demo_plugin_runs_on_schedule_and_its_runs_are_listed() {
    let server = Server::start(&[demo_plugin()], &[]);
    wait_until("a heartbeat run succeeded", Duration::from_secs(30), || {
        server
            .runs("demo", "heartbeat")
            .iter()
            .any(|run| run["status"] == "succeeded" && run["trigger"] == "schedule")
    });
    let run = &server.runs("demo", "heartbeat")[0];
    let slot = run["scheduledFor"].as_str().expect("slot");
    let seconds: u32 = slot[17..19].parse().expect("seconds of the slot");
    assert!(
        seconds.is_multiple_of(5) && slot.ends_with(".000Z"),
        "slots of */5 fall on whole multiples of five seconds: {slot}"
    );
    assert_eq!(
        run["logs"][0]["message"],
        json!(format!("heartbeat for the slot {slot}"))
    );
    let (status, job) = server.get("/api/plugins/demo/jobs/heartbeat");
    assert_eq!(status, 200);
    assert_eq!(job["upcoming"].as_array().map(Vec::len), Some(5));
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn a_manifest_retry_policy_retries_a_failed_run_through_a_process_worker() {
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workers/raw_worker.py");
    let manifest = json!({
        "id": "py",
        "command": ["python3", worker.display().to_string()],
        "jobs": [{"jobKey": "flaky", "retry": {"maxAttempts": 3, "backoff": "200ms"}}]
    });
    let server = Server::start(&[("py".to_owned(), manifest.to_string())], &[]);
    server.wait_worker("py", "running");
    let (status, job) = server.get("/api/plugins/py/jobs/flaky");
    assert_eq!(status, 200);
    assert_eq!(
        job["retry"],
        json!({"maxAttempts": 3, "backoffMs": 200, "maxBackoffMs": 300_000})
    );
    let (status, triggered) = server.post("/api/plugins/py/jobs/flaky/trigger");
    assert_eq!(status, 202, "{triggered}");
    let first = triggered["runId"].as_str().expect("run id").to_owned();
    wait_until("the retry succeeded", Duration::from_secs(30), || {
        server
            .runs("py", "flaky")
            .iter()
            .any(|run| run["status"] == "succeeded")
    });
    let runs = server.runs("py", "flaky");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (retry, failed) = (&runs[0], &runs[1]);
    assert_eq!(failed["id"], json!(first));
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempt"], 1);
    assert_eq!(failed["retryOf"], serde_json::Value::Null);
    assert_eq!(retry["trigger"], "retry");
    assert_eq!(retry["attempt"], 2);
    assert_eq!(retry["retryOf"], json!(first));
    assert_eq!(retry["scheduledFor"], failed["scheduledFor"]);
    assert_eq!(
        retry["logs"][0]["message"],
        json!(format!("attempt 2 retryOf {first}"))
    );
}

#[test]
fn trigger_pause_resume_and_every_error_status_over_http() {
    let good = test_plugin(
        "good",
        &[],
        json!([{"jobKey": "sleep"}, {"jobKey": "ok", "schedule": "0 0 1 1 *"}]),
    );
    let down = test_plugin("down", &["--crash-on-start"], json!([{"jobKey": "ok"}]));
    let server = Server::start(&[good, down], &["--max-concurrent", "4"]);
    server.wait_worker("good", "running");

    let (status, triggered) = server.post("/api/plugins/good/jobs/sleep/trigger");
    assert_eq!(status, 202, "{triggered}");
    let run_id = triggered["runId"].as_str().expect("run id").to_owned();
    let (status, busy) = server.post("/api/plugins/good/jobs/sleep/trigger");
    assert_eq!(status, 409, "{busy}");
    assert!(
        busy["error"].as_str().is_some_and(
            |error| error.starts_with(&format!("Job sleep is already running (run {run_id}"))
        ),
        "{busy}"
    );
    wait_until("the run succeeded", Duration::from_secs(20), || {
        server.run(&run_id)["status"] == "succeeded"
    });

    let (status, missing) = server.post("/api/plugins/good/jobs/nope/trigger");
    assert_eq!(status, 404, "{missing}");
    let (status, down) = server.post("/api/plugins/down/jobs/ok/trigger");
    assert_eq!(status, 503, "{down}");
    assert_eq!(down["error"], "Worker for plugin down is not running");

    let (status, paused) = server.post("/api/plugins/good/jobs/ok/pause");
    assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));
    let (status, refused) = server.post("/api/plugins/good/jobs/ok/trigger");
    assert_eq!(status, 409, "{refused}");
    let (status, resumed) = server.post("/api/plugins/good/jobs/ok/resume");
    assert_eq!((status, resumed["status"].as_str()), (200, Some("active")));
    assert_eq!(server.post("/api/plugins/good/jobs/ok/trigger").0, 202);

    let (status, bad) = server.get("/api/plugins/good/jobs/ok/runs?limit=0");
    assert_eq!(status, 400);
    assert!(
        bad["error"].as_str().is_some_and(|e| e.contains("limit")),
        "{bad}"
    );
    let (status, bad) = server.get("/api/plugins/good/jobs?status=sleeping");
    assert_eq!(status, 400);
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("sleeping")),
        "{bad}"
    );
}

#[test]
fn a_bad_manifest_is_reported_with_its_path_and_field_and_the_good_plugin_still_starts() {
    let good = test_plugin("good", &[], json!([{"jobKey": "ok"}]));
    let bad = (
        "broken".to_owned(),
        // A bad schedule fails only its job (tests/plugins_dir.rs); a missing program rejects
        // the whole manifest.
        json!({"id": "broken", "command": [], "jobs": [{"jobKey": "a"}]}).to_string(),
    );
    let server = Server::start(&[good, bad], &[]);
    server.wait_worker("good", "running");
    let (_, plugins) = server.get("/api/plugins");
    let ids: Vec<&str> = plugins
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["id"].as_str())
        .collect();
    // The rejected plugin is listed as failed, with why, and its (empty) listing is not a 404.
    assert_eq!(ids, ["broken", "good"], "{plugins}");
    assert_eq!(plugins[0]["workerStatus"], "failed", "{plugins}");
    assert_eq!(plugins[0]["jobCount"], 0, "{plugins}");
    let why = plugins[0]["workerError"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("manifest rejected: ") && why.contains("command:"),
        "{why}"
    );
    assert_eq!(
        server.get("/api/plugins/broken/jobs"),
        (200, json!([])),
        "a known plugin without jobs"
    );
    let log = server.log();
    assert!(
        log.contains("broken/manifest.json: command:"),
        "the log names the file and the field: {log}"
    );
}

#[test]
fn with_a_token_every_api_request_needs_it() {
    let server = Server::start(
        &[test_plugin("good", &[], json!([]))],
        &["--api-token", "s3cret"],
    );
    let (status, body) = server.get("/api/plugins");
    assert_eq!((status, body), (401, json!({"error": "Unauthorized"})));
    assert_eq!(
        server.request("GET", "/api/plugins", None, Some("wrong")).0,
        401
    );
    assert_eq!(
        server
            .request("GET", "/api/plugins", None, Some("s3cret"))
            .0,
        200
    );
    assert_eq!(server.get("/healthz").0, 200);
}

#[test]
fn without_a_token_the_server_refuses_a_non_loopback_address() {
    let dir = tempfile::tempdir().expect("temp");
    let output = Command::new(BIN)
        .args(["serve", "--bind", "0.0.0.0:0", "--plugins"])
        .arg(dir.path())
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("db").display()
        ))
        .env_remove("PLUGIN_JOBS_API_TOKEN")
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "a bad setting");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without an API token"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("db").exists(),
        "refused before the database"
    );
}

#[test]
fn a_missing_plugins_directory_or_a_taken_port_fails_before_any_job_is_touched() {
    let good = test_plugin(
        "good",
        &[],
        json!([{"jobKey": "a", "schedule": "0 0 1 1 *"}]),
    );
    let server = Server::start(&[good], &[]);
    server.wait_worker("good", "running");
    let database = server.database_url();
    let (_, port) = server.addr.rsplit_once(':').expect("port");

    // A second server on the same database: first with a plugins directory that is not there,
    // then with an empty one but the port the first one holds.
    let missing = server.dir.path().join("no-such-folder");
    let empty = tempfile::tempdir().expect("temp");
    let attempts = [
        (
            missing.as_path(),
            "127.0.0.1:0",
            2,
            "cannot read the plugins directory",
        ),
        (
            empty.path(),
            &*format!("127.0.0.1:{port}"),
            1,
            "Address already in use",
        ),
    ];
    for (plugins, bind, code, message) in attempts {
        let output = Command::new(BIN)
            .args(["serve", "--bind", bind, "--plugins"])
            .arg(plugins)
            .args(["--database-url", &database])
            .output()
            .expect("run");
        assert_eq!(output.status.code(), Some(code), "{bind}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{stderr}");
        let (status, job) = server.get("/api/plugins/good/jobs/a");
        assert_eq!(status, 200);
        assert_eq!(job["status"], "active", "not retired: {job}");
    }
}

#[test]
fn sigterm_during_a_run_lets_it_finish_records_it_and_exits_zero() {
    stopping_during_a_run_lets_it_finish("-TERM");
}

/// A hangup (the terminal of a foreground server went away) stops it as gracefully: by default
/// SIGHUP would kill it on the spot, its run left live until another instance rescued it.
#[test]
fn sighup_stops_the_server_as_gracefully_as_sigterm() {
    stopping_during_a_run_lets_it_finish("-HUP");
}

fn stopping_during_a_run_lets_it_finish(signal: &str) {
    let good = test_plugin("good", &[], json!([{"jobKey": "sleep"}]));
    let mut server = Server::start(&[good], &["--shutdown-grace", "20s"]);
    server.wait_worker("good", "running");
    let (status, triggered) = server.post("/api/plugins/good/jobs/sleep/trigger");
    assert_eq!(status, 202);
    let run_id = triggered["runId"].as_str().expect("run id").to_owned();
    wait_until("the run is running", Duration::from_secs(20), || {
        server.run(&run_id)["status"] == "running"
    });
    let db = server.dir.path().join("jobs.db");
    let exit = server.signal(signal);
    assert_eq!(exit.code(), Some(0), "{}", server.log());

    // The server is gone: the run's outcome is in the database.
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let run = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let db = plugin_jobs::db::connect(&url).await.expect("connect");
            let id: uuid::Uuid = run_id.parse().expect("uuid");
            PluginJobRun::find_by_id(id).one(&db).await.expect("query")
        })
        .expect("the run row");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert!(run.finished_at.is_some());
    let log = server.log();
    assert!(
        log.contains("1 run(s) finished during the shutdown, 0 cancelled"),
        "{log}"
    );
    assert!(
        log.contains("the worker of plugin good exited (exit status: 0)"),
        "{log}"
    );
}

#[test]
fn a_database_url_it_cannot_use_or_reach_is_named_with_the_reason() {
    let unsupported = Command::new(BIN)
        .args(["migrate", "--database-url", "mysql://user:secret@host/db"])
        .output()
        .expect("run");
    assert_eq!(unsupported.status.code(), Some(2), "bad usage");
    let stderr = String::from_utf8_lossy(&unsupported.stderr);
    assert!(
        stderr.contains("\"mysql://user:***@host/db\" is not a database plugin-jobs can use"),
        "{stderr}"
    );

    // Nothing listens on a port that was free a moment ago: the pool waits for the server to
    // come up, then the error says what the last attempt met.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let refused = Command::new(BIN)
        .args(["migrate", "--database-url"])
        .arg(format!("postgres://user:secret@127.0.0.1:{port}/db"))
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot connect to the database at postgres://user:***@127.0.0.1:{port}/db"
        )) && stderr.contains("Connection refused"),
        "{stderr}"
    );

    // A database opened read-only: `serve` records every run, so it refuses to start rather
    // than skip every plugin and answer /healthz with 200.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("jobs.db");
    let migrated = Command::new(BIN)
        .args(["migrate", "--database-url"])
        .arg(format!("sqlite://{}?mode=rwc", file.display()))
        .output()
        .expect("run");
    assert!(migrated.status.success(), "{migrated:?}");
    std::fs::create_dir_all(dir.path().join("plugins")).expect("plugins");
    let read_only = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--plugins"])
        .arg(dir.path().join("plugins"))
        .arg("--database-url")
        .arg(format!("sqlite://{}?mode=ro", file.display()))
        .output()
        .expect("run");
    assert_eq!(read_only.status.code(), Some(1), "{read_only:?}");
    let stderr = String::from_utf8_lossy(&read_only.stderr);
    assert!(stderr.contains("takes no writes"), "{stderr}");

    // A database a newer plugin-jobs migrated says so.
    let noted = Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"insert into \
             plugin_jobs_migrations (version, applied_at) values ('m20991231_000099_future', \
             0)\"); c.commit()",
        )
        .arg(&file)
        .status()
        .expect("python3");
    assert!(noted.success());
    let newer = Command::new(BIN)
        .args(["migrate", "--database-url"])
        .arg(format!("sqlite://{}?mode=rwc", file.display()))
        .output()
        .expect("run");
    assert_eq!(newer.status.code(), Some(1), "{newer:?}");
    let stderr = String::from_utf8_lossy(&newer.stderr);
    assert!(
        stderr.contains("the database was migrated by a newer plugin-jobs"),
        "{stderr}"
    );
}

/// A client that promises a body and never sends it all is answered 408 once the body wait
/// passes, instead of holding its connection and handler for as long as it likes.
#[test]
fn a_body_that_never_arrives_in_full_is_answered_408() {
    use std::io::{Read, Write};

    let server = Server::start(&[demo_plugin()], &[]);
    for (path, promised) in [
        ("/api/plugins/demo/jobs", 100),
        ("/api/plugins/demo/jobs/heartbeat/pause", 10),
    ] {
        let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("read timeout");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {promised}\r\n\r\n{{",
            server.addr
        );
        stream.write_all(head.as_bytes()).expect("send");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer:?}");
        assert!(
            answer.contains("the request body did not arrive in full within 10 s"),
            "{path}: {answer}"
        );
    }
    let (status, job) = server.get("/api/plugins/demo/jobs/heartbeat");
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("active")),
        "{job}"
    );
}

/// Why a worker keeps restarting is in `GET /api/plugins`, not only in the host's log.
#[test]
fn a_failing_workers_last_error_is_in_the_plugins_listing() {
    let crashing = test_plugin(
        "crashy",
        &["--crash-on-start"],
        json!([{"jobKey": "tick", "schedule": ""}]),
    );
    let server = Server::start(&[crashing, demo_plugin()], &[]);
    wait_until(
        "the crashing worker's error is listed",
        Duration::from_secs(20),
        || {
            let (status, plugins) = server.get("/api/plugins");
            assert_eq!(status, 200, "{plugins}");
            let find = |id: &str| {
                plugins
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|plugin| plugin["id"] == id)
                    .cloned()
                    .unwrap_or_default()
            };
            let (crashy, demo) = (find("crashy"), find("demo"));
            demo["workerStatus"] == "running"
                && demo["workerError"].is_null()
                && crashy["workerStatus"] != "running"
                && crashy["workerError"]
                    .as_str()
                    .is_some_and(|error| error.contains("exit status"))
        },
    );
}

#[test]
fn a_clients_malformed_requests_write_no_error_into_the_servers_log() {
    use std::io::{Read as _, Write as _};
    let server = Server::start(&[], &[]);
    for request in [
        b"GARBAGE\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
        [
            b"GET /".as_slice(),
            &[b'a'; 70_000],
            b" HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        .concat(),
    ] {
        let mut stream = std::net::TcpStream::connect(&server.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.write_all(&request).expect("send");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }
    // A request after them is answered, and logged, as usual: the log is written.
    assert_eq!(server.get("/api/plugins").0, 200);
    let log = server.log();
    assert!(log.contains("listening on"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}
