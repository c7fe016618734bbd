//! `cargo xtask bench`: every benchmark in one run, written up in BENCHMARKS.md.
//!
//! 1. Runtime micro-benchmarks (criterion, `host/benches/runtime.rs`): one plugin call from
//!    the native floor to the seed's load-every-call design, for `hello` and `primes`; and the
//!    wasmtime peer's instantiate-and-call (`bench/wasmtime-peer`, its own timing loop); and
//!    one `POST /run` hello through each router without the network (criterion,
//!    `host/benches/request_path.rs`: bare axum, the host's stack with a native function, the
//!    host calling the plugin in-process), which prices the host's HTTP layer exactly.
//! 2. HTTP load on 127.0.0.1 with `wrk` at concurrency 1, 16 and 64: `POST /run` hello on the
//!    host in process isolation and in-process, next to three baselines started in the same
//!    run: the bare axum handler (`host/examples/bare_native.rs`, the limit of the stack), the
//!    host's own HTTP stack answering with a native function (`host/examples/native_server.rs`)
//!    and the wasmtime peer. c=16 runs in rounds alternated between the servers (medians).
//!    Resident memory of each host server (and its workers) is read before and after at least
//!    `--soak-requests` requests; the first request of never-seen plugins is timed.
//! 3. ABI v2: the `bytes` criterion group (a v2 call with 16 B, 1 KiB and 64 KiB next to a v1
//!    call), `POST /plugins/text/functions/upper` with 1 KiB at concurrency 16, and a streaming
//!    SHA-256 of 256 MiB through the host next to the same stream through its runtime alone
//!    (`host/examples/stream_sha256.rs`, no HTTP), the same C source compiled natively
//!    (`plugins/sha256/sha256.bench.c`) and Rust's `sha2`; resident memory is sampled while
//!    1 GiB streams through.
//!
//! The figures go between the `bench:begin`/`bench:end` markers of BENCHMARKS.md, and a bar
//! chart to `docs/benchmarks.svg`. Nothing here fails on slow numbers: benchmarks report.
//!
//! # Layout
//!
//! This module runs the benchmarks in order and holds what they measure; [`servers`] builds,
//! starts and watches the servers, [`wrk`] drives the load generator, [`streams`],
//! [`fairness`] and [`first_requests`] are the runs that are not plain `wrk` loads,
//! [`criterion`] reads the micro-benchmarks' results, and [`report`] and [`chart`] render them.
//! Every request xtask sends itself goes through [`crate::http`].

mod chart;
mod criterion;
mod fairness;
mod first_requests;
mod report;
mod servers;
mod streams;
mod wrk;

use std::fs;

use anyhow::{Context, ensure};
use xshell::{Shell, cmd};

use self::{
    chart::chart,
    criterion::{Micro, read_criterion},
    fairness::{fairness, render_fairness},
    first_requests::first_requests,
    report::{render, render_v2, write_report},
    servers::{build_servers, host_command, server_command},
    streams::{
        build_native_c_sha256, host_label, native_c_sha256, native_rust_sha256, runtime_label, runtime_sha256,
        stream_sha256,
    },
};
pub(crate) use self::{
    servers::{RunningServer, build_host, host_server, native_server, target_dir},
    wrk::{ensure_wrk, wrk_run},
};
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
    /// The time the server's own threads (not its workers) spent ready to run but waiting for a
    /// CPU, in ms per second of the load, summed over the threads; and that time per time slice
    /// they ran, in µs. On an oversubscribed machine this is where a request's long tail comes
    /// from.
    pub(crate) cpu_wait: CpuWait,
}

/// What the server's threads spent waiting for a CPU during a load (see [`Load::cpu_wait`]),
/// from the scheduler's own counts (`/proc/PID/task/*/schedstat`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuWait {
    pub(crate) ms_per_s: f64,
    pub(crate) per_slice_us: f64,
}

impl CpuWait {
    pub(crate) const UNKNOWN: CpuWait = CpuWait { ms_per_s: f64::NAN, per_slice_us: f64::NAN };
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

/// The `request_path` criterion group: `POST /run` hello through the bare axum router, the
/// host's router with native functions, and the host's router calling the plugin in-process.
const REQUEST_PATH: [&str; 3] = ["bare_axum", "host_native", "host_in_process"];

/// The wasmtime peer's instantiate-and-call, timed by the peer itself (a row of the micro
/// table, next to criterion's).
const PEER_MICRO: &str = "wasmtime_peer";

/// The servers under HTTP load, all measured in the same run: the bare axum handler (the
/// stack's limit), the host's own stack with a native function, the wasmtime peer, and the host
/// in both isolation modes.
const BARE: &str = "bare native";
pub(crate) const NATIVE: &str = "native (same stack)";
const PEER: &str = "wasmtime peer";
const IN_PROCESS: &str = "in-process";
const PROCESS: &str = "process";

/// Rounds of the c=16 comparison, alternated between the servers so that a burst of load from
/// elsewhere on the machine does not fall on one server only; the tables show medians.
const ROUNDS: usize = 3;

/// Most rounds of the c=16 comparison: more are run after the first `ROUNDS` while a round
/// still moves a server's median by more than [`SETTLED`].
const MAX_ROUNDS: usize = 9;

/// How far one more round may move a median (requests/s or CPU per request) for the medians to
/// count as settled.
const SETTLED: f64 = 0.03;

/// Whether the round just run moved no server's medians by more than [`SETTLED`].
fn settled(before_round: &[Load], rounds: &[Load]) -> bool {
    let moved = |before: f64, after: f64| (after - before).abs() > SETTLED * before.abs().max(f64::MIN_POSITIVE);
    before_round.iter().all(|before| {
        let after = median_load(rounds, before.server);
        !moved(before.requests_per_sec, after.requests_per_sec)
            && !moved(before.cpu_us_per_request, after.cpu_us_per_request)
    })
}

/// Distinct never-seen plugins the first-request figure is the median of.
const FIRST_REQUESTS: usize = 20;

impl Bench {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        setup::Setup::for_running().run(sh)?;
        BuildPlugins::default().run(sh)?;

        if !self.skip_micro {
            step("runtime micro-benchmarks (criterion)");
            cmd!(sh, "cargo bench --package host --bench runtime --bench request_path").run()?;
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
        for round in 1..=MAX_ROUNDS {
            let before_round: Vec<Load> = servers.iter().map(|server| median_load(&rounds, server)).collect();
            for (i, (server, r)) in running.iter().enumerate() {
                step(format!("HTTP load: {server}, c=16, round {round} (at least {ROUNDS}, at most {MAX_ROUNDS})"));
                let (load, requests) = r.measured(|| wrk_run(&wrk, &lua, &r.url("/run"), 16, self.seconds))?;
                println!("    {load:?}");
                served[i] += requests;
                rounds.push(Load { server, ..load });
            }
            if round >= ROUNDS && settled(&before_round, &rounds) {
                break;
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
                let stream = stream_sha256(r, MEMORY_STREAM_MIB)?;
                let after_64 = stream.samples.iter().find(|(sent_mib, _)| *sent_mib == 64).map_or(0, |(_, rss)| *rss);
                let peak = stream.samples.iter().map(|(_, rss)| *rss).max().unwrap_or(0);
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
                let seconds = stream_sha256(r, STREAM_MIB)?.seconds;
                let mib_per_sec = STREAM_MIB as f64 / seconds;
                stream_rounds.push(Throughput { runner: host_label(server), mib_per_sec });
                stream_rounds.push(runtime_sha256(sh, server)?);
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
        cpu_wait: CpuWait { ms_per_s: of(|l| l.cpu_wait.ms_per_s), per_slice_us: of(|l| l.cpu_wait.per_slice_us) },
    }
}

/// The label of the raw-endpoint load run on `server`.
fn raw_label(server: &str) -> &'static str {
    if server == PROCESS { "process, raw upper 1 KiB" } else { "in-process, raw upper 1 KiB" }
}
