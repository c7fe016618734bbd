//! The HTTP API (axum). Knows plugins only through the library's public API (`plugin_host`);
//! nothing here touches WasmEdge or the filesystem.

mod auth;
mod body;
mod error;
mod functions;
pub mod openapi;
mod outcome;
mod tokens;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Extension, Json, Router,
    extract::{
        Path, Query, State,
        rejection::{PathRejection, QueryRejection},
    },
    http::{HeaderName, HeaderValue, Request, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tracing::Instrument;

pub use auth::{Caller, NO_CLIENT};
pub use body::BodyLimits;
pub use error::{ApiError, ErrorBody, ErrorDetail, status};
pub use functions::StreamLimits;
pub use tokens::{Client, MAX_TOKENS_FILE_BYTES, TokenSet, Tokens};

use plugin_host::{Host, PluginName, PluginRef, PluginStatus, Target, VersionStatus, WorkerPoolStatus};

use crate::metrics::Metrics;

/// The response header saying which version of the plugin ran (absent for an unversioned
/// plugin file).
pub const PLUGIN_VERSION: HeaderName = HeaderName::from_static("x-plugin-version");

/// Largest `POST /run` body accepted: room for a v2 input as large as the largest default
/// buffer (1 MiB), escaped as a JSON string or encoded in base64. (The raw function endpoints
/// have their own limits: the plugin's input capacity, or the stream limits.)
pub const MAX_BODY_BYTES: usize = 4 << 20;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the HTTP layer needs, shared by every request.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Runs the plugins. It bounds the calls in flight itself (more are refused with 503
    /// instead of queueing behind the CPU), and is closed when shutdown begins, so that calls
    /// accepted but not yet started are refused rather than started during the grace period.
    pub host: Host,
    pub metrics: Arc<Metrics>,
    /// Listings (`/plugins...`) allowed at once: a budget of their own, so a flood of calls
    /// cannot crowd out listings, and a flood of listings cannot crowd out calls.
    pub listings: Arc<Semaphore>,
    /// What `/readyz` knows about the store, with a budget of its own (see [`ReadinessFacts`]):
    /// no amount of listing or call traffic makes a healthy replica unready.
    pub readiness: Arc<ReadinessFacts>,
    /// Set by the server shortly before its grace period ends: requests still running are
    /// answered 503 at once (the call itself is abandoned), so every client gets an answer.
    pub abandon: Arc<tokio::sync::watch::Sender<bool>>,
    /// Limits on streams (`POST /plugins/{name}/functions/{function}` of a streaming function).
    pub stream_limits: StreamLimits,
    /// Limits on whole request bodies (`POST /run`, a plain function); set with
    /// [`AppState::with_body_limits`], which sizes [`AppState::bodies`] to match.
    pub body_limits: BodyLimits,
    /// The memory budget for whole bodies, in bytes ([`BodyLimits::buffer_bytes`]): taken as a
    /// body arrives and given back when its call ends. Calls take their place among the host's
    /// calls in flight only once their body is complete, so clients that send slowly hold
    /// bytes, never places.
    pub bodies: Arc<Semaphore>,
    /// The bearer tokens callers must present (`--tokens-file`); `None`: tokens are off and
    /// every route is open (see `auth`).
    pub tokens: Option<Arc<Tokens>>,
    /// Where request ids come from.
    request_ids: RequestIds,
}

/// Listings that may run at once; each stats every plugin file (or every version of one).
/// Readiness probes do not count against it.
pub const MAX_LISTINGS: usize = 4;

/// How long `/readyz` answers from the store facts it found last, before looking again.
pub const READINESS_FACTS_TTL: Duration = Duration::from_secs(1);

/// Longest a listing may take before the answer is "store unavailable": Kubernetes' default
/// probe timeout is 1 s, and a store that cannot list its plugins in that time cannot serve.
pub const LISTING_DEADLINE: Duration = Duration::from_millis(900);

impl AppState {
    pub fn new(host: Host, metrics: Arc<Metrics>) -> Self {
        AppState {
            host,
            metrics,
            listings: Arc::new(Semaphore::new(MAX_LISTINGS)),
            readiness: Arc::default(),
            abandon: Arc::new(tokio::sync::watch::Sender::new(false)),
            stream_limits: StreamLimits::default(),
            body_limits: BodyLimits::default(),
            bodies: Arc::new(Semaphore::new(BodyLimits::default().buffer_bytes)),
            tokens: None,
            request_ids: RequestIds::new(),
        }
    }

    /// The same state with other limits on whole bodies.
    pub fn with_body_limits(mut self, limits: BodyLimits) -> Self {
        self.bodies = Arc::new(Semaphore::new(limits.buffer_bytes.min(Semaphore::MAX_PERMITS)));
        self.body_limits = limits;
        self
    }
}

/// The service's routes; `main` serves it and tests drive it directly.
pub fn app(state: AppState) -> Router {
    // Each layer costs every request: the middleware's state is cloned per request, so it takes
    // only what it needs (an `Arc` or two), and the token check is there only with tokens on.
    // No `DefaultBodyLimit` layer: no handler reads its body with axum's extractors (`Json`,
    // `Bytes`), which are what it limits; bodies are read by `body::read_whole` or streamed,
    // within the body limits, and the layer only put an extension on every request.
    let routes = Router::new()
        .route("/run", post(run).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(only_get))
        .route("/readyz", get(readyz).fallback(only_get))
        .route("/plugins", get(list_plugins).fallback(only_get))
        .route("/plugins/{name}", get(show_plugin).fallback(only_get))
        .route("/plugins/{name}/versions", get(list_versions).fallback(only_get))
        .route("/plugins/{name}/functions/{function}", post(functions::call_function).fallback(method_not_allowed))
        .route("/metrics", get(metrics).fallback(only_get))
        .route("/openapi.json", get(openapi::serve).fallback(only_get));
    let routes = match &state.tokens {
        Some(tokens) => {
            let auth = auth::AuthState { tokens: Arc::clone(tokens) };
            routes.layer(axum::middleware::from_fn_with_state(auth, auth::authenticate))
        }
        None => routes,
    };
    // Handlers and the one layer around them share the state behind one `Arc`: extracting it
    // clones one pointer per request, not each of its parts.
    let state = Arc::new(state);
    routes.layer(axum::middleware::from_fn_with_state(Arc::clone(&state), around_every_request)).with_state(state)
}

/// Makes request ids shaped like UUIDs (36 characters): a random part drawn once per server and
/// a counter. Unique per server and, by the random part, across servers and restarts; unlike
/// a version 4 UUID per request, it costs no `getrandom` system call per request. An id only
/// ties log lines together; it is not a secret.
#[derive(Debug, Clone)]
struct RequestIds {
    /// The random part, as the id's first 19 characters (`xxxxxxxx-xxxx-4xxx-`).
    prefix: [u8; 19],
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let r = u64::from_le_bytes(random_bytes());
        let prefix = format!("{:08x}-{:04x}-4{:03x}-", r >> 32, (r >> 16) & 0xffff, r & 0xfff);
        RequestIds { prefix: prefix.into_bytes().try_into().expect("19 characters"), next: Arc::default() }
    }
}

/// Eight random bytes from the operating system, via the standard library's hash keys (drawn
/// from the OS's random source the first time a thread needs them).
fn random_bytes() -> [u8; 8] {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    hasher.finish().to_le_bytes()
}

impl RequestIds {
    /// The next id: the prefix, then the counter as `8xxx-xxxxxxxxxxxx`, written as hex
    /// directly rather than by `format!` on every request.
    fn make(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut id = [b'-'; 36];
        id[..19].copy_from_slice(&self.prefix);
        let variant = (0x8000 | ((n >> 48) & 0x3fff)) as u16;
        hex::encode_to_slice(variant.to_be_bytes(), &mut id[19..23]).expect("4 digits for 2 bytes");
        hex::encode_to_slice(&n.to_be_bytes()[2..], &mut id[24..]).expect("12 digits for 6 bytes");
        HeaderValue::from_bytes(&id).expect("hex digits and dashes make a header value")
    }
}

/// What connections beyond the server's connection limit get (see `server`): liveness is
/// answered (the process is fine), readiness says no (this replica is at its connection limit:
/// send traffic elsewhere), and everything else gets 503 `overloaded`, closing the connection.
pub fn probes_only(state: AppState) -> Router {
    async fn refuse() -> impl IntoResponse {
        ([(header::CONNECTION, "close")], ApiError::TooManyConnections)
    }
    Router::new().route("/healthz", get(healthz)).fallback(refuse).with_state(state)
}

/// Longest caller-chosen request id kept; a longer one is replaced by a fresh id.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// What every request goes through, in one layer (each layer costs every request: tower-http's
/// request-id and trace layers, a layer for the screening and one for the outcome took 2.8 µs
/// of CPU per request more; the trace layer alone 1 µs with its span off):
/// - a compressed body (`Content-Encoding` other than `identity`) is refused: the host does not
///   decompress, and reading gzip as JSON would only give a confusing error;
/// - every request gets an id, returned in the answer's `x-request-id`. A caller's own id is
///   kept only if short and plain (letters, digits, `-`, `_`, `.`, `:`, at most
///   [`MAX_REQUEST_ID_LEN`] bytes), since it is logged and echoed; any other is replaced;
/// - everything the request logs, its handler and its response body alike (a stream that fails
///   after its output began logs as its body is sent), is inside an INFO span `request` with the
///   id, method and path; `client` is filled in by the token check (see `auth`): a client's
///   name, never a token;
/// - what the answer says is logged and counted (see [`outcome::record`]).
async fn around_every_request(
    State(state): State<Arc<AppState>>,
    mut request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let encoded = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return ApiError::UnsupportedEncoding.into_response();
    }
    let usable_id = |id: &[u8]| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    let id = match request.headers().get(REQUEST_ID).filter(|id| usable_id(id.as_bytes())) {
        Some(id) => id.clone(),
        None => {
            let id = state.request_ids.make();
            request.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let span = tracing::info_span!(
        "request",
        id = id.to_str().unwrap_or("-"),
        method = %request.method(),
        path = %request.uri().path(),
        client = tracing::field::Empty,
    );
    let started = Instant::now();
    let mut response = outcome::record(&state, request, next).instrument(span.clone()).await;
    response.headers_mut().entry(REQUEST_ID).or_insert(id);
    if span.is_disabled() {
        return response;
    }
    span.in_scope(|| {
        tracing::debug!(status = response.status().as_u16(), latency = ?started.elapsed(), "answered");
    });
    response.map(|body| axum::body::Body::new(InSpan { body, span }))
}

/// A response body polled inside its request's span.
struct InSpan {
    body: axum::body::Body,
    span: tracing::Span,
}

impl http_body::Body for InSpan {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        std::pin::Pin::new(&mut this.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Body of `POST /run`: `{"plugin", "input": integer}` calls an ABI v1 plugin;
/// `{"plugin", "function", "input": string}` (or `"input_base64"`) calls a function of an ABI
/// v2 plugin.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The plugin's name (see [`PluginName`] for what is allowed).
    #[schema(example = "hello")]
    pub plugin: String,
    /// A version requirement in Cargo's syntax (`^1.2`, `=1.4.2`, ...); without one, the
    /// highest release (or the unversioned plugin file).
    #[serde(default)]
    pub version: Option<String>,
    /// ABI v2: the function to call.
    #[serde(default)]
    pub function: Option<String>,
    /// ABI v1: the argument passed to `process`. ABI v2: the input as UTF-8 text.
    #[serde(default)]
    pub input: Option<RunInput>,
    /// ABI v2: the input as base64 (standard alphabet, padded), for binary input.
    #[serde(default)]
    pub input_base64: Option<String>,
    /// ABI v2: how the output is answered. `true`: always `"output_base64"`; `false`:
    /// `"output"` text when the output is valid UTF-8 (else `"output_base64"`). Absent: like the
    /// input, `"output_base64"` for `"input_base64"` and text (when valid UTF-8) for `"input"`.
    #[serde(default)]
    pub output_base64: Option<bool>,
}

/// The `"input"` of a `POST /run`: an integer for v1, text for v2.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RunInput {
    Integer(i32),
    Text(String),
}

/// Answer of a successful ABI v1 `POST /run`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RunResponse {
    pub output: i32,
    /// The version that ran; absent for an unversioned plugin file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub version: Option<String>,
}

/// Answer of a successful ABI v2 `POST /run`: `"output_base64"` or `"output"` (text), as the
/// request asks (see `OutputEncoding`).
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FunctionResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub output_base64: Option<String>,
    /// The version that ran; absent for an unversioned plugin file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub version: Option<String>,
}

/// How a v2 `POST /run` answers the output bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputEncoding {
    /// `"output_base64"`, whatever the bytes are.
    Base64,
    /// `"output"` when the bytes are valid UTF-8; `"output_base64"` when they are not, since
    /// JSON text cannot carry them (a client asking for text must accept either field).
    TextIfUtf8,
}

impl OutputEncoding {
    /// The request's `"output_base64"` when it says, else the input's form: a client sending
    /// bytes gets bytes back, in the same field whatever the bytes happen to be.
    fn of(output_base64: Option<bool>, input_is_base64: bool) -> Self {
        match output_base64.unwrap_or(input_is_base64) {
            true => OutputEncoding::Base64,
            false => OutputEncoding::TextIfUtf8,
        }
    }
}

impl FunctionResponse {
    fn new(output: Vec<u8>, encoding: OutputEncoding) -> Self {
        use base64::Engine as _;
        let (output, output_base64) = match encoding {
            OutputEncoding::Base64 => (None, Some(BASE64.encode(output))),
            OutputEncoding::TextIfUtf8 => match String::from_utf8(output) {
                Ok(text) => (Some(text), None),
                Err(binary) => (None, Some(BASE64.encode(binary.into_bytes()))),
            },
        };
        FunctionResponse { output, output_base64, version: None }
    }
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What a `POST /run` asks for, checked.
enum Call {
    V1(i32),
    V2 { function: String, input: Vec<u8>, output: OutputEncoding },
}

impl Call {
    fn of(request: RunRequest) -> Result<Self, ApiError> {
        use base64::Engine as _;
        let output_base64 = request.output_base64;
        match (request.function, request.input, request.input_base64) {
            // `"output_base64": false` is what a v1 answer is anyway, so it is allowed.
            (None, Some(RunInput::Integer(input)), None) if output_base64 != Some(true) => Ok(Call::V1(input)),
            (None, _, _) => Err(ApiError::InvalidCall(
                "an ABI v1 call has an integer \"input\" and nothing else; name a \"function\" to call an ABI v2 \
                 plugin",
            )),
            (Some(function), Some(RunInput::Text(text)), None) => {
                Ok(Call::V2 { function, input: text.into_bytes(), output: OutputEncoding::of(output_base64, false) })
            }
            (Some(function), None, Some(encoded)) => {
                let input = BASE64
                    .decode(encoded)
                    .map_err(|_| ApiError::InvalidCall("\"input_base64\" is not valid base64 (standard, padded)"))?;
                Ok(Call::V2 { function, input, output: OutputEncoding::of(output_base64, true) })
            }
            (Some(_), _, _) => Err(ApiError::InvalidCall(
                "a call by \"function\" has exactly one of \"input\" (a string) or \"input_base64\"",
            )),
        }
    }
}

#[utoipa::path(
    post,
    path = "/run",
    operation_id = "run",
    tag = "calls",
    request_body(content = RunRequest, content_type = "application/json",
        description = "ABI v1: `plugin` and an integer `input`. ABI v2: `plugin`, `function` and exactly one of \
            `input` (UTF-8 text) or `input_base64`; `output_base64` chooses the answer's form. Either may add \
            `version`. At most 4 MiB.",
        examples(
            ("v1" = (summary = "ABI v1: an integer in, an integer out", value = json!({"plugin": "hello", "input": 21}))),
            ("v2" = (summary = "ABI v2: a function called with text", value = json!({"plugin": "text", "function": "upper", "input": "hello"}))),
            ("v2_base64" = (summary = "ABI v2: bytes in and out, in base64", value = json!({"plugin": "sha256", "function": "sha256sum", "input_base64": "aGVsbG8="}))),
            ("v1_refused" = (summary = "A plugin refusing its input: 422 invalid_argument", value = json!({"plugin": "abi", "input": -1}))),
            ("v1_failed" = (summary = "A plugin failing: 500 plugin_error", value = json!({"plugin": "abi", "input": 50000})))
        )),
    responses((status = 200, body = openapi::RunAnswer, headers(("x-plugin-version" = String, description = "The version that ran (absent for an unversioned plugin file)")),
        description = "The call's output: an integer for ABI v1; for ABI v2 `output` (text) or `output_base64`, in the input's form unless `output_base64` chose (output that is not UTF-8 is always `output_base64`)."))
)]
async fn run(
    State(state): State<Arc<AppState>>,
    caller: Option<Extension<Caller>>,
    // The whole request rather than a `HeaderMap` extractor, which would copy the headers.
    http_request: Request<axum::body::Body>,
) -> axum::response::Response {
    let (parts, body) = http_request.into_parts();
    let (request, body) = match run_request(&state, &parts.headers, body).await {
        Ok(read) => read,
        Err(error) => return error.into_response(),
    };
    match PluginName::new(&request.plugin) {
        Ok(name) => {
            let caller = Caller::of(caller);
            let response = run_plugin(&state, &caller, name.clone(), request, body).await;
            outcome::labelled(response.into_response(), name)
        }
        Err(invalid) => ApiError::InvalidName(invalid).into_response(),
    }
}

/// A `POST /run` body: JSON (415 otherwise, before reading), at most [`MAX_BODY_BYTES`] (413,
/// before reading when `Content-Length` says so), within the body limits. The body is returned
/// too: it holds its share of the memory budget until the call ends.
async fn run_request(
    state: &AppState,
    headers: &header::HeaderMap,
    body: axum::body::Body,
) -> Result<(RunRequest, body::WholeBody), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| is_json(essence.trim()));
    if !json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body =
        body::read_whole(body, headers, MAX_BODY_BYTES, || ApiError::BodyTooLarge, &state.body_limits, &state.bodies)
            .await?;
    let request = serde_json::from_slice(&body.bytes).map_err(|error| ApiError::from_json(&error))?;
    Ok((request, body))
}

/// `application/json` or `application/<anything>+json`, in any case (a media type's essence).
fn is_json(essence: &str) -> bool {
    let Some((kind, subtype)) = essence.split_once('/') else { return false };
    let suffix = subtype.len().checked_sub(5).and_then(|at| subtype.get(at..));
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || suffix.is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

async fn run_plugin(
    state: &AppState,
    caller: &Caller,
    name: PluginName,
    request: RunRequest,
    body: body::WholeBody,
) -> Result<axum::response::Response, ApiError> {
    caller.may_call(&name)?;
    let target = Target { name, requirement: requirement(request.version.as_deref())? };
    let call = Call::of(request)?;
    // The body keeps its share of the memory budget until the call ends.
    let _body = body;
    Ok(match call {
        Call::V1(input) => {
            let ran = state.host.run(&target, input).await?;
            let version = ran.plugin.version.as_ref().map(ToString::to_string);
            with_version(Json(RunResponse { output: ran.output, version }).into_response(), &ran.plugin)
        }
        Call::V2 { function, input, output: encoding } => {
            let ran = state.host.call(&target, &function, input).await?;
            let version = ran.plugin.version.as_ref().map(ToString::to_string);
            let response = Json(FunctionResponse { version, ..FunctionResponse::new(ran.output, encoding) });
            with_version(response.into_response(), &ran.plugin)
        }
    })
}

/// A request's version requirement, parsed (never echoed back: see
/// [`plugin_host::VersionRequirement`]).
pub(crate) fn requirement(text: Option<&str>) -> Result<Option<plugin_host::VersionRequirement>, ApiError> {
    text.map(plugin_host::VersionRequirement::parse).transpose().map_err(ApiError::InvalidVersionRequirement)
}

/// Adds the `x-plugin-version` header when a versioned plugin answered.
pub(crate) fn with_version(mut response: axum::response::Response, plugin: &PluginRef) -> axum::response::Response {
    if let Some(version) = &plugin.version
        && let Ok(value) = HeaderValue::from_str(&version.to_string())
    {
        response.headers_mut().insert(PLUGIN_VERSION, value);
    }
    response
}

/// `?version=<requirement>` on the plugin endpoints.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionQuery {
    /// A version requirement in Cargo's syntax (`^1.2`, `~1.4.0`, `=1.4.2`, `>=1, <3`), at most
    /// 128 bytes; without one, the highest release (or the unversioned plugin file).
    #[param(example = "^1")]
    pub version: Option<String>,
}

async fn method_not_allowed() -> impl IntoResponse {
    ([(header::ALLOW, "POST")], ApiError::MethodNotAllowed)
}

/// Other methods on the `GET` endpoints: the same JSON error as every other (axum's own 405 has
/// no body).
async fn only_get() -> impl IntoResponse {
    ([(header::ALLOW, "GET,HEAD")], ApiError::OnlyGet)
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain", description = "The process serves HTTP (liveness).", example = json!("ok"))))]
async fn healthz() -> &'static str {
    "ok"
}

/// Answer of `GET /readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Always `ready` (an unready replica answers an error).
    #[schema(value_type = String, example = "ready")]
    pub status: &'static str,
    /// Where plugins come from, for operators.
    pub store: String,
    pub plugins: usize,
    /// Plugins in the store that would be refused (they break the ABI, or cannot be read, or
    /// are over the size limit); the service is still ready to serve the others.
    pub unloadable: Vec<PluginName>,
    pub file_descriptors: crate::descriptors::Descriptors,
    /// The worker processes (process isolation only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub workers: Option<WorkerPoolStatus>,
    /// Set while the store serves in a degraded way: an OCI registry that cannot be reached,
    /// while the versions already pulled keep serving (new resolutions answer 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub store_degraded: Option<String>,
}

/// Ready when the host can serve: the store answers within [`LISTING_DEADLINE`] (a store that
/// cannot be listed, for example a Fluid mount that is not there yet, makes this 503 so that no
/// traffic is routed here), file descriptors are not about to run out and (with workers) a
/// worker is alive or can be started. The store's part comes from [`ReadinessFacts`], which
/// shares nothing with listings and calls.
#[utoipa::path(get, path = "/readyz", operation_id = "readyz", tag = "operations",
    responses((status = 200, body = Readiness, description = "Ready to serve (readiness).")))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<Readiness>, ApiError> {
    let file_descriptors = crate::descriptors::Descriptors::now();
    if !file_descriptors.have_headroom() {
        return Err(ApiError::OutOfDescriptors);
    }
    let workers = state.host.workers();
    if workers.as_ref().is_some_and(|workers| !workers.can_serve()) {
        return Err(ApiError::NoWorkers);
    }
    let facts = state.readiness.current(&state.host).await?;
    Ok(Json(Readiness {
        status: "ready",
        store: state.host.describe_store(),
        file_descriptors,
        workers,
        store_degraded: state.host.store_degraded(),
        plugins: facts.plugins,
        unloadable: facts.unloadable.clone(),
    }))
}

/// What `/readyz` says about the store: found by at most one probe at a time (a single
/// flight, on one blocking thread, never a listing permit), and reused by every probe for
/// [`READINESS_FACTS_TTL`]. Probes that arrive while it is being found wait for that answer
/// (within [`LISTING_DEADLINE`]) instead of asking the store again; a store that hangs keeps
/// the one probe thread busy and every probe answers 503, which is the truth.
#[derive(Debug, Default)]
pub struct ReadinessFacts {
    last: Arc<tokio::sync::Mutex<Option<Arc<StoreFacts>>>>,
}

/// The store's part of a readiness answer.
#[derive(Debug)]
struct StoreFacts {
    /// When the store was asked.
    found: Instant,
    plugins: usize,
    unloadable: Vec<PluginName>,
}

impl ReadinessFacts {
    async fn current(&self, host: &Host) -> Result<Arc<StoreFacts>, ApiError> {
        let deadline = tokio::time::Instant::now() + LISTING_DEADLINE;
        let mut last = tokio::time::timeout_at(deadline, Arc::clone(&self.last).lock_owned())
            .await
            .map_err(|_| ApiError::StoreTooSlow)?;
        if let Some(facts) = last.as_ref()
            && facts.found.elapsed() < READINESS_FACTS_TTL
        {
            return Ok(Arc::clone(facts));
        }
        let host = host.clone();
        // The lock goes with the work: if the store outlasts this probe, the next probes wait
        // for the same answer rather than start another thread.
        let task = tokio::spawn(async move {
            let found = Instant::now();
            let plugins = host.plugins().await?;
            let facts = Arc::new(StoreFacts {
                found,
                plugins: plugins.len(),
                unloadable: plugins
                    .into_iter()
                    .filter(|p| p.abi.as_ref().is_none_or(|abi| !abi.compliant))
                    .map(|p| p.name)
                    .collect(),
            });
            *last = Some(Arc::clone(&facts));
            Ok::<_, plugin_host::Error>(facts)
        });
        tokio::time::timeout_at(deadline, task)
            .await
            .map_err(|_| ApiError::StoreTooSlow)?
            .map_err(|join_error| ApiError::Internal(format!("store task panicked: {join_error}")))?
            .map_err(ApiError::from)
    }
}

/// Every plugin, as a call without a version requirement gets it, sorted by name.
#[utoipa::path(get, path = "/plugins", operation_id = "list_plugins", tag = "plugins",
    responses((status = 200, body = Vec<PluginStatus>, description = "Every plugin in the store.")))]
async fn list_plugins(State(state): State<Arc<AppState>>) -> Result<Json<Vec<PluginStatus>>, ApiError> {
    let host = state.host.clone();
    Ok(Json(listing(&state, async move { host.plugins().await }).await?))
}

/// One plugin: the version a request with `?version=` (or without) would get.
#[utoipa::path(get, path = "/plugins/{name}", operation_id = "show_plugin", tag = "plugins",
    params(openapi::PluginPath, VersionQuery),
    responses((status = 200, body = PluginStatus, description = "The plugin version a call with this requirement runs.")))]
async fn show_plugin(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<VersionQuery>, QueryRejection>,
) -> Result<Json<PluginStatus>, ApiError> {
    let Path(name) = path.map_err(|_| ApiError::InvalidPath)?;
    let name = PluginName::new(&name).map_err(ApiError::InvalidName)?;
    let Query(query) = query.map_err(|_| ApiError::InvalidRequest)?;
    let target = Target { name, requirement: requirement(query.version.as_deref())? };
    let host = state.host.clone();
    Ok(Json(listing(&state, async move { host.plugin(&target).await }).await?))
}

/// Answer of `GET /plugins/{name}/versions`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VersionsResponse {
    pub name: PluginName,
    /// The unversioned file (`"version": null`) first if there is one, then every version,
    /// lowest first.
    pub versions: Vec<VersionStatus>,
}

/// Every version of one plugin.
#[utoipa::path(get, path = "/plugins/{name}/versions", operation_id = "list_versions", tag = "plugins",
    params(openapi::PluginPath),
    responses((status = 200, body = VersionsResponse, description = "The unversioned file first, if any, then every version, lowest first.")))]
async fn list_versions(
    State(state): State<Arc<AppState>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<VersionsResponse>, ApiError> {
    let Path(name) = path.map_err(|_| ApiError::InvalidPath)?;
    let name = PluginName::new(&name).map_err(ApiError::InvalidName)?;
    let (host, lookup) = (state.host.clone(), name.clone());
    let versions = listing(&state, async move { host.versions(&lookup).await }).await?;
    Ok(Json(VersionsResponse { name, versions }))
}

/// Prometheus metrics, in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "application/openmetrics-text", description = "The metrics (OpenMetrics text, version 1.0.0).")))]
async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    state.metrics.set_in_flight(state.host.calls_in_flight());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

/// Runs store work (the host runs it on a blocking thread: a slow or hung mount must not stall
/// the server) within the listings' own budget ([`MAX_LISTINGS`], [`LISTING_DEADLINE`]). A
/// listing past its deadline keeps its permit until the store answers, so a hung store cannot
/// pile up blocked threads.
async fn listing<T: Send + 'static>(
    state: &AppState,
    work: impl Future<Output = Result<T, plugin_host::Error>> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = Arc::clone(&state.listings).try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
    let task = tokio::spawn(async move {
        let _permit = permit;
        work.await
    });
    tokio::time::timeout(LISTING_DEADLINE, task)
        .await
        .map_err(|_| ApiError::StoreTooSlow)?
        .map_err(|join_error| ApiError::Internal(format!("store task panicked: {join_error}")))?
        .map_err(ApiError::from)
}

/// Seconds a client should wait before retrying a 503.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::{RequestIds, is_json};

    #[test]
    fn json_media_types_are_told_apart_in_any_case() {
        for json in ["application/json", "Application/JSON", "application/problem+json", "APPLICATION/VND.A+JSON"] {
            assert!(is_json(json), "{json}");
        }
        for other in ["text/json", "application/jsonx", "application/xml", "json", "application/json+", "+json", ""] {
            assert!(!is_json(other), "{other}");
        }
    }

    /// Ids are UUID-shaped (version 4, RFC 9562's variant) and carry the counter in their last
    /// 14 bits and 48 bits.
    #[test]
    fn request_ids_are_uuid_shaped_and_count() {
        let ids = RequestIds::new();
        ids.next.store(0x1234_0000_0000_00ff, std::sync::atomic::Ordering::Relaxed);
        let (first, second) = (ids.make(), ids.make());
        let first = first.to_str().unwrap();
        let shape = regex::Regex::new("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$").unwrap();
        assert!(shape.is_match(first), "{first}");
        assert!(first.ends_with("-9234-0000000000ff"), "{first}");
        assert!(second.to_str().unwrap().ends_with("-9234-000000000100"), "{second:?}");
        assert_eq!(first[..19], second.to_str().unwrap()[..19], "one random part per server");
    }
}
