//! Retries with backoff on a real database and a manual clock: a failed run is retried with
//! `trigger: retry`, its attempt and the first run's id, for the same slot, not before its
//! backoff; retries stop at `maxAttempts`; a retry that would reach the next slot is superseded;
//! a retry never overlaps a live run of its job; a cancelled run is not retried, an abandoned
//! one is; the failure streak counts slots, not attempts; and a pending retry survives a
//! restart and runs exactly once when two instances race for it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Gate, Harness, TestDb, at, run_row, wait_until};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::declaration::RetryPolicy;
use plugin_jobs::retry::{RetryPass, RetryPassReport};
use plugin_jobs::scheduler::Tick;
use plugin_jobs::store::{CompleteRun, JobDeclaration, JobRef, RescueStaleRuns};
use plugin_jobs::worker::InProcessWorkers;
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

const PLUGIN: &str = "billing";

/// `flaky`: every 15 minutes, 3 attempts, backoff 10 s up to 5 min.
fn flaky(pause_after: Option<u32>) -> JobDeclaration {
    let mut job = JobDeclaration::new("flaky", "*/15 * * * *");
    job.retry =
        Some(RetryPolicy::attempts(3).backoff(Duration::from_secs(10), Duration::from_secs(300)));
    job.pause_after_failures = pause_after;
    job
}

/// A handler that fails its first `failures` calls, then succeeds; counts every call.
fn failing_first(
    failures: usize,
    calls: Arc<AtomicUsize>,
) -> impl Fn(
    plugin_jobs::worker::JobContext,
) -> futures_util::future::BoxFuture<'static, Result<(), String>>
+ Send
+ Sync
+ 'static {
    move |_ctx| {
        let call = calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if call < failures {
                Err(format!("boom {}", call + 1))
            } else {
                Ok(())
            }
        })
    }
}

async fn harness(failures: usize, job: JobDeclaration) -> (Harness, Arc<AtomicUsize>, uuid::Uuid) {
    let h = Harness::new(SchedulerConfig::default()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    h.workers.inner.register(
        PLUGIN,
        &job.job_key,
        failing_first(failures, Arc::clone(&calls)),
    );
    let job_id = h.jobs.register(PLUGIN, vec![job]).await.expect("register")[0].id;
    (h, calls, job_id)
}

async fn pass(jobs: &PluginJobsHandle) -> RetryPassReport {
    jobs.retries
        .send(RetryPass)
        .await
        .expect("retry actor")
        .expect("retry pass")
}

async fn runs_of(t: &TestDb, job_id: uuid::Uuid) -> Vec<PluginJobRunModel> {
    PluginJobRun::find()
        .filter(PluginJobRunColumn::JobId.eq(job_id))
        .order_by_asc(PluginJobRunColumn::CreatedAt)
        .order_by_asc(PluginJobRunColumn::Attempt)
        .all(&t.db)
        .await
        .expect("runs")
}

async fn retries(t: &TestDb) -> Vec<RetryModel> {
    Retry::find()
        .order_by_asc(RetryColumn::Attempt)
        .all(&t.db)
        .await
        .expect("retries")
}

/// Waits until the job has `count` runs and none of them is live.
async fn wait_for_finished_runs(t: &TestDb, job_id: uuid::Uuid, count: usize) {
    wait_until(
        &format!("{count} finished runs"),
        Duration::from_secs(10),
        || async {
            let runs = runs_of(t, job_id).await;
            runs.len() == count && runs.iter().all(|run| !run.status.is_live())
        },
    )
    .await;
}

/// Moves the manual clock to the slot and ticks until its run is finished and the scheduler
/// has let go of it: a run's outcome is in the database a moment before the scheduler hears it
/// finished, and a retry pass in between would find the job still held and start nothing.
async fn fire_slot(h: &Harness, slot: DateTime<Utc>, job_id: uuid::Uuid, runs_after: usize) {
    h.clock.set(slot);
    h.tick().await;
    wait_for_finished_runs(&h.t, job_id, runs_after).await;
    h.wait_idle().await;
}

async fn job(t: &TestDb, job_id: uuid::Uuid) -> PluginJobModel {
    t.job(job_id).await
}

#[actix_rt::test]
async fn a_failed_run_is_retried_after_its_backoff_and_succeeds_on_the_second_attempt() {
    let (h, calls, job_id) = harness(1, flaky(None)).await;
    fire_slot(&h, at("10:15"), job_id, 1).await;
    let first = runs_of(&h.t, job_id).await.remove(0);
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(first.attempt, 1);

    let pending = retries(&h.t).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let retry = &pending[0];
    assert_eq!(retry.status, RetryStatus::Pending);
    assert_eq!(retry.attempt, 2);
    assert_eq!(retry.retry_of, first.id);
    assert_eq!(retry.failed_run_id, first.id);
    // 10 s ± 25 % after the failure (the manual clock stood at the slot).
    let wait = (retry.due_at - at("10:15")).num_milliseconds();
    assert!((7_500..=12_500).contains(&wait), "backoff {wait} ms");

    // Not a millisecond early.
    h.clock
        .set(retry.due_at - chrono::TimeDelta::milliseconds(1));
    let early = pass(&h.jobs).await;
    assert_eq!(early.started, 0, "{early:?}");
    assert_eq!(early.next_due_at, Some(retry.due_at));
    assert_eq!(runs_of(&h.t, job_id).await.len(), 1);

    h.clock.set(retry.due_at);
    let due = pass(&h.jobs).await;
    assert_eq!(due.started, 1, "{due:?}");
    wait_for_finished_runs(&h.t, job_id, 2).await;
    let second = runs_of(&h.t, job_id).await.remove(1);
    assert_eq!(second.status, RunStatus::Succeeded);
    assert_eq!(second.trigger, RunTrigger::Retry);
    assert_eq!(second.attempt, 2);
    assert_eq!(second.retry_of, Some(first.id));
    assert_eq!(
        second.scheduled_for,
        at("10:15"),
        "the retry keeps the slot"
    );
    assert_eq!(second.id, retry.id, "the retry's run takes the retry's id");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let started = retries(&h.t).await.remove(0);
    assert_eq!(started.status, RetryStatus::Started);
    assert_eq!(started.run_id, Some(second.id));

    // The worker was told which attempt this is and which run it retries.
    let run_calls: Vec<_> = h
        .workers
        .calls()
        .into_iter()
        .filter(|call| call.method == "runJob")
        .collect();
    assert_eq!(run_calls.len(), 2);
    assert_eq!(run_calls[0].params["job"]["attempt"], 1);
    assert!(run_calls[0].params["job"]["retryOf"].is_null());
    assert_eq!(run_calls[1].params["job"]["attempt"], 2);
    assert_eq!(run_calls[1].params["job"]["retryOf"], first.id.to_string());
    assert_eq!(run_calls[1].params["job"]["trigger"], "retry");

    // The slot succeeded in the end: the streak never counted the first attempt.
    wait_until(
        "the success is recorded",
        Duration::from_secs(10),
        || async { job(&h.t, job_id).await.last_success_at.is_some() },
    )
    .await;
    assert_eq!(job(&h.t, job_id).await.consecutive_failures, 0);
}

#[actix_rt::test]
async fn retries_stop_at_max_attempts_and_the_streak_counts_slots_not_attempts() {
    // Pausing after 2 failed slots: were attempts counted, the job would pause after the
    // second attempt of the first slot and its third attempt would never run.
    let (h, calls, job_id) = harness(usize::MAX, flaky(Some(2))).await;
    fire_slot(&h, at("10:15"), job_id, 1).await;
    for attempt in 2..=3 {
        let retry = retries(&h.t)
            .await
            .into_iter()
            .find(|retry| retry.status == RetryStatus::Pending)
            .expect("a pending retry");
        assert_eq!(retry.attempt, attempt);
        h.clock.set(retry.due_at);
        h.wait_idle().await;
        assert_eq!(pass(&h.jobs).await.started, 1);
        wait_for_finished_runs(&h.t, job_id, attempt as usize).await;
    }
    let runs = runs_of(&h.t, job_id).await;
    assert_eq!(
        runs.iter().map(|run| run.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(runs.iter().all(|run| run.status == RunStatus::Failed));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // No retry after the last attempt.
    assert_eq!(retries(&h.t).await.len(), 2);
    h.clock.set(at("10:20"));
    assert_eq!(pass(&h.jobs).await, RetryPassReport::default());

    wait_until("the slot counts once", Duration::from_secs(10), || async {
        job(&h.t, job_id).await.consecutive_failures == 1
    })
    .await;
    assert_eq!(job(&h.t, job_id).await.status, JobStatus::Active);

    // The second slot fails all its attempts too: now the job pauses.
    fire_slot(&h, at("10:30"), job_id, 4).await;
    for attempt in 2..=3 {
        let retry = retries(&h.t)
            .await
            .into_iter()
            .find(|retry| retry.status == RetryStatus::Pending)
            .expect("a pending retry");
        h.clock.set(retry.due_at);
        h.wait_idle().await;
        assert_eq!(pass(&h.jobs).await.started, 1);
        wait_for_finished_runs(&h.t, job_id, 3 + attempt as usize).await;
    }
    wait_until("the job pauses", Duration::from_secs(10), || async {
        job(&h.t, job_id).await.status == JobStatus::Paused
    })
    .await;
    let paused = job(&h.t, job_id).await;
    assert_eq!(paused.consecutive_failures, 2);
    let reason = paused.paused_reason.expect("a reason");
    assert!(
        reason.starts_with("paused after 2 consecutive failures; last error: boom"),
        "{reason}"
    );
}

#[actix_rt::test]
async fn a_retry_that_would_reach_the_next_slot_is_superseded() {
    // Every minute with a backoff of 2 minutes: the retry would start after the next slot.
    let mut every_minute = JobDeclaration::new("flaky", "* * * * *");
    every_minute.retry =
        Some(RetryPolicy::attempts(3).backoff(Duration::from_secs(120), Duration::from_secs(300)));
    let (h, _calls, job_id) = harness(usize::MAX, every_minute).await;
    fire_slot(&h, at("10:01"), job_id, 1).await;
    let retry = retries(&h.t).await.remove(0);
    assert_eq!(retry.status, RetryStatus::Superseded);
    let reason = retry.reason.expect("a reason");
    assert!(
        reason.contains("at or after the next slot 2024-01-15T10:02:00"),
        "{reason}"
    );
    h.clock.set(at("2024-01-15T10:01:59Z"));
    assert_eq!(pass(&h.jobs).await.started, 0);
    // Its slot has failed for good.
    wait_until("the slot counts", Duration::from_secs(10), || async {
        job(&h.t, job_id).await.consecutive_failures == 1
    })
    .await;
}

#[actix_rt::test]
async fn a_retry_still_pending_when_the_next_slot_comes_is_superseded_then() {
    let (h, _calls, job_id) = harness(usize::MAX, flaky(None)).await;
    fire_slot(&h, at("10:15"), job_id, 1).await;
    assert_eq!(retries(&h.t).await[0].status, RetryStatus::Pending);
    // This instance was away until the next slot.
    h.clock.set(at("10:30"));
    let report = pass(&h.jobs).await;
    assert_eq!(report.superseded, 1, "{report:?}");
    let retry = retries(&h.t).await.remove(0);
    assert_eq!(retry.status, RetryStatus::Superseded);
    assert!(
        retry
            .reason
            .as_deref()
            .is_some_and(|reason| reason.contains("next slot 2024-01-15T10:30:00")),
        "{retry:?}"
    );
    assert_eq!(runs_of(&h.t, job_id).await.len(), 1, "no retry run");
    wait_until("the slot counts", Duration::from_secs(10), || async {
        job(&h.t, job_id).await.consecutive_failures == 1
    })
    .await;
}

#[actix_rt::test]
async fn a_retry_waits_while_another_run_of_its_job_is_live() {
    let h = Harness::new(SchedulerConfig::default()).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Gate::default();
    // The first call fails; the second (a manual run) hangs until the gate opens; then the
    // retry succeeds.
    let handler_calls = Arc::clone(&calls);
    let hold = gate.clone();
    h.workers.inner.register(PLUGIN, "flaky", move |_ctx| {
        let call = handler_calls.fetch_add(1, Ordering::SeqCst);
        let wait = hold.wait();
        Box::pin(async move {
            match call {
                0 => Err("boom".to_owned()),
                1 => {
                    wait.await;
                    Ok(())
                }
                _ => Ok(()),
            }
        }) as futures_util::future::BoxFuture<'static, Result<(), String>>
    });
    let job_id = h
        .jobs
        .register(PLUGIN, vec![flaky(None)])
        .await
        .expect("jobs")[0]
        .id;
    fire_slot(&h, at("10:15"), job_id, 1).await;
    let retry = retries(&h.t).await.remove(0);

    let manual = h
        .jobs
        .trigger(JobRef::Id(job_id), RunTrigger::Manual)
        .await
        .expect("manual run");
    h.wait_for_run(manual.run_id, RunStatus::Running).await;
    h.clock.set(retry.due_at);
    let blocked = pass(&h.jobs).await;
    assert_eq!(blocked.waiting, 1, "{blocked:?}");
    assert_eq!(retries(&h.t).await[0].status, RetryStatus::Pending);
    assert_eq!(
        runs_of(&h.t, job_id).await.len(),
        2,
        "no retry run beside it"
    );

    gate.open();
    h.wait_for_run(manual.run_id, RunStatus::Succeeded).await;
    h.wait_idle().await;
    assert_eq!(pass(&h.jobs).await.started, 1);
    wait_for_finished_runs(&h.t, job_id, 3).await;
    let runs = runs_of(&h.t, job_id).await;
    // No two runs of the job were ever live together: each started after the previous ended.
    for pair in runs.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        assert!(
            later.started_at >= earlier.finished_at,
            "{earlier:?} overlaps {later:?}"
        );
    }
    assert_eq!(runs[2].trigger, RunTrigger::Retry);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// While a table's statistics lag behind its growth (a burst of failures, a fresh
/// installation), recording a failure must not read the status index: `status = 'failed'` beside
/// the ids made PostgreSQL AND every failed run of the table into the read of the batch's runs
/// (28 ms per batch at 100,000 failed runs).
#[actix_rt::test]
async fn on_postgres_recording_failures_reads_its_runs_by_id_before_any_analyze() {
    let t = TestDb::new().await;
    if !t.is_postgres() {
        return;
    }
    t.never_analyze("plugin_job_runs").await;
    let mut jobs = Vec::new();
    for n in 0..300 {
        let mut row = common::job_row(PLUGIN, &format!("flaky-{n}"));
        row.retry_max_attempts = 3;
        jobs.push(t.insert_job(row).await);
    }
    let history: Vec<PluginJobRunModel> = (0..20_000)
        .map(|i| PluginJobRunModel {
            status: RunStatus::Failed,
            created_at: at("09:00") - chrono::TimeDelta::seconds(i),
            ..run_row(&jobs[0])
        })
        .collect();
    let running: Vec<PluginJobRunModel> = jobs
        .iter()
        .map(|job| PluginJobRunModel {
            status: RunStatus::Running,
            started_at: Some(at("10:00")),
            ..run_row(job)
        })
        .collect();
    t.insert_runs(&history).await;
    t.insert_runs(&running).await;
    // Sent together, the failures are written in batches of many runs: a read of many ids is
    // the one PostgreSQL planned with the status index.
    let (store, sent) = t.recording_store("SELECT");
    let finished = futures_util::future::join_all(running.iter().map(|run| {
        store.send(CompleteRun {
            run_id: run.id,
            status: RunStatus::Failed,
            error: Some("boom".to_owned()),
            logs: None,
            block_until: None,
            now: at("10:01"),
        })
    }))
    .await;
    for answer in finished {
        assert!(answer.expect("store").expect("complete"));
    }
    assert_eq!(
        retries(&t).await.len(),
        300,
        "each failure asked for its retry"
    );
    let sent = sent.lock().expect("statements").clone();
    let of_runs: Vec<_> = sent
        .into_iter()
        .filter(|statement| statement.sql.contains("FROM \"plugin_job_runs\""))
        .collect();
    assert!(!of_runs.is_empty(), "the batch reads its runs");
    t.assert_plans_avoid(of_runs, "ix_plugin_job_runs_status_created_id")
        .await;
}

#[actix_rt::test]
async fn a_cancelled_run_is_not_retried_but_a_failed_or_abandoned_one_is() {
    let t = TestDb::new().await;
    let mut row = common::job_row(PLUGIN, "flaky");
    row.retry_max_attempts = 3;
    let job = t.insert_job(row).await;
    let store = t.store();
    let mut ids = Vec::new();
    for status in [RunStatus::Cancelled, RunStatus::Failed] {
        let mut run = run_row(&job);
        run.status = RunStatus::Running;
        run.started_at = Some(at("10:00"));
        let run = t.insert_run(run).await.expect("insert run");
        let finished = store
            .send(CompleteRun {
                run_id: run.id,
                status,
                error: Some("stopped".to_owned()),
                logs: None,
                block_until: None,
                now: at("10:01"),
            })
            .await
            .expect("store")
            .expect("complete");
        assert!(finished);
        ids.push(run.id);
        // One live run per job: the next one is inserted after this one finished.
    }
    let stale = {
        let mut run = run_row(&job);
        run.status = RunStatus::Running;
        run.started_at = Some(at("10:00"));
        run.heartbeat_at = Some(at("10:00"));
        t.insert_run(run).await.expect("insert run")
    };
    let rescued = store
        .send(RescueStaleRuns {
            now: at("10:05"),
            lease: Duration::from_secs(60),
            spare: Vec::new(),
        })
        .await
        .expect("store")
        .expect("rescue");
    assert_eq!(rescued.len(), 1);

    let retries = retries(&t).await;
    let asked: Vec<uuid::Uuid> = retries.iter().map(|retry| retry.failed_run_id).collect();
    assert!(!asked.contains(&ids[0]), "the cancelled run is not retried");
    assert!(asked.contains(&ids[1]), "the failed run is retried");
    assert!(asked.contains(&stale.id), "the abandoned run is retried");
    assert_eq!(retries.len(), 2);
    assert!(retries.iter().all(|retry| retry.attempt == 2));
}

/// An instance of the `billing` plugin on `db`, with the given counting handler.
fn instance(
    db: sea_orm::DatabaseConnection,
    clock: &ManualClock,
    name: &str,
    calls: &Arc<AtomicUsize>,
    failures: usize,
) -> PluginJobsHandle {
    let workers = InProcessWorkers::new();
    workers.register(PLUGIN, "flaky", failing_first(failures, Arc::clone(calls)));
    PluginJobs::builder(db)
        .workers(workers)
        .clock(clock.clone())
        .instance_id(name)
        .manual_ticks()
        .start()
        .expect("start")
}

#[actix_rt::test]
async fn a_slot_a_stop_ended_before_it_came_gets_its_late_run_after_the_restart() {
    let t = TestDb::new().await;
    let clock = ManualClock::new(at("2024-01-15T10:14:45Z"));
    let calls = Arc::new(AtomicUsize::new(0));
    // A lookahead of 30 s: the 10:15 slot is claimed at 10:14:45 and its run waits 15 s for it.
    let config = SchedulerConfig {
        tick_interval: Duration::from_secs(60),
        claim_lookahead: Duration::from_secs(30),
        ..SchedulerConfig::default()
    };
    let start = |db, name: &str| {
        let workers = InProcessWorkers::new();
        for key in ["flaky", "strict"] {
            workers.register(PLUGIN, key, failing_first(0, Arc::clone(&calls)));
        }
        PluginJobs::builder(db)
            .workers(workers)
            .clock(clock.clone())
            .config(config.clone())
            .instance_id(name)
            .manual_ticks()
            .start()
            .expect("start")
    };
    let declarations = vec![
        JobDeclaration::new("flaky", "*/15 * * * *"),
        JobDeclaration {
            misfire: MisfirePolicy::Skip,
            ..JobDeclaration::new("strict", "*/15 * * * *")
        },
    ];
    let a = start(t.db.clone(), "instance-a");
    let jobs = a
        .register(PLUGIN, declarations.clone())
        .await
        .expect("jobs");
    a.scheduler.send(Tick).await.expect("tick");
    let claimed: Vec<PluginJobRunModel> = t.all_runs().await;
    assert_eq!(claimed.len(), 2, "both 10:15 slots are claimed ahead");
    assert!(claimed.iter().all(|run| run.status == RunStatus::Queued));
    // A stop with no grace, before the slot: nothing has reached the worker.
    let report = a.shutdown(Duration::ZERO).await.expect("shutdown");
    assert_eq!(report.cancelled, 2);
    for run in &claimed {
        let run = t.run(run.id).await;
        assert_eq!(
            (run.status, run.error.as_deref()),
            (
                RunStatus::Cancelled,
                Some("Scheduler shutting down before the run started")
            )
        );
    }
    let asked = retries(&t).await;
    assert_eq!(asked.len(), 1, "the fire_once slot only: {asked:?}");
    assert_eq!(asked[0].job_id, jobs[0].id);
    assert_eq!(
        (asked[0].status, asked[0].due_at, asked[0].scheduled_for),
        (
            RetryStatus::Pending,
            at("2024-01-15T10:14:45Z"),
            at("10:15")
        )
    );

    // The restarted server carries the slot out once; the `skip` job's slot stays missed.
    let b = start(t.db.clone(), "instance-b");
    b.register(PLUGIN, declarations).await.expect("register");
    clock.set(at("2024-01-15T10:15:02Z"));
    assert_eq!(pass(&b).await.started, 1);
    wait_for_finished_runs(&t, jobs[0].id, 2).await;
    let late = runs_of(&t, jobs[0].id).await.remove(1);
    assert_eq!(
        (late.status, late.trigger, late.scheduled_for),
        (RunStatus::Succeeded, RunTrigger::Retry, at("10:15"))
    );
    assert_eq!(
        runs_of(&t, jobs[1].id).await.len(),
        1,
        "strict stays missed"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[actix_rt::test]
async fn a_pending_retry_survives_a_restart_and_runs_once_across_two_instances() {
    let t = TestDb::new().await;
    let clock = ManualClock::new(at("10:00"));
    let calls = Arc::new(AtomicUsize::new(0));
    // Instance A fails the slot and goes away before the retry is due.
    let a = instance(t.db.clone(), &clock, "instance-a", &calls, 1);
    let job_id = a.register(PLUGIN, vec![flaky(None)]).await.expect("jobs")[0].id;
    clock.set(at("10:15"));
    a.scheduler.send(Tick).await.expect("tick");
    wait_for_finished_runs(&t, job_id, 1).await;
    let retry = retries(&t).await.remove(0);
    assert_eq!(retry.status, RetryStatus::Pending);
    a.shutdown(Duration::from_secs(5)).await.expect("shutdown");

    // Two new instances, each on its own connection, race for it.
    let connect = || async {
        plugin_jobs::db::connect(&t.url)
            .await
            .expect("connect again")
    };
    let (b_db, c_db) = (connect().await, connect().await);
    let b = instance(b_db, &clock, "instance-b", &calls, 1);
    let c = instance(c_db, &clock, "instance-c", &calls, 1);
    for handle in [&b, &c] {
        handle
            .register(PLUGIN, vec![flaky(None)])
            .await
            .expect("register");
    }
    clock.set(retry.due_at);
    let (from_b, from_c) = futures_util::join!(pass(&b), pass(&c));
    assert_eq!(
        from_b.started + from_c.started,
        1,
        "exactly one instance starts it: {from_b:?} {from_c:?}"
    );
    wait_for_finished_runs(&t, job_id, 2).await;
    let runs = runs_of(&t, job_id).await;
    assert_eq!(runs[1].trigger, RunTrigger::Retry);
    assert_eq!(runs[1].status, RunStatus::Succeeded);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the worker ran the retry once"
    );
    // Later passes find nothing left to do.
    for handle in [&b, &c] {
        assert_eq!(pass(handle).await.started, 0);
    }
    assert_eq!(runs_of(&t, job_id).await.len(), 2);
}

#[actix_rt::test]
async fn a_slot_claimed_by_an_instance_that_died_before_it_started_runs_once_late_under_fire_once()
{
    // An instance claimed the 10:30 slots ahead and died before they started: their runs are
    // queued, never started, and their heartbeats stop at 10:29:45. Neither job has a retry
    // policy. The `fire_once` job's slot did not run, so it gets its one late run, at once; the
    // `skip` job's slot is a misfire and stays missed.
    let h = Harness::with_clock(SchedulerConfig::default(), at("10:31")).await;
    let calls = Arc::new(AtomicUsize::new(0));
    for key in ["once", "strict"] {
        h.workers
            .inner
            .register(PLUGIN, key, failing_first(0, Arc::clone(&calls)));
    }
    let jobs = h
        .jobs
        .register(
            PLUGIN,
            vec![
                JobDeclaration::new("once", "*/15 * * * *"),
                JobDeclaration {
                    misfire: MisfirePolicy::Skip,
                    ..JobDeclaration::new("strict", "*/15 * * * *")
                },
            ],
        )
        .await
        .expect("register");
    let mut claimed = Vec::new();
    for job in &jobs {
        let run = PluginJobRunModel {
            trigger: RunTrigger::Schedule,
            scheduled_for: at("10:30"),
            instance_id: Some("dead-instance".to_owned()),
            heartbeat_at: Some(at("2024-01-15T10:29:45Z")),
            created_at: at("2024-01-15T10:29:45Z"),
            ..run_row(job)
        };
        claimed.push(h.t.insert_run(run).await.expect("insert the claimed run"));
    }
    let rescued = h
        .jobs
        .store
        .send(RescueStaleRuns {
            now: at("10:31"),
            lease: Duration::from_secs(30),
            spare: Vec::new(),
        })
        .await
        .expect("store")
        .expect("rescue");
    assert_eq!(rescued.len(), 2);
    for run in &claimed {
        let error = h.t.run(run.id).await.error.unwrap_or_default();
        assert!(error.starts_with("abandoned before it started"), "{error}");
    }

    let asked = retries(&h.t).await;
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].failed_run_id, claimed[0].id);
    assert_eq!(asked[0].status, RetryStatus::Pending);
    assert_eq!(asked[0].due_at, at("10:31"), "nothing ran: no backoff");
    assert_eq!(pass(&h.jobs).await.started, 1);
    wait_for_finished_runs(&h.t, jobs[0].id, 2).await;
    let late = runs_of(&h.t, jobs[0].id).await.remove(1);
    assert_eq!(
        (late.status, late.trigger, late.attempt, late.scheduled_for),
        (RunStatus::Succeeded, RunTrigger::Retry, 2, at("10:30"))
    );
    assert_eq!(late.retry_of, Some(claimed[0].id));
    assert_eq!(
        runs_of(&h.t, jobs[1].id).await.len(),
        1,
        "strict stays missed"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
