//! The plugin server: serves the plugins of a `plugin_host::Host` over HTTP.
//!
//! The library (`plugin-host`) does the work: stores, checking, compiling, hot swap, running
//! in worker processes. This crate is what makes it a service, and uses nothing of the library
//! but its public API:
//! - [`config`]: the command line and environment, mapped onto the library's settings;
//! - [`api`]: axum routes, JSON in and out, HTTP statuses;
//! - [`server`]: the accept loop, connection limits and graceful shutdown;
//! - [`metrics`]: Prometheus, fed by the library's `Observer`.

pub mod api;
pub mod config;
pub mod descriptors;
pub mod metrics;
pub mod server;

pub use server::{ServeOptions, serve};

use std::sync::Arc;

use anyhow::Context;
use plugin_host::{ConfigOverride, FluidPluginStore, Host, LocalPluginStore, OciPluginStore, PluginStore, TrustPolicy};

use crate::{
    api::AppState,
    config::{Config, StoreKind},
    metrics::Metrics,
};

/// Builds the shared state from the configuration: the store, and the host running its
/// plugins (in-process or in worker processes).
pub fn build_state(config: &Config) -> anyhow::Result<AppState> {
    let settings = config.settings().map_err(anyhow::Error::msg)?;
    // Before anything starts: a tokens file that cannot be used stops start-up at once.
    let tokens = config
        .tokens_file
        .as_ref()
        .map(|path| {
            api::Tokens::load(path)
                .map(Arc::new)
                .map_err(|error| anyhow::anyhow!("--tokens-file (TOKENS_FILE) {}: {error}", path.display()))
        })
        .transpose()?;
    let max_bytes = settings.limits.max_plugin_bytes;
    let trust = match &config.trust_policy {
        Some(path) => {
            Some(Arc::new(TrustPolicy::from_file(path).map_err(|error| anyhow::anyhow!("--trust-policy {error}"))?))
        }
        None => None,
    };
    let trusted = |store: LocalPluginStore| match &trust {
        Some(policy) => store.with_trust(Arc::clone(policy)),
        None => store,
    };
    let store: Arc<dyn PluginStore> = match config.plugin_store {
        StoreKind::Local => {
            let dir = config.plugin_dir.as_ref().context(
                "the local plugin store needs a folder of `<name>.wasm` files: pass --plugin-dir DIR or set PLUGIN_DIR",
            )?;
            Arc::new(trusted(
                LocalPluginStore::new(dir, max_bytes).with_context(|| format!("plugin directory {}", dir.display()))?,
            ))
        }
        // The mount may not be there yet: requests answer 503 until it is.
        StoreKind::Fluid => {
            let store = FluidPluginStore::new(&config.fluid_mount_path, max_bytes);
            Arc::new(match &trust {
                Some(policy) => store.with_trust(Arc::clone(policy)),
                None => store,
            })
        }
        // The registry may not answer yet either: only settings that cannot work stop start-up.
        StoreKind::Oci => {
            let mut settings = config.oci(max_bytes).map_err(anyhow::Error::msg)?;
            settings.trust = trust.clone();
            let cache = settings.cache_dir.clone();
            Arc::new(OciPluginStore::new(settings).with_context(|| format!("OCI store (cache {})", cache.display()))?)
        }
    };
    let policy = trust.as_ref().map(|policy| policy.fingerprint().to_string());
    tracing::info!(store = %store.describe(), mode = ?settings.mode, isolation = ?config.isolation, trust_policy = ?policy, "plugin store configured");
    let mut settings = settings;
    if let Some(dir) = &config.plugin_config_dir {
        let dir = ConfigOverride::new(dir).with_context(|| format!("plugin configuration folder {}", dir.display()))?;
        tracing::info!(folder = %dir.root().display(), "plugin configuration is looked for here first");
        settings.config_override = Some(dir);
    }
    let metrics = Arc::new(Metrics::new());
    let host = Host::with_observer(store, settings, Arc::clone(&metrics) as _)
        .context("starting the plugin host (the WebAssembly runtime, and worker processes if any)")?;
    let mut state = AppState::new(host, metrics).with_body_limits(config.body_limits());
    state.stream_limits = config.stream_limits();
    state.tokens = tokens;
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
