//! The SchedulerActor and JobRunActor, driven by messages with a manual clock: every scheduler
//! case of the original suite, with the changed behaviours asserted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix::Actor;
use chrono::TimeDelta;
use common::{
    Gate, Harness, TestDb, at, crashing_handler, failing_handler, ok_handler, wait_until,
};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::scheduler::{GetDiagnostics, SchedulerActor, Shutdown, Start, Tick};
use plugin_jobs::store::{JobDeclaration, JobRef, StoreActor};
use plugin_jobs::worker::InProcessWorkers;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde_json::json;

fn config(max: usize) -> SchedulerConfig {
    SchedulerConfig {
        max_concurrent_runs: max,
        ..SchedulerConfig::default()
    }
}

async fn runs_of(h: &Harness, job_id: uuid::Uuid) -> Vec<PluginJobRunModel> {
    let mut runs: Vec<_> =
        h.t.all_runs()
            .await
            .into_iter()
            .filter(|r| r.job_id == job_id)
            .collect();
    runs.sort_by_key(|r| r.created_at);
    runs
}

// Lifecycle and ticks ---------------------------------------------------------------------

#[actix_rt::test]
async fn diagnostics_start_empty_and_start_and_stop_are_safe_in_any_order() {
    let t = TestDb::new().await;
    let store = StoreActor::new(t.db.clone()).start();
    let scheduler = SchedulerActor::new(
        store,
        std::sync::Arc::new(InProcessWorkers::new()),
        std::sync::Arc::new(ManualClock::new(at("10:00"))),
        SchedulerConfig::default(),
        "i".to_owned(),
        false,
        plugin_jobs::events::EventBus::default(),
    )
    .start();
    let d = scheduler.send(GetDiagnostics).await.expect("diagnostics");
    assert!(!d.running);
    assert_eq!((d.active_job_count, d.tick_count), (0, 0));
    assert!(d.active_job_ids.is_empty());
    assert_eq!(d.last_tick_at, None);

    scheduler.send(Tick).await.expect("tick");
    assert_eq!(
        scheduler.send(GetDiagnostics).await.expect("d").tick_count,
        0,
        "no ticks before start"
    );

    scheduler.send(Start).await.expect("start");
    scheduler
        .send(Start)
        .await
        .expect("second start is a no-op");
    scheduler.send(Tick).await.expect("tick");
    let d = scheduler.send(GetDiagnostics).await.expect("d");
    assert!(d.running);
    assert_eq!(d.tick_count, 1);
    assert_eq!(d.last_tick_at.as_deref(), Some("2024-01-15T10:00:00.000Z"));

    scheduler
        .send(Shutdown {
            grace: Duration::from_millis(10),
        })
        .await
        .expect("stop");
    scheduler
        .send(Shutdown {
            grace: Duration::from_millis(10),
        })
        .await
        .expect("double stop");
    assert!(!scheduler.send(GetDiagnostics).await.expect("d").running);
    scheduler.send(Tick).await.expect("tick after stop");
    assert_eq!(
        scheduler.send(GetDiagnostics).await.expect("d").tick_count,
        1,
        "no ticks after stop"
    );
    scheduler.send(Start).await.expect("start after stop");
    assert!(
        !scheduler.send(GetDiagnostics).await.expect("d").running,
        "a stopped scheduler stays stopped"
    );
}

#[actix_rt::test]
async fn three_ticks_count_three() {
    let h = Harness::new(config(10)).await;
    for _ in 0..3 {
        h.tick().await;
    }
    assert_eq!(h.jobs.diagnostics().await.expect("d").tick_count, 3);
}

#[actix_rt::test]
async fn a_due_job_runs_with_the_exact_payload_and_its_pointer_moves() {
    let h = Harness::with_clock(config(10), at("2025-01-15T10:20:00Z")).await;
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("report", "*/15 * * * *"), ok_handler)
        .register()
        .await;
    let job_id = jobs[0].id;
    h.tick_at(at("2025-01-15T10:30:00Z")).await;
    h.wait_idle().await;
    let runs = runs_of(&h, job_id).await;
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.trigger, RunTrigger::Schedule);
    assert!(run.started_at.is_some());
    assert!(run.duration_ms.is_some_and(|d| d >= 0));
    let calls = h.workers.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "runJob");
    assert_eq!(
        calls[0].params,
        json!({"job": {
            "jobKey": "report",
            "runId": run.id.to_string(),
            "trigger": "schedule",
            "scheduledAt": "2025-01-15T10:30:00.000Z",
            "traceparent": run.traceparent.clone().expect("a trace context"),
            "attempt": 1,
            "retryOf": null,
            "payload": null,
        }})
    );
    assert_eq!(
        h.t.job(job_id).await.next_run_at,
        Some(at("2025-01-15T10:45:00Z"))
    );
    assert_eq!(
        h.t.job(job_id).await.last_run_at,
        Some(at("2025-01-15T10:30:00Z"))
    );
}

#[actix_rt::test]
async fn no_due_jobs_means_no_run_and_no_call_and_manual_only_jobs_never_fire() {
    let h = Harness::new(config(10)).await;
    h.plugin("alpha")
        .job(JobDeclaration::new("later", "0 12 * * *"), ok_handler)
        .job(JobDeclaration::new("manual", ""), ok_handler)
        .register()
        .await;
    for minutes in [0, 30, 90] {
        h.tick_at(at("10:00") + TimeDelta::minutes(minutes)).await;
    }
    assert!(h.t.all_runs().await.is_empty());
    assert!(h.workers.calls().is_empty());
}

#[actix_rt::test]
async fn a_failing_worker_fails_the_run_with_its_message_and_the_pointer_still_moves() {
    let h = Harness::new(config(10)).await;
    let jobs = h
        .plugin("alpha")
        .job(
            JobDeclaration::new("crashy", "0 * * * *"),
            failing_handler("Worker crashed"),
        )
        .register()
        .await;
    h.tick_at(at("11:00")).await;
    h.wait_idle().await;
    let runs = runs_of(&h, jobs[0].id).await;
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert_eq!(runs[0].error.as_deref(), Some("Worker crashed"));
    assert!(runs[0].duration_ms.is_some_and(|d| d >= 0));
    assert_eq!(h.t.job(jobs[0].id).await.next_run_at, Some(at("12:00")));
}

#[actix_rt::test]
async fn a_worker_that_crashes_mid_run_fails_the_run_and_the_next_slot_waits_for_the_worker() {
    let h = Harness::new(config(10)).await;
    let crash = crashing_handler(&h.workers.inner, "alpha");
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("crashes", "0 * * * *"), crash)
        .register()
        .await;
    h.tick_at(at("11:00")).await;
    h.wait_idle().await;
    let runs = runs_of(&h, jobs[0].id).await;
    assert_eq!(runs[0].status, RunStatus::Failed);
    let error = runs[0].error.clone().unwrap_or_default();
    assert!(error.contains("worker of plugin alpha exited"), "{error}");

    h.tick_at(at("12:00")).await;
    assert_eq!(
        runs_of(&h, jobs[0].id).await.len(),
        1,
        "no run while the worker is down"
    );
    h.workers.inner.set_running("alpha", true);
    h.tick().await;
    h.wait_idle().await;
    let runs = runs_of(&h, jobs[0].id).await;
    assert_eq!(runs.len(), 2, "the slot waited for the worker");
    assert_eq!(runs[1].scheduled_for, at("12:00"));
}

#[actix_rt::test]
async fn a_database_error_during_a_tick_is_survived() {
    let h = Harness::new(config(10)).await;
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("a", "0 * * * *"), ok_handler)
        .register()
        .await;
    h.clock.set(at("11:00"));
    h.t.db
        .execute_unprepared("ALTER TABLE plugin_jobs RENAME TO plugin_jobs_away")
        .await
        .expect("break the table");
    h.tick().await;
    assert_eq!(
        h.jobs.diagnostics().await.expect("d").tick_count,
        1,
        "the failed tick still counts"
    );
    h.t.db
        .execute_unprepared("ALTER TABLE plugin_jobs_away RENAME TO plugin_jobs")
        .await
        .expect("restore the table");
    h.tick().await;
    h.wait_idle().await;
    assert_eq!(
        runs_of(&h, jobs[0].id).await.len(),
        1,
        "the next tick works normally"
    );
}

// Overlap and concurrency -----------------------------------------------------------------

#[actix_rt::test]
async fn a_job_in_flight_is_not_dispatched_again_until_its_run_finishes() {
    let h = Harness::new(config(10)).await;
    let gate = Gate::default();
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("slow", "* * * * *"), gate.handler())
        .register()
        .await;
    let job_id = jobs[0].id;
    h.tick_at(at("10:01")).await;
    for minute in 2..4 {
        h.tick_at(at("10:00") + TimeDelta::minutes(minute)).await;
        assert_eq!(
            runs_of(&h, job_id).await.len(),
            1,
            "no second run while one is in flight"
        );
    }
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(d.active_job_ids, vec![job_id]);
    assert_eq!(
        d.skipped_slots, 2,
        "overlapping slots are skipped and counted"
    );
    gate.open();
    h.wait_idle().await;
    h.tick_at(at("10:04")).await;
    h.wait_idle().await;
    let runs = runs_of(&h, job_id).await;
    assert_eq!(runs.len(), 2, "the next due slot dispatches it again");
    assert_eq!(runs[1].scheduled_for, at("10:04"));
}

#[actix_rt::test]
async fn two_due_jobs_in_one_tick_are_both_dispatched() {
    let h = Harness::new(config(10)).await;
    h.plugin("alpha")
        .job(JobDeclaration::new("a", "0 * * * *"), ok_handler)
        .job(JobDeclaration::new("b", "0 * * * *"), ok_handler)
        .register()
        .await;
    h.tick_at(at("11:00")).await;
    h.wait_idle().await;
    assert_eq!(h.t.all_runs().await.len(), 2);
}

async fn dispatched_with_limit(max: usize, due: usize) -> usize {
    let h = Harness::new(config(max)).await;
    let gate = Gate::default();
    let mut plugin = h.plugin("alpha");
    for i in 0..due {
        plugin = plugin.job(
            JobDeclaration::new(format!("job-{i}"), "0 * * * *"),
            gate.handler(),
        );
    }
    plugin.register().await;
    h.tick_at(at("11:00")).await;
    let count = h.t.all_runs().await.len();
    assert_eq!(
        h.jobs.diagnostics().await.expect("d").active_job_count,
        count
    );
    gate.open();
    count
}

#[actix_rt::test]
async fn slots_that_pass_while_every_run_slot_is_busy_are_recorded_when_one_late_run_stands_for_them()
 {
    // One run at a time, held by a manual run: the every-minute job's 10:01, 10:02 and 10:03
    // slots come due with no free slot. When it frees, the job fires its oldest slot once
    // (`fire_once`) and the two after it pass without a run: they are counted, not lost.
    let h = Harness::new(config(1)).await;
    let gate = Gate::default();
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("holder", ""), gate.handler())
        .job(JobDeclaration::new("ticker", "* * * * *"), ok_handler)
        .register()
        .await;
    let ticker = jobs
        .iter()
        .find(|job| job.job_key == "ticker")
        .expect("ticker")
        .id;
    let held = h
        .jobs
        .trigger(JobRef::key("alpha", "holder"), RunTrigger::Manual)
        .await
        .expect("trigger");
    h.wait_for_run(held.run_id, RunStatus::Running).await;
    for minute in 1..=3 {
        h.tick_at(at("10:00") + TimeDelta::minutes(minute)).await;
    }
    assert!(runs_of(&h, ticker).await.is_empty(), "no free slot");
    gate.open();
    wait_until(
        "the ticker's late run has finished",
        Duration::from_secs(10),
        || async {
            let runs = runs_of(&h, ticker).await;
            runs.len() == 1 && runs[0].status == RunStatus::Succeeded
        },
    )
    .await;
    assert_eq!(runs_of(&h, ticker).await[0].scheduled_for, at("10:01"));
    assert_eq!(h.t.job(ticker).await.next_run_at, Some(at("10:04")));
    assert_eq!(
        h.jobs.diagnostics().await.expect("d").skipped_slots,
        2,
        "10:02 and 10:03 passed without a run of their own"
    );
}

/// A scheduler with one run slot, held by a manual run of `alpha/holder` until the gate opens.
/// `alpha` also declares the manual-only jobs `others`, which succeed: their manual runs wait
/// in the queue.
async fn one_slot_held(others: &[&str]) -> (Harness, Gate) {
    let h = Harness::new(config(1)).await;
    let gate = Gate::default();
    let mut plugin = h
        .plugin("alpha")
        .job(JobDeclaration::new("holder", ""), gate.handler());
    for key in others {
        plugin = plugin.job(JobDeclaration::new(*key, ""), ok_handler);
    }
    plugin.register().await;
    let held = h
        .jobs
        .trigger(JobRef::key("alpha", "holder"), RunTrigger::Manual)
        .await
        .expect("trigger");
    h.wait_for_run(held.run_id, RunStatus::Running).await;
    (h, gate)
}

/// Waits until one manual run of each of `jobs` (plugin `alpha`) is counted finished
/// `cancelled`.
async fn wait_cancelled_counted(h: &Harness, jobs: &[&str]) {
    wait_until("the cancels are counted", Duration::from_secs(10), || async {
        let text = h.jobs.metrics().await.expect("metrics");
        jobs.iter().all(|job| {
            text.contains(&format!(
                r#"plugin_jobs_runs_finished_total{{plugin="alpha",job="{job}",trigger="manual",status="cancelled"}} 1"#
            ))
        })
    })
    .await;
}

#[actix_rt::test]
async fn a_queued_manual_run_of_a_job_paused_or_deleted_leaves_the_queue_at_once() {
    // One run at a time, held: two manual runs wait for the slot. Pausing one job and deleting
    // the other cancels their runs in the database; the queue (and `queuedManualRuns`) must not
    // keep counting them until the slot frees, and each is counted finished `cancelled`.
    let (h, gate) = one_slot_held(&["paused"]).await;
    h.workers.inner.register("alpha", "deleted", ok_handler);
    h.jobs
        .create_job("alpha", JobDeclaration::new("deleted", ""))
        .await
        .expect("create");
    let mut waiting = Vec::new();
    for key in ["paused", "deleted"] {
        let run = h
            .jobs
            .trigger(JobRef::key("alpha", key), RunTrigger::Manual)
            .await
            .expect("trigger");
        waiting.push(run.run_id);
    }
    assert_eq!(h.jobs.diagnostics().await.expect("d").queued_manual_runs, 2);

    h.jobs
        .pause(JobRef::key("alpha", "paused"))
        .await
        .expect("pause");
    h.jobs
        .delete_job(JobRef::key("alpha", "deleted"))
        .await
        .expect("delete");
    wait_until("the queue is empty", Duration::from_secs(10), || async {
        h.jobs.diagnostics().await.expect("d").queued_manual_runs == 0
    })
    .await;
    for run_id in waiting {
        assert_eq!(h.t.run(run_id).await.status, RunStatus::Cancelled);
    }
    wait_cancelled_counted(&h, &["paused", "deleted"]).await;
    gate.open();
}

#[actix_rt::test]
async fn an_operator_cancels_a_running_run_and_a_queued_one_and_nothing_else() {
    // One slot, held by a hanging run of `holder`; a manual run of `waiter` queues behind it.
    let (h, gate) = one_slot_held(&["waiter"]).await;
    let holder =
        h.t.all_runs()
            .await
            .into_iter()
            .find(|run| run.status == RunStatus::Running)
            .expect("the holder runs")
            .id;
    let waiter = h
        .jobs
        .trigger(JobRef::key("alpha", "waiter"), RunTrigger::Manual)
        .await
        .expect("trigger")
        .run_id;

    let queued = h
        .jobs
        .cancel_run(waiter)
        .await
        .expect("cancel the queued run");
    assert_eq!(queued.status, RunStatus::Cancelled);
    assert_eq!(
        queued.error.as_deref(),
        Some("cancelled by an operator before the run started")
    );
    assert_eq!(h.jobs.diagnostics().await.expect("d").queued_manual_runs, 0);

    // Two operators at once: one cancels the run, the other is told it is done or under way.
    let (first, second) =
        futures_util::future::join(h.jobs.cancel_run(holder), h.jobs.cancel_run(holder)).await;
    let (running, refused) = match (first, second) {
        (Ok(run), Err(err)) | (Err(err), Ok(run)) => (run, err),
        other => panic!("exactly one cancel succeeds: {other:?}"),
    };
    assert!(
        matches!(
            refused,
            plugin_jobs::Error::RunCancelling(_) | plugin_jobs::Error::RunEnded { .. }
        ),
        "{refused}"
    );
    assert_eq!(running.status, RunStatus::Cancelled, "recorded at once");
    assert_eq!(running.error.as_deref(), Some("cancelled by an operator"));
    assert!(running.finished_at.is_some());

    // The slot is free again: the job can run anew, and the ended runs cannot be cancelled.
    let again = h
        .jobs
        .trigger(JobRef::key("alpha", "waiter"), RunTrigger::Manual)
        .await
        .expect("the slot is free");
    h.wait_for_run(again.run_id, RunStatus::Succeeded).await;
    let ended = h.jobs.cancel_run(holder).await.expect_err("ended");
    assert!(
        matches!(ended, plugin_jobs::Error::RunEnded { .. }),
        "{ended}"
    );
    assert!(
        ended.to_string().contains("has already ended (cancelled)"),
        "{ended}"
    );
    let unknown = h
        .jobs
        .cancel_run(uuid::Uuid::now_v7())
        .await
        .expect_err("unknown");
    assert!(
        matches!(unknown, plugin_jobs::Error::RunNotFound(_)),
        "{unknown}"
    );
    // Both cancellations are counted as finished runs.
    wait_cancelled_counted(&h, &["holder", "waiter"]).await;
    gate.open();
}

#[actix_rt::test]
async fn a_run_of_another_instance_is_cancelled_here_only_once_its_lease_lapsed() {
    let h = Harness::with_clock(config(4), at("10:00")).await;
    let job = h.t.insert_job(common::job_row("alpha", "remote")).await;
    let elsewhere = |heartbeat: &str| PluginJobRunModel {
        status: RunStatus::Running,
        instance_id: Some("host-elsewhere".to_owned()),
        heartbeat_at: Some(at(heartbeat)),
        started_at: Some(at("09:00")),
        ..common::run_row(&job)
    };
    // Heartbeated 10 s ago: its instance runs it, and only that one may stop its call.
    let fresh =
        h.t.insert_run(elsewhere("2024-01-15T09:59:50Z"))
            .await
            .expect("insert");
    let refused = h.jobs.cancel_run(fresh.id).await.expect_err("not ours");
    assert!(
        refused
            .to_string()
            .starts_with(&format!("Run {} runs on instance host-elsewhere", fresh.id)),
        "{refused}"
    );
    assert_eq!(h.t.run(fresh.id).await.status, RunStatus::Running);

    // Not heartbeated for longer than the lease (30 s): its instance is gone or fenced.
    PluginJobRun::delete_by_id(fresh.id)
        .exec(&h.t.db)
        .await
        .expect("delete");
    let stale =
        h.t.insert_run(elsewhere("2024-01-15T09:59:00Z"))
            .await
            .expect("insert");
    let cancelled = h.jobs.cancel_run(stale.id).await.expect("cancel");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(
        cancelled.error.as_deref(),
        Some(
            "cancelled by an operator (instance host-elsewhere, which ran it, had stopped \
             heartbeating it)"
        )
    );
}

#[actix_rt::test]
async fn a_queued_manual_run_of_a_job_a_manifest_fails_stays_queued_and_starts() {
    // A sync that fails a job (a bad schedule) does not cancel its manual runs: the queue must
    // keep the one waiting for the held slot, or it would stay `queued` forever.
    let (h, gate) = one_slot_held(&["broken"]).await;
    let queued = h
        .jobs
        .trigger(JobRef::key("alpha", "broken"), RunTrigger::Manual)
        .await
        .expect("trigger");

    let declared = vec![
        JobDeclaration::new("holder", ""),
        JobDeclaration::new("broken", "99 * * * *"),
    ];
    let jobs = h.jobs.register("alpha", declared).await.expect("sync");
    assert!(
        jobs.iter()
            .any(|job| job.job_key == "broken" && job.status == JobStatus::Failed)
    );
    assert_eq!(h.jobs.diagnostics().await.expect("d").queued_manual_runs, 1);
    gate.open();
    h.wait_for_run(queued.run_id, RunStatus::Succeeded).await;
}

#[actix_rt::test]
async fn the_concurrency_limit_caps_dispatch() {
    assert_eq!(dispatched_with_limit(1, 2).await, 1);
    assert_eq!(dispatched_with_limit(2, 3).await, 2);
}

#[actix_rt::test]
async fn a_large_budget_is_claimed_in_two_halves_without_a_tick_and_never_exceeded() {
    // From a budget of 64 on, one claim creates at most half of it, and a claim cut at that
    // size is followed at once by the next: 150 due jobs, a budget of 100.
    let h = Harness::new(config(100)).await;
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!((d.max_concurrent_runs, d.claim_size), (100, 50));
    let gate = Gate::default();
    let mut plugin = h.plugin("alpha");
    for i in 0..150 {
        plugin = plugin.job(
            JobDeclaration::new(format!("job-{i}"), "0 * * * *"),
            gate.handler(),
        );
    }
    plugin.register().await;
    h.tick_at(at("11:00")).await;
    // One tick: the second half is claimed by the scheduler itself.
    wait_until("both halves run", Duration::from_secs(10), || async {
        h.jobs.diagnostics().await.expect("d").active_job_count == 100
    })
    .await;
    // The budget is full: neither the follow-up claim nor another tick takes a 101st job.
    h.tick_at(at("11:00")).await;
    let runs = h.t.all_runs().await;
    assert_eq!(runs.len(), 100, "the budget holds 100");
    assert!(runs.iter().all(|r| r.status == RunStatus::Running));
    gate.open();
    wait_until("all 150 jobs ran", Duration::from_secs(20), || async {
        let runs = h.t.all_runs().await;
        runs.len() == 150 && runs.iter().all(|r| r.status == RunStatus::Succeeded)
    })
    .await;
    h.wait_idle().await;
}

#[actix_rt::test]
async fn a_small_budget_is_claimed_whole_by_one_tick() {
    let h = Harness::new(config(63)).await;
    assert_eq!(h.jobs.diagnostics().await.expect("d").claim_size, 63);
    assert_eq!(dispatched_with_limit(63, 70).await, 63);
}

#[actix_rt::test]
async fn with_a_limit_of_one_the_second_job_runs_after_the_first_finishes() {
    let h = Harness::new(config(1)).await;
    let gate = Gate::default();
    let mut first = JobDeclaration::new("first", "0 11 * * *");
    first.display_name = "first".to_owned();
    h.plugin("alpha")
        .job(first, gate.handler())
        .job(JobDeclaration::new("second", "1 11 * * *"), ok_handler)
        .register()
        .await;
    h.tick_at(at("11:01")).await;
    let runs = h.t.all_runs().await;
    assert_eq!(runs.len(), 1, "only the oldest slot fits");
    gate.open();
    // The freed slot is handed on at once, without waiting for a tick.
    wait_until("the second job ran", Duration::from_secs(10), || async {
        h.t.all_runs().await.len() == 2
    })
    .await;
    h.wait_idle().await;
    assert!(
        h.t.all_runs()
            .await
            .iter()
            .all(|r| r.status == RunStatus::Succeeded)
    );
}

#[actix_rt::test]
async fn a_tick_while_every_slot_is_busy_still_hands_freed_slots_to_due_jobs() {
    let h = Harness::new(config(2)).await;
    let gate = Gate::default();
    let mut plugin = h.plugin("alpha");
    for key in ["a", "b", "c"] {
        plugin = plugin.job(JobDeclaration::new(key, "0 11 * * *"), gate.handler());
    }
    plugin.register().await;
    h.tick_at(at("11:00")).await;
    assert_eq!(h.t.all_runs().await.len(), 2, "the budget holds two");
    // A tick with no free slot claims nothing; the third job is still due.
    h.tick_at(at("11:00")).await;
    assert_eq!(h.t.all_runs().await.len(), 2);
    gate.open();
    // No more ticks: the slots the two runs free go to the due job at once.
    wait_until("the third job ran", Duration::from_secs(10), || async {
        h.t.all_runs().await.len() == 3
    })
    .await;
    h.wait_idle().await;
}

#[actix_rt::test]
async fn a_slot_freed_while_most_are_busy_still_goes_to_a_due_job() {
    // One slot of four frees: the claim for it waits a moment for more runs to end (they end in
    // batches), and then claims anyway.
    let h = Harness::new(config(4)).await;
    let (first, rest) = (Gate::default(), Gate::default());
    let mut plugin = h
        .plugin("alpha")
        .job(JobDeclaration::new("a", "0 11 * * *"), first.handler());
    for key in ["b", "c", "d"] {
        plugin = plugin.job(JobDeclaration::new(key, "0 11 * * *"), rest.handler());
    }
    let jobs = plugin
        .job(JobDeclaration::new("late", "1 11 * * *"), ok_handler)
        .register()
        .await;
    let late = jobs.iter().find(|j| j.job_key == "late").expect("late").id;
    h.tick_at(at("11:01")).await;
    assert!(
        runs_of(&h, late).await.is_empty(),
        "the budget holds the four oldest"
    );
    first.open();
    wait_until("the late job ran", Duration::from_secs(10), || async {
        runs_of(&h, late)
            .await
            .iter()
            .any(|r| r.status == RunStatus::Succeeded)
    })
    .await;
    // The scheduler hears that the late run finished just after its outcome is stored.
    wait_until("b, c and d still run", Duration::from_secs(10), || async {
        h.jobs.diagnostics().await.expect("d").active_job_count == 3
    })
    .await;
    let live = h.t.all_runs().await;
    let live: Vec<_> = live.iter().filter(|r| r.status.is_live()).collect();
    assert_eq!(live.len(), 3, "b, c and d still run: {live:?}");
    rest.open();
    h.wait_idle().await;
}

#[actix_rt::test]
async fn a_slow_run_does_not_delay_another_jobs_slot() {
    let h = Harness::new(config(10)).await;
    let gate = Gate::default();
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("slow", "0 11 * * *"), gate.handler())
        .job(JobDeclaration::new("fast", "1 11 * * *"), ok_handler)
        .register()
        .await;
    let fast = jobs.iter().find(|j| j.job_key == "fast").expect("fast").id;
    h.tick_at(at("11:00")).await;
    h.tick_at(at("11:01")).await;
    wait_until(
        "the fast job succeeded",
        Duration::from_secs(10),
        || async {
            runs_of(&h, fast)
                .await
                .first()
                .is_some_and(|r| r.status == RunStatus::Succeeded)
        },
    )
    .await;
    // The fast run's outcome is written before its actor reports back to the scheduler.
    wait_until(
        "only the slow run is in flight",
        Duration::from_secs(10),
        || async { h.jobs.diagnostics().await.expect("d").active_job_count == 1 },
    )
    .await;
    gate.open();
    h.wait_idle().await;
}

// Workers ---------------------------------------------------------------------------------

#[actix_rt::test]
async fn only_jobs_of_running_workers_are_dispatched() {
    let h = Harness::new(config(10)).await;
    h.plugin("up")
        .job(JobDeclaration::new("a", "0 * * * *"), ok_handler)
        .register()
        .await;
    let down = h
        .plugin("down")
        .job(JobDeclaration::new("b", "0 * * * *"), ok_handler)
        .register()
        .await;
    h.workers.inner.set_running("down", false);
    h.tick_at(at("11:00")).await;
    h.wait_idle().await;
    let runs = h.t.all_runs().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].plugin_id, "up");
    assert_eq!(
        h.t.job(down[0].id).await.next_run_at,
        Some(at("11:00")),
        "its slot waits for the worker"
    );
}

// Register / unregister -------------------------------------------------------------------

#[actix_rt::test]
async fn a_past_pointer_at_registration_is_left_for_the_misfire_policy() {
    let h = Harness::new(config(10)).await;
    let mut once = common::job_row("alpha", "once");
    once.schedule = "0 * * * *".to_owned();
    once.next_run_at = Some(at("07:00"));
    let once = h.t.insert_job(once).await;
    let mut skip = common::job_row("alpha", "skip");
    skip.schedule = "0 * * * *".to_owned();
    skip.next_run_at = Some(at("07:00"));
    skip.misfire = MisfirePolicy::Skip;
    let skip = h.t.insert_job(skip).await;
    let mut skip_decl = JobDeclaration::new("skip", "0 * * * *");
    skip_decl.misfire = MisfirePolicy::Skip;
    h.plugin("alpha")
        .job(JobDeclaration::new("once", "0 * * * *"), ok_handler)
        .job(skip_decl, ok_handler)
        .register()
        .await;
    assert_eq!(h.t.job(once.id).await.next_run_at, Some(at("07:00")));
    h.tick_at(at("10:05")).await;
    h.wait_idle().await;
    let once_runs = runs_of(&h, once.id).await;
    assert_eq!(
        once_runs.len(),
        1,
        "fire_once: one run for all missed slots"
    );
    assert_eq!(once_runs[0].scheduled_for, at("07:00"));
    assert!(runs_of(&h, skip.id).await.is_empty(), "skip: no run");
    assert_eq!(h.t.job(skip.id).await.next_run_at, Some(at("11:00")));
    assert_eq!(h.t.job(once.id).await.next_run_at, Some(at("11:00")));
}

#[actix_rt::test]
async fn unregistering_cancels_live_runs_and_a_late_reply_changes_nothing() {
    let h = Harness::new(config(10)).await;
    let gate = Gate::default();
    let dropped = Arc::new(AtomicBool::new(false));
    let returned = Arc::new(AtomicBool::new(false));
    let (wait, on_drop, on_return) = (gate.clone(), dropped.clone(), returned.clone());
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("slow", "0 * * * *"), move |_ctx| {
            let open = wait.wait();
            let guard = DropFlag(on_drop.clone());
            let on_return = on_return.clone();
            async move {
                let _guard = guard;
                open.await;
                on_return.store(true, Ordering::SeqCst);
                Ok(())
            }
        })
        .register()
        .await;
    h.tick_at(at("11:00")).await;
    let run = runs_of(&h, jobs[0].id).await.remove(0);
    h.wait_for_run(run.id, RunStatus::Running).await;
    h.jobs.unregister("alpha").await.expect("unregister");
    let cancelled = h.wait_for_run(run.id, RunStatus::Cancelled).await;
    // An in-process call is over once dropped, so the job is free as soon as that is recorded.
    h.wait_idle().await;
    assert_eq!(cancelled.error.as_deref(), Some("Plugin unregistered"));
    assert!(cancelled.duration_ms.is_some_and(|d| d >= 0));
    // Cancellation is real: the call in flight is dropped, so the handler never gets to reply.
    wait_until(
        "the in-flight call was dropped",
        Duration::from_secs(10),
        || async { dropped.load(Ordering::SeqCst) },
    )
    .await;
    gate.open();
    assert!(
        !returned.load(Ordering::SeqCst),
        "the cancelled handler never ran to completion"
    );
    let after = h.t.run(run.id).await;
    assert_eq!(after.status, RunStatus::Cancelled);
    assert_eq!(after.error.as_deref(), Some("Plugin unregistered"));
    let cancel_sent = h
        .workers
        .inner
        .notifications()
        .iter()
        .any(|(_, method, params)| method == "cancelJob" && params["runId"] == run.id.to_string());
    assert!(cancel_sent, "the worker was told to cancel");
}

/// Sets its flag when dropped: shows that a handler's future was dropped, not finished.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

// Manual trigger --------------------------------------------------------------------------

#[actix_rt::test]
async fn a_trigger_returns_before_a_hanging_run_finishes() {
    let h = Harness::new(config(10)).await;
    let gate = Gate::default();
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("hang", ""), gate.handler())
        .register()
        .await;
    let triggered = h
        .jobs
        .trigger(JobRef::key("alpha", "hang"), RunTrigger::Manual)
        .await
        .expect("trigger");
    assert_eq!(triggered.job_id, jobs[0].id);
    let run = h.wait_for_run(triggered.run_id, RunStatus::Running).await;
    assert_eq!(run.trigger, RunTrigger::Manual);
    assert_eq!(run.scheduled_for, at("10:00"));
    // The run is marked running before its actor calls the worker: wait for the call.
    let calls = common::wait_for("the worker was called", Duration::from_secs(10), || async {
        let calls = h.workers.calls();
        if calls.is_empty() {
            Err("no call yet".to_owned())
        } else {
            Ok(calls)
        }
    })
    .await;
    let params = &calls[0].params;
    assert_eq!(params["job"]["trigger"], "manual");
    assert_eq!(params["job"]["scheduledAt"], "2024-01-15T10:00:00.000Z");
    assert_eq!(
        h.t.job(jobs[0].id).await.next_run_at,
        None,
        "a trigger does not move the pointer"
    );
    gate.open();
    h.wait_for_run(triggered.run_id, RunStatus::Succeeded).await;

    let retry = h
        .jobs
        .trigger(JobRef::Id(jobs[0].id), RunTrigger::Retry)
        .await
        .expect("retry");
    assert_eq!(
        h.wait_for_run(retry.run_id, RunStatus::Succeeded)
            .await
            .trigger,
        RunTrigger::Retry
    );
}

#[actix_rt::test]
async fn trigger_errors_name_the_reason() {
    let h = Harness::new(config(10)).await;
    let gate = Gate::default();
    h.plugin("alpha")
        .job(JobDeclaration::new("busy", ""), gate.handler())
        .job(JobDeclaration::new("paused", ""), ok_handler)
        .register()
        .await;
    h.plugin("down")
        .job(JobDeclaration::new("job", ""), ok_handler)
        .register()
        .await;
    h.workers.inner.set_running("down", false);
    h.jobs
        .pause(JobRef::key("alpha", "paused"))
        .await
        .expect("pause");

    let err = |e: plugin_jobs::Error| e.to_string();
    let missing = h
        .jobs
        .trigger(JobRef::key("alpha", "nope"), RunTrigger::Manual)
        .await
        .map_err(err)
        .expect_err("unknown");
    assert!(missing.contains("Job not found"), "{missing}");
    let paused = h
        .jobs
        .trigger(JobRef::key("alpha", "paused"), RunTrigger::Manual)
        .await
        .map_err(err)
        .expect_err("paused");
    assert!(
        paused.contains("is paused, so it cannot be triggered"),
        "{paused}"
    );
    let down = h
        .jobs
        .trigger(JobRef::key("down", "job"), RunTrigger::Manual)
        .await
        .map_err(err)
        .expect_err("down");
    assert!(down.contains("not running"), "{down}");
    h.jobs
        .trigger(JobRef::key("alpha", "busy"), RunTrigger::Manual)
        .await
        .expect("first");
    let busy = h
        .jobs
        .trigger(JobRef::key("alpha", "busy"), RunTrigger::Manual)
        .await
        .map_err(err)
        .expect_err("busy");
    assert!(busy.contains("already running"), "{busy}");
    gate.open();
}

#[actix_rt::test]
async fn a_live_run_in_the_database_blocks_a_trigger_too() {
    let h = Harness::new(config(10)).await;
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("a", ""), ok_handler)
        .register()
        .await;
    // A run owned by another instance.
    h.t.insert_run(PluginJobRunModel {
        status: RunStatus::Running,
        instance_id: Some("other".to_owned()),
        ..common::run_row(&jobs[0])
    })
    .await
    .expect("insert");
    let err = h
        .jobs
        .trigger(JobRef::key("alpha", "a"), RunTrigger::Manual)
        .await
        .expect_err("already running");
    assert!(err.to_string().contains("already running"), "{err}");
}

#[actix_rt::test]
async fn two_triggers_at_the_same_instant_create_exactly_one_run() {
    let h = Harness::new(config(10)).await;
    let gate = Gate::default();
    h.plugin("alpha")
        .job(JobDeclaration::new("a", ""), gate.handler())
        .register()
        .await;
    let (first, second) = futures_util::join!(
        h.jobs
            .trigger(JobRef::key("alpha", "a"), RunTrigger::Manual),
        h.jobs
            .trigger(JobRef::key("alpha", "a"), RunTrigger::Manual)
    );
    assert_eq!(
        [first.is_ok(), second.is_ok()]
            .iter()
            .filter(|ok| **ok)
            .count(),
        1
    );
    assert_eq!(h.t.all_runs().await.len(), 1);
    gate.open();
}

#[actix_rt::test]
async fn a_manual_run_waits_queued_for_a_free_slot_and_starts_first_in_first_out() {
    let h = Harness::new(config(1)).await;
    let gate = Gate::default();
    h.plugin("alpha")
        .job(JobDeclaration::new("holder", ""), gate.handler())
        .job(JobDeclaration::new("first", ""), gate.handler())
        .job(JobDeclaration::new("second", ""), gate.handler())
        .register()
        .await;
    let holder = h
        .jobs
        .trigger(JobRef::key("alpha", "holder"), RunTrigger::Manual)
        .await
        .expect("holder");
    h.wait_for_run(holder.run_id, RunStatus::Running).await;
    let first = h
        .jobs
        .trigger(JobRef::key("alpha", "first"), RunTrigger::Manual)
        .await
        .expect("first");
    let second = h
        .jobs
        .trigger(JobRef::key("alpha", "second"), RunTrigger::Manual)
        .await
        .expect("second");
    assert_eq!(h.t.run(first.run_id).await.status, RunStatus::Queued);
    assert_eq!(h.t.run(second.run_id).await.status, RunStatus::Queued);
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(
        (d.active_job_count, d.queued_manual_runs),
        (1, 2),
        "manual runs count against the limit"
    );
    gate.open();
    h.wait_for_run(second.run_id, RunStatus::Succeeded).await;
    let first = h.t.run(first.run_id).await;
    let second = h.t.run(second.run_id).await;
    assert!(first.started_at <= second.started_at, "first in, first out");
}

// Timeouts and payloads -------------------------------------------------------------------

#[actix_rt::test]
async fn the_worker_call_gets_the_job_timeout_or_the_default() {
    let h = Harness::new(config(10)).await;
    let mut custom = JobDeclaration::new("custom", "");
    custom.timeout_ms = Some(120_000);
    h.plugin("alpha")
        .job(custom, ok_handler)
        .job(JobDeclaration::new("default", ""), ok_handler)
        .register()
        .await;
    let a = h
        .jobs
        .trigger(JobRef::key("alpha", "custom"), RunTrigger::Manual)
        .await
        .expect("custom");
    h.wait_for_run(a.run_id, RunStatus::Succeeded).await;
    let b = h
        .jobs
        .trigger(JobRef::key("alpha", "default"), RunTrigger::Manual)
        .await
        .expect("default");
    h.wait_for_run(b.run_id, RunStatus::Succeeded).await;
    let timeouts: Vec<_> = h.workers.calls().iter().map(|c| c.timeout).collect();
    assert_eq!(
        timeouts,
        [
            Duration::from_millis(120_000),
            Duration::from_millis(300_000)
        ]
    );
}

#[actix_rt::test]
async fn zero_active_jobs_after_runs_finish() {
    let h = Harness::new(config(10)).await;
    h.plugin("alpha")
        .job(JobDeclaration::new("a", "0 * * * *"), ok_handler)
        .register()
        .await;
    h.tick_at(at("11:00")).await;
    h.wait_idle().await;
    let d = h.jobs.diagnostics().await.expect("d");
    assert_eq!(d.active_job_count, 0);
    assert!(d.active_job_ids.is_empty());
    let rows = PluginJobRun::find()
        .filter(PluginJobRunColumn::Status.is_in(RunStatus::LIVE))
        .all(&h.t.db)
        .await
        .expect("live runs");
    assert!(rows.is_empty());
}

#[actix_rt::test]
async fn unregistering_returns_normally_while_the_database_is_locked_and_the_outcome_lands_later() {
    let h = Harness::new(config(10)).await;
    let gate = Gate::default();
    h.plugin("alpha")
        .job(JobDeclaration::new("slow", ""), gate.handler())
        .register()
        .await;
    let run = h
        .jobs
        .trigger(JobRef::key("alpha", "slow"), RunTrigger::Manual)
        .await
        .expect("trigger");
    h.wait_for_run(run.run_id, RunStatus::Running).await;
    // Another client holds the write lock on the runs table: every write of ours waits.
    let lock = h.t.db.begin().await.expect("begin");
    let statement = if h.t.is_postgres() {
        "LOCK TABLE plugin_job_runs IN EXCLUSIVE MODE"
    } else {
        "UPDATE plugin_job_runs SET plugin_id = plugin_id"
    };
    lock.execute_unprepared(statement)
        .await
        .expect("lock the runs table");
    h.jobs
        .unregister("alpha")
        .await
        .expect("unregister answers although nothing can be recorded yet");
    assert_eq!(
        h.t.run(run.run_id).await.status,
        RunStatus::Running,
        "nothing recorded while the lock is held"
    );
    lock.rollback().await.expect("release the lock");
    // The run's actor records its cancellation as soon as the lock is gone.
    let cancelled = h.wait_for_run(run.run_id, RunStatus::Cancelled).await;
    assert_eq!(cancelled.error.as_deref(), Some("Plugin unregistered"));
    h.wait_idle().await;
    gate.open();
}

#[actix_rt::test]
async fn a_slot_claimed_within_the_lookahead_waits_for_its_slot_before_it_starts() {
    let h = Harness::with_clock(
        SchedulerConfig {
            claim_lookahead: Duration::from_millis(100),
            ..config(10)
        },
        at("2024-01-15T10:29:59.950Z"),
    )
    .await;
    let jobs = h
        .plugin("alpha")
        .job(JobDeclaration::new("report", "*/15 * * * *"), ok_handler)
        .register()
        .await;
    h.tick().await;
    let runs = runs_of(&h, jobs[0].id).await;
    assert_eq!(runs.len(), 1, "the 10:30 slot is claimed 50 ms early");
    assert_eq!(runs[0].scheduled_for, at("10:30"));
    assert_eq!(runs[0].status, RunStatus::Queued);
    assert!(
        h.workers.calls().is_empty(),
        "nothing starts before the slot"
    );

    h.clock.set(at("10:30"));
    let run = h.wait_for_run(runs[0].id, RunStatus::Succeeded).await;
    assert_eq!(run.started_at, Some(at("10:30")));
    assert_eq!(h.workers.calls().len(), 1);
}

#[actix_rt::test]
async fn a_worker_error_holding_nul_fails_its_run_and_leaves_a_concurrent_job_unaffected() {
    let h = Harness::new(config(10)).await;
    let jobs = h
        .plugin("alpha")
        .job(
            JobDeclaration::new("bad", "0 * * * *"),
            failing_handler("broke at byte \u{0} here"),
        )
        .job(JobDeclaration::new("good", "0 * * * *"), ok_handler)
        .register()
        .await;
    h.tick_at(at("11:00")).await;
    h.wait_idle().await;
    let bad = runs_of(&h, jobs[0].id).await.remove(0);
    let good = runs_of(&h, jobs[1].id).await.remove(0);
    assert_eq!(bad.status, RunStatus::Failed);
    assert_eq!(bad.error.as_deref(), Some("broke at byte \u{FFFD} here"));
    assert_eq!(good.status, RunStatus::Succeeded);
}

#[actix_rt::test]
async fn each_run_gets_a_w3c_traceparent_that_its_worker_receives() {
    let h = Harness::new(config(10)).await;
    let seen = Arc::new(std::sync::Mutex::new(None));
    let record = seen.clone();
    h.plugin("alpha")
        .job(JobDeclaration::new("traced", ""), move |ctx| {
            *record.lock().expect("lock") = ctx.traceparent.clone();
            async { Ok(()) }
        })
        .register()
        .await;
    let run = h
        .jobs
        .trigger(JobRef::key("alpha", "traced"), RunTrigger::Manual)
        .await
        .expect("trigger");
    let stored = h.wait_for_run(run.run_id, RunStatus::Succeeded).await;
    let traceparent = stored.traceparent.expect("stored with the run");
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00");
    assert_eq!(
        parts[1],
        run.run_id.simple().to_string(),
        "the trace id is the run id"
    );
    assert_eq!(parts[2].len(), 16);
    assert!(parts[2].chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(parts[3], "01");
    assert_eq!(
        seen.lock().expect("lock").as_deref(),
        Some(traceparent.as_str()),
        "the worker got the same context in runJob"
    );
}
