//! Who may call the API. With a token: whoever carries it. Without one the server listens on
//! loopback only, and the danger is a web page in the operator's own browser, so requests are
//! refused (403) that a browser makes on behalf of another site:
//!
//! - a `Host` that is not this server's loopback name (`localhost`, `127.0.0.1`, `[::1]` or the
//!   bound address, with the bound port), or one of [`ApiOptions::allowed_hosts`]: DNS rebinding,
//!   where a foreign name resolves to 127.0.0.1 so that its page can read the answers;
//! - a request other than GET/HEAD whose `Origin` is not the server's own;
//! - a request other than GET/HEAD from a browser (it sends `Origin`, `Referer` or `Sec-Fetch-*`)
//!   with a form's content type (`application/x-www-form-urlencoded`, `multipart/form-data`,
//!   `text/plain`): what an HTML form on any page can post without asking.
//!
//! No CORS header is ever sent, so no other origin can read an answer either. The dashboard
//! calls the API from its own origin, with no body on its POSTs, and passes every check.

use std::rc::Rc;

use actix_web::HttpRequest;
use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;

use super::ApiError;

/// How the API is exposed (see [`super::configure_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiOptions {
    /// Bearer token every `/api` and `/metrics` request must carry. Without one, the browser
    /// checks of this module apply instead.
    pub token: Option<String>,
    /// Further `Host` values (`name` or `name:port`, compared without case) accepted without a
    /// token, for an application reached through a local reverse proxy under another name.
    pub allowed_hosts: Vec<String>,
}

/// Whether `token` can be an API token: one an `Authorization` header carries unchanged, so
/// printable ASCII (spaces inside allowed) with no whitespace at either end (HTTP drops it).
/// The server checks `--api-token` with it and the command-line client `--token`.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.trim().is_empty() {
        return Err("it is empty or only whitespace".to_owned());
    }
    if token.trim() != token {
        return Err(
            "it starts or ends with whitespace (a newline, say), which HTTP drops from the \
             Authorization header, so no request could carry it"
                .to_owned(),
        );
    }
    if let Some(bad) = token.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(format!(
            "it contains {bad:?}: an Authorization header carries printable ASCII only"
        ));
    }
    Ok(())
}

/// The checks one mounted API applies, built once from [`ApiOptions`].
#[derive(Debug)]
pub(super) enum Access {
    /// Requests must carry this bearer token. An empty token matches no request (bearer
    /// credentials are never empty): a blank setting locks the API rather than opening it.
    Token(Rc<[u8]>),
    /// No token: only requests a foreign page could not have made.
    Local { allowed_hosts: Vec<String> },
}

impl Access {
    pub(super) fn new(options: ApiOptions) -> Self {
        match options.token {
            Some(token) => Self::Token(Rc::from(token.into_bytes())),
            None => Self::Local {
                allowed_hosts: options
                    .allowed_hosts
                    .into_iter()
                    .map(|host| host.to_ascii_lowercase())
                    .collect(),
            },
        }
    }
}

/// Lets a request through when it carries the token (with one configured), or when it passes
/// the browser checks (without); answers 401 or 403 otherwise.
pub(super) async fn guard(
    access: Rc<Access>,
    token_needed: bool,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<EitherBody<BoxBody>>, actix_web::Error> {
    let refusal = match access.as_ref() {
        Access::Token(token) if token_needed => (!super::bearer_token(req.request())
            .is_some_and(|given| super::constant_time_eq(token, given)))
        .then(ApiError::unauthorized),
        Access::Token(_) => None,
        Access::Local { allowed_hosts } => browser_refusal(req.request(), allowed_hosts)
            .map(|why| ApiError::new(StatusCode::FORBIDDEN, why)),
    }
    .or_else(|| path_refusal(req.path()).map(ApiError::bad_request));
    match refusal {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(error) => {
            if error.status == StatusCode::FORBIDDEN {
                log::warn!("refused {} {}: {}", req.method(), req.path(), error.message);
            }
            Ok(req.into_response(error.to_response()).map_into_right_body())
        }
    }
}

/// Why a path is refused before routing: a `%`-escape that decodes to bytes that are not UTF-8.
/// The router decodes such bytes lossily, to U+FFFD, so `/jobs/%ff` would name (and act on) a
/// job whose key holds a real U+FFFD.
fn path_refusal(path: &str) -> Option<String> {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .is_err()
        .then(|| {
            format!("invalid path {path}: a %-escape in it decodes to bytes that are not UTF-8")
        })
}

/// Why a request without a token is refused, or `None` when it may pass.
pub(super) fn browser_refusal(req: &HttpRequest, allowed_hosts: &[String]) -> Option<String> {
    let host = match req.headers().get(header::HOST).map(|h| h.to_str()) {
        // HTTP/1.0 clients may send none; browsers always do.
        None => None,
        Some(Ok(host)) => Some(host.trim().to_ascii_lowercase()),
        Some(Err(_)) => return Some("the Host header is not text".to_owned()),
    };
    if let Some(host) = &host
        && !host_is_local(host, req, allowed_hosts)
    {
        return Some(format!(
            "Host {host:?} is not this server's loopback address; without an API token only \
             localhost, 127.0.0.1 and [::1] with the server's port are answered (a foreign name \
             resolving to this machine is a DNS-rebinding attack)"
        ));
    }
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let headers = req.headers();
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").trim().to_ascii_lowercase();
        let own = host.as_deref().is_some_and(|host| {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        });
        if !own {
            return Some(format!(
                "Origin {origin:?} is not this server's own; without an API token other sites \
                 may not send {} requests",
                req.method()
            ));
        }
    }
    let from_browser = [
        header::ORIGIN,
        header::REFERER,
        header::HeaderName::from_static("sec-fetch-mode"),
        header::HeaderName::from_static("sec-fetch-site"),
    ]
    .iter()
    .any(|name| headers.contains_key(name));
    if from_browser && let Some(kind) = form_content_type(req) {
        return Some(format!(
            "content type {kind} is what any web page's form can send; send the body as \
             application/json, or none"
        ));
    }
    None
}

/// The content type, when it is one an HTML form can send without the page asking first.
fn form_content_type(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?;
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "text/plain",
    ]
    .contains(&essence.as_str())
    .then_some(essence)
}

/// True when `host` (`name` or `name:port`, lower case) names this server on loopback.
fn host_is_local(host: &str, req: &HttpRequest, allowed_hosts: &[String]) -> bool {
    if allowed_hosts.iter().any(|allowed| allowed == host) {
        return true;
    }
    let bound = req.app_config().local_addr();
    let (name, port) = split_host(host);
    let port_matches = match port {
        Some(port) => port.parse::<u16>().ok() == Some(bound.port()),
        None => bound.port() == 80,
    };
    let bound_name = match bound.ip() {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let name_matches = ["localhost", "127.0.0.1", "[::1]"].contains(&name)
        || (bound.ip().is_loopback() && name == bound_name);
    port_matches && name_matches
}

/// `name:port` into its parts; an IPv6 name keeps its brackets.
fn split_host(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => {
                let (name, rest) = host.split_at(end + 1);
                (name, rest.strip_prefix(':'))
            }
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_host("localhost:8080"), ("localhost", Some("8080")));
        assert_eq!(split_host("localhost"), ("localhost", None));
        assert_eq!(split_host("[::1]:8080"), ("[::1]", Some("8080")));
        assert_eq!(split_host("[::1]"), ("[::1]", None));
    }

    #[test]
    fn a_token_is_what_a_header_carries_unchanged() {
        assert_eq!(check_token("s3cret with-a space"), Ok(()));
        for (bad, why) in [
            ("   ", "only whitespace"),
            ("s3cret\n", "ends with whitespace"),
            ("a\u{1}b", "printable ASCII"),
            ("café", "printable ASCII"),
        ] {
            let err = check_token(bad).expect_err(bad);
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
