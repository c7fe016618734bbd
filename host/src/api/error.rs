//! The API's one error type: every failure of a request, answered as the status, stable code
//! and disclosure its [`FailureKind`] says (see [`crate::failure`]).

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::RETRY_AFTER;
use crate::{
    failure::{Disclosure, FailureKind},
    runner::RunError,
    store::InvalidName,
};

/// Everything an endpoint can answer besides success. Messages are written for the client and
/// never contain internal details or the client's raw input; internal causes are logged instead.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON")]
    InvalidJson,
    #[error("the request must be a JSON object {{\"plugin\": string, \"input\": 32-bit integer}}")]
    InvalidRequest,
    #[error("the request must have Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body must not be compressed: send it without Content-Encoding")]
    UnsupportedEncoding,
    #[error("the request body is too large")]
    BodyTooLarge,
    #[error("{0}")]
    InvalidName(InvalidName),
    #[error("only POST is allowed here")]
    MethodNotAllowed,
    #[error("the server is at its concurrency limit; retry shortly")]
    Overloaded,
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub(super) fn from_rejection(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonSyntaxError(_) => ApiError::InvalidJson,
            JsonRejection::JsonDataError(_) => ApiError::InvalidRequest,
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::BodyTooLarge,
            _ => ApiError::InvalidJson,
        }
    }

    /// Which failure this is; the status, the code and the rest follow from it.
    pub fn kind(&self) -> FailureKind {
        match self {
            ApiError::InvalidJson => FailureKind::InvalidJson,
            ApiError::InvalidRequest => FailureKind::InvalidRequest,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding => FailureKind::UnsupportedMediaType,
            ApiError::BodyTooLarge => FailureKind::BodyTooLarge,
            ApiError::InvalidName(_) => FailureKind::InvalidPluginName,
            ApiError::MethodNotAllowed => FailureKind::MethodNotAllowed,
            ApiError::Overloaded => FailureKind::Overloaded,
            ApiError::Run(error) => error.kind(),
            ApiError::Internal(_) => FailureKind::Internal,
        }
    }

    /// The message sent to the client: plugin-level facts (which function failed and how)
    /// help plugin authors; host-level causes stay in the logs.
    fn public_message(&self) -> String {
        match (self.kind().disclosure(), self) {
            (Disclosure::Fixed(sentence), _) => sentence.to_owned(),
            (Disclosure::Details, ApiError::Run(error)) => error.public_details(),
            (Disclosure::Details, other) => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let (status, code) = (kind.status(), kind.code());
        if status.is_server_error() {
            tracing::error!(error = %self, ?self, code, "request failed");
        } else {
            tracing::debug!(error = %self, code, "request refused");
        }
        let body = Json(json!({ "error": { "code": code, "message": self.public_message() } }));
        if kind.is_transient() {
            let retry_after = match &self {
                ApiError::Run(error) => error.retry_after_secs(),
                _ => None,
            };
            let retry_after = retry_after.unwrap_or(RETRY_AFTER.as_secs());
            return (status, [(header::RETRY_AFTER, retry_after.to_string())], body).into_response();
        }
        (status, body).into_response()
    }
}
