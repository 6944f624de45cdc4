//! The paginated listings of the HTTP API (`GET /api/jobs`, `/api/plugins/{id}/jobs`,
//! `/api/runs`, a job's runs): keyset pages in a stable order that a cursor walks through
//! exactly once, filters applied in SQL, 400s that name the bad parameter, the unchanged answer
//! of a request without `limit` or `cursor`, and each job's newest run read in one statement.
//! On SQLite, or on PostgreSQL when `DATABASE_URL` is set.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::App;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use chrono::{DateTime, TimeDelta, Utc};
use common::{RecordingWorkers, TestDb, at, job_row, run_row};
use entity::prelude::*;
use plugin_jobs::clock::ManualClock;
use plugin_jobs::http::configure;
use plugin_jobs::store::{CompleteRun, JobCursor, ListJobPage, ListRunPage};
use plugin_jobs::{PluginJobs, PluginJobsHandle};
use sea_orm::ConnectionTrait as _;
use serde_json::Value;
use uuid::Uuid;

/// A started plugin-jobs on a fresh database whose store counts the statements that read
/// `plugin_job_runs`.
struct Listings {
    t: TestDb,
    jobs: PluginJobsHandle,
    run_reads: Arc<AtomicUsize>,
    /// The SQL of every statement that read `plugin_job_runs`, for failure messages.
    run_sql: Arc<Mutex<Vec<String>>>,
}

impl Listings {
    async fn new() -> Self {
        let t = TestDb::new().await;
        let run_reads = Arc::new(AtomicUsize::new(0));
        let run_sql = Arc::new(Mutex::new(Vec::new()));
        let mut db = t.db.clone();
        let (reads, sql) = (Arc::clone(&run_reads), Arc::clone(&run_sql));
        db.set_metric_callback(move |info| {
            let text = &info.statement.sql;
            if text.trim_start().starts_with("SELECT") && text.contains("plugin_job_runs") {
                reads.fetch_add(1, Ordering::SeqCst);
                sql.lock().expect("sql lock").push(text.clone());
            }
        });
        let jobs = PluginJobs::builder(db)
            .workers(RecordingWorkers::default())
            .clock(ManualClock::new(at("10:00")))
            .instance_id("test-instance")
            .manual_ticks()
            .start()
            .expect("valid settings");
        Self {
            t,
            jobs,
            run_reads,
            run_sql,
        }
    }

    /// Inserts `count` jobs of `plugin`, keys `k00`, `k01`, …; every third one paused.
    async fn jobs_of(&self, plugin: &str, count: usize) -> Vec<PluginJobModel> {
        let mut jobs = Vec::new();
        for i in 0..count {
            let mut job = job_row(plugin, &format!("k{i:02}"));
            if i % 3 == 2 {
                job.status = JobStatus::Paused;
            }
            jobs.push(self.t.insert_job(job).await);
        }
        jobs
    }

    /// Inserts `count` jobs of each `(plugin, count)`; answers their `(plugin, key)`s in the
    /// listings' order.
    async fn keys_of_jobs(&self, counts: &[(&str, usize)]) -> Vec<(String, String)> {
        let mut keys = Vec::new();
        for &(plugin, count) in counts {
            let jobs = self.jobs_of(plugin, count).await;
            keys.extend(
                jobs.iter()
                    .map(|job| (job.plugin_id.clone(), job.job_key.clone())),
            );
        }
        keys.sort();
        keys
    }

    /// Inserts a finished run of `job` created at `created_at`.
    async fn run_of(
        &self,
        job: &PluginJobModel,
        created_at: DateTime<Utc>,
        status: RunStatus,
        trigger: RunTrigger,
    ) -> PluginJobRunModel {
        let run = PluginJobRunModel {
            status,
            trigger,
            created_at,
            scheduled_for: created_at,
            ..run_row(job)
        };
        self.t.insert_run(run).await.expect("insert run")
    }
}

macro_rules! app {
    ($l:expr) => {
        test::init_service(App::new().configure(configure($l.jobs.clone(), None))).await
    };
}

/// A response: status, body as JSON, and the next cursor and link when given.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
    next: Option<String>,
    link: Option<String>,
}

impl Reply {
    fn items(&self) -> &Vec<Value> {
        self.body.as_array().expect("a JSON array")
    }

    fn error(&self) -> String {
        self.body["error"].as_str().expect("an error").to_owned()
    }
}

async fn reply<B: MessageBody>(response: ServiceResponse<B>) -> Reply {
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().expect("ASCII header").to_owned())
    };
    let (next, link) = (header("x-next-cursor"), header("link"));
    let bytes = test::read_body(response).await;
    let body = serde_json::from_slice(&bytes).expect("a JSON body");
    Reply {
        status,
        body,
        next,
        link,
    }
}

/// `GET uri` on the app (a macro: the test service's request type has no public name).
macro_rules! get {
    ($app:expr, $uri:expr) => {
        reply(test::call_service(&$app, TestRequest::get().uri($uri).to_request()).await).await
    };
}

/// Follows `X-Next-Cursor` from `first` (a URI with `limit`) to the last page; answers every
/// item in the order the pages gave them and the number of pages.
macro_rules! walk {
    ($app:expr, $first:expr) => {{
        let mut items: Vec<Value> = Vec::new();
        let mut pages = 0_usize;
        let mut uri: String = $first.to_owned();
        loop {
            let reply = get!($app, &uri);
            assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
            pages += 1;
            assert!(pages < 1000, "the cursor never ends");
            items.extend(reply.items().iter().cloned());
            let Some(next) = reply.next else {
                assert!(reply.link.is_none(), "a link without a cursor");
                break;
            };
            uri = next_uri(reply.link, &next);
        }
        (items, pages)
    }};
}

/// The URI of a `Link: <uri>; rel="next"` header, checked to carry `next` as its cursor: the
/// same path and filters with the new cursor.
fn next_uri(link: Option<String>, next: &str) -> String {
    let link = link.expect("a Link beside the cursor");
    assert!(
        link.ends_with(&format!("cursor={next}>; rel=\"next\"")),
        "{link}"
    );
    link.trim_start_matches('<')
        .trim_end_matches(">; rel=\"next\"")
        .to_owned()
}

fn key_of(job: &Value) -> (String, String) {
    (
        job["pluginId"].as_str().expect("pluginId").to_owned(),
        job["jobKey"].as_str().expect("jobKey").to_owned(),
    )
}

fn id_of(item: &Value) -> Uuid {
    item["id"].as_str().expect("id").parse().expect("a UUID")
}

// Jobs ------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_job_cursor_walks_every_job_once_in_plugin_and_key_order() {
    let l = Listings::new().await;
    let expected = l
        .keys_of_jobs(&[("gamma", 4), ("alpha", 9), ("beta", 10)])
        .await;
    let app = app!(l);

    let (items, pages) = walk!(app, "/api/jobs?limit=5");
    assert_eq!(items.iter().map(key_of).collect::<Vec<_>>(), expected);
    assert_eq!(pages, 5, "23 jobs in pages of 5");
    // The plain listing answers the same jobs, all at once, with no cursor.
    let all = get!(app, "/api/jobs");
    assert_eq!(all.next, None);
    assert_eq!(all.items().iter().map(key_of).collect::<Vec<_>>(), expected);
    assert_eq!(all.items(), &items, "pages carry the same objects");
}

/// An unpaged listing of more jobs than a page is still one array of every job, read and
/// streamed a page (500) at a time: built whole, one listing of 40,000 jobs took 370 MB.
#[actix_rt::test]
async fn an_unpaged_listing_of_many_jobs_answers_every_job_one_page_read_at_a_time() {
    let l = Listings::new().await;
    let expected = l.keys_of_jobs(&[("beta", 601), ("alpha", 600)]).await;
    let app = app!(l);

    l.run_reads.store(0, Ordering::SeqCst);
    let all = get!(app, "/api/jobs");
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!((&all.next, &all.link), (&None, &None));
    assert_eq!(all.items().iter().map(key_of).collect::<Vec<_>>(), expected);
    assert_eq!(
        l.run_reads.load(Ordering::SeqCst),
        3,
        "1,201 jobs: three pages, each page's newest runs in one statement"
    );
    let (walked, pages) = walk!(app, "/api/jobs?limit=500");
    assert_eq!(pages, 3);
    assert_eq!(all.items(), &walked, "the same objects as the pages");

    let beta = get!(app, "/api/plugins/beta/jobs");
    assert_eq!(beta.status, StatusCode::OK);
    assert_eq!(beta.items().len(), 601);
    assert_eq!(beta.next, None);
    let paused = get!(app, "/api/plugins/beta/jobs?status=paused");
    assert_eq!(paused.items().len(), 200, "every third of 601");
    assert!(paused.items().iter().all(|job| job["status"] == "paused"));
}

#[actix_rt::test]
async fn a_page_ends_exactly_at_the_last_job_without_a_cursor() {
    let l = Listings::new().await;
    l.jobs_of("alpha", 6).await;
    let app = app!(l);
    let first = get!(app, "/api/jobs?limit=3");
    assert_eq!(first.items().len(), 3);
    let cursor = first.next.expect("a next page");
    let second = get!(app, &format!("/api/jobs?limit=3&cursor={cursor}"));
    assert_eq!(second.items().len(), 3);
    assert_eq!(second.next, None, "no empty page after the last job");
    // A cursor without a limit asks for a page of the default size (50): the rest.
    let rest = get!(app, &format!("/api/jobs?cursor={cursor}"));
    assert_eq!(rest.items(), second.items());
    assert_eq!(rest.next, None);
    let whole = get!(app, "/api/jobs?limit=6");
    assert_eq!(whole.items().len(), 6);
    assert_eq!(whole.next, None);
}

#[actix_rt::test]
async fn job_listings_filter_by_status_and_plugin() {
    let l = Listings::new().await;
    l.jobs_of("alpha", 7).await;
    l.jobs_of("beta", 8).await;
    let app = app!(l);

    let (paused, _) = walk!(app, "/api/jobs?status=paused&pluginId=beta&limit=1");
    let keys: Vec<_> = paused.iter().map(key_of).collect();
    assert_eq!(
        keys,
        [("beta", "k02"), ("beta", "k05")].map(|(p, k)| (p.to_owned(), k.to_owned()))
    );

    let (active, _) = walk!(app, "/api/plugins/alpha/jobs?status=active&limit=2");
    assert_eq!(
        active
            .iter()
            .map(key_of)
            .map(|(_, key)| key)
            .collect::<Vec<_>>(),
        ["k00", "k01", "k03", "k04", "k06"]
    );
    assert!(active.iter().all(|job| job.get("lastRun").is_none()));
    // The plugin's listing without limit keeps its shape: every job object, no cursor.
    let plain = get!(app, "/api/plugins/alpha/jobs");
    assert_eq!(plain.items().len(), 7);
    assert_eq!(plain.next, None);
    // Filters in SQL still leave a plugin's 404 alone.
    let unknown = get!(app, "/api/plugins/nobody/jobs?limit=5");
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // So does the filter of every job's listing, as `/api/runs?pluginId=` does.
    let unknown = get!(app, "/api/jobs?pluginId=nobody&limit=5");
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    let none_retired = get!(app, "/api/jobs?pluginId=alpha&status=retired");
    assert_eq!(none_retired.status, StatusCode::OK);
    assert!(none_retired.items().is_empty());
    let none_paused = get!(app, "/api/plugins/alpha/jobs?status=retired");
    assert_eq!(none_paused.status, StatusCode::OK);
    assert!(none_paused.items().is_empty());
}

/// `failing=true`: the jobs that are `failed` or whose last run to reach an outcome failed, from
/// the outcomes the store recorded, in SQL, so a cursor pages through them alone (the
/// dashboard's "failed only"). A queued, running or cancelled run leaves a job as it was; a
/// retired job is never failing; `failing=false` keeps the other jobs.
#[actix_rt::test]
async fn failing_keeps_the_failed_jobs_and_those_whose_last_outcome_failed() {
    use RunStatus::{Cancelled, Failed, Queued, Succeeded};

    let l = Listings::new().await;
    let alpha = l.jobs_of("alpha", 9).await;
    let beta = l.jobs_of("beta", 3).await;
    // Each job's runs, oldest first, a minute apart: each started and then given its outcome
    // by the store, but for a `Queued` one, left live.
    let histories: [(&PluginJobModel, &[RunStatus]); 9] = [
        (&alpha[0], &[Succeeded, Failed]),    // failing
        (&alpha[1], &[Failed, Succeeded]),    // recovered
        (&alpha[3], &[Failed]),               // failing
        (&alpha[4], &[Failed, Cancelled]),    // failing: its newest run was cancelled
        (&alpha[5], &[Succeeded, Failed]),    // failing, and paused
        (&alpha[6], &[Failed, Queued]),       // failing: its next run waits
        (&alpha[7], &[Succeeded]),            // healthy
        (&alpha[8], &[Succeeded, Cancelled]), // healthy: a cancelled run changes nothing
        (&beta[1], &[Failed, Failed]),        // failing
    ];
    let store = l.t.store();
    for (job, statuses) in histories {
        for (minute, status) in statuses.iter().enumerate() {
            let created = at("09:00") + TimeDelta::minutes(i64::try_from(minute).expect("small"));
            let live = if *status == Queued {
                Queued
            } else {
                RunStatus::Running
            };
            let run = l.run_of(job, created, live, RunTrigger::Schedule).await;
            if *status == Queued {
                continue;
            }
            let recorded = store
                .send(CompleteRun {
                    run_id: run.id,
                    status: *status,
                    error: (*status == Failed).then(|| "boom".to_owned()),
                    logs: None,
                    block_until: None,
                    now: created + TimeDelta::seconds(5),
                })
                .await
                .expect("mailbox")
                .expect("outcome recorded");
            assert!(recorded, "{} {status:?}", job.job_key);
        }
    }
    // A job that is `failed` itself (its schedule went bad), with no run.
    let mut failed = job_row("alpha", "k09");
    failed.status = JobStatus::Failed;
    l.t.insert_job(failed).await;
    // A job retired while failing: nobody's concern any more.
    let mut retired = job_row("beta", "k03");
    retired.status = JobStatus::Retired;
    retired.failing = true;
    l.t.insert_job(retired).await;
    let app = app!(l);
    let pairs = |keys: &[(&str, &str)]| -> Vec<(String, String)> {
        keys.iter()
            .map(|(plugin, key)| ((*plugin).to_owned(), (*key).to_owned()))
            .collect()
    };

    let (failing, pages) = walk!(app, "/api/jobs?failing=true&limit=2");
    assert_eq!(
        failing.iter().map(key_of).collect::<Vec<_>>(),
        pairs(&[
            ("alpha", "k00"),
            ("alpha", "k03"),
            ("alpha", "k04"),
            ("alpha", "k05"),
            ("alpha", "k06"),
            ("alpha", "k09"),
            ("beta", "k01")
        ])
    );
    assert_eq!(pages, 4, "seven jobs, two a page");
    assert_eq!(failing[0]["lastRun"]["status"], "failed");
    assert_eq!(failing[4]["lastRun"]["status"], "queued");
    assert!(
        failing.iter().all(|job| job["failing"] == true),
        "{failing:?}"
    );

    let (of_alpha, _) = walk!(
        app,
        "/api/plugins/alpha/jobs?failing=true&status=paused&limit=1"
    );
    assert_eq!(
        of_alpha.iter().map(key_of).collect::<Vec<_>>(),
        pairs(&[("alpha", "k05")])
    );
    // `failing=false` keeps the others, the retired one among them; without the filter, all.
    let everything = get!(app, "/api/jobs");
    assert_eq!(everything.items().len(), 14);
    let healthy = get!(app, "/api/jobs?failing=false");
    assert_eq!(
        healthy.items().iter().map(key_of).collect::<Vec<_>>(),
        pairs(&[
            ("alpha", "k01"),
            ("alpha", "k02"),
            ("alpha", "k07"),
            ("alpha", "k08"),
            ("beta", "k00"),
            ("beta", "k02"),
            ("beta", "k03")
        ])
    );
    assert!(
        healthy.items().iter().all(|job| job["failing"] == false),
        "{:?}",
        healthy.items()
    );
    let (healthy_paged, _) = walk!(app, "/api/plugins/beta/jobs?failing=false&limit=1");
    assert_eq!(
        healthy_paged.iter().map(key_of).collect::<Vec<_>>(),
        pairs(&[("beta", "k00"), ("beta", "k02"), ("beta", "k03")])
    );
    let unpaged = get!(app, "/api/jobs?failing=true&pluginId=beta");
    assert_eq!(
        unpaged.items().iter().map(key_of).collect::<Vec<_>>(),
        pairs(&[("beta", "k01")])
    );
    let bad = get!(app, "/api/jobs?failing=yes");
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.error(),
        r#"invalid failing "yes": expected true or false"#
    );
}

/// The failing jobs are read through their partial index, not by probing each job's runs, on
/// both databases, alone or with a plugin and a cursor, among 5,000 jobs of which ten fail; with
/// a status too, the database may read that status's index instead, but never the runs.
#[actix_rt::test]
async fn the_failing_jobs_are_read_from_their_index() {
    let l = Listings::new().await;
    let jobs: Vec<PluginJobModel> = (0..5_000)
        .map(|n| PluginJobModel {
            failing: n % 500 == 7,
            status: if n % 3 == 2 {
                JobStatus::Paused
            } else {
                JobStatus::Active
            },
            ..job_row("alpha", &format!("job-{n:04}"))
        })
        .collect();
    l.t.insert_jobs(&jobs).await;
    if l.t.is_postgres() {
        l.t.db
            .execute_unprepared("ANALYZE plugin_jobs")
            .await
            .expect("analyze");
    }
    let (store, sent) = l.t.recording_store("SELECT");
    let of_alpha = ListJobPage {
        failing: Some(true),
        plugin_id: Some("alpha".to_owned()),
        after: Some(JobCursor {
            plugin_id: "alpha".to_owned(),
            job_key: "job-1000".to_owned(),
        }),
        limit: Some(50),
        ..ListJobPage::default()
    };
    let pages = [
        (
            ListJobPage {
                failing: Some(true),
                limit: Some(50),
                ..ListJobPage::default()
            },
            Some("ix_plugin_jobs_failing"),
        ),
        (of_alpha.clone(), Some("ix_plugin_jobs_failing")),
        (
            ListJobPage {
                status: Some(JobStatus::Paused),
                ..of_alpha
            },
            None,
        ),
    ];
    let mut indexes = Vec::new();
    let mut found = Vec::new();
    for (page, index) in pages {
        let page = store
            .send(page)
            .await
            .expect("mailbox")
            .expect("a page of failing jobs");
        found.push(page.jobs.len());
        indexes.push(index);
    }
    assert_eq!(
        found,
        [10, 8, 3],
        "ten failing, eight after job-1000, three of them paused"
    );
    let statements: Vec<_> = sent.lock().expect("statements").clone();
    assert_eq!(statements.len(), indexes.len(), "{statements:?}");
    for (plan, index) in l.t.plans(statements).await.iter().zip(indexes) {
        if let Some(index) = index {
            assert!(plan.contains(index), "{plan}");
        }
        assert!(!plan.contains("plugin_job_runs"), "{plan}");
    }
}

#[actix_rt::test]
async fn every_job_carries_its_newest_run_read_in_one_statement() {
    let l = Listings::new().await;
    let jobs = l.jobs_of("alpha", 60).await;
    let mut newest = std::collections::HashMap::new();
    for (i, job) in jobs.iter().enumerate().take(50) {
        for minute in 0..(i % 4 + 1) {
            let created = at("09:00") + TimeDelta::minutes(i64::try_from(minute).expect("small"));
            let run = l
                .run_of(job, created, RunStatus::Succeeded, RunTrigger::Schedule)
                .await;
            newest.insert(job.id, run.id);
        }
    }
    let app = app!(l);

    for uri in [
        "/api/jobs?limit=30",
        "/api/jobs",
        "/api/jobs?limit=30&status=active",
    ] {
        l.run_reads.store(0, Ordering::SeqCst);
        l.run_sql.lock().expect("sql lock").clear();
        let reply = get!(app, uri);
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            l.run_reads.load(Ordering::SeqCst),
            1,
            "{uri}: the newest runs of a page in one statement, not one per job: {:?}",
            l.run_sql.lock().expect("sql lock")
        );
        for job in reply.items() {
            let last = job["lastRun"]["id"].as_str().map(|id| id.parse::<Uuid>());
            let expected = newest.get(&id_of(job)).copied();
            assert_eq!(last.transpose().expect("a UUID"), expected, "{job}");
        }
    }
}

#[actix_rt::test]
async fn bad_listing_parameters_answer_400_naming_the_parameter_and_value() {
    let l = Listings::new().await;
    l.jobs_of("alpha", 3).await;
    let job = l.jobs_of("beta", 1).await.remove(0);
    for minute in 0..3 {
        l.run_of(
            &job,
            at("09:00") + TimeDelta::minutes(minute),
            RunStatus::Succeeded,
            RunTrigger::Schedule,
        )
        .await;
    }
    let app = app!(l);
    let runs_cursor = get!(app, "/api/runs?limit=1").next.expect("a run cursor");
    let jobs_cursor = get!(app, "/api/jobs?limit=1").next.expect("a job cursor");

    let cases = [
        ("/api/jobs?limit=0".to_owned(), "limit", "\"0\""),
        ("/api/jobs?limit=501".to_owned(), "limit", "\"501\""),
        (
            "/api/jobs?cursor=nonsense".to_owned(),
            "cursor",
            "\"nonsense\"",
        ),
        (
            format!("/api/jobs?cursor={runs_cursor}"),
            "cursor",
            runs_cursor.as_str(),
        ),
        (
            "/api/jobs?status=sleeping".to_owned(),
            "status",
            "\"sleeping\"",
        ),
        (
            "/api/plugins/alpha/jobs?cursor=zz".to_owned(),
            "cursor",
            "\"zz\"",
        ),
        (
            "/api/plugins/alpha/jobs?limit=x".to_owned(),
            "limit",
            "\"x\"",
        ),
        (
            format!("/api/runs?cursor={jobs_cursor}"),
            "cursor",
            jobs_cursor.as_str(),
        ),
        ("/api/runs?cursor=00ff".to_owned(), "cursor", "\"00ff\""),
        ("/api/runs?status=done".to_owned(), "status", "\"done\""),
        ("/api/runs?trigger=cron".to_owned(), "trigger", "\"cron\""),
        (
            "/api/runs?since=yesterday".to_owned(),
            "since",
            "\"yesterday\"",
        ),
        (
            "/api/runs?until=2025-13-01".to_owned(),
            "until",
            "\"2025-13-01\"",
        ),
        (
            "/api/plugins/beta/jobs/k00/runs?cursor=1".to_owned(),
            "cursor",
            "\"1\"",
        ),
        (
            "/api/runs?since=2025-01-02T00:00:00Z&until=2025-01-01T00:00:00Z".to_owned(),
            "since (2025-01-02T00:00:00Z) is after until",
            "2025-01-01T00:00:00Z",
        ),
        // A misspelt filter would list everything: it is refused by name instead.
        (
            "/api/jobs?stauts=paused".to_owned(),
            "unknown parameter",
            "`stauts`",
        ),
        (
            "/api/plugins/alpha/jobs?plugin=beta".to_owned(),
            "unknown parameter",
            "`plugin`",
        ),
        (
            "/api/runs?state=failed".to_owned(),
            "unknown parameter",
            "`state`",
        ),
        (
            "/api/plugins/beta/jobs/k00/runs?from=2025-01-01".to_owned(),
            "unknown parameter",
            "`from`",
        ),
        (
            "/api/runs?status=failed&status=queued".to_owned(),
            "duplicate parameter",
            "`status`",
        ),
        // A listing under a plugin's path has its plugin there: another one is refused.
        (
            "/api/plugins/alpha/jobs?pluginId=beta".to_owned(),
            "unknown parameter",
            "`pluginId`",
        ),
        (
            "/api/plugins/beta/jobs/k00/runs?pluginId=alpha".to_owned(),
            "unknown parameter",
            "`pluginId`",
        ),
    ];
    for (uri, parameter, value) in cases {
        let reply = get!(app, &uri);
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            reply.body
        );
        let message = reply.error();
        assert!(
            message.contains(parameter) && message.contains(value),
            "{uri}: {message:?} names {parameter} and {value}"
        );
        // The parameters offered are those the route takes.
        if uri.starts_with("/api/plugins/") && message.contains("expected one of") {
            assert!(!message.contains("`pluginId`,"), "{uri}: {message}");
            assert!(!message.contains(", `pluginId`"), "{uri}: {message}");
        }
    }
}

// Runs ------------------------------------------------------------------------------------------

/// Inserts runs of three jobs, several of them created at the same instant (a tie the id
/// decides), with every status and trigger; answers them newest first as the API orders them.
async fn run_history(l: &Listings) -> Vec<PluginJobRunModel> {
    let jobs = l.jobs_of("alpha", 2).await;
    let other = l.jobs_of("beta", 1).await;
    let statuses = [
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];
    let triggers = [RunTrigger::Schedule, RunTrigger::Manual, RunTrigger::Retry];
    let mut runs = Vec::new();
    for i in 0..36_usize {
        let job = if i % 5 == 4 { &other[0] } else { &jobs[i % 2] };
        // Every three runs share an instant.
        let created = at("08:00") + TimeDelta::minutes(i64::try_from(i / 3).expect("small"));
        let run = l
            .run_of(job, created, statuses[i % 3], triggers[(i / 2) % 3])
            .await;
        runs.push(run);
    }
    runs.sort_by_key(|run| std::cmp::Reverse((run.created_at, run.id)));
    runs
}

#[actix_rt::test]
async fn a_run_cursor_walks_every_run_once_newest_first_through_ties() {
    let l = Listings::new().await;
    let expected: Vec<Uuid> = run_history(&l).await.iter().map(|run| run.id).collect();
    let app = app!(l);

    let (items, pages) = walk!(app, "/api/runs?limit=4&view=summary");
    assert_eq!(items.iter().map(id_of).collect::<Vec<_>>(), expected);
    assert_eq!(pages, 9);
    assert!(items.iter().all(|run| run.get("logs").is_none()));
    // Without a cursor: the default page of 50, shape unchanged.
    let plain = get!(app, "/api/runs");
    assert_eq!(
        plain.items().iter().map(id_of).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(plain.next, None);
    assert!(plain.items().iter().all(|run| run.get("logs").is_some()));
}

#[actix_rt::test]
async fn run_listings_filter_by_status_trigger_plugin_and_creation_time() {
    let l = Listings::new().await;
    let runs = run_history(&l).await;
    let app = app!(l);
    let since = at("08:03");
    let until = at("08:09");
    let expected: Vec<Uuid> = runs
        .iter()
        .filter(|run| run.status == RunStatus::Failed && run.trigger != RunTrigger::Manual)
        .filter(|run| run.plugin_id == "alpha")
        .filter(|run| run.created_at >= since && run.created_at < until)
        .map(|run| run.id)
        .collect();
    assert!(expected.len() >= 2, "the history has such runs");
    for trigger in ["schedule", "retry"] {
        let uri = format!(
            "/api/runs?status=failed&trigger={trigger}&pluginId=alpha\
             &since=2024-01-15T08:03:00Z&until=2024-01-15T09:09:00%2B01:00&limit=1"
        );
        let (items, _) = walk!(app, &uri);
        let want: Vec<Uuid> = expected
            .iter()
            .copied()
            .filter(|id| {
                runs.iter()
                    .any(|run| run.id == *id && run.trigger.to_string() == trigger)
            })
            .collect();
        assert_eq!(items.iter().map(id_of).collect::<Vec<_>>(), want, "{uri}");
        for run in &items {
            assert_eq!(run["status"], "failed");
            assert_eq!(run["trigger"], trigger);
            assert_eq!(run["pluginId"], "alpha");
        }
    }
}

/// The runs of a trigger other than `schedule` are read from their partial index, on both
/// databases, among 5,000 runs of which 100 are manual and 3 backfilled: a trigger with few runs
/// (or none) no longer walks the whole history. A job's runs read the job's index, and the
/// scheduled runs (most of the table) the order of creation.
#[actix_rt::test]
async fn the_runs_of_a_rare_trigger_are_read_from_their_index() {
    let l = Listings::new().await;
    let mut jobs = l.jobs_of("alpha", 20).await;
    jobs.extend(l.jobs_of("beta", 20).await);
    let runs: Vec<PluginJobRunModel> = (0..5_000_u16)
        .map(|n| {
            let created = at("00:00") + TimeDelta::seconds(i64::from(n));
            let trigger = match n {
                _ if n % 50 == 7 => RunTrigger::Manual,
                1_000 | 2_000 | 3_000 => RunTrigger::Backfill,
                _ => RunTrigger::Schedule,
            };
            PluginJobRunModel {
                status: RunStatus::Succeeded,
                trigger,
                created_at: created,
                scheduled_for: created,
                ..run_row(&jobs[usize::from(n) % jobs.len()])
            }
        })
        .collect();
    l.t.insert_runs(&runs).await;
    if l.t.is_postgres() {
        l.t.db
            .execute_unprepared("ANALYZE plugin_job_runs")
            .await
            .expect("analyze");
    }
    let newest = |keep: &dyn Fn(&PluginJobRunModel) -> bool| -> Vec<Uuid> {
        let mut ids: Vec<_> = runs.iter().filter(|run| keep(run)).collect();
        ids.sort_by_key(|run| std::cmp::Reverse((run.created_at, run.id)));
        ids.iter().take(50).map(|run| run.id).collect()
    };
    let of = |trigger| ListRunPage {
        trigger: Some(trigger),
        limit: 50,
        ..ListRunPage::default()
    };
    const INDEX: &str = "ix_plugin_job_runs_trigger_created_id";
    let job = jobs[7].id;
    let pages = [
        (
            of(RunTrigger::Backfill),
            newest(&|run| run.trigger == RunTrigger::Backfill),
            Some(INDEX),
        ),
        (
            of(RunTrigger::Manual),
            newest(&|run| run.trigger == RunTrigger::Manual),
            Some(INDEX),
        ),
        (
            ListRunPage {
                plugin_id: Some("beta".to_owned()),
                ..of(RunTrigger::Manual)
            },
            newest(&|run| run.trigger == RunTrigger::Manual && run.plugin_id == "beta"),
            None,
        ),
        (
            ListRunPage {
                job_id: Some(job),
                ..of(RunTrigger::Manual)
            },
            newest(&|run| run.trigger == RunTrigger::Manual && run.job_id == job),
            Some("ix_plugin_job_runs_job_created_id"),
        ),
        (
            of(RunTrigger::Schedule),
            newest(&|run| run.trigger == RunTrigger::Schedule),
            None,
        ),
    ];
    let (store, sent) = l.t.recording_store("SELECT");
    let mut indexes = Vec::new();
    let mut counts = Vec::new();
    for (page, expected, index) in pages {
        let what = format!("{page:?}");
        let found = store
            .send(page)
            .await
            .expect("mailbox")
            .expect("a page of runs");
        let ids: Vec<Uuid> = found.runs.iter().map(|run| run.id).collect();
        assert_eq!(ids, expected, "{what}");
        counts.push(ids.len());
        indexes.push(index);
    }
    assert_eq!(
        counts,
        [3, 50, 50, 25, 50],
        "three backfilled runs; 100 manual ones, half of them beta's and 25 of the job's"
    );
    let statements: Vec<_> = sent.lock().expect("statements").clone();
    assert_eq!(statements.len(), indexes.len(), "{statements:?}");
    let plans = l.t.plans(statements).await;
    for (plan, index) in plans.iter().zip(&indexes) {
        if let Some(index) = index {
            assert!(plan.contains(index), "{plan}");
        }
    }
    // The scheduled runs never read the index of the others. (A job's manual runs read the
    // job's index; PostgreSQL may read this one beside it, proving the predicate itself.)
    assert!(!plans[4].contains(INDEX), "{}", plans[4]);
}

#[actix_rt::test]
async fn a_jobs_runs_page_through_a_cursor_and_filter_too() {
    let l = Listings::new().await;
    let runs = run_history(&l).await;
    let job_id = runs
        .iter()
        .find(|run| run.plugin_id == "alpha")
        .expect("an alpha run")
        .job_id;
    let key = l.t.job(job_id).await.job_key;
    let app = app!(l);

    let of_job: Vec<Uuid> = runs
        .iter()
        .filter(|run| run.job_id == job_id)
        .map(|run| run.id)
        .collect();
    let (items, _) = walk!(app, &format!("/api/plugins/alpha/jobs/{key}/runs?limit=5"));
    assert_eq!(items.iter().map(id_of).collect::<Vec<_>>(), of_job);

    let cancelled: Vec<Uuid> = runs
        .iter()
        .filter(|run| run.job_id == job_id && run.status == RunStatus::Cancelled)
        .map(|run| run.id)
        .collect();
    let (items, _) = walk!(
        app,
        &format!("/api/plugins/alpha/jobs/{job_id}/runs?limit=2&status=cancelled")
    );
    assert_eq!(items.iter().map(id_of).collect::<Vec<_>>(), cancelled);
}
