//! The HTTP baseline for `cargo xtask bench`: the host's own HTTP stack (routes, JSON, error
//! mapping, request ids, tracing, metrics, admission) answering `POST /run` with native Rust
//! functions instead of plugins, on the thread that received the request, as the host runs a
//! short plugin call. The difference between this server and the real one is the cost of
//! WebAssembly; between it and `bare_native`, the cost of the host's middleware.
//!
//! `cargo run --release -p host --example native_server -- 127.0.0.1:8090`

use std::sync::Arc;

use host::{
    api::{AppState, app},
    metrics::Metrics,
};
use plugin_host::Host;

#[path = "common/native_runner.rs"]
mod native_runner;

use native_runner::NativeRunner;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    // `cargo xtask bench` reads the address from this line, as it does from the host's.
    host::announce_listening(listener.local_addr()?)?;
    let metrics = Arc::new(Metrics::new());
    let host = Host::with_runner(Box::new(NativeRunner), Arc::clone(&metrics) as _, 256);
    let state = AppState::new(host, metrics);
    axum::serve(listener, app(state)).await?;
    Ok(())
}
