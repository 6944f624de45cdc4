//! What installing plugin-jobs relies on: completion scripts and man pages generated from the
//! clap definitions, and `contrib/plugin-jobs.service` passing `systemd-analyze verify` (when
//! systemd-analyze is on this machine; the test says so and passes when it is not).

mod common;

use std::path::Path;
use std::process::Command;

use common::server::BIN;

/// The visible subcommands, each of which the generated texts must mention.
const COMMANDS: [&str; 12] = [
    "serve",
    "migrate",
    "cron",
    "check",
    "jobs",
    "runs",
    "run",
    "trigger",
    "pause",
    "resume",
    "completions",
    "man",
];

fn stdout_of(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().expect("run");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[test]
fn completions_for_each_shell_know_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.len() > 1_000, "{shell}: {script}");
        for command in COMMANDS {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
        // The command the server starts its demo worker with is hidden from completions too.
        assert!(
            !script.contains("demo-worker"),
            "{shell} offers demo-worker"
        );
    }
    let script = stdout_of(&["completions", "bash"]);
    assert!(
        script.contains("--log-format"),
        "serve's flags are completed"
    );
    let output = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is bad usage"
    );
}

#[test]
fn the_man_pages_cover_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH plugin-jobs 1"), "{page}");
    assert!(
        page.contains(
            "3 not found (404), 4 conflict (409), 5 unauthorized (401), 6 server unreachable"
        ),
        "the exit codes are documented: {page}"
    );
    for command in COMMANDS {
        assert!(
            page.contains(&format!("plugin\\-jobs\\-{command}(1)")),
            "the main page lists {command}"
        );
    }
    let serve = stdout_of(&["man", "serve"]);
    assert!(serve.contains(".TH plugin-jobs-serve 1"), "{serve}");
    for flag in [
        "database\\-url",
        "api\\-token",
        "log\\-format",
        "PLUGIN_JOBS_LOG_FORMAT",
    ] {
        assert!(serve.contains(flag), "serve's page lacks {flag}");
    }
    let trigger = stdout_of(&["man", "trigger"]);
    assert!(trigger.contains("payload"), "{trigger}");

    let dir = tempfile::tempdir().expect("temp");
    let pages = dir.path().join("man1");
    stdout_of(&["man", "--dir", &pages.display().to_string()]);
    for command in COMMANDS {
        let file = pages.join(format!("plugin-jobs-{command}.1"));
        let text = std::fs::read_to_string(&file).expect("a page per command");
        assert!(text.starts_with(".ie"), "{}", file.display());
    }
    assert!(pages.join("plugin-jobs.1").is_file());
    assert!(!pages.join("plugin-jobs-demo-worker.1").exists());

    let unknown = Command::new(BIN)
        .args(["man", "nope"])
        .output()
        .expect("run");
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn the_systemd_unit_verifies() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("skipped: systemd-analyze is not installed on this machine");
        return;
    };
    if !probe.status.success() {
        println!("skipped: systemd-analyze --version failed");
        return;
    }
    // The unit names the installed binary; verify it against the one just built (the check
    // needs an executable there), under the unit's own file name.
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/plugin-jobs.service"),
    )
    .expect("the unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/plugin-jobs serve"));
    let dir = tempfile::tempdir().expect("temp");
    let path = dir.path().join("plugin-jobs.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/plugin-jobs", BIN)).expect("write");
    // --man=no: the Documentation= page exists only once plugin-jobs is installed.
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        output.status
    );
}
