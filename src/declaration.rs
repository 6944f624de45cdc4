//! What a job is, as a plugin declares it: [`JobDeclaration`] (a manifest's job, or a job given
//! to `RegisterPlugin` by an embedding application), its [`RetryPolicy`], and the rules both
//! the manifest loader and the store check before anything is stored. Pure data and validation:
//! no actor, no database.

use std::collections::HashSet;
use std::time::Duration;

use entity::prelude::{MisfirePolicy, OverlapPolicy};
use serde::{Deserialize, Serialize};

use crate::config::parse_duration;
use crate::{Error, Result};

/// Longest accepted job key.
pub const MAX_JOB_KEY_LEN: usize = 200;
/// Longest accepted plugin id.
pub const MAX_PLUGIN_ID_LEN: usize = 200;
/// Longest accepted `schedule`, in bytes: room for any list a cron field can hold.
pub const MAX_SCHEDULE_LEN: usize = 1024;
/// Longest accepted `displayName`, in bytes.
pub const MAX_DISPLAY_NAME_LEN: usize = 200;
/// Longest accepted `description`, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4 * 1024;
/// Most attempts a retry policy may ask for (the first included).
pub const MAX_ATTEMPTS: u32 = 100;
/// The wait before the first retry when a policy names none.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest wait between attempts when a policy names none.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The largest payload, as JSON text.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// The longest jitter or misfire grace a job may declare: a day.
pub const MAX_JOB_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// The longest `timeoutMs` of a job: [`crate::config::MAX_DURATION`], the bound of every duration
/// setting, so a deadline never overflows a timer or a timestamp.
pub const MAX_TIMEOUT_MS: i64 = crate::config::MAX_DURATION.as_millis() as i64;
/// The longest backoff a policy may name: a week.
const MAX_BACKOFF_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One job as a plugin declares it (in its manifest, or through `RegisterPlugin`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobDeclaration {
    /// Stable key of the job within its plugin.
    pub job_key: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// Cron expression; empty (the default) means the job only runs when triggered. Read with
    /// its fields one space apart (`" 0\t3 * * *\n"` is stored as `"0 3 * * *"`).
    #[serde(default, deserialize_with = "spaced_fields")]
    pub schedule: String,
    /// IANA timezone the schedule is evaluated in.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Per-job timeout; `None` means the scheduler default.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    #[serde(default)]
    pub misfire: MisfirePolicy,
    /// Pause the job after this many consecutive failed slots; `None` means the server default
    /// (`--pause-after-failures`, off unless set).
    #[serde(default)]
    pub pause_after_failures: Option<u32>,
    /// Retry a failed or abandoned run with backoff; `None` means no retry.
    #[serde(default, deserialize_with = "optional_object")]
    pub retry: Option<RetryPolicy>,
    /// JSON handed to every run in `runJob` (`payload`), at most 16 KiB as JSON text.
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    /// What a due slot does while the previous run is still live (default `skip`).
    #[serde(default)]
    pub overlap: OverlapPolicy,
    /// Spread each slot's start by a deterministic offset in `[0, jitterMs)`.
    #[serde(default)]
    pub jitter_ms: Option<u64>,
    /// The job's own misfire grace; `None` means the server's `--misfire-grace`.
    #[serde(default)]
    pub misfire_grace_ms: Option<u64>,
}

/// `"retry": {"maxAttempts": 3, "backoff": "10s", "maxBackoff": "5m"}`: how often a failed or
/// abandoned run of a slot is tried again, and how long to wait in between (`backoff` doubled
/// per attempt up to `maxBackoff`, each wait jittered by ±25 %). A cancelled run is not retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per slot, the first included: 1 means no retry.
    #[serde(default = "one")]
    pub max_attempts: u32,
    /// Wait before the first retry (`30s`, `5m`, `1h30m`, `250ms`); default 10 s.
    #[serde(default)]
    pub backoff: Option<String>,
    /// The longest wait between two attempts; default 5 min.
    #[serde(default)]
    pub max_backoff: Option<String>,
}

/// A cron expression with its fields one space apart, as it is stored and shown.
fn spaced_fields<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// An optional nested struct that only an object (or `null`) gives. Serde would also take a
/// struct from an array of its fields in order, so `"retry": [3]` would read as three attempts;
/// no client means that, and the error it earns names the field: `expected an object`.
fn optional_object<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOnly<T>(T);
    struct Fields<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Fields<T> {
        type Value = ObjectOnly<T>;
        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
        }
    }
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
        fn deserialize<D: serde::Deserializer<'de>>(
            deserializer: D,
        ) -> std::result::Result<Self, D::Error> {
            deserializer.deserialize_map(Fields(std::marker::PhantomData))
        }
    }
    Option::<ObjectOnly<T>>::deserialize(deserializer).map(|object| object.map(|ObjectOnly(t)| t))
}

fn one() -> u32 {
    1
}

fn default_timezone() -> String {
    "UTC".to_owned()
}

impl JobDeclaration {
    /// A declaration with every optional field at its default.
    pub fn new(job_key: impl Into<String>, schedule: impl Into<String>) -> Self {
        Self {
            job_key: job_key.into(),
            display_name: String::new(),
            description: String::new(),
            schedule: schedule.into(),
            timezone: default_timezone(),
            timeout_ms: None,
            misfire: MisfirePolicy::default(),
            pause_after_failures: None,
            retry: None,
            payload: None,
            overlap: OverlapPolicy::default(),
            jitter_ms: None,
            misfire_grace_ms: None,
        }
    }

    /// The declared auto-pause threshold as stored (validated to fit).
    pub fn pause_after(&self) -> Option<i32> {
        self.pause_after_failures
            .and_then(|failures| i32::try_from(failures).ok())
    }

    /// The retry policy as stored: attempts, backoff and longest backoff in milliseconds.
    pub fn stored_retry(&self) -> (i32, Option<i64>, Option<i64>) {
        let Some(retry) = &self.retry else {
            return (1, None, None);
        };
        let millis = |text: &Option<String>| {
            text.as_deref()
                .and_then(|text| parse_duration(text).ok())
                .and_then(|d| i64::try_from(d.as_millis()).ok())
        };
        (
            i32::try_from(retry.max_attempts).unwrap_or(1),
            millis(&retry.backoff),
            millis(&retry.max_backoff),
        )
    }
}

impl JobDeclaration {
    /// The declaration a stored job answers to: what a change through the API starts from.
    pub fn of_job(job: &entity::prelude::PluginJobModel) -> Self {
        let millis = |ms: Option<i64>| {
            ms.and_then(|ms| u64::try_from(ms).ok())
                .map(|ms| crate::config::format_duration(Duration::from_millis(ms)))
        };
        let retry = (job.retry_max_attempts > 1
            || job.retry_backoff_ms.is_some()
            || job.retry_max_backoff_ms.is_some())
        .then(|| RetryPolicy {
            max_attempts: u32::try_from(job.retry_max_attempts).unwrap_or(1),
            backoff: millis(job.retry_backoff_ms),
            max_backoff: millis(job.retry_max_backoff_ms),
        });
        let as_u64 = |ms: Option<i64>| ms.and_then(|ms| u64::try_from(ms).ok());
        Self {
            job_key: job.job_key.clone(),
            display_name: job.display_name.clone(),
            description: job.description.clone(),
            schedule: job.schedule.clone(),
            timezone: job.timezone.clone(),
            timeout_ms: job.timeout_ms,
            misfire: job.misfire,
            pause_after_failures: job
                .pause_after_failures
                .and_then(|failures| u32::try_from(failures).ok()),
            retry,
            payload: job.payload.clone(),
            overlap: job.overlap,
            jitter_ms: as_u64(job.jitter_ms),
            misfire_grace_ms: as_u64(job.misfire_grace_ms),
        }
    }

    /// This declaration changed by a JSON merge patch (RFC 7396: a member set to `null` goes
    /// back to its default; an object member such as `retry` is merged member by member). The
    /// result is checked like a manifest's job; every refusal names the field.
    pub fn patched(&self, patch: &serde_json::Value) -> std::result::Result<Self, String> {
        let serde_json::Value::Object(members) = patch else {
            return Err("the body must be a JSON object of the fields to change".to_owned());
        };
        if let Some(key) = members.get("jobKey")
            && key.as_str() != Some(self.job_key.as_str())
        {
            return Err(format!(
                "jobKey cannot be changed (the job is {:?}); create a new job instead",
                self.job_key
            ));
        }
        let mut value = serde_json::to_value(self).map_err(|err| err.to_string())?;
        merge_patch(&mut value, patch);
        let patched: Self = serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            format!("{path}: {}", err.inner())
        })?;
        check_jobs(std::slice::from_ref(&patched)).map_err(|err| err.replace("jobs[0].", ""))?;
        Ok(patched)
    }
}

/// RFC 7396 JSON merge patch of `target` by `patch`.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(fields) = target {
        for (name, value) in members {
            if value.is_null() {
                fields.remove(name);
            } else {
                merge_patch(
                    fields
                        .entry(name.clone())
                        .or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` attempts with the default backoff.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            backoff: None,
            max_backoff: None,
        }
    }

    /// The same policy with these waits.
    pub fn backoff(mut self, backoff: Duration, max_backoff: Duration) -> Self {
        self.backoff = Some(crate::config::format_duration(backoff));
        self.max_backoff = Some(crate::config::format_duration(max_backoff));
        self
    }

    fn check(&self, field: &str) -> std::result::Result<(), String> {
        if !(1..=MAX_ATTEMPTS).contains(&self.max_attempts) {
            return Err(format!(
                "{field}.maxAttempts must be between 1 and {MAX_ATTEMPTS} (got {})",
                self.max_attempts
            ));
        }
        let mut waits = [DEFAULT_BACKOFF, DEFAULT_MAX_BACKOFF];
        for (slot, (name, text)) in waits.iter_mut().zip([
            ("backoff", &self.backoff),
            ("maxBackoff", &self.max_backoff),
        ]) {
            let Some(text) = text else { continue };
            let wait = parse_duration(text).map_err(|err| format!("{field}.{name}: {err}"))?;
            if wait.is_zero() || wait > MAX_BACKOFF_LIMIT {
                return Err(format!(
                    "{field}.{name} must be more than 0 and at most 7d (got {text:?})"
                ));
            }
            *slot = wait;
        }
        let [backoff, max_backoff] = waits;
        if self.max_backoff.is_some() && max_backoff < backoff {
            return Err(format!(
                "{field}.maxBackoff ({}) must not be shorter than {field}.backoff ({})",
                crate::config::format_duration(max_backoff),
                crate::config::format_duration(backoff)
            ));
        }
        Ok(())
    }
}

/// Checks a plugin id and its declarations: non-empty, NUL-free keys of bounded length, each
/// declared once, positive timeouts, thresholds and retry policies in range. The first broken
/// rule is [`Error::InvalidInput`] naming the field (`jobs[2].retry.backoff`). Schedules and
/// timezones are not checked here: a bad one fails only its own job, with the reason stored.
pub fn validate(plugin_id: &str, jobs: &[JobDeclaration]) -> Result<()> {
    check_plugin_id(plugin_id).map_err(|err| Error::InvalidInput(format!("pluginId {err}")))?;
    check_jobs(jobs).map_err(Error::InvalidInput)
}

/// A plugin id's rules, wherever it comes from (a manifest also limits its characters). The
/// message completes "pluginId …" or "id …".
pub fn check_plugin_id(id: &str) -> std::result::Result<(), String> {
    if id.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if id.chars().any(char::is_control) {
        return Err("must not contain control characters (NUL, newline, ESC, …)".to_owned());
    }
    if id.trim() != id {
        return Err(format!("{id:?} must not start or end with whitespace"));
    }
    if let Some(hidden) = id.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "must not contain invisible or text-direction characters (U+{:04X})",
            u32::from(hidden)
        ));
    }
    if id.chars().all(|c| c == '.') {
        // `.` and `..` are path segments: the API's and the dashboard's URLs could not name it.
        return Err(format!("{id:?} is a path segment, not a name"));
    }
    if id.len() > MAX_PLUGIN_ID_LEN {
        return Err(format!("is longer than {MAX_PLUGIN_ID_LEN} bytes"));
    }
    Ok(())
}

/// Characters that show as nothing or turn the text around them: Unicode's default-ignorable
/// code points (zero-width spaces and joiners, soft hyphen, fillers, variation selectors, tags,
/// the byte-order mark, the bidirectional marks, overrides and isolates) and the line and
/// paragraph separators. In a name they make two different names look the same, or a table
/// print out of order. The ranges are Unicode 15's `Default_Ignorable_Code_Point`, listed here
/// rather than taken from a crate for one property.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// The rules of [`validate`] for the jobs alone; the message names the field, of every job that
/// breaks one (its first), separated by `; `, so a manifest is fixed in one pass.
pub fn check_jobs(jobs: &[JobDeclaration]) -> std::result::Result<(), String> {
    let mut seen = HashSet::new();
    let problems: Vec<String> = jobs
        .iter()
        .enumerate()
        .filter_map(|(index, job)| check_job(index, job, &mut seen).err())
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn check_job<'a>(
    index: usize,
    job: &'a JobDeclaration,
    seen: &mut HashSet<&'a str>,
) -> std::result::Result<(), String> {
    if job.job_key.trim().is_empty() {
        return Err(format!("jobs[{index}].jobKey must not be empty"));
    }
    if job.job_key.chars().any(char::is_control) {
        return Err(format!(
            "jobs[{index}].jobKey must not contain control characters (NUL, newline, ESC, …)"
        ));
    }
    if job.job_key.trim() != job.job_key {
        // `d6` and `d6 ` would be two jobs that every listing shows alike.
        return Err(format!(
            "jobs[{index}].jobKey {:?} must not start or end with whitespace",
            job.job_key
        ));
    }
    if let Some(hidden) = job.job_key.chars().find(|c| is_invisible(*c)) {
        return Err(format!(
            "jobs[{index}].jobKey must not contain invisible or text-direction characters \
             (U+{:04X})",
            u32::from(hidden)
        ));
    }
    for (name, text, allowed) in [
        ("displayName", &job.display_name, &[][..]),
        ("description", &job.description, &['\n', '\t'][..]),
    ] {
        if let Some(bad) = text
            .chars()
            .find(|c| c.is_control() && !allowed.contains(c))
        {
            return Err(format!(
                "jobs[{index}].{name} must not contain control characters (got U+{:04X})",
                u32::from(bad)
            ));
        }
    }
    if uuid::Uuid::parse_str(&job.job_key).is_ok() {
        // The API and the CLI take a job's id or its key in the same place, an id first.
        return Err(format!(
            "jobs[{index}].jobKey {:?} reads as a job id (a UUID): the API could not tell it \
             from one; choose a key that is not a UUID",
            job.job_key
        ));
    }
    if job.job_key.len() > MAX_JOB_KEY_LEN {
        return Err(format!(
            "jobs[{index}].jobKey is longer than {MAX_JOB_KEY_LEN} bytes (got {})",
            job.job_key.len()
        ));
    }
    for (name, text, max) in [
        ("schedule", &job.schedule, MAX_SCHEDULE_LEN),
        ("displayName", &job.display_name, MAX_DISPLAY_NAME_LEN),
        ("description", &job.description, MAX_DESCRIPTION_LEN),
    ] {
        if text.len() > max {
            return Err(format!(
                "jobs[{index}].{name} is longer than {max} bytes (got {})",
                text.len()
            ));
        }
    }
    if !seen.insert(job.job_key.as_str()) {
        return Err(format!(
            "jobs[{index}].jobKey {:?} is declared twice",
            job.job_key
        ));
    }
    if let Some(timeout) = job.timeout_ms
        && !(1..=MAX_TIMEOUT_MS).contains(&timeout)
    {
        return Err(format!(
            "jobs[{index}].timeoutMs must be between 1 and {MAX_TIMEOUT_MS} (100 years, the \
             longest duration any setting takes; got {timeout})"
        ));
    }
    if let Some(failures) = job.pause_after_failures
        && (failures == 0 || i32::try_from(failures).is_err())
    {
        return Err(format!(
            "jobs[{index}].pauseAfterFailures must be between 1 and {} (got {failures})",
            i32::MAX
        ));
    }
    if let Some(retry) = &job.retry {
        retry.check(&format!("jobs[{index}].retry"))?;
    }
    if let Some(payload) = &job.payload {
        check_payload(payload).map_err(|err| format!("jobs[{index}].payload {err}"))?;
    }
    for (name, value) in [
        ("jitterMs", job.jitter_ms),
        ("misfireGraceMs", job.misfire_grace_ms),
    ] {
        if let Some(ms) = value
            && ms > MAX_JOB_WINDOW_MS
        {
            return Err(format!(
                "jobs[{index}].{name} must be at most {MAX_JOB_WINDOW_MS} (a day; got {ms})"
            ));
        }
    }
    Ok(())
}

/// A payload's rules: at most [`MAX_PAYLOAD_BYTES`] as JSON text, and every number kept as it
/// was written. The message completes "payload …".
pub fn check_payload(payload: &serde_json::Value) -> std::result::Result<(), String> {
    let size = payload.to_string().len();
    if size > MAX_PAYLOAD_BYTES {
        return Err(format!(
            "is {size} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES} (16 KiB)"
        ));
    }
    Ok(())
}

/// The first integer in a JSON text that no 64-bit integer holds (`123456789012345678901234`):
/// serde_json reads it as a float, so it would be stored and sent rounded
/// (`1.2345678901234568e23`). A body or a manifest that holds one is refused instead; a number
/// written with a fraction or an exponent is a float as written and is left alone. Written by
/// hand because serde_json only keeps such numbers exact with a crate-wide feature
/// (`arbitrary_precision`) that every other use of it would pay for.
pub fn check_integers(text: &[u8]) -> std::result::Result<(), String> {
    let mut index = 0;
    let mut in_string = false;
    while index < text.len() {
        let byte = text[index];
        if in_string {
            match byte {
                b'\\' => index += 1,
                b'"' => in_string = false,
                _ => {}
            }
            index += 1;
            continue;
        }
        if byte == b'"' {
            in_string = true;
            index += 1;
            continue;
        }
        if byte == b'-' || byte.is_ascii_digit() {
            let end = text[index..]
                .iter()
                .position(|b| !(b.is_ascii_digit() || b"-+.eE".contains(b)))
                .map_or(text.len(), |length| index + length);
            let token = String::from_utf8_lossy(&text[index..end]);
            let integer = !token.contains(['.', 'e', 'E']);
            if integer && token.parse::<i64>().is_err() && token.parse::<u64>().is_err() {
                let shown: String = token.chars().take(40).collect();
                return Err(format!(
                    "holds the integer {shown}, past what a number keeps exactly here (64 bits): \
                     it would be stored and sent rounded; send it as a string"
                ));
            }
            index = end;
            continue;
        }
        index += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_retry(retry: RetryPolicy) -> Vec<JobDeclaration> {
        let mut job = JobDeclaration::new("sync", "* * * * *");
        job.retry = Some(retry);
        vec![job]
    }

    fn rejection(jobs: &[JobDeclaration]) -> String {
        validate("demo", jobs).expect_err("rejected").to_string()
    }

    #[test]
    fn a_retry_policy_in_range_is_stored_in_milliseconds() {
        let jobs = with_retry(
            RetryPolicy::attempts(3).backoff(Duration::from_secs(10), Duration::from_secs(300)),
        );
        validate("demo", &jobs).expect("valid");
        assert_eq!(jobs[0].stored_retry(), (3, Some(10_000), Some(300_000)));
        assert_eq!(JobDeclaration::new("a", "").stored_retry(), (1, None, None));
    }

    #[test]
    fn each_bad_retry_policy_names_its_field() {
        let cases = [
            (RetryPolicy::attempts(0), "jobs[0].retry.maxAttempts"),
            (RetryPolicy::attempts(101), "jobs[0].retry.maxAttempts"),
            (
                RetryPolicy {
                    backoff: Some("soon".to_owned()),
                    ..RetryPolicy::attempts(3)
                },
                "jobs[0].retry.backoff",
            ),
            (
                RetryPolicy {
                    backoff: Some("0s".to_owned()),
                    ..RetryPolicy::attempts(3)
                },
                "jobs[0].retry.backoff",
            ),
            (
                RetryPolicy {
                    max_backoff: Some("30d".to_owned()),
                    ..RetryPolicy::attempts(3)
                },
                "jobs[0].retry.maxBackoff",
            ),
            (
                RetryPolicy::attempts(3).backoff(Duration::from_secs(60), Duration::from_secs(5)),
                "jobs[0].retry.maxBackoff",
            ),
        ];
        for (policy, field) in cases {
            let message = rejection(&with_retry(policy.clone()));
            assert!(message.contains(field), "{policy:?}: {message}");
        }
    }

    #[test]
    fn a_manifest_retry_reads_from_camel_case_json() {
        let job: JobDeclaration = serde_json::from_str(
            r#"{"jobKey":"a","retry":{"maxAttempts":3,"backoff":"10s","maxBackoff":"5m"}}"#,
        )
        .expect("parses");
        assert_eq!(
            job.retry,
            Some(RetryPolicy {
                max_attempts: 3,
                backoff: Some("10s".to_owned()),
                max_backoff: Some("5m".to_owned()),
            })
        );
        let unknown =
            serde_json::from_str::<JobDeclaration>(r#"{"jobKey":"a","retry":{"maxAttempt":3}}"#)
                .expect_err("unknown field");
        assert!(unknown.to_string().contains("maxAttempt"), "{unknown}");
        let positional =
            serde_json::from_str::<JobDeclaration>(r#"{"jobKey":"a","retry":[3, "1s"]}"#)
                .expect_err("an array is not a policy");
        assert!(
            positional.to_string().contains("expected an object"),
            "{positional}"
        );
        let none = serde_json::from_str::<JobDeclaration>(r#"{"jobKey":"a","retry":null}"#)
            .expect("null is no retry");
        assert_eq!(none.retry, None);
    }

    #[test]
    fn an_integer_past_64_bits_is_refused_not_rounded() {
        let err = check_integers(
            br#"{"note": "123456789012345678901234", "ids": [1, 123456789012345678901234]}"#,
        )
        .expect_err("rounded");
        assert!(
            err.starts_with("holds the integer 123456789012345678901234, past"),
            "{err}"
        );
        let fine = br#"{"max": 18446744073709551615, "min": -9223372036854775808, "x": 0.5,
            "big": 1.5e300, "s": "\"99999999999999999999999\""}"#;
        assert_eq!(check_integers(fine), Ok(()));
    }

    #[test]
    fn names_that_urls_or_terminals_cannot_carry_are_refused() {
        for (id, why) in [
            ("", "must not be empty"),
            (".", "is a path segment"),
            ("..", "is a path segment"),
            ("a\u{1b}[2Jb", "control characters"),
        ] {
            let err = check_plugin_id(id).expect_err(id);
            assert!(err.contains(why), "{id:?}: {err}");
        }
        let long = "p".repeat(MAX_PLUGIN_ID_LEN + 1);
        assert!(check_plugin_id(&long).is_err());
        assert!(check_plugin_id("billing.v2").is_ok());

        let job = |key: &str| JobDeclaration::new(key, "");
        for (key, why) in [
            ("d6 ", "must not start or end with whitespace"),
            (
                "\u{e9}\u{200b}",
                "invisible or text-direction characters (U+200B)",
            ),
            ("a\u{202e}b", "(U+202E)"),
            ("y\u{61c}", "(U+061C)"),
            ("z\u{ad}", "(U+00AD)"),
            ("\u{3164}", "(U+3164)"),
            ("t\u{e0001}", "(U+E0001)"),
        ] {
            let err = check_jobs(&[job(key)]).expect_err(key);
            assert!(err.contains(why), "{key:?}: {err}");
        }
        let mut named = job("n");
        named.display_name = "\u{7}bell".to_owned();
        let err = check_jobs(&[named]).expect_err("a bell");
        assert!(
            err.contains("displayName must not contain control characters (got U+0007)"),
            "{err}"
        );
        let mut described = job("n");
        described.description = "two\nlines\tand a tab".to_owned();
        assert_eq!(check_jobs(&[described]), Ok(()));
        assert!(check_plugin_id(" billing").is_err());
        let err = check_jobs(&[job("line\nbreak")]).expect_err("newline");
        assert!(
            err.contains("jobs[0].jobKey must not contain control"),
            "{err}"
        );
        let mut described = job("d");
        described.description = "d".repeat(MAX_DESCRIPTION_LEN + 1);
        let err = check_jobs(&[described]).expect_err("long description");
        assert!(
            err.starts_with("jobs[0].description is longer than 4096 bytes"),
            "{err}"
        );
        let mut named = job("n");
        named.display_name = "n".repeat(MAX_DISPLAY_NAME_LEN + 1);
        let err = check_jobs(&[named]).expect_err("long name");
        assert!(
            err.starts_with("jobs[0].displayName is longer than 200"),
            "{err}"
        );
    }
}
