//! What a webhook carries: the JSON body ([`NotificationPayload`], built from a run event), the
//! headers that go with it, and the HMAC-SHA256 [`signature`] a receiver checks. Pure; no actix.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use uuid::Uuid;

use super::config::NotificationEvent;
use crate::time::iso;
use crate::{Error, Result};

/// The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Plugin-Jobs-Signature";
/// The header carrying the event type.
pub const EVENT_HEADER: &str = "X-Plugin-Jobs-Event";
/// The header carrying the event id (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Plugin-Jobs-Delivery";

/// The JSON body of every webhook. Fields that do not apply to an event are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPayload {
    /// The event id: the same on every retry and every destination.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event happened (ISO 8601, UTC, milliseconds).
    pub time: String,
    /// The instance that saw it.
    pub instance: String,
    pub plugin: String,
    pub job: Option<String>,
    pub job_id: Option<Uuid>,
    pub run: Option<Uuid>,
    /// The run's attempt: 1 for the first run of a slot, 2 for its first retry, …
    pub attempt: Option<u32>,
    pub error: Option<String>,
    /// API path of the run (or of the job, or of the plugins for a worker event).
    pub link: String,
    /// `run.*`: the run's status; `slot.missed`: `overlap` or `misfire`; `worker.failed`: the
    /// worker's state.
    pub status: Option<String>,
    /// `job.paused`: the pause reason; `slot.missed` of several slots at once: how many, from
    /// `slot` on ("3 slots from … passed").
    pub reason: Option<String>,
    /// `job.paused` and `job.recovered`: consecutive failures before the event.
    pub failures: Option<i32>,
    /// `slot.missed`: the (first) slot that passed without a run.
    pub slot: Option<String>,
}

impl NotificationPayload {
    pub(super) fn new(
        event: NotificationEvent,
        time: DateTime<Utc>,
        instance: &str,
        plugin: &str,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            event_type: event.as_str().to_owned(),
            time: iso(time),
            instance: instance.to_owned(),
            plugin: plugin.to_owned(),
            job: None,
            job_id: None,
            run: None,
            attempt: None,
            error: None,
            link: "/api/plugins".to_owned(),
            status: None,
            reason: None,
            failures: None,
            slot: None,
        }
    }

    pub(super) fn with_job(mut self, job_id: Uuid, job_key: Option<String>) -> Self {
        self.link = format!(
            "/api/plugins/{}/jobs/{job_id}",
            percent_encoding::utf8_percent_encode(&self.plugin, percent_encoding::NON_ALPHANUMERIC)
        );
        self.job = job_key;
        self.job_id = Some(job_id);
        self
    }

    pub(super) fn with_run(mut self, run_id: Uuid) -> Self {
        self.link = format!("/api/runs/{run_id}");
        self.run = Some(run_id);
        self.attempt = Some(1);
        self
    }
}

/// The `v1` signature of a delivery: hex HMAC-SHA256 with `secret` over `"{timestamp}.{body}"`.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> Result<String> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .map_err(|err| Error::InvalidInput(format!("webhook secret: {err}")))?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}
