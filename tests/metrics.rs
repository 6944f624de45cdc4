//! `GET /metrics` through `actix_web::test`, on a real database with a manual clock: after
//! known runs, skips, rescues and worker restarts, the Prometheus text holds exact counts,
//! labels, bucket counts and sums; and it follows the API's token rule.

mod common;

use std::time::Duration;

use actix_web::App;
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use common::{Gate, TestDb, at, job_row, run_row, wait_for, wait_until};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::http::configure;
use plugin_jobs::scheduler::Tick;
use plugin_jobs::store::{JobDeclaration, JobRef};
use plugin_jobs::worker::{InProcessWorkers, WorkerManager};
use plugin_jobs::{PluginJobs, PluginJobsHandle};

/// A started plugin-jobs over in-process workers with a manual clock at 2024-01-15 10:00 UTC.
struct Setup {
    t: TestDb,
    clock: ManualClock,
    workers: InProcessWorkers,
    jobs: PluginJobsHandle,
}

impl Setup {
    async fn new() -> Self {
        Self::with_config(SchedulerConfig::default()).await
    }

    async fn with_config(config: SchedulerConfig) -> Self {
        let t = TestDb::new().await;
        let clock = ManualClock::new(at("10:00"));
        let workers = InProcessWorkers::new();
        let jobs = PluginJobs::builder(t.db.clone())
            .workers(workers.clone())
            .clock(clock.clone())
            .config(config)
            .instance_id("metrics-test")
            .manual_ticks()
            .start()
            .expect("valid settings");
        Self {
            t,
            clock,
            workers,
            jobs,
        }
    }

    async fn tick(&self) {
        self.jobs.scheduler.send(Tick).await.expect("tick");
    }

    async fn wait_for_run(&self, run_id: uuid::Uuid, status: RunStatus) {
        wait_until(
            &format!("run {run_id} is {status}"),
            Duration::from_secs(10),
            || async { self.t.run(run_id).await.status == status },
        )
        .await;
    }

    /// The metrics text, as the handle renders it.
    async fn metrics(&self) -> String {
        self.jobs.metrics().await.expect("metrics")
    }

    /// Waits until the metrics hold every line of `lines` (events reach the metrics actor
    /// asynchronously), then answers the text.
    async fn wait_for_lines(&self, lines: &[&str]) -> String {
        wait_for(
            "the metrics hold every line",
            Duration::from_secs(10),
            || async {
                let text = self.metrics().await;
                let missing: Vec<&&str> = lines.iter().filter(|l| !has_line(&text, l)).collect();
                if missing.is_empty() {
                    Ok(text)
                } else {
                    Err(format!("missing {missing:?}:\n{text}"))
                }
            },
        )
        .await
    }
}

fn has_line(text: &str, line: &str) -> bool {
    text.lines().any(|l| l == line)
}

/// Every sample line of a metric family (its name followed by `{` or a space), sorted.
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

fn lines(expected: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = expected.iter().map(|l| (*l).to_owned()).collect();
    lines.sort();
    lines
}

#[actix_rt::test]
async fn metrics_count_known_runs_with_exact_labels_buckets_and_sums() {
    let s = Setup::new().await;
    let gate = Gate::default();
    s.workers
        .register("billing", "invoice", gate.handler())
        .register("billing", "adhoc", |_ctx| async { Ok(()) })
        .register("billing", "flaky", |_ctx| async {
            Err("card declined".to_owned())
        });
    s.jobs
        .register(
            "billing",
            vec![
                JobDeclaration::new("invoice", "*/15 * * * *"),
                JobDeclaration::new("adhoc", ""),
                JobDeclaration::new("flaky", ""),
            ],
        )
        .await
        .expect("register");

    // The 10:15 slot starts 250 ms late and is held by the gate.
    s.clock.set(at("2024-01-15T10:15:00.250Z"));
    s.tick().await;
    let invoice = s.t.all_runs().await;
    assert_eq!(invoice.len(), 1, "{invoice:?}");
    let invoice = invoice[0].id;
    s.wait_for_run(invoice, RunStatus::Running).await;

    // Manual runs start at their request time: no lateness, and no time passes in them.
    let adhoc = s
        .jobs
        .trigger(JobRef::key("billing", "adhoc"), RunTrigger::Manual)
        .await
        .expect("trigger adhoc");
    s.wait_for_run(adhoc.run_id, RunStatus::Succeeded).await;
    let flaky = s
        .jobs
        .trigger(JobRef::key("billing", "flaky"), RunTrigger::Retry)
        .await
        .expect("trigger flaky");
    s.wait_for_run(flaky.run_id, RunStatus::Failed).await;

    // The 10:30 slot comes due while the 10:15 run is still live: skipped as an overlap.
    s.clock.set(at("10:30"));
    s.tick().await;
    gate.open();
    s.wait_for_run(invoice, RunStatus::Succeeded).await;

    let text = s
        .wait_for_lines(&[
            r#"plugin_jobs_runs_finished_total{plugin="billing",job="invoice",trigger="schedule",status="succeeded"} 1"#,
            "plugin_jobs_tick_duration_seconds_count 2",
            // The live gauge is the scheduler's count: a run leaves it when its actor has
            // settled with the scheduler, a moment after its outcome is written.
            "plugin_jobs_runs_live 0",
        ])
        .await;

    assert_eq!(
        samples(&text, "plugin_jobs_runs_queued_total"),
        lines(&[
            r#"plugin_jobs_runs_queued_total{plugin="billing",job="invoice",trigger="schedule"} 1"#,
            r#"plugin_jobs_runs_queued_total{plugin="billing",job="adhoc",trigger="manual"} 1"#,
            r#"plugin_jobs_runs_queued_total{plugin="billing",job="flaky",trigger="retry"} 1"#,
        ]),
        "{text}"
    );
    assert_eq!(
        samples(&text, "plugin_jobs_runs_finished_total"),
        lines(&[
            r#"plugin_jobs_runs_finished_total{plugin="billing",job="invoice",trigger="schedule",status="succeeded"} 1"#,
            r#"plugin_jobs_runs_finished_total{plugin="billing",job="adhoc",trigger="manual",status="succeeded"} 1"#,
            r#"plugin_jobs_runs_finished_total{plugin="billing",job="flaky",trigger="retry",status="failed"} 1"#,
        ]),
        "{text}"
    );
    assert_eq!(
        samples(&text, "plugin_jobs_slots_skipped_total"),
        lines(&[
            r#"plugin_jobs_slots_skipped_total{plugin="billing",job="invoice",reason="overlap"} 1"#
        ]),
        "{text}"
    );

    // Lateness: the scheduled run 0.25 s (in the 0.25 bucket, not the 0.1 one), manual runs 0.
    for line in [
        r#"plugin_jobs_run_start_lateness_seconds_bucket{plugin="billing",job="invoice",trigger="schedule",le="0.1"} 0"#,
        r#"plugin_jobs_run_start_lateness_seconds_bucket{plugin="billing",job="invoice",trigger="schedule",le="0.25"} 1"#,
        r#"plugin_jobs_run_start_lateness_seconds_bucket{plugin="billing",job="invoice",trigger="schedule",le="+Inf"} 1"#,
        r#"plugin_jobs_run_start_lateness_seconds_sum{plugin="billing",job="invoice",trigger="schedule"} 0.25"#,
        r#"plugin_jobs_run_start_lateness_seconds_count{plugin="billing",job="invoice",trigger="schedule"} 1"#,
        r#"plugin_jobs_run_start_lateness_seconds_bucket{plugin="billing",job="adhoc",trigger="manual",le="0.001"} 1"#,
        r#"plugin_jobs_run_start_lateness_seconds_sum{plugin="billing",job="adhoc",trigger="manual"} 0.0"#,
        r#"plugin_jobs_run_start_lateness_seconds_count{plugin="billing",job="flaky",trigger="retry"} 1"#,
    ] {
        assert!(has_line(&text, line), "missing {line}:\n{text}");
    }
    // Duration: the invoice run lasted from 10:15:00.250 to 10:30:00 on the manual clock.
    for line in [
        r#"plugin_jobs_run_duration_seconds_bucket{plugin="billing",job="invoice",status="succeeded",le="300"} 0"#,
        r#"plugin_jobs_run_duration_seconds_bucket{plugin="billing",job="invoice",status="succeeded",le="900"} 1"#,
        r#"plugin_jobs_run_duration_seconds_sum{plugin="billing",job="invoice",status="succeeded"} 899.75"#,
        r#"plugin_jobs_run_duration_seconds_count{plugin="billing",job="invoice",status="succeeded"} 1"#,
        r#"plugin_jobs_run_duration_seconds_bucket{plugin="billing",job="flaky",status="failed",le="0.01"} 1"#,
        r#"plugin_jobs_run_duration_seconds_count{plugin="billing",job="flaky",status="failed"} 1"#,
        "# TYPE plugin_jobs_run_duration_seconds histogram",
        "# TYPE plugin_jobs_runs_finished_total counter",
    ] {
        assert!(has_line(&text, line), "missing {line}:\n{text}");
    }

    // State at scrape time: nothing live, nothing waiting, the worker running.
    assert_eq!(
        samples(&text, "plugin_jobs_runs_live"),
        ["plugin_jobs_runs_live 0"]
    );
    assert_eq!(
        samples(&text, "plugin_jobs_runs_waiting"),
        ["plugin_jobs_runs_waiting 0"]
    );
    assert_eq!(
        samples(&text, "plugin_jobs_max_concurrent_runs"),
        ["plugin_jobs_max_concurrent_runs 10"]
    );
    assert_eq!(
        samples(&text, "plugin_jobs_worker_status"),
        lines(&[
            r#"plugin_jobs_worker_status{plugin="billing",status="starting"} 0"#,
            r#"plugin_jobs_worker_status{plugin="billing",status="running"} 1"#,
            r#"plugin_jobs_worker_status{plugin="billing",status="restarting"} 0"#,
            r#"plugin_jobs_worker_status{plugin="billing",status="failed"} 0"#,
            r#"plugin_jobs_worker_status{plugin="billing",status="stopped"} 0"#,
        ])
    );
    assert_eq!(
        samples(&text, "plugin_jobs_worker_restarts_total"),
        [r#"plugin_jobs_worker_restarts_total{plugin="billing"} 0"#]
    );
    assert!(samples(&text, "plugin_jobs_runs_rescued_total").is_empty());
}

#[actix_rt::test]
async fn live_and_waiting_runs_are_read_at_scrape_time() {
    // A budget of one: the second manual run waits for the first.
    let s = Setup::with_config(SchedulerConfig {
        max_concurrent_runs: 1,
        ..SchedulerConfig::default()
    })
    .await;
    let gate = Gate::default();
    s.workers
        .register("ops", "a", gate.handler())
        .register("ops", "b", gate.handler());
    s.jobs
        .register(
            "ops",
            vec![JobDeclaration::new("a", ""), JobDeclaration::new("b", "")],
        )
        .await
        .expect("register");
    let first = s
        .jobs
        .trigger(JobRef::key("ops", "a"), RunTrigger::Manual)
        .await
        .expect("trigger a");
    s.wait_for_run(first.run_id, RunStatus::Running).await;
    s.jobs
        .trigger(JobRef::key("ops", "b"), RunTrigger::Manual)
        .await
        .expect("trigger b");
    let text = s.metrics().await;
    assert!(has_line(&text, "plugin_jobs_runs_live 1"), "{text}");
    assert!(has_line(&text, "plugin_jobs_runs_waiting 1"), "{text}");
    assert!(
        has_line(&text, "plugin_jobs_max_concurrent_runs 1"),
        "{text}"
    );
    gate.open();
    wait_until("both runs finished", Duration::from_secs(10), || async {
        let text = s.metrics().await;
        has_line(&text, "plugin_jobs_runs_live 0") && has_line(&text, "plugin_jobs_runs_waiting 0")
    })
    .await;
}

#[actix_rt::test]
async fn worker_status_and_restarts_follow_the_worker_manager() {
    let s = Setup::new().await;
    s.workers.register("ops", "a", |_ctx| async { Ok(()) });
    s.jobs
        .register("ops", vec![JobDeclaration::new("a", "")])
        .await
        .expect("register");
    s.workers.restart("ops").await;
    s.workers.restart("ops").await;
    s.workers.set_running("ops", false);
    let text = s.metrics().await;
    assert_eq!(
        samples(&text, "plugin_jobs_worker_restarts_total"),
        [r#"plugin_jobs_worker_restarts_total{plugin="ops"} 2"#]
    );
    assert!(
        has_line(
            &text,
            r#"plugin_jobs_worker_status{plugin="ops",status="stopped"} 1"#
        ),
        "{text}"
    );
    assert!(
        has_line(
            &text,
            r#"plugin_jobs_worker_status{plugin="ops",status="running"} 0"#
        ),
        "{text}"
    );
    // A counter never goes down, and an unregistered plugin's worker state disappears.
    s.jobs.unregister("ops").await.expect("unregister");
    let text = s.metrics().await;
    assert!(
        samples(&text, "plugin_jobs_worker_status").is_empty(),
        "{text}"
    );
    assert_eq!(
        samples(&text, "plugin_jobs_worker_restarts_total"),
        [r#"plugin_jobs_worker_restarts_total{plugin="ops"} 2"#]
    );
}

#[actix_rt::test]
async fn a_run_cancelled_before_its_slot_is_counted_finished_cancelled() {
    let s = Setup::with_config(SchedulerConfig {
        claim_lookahead: Duration::from_millis(1500),
        tick_interval: Duration::from_secs(2),
        ..SchedulerConfig::default()
    })
    .await;
    s.workers.register("p", "tick", |_ctx| async { Ok(()) });
    s.clock.set(at("2024-01-15T09:59:59Z"));
    s.jobs
        .register("p", vec![JobDeclaration::new("tick", "* * * * *")])
        .await
        .expect("register");
    // The 10:00 slot is claimed a second ahead, then its job is paused before it starts.
    s.tick().await;
    let runs = s.t.all_runs().await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    s.jobs.pause(JobRef::key("p", "tick")).await.expect("pause");
    s.wait_for_run(runs[0].id, RunStatus::Cancelled).await;
    let text = s
        .wait_for_lines(&[
            r#"plugin_jobs_runs_queued_total{plugin="p",job="tick",trigger="schedule"} 1"#,
            r#"plugin_jobs_runs_finished_total{plugin="p",job="tick",trigger="schedule",status="cancelled"} 1"#,
        ])
        .await;
    assert_eq!(
        samples(&text, "plugin_jobs_run_start_lateness_seconds_count"),
        Vec::<String>::new(),
        "a run that never started has no lateness"
    );
}

#[actix_rt::test]
async fn a_rescued_run_is_counted_by_plugin_and_as_a_failed_run_of_its_job() {
    let t = TestDb::new().await;
    let job = t.insert_job(job_row("legacy", "old")).await;
    // Started and last heartbeated an hour ago: past the lease, within the retention (the same
    // maintenance pass prunes old history right after the rescue).
    let an_hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let abandoned = PluginJobRunModel {
        status: RunStatus::Running,
        scheduled_for: an_hour_ago,
        started_at: Some(an_hour_ago),
        heartbeat_at: Some(an_hour_ago),
        created_at: an_hour_ago,
        ..run_row(&job)
    };
    t.insert_run(abandoned.clone())
        .await
        .expect("insert the abandoned run");
    // Real timers and clock: the start-up maintenance pass rescues the run.
    let jobs = PluginJobs::builder(t.db.clone())
        .instance_id("rescuer")
        .start()
        .expect("valid settings");
    // Counted as a failed run too: alerts on failed runs must see the rescued ones.
    let lines = [
        r#"plugin_jobs_runs_rescued_total{plugin="legacy"} 1"#,
        r#"plugin_jobs_runs_finished_total{plugin="legacy",job="old",trigger="manual",status="failed"} 1"#,
        r#"plugin_jobs_run_duration_seconds_count{plugin="legacy",job="old",status="failed"} 1"#,
    ];
    wait_for("the rescue is counted", Duration::from_secs(10), || async {
        let text = jobs.metrics().await.expect("metrics");
        if lines.iter().all(|line| has_line(&text, line)) {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    assert_eq!(t.run(abandoned.id).await.status, RunStatus::Failed);
    jobs.shutdown(Duration::ZERO).await.expect("shutdown");
}

#[actix_rt::test]
async fn metrics_are_prometheus_text_and_need_the_token_when_one_is_set() {
    let s = Setup::new().await;
    let app = test::init_service(
        App::new().configure(configure(s.jobs.clone(), Some("s3cret".to_owned()))),
    )
    .await;
    let refused = test::call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = test::read_body_json(refused).await;
    assert_eq!(body, serde_json::json!({"error": "Unauthorized"}));
    let wrong = TestRequest::get()
        .uri("/metrics")
        .insert_header((header::AUTHORIZATION, "Bearer nope"))
        .to_request();
    assert_eq!(
        test::call_service(&app, wrong).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let allowed = TestRequest::get()
        .uri("/metrics")
        .insert_header((header::AUTHORIZATION, "Bearer s3cret"))
        .to_request();
    let response = test::call_service(&app, allowed).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get(header::CONTENT_TYPE)
            .expect("a content type"),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(test::read_body(response).await.to_vec()).expect("UTF-8");
    // A family without series yet (no run finished) is left out; the gauges are always there.
    assert!(
        has_line(&text, "# TYPE plugin_jobs_tick_duration_seconds histogram"),
        "{text}"
    );
    assert!(!text.contains("plugin_jobs_runs_finished_total"), "{text}");
    assert!(has_line(&text, "plugin_jobs_runs_live 0"), "{text}");

    let post = TestRequest::post()
        .uri("/metrics")
        .insert_header((header::AUTHORIZATION, "Bearer s3cret"))
        .to_request();
    let response = test::call_service(&app, post).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Without a token the route is open, like /api.
    let open = test::init_service(App::new().configure(configure(s.jobs.clone(), None))).await;
    let response = test::call_service(&open, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[actix_rt::test]
async fn jobs_past_the_label_limit_are_counted_under_one_other_series() {
    use plugin_jobs::events::RunEvent;
    use plugin_jobs::metrics::{MAX_LABELLED_JOBS, OTHER_JOBS};

    let s = Setup::new().await;
    let queued = |n: usize| RunEvent::RunQueued {
        run_id: uuid::Uuid::now_v7(),
        job_id: uuid::Uuid::now_v7(),
        plugin_id: "big".to_owned(),
        job_key: format!("job-{n}"),
        trigger: RunTrigger::Schedule,
        scheduled_for: at("10:00"),
    };
    // Every labelled job once, then three runs of jobs past the limit and one of a labelled job.
    for n in 0..MAX_LABELLED_JOBS + 3 {
        s.jobs.metrics.send(queued(n)).await.expect("event");
    }
    s.jobs.metrics.send(queued(0)).await.expect("event");
    let text = s.jobs.metrics().await.expect("render");
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("plugin_jobs_runs_queued_total{"))
        .collect();
    assert_eq!(
        series.len(),
        MAX_LABELLED_JOBS + 1,
        "one series per labelled job, plus _other"
    );
    let other = format!(
        "plugin_jobs_runs_queued_total{{plugin=\"big\",job=\"{OTHER_JOBS}\",trigger=\"schedule\"}} 3"
    );
    assert!(series.contains(&other.as_str()), "{other} in {series:?}");
    assert!(
        series.contains(
            &"plugin_jobs_runs_queued_total{plugin=\"big\",job=\"job-0\",trigger=\"schedule\"} 2"
        ),
        "a labelled job keeps its own series"
    );
}

/// A scrape reads the jobs a page at a time: a job that got its series from a run event keeps
/// its gauges wherever it sits in the table, and the free labels go to the first jobs in key
/// order, never to more than the limit.
#[actix_rt::test]
async fn a_scrape_pages_through_the_jobs_and_gauges_only_the_labelled_ones() {
    use plugin_jobs::events::RunEvent;
    use plugin_jobs::metrics::MAX_LABELLED_JOBS;

    let s = Setup::new().await;
    let total = MAX_LABELLED_JOBS + 5;
    let key = |n: usize| format!("job-{n:05}");
    for n in 0..total {
        s.t.insert_job(common::job_row("big", &key(n))).await;
    }
    // The last job in key order, on the scrape's second page, is labelled first by a run.
    let last = key(total - 1);
    s.jobs
        .metrics
        .send(RunEvent::RunQueued {
            run_id: uuid::Uuid::now_v7(),
            job_id: uuid::Uuid::now_v7(),
            plugin_id: "big".to_owned(),
            job_key: last.clone(),
            trigger: RunTrigger::Schedule,
            scheduled_for: at("10:00"),
        })
        .await
        .expect("event");
    let text = s.jobs.metrics().await.expect("render");
    let gauged: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("plugin_jobs_job_consecutive_failures{"))
        .collect();
    assert_eq!(
        gauged.len(),
        MAX_LABELLED_JOBS,
        "one gauge per labelled job"
    );
    let has = |job: &str| gauged.iter().any(|l| l.contains(&format!("job=\"{job}\"")));
    assert!(has(&last), "the job labelled by its run keeps its gauge");
    assert!(has(&key(0)), "the first job in key order gets a label");
    assert!(
        !has(&key(MAX_LABELLED_JOBS - 1)),
        "the labels ran out before the {MAX_LABELLED_JOBS}th job in key order"
    );
}

/// A scrape reads the jobs with series of their own by key and pages through the table only
/// while labels are free: at a million jobs it read every page (a thousand reads) and gave up
/// after 2 s on each scrape, so no job ever got its gauges. Here, 2,500 jobs with the last one
/// in key order labelled by its run: the first scrape reads it and one page, the next reads only
/// the thousand labelled jobs by key.
#[actix_rt::test]
async fn a_scrape_reads_the_labelled_jobs_by_key_and_pages_only_for_free_labels() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use plugin_jobs::events::RunEvent;
    use plugin_jobs::metrics::MAX_LABELLED_JOBS;

    let t = TestDb::new().await;
    let key = |n: usize| format!("job-{n:05}");
    for n in 0..2_500 {
        t.insert_job(job_row("big", &key(n))).await;
    }
    let reads = Arc::new(AtomicUsize::new(0));
    let mut db = t.db.clone();
    let counted = Arc::clone(&reads);
    db.set_metric_callback(move |info| {
        let sql = &info.statement.sql;
        if sql.trim_start().starts_with("SELECT") && sql.contains("FROM \"plugin_jobs\"") {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let jobs = PluginJobs::builder(db)
        .workers(InProcessWorkers::new())
        .clock(ManualClock::new(at("10:00")))
        .instance_id("metrics-test")
        .manual_ticks()
        .start()
        .expect("valid settings");
    jobs.metrics
        .send(RunEvent::RunQueued {
            run_id: uuid::Uuid::now_v7(),
            job_id: uuid::Uuid::now_v7(),
            plugin_id: "big".to_owned(),
            job_key: key(2_499),
            trigger: RunTrigger::Schedule,
            scheduled_for: at("10:00"),
        })
        .await
        .expect("event");
    let gauges = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("plugin_jobs_job_consecutive_failures{"))
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<String>>()
    };
    let gauged = |lines: &std::collections::BTreeSet<String>, n: usize| {
        lines
            .iter()
            .any(|l| l.contains(&format!("job=\"{}\"", key(n))))
    };

    reads.store(0, Ordering::SeqCst);
    let first = gauges(&jobs.metrics().await.expect("render"));
    assert_eq!(first.len(), MAX_LABELLED_JOBS);
    assert!(
        gauged(&first, 2_499),
        "the job labelled by its run, last in key order"
    );
    assert!(
        gauged(&first, 998) && !gauged(&first, 999),
        "the free labels, in key order"
    );
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "the labelled job by key, then one page for the 999 free labels"
    );

    reads.store(0, Ordering::SeqCst);
    let second = gauges(&jobs.metrics().await.expect("render"));
    assert!(second == first, "the same jobs gauged");
    assert_eq!(
        reads.load(Ordering::SeqCst),
        2,
        "the 1,000 labelled jobs by key, 500 a read, and no page"
    );
}
