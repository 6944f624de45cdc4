//! What the plugins directory does to jobs at `plugin-jobs serve` start: a job with a bad
//! schedule or timezone is `failed` alone while its plugin's other jobs run, and a plugin whose
//! folder disappeared or whose manifest broke has its manifest jobs retired with the reason,
//! until it is back (its API jobs stay as they are); a plugins directory named relative to the
//! server's working directory starts `./` commands.

mod common;

use std::time::Duration;

use common::server::{Server, test_plugin, wait_until_sync as wait_until};
use serde_json::{Value, json};

fn job(server: &Server, plugin: &str, key: &str) -> Value {
    let (status, job) = server.get(&format!("/api/plugins/{plugin}/jobs/{key}"));
    assert_eq!(status, 200, "{job}");
    job
}

#[test]
fn a_bad_schedule_or_timezone_fails_only_its_job_and_the_others_run() {
    let plugin = test_plugin(
        "mixed",
        &[],
        json!([
            {"jobKey": "ok", "schedule": "* * * * * *"},
            {"jobKey": "bad-cron", "schedule": "61 * * * *"},
            {"jobKey": "bad-tz", "schedule": "* * * * *", "timezone": "Mars/Base"},
        ]),
    );
    let server = Server::start(&[plugin], &[]);
    server.wait_worker("mixed", "running");
    wait_until("the valid job ran", Duration::from_secs(20), || {
        server
            .runs("mixed", "ok")
            .iter()
            .any(|run| run["status"] == "succeeded")
    });
    let bad_cron = job(&server, "mixed", "bad-cron");
    assert_eq!(bad_cron["status"], "failed");
    let reason = bad_cron["lastError"].as_str().unwrap_or_default();
    assert!(
        reason.contains("schedule") && reason.contains("minute") && reason.contains("61"),
        "{reason}"
    );
    let bad_tz = job(&server, "mixed", "bad-tz");
    assert_eq!(bad_tz["status"], "failed");
    let reason = bad_tz["lastError"].as_str().unwrap_or_default();
    assert!(
        reason.contains("timezone") && reason.contains("Mars/Base"),
        "{reason}"
    );
    assert!(
        server.log().contains("job bad-cron is failed"),
        "{}",
        server.log()
    );
}

#[test]
fn a_plugin_that_is_gone_or_broken_at_start_has_its_jobs_retired_until_it_is_back() {
    let (folder, manifest) = test_plugin(
        "keeper",
        &[],
        json!([{"jobKey": "a", "schedule": "0 0 1 1 *"}, {"jobKey": "b"}]),
    );
    let mut server = Server::start(&[(folder.clone(), manifest.clone())], &[]);
    server.wait_worker("keeper", "running");
    assert_eq!(job(&server, "keeper", "a")["status"], "active");
    // A job created through the API is the API's: no manifest sync retires it.
    let (status, created) = server.request(
        "POST",
        "/api/plugins/keeper/jobs",
        Some(r#"{"jobKey": "by-api", "schedule": "0 0 1 1 *"}"#),
        None,
    );
    assert_eq!(status, 201, "{created}");
    let plugin_dir = server.dir.path().join("plugins").join(&folder);

    // The folder is removed: at the next start its jobs are retired and say why.
    std::fs::remove_dir_all(&plugin_dir).expect("remove the plugin");
    let status = server.signal("-TERM");
    assert!(status.success(), "{status:?}: {}", server.log());
    server.relaunch(&[]);
    for key in ["a", "b"] {
        let job = job(&server, "keeper", key);
        assert_eq!(job["status"], "retired", "{job}");
        let reason = job["lastError"].as_str().unwrap_or_default();
        assert!(
            reason.contains("no longer in the plugins directory"),
            "{reason}"
        );
    }
    let by_api = job(&server, "keeper", "by-api");
    assert_eq!(by_api["status"], "active", "{by_api}");
    assert_eq!(by_api["lastError"], Value::Null);

    // Back, but with a broken manifest: still retired, now with the manifest's error.
    std::fs::create_dir_all(&plugin_dir).expect("folder");
    let broken = manifest.replacen("\"command\"", "\"colour\":1,\"command\"", 1);
    std::fs::write(plugin_dir.join("manifest.json"), broken).expect("manifest");
    let status = server.signal("-TERM");
    assert!(status.success(), "{status:?}: {}", server.log());
    server.relaunch(&[]);
    let job_a = job(&server, "keeper", "a");
    assert_eq!(job_a["status"], "retired");
    let reason = job_a["lastError"].as_str().unwrap_or_default();
    assert!(
        reason.contains("manifest rejected") && reason.contains("colour"),
        "{reason}"
    );
    // The API lists the plugin as failed, with why, as it does a plugin rejected at its first
    // start (which has no jobs at all).
    let (status, plugins) = server.request("GET", "/api/plugins", None, None);
    assert_eq!(status, 200, "{plugins}");
    let keeper = plugins
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == "keeper"))
        .unwrap_or_else(|| panic!("keeper is listed: {plugins}"));
    assert_eq!(keeper["workerStatus"], "failed", "{keeper}");
    let why = keeper["workerError"].as_str().unwrap_or_default();
    assert!(
        why.contains("manifest rejected") && why.contains("colour"),
        "{why}"
    );

    // Fixed: the jobs are active again, with the error cleared.
    std::fs::write(plugin_dir.join("manifest.json"), &manifest).expect("manifest");
    let status = server.signal("-TERM");
    assert!(status.success(), "{status:?}: {}", server.log());
    server.relaunch(&[]);
    server.wait_worker("keeper", "running");
    for key in ["a", "b", "by-api"] {
        let job = job(&server, "keeper", key);
        assert_eq!(job["status"], "active", "{job}");
        assert_eq!(job["lastError"], Value::Null);
    }
}

#[test]
fn a_relative_plugins_directory_starts_a_workers_dot_slash_command() {
    // `Server` starts `serve` in its folder with `--plugins plugins`, as a user does.
    let mut server = Server::start(&[], &[]);
    let folder = server.dir.path().join("plugins").join("local");
    std::fs::create_dir_all(&folder).expect("plugin folder");
    let script = folder.join("worker.sh");
    let worker = common::server::test_worker();
    std::fs::write(&script, format!("#!/bin/sh\nexec '{worker}' \"$@\"\n")).expect("script");
    let mut permissions = std::fs::metadata(&script).expect("script").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("chmod");
    let manifest = json!({"id": "local", "command": ["./worker.sh"], "jobs": [{"jobKey": "ok"}]});
    std::fs::write(folder.join("manifest.json"), manifest.to_string()).expect("manifest");
    let status = server.signal("-TERM");
    assert!(status.success(), "{status:?}: {}", server.log());
    server.relaunch(&[]);
    server.wait_worker("local", "running");
    let (status, run) = server.post("/api/plugins/local/jobs/ok/trigger");
    assert_eq!(status, 202, "{run}");
    let run_id = run["runId"].as_str().expect("run id").to_owned();
    wait_until("the run succeeds", Duration::from_secs(20), || {
        server.run(&run_id)["status"] == "succeeded"
    });
}
