//! The routes that manage jobs at runtime, through the actix-web service on a real database:
//! `POST /api/plugins/{id}/jobs` (201/400/404/409), `PATCH` and `DELETE` of a job
//! (200/204/400/404/409), a trigger's one-off payload, and `POST`/`DELETE …/backfill`.

mod common;

use actix_web::App;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use common::{Harness, at, ok_handler};
use entity::prelude::*;
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::http::configure;
use plugin_jobs::store::JobDeclaration;
use serde_json::{Value, json};

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
}

/// Sends a request to the service and reads the reply.
macro_rules! call {
    ($app:expr, $req:expr $(,)?) => {
        reply(test::call_service($app, $req.to_request()).await)
    };
}

async fn reply<B: MessageBody>(response: ServiceResponse<B>) -> Reply {
    let status = response.status();
    let bytes = test::read_body(response).await;
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).expect("a JSON body")
    };
    Reply { status, body }
}

fn json_body(req: TestRequest, body: Value) -> TestRequest {
    req.insert_header(("content-type", "application/json"))
        .set_payload(body.to_string())
}

async fn harness() -> Harness {
    let h = Harness::new(SchedulerConfig::default()).await;
    for key in ["invoice", "report"] {
        h.workers.inner.register("billing", key, ok_handler);
    }
    h.jobs
        .register(
            "billing",
            vec![JobDeclaration::new("invoice", "*/15 * * * *")],
        )
        .await
        .expect("register");
    h
}

#[actix_rt::test]
async fn jobs_are_created_changed_and_retired_over_http() {
    let h = harness().await;
    let app = test::init_service(App::new().configure(configure(h.jobs.clone(), None))).await;
    let created = call!(
        &app,
        json_body(
            TestRequest::post().uri("/api/plugins/billing/jobs"),
            json!({"jobKey": "report", "schedule": "0 * * * *", "payload": {"region": "eu"},
                   "overlap": "cancel_previous", "jitterMs": 500, "misfireGraceMs": 2000}),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["origin"], "api");
    assert_eq!(created.body["payload"], json!({"region": "eu"}));
    assert_eq!(created.body["overlap"], "cancel_previous");
    assert_eq!(created.body["jitterMs"], 500);
    assert_eq!(created.body["misfireGraceMs"], 2000);
    assert_eq!(created.body["nextRunAt"], "2024-01-15T11:00:00.000Z");
    // A schedule is stored with its fields one space apart, however it was spaced.
    let spaced = call!(
        &app,
        json_body(
            TestRequest::post().uri("/api/plugins/billing/jobs"),
            json!({"jobKey": "spaced", "schedule": "  0\t*  * * *\n"}),
        ),
    )
    .await;
    assert_eq!(spaced.status, StatusCode::CREATED, "{}", spaced.body);
    assert_eq!(spaced.body["schedule"], "0 * * * *");

    let cases = [
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "report"}),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "retry": {"maxAttempts": "three"}}),
            StatusCode::BAD_REQUEST,
            "retry.maxAttempts",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "schedule": "0 25 * * *"}),
            StatusCode::BAD_REQUEST,
            "invalid schedule",
        ),
        (
            "/api/plugins/nobody/jobs",
            json!({"jobKey": "x"}),
            StatusCode::NOT_FOUND,
            "Plugin not found: nobody",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "timeoutMs": i64::MAX}),
            StatusCode::BAD_REQUEST,
            "timeoutMs must be between 1 and",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "retry": {"backoff": "10m", "maxBackoff": "1s"}}),
            StatusCode::BAD_REQUEST,
            "than retry.backoff",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "schedule": "0 0 30 2 *"}),
            StatusCode::BAD_REQUEST,
            "schedule \"0 0 30 2 *\" never fires: February has no day 30",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "schedule": "0 0 0 1 1 * 2020"}),
            StatusCode::BAD_REQUEST,
            "never fires: it has no slot after 2024-01-15T10:",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "schedule": format!("{} * * * *", vec!["0"; 600].join(","))}),
            StatusCode::BAD_REQUEST,
            "schedule is longer than 1024 bytes (got 1207)",
        ),
        (
            "/api/plugins/billing/jobs",
            json!({"jobKey": "x", "description": "d".repeat(300 * 1024)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is larger than 262144 bytes",
        ),
    ];
    for (uri, body, status, why) in cases {
        let reply = call!(&app, json_body(TestRequest::post().uri(uri), body.clone())).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        let message = reply.body["error"].as_str().expect("an error");
        assert!(message.contains(why), "{body}: {message}");
    }

    let patched = call!(
        &app,
        json_body(
            TestRequest::patch().uri("/api/plugins/billing/jobs/report"),
            json!({"schedule": "*/30 * * * *", "payload": null}),
        ),
    )
    .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["schedule"], "*/30 * * * *");
    assert_eq!(patched.body["nextRunAt"], "2024-01-15T10:30:00.000Z");
    assert_eq!(patched.body["payload"], Value::Null);

    for (req, status, why) in [
        (
            json_body(
                TestRequest::patch().uri("/api/plugins/billing/jobs/invoice"),
                json!({"schedule": "* * * * *"}),
            ),
            StatusCode::CONFLICT,
            "declared in the manifest of plugin billing",
        ),
        (
            TestRequest::delete().uri("/api/plugins/billing/jobs/invoice"),
            StatusCode::CONFLICT,
            "declared in the manifest of plugin billing",
        ),
        (
            json_body(
                TestRequest::patch().uri("/api/plugins/billing/jobs/report"),
                json!({"schedul": "* * * * *"}),
            ),
            StatusCode::BAD_REQUEST,
            "schedul",
        ),
        (
            TestRequest::delete().uri("/api/plugins/billing/jobs/nope"),
            StatusCode::NOT_FOUND,
            "nope",
        ),
    ] {
        let reply = call!(&app, req).await;
        assert_eq!(reply.status, status, "{why}: {}", reply.body);
        let message = reply.body["error"].as_str().expect("an error");
        assert!(message.contains(why), "{why}: {message}");
    }

    // A body the delete would ignore is refused, and the job is left as it was.
    let refused = call!(
        &app,
        TestRequest::delete()
            .uri("/api/plugins/billing/jobs/report")
            .set_payload("garbage"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(
        refused.body["error"],
        "delete takes no body (or an empty object); got garbage"
    );
    let job = call!(
        &app,
        TestRequest::get().uri("/api/plugins/billing/jobs/report"),
    )
    .await;
    assert_eq!(job.body["status"], "active");

    let deleted = call!(
        &app,
        TestRequest::delete().uri("/api/plugins/billing/jobs/report"),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, Value::Null);
    let job = call!(
        &app,
        TestRequest::get().uri("/api/plugins/billing/jobs/report"),
    )
    .await;
    assert_eq!(job.body["status"], "retired");
}

/// A `%`-escape that is not UTF-8 is a 400, never a lossy U+FFFD that names another job: with a
/// job keyed by a real U+FFFD, `%ff` neither reads nor pauses it.
#[actix_rt::test]
async fn a_path_whose_escapes_are_not_utf8_is_refused_not_read_as_another_key() {
    let h = harness().await;
    let app = test::init_service(App::new().configure(configure(h.jobs.clone(), None))).await;
    let created = call!(
        &app,
        json_body(
            TestRequest::post().uri("/api/plugins/billing/jobs"),
            json!({"jobKey": "\u{fffd}", "schedule": "0 * * * *"}),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    for req in [
        TestRequest::get().uri("/api/plugins/billing/jobs/%ff"),
        TestRequest::post().uri("/api/plugins/billing/jobs/%FF/pause"),
        TestRequest::get().uri("/api/plugins/%c3%28/jobs"),
    ] {
        let refused = call!(&app, req).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        let message = refused.body["error"].as_str().expect("an error");
        assert!(message.contains("not UTF-8"), "{message}");
    }
    // The key itself, escaped as UTF-8, is the job, still active.
    let job = call!(
        &app,
        TestRequest::get().uri("/api/plugins/billing/jobs/%EF%BF%BD"),
    )
    .await;
    assert_eq!(job.status, StatusCode::OK, "{}", job.body);
    assert_eq!(job.body["jobKey"], "\u{fffd}");
    assert_eq!(job.body["status"], "active");
}

#[actix_rt::test]
async fn a_trigger_may_carry_a_one_off_payload() {
    let h = harness().await;
    let app = test::init_service(App::new().configure(configure(h.jobs.clone(), None))).await;
    let reply = call!(
        &app,
        json_body(
            TestRequest::post().uri("/api/plugins/billing/jobs/invoice/trigger"),
            json!({"payload": {"invoice": 42}}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let run_id = reply.body["runId"]
        .as_str()
        .expect("run id")
        .parse()
        .expect("uuid");
    let run = h.wait_for_run(run_id, RunStatus::Succeeded).await;
    assert_eq!(run.payload, Some(json!({"invoice": 42})));
    let calls = h.workers.calls();
    assert_eq!(calls[0].params["job"]["payload"], json!({"invoice": 42}));

    // The payload's limit is the payload's, not the body's: one of exactly 16 KiB, pretty-printed
    // in a body with its `trigger`, is taken; one byte more is refused, naming the payload.
    let uri = "/api/plugins/billing/jobs/invoice/trigger";
    let at_limit = |extra: usize| json!({"note": "n".repeat(16 * 1024 - 11 + extra)});
    assert_eq!(at_limit(0).to_string().len(), 16 * 1024);
    for (extra, status, why) in [
        (0, StatusCode::ACCEPTED, "runId"),
        (1, StatusCode::BAD_REQUEST, "payload is 16385 bytes as JSON"),
    ] {
        let body = json!({"trigger": "manual", "payload": at_limit(extra)});
        let body = serde_json::to_string_pretty(&body).expect("json");
        let request = TestRequest::post()
            .uri(uri)
            .insert_header(("Content-Type", "application/json"))
            .set_payload(body);
        let reply = call!(&app, request).await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(reply.body.to_string().contains(why), "{}", reply.body);
        h.wait_idle().await;
    }
}

#[actix_rt::test]
async fn backfill_over_http_queues_the_missing_slots_and_can_be_cancelled() {
    let h = harness().await;
    h.clock.set(at("12:00"));
    let app = test::init_service(App::new().configure(configure(h.jobs.clone(), None))).await;
    let uri = "/api/plugins/billing/jobs/invoice/backfill";
    let reply = call!(
        &app,
        json_body(
            TestRequest::post().uri(uri),
            json!({"from": "2024-01-15T10:00:00Z", "to": "2024-01-15T11:00:00Z"}),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    assert_eq!(reply.body["queued"].as_array().map(Vec::len), Some(4));
    assert_eq!(reply.body["alreadyCovered"], 0);
    for (body, why) in [
        (
            json!({"from": "2024-01-15T10:00:00Z"}),
            "missing field `to`",
        ),
        (
            json!({"from": "yesterday", "to": "2024-01-15T11:00:00Z"}),
            "from",
        ),
        (
            json!({"from": "2024-01-01T00:00:00Z", "to": "2024-01-15T11:00:00Z"}),
            "more than 1000 slots",
        ),
        (
            json!({"from": "0001-01-01T00:00:00Z", "to": "0001-01-01T01:00:00Z"}),
            "from (0001-01-01T00:00:00.000Z) is before 1970-01-01T00:00:00.000Z",
        ),
        (
            json!({"from": "1969-12-31T23:00:00Z", "to": "1970-01-01T01:00:00Z"}),
            "slots before 1970",
        ),
    ] {
        let bad = call!(&app, json_body(TestRequest::post().uri(uri), body.clone())).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{body}: {}", bad.body);
        let message = bad.body["error"].as_str().expect("an error");
        assert!(message.contains(why), "{body}: {message}");
    }
    // The slots waiting to be replayed can be read back, oldest first.
    let pending = call!(&app, TestRequest::get().uri(uri)).await;
    assert_eq!(pending.status, StatusCode::OK, "{}", pending.body);
    assert_eq!(
        pending.body["pending"],
        json!([
            "2024-01-15T10:00:00.000Z",
            "2024-01-15T10:15:00.000Z",
            "2024-01-15T10:30:00.000Z",
            "2024-01-15T10:45:00.000Z"
        ])
    );
    // Parameters and bodies these would ignore are refused, and nothing is cancelled.
    for req in [
        TestRequest::get().uri(&format!("{uri}?x=1")),
        TestRequest::delete().uri(&format!("{uri}?all=1")),
        TestRequest::delete()
            .uri(uri)
            .set_payload(r#"{"all": true}"#),
    ] {
        let refused = call!(&app, req).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    }
    let cancelled = call!(&app, TestRequest::delete().uri(uri)).await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body, json!({"cancelled": 4}));
    let pending = call!(&app, TestRequest::get().uri(uri)).await;
    assert_eq!(pending.body["pending"], json!([]));
}
