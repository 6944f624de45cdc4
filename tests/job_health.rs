//! Job health on a real database with a manual clock: the per-job gauges of `/metrics` (last
//! success, failure streak, next run) with exact values, and the automatic pause after N
//! consecutive failures (per job and the server default), its reason in the job object, the
//! `JobPaused` / `JobRecovered` events, and a resume that clears it.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use common::{TestDb, at, wait_until};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::events::RunEvent;
use plugin_jobs::http::JobView;
use plugin_jobs::scheduler::Tick;
use plugin_jobs::store::{JobDeclaration, JobRef};
use plugin_jobs::worker::InProcessWorkers;
use plugin_jobs::{PluginJobs, PluginJobsHandle};

/// Keeps the `JobPaused` and `JobRecovered` events it hears.
#[derive(Debug, Default)]
struct HealthEvents(Arc<Mutex<Vec<RunEvent>>>);

impl Actor for HealthEvents {
    type Context = Context<Self>;
}

impl Handler<RunEvent> for HealthEvents {
    type Result = ();

    fn handle(&mut self, event: RunEvent, _ctx: &mut Self::Context) {
        if matches!(
            event,
            RunEvent::JobPaused { .. } | RunEvent::JobRecovered { .. }
        ) {
            self.0.lock().expect("events").push(event);
        }
    }
}

struct Setup {
    t: TestDb,
    clock: ManualClock,
    jobs: PluginJobsHandle,
    /// While set, the `nightly` and `hourly` jobs fail with "boom".
    failing: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<RunEvent>>>,
}

impl Setup {
    /// `nightly` (every 15 minutes, `pause_after` of its own) and `hourly` (every 15 minutes,
    /// under the server default `default_pause_after`), both failing while `failing` is set,
    /// and a manual-only `adhoc`.
    async fn new(pause_after: Option<u32>, default_pause_after: Option<u32>) -> Self {
        let t = TestDb::new().await;
        let clock = ManualClock::new(at("10:00"));
        let workers = InProcessWorkers::new();
        let failing = Arc::new(AtomicBool::new(true));
        for key in ["nightly", "hourly"] {
            let failing = Arc::clone(&failing);
            workers.register("billing", key, move |_ctx| {
                let fail = failing.load(Ordering::SeqCst);
                async move { if fail { Err("boom".to_owned()) } else { Ok(()) } }
            });
        }
        workers.register("billing", "adhoc", |_ctx| async { Ok(()) });
        let jobs = PluginJobs::builder(t.db.clone())
            .workers(workers)
            .clock(clock.clone())
            .instance_id("health-test")
            .pause_after_failures(default_pause_after)
            .manual_ticks()
            .start()
            .expect("start");
        let events = Arc::new(Mutex::new(Vec::new()));
        jobs.subscribe(HealthEvents(Arc::clone(&events)).start().recipient());
        let mut nightly = JobDeclaration::new("nightly", "*/15 * * * *");
        nightly.pause_after_failures = pause_after;
        jobs.register(
            "billing",
            vec![
                nightly,
                JobDeclaration::new("hourly", "*/15 * * * *"),
                JobDeclaration::new("adhoc", ""),
            ],
        )
        .await
        .expect("register");
        Self {
            t,
            clock,
            jobs,
            failing,
            events,
        }
    }

    async fn job(&self, key: &str) -> PluginJobModel {
        self.t.job(job_id(&self.t, key).await).await
    }

    /// Moves the clock to `time`, ticks, and waits until every run is over and its outcome is
    /// counted by the job health: the streaks of `nightly` and `hourly` are then `streaks`.
    async fn slot(&self, time: &str, streaks: (i32, i32)) {
        let before = self.t.all_runs().await.len();
        self.clock.set(at(time));
        self.jobs.scheduler.send(Tick).await.expect("tick");
        wait_until(
            &format!("the runs of {time} are over and counted"),
            Duration::from_secs(10),
            || async {
                let runs = self.t.all_runs().await;
                runs.len() > before
                    && runs.iter().all(|run| {
                        matches!(
                            run.status,
                            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
                        )
                    })
                    && (
                        self.job("nightly").await.consecutive_failures,
                        self.job("hourly").await.consecutive_failures,
                    ) == streaks
            },
        )
        .await;
    }

    fn events(&self) -> Vec<RunEvent> {
        self.events.lock().expect("events").clone()
    }
}

/// The id of the job `key` of plugin `billing`.
async fn job_id(t: &TestDb, key: &str) -> uuid::Uuid {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    PluginJob::find()
        .filter(PluginJobColumn::PluginId.eq("billing"))
        .filter(PluginJobColumn::JobKey.eq(key))
        .one(&t.db)
        .await
        .expect("query")
        .unwrap_or_else(|| panic!("job {key}"))
        .id
}

/// The sample lines of a metric family, sorted.
fn samples(text: &str, name: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn sorted(expected: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = expected.iter().map(|l| (*l).to_owned()).collect();
    lines.sort();
    lines
}

/// 2024-01-15 at `hh:mm` UTC in Unix seconds, as the gauges print it.
fn unix(time: &str) -> String {
    format!("{}.0", at(time).timestamp())
}

#[actix_rt::test]
async fn job_gauges_hold_the_last_success_the_failure_streak_and_the_next_slot() {
    let s = Setup::new(None, None).await;

    let text = s.jobs.metrics().await.expect("metrics");
    assert!(samples(&text, "plugin_jobs_job_last_success_timestamp_seconds").is_empty());
    assert_eq!(
        samples(&text, "plugin_jobs_job_next_run_timestamp_seconds"),
        sorted(&[
            &format!(
                r#"plugin_jobs_job_next_run_timestamp_seconds{{plugin="billing",job="nightly"}} {}"#,
                unix("10:15")
            ),
            &format!(
                r#"plugin_jobs_job_next_run_timestamp_seconds{{plugin="billing",job="hourly"}} {}"#,
                unix("10:15")
            ),
        ]),
        "{text}"
    );

    // Two failed slots, then a success.
    s.slot("10:15", (1, 1)).await;
    s.slot("10:30", (2, 2)).await;
    let text = s.jobs.metrics().await.expect("metrics");
    assert_eq!(
        samples(&text, "plugin_jobs_job_consecutive_failures"),
        sorted(&[
            r#"plugin_jobs_job_consecutive_failures{plugin="billing",job="nightly"} 2"#,
            r#"plugin_jobs_job_consecutive_failures{plugin="billing",job="hourly"} 2"#,
            r#"plugin_jobs_job_consecutive_failures{plugin="billing",job="adhoc"} 0"#,
        ]),
        "{text}"
    );
    assert!(
        samples(&text, "plugin_jobs_job_last_success_timestamp_seconds").is_empty(),
        "{text}"
    );

    s.failing.store(false, Ordering::SeqCst);
    s.slot("10:45", (0, 0)).await;
    let adhoc = s
        .jobs
        .trigger(JobRef::key("billing", "adhoc"), RunTrigger::Manual)
        .await
        .expect("trigger");
    wait_until(
        "adhoc succeeded and counted",
        Duration::from_secs(10),
        || async {
            s.t.run(adhoc.run_id).await.status == RunStatus::Succeeded
                && s.job("adhoc").await.last_success_at.is_some()
        },
    )
    .await;
    s.jobs
        .pause(JobRef::key("billing", "hourly"))
        .await
        .expect("pause");

    let text = s.jobs.metrics().await.expect("metrics");
    assert_eq!(
        samples(&text, "plugin_jobs_job_last_success_timestamp_seconds"),
        sorted(&[
            &format!(
                r#"plugin_jobs_job_last_success_timestamp_seconds{{plugin="billing",job="nightly"}} {}"#,
                unix("10:45")
            ),
            &format!(
                r#"plugin_jobs_job_last_success_timestamp_seconds{{plugin="billing",job="hourly"}} {}"#,
                unix("10:45")
            ),
            &format!(
                r#"plugin_jobs_job_last_success_timestamp_seconds{{plugin="billing",job="adhoc"}} {}"#,
                unix("10:45")
            ),
        ]),
        "{text}"
    );
    assert_eq!(
        samples(&text, "plugin_jobs_job_consecutive_failures"),
        sorted(&[
            r#"plugin_jobs_job_consecutive_failures{plugin="billing",job="nightly"} 0"#,
            r#"plugin_jobs_job_consecutive_failures{plugin="billing",job="hourly"} 0"#,
            r#"plugin_jobs_job_consecutive_failures{plugin="billing",job="adhoc"} 0"#,
        ]),
        "{text}"
    );
    // The paused job has no next run; the manual-only one never has.
    assert_eq!(
        samples(&text, "plugin_jobs_job_next_run_timestamp_seconds"),
        [format!(
            r#"plugin_jobs_job_next_run_timestamp_seconds{{plugin="billing",job="nightly"}} {}"#,
            unix("11:00")
        )],
        "{text}"
    );
    assert_eq!(
        samples(&text, "plugin_jobs_job_interval_seconds"),
        [r#"plugin_jobs_job_interval_seconds{plugin="billing",job="nightly"} 900.0"#],
        "{text}"
    );
    assert!(
        text.contains("# TYPE plugin_jobs_job_consecutive_failures gauge"),
        "{text}"
    );

    // Both failing jobs recovered at 10:45, after two failures each.
    let mut recovered: Vec<(String, i32)> = s
        .events()
        .into_iter()
        .filter_map(|event| match event {
            RunEvent::JobRecovered {
                job_key, failures, ..
            } => Some((job_key, failures)),
            _ => None,
        })
        .collect();
    recovered.sort();
    assert_eq!(
        recovered,
        [("hourly".to_owned(), 2), ("nightly".to_owned(), 2)]
    );
}

#[actix_rt::test]
async fn a_job_is_paused_after_n_consecutive_failures_and_resume_clears_it() {
    // `nightly` pauses after 3 failures of its own; `hourly` never (no server default).
    let s = Setup::new(Some(3), None).await;
    s.slot("10:15", (1, 1)).await;
    s.slot("10:30", (2, 2)).await;
    assert_eq!(s.job("nightly").await.status, JobStatus::Active);
    s.slot("10:45", (3, 3)).await;

    let nightly = s.job("nightly").await;
    assert_eq!(nightly.status, JobStatus::Paused);
    let reason = "paused after 3 consecutive failures; last error: boom";
    assert_eq!(nightly.paused_reason.as_deref(), Some(reason));
    let view = serde_json::to_value(JobView::from(&nightly)).expect("json");
    assert_eq!(view["pausedReason"], reason);
    assert_eq!(view["consecutiveFailures"], 3);
    assert_eq!(view["pauseAfterFailures"], 3);
    let hourly = s.job("hourly").await;
    assert_eq!(
        (hourly.status, hourly.consecutive_failures),
        (JobStatus::Active, 3)
    );
    wait_until("JobPaused is emitted", Duration::from_secs(10), || async {
        s.events()
            .iter()
            .any(|event| matches!(event, RunEvent::JobPaused { job_key, failures: 3, reason: r, .. } if job_key == "nightly" && r == reason))
    })
    .await;

    // The paused job's slot passes without a run; the other job runs.
    let before = s.t.all_runs().await;
    s.slot("11:00", (3, 4)).await;
    let after = s.t.all_runs().await;
    assert_eq!(after.len(), before.len() + 1, "only hourly ran: {after:?}");
    assert_eq!(s.job("hourly").await.consecutive_failures, 4);

    // Resume clears the reason and the streak; the job fires again from its next slot.
    let resumed = s
        .jobs
        .resume(JobRef::key("billing", "nightly"))
        .await
        .expect("resume");
    assert_eq!(resumed.status, JobStatus::Active);
    assert_eq!(resumed.paused_reason, None);
    assert_eq!(resumed.consecutive_failures, 0);
    assert_eq!(resumed.unrecovered_failures, 3, "kept for the recovery");
    assert_eq!(resumed.next_run_at, Some(at("11:15")));
    s.slot("11:15", (1, 5)).await;
    assert_eq!(s.job("nightly").await.status, JobStatus::Active);

    // The first success after the resume recovers the job from every failure since its last
    // success: the three that paused it and the one after the resume.
    s.failing.store(false, Ordering::SeqCst);
    s.slot("11:30", (0, 0)).await;
    let recovered = || {
        let mut recovered: Vec<(String, i32, i32)> = s
            .events()
            .into_iter()
            .filter_map(|event| match event {
                RunEvent::JobRecovered {
                    job_key,
                    failures,
                    attempt,
                    ..
                } => Some((job_key, failures, attempt)),
                _ => None,
            })
            .collect();
        recovered.sort();
        recovered
    };
    wait_until(
        "JobRecovered is emitted",
        Duration::from_secs(10),
        || async { recovered().len() == 2 },
    )
    .await;
    assert_eq!(
        recovered(),
        [("hourly".to_owned(), 5, 1), ("nightly".to_owned(), 4, 1)]
    );
    assert_eq!(s.job("nightly").await.unrecovered_failures, 0);
}

#[actix_rt::test]
async fn the_server_default_pauses_jobs_that_declare_no_threshold() {
    // `hourly` declares nothing and takes the default of 2; `nightly` declares 3 and keeps it.
    let s = Setup::new(Some(3), Some(2)).await;
    s.slot("10:15", (1, 1)).await;
    s.slot("10:30", (2, 2)).await;
    let hourly = s.job("hourly").await;
    assert_eq!(hourly.status, JobStatus::Paused);
    assert_eq!(
        hourly.paused_reason.as_deref(),
        Some("paused after 2 consecutive failures; last error: boom")
    );
    assert_eq!(s.job("nightly").await.status, JobStatus::Active);
}

#[actix_rt::test]
async fn a_zero_threshold_is_refused_with_a_clear_error() {
    let t = TestDb::new().await;
    let jobs = PluginJobs::builder(t.db.clone())
        .manual_ticks()
        .start()
        .expect("start");
    let mut job = JobDeclaration::new("nightly", "0 3 * * *");
    job.pause_after_failures = Some(0);
    let err = jobs
        .register("billing", vec![job])
        .await
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("jobs[0].pauseAfterFailures must be between 1 and"),
        "{err}"
    );
}

/// A success is stamped on its job by the write that records it, with the batch's time, and
/// never moves a job's `last_success_at` back; a failure leaves it alone.
#[actix_rt::test]
async fn a_recorded_success_stamps_its_job_and_never_goes_back() {
    use plugin_jobs::store::{CompleteRun, MarkRunning};
    let t = TestDb::new().await;
    let store = t.store();
    let mut stale = common::job_row("billing", "stale");
    stale.last_success_at = Some(at("12:00"));
    let stale = t.insert_job(stale).await;
    let fresh = t.insert_job(common::job_row("billing", "fresh")).await;
    let failing = t.insert_job(common::job_row("billing", "failing")).await;
    for (job, status) in [
        (&stale, RunStatus::Succeeded),
        (&fresh, RunStatus::Succeeded),
        (&failing, RunStatus::Failed),
    ] {
        let run = t.insert_run(common::run_row(job)).await.expect("run");
        let marked = store
            .send(MarkRunning {
                run_id: run.id,
                now: at("10:01"),
            })
            .await
            .expect("mailbox")
            .expect("marked");
        assert!(marked);
        let recorded = store
            .send(CompleteRun {
                run_id: run.id,
                status,
                error: None,
                logs: None,
                block_until: None,
                now: at("10:05"),
            })
            .await
            .expect("mailbox")
            .expect("recorded");
        assert!(recorded);
    }
    assert_eq!(t.job(fresh.id).await.last_success_at, Some(at("10:05")));
    assert_eq!(
        t.job(stale.id).await.last_success_at,
        Some(at("12:00")),
        "an older success does not move it back"
    );
    assert_eq!(t.job(failing.id).await.last_success_at, None);
}

/// While the retries table's statistics lag behind its growth (many failing jobs with retries),
/// a batch of outcomes finds which failures have a retry to come by their runs, not by reading
/// every pending retry of the `(status, due_at)` index beside them.
#[actix_rt::test]
async fn on_postgres_a_batch_of_failures_finds_its_retries_by_run_before_any_analyze() {
    use plugin_jobs::store::{RecordRunOutcomes, RunOutcome as Outcome};
    use sea_orm::EntityTrait;
    let t = TestDb::new().await;
    if !t.is_postgres() {
        return;
    }
    t.never_analyze("plugin_job_retries").await;
    let job = t.insert_job(common::job_row("alpha", "flaky")).await;
    // 20,000 pending retries, each of a failed run of its own.
    let failed: Vec<PluginJobRunModel> = (0..20_000)
        .map(|_| PluginJobRunModel {
            status: RunStatus::Failed,
            ..common::run_row(&job)
        })
        .collect();
    t.insert_runs(&failed).await;
    for chunk in failed.chunks(1_000) {
        Retry::insert_many(chunk.iter().map(|run| {
            RetryActiveModel::from(RetryModel {
                id: uuid::Uuid::now_v7(),
                job_id: job.id,
                plugin_id: job.plugin_id.clone(),
                failed_run_id: run.id,
                retry_of: run.id,
                attempt: 2,
                scheduled_for: run.scheduled_for,
                due_at: at("11:00"),
                status: RetryStatus::Pending,
                reason: None,
                run_id: None,
                created_at: at("10:00"),
                updated_at: at("10:00"),
            })
        }))
        .exec_without_returning(&t.db)
        .await
        .expect("insert retries");
    }
    let outcomes: Vec<Outcome> = failed[..300]
        .iter()
        .map(|run| Outcome {
            job_id: job.id,
            run_id: run.id,
            attempt: 1,
            succeeded: false,
            error: Some("boom".to_owned()),
            at: at("10:05"),
        })
        .collect();
    let (store, sent) = t.recording_store("SELECT");
    store
        .send(RecordRunOutcomes {
            outcomes,
            default_pause_after: None,
            now: at("10:06"),
        })
        .await
        .expect("mailbox")
        .expect("recorded");
    assert_eq!(
        t.job(job.id).await.consecutive_failures,
        0,
        "failures with a retry to come do not count"
    );
    let sent = sent.lock().expect("statements").clone();
    let of_retries: Vec<_> = sent
        .into_iter()
        .filter(|statement| statement.sql.contains("FROM \"plugin_job_retries\""))
        .collect();
    assert!(!of_retries.is_empty(), "the batch reads the retries");
    t.assert_plans_avoid(of_retries, "ix_plugin_job_retries_status_due_at")
        .await;
}

#[actix_rt::test]
async fn a_batch_of_outcomes_counts_each_jobs_streak_in_order_and_writes_the_jobs_together() {
    use plugin_jobs::store::{HealthChangeKind, RecordRunOutcomes, RunOutcome as Outcome};
    let t = TestDb::new().await;
    let (store, updates) = t.recording_store("UPDATE \"plugin_jobs\"");
    // 100 jobs that pause after two failures, each with a run claimed ahead that the pause must
    // cancel, and one job three failures into a streak.
    let mut pausing = Vec::new();
    for n in 0..100 {
        let mut job = common::job_row("alpha", &format!("job-{n}"));
        job.pause_after_failures = Some(2);
        let job = t.insert_job(job).await;
        let queued = t
            .insert_run(common::run_row(&job))
            .await
            .expect("queued run");
        pausing.push((job, queued));
    }
    let mut streaky = common::job_row("alpha", "streaky");
    streaky.consecutive_failures = 3;
    let streaky = t.insert_job(streaky).await;

    let outcome = |job_id, succeeded, error: &str| Outcome {
        job_id,
        run_id: uuid::Uuid::now_v7(),
        attempt: 1,
        succeeded,
        error: (!error.is_empty()).then(|| error.to_owned()),
        at: at("10:05"),
    };
    let mut outcomes = vec![outcome(streaky.id, true, "")];
    for (n, (job, _)) in pausing.iter().enumerate() {
        outcomes.push(outcome(job.id, false, &format!("first {n}")));
        outcomes.push(outcome(job.id, false, &format!("second {n}")));
    }
    let changes = store
        .send(RecordRunOutcomes {
            outcomes,
            default_pause_after: None,
            now: at("10:06"),
        })
        .await
        .expect("mailbox")
        .expect("recorded");

    assert_eq!(changes.len(), 101);
    for (n, (job, queued)) in pausing.iter().enumerate() {
        let reason = plugin_jobs::store::pause_reason(2, Some(&format!("second {n}")));
        let change = changes
            .iter()
            .find(|change| change.job.id == job.id)
            .expect("a change for each pausing job");
        assert_eq!(
            change.kind,
            HealthChangeKind::Paused {
                reason: reason.clone()
            }
        );
        assert_eq!(change.job.status, JobStatus::Paused);
        let stored = t.job(job.id).await;
        assert_eq!(stored.status, JobStatus::Paused, "job {n}");
        assert_eq!(stored.consecutive_failures, 2, "job {n}");
        assert_eq!(stored.paused_reason.as_deref(), Some(reason.as_str()));
        assert_eq!(stored.updated_at, at("10:06"));
        assert_eq!(t.run(queued.id).await.status, RunStatus::Cancelled);
    }
    let recovered = changes
        .iter()
        .find(|change| change.job.id == streaky.id)
        .expect("the streak's end");
    assert_eq!(recovered.kind, HealthChangeKind::Recovered { failures: 3 });
    let streaky = t.job(streaky.id).await;
    assert_eq!(streaky.consecutive_failures, 0);
    assert_eq!(streaky.status, JobStatus::Active);
    // 201 outcomes on 101 jobs: the jobs are written together, not one statement each.
    let updates = updates.lock().expect("statements").len();
    assert!(
        (1..=2).contains(&updates),
        "{updates} updates of jobs for 101 jobs"
    );
}
