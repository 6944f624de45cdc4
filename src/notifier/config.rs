//! What the notifier sends and where: the webhook event types ([`NotificationEvent`], with their
//! wire names and the default set) and the delivery settings ([`NotifierConfig`]: destinations,
//! secret, timings, outbox bound), with the backoff and lease they imply. Plain data; no actix.

use std::str::FromStr;
use std::time::Duration;

use crate::{Error, Result};

/// The events a webhook can be sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationEvent {
    RunFailed,
    RunSucceeded,
    JobPaused,
    JobRecovered,
    SlotMissed,
    WorkerFailed,
}

impl NotificationEvent {
    /// Every event type.
    pub const ALL: [NotificationEvent; 6] = [
        Self::RunFailed,
        Self::RunSucceeded,
        Self::JobPaused,
        Self::JobRecovered,
        Self::SlotMissed,
        Self::WorkerFailed,
    ];
    /// The events sent when none are chosen: everything but `run.succeeded`.
    pub const DEFAULT: [NotificationEvent; 5] = [
        Self::RunFailed,
        Self::JobPaused,
        Self::WorkerFailed,
        Self::SlotMissed,
        Self::JobRecovered,
    ];
    /// [`Self::DEFAULT`] as the server's flag takes it, separated by commas (checked by a test).
    pub const DEFAULT_LIST: &'static str =
        "run.failed,job.paused,worker.failed,slot.missed,job.recovered";

    /// The event's name on the wire (`run.failed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RunFailed => "run.failed",
            Self::RunSucceeded => "run.succeeded",
            Self::JobPaused => "job.paused",
            Self::JobRecovered => "job.recovered",
            Self::SlotMissed => "slot.missed",
            Self::WorkerFailed => "worker.failed",
        }
    }
}

impl std::fmt::Display for NotificationEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NotificationEvent {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|event| event.as_str() == text.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|event| event.as_str()).collect();
                let hint = if text.trim().contains(char::is_whitespace) {
                    " (separate events with commas: run.failed,run.succeeded)"
                } else {
                    ""
                };
                Error::InvalidInput(format!(
                    "unknown webhook event {text:?}{hint}; known events: {}",
                    known.join(", ")
                ))
            })
    }
}

/// Where and how webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Every event goes to each of these (`http://` or `https://`).
    pub urls: Vec<String>,
    /// Signs every delivery when set (see [`signature`]).
    pub secret: Option<String>,
    pub events: Vec<NotificationEvent>,
    /// How often due deliveries are looked for (and worker states checked).
    pub poll_interval: Duration,
    /// How long one POST may take.
    pub request_timeout: Duration,
    /// Wait before the first retry; doubled each attempt up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// A delivery still failing this long after its event is given up (logged and counted).
    pub give_up_after: Duration,
    /// Most deliveries the outbox holds; events beyond are dropped (logged and counted).
    pub max_outbox: u64,
    /// Most deliveries one pass claims.
    pub batch: u64,
}

impl NotifierConfig {
    /// Delivery to `urls` of the default events, unsigned, with the default timings.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            secret: None,
            events: NotificationEvent::DEFAULT.to_vec(),
            poll_interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            give_up_after: Duration::from_secs(24 * 3600),
            max_outbox: 10_000,
            batch: 50,
        }
    }

    /// Refuses a destination that is not an absolute `http(s)://` URL, naming it.
    pub fn validate(&self) -> Result<()> {
        for url in &self.urls {
            let parsed: awc::http::Uri = url
                .parse()
                .map_err(|err| Error::InvalidInput(format!("webhook url {url:?}: {err}")))?;
            if !matches!(parsed.scheme_str(), Some("http" | "https")) || parsed.host().is_none() {
                return Err(Error::InvalidInput(format!(
                    "webhook url {url:?} must be an absolute http:// or https:// URL"
                )));
            }
        }
        Ok(())
    }

    /// How long after `attempts` failed attempts the next one is made.
    pub(super) fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
        self.first_backoff
            .saturating_mul(2_u32.saturating_pow(doublings))
            .min(self.max_backoff)
    }

    /// The lease of a claimed delivery: long enough for the POST and the write of its result.
    pub(super) fn lease(&self) -> Duration {
        self.request_timeout * 2 + Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use super::NotificationEvent;

    #[test]
    fn the_flags_default_list_holds_the_default_events() {
        let parsed: Vec<NotificationEvent> = NotificationEvent::DEFAULT_LIST
            .split(',')
            .map(|event| event.parse().expect("a known event"))
            .collect();
        assert_eq!(parsed, NotificationEvent::DEFAULT);
    }

    #[test]
    fn events_separated_by_spaces_are_refused_with_a_hint() {
        let err = "run.failed run.succeeded"
            .parse::<NotificationEvent>()
            .expect_err("one unknown event");
        assert!(
            err.to_string().contains("separate events with commas"),
            "{err}"
        );
    }
}
