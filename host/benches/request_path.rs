//! The request path without the network: one `POST /run` `hello` through a router, called
//! with `oneshot` on the benchmark's thread, so that what differs between variants is the
//! router and what runs inside it, not TCP or the scheduler. Run by `cargo xtask bench`, which
//! reads the results into BENCHMARKS.md.
//!
//! - `bare_axum`: the smallest axum router answering the same request (`examples/common/bare.rs`,
//!   what `bare_native` serves);
//! - `host_native`: the host's router (its one layer: request id, tracing span, outcome,
//!   metrics; then body limits, JSON, admission, error mapping) with native functions instead
//!   of plugins (`examples/common/native_runner.rs`, what `native_server` serves).
//!   `host_native` minus `bare_axum` is what the host's HTTP layer costs per request;
//! - `host_in_process`: the host's router with the real in-process runner calling the
//!   `hello` plugin: minus `host_native`, what the plugin call adds.

use std::{path::PathBuf, sync::Arc, time::Duration};

use axum::{Router, body::Body, http::Request};
use criterion::{Criterion, criterion_group, criterion_main};
use host::{
    api::{AppState, app},
    metrics::Metrics,
};
use http_body_util::BodyExt;
use plugin_host::{
    Host,
    runner::InProcessRunner,
    runtime::{Engine, ExecutionMode, RuntimeConfig},
    store::LocalPluginStore,
};
use tower::ServiceExt;

#[path = "../examples/common/bare.rs"]
mod bare;
#[path = "../examples/common/native_runner.rs"]
mod native_runner;

/// This checkout's built plugins (see `benches/runtime.rs`).
fn plugin_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../target/plugins")
}

const BODY: &str = r#"{"plugin":"hello","input":21}"#;

/// One request through `router`, answered and its body read: `{"output":43}` or a panic.
async fn one(router: &Router) -> usize {
    let request = Request::post("/run").header("content-type", "application/json").body(Body::from(BODY)).unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    body.len()
}

fn request_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The host's router over `runner`, which reports to the same metrics as the server.
    let host_router = |runner: Box<dyn plugin_host::runner::Runner>, metrics: Arc<Metrics>| {
        app(AppState::new(Host::with_runner(runner, Arc::clone(&metrics) as _, 256), metrics))
    };
    let in_process = {
        let metrics = Arc::new(Metrics::new());
        let aot = plugin_dir().with_file_name("bench-aot-cache");
        let engine =
            Engine::new(RuntimeConfig { aot_cache_dir: Some(aot), ..RuntimeConfig::new(ExecutionMode::Aot) }).unwrap();
        let store = Arc::new(LocalPluginStore::new(plugin_dir(), 16 << 20).unwrap());
        host_router(Box::new(InProcessRunner::new(store, engine, Arc::clone(&metrics) as _, 16)), metrics)
    };
    let routers = [
        ("bare_axum", bare::router()),
        ("host_native", host_router(Box::new(native_runner::NativeRunner), Arc::new(Metrics::new()))),
        ("host_in_process", in_process),
    ];
    let mut group = c.benchmark_group("request_path");
    for (name, router) in &routers {
        // Every variant gives the same answer before it is timed.
        assert_eq!(runtime.block_on(one(router)), r#"{"output":43}"#.len());
        group.bench_function(*name, |b| b.iter(|| runtime.block_on(one(router))));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = request_path
}
criterion_main!(benches);
