//! Run a plugin's whole lifecycle for a few inputs (the seed's `cmd/simple`).
//!
//! `cargo run -p plugin-host --example simple -- [PLUGIN.wasm] [INPUT...]` (default: the
//! `simple` example plugin and the inputs 1, 41 and -1). Compiles the plugin once, ahead of
//! time, then gives every input a fresh instance and prints its answer and how long the call
//! took.

use std::{path::PathBuf, time::Instant};

use plugin_host::{Host, LocalPluginStore, Settings, Target};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    let path = match args.peek() {
        Some(arg) if arg.ends_with(".wasm") => PathBuf::from(args.next().unwrap_or_default()),
        // `cargo run` names the package folder at run time (see `built` in the hot_swap example).
        _ => std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("../target/plugins/simple.wasm"),
    };
    let mut inputs: Vec<i32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if inputs.is_empty() {
        inputs = vec![1, 41, -1];
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (run `cargo xtask build-plugins`)", path.display()))?;

    // A folder of one: the plugin, under the name `plugin`.
    let dir = tempfile::TempDir::new()?;
    std::fs::write(dir.path().join("plugin.wasm"), &bytes)?;
    let settings = Settings::default();
    let host = Host::new(LocalPluginStore::new(dir.path(), settings.limits.max_plugin_bytes)?, settings)?;
    let plugin = Target::new("plugin")?;
    let started = Instant::now();
    let status = host.plugin(&plugin).await?;
    println!(
        "{}: ABI check {:?}, read in {:?}",
        path.display(),
        status.abi.map(|abi| abi.compliant),
        started.elapsed()
    );
    for input in inputs {
        let started = Instant::now();
        let result = host.run(&plugin, input).await;
        let took = started.elapsed();
        match result {
            Ok(ran) => println!("  process({input}) = {}   ({took:?}, fresh instance)", ran.output),
            Err(error) => println!("  process({input}) failed: {error}   ({took:?})"),
        }
    }
    Ok(())
}
