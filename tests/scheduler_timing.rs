//! Scheduler behaviours that need the real clock and timers: the one-shot wake, timeouts with
//! `cancelJob` and the job block, and graceful shutdown. Every wait is a condition with a
//! deadline; no test asserts on how fast something was.

mod common;

use std::time::Duration;

use common::{Gate, RecordingWorkers, TestDb, ok_handler, wait_until};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::store::{JobDeclaration, JobRef};
use plugin_jobs::{PluginJobs, PluginJobsHandle};

fn start(t: &TestDb, workers: &RecordingWorkers, config: SchedulerConfig) -> PluginJobsHandle {
    PluginJobs::builder(t.db.clone())
        .workers(workers.clone())
        .config(config)
        .instance_id("timing")
        .start()
        .expect("valid settings")
}

fn key(job: &str) -> JobRef {
    JobRef::key("alpha", job)
}

/// A scheduler with a 60 s tick and one every-second job (`alpha/every-second`): within a few
/// seconds only its wakes can start runs. Answers the handle and the job's id.
async fn every_second_with_a_slow_tick(
    t: &TestDb,
    workers: &RecordingWorkers,
) -> (PluginJobsHandle, uuid::Uuid) {
    workers.inner.register("alpha", "every-second", ok_handler);
    let config = SchedulerConfig {
        tick_interval: Duration::from_secs(60),
        ..SchedulerConfig::default()
    };
    let jobs = start(t, workers, config);
    let declared = jobs
        .register(
            "alpha",
            vec![JobDeclaration::new("every-second", "* * * * * *")],
        )
        .await
        .expect("register");
    (jobs, declared[0].id)
}

#[actix_rt::test]
async fn the_one_shot_wake_starts_a_job_long_before_a_slow_tick() {
    let t = TestDb::new().await;
    let workers = RecordingWorkers::default();
    let (jobs, _) = every_second_with_a_slow_tick(&t, &workers).await;
    // With a 60 s tick only the wake armed for the next slot can start runs within 10 s.
    wait_until("two runs succeeded", Duration::from_secs(10), || async {
        t.all_runs()
            .await
            .iter()
            .filter(|r| r.status == RunStatus::Succeeded)
            .count()
            >= 2
    })
    .await;
    let d = jobs.diagnostics().await.expect("diagnostics");
    assert!(d.tick_count >= 2, "woken ticks are counted: {d:?}");
    jobs.shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
}

#[actix_rt::test]
async fn on_postgres_a_slot_whose_row_was_held_at_its_claim_starts_soon_after_not_at_the_tick() {
    let t = TestDb::new().await;
    if !t.is_postgres() {
        eprintln!("a SQLite claim never skips a row; nothing to check");
        return;
    }
    let workers = RecordingWorkers::default();
    let (jobs, job_id) = every_second_with_a_slow_tick(&t, &workers).await;
    wait_until("a first run succeeded", Duration::from_secs(10), || async {
        t.all_runs()
            .await
            .iter()
            .any(|r| r.status == RunStatus::Succeeded)
    })
    .await;

    // Another transaction holds the job's row (as another instance's batch of outcomes does
    // while it stamps `last_success_at`) until its slot is due and a claim has skipped it.
    let holder = t.hold_job_row(job_id).await;
    let held_slot = t.job(job_id).await.next_run_at.expect("next slot");
    let ticks = jobs.diagnostics().await.expect("diagnostics").tick_count;
    // Half a second past the slot, the claim woken for it has run (and skipped the row).
    let past = held_slot + chrono::TimeDelta::milliseconds(500);
    wait_until(
        "a claim ran after the held slot came due",
        Duration::from_secs(10),
        || async {
            chrono::Utc::now() > past
                && jobs.diagnostics().await.expect("diagnostics").tick_count > ticks
        },
    )
    .await;
    assert_eq!(
        t.job(job_id).await.next_run_at,
        Some(held_slot),
        "the held row was not claimed"
    );
    holder.release().await;

    // With a 60 s tick and no wake armed for a slot already due, only the claim that follows
    // a contended one starts the held slot within 10 s.
    wait_until(
        "the held slot ran after the release",
        Duration::from_secs(10),
        || async {
            t.all_runs().await.iter().any(|r| {
                r.job_id == job_id
                    && r.scheduled_for >= held_slot
                    && r.status == RunStatus::Succeeded
            })
        },
    )
    .await;
    jobs.shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
}

#[actix_rt::test]
async fn a_timed_out_run_fails_at_once_and_the_job_stays_blocked_until_the_worker_answers() {
    let t = TestDb::new().await;
    let workers = RecordingWorkers::default();
    let gate = Gate::default();
    workers.inner.register("alpha", "hang", gate.handler());
    let config = SchedulerConfig {
        cancel_grace: Duration::from_secs(30),
        ..SchedulerConfig::default()
    };
    let jobs = start(&t, &workers, config);
    let mut decl = JobDeclaration::new("hang", "");
    decl.timeout_ms = Some(200);
    let declared = jobs.register("alpha", vec![decl]).await.expect("register");
    let job_id = declared[0].id;
    let first = jobs
        .trigger(key("hang"), RunTrigger::Manual)
        .await
        .expect("trigger");
    wait_until("the run timed out", Duration::from_secs(10), || async {
        t.run(first.run_id).await.status == RunStatus::Failed
    })
    .await;
    let run = t.run(first.run_id).await;
    assert_eq!(run.error.as_deref(), Some("timed out after 200 ms"));
    let cancel = workers
        .inner
        .notifications()
        .into_iter()
        .find(|(_, method, params)| {
            method == "cancelJob" && params["runId"] == first.run_id.to_string()
        });
    assert!(cancel.is_some(), "the worker got cancelJob");
    wait_until("the job is blocked", Duration::from_secs(5), || async {
        t.job(job_id).await.blocked_until.is_some()
    })
    .await;
    let err = jobs
        .trigger(key("hang"), RunTrigger::Manual)
        .await
        .expect_err("no second run while the worker may still run the first");
    assert!(err.to_string().contains("already running"), "{err}");
    assert_eq!(t.all_runs().await.len(), 1);

    gate.open();
    wait_until("the job is unblocked", Duration::from_secs(10), || async {
        t.job(job_id).await.blocked_until.is_none()
            && jobs.diagnostics().await.expect("d").active_job_count == 0
    })
    .await;
    assert_eq!(
        t.run(first.run_id).await.status,
        RunStatus::Failed,
        "the late answer changes nothing"
    );
    let second = jobs
        .trigger(key("hang"), RunTrigger::Manual)
        .await
        .expect("runs again");
    wait_until(
        "the second run succeeded",
        Duration::from_secs(10),
        || async { t.run(second.run_id).await.status == RunStatus::Succeeded },
    )
    .await;
    assert_eq!(
        workers.inner.restarts("alpha"),
        0,
        "an answering worker is not restarted"
    );
}

#[actix_rt::test]
async fn a_timed_out_call_that_never_answers_restarts_the_worker_after_the_grace() {
    let t = TestDb::new().await;
    let workers = RecordingWorkers::default();
    let gate = Gate::default();
    workers.inner.register("alpha", "stuck", gate.handler());
    let config = SchedulerConfig {
        cancel_grace: Duration::from_millis(300),
        ..SchedulerConfig::default()
    };
    let jobs = start(&t, &workers, config);
    let mut decl = JobDeclaration::new("stuck", "");
    decl.timeout_ms = Some(100);
    let declared = jobs.register("alpha", vec![decl]).await.expect("register");
    let run = jobs
        .trigger(key("stuck"), RunTrigger::Manual)
        .await
        .expect("trigger");
    wait_until(
        "the worker was restarted",
        Duration::from_secs(10),
        || async { workers.inner.restarts("alpha") == 1 },
    )
    .await;
    wait_until("the job is free again", Duration::from_secs(10), || async {
        t.job(declared[0].id).await.blocked_until.is_none()
            && jobs.diagnostics().await.expect("d").active_job_count == 0
    })
    .await;
    assert_eq!(t.run(run.run_id).await.status, RunStatus::Failed);
    gate.open();
}

#[actix_rt::test]
async fn shutdown_lets_short_runs_finish_and_cancels_the_rest() {
    let t = TestDb::new().await;
    let workers = RecordingWorkers::default();
    let hang = Gate::default();
    let short = Gate::default();
    workers.inner.register("alpha", "short", short.handler());
    workers.inner.register("alpha", "long", hang.handler());
    let jobs = start(&t, &workers, SchedulerConfig::default());
    jobs.register(
        "alpha",
        vec![
            JobDeclaration::new("short", ""),
            JobDeclaration::new("long", ""),
        ],
    )
    .await
    .expect("register");
    let short_run = jobs
        .trigger(key("short"), RunTrigger::Manual)
        .await
        .expect("short");
    let long_run = jobs
        .trigger(key("long"), RunTrigger::Manual)
        .await
        .expect("long");
    for run in [short_run.run_id, long_run.run_id] {
        wait_until("both runs are running", Duration::from_secs(10), || async {
            t.run(run).await.status == RunStatus::Running
        })
        .await;
    }
    let shutdown = {
        let jobs = jobs.clone();
        actix_rt::spawn(async move { jobs.shutdown(Duration::from_millis(500)).await })
    };
    short.open();
    let report = shutdown.await.expect("join").expect("shutdown");
    assert_eq!((report.finished, report.cancelled), (1, 1));
    assert_eq!(t.run(short_run.run_id).await.status, RunStatus::Succeeded);
    let long = t.run(long_run.run_id).await;
    assert_eq!(long.status, RunStatus::Cancelled);
    assert!(
        long.error
            .as_deref()
            .is_some_and(|e| e.contains("shutting down")),
        "{long:?}"
    );
    let err = jobs
        .trigger(key("short"), RunTrigger::Manual)
        .await
        .expect_err("no new work");
    assert!(matches!(err, plugin_jobs::Error::ShuttingDown), "{err:?}");
    hang.open();
}
