//! The physical limit of the HTTP stack for `cargo xtask bench`: the smallest axum server that
//! answers `POST /run` `{"plugin":"hello","input":N}` with `{"output":2N+1}`. No hop to another
//! thread, no metrics, no tracing, no request ids: what any server on this stack costs.
//!
//! `cargo run --release -p host --example bare_native -- 127.0.0.1:8091`

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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8091".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // `cargo xtask bench` reads the address from this line, as it does from the host's.
    host::announce_listening(listener.local_addr()?)?;
    axum::serve(listener, Router::new().route("/run", post(run))).await?;
    Ok(())
}
