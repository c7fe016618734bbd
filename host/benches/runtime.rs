//! Runtime micro-benchmarks: what one plugin call costs, from the native floor to the seed's
//! load-every-call design, for an overhead-bound plugin (`hello`) and a compute-bound one
//! (`primes`). Run by `cargo xtask bench`, which reads the results into BENCHMARKS.md.
//!
//! Every variant runs the same logic and returns the same answer (checked before measuring):
//! - `native`: the plugin's logic as a Rust function (the floor);
//! - `seed_load_every_call`: read the file, validate and load it into a new VM, then
//!   init/process/cleanup: the seed's design, in WasmEdge's interpreter (it has no compile
//!   step; compiling AOT on every call would be slower still);
//! - `cached_interpreter`, `cached_aot`: the module compiled once; every call gets an instance
//!   in its fresh state (a recycled one, reset, when the plugin follows the ABI);
//! - `cached_aot_supervised`: the same without WasmEdge's per-call timer, as worker processes
//!   run calls (their server enforces the deadline);
//! - `in_process_runner`, `worker_process_runner`: the whole runner path the server uses
//!   (store `stat`, hot-swap check, fresh instance), in this process or in a worker process.
//!
//! The `bytes` group prices ABI v2: `text`'s `upper` with 16 B, 1 KiB and 64 KiB of input and
//! output (`v2_<size>`), next to a v1 `hello` call (`v1_hello`), each on a cached AOT module
//! (`cached_aot`) and through the worker runner (`worker_process_runner`).

use std::{hint::black_box, path::PathBuf, sync::Arc, time::Duration};

use criterion::{Criterion, criterion_group, criterion_main};
use plugin_host::{
    NoObserver,
    runner::{Calls, InProcessRunner, WorkerPoolRunner, WorkerSettings},
    runtime::{Engine, ExecutionMode, RuntimeConfig},
    store::{LocalPluginStore, PluginName},
};

/// This checkout's built plugins: `cargo bench` names the package folder at run time, which a
/// binary reused from another clone sharing the target folder would otherwise get wrong.
fn plugin_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../target/plugins")
}

fn config(mode: ExecutionMode) -> RuntimeConfig {
    let aot = plugin_dir().with_file_name("bench-aot-cache");
    RuntimeConfig { aot_cache_dir: Some(aot), ..RuntimeConfig::new(mode) }
}

fn native_hello(x: i32) -> i32 {
    2 * x + 1
}

/// The same trial division as `plugins/primes/primes.c`.
fn native_primes(n: i32) -> i32 {
    let is_prime = |n: i32| {
        if n < 4 {
            return n >= 2;
        }
        if n % 2 == 0 {
            return false;
        }
        let mut d = 3;
        while d <= n / d {
            if n % d == 0 {
                return false;
            }
            d += 2;
        }
        true
    };
    (2..=n).filter(|&k| is_prime(k)).count() as i32
}

/// The compute-bound workload's input: large enough that compute dominates the call.
const PRIMES_INPUT: i32 = 20_000;

fn workload(c: &mut Criterion, plugin: &str, input: i32, native: fn(i32) -> i32) {
    let expected = native(input);
    let file = plugin_dir().join(format!("{plugin}.wasm"));
    let bytes = std::fs::read(&file).expect("run `cargo xtask build-plugins` first");
    let hash = plugin_host::runner::content_hash(&bytes);
    let mut group = c.benchmark_group(plugin);

    group.bench_function("native", |b| b.iter(|| native(black_box(input))));

    let interpreter = Engine::new(config(ExecutionMode::Interpreter)).unwrap();
    let seed_call = || {
        plugin_host::runtime::testing::call_uncached(&interpreter, &std::fs::read(&file).unwrap(), black_box(input))
            .unwrap()
    };
    assert_eq!(seed_call(), expected);
    group.bench_function("seed_load_every_call", |b| b.iter(seed_call));

    let variants = [
        ("cached_interpreter", config(ExecutionMode::Interpreter)),
        ("cached_aot", config(ExecutionMode::Aot)),
        // What worker processes run: no per-call WasmEdge timer, the server enforces the deadline.
        ("cached_aot_supervised", RuntimeConfig { external_deadline: true, ..config(ExecutionMode::Aot) }),
    ];
    for (name, config) in variants {
        let engine = Engine::new(config).unwrap();
        let compiled = engine.compile(&bytes, &hash).unwrap();
        assert_eq!(compiled.call(input).unwrap(), expected);
        group.bench_function(name, |b| b.iter(|| compiled.call(black_box(input)).unwrap()));
    }

    let name = PluginName::new(plugin).unwrap();
    let store = || Arc::new(LocalPluginStore::new(plugin_dir(), 16 << 20).unwrap());
    let metrics: Arc<dyn plugin_host::Observer> = Arc::new(NoObserver);
    let engine = Engine::new(config(ExecutionMode::Aot)).unwrap();
    let in_process = InProcessRunner::new(store(), engine, Arc::clone(&metrics), 16);
    assert_eq!(in_process.run(&plugin_host::store::PluginRef::from(&name), input).unwrap().output, expected);
    group.bench_function("in_process_runner", |b| {
        b.iter(|| in_process.run(&plugin_host::store::PluginRef::from(&name), black_box(input)).unwrap().output)
    });

    let mut settings = WorkerSettings::new(env!("CARGO_BIN_EXE_host").into());
    settings.workers = 1;
    let workers = WorkerPoolRunner::new(store(), config(ExecutionMode::Aot), settings, metrics, 16).unwrap();
    assert_eq!(workers.run(&plugin_host::store::PluginRef::from(&name), input).unwrap().output, expected);
    group.bench_function("worker_process_runner", |b| {
        b.iter(|| workers.run(&plugin_host::store::PluginRef::from(&name), black_box(input)).unwrap().output)
    });
    group.finish();
}

/// What a v2 call costs per input size, next to a v1 call, in the same group.
fn bytes(c: &mut Criterion) {
    let load = |plugin: &str| {
        let bytes =
            std::fs::read(plugin_dir().join(format!("{plugin}.wasm"))).expect("run `cargo xtask build-plugins` first");
        let hash = plugin_host::runner::content_hash(&bytes);
        (bytes, hash)
    };
    let engine = Engine::new(config(ExecutionMode::Aot)).unwrap();
    let (hello, hello_hash) = load("hello");
    let hello = engine.compile(&hello, &hello_hash).unwrap();
    let (text, text_hash) = load("text");
    let text = engine.compile(&text, &text_hash).unwrap();
    let mut settings = WorkerSettings::new(env!("CARGO_BIN_EXE_host").into());
    settings.workers = 1;
    let store = Arc::new(LocalPluginStore::new(plugin_dir(), 16 << 20).unwrap());
    let workers = WorkerPoolRunner::new(store, config(ExecutionMode::Aot), settings, Arc::new(NoObserver), 16).unwrap();
    let (hello_name, text_name) = (PluginName::new("hello").unwrap(), PluginName::new("text").unwrap());

    let mut group = c.benchmark_group("bytes");
    assert_eq!(hello.call(21).unwrap(), 43);
    group.bench_function("cached_aot_v1_hello", |b| b.iter(|| hello.call(black_box(21)).unwrap()));
    assert_eq!(workers.run(&plugin_host::store::PluginRef::from(&hello_name), 21).unwrap().output, 43);
    group.bench_function("worker_process_runner_v1_hello", |b| {
        b.iter(|| workers.run(&plugin_host::store::PluginRef::from(&hello_name), black_box(21)).unwrap().output)
    });
    for (label, size) in BYTE_SIZES {
        let input = vec![b'a'; size];
        let expected = vec![b'A'; size];
        assert_eq!(text.call_function("upper", &input).unwrap(), expected);
        group.bench_function(format!("cached_aot_v2_{label}"), |b| {
            b.iter(|| text.call_function("upper", black_box(&input)).unwrap())
        });
        assert_eq!(
            workers.call(&plugin_host::store::PluginRef::from(&text_name), "upper", &input).unwrap().output,
            expected
        );
        group.bench_function(format!("worker_process_runner_v2_{label}"), |b| {
            b.iter(|| {
                workers
                    .call(&plugin_host::store::PluginRef::from(&text_name), "upper", black_box(&input))
                    .unwrap()
                    .output
            })
        });
    }
    group.finish();
}

/// The v2 input sizes measured, with their labels.
const BYTE_SIZES: [(&str, usize); 3] = [("16B", 16), ("1KiB", 1024), ("64KiB", 65536)];

fn benches(c: &mut Criterion) {
    workload(c, "hello", 21, native_hello);
    workload(c, "primes", PRIMES_INPUT, native_primes);
    bytes(c);
}

criterion_group! {
    name = runtime;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(runtime);
