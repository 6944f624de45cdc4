//! The `MaintenanceActor`'s passes, one at a time: a heartbeat pass refreshes the runs this
//! instance owns, a rescue pass fails runs abandoned by another instance and spares its own, a
//! prune pass trims history.

mod common;

use std::time::Duration;

use chrono::TimeDelta;

use common::{Gate, Harness, at, job_row, run_row, wait_until};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::maintenance::{HeartbeatPass, PrunePass, RescuePass};
use plugin_jobs::scheduler::Tick;
use plugin_jobs::store::{JobDeclaration, JobRef};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// One heartbeat pass, awaited.
async fn heartbeat(h: &Harness) -> plugin_jobs::Result<u64> {
    h.jobs
        .maintenance
        .send(HeartbeatPass)
        .await
        .expect("mailbox")
}

/// The error another instance's rescue records.
const RESCUE: &str = "abandoned: instance elsewhere stopped heartbeating";

/// Fails `run` as another instance's rescue does, behind this instance's back.
async fn rescue_elsewhere(h: &Harness, run: uuid::Uuid) {
    PluginJobRun::update_many()
        .col_expr(PluginJobRunColumn::Status, Expr::value(RunStatus::Failed))
        .col_expr(PluginJobRunColumn::Error, Expr::value(RESCUE))
        .filter(PluginJobRunColumn::Id.eq(run))
        .exec(&h.t.db)
        .await
        .expect("rescue");
}

/// How many `cancelJob` notifications the worker got for `run`.
fn cancel_jobs_sent(h: &Harness, run: uuid::Uuid) -> usize {
    h.workers
        .inner
        .notifications()
        .into_iter()
        .filter(|(_, method, params)| {
            method == "cancelJob" && params["runId"] == run.to_string().as_str()
        })
        .count()
}

/// A harness whose runs are fenced 20 s after the last heartbeat that reached the database
/// (a 30 s lease less two 5 s heartbeat intervals).
async fn fencing_in_twenty_seconds() -> Harness {
    Harness::new(SchedulerConfig {
        run_lease: Duration::from_secs(30),
        heartbeat_interval: Duration::from_secs(5),
        ..SchedulerConfig::default()
    })
    .await
}

/// A manual run of `alpha/slow` that this instance runs until the gate opens.
async fn a_held_run(h: &Harness) -> (Gate, uuid::Uuid) {
    let gate = Gate::default();
    h.plugin("alpha")
        .job(JobDeclaration::new("slow", ""), gate.handler())
        .register()
        .await;
    let run = h
        .jobs
        .trigger(JobRef::key("alpha", "slow"), RunTrigger::Manual)
        .await
        .expect("trigger")
        .run_id;
    h.wait_for_run(run, RunStatus::Running).await;
    (gate, run)
}

#[actix_rt::test]
async fn each_pass_runs_on_request_and_rescue_spares_this_instances_runs() {
    let h = Harness::new(SchedulerConfig {
        run_lease: Duration::from_secs(30),
        keep_runs_per_job: 1,
        ..SchedulerConfig::default()
    })
    .await;
    let (gate, ours) = a_held_run(&h).await;
    // Another instance's run, abandoned long ago.
    let orphan_job = h.t.insert_job(job_row("other", "orphan")).await;
    let orphan =
        h.t.insert_run(PluginJobRunModel {
            status: RunStatus::Running,
            instance_id: Some("dead-instance".to_owned()),
            ..run_row(&orphan_job)
        })
        .await
        .expect("insert");

    // Ten minutes later nothing has heartbeated: only the abandoned run is rescued.
    h.clock.set(at("10:10"));
    let rescued = h
        .jobs
        .maintenance
        .send(RescuePass)
        .await
        .expect("mailbox")
        .expect("rescue");
    assert_eq!(
        rescued.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        vec![orphan.id]
    );
    assert_eq!(h.t.run(ours).await.status, RunStatus::Running);

    let beat = heartbeat(&h).await.expect("heartbeat");
    assert_eq!(beat, 1, "one run is ours");
    assert_eq!(h.t.run(ours).await.heartbeat_at, Some(at("10:10")));

    // Two finished runs of the orphan job; one is kept.
    h.t.insert_run(PluginJobRunModel {
        status: RunStatus::Succeeded,
        ..run_row(&orphan_job)
    })
    .await
    .expect("insert");
    let pruned = h
        .jobs
        .maintenance
        .send(PrunePass)
        .await
        .expect("mailbox")
        .expect("prune");
    assert_eq!(pruned, 1);
    gate.open();
    h.wait_for_run(ours, RunStatus::Succeeded).await;
}

#[actix_rt::test]
async fn a_run_another_instance_ended_is_stopped_here_at_the_next_heartbeat() {
    // This instance stalled past the run lease; another one failed its run as abandoned and may
    // start the job again. The next heartbeat finds the run ended and stops the worker's call.
    let h = Harness::new(SchedulerConfig::default()).await;
    let (gate, ours) = a_held_run(&h).await;
    rescue_elsewhere(&h, ours).await;

    let beat = heartbeat(&h).await.expect("heartbeat");
    assert_eq!(beat, 0, "the run is no longer this instance's");
    wait_until("the fenced call ends", Duration::from_secs(10), || async {
        h.jobs.diagnostics().await.expect("d").active_job_count == 0
    })
    .await;
    let run = h.t.run(ours).await;
    assert_eq!(run.status, RunStatus::Failed, "the rescue's outcome stands");
    assert_eq!(run.error.as_deref(), Some(RESCUE));
    gate.open();
}

#[actix_rt::test]
async fn runs_are_stopped_before_their_lease_lapses_when_heartbeats_keep_failing() {
    // The database is gone: heartbeats fail, and after the lease less two heartbeat intervals
    // (30 s - 2 × 5 s) another instance could soon fail the runs as abandoned. This one tells
    // its worker to stop them first (it cannot record that: the database is gone).
    let h = fencing_in_twenty_seconds().await;
    let (gate, ours) = a_held_run(&h).await;
    let cancels = || cancel_jobs_sent(&h, ours);
    heartbeat(&h).await.expect("heartbeat at 10:00");
    h.t.db.clone().close().await.expect("close");

    h.clock.set(at("10:00") + TimeDelta::seconds(15));
    heartbeat(&h).await.expect_err("no database");
    assert_eq!(cancels(), 0, "15 s is within the lease");
    h.clock.set(at("10:00") + TimeDelta::seconds(20));
    heartbeat(&h).await.expect_err("no database");
    wait_until("the worker is told", Duration::from_secs(10), || async {
        cancels() == 1
    })
    .await;
    gate.open();
}

#[actix_rt::test]
async fn runs_are_fenced_even_while_the_scheduler_waits_on_the_database() {
    // The scheduler holds its mailbox while a claim waits for the database, and a database that
    // stops answering (a partition, say) leaves the claim waiting. The fence must not queue
    // behind it: by the time the claim gives up, another instance may run the job again.
    let h = fencing_in_twenty_seconds().await;
    let (gate, ours) = a_held_run(&h).await;
    let cancels = || cancel_jobs_sent(&h, ours);
    heartbeat(&h).await.expect("heartbeat at 10:00");

    // A transaction holds the jobs table: the next claim waits for it.
    let txn = h.t.hold_jobs_table().await;
    h.jobs.scheduler.do_send(Tick);
    // A heartbeat asks the scheduler for its runs, so it waits too; the next one finds it still
    // waiting 20 s after the last that reached the database, and fences.
    h.clock.set(at("10:00") + TimeDelta::seconds(20));
    h.jobs.maintenance.do_send(HeartbeatPass);
    wait_until("the worker is told", Duration::from_secs(5), || {
        let fenced = cancels() == 1;
        if !fenced {
            h.jobs.maintenance.do_send(HeartbeatPass);
        }
        async move { fenced }
    })
    .await;
    txn.rollback().await.expect("release");
    gate.open();
}

#[actix_rt::test]
async fn an_outcome_that_comes_after_a_rescue_changes_nothing_and_tells_no_one() {
    // Another instance failed the run as abandoned while this one still ran it (it could not
    // reach the database, say); then the worker answers here. The rescue stands: no success is
    // counted, and the job's failure streak is not reset by a run that did not count.
    let h = Harness::new(SchedulerConfig::default()).await;
    let (gate, ours) = a_held_run(&h).await;
    rescue_elsewhere(&h, ours).await;
    let job_id = h.t.run(ours).await.job_id;
    PluginJob::update_many()
        .col_expr(PluginJobColumn::ConsecutiveFailures, Expr::value(1))
        .filter(PluginJobColumn::Id.eq(job_id))
        .exec(&h.t.db)
        .await
        .expect("the rescue's failure");

    gate.open();
    wait_until("the call ends here", Duration::from_secs(10), || async {
        h.jobs.diagnostics().await.expect("d").active_job_count == 0
    })
    .await;
    let run = h.t.run(ours).await;
    assert_eq!(run.status, RunStatus::Failed, "the rescue's outcome stands");
    assert_eq!(h.t.job(job_id).await.consecutive_failures, 1);
    let metrics = h.jobs.metrics().await.expect("metrics");
    assert!(
        !metrics.contains(r#"job="slow",trigger="manual",status="succeeded"}"#),
        "{metrics}"
    );
}
