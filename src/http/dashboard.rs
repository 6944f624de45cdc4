//! The operator dashboard: one HTML page with inline CSS and JavaScript, embedded in the binary
//! (no CDN, no build step). It holds no data itself: it polls the API beside it (`api/…`,
//! relative to the page, so it also works under a scope) every two seconds, fetches each job's
//! last runs only for the rows on screen, samples `metrics` every five seconds for its ten-minute
//! charts, and asks for the API token when the API answers 401.

use actix_web::http::header;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};

/// The page, compiled into the binary.
const PAGE: &str = include_str!("dashboard.html");

/// Inline script and style only; the page talks to its own origin and nothing else.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Mounts the dashboard at `/` of wherever it is configured: the App's root, or a scope
/// (`web::scope("/jobs").configure(dashboard())` serves it at `/jobs/`, and redirects `/jobs`
/// there). The API must be mounted beside it with [`super::configure`], in the same scope.
pub fn dashboard() -> impl FnOnce(&mut ServiceConfig) {
    |cfg| {
        cfg.service(web::resource("/").route(super::read().to(page)));
        // Only reachable inside a scope: `/jobs` → `/jobs/`, so the page's relative `api/…`
        // URLs resolve under the scope.
        cfg.service(web::resource("").route(super::read().to(add_slash)));
    }
}

async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(PAGE)
}

async fn add_slash(req: HttpRequest) -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, format!("{}/", req.path())))
        .finish()
}
