//! A worker never outlives its control, and a job is free again only when its worker is done
//! with it: real child processes (a shell wrapper that does not `exec`, a Python worker that
//! ignores `cancelJob`, `shutdown`, SIGTERM and the end of its stdin), real signals, and on
//! PostgreSQL two instances sharing one database.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::server::{Server, wait_until_sync};
use common::{TestDb, wait_until};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::store::{JobDeclaration, JobRef};
use plugin_jobs::worker::{PluginProcess, ProcessWorkerConfig, ProcessWorkers, WorkerManager};
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use serde_json::{Value, json};

const PLUGIN: &str = "stubborn";

fn workers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workers")
}

fn stubborn() -> String {
    workers_dir()
        .join("stubborn_worker.py")
        .display()
        .to_string()
}

/// Whether `pid` is a live process (a zombie has finished running).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().next());
        !matches!(state, Some("Z" | "X") | None)
    })
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

fn guarded_config() -> ProcessWorkerConfig {
    ProcessWorkerConfig {
        handshake_timeout: Duration::from_secs(10),
        shutdown_timeout: Duration::from_secs(1),
        terminate_timeout: Duration::from_secs(1),
        restart_backoff: Duration::from_millis(50),
        instance_id: "test-instance".to_owned(),
        guard: Some(PathBuf::from(common::server::BIN)),
        ..ProcessWorkerConfig::default()
    }
}

struct Instance {
    workers: ProcessWorkers,
    jobs: PluginJobsHandle,
}

/// One instance: a guarded stubborn worker started with `command` (its pid goes to
/// `pid_file`), and a scheduler on `db` with the job `hang` (timeout `timeout_ms`).
async fn instance(
    db: sea_orm::DatabaseConnection,
    command: Vec<String>,
    pid_file: &Path,
    timeout_ms: i64,
    cancel_grace: Duration,
) -> Instance {
    let workers = ProcessWorkers::new(guarded_config());
    workers
        .start(PluginProcess {
            plugin_id: PLUGIN.to_owned(),
            command,
            dir: workers_dir(),
            env: BTreeMap::from([("PID_FILE".to_owned(), pid_file.display().to_string())]),
            manifest: json!({"id": PLUGIN}),
            config: Value::Null,
        })
        .expect("start worker");
    let jobs = PluginJobs::builder(db)
        .workers(workers.clone())
        .config(SchedulerConfig {
            cancel_grace,
            ..SchedulerConfig::default()
        })
        .manual_ticks()
        .start()
        .expect("start");
    wait_until("the worker is running", Duration::from_secs(20), || async {
        workers.is_running(PLUGIN)
    })
    .await;
    jobs.register(
        PLUGIN,
        vec![JobDeclaration {
            timeout_ms: Some(timeout_ms),
            ..JobDeclaration::new("hang", "")
        }],
    )
    .await
    .expect("register");
    Instance { workers, jobs }
}

/// A guarded stubborn worker running a run of `hang`.
struct Hanging {
    t: TestDb,
    s: Instance,
    guard_pid: i32,
    worker_pid: i32,
    run_id: uuid::Uuid,
    pid_file: PathBuf,
    /// Holds the worker's pid files.
    _dir: tempfile::TempDir,
}

/// Starts an instance whose worker is `command`, whose job `hang` has `timeout_ms` and whose
/// cancel grace is `cancel_grace`, and triggers `hang` until its worker runs it.
async fn hanging(command: Vec<String>, timeout_ms: i64, cancel_grace: Duration) -> Hanging {
    let t = TestDb::new().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("worker.pid");
    let s = instance(t.db.clone(), command, &pid_file, timeout_ms, cancel_grace).await;
    let guard_pid = s.workers.pid(PLUGIN).expect("guard pid") as i32;
    let run_id = trigger(&s.jobs).await.expect("trigger");
    wait_until(
        "the worker runs the job",
        Duration::from_secs(10),
        || async { read_pid(&pid_file).is_some() },
    )
    .await;
    let worker_pid = read_pid(&pid_file).expect("pid");
    Hanging {
        t,
        s,
        guard_pid,
        worker_pid,
        run_id,
        pid_file,
        _dir: dir,
    }
}

/// The stubborn worker started directly, without a wrapper.
fn direct() -> Vec<String> {
    vec!["python3".to_owned(), stubborn()]
}

async fn trigger(jobs: &PluginJobsHandle) -> plugin_jobs::Result<uuid::Uuid> {
    jobs.trigger(JobRef::key(PLUGIN, "hang"), RunTrigger::Manual)
        .await
        .map(|run| run.run_id)
}

#[actix_rt::test]
async fn a_shell_wrapped_worker_and_all_it_started_are_gone_before_a_timed_out_job_is_freed() {
    // `sh -c "…; exit 0"` cannot exec: the real worker is the shell's child. It also starts a
    // process in a session of its own (`STRAY`), which leaves the worker's group.
    let wrapped = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("STRAY=1 python3 {}; exit 0", stubborn()),
    ];
    let Hanging {
        t,
        s,
        guard_pid,
        worker_pid,
        run_id,
        pid_file,
        _dir,
    } = hanging(wrapped, 300, Duration::from_millis(500)).await;
    let stray_pid = read_pid(&pid_file.with_extension("pid.stray")).expect("stray pid");
    assert!(alive(stray_pid));
    wait_until("the run times out", Duration::from_secs(10), || async {
        t.run(run_id).await.status == RunStatus::Failed
    })
    .await;
    let job = t.job(t.run(run_id).await.job_id).await;
    assert!(
        job.blocked_until.is_some(),
        "the job is blocked while the worker may run it"
    );
    assert!(
        matches!(
            trigger(&s.jobs).await,
            Err(plugin_jobs::Error::AlreadyRunning { .. })
        ),
        "no second run while the worker holds the first"
    );
    wait_until("the job is unblocked", Duration::from_secs(20), || async {
        t.job(job.id).await.blocked_until.is_none()
    })
    .await;
    assert!(
        !alive(worker_pid),
        "the wrapped worker {worker_pid} is gone before the job is free"
    );
    assert!(!alive(guard_pid), "the old guard {guard_pid} is gone");
    assert!(
        !alive(stray_pid),
        "the process {stray_pid} it started in a session of its own is gone"
    );
    wait_until("a new worker runs", Duration::from_secs(20), || async {
        s.workers.is_running(PLUGIN) && s.workers.starts(PLUGIN) == 2
    })
    .await;
    assert_ne!(s.workers.pid(PLUGIN), Some(guard_pid as u32));
    s.workers.stop_all().await;
}

#[test]
fn workers_that_ignore_the_end_of_stdin_die_with_a_host_killed_by_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let direct_pid = dir.path().join("direct.pid");
    let wrapped_pid = dir.path().join("wrapped.pid");
    let manifest = |id: &str, command: Vec<String>, pid_file: &Path| {
        (
            id.to_owned(),
            json!({
                "id": id,
                "command": command,
                "env": {"PID_FILE": pid_file.display().to_string()},
                "jobs": [{"jobKey": "ok", "schedule": ""}],
            })
            .to_string(),
        )
    };
    let plugins = [
        manifest(
            "direct",
            vec!["python3".to_owned(), stubborn()],
            &direct_pid,
        ),
        manifest(
            "wrapped",
            vec![
                "sh".to_owned(),
                "-c".to_owned(),
                format!("python3 {}; exit 0", stubborn()),
            ],
            &wrapped_pid,
        ),
    ];
    let mut server = Server::start(&plugins, &[]);
    server.wait_worker("direct", "running");
    server.wait_worker("wrapped", "running");
    let started = |path: &Path| read_pid(&path.with_extension("pid.started"));
    let pids = [
        started(&direct_pid).expect("direct worker pid"),
        started(&wrapped_pid).expect("wrapped worker pid"),
    ];
    assert!(pids.iter().all(|pid| alive(*pid)));
    server.child.kill().expect("SIGKILL the server");
    let _ = server.child.wait();
    let killed = Instant::now();
    wait_until_sync(
        "both workers are gone after the host died",
        Duration::from_secs(5),
        || pids.iter().all(|pid| !alive(*pid)),
    );
    eprintln!(
        "workers gone {} ms after the host was killed",
        killed.elapsed().as_millis()
    );
}

/// A rolling deploy: instance A shuts down while its worker runs a job and ignores `cancelJob`,
/// `shutdown` and SIGTERM; instance B, on the same PostgreSQL, keeps trying to run the job. B
/// gets it only once A's worker is gone.
#[actix_rt::test]
async fn a_job_cancelled_by_a_shutdown_stays_blocked_for_other_instances_until_its_worker_is_gone()
{
    let t = TestDb::new().await;
    if !t.is_postgres() {
        eprintln!("skipped: needs DATABASE_URL (two instances share a PostgreSQL)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_a = dir.path().join("a.pid");
    let pid_b = dir.path().join("b.pid");
    let command = vec!["python3".to_owned(), stubborn()];
    let grace = Duration::from_secs(30);
    let a = instance(t.db.clone(), command.clone(), &pid_a, 60_000, grace).await;
    let db_b = plugin_jobs::db::connect(&t.url).await.expect("connect B");
    let b = instance(db_b, command, &pid_b, 60_000, grace).await;

    trigger(&a.jobs).await.expect("A runs the job");
    wait_until(
        "A's worker runs the job",
        Duration::from_secs(10),
        || async { read_pid(&pid_a).is_some() },
    )
    .await;
    let worker_a = read_pid(&pid_a).expect("pid");

    let shutdown = {
        let (jobs, workers) = (a.jobs.clone(), a.workers.clone());
        actix_rt::spawn(async move {
            jobs.shutdown(Duration::from_millis(100))
                .await
                .expect("shutdown");
            workers.stop_all().await;
            jobs.await_released(Duration::from_secs(15))
                .await
                .expect("released")
        })
    };
    let refused_since = Instant::now();
    wait_until("B gets the job", Duration::from_secs(30), || async {
        if trigger(&b.jobs).await.is_err() {
            return false;
        }
        assert!(
            !alive(worker_a),
            "B started the job while A's worker {worker_a} still ran it"
        );
        true
    })
    .await;
    assert!(
        refused_since.elapsed() > Duration::from_millis(200),
        "B was held off while A's worker lived"
    );
    assert_eq!(
        shutdown.await.expect("shutdown task"),
        0,
        "A released its job"
    );
    b.workers.stop_all().await;
}

/// A guard killed outright (SIGKILL, the OOM killer) cannot end the worker it started: the host
/// does, before it fails the worker's calls and frees their jobs. Otherwise the worker ran on
/// unsupervised and its job could start again beside it.
#[actix_rt::test]
async fn a_worker_whose_guard_is_killed_outright_is_gone_before_its_run_ends() {
    let Hanging {
        t,
        s,
        guard_pid,
        worker_pid,
        run_id,
        _dir,
        ..
    } = hanging(direct(), 60_000, Duration::from_secs(30)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(guard_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the guard");
    wait_until("the run ends", Duration::from_secs(20), || async {
        !t.run(run_id).await.status.is_live()
    })
    .await;
    assert!(
        !alive(worker_pid),
        "the worker {worker_pid} is gone before its run ended"
    );
    let run = t.run(run_id).await;
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    wait_until("a new worker runs", Duration::from_secs(20), || async {
        s.workers.is_running(PLUGIN) && s.workers.starts(PLUGIN) == 2
    })
    .await;
    s.workers.stop_all().await;
}

/// A guard stopped with SIGSTOP (as `pkill -STOP -f <worker command>` stops it together with its
/// worker) cannot act on the host's kill signal: it is killed outright, its worker's group with
/// it, and the job is freed only once both are gone, not when the restart wait gives up.
#[actix_rt::test]
async fn a_worker_whose_guard_is_stopped_is_killed_with_it_before_its_job_is_freed() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let Hanging {
        t,
        s,
        guard_pid,
        worker_pid,
        run_id,
        _dir,
        ..
    } = hanging(direct(), 300, Duration::from_millis(500)).await;
    for pid in [guard_pid, worker_pid] {
        kill(Pid::from_raw(pid), Signal::SIGSTOP).expect("stop");
    }
    let started = Instant::now();
    wait_until("the run times out", Duration::from_secs(10), || async {
        t.run(run_id).await.status == RunStatus::Failed
    })
    .await;
    let job_id = t.run(run_id).await.job_id;
    wait_until("the job is unblocked", Duration::from_secs(60), || async {
        t.job(job_id).await.blocked_until.is_none()
    })
    .await;
    let freed_after = started.elapsed();
    let (guard_alive, worker_alive) = (alive(guard_pid), alive(worker_pid));
    // Whatever happened, nothing stays stopped behind the test.
    for pid in [guard_pid, worker_pid] {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(
        !worker_alive,
        "the worker {worker_pid} is gone before its job is free ({freed_after:?})"
    );
    assert!(!guard_alive, "the stopped guard {guard_pid} is gone");
    wait_until("a new worker runs", Duration::from_secs(20), || async {
        s.workers.is_running(PLUGIN) && s.workers.starts(PLUGIN) == 2
    })
    .await;
    s.workers.stop_all().await;
}

/// A host that is alive but frozen (SIGSTOP here; a starved or paused machine alike) renews no
/// run lease, so another instance may rescue its runs and start their jobs again: its workers
/// must be gone first. Each guard is on a leash shorter than the run lease (3 s lease, 1 s
/// heartbeat: a 1 s leash), renewed by the host; while the host runs, a 3 s run outlives the
/// leash many times over; once the host is frozen, the guard kills its worker.
#[test]
fn the_worker_of_a_frozen_host_is_killed_before_its_runs_lease_can_expire() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pid_file = dir.path().join("stubborn.pid");
    let plugins = [
        (
            "sleeper".to_owned(),
            json!({
                "id": "sleeper",
                "command": [common::server::test_worker()],
                "env": {"SLEEP_MS": "3000"},
                "jobs": [{"jobKey": "sleep"}],
            })
            .to_string(),
        ),
        (
            "stubborn".to_owned(),
            json!({
                "id": "stubborn",
                "command": ["python3", stubborn()],
                "env": {"PID_FILE": pid_file.display().to_string()},
                "jobs": [{"jobKey": "hang"}],
            })
            .to_string(),
        ),
    ];
    let args = ["--run-lease", "3s", "--heartbeat-interval", "1s"];
    let server = Server::start(&plugins, &args);
    server.wait_worker("sleeper", "running");
    server.wait_worker("stubborn", "running");

    // Renewed while the host runs: the 3 s run is not cut at the 1 s leash.
    let (status, run) = server.post("/api/plugins/sleeper/jobs/sleep/trigger");
    assert_eq!(status, 202, "{run}");
    let run_id = run["runId"].as_str().expect("run id").to_owned();
    let mut finished = Value::Null;
    wait_until_sync("the sleep run ends", Duration::from_secs(30), || {
        finished = server.run(&run_id);
        !matches!(finished["status"].as_str(), Some("queued" | "running"))
    });
    assert_eq!(
        finished["status"],
        "succeeded",
        "{finished}\n{}",
        server.log()
    );

    let (status, run) = server.post("/api/plugins/stubborn/jobs/hang/trigger");
    assert_eq!(status, 202, "{run}");
    let mut worker = None;
    wait_until_sync(
        "the hang run is in its worker",
        Duration::from_secs(20),
        || {
            worker = read_pid(&pid_file);
            worker.is_some()
        },
    );
    let worker = worker.expect("worker pid");
    assert!(alive(worker));

    let host = server.child.id().to_string();
    let stop = std::process::Command::new("kill")
        .args(["-STOP", &host])
        .status()
        .expect("kill");
    assert!(stop.success());
    let frozen = Instant::now();
    wait_until_sync(
        "the frozen host's worker is killed by its guard",
        Duration::from_secs(10),
        || !alive(worker),
    );
    eprintln!(
        "worker killed {} ms after its host froze (leash 1 s)",
        frozen.elapsed().as_millis()
    );
    let resume = std::process::Command::new("kill")
        .args(["-CONT", &host])
        .status()
        .expect("kill");
    assert!(resume.success());
    // Thawed, the host hears its worker is gone, fails the run and starts a new worker.
    let run_id = run["runId"].as_str().expect("run id").to_owned();
    wait_until_sync("the hang run is failed", Duration::from_secs(30), || {
        server.run(&run_id)["status"] == "failed"
    });
    server.wait_worker("stubborn", "running");
    assert!(
        server
            .log()
            .contains("the host renewed no leash for 1000 ms"),
        "{}",
        server.log()
    );
}
