//! Process workers end to end: real child processes speaking JSON-RPC over stdio, driven through
//! the SchedulerActor, with every worker fault of DESIGN §8. Most workers are the SDK-built
//! `examples/test_worker.rs`; one is a Python program that writes raw JSON lines.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestDb, wait_until};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::store::{JobDeclaration, JobRef};
use plugin_jobs::worker::{
    PluginProcess, ProcessWorkerConfig, ProcessWorkers, RunCall, RunJob, WorkerManager,
    WorkerStatus, codes,
};
use plugin_jobs::{Error, PluginJobs, PluginJobsHandle};
use serde_json::{Value, json};

const PLUGIN: &str = "p";

/// The SDK test worker, built by `cargo test` with the other examples.
fn test_worker() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_plugin-jobs"));
    let dir = bin.parent().expect("target folder");
    dir.join("examples")
        .join("test_worker")
        .display()
        .to_string()
}

fn raw_worker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workers")
}

fn fast_config() -> ProcessWorkerConfig {
    ProcessWorkerConfig {
        handshake_timeout: Duration::from_secs(10),
        shutdown_timeout: Duration::from_secs(5),
        terminate_timeout: Duration::from_secs(2),
        restart_backoff: Duration::from_millis(50),
        max_restart_backoff: Duration::from_millis(200),
        instance_id: "test-instance".to_owned(),
        ..ProcessWorkerConfig::default()
    }
}

/// The plugin `p` run by `command` in `dir` with `env`.
fn plugin_process(command: Vec<String>, dir: PathBuf, env: &[(&str, &str)]) -> PluginProcess {
    PluginProcess {
        plugin_id: PLUGIN.to_owned(),
        command,
        dir,
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        manifest: json!({"id": PLUGIN}),
        config: Value::Null,
    }
}

struct Setup {
    t: TestDb,
    workers: ProcessWorkers,
    jobs: PluginJobsHandle,
}

impl Setup {
    async fn new(command: Vec<String>, dir: PathBuf, env: &[(&str, &str)]) -> Self {
        Self::with(command, dir, env, fast_config(), Duration::from_secs(30)).await
    }

    async fn with(
        command: Vec<String>,
        dir: PathBuf,
        env: &[(&str, &str)],
        config: ProcessWorkerConfig,
        cancel_grace: Duration,
    ) -> Self {
        let t = TestDb::new().await;
        let workers = ProcessWorkers::new(config);
        workers
            .start(plugin_process(command, dir, env))
            .expect("start worker");
        let jobs = PluginJobs::builder(t.db.clone())
            .workers(workers.clone())
            .config(SchedulerConfig {
                cancel_grace,
                ..SchedulerConfig::default()
            })
            .manual_ticks()
            .start()
            .expect("valid settings");
        Self { t, workers, jobs }
    }

    /// A worker started with `command` and `config` that is expected to be given up on; returns
    /// once its status is `failed`.
    async fn given_up(command: Vec<String>, config: ProcessWorkerConfig) -> Self {
        let s = Self::with(
            command,
            std::env::temp_dir(),
            &[],
            config,
            Duration::from_secs(30),
        )
        .await;
        wait_until(
            "the worker is given up",
            Duration::from_secs(20),
            || async { s.workers.status(PLUGIN) == WorkerStatus::Failed },
        )
        .await;
        s
    }

    async fn sdk(env: &[(&str, &str)]) -> Self {
        Self::new(vec![test_worker()], std::env::temp_dir(), env).await
    }

    async fn register(&self, jobs: &[(&str, Option<i64>)]) {
        let declarations = jobs
            .iter()
            .map(|(key, timeout_ms)| JobDeclaration {
                timeout_ms: *timeout_ms,
                ..JobDeclaration::new(*key, "")
            })
            .collect();
        self.jobs
            .register(PLUGIN, declarations)
            .await
            .expect("register");
    }

    async fn wait_running(&self) {
        wait_until("the worker is running", Duration::from_secs(20), || async {
            self.workers.is_running(PLUGIN)
        })
        .await;
    }

    async fn trigger(&self, job_key: &str) -> Result<uuid::Uuid, Error> {
        let job = JobRef::key(PLUGIN, job_key);
        self.jobs
            .trigger(job, RunTrigger::Manual)
            .await
            .map(|run| run.run_id)
    }

    /// Triggers `job_key` and waits for its run to reach a terminal status.
    async fn run(&self, job_key: &str) -> PluginJobRunModel {
        let run_id = self.trigger(job_key).await.expect("trigger");
        self.finished(run_id).await
    }

    async fn finished(&self, run_id: uuid::Uuid) -> PluginJobRunModel {
        wait_until(
            &format!("run {run_id} finishes"),
            Duration::from_secs(20),
            || async { !self.t.run(run_id).await.status.is_live() },
        )
        .await;
        self.t.run(run_id).await
    }
}

/// `n` direct `runJob` calls of the `sleep` job, all in flight at once.
fn sleep_calls(workers: &ProcessWorkers, n: usize) -> Vec<RunCall> {
    (0..n)
        .map(|n| {
            let job = RunJob::new("sleep", format!("direct-{n}"), "manual", "");
            workers.run_job(PLUGIN, job, Duration::from_secs(30))
        })
        .collect()
}

fn messages(run: &PluginJobRunModel) -> Vec<(String, String)> {
    run.logs
        .as_array()
        .expect("logs are an array")
        .iter()
        .map(|entry| {
            (
                entry["level"].as_str().unwrap_or_default().to_owned(),
                entry["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn a_payload_reaches_a_process_worker_from_the_job_and_from_a_trigger() {
    let s = Setup::new(
        vec!["python3".into(), "./raw_worker.py".into()],
        raw_worker_dir(),
        &[],
    )
    .await;
    s.register(&[]).await;
    s.wait_running().await;
    // A job created through the API, carrying a payload.
    let mut echo = JobDeclaration::new("echo", "");
    echo.payload = Some(json!({"region": "eu", "batch": [1, 2], "note": "caf\u{e9}"}));
    let job = s.jobs.create_job(PLUGIN, echo).await.expect("create");
    assert_eq!(job.origin, JobOrigin::Api);

    let run = s.run("echo").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(
        run.payload,
        Some(json!({"region": "eu", "batch": [1, 2], "note": "café"}))
    );
    assert_eq!(
        messages(&run),
        [(
            "info".to_owned(),
            r#"{"batch": [1, 2], "note": "caf\u00e9", "region": "eu"}"#.to_owned()
        )]
    );

    // A trigger's one-off payload replaces the job's for that run only.
    let one_off = s
        .jobs
        .trigger_with_payload(
            JobRef::key(PLUGIN, "echo"),
            RunTrigger::Manual,
            Some(json!([true, null])),
        )
        .await
        .expect("trigger");
    let run = s.finished(one_off.run_id).await;
    assert_eq!(messages(&run)[0].1, "[true, null]");
    let again = s.run("echo").await;
    assert_eq!(again.payload, job.payload, "the job's payload is unchanged");

    // Too large a payload is refused, naming the limit.
    let huge = json!({"blob": "x".repeat(17 * 1024)});
    let refused = s
        .jobs
        .trigger_with_payload(JobRef::key(PLUGIN, "echo"), RunTrigger::Manual, Some(huge))
        .await
        .expect_err("too large");
    assert!(refused.to_string().contains("16 KiB"), "{refused}");
}

#[actix_rt::test]
async fn a_python_worker_speaking_raw_json_lines_runs_jobs() {
    let s = Setup::new(
        vec!["python3".into(), "./raw_worker.py".into()],
        raw_worker_dir(),
        &[],
    )
    .await;
    // A minute's timeout: the malformed, odd-byte and oversized answers must fail their runs
    // long before.
    let minute = Some(60_000);
    s.register(&[
        ("ok", None),
        ("fail", None),
        ("malformed", minute),
        ("latin1", minute),
        ("huge", minute),
        ("notjson", minute),
        ("records", minute),
        ("bigrecord", minute),
        ("bigmethod", minute),
        ("bigbom", minute),
    ])
    .await;
    s.wait_running().await;

    let ok = s.run("ok").await;
    assert_eq!(ok.status, RunStatus::Succeeded, "{:?}", ok.error);
    assert_eq!(
        messages(&ok),
        [("info".to_owned(), "python ran manual".to_owned())]
    );
    let fail = s.run("fail").await;
    assert_eq!(fail.status, RunStatus::Failed);
    assert_eq!(fail.error.as_deref(), Some("python says no"));
    let malformed = s.run("malformed").await;
    assert_eq!(malformed.status, RunStatus::Failed);
    let error = malformed.error.unwrap_or_default();
    assert!(
        error.starts_with("the worker answered with a malformed response")
            && error.contains("\"message\""),
        "{error}"
    );
    let latin1 = s.run("latin1").await;
    assert_eq!(latin1.status, RunStatus::Failed);
    assert_eq!(latin1.error.as_deref(), Some("caf\u{FFFD} failed"));
    let huge = s.run("huge").await;
    assert_eq!(huge.status, RunStatus::Failed);
    let error = huge.error.unwrap_or_default();
    assert!(
        error.starts_with("the worker's answer was 2097") && error.contains("over the limit"),
        "{error}"
    );
    let not_json = s.run("notjson").await;
    let error = not_json.error.unwrap_or_default();
    assert!(
        error.starts_with("the worker answered with a malformed response (not JSON")
            && error.contains("\"result\":nul"),
        "{error}"
    );

    // Records the worker prints for itself carry an "id" that is its call's: they are not
    // answers, and the call goes on to its real answer (ending it there would free the job while
    // the worker still runs it).
    let records = s.run("records").await;
    assert_eq!(records.status, RunStatus::Succeeded, "{:?}", records.error);
    // An oversized answer whose result holds an "id" of its own is the answer of the id at its
    // end.
    // So is one whose result holds a "method" near its end, its "jsonrpc" written last, and one
    // behind a byte order mark: each fails at once, not at its minute's timeout.
    for key in ["bigrecord", "bigmethod", "bigbom"] {
        let big = s.run(key).await;
        let error = big.error.unwrap_or_default();
        assert!(
            error.starts_with("the worker's answer was 2097") && error.contains("over the limit"),
            "{key}: {error}"
        );
    }

    let ended = s.workers.stop(PLUGIN).await.expect("stopped");
    assert!(ended.contains("exit status: 0"), "{ended}");
    assert_eq!(s.workers.status(PLUGIN), WorkerStatus::Stopped);
}

#[actix_rt::test]
async fn sdk_runs_succeed_or_fail_with_the_workers_message_and_keep_their_log_lines() {
    let s = Setup::sdk(&[]).await;
    s.register(&[("ok", None), ("fail", None), ("missing", None)])
        .await;
    s.wait_running().await;

    let ok = s.run("ok").await;
    assert_eq!(ok.status, RunStatus::Succeeded);
    assert_eq!(
        messages(&ok),
        [
            ("info".to_owned(), format!("hello from run {}", ok.id)),
            ("warn".to_owned(), "a warning line".to_owned()),
        ]
    );
    assert!(
        ok.logs[0]["at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z'))
    );

    let fail = s.run("fail").await;
    assert_eq!(
        (fail.status, fail.error.as_deref()),
        (RunStatus::Failed, Some("boom: failed on purpose"))
    );
    let missing = s.run("missing").await;
    assert_eq!(missing.status, RunStatus::Failed);
    assert_eq!(
        missing.error.as_deref(),
        Some("this worker has no job \"missing\"")
    );
    assert_eq!(s.workers.starts(PLUGIN), 1, "no fault restarted the worker");
}

#[actix_rt::test]
async fn a_worker_that_exits_mid_run_fails_the_run_with_its_exit_status_and_stderr_then_restarts() {
    let s = Setup::sdk(&[]).await;
    s.register(&[("exit", None), ("ok", None)]).await;
    s.wait_running().await;

    let run = s.run("exit").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(error.contains("exited (exit status: 3)"), "{error}");
    assert!(
        error.contains("stderr: fatal: exiting mid-run on purpose"),
        "{error}"
    );

    wait_until("the worker restarted", Duration::from_secs(20), || async {
        s.workers.starts(PLUGIN) == 2 && s.workers.is_running(PLUGIN)
    })
    .await;
    assert_eq!(s.run("ok").await.status, RunStatus::Succeeded);
}

#[actix_rt::test]
async fn a_hung_run_times_out_and_blocks_its_job_until_the_worker_is_restarted_after_the_grace() {
    let s = Setup::with(
        vec![test_worker()],
        std::env::temp_dir(),
        &[("SLEEP_MS", "60000")],
        fast_config(),
        Duration::from_secs(2),
    )
    .await;
    s.register(&[("hang", Some(200)), ("ok", None), ("sleep", None)])
        .await;
    s.wait_running().await;

    // A run of another job on the same worker, which the restart will end.
    let bystander = s.trigger("sleep").await.expect("trigger");
    let run_id = s.trigger("hang").await.expect("trigger");
    let run = s.finished(run_id).await;
    assert_eq!(
        (run.status, run.error.as_deref()),
        (RunStatus::Failed, Some("timed out after 200 ms"))
    );
    // The worker still holds the call, so within the 2 s grace the job may not start again:
    // blocked for every instance in the table, and refused here.
    let job = s.t.job(run.job_id).await;
    assert!(
        job.blocked_until
            .is_some_and(|until| until > run.finished_at.unwrap_or(until)),
        "blocked past the outcome: {:?}",
        job.blocked_until
    );
    let again = s.trigger("hang").await;
    assert!(
        matches!(&again, Err(Error::AlreadyRunning { detail, .. })
            if detail.contains(&format!("its run {run_id} has ended, but the worker has not let go"))),
        "{again:?}"
    );
    assert_eq!(
        s.workers.starts(PLUGIN),
        1,
        "not restarted before the grace"
    );
    wait_until(
        "the worker is restarted after the grace",
        Duration::from_secs(20),
        || async { s.workers.starts(PLUGIN) == 2 && s.workers.is_running(PLUGIN) },
    )
    .await;
    assert_eq!(s.run("ok").await.status, RunStatus::Succeeded);
    let rerun = s.trigger("hang").await;
    assert!(rerun.is_ok(), "the job is unblocked: {rerun:?}");
    // The run the restart cost its worker says which run that restart was for.
    let ended = s.finished(bystander).await;
    let error = ended.error.unwrap_or_default();
    assert_eq!(ended.status, RunStatus::Failed, "{error}");
    assert!(
        error.contains(&format!(
            "was restarted to stop run {run_id} of {PLUGIN}/hang, which was given up"
        )),
        "{error}"
    );
}

#[actix_rt::test]
async fn a_run_that_honours_cancel_job_after_its_timeout_unblocks_the_job_without_a_restart() {
    let s = Setup::sdk(&[("SLEEP_MS", "60000")]).await;
    s.register(&[("sleep", Some(200))]).await;
    s.wait_running().await;

    let run_id = s.trigger("sleep").await.expect("trigger");
    let run = s.finished(run_id).await;
    assert_eq!(run.error.as_deref(), Some("timed out after 200 ms"));
    wait_until("the job can run again", Duration::from_secs(20), || async {
        s.trigger("sleep").await.is_ok()
    })
    .await;
    assert_eq!(
        s.workers.starts(PLUGIN),
        1,
        "the worker answered, so no restart"
    );
    let first = s.t.run(run_id).await;
    assert_eq!(
        (first.status, first.error.as_deref()),
        (RunStatus::Failed, Some("timed out after 200 ms")),
        "the late answer does not overwrite the outcome"
    );
}

#[actix_rt::test]
async fn garbage_on_stdout_is_dropped_and_calls_in_flight_are_unaffected() {
    let s = Setup::sdk(&[("SLEEP_MS", "500")]).await;
    s.register(&[("garbage", None)]).await;
    s.wait_running().await;

    let beside = sleep_calls(&s.workers, 16);
    let run = s.run("garbage").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    for outcome in futures_util::future::join_all(beside).await {
        assert_eq!(outcome.result, Ok(()));
    }
    assert_eq!(s.workers.starts(PLUGIN), 1);
    assert!(s.workers.is_running(PLUGIN));
}

#[actix_rt::test]
async fn many_calls_are_in_flight_on_one_worker_at_once() {
    let s = Setup::sdk(&[("SLEEP_MS", "3000")]).await;
    s.wait_running().await;
    let calls = sleep_calls(&s.workers, 64);
    wait_until(
        "64 calls are in flight",
        Duration::from_secs(10),
        || async { s.workers.in_flight(PLUGIN) == 64 },
    )
    .await;
    for outcome in futures_util::future::join_all(calls).await {
        assert_eq!(outcome.result, Ok(()));
    }
    assert_eq!(s.workers.in_flight(PLUGIN), 0);
}

#[actix_rt::test]
async fn a_worker_that_never_answers_initialize_is_killed_reported_and_takes_no_runs() {
    let config = ProcessWorkerConfig {
        handshake_timeout: Duration::from_millis(300),
        crash_limit: 1,
        ..fast_config()
    };
    let s = Setup::given_up(vec![test_worker(), "--no-handshake".into()], config).await;
    s.register(&[("ok", None)]).await;
    assert_eq!(s.workers.starts(PLUGIN), 2);
    let error = s.workers.last_error(PLUGIN).unwrap_or_default();
    assert!(
        error.contains("did not answer initialize within 300 ms"),
        "{error}"
    );
    assert!(error.contains("signal: 9"), "killed: {error}");
    let refused = s.trigger("ok").await;
    assert!(
        matches!(refused, Err(Error::WorkerNotRunning(_))),
        "{refused:?}"
    );
}

#[actix_rt::test]
async fn a_worker_that_dies_at_every_start_is_given_up_however_long_its_backoff() {
    // The backoff (0.4, 0.8, 1.6 s) outgrows the window (0.5 s): counted in wall-clock time, no
    // two crashes would ever share the window. Counted in the worker's time up, all four do.
    let config = ProcessWorkerConfig {
        crash_limit: 3,
        crash_window: Duration::from_millis(500),
        restart_backoff: Duration::from_millis(400),
        max_restart_backoff: Duration::from_secs(5),
        ..fast_config()
    };
    let s = Setup::given_up(vec![test_worker(), "--crash-on-start".into()], config).await;
    assert_eq!(s.workers.starts(PLUGIN), 4, "the fourth crash gives up");
    assert_eq!(s.workers.status(PLUGIN), WorkerStatus::Failed);
}

#[actix_rt::test]
async fn a_worker_that_keeps_crashing_is_given_up_after_more_than_the_crash_limit() {
    let config = ProcessWorkerConfig {
        crash_limit: 3,
        ..fast_config()
    };
    let s = Setup::given_up(vec![test_worker(), "--crash-on-start".into()], config).await;
    assert_eq!(
        s.workers.starts(PLUGIN),
        4,
        "three crashes restart, the fourth gives up"
    );
    let error = s.workers.last_error(PLUGIN).unwrap_or_default();
    assert!(error.contains("exit status: 2"), "{error}");
    assert!(error.contains("fatal: cannot start on purpose"), "{error}");
    let call = s
        .workers
        .run_job(
            PLUGIN,
            RunJob::new("ok", "r", "manual", ""),
            Duration::from_secs(1),
        )
        .await;
    assert_eq!(
        call.result.map_err(|e| e.code),
        Err(codes::WORKER_UNAVAILABLE)
    );
}

#[actix_rt::test]
async fn a_command_that_cannot_start_is_reported_with_its_reason() {
    let config = ProcessWorkerConfig {
        crash_limit: 0,
        ..fast_config()
    };
    let s = Setup::given_up(vec!["./no-such-worker".into()], config).await;
    let error = s.workers.last_error(PLUGIN).unwrap_or_default();
    assert!(
        error.contains("could not start the worker of plugin p")
            && error.contains("no-such-worker"),
        "{error}"
    );
}

#[actix_rt::test]
async fn log_lines_beyond_64_kib_are_cut_and_the_cut_is_marked() {
    let s = Setup::sdk(&[]).await;
    s.register(&[("chatty", None)]).await;
    s.wait_running().await;
    let run = s.run("chatty").await;
    assert_eq!(run.status, RunStatus::Succeeded);
    let logs = run.logs.as_array().expect("array");
    // Every entry counts as stored (timestamp, level and punctuation too): about 60 lines of
    // 1 KiB, then the marker, all within 64 KiB.
    assert!(
        run.logs.to_string().len() <= 64 * 1024,
        "{}",
        run.logs.to_string().len()
    );
    assert!((55..64).contains(&(logs.len() - 1)), "{} lines", logs.len());
    let last = logs.last().expect("the marker");
    assert!(
        logs[..logs.len() - 1]
            .iter()
            .all(|e| e["truncated"].is_null())
    );
    assert_eq!(last["truncated"], json!(true));
    assert!(
        last["message"]
            .as_str()
            .is_some_and(|m| m.contains("log truncated")),
        "{last}"
    );
}

#[actix_rt::test]
async fn a_flood_of_empty_lines_and_a_huge_level_stay_within_the_cap() {
    let s = Setup::new(
        vec!["python3".into(), "./raw_worker.py".into()],
        raw_worker_dir(),
        &[],
    )
    .await;
    s.register(&[("flood", None)]).await;
    s.wait_running().await;
    let run = s.run("flood").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let stored = run.logs.to_string().len();
    assert!(stored <= 64 * 1024, "{stored} bytes stored");
    let logs = run.logs.as_array().expect("array");
    assert!(logs.len() > 100, "empty lines are kept up to the cap");
    assert_eq!(
        logs.iter()
            .filter(|e| e["truncated"] == json!(true))
            .count(),
        1
    );
    assert!(logs.iter().all(|e| e["message"] != "huge level"));
}

#[actix_rt::test]
async fn the_worker_sees_only_the_allowlisted_environment() {
    let s = Setup::sdk(&[("GREETING", "hello")]).await;
    s.register(&[("env", None)]).await;
    s.wait_running().await;
    let run = s.run("env").await;
    let (_, listing) = messages(&run).pop().expect("one log line");
    let keys: Vec<&str> = listing
        .lines()
        .filter_map(|line| line.split_once('=').map(|(k, _)| k))
        .collect();
    let allowed = [
        "GREETING",
        "HOME",
        "PATH",
        "PLUGIN_JOBS_PLUGIN_ID",
        "SLEEP_MS",
        "TZ",
    ];
    assert!(
        keys.iter().all(|k| allowed.contains(k)),
        "unexpected variables in {keys:?}"
    );
    for expected in ["GREETING=hello", "PLUGIN_JOBS_PLUGIN_ID=p", "TZ=UTC"] {
        assert!(
            listing.lines().any(|l| l == expected),
            "{expected} in {listing}"
        );
    }
}

/// Starts `command` (which never answers `initialize`), stops it once it is up, and answers how
/// it ended: `shutdown` gets no answer, so SIGTERM follows, then SIGKILL.
async fn stopped(command: Vec<String>) -> String {
    let config = ProcessWorkerConfig {
        handshake_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_millis(200),
        terminate_timeout: Duration::from_millis(200),
        ..fast_config()
    };
    let s = Setup::with(
        command,
        std::env::temp_dir(),
        &[],
        config,
        Duration::from_secs(30),
    )
    .await;
    wait_until("the process is up", Duration::from_secs(10), || async {
        s.workers.pid(PLUGIN).is_some()
    })
    .await;
    let ended = s.workers.stop(PLUGIN).await.expect("stopped");
    assert_eq!(s.workers.status(PLUGIN), WorkerStatus::Stopped);
    ended
}

#[actix_rt::test]
async fn a_worker_that_ignores_shutdown_is_terminated() {
    let ended = stopped(vec![test_worker(), "--no-handshake".into()]).await;
    assert!(ended.contains("stopped with SIGTERM"), "{ended}");
    assert!(ended.contains("signal: 15"), "{ended}");
}

#[actix_rt::test]
async fn a_worker_that_ignores_sigterm_too_is_said_to_be_killed_not_terminated() {
    let script = "trap '' TERM; while :; do sleep 0.05; done";
    let ended = stopped(vec!["sh".into(), "-c".into(), script.into()]).await;
    assert!(
        ended.contains("stopped with SIGKILL: it ignored SIGTERM"),
        "{ended}"
    );
    assert!(ended.contains("signal: 9"), "{ended}");
    assert!(!ended.contains("stopped with SIGTERM"), "{ended}");
}

#[actix_rt::test]
async fn a_worker_that_exits_right_after_answering_initialize_is_restarted_not_shown_running() {
    // The answer and the exit reach the supervisor in either order; a burst on stderr makes the
    // exit come first. Marked running after its exit, the worker would never be restarted.
    let script = r#"head -c 200000 /dev/zero | tr '\0' x >&2
echo '{"jsonrpc":"2.0","id":1,"result":{"ok":true}}'
exit 7"#;
    let config = ProcessWorkerConfig {
        crash_limit: 2,
        ..fast_config()
    };
    let s = Setup::given_up(vec!["sh".into(), "-c".into(), script.into()], config).await;
    assert_eq!(
        s.workers.starts(PLUGIN),
        3,
        "two exits restart, the third gives up"
    );
    let error = s.workers.last_error(PLUGIN).unwrap_or_default();
    assert!(error.contains("exit status: 7"), "{error}");
}

#[actix_rt::test]
async fn a_stderr_line_over_the_limit_is_shown_by_its_size_and_the_lines_after_it_still_read() {
    // 2 MiB without a newline, twice the line limit; the reader skips it, keeps reading and
    // leaves its size in the crash's error where the line would have been.
    let script = r#"head -c 2097152 /dev/zero | tr '\0' x >&2
echo >&2
echo 'fatal: the line after the long one' >&2
exit 9"#;
    let config = ProcessWorkerConfig {
        crash_limit: 0,
        ..fast_config()
    };
    let s = Setup::given_up(vec!["sh".into(), "-c".into(), script.into()], config).await;
    let error = s.workers.last_error(PLUGIN).unwrap_or_default();
    assert!(error.contains("exit status: 9"), "{error}");
    assert!(
        error.contains("stderr: <2097152 bytes>\nfatal: the line after the long one"),
        "{error}"
    );
    assert!(error.len() < 10_000, "{} bytes of error", error.len());
}

#[actix_rt::test]
async fn a_worker_that_starts_taking_calls_gets_its_due_slots_without_waiting_for_a_tick() {
    // The worker takes a second to come up, so the job is registered (and the scheduler looks
    // for due jobs) while it is still starting: no claim, and no wake for its slots. With the
    // safety tick an hour away, only the scheduler being told that the worker now runs can start
    // the every-second job.
    let t = TestDb::new().await;
    let workers = ProcessWorkers::new(fast_config());
    let script = format!("sleep 1; exec '{}'", test_worker());
    let command = vec!["sh".into(), "-c".into(), script];
    workers
        .start(plugin_process(command, std::env::temp_dir(), &[]))
        .expect("start worker");
    let jobs = PluginJobs::builder(t.db.clone())
        .workers(workers.clone())
        .config(SchedulerConfig {
            tick_interval: Duration::from_secs(3600),
            ..SchedulerConfig::default()
        })
        .start()
        .expect("valid settings");
    jobs.register(PLUGIN, vec![JobDeclaration::new("ok", "* * * * * *")])
        .await
        .expect("register");
    assert!(
        !workers.is_running(PLUGIN),
        "the worker must still be starting when the job is registered"
    );
    wait_until(
        "a scheduled run of the job succeeds",
        Duration::from_secs(20),
        || async {
            t.all_runs()
                .await
                .iter()
                .any(|run| run.status == RunStatus::Succeeded)
        },
    )
    .await;
    jobs.shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
    workers.stop(PLUGIN).await;
}

#[actix_rt::test]
async fn a_worker_that_closes_its_stdout_but_keeps_running_is_ended_and_restarted() {
    // Also under the guard the server runs workers with: the guard must not keep the pipe
    // open after the worker closed it.
    let guard = Path::new(env!("CARGO_BIN_EXE_plugin-jobs")).to_path_buf();
    for guard in [None, Some(guard)] {
        let s = Setup::with(
            vec!["python3".into(), "./mute_worker.py".into()],
            raw_worker_dir(),
            &[],
            ProcessWorkerConfig {
                guard: guard.clone(),
                ..fast_config()
            },
            Duration::from_secs(2),
        )
        .await;
        // Alive but mute, it would take every call and answer none, and look running for ever.
        wait_until(
            &format!("the mute worker (guard {guard:?}) is ended and started again"),
            Duration::from_secs(20),
            || async { s.workers.starts(PLUGIN) >= 2 },
        )
        .await;
    }
}

#[actix_rt::test]
async fn a_worker_that_closes_its_stdin_but_keeps_running_is_ended_and_its_run_says_why() {
    let s = Setup::new(
        vec!["python3".into(), "./deaf_worker.py".into()],
        raw_worker_dir(),
        &[],
    )
    .await;
    // A minute's timeout: the run must not wait it out.
    s.register(&[("any", Some(60_000))]).await;
    s.wait_running().await;
    let run = s.run("any").await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("closed its stdin but kept running"),
        "{error}"
    );
    wait_until(
        "the deaf worker is started again",
        Duration::from_secs(20),
        || async { s.workers.starts(PLUGIN) >= 2 },
    )
    .await;
}
