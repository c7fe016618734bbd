//! Hot swap, seen from the outside (the seed's `cmd/example`).
//!
//! `cargo run -p plugin-host --example hot_swap`: serves `greet` from a temporary plugin folder,
//! replaces the file with another plugin while the host keeps going, then writes half a file
//! over it, and shows what each call got. No restart anywhere.

use std::path::PathBuf;

use plugin_host::{Host, LocalPluginStore, Settings, Target};

/// A plugin built by `cargo xtask build-plugins` in this checkout. `cargo run` names the package
/// folder at run time; the path compiled in would be another clone's when a shared target folder
/// let cargo reuse that clone's build.
fn built(name: &str) -> anyhow::Result<Vec<u8>> {
    let package =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    let path = package.join(format!("../target/plugins/{name}.wasm"));
    std::fs::read(&path).map_err(|e| anyhow::anyhow!("{}: {e} (run `cargo xtask build-plugins`)", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::TempDir::new()?;
    let file = dir.path().join("greet.wasm");
    let settings = Settings::default();
    let host = Host::new(LocalPluginStore::new(dir.path(), settings.limits.max_plugin_bytes)?, settings)?;
    let greet = Target::new("greet")?;
    let ask = async |what: &str| match host.run(&greet, 20).await {
        Ok(ran) => println!("{what:<44} greet(20) = {}   (sha256 {}…)", ran.output, &ran.sha256[..12]),
        Err(error) => println!("{what:<44} greet(20) failed: {error}"),
    };

    std::fs::write(&file, built("hello")?)?;
    ask("greet.wasm is the hello plugin (2x+1):").await;
    ask("again (compiled version reused):").await;

    // Deploy the right way: write aside, rename over. Calls in flight keep the old version.
    let next = built("simple")?;
    std::fs::write(dir.path().join(".greet.tmp"), &next)?;
    std::fs::rename(dir.path().join(".greet.tmp"), &file)?;
    ask("renamed the simple plugin (x+1) over it:").await;

    std::fs::write(&file, &next[..next.len() / 2])?;
    ask("half a file written over it (still x+1):").await;
    let status = host.plugin(&greet).await?;
    println!("  GET /plugins/greet would show last_error = {:?}", status.last_error.unwrap_or_default());

    std::fs::write(&file, built("abi")?)?;
    ask("the abi plugin (x*x) written in full:").await;
    Ok(())
}
