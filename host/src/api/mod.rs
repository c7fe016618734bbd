//! The HTTP API (axum). Knows plugins only through [`PluginRunner`]; nothing here touches
//! WasmEdge or the filesystem.

mod error;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, State, rejection::JsonRejection},
    http::{HeaderName, Request, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use error::ApiError;

use crate::{
    metrics::Metrics,
    runner::{PluginRunner, PluginStatus, RunError},
    store::PluginName,
};

/// Largest request body accepted; a `/run` request is a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the HTTP layer needs, shared by every request.
#[derive(Debug, Clone)]
pub struct AppState {
    pub runner: Arc<dyn PluginRunner>,
    pub metrics: Arc<Metrics>,
    /// Calls allowed to run at once; more are refused with 503 instead of queueing without
    /// bound behind the CPU.
    pub in_flight: Arc<Semaphore>,
}

impl AppState {
    pub fn new(runner: Arc<dyn PluginRunner>, metrics: Arc<Metrics>, max_in_flight: usize) -> Self {
        AppState { runner, metrics, in_flight: Arc::new(Semaphore::new(max_in_flight)) }
    }
}

/// The service's routes; `main` serves it and tests drive it directly.
pub fn app(state: AppState) -> Router {
    // Every request gets an id (or keeps the caller's `x-request-id`), which is logged with
    // everything the request does and returned in the response.
    let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
        let id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
        tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
    });
    Router::new()
        .route("/run", post(run).fallback(method_not_allowed))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/plugins", get(list_plugins))
        .route("/plugins/{name}", get(show_plugin))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::map_request(screen_request))
        .with_state(state)
}

/// Longest caller-chosen request id kept; a longer one is replaced by a fresh id.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// What every request goes through before anything else:
/// - a caller's `x-request-id` is logged and echoed, so only a short, plain one is kept
///   (letters, digits, `-`, `_`, `.`, `:`, at most [`MAX_REQUEST_ID_LEN`] bytes); any other is
///   dropped and a fresh id is made for the request;
/// - a compressed body (`Content-Encoding` other than `identity`) is refused: the host does not
///   decompress, and reading gzip as JSON would only give a confusing error.
async fn screen_request(mut request: Request<axum::body::Body>) -> Result<Request<axum::body::Body>, ApiError> {
    let usable_id = |id: &[u8]| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID_LEN
            && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    if request.headers().get(REQUEST_ID).is_some_and(|id| !usable_id(id.as_bytes())) {
        request.headers_mut().remove(REQUEST_ID);
    }
    let encoded = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err(ApiError::UnsupportedEncoding);
    }
    Ok(request)
}

/// Body of `POST /run`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The plugin's name (see [`PluginName`] for what is allowed).
    pub plugin: String,
    /// The argument passed to the plugin's `process`.
    pub input: i32,
}

/// Answer of a successful `POST /run`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunResponse {
    pub output: i32,
}

async fn run(
    State(state): State<AppState>,
    request: Result<Json<RunRequest>, JsonRejection>,
) -> Result<Json<RunResponse>, ApiError> {
    let started = Instant::now();
    let mut plugin = None;
    let result = run_plugin(&state, request, &mut plugin).await;
    let (outcome, plugin_found) = match &result {
        Ok(_) => ("ok", true),
        Err(error) => (error.kind().code(), error.kind().plugin_found()),
    };
    // Only names the store has become label values (see `Metrics`), so clients cannot create
    // series by inventing names.
    let known = plugin.filter(|_| plugin_found);
    state.metrics.observe_request(known.as_ref().map(PluginName::as_str), outcome, started.elapsed());
    result
}

async fn run_plugin(
    state: &AppState,
    request: Result<Json<RunRequest>, JsonRejection>,
    plugin: &mut Option<PluginName>,
) -> Result<Json<RunResponse>, ApiError> {
    let Json(request) = request.map_err(ApiError::from_rejection)?;
    let name = PluginName::new(&request.plugin).map_err(ApiError::InvalidName)?;
    *plugin = Some(name.clone());
    let permit = Arc::clone(&state.in_flight).try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
    let (runner, metrics) = (Arc::clone(&state.runner), Arc::clone(&state.metrics));
    let output = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _in_flight = metrics.track_in_flight();
        runner.run(&name, request.input)
    })
    .await
    .map_err(|join_error| ApiError::Internal(format!("plugin call panicked: {join_error}")))??;
    Ok(Json(RunResponse { output }))
}

async fn method_not_allowed() -> impl IntoResponse {
    ([(header::ALLOW, "POST")], ApiError::MethodNotAllowed)
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Answer of `GET /readyz`.
#[derive(Debug, Serialize)]
pub struct Readiness {
    pub status: &'static str,
    pub store: String,
    pub plugins: usize,
    /// Plugins in the store that would be refused (they break the ABI, or cannot be read, or
    /// are over the size limit); the service is still ready to serve the others.
    pub unloadable: Vec<PluginName>,
}

/// Ready when the store answers; a store that cannot be listed (for example a Fluid mount that
/// is not there yet) makes this 503 so that no traffic is routed here.
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let runner = Arc::clone(&state.runner);
    let plugins = blocking(&state, move || runner.list()).await?;
    Ok(Json(Readiness {
        status: "ready",
        store: state.runner.describe_store(),
        plugins: plugins.len(),
        unloadable: plugins
            .into_iter()
            .filter(|p| p.abi.as_ref().is_none_or(|abi| !abi.compliant))
            .map(|p| p.name)
            .collect(),
    }))
}

async fn list_plugins(State(state): State<AppState>) -> Result<Json<Vec<PluginStatus>>, ApiError> {
    let runner = Arc::clone(&state.runner);
    Ok(Json(blocking(&state, move || runner.list()).await?))
}

async fn show_plugin(State(state): State<AppState>, Path(name): Path<String>) -> Result<Json<PluginStatus>, ApiError> {
    let name = PluginName::new(&name).map_err(ApiError::InvalidName)?;
    let runner = Arc::clone(&state.runner);
    Ok(Json(blocking(&state, move || runner.inspect(&name)).await?))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}

/// Runs store work off the async threads (a slow or hung mount must not stall the server),
/// counted against the same concurrency limit as plugin calls: listing reads every plugin, so
/// unbounded listings could crowd out the calls.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce() -> Result<T, RunError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = Arc::clone(&state.in_flight).try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|join_error| ApiError::Internal(format!("store task panicked: {join_error}")))?
    .map_err(ApiError::from)
}

/// Seconds a client should wait before retrying a 503.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);
