//! The randomized fault test: three `plugin-jobs serve` processes on one private PostgreSQL,
//! twelve every-second jobs whose Python workers log what they execute to a shared ledger, and
//! faults injected at random: SIGKILL of a server (started again), a server frozen (SIGSTOP)
//! for longer than the run lease, a PostgreSQL crash and restart, SIGKILL of a worker, plus
//! workers that crash and jobs that hang past their timeout.
//!
//! Checked afterwards: no two executions of one job at once on the worker side (a job's
//! execution holds an exclusive file lock; a run that finds it taken is an overlap), each slot
//! and each run executed at most once, every run the ledger saw finish is recorded with a final
//! status, and nothing is live once the lease has passed.
//!
//! Short form in the suite (about 20 s of faults; needs `DATABASE_URL` and PostgreSQL's
//! binaries, as CI has); the long form: `PLUGIN_JOBS_FAULT_SECONDS=300 cargo test --test
//! fault_injection -- --nocapture`. `PLUGIN_JOBS_FAULT_SEED` replays a run.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::postgres::Cluster;
use common::server::Server;
use entity::prelude::*;
use sea_orm::EntityTrait;
use serde_json::json;

const INSTANCES: usize = 3;
const LEASE: &str = "3s";

/// A small deterministic generator (xorshift64*), seeded and printed so a run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn manifest(dir: &Path) -> String {
    let worker = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workers/ledger_worker.py");
    let mut jobs = Vec::new();
    for i in 0..6 {
        jobs.push(
            json!({"jobKey": format!("ok-{i}"), "schedule": "* * * * * *", "timeoutMs": 5000}),
        );
    }
    for i in 0..3 {
        jobs.push(
            json!({"jobKey": format!("hang-{i}"), "schedule": "* * * * * *", "timeoutMs": 1000}),
        );
        jobs.push(
            json!({"jobKey": format!("crash-{i}"), "schedule": "* * * * * *", "timeoutMs": 5000}),
        );
    }
    json!({
        "id": "ledger",
        "command": ["python3", worker.display().to_string()],
        "env": {
            "LEDGER": dir.join("ledger").display().to_string(),
            "LOCK_DIR": dir.join("locks").display().to_string(),
            "HANG_MS": "3000",
        },
        "jobs": jobs,
    })
    .to_string()
}

fn server_args(url: &str) -> Vec<String> {
    [
        "--database-url",
        url,
        "--run-lease",
        LEASE,
        "--heartbeat-interval",
        "1s",
        "--maintenance-interval",
        "1s",
        "--cancel-grace",
        "2s",
        "--shutdown-grace",
        "1s",
        "--max-concurrent",
        "20",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn start_server(url: &str, manifest: &str) -> Server {
    let args = server_args(url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&[("ledger".to_owned(), manifest.to_owned())], &args)
}

#[derive(Debug, Default)]
struct Faults(BTreeMap<&'static str, usize>);

impl Faults {
    fn count(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }
}

fn worker_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_dir(dir.join("pids"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| Path::new(&format!("/proc/{pid}")).exists())
        .collect()
}

async fn all_runs(url: &str) -> Vec<PluginJobRunModel> {
    let db = plugin_jobs::db::connect(url).await.expect("connect");
    PluginJobRun::find().all(&db).await.expect("runs")
}

#[actix_rt::test]
async fn random_faults_never_run_a_job_twice_at_once_nor_leave_a_run_live_or_unrecorded() {
    if std::env::var("DATABASE_URL").map_or(true, |url| url.is_empty()) {
        eprintln!("skipped: the fault test runs with DATABASE_URL set (PostgreSQL), as in CI");
        return;
    }
    let Some(cluster) = Cluster::start() else {
        eprintln!("skipped: no PostgreSQL binaries to start a private cluster");
        return;
    };
    let seconds: u64 = std::env::var("PLUGIN_JOBS_FAULT_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("PLUGIN_JOBS_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("fault test: {seconds} s of faults, seed {seed}");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("locks")).expect("locks");
    std::fs::create_dir_all(dir.path().join("pids")).expect("pids");
    let url = cluster.url();
    plugin_jobs::db::connect_and_migrate(&url)
        .await
        .expect("migrate");
    let manifest = manifest(dir.path());
    let mut servers: Vec<Server> = (0..INSTANCES)
        .map(|_| start_server(&url, &manifest))
        .collect();

    let mut faults = Faults::default();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let pause = Duration::from_millis(1_000 + rng.below(2_000));
        actix_rt::time::sleep(pause).await;
        match rng.below(11) {
            0..=4 => {
                let victim = rng.below(INSTANCES as u64) as usize;
                let server = &mut servers[victim];
                server.child.kill().expect("SIGKILL a server");
                let _ = server.child.wait();
                faults.count("server SIGKILL");
                actix_rt::time::sleep(Duration::from_millis(rng.below(1_000))).await;
                let args = server_args(&url);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                server.relaunch(&args);
            }
            5..=6 => {
                assert!(cluster.crash(), "crash PostgreSQL");
                faults.count("PostgreSQL crash");
                actix_rt::time::sleep(Duration::from_millis(500 + rng.below(2_000))).await;
                assert!(cluster.up(), "restart PostgreSQL");
            }
            7 => {
                // A server frozen past the run lease: the others rescue its runs and start their
                // jobs again, so its workers must be gone by then (the guards' leash).
                let victim = rng.below(INSTANCES as u64) as usize;
                let pid = nix::unistd::Pid::from_raw(
                    i32::try_from(servers[victim].child.id()).expect("a pid"),
                );
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
                faults.count("server SIGSTOP");
                actix_rt::time::sleep(Duration::from_millis(3_500 + rng.below(2_500))).await;
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT);
            }
            _ => {
                let pids = worker_pids(dir.path());
                if !pids.is_empty() {
                    let pid = pids[rng.below(pids.len() as u64) as usize];
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                    faults.count("worker SIGKILL");
                }
            }
        }
    }

    // Quiet: stop every server gracefully, then let one more instance rescue what the killed
    // ones abandoned (a lease and a maintenance pass), and stop it too.
    for server in &mut servers {
        let status = server.signal("-TERM");
        assert!(
            status.success(),
            "graceful exit: {status:?}\n{}",
            server.log()
        );
    }
    let mut last = start_server(&url, &manifest);
    actix_rt::time::sleep(Duration::from_secs(6)).await;
    assert!(last.signal("-TERM").success());

    let runs = all_runs(&url).await;
    let ledger = std::fs::read_to_string(dir.path().join("ledger")).unwrap_or_default();
    let mut violations = Vec::new();

    // Never two executions of one job at once, worker-side.
    for line in ledger.lines().filter(|line| line.starts_with("OVERLAP")) {
        violations.push(format!("two executions at once: {line}"));
    }
    // Each run and each scheduled slot executed at most once.
    let by_id: HashMap<String, &PluginJobRunModel> =
        runs.iter().map(|run| (run.id.to_string(), run)).collect();
    let mut started_runs = HashSet::new();
    let mut started_slots = HashSet::new();
    for line in ledger.lines().filter(|line| line.starts_with("start ")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (key, run_id, trigger, slot) = (fields[1], fields[2], fields[3], fields[4]);
        if !started_runs.insert(run_id.to_owned()) {
            violations.push(format!("run executed twice: {line}"));
        }
        // No job here has a retry policy: a retry is the one late run of a slot whose claimed
        // run never started (its instance was killed first), and must not repeat a slot that
        // ran.
        let slot_run = trigger == "schedule" || trigger == "retry";
        if slot_run && !started_slots.insert((key.to_owned(), slot.to_owned())) {
            violations.push(format!("slot executed twice: {line}"));
        }
        if !by_id.contains_key(run_id) {
            violations.push(format!("executed run missing from the database: {line}"));
        }
    }
    // Every run that finished in its worker is recorded with a final status.
    let mut finished = 0;
    for line in ledger.lines().filter(|line| line.starts_with("end ")) {
        finished += 1;
        let run_id = line.split_whitespace().nth(2).unwrap_or_default();
        match by_id.get(run_id) {
            Some(run) if !run.status.is_live() => {}
            Some(run) => violations.push(format!("finished run left {}: {line}", run.status)),
            None => violations.push(format!("finished run not recorded: {line}")),
        }
    }
    // Nothing live after the lease.
    for run in runs.iter().filter(|run| run.status.is_live()) {
        violations.push(format!("run {} still {} at the end", run.id, run.status));
    }
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        *statuses.entry(run.status.to_string()).or_default() += 1;
    }
    let injected: usize = faults.0.values().sum();
    eprintln!(
        "fault test (seed {seed}): {injected} faults injected {:?}; {} runs {statuses:?}; \
         {} executions started, {finished} finished in workers, {} worker crashes; \
         {} late runs of slots that never started; {} violations",
        faults.0,
        runs.len(),
        started_runs.len(),
        ledger.lines().filter(|l| l.starts_with("crash ")).count(),
        runs.iter()
            .filter(|run| run.trigger == RunTrigger::Retry)
            .count(),
        violations.len()
    );
    assert!(injected > 0, "faults were injected");
    assert!(
        runs.iter().any(|run| run.status == RunStatus::Succeeded),
        "work got done between the faults"
    );
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
    drop(cluster);
}
