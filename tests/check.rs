//! `plugin-jobs check` as a process: a good plugins folder lists every job with its next slot
//! and exits 0; a broken one names each bad manifest's path and field and exits 1; neither
//! touches a database.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::server::BIN;
use serde_json::json;

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `plugin-jobs check --plugins DIR` in an empty working folder, which it must leave empty.
fn check(plugins: &Path) -> Output {
    let cwd = tempfile::tempdir().expect("temp");
    let started = Instant::now();
    let output = Command::new(BIN)
        .args(["check", "--plugins"])
        .arg(plugins)
        .current_dir(cwd.path())
        .env_remove("PLUGIN_JOBS_PLUGINS")
        .output()
        .expect("run check");
    println!(
        "check of {} took {:?}",
        plugins.display(),
        started.elapsed()
    );
    let left: Vec<_> = std::fs::read_dir(cwd.path()).expect("cwd").collect();
    assert!(left.is_empty(), "check wrote files (a database?): {left:?}");
    Output {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn write(dir: &Path, folder: &str, manifest: &str) {
    let folder = dir.join(folder);
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join("manifest.json"), manifest).expect("manifest");
}

#[test]
fn the_demo_plugins_pass_with_every_job_and_its_next_slot() {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plugins");
    let output = check(&plugins);
    assert_eq!(output.code, Some(0), "{}{}", output.stdout, output.stderr);
    assert_eq!(output.stderr, "");
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert!(lines[0].starts_with("PLUGIN  JOB"), "{}", output.stdout);
    let row = |job: &str| {
        lines
            .iter()
            .find(|line| line.split_whitespace().nth(1) == Some(job))
            .unwrap_or_else(|| panic!("no row for {job}: {}", output.stdout))
            .to_owned()
    };
    let heartbeat = row("heartbeat");
    assert!(heartbeat.starts_with("demo "), "{heartbeat}");
    assert!(heartbeat.contains("*/5 * * * * *"), "{heartbeat}");
    assert!(
        heartbeat.contains(" UTC (in ") || heartbeat.contains(" UTC (now)"),
        "the next slot, in UTC, and how far off: {heartbeat}"
    );
    // `report` runs in Europe/Paris: its slot is shown in Paris time.
    let report = row("report");
    assert!(
        [" CET (in ", " CEST (in ", " CET (now)", " CEST (now)"]
            .iter()
            .any(|shown| report.contains(shown)),
        "{report}"
    );
    assert!(row("cleanup").contains(" manual "), "{}", row("cleanup"));
    assert!(
        output
            .stdout
            .ends_with("1 plugin(s) with 3 job(s) load, 0 problem(s)\n"),
        "{}",
        output.stdout
    );
}

#[test]
fn a_broken_folder_names_each_path_and_field_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp");
    write(
        dir.path(),
        "good",
        &json!({"id": "good", "command": ["worker"], "jobs": [{"jobKey": "ok", "schedule": "@daily"}]})
            .to_string(),
    );
    write(
        dir.path(),
        "schedule",
        &json!({"id": "schedule", "command": ["x"], "jobs": [{"jobKey": "a", "schedule": "99 * * * *"}]})
            .to_string(),
    );
    write(
        dir.path(),
        "zone",
        &json!({"id": "zone", "command": ["x"],
                "jobs": [{"jobKey": "a"}, {"jobKey": "b", "schedule": "@hourly", "timezone": "Mars/Base"}]})
            .to_string(),
    );
    write(dir.path(), "nocommand", r#"{"id": "nocommand"}"#);
    write(dir.path(), "notjson", "{ nope");
    // Every job that breaks a rule is named in one pass, not only the first.
    write(
        dir.path(),
        "limits",
        &json!({"id": "limits", "command": ["x"],
                "jobs": [{"jobKey": "a", "jitterMs": 86_400_001}, {"jobKey": "b"},
                         {"jobKey": "c", "pauseAfterFailures": 0}]})
        .to_string(),
    );
    let output = check(dir.path());
    assert_eq!(output.code, Some(1), "{}{}", output.stdout, output.stderr);
    let base = dir.path().display();
    for expected in [
        format!("error: {base}/schedule/manifest.json: jobs[0].schedule: "),
        format!("error: {base}/zone/manifest.json: jobs[1].timezone: "),
        format!("error: {base}/nocommand/manifest.json: missing field `command`"),
        format!("error: {base}/notjson/manifest.json: invalid JSON"),
        format!(
            "error: {base}/limits/manifest.json: jobs[0].jitterMs must be at most 86400000 (a \
             day; got 86400001); jobs[2].pauseAfterFailures must be between 1 and"
        ),
    ] {
        assert!(
            output.stderr.contains(&expected),
            "{expected:?} in {}",
            output.stderr
        );
    }
    let errors = output.stderr.lines().filter(|l| l.starts_with("error: "));
    assert_eq!(errors.count(), 5, "{}", output.stderr);
    // Programs named by a bare name that this machine does not have are warned about (the
    // server's machine may have them), and do not count as problems.
    assert!(
        output.stderr.contains(&format!(
            "warning: {base}/good/manifest.json: command[0]: worker is not found"
        )),
        "{}",
        output.stderr
    );
    assert!(
        output
            .stdout
            .lines()
            .any(|line| line.split_whitespace().take(3).eq(["good", "ok", "@daily"])),
        "the good plugin is still listed: {}",
        output.stdout
    );
    assert!(
        output
            .stdout
            .ends_with("3 plugin(s) with 4 job(s) load, 5 problem(s)\n"),
        "{}",
        output.stdout
    );
}

#[test]
fn a_missing_folder_is_a_problem() {
    let dir = tempfile::tempdir().expect("temp");
    let output = check(&dir.path().join("nowhere"));
    assert_eq!(output.code, Some(1));
    assert!(
        output
            .stderr
            .contains("nowhere: cannot read the plugins directory"),
        "{}",
        output.stderr
    );
}

/// One plugin's folder given for the plugins directory would load no plugin, and `serve` would
/// retire every plugin's jobs as removed: `check` fails it, and `serve` refuses to start.
#[test]
fn a_plugins_own_folder_given_as_the_plugins_directory_is_a_problem() {
    let dir = tempfile::tempdir().expect("temp");
    let manifest = json!({"id": "demo", "command": ["true"], "jobs": []}).to_string();
    write(dir.path(), "demo", &manifest);
    let one_plugin = dir.path().join("demo");
    let output = check(&one_plugin);
    assert_eq!(output.code, Some(1), "{}", output.stdout);
    let parent = dir.path().display().to_string();
    assert!(
        output
            .stderr
            .contains("is one plugin's folder, not the plugins directory")
            && output.stderr.contains(&parent),
        "{}",
        output.stderr
    );
    let served = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--plugins"])
        .arg(&one_plugin)
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("jobs.db").display()
        ))
        .output()
        .expect("run serve");
    let stderr = String::from_utf8_lossy(&served.stderr);
    assert_eq!(served.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--plugins") && stderr.contains("one plugin's folder"),
        "{stderr}"
    );
    assert!(!dir.path().join("jobs.db").exists(), "nothing was started");
}
