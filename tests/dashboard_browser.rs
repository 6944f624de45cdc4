//! The dashboard in a real browser: the built `plugin-jobs serve` with the SDK test worker
//! (started by `common::server`), and headless Chromium driven through chromedriver (W3C
//! WebDriver over loopback HTTP, spoken by a small client below). The page asks for the API
//! token, runs a job now and shows the run reach `succeeded` with its log lines, shows each job's
//! last runs as a strip whose cells open the run's detail (by mouse and by keyboard; Escape
//! closes it), filters to failed jobs and runs and to one plugin, shows upcoming slots with their
//! DST notes and the scheduler's figures of the last ten minutes, fits a phone's width, pauses
//! the job, and shows the API's 409 and 503 plainly.
//!
//! `screenshots_of_the_demo` (ignored; run it with `--ignored`) writes `docs/dashboard.png` and
//! `docs/dashboard-narrow.png` from a server running the demo plugin.
//!
//! Without `chromium` and `chromedriver` on the PATH the test prints why and passes, unless
//! `PLUGIN_JOBS_REQUIRE_BROWSER=1` (set by `.ci/run`), which makes their absence a failure.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::server::{BIN, Server, test_plugin};
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
        {"jobKey": "hang", "displayName": "Hang"},
        // Once a year, and in 2027 at a time that New York skips: its first slot has a DST note.
        {"jobKey": "spring", "displayName": "Spring forward", "schedule": "30 2 14 3 *",
         "timezone": "America/New_York"},
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
        wait_for(
            &format!("chromedriver is ready on {addr}"),
            Duration::from_secs(30),
            || {
                (TcpStream::connect(&addr).is_ok()
                    && http(&addr, "GET", "/status", None, None).1["value"]["ready"] == true)
                    .then_some(())
            },
        );
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

    /// Opens the dashboard of `server` and answers its token prompt with the right token.
    fn sign_in(&self, server: &Server) {
        self.open(&format!("http://{}/", server.addr));
        wait_for("the token prompt", Duration::from_secs(20), || {
            self.visible("#token").then_some(())
        });
        self.type_into("#token", TOKEN);
        self.click("#auth-form button[type=submit]");
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

    /// Presses and releases one key (a WebDriver key code such as [`ESCAPE`]) in the focused
    /// element.
    fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key},
        ]}]});
        self.command("POST", "/actions", Some(actions));
    }

    /// Clicks a listing's "More" button and waits until `rows` match `total` elements; the
    /// button then hides, as there is no further page.
    fn show_the_rest(&self, button: &str, rows: &str, total: u64) {
        self.click(button);
        wait_for(
            &format!("{total} rows of {rows}"),
            Duration::from_secs(20),
            || (self.count(rows) == total).then_some(()),
        );
        assert!(!self.visible(button), "{button}: no third page");
    }

    /// How many elements match `css`.
    fn count(&self, css: &str) -> u64 {
        self.script(
            "return document.querySelectorAll(arguments[0]).length;",
            json!([css]),
        )
        .as_u64()
        .unwrap_or(0)
    }

    /// Resizes the window so the page's viewport is `width` × `height` CSS pixels.
    fn viewport(&self, width: i64, height: i64) {
        self.command(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
        // The window's frame takes some of it: grow the window by what the viewport lacks.
        let inner = self.script("return [window.innerWidth, window.innerHeight];", json!([]));
        let (w, h) = (
            inner[0].as_i64().unwrap_or(width),
            inner[1].as_i64().unwrap_or(height),
        );
        if (w, h) != (width, height) {
            self.command(
                "POST",
                "/window/rect",
                Some(json!({"width": 2 * width - w, "height": 2 * height - h})),
            );
        }
    }

    /// A PNG of the viewport, written to `path`.
    fn screenshot(&self, path: &Path) {
        let encoded = self.command("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("a base64 screenshot"))
            .expect("valid base64");
        std::fs::write(path, png).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
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
const FAIL_ROW: &str = r#"tr[data-job="good/fail"]"#;
/// The WebDriver key codes of Escape and Enter.
const ESCAPE: &str = "\u{E00C}";
const ENTER: &str = "\u{E007}";

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

    // The job's strip: the run as a green cell that opens the run's detail, with the logs, the
    // trigger, the lateness and the instance that ran it.
    let (_, scheduler) = api(&server, "/api/scheduler");
    let instance = scheduler["instanceId"].as_str().expect("an instance id");
    let cell = format!(r#"{OK_ROW} .strip button[data-open-run="{run_id}"]"#);
    wait_for(
        "the run in the job's strip",
        Duration::from_secs(20),
        || browser.visible(&cell).then_some(()),
    );
    assert_eq!(
        browser.attribute(&cell, "data-status").as_deref(),
        Some("succeeded")
    );
    assert!(browser.visible(&format!("{OK_ROW} svg.spark")));
    browser.click(&cell);
    let detail = format!(r#"#detail [data-run-detail="{run_id}"]"#);
    let detail_logs = browser.wait_text(
        &format!("{detail} [data-field=logs]"),
        "the run's logs",
        |t| t.contains("hello from run"),
    );
    assert!(detail_logs.contains("a warning line"), "{detail_logs}");
    assert_eq!(
        browser
            .text(&format!("{detail} [data-field=trigger]"))
            .as_deref(),
        Some("manual")
    );
    assert_eq!(
        browser
            .text(&format!("{detail} [data-field=instance]"))
            .as_deref(),
        Some(instance)
    );
    let late = browser
        .text(&format!("{detail} [data-field=lateness]"))
        .expect("the lateness");
    assert!(late.ends_with("ms") || late.ends_with(" s"), "{late}");
    // Escape closes the panel and gives the focus back to the cell that opened it.
    browser.press(ESCAPE);
    wait_for("the detail to close", Duration::from_secs(10), || {
        (!browser.visible("#detail")).then_some(())
    });
    let focused = browser.script(
        "return document.activeElement && document.activeElement.dataset.openRun;",
        json!([]),
    );
    assert_eq!(
        focused,
        json!(run_id),
        "the focus is back on the strip cell"
    );

    // A failed run, reached by keyboard: its cell is the strip's tab stop, Enter opens it.
    let (status, failed) = server.request(
        "POST",
        "/api/plugins/good/jobs/fail/trigger",
        None,
        Some(TOKEN),
    );
    assert_eq!(status, 202, "{failed}");
    let failed_id = failed["runId"].as_str().expect("a run id").to_owned();
    let failed_cell = format!(r#"{FAIL_ROW} .strip button[data-open-run="{failed_id}"]"#);
    wait_for(
        "the failed run in its strip",
        Duration::from_secs(20),
        || {
            (browser.attribute(&failed_cell, "data-status").as_deref() == Some("failed"))
                .then_some(())
        },
    );
    assert_eq!(
        browser.attribute(&failed_cell, "tabindex").as_deref(),
        Some("0")
    );
    browser.script(
        "document.querySelector(arguments[0]).focus();",
        json!([failed_cell]),
    );
    browser.press(ENTER);
    let error = browser.wait_text(
        &format!(r#"#detail [data-run-detail="{failed_id}"] [data-field=error]"#),
        "the run's error",
        |t| !t.is_empty(),
    );
    assert!(error.contains("boom: failed on purpose"), "{error}");
    browser.click("#detail-close");
    wait_for("the detail to close", Duration::from_secs(10), || {
        (!browser.visible("#detail")).then_some(())
    });

    // A run that hangs: its detail offers to cancel it, and then shows it cancelled.
    let (status, hung) = server.request(
        "POST",
        "/api/plugins/good/jobs/hang/trigger",
        None,
        Some(TOKEN),
    );
    assert_eq!(status, 202, "{hung}");
    let hung_id = hung["runId"].as_str().expect("a run id").to_owned();
    wait_for("the hanging run to start", Duration::from_secs(20), || {
        (api(&server, &format!("/api/runs/{hung_id}")).1["status"] == "running").then_some(())
    });
    browser.script("openDetail(arguments[0]);", json!([hung_id]));
    let hung_detail = format!(r#"#detail [data-run-detail="{hung_id}"]"#);
    browser.wait_text(
        &format!("{hung_detail} [data-field=status]"),
        "the run shown running",
        |t| t == "running",
    );
    // A cancel the server refuses (as one held by another instance is) keeps its reason in
    // the detail through the refreshes that re-read the live run.
    let before = browser.script("return state.refreshes;", json!([]));
    browser.script(
        "const real = api;\
         api = (method, path) => method === 'POST' && path.endsWith('/cancel')\
           ? Promise.reject(new ApiError(409, 'Run held by instance elsewhere'))\
           : real(method, path);\
         const button = document.createElement('button');\
         button.dataset.cancelRun = arguments[0];\
         return cancelRun(button).finally(() => { api = real; });",
        json!([hung_id]),
    );
    wait_for("two more refreshes", Duration::from_secs(20), || {
        let now = browser.script("return state.refreshes;", json!([]));
        (now.as_u64() >= before.as_u64().map(|n| n + 2)).then_some(())
    });
    let refused = browser
        .text(&format!("{hung_detail} [data-field=cancel-refused]"))
        .unwrap_or_default();
    assert!(
        refused.starts_with("409") && refused.contains("Run held by instance elsewhere"),
        "{refused:?}"
    );
    assert_eq!(
        browser
            .text(&format!("{hung_detail} [data-field=status]"))
            .as_deref(),
        Some("running")
    );
    browser.click(&format!("{hung_detail} button[data-cancel-run]"));
    browser.wait_text(
        &format!("{hung_detail} [data-field=status]"),
        "the run shown cancelled",
        |t| t == "cancelled",
    );
    assert!(!browser.visible(&format!("{hung_detail} [data-field=cancel-refused]")));
    assert_eq!(
        api(&server, &format!("/api/runs/{hung_id}")).1["error"],
        "cancelled by an operator"
    );
    assert!(!browser.visible(&format!("{hung_detail} button[data-cancel-run]")));
    browser.click("#detail-close");
    wait_for("the detail to close", Duration::from_secs(10), || {
        (!browser.visible("#detail")).then_some(())
    });

    // Failed only: the failing job stays, the healthy one goes, and the runs are failed ones.
    browser.click("#failed-only");
    wait_for("the failed-only jobs", Duration::from_secs(20), || {
        (!browser.visible(OK_ROW) && browser.visible(FAIL_ROW)).then_some(())
    });
    wait_for("only failed runs", Duration::from_secs(20), || {
        let runs = browser.count("#runs tr[data-run-id]");
        let failed = browser.count("#runs tr[data-run-id] .pill.bad[data-field=status]");
        (runs > 0
            && runs == failed
            && browser.visible(&format!(r#"#runs tr[data-run-id="{failed_id}"]"#)))
        .then_some(())
    });
    browser.click("#failed-only");
    wait_for("every job again", Duration::from_secs(20), || {
        browser.visible(OK_ROW).then_some(())
    });

    // One plugin: the other plugin's jobs and runs go.
    browser.click(r#"#plugin-filter option[value="down"]"#);
    wait_for(
        "the down plugin's jobs only",
        Duration::from_secs(20),
        || {
            (!browser.visible(OK_ROW)
                && browser.visible(r#"tr[data-job="down/ok"]"#)
                && browser.count(&format!(r#"#runs tr[data-run-id="{run_id}"]"#)) == 0)
                .then_some(())
        },
    );
    assert!(
        browser
            .text("#job-count")
            .is_some_and(|t| t.contains(" of "))
    );
    browser.click(r#"#plugin-filter option[value=""]"#);
    wait_for("every plugin again", Duration::from_secs(20), || {
        browser.visible(OK_ROW).then_some(())
    });

    // The upcoming slots of a scheduled job, with what daylight saving decided.
    let spring = r#"tr[data-job="good/spring"]"#;
    assert!(
        browser
            .text(&format!("{spring} button[data-toggle]"))
            .is_some_and(|t| t.contains("show next 5") && t.contains("DST")),
        "the slots toggle says a slot has a DST note"
    );
    browser.click(&format!("{spring} button[data-toggle]"));
    let note = browser.wait_text(
        &format!("{spring} [data-field=dst-note]"),
        "the DST note",
        |t| !t.is_empty(),
    );
    assert!(
        note.contains("02:30 does not exist on 2027-03-14"),
        "{note}"
    );
    assert_eq!(browser.count(&format!("{spring} ol.slots li")), 5);
    // A next run whose slot passed since the last refresh reads "due", never "3 s ago"; a last
    // run's time still reads "ago".
    let passed = browser.script(
        "const at = new Date(Date.now() - 3000).toISOString();\
         return [relText(at, true), relText(at, false)];",
        json!([]),
    );
    assert_eq!(passed, json!(["due", "3 s ago"]));

    // The scheduler's figures: sampled from /metrics, charted over the last ten minutes.
    let ticks = browser.wait_text("#chart-tick [data-field=figure]", "a tick figure", |t| {
        t.starts_with("mean")
    });
    assert!(ticks.contains("ticks in"), "{ticks}");
    assert!(browser.count("#chart-tick svg polyline") > 0, "a tick line");
    let late = browser.wait_text(
        "#chart-lateness [data-field=figure]",
        "a lateness figure",
        |t| t.starts_with("mean"),
    );
    assert!(late.contains("runs in"), "{late}");

    // A server that stops answering: the banner says so, and the scheduler's figures, now the
    // last ones read, no longer say it runs; they come back with the server.
    let scheduler_pill = browser.script(
        "const real = api;\
         api = () => Promise.reject(new ApiError(0, 'Cannot reach the server: Failed to fetch'));\
         return refresh().then(() => {\
           api = real;\
           return [document.querySelector('#facts [data-field=scheduler]').textContent,\
                   document.getElementById('facts').classList.contains('stale'),\
                   document.getElementById('banner').textContent];\
         });",
        json!([]),
    );
    assert_eq!(
        scheduler_pill,
        json!([
            "not answering",
            true,
            "Cannot reach the server: Failed to fetch"
        ])
    );
    browser.wait_text("#facts [data-field=scheduler]", "running again", |t| {
        t == "running"
    });

    // On a phone's width nothing is wider than the screen, and the detail takes all of it.
    browser.viewport(390, 844);
    wait_for("the narrow layout", Duration::from_secs(10), || {
        let widths = browser.script(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            json!([]),
        );
        let (page, window) = (widths[0].as_i64(), widths[1].as_i64());
        (window == Some(390) && page.is_some_and(|page| page <= 390)).then_some(())
    });
    browser.click(&cell);
    // All of the width beside the page's scrollbar, none of it under the scrollbar or off the
    // left edge (`100vw` counts the scrollbar, and cut the detail's first letters).
    wait_for("the detail on a phone", Duration::from_secs(10), || {
        let fit = browser.script(
            "const box = document.getElementById('detail').getBoundingClientRect();\
             return [Math.round(box.left), Math.round(box.right),\
                     document.documentElement.clientWidth];",
            json!([]),
        );
        (fit[0] == json!(0) && fit[1] == fit[2] && fit[2].as_i64() > Some(300)).then_some(())
    });
    browser.press(ESCAPE);
    browser.viewport(1280, 1000);

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
    assert!(
        refused.contains("is paused, so it cannot be triggered"),
        "{refused}"
    );
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
    // Its row says why its slots wait.
    let note = browser.wait_text(
        &format!("{down_row} [data-field=worker-note]"),
        "the worker note",
        |t| !t.is_empty(),
    );
    assert!(note.ends_with(": its runs wait for it"), "{note}");

    // Five past midnight, local time, is 00:05 (some locales' 24-hour clock says 24:05).
    let clock = browser.script(
        "return fmtClock(new Date(2099, 0, 1, 0, 5, 0).toISOString());",
        json!([]),
    );
    let clock = clock.as_str().unwrap_or_default().to_owned();
    assert!(clock.ends_with("00:05:00"), "{clock}");
    // A slot months away reads in days, not in thousands of hours.
    let spans = browser.script(
        "return [fmtMs(5 * 3600e3), fmtMs(3 * 86400e3 + 7200e3), fmtMs(200 * 86400e3), \
         fmtMs(0), fmtMs(0.25)];",
        json!([]),
    );
    assert_eq!(
        spans,
        json!(["5 h 0 min", "3 d 2 h", "200 d", "0 ms", "0.25 ms"])
    );

    // A long key and an unbroken description (both within the limits) break where they must:
    // the other columns and the actions stay on the page, on a desktop and on a phone.
    let long_key = format!("nightly_reconciliation_{}", "of_ledger_entries_".repeat(8));
    let (status, created) = http(
        &server.addr,
        "POST",
        "/api/plugins/good/jobs",
        Some(&json!({"jobKey": long_key, "schedule": "", "description": "x".repeat(3000)})),
        Some(TOKEN),
    );
    assert_eq!(status, 201, "{created}");
    let long_row = format!(r#"tr[data-job="good/{long_key}"]"#);
    wait_for("the long job's row", Duration::from_secs(20), || {
        browser.visible(&long_row).then_some(())
    });
    for width in [1280, 390] {
        browser.viewport(width, 1000);
        wait_for(
            &format!("the page within {width} px"),
            Duration::from_secs(10),
            || {
                let widths = browser.script(
                    "return [document.documentElement.scrollWidth, window.innerWidth];",
                    json!([]),
                );
                let (page, window) = (widths[0].as_i64(), widths[1].as_i64());
                (window == Some(width) && page.is_some_and(|page| page <= width)).then_some(())
            },
        );
    }
    browser.viewport(1280, 1000);
    eprintln!("browser test took {:?}", started.elapsed());
}

/// The demo plugin (`plugin-jobs demo-worker`) beside a plugin of the SDK test worker whose jobs
/// run every few seconds, one of them failing, and a yearly job with a DST note.
fn start_demo_server() -> Server {
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plugins/demo/manifest.json"),
    )
    .expect("the demo manifest");
    let mut demo: Value = serde_json::from_str(&demo).expect("the demo manifest is JSON");
    demo["command"] = json!([BIN, "demo-worker"]);
    let etl = json!([
        {"jobKey": "ok", "displayName": "Sync accounts", "description": "Copies new accounts.",
         "schedule": "*/4 * * * * *"},
        {"jobKey": "sleep", "displayName": "Rebuild index", "schedule": "*/10 * * * * *"},
        {"jobKey": "fail", "displayName": "Export to warehouse", "description": "The warehouse is down.",
         "schedule": "*/20 * * * * *"},
        {"jobKey": "spring", "displayName": "Spring report", "schedule": "30 2 14 3 *",
         "timezone": "America/New_York"},
    ]);
    Server::start(
        &[
            ("demo".to_owned(), demo.to_string()),
            test_plugin("etl", &[], etl),
        ],
        &["--api-token", TOKEN],
    )
}

/// Writes `docs/dashboard.png` (1280 × 900), `docs/dashboard-detail.png` (the same with a run's
/// detail open) and `docs/dashboard-narrow.png` (390 × 844) after two and a half minutes of demo
/// runs.
#[test]
#[ignore = "takes three minutes; run it to refresh the screenshots in docs/"]
fn screenshots_of_the_demo() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    let server = start_demo_server();
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    // The page is open from the start, so its charts hold the whole run of the demo.
    let browser = Browser::start(&chromium, &chromedriver);
    browser.viewport(1280, 900);
    browser.sign_in(&server);
    // Real runs: the schedules fire, and cleanup is run now a few times.
    let end = Instant::now() + Duration::from_secs(150);
    let mut next_cleanup = Instant::now();
    while Instant::now() < end {
        if Instant::now() >= next_cleanup {
            server.request(
                "POST",
                "/api/plugins/demo/jobs/cleanup/trigger",
                None,
                Some(TOKEN),
            );
            next_cleanup += Duration::from_secs(25);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    wait_for("the strips on screen", Duration::from_secs(30), || {
        (browser.count(r#"tr[data-job="demo/heartbeat"] .strip button.cell"#) >= 10
            && browser.count(r#"tr[data-job="etl/fail"] .strip button.cell"#) > 0)
            .then_some(())
    });
    browser.click(r#"tr[data-job="etl/spring"] button[data-toggle]"#);
    // A minute of samples, so the charts have a line.
    wait_for(
        "a minute of scheduler figures",
        Duration::from_secs(90),
        || {
            (browser.count("#chart-tick svg polyline") > 0
                && browser.count("#chart-lateness svg polyline") > 0
                && browser
                    .script("return state.samples.length;", json!([]))
                    .as_u64()
                    .is_some_and(|n| n >= 12))
            .then_some(())
        },
    );
    browser.script("window.scrollTo(0, 0);", json!([]));
    browser.screenshot(&docs.join("dashboard.png"));

    let report = r#"tr[data-job="demo/report"] .strip button[data-open-run]:last-child"#;
    browser.click(report);
    wait_for("the report's logs", Duration::from_secs(20), || {
        (browser.count("#detail ol.loglines li") > 0).then_some(())
    });
    browser.screenshot(&docs.join("dashboard-detail.png"));
    browser.press(ESCAPE);

    browser.viewport(390, 844);
    // The jobs, the heart of it, at the top of the phone's screen.
    browser.script(
        "document.getElementById('jobs').closest('section').scrollIntoView();",
        json!([]),
    );
    wait_for("the narrow layout", Duration::from_secs(10), || {
        (browser.script("return window.innerWidth;", json!([])) == json!(390)).then_some(())
    });
    browser.screenshot(&docs.join("dashboard-narrow.png"));
}

/// With more jobs than fit on the screen, strips are fetched for the rows on screen (and a
/// margin), not for every job: scrolling to the end fetches the last rows' strips, not the ones
/// scrolled past.
/// A server with one plugin, `many`, of `jobs` jobs (`job-000`, …), where the first `triggered`
/// have been triggered once each. The test worker knows none of these keys, so each of those
/// runs fails at once.
fn many_jobs_server(jobs: usize, triggered: usize) -> Server {
    let declared: Vec<Value> = (0..jobs)
        .map(|i| json!({"jobKey": format!("job-{i:03}")}))
        .collect();
    let server = Server::start(
        &[test_plugin("many", &[], Value::Array(declared))],
        &["--api-token", TOKEN],
    );
    for i in 0..triggered {
        let (status, body) = server.request(
            "POST",
            &format!("/api/plugins/many/jobs/job-{i:03}/trigger"),
            None,
            Some(TOKEN),
        );
        assert_eq!(status, 202, "{body}");
    }
    server
}

#[test]
fn strips_are_fetched_only_for_the_rows_on_screen() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    const JOBS: usize = 120;
    // One run of each job.
    let server = many_jobs_server(JOBS, JOBS);
    wait_for("every job to have run", Duration::from_secs(60), || {
        let (_, jobs) = api(&server, "/api/jobs");
        jobs.as_array()
            .is_some_and(|jobs| {
                jobs.len() == JOBS && jobs.iter().all(|job| job["lastRun"]["status"] == "failed")
            })
            .then_some(())
    });

    let browser = Browser::start(&chromium, &chromedriver);
    browser.sign_in(&server);
    let first = r#"tr[data-job="many/job-000"] .strip button.cell"#;
    wait_for("the first row's strip", Duration::from_secs(20), || {
        (browser.count(first) == 1).then_some(())
    });
    let loaded = |browser: &Browser| {
        browser
            .script("return state.strips.size;", json!([]))
            .as_u64()
            .expect("a count")
    };
    // Two refreshes later, still only the rows near the top.
    let refreshes = |browser: &Browser| {
        browser
            .script("return state.refreshes;", json!([]))
            .as_u64()
            .expect("a count")
    };
    let since = refreshes(&browser);
    wait_for("two more refreshes", Duration::from_secs(20), || {
        (refreshes(&browser) >= since + 2).then_some(())
    });
    let on_screen = loaded(&browser);
    assert!(
        (1..40).contains(&on_screen),
        "{on_screen} strips fetched for {JOBS} jobs with a dozen rows on screen"
    );

    let last_row = format!(r#"tr[data-job="many/job-{:03}"]"#, JOBS - 1);
    browser.script(
        "document.querySelector(arguments[0]).scrollIntoView();",
        json!([last_row]),
    );
    let last = format!("{last_row} .strip button.cell");
    wait_for("the last row's strip", Duration::from_secs(20), || {
        (browser.count(&last) == 1).then_some(())
    });
    let after = loaded(&browser);
    assert!(
        after > on_screen && after < JOBS as u64,
        "{after} strips after the jump to the end ({on_screen} before, {JOBS} jobs)"
    );
    eprintln!("strips fetched: {on_screen} at the top, {after} after the jump, of {JOBS} jobs");
}

#[test]
fn more_jobs_and_more_runs_page_through_the_listings() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        return;
    };
    // The dashboard reads 200 jobs and 50 runs a page.
    const JOBS: u64 = 230;
    const RUNS: u64 = 60;
    let server = many_jobs_server(JOBS as usize, RUNS as usize);
    wait_for(
        "every triggered run to end",
        Duration::from_secs(60),
        || {
            let (_, runs) = api(&server, "/api/runs?limit=100");
            runs.as_array()
                .is_some_and(|runs| {
                    runs.len() as u64 == RUNS && runs.iter().all(|r| r["status"] == "failed")
                })
                .then_some(())
        },
    );

    let browser = Browser::start(&chromium, &chromedriver);
    browser.sign_in(&server);
    let job_rows = r#"#jobs tr[data-job^="many/"]"#;
    let run_rows = "#runs tr[data-run-id]";
    wait_for(
        "the first page of jobs and runs",
        Duration::from_secs(20),
        || (browser.count(job_rows) == 200 && browser.count(run_rows) == 50).then_some(()),
    );
    assert!(
        browser.visible("#jobs-more-button"),
        "230 jobs: a second page"
    );
    assert!(
        browser.visible("#runs-more-button"),
        "60 runs: a second page"
    );

    browser.show_the_rest("#jobs-more-button", job_rows, JOBS);
    let last = format!(r#"#jobs tr[data-job="many/job-{:03}"]"#, JOBS - 1);
    assert_eq!(
        browser.count(&last),
        1,
        "the last job is on the second page"
    );

    browser.show_the_rest("#runs-more-button", run_rows, RUNS);
    // The pages stay through refreshes.
    let refreshes = || {
        browser
            .script("return state.refreshes;", json!([]))
            .as_u64()
            .expect("a count")
    };
    let since = refreshes();
    wait_for("two more refreshes", Duration::from_secs(20), || {
        (refreshes() >= since + 2).then_some(())
    });
    assert_eq!(browser.count(job_rows), JOBS);
    assert_eq!(browser.count(run_rows), RUNS);

    // Failed only asks the server for the failing jobs: the last job, which fails now, comes
    // on the first page with the 60 others, though the unfiltered listing has it on the second.
    let (status, body) = server.request(
        "POST",
        &format!("/api/plugins/many/jobs/job-{:03}/trigger", JOBS - 1),
        None,
        Some(TOKEN),
    );
    assert_eq!(status, 202, "{body}");
    let run_id = body["runId"].as_str().expect("a run id").to_owned();
    wait_for(
        "the last job's run to fail",
        Duration::from_secs(30),
        || (api(&server, &format!("/api/runs/{run_id}")).1["status"] == "failed").then_some(()),
    );
    // Choosing the plugin starts the listing again at one page.
    browser.click(r#"#plugin-filter option[value="many"]"#);
    wait_for("one page of jobs again", Duration::from_secs(20), || {
        (browser.count(job_rows) == 200 && browser.visible("#jobs-more-button")).then_some(())
    });
    browser.click("#failed-only");
    wait_for(
        "the failing jobs, the last one among them, on one page",
        Duration::from_secs(20),
        || {
            (browser.count(job_rows) == RUNS + 1
                && browser.count(&last) == 1
                && !browser.visible("#jobs-more-button"))
            .then_some(())
        },
    );
}
