//! The listing routes: plugins, jobs and runs. Every filter is applied in SQL, and the jobs and
//! runs listings page by keyset: `limit` and an opaque `cursor`. The body stays a plain JSON
//! array either way; the next page, when there is one, is named by the `X-Next-Cursor` header
//! and a `Link: <…>; rel="next"` header that repeats the request with that cursor.
//!
//! Without `limit` or `cursor`, a jobs listing answers every matching job, as it always did,
//! read and sent 500 at a time into one streamed array (built whole, one listing of 40,000 jobs
//! raised the server's memory from 220 MB to 589 MB); a runs listing answers its default page
//! of 50. The reads go through the handle's
//! [`crate::store::StoreReader`], beside the store's writes rather than behind them.

use actix_web::http::header::{HeaderName, HeaderValue, LINK};
use actix_web::web::{Path, Query};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use entity::prelude::*;
use serde::Deserialize;

use super::cursor;
use super::error::ApiError;
use super::handlers::{Handle, find_job, slot_instants, upcoming_slots};
use super::views::{JobOverviewView, JobView, PluginView, RunSummaryView, RunView};
use crate::PluginJobsHandle;
use crate::store::{JobPage, ListJobPage, ListRunPage, ListRuns};
use crate::worker::WorkerStatus;

/// The largest `limit` of a listing.
const MAX_LIMIT: u64 = 500;
/// How many jobs of an unpaged jobs listing are read and sent at a time.
const STREAMED_PAGE: u64 = MAX_LIMIT;
/// The header that carries the next page's cursor.
pub const NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

type ApiResult = Result<HttpResponse, ApiError>;

/// The query of a path that takes no parameters: any it is given is refused by name, as the
/// listings refuse a misspelt one, rather than ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParameters {}

/// The query of one run: `view=full|summary`, as in the run listings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    pub view: Option<String>,
}

/// `GET /api/plugins`: registered plugins and plugins with jobs in the database, by id, each
/// with its job count (counted in SQL, not by reading the jobs).
pub async fn list_plugins(handle: Handle, _query: Query<NoParameters>) -> ApiResult {
    let diagnostics = handle.diagnostics().await?;
    let mut counts: std::collections::BTreeMap<String, u64> = diagnostics
        .registered_plugins
        .into_iter()
        .chain(handle.workers.plugin_ids())
        .map(|plugin| (plugin, 0))
        .collect();
    for (plugin, count) in handle.reader.count_jobs_by_plugin().await? {
        counts.insert(plugin, count);
    }
    let plugins: Vec<PluginView> = counts
        .into_iter()
        .map(|(id, job_count)| {
            let worker_status = handle.workers.status(&id);
            let worker_error = (worker_status != WorkerStatus::Running)
                .then(|| handle.workers.last_error(&id))
                .flatten();
            PluginView {
                worker_status,
                worker_error,
                id,
                job_count: usize::try_from(job_count).unwrap_or(usize::MAX),
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(plugins))
}

/// A misspelt filter is refused by name rather than ignored (which would list everything).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobsQuery {
    status: Option<String>,
    failing: Option<String>,
    plugin_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl JobsQuery {
    /// The page the query asks for. Without `limit` and `cursor`, every matching job.
    fn page(
        &self,
        plugin_id: Option<String>,
        with_last_run: bool,
    ) -> Result<ListJobPage, ApiError> {
        let after = cursor::decode_jobs(self.cursor.as_deref())?;
        let limit = match non_empty(self.limit.as_deref()) {
            None if after.is_none() => None,
            _ => Some(parse_limit(self.limit.as_deref())?),
        };
        Ok(ListJobPage {
            plugin_id,
            status: parse_enum("status", self.status.as_deref())?,
            failing: parse_failing(self.failing.as_deref())?,
            job_keys: Vec::new(),
            after,
            limit,
            with_last_run,
        })
    }
}

/// `GET /api/plugins/{pluginId}/jobs?status=&failing=&limit=&cursor=`: the plugin's jobs by
/// key.
pub async fn list_jobs(
    handle: Handle,
    req: HttpRequest,
    plugin_id: Path<String>,
    query: Query<JobsQuery>,
) -> ApiResult {
    let plugin_id = plugin_id.into_inner();
    refuse_plugin_filter(query.plugin_id.as_deref())?;
    let request = query.page(Some(plugin_id.clone()), false)?;
    let first_page = request.after.is_none();
    let (request, page) = first_job_page(&handle, request).await?;
    if page.jobs.is_empty() && first_page {
        ensure_plugin_known(&handle, &plugin_id).await?;
    }
    Ok(respond_jobs(&req, handle, request, page, |_, (job, _)| {
        JobView::from(job)
    }))
}

/// `GET /api/jobs?status=&failing=&pluginId=&limit=&cursor=`: jobs by plugin and key, each with its
/// schedule in words, its next slots and its newest run (what the dashboard shows). The newest
/// runs of a whole page are read in one statement.
pub async fn list_all_jobs(handle: Handle, req: HttpRequest, query: Query<JobsQuery>) -> ApiResult {
    let plugin_id = non_empty(query.plugin_id.as_deref()).map(str::to_owned);
    let first_page = non_empty(query.cursor.as_deref()).is_none();
    let (request, page) = first_job_page(&handle, query.page(plugin_id.clone(), true)?).await?;
    // Like `/api/runs?pluginId=`: an empty first page of a plugin nobody knows is a 404.
    if let Some(plugin_id) = plugin_id
        && page.jobs.is_empty()
        && first_page
    {
        ensure_plugin_known(&handle, &plugin_id).await?;
    }
    Ok(respond_jobs(
        &req,
        handle,
        request,
        page,
        |handle, (job, last_run)| {
            let upcoming_slots = upcoming_slots(handle, job);
            JobOverviewView {
                job: JobView::from(job),
                schedule_description: crate::describe::describe(&job.schedule),
                upcoming: slot_instants(&upcoming_slots),
                upcoming_slots,
                last_run: last_run.as_ref().map(RunSummaryView::from),
            }
        },
    ))
}

/// A job and its newest run, as a page lists it.
type ListedJob = (PluginJobModel, Option<PluginJobRunModel>);

/// The first page of a jobs listing, and the request it was read with: an unpaged request
/// (no `limit`, no `cursor`) is read [`STREAMED_PAGE`] jobs at a time.
async fn first_job_page(
    handle: &Handle,
    mut request: ListJobPage,
) -> Result<(Option<ListJobPage>, JobPage), ApiError> {
    let unpaged = request.limit.is_none();
    if unpaged {
        request.limit = Some(STREAMED_PAGE);
    }
    let page = handle.reader.list_job_page(request.clone()).await?;
    Ok((unpaged.then_some(request), page))
}

/// Answers a jobs listing: one page with its cursor headers, or (`unpaged` holds the request)
/// every matching job in one JSON array, each page streamed as it is read, so the answer's
/// memory is one page's whatever the number of jobs.
fn respond_jobs<V: serde::Serialize + 'static>(
    req: &HttpRequest,
    handle: Handle,
    unpaged: Option<ListJobPage>,
    page: JobPage,
    view: fn(&PluginJobsHandle, &ListedJob) -> V,
) -> HttpResponse {
    let Some(request) = unpaged else {
        let views: Vec<V> = page.jobs.iter().map(|job| view(&handle, job)).collect();
        return respond(req, page.next.as_ref().map(cursor::encode_jobs), &views);
    };
    struct Streamed {
        handle: Handle,
        request: ListJobPage,
        page: Option<JobPage>,
        first: bool,
    }
    let start = Streamed {
        handle,
        request,
        page: Some(page),
        first: true,
    };
    let chunks = futures_util::stream::unfold(Some(start), move |state| async move {
        let mut state = state?;
        let page = match state.page.take() {
            Some(page) => page,
            None => match state
                .handle
                .reader
                .list_job_page(state.request.clone())
                .await
            {
                Ok(page) => page,
                Err(err) => {
                    // The status line has gone: the client sees the array cut short.
                    log::error!("a streamed jobs listing failed after its first page: {err}");
                    return Some((Err(std::io::Error::other(err.to_string())), None));
                }
            },
        };
        let mut chunk = Vec::new();
        for job in &page.jobs {
            chunk.push(if std::mem::take(&mut state.first) {
                b'['
            } else {
                b','
            });
            if let Err(err) = serde_json::to_writer(&mut chunk, &view(&state.handle, job)) {
                return Some((Err(std::io::Error::other(err)), None));
            }
        }
        match page.next {
            Some(next) => {
                state.request.after = Some(next);
                Some((Ok(actix_web::web::Bytes::from(chunk)), Some(state)))
            }
            None => {
                if state.first {
                    chunk.push(b'[');
                }
                chunk.push(b']');
                Some((Ok(actix_web::web::Bytes::from(chunk)), None))
            }
        }
    });
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .streaming(chunks)
}

/// As [`JobsQuery`], unknown parameters are refused by name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunsQuery {
    limit: Option<String>,
    cursor: Option<String>,
    view: Option<String>,
    plugin_id: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl RunsQuery {
    /// The page the query asks for, of every job (the caller narrows it to one).
    fn page(&self) -> Result<ListRunPage, ApiError> {
        let since = parse_instant("since", self.since.as_deref())?;
        let until = parse_instant("until", self.until.as_deref())?;
        if let (Some(since), Some(until)) = (since, until)
            && since > until
        {
            return Err(ApiError::bad_request(format!(
                "since ({}) is after until ({}): the range is empty",
                self.since.as_deref().unwrap_or_default(),
                self.until.as_deref().unwrap_or_default()
            )));
        }
        Ok(ListRunPage {
            job_id: None,
            plugin_id: non_empty(self.plugin_id.as_deref()).map(str::to_owned),
            status: parse_enum("status", self.status.as_deref())?,
            trigger: parse_enum("trigger", self.trigger.as_deref())?,
            since,
            until,
            before: cursor::decode_runs(self.cursor.as_deref())?,
            limit: parse_limit(self.limit.as_deref())?,
        })
    }
}

/// How much of each run a listing answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunsView {
    /// Run objects, logs included (the default).
    Full,
    /// Run objects without `logs`: what a status strip or a filtered scan needs, a fraction of
    /// the bytes when workers log much.
    Summary,
}

impl RunsView {
    /// One run as this view shows it.
    pub(super) fn view(self, run: &PluginJobRunModel) -> RunView {
        match self {
            Self::Full => RunView::from(run),
            Self::Summary => RunView::without_logs(run),
        }
    }

    fn views(self, runs: &[PluginJobRunModel]) -> Vec<RunView> {
        match self {
            Self::Full => runs.iter().map(RunView::from).collect(),
            Self::Summary => runs.iter().map(RunView::without_logs).collect(),
        }
    }
}

/// `GET /api/runs?limit=&cursor=&pluginId=&status=&trigger=&since=&until=&view=`: runs of
/// every job (or of one plugin), newest first by `createdAt`.
pub async fn list_recent_runs(
    handle: Handle,
    req: HttpRequest,
    query: Query<RunsQuery>,
) -> ApiResult {
    let view = parse_view(query.view.as_deref())?;
    let page = query.page()?;
    let plugin_id = page.plugin_id.clone();
    let first_page = page.before.is_none();
    let page = handle.reader.list_run_page(page).await?;
    if let Some(plugin_id) = plugin_id
        && page.runs.is_empty()
        && first_page
    {
        ensure_plugin_known(&handle, &plugin_id).await?;
    }
    Ok(respond(
        &req,
        page.next.as_ref().map(cursor::encode_runs),
        &view.views(&page.runs),
    ))
}

/// `GET /api/plugins/{pluginId}/jobs/{jobId}/runs?limit=&cursor=&status=&trigger=&since=&until=&view=`:
/// the job's runs, newest first.
pub async fn list_runs(
    handle: Handle,
    req: HttpRequest,
    path: Path<(String, String)>,
    query: Query<RunsQuery>,
) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    refuse_plugin_filter(query.plugin_id.as_deref())?;
    let view = parse_view(query.view.as_deref())?;
    let page = query.page()?;
    let job = find_job(&handle, &plugin_id, &job_ref).await?;
    let page = handle
        .reader
        .list_run_page(ListRunPage {
            job_id: Some(job.id),
            plugin_id: None,
            ..page
        })
        .await?;
    Ok(respond(
        &req,
        page.next.as_ref().map(cursor::encode_runs),
        &view.views(&page.runs),
    ))
}

// ---------------------------------------------------------------------------------------------
// Answer

/// 200 with `body`, and the next page's headers when there is one.
fn respond(req: &HttpRequest, next: Option<String>, body: &impl serde::Serialize) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    if let Some(next) = next {
        if let Ok(value) = HeaderValue::from_str(&next) {
            response.insert_header((NEXT_CURSOR, value));
        }
        if let Ok(value) = HeaderValue::from_str(&next_link(req, &next)) {
            response.insert_header((LINK, value));
        }
    }
    response.json(body)
}

/// `<path?query>; rel="next"`: the same request with `cursor` set to `next`. The path is the
/// one the client asked, so the link works under whatever scope the API is mounted.
fn next_link(req: &HttpRequest, next: &str) -> String {
    let mut query: Vec<&str> = req
        .query_string()
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("cursor="))
        .collect();
    let cursor = format!("cursor={next}");
    query.push(&cursor);
    format!("<{}?{}>; rel=\"next\"", req.path(), query.join("&"))
}

// ---------------------------------------------------------------------------------------------
// Input

/// 404 unless the plugin is registered, known to the workers (refused ones too) or has jobs in
/// the database (for listings that came back empty: an empty answer should not hide a misspelt
/// plugin id).
pub(super) async fn ensure_plugin_known(
    handle: &PluginJobsHandle,
    plugin_id: &str,
) -> Result<(), ApiError> {
    let registered = handle
        .diagnostics()
        .await?
        .registered_plugins
        .iter()
        .any(|plugin| plugin == plugin_id)
        || handle
            .workers
            .plugin_ids()
            .iter()
            .any(|plugin| plugin == plugin_id);
    let has_jobs = || async {
        handle
            .reader
            .list_job_page(ListJobPage {
                plugin_id: Some(plugin_id.to_owned()),
                limit: Some(1),
                ..ListJobPage::default()
            })
            .await
            .map(|page| !page.jobs.is_empty())
    };
    if registered || has_jobs().await? {
        Ok(())
    } else {
        Err(crate::Error::PluginNotFound(plugin_id.to_owned()).into())
    }
}

/// `pluginId` filters `/api/jobs` and `/api/runs`; a listing under `/api/plugins/{pluginId}`
/// has its plugin in the path and refuses the parameter, as it refuses any it does not take.
fn refuse_plugin_filter(raw: Option<&str>) -> Result<(), ApiError> {
    match raw {
        None => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "invalid query string: unknown parameter `pluginId`: this listing's plugin is in \
             its path (pluginId filters /api/jobs and /api/runs)"
                .to_owned(),
        )),
    }
}

fn non_empty(raw: Option<&str>) -> Option<&str> {
    raw.map(str::trim).filter(|text| !text.is_empty())
}

/// A `status` or `trigger` filter; absent or empty means any.
fn parse_enum<T>(name: &str, raw: Option<&str>) -> Result<Option<T>, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match non_empty(raw) {
        None => Ok(None),
        Some(text) => text
            .parse::<T>()
            .map(Some)
            .map_err(|err| ApiError::bad_request(format!("invalid {name}: {err}"))),
    }
}

/// `failing` of a jobs listing: `true` keeps the jobs that are `failed` or whose last run to
/// reach an outcome failed (retired ones left out), `false` the others; absent or empty keeps
/// every job.
fn parse_failing(raw: Option<&str>) -> Result<Option<bool>, ApiError> {
    match non_empty(raw) {
        None => Ok(None),
        Some("false") => Ok(Some(false)),
        Some("true") => Ok(Some(true)),
        Some(text) => Err(ApiError::bad_request(format!(
            "invalid failing {text:?}: expected true or false"
        ))),
    }
}

/// `since` or `until`: an RFC 3339 instant; absent or empty means unbounded.
fn parse_instant(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match non_empty(raw) {
        None => Ok(None),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|at| Some(at.with_timezone(&Utc)))
            .map_err(|err| {
                ApiError::bad_request(format!(
                    "invalid {name} {text:?}: expected an RFC 3339 instant such as \
                     2025-01-15T10:45:00Z ({err})"
                ))
            }),
    }
}

/// `limit` of a listing: 1 to 500; absent or empty means the default (50).
fn parse_limit(raw: Option<&str>) -> Result<u64, ApiError> {
    let Some(text) = non_empty(raw) else {
        return Ok(ListRuns::DEFAULT_LIMIT);
    };
    match text.parse::<u64>() {
        Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => Err(ApiError::bad_request(format!(
            "invalid limit {text:?}: expected a whole number from 1 to {MAX_LIMIT}"
        ))),
    }
}

/// `view` of a run listing: `full` (run objects) or `summary` (run objects without `logs`);
/// absent or empty means full.
pub(super) fn parse_view(raw: Option<&str>) -> Result<RunsView, ApiError> {
    match non_empty(raw) {
        None | Some("full") => Ok(RunsView::Full),
        Some("summary") => Ok(RunsView::Summary),
        Some(other) => Err(ApiError::bad_request(format!(
            r#"invalid view {other:?}: expected "full" or "summary""#
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;

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
        assert_eq!(
            parse_enum::<JobStatus>("status", Some("paused")),
            Ok(Some(JobStatus::Paused))
        );
        assert_eq!(parse_enum::<JobStatus>("status", Some("")), Ok(None));
        let err = parse_enum::<JobStatus>("status", Some("sleeping")).expect_err("unknown status");
        assert!(err.message.contains("\"sleeping\""), "{}", err.message);
        assert!(
            err.message.contains("active, paused, failed, retired"),
            "{}",
            err.message
        );
        let err = parse_enum::<RunTrigger>("trigger", Some("cron")).expect_err("unknown trigger");
        assert!(
            err.message.contains("trigger") && err.message.contains("\"cron\""),
            "{}",
            err.message
        );
    }

    #[test]
    fn instants_are_rfc3339_and_named_when_bad() {
        assert_eq!(parse_instant("since", None), Ok(None));
        assert!(matches!(
            parse_instant("since", Some("2025-01-15T10:45:00Z")),
            Ok(Some(_))
        ));
        let err = parse_instant("until", Some("yesterday")).expect_err("not an instant");
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.message.contains("until") && err.message.contains("\"yesterday\""),
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
    fn the_next_link_repeats_the_request_with_the_new_cursor() {
        let req = actix_web::test::TestRequest::get()
            .uri("/api/runs?status=failed&cursor=00&limit=5")
            .to_http_request();
        assert_eq!(
            next_link(&req, "abcd"),
            r#"</api/runs?status=failed&limit=5&cursor=abcd>; rel="next""#
        );
    }
}
