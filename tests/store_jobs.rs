//! The job half of the StoreActor: syncing declarations, pause/resume, and the job reads
//! (the job-store cases of the original scheduler, with the changed behaviours asserted).

mod common;

use common::{TestDb, at, job_row};
use entity::prelude::*;
use plugin_jobs::Error;
use plugin_jobs::store::{
    GetJob, JobDeclaration, JobRef, ListJobs, SetJobStatus, SyncJobDeclarations,
};
use sea_orm::EntityTrait;

fn sync(plugin_id: &str, jobs: Vec<JobDeclaration>, now: &str) -> SyncJobDeclarations {
    SyncJobDeclarations {
        plugin_id: plugin_id.to_owned(),
        jobs,
        now: at(now),
    }
}

fn by_key<'a>(jobs: &'a [PluginJobModel], key: &str) -> &'a PluginJobModel {
    jobs.iter()
        .find(|job| job.job_key == key)
        .unwrap_or_else(|| panic!("job {key} missing"))
}

#[actix_rt::test]
async fn syncing_inserts_new_jobs_active_with_their_schedule() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut decl = JobDeclaration::new("report", "*/15 * * * *");
    decl.display_name = "Report".to_owned();
    decl.description = "Builds the report".to_owned();
    decl.timeout_ms = Some(120_000);
    let manual = JobDeclaration::new("manual-only", "");
    let jobs = store
        .send(sync("alpha", vec![decl, manual], "10:20"))
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(jobs.len(), 2);
    let report = t.job(by_key(&jobs, "report").id).await;
    assert_eq!(report.status, JobStatus::Active);
    assert_eq!(report.schedule, "*/15 * * * *");
    assert_eq!(report.display_name, "Report");
    assert_eq!(report.description, "Builds the report");
    assert_eq!(report.timeout_ms, Some(120_000));
    assert_eq!(report.timezone, "UTC");
    assert_eq!(report.misfire, MisfirePolicy::FireOnce);
    assert_eq!(report.next_run_at, Some(at("10:30")));
    assert_eq!(
        report.last_run_at, None,
        "a job that never ran has no last run"
    );
    let manual = t.job(by_key(&jobs, "manual-only").id).await;
    assert_eq!(manual.status, JobStatus::Active);
    assert_eq!(manual.schedule, "");
    assert_eq!(
        manual.next_run_at, None,
        "an empty schedule is never scheduled"
    );
    assert_eq!(
        manual.display_name, "manual-only",
        "display name defaults to the key"
    );
}

#[actix_rt::test]
async fn a_changed_schedule_updates_the_row_and_recomputes_the_pointer_at_once() {
    let t = TestDb::new().await;
    let store = t.store();
    let first = store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("daily", "0 6 * * *")],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(first[0].next_run_at, Some(at("2024-01-16T06:00:00Z")));
    let second = store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("daily", "*/15 * * * *")],
            "10:20",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(
        second.len(),
        1,
        "same key: the row is updated, not duplicated"
    );
    assert_eq!(second[0].id, first[0].id);
    let job = t.job(first[0].id).await;
    assert_eq!(job.schedule, "*/15 * * * *");
    assert_eq!(
        job.next_run_at,
        Some(at("10:30")),
        "the new schedule applies now, not after tomorrow's old slot"
    );
}

#[actix_rt::test]
async fn a_changed_timezone_recomputes_the_pointer() {
    let t = TestDb::new().await;
    let store = t.store();
    let jobs = store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("nine", "0 9 * * *")],
            "2024-01-15T10:00:00Z",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(jobs[0].next_run_at, Some(at("2024-01-16T09:00:00Z")));
    let mut ny = JobDeclaration::new("nine", "0 9 * * *");
    ny.timezone = "America/New_York".to_owned();
    let jobs = store
        .send(sync("alpha", vec![ny], "2024-01-15T10:00:00Z"))
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(
        jobs[0].next_run_at,
        Some(at("2024-01-15T14:00:00Z")),
        "09:00 EST is 14:00Z"
    );
}

#[actix_rt::test]
async fn two_declarations_make_two_jobs_and_listing_filters_by_plugin_and_status() {
    let t = TestDb::new().await;
    let store = t.store();
    store
        .send(sync(
            "alpha",
            vec![
                JobDeclaration::new("a", "0 * * * *"),
                JobDeclaration::new("b", "0 * * * *"),
            ],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    store
        .send(sync(
            "beta",
            vec![JobDeclaration::new("c", "0 * * * *")],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let alpha = store
        .send(ListJobs {
            plugin_id: Some("alpha".to_owned()),
            status: None,
        })
        .await
        .expect("mailbox")
        .expect("list");
    assert_eq!(
        alpha
            .iter()
            .map(|job| job.job_key.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let all = store
        .send(ListJobs::default())
        .await
        .expect("mailbox")
        .expect("list");
    assert_eq!(all.len(), 3);
    let b = by_key(&alpha, "b").id;
    store
        .send(SetJobStatus {
            job_id: b,
            status: JobStatus::Paused,
            now: at("10:01"),
        })
        .await
        .expect("mailbox")
        .expect("pause");
    let paused = store
        .send(ListJobs {
            plugin_id: Some("alpha".to_owned()),
            status: Some(JobStatus::Paused),
        })
        .await
        .expect("mailbox")
        .expect("list");
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].id, b);
    let none = store
        .send(ListJobs {
            plugin_id: Some("nobody".to_owned()),
            status: None,
        })
        .await
        .expect("mailbox")
        .expect("list");
    assert!(none.is_empty());
}

#[actix_rt::test]
async fn getting_a_job_by_id_and_by_key_and_none_when_missing() {
    let t = TestDb::new().await;
    let store = t.store();
    let jobs = store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("a", "0 * * * *")],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let by_id = store
        .send(GetJob(JobRef::Id(jobs[0].id)))
        .await
        .expect("mailbox")
        .expect("get");
    assert_eq!(by_id.map(|job| job.job_key), Some("a".to_owned()));
    let by_key = store
        .send(GetJob(JobRef::key("alpha", "a")))
        .await
        .expect("mailbox")
        .expect("get");
    assert_eq!(by_key.map(|job| job.id), Some(jobs[0].id));
    let missing_id = store
        .send(GetJob(JobRef::Id(uuid::Uuid::new_v4())))
        .await
        .expect("mailbox")
        .expect("get");
    assert!(missing_id.is_none());
    let wrong_plugin = store
        .send(GetJob(JobRef::key("beta", "a")))
        .await
        .expect("mailbox")
        .expect("get");
    assert!(wrong_plugin.is_none());
}

#[actix_rt::test]
async fn a_job_no_longer_declared_is_retired_and_comes_back_active_when_redeclared() {
    let t = TestDb::new().await;
    let store = t.store();
    let jobs = store
        .send(sync(
            "alpha",
            vec![
                JobDeclaration::new("keep", "0 * * * *"),
                JobDeclaration::new("drop", "0 * * * *"),
            ],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let dropped = by_key(&jobs, "drop").id;
    store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("keep", "0 * * * *")],
            "10:05",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(t.job(dropped).await.status, JobStatus::Retired);
    assert_eq!(
        t.job(by_key(&jobs, "keep").id).await.status,
        JobStatus::Active
    );
    store
        .send(sync(
            "alpha",
            vec![
                JobDeclaration::new("keep", "0 * * * *"),
                JobDeclaration::new("drop", "0 * * * *"),
            ],
            "12:10",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let back = t.job(dropped).await;
    assert_eq!(back.status, JobStatus::Active);
    assert_eq!(
        back.next_run_at,
        Some(at("13:00")),
        "a revived job starts from now"
    );
}

#[actix_rt::test]
async fn a_paused_job_redeclared_stays_paused() {
    let t = TestDb::new().await;
    let store = t.store();
    let jobs = store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("a", "0 * * * *")],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    store
        .send(SetJobStatus {
            job_id: jobs[0].id,
            status: JobStatus::Paused,
            now: at("10:01"),
        })
        .await
        .expect("mailbox")
        .expect("pause");
    store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("a", "*/5 * * * *")],
            "10:02",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let job = t.job(jobs[0].id).await;
    assert_eq!(
        job.status,
        JobStatus::Paused,
        "an operator's pause wins over the manifest"
    );
    assert_eq!(job.schedule, "*/5 * * * *");
}

#[actix_rt::test]
async fn a_pause_outlives_the_job_failing_or_retiring_and_a_resume_ends_it() {
    let t = TestDb::new().await;
    let store = t.store();
    let declare = |schedule: &str, now: &str| {
        let jobs = match schedule {
            "" => vec![],
            schedule => vec![JobDeclaration::new("a", schedule)],
        };
        store.send(sync("alpha", jobs, now))
    };
    let job_id = declare("0 * * * *", "10:00")
        .await
        .expect("mailbox")
        .expect("sync")[0]
        .id;
    let set = |status, now| SetJobStatus {
        job_id,
        status,
        now: at(now),
    };
    let paused = set(JobStatus::Paused, "10:01");
    store.send(paused).await.expect("mailbox").expect("pause");
    assert_eq!(t.job(job_id).await.paused_at, Some(at("10:01")));

    // A bad schedule fails the paused job; fixed, it comes back paused.
    declare("99 * * * *", "10:02")
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(t.job(job_id).await.status, JobStatus::Failed);
    declare("0 * * * *", "10:03")
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(t.job(job_id).await.status, JobStatus::Paused);

    // Dropped from the manifest it retires; declared again, it is still paused.
    declare("", "10:04").await.expect("mailbox").expect("sync");
    assert_eq!(t.job(job_id).await.status, JobStatus::Retired);
    declare("0 * * * *", "10:05")
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(t.job(job_id).await.status, JobStatus::Paused);

    // A resume ends the pause: retired and declared again, the job is active.
    let resumed = set(JobStatus::Active, "10:06");
    store.send(resumed).await.expect("mailbox").expect("resume");
    assert_eq!(t.job(job_id).await.paused_at, None);
    declare("", "10:07").await.expect("mailbox").expect("sync");
    declare("0 * * * *", "10:08")
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(t.job(job_id).await.status, JobStatus::Active);
}

#[actix_rt::test]
async fn an_invalid_schedule_or_timezone_fails_the_job_with_the_reason() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut bad_tz = JobDeclaration::new("bad-tz", "0 * * * *");
    bad_tz.timezone = "Mars/Olympus".to_owned();
    let mut jittered = JobDeclaration::new("jittered", "*/5 * * * *");
    jittered.jitter_ms = Some(600_000);
    let jobs = store
        .send(sync(
            "alpha",
            vec![
                JobDeclaration::new("bad-cron", "61 * * * *"),
                bad_tz,
                JobDeclaration::new("never", "0 0 30 2 *"),
                jittered,
            ],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let bad_cron = t.job(by_key(&jobs, "bad-cron").id).await;
    assert_eq!(bad_cron.status, JobStatus::Failed);
    assert_eq!(bad_cron.next_run_at, None);
    let reason = bad_cron.last_error.expect("a failed job says why");
    assert!(
        reason.contains("minute") && reason.contains("61"),
        "{reason}"
    );
    let bad_tz = t.job(by_key(&jobs, "bad-tz").id).await;
    assert_eq!(bad_tz.status, JobStatus::Failed);
    let reason = bad_tz.last_error.expect("a failed job says why");
    assert!(reason.contains("Mars/Olympus"), "{reason}");
    // A schedule that can never fire is no more silently dormant than one that cannot parse.
    let never = t.job(by_key(&jobs, "never").id).await;
    assert_eq!(never.status, JobStatus::Failed);
    assert_eq!(
        never.last_error.as_deref(),
        Some("schedule \"0 0 30 2 *\" never fires: February has no day 30")
    );
    // Nor one whose jitter lets a slot start after the next: ten minutes on every five.
    let jittered = t.job(by_key(&jobs, "jittered").id).await;
    assert_eq!(jittered.status, JobStatus::Failed);
    let reason = jittered.last_error.expect("a failed job says why");
    assert!(
        reason.starts_with("jitterMs (600000) must be at most the time between two slots"),
        "{reason}"
    );

    // Fixing the schedule brings the job back, with its error cleared.
    let jobs = store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("bad-cron", "0 * * * *")],
            "10:10",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let fixed = by_key(&jobs, "bad-cron");
    assert_eq!(fixed.status, JobStatus::Active);
    assert_eq!(fixed.last_error, None);
    assert_eq!(fixed.next_run_at, Some(at("11:00")));
}

#[actix_rt::test]
async fn registering_computes_missing_pointers_and_keeps_future_and_past_ones() {
    let t = TestDb::new().await;
    let store = t.store();
    let mut missing = job_row("alpha", "missing");
    missing.next_run_at = None;
    let mut future = job_row("alpha", "future");
    future.next_run_at = Some(at("11:45"));
    let mut past = job_row("alpha", "past");
    past.next_run_at = Some(at("08:15"));
    let missing = t.insert_job(missing).await;
    let future = t.insert_job(future).await;
    let past = t.insert_job(past).await;
    store
        .send(sync(
            "alpha",
            ["missing", "future", "past"]
                .into_iter()
                .map(|key| JobDeclaration::new(key, "*/15 * * * *"))
                .collect(),
            "10:20",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    assert_eq!(t.job(missing.id).await.next_run_at, Some(at("10:30")));
    assert_eq!(t.job(future.id).await.next_run_at, Some(at("11:45")));
    assert_eq!(
        t.job(past.id).await.next_run_at,
        Some(at("08:15")),
        "a past pointer is left for the misfire policy to decide"
    );
}

#[actix_rt::test]
async fn bad_declarations_are_rejected_with_the_field_named_and_nothing_written() {
    let t = TestDb::new().await;
    let store = t.store();
    let cases = [
        (vec![JobDeclaration::new("", "0 * * * *")], "jobs[0].jobKey"),
        (
            vec![
                JobDeclaration::new("a", "0 * * * *"),
                JobDeclaration::new("a", ""),
            ],
            "declared twice",
        ),
        (
            vec![JobDeclaration::new(
                "01a234dc-e377-7000-8000-b82a6c0676a7",
                "",
            )],
            "reads as a job id",
        ),
        (
            vec![JobDeclaration {
                timeout_ms: Some(0),
                ..JobDeclaration::new("a", "")
            }],
            "timeoutMs",
        ),
    ];
    for (jobs, expected) in cases {
        let err = store
            .send(sync("alpha", jobs, "10:00"))
            .await
            .expect("mailbox")
            .expect_err("rejected");
        assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
        assert!(
            err.to_string().contains(expected),
            "{err} should name {expected}"
        );
    }
    let all = store
        .send(ListJobs::default())
        .await
        .expect("mailbox")
        .expect("list");
    assert!(all.is_empty(), "a rejected sync writes nothing");
}

#[actix_rt::test]
async fn pause_keeps_the_pointer_and_resume_moves_it_to_the_next_slot_after_now() {
    let t = TestDb::new().await;
    let store = t.store();
    let job = t.insert_job(job_row("alpha", "a")).await;
    let paused = store
        .send(SetJobStatus {
            job_id: job.id,
            status: JobStatus::Paused,
            now: at("10:31"),
        })
        .await
        .expect("mailbox")
        .expect("pause");
    assert_eq!(paused.status, JobStatus::Paused);
    let resumed = store
        .send(SetJobStatus {
            job_id: job.id,
            status: JobStatus::Active,
            now: at("11:07"),
        })
        .await
        .expect("mailbox")
        .expect("resume");
    assert_eq!(resumed.status, JobStatus::Active);
    assert_eq!(
        resumed.next_run_at,
        Some(at("11:15")),
        "missed slots while paused are not run"
    );

    let missing = store
        .send(SetJobStatus {
            job_id: uuid::Uuid::new_v4(),
            status: JobStatus::Paused,
            now: at("11:08"),
        })
        .await
        .expect("mailbox")
        .expect_err("unknown job");
    assert!(missing.to_string().contains("Job not found"), "{missing}");

    let mut retired = job_row("alpha", "old");
    retired.status = JobStatus::Retired;
    let retired = t.insert_job(retired).await;
    let err = store
        .send(SetJobStatus {
            job_id: retired.id,
            status: JobStatus::Active,
            now: at("11:08"),
        })
        .await
        .expect("mailbox")
        .expect_err("a retired job cannot be resumed");
    assert!(
        err.to_string()
            .contains("is retired, so it cannot be resumed"),
        "{err}"
    );
}

#[actix_rt::test]
async fn several_instances_registering_the_same_plugin_at_once_all_succeed_with_one_set_of_jobs() {
    let t = TestDb::new().await;
    let mut stores = vec![t.store()];
    for _ in 0..3 {
        stores.push(t.second_store().await);
    }
    let declarations: Vec<JobDeclaration> = (0..20)
        .map(|n| JobDeclaration::new(format!("job-{n}"), "* * * * *"))
        .collect();
    let syncs = stores
        .iter()
        .map(|store| store.send(sync("fleet", declarations.clone(), "10:00")));
    for answer in futures_util::future::join_all(syncs).await {
        let jobs = answer
            .expect("mailbox")
            .expect("every registration succeeds");
        assert_eq!(jobs.len(), 20);
    }
    let all = PluginJob::find().all(&t.db).await.expect("jobs");
    assert_eq!(all.len(), 20, "one row per job key");
}

/// A registration locks its jobs a thousand keys at a time; instances that register the same
/// plugin again at once lock them in the same order, so none waits for another in a cycle
/// (on PostgreSQL a deadlock would fail a registration).
#[actix_rt::test]
async fn instances_registering_again_a_plugin_of_thousands_of_jobs_all_succeed() {
    let t = TestDb::new().await;
    let mut stores = vec![t.store()];
    for _ in 0..2 {
        stores.push(t.second_store().await);
    }
    let declarations: Vec<JobDeclaration> = (0..2_500)
        .map(|n| JobDeclaration::new(format!("job-{n}"), "* * * * *"))
        .collect();
    stores[0]
        .send(sync("fleet", declarations.clone(), "10:00"))
        .await
        .expect("mailbox")
        .expect("the first registration");
    for round in 0..2 {
        let syncs = stores
            .iter()
            .map(|store| store.send(sync("fleet", declarations.clone(), "10:01")));
        for answer in futures_util::future::join_all(syncs).await {
            let jobs = answer
                .expect("mailbox")
                .unwrap_or_else(|err| panic!("round {round}: a registration failed: {err}"));
            assert_eq!(jobs.len(), 2_500);
        }
    }
}

#[actix_rt::test]
async fn a_plugin_with_more_jobs_than_a_statement_can_bind_registers_and_retires_them() {
    let t = TestDb::new().await;
    let store = t.store();
    // More keys than SQLite binds in one statement (32,766).
    let many: Vec<JobDeclaration> = (0..33_000)
        .map(|n| JobDeclaration::new(format!("job-{n}"), ""))
        .collect();
    let jobs = store
        .send(sync("big", many, "10:00"))
        .await
        .expect("mailbox")
        .expect("a large registration");
    assert_eq!(jobs.len(), 33_000);
    let jobs = store
        .send(sync("big", vec![JobDeclaration::new("job-7", "")], "10:01"))
        .await
        .expect("mailbox")
        .expect("a large retirement");
    let retired = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Retired)
        .count();
    assert_eq!(retired, 32_999);
    assert_eq!(by_key(&jobs, "job-7").status, JobStatus::Active);
}

/// A registration answers what it synced: the declared jobs, the manifest's jobs it retired, and
/// an API job that holds a declared key; the plugin's other API jobs are neither changed nor
/// part of the answer (a plugin may have any number of them).
#[actix_rt::test]
async fn registration_answers_the_declared_jobs_and_leaves_the_plugins_api_jobs_alone() {
    use plugin_jobs::store::CreateJob;

    let t = TestDb::new().await;
    let store = t.store();
    let declared = |keys: &[&str]| -> Vec<JobDeclaration> {
        keys.iter()
            .map(|key| JobDeclaration::new(*key, "0 * * * *"))
            .collect()
    };
    store
        .send(sync("billing", declared(&["daily", "weekly"]), "10:00"))
        .await
        .expect("mailbox")
        .expect("register");
    let mut api_jobs = Vec::new();
    for key in ["api-1", "api-2", "shared"] {
        let job = store
            .send(CreateJob {
                plugin_id: "billing".to_owned(),
                job: JobDeclaration::new(key, "30 * * * *"),
                now: at("10:01"),
            })
            .await
            .expect("mailbox")
            .expect("create");
        api_jobs.push(job);
    }

    // "weekly" is no longer declared; "shared" is, but an API job holds it.
    let jobs = store
        .send(sync("billing", declared(&["daily", "shared"]), "10:02"))
        .await
        .expect("mailbox")
        .expect("register again");
    let keys: Vec<&str> = jobs.iter().map(|job| job.job_key.as_str()).collect();
    assert_eq!(keys, ["daily", "shared", "weekly"], "ordered by key");
    assert_eq!(by_key(&jobs, "daily").status, JobStatus::Active);
    assert_eq!(by_key(&jobs, "weekly").status, JobStatus::Retired);
    let shared = by_key(&jobs, "shared");
    assert_eq!(shared.origin, JobOrigin::Api);
    assert_eq!(
        shared.schedule, "30 * * * *",
        "the API job keeps its own schedule"
    );

    for before in api_jobs {
        let after = t.job(before.id).await;
        assert_eq!(
            after, before,
            "the sync left API job {} as it was",
            before.job_key
        );
    }
}

#[actix_rt::test]
async fn a_pause_during_another_instances_registration_holds() {
    let t = TestDb::new().await;
    let registrar = t.store();
    let operator = t.second_store().await;
    // Many jobs make each registration long enough for pauses to land in the middle of it.
    let declarations: Vec<JobDeclaration> = (0..300)
        .map(|n| JobDeclaration::new(format!("job-{n}"), "* * * * *"))
        .collect();
    let jobs = registrar
        .send(sync("fleet", declarations.clone(), "10:00"))
        .await
        .expect("mailbox")
        .expect("register");
    let target = by_key(&jobs, "job-150").id;
    for round in 0..20 {
        let registration = registrar.send(sync("fleet", declarations.clone(), "10:00"));
        let pause = operator.send(SetJobStatus {
            job_id: target,
            status: JobStatus::Paused,
            now: at("10:00"),
        });
        let (registered, paused) = futures_util::join!(registration, pause);
        registered.expect("mailbox").expect("registration");
        let paused = paused.expect("mailbox").expect("pause");
        assert_eq!(paused.status, JobStatus::Paused);
        assert_eq!(
            t.job(target).await.status,
            JobStatus::Paused,
            "round {round}: the pause answered, so it must hold"
        );
        operator
            .send(SetJobStatus {
                job_id: target,
                status: JobStatus::Active,
                now: at("10:00"),
            })
            .await
            .expect("mailbox")
            .expect("resume");
    }
}

/// A plugin that was gone (or whose manifest was rejected) retires its jobs with that reason;
/// when it loads again, a job its manifest no longer declares stays retired without the
/// reason, which no longer holds.
#[actix_rt::test]
async fn a_job_retired_while_its_plugin_was_gone_loses_that_reason_when_the_plugin_returns() {
    use plugin_jobs::store::RetirePluginJobs;

    let t = TestDb::new().await;
    let store = t.store();
    let jobs = store
        .send(sync(
            "alpha",
            vec![
                JobDeclaration::new("keep", "0 * * * *"),
                JobDeclaration::new("drop", "0 * * * *"),
            ],
            "10:00",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let gone = "plugin alpha is no longer in the plugins directory /srv/plugins";
    store
        .send(RetirePluginJobs {
            plugin_id: "alpha".to_owned(),
            reason: gone.to_owned(),
            now: at("10:05"),
        })
        .await
        .expect("mailbox")
        .expect("retire");
    let dropped = t.job(by_key(&jobs, "drop").id).await;
    assert_eq!(
        (dropped.status, dropped.last_error.as_deref()),
        (JobStatus::Retired, Some(gone))
    );
    store
        .send(sync(
            "alpha",
            vec![JobDeclaration::new("keep", "0 * * * *")],
            "10:10",
        ))
        .await
        .expect("mailbox")
        .expect("sync");
    let dropped = t.job(by_key(&jobs, "drop").id).await;
    assert_eq!(
        (dropped.status, dropped.last_error),
        (JobStatus::Retired, None)
    );
    let kept = t.job(by_key(&jobs, "keep").id).await;
    assert_eq!((kept.status, kept.last_error), (JobStatus::Active, None));
}
