//! Scheduler benchmarks: how late runs start, whether every slot runs once, and how many runs per
//! second plugin-jobs records, on a SQLite file and on PostgreSQL (when `DATABASE_URL` is set).
//!
//! Scenarios, each with in-process no-op workers and the real actors:
//! - `floor`: the database's own rate for inserting and then updating run-shaped rows, one row
//!   per statement, 1,000 rows per transaction, through sea-orm;
//! - `steady`: 1,000 jobs on an every-second schedule for 30 s;
//! - `burst`: 100,000 jobs all due at once, `max_concurrent_runs` 1,000, until all are recorded;
//! - `burst_varied`: `burst` with 1,440 different schedules and workers that log one line of
//!   their own per run, so the pointer moves and the outcomes of a batch differ row by row;
//! - `burst_failing`: `burst` with every run failing with an error of its own, so every outcome
//!   also extends its job's failure streak;
//! - `scale`: 1,000,000 jobs in the table, 1,000 of them due every second, for 30 s;
//! - `history`: `steady` with 1,000,000 finished runs already stored (1,000 per job, the number
//!   kept), maintenance every 5 s so the prune is active, and 10 long manual runs whose heartbeat
//!   age is sampled (`heartbeat_age_max_ms`, against half the 30 s lease);
//! - `api`: `steady` in a table of 100,000 jobs and 1,000,000 runs, measured alone and then
//!   while HTTP clients page through the jobs and runs listings: the listings' p50/p99 latency
//!   and steady's lateness p99 in each window, plus the plans of the listing queries.
//!
//! Each scenario runs in a child process of its own, so its CPU time and peak RSS are its own.
//! `cpu_s` is the process's CPU time during the measured window only (set-up excluded); with
//! SQLite it includes the database's work, which runs in the process.
//! One JSON line per scenario. `-- --quick` shrinks everything to run in about a minute;
//! `-- --only steady,burst` picks scenarios; `-- --sqlite-only` skips PostgreSQL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use entity::prelude::*;
use futures_util::future::BoxFuture;
use nix::sys::resource::{UsageWho, getrusage};
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::events::RunEvent;
use plugin_jobs::store::JobDeclaration;
use plugin_jobs::worker::{
    CancelJob, InProcessWorkers, RunCall, RunJob, RunOutcome, WorkerManager,
};
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

const PLUGIN: &str = "bench";
const SCENARIOS: [&str; 10] = [
    "floor",
    "steady",
    "steady10k",
    "burst",
    "burst_varied",
    "burst_failing",
    "burst3",
    "scale",
    "history",
    "api",
];

#[derive(Debug, Clone, Copy)]
struct Size {
    floor_rows: usize,
    steady_jobs: usize,
    steady_secs: u64,
    /// Jobs of `steady10k`: ten times `steady`'s load.
    steady_big_jobs: usize,
    burst_jobs: usize,
    burst_concurrency: usize,
    scale_jobs: usize,
    scale_hot: usize,
    scale_secs: u64,
    history_per_job: usize,
    api_jobs: usize,
    api_runs: usize,
    api_secs: u64,
}

const FULL: Size = Size {
    floor_rows: 20_000,
    steady_jobs: 1_000,
    steady_secs: 30,
    steady_big_jobs: 10_000,
    burst_jobs: 100_000,
    burst_concurrency: 1_000,
    scale_jobs: 1_000_000,
    scale_hot: 1_000,
    scale_secs: 30,
    history_per_job: 1_000,
    api_jobs: 100_000,
    api_runs: 1_000_000,
    api_secs: 30,
};

const QUICK: Size = Size {
    floor_rows: 5_000,
    steady_jobs: 1_000,
    steady_secs: 5,
    steady_big_jobs: 10_000,
    burst_jobs: 10_000,
    burst_concurrency: 1_000,
    scale_jobs: 100_000,
    scale_hot: 1_000,
    scale_secs: 5,
    history_per_job: 100,
    api_jobs: 10_000,
    api_runs: 100_000,
    api_secs: 5,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let size = if quick { QUICK } else { FULL };
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let scenario = args.get(at + 1).expect("scenario").clone();
        let backend = args.get(at + 2).expect("backend").clone();
        let line = actix_rt::System::new().block_on(child(&scenario, &backend, size));
        println!("{line}");
        return;
    }
    let only: Vec<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|at| args.get(at + 1))
        .map(|list| list.split(',').map(str::to_owned).collect())
        .unwrap_or_else(|| SCENARIOS.map(str::to_owned).to_vec());
    let mut backends = vec!["sqlite"];
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") && !args.iter().any(|a| a == "--sqlite-only") => {
            backends.push("postgres");
        }
        _ => eprintln!("PostgreSQL skipped: set DATABASE_URL=postgres://… to include it"),
    }
    let exe = std::env::current_exe().expect("own path");
    for backend in backends {
        let (mut floor, mut burst) = (None, None);
        for scenario in SCENARIOS.iter().filter(|s| only.iter().any(|o| o == *s)) {
            if *scenario == "burst3" && backend == "sqlite" {
                // One SQLite file has one writer at a time: instances cannot scale out there.
                continue;
            }
            let mut command = Command::new(&exe);
            command.args(["--child", scenario, backend]);
            if quick {
                command.arg("--quick");
            }
            let output = command.output().expect("run scenario");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let Some(mut line) = stdout
                .lines()
                .rev()
                .find_map(|l| serde_json::from_str::<Value>(l).ok())
            else {
                eprintln!(
                    "{scenario} on {backend} failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                continue;
            };
            let rate = line["runs_per_s"].as_f64().unwrap_or(0.0);
            if *scenario == "burst" {
                burst = Some(rate);
            }
            if *scenario == "burst3"
                && let Some(single) = burst.filter(|b| *b > 0.0)
            {
                line["scale_out"] = json!((rate / single * 100.0).round() / 100.0);
            }
            if *scenario == "floor" {
                floor = Some(rate);
            } else if let Some(floor) = floor.filter(|f| *f > 0.0) {
                line["floor_ratio"] = json!((rate / floor * 100.0).round() / 100.0);
            }
            println!("{line}");
        }
    }
}

/// A fresh database for one scenario: a SQLite file in a temporary folder, or a new schema.
struct Db {
    db: DatabaseConnection,
    /// The URL it was opened with (for PostgreSQL, with its schema), for further pools.
    url: String,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL schema made for this scenario, dropped when it ends.
    schema: Option<String>,
}

impl Db {
    /// Drops the scenario's PostgreSQL schema, so that benchmark runs do not pile up tables
    /// (gigabytes over a day of runs) in the database `DATABASE_URL` points at.
    async fn remove(self) {
        let Some(schema) = self.schema else {
            return;
        };
        let _ = self.db.close().await;
        let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
        let dropped = match plugin_jobs::db::connect(&base).await {
            Ok(admin) => {
                let sql =
                    format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
                let dropped = admin.execute_unprepared(&sql).await.map(drop);
                let _ = admin.close().await;
                dropped.map_err(|err| err.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        if let Err(err) = dropped {
            eprintln!("could not drop the benchmark schema {schema}: {err}");
        }
    }
}

async fn fresh_db(backend: &str) -> Db {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        );
        let db = plugin_jobs::db::connect_and_migrate(&url)
            .await
            .expect("migrate");
        return Db {
            db,
            url,
            _dir: Some(dir),
            schema: None,
        };
    }
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let schema = format!("bench_{}", Uuid::new_v4().simple());
    let admin = plugin_jobs::db::connect(&base).await.expect("connect");
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await
        .expect("schema");
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options[search_path]={schema}");
    let db = plugin_jobs::db::connect_and_migrate(&url)
        .await
        .expect("migrate");
    Db {
        db,
        url,
        _dir: None,
        schema: Some(schema),
    }
}

fn usage() -> (f64, u64) {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let cpu = seconds(usage.user_time()) + seconds(usage.system_time());
    // ru_maxrss is in KiB on Linux.
    (cpu, u64::try_from(usage.max_rss()).unwrap_or(0) / 1024)
}

async fn child(scenario: &str, backend: &str, size: Size) -> Value {
    let db = fresh_db(backend).await;
    let (cpu_before, _) = usage();
    let mut line = match scenario {
        "floor" => floor(&db.db, size.floor_rows).await,
        "steady" => steady(&db.db, size.steady_jobs, 0, size.steady_secs, 0).await,
        "steady10k" => steady(&db.db, size.steady_big_jobs, 0, size.steady_secs, 0).await,
        "history" => {
            steady(
                &db.db,
                size.steady_jobs,
                0,
                size.steady_secs,
                size.history_per_job,
            )
            .await
        }
        "scale" => {
            steady(
                &db.db,
                size.scale_hot,
                size.scale_jobs - size.scale_hot,
                size.scale_secs,
                0,
            )
            .await
        }
        "burst" => {
            let keys = (0..size.burst_jobs).map(|n| format!("burst-{n}"));
            let workers = noop_workers(keys.clone());
            let declarations = keys.map(|k| JobDeclaration::new(k, "0 0 1 1 *")).collect();
            burst(&db.db, declarations, workers, size.burst_concurrency).await
        }
        "burst_varied" => {
            // 1,440 schedules (each minute of the day) and one log line of its own per run.
            let declarations = (0..size.burst_jobs)
                .map(|n| {
                    let schedule = format!("{} {} * * *", n % 60, n / 60 % 24);
                    JobDeclaration::new(format!("burst-{n}"), schedule)
                })
                .collect();
            burst(&db.db, declarations, LoggingWorkers, size.burst_concurrency).await
        }
        "burst_failing" => {
            // Every run fails with an error of its own: each job's failure streak grows.
            let keys = (0..size.burst_jobs).map(|n| format!("burst-{n}"));
            let workers = InProcessWorkers::new();
            for key in keys.clone() {
                workers.register(PLUGIN, &key, |ctx| {
                    std::future::ready(Err(format!("run {} failed", ctx.run_id)))
                });
            }
            let declarations = keys.map(|k| JobDeclaration::new(k, "0 0 1 1 *")).collect();
            burst(&db.db, declarations, workers, size.burst_concurrency).await
        }
        "burst3" => burst_instances(&db, size.burst_jobs, size.burst_concurrency, 3).await,
        "api" => {
            api_load(
                &db.db,
                size.steady_jobs,
                size.api_jobs,
                size.api_runs,
                size.api_secs,
            )
            .await
        }
        other => panic!("unknown scenario {other}"),
    };
    let (cpu_after, peak_rss_mb) = usage();
    line["bench"] = json!("scheduler");
    line["scenario"] = json!(scenario);
    line["db"] = json!(backend);
    if line.get("cpu_s").is_none() {
        line["cpu_s"] = json!(round3(cpu_after - cpu_before));
    }
    line["peak_rss_mb"] = json!(peak_rss_mb);
    db.remove().await;
    line
}

fn job_row(
    key: String,
    schedule: &str,
    next_run_at: Option<DateTime<Utc>>,
) -> PluginJobActiveModel {
    let now = Utc::now();
    PluginJobActiveModel {
        id: Set(Uuid::now_v7()),
        plugin_id: Set(PLUGIN.to_owned()),
        job_key: Set(key.clone()),
        display_name: Set(key),
        description: Set(String::new()),
        schedule: Set(schedule.to_owned()),
        timezone: Set("UTC".to_owned()),
        status: Set(JobStatus::Active),
        timeout_ms: Set(None),
        misfire: Set(MisfirePolicy::FireOnce),
        last_error: Set(None),
        blocked_until: Set(None),
        last_run_at: Set(None),
        next_run_at: Set(next_run_at),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
}

/// Inserts jobs straight into the table, 1,000 rows per statement (set-up, not measured). The
/// rows are built a statement at a time: a million of them at once would hold about half a
/// gigabyte that the allocator keeps after set-up, and that is not the scheduler's memory.
async fn insert_jobs(
    db: &DatabaseConnection,
    mut rows: impl Iterator<Item = PluginJobActiveModel>,
) {
    loop {
        let chunk: Vec<_> = rows.by_ref().take(1_000).collect();
        if chunk.is_empty() {
            break;
        }
        PluginJob::insert_many(chunk)
            .exec_without_returning(db)
            .await
            .expect("insert jobs");
    }
    // Fresh statistics, so the planner (and PostgreSQL's autovacuum) do not pick the measured
    // window to catch up on a million new rows.
    db.execute_unprepared("ANALYZE plugin_jobs")
        .await
        .expect("analyze");
}

async fn floor(db: &DatabaseConnection, rows: usize) -> Value {
    let far = Utc::now() + TimeDelta::days(365);
    insert_jobs(
        db,
        (0..rows).map(|n| job_row(format!("floor-{n}"), "0 0 1 1 *", Some(far))),
    )
    .await;
    let jobs: Vec<Uuid> = PluginJob::find()
        .select_only()
        .column(PluginJobColumn::Id)
        .into_tuple()
        .all(db)
        .await
        .expect("job ids");
    let started = Instant::now();
    let mut run_ids = Vec::with_capacity(rows);
    for chunk in jobs.chunks(1_000) {
        let txn = db.begin().await.expect("begin");
        for job_id in chunk {
            let id = Uuid::now_v7();
            let now = Utc::now();
            PluginJobRun::insert(PluginJobRunActiveModel {
                id: Set(id),
                job_id: Set(*job_id),
                plugin_id: Set(PLUGIN.to_owned()),
                trigger: Set(RunTrigger::Schedule),
                status: Set(RunStatus::Queued),
                scheduled_for: Set(now),
                instance_id: Set(Some("floor".to_owned())),
                heartbeat_at: Set(Some(now)),
                duration_ms: Set(None),
                error: Set(None),
                logs: Set(json!([])),
                started_at: Set(None),
                finished_at: Set(None),
                created_at: Set(now),
                traceparent: Set(None),
                attempt: Set(1),
                retry_of: Set(None),
                payload: Set(None),
            })
            .exec_without_returning(&txn)
            .await
            .expect("insert run");
            run_ids.push(id);
        }
        txn.commit().await.expect("commit");
    }
    for chunk in run_ids.chunks(1_000) {
        let txn = db.begin().await.expect("begin");
        for id in chunk {
            let now = Utc::now();
            PluginJobRun::update_many()
                .col_expr(
                    PluginJobRunColumn::Status,
                    Expr::value(RunStatus::Succeeded),
                )
                .col_expr(PluginJobRunColumn::FinishedAt, Expr::value(now))
                .col_expr(PluginJobRunColumn::DurationMs, Expr::value(1i64))
                .filter(PluginJobRunColumn::Id.eq(*id))
                .exec(&txn)
                .await
                .expect("update run");
        }
        txn.commit().await.expect("commit");
    }
    let elapsed = started.elapsed().as_secs_f64();
    json!({
        "rows": rows,
        "seconds": round3(elapsed),
        "runs_per_s": (rows as f64 / elapsed).round(),
    })
}

fn start(
    db: &DatabaseConnection,
    max_concurrent_runs: usize,
    workers: InProcessWorkers,
) -> PluginJobsHandle {
    start_with(
        db,
        SchedulerConfig {
            max_concurrent_runs,
            ..SchedulerConfig::default()
        },
        workers,
    )
}

fn start_with(
    db: &DatabaseConnection,
    config: SchedulerConfig,
    workers: impl WorkerManager,
) -> PluginJobsHandle {
    PluginJobs::builder(db.clone())
        .workers(workers)
        .config(config)
        .start()
        .expect("valid settings")
}

/// When each worker call came, as lateness behind its slot: the moment the worker is called,
/// after the run was marked running (the database's `started_at` is the mark).
#[derive(Debug, Clone, Default)]
struct CallLog(std::sync::Arc<std::sync::Mutex<Calls>>);

/// Each call's slot and its lateness in milliseconds.
type Calls = Vec<(DateTime<Utc>, i64)>;

impl CallLog {
    /// No-op workers for `keys` that note each scheduled call.
    fn workers(&self, keys: impl Iterator<Item = String>) -> InProcessWorkers {
        let workers = InProcessWorkers::new();
        for key in keys {
            let log = self.clone();
            workers.register(PLUGIN, &key, move |ctx| {
                let now = Utc::now();
                if ctx.trigger == "schedule"
                    && let Ok(slot) = DateTime::parse_from_rfc3339(&ctx.scheduled_at)
                {
                    let slot = slot.with_timezone(&Utc);
                    let late = (now - slot).num_milliseconds();
                    log.0.lock().expect("call log").push((slot, late));
                }
                std::future::ready(Ok(()))
            });
        }
        workers
    }

    /// The lateness of the calls for the slots from `first` to `last`, sorted.
    fn lateness(&self, first: DateTime<Utc>, last: DateTime<Utc>) -> Vec<i64> {
        let mut late: Vec<i64> = self
            .0
            .lock()
            .expect("call log")
            .iter()
            .filter(|(slot, _)| *slot >= first && *slot <= last)
            .map(|(_, late)| *late)
            .collect();
        late.sort_unstable();
        late
    }
}

/// The `q` quantile of sorted values (0 when there are none).
fn percentile(sorted: &[i64], q: f64) -> i64 {
    let at = ((sorted.len().max(1) - 1) as f64 * q).round() as usize;
    sorted.get(at).copied().unwrap_or(0)
}

/// Workers that answer every call at once with one log line naming the run, as a worker that
/// logs does: every outcome then carries values of its own.
#[derive(Debug, Clone, Copy)]
struct LoggingWorkers;

impl WorkerManager for LoggingWorkers {
    fn is_running(&self, _plugin_id: &str) -> bool {
        true
    }

    fn run_job(&self, _plugin_id: &str, job: RunJob, _timeout: Duration) -> RunCall {
        let line = json!([{"level": "info", "message": format!("run {} done", job.run_id)}]);
        RunCall::new(std::future::ready(RunOutcome::from_answer(
            Ok(Value::Null),
            Some(line),
        )))
    }

    fn cancel_job(&self, _plugin_id: &str, _cancel: CancelJob) {}

    fn restart(&self, _plugin_id: &str) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

fn noop_workers(keys: impl Iterator<Item = String>) -> InProcessWorkers {
    let workers = InProcessWorkers::new();
    for key in keys {
        workers.register(PLUGIN, &key, |_ctx| std::future::ready(Ok(())));
    }
    workers
}

/// `hot` jobs every second for `secs`, beside `cold` jobs that are not due; with `history`, each
/// hot job starts with that many finished runs, the prune runs every 5 s, and 10 long manual
/// runs are heartbeated.
async fn steady(
    db: &DatabaseConnection,
    hot: usize,
    cold: usize,
    secs: u64,
    history: usize,
) -> Value {
    const SLOW: usize = 10;
    let keys = (0..hot).map(|n| format!("hot-{n}"));
    let called = CallLog::default();
    let workers = called.workers(keys.clone());
    let slow_keys: Vec<String> = (0..SLOW).map(|n| format!("slow-{n}")).collect();
    let hold = Duration::from_secs(secs + 10);
    for key in &slow_keys {
        workers.register(PLUGIN, key, move |_ctx| async move {
            actix_rt::time::sleep(hold).await;
            Ok(())
        });
    }
    let mut config = SchedulerConfig {
        max_concurrent_runs: hot.max(10) + SLOW,
        ..SchedulerConfig::default()
    };
    if history > 0 {
        config.maintenance_interval = Duration::from_secs(5);
    }
    if let Ok(text) = std::env::var("PLUGIN_JOBS_CLAIM_LOOKAHEAD") {
        // The server's own setting, read the way `serve` reads it.
        config.claim_lookahead =
            plugin_jobs::config::parse_duration(&text).expect("PLUGIN_JOBS_CLAIM_LOOKAHEAD");
    }
    let jobs = start_with(db, config, workers);
    let ticks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    jobs.subscribe(
        TickRecorder(std::sync::Arc::clone(&ticks))
            .start()
            .recipient(),
    );
    let mut declarations: Vec<JobDeclaration> = keys
        .map(|k| JobDeclaration::new(k, "* * * * * *"))
        .collect();
    if history > 0 {
        declarations.extend(slow_keys.iter().map(|k| JobDeclaration::new(k.clone(), "")));
    }
    let registered = jobs.register(PLUGIN, declarations).await.expect("register");
    if history > 0 {
        insert_history(db, &registered, history).await;
    }
    if cold > 0 {
        let far = Utc::now() + TimeDelta::days(365);
        insert_jobs(
            db,
            (0..cold).map(|n| job_row(format!("cold-{n}"), "0 0 1 1 *", Some(far))),
        )
        .await;
    }
    let second = TimeDelta::seconds(1);
    // Measure whole seconds that start after everything is set up.
    let first = Utc::now().duration_trunc(second).expect("trunc") + second * 2;
    let last = first + second * i32::try_from(secs).unwrap_or(30) - second;
    let until = last + second;
    while Utc::now() < first {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let (cpu_before, _) = usage();
    ticks.lock().expect("ticks").clear();
    if history > 0 {
        for key in &slow_keys {
            jobs.trigger(
                plugin_jobs::store::JobRef::key(PLUGIN, key.clone()),
                RunTrigger::Manual,
            )
            .await
            .expect("trigger a long run");
        }
    }
    let mut heartbeat_age_max = 0_i64;
    let mut rss_max_mb = 0_u64;
    while Utc::now() < until {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
        rss_max_mb = rss_max_mb.max(current_rss_mb());
        if history > 0 {
            let beats: Vec<Option<DateTime<Utc>>> = PluginJobRun::find()
                .select_only()
                .column(PluginJobRunColumn::HeartbeatAt)
                .filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Manual))
                .filter(PluginJobRunColumn::Status.eq(RunStatus::Running))
                .into_tuple()
                .all(db)
                .await
                .expect("heartbeats");
            let now = Utc::now();
            for beat in beats.into_iter().flatten() {
                heartbeat_age_max = heartbeat_age_max.max((now - beat).num_milliseconds());
            }
        }
    }
    let window_cpu = usage().0 - cpu_before;
    let (claim_ms, claim_rows, plan) = claim_probe(db).await;
    jobs.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    let runs: Vec<PluginJobRunModel> = PluginJobRun::find()
        .filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Schedule))
        .filter(PluginJobRunColumn::ScheduledFor.gte(first))
        .filter(PluginJobRunColumn::ScheduledFor.lte(last))
        .all(db)
        .await
        .expect("runs");
    let expected = hot * usize::try_from(secs).unwrap_or(0);
    let mut seen: HashMap<(Uuid, DateTime<Utc>), usize> = HashMap::new();
    for run in &runs {
        *seen.entry((run.job_id, run.scheduled_for)).or_default() += 1;
    }
    let duplicated: usize = seen.values().map(|n| n - 1).sum();
    let mut line = lateness(&runs);
    let runs_seen = runs.len();
    let mut per_second: BTreeMap<DateTime<Utc>, Vec<PluginJobRunModel>> = BTreeMap::new();
    for run in runs {
        per_second.entry(run.scheduled_for).or_default().push(run);
    }
    let worst_second = per_second
        .values()
        .filter_map(|runs| lateness(runs)["lateness_p99_ms"].as_i64())
        .max()
        .unwrap_or(0);
    line["worst_second_lateness_p99_ms"] = json!(worst_second);
    let called_late = called.lateness(first, last);
    line["called_p50_ms"] = json!(percentile(&called_late, 0.5));
    line["called_p99_ms"] = json!(percentile(&called_late, 0.99));
    line["called_max_ms"] = json!(called_late.last().copied().unwrap_or(0));
    line["jobs_in_table"] = json!(hot + cold);
    line["due_per_s"] = json!(hot);
    line["seconds"] = json!(secs);
    line["slots_expected"] = json!(expected);
    line["runs_seen"] = json!(runs_seen);
    line["missed"] = json!(expected.saturating_sub(seen.len()));
    line["duplicated"] = json!(duplicated);
    line["runs_per_s"] = json!((runs_seen as f64 / secs as f64).round());
    let mut tick_ms: Vec<f64> = ticks
        .lock()
        .expect("ticks")
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    tick_ms.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        let at = ((tick_ms.len().max(1) - 1) as f64 * q).round() as usize;
        tick_ms.get(at).copied().map_or(0.0, round3)
    };
    line["ticks"] = json!(tick_ms.len());
    line["tick_p50_ms"] = json!(pick(0.5));
    line["tick_p99_ms"] = json!(pick(0.99));
    line["tick_max_ms"] = json!(pick(1.0));
    line["claim_query_ms"] = json!(claim_ms);
    line["claim_query_rows"] = json!(claim_rows);
    line["cpu_s"] = json!(round3(window_cpu));
    line["claim_plan"] = json!(plan);
    line["rss_window_max_mb"] = json!(rss_max_mb);
    if history > 0 {
        line["history_runs_per_job"] = json!(history);
        line["heartbeat_age_max_ms"] = json!(heartbeat_age_max);
        line["half_lease_ms"] = json!(SchedulerConfig::default().run_lease.as_millis() / 2);
    }
    line
}

/// `per_job` finished runs of each scheduled job, an hour old and older, 1,000 rows per
/// statement (set-up, not measured).
async fn insert_history(db: &DatabaseConnection, jobs: &[PluginJobModel], per_job: usize) {
    let base = Utc::now() - TimeDelta::hours(1);
    let mut batch = Vec::with_capacity(1_000);
    for job in jobs.iter().filter(|job| !job.schedule.is_empty()) {
        for n in 0..per_job {
            let at = base - TimeDelta::seconds(i64::try_from(n).unwrap_or(0));
            batch.push(PluginJobRunActiveModel {
                id: Set(Uuid::now_v7()),
                job_id: Set(job.id),
                plugin_id: Set(PLUGIN.to_owned()),
                trigger: Set(RunTrigger::Schedule),
                status: Set(RunStatus::Succeeded),
                scheduled_for: Set(at),
                instance_id: Set(Some("history".to_owned())),
                heartbeat_at: Set(Some(at)),
                duration_ms: Set(Some(1)),
                error: Set(None),
                logs: Set(json!([])),
                started_at: Set(Some(at)),
                finished_at: Set(Some(at)),
                created_at: Set(at),
                traceparent: Set(None),
                attempt: Set(1),
                retry_of: Set(None),
                payload: Set(None),
            });
            if batch.len() == 1_000 {
                PluginJobRun::insert_many(std::mem::take(&mut batch))
                    .exec_without_returning(db)
                    .await
                    .expect("insert history");
            }
        }
    }
    if !batch.is_empty() {
        PluginJobRun::insert_many(batch)
            .exec_without_returning(db)
            .await
            .expect("insert history");
    }
    db.execute_unprepared("ANALYZE plugin_job_runs")
        .await
        .expect("analyze");
}

/// `declarations` all due at the same instant; runs until every one is recorded.
async fn burst(
    db: &DatabaseConnection,
    declarations: Vec<JobDeclaration>,
    workers: impl WorkerManager,
    concurrency: usize,
) -> Value {
    let jobs_n = declarations.len();
    let jobs = start_with(
        db,
        SchedulerConfig {
            max_concurrent_runs: concurrency,
            ..SchedulerConfig::default()
        },
        workers,
    );
    // Registered with their schedules (set-up, not measured), then all made due at once.
    jobs.register(PLUGIN, declarations).await.expect("register");
    let finished = std::sync::Arc::new(tokio::sync::watch::channel(0usize).0);
    jobs.subscribe(
        FinishCounter(std::sync::Arc::clone(&finished))
            .start()
            .recipient(),
    );
    let (cpu_before, rss_before_window) = make_due_now(db).await;
    let rss_window = RssSampler::start();
    let (elapsed, window_cpu) = wait_all_recorded(db, &finished, jobs_n, cpu_before).await;
    let rss_window_max = rss_window.stop();
    jobs.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    let runs = PluginJobRun::find().all(db).await.expect("runs");
    let mut line = lateness(&runs);
    line["rss_before_window_mb"] = json!(rss_before_window);
    line["rss_window_max_mb"] = json!(rss_window_max);
    line["jobs"] = json!(jobs_n);
    line["max_concurrent_runs"] = json!(concurrency);
    line["runs_seen"] = json!(runs.len());
    line["seconds"] = json!(round3(elapsed));
    line["runs_per_s"] = json!((jobs_n as f64 / elapsed).round());
    line["cpu_s"] = json!(round3(window_cpu));
    line
}

/// `burst` on `instances` instances at once: each its own actix System on a thread of its own,
/// with its own connection pool, scheduler and budget of `concurrency`, all on the same
/// database. Reports the aggregate rate and how many runs each instance made.
async fn burst_instances(db: &Db, jobs_n: usize, concurrency: usize, instances: usize) -> Value {
    let keys: Vec<String> = (0..jobs_n).map(|n| format!("burst-{n}")).collect();
    let finished = std::sync::Arc::new(tokio::sync::watch::channel(0usize).0);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut threads = Vec::new();
    for _ in 0..instances {
        let (url, keys) = (db.url.clone(), keys.clone());
        let (finished, mut stopped, ready) = (
            std::sync::Arc::clone(&finished),
            stopped.clone(),
            ready_tx.clone(),
        );
        threads.push(std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let pool = plugin_jobs::db::connect(&url).await.expect("connect");
                let jobs = start(&pool, concurrency, noop_workers(keys.iter().cloned()));
                let declarations = keys
                    .iter()
                    .map(|k| JobDeclaration::new(k.clone(), "0 0 1 1 *"))
                    .collect();
                jobs.register(PLUGIN, declarations).await.expect("register");
                jobs.subscribe(FinishCounter(finished).start().recipient());
                ready.send(()).expect("ready");
                let _ = stopped.wait_for(|stop| *stop).await;
                jobs.shutdown(Duration::from_secs(10))
                    .await
                    .expect("shutdown");
            });
        }));
    }
    for _ in 0..instances {
        ready_rx.recv().await.expect("an instance started");
    }
    let (cpu_before, _) = make_due_now(&db.db).await;
    let (elapsed, window_cpu) = wait_all_recorded(&db.db, &finished, jobs_n, cpu_before).await;
    stop.send_replace(true);
    for thread in threads {
        thread.join().expect("instance thread");
    }
    let runs = PluginJobRun::find().all(&db.db).await.expect("runs");
    let slots: HashSet<(Uuid, DateTime<Utc>)> =
        runs.iter().map(|r| (r.job_id, r.scheduled_for)).collect();
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        *per_instance
            .entry(run.instance_id.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let mut line = lateness(&runs);
    line["jobs"] = json!(jobs_n);
    line["instances"] = json!(instances);
    line["max_concurrent_runs"] = json!(concurrency);
    line["runs_seen"] = json!(runs.len());
    line["duplicated"] = json!(runs.len() - slots.len());
    line["missed"] = json!(jobs_n.saturating_sub(slots.len()));
    line["runs_per_instance"] = json!(per_instance.into_values().collect::<Vec<_>>());
    line["seconds"] = json!(round3(elapsed));
    line["runs_per_s"] = json!((jobs_n as f64 / elapsed).round());
    line["cpu_s"] = json!(round3(window_cpu));
    line
}

/// Makes every job due a few whole seconds ahead and waits for it; answers the CPU time and
/// resident memory at that moment, where a burst's measured window starts.
///
/// The pointers move behind the scheduler's back, so it learns of them at its next tick (every
/// second), which arms the wake for the slot when the slot is less than a tick away. The slot
/// is therefore set far enough ahead that the update (1.8–2.6 s for 100,000 rows on PostgreSQL
/// on this machine) commits more than a tick plus the claim lookahead before it: with a closer
/// slot, the first claim waited for the tick after the slot, up to a second of the window spent
/// on the set-up (0.86 s of one PostgreSQL burst of 19 s).
async fn make_due_now(db: &DatabaseConnection) -> (f64, u64) {
    let due = Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .expect("trunc")
        + TimeDelta::seconds(5);
    PluginJob::update_many()
        .col_expr(PluginJobColumn::NextRunAt, Expr::value(due))
        .exec(db)
        .await
        .expect("make due");
    let margin = due - Utc::now();
    let needed =
        SchedulerConfig::default().tick_interval + SchedulerConfig::default().claim_lookahead;
    if margin.to_std().map_or(true, |margin| margin < needed) {
        eprintln!(
            "warning: the set-up committed {} ms before the slot; the first claim may wait for a tick",
            margin.num_milliseconds()
        );
    }
    while Utc::now() < due {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    (usage().0, current_rss_mb())
}

/// Waits until `jobs_n` runs are recorded (succeeded or failed); answers the seconds since the
/// call and the CPU seconds since `cpu_before`. Run events say when the last outcome is on its
/// way; the table then confirms it, so the measurement does not load the database with a count
/// every few milliseconds.
async fn wait_all_recorded(
    db: &DatabaseConnection,
    finished: &tokio::sync::watch::Sender<usize>,
    jobs_n: usize,
    cpu_before: f64,
) -> (f64, f64) {
    let started = Instant::now();
    let mut finished = finished.subscribe();
    finished
        .wait_for(|done| *done >= jobs_n)
        .await
        .expect("finish counter");
    loop {
        let done = PluginJobRun::find()
            .filter(PluginJobRunColumn::Status.is_not_in(RunStatus::LIVE))
            .count(db)
            .await
            .expect("count");
        if done >= jobs_n as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "burst did not finish"
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
    (started.elapsed().as_secs_f64(), usage().0 - cpu_before)
}

/// Collects tick durations (a tick is a claim plus spawning its runs) from the run events.
struct TickRecorder(std::sync::Arc<std::sync::Mutex<Vec<Duration>>>);

impl Actor for TickRecorder {
    type Context = Context<Self>;
}

impl Handler<RunEvent> for TickRecorder {
    type Result = ();

    fn handle(&mut self, event: RunEvent, _ctx: &mut Self::Context) {
        if let RunEvent::TickFinished { duration } = event
            && let Ok(mut ticks) = self.0.lock()
        {
            ticks.push(duration);
        }
    }
}

/// Counts finished runs from the run events.
struct FinishCounter(std::sync::Arc<tokio::sync::watch::Sender<usize>>);

impl Actor for FinishCounter {
    type Context = Context<Self>;
}

impl Handler<RunEvent> for FinishCounter {
    type Result = ();

    fn handle(&mut self, event: RunEvent, _ctx: &mut Self::Context) {
        if matches!(event, RunEvent::RunFinished { .. }) {
            self.0.send_modify(|n| *n += 1);
        }
    }
}

/// Lateness `started_at − scheduled_for` in milliseconds: p50, p99, max.
fn lateness(runs: &[PluginJobRunModel]) -> Value {
    let mut late: Vec<i64> = runs
        .iter()
        .filter_map(|r| {
            r.started_at
                .map(|s| (s - r.scheduled_for).num_milliseconds())
        })
        .collect();
    late.sort_unstable();
    json!({
        "lateness_min_ms": late.first().copied().unwrap_or(0),
        "lateness_p50_ms": percentile(&late, 0.5),
        "lateness_p99_ms": percentile(&late, 0.99),
        "lateness_max_ms": late.last().copied().unwrap_or(0),
    })
}

/// Times the claim's due query (one per plugin) and shows its plan, to check it uses the index.
async fn claim_probe(db: &DatabaseConnection) -> (f64, usize, String) {
    let now = Utc::now();
    let started = Instant::now();
    let due_rows = PluginJob::find()
        .filter(PluginJobColumn::Status.eq(JobStatus::Active))
        .filter(PluginJobColumn::NextRunAt.lte(now))
        .filter(PluginJobColumn::PluginId.eq(PLUGIN))
        .order_by_asc(PluginJobColumn::NextRunAt)
        .limit(1_000)
        .all(db)
        .await
        .expect("due query")
        .len();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let sqlite = matches!(db.get_database_backend(), sea_orm::DatabaseBackend::Sqlite);
    let at = if sqlite {
        format!("'{}'", now.format("%Y-%m-%d %H:%M:%S%.3f"))
    } else {
        format!("'{}'::timestamptz", now.to_rfc3339())
    };
    let query = format!(
        "SELECT * FROM plugin_jobs WHERE status = 'active' AND next_run_at <= {at} \
         AND plugin_id = '{PLUGIN}' ORDER BY next_run_at LIMIT 1000"
    );
    let explain = if sqlite {
        format!("EXPLAIN QUERY PLAN {query}")
    } else {
        format!("EXPLAIN {query}")
    };
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            explain,
        ))
        .await
        .unwrap_or_default();
    let plan: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            row.try_get::<String>("", if sqlite { "detail" } else { "QUERY PLAN" })
                .ok()
        })
        .collect();
    (round3(ms), due_rows, plan.join(" | "))
}

/// The process's resident set now (MiB), from `/proc/self/status`; 0 where there is none.
/// `peak_rss_mb` includes the set-up; this, sampled in the measured window, is the steady state.
/// Samples the resident memory every 100 ms until stopped; answers the largest sample.
struct RssSampler {
    max: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: actix_rt::task::JoinHandle<()>,
}

impl RssSampler {
    fn start() -> Self {
        let max = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(current_rss_mb()));
        let seen = std::sync::Arc::clone(&max);
        let task = actix_rt::spawn(async move {
            loop {
                seen.fetch_max(current_rss_mb(), std::sync::atomic::Ordering::Relaxed);
                actix_rt::time::sleep(Duration::from_millis(100)).await;
            }
        });
        Self { max, task }
    }

    fn stop(self) -> u64 {
        self.task.abort();
        self.max
            .fetch_max(current_rss_mb(), std::sync::atomic::Ordering::Relaxed)
            .max(current_rss_mb())
    }
}

/// How long the `api` scenario waits after settling the seed before its first window.
const API_SETTLE: Duration = Duration::from_secs(5);

/// Lets the database take in a large seed: a WAL checkpoint on SQLite, `VACUUM ANALYZE` of the
/// two tables on PostgreSQL.
async fn settle(db: &DatabaseConnection) {
    let statements: &[&str] =
        if matches!(db.get_database_backend(), sea_orm::DatabaseBackend::Sqlite) {
            &["PRAGMA wal_checkpoint(TRUNCATE)"]
        } else {
            &[
                "VACUUM ANALYZE plugin_jobs",
                "VACUUM ANALYZE plugin_job_runs",
            ]
        };
    for statement in statements {
        db.execute_unprepared(statement).await.expect("settle");
    }
}

fn current_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

// ---------------------------------------------------------------------------------------------
// api: the listings at 100,000 jobs and 1,000,000 runs, beside `steady`

/// Clients of each listing, and the pause each takes between two requests (so the load is a
/// steady stream of requests, not a saturation test of two cores).
const API_CLIENTS_PER_LISTING: usize = 2;
const API_PACE: Duration = Duration::from_millis(50);
/// Plugins the cold jobs are spread over.
const API_PLUGINS: usize = 10;

/// `hot` every-second jobs among `jobs` jobs and `runs` stored runs: `secs` measured alone,
/// then `secs` more while clients page through `/api/jobs` and `/api/runs` over HTTP.
async fn api_load(
    db: &DatabaseConnection,
    hot: usize,
    jobs_n: usize,
    runs_n: usize,
    secs: u64,
) -> Value {
    let keys = (0..hot).map(|n| format!("hot-{n}"));
    let workers = noop_workers(keys.clone());
    let config = SchedulerConfig {
        max_concurrent_runs: hot.max(10),
        ..SchedulerConfig::default()
    };
    let jobs = start_with(db, config, workers);
    let declarations = keys
        .map(|k| JobDeclaration::new(k, "* * * * * *"))
        .collect();
    jobs.register(PLUGIN, declarations).await.expect("register");
    let seeding = Instant::now();
    let far = Utc::now() + TimeDelta::days(365);
    insert_jobs(
        db,
        (0..jobs_n.saturating_sub(hot)).map(|n| {
            let mut row = job_row(format!("cold-{n:06}"), "0 0 1 1 *", Some(far));
            row.plugin_id = Set(format!("cold-{}", n % API_PLUGINS));
            row
        }),
    )
    .await;
    seed_runs(db, runs_n).await;
    let seed_s = seeding.elapsed().as_secs_f64();
    let plans = listing_plans(db).await;

    let server = {
        let handle = jobs.clone();
        actix_web::HttpServer::new(move || {
            actix_web::App::new().configure(plugin_jobs::http::configure(handle.clone(), None))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))
        .expect("bind")
    };
    let addr = server.addrs()[0];
    let server = server.run();
    let server_handle = server.handle();
    actix_rt::spawn(server);

    // The seed leaves the database digesting it (SQLite's WAL holds every seeded page until a
    // checkpoint; PostgreSQL's autovacuum and analyze pick the new rows up): settle that first,
    // so the window without clients measures steady, not the seed.
    let settling = Instant::now();
    settle(db).await;
    actix_rt::time::sleep(API_SETTLE).await;
    let settle_s = settling.elapsed().as_secs_f64();
    let alone = window(secs).await;
    while Utc::now() < alone.until {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    let loaded = window(secs).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = format!("http://{addr}");
    let since =
        (Utc::now() - TimeDelta::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let jobs_paths = [
        "/api/jobs?limit=50".to_owned(),
        "/api/jobs?limit=50&status=active&pluginId=cold-3".to_owned(),
    ];
    let runs_paths = [
        "/api/runs?limit=50&view=summary".to_owned(),
        format!("/api/runs?limit=50&view=summary&status=failed&since={since}"),
    ];
    let mut clients = Vec::new();
    for (kind, paths) in [("jobs", &jobs_paths), ("runs", &runs_paths)] {
        for i in 0..API_CLIENTS_PER_LISTING {
            let first = format!("{base}{}", paths[i % paths.len()]);
            let stop = std::sync::Arc::clone(&stop);
            clients.push((kind, actix_rt::spawn(page_client(first, stop))));
        }
    }
    let mut rss_max_mb = 0_u64;
    while Utc::now() < loaded.until {
        actix_rt::time::sleep(Duration::from_millis(100)).await;
        rss_max_mb = rss_max_mb.max(current_rss_mb());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut latencies: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut errors = 0_usize;
    for (kind, client) in clients {
        let (ms, failed) = client.await.expect("client");
        latencies.entry(kind).or_default().extend(ms);
        errors += failed;
    }
    server_handle.stop(true).await;
    jobs.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");

    let mut line = json!({
        "jobs_in_table": jobs_n,
        "runs_in_table": runs_n,
        "due_per_s": hot,
        "seconds": secs,
        "seed_s": round3(seed_s),
        "settle_s": round3(settle_s),
        "api_clients": API_CLIENTS_PER_LISTING * 2,
        "api_pace_ms": API_PACE.as_millis(),
        "api_errors": errors,
        "rss_window_max_mb": rss_max_mb,
        "plans": plans,
    });
    for (kind, mut ms) in latencies {
        ms.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            let at = ((ms.len().max(1) - 1) as f64 * q).round() as usize;
            ms.get(at).copied().map_or(0.0, round3)
        };
        line[format!("{kind}_requests")] = json!(ms.len());
        line[format!("{kind}_p50_ms")] = json!(pick(0.5));
        line[format!("{kind}_p99_ms")] = json!(pick(0.99));
        line[format!("{kind}_max_ms")] = json!(pick(1.0));
    }
    for (name, window) in [("alone", &alone), ("with_api", &loaded)] {
        let runs: Vec<PluginJobRunModel> = PluginJobRun::find()
            .filter(PluginJobRunColumn::Trigger.eq(RunTrigger::Schedule))
            .filter(PluginJobRunColumn::PluginId.eq(PLUGIN))
            .filter(PluginJobRunColumn::ScheduledFor.gte(window.first))
            .filter(PluginJobRunColumn::ScheduledFor.lte(window.last))
            .all(db)
            .await
            .expect("runs");
        let expected = hot * usize::try_from(secs).unwrap_or(0);
        let mut seen: HashMap<(Uuid, DateTime<Utc>), usize> = HashMap::new();
        for run in &runs {
            *seen.entry((run.job_id, run.scheduled_for)).or_default() += 1;
        }
        let late = lateness(&runs);
        line[format!("{name}_lateness_p50_ms")] = late["lateness_p50_ms"].clone();
        line[format!("{name}_lateness_p99_ms")] = late["lateness_p99_ms"].clone();
        line[format!("{name}_lateness_max_ms")] = late["lateness_max_ms"].clone();
        line[format!("{name}_missed")] = json!(expected.saturating_sub(seen.len()));
        line[format!("{name}_duplicated")] = json!(seen.values().map(|n| n - 1).sum::<usize>());
    }
    let alone_p99 = line["alone_lateness_p99_ms"].as_f64().unwrap_or(0.0);
    let loaded_p99 = line["with_api_lateness_p99_ms"].as_f64().unwrap_or(0.0);
    line["lateness_p99_ratio"] = json!(round3(loaded_p99 / alone_p99.max(1.0)));
    line
}

/// A measured window of whole seconds: its first and last slot, and when it is over.
struct Window {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    until: DateTime<Utc>,
}

/// The next window of `secs` whole seconds, starting two seconds from now.
async fn window(secs: u64) -> Window {
    let second = TimeDelta::seconds(1);
    let first = Utc::now().duration_trunc(second).expect("trunc") + second * 2;
    let last = first + second * i32::try_from(secs).unwrap_or(30) - second;
    while Utc::now() < first {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    Window {
        first,
        last,
        until: last + second,
    }
}

/// Pages through a listing from `first`, following `X-Next-Cursor` (and starting over after
/// the last page), one request per `API_PACE`, until `stop`. Answers each request's latency
/// (ms, the whole body read) and how many failed.
async fn page_client(
    first: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (Vec<f64>, usize) {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut url = first.clone();
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let started = Instant::now();
        let answer = async {
            let mut response = client.get(&url).send().await.ok()?;
            let body = response.body().limit(64 << 20).await.ok()?;
            let next = response
                .headers()
                .get("x-next-cursor")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (response.status().is_success() && !body.is_empty()).then_some(next)
        }
        .await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        match answer {
            Some(Some(next)) => {
                let base = first.split("&cursor=").next().unwrap_or(&first);
                url = format!("{base}&cursor={next}");
            }
            Some(None) => url = first.clone(),
            None => {
                failed += 1;
                url = first.clone();
            }
        }
        actix_rt::time::sleep(API_PACE).await;
    }
    (latencies, failed)
}

/// `n` finished runs spread over every job (ten days of history, newest an hour old), 5 % of
/// them failed and 5 % manual, 1,000 rows per statement (set-up, not measured).
async fn seed_runs(db: &DatabaseConnection, n: usize) {
    let jobs: Vec<(Uuid, String)> = PluginJob::find()
        .select_only()
        .column(PluginJobColumn::Id)
        .column(PluginJobColumn::PluginId)
        .into_tuple()
        .all(db)
        .await
        .expect("job ids");
    let base = Utc::now() - TimeDelta::hours(1);
    let span_ms = 10 * 24 * 3_600_000_i64;
    let step = span_ms / i64::try_from(n.max(1)).unwrap_or(1);
    let mut batch = Vec::with_capacity(1_000);
    for i in 0..n {
        let (job_id, plugin_id) = &jobs[i % jobs.len()];
        let at = base - TimeDelta::milliseconds(step * i64::try_from(i).unwrap_or(0));
        batch.push(PluginJobRunActiveModel {
            id: Set(Uuid::now_v7()),
            job_id: Set(*job_id),
            plugin_id: Set(plugin_id.clone()),
            trigger: Set(if i % 20 == 7 {
                RunTrigger::Manual
            } else {
                RunTrigger::Schedule
            }),
            status: Set(if i % 20 == 3 {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            }),
            scheduled_for: Set(at),
            instance_id: Set(Some("seed".to_owned())),
            heartbeat_at: Set(Some(at)),
            duration_ms: Set(Some(1)),
            error: Set((i % 20 == 3).then(|| "seeded failure".to_owned())),
            logs: Set(json!([])),
            started_at: Set(Some(at)),
            finished_at: Set(Some(at)),
            created_at: Set(at),
            traceparent: Set(None),
            attempt: Set(1),
            retry_of: Set(None),
            payload: Set(None),
        });
        if batch.len() == 1_000 {
            PluginJobRun::insert_many(std::mem::take(&mut batch))
                .exec_without_returning(db)
                .await
                .expect("insert runs");
        }
    }
    if !batch.is_empty() {
        PluginJobRun::insert_many(batch)
            .exec_without_returning(db)
            .await
            .expect("insert runs");
    }
    db.execute_unprepared("ANALYZE plugin_job_runs")
        .await
        .expect("analyze");
    db.execute_unprepared("ANALYZE plugin_jobs")
        .await
        .expect("analyze");
}

/// The plans of the listing queries as the store writes them (literal values in place of the
/// bound ones), by name.
async fn listing_plans(db: &DatabaseConnection) -> Value {
    let sqlite = matches!(db.get_database_backend(), sea_orm::DatabaseBackend::Sqlite);
    let at = if sqlite {
        format!("'{}'", Utc::now().format("%Y-%m-%d %H:%M:%S%.3f"))
    } else {
        format!("'{}'::timestamptz", Utc::now().to_rfc3339())
    };
    let id = if sqlite {
        "x'01900000000070008000000000000000'".to_owned()
    } else {
        "'01900000-0000-7000-8000-000000000000'::uuid".to_owned()
    };
    let last_run = "(SELECT r.id FROM plugin_job_runs r WHERE r.job_id = plugin_jobs.id \
                    ORDER BY r.created_at DESC, r.id DESC LIMIT 1)";
    let queries = [
        (
            "jobs_page",
            "SELECT * FROM plugin_jobs WHERE plugin_id >= 'cold-3' AND (plugin_id > 'cold-3' \
             OR job_key > 'cold-050000') ORDER BY plugin_id, job_key LIMIT 51"
                .to_owned(),
        ),
        (
            "jobs_by_status_and_plugin",
            "SELECT * FROM plugin_jobs WHERE plugin_id = 'cold-3' AND status = 'active' \
             ORDER BY plugin_id, job_key LIMIT 51"
                .to_owned(),
        ),
        (
            "last_runs_of_a_page",
            format!(
                "SELECT * FROM plugin_job_runs WHERE id IN (SELECT {last_run} FROM plugin_jobs \
                 WHERE status = 'active' ORDER BY plugin_id, job_key LIMIT 50)"
            ),
        ),
        (
            "runs_page",
            format!(
                "SELECT * FROM plugin_job_runs WHERE created_at <= {at} AND (created_at < {at} \
                 OR id < {id}) ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
        ),
        (
            "runs_by_status_since",
            format!(
                "SELECT * FROM plugin_job_runs WHERE status = 'failed' AND created_at >= {at} \
                 ORDER BY created_at DESC, id DESC LIMIT 51"
            ),
        ),
        (
            "runs_by_plugin",
            "SELECT * FROM plugin_job_runs WHERE plugin_id = 'cold-3' \
             ORDER BY created_at DESC, id DESC LIMIT 51"
                .to_owned(),
        ),
        (
            "runs_by_trigger",
            "SELECT * FROM plugin_job_runs WHERE trigger = 'manual' \
             ORDER BY created_at DESC, id DESC LIMIT 51"
                .to_owned(),
        ),
    ];
    let mut plans = serde_json::Map::new();
    for (name, query) in queries {
        let explain = if sqlite {
            format!("EXPLAIN QUERY PLAN {query}")
        } else {
            format!("EXPLAIN {query}")
        };
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                explain,
            ))
            .await
            .unwrap_or_default();
        let plan: Vec<String> = rows
            .iter()
            .filter_map(|row| {
                row.try_get::<String>("", if sqlite { "detail" } else { "QUERY PLAN" })
                    .ok()
            })
            .map(|line| line.trim().to_owned())
            .collect();
        plans.insert(name.to_owned(), json!(plan.join(" | ")));
    }
    Value::Object(plans)
}
