//! One webhook POST: the HTTP client's TLS (rustls, Mozilla roots) and the delivery of one outbox
//! row with its headers and signature, answering what the store should record (delivered, retry
//! after the backoff, or given up). No actix: the `NotifierActor` runs these as futures.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::prelude::NotificationModel;

use super::config::NotifierConfig;
use super::payload::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature};
use crate::store::DeliveryResult;
use crate::time::delta;

/// TLS for `https://` destinations: rustls with the `ring` provider and the Mozilla roots.
pub(super) fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder.with_root_certificates(roots).with_no_client_auth(),
        Err(err) => {
            // The ring provider supports the default versions; this is a build mistake.
            log::error!("webhook TLS: {err}; falling back to rustls' defaults");
            rustls::ClientConfig::builder()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    };
    Arc::new(config)
}

/// One POST of one outbox row. Answers what to record for it.
pub(super) async fn deliver(
    client: awc::Client,
    row: NotificationModel,
    config: Arc<NotifierConfig>,
    now: DateTime<Utc>,
) -> (NotificationModel, DeliveryResult, Option<String>) {
    let sent = async {
        let mut request = client
            .post(&row.url)
            .timeout(config.request_timeout)
            .insert_header(("Content-Type", "application/json"))
            .insert_header((
                "User-Agent",
                concat!("plugin-jobs/", env!("CARGO_PKG_VERSION")),
            ))
            .insert_header((EVENT_HEADER, row.event_type.clone()))
            .insert_header((DELIVERY_HEADER, row.event_id.to_string()));
        if let Some(secret) = &config.secret {
            let timestamp = now.timestamp();
            let v1 = signature(secret, timestamp, &row.body).map_err(|err| err.to_string())?;
            request = request.insert_header((SIGNATURE_HEADER, format!("t={timestamp},v1={v1}")));
        }
        let response = request
            .send_body(row.body.clone())
            .await
            .map_err(|err| err.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {}", response.status()))
        }
    };
    match sent.await {
        Ok(()) => (row, DeliveryResult::Delivered, None),
        Err(error) => {
            let at = now + delta(config.backoff(row.attempts));
            let deadline = row.created_at + delta(config.give_up_after);
            let result = if at > deadline {
                DeliveryResult::GiveUp
            } else {
                DeliveryResult::Retry {
                    at,
                    error: error.clone(),
                }
            };
            (row, result, Some(error))
        }
    }
}
