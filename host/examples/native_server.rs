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
use plugin_host::{
    Host, PluginStatus, Ran, Target, VersionStatus,
    runner::{Attempt, Calls, Inspects, Interface, PluginStream, RunError},
    store::{PluginName, PluginRef, StoreError},
};

/// `hello` computes what `plugins/hello` does.
#[derive(Debug)]
struct NativeRunner;

impl Calls for NativeRunner {
    /// Native functions have no versions: every request gets the one there is.
    fn resolve(&self, target: &Target) -> Result<PluginRef, RunError> {
        Ok(PluginRef::from(&target.name))
    }

    /// A native function is always short: it runs where the host runs a short plugin call.
    fn run_now(&self, target: &Target, input: i32) -> Attempt<i32> {
        Attempt::Done(self.run(&PluginRef::from(&target.name), input))
    }

    fn run(&self, plugin: &PluginRef, input: i32) -> Result<Ran<i32>, RunError> {
        match plugin.name.as_str() {
            "hello" => Ok(Ran { output: 2 * input + 1, plugin: plugin.clone(), sha256: "native".into() }),
            _ => Err(StoreError::NotFound(plugin.clone()).into()),
        }
    }

    fn interface(&self, plugin: &PluginRef) -> Result<Interface, RunError> {
        match plugin.name.as_str() {
            "hello" => Ok(Interface::V1),
            _ => Err(StoreError::NotFound(plugin.clone()).into()),
        }
    }

    fn call(&self, plugin: &PluginRef, function: &str, _input: &[u8]) -> Result<Ran<Vec<u8>>, RunError> {
        Err(self.interface(plugin)?.function_kind(function).expect_err("hello has no functions"))
    }

    fn open_stream(&self, plugin: &PluginRef, function: &str) -> Result<Ran<Box<dyn PluginStream>>, RunError> {
        Err(self.interface(plugin)?.function_kind(function).expect_err("hello has no functions"))
    }
}

impl Inspects for NativeRunner {
    fn inspect(&self, plugin: &PluginRef) -> Result<PluginStatus, RunError> {
        Err(StoreError::NotFound(plugin.clone()).into())
    }

    fn versions(&self, name: &PluginName) -> Result<Vec<VersionStatus>, RunError> {
        Err(StoreError::NotFound(name.into()).into())
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        Ok(Vec::new())
    }

    fn describe_store(&self) -> String {
        "native functions (benchmark baseline)".into()
    }
}

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
