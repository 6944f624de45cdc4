//! One webhook POST: the HTTP client's TLS (rustls, Mozilla roots) and the delivery of one outbox
//! row with its headers and signature, answering what the store should record (delivered, retry
//! after the backoff, or given up). No actix: the `NotifierActor` runs these as futures.

use std::sync::Arc;

use entity::prelude::NotificationModel;

use super::config::NotifierConfig;
use super::payload::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature};
use crate::clock::Clock;
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

/// The URL as logs show it: scheme, host and port, and the first segment of the path. The
/// rest of a webhook URL (`/services/T0/B0/<token>`) and its query often carry a token of the
/// receiver's, as does a user-info part.
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<webhook URL>".to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    match (segments.next(), segments.next()) {
        (None, _) => format!("{scheme}://{host}/"),
        (Some(first), None) if !url.contains('?') => format!("{scheme}://{host}/{first}"),
        (Some(first), _) => format!("{scheme}://{host}/{first}/…"),
    }
}

/// A URL's user-info (`https://user:secret@host/hook`) as Basic credentials (percent-decoded),
/// and the URL without it: awc would send neither, and a receiver behind Basic auth would answer
/// every delivery 401 for as long as it is retried.
fn split_credentials(url: &str) -> (String, Option<(String, String)>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_owned(), None);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some((userinfo, host)) = rest[..authority_end].rsplit_once('@') else {
        return (url.to_owned(), None);
    };
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let stripped = format!("{}{host}{}", &url[..scheme_end + 3], &rest[authority_end..]);
    (stripped, Some((decode(user), decode(password))))
}

/// Why a POST got no answer, in an operator's words. awc reports a receiver that read the
/// request and closed the connection without answering as a connect error ("connector has been
/// disconnected"), which sends people looking for a network fault when the receiver may in fact
/// be processing the delivery (which is then posted again).
fn unanswered(err: &awc::error::SendRequestError) -> String {
    use awc::error::{ConnectError, SendRequestError};
    match err {
        SendRequestError::Connect(ConnectError::Disconnected) => format!(
            "the connection ended without an answer ({err}); the receiver may have taken the \
             request"
        ),
        SendRequestError::Timeout => {
            "no answer within the request timeout; the receiver may have taken the request"
                .to_owned()
        }
        _ => err.to_string(),
    }
}

/// One POST of one outbox row. Answers what to record for it.
pub(super) async fn deliver(
    client: awc::Client,
    row: NotificationModel,
    config: Arc<NotifierConfig>,
    clock: Arc<dyn Clock>,
) -> (NotificationModel, DeliveryResult, Option<String>) {
    let now = clock.now();
    let sent = async {
        let (url, credentials) = split_credentials(&row.url);
        let mut request = client
            .post(&url)
            .timeout(config.request_timeout)
            .insert_header(("Content-Type", "application/json"))
            .insert_header((
                "User-Agent",
                concat!("plugin-jobs/", env!("CARGO_PKG_VERSION")),
            ))
            .insert_header((EVENT_HEADER, row.event_type.clone()))
            .insert_header((DELIVERY_HEADER, row.event_id.to_string()));
        if let Some((user, password)) = credentials {
            request = request.basic_auth(user, password);
        }
        if let Some(secret) = &config.secret {
            let timestamp = now.timestamp();
            let v1 = signature(secret, timestamp, &row.body).map_err(|err| err.to_string())?;
            request = request.insert_header((SIGNATURE_HEADER, format!("t={timestamp},v1={v1}")));
        }
        let response = request
            .send_body(row.body.clone())
            .await
            .map_err(|err| unanswered(&err))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!(
                "the receiver answered {status}; redirects are not followed (configure the URL it \
                 points to)"
            ))
        } else {
            Err(format!("the receiver answered {status}"))
        }
    };
    match sent.await {
        Ok(()) => (row, DeliveryResult::Delivered, None),
        Err(error) => {
            // From the answer, not the claim: the POST may have taken its whole timeout.
            let at = clock.now() + delta(config.backoff(row.attempts));
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

#[cfg(test)]
mod tests {
    use super::{redact, split_credentials};

    #[test]
    fn a_urls_user_info_becomes_basic_credentials() {
        assert_eq!(
            split_credentials("https://user:p%40ss@hooks.example.com:8443/in?x=a@b"),
            (
                "https://hooks.example.com:8443/in?x=a@b".to_owned(),
                Some(("user".to_owned(), "p@ss".to_owned()))
            )
        );
        assert_eq!(
            split_credentials("http://127.0.0.1:9000/hook"),
            ("http://127.0.0.1:9000/hook".to_owned(), None)
        );
        assert_eq!(
            split_credentials("http://token@example.com"),
            (
                "http://example.com".to_owned(),
                Some(("token".to_owned(), String::new()))
            )
        );
    }

    #[test]
    fn logged_urls_keep_their_host_and_leave_tokens_out() {
        for (url, shown) in [
            (
                "https://hooks.slack.com/services/T0/B0/SECRET",
                "https://hooks.slack.com/services/…",
            ),
            ("http://127.0.0.1:9000/hook", "http://127.0.0.1:9000/hook"),
            ("http://user:pass@example.com/", "http://example.com/"),
            (
                "https://example.com/hook?token=abc",
                "https://example.com/hook/…",
            ),
            ("https://example.com", "https://example.com/"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
        }
    }
}
