//! Durability: shutdown with runs in flight (SQLite and PostgreSQL), three leaderless instances
//! on one PostgreSQL, and a PostgreSQL outage while runs are in flight. The PostgreSQL tests run
//! when `DATABASE_URL` is set (`.ci/run` sets it) and say so when they skip.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use common::postgres::Cluster;
use common::{Gate, Harness, TestDb, wait_until};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::events::RunEvent;
use plugin_jobs::store::{JobDeclaration, JobRef};
use plugin_jobs::worker::{InProcessWorkers, JobContext};
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

async fn live_runs(db: &sea_orm::DatabaseConnection) -> Vec<PluginJobRunModel> {
    PluginJobRun::find()
        .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
        .all(db)
        .await
        .expect("query live runs")
}

// Shutdown ----------------------------------------------------------------------------------

#[actix_rt::test]
async fn shutdown_lets_runs_finish_within_the_grace_and_cancels_the_rest() {
    let h = Harness::new(SchedulerConfig {
        max_concurrent_runs: 2,
        ..SchedulerConfig::default()
    })
    .await;
    let gate = Gate::default();
    h.plugin("p")
        .job(JobDeclaration::new("finishes", ""), gate.handler())
        .job(JobDeclaration::new("hangs", ""), |_ctx| {
            std::future::pending()
        })
        .job(JobDeclaration::new("waits", ""), common::ok_handler)
        .register()
        .await;
    let mut runs = HashMap::new();
    for job in ["finishes", "hangs", "waits"] {
        let run = h
            .jobs
            .trigger(JobRef::key("p", job), RunTrigger::Manual)
            .await
            .expect("trigger");
        runs.insert(job, run.run_id);
    }
    h.wait_for_run(runs["finishes"], RunStatus::Running).await;
    h.wait_for_run(runs["hangs"], RunStatus::Running).await;
    assert_eq!(h.t.run(runs["waits"]).await.status, RunStatus::Queued);

    let jobs = h.jobs.clone();
    let shutdown = actix_rt::spawn(async move { jobs.shutdown(Duration::from_millis(800)).await });
    wait_until("the shutdown began", Duration::from_secs(10), || async {
        !h.jobs.diagnostics().await.expect("diagnostics").running
    })
    .await;
    gate.open();
    let report = shutdown.await.expect("join").expect("shutdown");
    assert_eq!((report.finished, report.cancelled), (1, 2));

    assert_eq!(h.t.run(runs["finishes"]).await.status, RunStatus::Succeeded);
    let hung = h.t.run(runs["hangs"]).await;
    assert_eq!(hung.status, RunStatus::Cancelled);
    assert_eq!(
        hung.error.as_deref(),
        Some("Scheduler shutting down: run did not finish within the 800 ms shutdown grace")
    );
    let waited = h.t.run(runs["waits"]).await;
    assert_eq!(
        (waited.status, waited.error.as_deref()),
        (
            RunStatus::Cancelled,
            Some("Scheduler shutting down before the run started")
        )
    );
    assert!(live_runs(&h.t.db).await.is_empty(), "nothing is left live");
    let cancel_sent = h
        .workers
        .inner
        .notifications()
        .iter()
        .any(|(_, method, params)| {
            method == "cancelJob" && params["runId"] == runs["hangs"].to_string()
        });
    assert!(cancel_sent, "the hung run's worker was told to cancel");
}

// Three instances on one PostgreSQL -----------------------------------------------------------

fn postgres_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => Some(url),
        _ => {
            eprintln!("skipped: set DATABASE_URL=postgres://… to run this PostgreSQL test");
            None
        }
    }
}

/// Skipped slots `(job id, slot)` logged by every instance.
type Skips = Arc<Mutex<Vec<(Uuid, DateTime<Utc>)>>>;

/// Records skipped slots of one instance.
struct SkipRecorder(Skips);

impl Actor for SkipRecorder {
    type Context = Context<Self>;
}

impl Handler<RunEvent> for SkipRecorder {
    type Result = ();

    fn handle(&mut self, event: RunEvent, _ctx: &mut Self::Context) {
        // The fleet's jobs fire every second: a record of several slots stands for `count`
        // seconds from `slot`.
        if let RunEvent::SlotSkipped {
            job_id,
            slot,
            count,
            ..
        } = event
        {
            let mut skips = self.0.lock().expect("skips");
            for n in 0..count {
                skips.push((job_id, slot + chrono::TimeDelta::seconds(i64::from(n))));
            }
        }
    }
}

/// What the workers of every instance saw: runs live per job right now, and overlaps.
#[derive(Default)]
struct WorkerSide {
    live: Mutex<HashMap<String, usize>>,
    overlaps: AtomicUsize,
    calls: AtomicUsize,
}

fn fleet_handler(
    side: Arc<WorkerSide>,
) -> impl Fn(JobContext) -> futures_util::future::BoxFuture<'static, Result<(), String>>
+ Send
+ Sync
+ 'static {
    move |ctx| {
        let side = Arc::clone(&side);
        Box::pin(async move {
            side.calls.fetch_add(1, Ordering::Relaxed);
            {
                let mut live = side.live.lock().expect("live");
                let count = live.entry(ctx.job_key.clone()).or_default();
                *count += 1;
                if *count > 1 {
                    side.overlaps.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Runs take a little time, so a second dispatch of the same job would overlap.
            let pause = Uuid::new_v4().as_u128() % 40;
            actix_rt::time::sleep(Duration::from_millis(pause as u64)).await;
            *side
                .live
                .lock()
                .expect("live")
                .entry(ctx.job_key)
                .or_default() -= 1;
            Ok(())
        })
    }
}

const FLEET_JOBS: usize = 50;

/// One instance of the fleet: its id, and when it was registered and began to stop.
struct Instance {
    id: String,
    registered_at: DateTime<Utc>,
    stopping_at: DateTime<Utc>,
}

fn fleet_instance(
    url: String,
    side: Arc<WorkerSide>,
    skips: Skips,
    run_for: Duration,
) -> std::thread::JoinHandle<Instance> {
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let db = plugin_jobs::db::connect(&url).await.expect("connect");
            let workers = InProcessWorkers::new();
            for n in 0..FLEET_JOBS {
                workers.register(
                    "fleet",
                    &format!("job-{n}"),
                    fleet_handler(Arc::clone(&side)),
                );
            }
            let jobs = PluginJobs::builder(db)
                .workers(workers)
                .config(SchedulerConfig {
                    max_concurrent_runs: 100,
                    heartbeat_interval: Duration::from_secs(1),
                    maintenance_interval: Duration::from_secs(2),
                    ..SchedulerConfig::default()
                })
                .start()
                .expect("valid settings");
            jobs.subscribe(SkipRecorder(skips).start().recipient());
            let declarations = (0..FLEET_JOBS)
                .map(|n| JobDeclaration::new(format!("job-{n}"), "* * * * * *"))
                .collect();
            jobs.register("fleet", declarations)
                .await
                .expect("register");
            let registered_at = Utc::now();
            // The scenario's length, not a synchronisation: the instances run side by side.
            actix_rt::time::sleep(run_for).await;
            let stopping_at = Utc::now();
            jobs.shutdown(Duration::from_secs(5))
                .await
                .expect("shutdown");
            Instance {
                id: jobs.instance_id.clone(),
                registered_at,
                stopping_at,
            }
        })
    })
}

#[actix_rt::test]
async fn three_instances_on_one_postgresql_run_every_slot_exactly_once_without_overlap() {
    if postgres_url().is_none() {
        return;
    }
    let t = TestDb::new().await;
    let side = Arc::new(WorkerSide::default());
    let skips = Arc::new(Mutex::new(Vec::new()));
    let run_for = Duration::from_secs(20);
    let instances: Vec<_> = (0..3)
        .map(|_| {
            fleet_instance(
                t.url.clone(),
                Arc::clone(&side),
                Arc::clone(&skips),
                run_for,
            )
        })
        .collect();
    let instances: Vec<Instance> = instances
        .into_iter()
        .map(|instance| instance.join().expect("instance thread"))
        .collect();

    assert_eq!(
        side.overlaps.load(Ordering::Relaxed),
        0,
        "no job ran twice at once"
    );
    assert!(live_runs(&t.db).await.is_empty(), "no run is left live");
    let runs = PluginJobRun::find().all(&t.db).await.expect("runs");
    let jobs = PluginJob::find().all(&t.db).await.expect("jobs");
    assert_eq!(
        jobs.len(),
        FLEET_JOBS,
        "three registrations, one set of jobs"
    );

    // Every whole second while all three instances ran must have exactly one run or one
    // logged skip.
    let second = TimeDelta::seconds(1);
    let all_registered = instances
        .iter()
        .map(|i| i.registered_at)
        .max()
        .expect("three");
    let first_stopping = instances
        .iter()
        .map(|i| i.stopping_at)
        .min()
        .expect("three");
    let first_slot = all_registered.duration_trunc(second).expect("trunc") + second;
    let last_slot = first_stopping.duration_trunc(second).expect("trunc") - second;
    let skips = skips.lock().expect("skips").clone();
    let mut by_instance: HashMap<String, usize> = HashMap::new();
    let (mut expected, mut ran, mut skipped) = (0, 0, 0);
    for job in &jobs {
        let mut slots: HashMap<DateTime<Utc>, usize> = HashMap::new();
        for run in runs.iter().filter(|r| r.job_id == job.id) {
            assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
            assert_eq!(run.trigger, RunTrigger::Schedule);
            *slots.entry(run.scheduled_for).or_default() += 1;
            *by_instance
                .entry(run.instance_id.clone().unwrap_or_default())
                .or_default() += 1;
        }
        let duplicated: Vec<_> = slots.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            duplicated.is_empty(),
            "duplicated slots of {}: {duplicated:?}",
            job.job_key
        );
        let skipped_slots: BTreeSet<DateTime<Utc>> = skips
            .iter()
            .filter(|(job_id, _)| *job_id == job.id)
            .map(|(_, slot)| *slot)
            .collect();
        let mut slot = first_slot;
        while slot <= last_slot {
            expected += 1;
            let has_run = slots.contains_key(&slot);
            let was_skipped = skipped_slots.contains(&slot);
            assert!(
                has_run != was_skipped,
                "slot {slot} of {}: run {has_run}, logged skip {was_skipped}",
                job.job_key
            );
            ran += usize::from(has_run);
            skipped += usize::from(was_skipped);
            slot += second;
        }
    }
    eprintln!(
        "3 instances, {FLEET_JOBS} jobs, {expected} slots checked: {ran} ran, {skipped} skipped; \
         runs per instance {by_instance:?}; {} worker calls",
        side.calls.load(Ordering::Relaxed)
    );
    assert!(
        ran > expected * 9 / 10,
        "most slots ran: {ran} of {expected}"
    );
    let sharing = instances
        .iter()
        .filter(|i| by_instance.get(&i.id).is_some_and(|n| *n > 0))
        .count();
    assert!(sharing >= 2, "the work is shared: {by_instance:?}");
}

// A PostgreSQL outage ----------------------------------------------------------------------------

#[derive(Default)]
struct Finished(Mutex<Vec<(Uuid, Instant)>>);

#[actix_rt::test]
async fn a_postgresql_outage_loses_no_outcome_and_ticks_resume() {
    if postgres_url().is_none() {
        return;
    }
    let Some(cluster) = Cluster::start() else {
        panic!("DATABASE_URL is set but a private PostgreSQL cluster could not be started");
    };
    let db = plugin_jobs::db::connect_and_migrate(&cluster.url())
        .await
        .expect("migrate");
    let finished = Arc::new(Finished::default());
    let workers = InProcessWorkers::new();
    for job in ["quick", "slow"] {
        let finished = Arc::clone(&finished);
        let length = if job == "slow" { 2500 } else { 10 };
        workers.register("p", job, move |ctx: JobContext| {
            let finished = Arc::clone(&finished);
            async move {
                actix_rt::time::sleep(Duration::from_millis(length)).await;
                let run_id: Uuid = ctx.run_id.parse().map_err(|_| "bad run id".to_owned())?;
                finished
                    .0
                    .lock()
                    .expect("finished")
                    .push((run_id, Instant::now()));
                Ok(())
            }
        });
    }
    let jobs: PluginJobsHandle = PluginJobs::builder(db.clone())
        .workers(workers)
        .config(SchedulerConfig {
            heartbeat_interval: Duration::from_secs(1),
            maintenance_interval: Duration::from_secs(1),
            ..SchedulerConfig::default()
        })
        .start()
        .expect("valid settings");
    let declarations = vec![
        JobDeclaration::new("quick", "* * * * * *"),
        JobDeclaration::new("slow", "* * * * * *"),
    ];
    jobs.register("p", declarations).await.expect("register");
    wait_until(
        "a slow run is in flight",
        Duration::from_secs(20),
        || async {
            live_runs(&db)
                .await
                .iter()
                .any(|r| r.status == RunStatus::Running)
        },
    )
    .await;

    let outage_start = Instant::now();
    assert!(cluster.down(), "PostgreSQL stopped");
    // The outage itself: about five seconds in which slots come due and runs finish.
    actix_rt::time::sleep(Duration::from_secs(5)).await;
    assert!(cluster.up(), "PostgreSQL started again");
    let outage_end = Instant::now();
    let ticks_after_outage = jobs
        .diagnostics()
        .await
        .expect("scheduler answers")
        .tick_count;

    let back = Utc::now();
    wait_until(
        "new slots run after the outage",
        Duration::from_secs(60),
        || async {
            PluginJobRun::find()
                .filter(PluginJobRunColumn::ScheduledFor.gt(back))
                .filter(PluginJobRunColumn::Status.eq(RunStatus::Succeeded))
                .all(&db)
                .await
                .is_ok_and(|runs| !runs.is_empty())
        },
    )
    .await;
    let diagnostics = jobs.diagnostics().await.expect("scheduler answers");
    assert!(diagnostics.tick_count > ticks_after_outage, "ticks resumed");

    let report = jobs
        .shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    assert_eq!(report.cancelled, 0, "every run finished within the grace");
    let finished = finished.0.lock().expect("finished").clone();
    let during: Vec<Uuid> = finished
        .iter()
        .filter(|(_, at)| *at > outage_start && *at < outage_end)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        !during.is_empty(),
        "a run finished while PostgreSQL was down"
    );
    for (run_id, _) in &finished {
        let run = PluginJobRun::find_by_id(*run_id)
            .one(&db)
            .await
            .expect("query")
            .expect("the run row");
        assert_eq!(
            run.status,
            RunStatus::Succeeded,
            "outcome of {run_id} recorded"
        );
    }
    assert!(live_runs(&db).await.is_empty(), "no run is left live");
    eprintln!(
        "outage of {:?}: {} run(s) finished during it, {} in all, all recorded",
        outage_end - outage_start,
        during.len(),
        finished.len()
    );
}
