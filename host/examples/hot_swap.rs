//! Hot swap, seen from the outside (the seed's `cmd/example`).
//!
//! `cargo run -p host --example hot_swap`: serves `greet` from a temporary plugin folder,
//! replaces the file with another plugin while the runner keeps going, then writes half a file
//! over it, and shows what each call got. No restart anywhere.

use std::{path::PathBuf, sync::Arc};

use host::{
    metrics::Metrics,
    runner::{InProcessRunner, PluginRunner},
    runtime::{Engine, ExecutionMode, RuntimeConfig},
    store::{LocalPluginStore, PluginName},
};

/// A plugin built by `cargo xtask build-plugins` in this checkout. `cargo run` names the package
/// folder at run time; the path compiled in would be another clone's when a shared target folder
/// let cargo reuse that clone's build.
fn built(name: &str) -> anyhow::Result<Vec<u8>> {
    let package =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = package.join(format!("../target/plugins/{name}.wasm"));
    std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e} (run `cargo xtask build-plugins`)", path.display()))
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let file = dir.path().join("greet.wasm");
    let store = Arc::new(LocalPluginStore::new(dir.path(), 16 << 20)?);
    let engine = Engine::new(RuntimeConfig::new(ExecutionMode::Aot))?;
    let runner = InProcessRunner::new(store, engine, Arc::new(Metrics::new()), 16);
    let greet = PluginName::new("greet")?;
    let ask = |what: &str| match runner.run(&plugin_host::store::PluginRef::from(&greet), 20) {
        Ok(output) => println!("{what:<44} greet(20) = {output}"),
        Err(error) => println!("{what:<44} greet(20) failed: {error}"),
    };

    std::fs::write(&file, built("hello")?)?;
    ask("greet.wasm is the hello plugin (2x+1):");
    ask("again (compiled version reused):");

    // Deploy the right way: write aside, rename over. Calls in flight keep the old version.
    let next = built("simple")?;
    std::fs::write(dir.path().join(".greet.tmp"), &next)?;
    std::fs::rename(dir.path().join(".greet.tmp"), &file)?;
    ask("renamed the simple plugin (x+1) over it:");

    std::fs::write(&file, &next[..next.len() / 2])?;
    ask("half a file written over it (still x+1):");
    let status = runner.inspect(&plugin_host::store::PluginRef::from(&greet))?;
    println!("  GET /plugins/greet would show last_error = {:?}", status.last_error.unwrap_or_default());

    std::fs::write(&file, built("abi")?)?;
    ask("the abi plugin (x*x) written in full:");
    Ok(())
}
