//! The HTTP API (DESIGN §6) as an actix-web service configuration: `/api/…` for operators,
//! `/metrics` for Prometheus and `/healthz` for probes. Every error, extractor failures and
//! unknown routes included, is `{"error": "<message>"}` with its status code. [`dashboard`] is
//! the operator page, mounted separately so an application chooses where it lives.
//!
//! Mount them with one call each, once per App (in `HttpServer::new`'s factory, so each worker
//! builds its own):
//!
//! ```no_run
//! # fn demo(jobs: plugin_jobs::PluginJobsHandle, token: Option<String>) -> std::io::Result<()> {
//! use actix_web::{App, HttpServer};
//!
//! let server = HttpServer::new(move || {
//!     App::new()
//!         .configure(plugin_jobs::http::configure(jobs.clone(), token.clone()))
//!         .configure(plugin_jobs::http::dashboard())
//! })
//! .bind(("127.0.0.1", 8080))?;
//! # Ok(()) }
//! ```
//!
//! With a token, every `/api` and `/metrics` request needs `Authorization: Bearer <token>` (else
//! 401 `{"error":"Unauthorized"}`); `/healthz` and the dashboard page itself stay open (the page
//! holds no data: it asks the API, and prompts for the token when the API answers 401). Without
//! a token, requests that a foreign web page could have made (a foreign `Host` or `Origin`, a
//! form's content type) are refused with 403; see [`ApiOptions`]. No CORS header is ever sent.

mod cursor;
mod dashboard;
mod error;
mod guard;
mod handlers;
mod listings;
mod manage;
mod views;

use std::rc::Rc;

use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, ResponseError};

pub use dashboard::dashboard;
pub use error::ApiError;
pub use guard::{ApiOptions, check_token};
pub use views::{JobDetailView, JobOverviewView, JobView, PluginView, RunSummaryView, RunView};

use crate::PluginJobsHandle;
use guard::Access;
use handlers as h;
use listings as l;

/// Mounts `/api/…`, `/metrics` and `/healthz` for `handle`. With `token` set, `/api` and
/// `/metrics` requests must carry `Authorization: Bearer <token>`; without one, requests a
/// foreign web page could make are refused (see [`ApiOptions`]). Pass the result to
/// [`actix_web::App::configure`].
pub fn configure(
    handle: PluginJobsHandle,
    token: Option<String>,
) -> impl FnOnce(&mut ServiceConfig) {
    configure_with(
        handle,
        ApiOptions {
            token,
            ..ApiOptions::default()
        },
    )
}

/// [`configure`] with every option: the token, and the further `Host` names accepted without
/// one.
pub fn configure_with(
    handle: PluginJobsHandle,
    options: ApiOptions,
) -> impl FnOnce(&mut ServiceConfig) {
    move |cfg| {
        let handle = web::Data::new(handle);
        let access = Rc::new(Access::new(options));
        let healthz_access = Rc::clone(&access);
        cfg.service(
            web::resource("/healthz")
                .app_data(handle.clone())
                .wrap(from_fn(move |req, next| {
                    guard::guard(Rc::clone(&healthz_access), false, req, next)
                }))
                .route(read().to(h::healthz))
                .default_service(web::to(|| h::wrong_method("GET, HEAD"))),
        );
        let metrics_access = Rc::clone(&access);
        cfg.service(
            resource("/metrics", "GET, HEAD")
                .app_data(handle.clone())
                .wrap(from_fn(move |req, next| {
                    guard::guard(Rc::clone(&metrics_access), true, req, next)
                }))
                .route(read().to(h::metrics)),
        );
        cfg.service(
            web::scope("/api")
                .app_data(handle)
                .app_data(web::JsonConfig::default().error_handler(|err, _req| {
                    ApiError::new(err.status_code(), format!("invalid JSON body: {err}")).into()
                }))
                .app_data(web::QueryConfig::default().error_handler(|err, req| {
                    ApiError::new(err.status_code(), query_error(&err, req.path())).into()
                }))
                .app_data(web::PathConfig::default().error_handler(|err, req| {
                    ApiError::bad_request(format!("invalid path {}: {err}", req.path())).into()
                }))
                .wrap(from_fn(move |req, next| {
                    guard::guard(Rc::clone(&access), true, req, next)
                }))
                .service(resource("/plugins", "GET, HEAD").route(read().to(l::list_plugins)))
                .service(resource("/jobs", "GET, HEAD").route(read().to(l::list_all_jobs)))
                .service(resource("/runs", "GET, HEAD").route(read().to(l::list_recent_runs)))
                .service(
                    resource("/plugins/{pluginId}/jobs", "GET, HEAD, POST")
                        .route(read().to(l::list_jobs))
                        .route(web::post().to(manage::create_job)),
                )
                .service(
                    resource(
                        "/plugins/{pluginId}/jobs/{jobId}",
                        "GET, HEAD, PATCH, DELETE",
                    )
                    .route(read().to(h::get_job))
                    .route(web::patch().to(manage::update_job))
                    .route(web::delete().to(manage::delete_job)),
                )
                .service(
                    resource(
                        "/plugins/{pluginId}/jobs/{jobId}/backfill",
                        "GET, HEAD, POST, DELETE",
                    )
                    .route(read().to(manage::pending_backfill))
                    .route(web::post().to(manage::backfill))
                    .route(web::delete().to(manage::cancel_backfill)),
                )
                .service(
                    resource("/plugins/{pluginId}/jobs/{jobId}/runs", "GET, HEAD")
                        .route(read().to(l::list_runs)),
                )
                .service(
                    resource("/plugins/{pluginId}/jobs/{jobId}/trigger", "POST")
                        .route(web::post().to(h::trigger_job)),
                )
                .service(
                    resource("/plugins/{pluginId}/jobs/{jobId}/pause", "POST")
                        .route(web::post().to(h::pause_job)),
                )
                .service(
                    resource("/plugins/{pluginId}/jobs/{jobId}/resume", "POST")
                        .route(web::post().to(h::resume_job)),
                )
                .service(resource("/runs/{runId}", "GET, HEAD").route(read().to(h::get_run)))
                .service(
                    resource("/runs/{runId}/cancel", "POST").route(web::post().to(h::cancel_run)),
                )
                .service(resource("/scheduler", "GET, HEAD").route(read().to(h::scheduler)))
                .default_service(web::to(h::no_route)),
        );
    }
}

/// A route for `GET` and `HEAD` (`web::get()` alone answers `HEAD` with 405); the server sends
/// a `HEAD` answer's headers without its body.
pub(crate) fn read() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

/// A resource whose wrong-method answer is a JSON 405 like every other error, with the
/// methods it takes in `Allow` (RFC 9110 §15.5.6).
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move || h::wrong_method(allow)))
}

/// The credentials of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, as RFC 7235 says).
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<&[u8]> {
    let value = req.headers().get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, credentials) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| credentials.trim_ascii())
        .filter(|credentials| !credentials.is_empty())
}

/// Compares a secret with a candidate in time that depends only on the secret's length, so the
/// answer time tells an attacker nothing about how much of a guess was right. Written out rather
/// than taken from the `subtle` crate: one loop does not justify a dependency.
pub(crate) fn constant_time_eq(secret: &[u8], candidate: &[u8]) -> bool {
    let mut diff = u8::from(secret.len() != candidate.len());
    for (i, byte) in secret.iter().enumerate() {
        // A short candidate is compared against zeros, so the loop always runs in full.
        let other = candidate.get(i).copied().unwrap_or(0);
        diff |= byte ^ other;
    }
    std::hint::black_box(diff) == 0
}

/// What is wrong with a query string, in the API's words: serde's "unknown field `statsu`,
/// expected one of …" and "duplicate field `status`" name query parameters here. The listings
/// under `/api/plugins/{pluginId}` share their parameters with `/api/jobs` and `/api/runs` but
/// refuse `pluginId` (their plugin is in the path), so it is not offered there.
fn query_error(err: &actix_web::error::QueryPayloadError, path: &str) -> String {
    use actix_web::error::QueryPayloadError;
    let detail = match err {
        QueryPayloadError::Deserialize(inner) => inner.to_string(),
        other => other.to_string(),
    };
    let mut detail = detail
        .replace("field `", "parameter `")
        .replace("there are no fields", "this path takes none");
    if path.starts_with("/api/plugins/") {
        detail = detail
            .replace("`pluginId`, ", "")
            .replace(", `pluginId`", "");
    }
    format!("invalid query string: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_needs_the_same_bytes_and_length() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(!constant_time_eq(b"secret", b""));
        assert!(!constant_time_eq(b"\0", b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_credentials() {
        let req = |value: &str| {
            actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request()
        };
        assert_eq!(bearer_token(&req("Bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&req("bearer abc")), Some(&b"abc"[..]));
        assert_eq!(bearer_token(&req("Bearer ")), None);
        assert_eq!(bearer_token(&req("Basic abc")), None);
        assert_eq!(bearer_token(&req("Bearer")), None);
    }
}
