//! The Markdown tables of BENCHMARKS.md, written between its `bench:begin`/`bench:end` markers.

use std::{fmt::Write as _, fs};

use anyhow::bail;
use xshell::Shell;

use super::{
    BARE, BYTES_CALLS, BYTES_RUNNERS, FIRST_REQUESTS, FirstRequest, IN_PROCESS, Load, MAX_ROUNDS, MEMORY_STREAM_MIB,
    MICRO_FUNCTIONS, Memory, NATIVE, PEER, PEER_MICRO, PROCESS, REQUEST_PATH, ROUNDS, STREAM_MIB, StreamMemory,
    Throughput,
    criterion::{Micro, mean},
    host_label, runtime_label,
};

pub(super) fn human_time(ns: f64) -> String {
    match ns {
        ns if ns < 1_000.0 => format!("{ns:.1} ns"),
        ns if ns < 1_000_000.0 => format!("{:.1} µs", ns / 1_000.0),
        ns => format!("{:.2} ms", ns / 1_000_000.0),
    }
}

pub(super) fn render(
    micro: &[Micro],
    loads: &[Load],
    rounds: &[Load],
    memory: &[Memory],
    first: &[FirstRequest],
) -> String {
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
    render_request_path(&mut out, micro);
    let _ = writeln!(out, "### `POST /run` hello over HTTP (wrk, 127.0.0.1)\n");
    let round_count = rounds.iter().filter(|l| l.server == BARE).count();
    let _ = writeln!(
        out,
        "c=16 is the median of {round_count} rounds alternated between the servers: at least {ROUNDS}, and more \
         until one more round moved no server's median requests/s or CPU per request by over 3% (at most \
         {MAX_ROUNDS}).\n"
    );
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
    let _ = writeln!(
        out,
        "| server | {} |",
        (1..=round_count).map(|r| format!("round {r}")).collect::<Vec<_>>().join(" | ")
    );
    let _ = writeln!(out, "|---|{}", "---|".repeat(round_count));
    for server in [BARE, NATIVE, PEER, IN_PROCESS, PROCESS] {
        let cells: Vec<String> =
            rounds.iter().filter(|l| l.server == server).map(|l| format!("{:.0}", l.requests_per_sec)).collect();
        let _ = writeln!(out, "| {server} | {} |", cells.join(" | "));
    }
    let _ = writeln!(out, "\n### Waiting for a CPU (c=16, medians of the rounds)\n");
    let _ = writeln!(
        out,
        "The time the server's own threads (not its workers) were ready to run but waited for a CPU, summed over \
         the threads, from the scheduler's counts (`/proc/PID/task/*/schedstat`): on 2 cores shared with wrk \
         (and the workers), the long waits are where a request's long tail comes from.\n"
    );
    let _ = writeln!(out, "| server | waited, ms per second | waited per time slice run | p99 |");
    let _ = writeln!(out, "|---|---|---|---|");
    for server in [BARE, NATIVE, PEER, IN_PROCESS, PROCESS] {
        let Some(l) = loads.iter().find(|l| l.server == server && l.connections == 16) else { continue };
        let _ = writeln!(
            out,
            "| {server} | {:.0} | {:.0} µs | {:.3} ms |",
            l.cpu_wait.ms_per_s, l.cpu_wait.per_slice_us, l.p99_ms
        );
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
    render_round_three_targets(&mut out, micro, loads);
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
                p99_row(&mut out, server, bare, ours);
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

/// The target row "c=16 p99 ≤ 2x bare native" for `server`.
fn p99_row(out: &mut String, server: &str, bare: &Load, ours: &Load) {
    let p99 = ours.p99_ms / bare.p99_ms;
    let _ = writeln!(
        out,
        "| c=16 p99 ≤ 2x bare native, {server} | {p99:.1}x ({:.3} vs {:.3} ms) | {} |",
        ours.p99_ms,
        bare.p99_ms,
        yes(p99 <= 2.0)
    );
}

/// Issue 27's targets: worker processes without the context-switch tax, a leaner request path.
fn render_round_three_targets(out: &mut String, micro: &[Micro], loads: &[Load]) {
    let load = |server: &str, c: u32| loads.iter().find(|l| l.server == server && l.connections == c);
    let _ = writeln!(out, "\n### Targets (issue 27: isolation without the context-switch tax)\n");
    let _ = writeln!(out, "| target | measured | met |");
    let _ = writeln!(out, "|---|---|---|");
    for (server, connections, target) in [(PROCESS, 16, 0.30), (PROCESS, 64, 0.25), (IN_PROCESS, 16, 0.45)] {
        let (Some(bare), Some(ours)) = (load(BARE, connections), load(server, connections)) else { continue };
        let share = ours.requests_per_sec / bare.requests_per_sec;
        let cpu_share = bare.cpu_us_per_request / ours.cpu_us_per_request;
        let _ = writeln!(
            out,
            "| c={connections} throughput ≥ {:.0}% of bare native, {server} | {:.0}% ({:.0} vs {:.0} requests/s; \
             from CPU per request {:.0}%: {:.1} vs {:.1} µs) | {} |",
            target * 100.0,
            share * 100.0,
            ours.requests_per_sec,
            bare.requests_per_sec,
            cpu_share * 100.0,
            bare.cpu_us_per_request,
            ours.cpu_us_per_request,
            yes(share >= target)
        );
    }
    if let (Some(ours), Some(peer)) = (load(IN_PROCESS, 16), load(PEER, 16)) {
        let ratio = peer.cpu_us_per_request / ours.cpu_us_per_request;
        let _ = writeln!(
            out,
            "| c=16 server CPU per request ≥ 1.2x better than the wasmtime peer's, in-process | {ratio:.2}x ({:.1} vs \
             {:.1} µs) | {} |",
            peer.cpu_us_per_request,
            ours.cpu_us_per_request,
            yes(ratio >= 1.2)
        );
        // The best the host could do while it keeps its HTTP stack: that stack answering with a
        // native function, plus the in-process call on its own, with nothing lost between them.
        if let Some(native) = load(NATIVE, 16) {
            let call_us = mean(micro, "hello", "in_process_runner") / 1_000.0;
            let floor = native.cpu_us_per_request + call_us;
            let _ = writeln!(
                out,
                "| (its ceiling: the host's stack with a native function, {:.1} µs, plus the in-process call alone, \
                 {call_us:.1} µs, is {floor:.1} µs, where the target needs at most {:.1} µs) | {:.2}x | - |",
                native.cpu_us_per_request,
                peer.cpu_us_per_request / 1.2,
                peer.cpu_us_per_request / floor
            );
        }
    }
    for server in [PROCESS, IN_PROCESS] {
        let (Some(bare), Some(ours)) = (load(BARE, 16), load(server, 16)) else { continue };
        p99_row(out, server, bare, ours);
    }
    if let (Some(process), Some(in_process)) = (load(PROCESS, 16), load(IN_PROCESS, 16)) {
        let _ = writeln!(
            out,
            "| (what sets the p99: the server's threads waiting for a CPU, process {:.0} ms per second, {:.0} µs per \
             time slice run, in-process {:.0} ms per second, {:.0} µs per time slice; see \"Waiting for a CPU\") | - | - |",
            process.cpu_wait.ms_per_s,
            process.cpu_wait.per_slice_us,
            in_process.cpu_wait.ms_per_s,
            in_process.cpu_wait.per_slice_us
        );
    }
    let in_process = mean(micro, "hello", "in_process_runner");
    let _ = writeln!(
        out,
        "| per call: in-process runner `hello` ≤ 8 µs | {} | {} |",
        human_time(in_process),
        yes(in_process <= 8_000.0)
    );
    let ratio = mean(micro, "hello", "worker_process_runner") / in_process;
    let _ = writeln!(
        out,
        "| per call: worker runner `hello` ≤ 1.5x the in-process runner | {ratio:.2}x | {} |",
        yes(ratio <= 1.5)
    );
    let layer = mean(micro, "request_path", "host_native") - mean(micro, "request_path", "bare_axum");
    let _ = writeln!(
        out,
        "| the host's HTTP layer (request id, span, metrics, admission, with its handler) ≤ 2 µs per request \
         beyond bare axum (criterion: `host_native` − `bare_axum`) | {} | {} |",
        human_time(layer),
        yes(layer <= 2_000.0)
    );
    let errors: u64 = loads.iter().filter(|l| [PROCESS, IN_PROCESS].contains(&l.server)).map(|l| l.errors).sum();
    let _ = writeln!(out, "| zero errors in every load run, both modes | {errors} | {} |", yes(errors == 0));
}

/// The `request_path` group: one request through each router, without the network.
fn render_request_path(out: &mut String, micro: &[Micro]) {
    let _ = writeln!(out, "### One request through the router, without the network (criterion, mean)\n");
    let _ = writeln!(
        out,
        "`POST /run` hello handed to each router with `oneshot` on the benchmark's thread \
         (`host/benches/request_path.rs`): no TCP, no scheduler, so the differences are the routers' own work.\n"
    );
    let _ = writeln!(out, "| router | per request | beyond the one above |");
    let _ = writeln!(out, "|---|---|---|");
    let mut before = None;
    for function in REQUEST_PATH {
        let ns = mean(micro, "request_path", function);
        let beyond = before.map_or_else(|| "-".to_string(), |b| human_time(ns - b));
        let _ = writeln!(out, "| `{function}` | {} | {beyond} |", human_time(ns));
        before = Some(ns);
    }
    let _ = writeln!(out);
}

pub(super) fn yes(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

pub(super) fn render_v2(
    micro: &[Micro],
    loads: &[Load],
    streams: &[Throughput],
    memory: Option<&StreamMemory>,
) -> String {
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
    let share =
        |runner: &str| streams.iter().find(|s| s.runner == runner).map_or(f64::NAN, |s| s.mib_per_sec) / native_c;
    for server in [IN_PROCESS, PROCESS] {
        let (host, runtime) = (host_label(server), runtime_label(server));
        let (share, ceiling) = (share(&host), share(&runtime));
        let _ = writeln!(
            out,
            "| streaming SHA-256 ≥ 50% of the same C run natively ({host}) | {:.0}% | {} |",
            share * 100.0,
            yes(share >= 0.5)
        );
        let _ = writeln!(
            out,
            "| streaming SHA-256 ≥ 80% of the same C run natively (issue 27; {host}) | {:.0}% (its ceiling, the \
             {runtime}: {:.0}%) | {} |",
            share * 100.0,
            ceiling * 100.0,
            yes(share >= 0.8)
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

/// Replaces the generated part of BENCHMARKS.md, keeping the prose around it.
pub(super) fn write_report(sh: &Shell, report: &str) -> anyhow::Result<()> {
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
