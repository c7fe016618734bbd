//! The API's one error type: every failure of a request, answered as the status, stable code
//! and disclosure its [`FailureKind`] says (see [`plugin_host::failure`]).

use axum::{
    Json,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};

use super::RETRY_AFTER;
use plugin_host::{Disclosure, FailureKind, InvalidName, InvalidRequirement};

/// Every error answer's body: `{"error": {"code": "<stable code>", "message": "<for humans>"}}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The stable, machine-readable code (see the failure table); each operation's document
    /// lists the codes it can answer.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// What happened, for humans; never internal details or the request's own input.
    pub message: String,
}

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
    #[error("only GET (and HEAD) is allowed here")]
    OnlyGet,
    /// A path segment that is not UTF-8 once percent-decoded: no plugin or function is named so.
    #[error(
        "a path segment is not UTF-8 once percent-decoded (plugin names are ASCII letters, digits, '_' and '-'; \
         function names a-z, 0-9 and '_')"
    )]
    InvalidPath,
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
    Run(#[from] plugin_host::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A body that is not the JSON its endpoint takes: malformed or cut short (`invalid_json`),
    /// or well-formed with the wrong fields or types (`invalid_request`), as axum's `Json`
    /// extractor tells them apart.
    pub(super) fn from_json(error: &serde_json::Error) -> Self {
        match error.classify() {
            serde_json::error::Category::Data => ApiError::InvalidRequest,
            serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof
            | serde_json::error::Category::Io => ApiError::InvalidJson,
        }
    }

    /// Which failure this is; the status, the code and the rest follow from it.
    pub fn kind(&self) -> FailureKind {
        match self {
            ApiError::InvalidJson => FailureKind::InvalidJson,
            ApiError::InvalidRequest
            | ApiError::InvalidCall(_)
            | ApiError::InvalidFunctionName
            | ApiError::InvalidPath
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
            ApiError::MethodNotAllowed | ApiError::OnlyGet => FailureKind::MethodNotAllowed,
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
            (Disclosure::Details, ApiError::Run(error)) => error.client_message(),
            (Disclosure::Details, other) => other.to_string(),
        }
    }
}

/// What an error answer carries for the layers around the handler (`api::outcome`), which log
/// it and count it: `IntoResponse` only builds the answer.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailureKind,
    /// The error's whole message, for the log (never sent: see [`ApiError::public_message`]).
    pub message: String,
    /// Its debug form, for the log of a server error.
    pub debug: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let (status, code) = (status(kind), kind.code());
        let body = Json(ErrorBody { error: ErrorDetail { code, message: self.public_message() } });
        let failure = Failure { kind, message: self.to_string(), debug: format!("{self:?}") };
        let mut response = if kind.is_transient() {
            let retry_after = match &self {
                ApiError::Run(error) => error.retry_after().map(|after| after.as_secs().max(1)),
                _ => None,
            };
            let retry_after = retry_after.unwrap_or(RETRY_AFTER.as_secs());
            (status, [(header::RETRY_AFTER, retry_after.to_string())], body).into_response()
        } else {
            (status, body).into_response()
        };
        response.extensions_mut().insert(failure);
        response
    }
}

/// The HTTP status each kind of failure answers: the server's half of the failure table (see
/// [`plugin_host::FailureKind`]); a new kind does not compile until it has one.
pub fn status(kind: FailureKind) -> StatusCode {
    match kind {
        FailureKind::InvalidJson => StatusCode::BAD_REQUEST,
        FailureKind::InvalidRequest => StatusCode::BAD_REQUEST,
        FailureKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        FailureKind::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        FailureKind::InvalidPluginName => StatusCode::BAD_REQUEST,
        FailureKind::Unauthorized => StatusCode::UNAUTHORIZED,
        FailureKind::Forbidden => StatusCode::FORBIDDEN,
        FailureKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        FailureKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::PluginNotFound => StatusCode::NOT_FOUND,
        FailureKind::VersionNotFound => StatusCode::NOT_FOUND,
        FailureKind::InvalidVersionRequirement => StatusCode::BAD_REQUEST,
        FailureKind::DigestMismatch => StatusCode::BAD_GATEWAY,
        FailureKind::InvalidArtifact => StatusCode::BAD_GATEWAY,
        FailureKind::SignatureMissing => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::SignatureInvalid => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::UntrustedSigner => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::StoreError => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::PluginTooLarge => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::WrongAbiVersion => StatusCode::BAD_REQUEST,
        FailureKind::FunctionNotFound => StatusCode::NOT_FOUND,
        FailureKind::InputTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        FailureKind::StreamTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        FailureKind::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
        FailureKind::StreamTimeout => StatusCode::REQUEST_TIMEOUT,
        FailureKind::AbiViolation => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::InvalidModule => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::PluginInstantiationFailed => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::MemoryLimit => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::InvalidArgument => StatusCode::UNPROCESSABLE_ENTITY,
        FailureKind::PluginError => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::BufferFault => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::ConfigurationRefused => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::InvalidConfiguration => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::PluginTrapped => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::PluginCrashed => StatusCode::INTERNAL_SERVER_ERROR,
        FailureKind::NoWorkers => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::WorkerLost => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::PluginTimeout => StatusCode::GATEWAY_TIMEOUT,
        FailureKind::PluginQuarantined => StatusCode::SERVICE_UNAVAILABLE,
        FailureKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod table_tests {
    use super::*;

    #[test]
    fn every_503_is_transient() {
        for &kind in FailureKind::ALL {
            // A 503 promises that retrying can help, and carries Retry-After.
            assert_eq!(status(kind) == StatusCode::SERVICE_UNAVAILABLE, kind.is_transient(), "{kind:?}");
        }
    }

    #[test]
    fn the_readme_lists_every_code_with_its_status() {
        let readme = include_str!("../../../README.md");
        for &kind in FailureKind::ALL {
            let row = format!("| {} | `{}` |", status(kind).as_u16(), kind.code());
            let listed = readme.lines().any(|line| line.starts_with(&row));
            assert!(listed, "README.md's error table lacks a row starting with {row:?}");
        }
        // And the table has no row for a code the host does not send.
        for line in readme.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, code_status, code, ..] = cells[..] else { continue };
            let (Ok(code_status), Some(code)) =
                (code_status.parse::<u16>(), code.strip_prefix('`').and_then(|c| c.strip_suffix('`')))
            else {
                continue;
            };
            let known = FailureKind::ALL.iter().any(|&k| k.code() == code && status(k).as_u16() == code_status);
            assert!(known, "README.md's error table has a row for {code_status} `{code}`, which the host never sends");
        }
    }
}
