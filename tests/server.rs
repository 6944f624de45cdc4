//! The built `plugin-jobs serve` as a real process: a temporary SQLite database, a plugins
//! directory, HTTP over loopback, and signals.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use entity::prelude::*;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_plugin-jobs");

fn test_worker() -> String {
    let dir = Path::new(BIN).parent().expect("target folder");
    dir.join("examples/test_worker").display().to_string()
}

/// A manifest for the SDK test worker with the given jobs.
fn test_plugin(id: &str, args: &[&str], jobs: Value) -> (String, String) {
    let mut command = vec![test_worker()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    let manifest = json!({"id": id, "command": command, "env": {"SLEEP_MS": "1500"}, "jobs": jobs});
    (id.to_owned(), manifest.to_string())
}

/// Polls `condition` until it holds, failing after `deadline`.
fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Server {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Server {
    fn start(plugins: &[(String, String)], args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let plugins_dir = dir.path().join("plugins");
        for (folder, manifest) in plugins {
            let folder = plugins_dir.join(folder);
            std::fs::create_dir_all(&folder).expect("plugin folder");
            std::fs::write(folder.join("manifest.json"), manifest).expect("manifest");
        }
        std::fs::create_dir_all(&plugins_dir).expect("plugins dir");
        let (child, addr) = spawn(dir.path(), &plugins_dir, args).expect("server starts");
        Self { child, addr, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        http(&self.addr, method, path, body, token)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None, None)
    }

    fn post(&self, path: &str) -> (u16, Value) {
        self.request("POST", path, None, None)
    }

    fn runs(&self, plugin: &str, job: &str) -> Vec<Value> {
        let (status, runs) = self.get(&format!("/api/plugins/{plugin}/jobs/{job}/runs"));
        assert_eq!(status, 200, "{runs}");
        runs.as_array().cloned().unwrap_or_default()
    }

    fn run(&self, run_id: &str) -> Value {
        let (status, run) = self.get(&format!("/api/runs/{run_id}"));
        assert_eq!(status, 200, "{run}");
        run
    }

    fn wait_worker(&self, plugin: &str, status: &str) {
        wait_until(
            &format!("worker {plugin} is {status}"),
            Duration::from_secs(20),
            || {
                let (_, plugins) = self.get("/api/plugins");
                plugins
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["id"] == plugin && p["workerStatus"] == status)
            },
        );
    }

    fn signal(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < end,
                "the server did not exit after {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server on a free loopback port; answers the address it printed.
fn spawn(dir: &Path, plugins: &Path, args: &[&str]) -> Result<(Child, String), String> {
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    let db = format!("sqlite://{}?mode=rwc", dir.join("jobs.db").display());
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(["--plugins", &plugins.display().to_string()])
        .args(["--database-url", &db, "--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("spawn server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("plugin-jobs listening on http://") {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(addr) => Ok((child, addr)),
        Err(_) => {
            let status = child.wait().ok();
            let _ = child.kill();
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            Err(format!("the server did not start ({status:?}): {log}"))
        }
    }
}

/// One HTTP/1.1 request; answers the status and the JSON body (`Null` when there is none).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}

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
    assert_eq!(
        (status, busy["error"].as_str()),
        (409, Some("Job sleep is already running"))
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
        json!({"id": "broken", "command": ["x"], "jobs": [{"jobKey": "a", "schedule": "99 * * * *"}]})
            .to_string(),
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
    assert_eq!(ids, ["good"]);
    let log = server.log();
    assert!(
        log.contains("broken/manifest.json: jobs[0].schedule:"),
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
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without an API token"),
        "{stderr}"
    );
}

#[test]
fn sigterm_during_a_run_lets_it_finish_records_it_and_exits_zero() {
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
    let exit = server.signal("-TERM");
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
