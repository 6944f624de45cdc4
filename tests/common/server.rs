//! The built `plugin-jobs` binary as a real process: `Server` starts `serve` on a free loopback
//! port with a temporary SQLite database and plugins directory, talks HTTP/1.1 to it, sends it
//! signals, and can start it again on the same database.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_plugin-jobs");

pub fn test_worker() -> String {
    let dir = Path::new(BIN).parent().expect("target folder");
    dir.join("examples/test_worker").display().to_string()
}

/// A manifest for the SDK test worker with the given jobs.
pub fn test_plugin(id: &str, args: &[&str], jobs: Value) -> (String, String) {
    let mut command = vec![test_worker()];
    command.extend(args.iter().map(|a| (*a).to_owned()));
    let manifest = json!({"id": id, "command": command, "env": {"SLEEP_MS": "1500"}, "jobs": jobs});
    (id.to_owned(), manifest.to_string())
}

/// Polls `condition` until it holds, failing after `deadline`.
pub fn wait_until_sync(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < end, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub fn start(plugins: &[(String, String)], args: &[&str]) -> Self {
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

    /// Starts the server again on the same database and plugins (after it exited or was killed).
    pub fn relaunch(&mut self, args: &[&str]) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let plugins_dir = self.dir.path().join("plugins");
        let (child, addr) = spawn(self.dir.path(), &plugins_dir, args).expect("server restarts");
        self.child = child;
        self.addr = addr;
    }

    /// The SQLite database the server uses.
    pub fn database_url(&self) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            self.dir.path().join("jobs.db").display()
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Value) {
        http(&self.addr, method, path, body, token)
    }

    /// A request with headers of its own; a `Host` among them replaces the server's address.
    pub fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        raw_http(&self.addr, method, path, "", headers)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None, None)
    }

    /// A GET whose answer is not JSON (`/metrics`).
    pub fn get_text(&self, path: &str) -> (u16, String) {
        raw_http_text(&self.addr, "GET", path, "", &[])
    }

    pub fn post(&self, path: &str) -> (u16, Value) {
        self.request("POST", path, None, None)
    }

    pub fn runs(&self, plugin: &str, job: &str) -> Vec<Value> {
        let (status, runs) = self.get(&format!("/api/plugins/{plugin}/jobs/{job}/runs"));
        assert_eq!(status, 200, "{runs}");
        runs.as_array().cloned().unwrap_or_default()
    }

    pub fn run(&self, run_id: &str) -> Value {
        let (status, run) = self.get(&format!("/api/runs/{run_id}"));
        assert_eq!(status, 200, "{run}");
        run
    }

    pub fn wait_worker(&self, plugin: &str, status: &str) {
        wait_until_sync(
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

    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
        let mut exited = None;
        wait_until_sync(
            &format!("the server exits after {signal}"),
            Duration::from_secs(30),
            || {
                exited = self.child.try_wait().expect("wait");
                exited.is_some()
            },
        );
        exited.expect("the server exited")
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
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("server.log"))
        .expect("log file");
    let db = format!("sqlite://{}?mode=rwc", dir.join("jobs.db").display());
    // Started in its folder with the plugins directory named relative to it, as a user does
    // (`--plugins plugins`): a plugin's `./` command must resolve all the same.
    let plugins = plugins.strip_prefix(dir).unwrap_or(plugins);
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .arg("serve")
        .args(["--plugins", &plugins.display().to_string()])
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        // Through the environment, so `args` may name another database with the flag.
        .env("PLUGIN_JOBS_DATABASE_URL", &db)
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
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    raw_http(addr, method, path, body.unwrap_or(""), &headers)
}

/// One HTTP/1.1 request with the given headers (`Host` defaults to `addr`); the body as JSON.
fn raw_http(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let (status, body) = raw_http_text(addr, method, path, body, headers);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// One HTTP/1.1 request with the given headers (`Host` defaults to `addr`); the body as text.
fn raw_http_text(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut head = String::new();
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let request = format!(
        "{method} {path} HTTP/1.1\r\n{head}Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
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
    (status, body)
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
