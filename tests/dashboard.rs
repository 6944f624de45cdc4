//! The dashboard page and what it reads, through `actix_web::test` on a real database with a
//! manual clock: the page at `/` and under a scope, `GET /api/jobs` (every plugin's jobs with the
//! schedule in words, the next slots and the newest run), `GET /api/runs` (recent runs across
//! jobs; `view=summary` leaves the logs out), and the `/metrics` the page charts.
//! `tests/dashboard_browser.rs` drives the page in a real browser.

mod common;

use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use chrono::TimeDelta;
use common::{Harness, at, job_row, ok_handler, run_row};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::http::{configure, dashboard};
use plugin_jobs::store::{JobDeclaration, JobRef};
use serde_json::{Value, json};

/// Builds the service for a harness, with an optional API token.
macro_rules! app {
    ($h:expr) => {
        app!($h, None)
    };
    ($h:expr, $token:expr) => {
        test::init_service(App::new().configure(configure($h.jobs.clone(), $token))).await
    };
}

/// GETs `uri` and answers the status and the JSON body.
macro_rules! get {
    ($app:expr, $uri:expr) => {{
        let response = test::call_service(&$app, TestRequest::get().uri($uri).to_request()).await;
        let status = response.status();
        let body: Value =
            serde_json::from_slice(&test::read_body(response).await).expect("a JSON body");
        (status, body)
    }};
}

/// Plugins `billing` (`invoice` every 15 minutes, `report` at 09:00 on weekdays in Paris,
/// `adhoc` manual only, `broken` with an invalid schedule) and `ops` (`cleanup`, manual). The
/// clock stands at 2024-01-15 10:00 UTC, a Monday.
async fn two_plugins() -> Harness {
    let h = Harness::new(SchedulerConfig::default()).await;
    h.workers
        .inner
        .register("billing", "invoice", ok_handler)
        .register("billing", "report", ok_handler)
        .register("billing", "adhoc", ok_handler)
        .register("ops", "cleanup", ok_handler);
    let report = JobDeclaration {
        timezone: "Europe/Paris".to_owned(),
        ..JobDeclaration::new("report", "0 9 * * 1-5")
    };
    h.jobs
        .register(
            "billing",
            vec![
                JobDeclaration::new("invoice", "*/15 * * * *"),
                report,
                JobDeclaration::new("adhoc", ""),
                JobDeclaration::new("broken", "61 * * * *"),
            ],
        )
        .await
        .expect("register billing");
    h.jobs
        .register("ops", vec![JobDeclaration::new("cleanup", "")])
        .await
        .expect("register ops");
    h
}

fn field<'a>(items: &'a Value, name: &str) -> Vec<&'a str> {
    items
        .as_array()
        .expect("an array")
        .iter()
        .map(|item| item[name].as_str().unwrap_or("<none>"))
        .collect()
}

#[actix_rt::test]
async fn all_jobs_come_with_their_schedule_in_words_next_slots_and_newest_run() {
    let h = two_plugins().await;
    let app = app!(h);
    let first = h
        .jobs
        .trigger(JobRef::key("billing", "adhoc"), RunTrigger::Manual)
        .await
        .expect("trigger adhoc");
    h.wait_for_run(first.run_id, RunStatus::Succeeded).await;
    h.clock.advance(TimeDelta::seconds(30));
    let second = h
        .jobs
        .trigger(JobRef::key("billing", "adhoc"), RunTrigger::Retry)
        .await
        .expect("trigger adhoc again");
    h.wait_for_run(second.run_id, RunStatus::Succeeded).await;

    let (status, jobs) = get!(app, "/api/jobs");
    assert_eq!(status, StatusCode::OK, "{jobs}");
    assert_eq!(
        field(&jobs, "jobKey"),
        ["adhoc", "broken", "invoice", "report", "cleanup"],
        "by plugin, then key"
    );
    assert_eq!(
        field(&jobs, "scheduleDescription"),
        [
            "manual only",
            "61 * * * *",
            "every 15 minutes",
            "at 09:00 on weekdays",
            "manual only"
        ]
    );
    let invoice = &jobs[2];
    assert_eq!(
        invoice["upcomingSlots"]
            .as_array()
            .expect("upcomingSlots is an array")
            .iter()
            .map(|slot| slot["utc"].clone())
            .collect::<Value>(),
        json!([
            "2024-01-15T10:15:00.000Z",
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:45:00.000Z",
            "2024-01-15T11:00:00.000Z",
            "2024-01-15T11:15:00.000Z",
        ])
    );
    assert_eq!(invoice["lastRun"], Value::Null, "never ran");
    // 09:00 in Paris is 08:00 UTC in winter; the clock is past it on Monday, so Tuesday.
    assert_eq!(jobs[3]["upcoming"][0], "2024-01-16T08:00:00.000Z");
    assert_eq!(
        jobs[3]["upcomingSlots"][0]["utc"],
        "2024-01-16T08:00:00.000Z"
    );
    assert_eq!(jobs[1]["status"], "failed");
    assert_eq!(jobs[1]["upcoming"], json!([]));

    // The newest run, whatever its trigger, without logs.
    let adhoc = &jobs[0];
    let second_run = h.t.run(second.run_id).await;
    assert_eq!(
        adhoc["lastRun"],
        json!({
            "id": second.run_id.to_string(),
            "trigger": "retry",
            "status": "succeeded",
            "scheduledFor": "2024-01-15T10:00:30.000Z",
            "durationMs": 0,
            "error": null,
            "startedAt": "2024-01-15T10:00:30.000Z",
            "finishedAt": plugin_jobs::time::iso(second_run.finished_at.expect("finished")),
            "attempt": 1,
            "retryOf": null,
        })
    );
    // The job object's own fields are all there beside the three added ones.
    let object = adhoc.as_object().expect("an object");
    for name in [
        "id",
        "pluginId",
        "jobKey",
        "schedule",
        "timezone",
        "status",
        "nextRunAt",
        "upcoming",
        "upcomingSlots",
        "scheduleDescription",
        "lastRun",
    ] {
        assert!(object.contains_key(name), "{name} in {adhoc}");
    }

    let (status, failed) = get!(app, "/api/jobs?status=failed");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(field(&failed, "jobKey"), ["broken"]);
    let (status, bad) = get!(app, "/api/jobs?status=sleeping");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"sleeping\"")),
        "{bad}"
    );
}

#[actix_rt::test]
async fn recent_runs_span_every_job_newest_first_and_filter_by_plugin() {
    let h = two_plugins().await;
    let app = app!(h);
    let mut triggered = Vec::new();
    for (plugin, job) in [
        ("billing", "adhoc"),
        ("ops", "cleanup"),
        ("billing", "invoice"),
    ] {
        let run = h
            .jobs
            .trigger(JobRef::key(plugin, job), RunTrigger::Manual)
            .await
            .expect("trigger");
        h.wait_for_run(run.run_id, RunStatus::Succeeded).await;
        triggered.push(run.run_id.to_string());
        h.clock.advance(TimeDelta::seconds(1));
    }
    let newest_first: Vec<&str> = triggered.iter().rev().map(String::as_str).collect();

    let (status, runs) = get!(app, "/api/runs");
    assert_eq!(status, StatusCode::OK, "{runs}");
    assert_eq!(field(&runs, "id"), newest_first);
    assert_eq!(field(&runs, "pluginId"), ["billing", "ops", "billing"]);
    assert_eq!(field(&runs, "status"), ["succeeded"; 3]);
    assert!(runs[0]["logs"].is_array(), "runs carry their logs: {runs}");

    let (_, two) = get!(app, "/api/runs?limit=2");
    assert_eq!(field(&two, "id"), newest_first[..2]);
    let (_, ops) = get!(app, "/api/runs?pluginId=ops");
    assert_eq!(field(&ops, "id"), [newest_first[1]]);

    // `view=summary`: the same run objects without their logs, for strips and filtered scans.
    let (status, summary) = get!(app, "/api/runs?view=summary");
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(field(&summary, "id"), newest_first);
    assert_eq!(field(&summary, "status"), ["succeeded"; 3]);
    for run in summary.as_array().expect("an array") {
        let run = run.as_object().expect("a run object");
        assert!(!run.contains_key("logs"), "{run:?}");
        assert!(run.contains_key("instanceId") && run.contains_key("createdAt"));
    }
    let (status, strip) = get!(
        app,
        "/api/plugins/billing/jobs/invoice/runs?limit=50&view=summary"
    );
    assert_eq!(status, StatusCode::OK, "{strip}");
    assert_eq!(field(&strip, "id"), [newest_first[0]]);
    assert_eq!(strip[0].get("logs"), None);
    let (status, bad) = get!(app, "/api/runs?view=brief");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad["error"],
        r#"invalid view "brief": expected "full" or "summary""#
    );

    // A plugin known only from its rows in the database has an empty but valid listing.
    h.t.insert_job(job_row("legacy", "old")).await;
    let (status, legacy) = get!(app, "/api/runs?pluginId=legacy");
    assert_eq!((status, legacy), (StatusCode::OK, json!([])));
}

#[actix_rt::test]
async fn recent_runs_refuse_bad_limits_unknown_plugins_and_missing_tokens() {
    let h = two_plugins().await;
    let app = app!(h);
    for bad in ["0", "501", "abc"] {
        let (status, body) = get!(app, &format!("/api/runs?limit={bad}"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "limit={bad}");
        let error = body["error"].as_str().expect("an error");
        assert!(error.contains("limit") && error.contains(bad), "{error}");
    }
    let (status, body) = get!(app, "/api/runs?pluginId=nope");
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Plugin not found: nope"})
        )
    );
    // 55 finished runs of one job: the default limit is 50, and 500 is allowed.
    let cleanup = h.t.insert_job(job_row("ops", "archive")).await;
    for minute in 0..55 {
        let created = at("2024-01-14T00:00:00Z") + TimeDelta::minutes(minute);
        let run = PluginJobRunModel {
            status: RunStatus::Succeeded,
            created_at: created,
            scheduled_for: created,
            ..run_row(&cleanup)
        };
        h.t.insert_run(run).await.expect("insert run");
    }
    let (_, runs) = get!(app, "/api/runs");
    assert_eq!(runs.as_array().map(Vec::len), Some(50));
    let (_, runs) = get!(app, "/api/runs?limit=500");
    assert_eq!(runs.as_array().map(Vec::len), Some(55));

    let locked = app!(h, Some("s3cret".to_owned()));
    for uri in ["/api/jobs", "/api/runs"] {
        let (status, body) = get!(locked, uri);
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, json!({"error": "Unauthorized"})),
            "{uri}"
        );
        let allowed = TestRequest::get()
            .uri(uri)
            .insert_header((header::AUTHORIZATION, "Bearer s3cret"))
            .to_request();
        assert_eq!(
            test::call_service(&locked, allowed).await.status(),
            StatusCode::OK,
            "{uri}"
        );
    }
}

#[actix_rt::test]
async fn the_page_is_served_at_the_root_and_under_a_scope_and_needs_no_token() {
    let h = two_plugins().await;
    let app = test::init_service(
        App::new()
            .configure(configure(h.jobs.clone(), Some("s3cret".to_owned())))
            .configure(dashboard())
            .service(
                web::scope("/ops")
                    .configure(configure(h.jobs.clone(), None))
                    .configure(dashboard()),
            ),
    )
    .await;

    for uri in ["/", "/ops/"] {
        let response = test::call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        let headers = response.headers().clone();
        let content_type = headers.get(header::CONTENT_TYPE).expect("a content type");
        assert_eq!(content_type, "text/html; charset=utf-8", "{uri}");
        let policy = headers
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .expect("a content security policy");
        assert!(
            policy.contains("default-src 'none'") && policy.contains("connect-src 'self'"),
            "{policy}"
        );
        let page = String::from_utf8(test::read_body(response).await.to_vec()).expect("UTF-8");
        assert!(page.starts_with("<!doctype html>"), "{uri}");
        assert!(page.contains("<title>plugin-jobs</title>"));
        // Assets are inline and API calls relative to the page: nothing leaves the origin.
        assert!(page.contains("new URL(path, document.baseURI)"));
        assert!(page.contains("request(method, 'api/' + path"));
        assert!(page.contains("request('GET', 'metrics'"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }

    // Inside a scope, the bare prefix redirects to the page so relative URLs resolve under it.
    let response = test::call_service(&app, TestRequest::get().uri("/ops").to_request()).await;
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        response
            .headers()
            .get(header::LOCATION)
            .expect("a location"),
        "/ops/"
    );
    let (status, plugins) = get!(app, "/ops/api/plugins");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(field(&plugins, "id"), ["billing", "ops"]);
    // The metrics the page charts are beside it too, relative to it.
    let response =
        test::call_service(&app, TestRequest::get().uri("/ops/metrics").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = String::from_utf8(test::read_body(response).await.to_vec()).expect("UTF-8");
    // (The lateness histogram the page also charts appears with the first run.)
    assert!(
        metrics.contains("\nplugin_jobs_tick_duration_seconds_count "),
        "{metrics}"
    );
    // The page is open; the API beside it at the root still needs the token.
    let (status, _) = get!(app, "/api/plugins");
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
