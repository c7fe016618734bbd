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
    store::{InvalidName, InvalidRequirement},
};

/// Everything an endpoint can answer besides success. Messages are written for the client and
/// never contain internal details or the client's raw input; internal causes are logged instead.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON")]
    InvalidJson,
    #[error(
        "the request must be a JSON object: {{\"plugin\": string, \"input\": 32-bit integer}} for an ABI v1 \
         plugin, or {{\"plugin\": string, \"function\": string, \"input\": string}} (or \"input_base64\" \
         instead of \"input\"; \"output_base64\": true or false chooses how the output is answered) for an ABI \
         v2 plugin"
    )]
    InvalidRequest,
    /// A request that is well-formed JSON but mixes the two call forms.
    #[error("{0}")]
    InvalidCall(&'static str),
    #[error("function names are 1 to 32 of a-z, 0-9 and `_`, starting with a letter")]
    InvalidFunctionName,
    #[error("{0}")]
    InvalidVersionRequirement(InvalidRequirement),
    #[error("the input is over the plugin's {capacity}-byte input buffer")]
    InputTooLarge { capacity: u32 },
    #[error("an NDJSON line is longer than the plugin's {capacity}-byte input buffer")]
    LineTooLong { capacity: usize },
    #[error("the stream is over the {limit}-byte limit")]
    StreamTooLarge { limit: u64 },
    #[error("the stream went past the {limit:?} limit on its duration")]
    StreamTooLong { limit: std::time::Duration },
    #[error("the client sent nothing for {idle:?} in the middle of a stream")]
    StreamIdle { idle: std::time::Duration },
    #[error("the client sent the stream slower than {min_rate} bytes/s over {window:?}")]
    StreamTooSlow { min_rate: u64, window: std::time::Duration },
    /// The client disconnected in the middle of a stream: nobody is left to answer.
    #[error("the client went away")]
    ClientGone,
    /// The body ended before its end: a malformed or cut-short chunked body, or a connection
    /// closed while sending. The client's fault, answered if it is still listening.
    #[error("the request body broke off before its end (a malformed or cut-short chunked body)")]
    BodyBroken,
    #[error(
        "the request body did not arrive in time: it was slower than the server's minimum rate, or took longer \
         than its limit on any body"
    )]
    BodyTimeout,
    #[error("the request must have Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the request body must not be compressed: send it without Content-Encoding")]
    UnsupportedEncoding,
    #[error("the request body is too large")]
    BodyTooLarge,
    #[error("{0}")]
    InvalidName(InvalidName),
    #[error("a valid bearer token is required: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// A known client asked for what its token does not allow (the sentence says what).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("only POST is allowed here")]
    MethodNotAllowed,
    #[error("the server is at its concurrency limit; retry shortly")]
    Overloaded,
    #[error("the server is close to its limit of open files; retry shortly")]
    OutOfDescriptors,
    #[error("no worker process is alive and none can be started; retry on another replica")]
    NoWorkers,
    #[error("the plugin store did not answer in time")]
    StoreTooSlow,
    #[error("the server is shutting down; retry on another replica")]
    ShuttingDown,
    #[error("the server has too many open connections; retry shortly")]
    TooManyConnections,
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
            ApiError::InvalidRequest
            | ApiError::InvalidCall(_)
            | ApiError::InvalidFunctionName
            | ApiError::ClientGone
            | ApiError::BodyBroken => FailureKind::InvalidRequest,
            ApiError::BodyTimeout => FailureKind::BodyTimeout,
            ApiError::InputTooLarge { .. } | ApiError::LineTooLong { .. } => FailureKind::InputTooLarge,
            ApiError::StreamTooLarge { .. } => FailureKind::StreamTooLarge,
            ApiError::StreamTooLong { .. } | ApiError::StreamIdle { .. } | ApiError::StreamTooSlow { .. } => {
                FailureKind::StreamTimeout
            }
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding => FailureKind::UnsupportedMediaType,
            ApiError::BodyTooLarge => FailureKind::BodyTooLarge,
            ApiError::InvalidName(_) => FailureKind::InvalidPluginName,
            ApiError::InvalidVersionRequirement(_) => FailureKind::InvalidVersionRequirement,
            ApiError::MethodNotAllowed => FailureKind::MethodNotAllowed,
            ApiError::Unauthorized => FailureKind::Unauthorized,
            ApiError::Forbidden(_) => FailureKind::Forbidden,
            ApiError::Overloaded
            | ApiError::OutOfDescriptors
            | ApiError::ShuttingDown
            | ApiError::TooManyConnections => FailureKind::Overloaded,
            ApiError::StoreTooSlow => FailureKind::StoreUnavailable,
            ApiError::NoWorkers => FailureKind::NoWorkers,
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
        if kind == FailureKind::Overloaded {
            // A full or stopping server: load, not a fault; one ERROR per refused request
            // would turn a burst of traffic into a burst of logs.
            tracing::warn!(error = %self, code, "request refused for now");
        } else if status.is_server_error() {
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
