//! The ABI v2 stream benchmark: a SHA-256 of hundreds of MiB streamed through the host, next
//! to the same stream through the host's runtime without HTTP, the same C source compiled
//! natively and Rust's `sha2`.

use std::{
    io::{self, Read},
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::{Context, ensure};
use xshell::{Shell, cmd};

use super::{RunningServer, STREAM_MIB, Throughput, servers::resident_kib, target_dir};
use crate::http::HttpClient;

/// The bytes the SHA-256 stream benchmarks hash: the pattern `sha256.bench.c` writes into its
/// input buffer, repeated.
pub(super) fn stream_pattern() -> Vec<u8> {
    (0..65536u32).map(|i| (i.wrapping_mul(31).wrapping_add(7)) as u8).collect()
}

/// A stream through the host: how long it took, and the server's resident memory (KiB) after
/// every 64 MiB of the body had been handed to the client, as `(sent MiB, resident KiB)`.
pub(super) struct Stream {
    pub(super) seconds: f64,
    pub(super) samples: Vec<(u64, u64)>,
}

/// How often, in bytes of the body, the server's resident memory is sampled.
const SAMPLE_EVERY: u64 = 64 << 20;

/// Streams `mib` MiB of the pattern through `POST /plugins/sha256/functions/sha256sum` and
/// checks the digest the host answers.
pub(super) fn stream_sha256(running: &RunningServer, mib: u64) -> anyhow::Result<Stream> {
    let pattern = stream_pattern();
    let total = mib << 20;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let body =
        PatternBody { pattern: pattern.clone(), total, sent: 0, server: running.pid(), samples: Arc::clone(&samples) };
    let client = HttpClient::new(None)?;
    let started = std::time::Instant::now();
    let answer = client.post_stream(
        &running.url("/plugins/sha256/functions/sha256sum"),
        "application/octet-stream",
        body,
        total,
    )?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(answer.status == 200, "stream failed: {} {}", answer.status, answer.body);
    let expected = rust_sha256_hex(&pattern, total);
    ensure!(answer.body == expected, "the host's digest {} is not {expected}", answer.body);
    let samples = std::mem::take(&mut *samples.lock().map_err(|_| anyhow::anyhow!("a sampler panicked"))?);
    Ok(Stream { seconds, samples })
}

/// The body of a stream: `total` bytes of the pattern, produced as the client sends them, so a
/// GiB never sits in memory; every [`SAMPLE_EVERY`] bytes it notes the server's resident memory.
struct PatternBody {
    pattern: Vec<u8>,
    total: u64,
    sent: u64,
    server: u32,
    samples: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Read for PatternBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let offset = (self.sent % self.pattern.len() as u64) as usize;
        let left = usize::try_from(self.total - self.sent).unwrap_or(usize::MAX);
        let n = buf.len().min(self.pattern.len() - offset).min(left);
        buf[..n].copy_from_slice(&self.pattern[offset..offset + n]);
        let before = self.sent;
        self.sent += n as u64;
        if self.sent / SAMPLE_EVERY > before / SAMPLE_EVERY {
            let sent_mib = self.sent / SAMPLE_EVERY * (SAMPLE_EVERY >> 20);
            if let Ok(mut samples) = self.samples.lock() {
                samples.push((sent_mib, resident_kib(self.server)));
            }
        }
        Ok(n)
    }
}

pub(super) fn rust_sha256_hex(pattern: &[u8], total: u64) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for _ in 0..total / pattern.len() as u64 {
        digest.update(pattern);
    }
    digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The same C source as the plugin, compiled natively at the plugin's -O2, on the same bytes.
pub(super) fn build_native_c_sha256(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    let root = sh.current_dir();
    let binary = target_dir(sh).join("bench-sha256-native");
    let (include, plugins, source) =
        (root.join("plugin-sdk/include"), root.join("plugins"), root.join("plugins/sha256/sha256.bench.c"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    cmd!(sh, "{cc} -std=gnu11 -O2 -I {include} -I {plugins} -o {binary} {source}").run()?;
    Ok(binary)
}

/// One run of the native C build of the plugin's SHA-256 over the stream's bytes.
pub(super) fn native_c_sha256(sh: &Shell, binary: &Path) -> anyhow::Result<Throughput> {
    let mib = STREAM_MIB.to_string();
    timed_sha256("native C (same source, -O2)", &cmd!(sh, "{binary} {mib}").read()?)
}

/// The stream table's name for the stream through the server running plugins in `isolation`.
pub(super) fn host_label(isolation: &str) -> String {
    format!("host, {isolation}")
}

/// The stream table's name for the stream through the runtime alone in `isolation`.
pub(super) fn runtime_label(isolation: &str) -> String {
    format!("runtime alone, {isolation} (no HTTP)")
}

/// One run of the stream through the host's runtime alone, without HTTP
/// (`host/examples/stream_sha256.rs`), in `isolation` (`in-process` or `process`): the ceiling
/// for the stream through the server.
pub(super) fn runtime_sha256(sh: &Shell, isolation: &str) -> anyhow::Result<Throughput> {
    let (binary, plugins) =
        (target_dir(sh).join("release/examples/stream_sha256"), sh.current_dir().join(crate::PLUGIN_OUT_DIR));
    let mib = STREAM_MIB.to_string();
    timed_sha256(&runtime_label(isolation), &cmd!(sh, "{binary} {plugins} {isolation} {mib}").read()?)
}

/// The throughput in a benchmark's line `{"bytes": N, "seconds": S, "digest": "<hex>"}`, after
/// checking its digest of [`STREAM_MIB`] MiB of the pattern.
fn timed_sha256(runner: &str, output: &str) -> anyhow::Result<Throughput> {
    let report: serde_json::Value = serde_json::from_str(output)?;
    let seconds = report["seconds"].as_f64().context("seconds")?;
    let expected = rust_sha256_hex(&stream_pattern(), STREAM_MIB << 20);
    ensure!(report["digest"] == expected.as_str(), "{runner}: the digest is wrong: {output}");
    Ok(Throughput { runner: runner.into(), mib_per_sec: STREAM_MIB as f64 / seconds })
}

/// Rust's `sha2` over the same bytes, in chunks of the same size.
pub(super) fn native_rust_sha256() -> Throughput {
    let started = std::time::Instant::now();
    std::hint::black_box(rust_sha256_hex(&stream_pattern(), STREAM_MIB << 20));
    Throughput { runner: "native Rust (sha2)".into(), mib_per_sec: STREAM_MIB as f64 / started.elapsed().as_secs_f64() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_body_is_the_pattern_repeated_and_samples_memory_every_64_mib() {
        let pattern = stream_pattern();
        let total = 2 * SAMPLE_EVERY + 12345;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let mut body = PatternBody {
            pattern: pattern.clone(),
            total,
            sent: 0,
            server: std::process::id(),
            samples: samples.clone(),
        };
        let mut digest = sha2::Sha256::default();
        // Odd read sizes, as a client's buffers may be.
        let mut buf = vec![0; 10_007];
        let mut read = 0u64;
        loop {
            let n = body.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut digest, &buf[..n]);
            read += n as u64;
        }
        assert_eq!(read, total);
        let hex: String = sha2::Digest::finalize(digest).iter().map(|b| format!("{b:02x}")).collect();
        let mut expected = sha2::Sha256::default();
        let whole = pattern.iter().copied().cycle().take(total as usize).collect::<Vec<u8>>();
        sha2::Digest::update(&mut expected, &whole);
        let expected: String = sha2::Digest::finalize(expected).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        let samples = samples.lock().unwrap();
        let sent: Vec<u64> = samples.iter().map(|(mib, _)| *mib).collect();
        assert_eq!(sent, [64, 128]);
        assert!(samples.iter().all(|(_, rss)| *rss > 0), "this process has resident memory: {samples:?}");
    }
}
