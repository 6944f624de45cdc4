//! A server killed with SIGKILL in the middle of a run, started again on the same SQLite file:
//! the abandoned run is failed within the run lease plus one maintenance tick, the job fires
//! again on schedule, and nothing stays running.

mod common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::server::{Server, test_worker, wait_until_sync as wait_until};
use entity::prelude::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

const LEASE_S: i64 = 3;
const MAINTENANCE_S: i64 = 1;

fn args() -> Vec<String> {
    [
        "--run-lease",
        &format!("{LEASE_S}s"),
        "--heartbeat-interval",
        "1s",
        "--maintenance-interval",
        &format!("{MAINTENANCE_S}s"),
        "--shutdown-grace",
        "1s",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn runs_in_db(url: &str) -> Vec<PluginJobRunModel> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let db = plugin_jobs::db::connect(url).await.expect("connect");
            PluginJobRun::find()
                .filter(PluginJobRunColumn::PluginId.eq("crashy"))
                .all(&db)
                .await
                .expect("query")
        })
}

#[test]
fn a_run_abandoned_by_a_killed_server_is_failed_after_restart_and_the_job_fires_again() {
    let manifest = json!({
        "id": "crashy",
        "command": [test_worker()],
        "env": {"SLEEP_MS": "30000"},
        "jobs": [{"jobKey": "sleep", "schedule": "*/2 * * * * *", "timeoutMs": 120000}],
    });
    let args = args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::start(&[("crashy".to_owned(), manifest.to_string())], &args);

    let mut abandoned = None;
    wait_until(
        "a scheduled run is running",
        Duration::from_secs(30),
        || {
            abandoned = server
                .runs("crashy", "sleep")
                .into_iter()
                .find(|run| run["status"] == "running");
            abandoned.is_some()
        },
    );
    let abandoned = abandoned.expect("a running run");
    let run_id = abandoned["id"].as_str().expect("id").to_owned();
    let killed_instance = abandoned["instanceId"]
        .as_str()
        .expect("instance")
        .to_owned();

    let killed = server.signal("-KILL");
    assert_eq!(killed.code(), None, "killed by a signal");
    let killed_at = Utc::now();
    let since_kill = Instant::now();
    server.relaunch(&args);

    wait_until(
        "the abandoned run is failed",
        Duration::from_secs(30),
        || server.run(&run_id)["status"] == "failed",
    );
    let seen_after = since_kill.elapsed();
    let run = server.run(&run_id);
    let error = run["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("abandoned") && error.contains(&killed_instance),
        "the error names the abandoning instance: {error}"
    );

    // The job fires again on schedule, on the new instance.
    let mut fresh = None;
    wait_until("the job fires again", Duration::from_secs(30), || {
        fresh = server.runs("crashy", "sleep").into_iter().find(|r| {
            r["status"] == "running"
                && r["trigger"] == "schedule"
                && r["instanceId"] != killed_instance.as_str()
        });
        fresh.is_some()
    });

    let exit = server.signal("-TERM");
    assert_eq!(exit.code(), Some(0), "{}", server.log());
    let runs = runs_in_db(&server.database_url());
    let live: Vec<_> = runs.iter().filter(|r| r.status.is_live()).collect();
    assert!(live.is_empty(), "nothing stays running: {live:?}");

    // Failed within the lease plus one maintenance tick of its last heartbeat (checked on the
    // database's own timestamps, with a margin for the restart itself).
    let row = runs
        .iter()
        .find(|r| r.id.to_string() == run_id)
        .expect("the abandoned run");
    let heartbeat = row.heartbeat_at.expect("it was heartbeated");
    let finished = row.finished_at.expect("it is finished");
    let waited = (finished - heartbeat).num_milliseconds();
    eprintln!(
        "abandoned run failed {waited} ms after its last heartbeat \
         ({} ms after the kill; seen over HTTP after {seen_after:?})",
        (finished - killed_at).num_milliseconds()
    );
    assert!(
        waited <= (LEASE_S + MAINTENANCE_S) * 1000 + 2000,
        "failed {waited} ms after its last heartbeat"
    );
}

/// Sends `signal` to the server without waiting for it to exit.
fn send(server: &Server, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

fn worker_restarts(server: &Server) -> u64 {
    let (status, text) = server.get_text("/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find(|line| line.starts_with(r#"plugin_jobs_worker_restarts_total{plugin="stalled"}"#))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_server_stalled_past_the_lease_stops_its_worker_as_soon_as_it_resumes() {
    // Server A runs a 60 s call and is stopped (SIGSTOP) past the run lease: B fails the run as
    // abandoned and may run the job again, while A's worker still runs the old call. When A
    // resumes, its next heartbeat finds the run ended and restarts its worker at once.
    let manifest = json!({
        "id": "stalled",
        "command": [test_worker()],
        "env": {"SLEEP_MS": "60000"},
        "jobs": [{"jobKey": "sleep", "schedule": "", "timeoutMs": 120000}],
    });
    let plugins = [("stalled".to_owned(), manifest.to_string())];
    let args = args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let a = Server::start(&plugins, &args);
    let url = a.database_url();
    let b_args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--database-url", &url])
        .collect();
    let b = Server::start(&plugins, &b_args);
    a.wait_worker("stalled", "running");
    b.wait_worker("stalled", "running");

    let (status, body) = a.post("/api/plugins/stalled/jobs/sleep/trigger");
    assert_eq!(status, 202, "{body}");
    let run_id = body["runId"].as_str().expect("runId").to_owned();
    wait_until("A runs it", Duration::from_secs(20), || {
        a.run(&run_id)["status"] == "running"
    });
    let restarts_before = worker_restarts(&a);

    send(&a, "-STOP");
    wait_until(
        "B fails the stalled run as abandoned",
        Duration::from_secs(30),
        || b.run(&run_id)["status"] == "failed",
    );
    send(&a, "-CONT");
    wait_until(
        "A restarts the worker that still ran it",
        Duration::from_secs(10),
        || worker_restarts(&a) > restarts_before,
    );
    assert!(a.log().contains("fenced"), "{}", a.log());
    assert_eq!(
        b.run(&run_id)["status"],
        "failed",
        "the rescue's outcome stands"
    );
}
