//! `ApiError`: a status code and a message, answered as `{"error": "<message>"}`. The crate's
//! [`Error`] maps onto the status codes of the API here, in one place.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use sea_orm::DbErr;

use crate::Error;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    /// The `{"error": …}` response, for places that build responses rather than return errors.
    pub fn to_response(&self) -> HttpResponse {
        self.error_response()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(serde_json::json!({ "error": self.message }))
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let status = match &err {
            Error::JobNotFound(_) | Error::RunNotFound(_) | Error::PluginNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Error::JobNotActive { .. }
            | Error::RunEnded { .. }
            | Error::RunCancelling(_)
            | Error::RunElsewhere { .. }
            | Error::AlreadyRunning { .. }
            | Error::JobExists { .. }
            | Error::DeclaredByManifest { .. } => StatusCode::CONFLICT,
            Error::WorkerNotRunning(_) | Error::ShuttingDown | Error::Unreachable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::InvalidInput(_) | Error::Cron(_) => StatusCode::BAD_REQUEST,
            // A stopped actor, or a database that cannot be reached, is a service that is not
            // there right now; any other database failure is the server's fault.
            Error::Mailbox(_) | Error::Database(DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Database(_) | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if matches!(err, Error::Database(_) | Error::Mailbox(_)) {
            log::error!("API request failed: {err}");
        }
        if let Error::Database(inner @ (DbErr::ConnectionAcquire(_) | DbErr::Conn(_))) = &err {
            return Self::new(
                status,
                format!("database unreachable, try again once it is back ({inner})"),
            );
        }
        Self::new(status, err.to_string())
    }
}
