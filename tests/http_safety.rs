//! Without an API token, the API answers only what the operator's own tools ask: a foreign
//! `Host` (DNS rebinding), a foreign `Origin` on a state-changing request and a browser form's
//! content type are refused with 403 and a reason; the dashboard's own same-origin calls pass;
//! no CORS header is sent; `/healthz` does not show database internals.

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::test::{self, TestRequest};
use actix_web::{App, web};
use common::server::{Server, test_plugin};
use common::{Harness, ok_handler};
use plugin_jobs::config::SchedulerConfig;
use plugin_jobs::http::{ApiOptions, configure, configure_with, dashboard};
use plugin_jobs::store::JobDeclaration;
use serde_json::{Value, json};

/// `actix_web::test` serves as if bound to 127.0.0.1:8080.
const HOST: &str = "localhost:8080";
const ORIGIN: &str = "http://localhost:8080";
const PAUSE: &str = "/api/plugins/billing/jobs/invoice/pause";
const TRIGGER: &str = "/api/plugins/billing/jobs/invoice/trigger";

async fn billing() -> Harness {
    let h = Harness::new(SchedulerConfig::default()).await;
    h.plugin("billing")
        .job(JobDeclaration::new("invoice", "0 * * * *"), ok_handler)
        .register()
        .await;
    h
}

macro_rules! app {
    ($h:expr) => {
        test::init_service(
            App::new()
                .configure(configure($h.jobs.clone(), None))
                .configure(dashboard()),
        )
        .await
    };
}

/// Status, headers and JSON body of one call.
async fn call<S, R, B>(app: &S, req: R) -> (StatusCode, header::HeaderMap, Value)
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let response = test::call_service(app, req).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = test::read_body(response).await;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

fn refusal(body: &Value) -> &str {
    let object = body.as_object().expect("an error object");
    assert_eq!(object.len(), 1, "{body}");
    object["error"].as_str().expect("an error message")
}

#[actix_rt::test]
async fn a_foreign_host_is_refused_and_loopback_names_with_the_port_pass() {
    let h = billing().await;
    let app = app!(h);
    for host in [
        "evil.example:8080",
        "evil.example",
        "localhost:9999",
        "10.0.0.1:8080",
    ] {
        let req = TestRequest::get()
            .uri("/api/plugins")
            .insert_header((header::HOST, host));
        let (status, _, body) = call(&app, req.to_request()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{host}");
        let why = refusal(&body);
        assert!(
            why.contains("Host") && why.contains("DNS-rebinding"),
            "{why}"
        );
    }
    for host in [
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
        "LOCALHOST:8080",
    ] {
        let req = TestRequest::get()
            .uri("/api/plugins")
            .insert_header((header::HOST, host));
        let (status, _, body) = call(&app, req.to_request()).await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    // /metrics and /healthz are guarded the same way.
    for path in ["/metrics", "/healthz"] {
        let req = TestRequest::get()
            .uri(path)
            .insert_header((header::HOST, "evil.example:8080"));
        assert_eq!(
            call(&app, req.to_request()).await.0,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
}

#[actix_rt::test]
async fn further_hosts_can_be_allowed_for_a_local_proxy() {
    let h = billing().await;
    let options = ApiOptions {
        allowed_hosts: vec!["Jobs.Internal".to_owned()],
        ..ApiOptions::default()
    };
    let app =
        test::init_service(App::new().configure(configure_with(h.jobs.clone(), options))).await;
    let req = TestRequest::get()
        .uri("/api/plugins")
        .insert_header((header::HOST, "jobs.internal"));
    assert_eq!(call(&app, req.to_request()).await.0, StatusCode::OK);
    let req = TestRequest::get()
        .uri("/api/plugins")
        .insert_header((header::HOST, "other.internal"));
    assert_eq!(call(&app, req.to_request()).await.0, StatusCode::FORBIDDEN);
}

#[actix_rt::test]
async fn a_post_from_a_foreign_origin_is_refused_and_creates_no_run() {
    let h = billing().await;
    let app = app!(h);
    for origin in ["http://evil.example", "null", "http://localhost:9999"] {
        // What `fetch(url, {method: 'POST', mode: 'no-cors'})` on another page sends.
        let req = TestRequest::post()
            .uri(TRIGGER)
            .insert_header((header::HOST, HOST))
            .insert_header((header::ORIGIN, origin));
        let (status, _, body) = call(&app, req.to_request()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}");
        assert!(refusal(&body).contains("Origin"), "{body}");
    }
    assert!(h.t.all_runs().await.is_empty(), "no run was created");
    // A foreign Origin on a GET is only a read, which the browser will not let it see.
    let req = TestRequest::get()
        .uri("/api/plugins")
        .insert_header((header::HOST, HOST))
        .insert_header((header::ORIGIN, "http://evil.example"));
    let (status, headers, _) = call(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !headers
            .keys()
            .any(|name| name.as_str().starts_with("access-control-")),
        "no CORS header: {headers:?}"
    );
}

#[actix_rt::test]
async fn a_browser_form_content_type_is_refused() {
    let h = billing().await;
    let app = app!(h);
    for kind in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain;charset=UTF-8",
    ] {
        // A form posted from a page whose Origin is hidden sends a Referer or Sec-Fetch-*.
        let req = TestRequest::post()
            .uri(TRIGGER)
            .insert_header((header::HOST, HOST))
            .insert_header(("sec-fetch-site", "cross-site"))
            .insert_header((header::CONTENT_TYPE, kind))
            .set_payload(r#"{"trigger":"manual"}"#);
        let (status, _, body) = call(&app, req.to_request()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{kind}");
        assert!(refusal(&body).contains("content type"), "{body}");
    }
    assert!(h.t.all_runs().await.is_empty(), "no run was created");
    // A script (curl) that sends a form type without any browser header is not a browser.
    let req = TestRequest::post()
        .uri(TRIGGER)
        .insert_header((header::HOST, HOST))
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"));
    assert_eq!(call(&app, req.to_request()).await.0, StatusCode::ACCEPTED);
}

#[actix_rt::test]
async fn the_dashboards_own_calls_pass() {
    let h = billing().await;
    let app = app!(h);
    let page = TestRequest::get()
        .uri("/")
        .insert_header((header::HOST, HOST));
    assert_eq!(call(&app, page.to_request()).await.0, StatusCode::OK);
    // What the page's `fetch(…, {method: 'GET', headers: {Accept}})` sends.
    let read = TestRequest::get()
        .uri("/api/jobs")
        .insert_header((header::HOST, HOST))
        .insert_header((header::ACCEPT, "application/json"))
        .insert_header(("sec-fetch-site", "same-origin"))
        .insert_header((header::REFERER, format!("{ORIGIN}/")));
    assert_eq!(call(&app, read.to_request()).await.0, StatusCode::OK);
    // Its Pause button: a same-origin POST with no body and no content type.
    let pause = TestRequest::post()
        .uri(PAUSE)
        .insert_header((header::HOST, HOST))
        .insert_header((header::ORIGIN, ORIGIN))
        .insert_header(("sec-fetch-site", "same-origin"))
        .insert_header((header::ACCEPT, "application/json"));
    let (status, _, body) = call(&app, pause.to_request()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "paused");
    // A same-origin JSON body passes too.
    let resume = TestRequest::post()
        .uri("/api/plugins/billing/jobs/invoice/resume")
        .insert_header((header::HOST, HOST))
        .insert_header((header::ORIGIN, ORIGIN))
        .insert_header((header::CONTENT_TYPE, "application/json"));
    assert_eq!(call(&app, resume.to_request()).await.0, StatusCode::OK);
}

#[actix_rt::test]
async fn under_a_scope_the_checks_are_the_same() {
    let h = billing().await;
    let jobs = h.jobs.clone();
    let app = test::init_service(
        App::new().service(web::scope("/jobs").configure(move |cfg| {
            configure(jobs, None)(cfg);
            dashboard()(cfg);
        })),
    )
    .await;
    let req = TestRequest::post()
        .uri(&format!("/jobs{PAUSE}"))
        .insert_header((header::HOST, HOST))
        .insert_header((header::ORIGIN, ORIGIN));
    assert_eq!(call(&app, req.to_request()).await.0, StatusCode::OK);
    let req = TestRequest::post()
        .uri(&format!("/jobs{PAUSE}"))
        .insert_header((header::HOST, "evil.example:8080"));
    assert_eq!(call(&app, req.to_request()).await.0, StatusCode::FORBIDDEN);
}

#[actix_rt::test]
async fn with_a_token_the_token_decides() {
    let h = billing().await;
    let app =
        test::init_service(App::new().configure(configure(h.jobs.clone(), Some("s3cret".into()))))
            .await;
    let req = TestRequest::get()
        .uri("/api/plugins")
        .insert_header((header::HOST, "jobs.example.com"))
        .insert_header((header::AUTHORIZATION, "Bearer s3cret"));
    assert_eq!(call(&app, req.to_request()).await.0, StatusCode::OK);
}

#[actix_rt::test]
async fn healthz_says_database_unreachable_without_internals() {
    let h = billing().await;
    let app = app!(h);
    h.t.db.close_by_ref().await.expect("close the pool");
    let req = TestRequest::get().uri("/healthz");
    let (status, _, body) = call(&app, req.to_request()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, json!({"error": "database unreachable"}));
}

#[test]
fn the_server_refuses_a_rebound_host_and_answers_its_own_port() {
    let plugin = test_plugin("good", &[], json!([{"jobKey": "sleep"}]));
    let server = Server::start(&[plugin], &[]);
    let port = server.addr.rsplit_once(':').expect("a port").1.to_owned();
    let (status, body) = server.request_with_headers(
        "GET",
        "/api/plugins",
        &[("Host", &format!("attacker.example:{port}"))],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _) = server.request_with_headers(
        "GET",
        "/api/plugins",
        &[("Host", &format!("localhost:{port}"))],
    );
    assert_eq!(status, 200);
    let (status, body) = server.request_with_headers(
        "POST",
        "/api/plugins/good/jobs/sleep/trigger",
        &[("Origin", "http://attacker.example")],
    );
    assert_eq!(status, 403, "{body}");
}
