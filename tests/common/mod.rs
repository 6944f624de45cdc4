//! Shared test harness: a migrated database (a SQLite file in a temporary folder, or a fresh
//! PostgreSQL schema when `DATABASE_URL` is set), a started `StoreActor`, row factories with
//! every field defaulted, and `wait_until` for conditions with a deadline.

#![allow(dead_code)]

pub mod postgres;
pub mod server;

use std::future::Future;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use entity::prelude::*;
use plugin_jobs::store::StoreActor;
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait};
use uuid::Uuid;

/// A migrated database that lives as long as this value.
pub struct TestDb {
    pub db: DatabaseConnection,
    /// Connects to the same database (and schema) again, for a second store or process.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// The server's URL and this database's schema, dropped with this value.
    schema: Option<(String, String)>,
}

impl Drop for TestDb {
    /// Drops the test's PostgreSQL schema, so a server that runs the suite again and again does
    /// not keep every test's tables. `Drop` cannot await: a thread of its own runs the statement
    /// on a runtime of its own. A lock still held by a process of the test makes it give up after
    /// the lock timeout; the schema is then left behind, as before.
    fn drop(&mut self) {
        let Some((base, schema)) = self.schema.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let admin = plugin_jobs::db::connect(&base).await.ok()?;
                let sql =
                    format!("SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE");
                let dropped = admin.execute_unprepared(&sql).await.ok();
                admin.close().await.ok();
                dropped
            })
        });
        let _ = dropped.join();
    }
}

impl TestDb {
    /// A fresh, migrated database: PostgreSQL when `DATABASE_URL` is set, else SQLite.
    pub async fn new() -> Self {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Self::postgres(&url).await,
            _ => Self::sqlite().await,
        }
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
        let db = plugin_jobs::db::connect_and_migrate(&url)
            .await
            .expect("migrate SQLite");
        Self {
            db,
            url,
            _dir: Some(dir),
            schema: None,
        }
    }

    /// Each test gets its own schema, so tests run in parallel on one server.
    async fn postgres(base: &str) -> Self {
        let schema = format!("t_{}", Uuid::new_v4().simple());
        let admin = plugin_jobs::db::connect(base)
            .await
            .expect("connect PostgreSQL");
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create schema");
        admin.close().await.ok();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options[search_path]={schema}");
        let db = plugin_jobs::db::connect_and_migrate(&url)
            .await
            .expect("migrate PostgreSQL");
        Self {
            db,
            url,
            _dir: None,
            schema: Some((base.to_owned(), schema)),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.db.get_database_backend() == sea_orm::DbBackend::Postgres
    }

    /// A `StoreActor` over this database, started in the current actix System.
    pub fn store(&self) -> Addr<StoreActor> {
        StoreActor::new(self.db.clone()).start()
    }

    /// A `StoreActor` whose statements starting with `prefix` (`UPDATE "plugin_jobs"`, say) are
    /// kept, bind values and all: to count how many statements a write costs, not only what it
    /// wrote, or to ask the database how it plans what the store really sent.
    pub fn recording_store(
        &self,
        prefix: &'static str,
    ) -> (
        Addr<StoreActor>,
        std::sync::Arc<std::sync::Mutex<Vec<sea_orm::Statement>>>,
    ) {
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut db = self.db.clone();
        db.set_metric_callback({
            let sent = std::sync::Arc::clone(&sent);
            move |info| {
                if info.statement.sql.starts_with(prefix) {
                    sent.lock()
                        .expect("statements")
                        .push(info.statement.clone());
                }
            }
        });
        (StoreActor::new(db).start(), sent)
    }

    /// How the database plans each statement, as sent (bind values and all): one text per
    /// statement, its plan lines joined (PostgreSQL's `EXPLAIN`, SQLite's `EXPLAIN QUERY PLAN`).
    pub async fn plans(&self, statements: Vec<sea_orm::Statement>) -> Vec<String> {
        let postgres = self.is_postgres();
        let mut plans = Vec::new();
        for statement in statements {
            let explain = if postgres {
                "EXPLAIN"
            } else {
                "EXPLAIN QUERY PLAN"
            };
            let lines: Vec<String> = self
                .db
                .query_all_raw(sea_orm::Statement {
                    sql: format!("{explain} {}", statement.sql),
                    ..statement
                })
                .await
                .expect("explain")
                .iter()
                .map(|row| {
                    if postgres {
                        row.try_get_by_index::<String>(0)
                    } else {
                        row.try_get::<String>("", "detail")
                    }
                    .expect("plan line")
                })
                .collect();
            plans.push(lines.join("\n"));
        }
        plans
    }

    /// Fails when PostgreSQL plans any of the statements with `index`.
    pub async fn assert_plans_avoid(&self, statements: Vec<sea_orm::Statement>, index: &str) {
        for plan in self.plans(statements).await {
            assert!(!plan.contains(index), "a statement reads {index}:\n{plan}");
        }
    }

    /// Keeps PostgreSQL from ever analyzing `table` during the test: its statistics stay what a
    /// table that grew faster than autovacuum has.
    pub async fn never_analyze(&self, table: &str) {
        self.db
            .execute_unprepared(&format!(
                "ALTER TABLE {table} SET (autovacuum_enabled = false)"
            ))
            .await
            .expect("keep the table unanalyzed");
    }

    /// A `StoreActor` over a second, independent connection pool to the same database.
    pub async fn second_store(&self) -> Addr<StoreActor> {
        let db = plugin_jobs::db::connect(&self.url)
            .await
            .expect("second connection");
        StoreActor::new(db).start()
    }

    pub async fn job(&self, id: Uuid) -> PluginJobModel {
        PluginJob::find_by_id(id)
            .one(&self.db)
            .await
            .expect("read job")
            .expect("job exists")
    }

    pub async fn run(&self, id: Uuid) -> PluginJobRunModel {
        PluginJobRun::find_by_id(id)
            .one(&self.db)
            .await
            .expect("read run")
            .expect("run exists")
    }

    pub async fn all_runs(&self) -> Vec<PluginJobRunModel> {
        PluginJobRun::find().all(&self.db).await.expect("read runs")
    }

    pub async fn insert_job(&self, job: PluginJobModel) -> PluginJobModel {
        PluginJob::insert(PluginJobActiveModel::from(job.clone()))
            .exec_without_returning(&self.db)
            .await
            .expect("insert job");
        job
    }

    pub async fn insert_run(
        &self,
        run: PluginJobRunModel,
    ) -> Result<PluginJobRunModel, sea_orm::DbErr> {
        PluginJobRun::insert(PluginJobRunActiveModel::from(run.clone()))
            .exec_without_returning(&self.db)
            .await?;
        Ok(run)
    }

    /// Inserts many runs as they are, a few hundred per statement (set-up, not the store's path).
    pub async fn insert_runs(&self, runs: &[PluginJobRunModel]) {
        for chunk in runs.chunks(500) {
            PluginJobRun::insert_many(chunk.iter().cloned().map(PluginJobRunActiveModel::from))
                .exec_without_returning(&self.db)
                .await
                .expect("insert runs");
        }
    }

    /// Inserts many jobs as they are, a few hundred per statement (set-up, not the store's path).
    pub async fn insert_jobs(&self, jobs: &[PluginJobModel]) {
        for chunk in jobs.chunks(500) {
            PluginJob::insert_many(chunk.iter().cloned().map(PluginJobActiveModel::from))
                .exec_without_returning(&self.db)
                .await
                .expect("insert jobs");
        }
    }

    /// Waits until a session of this database is blocked by the backend `pid` (PostgreSQL).
    pub async fn wait_blocked_by(&self, pid: i32, what: &str) {
        let sql = format!(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE {pid} = ANY(pg_blocking_pids(pid))"
        );
        wait_until(what, Duration::from_secs(10), || {
            let (db, sql) = (self.db.clone(), sql.clone());
            async move {
                let row = db
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Postgres,
                        sql,
                    ))
                    .await
                    .ok()
                    .flatten();
                row.and_then(|row| row.try_get::<i64>("", "n").ok()) == Some(1)
            }
        })
        .await;
    }

    /// Holds the whole jobs table in a transaction, so the store's next write and the
    /// scheduler's next claim wait for it (on PostgreSQL every statement on the table does): a
    /// database that stops answering. Released by `rollback`.
    pub async fn hold_jobs_table(&self) -> sea_orm::DatabaseTransaction {
        use sea_orm::TransactionTrait;

        let txn = self.db.begin().await.expect("begin");
        let hold = match txn.get_database_backend() {
            sea_orm::DbBackend::Postgres => "LOCK TABLE plugin_jobs IN ACCESS EXCLUSIVE MODE",
            _ => "UPDATE plugin_jobs SET updated_at = updated_at",
        };
        txn.execute_unprepared(hold).await.expect("hold the table");
        txn
    }

    /// Holds a job's row `FOR UPDATE` in a transaction on a connection of its own (PostgreSQL),
    /// as another instance's claim, or a batch of outcomes stamping the job, holds it.
    pub async fn hold_job_row(&self, job_id: Uuid) -> HeldRow {
        use sea_orm::TransactionTrait;

        let conn = plugin_jobs::db::connect(&self.url).await.expect("connect");
        let txn = conn.begin().await.expect("begin");
        let pid: i32 = txn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_backend_pid() AS pid",
            ))
            .await
            .expect("pid")
            .expect("row")
            .try_get("", "pid")
            .expect("pid column");
        txn.execute_unprepared(&format!(
            "SELECT id FROM plugin_jobs WHERE id = '{job_id}' FOR UPDATE"
        ))
        .await
        .expect("lock the job row");
        HeldRow {
            _conn: conn,
            txn,
            pid,
        }
    }
}

/// A row held by [`TestDb::hold_job_row`] until [`HeldRow::release`].
pub struct HeldRow {
    _conn: DatabaseConnection,
    txn: sea_orm::DatabaseTransaction,
    /// The holding backend's process id, to find the sessions it blocks.
    pub pid: i32,
}

impl HeldRow {
    pub async fn release(self) {
        self.txn.rollback().await.expect("release the row");
    }

    /// Runs `sql` in the holding transaction and commits it.
    pub async fn commit_with(self, sql: &str) {
        self.txn.execute_unprepared(sql).await.expect("write");
        self.txn.commit().await.expect("commit");
    }
}

/// Parses an RFC 3339 instant; a bare `HH:MM` means that time on 2024-01-15 (UTC).
pub fn at(text: &str) -> DateTime<Utc> {
    let full = if text.len() == 5 {
        format!("2024-01-15T{text}:00Z")
    } else {
        text.to_owned()
    };
    DateTime::parse_from_rfc3339(&full)
        .unwrap_or_else(|err| panic!("bad instant {full:?}: {err}"))
        .with_timezone(&Utc)
}

/// A job row with every field defaulted: active, every 15 minutes, due at 10:30 on 2024-01-15.
pub fn job_row(plugin_id: &str, job_key: &str) -> PluginJobModel {
    PluginJobModel {
        id: Uuid::now_v7(),
        plugin_id: plugin_id.to_owned(),
        job_key: job_key.to_owned(),
        display_name: job_key.to_owned(),
        description: String::new(),
        schedule: "*/15 * * * *".to_owned(),
        timezone: "UTC".to_owned(),
        status: JobStatus::Active,
        timeout_ms: None,
        misfire: MisfirePolicy::FireOnce,
        last_error: None,
        blocked_until: None,
        last_run_at: None,
        next_run_at: Some(at("10:30")),
        pause_after_failures: None,
        consecutive_failures: 0,
        unrecovered_failures: 0,
        pruned_through: None,
        paused_at: None,
        failing: false,
        last_success_at: None,
        paused_reason: None,
        created_at: at("2024-01-15T00:00:00Z"),
        updated_at: at("2024-01-15T00:00:00Z"),
        retry_max_attempts: 1,
        retry_backoff_ms: None,
        retry_max_backoff_ms: None,
        origin: JobOrigin::Manifest,
        payload: None,
        overlap: OverlapPolicy::Skip,
        jitter_ms: None,
        misfire_grace_ms: None,
    }
}

/// A run row of `job` with every field defaulted: a queued manual run created at 10:00.
pub fn run_row(job: &PluginJobModel) -> PluginJobRunModel {
    PluginJobRunModel {
        id: Uuid::now_v7(),
        job_id: job.id,
        plugin_id: job.plugin_id.clone(),
        trigger: RunTrigger::Manual,
        status: RunStatus::Queued,
        scheduled_for: at("10:00"),
        instance_id: Some("test-instance".to_owned()),
        heartbeat_at: Some(at("10:00")),
        duration_ms: None,
        error: None,
        logs: serde_json::json!([]),
        started_at: None,
        finished_at: None,
        created_at: at("10:00"),
        traceparent: None,
        attempt: 1,
        retry_of: None,
        payload: None,
    }
}

/// Polls `condition` until it holds or `deadline` passes; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(what: &str, deadline: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, deadline, || {
        let holds = condition();
        async move {
            if holds.await {
                Ok(())
            } else {
                Err(String::new())
            }
        }
    })
    .await;
}

/// Polls `probe` until it answers `Ok(value)` and answers the value; once `deadline` passes,
/// panics with `what` and the last `Err` the probe gave (what it saw instead).
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = std::time::Instant::now();
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting until {what}\n{seen}");
        }
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Scheduler harness

use std::sync::{Arc, Mutex};

use plugin_jobs::clock::ManualClock;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::scheduler::Tick;
use plugin_jobs::store::JobDeclaration;
use plugin_jobs::worker::{
    CancelJob, InProcessWorkers, JobContext, RunCall, RunJob, WorkerManager,
};
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use serde_json::Value;

/// One `runJob` call a worker received.
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub plugin_id: String,
    pub method: String,
    /// The request as the worker protocol carries it (`{"job": {…}}`).
    pub params: Value,
    pub job: RunJob,
    pub timeout: Duration,
}

/// In-process workers that also record every call with its timeout.
#[derive(Debug, Clone, Default)]
pub struct RecordingWorkers {
    pub inner: InProcessWorkers,
    pub calls: Arc<Mutex<Vec<RecordedCall>>>,
}

impl RecordingWorkers {
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.calls.lock().expect("calls lock").clone()
    }
}

impl WorkerManager for RecordingWorkers {
    fn is_running(&self, plugin_id: &str) -> bool {
        self.inner.is_running(plugin_id)
    }

    fn run_job(&self, plugin_id: &str, job: RunJob, timeout: Duration) -> RunCall {
        self.calls.lock().expect("calls lock").push(RecordedCall {
            plugin_id: plugin_id.to_owned(),
            method: plugin_jobs::worker::rpc::RUN_JOB.to_owned(),
            params: job.to_params(),
            job: job.clone(),
            timeout,
        });
        self.inner.run_job(plugin_id, job, timeout)
    }

    fn cancel_job(&self, plugin_id: &str, cancel: CancelJob) {
        self.inner.cancel_job(plugin_id, cancel);
    }

    fn cancels_on_drop(&self) -> bool {
        self.inner.cancels_on_drop()
    }

    fn restart(&self, plugin_id: &str) -> futures_util::future::BoxFuture<'static, ()> {
        self.inner.restart(plugin_id)
    }
}

/// A started plugin-jobs on a fresh database, with a manual clock and no timers: tests send
/// `Tick` themselves.
pub struct Harness {
    pub t: TestDb,
    pub clock: ManualClock,
    pub workers: RecordingWorkers,
    pub jobs: PluginJobsHandle,
}

impl Harness {
    pub async fn new(config: SchedulerConfig) -> Self {
        Self::with_clock(config, at("10:00")).await
    }

    pub async fn with_clock(config: SchedulerConfig, now: DateTime<Utc>) -> Self {
        let t = TestDb::new().await;
        let clock = ManualClock::new(now);
        let workers = RecordingWorkers::default();
        let jobs = PluginJobs::builder(t.db.clone())
            .workers(workers.clone())
            .clock(clock.clone())
            .config(config)
            .instance_id("test-instance")
            .manual_ticks()
            .start()
            .expect("valid settings");
        Self {
            t,
            clock,
            workers,
            jobs,
        }
    }

    /// Sends one `Tick` and waits until the scheduler has handled it.
    pub async fn tick(&self) {
        self.jobs.scheduler.send(Tick).await.expect("tick");
    }

    /// Sets the clock to `now`, then ticks.
    pub async fn tick_at(&self, now: DateTime<Utc>) {
        self.clock.set(now);
        self.tick().await;
    }

    /// Waits until the run reaches `status`.
    pub async fn wait_for_run(&self, run_id: Uuid, status: RunStatus) -> PluginJobRunModel {
        wait_until(
            &format!("run {run_id} is {status}"),
            Duration::from_secs(10),
            || async { self.t.run(run_id).await.status == status },
        )
        .await;
        self.t.run(run_id).await
    }

    /// Waits until the scheduler has no live runs.
    pub async fn wait_idle(&self) {
        wait_until("no run is active", Duration::from_secs(10), || async {
            self.jobs
                .diagnostics()
                .await
                .expect("diagnostics")
                .active_job_count
                == 0
        })
        .await;
    }
}

/// A plugin being set up on a [`Harness`]: its jobs, each with the handler that serves it.
/// `h.plugin("alpha").job(JobDeclaration::new("report", "0 * * * *"), ok_handler).register()`.
pub struct PluginSetup<'h> {
    harness: &'h Harness,
    plugin_id: String,
    jobs: Vec<JobDeclaration>,
}

impl Harness {
    /// Starts setting up `plugin_id`: declare its jobs with [`PluginSetup::job`], then
    /// [`PluginSetup::register`] them.
    pub fn plugin(&self, plugin_id: &str) -> PluginSetup<'_> {
        PluginSetup {
            harness: self,
            plugin_id: plugin_id.to_owned(),
            jobs: Vec::new(),
        }
    }
}

impl PluginSetup<'_> {
    /// Declares `job`, served by `handler` (which also marks the plugin's worker running).
    pub fn job<F, Fut>(mut self, job: JobDeclaration, handler: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.harness
            .workers
            .inner
            .register(&self.plugin_id, &job.job_key, handler);
        self.jobs.push(job);
        self
    }

    /// Registers the declared jobs with the scheduler; answers their rows in declaration order.
    pub async fn register(self) -> Vec<PluginJobModel> {
        self.harness
            .jobs
            .register(self.plugin_id, self.jobs)
            .await
            .expect("register")
    }
}

/// A handler that succeeds at once.
pub fn ok_handler(_ctx: JobContext) -> std::future::Ready<Result<(), String>> {
    std::future::ready(Ok(()))
}

/// A handler that fails every run with `message`: a worker whose job fails.
pub fn failing_handler(
    message: &str,
) -> impl Fn(JobContext) -> std::future::Ready<Result<(), String>> + Send + Sync + 'static + use<> {
    let message = message.to_owned();
    move |_ctx| std::future::ready(Err(message.clone()))
}

/// A handler whose worker crashes mid-run: the plugin's worker stops taking calls (as a process
/// that exited would) and the run fails with an exit message naming the plugin.
pub fn crashing_handler(
    workers: &InProcessWorkers,
    plugin_id: &str,
) -> impl Fn(JobContext) -> std::future::Ready<Result<(), String>> + Send + Sync + 'static + use<> {
    let (workers, plugin_id) = (workers.clone(), plugin_id.to_owned());
    move |_ctx| {
        workers.set_running(&plugin_id, false);
        std::future::ready(Err(format!(
            "the worker of plugin {plugin_id} exited (signal: 9 (SIGKILL))"
        )))
    }
}

/// A gate that holds handlers until opened: slow and hanging workers.
#[derive(Debug, Clone)]
pub struct Gate {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl Gate {
    pub fn open(&self) {
        self.tx.send_replace(true);
    }

    /// Resolves once the gate is open.
    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        let mut rx = self.tx.subscribe();
        async move {
            let _ = rx.wait_for(|open| *open).await;
        }
    }

    /// A job handler that succeeds once the gate opens (a slow or hanging worker).
    pub fn handler(
        &self,
    ) -> impl Fn(JobContext) -> futures_util::future::BoxFuture<'static, Result<(), String>>
    + Send
    + Sync
    + 'static {
        let gate = self.clone();
        move |_ctx| {
            let wait = gate.wait();
            Box::pin(async move {
                wait.await;
                Ok(())
            })
        }
    }
}
