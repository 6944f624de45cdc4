//! Pause, retire and reschedule win over the claim lookahead: a slot claimed up to 250 ms ahead
//! never starts once `pause` has answered (real clock and timers: each trial pauses 0–245 ms
//! before a slot, and at least one must catch a slot already claimed), and retiring a job or
//! changing its schedule cancels its runs that were claimed but have not started.

mod common;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use common::{TestDb, wait_until};
use entity::prelude::*;
use plugin_jobs::PluginJobs;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::store::{
    ClaimDueJobs, JobDeclaration, JobRef, MarkRunning, StoreActor, SyncJobDeclarations,
};
use plugin_jobs::worker::InProcessWorkers;

/// Sleeps until the wall clock reads `at` (positioning a trial in time, not waiting for a
/// condition).
async fn sleep_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        actix_rt::time::sleep(wait).await;
    }
}

#[actix_rt::test]
async fn no_run_starts_after_a_pause_has_answered_even_when_its_slot_was_claimed_ahead() {
    let t = TestDb::new().await;
    let workers = InProcessWorkers::new();
    workers.register("p", "tick", |_ctx| async { Ok(()) });
    let jobs = PluginJobs::builder(t.db.clone())
        .workers(workers.clone())
        .config(SchedulerConfig {
            claim_lookahead: Duration::from_millis(250),
            ..SchedulerConfig::default()
        })
        .start()
        .expect("start");
    jobs.register("p", vec![JobDeclaration::new("tick", "* * * * * *")])
        .await
        .expect("register");
    let job = JobRef::key("p", "tick");
    let mut windows = Vec::new();
    // The runs a pause stopped after their slot was claimed ahead: what the trials are for.
    let stopped_ahead = || async {
        t.all_runs()
            .await
            .iter()
            .filter(|run| {
                run.status == RunStatus::Cancelled
                    && run.error.as_deref() == Some("job paused before the run started")
            })
            .count()
    };
    // Eight trials, 0 to 245 ms before a slot; while none of them caught a slot claimed ahead
    // (a machine stalled past the lookahead), up to eight more with the same leads.
    for trial in 0..16_i64 {
        if trial >= 8 && stopped_ahead().await > 0 {
            break;
        }
        let lead = TimeDelta::milliseconds(trial % 8 * 35);
        let slot = Utc::now().trunc_subsecs(0) + TimeDelta::seconds(2);
        sleep_until(slot - lead).await;
        jobs.pause(job.clone()).await.expect("pause");
        let answered = Utc::now();
        sleep_until(slot + TimeDelta::milliseconds(300)).await;
        windows.push((answered, Utc::now()));
        jobs.resume(job.clone()).await.expect("resume");
    }
    // Let the last resumed slot run, so the test also shows runs do start when not paused.
    let started = || async {
        t.all_runs()
            .await
            .into_iter()
            .filter(|run| run.started_at.is_some())
            .count()
    };
    wait_until(
        "a run starts after resume",
        Duration::from_secs(5),
        || async { started().await > 0 },
    )
    .await;
    let runs = t.all_runs().await;
    for run in &runs {
        let Some(started_at) = run.started_at else {
            continue;
        };
        for (answered, resumed) in &windows {
            assert!(
                !(started_at > *answered && started_at < *resumed),
                "run {} for slot {} started at {started_at} after the pause answered at {answered}",
                run.id,
                run.scheduled_for
            );
        }
    }
    let stopped_ahead = stopped_ahead().await;
    eprintln!(
        "{} trials, {} runs, {stopped_ahead} claimed ahead and stopped by a pause",
        windows.len(),
        runs.len()
    );
    assert!(
        stopped_ahead > 0,
        "at least one trial paused a slot that was already claimed"
    );
}

/// Claims the job's slot at 10:00 one second ahead, then syncs `jobs`; answers whether the
/// claimed run could still start, and the run as stored.
async fn claim_ahead_then_sync(jobs: Vec<JobDeclaration>) -> (bool, PluginJobRunModel) {
    let t = TestDb::new().await;
    let store = actix::Actor::start(StoreActor::new(t.db.clone()));
    let sync = |jobs, now: &str| SyncJobDeclarations {
        plugin_id: "p".to_owned(),
        jobs,
        now: common::at(now),
    };
    store
        .send(sync(
            vec![JobDeclaration::new("tick", "0 * * * *")],
            "09:30",
        ))
        .await
        .expect("mailbox")
        .expect("register");
    let claimed = store
        .send(ClaimDueJobs {
            now: common::at("09:59"),
            limit: 10,
            plugin_ids: vec!["p".to_owned()],
            plugin_limits: Default::default(),
            instance_id: "a".to_owned(),
            misfire_grace: Duration::from_secs(60),
            lookahead: Duration::from_secs(60),
        })
        .await
        .expect("mailbox")
        .expect("claim");
    let run = claimed.claimed[0].run.clone();
    assert_eq!(run.scheduled_for, common::at("10:00"), "claimed ahead");
    store
        .send(sync(jobs, "09:59"))
        .await
        .expect("mailbox")
        .expect("sync");
    let started = store
        .send(MarkRunning {
            run_id: run.id,
            now: common::at("10:00"),
        })
        .await
        .expect("mailbox")
        .expect("mark running");
    (started, t.run(run.id).await)
}

#[actix_rt::test]
async fn a_schedule_change_cancels_the_old_schedules_slot_claimed_ahead() {
    let (started, run) =
        claim_ahead_then_sync(vec![JobDeclaration::new("tick", "30 * * * *")]).await;
    assert!(!started, "the old slot does not start");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(
        run.error.as_deref(),
        Some("job rescheduled before its slot")
    );
}

#[actix_rt::test]
async fn retiring_a_job_cancels_its_slot_claimed_ahead() {
    let (started, run) = claim_ahead_then_sync(Vec::new()).await;
    assert!(!started, "a retired job's slot does not start");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_eq!(
        run.error.as_deref(),
        Some("job retired before the run started")
    );
}

#[actix_rt::test]
async fn an_unchanged_declaration_keeps_the_slot_claimed_ahead() {
    let (started, run) =
        claim_ahead_then_sync(vec![JobDeclaration::new("tick", "0 * * * *")]).await;
    assert!(started, "nothing changed: the slot runs");
    assert_eq!(run.status, RunStatus::Running);
}
