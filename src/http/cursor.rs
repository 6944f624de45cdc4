//! The opaque `cursor` of the paginated listings: where the next page starts, encoded so that
//! clients pass it back as they got it and never build one. A cursor is the hex of a small JSON
//! array tagged with its listing (`"j"` for jobs, `"r"` for runs), so a jobs cursor handed to
//! the runs listing, or any edited text, is refused with a 400 that names it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::store::{JobCursor, RunCursor};

const JOBS_TAG: &str = "j";
const RUNS_TAG: &str = "r";
/// Far longer than any cursor this module writes (ids and keys are capped well below this).
const MAX_CURSOR_LEN: usize = 4096;
/// How much of a bad cursor an error repeats: every cursor of ordinary ids and keys whole.
const SHOWN_CHARS: usize = 300;

/// The cursor text of a job listing's next page.
pub fn encode_jobs(cursor: &JobCursor) -> String {
    hex(&json!([JOBS_TAG, cursor.plugin_id, cursor.job_key]))
}

/// The cursor text of a run listing's next page. The instant keeps every digit it was read
/// with, so the next page compares against exactly the stored value.
pub fn encode_runs(cursor: &RunCursor) -> String {
    hex(&json!([
        RUNS_TAG,
        cursor
            .created_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        cursor.id.to_string(),
    ]))
}

/// The `cursor` of a job listing; absent or empty means the first page.
pub fn decode_jobs(raw: Option<&str>) -> Result<Option<JobCursor>, ApiError> {
    let Some((text, parts)) = decode(raw, JOBS_TAG)? else {
        return Ok(None);
    };
    match parts.as_slice() {
        [Value::String(plugin_id), Value::String(job_key)] => Ok(Some(JobCursor {
            plugin_id: plugin_id.clone(),
            job_key: job_key.clone(),
        })),
        _ => Err(invalid(text)),
    }
}

/// The `cursor` of a run listing; absent or empty means the first page.
pub fn decode_runs(raw: Option<&str>) -> Result<Option<RunCursor>, ApiError> {
    let Some((text, parts)) = decode(raw, RUNS_TAG)? else {
        return Ok(None);
    };
    let [Value::String(created_at), Value::String(id)] = parts.as_slice() else {
        return Err(invalid(text));
    };
    let created_at = DateTime::parse_from_rfc3339(created_at)
        .map_err(|_| invalid(text))?
        .with_timezone(&Utc);
    let id = id.parse().map_err(|_| invalid(text))?;
    Ok(Some(RunCursor { created_at, id }))
}

/// The cursor's text and the parts after its tag, when the tag is `tag`.
fn decode<'a>(raw: Option<&'a str>, tag: &str) -> Result<Option<(&'a str, Vec<Value>)>, ApiError> {
    let Some(text) = raw.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if text.len() > MAX_CURSOR_LEN {
        return Err(invalid(text));
    }
    let bytes = unhex(text).ok_or_else(|| invalid(text))?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid(text))?;
    match value {
        Value::Array(mut parts) if parts.first().and_then(Value::as_str) == Some(tag) => {
            parts.remove(0);
            Ok(Some((text, parts)))
        }
        _ => Err(invalid(text)),
    }
}

fn invalid(text: &str) -> ApiError {
    let shown: String = text.chars().take(SHOWN_CHARS).collect();
    let ellipsis = if text.chars().count() > SHOWN_CHARS {
        "…"
    } else {
        ""
    };
    ApiError::bad_request(format!(
        "invalid cursor {shown:?}{ellipsis}: pass back the X-Next-Cursor of the previous page of \
         this listing, unchanged"
    ))
}

fn hex(value: &Value) -> String {
    use std::fmt::Write;
    let bytes = value.to_string().into_bytes();
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
            // Writing to a String cannot fail.
            let _ = write!(out, "{byte:02x}");
            out
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_cursors_round_trip() {
        let cursor = JobCursor {
            plugin_id: "billing".into(),
            job_key: "nightly \"report\" é".into(),
        };
        let text = encode_jobs(&cursor);
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
        assert_eq!(decode_jobs(Some(&text)), Ok(Some(cursor)));
        assert_eq!(decode_jobs(None), Ok(None));
        assert_eq!(decode_jobs(Some(" ")), Ok(None));
    }

    #[test]
    fn run_cursors_keep_every_digit_of_the_instant() {
        let created_at = DateTime::parse_from_rfc3339("2025-01-15T10:45:00.123456789Z")
            .expect("instant")
            .with_timezone(&Utc);
        let cursor = RunCursor {
            created_at,
            id: uuid::Uuid::now_v7(),
        };
        assert_eq!(decode_runs(Some(&encode_runs(&cursor))), Ok(Some(cursor)));
    }

    #[test]
    fn a_cursor_of_another_listing_or_edited_text_is_refused_by_name() {
        let jobs = encode_jobs(&JobCursor {
            plugin_id: "p".into(),
            job_key: "k".into(),
        });
        let runs = encode_runs(&RunCursor {
            created_at: Utc::now(),
            id: uuid::Uuid::nil(),
        });
        for (bad, decoded) in [
            (runs.as_str(), decode_jobs(Some(&runs)).err()),
            (jobs.as_str(), decode_runs(Some(&jobs)).err()),
            ("zz", decode_jobs(Some("zz")).err()),
            ("abc", decode_runs(Some("abc")).err()),
            ("5b5d", decode_runs(Some("5b5d")).err()),
        ] {
            let err = decoded.expect("refused");
            assert_eq!(err.status, actix_web::http::StatusCode::BAD_REQUEST);
            assert!(
                err.message.contains("cursor") && err.message.contains(bad),
                "{}",
                err.message
            );
        }
    }
}
