//! The HTTP API (axum). Knows plugins only through [`PluginRunner`]; nothing here touches
//! WasmEdge or the filesystem.

mod error;

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State, rejection::JsonRejection},
    http::{Method, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use error::ApiError;

use crate::{runner::PluginRunner, store::PluginName};

/// Largest request body accepted; a `/run` request is a few dozen bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// What the HTTP layer needs, shared by every request.
#[derive(Debug, Clone)]
pub struct AppState {
    pub runner: Arc<dyn PluginRunner>,
    /// Calls allowed to run at once; more are refused with 503 instead of queueing without
    /// bound behind the CPU.
    pub in_flight: Arc<Semaphore>,
}

impl AppState {
    pub fn new(runner: Arc<dyn PluginRunner>, max_in_flight: usize) -> Self {
        AppState { runner, in_flight: Arc::new(Semaphore::new(max_in_flight)) }
    }
}

/// The service's routes; `main` serves it and tests drive it directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/run", post(run).fallback(method_not_allowed))
        .route("/healthz", get(healthz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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
    let Json(request) = request.map_err(ApiError::from_rejection)?;
    let name = PluginName::new(&request.plugin).map_err(ApiError::InvalidName)?;
    let permit = Arc::clone(&state.in_flight).try_acquire_owned().map_err(|_| ApiError::Overloaded)?;
    let runner = Arc::clone(&state.runner);
    let output = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        runner.run(&name, request.input)
    })
    .await
    .map_err(|join_error| ApiError::Internal(format!("plugin call panicked: {join_error}")))??;
    Ok(Json(RunResponse { output }))
}

async fn method_not_allowed(method: Method) -> impl IntoResponse {
    let _ = method;
    ([(header::ALLOW, "POST")], ApiError::MethodNotAllowed)
}

/// The process is up and serving HTTP.
async fn healthz() -> &'static str {
    "ok"
}

/// Seconds a client should wait before retrying a 503.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(1);
