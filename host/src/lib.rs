//! The plugin host: serves sandboxed WebAssembly plugins over HTTP.
//!
//! Layers, outermost first (see ARCHITECTURE.md):
//! - [`api`]: axum routes, JSON in and out, status codes;
//! - [`runner`]: runs a plugin by name, keeping compiled versions current (hot swap);
//! - [`store`]: where plugin files come from;
//! - [`runtime`]: WasmEdge, and nothing else touches it.

pub mod api;
pub mod config;
pub mod runner;
pub mod runtime;
pub mod store;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::{
    api::AppState,
    config::Config,
    runner::{InProcessRunner, in_process::DEFAULT_CACHE_CAPACITY},
    runtime::Engine,
    store::LocalPluginStore,
};

/// Builds the shared state from the configuration: store, engine, runner.
pub fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let runtime = config.runtime();
    let store = LocalPluginStore::new(&config.plugin_dir, runtime.limits.max_plugin_bytes)
        .with_context(|| format!("plugin directory {}", config.plugin_dir.display()))?;
    tracing::info!(store = %store.root().display(), mode = ?runtime.mode, "plugin store ready");
    let engine = Engine::new(runtime).context("starting the WebAssembly runtime")?;
    let runner = InProcessRunner::new(Arc::new(store), engine, DEFAULT_CACHE_CAPACITY);
    Ok(AppState::new(Arc::new(runner), config.max_in_flight as usize))
}

/// Serves until `shutdown` completes, then lets in-flight requests finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, api::app(state)).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!(grace_secs = grace.as_secs(), "shutting down; draining in-flight requests");
        let _ = stop_tx.send(true);
    });
    let server = tokio::spawn(server.into_future());
    let drained = async {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = server => result.context("server task failed")?.context("server failed"),
        () = drained => {
            tracing::warn!("grace period over; dropping the requests still in flight");
            Ok(())
        }
    }
}
