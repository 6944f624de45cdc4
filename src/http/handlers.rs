//! The route handlers: each parses its input, sends one message (or two, where a job must first
//! be found within its plugin) through the handle, and maps the answer onto a view or an
//! [`ApiError`].

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::web::{Data, Path, Payload, Query};
use actix_web::{HttpResponse, Responder};
use entity::prelude::*;
use futures_util::future::try_join_all;
use serde::Deserialize;
use uuid::Uuid;

use super::error::ApiError;
use super::views::{JobDetailView, JobOverviewView, JobView, PluginView, RunSummaryView, RunView};
use crate::PluginJobsHandle;
use crate::cron::{Schedule, Slot};
use crate::store::{GetJob, GetRun, JobRef, ListJobs, ListRuns, Ping, ask};

/// How many slots a job's detail shows.
const UPCOMING_SLOTS: usize = 5;
/// The largest `limit` of a run listing.
const MAX_RUNS_LIMIT: u64 = 500;
/// The largest trigger body read; the one field it may hold fits in far less.
const MAX_TRIGGER_BODY: usize = 16 * 1024;

type Handle = Data<PluginJobsHandle>;
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
    match ask(&handle.store, Ping).await {
        Ok(()) => Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))),
        Err(err) => {
            // The detail stays in the server's log: it can name hosts, users and versions.
            log::warn!("health check failed: {err}");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database unreachable",
            ))
        }
    }
}

/// `GET /api/plugins`: registered plugins and plugins with jobs in the database, by id.
pub async fn list_plugins(handle: Handle) -> ApiResult {
    let diagnostics = handle.diagnostics().await?;
    let jobs = ask(&handle.store, ListJobs::default()).await?;
    let mut counts: BTreeMap<String, usize> = diagnostics
        .registered_plugins
        .into_iter()
        .map(|plugin| (plugin, 0))
        .collect();
    for job in jobs {
        *counts.entry(job.plugin_id).or_default() += 1;
    }
    let plugins: Vec<PluginView> = counts
        .into_iter()
        .map(|(id, job_count)| PluginView {
            worker_status: handle.workers.status(&id),
            id,
            job_count,
        })
        .collect();
    Ok(HttpResponse::Ok().json(plugins))
}

#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    status: Option<String>,
}

/// `GET /api/plugins/{pluginId}/jobs?status=`: the plugin's jobs by key, optionally of one status.
pub async fn list_jobs(
    handle: Handle,
    plugin_id: Path<String>,
    query: Query<JobsQuery>,
) -> ApiResult {
    let plugin_id = plugin_id.into_inner();
    let status = parse_status(query.status.as_deref())?;
    let jobs = ask(
        &handle.store,
        ListJobs {
            plugin_id: Some(plugin_id.clone()),
            status: None,
        },
    )
    .await?;
    if jobs.is_empty() {
        ensure_plugin_known(&handle, &plugin_id).await?;
    }
    let views: Vec<JobView> = jobs
        .iter()
        .filter(|job| status.is_none_or(|status| job.status == status))
        .map(JobView::from)
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

/// `GET /api/plugins/{pluginId}/jobs/{jobId}`: the job and its next slots.
pub async fn get_job(handle: Handle, path: Path<(String, String)>) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let upcoming_slots = upcoming_slots(&handle, &job);
    Ok(HttpResponse::Ok().json(JobDetailView {
        job: JobView::from(&job),
        upcoming: slot_instants(&upcoming_slots),
        upcoming_slots,
    }))
}

/// `GET /api/jobs?status=`: every plugin's jobs, by plugin and key, each with its schedule in
/// words, its next slots and its newest run (what the dashboard shows).
pub async fn list_all_jobs(handle: Handle, query: Query<JobsQuery>) -> ApiResult {
    let status = parse_status(query.status.as_deref())?;
    let jobs = ask(
        &handle.store,
        ListJobs {
            plugin_id: None,
            status,
        },
    )
    .await?;
    // One indexed read per job, run beside each other on the pool's connections.
    let last_runs = try_join_all(jobs.iter().map(|job| {
        ask(
            &handle.store,
            ListRuns {
                limit: 1,
                ..ListRuns::of_job(job.id)
            },
        )
    }))
    .await?;
    let views: Vec<JobOverviewView> = jobs
        .iter()
        .zip(last_runs)
        .map(|(job, runs)| {
            let upcoming_slots = upcoming_slots(&handle, job);
            JobOverviewView {
                job: JobView::from(job),
                schedule_description: crate::describe::describe(&job.schedule),
                upcoming: slot_instants(&upcoming_slots),
                upcoming_slots,
                last_run: runs.first().map(RunSummaryView::from),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(views))
}

#[derive(Debug, Deserialize)]
pub struct RunsQuery {
    limit: Option<String>,
    view: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentRunsQuery {
    limit: Option<String>,
    plugin_id: Option<String>,
    view: Option<String>,
}

/// How much of each run a listing answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunsView {
    /// Run objects, logs included (the default).
    Full,
    /// Run objects without `logs`: what a status strip or a filtered scan needs, a fraction of
    /// the bytes when workers log much.
    Summary,
}

impl RunsView {
    fn respond(self, runs: &[PluginJobRunModel]) -> HttpResponse {
        let views: Vec<RunView> = match self {
            Self::Full => runs.iter().map(RunView::from).collect(),
            Self::Summary => runs.iter().map(RunView::without_logs).collect(),
        };
        HttpResponse::Ok().json(views)
    }
}

/// `GET /api/runs?limit=&pluginId=&view=`: the newest runs of every job (or of one plugin),
/// newest first.
pub async fn list_recent_runs(handle: Handle, query: Query<RecentRunsQuery>) -> ApiResult {
    let limit = parse_limit(query.limit.as_deref())?;
    let view = parse_view(query.view.as_deref())?;
    let plugin_id = query
        .plugin_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned);
    let runs = ask(
        &handle.store,
        ListRuns {
            job_id: None,
            plugin_id: plugin_id.clone(),
            limit,
        },
    )
    .await?;
    if let Some(plugin_id) = plugin_id
        && runs.is_empty()
    {
        ensure_plugin_known(&handle, &plugin_id).await?;
    }
    Ok(view.respond(&runs))
}

/// `GET /api/plugins/{pluginId}/jobs/{jobId}/runs?limit=&view=`: the job's runs, newest first.
pub async fn list_runs(
    handle: Handle,
    path: Path<(String, String)>,
    query: Query<RunsQuery>,
) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let limit = parse_limit(query.limit.as_deref())?;
    let view = parse_view(query.view.as_deref())?;
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let runs = ask(
        &handle.store,
        ListRuns {
            limit,
            ..ListRuns::of_job(job.id)
        },
    )
    .await?;
    Ok(view.respond(&runs))
}

/// `POST /api/plugins/{pluginId}/jobs/{jobId}/trigger`: 202 with the queued run.
pub async fn trigger_job(handle: Handle, path: Path<(String, String)>, body: Payload) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let body = match body.to_bytes_limited(MAX_TRIGGER_BODY).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => {
            return Err(ApiError::bad_request(format!(
                "reading the body failed: {err}"
            )));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_TRIGGER_BODY} bytes"),
            ));
        }
    };
    let (trigger, payload) = parse_trigger(&body)?;
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let run = handle
        .trigger_with_payload(JobRef::Id(job.id), trigger, payload)
        .await?;
    Ok(HttpResponse::Accepted().json(run))
}

/// `POST /api/plugins/{pluginId}/jobs/{jobId}/pause`: the job, paused.
pub async fn pause_job(handle: Handle, path: Path<(String, String)>) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let job = handle.pause(JobRef::Id(job.id)).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&job)))
}

/// `POST /api/plugins/{pluginId}/jobs/{jobId}/resume`: the job, active from the next slot.
pub async fn resume_job(handle: Handle, path: Path<(String, String)>) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let job = handle.resume(JobRef::Id(job.id)).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&job)))
}

/// `GET /api/runs/{runId}`: one run.
pub async fn get_run(handle: Handle, run_id: Path<String>) -> ApiResult {
    let raw = run_id.into_inner();
    let run_id = Uuid::parse_str(&raw).map_err(|err| {
        ApiError::bad_request(format!("invalid run id {raw:?}: expected a UUID ({err})"))
    })?;
    let run = ask(&handle.store, GetRun(run_id))
        .await?
        .ok_or(crate::Error::RunNotFound(run_id))?;
    Ok(HttpResponse::Ok().json(RunView::from(&run)))
}

/// `GET /metrics`: every metric in the Prometheus text format.
pub async fn metrics(handle: Handle) -> ApiResult {
    let text = handle.metrics().await?;
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

/// `GET /api/scheduler`: the scheduler's diagnostics.
pub async fn scheduler(handle: Handle) -> ApiResult {
    Ok(HttpResponse::Ok().json(handle.diagnostics().await?))
}

/// Any path under `/api` that no route matches.
pub async fn no_route() -> impl Responder {
    ApiError::not_found("No such API route").to_response()
}

/// A known path asked with a method it does not take.
pub async fn wrong_method() -> impl Responder {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed on this route",
    )
    .to_response()
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
    ask(&handle.store, GetJob(by_key))
        .await?
        .ok_or_else(|| crate::Error::JobNotFound(format!("{job_ref} (plugin {plugin_id})")).into())
}

/// 404 unless the plugin is registered or has jobs in the database (for listings that came back
/// empty: an empty answer should not hide a misspelt plugin id).
pub(super) async fn ensure_plugin_known(
    handle: &PluginJobsHandle,
    plugin_id: &str,
) -> Result<(), ApiError> {
    let registered = handle
        .diagnostics()
        .await?
        .registered_plugins
        .iter()
        .any(|plugin| plugin == plugin_id);
    let has_jobs = || async {
        ask(
            &handle.store,
            ListJobs {
                plugin_id: Some(plugin_id.to_owned()),
                status: None,
            },
        )
        .await
        .map(|jobs| !jobs.is_empty())
    };
    if registered || has_jobs().await? {
        Ok(())
    } else {
        Err(crate::Error::PluginNotFound(plugin_id.to_owned()).into())
    }
}

/// The job's next slots after now, with their DST notes; none unless it is active with a valid
/// schedule.
fn upcoming_slots(handle: &PluginJobsHandle, job: &PluginJobModel) -> Vec<Slot> {
    if job.status != JobStatus::Active {
        return Vec::new();
    }
    match Schedule::parse(&job.schedule, &job.timezone) {
        Ok(schedule) => schedule.upcoming_slots(handle.clock.now(), UPCOMING_SLOTS),
        Err(_) => Vec::new(),
    }
}

/// The UTC instants of `slots`, as `upcoming` lists them.
fn slot_instants(slots: &[Slot]) -> Vec<String> {
    slots.iter().map(|slot| crate::time::iso(slot.at)).collect()
}

/// `status` of a job listing; absent or empty means every status.
fn parse_status(raw: Option<&str>) -> Result<Option<JobStatus>, ApiError> {
    match raw.map(str::trim).filter(|text| !text.is_empty()) {
        None => Ok(None),
        Some(text) => text
            .parse::<JobStatus>()
            .map(Some)
            .map_err(|err| ApiError::bad_request(format!("invalid status: {err}"))),
    }
}

/// `limit` of a run listing: 1 to 500; absent or empty means the default (50).
fn parse_limit(raw: Option<&str>) -> Result<u64, ApiError> {
    let Some(text) = raw.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(ListRuns::DEFAULT_LIMIT);
    };
    match text.parse::<u64>() {
        Ok(limit) if (1..=MAX_RUNS_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad_request(format!(
            "invalid limit {text:?}: expected a whole number from 1 to {MAX_RUNS_LIMIT}"
        ))),
    }
}

/// `view` of a run listing: `full` (run objects) or `summary` (run objects without `logs`);
/// absent or empty means full.
fn parse_view(raw: Option<&str>) -> Result<RunsView, ApiError> {
    match raw.map(str::trim).filter(|text| !text.is_empty()) {
        None | Some("full") => Ok(RunsView::Full),
        Some("summary") => Ok(RunsView::Summary),
        Some(other) => Err(ApiError::bad_request(format!(
            r#"invalid view {other:?}: expected "full" or "summary""#
        ))),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_accepts_one_to_five_hundred_and_defaults_to_fifty() {
        assert_eq!(parse_limit(None), Ok(50));
        assert_eq!(parse_limit(Some("")), Ok(50));
        assert_eq!(parse_limit(Some("1")), Ok(1));
        assert_eq!(parse_limit(Some("500")), Ok(500));
        for bad in ["0", "501", "abc", "-1", "1.5"] {
            let err = parse_limit(Some(bad)).expect_err(bad);
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains("limit") && err.message.contains(bad));
        }
    }

    #[test]
    fn status_names_the_bad_value_and_the_allowed_ones() {
        assert_eq!(parse_status(Some("paused")), Ok(Some(JobStatus::Paused)));
        assert_eq!(parse_status(Some("")), Ok(None));
        let err = parse_status(Some("sleeping")).expect_err("unknown status");
        assert!(err.message.contains("\"sleeping\""), "{}", err.message);
        assert!(
            err.message.contains("active, paused, failed, retired"),
            "{}",
            err.message
        );
    }

    #[test]
    fn view_is_full_by_default_or_summary() {
        assert_eq!(parse_view(None), Ok(RunsView::Full));
        assert_eq!(parse_view(Some(" ")), Ok(RunsView::Full));
        assert_eq!(parse_view(Some("full")), Ok(RunsView::Full));
        assert_eq!(parse_view(Some("summary")), Ok(RunsView::Summary));
        let err = parse_view(Some("brief")).expect_err("brief is no view");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.contains("\"brief\"") && err.message.contains("summary"));
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
            br#"{"trigger":5}"#,
            br#"{"trigger":"manual","extra":1}"#,
        ] {
            let err = parse_trigger(bad).expect_err("bad body");
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
        }
    }
}
