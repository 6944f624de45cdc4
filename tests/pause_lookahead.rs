//! Pause wins over the claim lookahead: a slot claimed up to 250 ms ahead never starts once
//! `pause` has answered. Real clock and timers: each trial pauses 5–215 ms before a slot.

mod common;

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use common::{TestDb, wait_until};
use entity::prelude::*;
use plugin_jobs::PluginJobs;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::store::{JobDeclaration, JobRef};
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
        .start();
    jobs.register("p", vec![JobDeclaration::new("tick", "* * * * * *")])
        .await
        .expect("register");
    let job = JobRef::key("p", "tick");
    let mut windows = Vec::new();
    for trial in 0..8_i64 {
        let lead = TimeDelta::milliseconds(5 + trial * 30);
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
    let stopped_ahead = runs
        .iter()
        .filter(|run| {
            run.status == RunStatus::Cancelled
                && run.error.as_deref() == Some("job paused before its slot")
        })
        .count();
    eprintln!(
        "{} runs, {stopped_ahead} claimed ahead and stopped by a pause",
        runs.len()
    );
    assert!(
        stopped_ahead > 0,
        "at least one trial paused a slot that was already claimed"
    );
}
