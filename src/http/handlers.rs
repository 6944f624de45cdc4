//! The route handlers of single objects and commands (the listings are in `listings.rs`): each
//! parses its input, sends one message (or two, where a job must first be found within its
//! plugin) through the handle, and maps the answer onto a view or an [`ApiError`].

use actix_web::http::StatusCode;
use actix_web::web::{Bytes, Data, Path, Payload, Query};
use actix_web::{HttpResponse, Responder};
use entity::prelude::*;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ApiError;
use super::listings::NoParameters;
use super::views::{JobDetailView, JobView, RunView};
use crate::PluginJobsHandle;
use crate::cron::{Schedule, Slot};
use crate::store::{GetJob, GetRun, JobRef, Ping, ask};

/// How many slots a job's detail shows.
const UPCOMING_SLOTS: usize = 5;
/// The largest trigger body read: as large as a job's body, since it may hold a payload of up to
/// 16 KiB as compact JSON, sent with any whitespace. The payload's own limit is checked apart.
const MAX_TRIGGER_BODY: usize = 256 * 1024;

pub(super) type Handle = Data<PluginJobsHandle>;
type ApiResult = Result<HttpResponse, ApiError>;

/// `GET /healthz`: 200 when every actor is up and the database answers a query, else 503
/// naming the stopped actor or `database unreachable`.
pub async fn healthz(handle: Handle) -> ApiResult {
    let down = handle.down_actors();
    if !down.is_empty() {
        log::error!("health check failed: {} stopped", down.join(", "));
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{} not running", down.join(", ")),
        ));
    }
    // A probe must hear at once: a database that does not answer (a partition) would otherwise
    // hold the check for as long as the pool waits for a connection.
    match tokio::time::timeout(HEALTH_CHECK_WAIT, ask(&handle.store, Ping)).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))),
        Ok(Err(err)) => {
            // The detail stays in the server's log: it can name hosts, users and versions.
            log::warn!("health check failed: {err}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable",
            ))
        }
        Err(_) => {
            log::warn!(
                "health check failed: the database did not answer within {} s",
                HEALTH_CHECK_WAIT.as_secs()
            );
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "database unreachable (no answer within {} s)",
                    HEALTH_CHECK_WAIT.as_secs()
                ),
            ))
        }
    }
}

/// How long `/healthz` waits for the database.
const HEALTH_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// `GET /api/plugins/{pluginId}/jobs/{jobId}`: the job and its next slots.
pub async fn get_job(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let upcoming_slots = upcoming_slots(&handle, &job);
    Ok(HttpResponse::Ok().json(JobDetailView {
        job: JobView::from(&job),
        upcoming: slot_instants(&upcoming_slots),
        upcoming_slots,
    }))
}

/// Longest wait for a request body to arrive in full once its headers have: actix-web times out
/// the headers only, and a client that promises a body it never sends would hold its
/// connection (and, on a write route, its handler) for as long as it likes.
const BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Most bytes of the body of an action that takes none (pause, resume, cancel, delete), which may be
/// empty, `{}` or `null`.
const MAX_EMPTY_BODY: usize = 1024;

/// A request body of at most `limit` bytes, arrived within [`BODY_WAIT`]; a larger one is a
/// JSON 413 naming the limit (the `Bytes` extractor would answer a plain-text one), a late one
/// a 408.
pub(super) async fn read_body(body: Payload, limit: usize) -> Result<Bytes, ApiError> {
    match actix_rt::time::timeout(BODY_WAIT, body.to_bytes_limited(limit)).await {
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(err))) => Err(ApiError::bad_request(format!(
            "reading the body failed: {err}"
        ))),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than {limit} bytes"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive in full within {} s (is its Content-Length \
                 larger than what was sent?)",
                BODY_WAIT.as_secs()
            ),
        )),
    }
}

/// `POST /api/plugins/{pluginId}/jobs/{jobId}/trigger`: 202 with the queued run.
pub async fn trigger_job(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let body = read_body(body, MAX_TRIGGER_BODY).await?;
    let (trigger, payload) = parse_trigger(&body)?;
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let run = handle
        .trigger_with_payload(JobRef::Id(job.id), trigger, payload)
        .await?;
    Ok(HttpResponse::Accepted().json(run))
}

/// `POST /api/plugins/{pluginId}/jobs/{jobId}/pause`: the job, paused.
pub async fn pause_job(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    no_body(body, "pause").await?;
    let (plugin_id, job_ref) = path.into_inner();
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let job = handle.pause(JobRef::Id(job.id)).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&job)))
}

/// `POST /api/plugins/{pluginId}/jobs/{jobId}/resume`: the job, active from the next slot.
pub async fn resume_job(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    no_body(body, "resume").await?;
    let (plugin_id, job_ref) = path.into_inner();
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let job = handle.resume(JobRef::Id(job.id)).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&job)))
}

/// `GET /api/runs/{runId}`: one run.
pub async fn get_run(
    handle: Handle,
    run_id: Path<String>,
    query: Query<super::listings::RunQuery>,
) -> ApiResult {
    let view = super::listings::parse_view(query.view.as_deref())?;
    let raw = run_id.into_inner();
    let run_id = Uuid::parse_str(&raw).map_err(|err| {
        ApiError::bad_request(format!("invalid run id {raw:?}: expected a UUID ({err})"))
    })?;
    let run = ask(&handle.store, GetRun(run_id))
        .await?
        .ok_or(crate::Error::RunNotFound(run_id))?;
    Ok(HttpResponse::Ok().json(view.view(&run)))
}

/// `POST /api/runs/{runId}/cancel`: cancels a live run of this server; answers the run as
/// recorded (`cancelled`, or still `running` when its outcome took longer than a few seconds).
pub async fn cancel_run(
    handle: Handle,
    run_id: Path<String>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    let raw = run_id.into_inner();
    let run_id = Uuid::parse_str(&raw).map_err(|err| {
        ApiError::bad_request(format!("invalid run id {raw:?}: expected a UUID ({err})"))
    })?;
    no_body(body, "cancel").await?;
    let run = handle.cancel_run(run_id).await?;
    Ok(HttpResponse::Ok().json(RunView::from(&run)))
}

/// 400 unless the body of an action that takes none is empty, `{}` or `null`: fields it would
/// ignore are refused by name instead, as every other body's unknown fields are.
pub(super) async fn no_body(body: Payload, action: &str) -> Result<(), ApiError> {
    let body = read_body(body, MAX_EMPTY_BODY).await?;
    let text = String::from_utf8_lossy(&body);
    match text.trim() {
        "" | "{}" | "null" => Ok(()),
        other => {
            let shown: String = other.chars().take(80).collect();
            Err(ApiError::bad_request(format!(
                "{action} takes no body (or an empty object); got {shown}"
            )))
        }
    }
}

/// `GET /metrics`: every metric in the Prometheus text format.
pub async fn metrics(handle: Handle) -> ApiResult {
    let text = handle.metrics().await?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

/// `GET /api/scheduler`: the scheduler's diagnostics.
pub async fn scheduler(handle: Handle, _query: Query<NoParameters>) -> ApiResult {
    Ok(HttpResponse::Ok().json(handle.diagnostics().await?))
}

/// Any path under `/api` that no route matches.
pub async fn no_route() -> impl Responder {
    ApiError::not_found("No such API route").to_response()
}

/// A known path asked with a method it does not take; `allow` lists those it takes.
pub async fn wrong_method(allow: &'static str) -> impl Responder {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("Method not allowed on this route (it takes {allow})"),
    )
    .to_response();
    response.headers_mut().insert(
        actix_web::http::header::ALLOW,
        actix_web::http::header::HeaderValue::from_static(allow),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Input

/// Finds a job of `plugin_id` named by its id or by its key. A job of another plugin is not
/// found. An id is tried first; text that is no job's id is then tried as a key, so a key that
/// happens to look like a UUID still works.
pub(super) async fn find_job(
    handle: &PluginJobsHandle,
    plugin_id: &str,
    job_ref: &str,
) -> Result<PluginJobModel, ApiError> {
    if let Ok(id) = Uuid::parse_str(job_ref) {
        let by_id = ask(&handle.store, GetJob(JobRef::Id(id))).await?;
        if let Some(job) = by_id.filter(|job| job.plugin_id == plugin_id) {
            return Ok(job);
        }
    }
    let by_key = JobRef::key(plugin_id, job_ref);
    match ask(&handle.store, GetJob(by_key)).await? {
        Some(job) => Ok(job),
        None => {
            // A misspelt plugin is named as such, not as a missing job of a plugin that is not.
            super::listings::ensure_plugin_known(handle, plugin_id).await?;
            Err(crate::Error::JobNotFound(format!("{job_ref} (plugin {plugin_id})")).into())
        }
    }
}

/// The job's next slots after now, with their DST notes; none unless it is active with a valid
/// schedule.
pub(super) fn upcoming_slots(handle: &PluginJobsHandle, job: &PluginJobModel) -> Vec<Slot> {
    if job.status != JobStatus::Active {
        return Vec::new();
    }
    match Schedule::parse(&job.schedule, &job.timezone) {
        Ok(schedule) => schedule.upcoming_slots(handle.clock.now(), UPCOMING_SLOTS),
        Err(_) => Vec::new(),
    }
}

/// The UTC instants of `slots`, as `upcoming` lists them.
pub(super) fn slot_instants(slots: &[Slot]) -> Vec<String> {
    slots.iter().map(|slot| crate::time::iso(slot.at)).collect()
}

/// The optional trigger body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    trigger: Option<String>,
    /// A one-off payload for this run instead of the job's.
    payload: Option<serde_json::Value>,
}

/// `{"trigger": "manual" | "retry", "payload": <JSON>}`, both optional; no body, an empty one,
/// `null` or `{}` mean a manual run with the job's payload.
fn parse_trigger(body: &[u8]) -> Result<(RunTrigger, Option<serde_json::Value>), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((RunTrigger::Manual, None));
    }
    if !matches!(first_token(body), Some(b'{' | b'n')) {
        return Err(ApiError::bad_request(
            r#"invalid JSON body: expected an object, {"trigger": "manual" | "retry", "payload": …}"#
                .to_owned(),
        ));
    }
    crate::declaration::check_integers(body)
        .map_err(|err| ApiError::bad_request(format!("invalid JSON body: it {err}")))?;
    let parsed: Option<TriggerBody> = serde_json::from_slice(body).map_err(|err| {
        ApiError::bad_request(format!(
            r#"invalid JSON body (expected {{"trigger": "manual" | "retry", "payload": …}}): {err}"#
        ))
    })?;
    let TriggerBody { trigger, payload } = parsed.unwrap_or_default();
    let trigger = match trigger.as_deref() {
        None | Some("manual") => RunTrigger::Manual,
        Some("retry") => RunTrigger::Retry,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                r#"invalid trigger {other:?}: expected "manual" or "retry""#
            )));
        }
    };
    Ok((trigger, payload))
}

/// The first byte of a JSON text past its whitespace. A body must be an object: serde would
/// also take a struct as an array of its fields in order (`["manual", {…}]`), which no client
/// means and whose errors name the struct, not a field.
pub(super) fn first_token(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|byte| !byte.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_payload_integer_past_64_bits_is_refused() {
        let err = parse_trigger(br#"{"payload": {"id": 123456789012345678901234}}"#)
            .expect_err("rounded");
        assert!(
            err.message
                .starts_with("invalid JSON body: it holds the integer 123456789012345678901234"),
            "{}",
            err.message
        );
    }

    #[test]
    fn trigger_body_is_optional_and_only_manual_or_retry() {
        for manual in [&b""[..], b"  ", b"null", b"{}", br#"{"trigger":"manual"}"#] {
            assert_eq!(parse_trigger(manual), Ok((RunTrigger::Manual, None)));
        }
        assert_eq!(
            parse_trigger(br#"{"trigger":"retry"}"#),
            Ok((RunTrigger::Retry, None))
        );
        assert_eq!(
            parse_trigger(br#"{"payload":{"invoice":42}}"#),
            Ok((RunTrigger::Manual, Some(serde_json::json!({"invoice": 42}))))
        );
        for bad in [
            &br#"{"trigger":"schedule"}"#[..],
            b"{",
            b"[1]",
            br#"["manual", {"p": 1}]"#,
            b"[]",
            br#"{"trigger":5}"#,
            br#"{"trigger":"manual","extra":1}"#,
        ] {
            let err = parse_trigger(bad).expect_err("bad body");
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
        }
    }
}
