//! The `MaintenanceActor`'s passes, one at a time: a heartbeat pass refreshes the runs this
//! instance owns, a rescue pass fails runs abandoned by another instance and spares its own, a
//! prune pass trims history.

mod common;

use std::time::Duration;

use common::{Gate, Harness, at, job_row, run_row};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::maintenance::{HeartbeatPass, PrunePass, RescuePass};
use plugin_jobs::store::{JobDeclaration, JobRef};

#[actix_rt::test]
async fn each_pass_runs_on_request_and_rescue_spares_this_instances_runs() {
    let h = Harness::new(SchedulerConfig {
        run_lease: Duration::from_secs(30),
        keep_runs_per_job: 1,
        ..SchedulerConfig::default()
    })
    .await;
    let gate = Gate::default();
    h.plugin("alpha")
        .job(JobDeclaration::new("slow", ""), gate.handler())
        .register()
        .await;
    let ours = h
        .jobs
        .trigger(JobRef::key("alpha", "slow"), RunTrigger::Manual)
        .await
        .expect("trigger")
        .run_id;
    h.wait_for_run(ours, RunStatus::Running).await;
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

    let beat = h
        .jobs
        .maintenance
        .send(HeartbeatPass)
        .await
        .expect("mailbox")
        .expect("heartbeat");
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
