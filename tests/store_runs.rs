//! The run half of the StoreActor: creating runs, their transitions (a terminal run is never
//! written again), heartbeats, rescue of abandoned runs, cancellation by plugin, pruning, and
//! the run reads.

mod common;

use std::time::Duration;

use actix::Actor;

use chrono::TimeDelta;
use common::{TestDb, at, job_row, run_row};
use entity::prelude::*;
use plugin_jobs::Error;
use plugin_jobs::store::{
    CancelPluginRuns, CompleteRun, CreateRun, GetRun, Heartbeat, ListRuns, MarkRunning, PruneRuns,
    RescueStaleRuns, SetJobBlock,
};

fn create(job: &PluginJobModel, trigger: RunTrigger, now: &str) -> CreateRun {
    CreateRun {
        job_id: job.id,
        trigger,
        payload: None,
        instance_id: "instance-a".to_owned(),
        now: at(now),
    }
}

fn complete(run_id: uuid::Uuid, status: RunStatus, error: Option<&str>, now: &str) -> CompleteRun {
    CompleteRun {
        run_id,
        status,
        error: error.map(str::to_owned),
        logs: None,
        block_until: None,
        now: at(now),
    }
}

#[actix_rt::test]
async fn a_run_is_created_queued_marked_running_and_completed() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "a")).await;
    for trigger in [RunTrigger::Manual, RunTrigger::Retry, RunTrigger::Schedule] {
        let run = store
            .send(create(&job, trigger, "10:00"))
            .await
            .expect("mailbox")
            .expect("create");
        let stored = t.run(run.id).await;
        assert_eq!(stored.status, RunStatus::Queued);
        assert_eq!(stored.trigger, trigger);
        assert_eq!(stored.scheduled_for, at("10:00"));
        assert_eq!(stored.instance_id.as_deref(), Some("instance-a"));
        assert_eq!(stored.started_at, None);

        let started = store
            .send(MarkRunning {
                run_id: run.id,
                now: at("10:00"),
            })
            .await
            .expect("mailbox")
            .expect("mark running");
        assert!(started);
        let stored = t.run(run.id).await;
        assert_eq!(stored.status, RunStatus::Running);
        assert_eq!(stored.started_at, Some(at("10:00")));

        let done = store
            .send(CompleteRun {
                logs: Some(serde_json::json!([{"level": "info", "message": "hello"}])),
                ..complete(
                    run.id,
                    RunStatus::Succeeded,
                    None,
                    "2024-01-15T10:00:02.500Z",
                )
            })
            .await
            .expect("mailbox")
            .expect("complete");
        assert!(done);
        let stored = t.run(run.id).await;
        assert_eq!(stored.status, RunStatus::Succeeded);
        assert_eq!(stored.error, None);
        assert_eq!(stored.duration_ms, Some(2_500));
        assert_eq!(stored.finished_at, Some(at("2024-01-15T10:00:02.500Z")));
        assert_eq!(stored.logs[0]["message"], "hello");
    }
}

#[actix_rt::test]
async fn a_failed_run_keeps_its_error_and_a_cancelled_one_without_details_has_none() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "a")).await;
    let run = store
        .send(create(&job, RunTrigger::Manual, "10:00"))
        .await
        .expect("mailbox")
        .expect("create");
    store
        .send(MarkRunning {
            run_id: run.id,
            now: at("10:00"),
        })
        .await
        .expect("mailbox")
        .expect("running");
    store
        .send(complete(
            run.id,
            RunStatus::Failed,
            Some("Worker crashed"),
            "10:01",
        ))
        .await
        .expect("mailbox")
        .expect("complete");
    let failed = t.run(run.id).await;
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("Worker crashed"));
    assert_eq!(failed.duration_ms, Some(60_000));

    let run = store
        .send(create(&job, RunTrigger::Manual, "10:02"))
        .await
        .expect("mailbox")
        .expect("create");
    store
        .send(complete(run.id, RunStatus::Cancelled, None, "10:03"))
        .await
        .expect("mailbox")
        .expect("complete");
    let cancelled = t.run(run.id).await;
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.error, None);
    assert_eq!(
        cancelled.duration_ms, None,
        "a run that never started has no duration"
    );
}

#[actix_rt::test]
async fn a_cancelled_run_stays_cancelled_when_a_late_reply_arrives() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "a")).await;
    let run = store
        .send(create(&job, RunTrigger::Manual, "10:00"))
        .await
        .expect("mailbox")
        .expect("create");
    store
        .send(MarkRunning {
            run_id: run.id,
            now: at("10:00"),
        })
        .await
        .expect("mailbox")
        .expect("running");
    assert!(
        store
            .send(complete(
                run.id,
                RunStatus::Cancelled,
                Some("Plugin unregistered"),
                "10:01"
            ))
            .await
            .expect("mailbox")
            .expect("cancel")
    );
    let late = store
        .send(complete(run.id, RunStatus::Succeeded, None, "10:02"))
        .await
        .expect("mailbox")
        .expect("late completion is not an error");
    assert!(!late, "the late reply reports that nothing changed");
    let stored = t.run(run.id).await;
    assert_eq!(stored.status, RunStatus::Cancelled);
    assert_eq!(stored.error.as_deref(), Some("Plugin unregistered"));
    assert_eq!(stored.finished_at, Some(at("10:01")));
    let restarted = store
        .send(MarkRunning {
            run_id: run.id,
            now: at("10:03"),
        })
        .await
        .expect("mailbox")
        .expect("mark running");
    assert!(!restarted, "a finished run never goes back to running");
    assert_eq!(t.run(run.id).await.status, RunStatus::Cancelled);
}

#[actix_rt::test]
async fn completing_with_a_live_status_or_an_unknown_run_is_an_error() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "a")).await;
    let run = store
        .send(create(&job, RunTrigger::Manual, "10:00"))
        .await
        .expect("mailbox")
        .expect("create");
    let err = store
        .send(complete(run.id, RunStatus::Running, None, "10:01"))
        .await
        .expect("mailbox")
        .expect_err("running is not an outcome");
    assert!(err.to_string().contains("not running"), "{err}");
    let missing = uuid::Uuid::new_v4();
    let err = store
        .send(complete(missing, RunStatus::Succeeded, None, "10:01"))
        .await
        .expect("mailbox")
        .expect_err("unknown run");
    assert!(
        matches!(err, Error::RunNotFound(id) if id == missing),
        "{err:?}"
    );
    assert_eq!(t.run(run.id).await.status, RunStatus::Queued);
}

#[actix_rt::test]
async fn creating_a_run_checks_the_job_atomically() {
    let t = TestDb::new().await;
    let store = t.store();
    let active = t.insert_job(job_row("alpha", "active")).await;
    let mut paused = job_row("alpha", "paused");
    paused.status = JobStatus::Paused;
    let paused = t.insert_job(paused).await;

    let unknown = store
        .send(CreateRun {
            job_id: uuid::Uuid::new_v4(),
            ..create(&active, RunTrigger::Manual, "10:00")
        })
        .await
        .expect("mailbox")
        .expect_err("unknown job");
    assert!(unknown.to_string().contains("Job not found"), "{unknown}");
    let not_active = store
        .send(create(&paused, RunTrigger::Manual, "10:00"))
        .await
        .expect("mailbox")
        .expect_err("paused job");
    assert!(
        not_active
            .to_string()
            .contains("is paused, so it cannot be triggered"),
        "{not_active}"
    );

    store
        .send(create(&active, RunTrigger::Manual, "10:00"))
        .await
        .expect("mailbox")
        .expect("first");
    let twice = store
        .send(create(&active, RunTrigger::Manual, "10:00"))
        .await
        .expect("mailbox")
        .expect_err("live run");
    assert!(twice.to_string().contains("already running"), "{twice}");
    assert_eq!(t.all_runs().await.len(), 1);
}

#[actix_rt::test]
async fn two_triggers_at_the_same_instant_create_exactly_one_run() {
    let t = TestDb::new().await;
    let store = t.store();
    let other = t.second_store().await;
    let job = t.insert_job(job_row("alpha", "a")).await;
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let target = if i % 2 == 0 { &store } else { &other };
            target.send(create(&job, RunTrigger::Manual, "10:00"))
        })
        .collect();
    let results = futures_util::future::join_all(requests).await;
    let created = results
        .into_iter()
        .map(|result| result.expect("mailbox"))
        .filter(Result::is_ok)
        .count();
    assert_eq!(created, 1);
    assert_eq!(t.all_runs().await.len(), 1);
}

#[actix_rt::test]
async fn a_blocked_job_cannot_be_triggered_until_the_block_passes() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "a")).await;
    store
        .send(SetJobBlock {
            job_id: job.id,
            blocked_until: Some(at("10:05")),
            now: at("10:00"),
        })
        .await
        .expect("mailbox")
        .expect("block");
    let err = store
        .send(create(&job, RunTrigger::Manual, "10:01"))
        .await
        .expect("mailbox")
        .expect_err("blocked");
    assert!(
        err.to_string().contains("already running") && err.to_string().contains("timed-out"),
        "{err}"
    );
    store
        .send(create(&job, RunTrigger::Manual, "10:06"))
        .await
        .expect("mailbox")
        .expect("block passed");
}

#[actix_rt::test]
async fn heartbeat_refreshes_only_the_listed_live_runs() {
    let t = TestDb::new().await;
    let store = t.store();
    let a = t.insert_job(job_row("alpha", "a")).await;
    let b = t.insert_job(job_row("alpha", "b")).await;
    let c = t.insert_job(job_row("alpha", "c")).await;
    let live = t.insert_run(run_row(&a)).await.expect("insert");
    let unlisted = t.insert_run(run_row(&b)).await.expect("insert");
    let finished = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Succeeded,
            ..run_row(&c)
        })
        .await
        .expect("insert");
    let moved = store
        .send(Heartbeat {
            run_ids: vec![live.id, finished.id],
            now: at("10:10"),
        })
        .await
        .expect("mailbox")
        .expect("heartbeat");
    assert_eq!(moved, 1);
    assert_eq!(t.run(live.id).await.heartbeat_at, Some(at("10:10")));
    assert_eq!(t.run(unlisted.id).await.heartbeat_at, Some(at("10:00")));
    assert_eq!(t.run(finished.id).await.heartbeat_at, Some(at("10:00")));
}

#[actix_rt::test]
async fn rescue_fails_live_runs_with_stale_heartbeats_and_only_those() {
    let t = TestDb::new().await;
    let store = t.store();
    let jobs: Vec<_> = futures_util::future::join_all(
        ["stale-running", "stale-queued", "fresh", "finished"]
            .map(|key| t.insert_job(job_row("alpha", key))),
    )
    .await;
    let stale_running = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Running,
            started_at: Some(at("10:00")),
            instance_id: Some("dead-instance".to_owned()),
            ..run_row(&jobs[0])
        })
        .await
        .expect("insert");
    let stale_queued = t.insert_run(run_row(&jobs[1])).await.expect("insert");
    let fresh = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Running,
            heartbeat_at: Some(at("10:00") + TimeDelta::seconds(45)),
            ..run_row(&jobs[2])
        })
        .await
        .expect("insert");
    let finished = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Failed,
            ..run_row(&jobs[3])
        })
        .await
        .expect("insert");

    // At 10:01 with a 30 s lease, heartbeats before 10:00:30 are stale.
    let rescued = store
        .send(RescueStaleRuns {
            now: at("10:01"),
            lease: Duration::from_secs(30),
            spare: Vec::new(),
        })
        .await
        .expect("mailbox")
        .expect("rescue");
    let mut ids: Vec<_> = rescued.iter().map(|r| r.run_id).collect();
    ids.sort();
    let mut expected = vec![stale_running.id, stale_queued.id];
    expected.sort();
    assert_eq!(ids, expected);

    let run = t.run(stale_running.id).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.expect("rescued runs say why");
    assert!(
        error.contains("abandoned") && error.contains("dead-instance"),
        "{error}"
    );
    assert_eq!(run.duration_ms, Some(60_000));
    assert_eq!(run.finished_at, Some(at("10:01")));
    assert!(
        !error.contains("before it started"),
        "this one had started: {error}"
    );
    let queued = t.run(stale_queued.id).await;
    assert_eq!(queued.status, RunStatus::Failed);
    let error = queued.error.unwrap_or_default();
    assert!(
        error.starts_with("abandoned before it started: instance"),
        "{error}"
    );
    assert_eq!(t.run(fresh.id).await.status, RunStatus::Running);
    assert_eq!(t.run(finished.id).await.status, RunStatus::Failed);
    assert_eq!(
        t.run(finished.id).await.error,
        None,
        "a finished run is not touched"
    );
    // The jobs of the runs it failed are failing, in the same transaction; the others are as
    // they were (a run inserted failed goes through no outcome).
    let failing: Vec<bool> = futures_util::future::join_all(jobs.iter().map(|job| t.job(job.id)))
        .await
        .iter()
        .map(|job| job.failing)
        .collect();
    assert_eq!(failing, [true, true, false, false]);
}

#[actix_rt::test]
async fn cancelling_a_plugins_runs_records_the_reason_and_duration_only_when_started() {
    let t = TestDb::new().await;
    let store = t.store();
    let a = t.insert_job(job_row("alpha", "a")).await;
    let b = t.insert_job(job_row("alpha", "b")).await;
    let other = t.insert_job(job_row("beta", "c")).await;
    let running = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Running,
            started_at: Some(at("10:00")),
            ..run_row(&a)
        })
        .await
        .expect("insert");
    let queued = t.insert_run(run_row(&b)).await.expect("insert");
    let untouched = t.insert_run(run_row(&other)).await.expect("insert");
    let mut cancelled = store
        .send(CancelPluginRuns {
            plugin_id: "alpha".to_owned(),
            instance_id: None,
            reason: "Plugin unregistered".to_owned(),
            now: at("10:00") + TimeDelta::seconds(7),
        })
        .await
        .expect("mailbox")
        .expect("cancel");
    cancelled.sort();
    let mut expected = vec![running.id, queued.id];
    expected.sort();
    assert_eq!(cancelled, expected);
    let running = t.run(running.id).await;
    assert_eq!(running.status, RunStatus::Cancelled);
    assert_eq!(running.error.as_deref(), Some("Plugin unregistered"));
    assert!(running.duration_ms.is_some_and(|d| d >= 0));
    let queued = t.run(queued.id).await;
    assert_eq!(queued.status, RunStatus::Cancelled);
    assert_eq!(queued.duration_ms, None);
    assert_eq!(t.run(untouched.id).await.status, RunStatus::Queued);
}

#[actix_rt::test]
async fn listing_runs_is_newest_first_with_a_default_and_a_custom_limit() {
    let t = TestDb::new().await;
    let store = t.store();
    let a = t.insert_job(job_row("alpha", "a")).await;
    let b = t.insert_job(job_row("alpha", "b")).await;
    for minute in 0..60 {
        let created = at("10:00") + TimeDelta::minutes(minute);
        t.insert_run(PluginJobRunModel {
            status: RunStatus::Succeeded,
            created_at: created,
            scheduled_for: created,
            ..run_row(&a)
        })
        .await
        .expect("insert");
    }
    t.insert_run(PluginJobRunModel {
        created_at: at("12:00"),
        ..run_row(&b)
    })
    .await
    .expect("insert");

    let runs = store
        .send(ListRuns::of_job(a.id))
        .await
        .expect("mailbox")
        .expect("list");
    assert_eq!(runs.len(), 50, "default limit");
    assert_eq!(runs[0].created_at, at("10:59"));
    assert!(
        runs.windows(2).all(|w| w[0].created_at > w[1].created_at),
        "newest first"
    );

    let few = store
        .send(ListRuns {
            limit: 5,
            ..ListRuns::of_job(a.id)
        })
        .await
        .expect("mailbox")
        .expect("list");
    assert_eq!(few.len(), 5);

    let plugin = store
        .send(ListRuns {
            limit: 100,
            ..ListRuns::of_plugin("alpha")
        })
        .await
        .expect("mailbox")
        .expect("list");
    assert_eq!(plugin.len(), 61);
    assert_eq!(plugin[0].job_id, b.id);

    let one = store
        .send(GetRun(plugin[0].id))
        .await
        .expect("mailbox")
        .expect("get");
    assert_eq!(one.map(|run| run.id), Some(plugin[0].id));
    let none = store
        .send(GetRun(uuid::Uuid::new_v4()))
        .await
        .expect("mailbox")
        .expect("get");
    assert!(none.is_none());
}

#[actix_rt::test]
async fn prune_keeps_the_newest_runs_per_job_drops_expired_ones_and_never_live_ones() {
    let t = TestDb::new().await;
    let store = t.store();
    let a = t.insert_job(job_row("alpha", "a")).await;
    let b = t.insert_job(job_row("alpha", "b")).await;
    let now = at("2024-03-01T00:00:00Z");
    // Job a: 10 recent finished runs, and one old live run that must survive.
    for i in 0..10 {
        let created = now - TimeDelta::hours(i + 1);
        t.insert_run(PluginJobRunModel {
            status: RunStatus::Succeeded,
            created_at: created,
            ..run_row(&a)
        })
        .await
        .expect("insert");
    }
    let old_live = t
        .insert_run(PluginJobRunModel {
            created_at: now - TimeDelta::days(90),
            ..run_row(&a)
        })
        .await
        .expect("insert");
    // Job b: 2 recent runs, and 3 older than the 30-day retention.
    for i in 0..2 {
        t.insert_run(PluginJobRunModel {
            status: RunStatus::Failed,
            created_at: now - TimeDelta::hours(i + 1),
            ..run_row(&b)
        })
        .await
        .expect("insert");
    }
    for i in 0..3 {
        t.insert_run(PluginJobRunModel {
            status: RunStatus::Failed,
            created_at: now - TimeDelta::days(31 + i),
            ..run_row(&b)
        })
        .await
        .expect("insert");
    }
    let deleted = store
        .send(PruneRuns {
            now,
            keep_per_job: 4,
            retention: Duration::from_secs(30 * 86_400),
            pass_budget: PruneRuns::PASS_BUDGET,
        })
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(deleted, 6 + 3);
    let runs = t.all_runs().await;
    let of_a: Vec<_> = runs.iter().filter(|run| run.job_id == a.id).collect();
    assert_eq!(of_a.len(), 5, "4 newest finished + the live one");
    assert!(of_a.iter().any(|run| run.id == old_live.id));
    let newest_kept = of_a
        .iter()
        .filter(|run| !run.status.is_live())
        .map(|run| run.created_at)
        .min();
    assert_eq!(newest_kept, Some(now - TimeDelta::hours(4)));
    assert_eq!(runs.iter().filter(|run| run.job_id == b.id).count(), 2);
}

/// The surplus is found from the `(job_id, created_at, id)` index without reading the status of
/// the runs kept: a live run among the newest shifts where the kept runs end by one, and runs of
/// one instant are ordered by id, so exactly the newest `keep_per_job` finished runs stay.
#[actix_rt::test]
async fn prune_keeps_exactly_the_newest_finished_runs_beside_a_live_one_and_runs_of_one_instant() {
    let t = TestDb::new().await;
    let store = t.store();
    let (live_newest, same_instant) = (
        t.insert_job(job_row("alpha", "live")).await,
        t.insert_job(job_row("alpha", "instant")).await,
    );
    let now = at("2024-03-01T00:00:00Z");
    let finished = |job: &PluginJobModel, created_at| PluginJobRunModel {
        status: RunStatus::Succeeded,
        created_at,
        ..run_row(job)
    };
    let mut runs: Vec<PluginJobRunModel> = (0..10)
        .map(|i| finished(&live_newest, now - TimeDelta::minutes(i + 1)))
        .collect();
    // Ten runs created in the same millisecond.
    runs.extend((0..10).map(|_| finished(&same_instant, now - TimeDelta::minutes(1))));
    t.insert_runs(&runs).await;
    let live = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Running,
            created_at: now,
            ..run_row(&live_newest)
        })
        .await
        .expect("insert");
    let pruned = store
        .send(PruneRuns {
            now,
            keep_per_job: 4,
            retention: Duration::from_secs(30 * 86_400),
            pass_budget: PruneRuns::PASS_BUDGET,
        })
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(pruned, 6 + 6);
    let left = t.all_runs().await;
    let mut of_live: Vec<_> = left
        .iter()
        .filter(|run| run.job_id == live_newest.id)
        .collect();
    of_live.sort_by_key(|run| std::cmp::Reverse(run.created_at));
    assert_eq!(of_live.len(), 5, "the live run and the 4 newest finished");
    assert_eq!(of_live[0].id, live.id);
    assert_eq!(of_live[4].created_at, now - TimeDelta::minutes(4));
    let mut expected: Vec<uuid::Uuid> = runs
        .iter()
        .filter(|run| run.job_id == same_instant.id)
        .map(|run| run.id)
        .collect();
    expected.sort_unstable();
    let mut kept: Vec<uuid::Uuid> = left
        .iter()
        .filter(|run| run.job_id == same_instant.id)
        .map(|run| run.id)
        .collect();
    kept.sort_unstable();
    assert_eq!(
        kept,
        expected[6..],
        "the four that sort last are the newest"
    );
}

#[actix_rt::test]
async fn starts_and_outcomes_sent_together_are_written_in_one_batch_with_each_answer_kept() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut runs = Vec::new();
    for n in 0..40 {
        let job = t.insert_job(job_row("alpha", &format!("job-{n}"))).await;
        runs.push(t.insert_run(run_row(&job)).await.expect("insert run"));
    }
    // All starts at once: every one lands, the batch is stamped with its newest `now`.
    let marks = runs.iter().enumerate().map(|(n, run)| {
        store.send(MarkRunning {
            run_id: run.id,
            now: at("10:00") + TimeDelta::milliseconds(n as i64),
        })
    });
    for answer in futures_util::future::join_all(marks).await {
        assert!(answer.expect("mailbox").expect("mark"));
    }
    for run in &runs {
        let stored = t.run(run.id).await;
        assert_eq!(stored.status, RunStatus::Running);
        assert_eq!(
            stored.started_at,
            Some(at("10:00") + TimeDelta::milliseconds(39))
        );
    }

    // Outcomes at once: two for the same run (the first wins), one for an unknown run, one with
    // a live status; the others each get their own status and error.
    let mut outcomes = Vec::new();
    for (n, run) in runs.iter().enumerate() {
        let status = if n % 2 == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        let error = (n % 2 == 1).then(|| format!("error {n}"));
        outcomes.push(complete(
            run.id,
            status,
            error.as_deref(),
            "2024-01-15T10:00:01Z",
        ));
    }
    outcomes.push(complete(
        runs[0].id,
        RunStatus::Cancelled,
        Some("late"),
        "2024-01-15T10:00:01Z",
    ));
    outcomes.push(complete(
        uuid::Uuid::now_v7(),
        RunStatus::Succeeded,
        None,
        "2024-01-15T10:00:01Z",
    ));
    outcomes.push(complete(
        runs[1].id,
        RunStatus::Running,
        None,
        "2024-01-15T10:00:01Z",
    ));
    let answers = futures_util::future::join_all(outcomes.into_iter().map(|c| store.send(c))).await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("mailbox")).collect();
    for answer in &answers[..40] {
        assert!(matches!(answer, Ok(true)), "{answer:?}");
    }
    assert!(
        matches!(answers[40], Ok(false)),
        "the second outcome of a run changes nothing"
    );
    assert!(
        matches!(answers[41], Err(Error::RunNotFound(_))),
        "{:?}",
        answers[41]
    );
    assert!(
        matches!(answers[42], Err(Error::InvalidInput(_))),
        "{:?}",
        answers[42]
    );
    for (n, run) in runs.iter().enumerate() {
        let stored = t.run(run.id).await;
        let expected = if n % 2 == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        assert_eq!(stored.status, expected);
        assert_eq!(stored.error, (n % 2 == 1).then(|| format!("error {n}")));
        assert_eq!(stored.finished_at, Some(at("2024-01-15T10:00:01Z")));
        let started = at("10:00") + TimeDelta::milliseconds(39);
        assert_eq!(
            stored.duration_ms,
            Some((at("2024-01-15T10:00:01Z") - started).num_milliseconds())
        );
    }
}

#[actix_rt::test]
async fn outcomes_that_each_carry_their_own_logs_and_error_are_written_by_a_few_statements() {
    let t = TestDb::new().await;
    let (store, updates) = t.recording_store("UPDATE \"plugin_job_runs\"");
    let mut runs = Vec::new();
    for n in 0..300 {
        let job = t.insert_job(job_row("alpha", &format!("job-{n}"))).await;
        let row = PluginJobRunModel {
            status: RunStatus::Running,
            started_at: Some(at("10:00")),
            // Lines the run already has: an outcome without lines keeps them.
            logs: serde_json::json!([{"message": format!("earlier {n}")}]),
            ..run_row(&job)
        };
        runs.push(t.insert_run(row).await.expect("insert run"));
    }

    // Every third run without lines; the others each with a line of their own, and every odd
    // run failed with an error of its own.
    let outcomes = runs.iter().enumerate().map(|(n, run)| CompleteRun {
        run_id: run.id,
        status: if n % 2 == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        },
        error: (n % 2 == 1).then(|| format!("error {n}")),
        logs: (n % 3 != 0).then(|| serde_json::json!([{"message": format!("line {n}")}])),
        block_until: None,
        now: at("2024-01-15T10:00:02Z"),
    });
    let answers = futures_util::future::join_all(outcomes.map(|c| store.send(c))).await;
    for answer in answers {
        assert!(matches!(answer.expect("mailbox"), Ok(true)));
    }

    for (n, run) in runs.iter().enumerate() {
        let stored = t.run(run.id).await;
        let status = if n % 2 == 0 {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        assert_eq!(stored.status, status, "run {n}");
        assert_eq!(stored.error, (n % 2 == 1).then(|| format!("error {n}")));
        let line = if n % 3 == 0 {
            format!("earlier {n}")
        } else {
            format!("line {n}")
        };
        assert_eq!(
            stored.logs,
            serde_json::json!([{"message": line}]),
            "run {n}"
        );
        assert_eq!(stored.duration_ms, Some(2_000));
        assert_eq!(stored.finished_at, Some(at("2024-01-15T10:00:02Z")));
    }
    // One statement per batch for the runs with lines and one for those without: 300 outcomes
    // whose values all differ must not cost a statement each.
    let updates = updates.lock().expect("statements").len();
    assert!(
        (1..=10).contains(&updates),
        "{updates} updates of runs for 300 outcomes"
    );
}

#[actix_rt::test]
async fn a_batch_of_starts_answers_false_for_a_run_cancelled_before_it_started() {
    let t = TestDb::new().await;
    let store = t.store();
    let queued = t.insert_job(job_row("alpha", "queued")).await;
    let queued = t.insert_run(run_row(&queued)).await.expect("run");
    let gone = t.insert_job(job_row("alpha", "gone")).await;
    let mut cancelled = run_row(&gone);
    cancelled.status = RunStatus::Cancelled;
    let cancelled = t.insert_run(cancelled).await.expect("run");
    let marks = [queued.id, cancelled.id].map(|run_id| {
        store.send(MarkRunning {
            run_id,
            now: at("10:00"),
        })
    });
    let answers: Vec<bool> = futures_util::future::join_all(marks)
        .await
        .into_iter()
        .map(|a| a.expect("mailbox").expect("mark"))
        .collect();
    assert_eq!(answers, [true, false]);
    assert_eq!(t.run(queued.id).await.status, RunStatus::Running);
    assert_eq!(t.run(cancelled.id).await.status, RunStatus::Cancelled);
}

#[actix_rt::test]
async fn an_outcome_with_nul_bytes_is_stored_cleaned_and_does_not_fail_its_batch() {
    let t = TestDb::new().await;
    let store = t.store();
    let bad_job = t.insert_job(job_row("alpha", "bad")).await;
    let good_job = t.insert_job(job_row("alpha", "good")).await;
    let mut runs = Vec::new();
    for job in [&bad_job, &good_job] {
        let mut run = run_row(job);
        run.status = RunStatus::Running;
        run.started_at = Some(at("10:00"));
        runs.push(t.insert_run(run).await.expect("insert run"));
    }
    let bad = CompleteRun {
        logs: Some(serde_json::json!([{"level": "info\u{0}", "message": "a\u{0}b", "k\u{0}": 1}])),
        ..complete(
            runs[0].id,
            RunStatus::Failed,
            Some("worker said \u{0}no"),
            "10:00",
        )
    };
    let good = complete(runs[1].id, RunStatus::Succeeded, None, "10:00");
    // Sent together, so they share one group commit.
    let (bad, good) = futures_util::join!(store.send(bad), store.send(good));
    assert!(bad.expect("mailbox").expect("bad outcome recorded"));
    assert!(good.expect("mailbox").expect("good outcome recorded"));
    let stored = t.run(runs[0].id).await;
    assert_eq!(stored.status, RunStatus::Failed);
    assert_eq!(stored.error.as_deref(), Some("worker said \u{FFFD}no"));
    assert_eq!(
        stored.logs,
        serde_json::json!([{"level": "info\u{FFFD}", "message": "a\u{FFFD}b", "k\u{FFFD}": 1}])
    );
    assert_eq!(t.run(runs[1].id).await.status, RunStatus::Succeeded);
}

#[actix_rt::test]
async fn an_outcome_with_a_huge_error_keeps_its_head_and_says_how_long_it_was() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "loud")).await;
    let mut run = run_row(&job);
    run.status = RunStatus::Running;
    let run = t.insert_run(run).await.expect("insert run");
    // 'é' is two bytes: the cap falls inside one, and the cut moves back to a boundary.
    let error = format!("x{}", "é".repeat(600_000));
    let sent = complete(run.id, RunStatus::Failed, Some(&error), "10:00");
    assert!(store.send(sent).await.expect("mailbox").expect("recorded"));
    let stored = t.run(run.id).await.error.expect("an error");
    let (head, tail) = stored.split_once('…').expect("a truncation mark");
    assert!(
        head.len() <= plugin_jobs::store::ERROR_CAP,
        "{} bytes kept",
        head.len()
    );
    assert!(head.len() > plugin_jobs::store::ERROR_CAP - 2);
    assert!(error.starts_with(head));
    assert_eq!(tail, " (truncated: 1200001 bytes in all)");
    // Cut once more (the run's actor cuts it for its event, the store for its row), it is the
    // same: the note keeps the original length.
    let mut again = stored.clone();
    plugin_jobs::store::bound_error(&mut again);
    assert_eq!(again, stored);
}

#[actix_rt::test]
async fn an_outcome_that_cannot_be_written_fails_alone_and_not_its_batch() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "good")).await;
    let mut run = run_row(&job);
    run.status = RunStatus::Running;
    let run = t.insert_run(run).await.expect("insert run");
    // A run id that does not exist fails on its own; the real run beside it is recorded.
    let missing = complete(uuid::Uuid::now_v7(), RunStatus::Failed, None, "10:00");
    let good = complete(run.id, RunStatus::Succeeded, None, "10:00");
    let (missing, good) = futures_util::join!(store.send(missing), store.send(good));
    assert!(matches!(
        missing.expect("mailbox"),
        Err(Error::RunNotFound(_))
    ));
    assert!(good.expect("mailbox").expect("recorded"));
    assert_eq!(t.run(run.id).await.status, RunStatus::Succeeded);
}

#[actix_rt::test]
async fn rescue_spares_the_runs_its_own_instance_still_tracks() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "a")).await;
    let other = t.insert_job(job_row("alpha", "b")).await;
    let stale = |job: &PluginJobModel| PluginJobRunModel {
        status: RunStatus::Running,
        started_at: Some(at("10:00")),
        ..run_row(job)
    };
    let tracked = t.insert_run(stale(&job)).await.expect("insert");
    let abandoned = t.insert_run(stale(&other)).await.expect("insert");
    let rescued = store
        .send(RescueStaleRuns {
            now: at("10:01"),
            lease: Duration::from_secs(30),
            spare: vec![tracked.id],
        })
        .await
        .expect("mailbox")
        .expect("rescue");
    assert_eq!(
        rescued.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![abandoned.id]
    );
    assert_eq!(t.run(tracked.id).await.status, RunStatus::Running);
}

#[actix_rt::test]
async fn a_store_with_a_clock_stamps_heartbeats_when_it_writes_them() {
    let t = TestDb::new().await;
    let clock = plugin_jobs::clock::ManualClock::new(at("10:05"));
    let store = actix::Actor::start(
        plugin_jobs::store::StoreActor::new(t.db.clone()).with_clock(std::sync::Arc::new(clock)),
    );
    let job = t.insert_job(job_row("alpha", "a")).await;
    let run = t.insert_run(run_row(&job)).await.expect("insert");
    store
        .send(Heartbeat {
            run_ids: vec![run.id],
            // Stamped when sent; the write happens later, at 10:05 on the store's clock.
            now: at("10:00"),
        })
        .await
        .expect("mailbox")
        .expect("heartbeat");
    assert_eq!(t.run(run.id).await.heartbeat_at, Some(at("10:05")));
}

#[actix_rt::test]
async fn prune_works_through_more_rows_than_one_batch_and_two_stores_prune_each_row_once() {
    let t = TestDb::new().await;
    let (first, second) = (t.store(), t.second_store().await);
    let job = t.insert_job(job_row("alpha", "a")).await;
    let now = at("2024-03-01T00:00:00Z");
    // 2,500 expired runs and 1,500 recent ones, of which 10 are kept.
    let runs: Vec<PluginJobRunModel> = (0..4_000)
        .map(|i: i64| PluginJobRunModel {
            status: RunStatus::Succeeded,
            created_at: if i < 2_500 {
                now - TimeDelta::days(40) - TimeDelta::seconds(i)
            } else {
                now - TimeDelta::seconds(i)
            },
            ..run_row(&job)
        })
        .collect();
    t.insert_runs(&runs).await;
    let prune = || PruneRuns {
        now,
        keep_per_job: 10,
        retention: Duration::from_secs(30 * 86_400),
        pass_budget: PruneRuns::PASS_BUDGET,
    };
    let (a, b) = futures_util::join!(first.send(prune()), second.send(prune()));
    let pruned = a.expect("mailbox").expect("prune") + b.expect("mailbox").expect("prune");
    // Whatever one store left to the other (PostgreSQL lets one prune at a time), a last pass
    // finishes it, and no row is counted twice.
    let last = first.send(prune()).await.expect("mailbox").expect("prune");
    assert_eq!(pruned + last, 3_990);
    assert_eq!(t.all_runs().await.len(), 10);
}

/// While a table's statistics lag behind its growth (a burst, a fresh installation), a prune
/// must still find each job's surplus from the job's own index: ANDed with the whole range of
/// finished runs in the status index, one job's lookup took 14 ms at 100,000 runs, and a pass
/// looks at a thousand jobs.
#[actix_rt::test]
async fn on_postgres_a_prune_reads_each_jobs_history_from_its_own_index_before_any_analyze() {
    let t = TestDb::new().await;
    if !t.is_postgres() {
        return;
    }
    // No statistics at all, whatever the test's timing: autovacuum would analyze the table.
    t.never_analyze("plugin_job_runs").await;
    let (busy, quiet) = (
        t.insert_job(job_row("alpha", "busy")).await,
        t.insert_job(job_row("alpha", "quiet")).await,
    );
    let now = at("2024-03-01T00:00:00Z");
    let finished = |job: &PluginJobModel, i: i64| PluginJobRunModel {
        status: RunStatus::Succeeded,
        created_at: now - TimeDelta::seconds(i + 1),
        ..run_row(job)
    };
    let runs: Vec<PluginJobRunModel> = (0..20_000)
        .map(|i| finished(&busy, i))
        .chain((0..3).map(|i| finished(&quiet, i)))
        .collect();
    t.insert_runs(&runs).await;
    let (store, sent) = t.recording_store("SELECT");
    let pruned = store
        .send(PruneRuns {
            now,
            keep_per_job: 10_000,
            retention: Duration::from_secs(30 * 86_400),
            pass_budget: PruneRuns::PASS_BUDGET,
        })
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(pruned, 10_000, "the busy job's surplus");
    // Each job's reads: where its newest `keep_per_job` end, its live run, the runs beyond.
    let sent: Vec<_> = sent
        .lock()
        .expect("statements")
        .iter()
        .filter(|statement| statement.sql.contains("\"job_id\" ="))
        .cloned()
        .collect();
    assert!(
        sent.len() >= 5,
        "the busy job's reads (a batch, then the rest) and the quiet job's: {sent:?}"
    );
    t.assert_plans_avoid(sent, "ix_plugin_job_runs_status_created_id")
        .await;
}

/// A pass whose budget is spent stops after its first hundred jobs, and the next pass goes on
/// after the last job it looked at: passes come round every job, each job once a round.
#[actix_rt::test]
async fn prune_passes_trim_a_hundred_jobs_or_more_each_and_go_on_from_where_the_last_stopped() {
    let t = TestDb::new().await;
    let store = t.store();
    let now = at("2024-03-01T00:00:00Z");
    let jobs = jobs_with_three_finished_runs(&t, 1_050, now).await;
    let prune = |pass_budget| PruneRuns {
        now,
        keep_per_job: 1,
        retention: Duration::from_secs(30 * 86_400),
        pass_budget,
    };
    // No budget: every pass stops at 100 jobs (two runs trimmed each), the last at the end of
    // the table.
    let mut passes = Vec::new();
    for _ in 0..11 {
        let pruned = store
            .send(prune(Duration::ZERO))
            .await
            .expect("mailbox")
            .expect("prune");
        passes.push(pruned);
    }
    let mut expected = vec![200; 10];
    expected.push(100);
    assert_eq!(passes, expected, "100 jobs a pass, then the last 50");
    assert_eq!(t.all_runs().await.len(), 1_050);
    // The round is over; the next starts from the first job again, finding nothing.
    let again = store
        .send(prune(PruneRuns::PASS_BUDGET))
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(again, 0);

    // The maintenance's budget: at least 100 jobs a pass, more while it is quick.
    let later = now + TimeDelta::seconds(10);
    t.insert_runs(&finished_runs(&jobs, later)).await;
    let mut passes = Vec::new();
    while passes.iter().sum::<u64>() < 3_150 {
        let pruned = store
            .send(prune(PruneRuns::PASS_BUDGET))
            .await
            .expect("mailbox")
            .expect("prune");
        assert!(pruned > 0, "a pass that trimmed nothing: {passes:?}");
        passes.push(pruned);
        assert!(passes.len() <= 12, "100 jobs a pass at least: {passes:?}");
    }
    assert_eq!(passes.iter().sum::<u64>(), 3_150, "no run counted twice");
    // The round starts where the last pass stopped. Only the pass that reached the end of the
    // table, and the one that came back to jobs already trimmed, trimmed fewer than 100 jobs.
    let short = passes.iter().filter(|&&pruned| pruned < 300).count();
    assert!(short <= 2, "100 jobs a pass at least: {passes:?}");
}

#[actix_rt::test]
async fn with_exactly_a_page_of_jobs_every_prune_pass_trims() {
    let t = TestDb::new().await;
    let store = t.store();
    let now = at("2024-03-01T00:00:00Z");
    let jobs = jobs_with_three_finished_runs(&t, 1_000, now).await;
    // A budget no pass spends: each looks at the whole page of 1,000 jobs.
    let prune = |now| PruneRuns {
        now,
        keep_per_job: 1,
        retention: Duration::from_secs(30 * 86_400),
        pass_budget: Duration::from_secs(3_600),
    };
    let first = store
        .send(prune(now))
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(first, 2_000, "one pass trims every job of the page");
    // The pass ended on the last job of a full page. The next one goes on trimming at once:
    // that used to make it find no job after the last, trim nothing, and leave the history to
    // grow until the pass after.
    let later = now + TimeDelta::seconds(10);
    t.insert_runs(&finished_runs(&jobs, later)).await;
    let second = store
        .send(prune(later))
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(second, 3_000, "each job's 1 + 3 runs trimmed to 1");
}

/// `count` jobs, each with three finished runs created just before `now`.
async fn jobs_with_three_finished_runs(
    t: &TestDb,
    count: usize,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<PluginJobModel> {
    let mut jobs = Vec::with_capacity(count);
    for n in 0..count {
        jobs.push(t.insert_job(job_row("alpha", &format!("job-{n:03}"))).await);
    }
    t.insert_runs(&finished_runs(&jobs, now)).await;
    jobs
}

fn finished_runs(
    jobs: &[PluginJobModel],
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<PluginJobRunModel> {
    jobs.iter()
        .flat_map(|job| {
            (0..3).map(move |i| PluginJobRunModel {
                status: RunStatus::Succeeded,
                created_at: now - TimeDelta::seconds(i + 1),
                ..run_row(job)
            })
        })
        .collect()
}

/// On PostgreSQL the outcome batches are written beside the claims: a batch that waits for a
/// row lock does not hold up the claim behind it. Without that, the claim below would wait in
/// the mailbox until the lock is released, and time out.
#[actix_rt::test]
async fn on_postgres_a_claim_goes_on_while_an_outcome_batch_waits_for_a_lock() {
    use plugin_jobs::store::ClaimDueJobs;

    let t = TestDb::new().await;
    if !t.is_postgres() {
        eprintln!("SQLite writes one batch at a time in the mailbox's order; nothing to check");
        return;
    }
    let store = t.store();
    let due = t.insert_job(job_row("alpha", "due")).await;
    let finishing = t
        .insert_job(PluginJobModel {
            next_run_at: Some(at("2030-01-01T00:00:00Z")),
            ..job_row("beta", "finishing")
        })
        .await;
    let run = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Running,
            started_at: Some(at("10:00")),
            ..run_row(&finishing)
        })
        .await
        .expect("insert run");

    // Another connection holds the finishing job's row, which the batch must update
    // (`last_success_at`) once it has finished the run.
    let holder = t.hold_job_row(finishing.id).await;
    let holder_pid = holder.pid;

    let outcome = actix_rt::spawn({
        let store = store.clone();
        async move {
            store
                .send(CompleteRun {
                    run_id: run.id,
                    status: RunStatus::Succeeded,
                    error: None,
                    logs: None,
                    block_until: None,
                    now: at("2024-01-15T10:00:05Z"),
                })
                .await
        }
    });
    t.wait_blocked_by(holder_pid, "the outcome batch waits for the held job row")
        .await;

    let claim = ClaimDueJobs {
        now: at("10:30"),
        limit: 10,
        plugin_ids: vec!["alpha".to_owned()],
        plugin_limits: Default::default(),
        instance_id: "instance-a".to_owned(),
        misfire_grace: Duration::from_secs(60),
        lookahead: Duration::ZERO,
    };
    let claimed = actix_rt::time::timeout(Duration::from_secs(10), store.send(claim))
        .await
        .expect("the claim waited behind the blocked outcome batch")
        .expect("mailbox")
        .expect("claim");
    assert_eq!(claimed.claimed.len(), 1);
    assert_eq!(claimed.claimed[0].job.id, due.id);
    assert_eq!(
        t.run(run.id).await.status,
        RunStatus::Running,
        "the batch has not committed while it waits"
    );

    holder.release().await;
    let recorded = outcome
        .await
        .expect("outcome task")
        .expect("mailbox")
        .expect("outcome");
    assert!(recorded, "the outcome is recorded once the row is free");
    assert_eq!(t.run(run.id).await.status, RunStatus::Succeeded);
    assert_eq!(
        t.job(finishing.id).await.last_success_at,
        Some(at("2024-01-15T10:00:05Z"))
    );
}

/// A batch beside the claims takes at most its limit of starts and outcomes; the rest make the
/// next batches, and every message still gets its own answer.
#[actix_rt::test]
async fn on_postgres_a_trigger_waits_for_a_transaction_holding_its_job_and_sees_what_it_wrote() {
    let t = TestDb::new().await;
    if !t.is_postgres() {
        eprintln!("skipped: needs DATABASE_URL (row locks are PostgreSQL's)");
        return;
    }
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "quarter")).await;
    let run = t
        .insert_run(PluginJobRunModel {
            status: RunStatus::Running,
            started_at: Some(at("10:00")),
            ..run_row(&job)
        })
        .await
        .expect("insert run");

    // Another instance gives up on the run, as a shutdown does: in one transaction it records
    // the run cancelled and blocks the job, because its worker may still be running it.
    let holder = t.hold_job_row(job.id).await;
    let holder_pid = holder.pid;
    let trigger = actix_rt::spawn({
        let store = store.clone();
        let msg = create(&job, RunTrigger::Manual, "10:01");
        async move { store.send(msg).await }
    });
    t.wait_blocked_by(holder_pid, "the trigger waits for the held job row")
        .await;
    holder
        .commit_with(&format!(
            "UPDATE plugin_job_runs SET status = 'cancelled' WHERE id = '{}'; \
             UPDATE plugin_jobs SET blocked_until = '2024-01-15T11:00:00Z' WHERE id = '{}'",
            run.id, job.id
        ))
        .await;

    // The trigger read the job after that commit: blocked, so no run starts beside the worker.
    // (Reading the job before it and the runs after it saw neither the block nor a live run.)
    let answer = trigger.await.expect("trigger task").expect("mailbox");
    assert!(
        matches!(&answer, Err(Error::AlreadyRunning { detail, .. }) if detail.contains("blocked")),
        "{answer:?}"
    );
    assert_eq!(t.all_runs().await.len(), 1);
}

#[actix_rt::test]
async fn starts_and_outcomes_past_the_batch_limit_are_written_by_the_next_batches() {
    let t = TestDb::new().await;
    let store = plugin_jobs::store::StoreActor::new(t.db.clone())
        .with_batch_limit(2)
        .start();
    let mut queued = Vec::new();
    let mut running = Vec::new();
    for n in 0..3 {
        let job = t.insert_job(job_row("alpha", &format!("queued-{n}"))).await;
        queued.push(t.insert_run(run_row(&job)).await.expect("queued run"));
        let job = t
            .insert_job(job_row("alpha", &format!("running-{n}")))
            .await;
        let run = PluginJobRunModel {
            status: RunStatus::Running,
            started_at: Some(at("10:00")),
            ..run_row(&job)
        };
        running.push(t.insert_run(run).await.expect("running run"));
    }
    let marks = queued.iter().map(|run| {
        store.send(MarkRunning {
            run_id: run.id,
            now: at("2024-01-15T10:00:01Z"),
        })
    });
    let outcomes = running.iter().map(|run| {
        store.send(complete(
            run.id,
            RunStatus::Succeeded,
            None,
            "2024-01-15T10:00:02Z",
        ))
    });
    let (marked, finished) = futures_util::future::join(
        futures_util::future::join_all(marks),
        futures_util::future::join_all(outcomes),
    )
    .await;
    for answer in marked.into_iter().chain(finished) {
        assert!(
            answer.expect("mailbox").expect("write"),
            "each one is written"
        );
    }
    for run in &queued {
        assert_eq!(t.run(run.id).await.status, RunStatus::Running);
    }
    for run in &running {
        assert_eq!(t.run(run.id).await.status, RunStatus::Succeeded);
    }
}
