//! The wasmtime peer of `cargo xtask bench`: the host's ABI v1 plugins run by wasmtime the way
//! Extism, Spin and Fastly run plugins, to show what the same work costs on another engine.
//!
//! - Each plugin is compiled once (Cranelift) and pre-instantiated (`InstancePre`: imports
//!   resolved, type checks done); every request gets a fresh `Store` and instance from the
//!   pooling allocator, runs `init`, `process(input)`, `cleanup`, and drops it.
//! - Its fastest configuration, measured (server CPU per request, `hello` over HTTP at 16
//!   connections, 3 alternated rounds of 5 s on 2 cores): the pooling allocator with linear
//!   memories and tables zeroed by `memset` on reuse (`*_keep_resident`) 15.3 µs; the pooling
//!   allocator's default (`madvise`) 60.5-62.9 µs, with decommits batched by 32 41.2 µs;
//!   on-demand allocation 73.7-75.0 µs; a 10 ms epoch tick instead of 1 ms no faster (62.6 µs
//!   pooled, 73.7 µs on demand). Calls run inline on the async thread.
//! - Deadlines are wasmtime's epoch interruption: one thread ticks the engine's epoch every
//!   millisecond, and a call that runs past its deadline traps. No timer is armed per call.
//! - The HTTP side is axum on tokio answering `POST /run` `{"plugin","input"}` with
//!   `{"output"}`, like the host; the call runs on the async thread (it is microseconds, and
//!   epoch interruption bounds it).
//!
//! `wasmtime-peer serve PLUGIN_DIR [ADDR]` prints `{"listening":"ADDR"}` once it listens, as
//! the host does. `wasmtime-peer timing PLUGIN_DIR` prints, as one JSON line, the mean cost of
//! one instantiate-and-call per plugin (`hello` and `primes`), in nanoseconds.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use serde::{Deserialize, Serialize};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, InstancePre, Linker, Module, PoolingAllocationConfig, Store, TypedFunc,
};

/// The host's default per-call deadline.
const DEADLINE: Duration = Duration::from_secs(1);
/// One epoch tick.
const TICK: Duration = Duration::from_millis(1);
/// Instances the pool holds at once: more than the server ever runs concurrently.
const POOL_INSTANCES: u32 = 256;
/// The host's default memory cap: 64 pages of 64 KiB.
const MAX_MEMORY_BYTES: usize = 64 << 16;

/// The input `primes` is timed with, as in the host's criterion benchmark.
const PRIMES_INPUT: i32 = 20_000;

/// A compiled, pre-instantiated plugin.
struct Plugin {
    pre: InstancePre<()>,
}

impl Plugin {
    fn load(engine: &Engine, path: &Path) -> anyhow::Result<Self> {
        let module = Module::from_file(engine, path).map_err(engine_error)?;
        let linker = Linker::new(engine);
        let pre = linker.instantiate_pre(&module).map_err(engine_error)?;
        Ok(Plugin { pre })
    }

    /// A fresh instance: init, process(input), cleanup, under one deadline.
    fn call(&self, engine: &Engine, input: i32) -> Result<i32, CallError> {
        let mut store = Store::new(engine, ());
        store.set_epoch_deadline((DEADLINE.as_millis() as u64).max(1));
        let instance = self.pre.instantiate(&mut store).map_err(|e| CallError::Engine(e.to_string()))?;
        let func = |store: &mut Store<()>, name: &str| -> Result<TypedFunc<(), i32>, CallError> {
            instance.get_typed_func(store, name).map_err(|e| CallError::Engine(e.to_string()))
        };
        let init = func(&mut store, "init")?;
        let cleanup = func(&mut store, "cleanup")?;
        let process: TypedFunc<i32, i32> =
            instance.get_typed_func(&mut store, "process").map_err(|e| CallError::Engine(e.to_string()))?;
        let trap = |e: wasmtime::Error| CallError::Trap(e.to_string());
        let code = init.call(&mut store, ()).map_err(trap)?;
        if code < 0 {
            return Err(CallError::Plugin(code));
        }
        let output = process.call(&mut store, input).map_err(trap);
        let cleaned = cleanup.call(&mut store, ()).map_err(trap)?;
        let output = output?;
        if output < 0 {
            return Err(CallError::Plugin(output));
        }
        if cleaned < 0 {
            return Err(CallError::Plugin(cleaned));
        }
        Ok(output)
    }
}

/// wasmtime has an error type of its own, which is not a `std::error::Error`.
fn engine_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{error:#}")
}

#[derive(Debug)]
enum CallError {
    Engine(String),
    Trap(String),
    Plugin(i32),
}

fn engine() -> anyhow::Result<Engine> {
    let mut pooling = PoolingAllocationConfig::default();
    pooling.total_core_instances(POOL_INSTANCES).total_memories(POOL_INSTANCES).total_tables(POOL_INSTANCES);
    pooling.max_memory_size(MAX_MEMORY_BYTES);
    // Memory and tables go back to zero with `memset` rather than `madvise`: the system call
    // and the page faults after it cost more than the whole request otherwise (see the table).
    pooling.linear_memory_keep_resident(MAX_MEMORY_BYTES).table_keep_resident(MAX_MEMORY_BYTES);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling)).epoch_interruption(true);
    let engine = Engine::new(&config).map_err(engine_error)?;
    let ticker = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = ticker.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(TICK);
        }
    });
    Ok(engine)
}

/// Every v1 plugin of `dir` that wasmtime loads (others, such as v2 plugins, are skipped).
fn plugins(engine: &Engine, dir: &Path) -> anyhow::Result<HashMap<String, Plugin>> {
    let mut plugins = HashMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        if let Ok(plugin) = Plugin::load(engine, &path)
            && plugin.call(engine, 1).is_ok()
        {
            plugins.insert(name, plugin);
        }
    }
    anyhow::ensure!(plugins.contains_key("hello"), "no hello plugin in {}", dir.display());
    Ok(plugins)
}

struct Peer {
    engine: Engine,
    plugins: HashMap<String, Plugin>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    plugin: String,
    input: i32,
}

#[derive(Serialize)]
struct RunResponse {
    output: i32,
}

async fn run(
    State(peer): State<Arc<Peer>>,
    Json(request): Json<RunRequest>,
) -> Result<Json<RunResponse>, (StatusCode, Json<serde_json::Value>)> {
    // A benchmark peer, not a service: the details go back to whoever runs the benchmark.
    let refuse =
        |status: StatusCode, code: &str, detail: String| (status, Json(serde_json::json!({ "error": code, "detail": detail })));
    let plugin = peer
        .plugins
        .get(&request.plugin)
        .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "plugin_not_found", request.plugin.clone()))?;
    match plugin.call(&peer.engine, request.input) {
        Ok(output) => Ok(Json(RunResponse { output })),
        Err(CallError::Plugin(code)) => Err(refuse(StatusCode::UNPROCESSABLE_ENTITY, "plugin_error", code.to_string())),
        Err(CallError::Trap(trap)) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, "plugin_trapped", trap)),
        Err(CallError::Engine(error)) => Err(refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal", error)),
    }
}

async fn serve(dir: PathBuf, addr: String) -> anyhow::Result<()> {
    let engine = engine()?;
    let plugins = plugins(&engine, &dir)?;
    let peer = Arc::new(Peer { engine, plugins });
    let app = Router::new().route("/run", post(run)).with_state(peer);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("{}", serde_json::json!({ "listening": listener.local_addr()?.to_string() }));
    axum::serve(listener, app).await?;
    Ok(())
}

/// Mean nanoseconds of one instantiate-and-call, over batches of at least a second, after a
/// warm-up (the same measure as criterion's mean).
fn timing(dir: &Path) -> anyhow::Result<()> {
    let engine = engine()?;
    let mut report = serde_json::Map::new();
    for (name, input, expected) in [("hello", 21, 43), ("primes", PRIMES_INPUT, 2262)] {
        let plugin = Plugin::load(&engine, &dir.join(format!("{name}.wasm")))?;
        let check = plugin.call(&engine, input).map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        anyhow::ensure!(check == expected, "{name}({input}) = {check}, expected {expected}");
        let measure = |budget: Duration| {
            let started = Instant::now();
            let mut calls = 0u64;
            while started.elapsed() < budget {
                std::hint::black_box(plugin.call(&engine, std::hint::black_box(input)).ok());
                calls += 1;
            }
            started.elapsed().as_nanos() as f64 / calls as f64
        };
        measure(Duration::from_millis(500));
        report.insert(name.into(), measure(Duration::from_secs(2)).into());
    }
    println!("{}", serde_json::Value::Object(report));
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["serve", dir] => serve_blocking(dir.into(), "127.0.0.1:0".into()),
        ["serve", dir, addr] => serve_blocking(dir.into(), addr.into()),
        ["timing", dir] => timing(Path::new(dir)),
        _ => anyhow::bail!("usage: wasmtime-peer serve PLUGIN_DIR [ADDR] | timing PLUGIN_DIR"),
    }
}

fn serve_blocking(dir: PathBuf, addr: String) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(dir, addr))
}
