//! The API's one error type: every failure as a status and a stable JSON error code.

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

use super::RETRY_AFTER;
use crate::{
    runner::{RunError, WorkerFailure},
    runtime::{AbiFunction, PluginErrorCode, RuntimeError},
    store::{InvalidName, StoreError},
};

/// Everything `/run` can answer besides success. Messages are written for the client and never
/// contain internal details or the client's raw input; internal causes are logged instead.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON")]
    InvalidJson,
    #[error("the request must be a JSON object {{\"plugin\": string, \"input\": 32-bit integer}}")]
    InvalidRequest,
    #[error("the request must have Content-Type: application/json")]
    UnsupportedMediaType,
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
    #[error("internal error")]
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

    /// The HTTP status and the stable, machine-readable error code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::InvalidJson => (S::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidRequest => (S::BAD_REQUEST, "invalid_request"),
            ApiError::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::BodyTooLarge => (S::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::InvalidName(_) => (S::BAD_REQUEST, "invalid_plugin_name"),
            ApiError::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Overloaded => (S::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal_error"),
            ApiError::Run(RunError::Store(error)) => match error {
                StoreError::NotFound(_) | StoreError::NotARegularFile(_) => (S::NOT_FOUND, "plugin_not_found"),
                StoreError::TooLarge { .. } => (S::INTERNAL_SERVER_ERROR, "plugin_too_large"),
                StoreError::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
                StoreError::Io { .. } => (S::INTERNAL_SERVER_ERROR, "store_error"),
            },
            ApiError::Run(RunError::Worker(failure)) => match failure {
                WorkerFailure::Crashed { .. } => (S::INTERNAL_SERVER_ERROR, "plugin_crashed"),
                WorkerFailure::Unresponsive { .. } => (S::GATEWAY_TIMEOUT, "plugin_timeout"),
                WorkerFailure::Spawn(_) => (S::INTERNAL_SERVER_ERROR, "internal_error"),
                WorkerFailure::Busy => (S::SERVICE_UNAVAILABLE, "overloaded"),
            },
            ApiError::Run(RunError::Quarantined(_)) => (S::SERVICE_UNAVAILABLE, "plugin_quarantined"),
            ApiError::Run(RunError::Runtime(error)) => match error.primary() {
                RuntimeError::Plugin { function: AbiFunction::Process, code: PluginErrorCode::InvalidArgument } => {
                    (S::UNPROCESSABLE_ENTITY, "invalid_argument")
                }
                RuntimeError::Plugin { .. } => (S::INTERNAL_SERVER_ERROR, "plugin_error"),
                RuntimeError::Trap { .. } => (S::INTERNAL_SERVER_ERROR, "plugin_trapped"),
                RuntimeError::Timeout { .. } => (S::GATEWAY_TIMEOUT, "plugin_timeout"),
                RuntimeError::TooLarge { .. } => (S::INTERNAL_SERVER_ERROR, "plugin_too_large"),
                RuntimeError::AbiViolation(_) => (S::INTERNAL_SERVER_ERROR, "abi_violation"),
                RuntimeError::InvalidModule(_) => (S::INTERNAL_SERVER_ERROR, "invalid_module"),
                RuntimeError::MemoryLimit { .. } => (S::INTERNAL_SERVER_ERROR, "memory_limit"),
                RuntimeError::Instantiation(_)
                | RuntimeError::Compilation(_)
                | RuntimeError::Engine(_)
                | RuntimeError::CleanupAlsoFailed { .. } => (S::INTERNAL_SERVER_ERROR, "internal_error"),
            },
        }
    }

    /// The message sent to the client: plugin-level facts (which function failed and how)
    /// help plugin authors; host-level causes stay in the logs.
    fn public_message(&self) -> String {
        match self.status_and_code().1 {
            // Whatever the cause, its details are the host's business: they go to the log.
            "internal_error" | "store_error" => return "internal error".into(),
            "store_unavailable" => return "the plugin store is unavailable; retry shortly".into(),
            "plugin_not_found" => return "no such plugin".into(),
            "invalid_module" => return "the plugin is not a valid WebAssembly module".into(),
            _ => {}
        }
        match self {
            // Say what the plugin did; a cleanup that failed inside the engine stays in the log.
            ApiError::Run(RunError::Runtime(RuntimeError::CleanupAlsoFailed { failure, .. })) => {
                format!("{failure}; cleanup failed too")
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::error!(error = %self, ?self, code, "request failed");
        } else {
            tracing::debug!(error = %self, code, "request refused");
        }
        let body = Json(json!({ "error": { "code": code, "message": self.public_message() } }));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry_after = match &self {
                ApiError::Run(RunError::Quarantined(quarantine)) => quarantine.retry_after_secs.max(1),
                _ => RETRY_AFTER.as_secs(),
            };
            return (status, [(header::RETRY_AFTER, retry_after.to_string())], body).into_response();
        }
        (status, body).into_response()
    }
}
