//! The smallest axum router that answers `POST /run` `{"plugin":"hello","input":N}` with
//! `{"output":2N+1}`: the bare baseline (`examples/bare_native.rs`, and
//! `benches/request_path.rs`).

use axum::{Json, Router, http::StatusCode, routing::post};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct RunRequest {
    plugin: String,
    input: i32,
}

#[derive(Serialize)]
struct RunResponse {
    output: i32,
}

async fn run(Json(request): Json<RunRequest>) -> Result<Json<RunResponse>, StatusCode> {
    match request.plugin.as_str() {
        "hello" => Ok(Json(RunResponse { output: request.input.wrapping_mul(2).wrapping_add(1) })),
        _ => Err(StatusCode::NOT_FOUND),
    }
}

/// The bare router: one route, no layers.
pub fn router() -> Router {
    Router::new().route("/run", post(run))
}
