//! Jobs managed at runtime through the embedding handle (the API's routes call the same): a job
//! is created with `origin: api`, validated like a manifest's job, changed by a JSON merge patch
//! that recomputes its pointer, retired with its history kept; manifest syncs leave it alone;
//! manifest jobs refuse changes; and a change made on one instance is what another instance
//! claims.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Harness, TestDb, at, ok_handler, wait_until};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::scheduler::Tick;
use plugin_jobs::store::{JobDeclaration, JobRef};
use plugin_jobs::worker::InProcessWorkers;
use plugin_jobs::{Error, PluginJobs, PluginJobsHandle};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

const PLUGIN: &str = "billing";

async fn harness() -> Harness {
    let h = Harness::new(SchedulerConfig::default()).await;
    for key in ["invoice", "report", "export"] {
        h.workers.inner.register(PLUGIN, key, ok_handler);
    }
    h.jobs
        .register(PLUGIN, vec![JobDeclaration::new("invoice", "*/15 * * * *")])
        .await
        .expect("register");
    h
}

fn hourly(key: &str) -> JobDeclaration {
    let mut job = JobDeclaration::new(key, "0 * * * *");
    job.payload = Some(json!({"region": "eu"}));
    job
}

#[actix_rt::test]
async fn a_created_job_is_an_api_job_with_its_pointer_and_a_duplicate_key_is_refused() {
    let h = harness().await;
    let job = h
        .jobs
        .create_job(PLUGIN, hourly("report"))
        .await
        .expect("created");
    assert_eq!(job.origin, JobOrigin::Api);
    assert_eq!(job.status, JobStatus::Active);
    assert_eq!(job.next_run_at, Some(at("11:00")));
    assert_eq!(job.payload, Some(json!({"region": "eu"})));

    for key in ["report", "invoice"] {
        let err = h
            .jobs
            .create_job(PLUGIN, hourly(key))
            .await
            .expect_err("a second job of the key");
        assert!(matches!(err, Error::JobExists { .. }), "{err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}

#[actix_rt::test]
async fn a_created_job_is_validated_like_a_manifest_job_and_each_refusal_names_its_field() {
    let h = harness().await;
    let mut cases: Vec<(JobDeclaration, &str)> = Vec::new();
    cases.push((JobDeclaration::new("", "0 * * * *"), "jobKey"));
    cases.push((
        JobDeclaration::new("bad", "99 * * * *"),
        "invalid schedule \"99 * * * *\"",
    ));
    let mut zone = JobDeclaration::new("zone", "0 * * * *");
    zone.timezone = "Mars/Olympus".to_owned();
    cases.push((zone, "invalid timezone \"Mars/Olympus\""));
    let mut timeout = JobDeclaration::new("timeout", "0 * * * *");
    timeout.timeout_ms = Some(0);
    cases.push((timeout, "timeoutMs"));
    let mut payload = JobDeclaration::new("big", "0 * * * *");
    payload.payload = Some(json!("x".repeat(17 * 1024)));
    cases.push((payload, "payload"));
    let mut jitter = JobDeclaration::new("jitter", "0 * * * *");
    jitter.jitter_ms = Some(2 * 24 * 3600 * 1000);
    cases.push((jitter, "jitterMs"));
    let mut every_second = JobDeclaration::new("every-second", "* * * * * *");
    every_second.jitter_ms = Some(86_400_000);
    cases.push((
        every_second,
        "jitterMs (86400000) must be at most the time between two slots of \"* * * * * *\": 1s",
    ));
    for (job, field) in cases {
        let key = job.job_key.clone();
        let err = h.jobs.create_job(PLUGIN, job).await.expect_err(&key);
        assert!(matches!(err, Error::InvalidInput(_)), "{key}: {err}");
        assert!(err.to_string().contains(field), "{key}: {err}");
        assert!(!err.to_string().contains("jobs[0]"), "{key}: {err}");
    }
    // Nothing was half-written.
    let jobs = PluginJob::find()
        .filter(PluginJobColumn::PluginId.eq(PLUGIN))
        .all(&h.t.db)
        .await
        .expect("jobs");
    assert_eq!(jobs.len(), 1, "{jobs:?}");
}

#[actix_rt::test]
async fn manifest_syncs_leave_api_jobs_alone() {
    let h = harness().await;
    let api = h
        .jobs
        .create_job(PLUGIN, hourly("report"))
        .await
        .expect("created");
    // The manifest no longer lists "report" (it never did): the API job is not retired.
    h.jobs
        .register(PLUGIN, vec![JobDeclaration::new("invoice", "*/15 * * * *")])
        .await
        .expect("sync");
    assert_eq!(h.t.job(api.id).await.status, JobStatus::Active);
    // A manifest declaring the same key does not take the API job over.
    let declare_report = || async {
        h.jobs
            .register(
                PLUGIN,
                vec![
                    JobDeclaration::new("invoice", "*/15 * * * *"),
                    JobDeclaration::new("report", "*/5 * * * *"),
                ],
            )
            .await
            .expect("sync")
    };
    declare_report().await;
    let kept = h.t.job(api.id).await;
    assert_eq!(kept.origin, JobOrigin::Api);
    assert_eq!(kept.schedule, "0 * * * *");

    // Once the API job is deleted (retired), the manifest's declaration takes the key over:
    // the same row, its history kept, now the manifest's job.
    h.jobs.pause(JobRef::Id(api.id)).await.expect("paused");
    h.jobs
        .delete_job(JobRef::Id(api.id))
        .await
        .expect("deleted");
    declare_report().await;
    let taken = h.t.job(api.id).await;
    assert_eq!(
        (taken.origin, taken.status, taken.schedule.as_str()),
        (JobOrigin::Manifest, JobStatus::Active, "*/5 * * * *"),
        "a deletion ends the pause too"
    );
    assert_eq!(taken.next_run_at, Some(at("10:05")));
}

#[actix_rt::test]
async fn a_patch_changes_what_it_names_recomputes_the_pointer_and_null_resets_a_field() {
    let h = harness().await;
    let api = h
        .jobs
        .create_job(PLUGIN, hourly("report"))
        .await
        .expect("created");
    let patched = h
        .jobs
        .update_job(
            JobRef::Id(api.id),
            json!({"schedule": "*/5 * * * *", "timeoutMs": 5000, "overlap": "queue_one",
                   "retry": {"maxAttempts": 3}}),
        )
        .await
        .expect("patched");
    assert_eq!(patched.schedule, "*/5 * * * *");
    assert_eq!(
        patched.next_run_at,
        Some(at("10:05")),
        "the pointer follows the schedule"
    );
    assert_eq!(patched.timeout_ms, Some(5000));
    assert_eq!(patched.overlap, OverlapPolicy::QueueOne);
    assert_eq!(patched.retry_max_attempts, 3);
    assert_eq!(patched.payload, Some(json!({"region": "eu"})), "untouched");
    assert_eq!(patched.origin, JobOrigin::Api);

    let reset = h
        .jobs
        .update_job(
            JobRef::key(PLUGIN, "report"),
            json!({"payload": null, "timeoutMs": null}),
        )
        .await
        .expect("reset");
    assert_eq!(reset.payload, None);
    assert_eq!(reset.timeout_ms, None);
    assert_eq!(reset.schedule, "*/5 * * * *");

    for (patch, field) in [
        (json!({"scheduel": "* * * * *"}), "scheduel"),
        (json!({"jobKey": "other"}), "jobKey"),
        (json!({"schedule": "61 * * * *"}), "invalid schedule"),
        (json!({"retry": {"maxAttempts": 0}}), "retry.maxAttempts"),
        (json!({"overlap": "sometimes"}), "overlap"),
        (json!(["schedule"]), "JSON object"),
    ] {
        let err = h
            .jobs
            .update_job(JobRef::Id(api.id), patch.clone())
            .await
            .expect_err("refused");
        assert!(matches!(err, Error::InvalidInput(_)), "{patch}: {err}");
        assert!(err.to_string().contains(field), "{patch}: {err}");
    }
    // A refused patch changed nothing.
    assert_eq!(h.t.job(api.id).await.schedule, "*/5 * * * *");
}

#[actix_rt::test]
async fn manifest_jobs_refuse_patch_and_delete_naming_the_manifest() {
    let h = harness().await;
    let invoice = JobRef::key(PLUGIN, "invoice");
    let patch = h
        .jobs
        .update_job(invoice.clone(), json!({"schedule": "* * * * *"}))
        .await
        .expect_err("manifest job");
    let delete = h.jobs.delete_job(invoice).await.expect_err("manifest job");
    for err in [patch, delete] {
        assert!(matches!(err, Error::DeclaredByManifest { .. }), "{err}");
        assert!(
            err.to_string().contains("manifest of plugin billing"),
            "{err}"
        );
    }
    let missing = h
        .jobs
        .delete_job(JobRef::key(PLUGIN, "nope"))
        .await
        .expect_err("unknown job");
    assert!(matches!(missing, Error::JobNotFound(_)), "{missing}");
}

#[actix_rt::test]
async fn delete_retires_the_job_and_keeps_its_history() {
    let h = harness().await;
    let api = h
        .jobs
        .create_job(PLUGIN, hourly("report"))
        .await
        .expect("created");
    let run = h
        .jobs
        .trigger(JobRef::Id(api.id), RunTrigger::Manual)
        .await
        .expect("run");
    h.wait_for_run(run.run_id, RunStatus::Succeeded).await;
    let retired = h
        .jobs
        .delete_job(JobRef::Id(api.id))
        .await
        .expect("deleted");
    assert_eq!(retired.status, JobStatus::Retired);
    assert_eq!(retired.next_run_at, None);
    assert_eq!(h.t.run(run.run_id).await.status, RunStatus::Succeeded);
    // A retired job takes no more changes, and is not claimed at its old slot.
    let err = h
        .jobs
        .update_job(JobRef::Id(api.id), json!({"schedule": "* * * * *"}))
        .await
        .expect_err("retired");
    assert!(matches!(err, Error::JobNotActive { .. }), "{err}");
    h.clock.set(at("11:00"));
    h.tick().await;
    h.wait_idle().await;
    let of_job =
        |runs: Vec<PluginJobRunModel>| runs.into_iter().filter(|r| r.job_id == api.id).count();
    assert_eq!(of_job(h.t.all_runs().await), 1);
    // The key can be created again.
    let again = h
        .jobs
        .create_job(PLUGIN, hourly("report"))
        .await
        .expect("again");
    assert_eq!(again.id, api.id);
    assert_eq!(again.status, JobStatus::Active);
}

fn instance(
    db: sea_orm::DatabaseConnection,
    clock: &ManualClock,
    calls: &Arc<AtomicUsize>,
) -> PluginJobsHandle {
    let workers = InProcessWorkers::new();
    let calls = Arc::clone(calls);
    workers.register(PLUGIN, "report", move |_ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    });
    PluginJobs::builder(db)
        .workers(workers)
        .clock(clock.clone())
        .manual_ticks()
        .start()
        .expect("start")
}

#[actix_rt::test]
async fn a_job_created_and_changed_on_one_instance_is_claimed_by_another() {
    let t = TestDb::new().await;
    let clock = ManualClock::new(at("10:00"));
    let calls = Arc::new(AtomicUsize::new(0));
    let a = instance(t.db.clone(), &clock, &calls);
    let b_db = plugin_jobs::db::connect(&t.url)
        .await
        .expect("connect again");
    let b = instance(b_db, &clock, &calls);
    for handle in [&a, &b] {
        handle.register(PLUGIN, Vec::new()).await.expect("register");
    }
    // Created on B, rescheduled on B; A claims it at the new slot.
    let job = b
        .create_job(PLUGIN, hourly("report"))
        .await
        .expect("created");
    b.update_job(JobRef::Id(job.id), json!({"schedule": "*/10 * * * *"}))
        .await
        .expect("patched");
    clock.set(at("10:10"));
    a.scheduler.send(Tick).await.expect("tick");
    wait_until("A ran the job", Duration::from_secs(10), || async {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    let runs = t.all_runs().await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].scheduled_for, at("10:10"));
    // Deleted on B: A claims nothing more.
    b.delete_job(JobRef::Id(job.id)).await.expect("deleted");
    clock.set(at("10:20"));
    a.scheduler.send(Tick).await.expect("tick");
    b.scheduler.send(Tick).await.expect("tick");
    assert_eq!(t.all_runs().await.len(), 1);
}
