//! The routes that change jobs at runtime: create (`POST /api/plugins/{pluginId}/jobs`), change
//! (`PATCH …/jobs/{jobId}`, a JSON merge patch) and retire (`DELETE …/jobs/{jobId}`) jobs with
//! `origin: api`, and backfill a job's past slots (`POST` / `DELETE …/jobs/{jobId}/backfill`).
//! Each parses its body, sends one message through the handle, and maps the answer.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{Data, Path, Payload, Query};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::ApiError;
use super::listings::NoParameters;
use super::views::JobView;
use crate::PluginJobsHandle;
use crate::declaration::JobDeclaration;
use crate::store::JobRef;

type Handle = Data<PluginJobsHandle>;
type ApiResult = Result<HttpResponse, ApiError>;

/// The largest body of a create, change or backfill request (a job's payload is at most 16 KiB;
/// the rest is its declaration).
const MAX_JOB_BODY: usize = 256 * 1024;

/// `POST /api/plugins/{pluginId}/jobs`: 201 with the job object (`origin: api`).
pub async fn create_job(
    handle: Handle,
    path: Path<String>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    let plugin_id = path.into_inner();
    let body = super::handlers::read_body(body, MAX_JOB_BODY).await?;
    super::listings::ensure_plugin_known(&handle, &plugin_id).await?;
    let job: JobDeclaration = parse_body(&body, "a job: {\"jobKey\": …, \"schedule\": …}")?;
    let job = handle.create_job(plugin_id, job).await?;
    let location = format!(
        "/api/plugins/{}/jobs/{}",
        percent_encoding::utf8_percent_encode(&job.plugin_id, percent_encoding::NON_ALPHANUMERIC),
        job.id
    );
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(JobView::from(&job)))
}

/// `PATCH /api/plugins/{pluginId}/jobs/{jobId}`: the job object after the change.
pub async fn update_job(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let body = super::handlers::read_body(body, MAX_JOB_BODY).await?;
    let job = super::handlers::find_job(&handle, &plugin_id, &job_ref).await?;
    let patch: serde_json::Value = parse_body(&body, "a JSON object of the fields to change")?;
    let job = handle.update_job(JobRef::Id(job.id), patch).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&job)))
}

/// `DELETE /api/plugins/{pluginId}/jobs/{jobId}`: 204; the job is retired, its history kept.
pub async fn delete_job(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    super::handlers::no_body(body, "delete").await?;
    let (plugin_id, job_ref) = path.into_inner();
    let job = super::handlers::find_job(&handle, &plugin_id, &job_ref).await?;
    handle.delete_job(JobRef::Id(job.id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The body of a backfill request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BackfillBody {
    #[serde(deserialize_with = "instant")]
    from: DateTime<Utc>,
    #[serde(deserialize_with = "instant")]
    to: DateTime<Utc>,
}

/// An RFC 3339 instant; the error quotes what came and shows what is expected (chrono's own
/// says "premature end of input").
fn instant<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    DateTime::parse_from_rfc3339(text.trim())
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|err| {
            serde::de::Error::custom(format!(
                "{text:?} is not an instant ({err}): expected RFC 3339 with a time and an \
                 offset, such as 2026-12-02T00:00:00Z"
            ))
        })
}

/// `POST /api/plugins/{pluginId}/jobs/{jobId}/backfill` `{"from": …, "to": …}`: 202 with the
/// slots that will be replayed.
pub async fn backfill(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let body = super::handlers::read_body(body, MAX_JOB_BODY).await?;
    let job = super::handlers::find_job(&handle, &plugin_id, &job_ref).await?;
    let range: BackfillBody = parse_body(
        &body,
        r#"{"from": "2026-11-30T00:00:00Z", "to": "2026-11-30T06:00:00Z"}"#,
    )?;
    let requested = handle
        .backfill(JobRef::Id(job.id), range.from, range.to)
        .await?;
    Ok(HttpResponse::Accepted().json(requested))
}

/// `GET /api/plugins/{pluginId}/jobs/{jobId}/backfill`: the slots waiting to be replayed,
/// oldest first (`{"jobId", "pending": [ISO 8601 UTC, …]}`).
pub async fn pending_backfill(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
) -> ApiResult {
    let (plugin_id, job_ref) = path.into_inner();
    let job = super::handlers::find_job(&handle, &plugin_id, &job_ref).await?;
    let pending = handle.pending_backfill(JobRef::Id(job.id)).await?;
    let pending: Vec<String> = pending.into_iter().map(crate::time::iso).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "jobId": job.id, "pending": pending })))
}

/// `DELETE /api/plugins/{pluginId}/jobs/{jobId}/backfill`: cancels the slots not started yet.
pub async fn cancel_backfill(
    handle: Handle,
    path: Path<(String, String)>,
    _query: Query<NoParameters>,
    body: Payload,
) -> ApiResult {
    super::handlers::no_body(body, "cancelling a backfill").await?;
    let (plugin_id, job_ref) = path.into_inner();
    let job = super::handlers::find_job(&handle, &plugin_id, &job_ref).await?;
    let cancelled = handle.cancel_backfill(JobRef::Id(job.id)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "cancelled": cancelled })))
}

/// A JSON body, or 400 naming the field that is wrong (`retry.maxAttempts: invalid type …`).
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "the body is empty: expected {expected}"
        )));
    }
    if super::handlers::first_token(body) != Some(b'{') {
        return Err(ApiError::bad_request(format!(
            "invalid body: expected a JSON object, {expected}"
        )));
    }
    crate::declaration::check_integers(body)
        .map_err(|err| ApiError::bad_request(format!("invalid body: it {err}")))?;
    let refuse = |path: String, err: &dyn std::fmt::Display| {
        // A syntax error inside an object before its next key has no known member (`?`):
        // name the members that are known, if any.
        let known = path.trim_end_matches(".?");
        let place = if matches!(known, "." | "?") {
            String::new()
        } else {
            format!("{known}: ")
        };
        ApiError::bad_request(format!("invalid body: {place}{err}"))
    };
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize::<_, UniqueMembers>(&mut reader)
        .map_err(|err| refuse(err.path().to_string(), err.inner()))?;
    let mut reader = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut reader)
        .map_err(|err| refuse(err.path().to_string(), err.inner()))
}

/// Any JSON text, read only to refuse an object that names a member twice: a struct refuses
/// it, but a patch is read as a `serde_json::Value`, which would keep the last one silently.
struct UniqueMembers;

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueMembers)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueMembers {
    type Value = UniqueMembers;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("JSON")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_unit<E>(self) -> Result<Self, E> {
        Ok(self)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self, A::Error> {
        while seq.next_element::<UniqueMembers>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format_args!(
                    "duplicate field `{key}`"
                )));
            }
            map.next_value::<UniqueMembers>()?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backfill_date_that_is_not_an_instant_is_quoted() {
        let err = parse_body::<BackfillBody>(
            br#"{"from": "2026-12-02", "to": "2026-12-03T00:00:00Z"}"#,
            "a range",
        )
        .expect_err("a date without a time");
        assert!(
            err.message.starts_with(
                "invalid body: from: \"2026-12-02\" is not an instant (premature end of input): \
                 expected RFC 3339"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_bad_body_names_the_field() {
        let err = parse_body::<JobDeclaration>(
            br#"{"jobKey": "a", "retry": {"maxAttempts": "three"}}"#,
            "a job",
        )
        .expect_err("bad type");
        assert!(err.message.contains("retry.maxAttempts"), "{}", err.message);
        let err = parse_body::<serde_json::Value>(
            br#"{"timeoutMs": null, "retry": {"backoff": "1s", "backoff": "2s"}}"#,
            "a patch",
        )
        .expect_err("a member twice");
        assert!(
            err.message
                .starts_with("invalid body: retry: duplicate field `backoff` at line 1"),
            "{}",
            err.message
        );
        let err = parse_body::<JobDeclaration>(br#"{"jobKey": "a", "retry": [3]}"#, "a job")
            .expect_err("a policy as an array");
        assert!(
            err.message
                .contains("retry: invalid type: sequence, expected an object"),
            "{}",
            err.message
        );
        let err = parse_body::<JobDeclaration>(br#"{"jobKey": "a", "shedule": ""}"#, "a job")
            .expect_err("unknown field");
        assert!(err.message.contains("shedule"), "{}", err.message);
        // A body cut short names no member it cannot know.
        let err = parse_body::<JobDeclaration>(br#"{"jobKey": "a""#, "a job").expect_err("cut");
        assert!(
            err.message
                .starts_with("invalid body: EOF while parsing an object"),
            "{}",
            err.message
        );
        let err =
            parse_body::<JobDeclaration>(br#"{"jobKey": "a", "retry": {"maxAttempts": 2"#, "a job")
                .expect_err("cut inside a member");
        assert!(
            err.message
                .starts_with("invalid body: retry: EOF while parsing an object"),
            "{}",
            err.message
        );
        let err = parse_body::<JobDeclaration>(b"  ", "a job").expect_err("empty");
        assert!(err.message.contains("empty"), "{}", err.message);
        // serde would take the struct's fields in order from an array.
        let err =
            parse_body::<JobDeclaration>(br#" ["arr1", "", ""]"#, "a job").expect_err("an array");
        assert!(
            err.message.contains("expected a JSON object"),
            "{}",
            err.message
        );
    }
}
