//! The dashboard in a real browser: the built `plugin-jobs serve` with the SDK test worker
//! (started by `common::server`), and headless Chromium driven through chromedriver (W3C
//! WebDriver over loopback HTTP, spoken by a small client below). The page asks for the API token, runs a job now and shows the run reach
//! `succeeded` with its log lines, pauses the job, and shows the API's 409 and 503 plainly.
//!
//! Without `chromium` and `chromedriver` on the PATH the test prints why and passes, unless
//! `PLUGIN_JOBS_REQUIRE_BROWSER=1` (set by `.ci/run`), which makes their absence a failure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::server::{Server, test_plugin};
use serde_json::{Value, json};

const TOKEN: &str = "s3cret";
/// The W3C WebDriver key under which an element reference comes back.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

// ---------------------------------------------------------------------------------------------
// HTTP over loopback

/// One HTTP/1.1 request; answers the status and the body as JSON (`Null` when there is none).
/// The body is read by its length (chromedriver keeps connections open whatever we ask).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|err| panic!("connect {addr}: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .unwrap_or_else(|err| panic!("{method} {path}: no answer: {err}"));
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: bad status line {status_line:?}"));
    let mut length = None;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("a header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse::<usize>().ok(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                _ => {}
            }
        }
    }
    let mut bytes = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("a chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("a hexadecimal chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("a chunk");
            if size == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        bytes.resize(length, 0);
        reader.read_exact(&mut bytes).expect("the body");
    } else {
        reader.read_to_end(&mut bytes).expect("the body");
    }
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Polls `condition` until it answers `Some`, failing with `what` after `deadline`.
fn wait_for<T>(what: &str, deadline: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + deadline;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

// ---------------------------------------------------------------------------------------------
// The server

/// `plugin-jobs serve` with the API token and plugins `good` (the SDK test worker: `ok`,
/// `sleep`, `fail`, all manual) and `down` (a worker that exits at once).
fn start_server() -> Server {
    let jobs = json!([
        {"jobKey": "ok", "displayName": "Say hello", "description": "Logs two lines."},
        {"jobKey": "sleep", "displayName": "Sleep"},
        {"jobKey": "fail", "displayName": "Fail"},
    ]);
    Server::start(
        &[
            test_plugin("good", &[], jobs.clone()),
            test_plugin("down", &["--crash-on-start"], jobs),
        ],
        &["--api-token", TOKEN],
    )
}

fn api(server: &Server, path: &str) -> (u16, Value) {
    server.request("GET", path, None, Some(TOKEN))
}

// ---------------------------------------------------------------------------------------------
// WebDriver

/// An executable found on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A child process killed when dropped, however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver and one headless Chromium session, ended on drop.
struct Browser {
    _driver: Reaped,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start(chromium: &Path, chromedriver: &Path) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let driver = Reaped(
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn chromedriver"),
        );
        let ready = Instant::now() + Duration::from_secs(30);
        loop {
            let up = TcpStream::connect(&addr).is_ok()
                && http(&addr, "GET", "/status", None, None).1["value"]["ready"] == true;
            if up {
                break;
            }
            assert!(
                Instant::now() < ready,
                "chromedriver did not become ready on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--no-first-run",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,1000",
                ],
            },
        }}});
        let (status, created) = http(&addr, "POST", "/session", Some(&capabilities), None);
        let Some(session) = created["value"]["sessionId"].as_str().map(str::to_owned) else {
            panic!("chromedriver did not start Chromium ({status}): {created}");
        };
        Self {
            _driver: driver,
            addr,
            session,
            _profile: profile,
        }
    }

    /// A WebDriver command of this session; panics on a WebDriver error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let (status, reply) = http(&self.addr, method, &path, body.as_ref(), None);
        assert_eq!(status, 200, "{method} {path}: {reply}");
        reply["value"].clone()
    }

    fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({"url": url})));
    }

    /// Runs `script` in the page (its `arguments` are `args`) and answers its return value.
    fn script(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The text of the first element matching `css`, or `None` when there is none.
    fn text(&self, css: &str) -> Option<String> {
        let found = self.script(
            "const el = document.querySelector(arguments[0]); \
             return el ? el.textContent.trim() : null;",
            json!([css]),
        );
        found.as_str().map(str::to_owned)
    }

    /// An attribute of the first element matching `css`.
    fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let found = self.script(
            "const el = document.querySelector(arguments[0]); \
             return el ? el.getAttribute(arguments[1]) : null;",
            json!([css, name]),
        );
        found.as_str().map(str::to_owned)
    }

    fn visible(&self, css: &str) -> bool {
        self.script(
            "const el = document.querySelector(arguments[0]); \
             return !!el && el.getClientRects().length > 0;",
            json!([css]),
        ) == true
    }

    /// Clicks the element matching `css` the way a user does (WebDriver Element Click), retrying
    /// while the element is missing or being replaced by a refresh.
    fn click(&self, css: &str) {
        wait_for(
            &format!("a click on {css}"),
            Duration::from_secs(10),
            || {
                let path = format!("/session/{}/element", self.session);
                let find = json!({"using": "css selector", "value": css});
                let (status, found) = http(&self.addr, "POST", &path, Some(&find), None);
                if status != 200 {
                    return None;
                }
                let id = found["value"][ELEMENT].as_str()?.to_owned();
                let path = format!("/session/{}/element/{id}/click", self.session);
                let (status, _) = http(&self.addr, "POST", &path, Some(&json!({})), None);
                (status == 200).then_some(())
            },
        );
    }

    /// Types `text` into the element matching `css`.
    fn type_into(&self, css: &str, text: &str) {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("an element for {css}: {found}"))
            .to_owned();
        self.command("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Waits until the text of `css` satisfies `check`; answers it.
    fn wait_text(&self, css: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        wait_for(
            &format!("{css} shows {what}"),
            Duration::from_secs(20),
            || self.text(css).filter(|text| check(text)),
        )
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        if TcpStream::connect(&self.addr).is_ok() {
            let _ = http(&self.addr, "DELETE", &path, None, None);
        }
    }
}

/// Chromium and chromedriver, or `None` (with the reason printed) when the test may skip.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let chromedriver = on_path("chromedriver");
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Some((chromium, chromedriver)),
        (chromium, chromedriver) => {
            let missing = [
                chromium.is_none().then_some("chromium"),
                chromedriver.is_none().then_some("chromedriver"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" and ");
            let required = std::env::var("PLUGIN_JOBS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "PLUGIN_JOBS_REQUIRE_BROWSER=1 but the PATH lacks {missing} \
                 (apt-get install chromium chromium-driver)"
            );
            eprintln!(
                "skipping the browser test: the PATH lacks {missing} \
                 (apt-get install chromium chromium-driver to run it)"
            );
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------

const OK_ROW: &str = r#"tr[data-job="good/ok"]"#;

#[test]
fn dashboard_in_chromium_asks_for_the_token_runs_a_job_now_and_pauses_it() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let started = Instant::now();
    let server = start_server();
    let browser = Browser::start(&chromium, &chromedriver);
    browser.open(&format!("http://{}/", server.addr));

    // The API answers 401: the page asks for the token, and says so when it is wrong.
    wait_for("the token prompt", Duration::from_secs(20), || {
        browser.visible("#token").then_some(())
    });
    browser.type_into("#token", "wrong");
    browser.click("#auth-form button[type=submit]");
    browser.wait_text("#auth-error", "the refusal", |t| t.contains("refused"));
    browser.type_into("#token", TOKEN);
    browser.click("#auth-form button[type=submit]");
    wait_for("the jobs table", Duration::from_secs(20), || {
        browser.visible(OK_ROW).then_some(())
    });
    assert!(!browser.visible("#auth"), "the prompt is gone");

    // Plugins with their worker status; the job with its schedule in words.
    browser.wait_text(
        r#"[data-plugin="good"] [data-field="worker"]"#,
        "running",
        |t| t == "running",
    );
    let job_text = browser.text(OK_ROW).expect("the ok row");
    assert!(
        job_text.contains("Say hello") && job_text.contains("manual only"),
        "{job_text}"
    );

    // Run now: the page names the queued run, and the run reaches succeeded with its log lines.
    browser.click(&format!(r#"{OK_ROW} button[data-action="trigger"]"#));
    let run_id = wait_for("the queued run's id", Duration::from_secs(20), || {
        browser.attribute(
            &format!("{OK_ROW} [data-field=message] [data-run-id]"),
            "data-run-id",
        )
    });
    let run_row = format!(r#"tr[data-run-id="{run_id}"]"#);
    browser.wait_text(
        &format!("{run_row} [data-field=status]"),
        "succeeded",
        |t| t == "succeeded",
    );
    let (status, run) = api(&server, &format!("/api/runs/{run_id}"));
    assert_eq!((status, run["status"].as_str()), (200, Some("succeeded")));
    browser.click(&format!("{run_row} button[data-toggle]"));
    let logs = browser.wait_text(
        &format!(r#"tr[data-key="{run_id}/logs"]"#),
        "the worker's lines",
        |t| t.contains("hello from run"),
    );
    assert!(
        logs.contains(&format!("hello from run {run_id}")) && logs.contains("a warning line"),
        "{logs}"
    );

    // Pause: the job shows paused, and run now then shows the API's 409 plainly.
    browser.click(&format!(r#"{OK_ROW} button[data-action="pause"]"#));
    browser.wait_text(&format!("{OK_ROW} [data-field=status]"), "paused", |t| {
        t == "paused"
    });
    let (_, job) = api(&server, "/api/plugins/good/jobs/ok");
    assert_eq!(job["status"], "paused");
    browser.click(&format!(r#"{OK_ROW} button[data-action="trigger"]"#));
    let refused = browser.wait_text(&format!("{OK_ROW} [data-field=message]"), "a 409", |t| {
        t.starts_with("409")
    });
    assert!(refused.contains("not active"), "{refused}");
    browser.click(&format!(r#"{OK_ROW} button[data-action="resume"]"#));
    browser.wait_text(&format!("{OK_ROW} [data-field=status]"), "active", |t| {
        t == "active"
    });

    // A plugin whose worker is down: run now shows the API's 503.
    let down_row = r#"tr[data-job="down/ok"]"#;
    browser.click(&format!(r#"{down_row} button[data-action="trigger"]"#));
    let unavailable =
        browser.wait_text(&format!("{down_row} [data-field=message]"), "a 503", |t| {
            t.starts_with("503")
        });
    assert!(
        unavailable.contains("Worker for plugin down is not running"),
        "{unavailable}"
    );
    eprintln!("browser test took {:?}", started.elapsed());
}
