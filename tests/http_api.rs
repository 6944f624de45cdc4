//! The HTTP API through `actix_web::test`, on a real database with a manual clock: every route of
//! DESIGN §6 and every status code it lists, the `{"error"}` shape of every failure, and the
//! bearer-token check.

mod common;

use std::collections::BTreeSet;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::{App, http::header};
use chrono::{DateTime, TimeDelta};
use common::{Gate, Harness, at, job_row, ok_handler, run_row};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::http::configure;
use plugin_jobs::store::JobDeclaration;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

const JOB_FIELDS: &[&str] = &[
    "id",
    "pluginId",
    "jobKey",
    "displayName",
    "description",
    "schedule",
    "timezone",
    "status",
    "timeoutMs",
    "misfire",
    "lastError",
    "blockedUntil",
    "lastRunAt",
    "nextRunAt",
    "pauseAfterFailures",
    "consecutiveFailures",
    "failing",
    "lastSuccessAt",
    "pausedReason",
    "retry",
    "origin",
    "payload",
    "overlap",
    "jitterMs",
    "misfireGraceMs",
    "createdAt",
    "updatedAt",
];

const RUN_FIELDS: &[&str] = &[
    "id",
    "jobId",
    "pluginId",
    "trigger",
    "status",
    "scheduledFor",
    "instanceId",
    "durationMs",
    "error",
    "logs",
    "startedAt",
    "finishedAt",
    "createdAt",
    "traceparent",
    "attempt",
    "retryOf",
    "payload",
];

/// Builds the service for a harness, with an optional API token.
macro_rules! app {
    ($h:expr) => {
        app!($h, None)
    };
    ($h:expr, $token:expr) => {
        test::init_service(App::new().configure(configure($h.jobs.clone(), $token))).await
    };
}

/// A response: its status and its body as JSON (`Null` when empty).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    /// The `error` message, asserting the body is exactly `{"error": "<message>"}`.
    fn error(&self) -> &str {
        let object = self.body.as_object().expect("error body is an object");
        assert_eq!(
            object.len(),
            1,
            "error body has only `error`: {}",
            self.body
        );
        object["error"].as_str().expect("error is a string")
    }
}

async fn call<S, R, B>(app: &S, req: R) -> Reply
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req).await;
    let status = response.status();
    let bytes = test::read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!(
                "body of a {status} is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    Reply { status, body }
}

fn get(uri: &str) -> TestRequest {
    TestRequest::get().uri(uri)
}

fn post(uri: &str) -> TestRequest {
    TestRequest::post().uri(uri)
}

/// The `runId` of a 202 trigger reply.
fn run_id_of(reply: &Reply) -> Uuid {
    reply.body["runId"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .expect("a run id")
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

fn field_set(fields: &[&str]) -> BTreeSet<String> {
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// ISO 8601 in UTC with exactly three fractional digits and `Z`.
/// The `utc` of each slot of a job's `upcomingSlots`; checks `upcoming` lists the same.
fn utc_of(job: &Value) -> Value {
    let slots = job["upcomingSlots"]
        .as_array()
        .expect("upcomingSlots is an array");
    let utc: Value = slots.iter().map(|slot| slot["utc"].clone()).collect();
    assert_eq!(job["upcoming"], utc, "upcoming lists the slots' instants");
    utc
}

fn assert_iso_millis(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is a string"));
    assert!(
        text.len() == 24 && text.ends_with('Z') && text.as_bytes()[19] == b'.',
        "{text} is ISO 8601 with milliseconds and Z"
    );
    DateTime::parse_from_rfc3339(text).unwrap_or_else(|err| panic!("{text}: {err}"));
}

/// A started plugin-jobs with plugin `billing` registered: `invoice` every 15 minutes (held by
/// the gate), `report` at 09:00 on weekdays in Paris, `adhoc` manual only, `broken` with an
/// invalid schedule. The clock stands at 2024-01-15 10:00 UTC, a Monday.
async fn billing() -> (Harness, Gate) {
    let h = Harness::new(SchedulerConfig::default()).await;
    let gate = Gate::default();
    h.workers
        .inner
        .register("billing", "invoice", gate.handler())
        .register("billing", "report", ok_handler)
        .register("billing", "adhoc", ok_handler);
    let invoice = JobDeclaration {
        display_name: "Send invoices".to_owned(),
        description: "Mails the open invoices".to_owned(),
        timeout_ms: Some(30_000),
        misfire: MisfirePolicy::Skip,
        ..JobDeclaration::new("invoice", "*/15 * * * *")
    };
    let report = JobDeclaration {
        timezone: "Europe/Paris".to_owned(),
        ..JobDeclaration::new("report", "0 9 * * 1-5")
    };
    h.jobs
        .register(
            "billing",
            vec![
                invoice,
                report,
                JobDeclaration::new("adhoc", ""),
                JobDeclaration::new("broken", "61 * * * *"),
            ],
        )
        .await
        .expect("register billing");
    (h, gate)
}

async fn job_id(h: &Harness, key: &str) -> Uuid {
    PluginJob::find()
        .filter(PluginJobColumn::PluginId.eq("billing"))
        .filter(PluginJobColumn::JobKey.eq(key))
        .one(&h.t.db)
        .await
        .expect("read job")
        .expect("job exists")
        .id
}

// Plugins ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn plugins_are_the_registered_ones_and_those_with_jobs_in_the_database() {
    let (h, _gate) = billing().await;
    h.jobs.register("empty", vec![]).await.expect("register");
    h.t.insert_job(job_row("legacy", "old")).await;
    let app = app!(h);

    let reply = call(&app, get("/api/plugins").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body,
        json!([
            {"id": "billing", "workerStatus": "running", "workerError": null, "jobCount": 4},
            {"id": "empty", "workerStatus": "stopped", "workerError": null, "jobCount": 0},
            {"id": "legacy", "workerStatus": "stopped", "workerError": null, "jobCount": 1},
        ])
    );

    h.workers.inner.set_running("billing", false);
    let reply = call(&app, get("/api/plugins").to_request()).await;
    assert_eq!(reply.body[0]["workerStatus"], "stopped");
}

// Job listings ----------------------------------------------------------------------------------

#[actix_rt::test]
async fn jobs_list_every_field_in_camel_case_with_iso_millisecond_timestamps() {
    let (h, _gate) = billing().await;
    let app = app!(h);

    let reply = call(&app, get("/api/plugins/billing/jobs").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let jobs = reply.body.as_array().expect("an array");
    let job_keys: Vec<&str> = jobs
        .iter()
        .map(|j| j["jobKey"].as_str().expect("key"))
        .collect();
    assert_eq!(job_keys, ["adhoc", "broken", "invoice", "report"]);
    for job in jobs {
        assert_eq!(keys(job), field_set(JOB_FIELDS));
        assert_iso_millis(&job["createdAt"]);
        assert_iso_millis(&job["updatedAt"]);
        // Only the job whose schedule is invalid (`failed`) needs an eye: nothing ran yet.
        assert_eq!(job["failing"], job["jobKey"] == "broken", "{job}");
    }

    let invoice = job_id(&h, "invoice").await;
    assert_eq!(
        jobs[2],
        json!({
            "id": invoice.to_string(),
            "pluginId": "billing",
            "jobKey": "invoice",
            "displayName": "Send invoices",
            "description": "Mails the open invoices",
            "schedule": "*/15 * * * *",
            "timezone": "UTC",
            "status": "active",
            "timeoutMs": 30000,
            "misfire": "skip",
            "lastError": null,
            "blockedUntil": null,
            "lastRunAt": null,
            "nextRunAt": "2024-01-15T10:15:00.000Z",
            "pauseAfterFailures": null,
            "consecutiveFailures": 0,
            "failing": false,
            "lastSuccessAt": null,
            "pausedReason": null,
            "retry": {"maxAttempts": 1, "backoffMs": 10000, "maxBackoffMs": 300000},
            "origin": "manifest",
            "payload": null,
            "overlap": "skip",
            "jitterMs": null,
            "misfireGraceMs": null,
            "createdAt": "2024-01-15T10:00:00.000Z",
            "updatedAt": "2024-01-15T10:00:00.000Z",
        })
    );
    assert_eq!(jobs[1]["status"], "failed");
    assert!(
        jobs[1]["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("61")),
        "the failed job says why: {}",
        jobs[1]
    );
}

#[actix_rt::test]
async fn jobs_filter_by_status() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/report/pause").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    let keys_for = |status: &'static str| {
        let app = &app;
        async move {
            let reply = call(
                app,
                get(&format!("/api/plugins/billing/jobs?status={status}")).to_request(),
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{status}: {}", reply.body);
            reply
                .body
                .as_array()
                .expect("an array")
                .iter()
                .map(|j| j["jobKey"].as_str().expect("key").to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(keys_for("active").await, ["adhoc", "invoice"]);
    assert_eq!(keys_for("paused").await, ["report"]);
    assert_eq!(keys_for("failed").await, ["broken"]);
    assert!(keys_for("retired").await.is_empty());
    assert_eq!(
        keys_for("").await.len(),
        4,
        "an empty status filters nothing"
    );
}

#[actix_rt::test]
async fn an_unknown_status_is_400_naming_the_value_and_the_allowed_ones() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let reply = call(
        &app,
        get("/api/plugins/billing/jobs?status=sleeping").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let error = reply.error();
    assert!(
        error.contains("status") && error.contains("\"sleeping\""),
        "{error}"
    );
    assert!(error.contains("active, paused, failed, retired"), "{error}");
}

#[actix_rt::test]
async fn jobs_of_an_unknown_plugin_are_404_and_of_a_plugin_without_jobs_an_empty_list() {
    let (h, _gate) = billing().await;
    h.jobs.register("empty", vec![]).await.expect("register");
    let app = app!(h);

    let reply = call(&app, get("/api/plugins/nobody/jobs").to_request()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.error().contains("nobody"), "{}", reply.error());

    let reply = call(&app, get("/api/plugins/empty/jobs").to_request()).await;
    assert_eq!((reply.status, reply.body), (StatusCode::OK, json!([])));
}

// One job ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn a_job_is_found_by_id_and_by_key_with_its_next_five_slots() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let invoice = job_id(&h, "invoice").await;

    let by_key = call(&app, get("/api/plugins/billing/jobs/invoice").to_request()).await;
    let by_id = call(
        &app,
        get(&format!("/api/plugins/billing/jobs/{invoice}")).to_request(),
    )
    .await;
    assert_eq!(by_key.status, StatusCode::OK);
    assert_eq!(by_id.status, StatusCode::OK);
    assert_eq!(by_key.body, by_id.body);
    let mut expected = field_set(JOB_FIELDS);
    expected.insert("upcoming".to_owned());
    expected.insert("upcomingSlots".to_owned());
    assert_eq!(keys(&by_key.body), expected);
    assert_eq!(by_key.body["id"], invoice.to_string());
    assert_eq!(
        utc_of(&by_key.body),
        json!([
            "2024-01-15T10:15:00.000Z",
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:45:00.000Z",
            "2024-01-15T11:00:00.000Z",
            "2024-01-15T11:15:00.000Z",
        ])
    );
    assert_eq!(
        by_key.body["upcomingSlots"][0],
        json!({
            "utc": "2024-01-15T10:15:00.000Z",
            "local": "2024-01-15T10:15:00+00:00",
            "zone": "UTC",
            "note": null,
        })
    );

    // 09:00 in Paris is 08:00 UTC in winter; Monday's slot has passed at 11:00 Paris time.
    let report = call(&app, get("/api/plugins/billing/jobs/report").to_request()).await;
    assert_eq!(
        utc_of(&report.body),
        json!([
            "2024-01-16T08:00:00.000Z",
            "2024-01-17T08:00:00.000Z",
            "2024-01-18T08:00:00.000Z",
            "2024-01-19T08:00:00.000Z",
            "2024-01-22T08:00:00.000Z",
        ])
    );
}

#[actix_rt::test]
async fn upcoming_is_empty_for_paused_manual_only_and_failed_jobs() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/invoice/pause").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    for key in ["invoice", "adhoc", "broken"] {
        let reply = call(
            &app,
            get(&format!("/api/plugins/billing/jobs/{key}")).to_request(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["upcoming"], json!([]), "{key}");
        assert_eq!(reply.body["nextRunAt"], json!(null), "{key}");
    }
}

#[actix_rt::test]
async fn upcoming_slots_carry_the_daylight_saving_notes() {
    let (h, _gate) = billing().await;
    // Europe/Paris springs forward at 02:00 CET on 2024-03-31, which no billing job minds:
    // declare the plugin anew with one nightly job at 02:30.
    h.jobs
        .register(
            "billing",
            vec![JobDeclaration {
                timezone: "Europe/Paris".to_owned(),
                ..JobDeclaration::new("nightly", "30 2 * * *")
            }],
        )
        .await
        .expect("register nightly");
    h.clock.set(at("2024-03-30T12:00:00Z"));
    let app = app!(h);
    let reply = call(&app, get("/api/plugins/billing/jobs/nightly").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body["upcomingSlots"][0],
        json!({
            "utc": "2024-03-31T01:00:00.000Z",
            "local": "2024-03-31T03:00:00+02:00",
            "zone": "CEST",
            "note": "02:30 does not exist on 2024-03-31: runs at 03:00 CEST",
        })
    );
    assert_eq!(reply.body["upcomingSlots"][1]["note"], Value::Null);
}

#[actix_rt::test]
async fn unknown_jobs_and_jobs_of_another_plugin_are_404_on_every_job_route() {
    let (h, _gate) = billing().await;
    h.t.insert_job(job_row("legacy", "old")).await;
    let app = app!(h);
    let invoice = job_id(&h, "invoice").await;

    let missing = [
        "/api/plugins/billing/jobs/nope".to_owned(),
        format!("/api/plugins/billing/jobs/{}", Uuid::now_v7()),
        format!("/api/plugins/legacy/jobs/{invoice}"),
        "/api/plugins/legacy/jobs/invoice".to_owned(),
        "/api/plugins/nobody/jobs/invoice".to_owned(),
    ];
    for job in &missing {
        let reply = call(&app, get(job).to_request()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "GET {job}");
        let expected = if job.contains("/nobody/") {
            "Plugin not found: nobody"
        } else {
            "Job not found"
        };
        assert!(reply.error().starts_with(expected), "{}", reply.error());
        let reply = call(&app, get(&format!("{job}/runs")).to_request()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "GET {job}/runs");
        reply.error();
        for action in ["trigger", "pause", "resume"] {
            let reply = call(&app, post(&format!("{job}/{action}")).to_request()).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "POST {job}/{action}");
            reply.error();
        }
    }
    assert!(h.t.all_runs().await.is_empty());
    assert_eq!(h.t.job(invoice).await.status, JobStatus::Active);
}

// Runs ------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn runs_are_newest_first_and_limit_is_respected() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let job = h.t.job(job_id(&h, "report").await).await;
    let mut inserted = Vec::new();
    for minute in 0..55 {
        let created = at("2024-01-14T00:00:00Z") + TimeDelta::minutes(minute);
        let run = PluginJobRunModel {
            status: RunStatus::Succeeded,
            created_at: created,
            scheduled_for: created,
            ..run_row(&job)
        };
        inserted.push(h.t.insert_run(run).await.expect("insert run").id);
    }
    let newest_first: Vec<String> = inserted.iter().rev().map(Uuid::to_string).collect();
    let ids = |reply: &Reply| -> Vec<String> {
        reply
            .body
            .as_array()
            .expect("an array")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect()
    };

    let reply = call(
        &app,
        get("/api/plugins/billing/jobs/report/runs").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(ids(&reply), newest_first[..50], "default limit is 50");

    let reply = call(
        &app,
        get("/api/plugins/billing/jobs/report/runs?limit=3").to_request(),
    )
    .await;
    assert_eq!(ids(&reply), newest_first[..3]);

    for limit in [1, 500] {
        let reply = call(
            &app,
            get(&format!(
                "/api/plugins/billing/jobs/report/runs?limit={limit}"
            ))
            .to_request(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "limit={limit}");
        assert_eq!(ids(&reply).len(), limit.min(55));
    }

    let other = call(
        &app,
        get("/api/plugins/billing/jobs/invoice/runs").to_request(),
    )
    .await;
    assert_eq!((other.status, other.body), (StatusCode::OK, json!([])));
}

#[actix_rt::test]
async fn a_limit_outside_one_to_five_hundred_is_400_naming_limit() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    for bad in ["0", "501", "abc", "-1", "2.5"] {
        let reply = call(
            &app,
            get(&format!(
                "/api/plugins/billing/jobs/report/runs?limit={bad}"
            ))
            .to_request(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "limit={bad}");
        let error = reply.error();
        assert!(error.contains("limit") && error.contains(bad), "{error}");
    }
    // A repeated parameter is a query-string error, answered in the same shape.
    let reply = call(
        &app,
        get("/api/plugins/billing/jobs/report/runs?limit=1&limit=2").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.error().contains("limit"), "{}", reply.error());
}

#[actix_rt::test]
async fn a_run_is_shown_with_every_field_and_unknown_or_malformed_ids_are_refused() {
    let (h, _gate) = billing().await;
    let app = app!(h);

    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/report/trigger").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let run_id: Uuid = run_id_of(&reply);
    h.wait_for_run(run_id, RunStatus::Succeeded).await;

    let reply = call(&app, get(&format!("/api/runs/{run_id}")).to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(keys(&reply.body), field_set(RUN_FIELDS));
    let job = job_id(&h, "report").await;
    let traceparent = h.t.run(run_id).await.traceparent.expect("a trace context");
    assert_eq!(
        reply.body,
        json!({
            "id": run_id.to_string(),
            "jobId": job.to_string(),
            "pluginId": "billing",
            "trigger": "manual",
            "status": "succeeded",
            "scheduledFor": "2024-01-15T10:00:00.000Z",
            "instanceId": "test-instance",
            "durationMs": 0,
            "error": null,
            "logs": [],
            "startedAt": "2024-01-15T10:00:00.000Z",
            "finishedAt": "2024-01-15T10:00:00.000Z",
            "createdAt": "2024-01-15T10:00:00.000Z",
            "traceparent": traceparent,
            "attempt": 1,
            "retryOf": null,
            "payload": null,
        })
    );

    let listed = call(
        &app,
        get("/api/plugins/billing/jobs/report/runs").to_request(),
    )
    .await;
    assert_eq!(
        listed.body,
        json!([reply.body]),
        "the listing shows the same object"
    );

    let unknown = Uuid::now_v7();
    let reply = call(&app, get(&format!("/api/runs/{unknown}")).to_request()).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(
        reply.error().contains(&unknown.to_string()),
        "{}",
        reply.error()
    );

    let reply = call(&app, get("/api/runs/not-a-uuid").to_request()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.error().contains("run id") && reply.error().contains("not-a-uuid"),
        "{}",
        reply.error()
    );

    // `view` as in the listings; any other parameter, here or where none is taken, is refused.
    let summary = call(
        &app,
        get(&format!("/api/runs/{run_id}?view=summary")).to_request(),
    )
    .await;
    assert_eq!(summary.status, StatusCode::OK);
    assert!(summary.body.get("logs").is_none(), "{}", summary.body);
    for (uri, named) in [
        (
            format!("/api/runs/{run_id}?view=brief"),
            "invalid view \"brief\"",
        ),
        (format!("/api/runs/{run_id}?veiw=summary"), "`veiw`"),
        (
            "/api/plugins?limit=1".to_owned(),
            "unknown parameter `limit`",
        ),
        ("/api/scheduler?x=1".to_owned(), "unknown parameter `x`"),
        ("/api/plugins/billing/jobs/report?x=1".to_owned(), "`x`"),
    ] {
        let reply = call(&app, get(&uri).to_request()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(reply.error().contains(named), "{uri}: {}", reply.error());
    }
}

// Trigger ---------------------------------------------------------------------------------------

#[actix_rt::test]
async fn trigger_answers_202_then_409_while_the_run_is_live() {
    let (h, gate) = billing().await;
    let app = app!(h);
    let invoice = job_id(&h, "invoice").await;

    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/invoice/trigger").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(keys(&reply.body), field_set(&["runId", "jobId"]));
    assert_eq!(reply.body["jobId"], invoice.to_string());
    let run_id: Uuid = run_id_of(&reply);
    let run = h.wait_for_run(run_id, RunStatus::Running).await;
    assert_eq!((run.job_id, run.trigger), (invoice, RunTrigger::Manual));

    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/invoice/trigger").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(
        reply.error().contains("already running"),
        "{}",
        reply.error()
    );
    assert_eq!(
        h.t.all_runs().await.len(),
        1,
        "the refused trigger created nothing"
    );

    gate.open();
    h.wait_for_run(run_id, RunStatus::Succeeded).await;
    h.wait_idle().await;

    let reply = call(
        &app,
        post(&format!("/api/plugins/billing/jobs/{invoice}/trigger"))
            .set_payload(r#"{"trigger":"retry"}"#)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let retry: Uuid = run_id_of(&reply);
    assert_eq!(h.t.run(retry).await.trigger, RunTrigger::Retry);
    h.wait_for_run(retry, RunStatus::Succeeded).await;
}

#[actix_rt::test]
async fn trigger_of_a_paused_or_failed_job_is_409() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/report/pause").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);

    for key in ["report", "broken"] {
        let reply = call(
            &app,
            post(&format!("/api/plugins/billing/jobs/{key}/trigger")).to_request(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{key}");
        assert!(
            reply.error().contains("so it cannot be triggered"),
            "{}",
            reply.error()
        );
    }
    assert!(h.t.all_runs().await.is_empty());
}

#[actix_rt::test]
async fn trigger_with_the_worker_stopped_is_503() {
    let (h, _gate) = billing().await;
    h.workers.inner.set_running("billing", false);
    let app = app!(h);
    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/adhoc/trigger").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.error().contains("not running"), "{}", reply.error());
    assert!(h.t.all_runs().await.is_empty());
}

#[actix_rt::test]
async fn trigger_body_is_optional_but_only_manual_or_retry() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let uri = "/api/plugins/billing/jobs/adhoc/trigger";

    let refused = [
        (r#"{"trigger":"schedule"}"#, "schedule"),
        (r#"{"trigger":"later"}"#, "later"),
        (r#"{"trigger":"#, "invalid JSON"),
        (r#"{"trigger":5}"#, "invalid JSON"),
        (r#"{"trigger":"manual","when":"now"}"#, "when"),
    ];
    for (body, named) in refused {
        let reply = call(
            &app,
            post(uri)
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body)
                .to_request(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(reply.error().contains(named), "{body}: {}", reply.error());
    }
    assert!(
        h.t.all_runs().await.is_empty(),
        "a refused body creates no run"
    );

    // An empty JSON body means manual, like no body at all.
    let reply = call(
        &app,
        post(uri)
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let run_id: Uuid = run_id_of(&reply);
    assert_eq!(h.t.run(run_id).await.trigger, RunTrigger::Manual);
}

// Pause and resume ------------------------------------------------------------------------------

#[actix_rt::test]
async fn pause_and_resume_answer_the_job_with_its_new_status() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let invoice = job_id(&h, "invoice").await;

    // A body it would ignore is refused, and the job is left as it was.
    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/invoice/pause")
            .set_payload(r#"{"reason": "maintenance"}"#)
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.error().starts_with("pause takes no body"),
        "{}",
        reply.error()
    );
    assert_eq!(h.t.job(invoice).await.status, JobStatus::Active);
    // So is a query parameter it would ignore.
    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/invoice/pause?force=1").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.error().contains("unknown parameter `force`"),
        "{}",
        reply.error()
    );
    assert_eq!(h.t.job(invoice).await.status, JobStatus::Active);

    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/invoice/pause")
            .set_payload("{}")
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(keys(&reply.body), field_set(JOB_FIELDS));
    assert_eq!(reply.body["status"], "paused");
    assert_eq!(
        reply.body["nextRunAt"],
        json!(null),
        "a paused job fires at no slot"
    );
    assert_eq!(h.t.job(invoice).await.status, JobStatus::Paused);

    h.clock.set(at("10:20"));
    let reply = call(
        &app,
        post(&format!("/api/plugins/billing/jobs/{invoice}/resume")).to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["status"], "active");
    assert_eq!(reply.body["nextRunAt"], "2024-01-15T10:30:00.000Z");
    assert_eq!(reply.body["updatedAt"], "2024-01-15T10:20:00.000Z");
    let job = h.t.job(invoice).await;
    assert_eq!(job.status, JobStatus::Active);
    assert_eq!(job.next_run_at, Some(at("10:30")));

    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/broken/pause").to_request(),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "a failed job cannot be paused"
    );
    reply.error();
}

// Scheduler, health, routing --------------------------------------------------------------------

#[actix_rt::test]
async fn scheduler_shows_the_diagnostics() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    h.tick().await;
    let reply = call(&app, get("/api/scheduler").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["running"], true);
    assert_eq!(reply.body["instanceId"], "test-instance");
    assert_eq!(reply.body["registeredPlugins"], json!(["billing"]));
    assert_eq!(reply.body["tickCount"], 1);
    assert_eq!(reply.body["lastTickAt"], "2024-01-15T10:00:00.000Z");
    assert_eq!(reply.body["activeJobCount"], 0);
    assert_eq!(reply.body["activeJobIds"], json!([]));
}

#[actix_rt::test]
async fn healthz_is_ok_and_503_once_the_database_is_unreachable() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let reply = call(&app, get("/healthz").to_request()).await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::OK, json!({"status": "ok"}))
    );

    // The store shares this pool: closing it cuts the store off from the database.
    h.t.db.close_by_ref().await.expect("close the pool");
    let reply = call(&app, get("/healthz").to_request()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.error().contains("database"), "{}", reply.error());
}

#[actix_rt::test]
async fn healthz_and_metrics_answer_while_the_database_does_not() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let invoice = job_id(&h, "invoice").await;
    // A transaction holds the jobs table: the store's next write waits for it, and the store
    // (one writer) with it; so does the scheduler's next claim, and its mailbox with it.
    let txn = h.t.hold_jobs_table().await;
    h.jobs.store.do_send(plugin_jobs::store::SetJobBlock {
        job_id: invoice,
        blocked_until: None,
        now: at("10:00"),
    });
    h.jobs.scheduler.do_send(plugin_jobs::scheduler::Tick);

    let reply = call(&app, get("/healthz").to_request()).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        reply
            .error()
            .contains("database unreachable (no answer within 3 s)"),
        "{}",
        reply.error()
    );
    let response = test::call_service(&app, get("/metrics").to_request()).await;
    assert_eq!(response.status(), StatusCode::OK, "the counters are served");
    let text = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
    assert!(text.contains("plugin_jobs_tick_duration_seconds"), "{text}");
    txn.rollback().await.expect("release");
    let reply = call(&app, get("/healthz").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[actix_rt::test]
async fn unknown_api_routes_and_wrong_methods_answer_in_json() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    for uri in [
        "/api",
        "/api/",
        "/api/nothing",
        "/api/plugins/billing/jobs/invoice/extra",
    ] {
        let reply = call(&app, get(uri).to_request()).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        reply.error();
    }
    let reply = call(
        &app,
        get("/api/plugins/billing/jobs/invoice/trigger").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    reply.error();
    let reply = call(&app, TestRequest::delete().uri("/api/plugins").to_request()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    reply.error();
    // A 405 says which methods the route takes (RFC 9110).
    for (uri, allow) in [
        ("/api/jobs", "GET, HEAD"),
        (
            "/api/plugins/billing/jobs/invoice",
            "GET, HEAD, PATCH, DELETE",
        ),
        ("/api/plugins/billing/jobs/invoice/trigger", "POST"),
    ] {
        let request = TestRequest::put().uri(uri).to_request();
        let response = test::call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{uri}");
        let header = response.headers().get(actix_web::http::header::ALLOW);
        assert_eq!(
            header.and_then(|value| value.to_str().ok()),
            Some(allow),
            "{uri}"
        );
    }
    // HEAD is GET without the body (the server leaves the body out), wherever GET is.
    for uri in ["/api/plugins", "/api/jobs", "/api/runs", "/healthz"] {
        let head = TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(uri)
            .to_request();
        let response = test::call_service(&app, head).await;
        assert_eq!(response.status(), StatusCode::OK, "HEAD {uri}");
    }
    assert!(h.t.all_runs().await.is_empty());
}

// Auth ------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn with_a_token_every_api_route_needs_it_and_healthz_stays_open() {
    let (h, _gate) = billing().await;
    let app = app!(h, Some("s3cret".to_owned()));
    let with = |req: TestRequest, value: &str| req.insert_header((header::AUTHORIZATION, value));

    let reply = call(&app, get("/api/plugins").to_request()).await;
    assert_eq!(
        (reply.status, reply.body),
        (StatusCode::UNAUTHORIZED, json!({"error": "Unauthorized"}))
    );
    for wrong in [
        "Bearer wrong",
        "Bearer s3cre",
        "Bearer s3cret2",
        "Basic s3cret",
        "s3cret",
        "Bearer ",
    ] {
        let reply = call(&app, with(get("/api/plugins"), wrong).to_request()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        assert_eq!(reply.error(), "Unauthorized");
    }
    for right in ["Bearer s3cret", "bearer s3cret"] {
        let reply = call(&app, with(get("/api/plugins"), right).to_request()).await;
        assert_eq!(reply.status, StatusCode::OK, "{right:?}");
    }

    let reply = call(
        &app,
        post("/api/plugins/billing/jobs/adhoc/trigger").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        h.t.all_runs().await.is_empty(),
        "an unauthorized trigger runs nothing"
    );
    let reply = call(&app, get("/api/nothing").to_request()).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "unknown routes are guarded too"
    );
    let reply = call(
        &app,
        with(get("/api/nothing"), "Bearer s3cret").to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = call(
        &app,
        with(
            post("/api/plugins/billing/jobs/adhoc/trigger"),
            "Bearer s3cret",
        )
        .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let run_id: Uuid = run_id_of(&reply);
    h.wait_for_run(run_id, RunStatus::Succeeded).await;

    let reply = call(&app, get("/healthz").to_request()).await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[actix_rt::test]
async fn without_a_token_the_api_is_open() {
    let (h, _gate) = billing().await;
    let app = app!(h);
    let reply = call(
        &app,
        get("/api/plugins")
            .insert_header((header::AUTHORIZATION, "Bearer anything"))
            .to_request(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
}
