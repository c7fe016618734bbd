//! Shared fixtures: compiled plugins, WAT modules, engines, temporary plugin folders, servers.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use host::{api::AppState, metrics::Metrics};
use plugin_host::{
    Host, Isolation, Settings, WorkerSettings,
    runner::InProcessRunner,
    runtime::{CompiledPlugin, Engine, ExecutionMode, RuntimeConfig},
    store::{LocalPluginStore, PluginStore},
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// Where `cargo xtask build-plugins` writes the example plugins. The package folder comes from
/// the test runner at run time: with a target folder shared between clones, cargo reuses a test
/// binary another clone built, and the path compiled into it is that clone's.
pub fn built_plugins() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../target/plugins")
}

/// The bytes of a compiled example plugin.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    let path = built_plugins().join(format!("{name}.wasm"));
    fs::read(&path).unwrap_or_else(|e| {
        panic!("{}: {e}; run `cargo xtask build-plugins` (or `cargo xtask test`) first", path.display())
    })
}

/// Where `cargo xtask build-plugins` writes the test fixtures (`invalid/`, `faults/`,
/// `compat/`): beside the served folder, never inside it.
pub fn built_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugin-fixtures")
}

/// A fault plugin's bytes (`plugins/faults/`), built by `cargo xtask build-plugins`.
pub fn fault_bytes(name: &str) -> Vec<u8> {
    let path = built_fixtures().join("faults").join(format!("{name}.wasm"));
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build-plugins`", path.display()))
}

/// A module written in WAT, for behaviour the C examples deliberately do not have.
pub fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("test WAT is valid")
}

/// A plugin in WAT whose three functions have the given bodies (each must leave one i32).
/// It declares ABI version 1 like the header does, so it passes the ABI check unless its
/// bodies break a rule.
pub fn wat_plugin(init: &str, process: &str, cleanup: &str) -> Vec<u8> {
    wat(&format!(
        r#"(module
            (memory (export "memory") 1)
            (func (export "init") (result i32) {init})
            (func (export "process") (param $input i32) (result i32) {process})
            (func (export "cleanup") (result i32) {cleanup})
            (@custom "wasm_plugin_abi" "\01\00\00\00"))"#
    ))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// AOT artifacts are content-addressed, so every test can share one folder and compile each
/// plugin once per test run.
pub fn shared_aot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("aot-cache")
}

pub fn runtime_config(mode: ExecutionMode) -> RuntimeConfig {
    RuntimeConfig { aot_cache_dir: Some(shared_aot_dir()), ..RuntimeConfig::new(mode) }
}

pub fn engine(mode: ExecutionMode) -> Engine {
    Engine::new(runtime_config(mode)).expect("engine starts")
}

pub fn compile(engine: &Engine, bytes: &[u8]) -> CompiledPlugin {
    engine.compile(bytes, &sha256_hex(bytes)).expect("plugin compiles")
}

pub const MODES: [ExecutionMode; 2] = [ExecutionMode::Interpreter, ExecutionMode::Aot];

/// A temporary plugin directory holding copies of the named example plugins.
pub fn plugin_dir(names: &[&str]) -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    for name in names {
        fs::write(dir.path().join(format!("{name}.wasm")), plugin_bytes(name)).expect("copy plugin");
    }
    dir
}

/// Replaces a plugin file the way deployments should: write aside, then rename over.
pub fn replace_atomically(dir: &Path, name: &str, bytes: &[u8]) {
    let temp = dir.join(format!(".{name}.wasm.tmp"));
    fs::write(&temp, bytes).expect("write new version");
    fs::rename(&temp, dir.join(format!("{name}.wasm"))).expect("rename over the old version");
}

pub fn runner_for(dir: &Path, config: RuntimeConfig) -> InProcessRunner {
    let store = LocalPluginStore::new(dir, config.limits.max_plugin_bytes).expect("store");
    let engine = Engine::new(config).expect("engine");
    InProcessRunner::new(Arc::new(store), engine, Arc::new(plugin_host::NoObserver), 16)
}

/// The host settings that run plugins as `config` says, in `isolation`.
pub fn settings(config: &RuntimeConfig, isolation: Isolation, max_in_flight: usize) -> Settings {
    Settings {
        isolation,
        mode: config.mode,
        limits: config.limits.clone(),
        aot_cache_dir: config.aot_cache_dir.clone(),
        aot_cache_max_bytes: config.aot_cache_max_bytes,
        aot_compilation: config.aot_compilation.clone(),
        check_abi: config.enforce_abi,
        cache_capacity: 16,
        max_calls_in_flight: max_in_flight,
        ..Settings::default()
    }
}

/// Worker processes of the `host` binary under test, `workers` of them.
pub fn workers(workers: usize) -> WorkerSettings {
    let mut settings = WorkerSettings::new(PathBuf::from(env!("CARGO_BIN_EXE_host")));
    settings.workers = workers;
    settings
}

/// What `host::build_state` makes, over any store: one metrics registry shared by the host
/// and the HTTP layer.
pub fn state_with(store: Arc<dyn PluginStore>, settings: Settings) -> AppState {
    let metrics = Arc::new(Metrics::new());
    let host = Host::with_observer(store, settings, Arc::clone(&metrics) as _).expect("host starts");
    AppState::new(host, metrics)
}

/// [`state_with`] an in-process host.
pub fn app_state(store: Arc<dyn PluginStore>, config: RuntimeConfig, max_in_flight: usize) -> AppState {
    state_with(store, settings(&config, Isolation::InProcess, max_in_flight))
}

pub fn local_store(dir: &Path) -> Arc<dyn PluginStore> {
    Arc::new(LocalPluginStore::new(dir, 16 << 20).expect("store"))
}

/// A real server on 127.0.0.1 with an ephemeral port, stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Set by [`TestServer::in_memory`]: requests go through the router itself, no socket.
    router: Option<axum::Router>,
}

impl TestServer {
    pub async fn start(state: AppState) -> Self {
        Self::start_with(state, host::ServeOptions { grace: Duration::from_secs(5), ..Default::default() }).await
    }

    pub async fn start_with(state: AppState, options: host::ServeOptions) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(host::serve(
            listener,
            state,
            async {
                let _ = stopped.await;
            },
            options,
        ));
        TestServer { addr, client: reqwest::Client::new(), stop: Some(stop), router: None }
    }

    /// The API's routes without a socket: [`run`](Self::run) and [`run_raw`](Self::run_raw)
    /// go through `app(state).oneshot(..)`. For tests of what the API answers; tests of
    /// connections, timeouts and shutdown need [`start`](Self::start).
    pub fn in_memory(state: AppState) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        TestServer { addr, client: reqwest::Client::new(), stop: None, router: Some(host::api::app(state)) }
    }

    /// A client of a server started elsewhere (the binary), which this value does not stop.
    pub fn connect(addr: SocketAddr) -> Self {
        TestServer { addr, client: reqwest::Client::new(), stop: None, router: None }
    }

    pub fn url(&self, path: &str) -> String {
        assert!(self.router.is_none(), "an in-memory server has no URL: start it with TestServer::start");
        format!("http://{}{path}", self.addr)
    }

    /// POSTs a raw JSON body to `/run`; returns the status and the parsed JSON answer.
    pub async fn run_raw(&self, body: &str) -> (u16, serde_json::Value) {
        if let Some(router) = &self.router {
            use http_body_util::BodyExt;
            use tower::ServiceExt;
            let request = axum::http::Request::post("/run")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string()))
                .expect("a request");
            let response = router.clone().oneshot(request).await.expect("the router answers");
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.expect("a whole body").to_bytes();
            return (status, serde_json::from_slice(&bytes).expect("JSON answer"));
        }
        let response = self
            .client
            .post(self.url("/run"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON answer"))
    }

    pub async fn run(&self, plugin: &str, input: i32) -> (u16, serde_json::Value) {
        self.run_raw(&serde_json::json!({ "plugin": plugin, "input": input }).to_string()).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs `f` on this thread with a subscriber that records every warning and error it logs, and
/// returns them (one line each; empty when there were none) with `f`'s result.
pub fn capture_warnings<T>(f: impl FnOnce() -> T) -> (String, T) {
    /// A shared buffer the subscriber writes each event into.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let result = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    (text, result)
}

/// The example plugins README.md names, which the tests of the README's examples and of the Go
/// client serve as `cargo xtask run` does.
pub const EXAMPLE_PLUGINS: [&str; 9] =
    ["hello", "simple", "abi", "checksum", "primes", "text", "redact", "sha256", "csvsum"];

/// Writes the plugin `plugin` (an example, by name) as version `version` of `name` in `dir`.
pub fn add_version(dir: &Path, name: &str, version: &str, plugin: &str) {
    fs::create_dir_all(dir.join(name)).expect("version folder");
    fs::write(dir.join(name).join(format!("{version}.wasm")), plugin_bytes(plugin)).expect("write version");
}

/// Whether process `pid` has handlers for `SIGSEGV`, `SIGBUS` and `SIGFPE` (its `SigCgt` mask):
/// WasmEdge's, which turn a plugin's faults into traps (see `runtime::fault_handlers`).
pub fn catches_faults(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let caught = status.lines().find_map(|line| line.strip_prefix("SigCgt:")).expect("SigCgt in /proc status");
    let caught = u64::from_str_radix(caught.trim(), 16).unwrap();
    [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE].iter().all(|&signal| caught & (1 << (signal - 1)) != 0)
}

/// `bytes` with a `wasmedge` custom section inserted: the native code WasmEdge's "universal
/// WebAssembly" carries, here a hostile one. WasmEdge 0.17.1, loading such a section in AOT
/// run mode, writes a pointer at the section's intrinsics address without checking it
/// (`lib/loader/ast/module.cpp`, `loadExecutable`); this one points far outside the code. The
/// section's header (format version, OS, architecture) is copied from a universal module
/// WasmEdge itself compiles, so that WasmEdge would accept it.
pub fn with_hostile_native_section(bytes: &[u8]) -> Vec<u8> {
    use wasm_encoder::{Encode, Section};
    use wasmedge_sdk::{
        CompilerOutputFormat,
        config::{CompilerConfigOptions, ConfigBuilder},
    };
    wasmedge_sdk::LogManager::log_off();
    let config = ConfigBuilder::default()
        .with_compiler_config(CompilerConfigOptions::default().out_format(CompilerOutputFormat::Wasm))
        .build()
        .unwrap();
    let dir = TempDir::new().unwrap();
    let universal =
        wasmedge_sdk::Compiler::new(Some(&config)).unwrap().compile_from_bytes(bytes, "universal", dir.path());
    let universal = fs::read(universal.unwrap()).unwrap();
    let (mut types, mut codes, mut header) = (0, 0, None);
    for payload in wasmparser::Parser::new(0).parse_all(&universal) {
        match payload.unwrap() {
            wasmparser::Payload::TypeSection(section) => types = section.count(),
            wasmparser::Payload::CodeSectionStart { count, .. } => codes = count,
            wasmparser::Payload::CustomSection(section) if section.name() == "wasmedge" => {
                let mut reader = wasmparser::BinaryReader::new(section.data(), 0);
                let version = reader.read_var_u32().unwrap();
                header = Some((version, reader.read_u8().unwrap(), reader.read_u8().unwrap()));
            }
            _ => {}
        }
    }
    let (version, os, arch) = header.expect("WasmEdge writes a `wasmedge` section into a universal module");
    let mut data = Vec::new();
    version.encode(&mut data);
    data.extend([os, arch]);
    0u64.encode(&mut data); // the version symbol's address
    (1u64 << 46).encode(&mut data); // the intrinsics table's address: written to, unchecked
    for count in [types, codes] {
        u64::from(count).encode(&mut data);
        (0..count).for_each(|_| 0u64.encode(&mut data)); // every symbol at the start
    }
    // One data section of a page, nothing in it.
    1u32.encode(&mut data);
    data.push(2);
    0u64.encode(&mut data);
    4096u64.encode(&mut data);
    0u32.encode(&mut data);
    let mut hostile = bytes[..8].to_vec();
    wasm_encoder::CustomSection { name: "wasmedge".into(), data: data.into() }.append_to(&mut hostile);
    hostile.extend_from_slice(&bytes[8..]);
    hostile
}
