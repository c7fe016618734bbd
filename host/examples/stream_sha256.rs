//! The streaming SHA-256 through the host's runtime alone, without HTTP: the ceiling for what
//! `POST /plugins/sha256/functions/sha256sum` can reach, which `cargo xtask bench` measures in
//! the same rounds as the server and as `plugins/sha256/sha256.bench.c` compiled natively.
//!
//! `cargo run --release -p host --example stream_sha256 -- PLUGIN_DIR in-process|process MIB`
//!
//! Feeds MIB MiB of the native benchmark's pattern, in chunks of the plugin's input capacity,
//! to one stream opened through the library ([`plugin_host::Host`]), in this process or
//! through a worker process, and prints one JSON line as the native benchmark does:
//! `{"bytes": N, "seconds": S, "digest": "<hex>"}`, timed from opening the stream to its end.

use std::time::Instant;

use anyhow::Context;
use plugin_host::{Host, Isolation, LocalPluginStore, Settings, Target, WorkerSettings};

fn main() -> anyhow::Result<()> {
    // Workers are this same executable: in one, this runs the worker and never returns.
    plugin_host::run_if_worker();
    tokio::runtime::Runtime::new()?.block_on(stream())
}

async fn stream() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut next = |what: &str| args.next().with_context(|| format!("missing {what}: PLUGIN_DIR MODE MIB"));
    let (plugins, mode, mib) = (next("PLUGIN_DIR")?, next("MODE")?, next("MIB")?);
    let mib: u64 = mib.parse().context("MIB")?;
    let isolation = match mode.as_str() {
        "in-process" => Isolation::InProcess,
        "process" => Isolation::Workers(WorkerSettings::new(std::env::current_exe()?)),
        other => anyhow::bail!("unknown mode {other:?}: in-process or process"),
    };
    // The default AOT cache, which the server uses too.
    let settings = Settings { isolation, ..Settings::default() };
    let host = Host::new(LocalPluginStore::new(&plugins, settings.limits.max_plugin_bytes)?, settings)?;
    let function = host.function(&Target::new("sha256")?, "sha256sum").await?;
    // Compile the plugin before the clock starts, as the server has before a stream.
    drop(function.open_stream().await?);

    let started = Instant::now();
    let mut stream = function.open_stream().await?;
    let (digest, seconds) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Vec<u8>, f64)> {
        // The pattern `sha256.bench.c` hashes: byte i of every chunk is i * 31 + 7.
        let chunk: Vec<u8> =
            (0..stream.chunk_capacity() as u32).map(|i| i.wrapping_mul(31).wrapping_add(7) as u8).collect();
        let total = mib << 20;
        let mut fed = 0;
        while fed < total {
            let n = chunk.len().min(usize::try_from(total - fed).unwrap_or(usize::MAX));
            stream.feed(&chunk[..n])?;
            fed += n as u64;
        }
        let digest = stream.finish()?;
        Ok((digest, started.elapsed().as_secs_f64()))
    })
    .await??;
    let digest = String::from_utf8(digest).context("the digest is hex")?;
    println!("{{\"bytes\": {}, \"seconds\": {seconds:.6}, \"digest\": \"{digest}\"}}", mib << 20);
    Ok(())
}
