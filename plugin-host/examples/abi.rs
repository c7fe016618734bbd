//! The plugin lifecycle step by step, with every error code of the ABI (the seed's `cmd/abi`).
//!
//! `cargo run -p plugin-host --features internals --example abi [-- PLUGIN.wasm]` (default: the `abi` example plugin, built
//! by `cargo xtask build-plugins`). Each step prints what the host called and what came back.
//! The steps are below the library's API (a `Host` runs them all in every call), hence the
//! `internals` feature.

use std::path::PathBuf;

use plugin_host::runtime::{
    AbiFunction, Engine, ExecutionMode, RuntimeConfig, RuntimeError, testing::call_out_of_order,
};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        // `cargo run` names the package folder at run time (see `built` in the hot_swap example).
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_MANIFEST_DIR")
                .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
                .join("../target/plugins/abi.wasm")
        });
    let bytes = std::fs::read(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `cargo xtask build-plugins`)", path.display()))?;

    println!("Load     {} ({} bytes)", path.display(), bytes.len());
    let engine = Engine::new(RuntimeConfig::new(ExecutionMode::Interpreter))?;
    let plugin = engine.compile(&bytes, &plugin_host::runner::content_hash(&bytes))?;
    println!("         ABI check passed (declares ABI v{}), WasmEdge validated it", plugin.abi_version().unwrap_or(1));

    println!("Instance a fresh one: its own linear memory, nothing shared with any other call");
    let mut fresh = plugin.instantiate()?;
    show("process(3) before init", call_out_of_order(&mut fresh, AbiFunction::Process, 3));

    let mut running = plugin.instantiate()?.init()?;
    println!("Init     init() -> 0 (ok)");
    show("init() a second time", call_out_of_order(running.instance_mut(), AbiFunction::Init, 0));
    for input in [12, 0, -5, 50_000] {
        show(&format!("process({input})"), running.process(input));
    }
    running.cleanup()?;
    println!("Cleanup  cleanup() -> 0 (ok)");
    println!("Close    the instance is dropped; its memory is freed");
    println!();
    println!("What the HTTP API answers for the same calls: 200 with the output, 422 for -3,");
    println!("500 for the other codes (see README.md).");
    Ok(())
}

fn show(step: &str, result: Result<i32, RuntimeError>) {
    match result {
        Ok(output) => println!("Execute  {step} -> {output}"),
        Err(error) => println!("Execute  {step} -> error: {error}"),
    }
}
