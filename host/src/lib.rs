//! The plugin host: serves sandboxed WebAssembly plugins over HTTP.
//!
//! Layers, outermost first (see ARCHITECTURE.md):
//! - [`api`]: axum routes, JSON in and out, status codes;
//! - [`runner`]: runs a plugin by name, keeping versions current (hot swap), in this process
//!   or in supervised worker processes;
//! - [`store`]: where plugin files come from;
//! - [`runtime`]: WasmEdge, and nothing else touches it.

pub mod api;
pub mod config;
pub mod failure;
mod logs;
pub mod metrics;
pub mod runner;
pub mod runtime;
pub mod server;
pub mod store;

pub use server::{ServeOptions, serve};

use std::sync::Arc;

use anyhow::Context;

use crate::{
    api::AppState,
    config::{Config, Isolation, StoreKind},
    metrics::Metrics,
    runner::{DEFAULT_CACHE_CAPACITY, InProcessRunner, PluginRunner, WorkerPoolRunner, WorkerSettings},
    runtime::{AotCompilation, Engine, RuntimeConfig},
    store::{ConfigOverride, FluidPluginStore, LocalPluginStore, OciPluginStore, PluginStore},
};

/// Builds the shared state from the configuration: store, runner (in-process or worker pool).
pub fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let runtime = config.runtime().map_err(anyhow::Error::msg)?;
    let max_bytes = runtime.limits.max_plugin_bytes;
    let store: Arc<dyn PluginStore> = match config.plugin_store {
        StoreKind::Local => {
            let dir = config.plugin_dir.as_ref().context(
                "the local plugin store needs a folder of `<name>.wasm` files: pass --plugin-dir DIR or set PLUGIN_DIR",
            )?;
            Arc::new(
                LocalPluginStore::new(dir, max_bytes).with_context(|| format!("plugin directory {}", dir.display()))?,
            )
        }
        // The mount may not be there yet: requests answer 503 until it is.
        StoreKind::Fluid => Arc::new(FluidPluginStore::new(&config.fluid_mount_path, max_bytes)),
        // The registry may not answer yet either: only settings that cannot work stop start-up.
        StoreKind::Oci => {
            let settings = config.oci(max_bytes).map_err(anyhow::Error::msg)?;
            let cache = settings.cache_dir.clone();
            Arc::new(OciPluginStore::new(settings).with_context(|| format!("OCI store (cache {})", cache.display()))?)
        }
    };
    tracing::info!(store = %store.describe(), mode = ?runtime.mode, isolation = ?config.isolation, "plugin store configured");
    let config_override = match &config.plugin_config_dir {
        Some(dir) => {
            let dir =
                ConfigOverride::new(dir).with_context(|| format!("plugin configuration folder {}", dir.display()))?;
            tracing::info!(folder = %dir.root().display(), "plugin configuration is looked for here first");
            Some(dir)
        }
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let runner: Arc<dyn PluginRunner> = match config.isolation {
        Isolation::InProcess => {
            // WasmEdge keeps part of every AOT compilation for good; a child process per
            // compilation gives it back (see `runtime::AotCompilation`).
            let executable = std::env::current_exe().context("finding this executable to compile plugins")?;
            let runtime = RuntimeConfig { aot_compilation: AotCompilation::ChildProcess { executable }, ..runtime };
            let engine = Engine::new(runtime).context("starting the WebAssembly runtime")?;
            let runner = InProcessRunner::new(store, engine, Arc::clone(&metrics), DEFAULT_CACHE_CAPACITY)
                .with_short_call_budget(config.short_call_budget());
            match config_override {
                Some(dir) => Arc::new(runner.with_config_override(dir)),
                None => Arc::new(runner),
            }
        }
        Isolation::Process => {
            let executable = std::env::current_exe().context("finding this executable to start workers")?;
            let mut settings = WorkerSettings::new(executable);
            if let Some(workers) = config.workers {
                settings.workers = workers as usize;
            }
            settings.max_workers_per_plugin = config.max_workers_per_plugin.map(|cap| cap as usize);
            settings.max_stream_workers = config.max_stream_workers.map(|cap| cap as usize);
            settings.queue_timeout = std::time::Duration::from_millis(config.queue_timeout_ms);
            settings.memory_limit_bytes = Some(config.worker_memory_mb << 20);
            let runner = WorkerPoolRunner::new(store, runtime, settings, Arc::clone(&metrics), DEFAULT_CACHE_CAPACITY)
                .context("starting worker processes")?
                .with_short_call_budget(config.short_call_budget());
            match config_override {
                Some(dir) => Arc::new(runner.with_config_override(dir)),
                None => Arc::new(runner),
            }
        }
    };
    let mut state =
        AppState::new(runner, metrics, config.max_in_flight as usize).with_body_limits(config.body_limits());
    state.stream_limits = config.stream_limits();
    Ok(state)
}

/// Tells whoever started the server where it listens, in a form programs can read: one JSON
/// line on stdout, `{"listening":"127.0.0.1:8080"}`, printed once the socket is bound (logs go
/// to stderr, so stdout holds nothing else). Tests and benchmarks that start the binary on
/// port 0 read the address from it instead of scraping logs.
pub fn announce_listening(addr: std::net::SocketAddr) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::json!({ "listening": addr.to_string() }))?;
    stdout.flush()
}
