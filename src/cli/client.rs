//! `ApiClient`: the HTTP API of a running server, reached with `awc` inside an actix System.
//! Each call answers the JSON body, or a [`ClientError`] whose [`exit_code`](ClientError::exit_code)
//! follows the HTTP status (404 → 3, 409 → 4, 401 → 5, unreachable → 6, any other error → 1).

use std::fmt;
use std::time::Duration;

use awc::http::{Method, StatusCode, Uri};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read: 500 runs with full logs fit well within it.
const MAX_BODY: usize = 256 * 1024 * 1024;

/// Exit code of a 404 answer.
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code of a 409 answer.
pub const EXIT_CONFLICT: u8 = 4;
/// Exit code of a 401 answer.
pub const EXIT_UNAUTHORIZED: u8 = 5;
/// Exit code when the server cannot be reached or does not answer in time.
pub const EXIT_UNREACHABLE: u8 = 6;
/// Exit code of any other error answer, or an answer that is not what the API sends.
pub const EXIT_OTHER: u8 = 1;

/// Characters left as they are in a path segment: the unreserved ones of RFC 3986.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A path segment with everything but unreserved characters percent-encoded.
pub fn segment(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// The server's base URL: `http://host:port`, possibly with a path prefix (an application that
/// mounts the API under `/jobs`), never with a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Checks `text` for the command line: an `http://` URL with a host, no query.
    pub fn parse(text: &str) -> Result<Self, String> {
        let uri: Uri = text
            .trim()
            .parse()
            .map_err(|err| format!("{text:?} is not a URL: {err}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "{text:?}: https is not supported by this client; reach the server over \
                     http (it listens on loopback by default), e.g. through an SSH tunnel"
                ));
            }
            _ => return Err(format!("{text:?}: expected http://host:port")),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(format!("{text:?}: the URL names no host"));
        }
        if uri.query().is_some() {
            return Err(format!("{text:?}: the base URL takes no query string"));
        }
        if text.contains('#') {
            return Err(format!("{text:?}: the base URL takes no fragment (#…)"));
        }
        // `Uri` parses any digits after the colon and then reports no port at all.
        if let Some((_, port)) = uri
            .authority()
            .and_then(|authority| authority.as_str().rsplit_once(':'))
            .filter(|(host, _)| host.ends_with(']') || !host.contains('['))
            && !port.parse::<u16>().is_ok_and(|port| port > 0)
        {
            return Err(format!(
                "{text:?}: port {port} is out of range (1 to 65535)"
            ));
        }
        Ok(Self(text.trim().trim_end_matches('/').to_owned()))
    }

    /// The URL of `path`, which starts with `/`.
    fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `message` is its `{"error"}` text.
    #[error("{message} (HTTP {status}){hint}", hint = hint(*status, *token_sent))]
    Api {
        status: StatusCode,
        message: String,
        /// Whether the request carried a token (a 401 then means it was refused).
        token_sent: bool,
    },
    /// No answer: nothing listens there, the host is unknown, or the answer took too long.
    #[error(
        "cannot reach the server at {url}: {reason} (is `plugin-jobs serve` running there? \
         Set --url or PLUGIN_JOBS_URL)"
    )]
    Unreachable { url: BaseUrl, reason: String },
    /// An answer that the API does not send (not JSON, or not the expected shape).
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer { url: String, reason: String },
}

fn hint(status: StatusCode, token_sent: bool) -> &'static str {
    match (status, token_sent) {
        (StatusCode::UNAUTHORIZED, false) => "; pass --token or set PLUGIN_JOBS_API_TOKEN",
        (StatusCode::UNAUTHORIZED, true) => {
            "; the server refused the token given (--token or PLUGIN_JOBS_API_TOKEN)"
        }
        _ => "",
    }
}

impl ClientError {
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Api { status, .. } => match status.as_u16() {
                404 => EXIT_NOT_FOUND,
                409 => EXIT_CONFLICT,
                401 => EXIT_UNAUTHORIZED,
                _ => EXIT_OTHER,
            },
            Self::Unreachable { .. } => EXIT_UNREACHABLE,
            Self::BadAnswer { .. } => EXIT_OTHER,
        }
    }

    /// An answer whose JSON does not have the shape the API documents.
    pub fn bad_shape(url: &str, err: &serde_json::Error) -> Self {
        Self::BadAnswer {
            url: url.to_owned(),
            reason: format!("not the documented JSON shape: {err}"),
        }
    }
}

/// The API's answer to a path it has no route for.
const NO_SUCH_ROUTE: &str = "No such API route";

/// An error answer without the API's `{"error": …}` body, with the start of what came instead.
fn not_the_api(url: String, status: StatusCode, body: &[u8]) -> ClientError {
    const SHOWN: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let shown: String = text.chars().take(SHOWN).collect();
    let more = if text.chars().count() > SHOWN {
        "…"
    } else {
        ""
    };
    let reason = if shown.is_empty() {
        format!("HTTP {status} with an empty body (not the plugin-jobs API?)")
    } else {
        format!("HTTP {status} that is not the plugin-jobs API's: {shown}{more}")
    };
    ClientError::BadAnswer { url, reason }
}

/// The API of one server. Create it inside an actix System (awc runs on actix-rt).
pub struct ApiClient {
    base: BaseUrl,
    token: Option<String>,
    http: awc::Client,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token stays out of debug output.
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    pub fn new(base: BaseUrl, token: Option<String>) -> Self {
        let connector = awc::Connector::new().timeout(CONNECT_TIMEOUT);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(REQUEST_TIMEOUT)
            .finish();
        Self {
            base,
            token: token.filter(|token| !token.is_empty()),
            http,
        }
    }

    /// The full URL of `path`, as error messages name it.
    pub fn url(&self, path: &str) -> String {
        self.base.join(path)
    }

    /// `GET path` (path and query, e.g. `/api/runs?limit=5`).
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path`, with `body` as JSON when given, else with no body.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.send(Method::POST, path, body).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = self.base.join(path);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let sent = match body {
            Some(body) => request.send_json(body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let bytes =
            response
                .body()
                .limit(MAX_BODY)
                .await
                .map_err(|err| ClientError::BadAnswer {
                    url: url.clone(),
                    reason: format!("reading the body failed: {err}"),
                })?;
        let json: Result<Value, _> = serde_json::from_slice(&bytes);
        if status.is_success() {
            return json.map_err(|err| ClientError::BadAnswer {
                url,
                reason: format!("HTTP {status} with a body that is not JSON: {err}"),
            });
        }
        match json {
            Ok(Value::Object(object)) => match object.get("error") {
                // The client only asks for routes the API has: a server without the route is
                // reached at the wrong base (`--url …/api`), not missing a job or a run.
                Some(Value::String(message))
                    if status == StatusCode::NOT_FOUND && message == NO_SUCH_ROUTE =>
                {
                    Err(ClientError::BadAnswer {
                        url,
                        reason: format!(
                            "HTTP {status}: {message} (--url, or PLUGIN_JOBS_URL, is the \
                             server's root, such as http://127.0.0.1:8080, without /api)"
                        ),
                    })
                }
                Some(Value::String(message)) => Err(ClientError::Api {
                    status,
                    message: message.clone(),
                    token_sent: self.token.is_some(),
                }),
                _ => Err(not_the_api(url, status, &bytes)),
            },
            // Another web server (or a proxy's own error page) answered: its 404 is not "no
            // such job", so it is not reported as one.
            _ => Err(not_the_api(url, status, &bytes)),
        }
    }

    fn unreachable(&self, err: &awc::error::SendRequestError) -> ClientError {
        use awc::error::{ConnectError, SendRequestError};
        let reason = match err {
            SendRequestError::Connect(ConnectError::Io(io)) => io.to_string(),
            SendRequestError::Connect(ConnectError::Timeout) => {
                format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())
            }
            SendRequestError::Timeout => {
                format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
            }
            other => other.to_string(),
        };
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_plain_http_with_a_host() {
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1:8080/").map(|u| u.to_string()),
            Ok("http://127.0.0.1:8080".to_owned())
        );
        assert_eq!(
            BaseUrl::parse("http://host/jobs").map(|u| u.join("/api/jobs")),
            Ok("http://host/jobs/api/jobs".to_owned())
        );
        for good in [
            "http://[::1]",
            "http://[::1]:8080",
            "http://localhost:65535",
        ] {
            assert!(BaseUrl::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "127.0.0.1:8080",
            "ftp://host",
            "http://",
            "http://h/?a=1",
            "a b",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:0",
            "http://[::1]:70000",
            "http://127.0.0.1:8080#frag",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
        let https = BaseUrl::parse("https://host").expect_err("https");
        assert!(https.contains("https is not supported"), "{https}");
    }

    #[test]
    fn exit_codes_follow_the_status() {
        let api = |code: u16| ClientError::Api {
            status: StatusCode::from_u16(code).expect("status"),
            message: String::new(),
            token_sent: false,
        };
        assert_eq!(api(404).exit_code(), 3);
        assert_eq!(api(409).exit_code(), 4);
        assert_eq!(api(401).exit_code(), 5);
        assert_eq!(api(400).exit_code(), 1);
        assert_eq!(api(503).exit_code(), 1);
        let down = ClientError::Unreachable {
            url: BaseUrl("http://x".into()),
            reason: "refused".into(),
        };
        assert_eq!(down.exit_code(), 6);
        assert!(api(401).to_string().contains("pass --token"));
        let refused = ClientError::Api {
            status: StatusCode::UNAUTHORIZED,
            message: "Unauthorized".into(),
            token_sent: true,
        };
        assert!(
            refused.to_string().contains("refused the token given"),
            "{refused}"
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
    }
}
