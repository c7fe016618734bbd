//! `cargo xtask bench`: every benchmark in one run, written up in BENCHMARKS.md.
//!
//! 1. Runtime micro-benchmarks (criterion, `host/benches/runtime.rs`): one plugin call from
//!    the native floor to the seed's load-every-call design, for `hello` and `primes`; and the
//!    wasmtime peer's instantiate-and-call (`bench/wasmtime-peer`, its own timing loop).
//! 2. HTTP load on 127.0.0.1 with `wrk` at concurrency 1, 16 and 64: `POST /run` hello on the
//!    host in process isolation and in-process, next to three baselines started in the same
//!    run: the bare axum handler (`host/examples/bare_native.rs`, the limit of the stack), the
//!    host's own HTTP stack answering with a native function (`host/examples/native_server.rs`)
//!    and the wasmtime peer. c=16 runs in rounds alternated between the servers (medians).
//!    Resident memory of each host server (and its workers) is read before and after at least
//!    `--soak-requests` requests; the first request of never-seen plugins is timed.
//! 3. ABI v2: the `bytes` criterion group (a v2 call with 16 B, 1 KiB and 64 KiB next to a v1
//!    call), `POST /plugins/text/functions/upper` with 1 KiB at concurrency 16, and a streaming
//!    SHA-256 of 256 MiB through the host next to the same C source compiled natively
//!    (`plugins/sha256/sha256.bench.c`) and next to Rust's `sha2`; resident memory is sampled
//!    while 1 GiB streams through.
//!
//! The figures go between the `bench:begin`/`bench:end` markers of BENCHMARKS.md, and a bar
//! chart to `docs/benchmarks.svg`. Nothing here fails on slow numbers: benchmarks report.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use xshell::{Shell, cmd};

use crate::{build_plugins::BuildPlugins, setup, step};

#[derive(Debug, clap::Args)]
pub struct Bench {
    /// Seconds per HTTP load run.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// Requests each host server (in-process, process) serves before its resident memory is
    /// compared with where it started.
    #[arg(long, default_value_t = 1_000_000)]
    soak_requests: u64,
    /// Reuse the last criterion results instead of running the micro-benchmarks again.
    #[arg(long)]
    skip_micro: bool,
}

/// One criterion result: group/function and its mean time in nanoseconds.
#[derive(Debug)]
struct Micro {
    group: String,
    function: String,
    mean_ns: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Load {
    server: &'static str,
    connections: u32,
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// CPU time the server (and its workers) spent per request, in µs: unlike requests per
    /// second, it hardly moves when other work competes for the machine.
    pub(crate) cpu_us_per_request: f64,
}

#[derive(Debug)]
struct Memory {
    server: &'static str,
    requests: u64,
    before_kib: u64,
    after_kib: u64,
}

/// The first request of a plugin the server has never seen (AOT compilation included).
#[derive(Debug)]
struct FirstRequest {
    server: &'static str,
    p50_ms: f64,
    max_ms: f64,
}

/// ABI v2 stream throughput: where the SHA-256 ran, and how fast.
#[derive(Debug)]
struct Throughput {
    runner: String,
    mib_per_sec: f64,
}

/// Resident memory of the process server (and its workers) while 1 GiB streams through it.
#[derive(Debug)]
struct StreamMemory {
    after_64_mib_kib: u64,
    peak_kib: u64,
}

/// The `bytes` criterion group's runners and calls.
const BYTES_RUNNERS: [&str; 2] = ["cached_aot", "worker_process_runner"];
const BYTES_CALLS: [&str; 4] = ["v1_hello", "v2_16B", "v2_1KiB", "v2_64KiB"];

/// Bytes the SHA-256 stream benchmark sends, and how many the memory check sends.
const STREAM_MIB: u64 = 256;
const MEMORY_STREAM_MIB: u64 = 1024;

const MICRO_FUNCTIONS: [&str; 7] = [
    "native",
    "seed_load_every_call",
    "cached_interpreter",
    "cached_aot",
    "cached_aot_supervised",
    "in_process_runner",
    "worker_process_runner",
];

/// The wasmtime peer's instantiate-and-call, timed by the peer itself (a row of the micro
/// table, next to criterion's).
const PEER_MICRO: &str = "wasmtime_peer";

/// The servers under HTTP load, all measured in the same run: the bare axum handler (the
/// stack's limit), the host's own stack with a native function, the wasmtime peer, and the host
/// in both isolation modes.
const BARE: &str = "bare native";
const NATIVE: &str = "native (same stack)";
const PEER: &str = "wasmtime peer";
const IN_PROCESS: &str = "in-process";
const PROCESS: &str = "process";

/// Rounds of the c=16 comparison, alternated between the servers so that a burst of load from
/// elsewhere on the machine does not fall on one server only; the tables show medians.
const ROUNDS: usize = 3;

/// Distinct never-seen plugins the first-request figure is the median of.
const FIRST_REQUESTS: usize = 20;

/// Where cargo puts build output: `$CARGO_TARGET_DIR`, else `target/` in the project.
pub(crate) fn target_dir(sh: &Shell) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| sh.current_dir().join("target"), Into::into)
}

/// Builds the release host and both native baselines.
pub(crate) fn build_host(sh: &Shell) -> anyhow::Result<()> {
    step("building the release server and the native baselines");
    cmd!(sh, "cargo build --quiet --release --package host --bin host --example native_server --example bare_native")
        .run()?;
    Ok(())
}

/// The release host serving the built plugins in `isolation`, on a free port.
pub(crate) fn host_server(sh: &Shell, isolation: &str) -> Command {
    host_command(&target_dir(sh).join("release/host"), &sh.current_dir().join(crate::PLUGIN_OUT_DIR), isolation)
}

/// Builds the release servers the HTTP benchmarks use: the host, both native baselines and the
/// wasmtime peer (its own workspace, built only here). Returns the peer's binary.
fn build_servers(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    build_host(sh)?;
    step("building the wasmtime peer (bench/wasmtime-peer, its own workspace)");
    let peer_target = target_dir(sh).join("peer");
    cmd!(sh, "cargo build --quiet --release --manifest-path bench/wasmtime-peer/Cargo.toml --target-dir {peer_target}")
        .run()?;
    Ok(peer_target.join("release/wasmtime-peer"))
}

/// The command that starts `server` on a free port.
fn server_command(sh: &Shell, server: &str, peer: &Path) -> Command {
    let plugins = sh.current_dir().join(crate::PLUGIN_OUT_DIR);
    let release = target_dir(sh).join("release");
    let with_port = |binary: std::path::PathBuf| {
        let mut c = Command::new(binary);
        c.arg("127.0.0.1:0");
        c
    };
    match server {
        BARE => with_port(release.join("examples/bare_native")),
        NATIVE => with_port(release.join("examples/native_server")),
        PEER => {
            let mut c = Command::new(peer);
            c.arg("serve").arg(&plugins);
            c
        }
        isolation => host_command(&release.join("host"), &plugins, isolation),
    }
}

impl Bench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        setup::Setup::for_running().run(sh)?;
        BuildPlugins::default().run(sh)?;

        if !self.skip_micro {
            step("runtime micro-benchmarks (criterion)");
            cmd!(sh, "cargo bench --package host --bench runtime").run()?;
        }
        let mut micro = read_criterion(&target_dir(sh).join("criterion"))?;

        let peer = build_servers(sh)?;
        step("the wasmtime peer's instantiate-and-call (its own timing loop)");
        let plugins = sh.current_dir().join(crate::PLUGIN_OUT_DIR);
        let timing: serde_json::Value = serde_json::from_str(&cmd!(sh, "{peer} timing {plugins}").read()?)?;
        for group in ["hello", "primes"] {
            let mean_ns = timing[group].as_f64().context("the peer's timing")?;
            micro.push(Micro { group: group.into(), function: PEER_MICRO.into(), mean_ns });
        }

        let wrk = ensure_wrk(sh)?;
        let script = sh.create_temp_dir()?;
        let lua = script.path().join("post.lua");
        fs::write(
            &lua,
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.body = '{\"plugin\":\"hello\",\"input\":21}'\n",
        )?;
        let upper_lua = script.path().join("upper.lua");
        fs::write(
            &upper_lua,
            format!(
                "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/octet-stream\"\n\
                 wrk.body = '{}'\n",
                "a".repeat(1024)
            ),
        )?;

        // Every server runs for the whole comparison, so that rounds can alternate.
        let servers = [BARE, NATIVE, PEER, IN_PROCESS, PROCESS];
        let mut running = Vec::new();
        for server in servers {
            step(format!("starting {server}"));
            let started = RunningServer::start(server_command(sh, server, &peer))?;
            // Warm up: compile caches, connection pools, worker processes.
            wrk_run(&wrk, &lua, &started.url("/run"), 16, 1)?;
            running.push((server, started));
        }
        let before: Vec<u64> = running.iter().map(|(_, r)| r.resident_kib()).collect();
        let mut served = vec![0u64; servers.len()];
        let mut loads = Vec::new();
        let mut rounds = Vec::new();
        for connections in [1, 64] {
            for (i, (server, r)) in running.iter().enumerate() {
                step(format!("HTTP load: {server}, c={connections}"));
                let (load, requests) = r.measured(|| wrk_run(&wrk, &lua, &r.url("/run"), connections, self.seconds))?;
                println!("    {load:?}");
                served[i] += requests;
                loads.push(Load { server, ..load });
            }
        }
        for round in 1..=ROUNDS {
            for (i, (server, r)) in running.iter().enumerate() {
                step(format!("HTTP load: {server}, c=16, round {round} of {ROUNDS}"));
                let (load, requests) = r.measured(|| wrk_run(&wrk, &lua, &r.url("/run"), 16, self.seconds))?;
                println!("    {load:?}");
                served[i] += requests;
                rounds.push(Load { server, ..load });
            }
        }
        for server in servers {
            loads.push(median_load(&rounds, server));
        }
        loads.sort_by_key(|l| (servers.iter().position(|s| *s == l.server), l.connections));

        let mut memory = Vec::new();
        for (i, (server, r)) in running.iter().enumerate() {
            // Rates vary from run to run, so a soak that falls short goes on for what is missing.
            while [IN_PROCESS, PROCESS].contains(server) && served[i] < self.soak_requests {
                let rate = median_load(&rounds, server).requests_per_sec.max(1000.0);
                let seconds = ((self.soak_requests - served[i]) as f64 / rate * 1.1).ceil() as u32 + 1;
                step(format!("soak: {server}, c=16 for {seconds} s (to {} requests)", self.soak_requests));
                let got = wrk_run(&wrk, &lua, &r.url("/run"), 16, seconds)?.1;
                ensure!(got > 0, "{server} served no request in a {seconds} s soak");
                served[i] += got;
            }
            memory.push(Memory { server, requests: served[i], before_kib: before[i], after_kib: r.resident_kib() });
        }

        let mut streams = Vec::new();
        let mut stream_memory = None;
        for (server, r) in running.iter().filter(|(s, _)| [IN_PROCESS, PROCESS].contains(s)) {
            let url = r.url("/plugins/text/functions/upper");
            wrk_run(&wrk, &upper_lua, &url, 16, 1)?;
            let (load, _) = wrk_run(&wrk, &upper_lua, &url, 16, self.seconds)?;
            println!("    {server} raw upper 1 KiB c=16: {load:?}");
            loads.push(Load { server: raw_label(server), ..load });
            if *server == PROCESS {
                let (mut after_64, mut peak) = (0, 0);
                stream_sha256(r, MEMORY_STREAM_MIB, |sent_mib, rss| {
                    if sent_mib == 64 {
                        after_64 = rss;
                    }
                    peak = peak.max(rss);
                })?;
                stream_memory = Some(StreamMemory { after_64_mib_kib: after_64, peak_kib: peak });
            }
        }
        // Streams vary by a third from one run to the next (the native C baseline too), so the
        // hosts and the native code alternate for `ROUNDS` rounds and each gets its median.
        let native_c = build_native_c_sha256(sh)?;
        let mut stream_rounds: Vec<Throughput> = Vec::new();
        for round in 1..=ROUNDS {
            step(format!("streaming SHA-256 of {STREAM_MIB} MiB, round {round} of {ROUNDS}"));
            for (server, r) in running.iter().filter(|(s, _)| [IN_PROCESS, PROCESS].contains(s)) {
                let (seconds, _) = stream_sha256(r, STREAM_MIB, |_, _| {})?;
                let mib_per_sec = STREAM_MIB as f64 / seconds;
                stream_rounds.push(Throughput { runner: format!("host, {server}"), mib_per_sec });
            }
            stream_rounds.push(native_c_sha256(sh, &native_c)?);
            stream_rounds.push(native_rust_sha256());
        }
        println!("    stream rounds: {stream_rounds:?}");
        for runner in stream_rounds.iter().take(stream_rounds.len() / ROUNDS) {
            let mut values: Vec<f64> =
                stream_rounds.iter().filter(|t| t.runner == runner.runner).map(|t| t.mib_per_sec).collect();
            values.sort_by(f64::total_cmp);
            streams.push(Throughput { runner: runner.runner.clone(), mib_per_sec: values[values.len() / 2] });
        }
        drop(running);
        let fairness = fairness(sh, &wrk, &lua, &target_dir(sh).join("release/host"), self.seconds)?;
        println!("    streams (medians): {streams:?}, memory: {stream_memory:?}");

        let mut first = Vec::new();
        for server in [IN_PROCESS, PROCESS] {
            step(format!("first requests of {FIRST_REQUESTS} never-seen plugins: {server}"));
            first.push(first_requests(sh, server)?);
            println!("    {:?}", first.last());
        }

        let report = render(&micro, &loads, &rounds, &memory, &first)
            + &render_v2(&micro, &loads, &streams, stream_memory.as_ref())
            + &render_fairness(&fairness);
        write_report(sh, &report)?;
        fs::create_dir_all(sh.current_dir().join("docs"))?;
        fs::write(sh.current_dir().join("docs/benchmarks.svg"), chart(&micro))?;
        step("wrote BENCHMARKS.md and docs/benchmarks.svg");
        println!("{report}");
        Ok(())
    }
}

/// `hello` under load alone, and next to clients calling a plugin that loops to its deadline.
#[derive(Debug)]
struct Fairness {
    alone: Load,
    beside: Load,
    looping_clients: usize,
    looping_calls: u64,
}

/// Clients calling the looping plugin during the fairness run: more than there are workers.
const LOOPING_CLIENTS: usize = 8;

/// What a plugin whose calls loop to their deadline costs other plugins: `hello` at c=16 on the
/// process server (default settings) alone, then while [`LOOPING_CLIENTS`] clients keep calling
/// `faults/loop-process`.
fn fairness(sh: &Shell, wrk: &Path, lua: &Path, host: &Path, seconds: u32) -> anyhow::Result<Fairness> {
    use std::{
        io::{Read, Write},
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64, Ordering},
        },
    };
    step("fairness: hello next to a plugin that loops to its deadline");
    let plugins = sh.create_temp_dir()?;
    let built = sh.current_dir().join(crate::PLUGIN_OUT_DIR);
    fs::copy(built.join("hello.wasm"), plugins.path().join("hello.wasm"))?;
    let faults = sh.current_dir().join(crate::PLUGIN_FIXTURE_DIR).join("faults");
    fs::copy(faults.join("loop-process.wasm"), plugins.path().join("loop-process.wasm"))?;
    let running = RunningServer::start(host_command(host, plugins.path(), "process"))?;
    let url = format!("http://{}/run", running.addr);
    wrk_run(wrk, lua, &url, 16, 1)?;
    let (alone, _) = wrk_run(wrk, lua, &url, 16, seconds)?;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..LOOPING_CLIENTS)
        .map(|_| {
            let (stop, calls, addr) = (Arc::clone(&stop), Arc::clone(&calls), running.addr.clone());
            std::thread::spawn(move || {
                let body = r#"{"plugin":"loop-process","input":1}"#;
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut socket) = std::net::TcpStream::connect(&addr) else { continue };
                    let request = format!(
                        "POST /run HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let mut answer = Vec::new();
                    if socket.write_all(request.as_bytes()).is_ok() && socket.read_to_end(&mut answer).is_ok() {
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Let the looping calls take their share of the workers first.
    std::thread::sleep(Duration::from_millis(500));
    let (beside, _) = wrk_run(wrk, lua, &url, 16, seconds)?;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    println!("    hello alone: {alone:?}\n    hello beside the looping plugin: {beside:?}");
    Ok(Fairness { alone, beside, looping_clients: LOOPING_CLIENTS, looping_calls: calls.load(Ordering::Relaxed) })
}

fn render_fairness(fairness: &Fairness) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### A plugin that loops to its deadline, next to `hello` (process isolation, default settings, wrk c=16)\n"
    );
    let _ = writeln!(out, "| `hello` | requests/s | p50 | p99 | errors |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (label, load) in [
        ("alone".to_string(), &fairness.alone),
        (
            format!(
                "while {} clients call `loop-process` ({} calls answered, each after the 1 s deadline)",
                fairness.looping_clients, fairness.looping_calls
            ),
            &fairness.beside,
        ),
    ] {
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            load.requests_per_sec, load.p50_ms, load.p99_ms, load.errors
        );
    }
    out
}

/// The median round of `server` at c=16, by requests per second (p50 and p99 are the medians
/// of their own, errors the sum).
fn median_load(rounds: &[Load], server: &'static str) -> Load {
    let of = |field: fn(&Load) -> f64| {
        let mut values: Vec<f64> = rounds.iter().filter(|l| l.server == server).map(field).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    Load {
        server,
        connections: 16,
        requests_per_sec: of(|l| l.requests_per_sec),
        p50_ms: of(|l| l.p50_ms),
        p99_ms: of(|l| l.p99_ms),
        errors: rounds.iter().filter(|l| l.server == server).map(|l| l.errors).sum(),
        cpu_us_per_request: of(|l| l.cpu_us_per_request),
    }
}

/// Serves [`FIRST_REQUESTS`] copies of `hello`, each made distinct by a custom section (so each
/// has its own content hash and is compiled on its first request), from a fresh folder with an
/// empty AOT cache, and times the first request of each.
fn first_requests(sh: &Shell, isolation: &'static str) -> anyhow::Result<FirstRequest> {
    let hello = fs::read(sh.current_dir().join(crate::PLUGIN_OUT_DIR).join("hello.wasm"))?;
    let dir = sh.create_temp_dir()?;
    let (plugins, cache) = (dir.path().join("plugins"), dir.path().join("aot"));
    fs::create_dir_all(&plugins)?;
    for i in 0..FIRST_REQUESTS {
        let name = format!("bench-{i:02}");
        let mut wasm = hello.clone();
        // A custom section: id 0, size, then the name's length and the name (all under 128 bytes).
        wasm.extend_from_slice(&[0, name.len() as u8 + 1, name.len() as u8]);
        wasm.extend_from_slice(name.as_bytes());
        fs::write(plugins.join(format!("fresh{i:02}.wasm")), wasm)?;
    }
    let mut command = host_command(&target_dir(sh).join("release/host"), &plugins, isolation);
    command.env("AOT_CACHE_DIR", &cache);
    let server = RunningServer::start(command)?;
    let mut times = Vec::new();
    for i in 0..FIRST_REQUESTS {
        let body = format!("{{\"plugin\":\"fresh{i:02}\",\"input\":21}}");
        let started = std::time::Instant::now();
        let answer = http_post(&server.addr, "/run", &body)?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        ensure!(answer.ends_with("{\"output\":43}"), "fresh{i:02}: {answer}");
    }
    times.sort_by(f64::total_cmp);
    Ok(FirstRequest { server: isolation, p50_ms: times[times.len() / 2], max_ms: times[times.len() - 1] })
}

/// One `POST` over HTTP/1.0 (the answer ends when the connection closes); the whole answer.
fn http_post(addr: &str, path: &str, body: &str) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr)?;
    write!(
        socket,
        "POST {path} HTTP/1.0\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    socket.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The label of the raw-endpoint load run on `server`.
fn raw_label(server: &str) -> &'static str {
    if server == PROCESS { "process, raw upper 1 KiB" } else { "in-process, raw upper 1 KiB" }
}

/// The bytes the SHA-256 stream benchmarks hash: the pattern `sha256.bench.c` writes into its
/// input buffer, repeated.
fn stream_pattern() -> Vec<u8> {
    (0..65536u32).map(|i| (i.wrapping_mul(31).wrapping_add(7)) as u8).collect()
}

/// Streams `mib` MiB of the pattern through `POST /plugins/sha256/functions/sha256sum` and
/// checks the digest; returns the seconds it took and the digest. `sample(sent_mib, rss_kib)`
/// is called after every 64 MiB sent, with the server's resident memory then.
fn stream_sha256(running: &RunningServer, mib: u64, mut sample: impl FnMut(u64, u64)) -> anyhow::Result<(f64, String)> {
    use std::io::{Read, Write};
    let pattern = stream_pattern();
    let total = mib << 20;
    let started = std::time::Instant::now();
    let mut socket = std::net::TcpStream::connect(&running.addr)?;
    // HTTP/1.0: the answer ends when the connection closes, so no chunked decoding is needed.
    write!(
        socket,
        "POST /plugins/sha256/functions/sha256sum HTTP/1.0\r\nHost: bench\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
    )?;
    let mut sent = 0u64;
    while sent < total {
        socket.write_all(&pattern)?;
        sent += pattern.len() as u64;
        if sent.is_multiple_of(64 << 20) {
            sample(sent >> 20, running.resident_kib());
        }
    }
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer)?;
    let seconds = started.elapsed().as_secs_f64();
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP answer")?;
    ensure!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "stream failed: {answer}");
    let expected = rust_sha256_hex(&pattern, total);
    ensure!(body == expected, "the host's digest {body} is not {expected}");
    Ok((seconds, body.to_string()))
}

fn rust_sha256_hex(pattern: &[u8], total: u64) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for _ in 0..total / pattern.len() as u64 {
        digest.update(pattern);
    }
    digest.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The same C source as the plugin, compiled natively at the plugin's -O2, on the same bytes.
fn build_native_c_sha256(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    let root = sh.current_dir();
    let binary = target_dir(sh).join("bench-sha256-native");
    let (include, plugins, source) =
        (root.join("plugin-sdk/include"), root.join("plugins"), root.join("plugins/sha256/sha256.bench.c"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    cmd!(sh, "{cc} -std=gnu11 -O2 -I {include} -I {plugins} -o {binary} {source}").run()?;
    Ok(binary)
}

/// One run of the native C build of the plugin's SHA-256 over the stream's bytes.
fn native_c_sha256(sh: &Shell, binary: &Path) -> anyhow::Result<Throughput> {
    let mib = STREAM_MIB.to_string();
    let output = cmd!(sh, "{binary} {mib}").read()?;
    let report: serde_json::Value = serde_json::from_str(&output)?;
    let seconds = report["seconds"].as_f64().context("seconds")?;
    let expected = rust_sha256_hex(&stream_pattern(), STREAM_MIB << 20);
    ensure!(report["digest"] == expected.as_str(), "the native C digest is wrong: {output}");
    Ok(Throughput { runner: "native C (same source, -O2)".into(), mib_per_sec: STREAM_MIB as f64 / seconds })
}

/// Rust's `sha2` over the same bytes, in chunks of the same size.
fn native_rust_sha256() -> Throughput {
    let started = std::time::Instant::now();
    std::hint::black_box(rust_sha256_hex(&stream_pattern(), STREAM_MIB << 20));
    Throughput { runner: "native Rust (sha2)".into(), mib_per_sec: STREAM_MIB as f64 / started.elapsed().as_secs_f64() }
}

fn render_v2(micro: &[Micro], loads: &[Load], streams: &[Throughput], memory: Option<&StreamMemory>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\n### ABI v2: one call with bytes (criterion, mean; `text`'s `upper`)\n");
    let _ = writeln!(out, "| runner | v1 `hello` | v2, 16 B | v2, 1 KiB | v2, 64 KiB |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for runner in BYTES_RUNNERS {
        let cells: Vec<String> =
            BYTES_CALLS.iter().map(|call| human_time(mean(micro, "bytes", &format!("{runner}_{call}")))).collect();
        let _ = writeln!(out, "| `{runner}` | {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n### ABI v2: `POST /plugins/text/functions/upper`, 1 KiB in and out (wrk, c=16)\n");
    let _ = writeln!(out, "| server | requests/s | p50 | p99 | errors |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for load in loads.iter().filter(|l| l.server.contains("raw")) {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            load.server, load.requests_per_sec, load.p50_ms, load.p99_ms, load.errors
        );
    }
    let _ =
        writeln!(out, "\n### ABI v2: streaming SHA-256 of {STREAM_MIB} MiB (median of {ROUNDS} alternated rounds)\n");
    let _ = writeln!(out, "| runner | MiB/s |");
    let _ = writeln!(out, "|---|---|");
    for stream in streams {
        let _ = writeln!(out, "| {} | {:.0} |", stream.runner, stream.mib_per_sec);
    }
    let _ = writeln!(out, "\n### ABI v2 targets\n");
    let _ = writeln!(out, "| target | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    for runner in BYTES_RUNNERS {
        let ratio =
            mean(micro, "bytes", &format!("{runner}_v2_1KiB")) / mean(micro, "bytes", &format!("{runner}_v1_hello"));
        let _ = writeln!(
            out,
            "| a 1 KiB v2 call costs ≤ 1.5x a v1 call (`{runner}`) | {ratio:.2}x | {} |",
            yes(ratio <= 1.5)
        );
    }
    let native_c = streams.iter().find(|s| s.runner.starts_with("native C")).map_or(f64::NAN, |s| s.mib_per_sec);
    for stream in streams.iter().filter(|s| s.runner.starts_with("host")) {
        let share = stream.mib_per_sec / native_c;
        let _ = writeln!(
            out,
            "| streaming SHA-256 ≥ 50% of the same C run natively ({}) | {:.0}% | {} |",
            stream.runner,
            share * 100.0,
            yes(share >= 0.5)
        );
    }
    if let Some(memory) = memory {
        let growth_kib = memory.peak_kib.saturating_sub(memory.after_64_mib_kib);
        let _ = writeln!(
            out,
            "| resident memory flat over a {MEMORY_STREAM_MIB} MiB stream (process; peak vs after 64 MiB) | {} KiB -> {} KiB (+{growth_kib} KiB) | {} |",
            memory.after_64_mib_kib,
            memory.peak_kib,
            yes(growth_kib <= 16 * 1024)
        );
    }
    out
}

fn host_command(host: &Path, plugins: &Path, isolation: &str) -> Command {
    let mut command = Command::new(host);
    command
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("PLUGIN_DIR", plugins)
        .env("ISOLATION", isolation)
        .env("RUST_LOG", "warn")
        .env("MAX_IN_FLIGHT", "1024");
    command
}

pub(crate) fn ensure_wrk(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    if let Some(wrk) = setup::resolve_program(Path::new("wrk")) {
        return Ok(wrk);
    }
    setup::apt_install(sh, &["wrk".to_string()], "the wrk load generator")?;
    setup::resolve_program(Path::new("wrk")).context("wrk was installed but is not on PATH")
}

/// A server process and the address it said it listens on.
pub(crate) struct RunningServer {
    child: Child,
    addr: String,
}

impl RunningServer {
    /// Starts `command` and reads the address from the one JSON line the server prints on
    /// stdout, `{"listening":"127.0.0.1:PORT"}` (see `host::announce_listening`).
    pub(crate) fn start(mut command: Command) -> anyhow::Result<Self> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let (line_tx, line) = mpsc::channel();
        std::thread::spawn(move || {
            let first = stdout.lines().next().and_then(Result::ok);
            let _ = line_tx.send(first);
        });
        let first = line.recv_timeout(Duration::from_secs(60)).ok().flatten();
        let announced: serde_json::Value = first
            .as_deref()
            .and_then(|line| serde_json::from_str(line).ok())
            .context("the server did not print where it listens")?;
        let addr = announced["listening"].as_str().context("no listening address")?.to_owned();
        Ok(RunningServer { child, addr })
    }

    /// Resident memory of the server and every process it started (its workers), in KiB.
    fn resident_kib(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|pid| {
                let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs a load and notes the CPU time the server and its workers spent per request.
    pub(crate) fn measured(&self, load: impl FnOnce() -> anyhow::Result<(Load, u64)>) -> anyhow::Result<(Load, u64)> {
        let before = self.cpu_ticks();
        let (mut figures, requests) = load()?;
        let ticks = self.cpu_ticks().saturating_sub(before);
        // The kernel counts CPU time in clock ticks of 10 ms (USER_HZ = 100 on Linux).
        figures.cpu_us_per_request = ticks as f64 * 10_000.0 / requests.max(1) as f64;
        Ok((figures, requests))
    }

    /// User and system CPU time of the server and its workers so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Fields after the command name (which is in parentheses): utime is the 12th, stime the 13th.
                let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
                let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
                field(11) + field(12)
            })
            .sum()
    }

    /// The server's process id and its children's (its workers).
    pub(crate) fn pids(&self) -> Vec<u32> {
        let pid = self.child.id();
        // Workers are started from any of the server's threads, and each thread lists its own.
        let children: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|list| list.split_whitespace().filter_map(|c| c.parse().ok()).collect::<Vec<u32>>())
            .collect();
        std::iter::once(pid).chain(children).collect()
    }
}

/// Stops the server (and so its workers, which exit with it) however the run ends.
impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs wrk and parses its report; returns the figures and the number of requests.
pub(crate) fn wrk_run(
    wrk: &Path,
    lua: &Path,
    url: &str,
    connections: u32,
    seconds: u32,
) -> anyhow::Result<(Load, u64)> {
    let threads = connections.min(2);
    let output = Command::new(wrk)
        .args(["--latency", "-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{seconds}s"), "-s"])
        .arg(lua)
        .arg(url)
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    }
    let field = |prefix: &str| -> Option<String> {
        text.lines().map(str::trim).find_map(|l| l.strip_prefix(prefix)).map(|rest| rest.trim().to_string())
    };
    let requests_per_sec = field("Requests/sec:").and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let p50_ms = field("50%").map(|v| duration_ms(&v)).unwrap_or(f64::NAN);
    let p99_ms = field("99%").map(|v| duration_ms(&v)).unwrap_or(f64::NAN);
    let non_2xx: u64 = field("Non-2xx or 3xx responses:").and_then(|v| v.parse().ok()).unwrap_or(0);
    let socket_errors: u64 = field("Socket errors:")
        .map(|v| v.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    let served = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let errors = non_2xx + socket_errors;
    let load = Load { server: "", connections, requests_per_sec, p50_ms, p99_ms, errors, cpu_us_per_request: f64::NAN };
    Ok((load, served))
}

/// wrk prints durations as `812.00us`, `1.20ms` or `2.01s`.
fn duration_ms(text: &str) -> f64 {
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        _ => f64::NAN,
    }
}

fn read_criterion(dir: &Path) -> anyhow::Result<Vec<Micro>> {
    let bytes = BYTES_RUNNERS.iter().flat_map(|runner| BYTES_CALLS.iter().map(move |call| format!("{runner}_{call}")));
    let entries = ["hello", "primes"]
        .iter()
        .flat_map(|group| MICRO_FUNCTIONS.iter().map(move |function| (*group, function.to_string())))
        .chain(bytes.map(|function| ("bytes", function)));
    let mut results = Vec::new();
    for (group, function) in entries {
        let path = dir.join(group).join(&function).join("new/estimates.json");
        let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let estimates: serde_json::Value = serde_json::from_str(&text)?;
        let mean_ns = estimates["mean"]["point_estimate"].as_f64().context("criterion estimate")?;
        results.push(Micro { group: group.into(), function, mean_ns });
    }
    Ok(results)
}

fn mean(micro: &[Micro], group: &str, function: &str) -> f64 {
    micro.iter().find(|m| m.group == group && m.function == function).map_or(f64::NAN, |m| m.mean_ns)
}

fn human_time(ns: f64) -> String {
    match ns {
        ns if ns < 1_000.0 => format!("{ns:.1} ns"),
        ns if ns < 1_000_000.0 => format!("{:.1} µs", ns / 1_000.0),
        ns => format!("{:.2} ms", ns / 1_000_000.0),
    }
}

fn render(micro: &[Micro], loads: &[Load], rounds: &[Load], memory: &[Memory], first: &[FirstRequest]) -> String {
    let mut out = String::new();
    let machine = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let load_average = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_average = load_average.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let _ = writeln!(
        out,
        "Measured by `cargo xtask bench` on {cores} cores ({machine}); load average when the run ended: \
         {load_average}.\n"
    );
    let _ = writeln!(out, "### One plugin call (criterion, mean)\n");
    let _ = writeln!(out, "| variant | hello | primes(20000) |");
    let _ = writeln!(out, "|---|---|---|");
    for function in MICRO_FUNCTIONS.iter().chain([&PEER_MICRO]) {
        let _ = writeln!(
            out,
            "| `{function}` | {} | {} |",
            human_time(mean(micro, "hello", function)),
            human_time(mean(micro, "primes", function))
        );
    }
    let _ = writeln!(
        out,
        "\n`{PEER_MICRO}`: wasmtime (bench/wasmtime-peer) creating an instance from its `InstancePre` in the \
         pooling allocator and running init, process and cleanup, per call (the peer's own timing loop, mean \
         over 2 s).\n"
    );
    let _ = writeln!(out, "![call cost by variant](docs/benchmarks.svg)\n");
    let _ = writeln!(out, "### `POST /run` hello over HTTP (wrk, 127.0.0.1)\n");
    let _ = writeln!(out, "c=16 is the median of {ROUNDS} rounds alternated between the servers.\n");
    let _ = writeln!(
        out,
        "Server CPU is the CPU time the server and its workers spent per request (from `/proc`), which \
         hardly depends on what else the machine runs; requests/s and latencies do.\n"
    );
    let _ = writeln!(out, "| server | connections | requests/s | p50 | p99 | errors | server CPU per request |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for load in loads.iter().filter(|l| !l.server.contains("raw")) {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.3} ms | {:.3} ms | {} | {:.1} µs |",
            load.server,
            load.connections,
            load.requests_per_sec,
            load.p50_ms,
            load.p99_ms,
            load.errors,
            load.cpu_us_per_request
        );
    }
    let _ = writeln!(out, "\nThe c=16 rounds (requests/s):\n");
    let _ =
        writeln!(out, "| server | {} |", (1..=ROUNDS).map(|r| format!("round {r}")).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(out, "|---|{}", "---|".repeat(ROUNDS));
    for server in [BARE, NATIVE, PEER, IN_PROCESS, PROCESS] {
        let cells: Vec<String> =
            rounds.iter().filter(|l| l.server == server).map(|l| format!("{:.0}", l.requests_per_sec)).collect();
        let _ = writeln!(out, "| {server} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n### Resident memory over the load runs (server and its workers)\n");
    let _ = writeln!(out, "| server | requests served | RSS before | RSS after |");
    let _ = writeln!(out, "|---|---|---|---|");
    for m in memory {
        let _ = writeln!(out, "| {} | {} | {} KiB | {} KiB |", m.server, m.requests, m.before_kib, m.after_kib);
    }
    let _ = writeln!(out, "\n### First request of a never-seen plugin (AOT compilation included)\n");
    let _ = writeln!(out, "| server | plugins | p50 | slowest |");
    let _ = writeln!(out, "|---|---|---|---|");
    for f in first {
        let _ = writeln!(out, "| {} | {FIRST_REQUESTS} | {:.1} ms | {:.1} ms |", f.server, f.p50_ms, f.max_ms);
    }

    let load = |server: &str, c: u32| loads.iter().find(|l| l.server == server && l.connections == c);
    let _ = writeln!(out, "\n### Targets (issue 14: against the bare native endpoint and the wasmtime peer)\n");
    let _ = writeln!(out, "| target | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    if let Some(bare) = load(BARE, 16) {
        for (server, share_target) in [(PROCESS, 0.45), (IN_PROCESS, 0.60)] {
            let Some(ours) = load(server, 16) else { continue };
            let share = ours.requests_per_sec / bare.requests_per_sec;
            let _ = writeln!(
                out,
                "| c=16 throughput ≥ {:.0}% of bare native, {server} | {:.0}% ({:.0} vs {:.0} requests/s) | {} |",
                share_target * 100.0,
                share * 100.0,
                ours.requests_per_sec,
                bare.requests_per_sec,
                yes(share >= share_target)
            );
            // The same ratio from CPU time per request: what the throughput ratio would be if
            // the server had the machine to itself (every server here is CPU-bound).
            let cpu_share = bare.cpu_us_per_request / ours.cpu_us_per_request;
            let _ = writeln!(
                out,
                "| (the same, from server CPU per request: bare native's / {server}'s) | {:.0}% ({:.1} vs {:.1} µs) | {} |",
                cpu_share * 100.0,
                bare.cpu_us_per_request,
                ours.cpu_us_per_request,
                yes(cpu_share >= share_target)
            );
            if server == PROCESS {
                let p99 = ours.p99_ms / bare.p99_ms;
                let _ = writeln!(
                    out,
                    "| c=16 p99 ≤ 2x bare native, {server} | {p99:.1}x ({:.3} vs {:.3} ms) | {} |",
                    ours.p99_ms,
                    bare.p99_ms,
                    yes(p99 <= 2.0)
                );
            }
        }
    }
    if let (Some(ours), Some(peer)) = (load(IN_PROCESS, 16), load(PEER, 16)) {
        let ratio = ours.requests_per_sec / peer.requests_per_sec;
        let _ = writeln!(
            out,
            "| c=16 throughput ahead of the wasmtime peer, in-process | {:.2}x ({:.0} vs {:.0} requests/s) | {} |",
            ratio,
            ours.requests_per_sec,
            peer.requests_per_sec,
            yes(ratio > 1.0)
        );
        let cpu_ratio = peer.cpu_us_per_request / ours.cpu_us_per_request;
        let _ = writeln!(
            out,
            "| (the same, from server CPU per request: the peer's / in-process's) | {:.2}x ({:.1} vs {:.1} µs) | {} |",
            cpu_ratio,
            peer.cpu_us_per_request,
            ours.cpu_us_per_request,
            yes(cpu_ratio > 1.0)
        );
    }
    let ratio = mean(micro, "hello", "worker_process_runner") / mean(micro, "hello", "in_process_runner");
    let _ = writeln!(
        out,
        "| per call: worker runner ≤ 2x the in-process runner (hello) | {ratio:.2}x | {} |",
        yes(ratio <= 2.0)
    );
    let ratio = mean(micro, "hello", "cached_aot") / mean(micro, "hello", PEER_MICRO);
    let _ = writeln!(
        out,
        "| per call: in-process call on a cached plugin (`cached_aot`) ≤ the wasmtime peer's instantiate-and-call \
         (hello) | {ratio:.2}x ({} vs {}) | {} |",
        human_time(mean(micro, "hello", "cached_aot")),
        human_time(mean(micro, "hello", PEER_MICRO)),
        yes(ratio <= 1.0)
    );
    for function in ["cached_aot", "cached_aot_supervised"] {
        let ratio = mean(micro, "primes", function) / mean(micro, "primes", "native");
        let _ = writeln!(
            out,
            "| compute-bound `primes` within 1.5x of native Rust (`{function}`) | {ratio:.2}x | {} |",
            yes(ratio <= 1.5)
        );
    }
    let ratio = mean(micro, "primes", PEER_MICRO) / mean(micro, "primes", "native");
    let _ = writeln!(out, "| (for comparison: the wasmtime peer's `primes` against native Rust) | {ratio:.2}x | - |");
    for f in first {
        let _ = writeln!(
            out,
            "| first request of a never-seen plugin ≤ 100 ms (p50 of {FIRST_REQUESTS}), {} | {:.1} ms | {} |",
            f.server,
            f.p50_ms,
            yes(f.p50_ms <= 100.0)
        );
    }
    for m in memory.iter().filter(|m| [IN_PROCESS, PROCESS].contains(&m.server)) {
        let growth = m.after_kib as f64 / m.before_kib.max(1) as f64;
        let _ = writeln!(
            out,
            "| resident memory flat (within 10%) over 1,000,000 requests, {} | {} requests, {:+.1}% | {} |",
            m.server,
            m.requests,
            (growth - 1.0) * 100.0,
            yes(m.requests >= 1_000_000 && growth <= 1.10)
        );
    }

    let _ = writeln!(out, "\n### Targets (earlier rounds)\n");
    let _ = writeln!(out, "| target | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    let seed = mean(micro, "hello", "seed_load_every_call");
    for function in ["cached_aot", "cached_aot_supervised"] {
        let ratio = seed / mean(micro, "hello", function);
        let _ = writeln!(
            out,
            "| fresh-state call ≥ 4x cheaper than the seed's load-every-call (`{function}`) | {ratio:.1}x | {} |",
            yes(ratio >= 4.0)
        );
    }
    if let Some(native) = load(NATIVE, 16) {
        for server in [IN_PROCESS, PROCESS] {
            if let Some(ours) = load(server, 16) {
                let share = ours.requests_per_sec / native.requests_per_sec;
                let p99 = ours.p99_ms / native.p99_ms;
                let _ = writeln!(
                    out,
                    "| c=16 throughput ≥ 50% of native (same stack), {server} | {:.0}% | {} |",
                    share * 100.0,
                    yes(share >= 0.5)
                );
                let _ =
                    writeln!(out, "| c=16 p99 ≤ 2x native (same stack), {server} | {p99:.1}x | {} |", yes(p99 <= 2.0));
                let _ = writeln!(out, "| c=16 zero errors, {server} | {} | {} |", ours.errors, yes(ours.errors == 0));
            }
        }
    }
    out
}

fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// Replaces the generated part of BENCHMARKS.md, keeping the prose around it.
fn write_report(sh: &Shell, report: &str) -> anyhow::Result<()> {
    let path = sh.current_dir().join("BENCHMARKS.md");
    let (begin, end) = ("<!-- bench:begin -->", "<!-- bench:end -->");
    let text = fs::read_to_string(&path).unwrap_or_else(|_| format!("# Benchmarks\n\n{begin}\n{end}\n"));
    let (Some(start), Some(stop)) = (text.find(begin), text.find(end)) else {
        bail!("BENCHMARKS.md lacks the {begin} / {end} markers");
    };
    let updated = format!("{}{begin}\n{report}{}", &text[..start], &text[stop..]);
    fs::write(&path, updated)?;
    Ok(())
}

/// A horizontal bar chart of the hello call cost per variant, on a log scale, as SVG.
fn chart(micro: &[Micro]) -> String {
    let rows: Vec<(&str, f64)> =
        MICRO_FUNCTIONS.iter().chain([&PEER_MICRO]).map(|f| (*f, mean(micro, "hello", f))).collect();
    let (width, row, left) = (760.0, 28.0, 190.0);
    let height = 60.0 + row * rows.len() as f64;
    let max_log = rows.iter().map(|(_, ns)| ns.log10()).fold(0.0, f64::max).ceil();
    let scale = |ns: f64| (ns.max(1.0).log10() / max_log) * (width - left - 110.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">One call of the hello plugin (log scale, lower is better)</text>\n"
    );
    for (i, (name, ns)) in rows.iter().enumerate() {
        let y = 40.0 + row * i as f64;
        let bar = scale(*ns);
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{name}</text>\
             <rect x=\"{left}\" y=\"{y}\" width=\"{bar:.1}\" height=\"{h}\" fill=\"#4a78c2\"/>\
             <text x=\"{lx:.1}\" y=\"{ty}\">{label}</text>",
            x = left - 8.0,
            ty = y + 15.0,
            h = row - 8.0,
            lx = left + bar + 6.0,
            label = human_time(*ns),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_durations() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(duration_ms("812.00us"), 0.812));
        assert!(close(duration_ms("1.20ms"), 1.2));
        assert!(close(duration_ms("2.01s"), 2010.0));
        assert!(duration_ms("soon").is_nan());
    }
}
