//! `cargo xtask profile`: where a `POST /run` request's time goes, from CPU profiles.
//!
//! The same-stack native server (the host's HTTP stack answering with a native function: what
//! a request costs before any plugin), then the release host in each isolation mode, serves
//! `hello` to wrk at 16 connections while `perf record -e cpu-clock --call-graph dwarf`
//! samples the server and its worker processes (the software clock: no hardware counters are
//! needed, so it works in VMs and containers; DWARF unwinding, because release builds have no
//! frame pointers). The host's samples become a flame graph (`docs/profile-<isolation>.svg`,
//! by inferno), and every server's a cost breakdown per request in microseconds: each sample goes to the category of the innermost frame of its
//! stack that names one (see [`CATEGORIES`]), and each category's share of the samples times
//! the server's CPU time per request (from `/proc`, in a run without the profiler, which slows
//! what it samples) is its CPU time per request. The breakdown goes between the
//! `profile:begin`/`profile:end` markers of BENCHMARKS.md.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{bench, build_plugins::BuildPlugins, setup, step};

#[derive(Debug, clap::Args)]
pub struct Profile {
    /// Seconds of sampling per server.
    #[arg(long, default_value_t = 6)]
    seconds: u32,
}

/// Samples per second and CPU (each copies 16 KiB of stack for unwinding).
const FREQUENCY: u32 = 499;

/// The cost categories and the frame name fragments that mark them. A sample belongs to the
/// category of the innermost frame (from the leaf up) that contains any fragment; a frame that
/// matches several goes to the first in this list, so narrow mechanisms come first.
const CATEGORIES: &[(&str, &[&str])] = &[
    (
        "deadline: the watchdog's bookkeeping (`runtime/deadline.rs`), or WasmEdge's timer per call where it keeps the deadline",
        &[
            "runtime::deadline",
            "timer_create",
            "timer_settime",
            "timer_delete",
            "sigsetjmp",
            "sigprocmask",
            "posix_timer",
            "JMP_BUF",
        ],
    ),
    (
        "WasmEdge call: function lookup, entry, the plugin's own code",
        &[
            "WasmEdge_ExecutorInvoke",
            "WasmEdge_VMExecute",
            "Executor::invoke",
            "run_func",
            "WasmEdge_VM",
            // The host's side of entering the engine (finding the export, the lifecycle's stages).
            "PluginInstance::lifecycle",
            "PluginInstance::call_export",
            "run_v1_reset_later",
        ],
    ),
    (
        "instance reset (memory and globals back to fresh) or creation",
        &["PluginInstance::reset", "checkout", "instantiate", "recycle", "put_back", "WasmEdge_"],
    ),
    (
        "worker round trip: framing, socket, the worker's own loop",
        &["protocol::", "worker::pool::Worker", "worker::lane", "worker::child", "unix_stream", "unix_", "BufReader"],
    ),
    ("hot-swap check (one `lstat`) and the catalog", &["catalog::", "store::", "statx", "newfstatat", "lstat"]),
    (
        "the runner: which way a call goes (this thread, a lane, a worker) and its records",
        &["plugin_host::runner::", "ShortCalls"],
    ),
    (
        "middleware and the host's handler: request id, tracing span, metrics, admission",
        &[
            "tower_http",
            "RequestIds",
            "getrandom",
            "tracing",
            "prometheus",
            "metrics::",
            "around_every_request",
            "Semaphore",
            "host::api",
        ],
    ),
    ("JSON: parsing the request, writing the answer", &["serde_json", "serde::", "Json"]),
    (
        "TCP on loopback (kernel send and receive)",
        &["tcp_", "inet_", "ip_", "net_rx", "skb", "TcpStream", "TcpListener", "mio::"],
    ),
    (
        "thread and process hand-offs: the blocking pool, wake-ups, context switches",
        &[
            "spawn_blocking",
            "blocking::pool",
            "futex",
            "__schedule",
            "try_to_wake_up",
            "wake_up_q",
            "finish_task_switch",
            "Condvar",
            "park_timeout",
            "Parker",
            "unpark",
        ],
    ),
    ("HTTP: hyper's parsing and writing, axum's routing", &["hyper", "axum", "matchit", "http::"]),
];

/// Samples with no frame of any category (work inside a category's frames that no narrower
/// category names, such as allocation inside hyper, counts for the enclosing category).
const OTHER: &str = "outside every category above";

/// One server's profile.
#[derive(Debug)]
struct Breakdown {
    server: &'static str,
    requests: f64,
    requests_per_sec: f64,
    /// Microseconds of CPU per request, per category (in [`CATEGORIES`] order, then other).
    per_request_us: Vec<(&'static str, f64)>,
}

impl Profile {
    pub fn run(self, sh: &Shell) -> anyhow::Result<()> {
        setup::Setup::for_running().run(sh)?;
        BuildPlugins::default().run(sh)?;
        bench::build_host(sh)?;
        let perf = setup::resolve_program(Path::new("perf")).map_or_else(
            || {
                setup::apt_install(sh, &["linux-perf".to_string()], "perf, the Linux profiler")?;
                setup::resolve_program(Path::new("perf")).context("perf was installed but is not on PATH")
            },
            Ok,
        )?;
        let (collapse, flamegraph) = ensure_inferno(sh)?;
        let wrk = bench::ensure_wrk(sh)?;
        let scratch = sh.create_temp_dir()?;
        let lua = scratch.path().join("post.lua");
        fs::write(
            &lua,
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.body = '{\"plugin\":\"hello\",\"input\":21}'\n",
        )?;
        let mut breakdowns = Vec::new();
        // The same-stack native server first: what the host's HTTP stack costs without a plugin
        // (its folded stacks are kept, but it gets no flame graph in docs/).
        let servers = [
            (bench::NATIVE, "native", bench::native_server(sh)),
            ("in-process", "in-process", bench::host_server(sh, "in-process")),
            ("process", "process", bench::host_server(sh, "process")),
        ];
        for (label, slug, command) in servers {
            step(format!("profiling {label} under wrk -c 16 for {} s", self.seconds));
            let server = bench::RunningServer::start(command)?;
            let url = server.url("/run");
            bench::wrk_run(&wrk, &lua, &url, 16, 2)?;
            let unprofiled = server.measured(|| bench::wrk_run(&wrk, &lua, &url, 16, self.seconds))?.0;
            let cpu_us_per_request = unprofiled.cpu_us_per_request;
            let load = Command::new(&wrk)
                .args(["-t", "2", "-c", "16", "-d", &format!("{}s", self.seconds + 2), "-s"])
                .arg(&lua)
                .arg(&url)
                .stdout(Stdio::piped())
                .spawn()?;
            std::thread::sleep(Duration::from_secs(1));
            let pids = server.pids().iter().map(u32::to_string).collect::<Vec<_>>().join(",");
            let data = scratch.path().join(format!("{slug}.perf"));
            let frequency = FREQUENCY.to_string();
            let seconds = self.seconds.to_string();
            cmd!(
                sh,
                "{perf} record -q -e cpu-clock -F {frequency} --call-graph dwarf,16384 -p {pids} -o {data} -- sleep {seconds}"
            )
                .quiet()
                .run()?;
            let output = load.wait_with_output()?;
            let text = String::from_utf8_lossy(&output.stdout);
            let requests_per_sec: f64 = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("wrk's report: {text}"))?;
            drop(server);
            let script = cmd!(sh, "{perf} script -i {data}").quiet().ignore_stderr().output()?.stdout;
            let collapsed = cmd!(sh, "{collapse}").stdin(script).quiet().read()?;
            // The folded stacks, for a closer look (`inferno-flamegraph < FILE > graph.svg`).
            fs::write(bench::target_dir(sh).join(format!("profile-{slug}.folded")), &collapsed)?;
            if label != bench::NATIVE {
                let title = format!("{label}: POST /run hello under wrk -c 16 (perf, cpu-clock)");
                let svg =
                    cmd!(sh, "{flamegraph} --title {title} --width 1400").stdin(collapsed.as_bytes()).quiet().read()?;
                fs::write(sh.current_dir().join(format!("docs/profile-{slug}.svg")), svg)?;
            }
            let requests = requests_per_sec * f64::from(self.seconds);
            let breakdown = breakdown(label, &collapsed, cpu_us_per_request, requests, requests_per_sec);
            println!("{}", render(std::slice::from_ref(&breakdown)));
            breakdowns.push(breakdown);
        }
        write_section(sh, &render(&breakdowns))?;
        step("wrote docs/profile-in-process.svg, docs/profile-process.svg and the breakdown in BENCHMARKS.md");
        Ok(())
    }
}

/// `inferno-collapse-perf` and `inferno-flamegraph`, installed from crates.io if missing.
fn ensure_inferno(sh: &Shell) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
    let find = || {
        Some((
            setup::resolve_program(Path::new("inferno-collapse-perf"))?,
            setup::resolve_program(Path::new("inferno-flamegraph"))?,
        ))
    };
    if let Some(found) = find() {
        return Ok(found);
    }
    step("installing inferno (flame graphs) with cargo install");
    cmd!(sh, "cargo install --locked inferno").run()?;
    find().context("inferno was installed but its programs are not on PATH")
}

/// Sorts the samples of a collapsed profile (`root;...;leaf weight` per line) into
/// [`CATEGORIES`], and spreads `cpu_us_per_request` over them by their share of the weight.
fn breakdown(
    server: &'static str,
    collapsed: &str,
    cpu_us_per_request: f64,
    requests: f64,
    requests_per_sec: f64,
) -> Breakdown {
    let mut weights: BTreeMap<usize, u64> = BTreeMap::new();
    for line in collapsed.lines() {
        let Some((stack, weight)) = line.rsplit_once(' ') else { continue };
        let Ok(weight) = weight.parse::<u64>() else { continue };
        let category = stack
            .rsplit(';')
            .find_map(|frame| CATEGORIES.iter().position(|(_, fragments)| fragments.iter().any(|f| frame.contains(f))))
            .unwrap_or(CATEGORIES.len());
        *weights.entry(category).or_default() += weight;
    }
    let total = weights.values().sum::<u64>().max(1) as f64;
    let per_request_us = (0..=CATEGORIES.len())
        .map(|i| {
            let name = CATEGORIES.get(i).map_or(OTHER, |(name, _)| name);
            (name, weights.get(&i).copied().unwrap_or(0) as f64 / total * cpu_us_per_request)
        })
        .collect();
    Breakdown { server, requests, requests_per_sec, per_request_us }
}

fn render(breakdowns: &[Breakdown]) -> String {
    let mut out = String::new();
    let load_average = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load_average = load_average.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    let _ = writeln!(
        out,
        "Measured by `cargo xtask profile` (`perf record -e cpu-clock --call-graph dwarf` at {FREQUENCY} Hz on the \
         server and its \
         workers while wrk sends `POST /run` hello at 16 connections; load average when it ended: {load_average}). \
         CPU time per request, in µs: each category's share of the samples times the server's CPU time per request \
         measured from `/proc` without the profiler. The flame graphs are \
         [docs/profile-in-process.svg](docs/profile-in-process.svg) and \
         [docs/profile-process.svg](docs/profile-process.svg).\n"
    );
    let _ = write!(out, "| where the time goes |");
    for b in breakdowns {
        let _ = write!(out, " {} |", b.server);
    }
    let _ = writeln!(out, "\n|---|{}", "---:|".repeat(breakdowns.len()));
    let Some(first) = breakdowns.first() else { return out };
    for (i, (name, _)) in first.per_request_us.iter().enumerate() {
        let _ = write!(out, "| {name} |");
        for b in breakdowns {
            let _ = write!(out, " {:.1} |", b.per_request_us[i].1);
        }
        let _ = writeln!(out);
    }
    let _ = write!(out, "| **total CPU per request** |");
    for b in breakdowns {
        let _ = write!(out, " **{:.1}** |", b.per_request_us.iter().map(|(_, us)| us).sum::<f64>());
    }
    let _ = write!(out, "\n| requests/s while sampled (requests sampled) |");
    for b in breakdowns {
        let _ = write!(out, " {:.0} ({:.0}) |", b.requests_per_sec, b.requests);
    }
    let _ = writeln!(out);
    out
}

/// Replaces the breakdown between the `profile:begin`/`profile:end` markers of BENCHMARKS.md.
fn write_section(sh: &Shell, section: &str) -> anyhow::Result<()> {
    let path = sh.current_dir().join("BENCHMARKS.md");
    let (begin, end) = ("<!-- profile:begin -->", "<!-- profile:end -->");
    let text = fs::read_to_string(&path)?;
    let (Some(start), Some(stop)) = (text.find(begin), text.find(end)) else {
        bail!("BENCHMARKS.md lacks the {begin} / {end} markers");
    };
    fs::write(&path, format!("{}{begin}\n{section}{}", &text[..start], &text[stop..]))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_go_to_the_category_of_their_innermost_known_frame() {
        let collapsed = "host;tower_http::trace;host::runtime::executor::PluginInstance::invoke;timer_create 30\n\
                         host;tower_http::trace;run_func;WasmEdge_VMExecute;memcpy 50\n\
                         host;tower_http::trace;serde_json::de;malloc 15\n\
                         host;hyper::proto::h1::decode 5\n\
                         host;host::api::run;plugin_host::runner::in_process::InProcessRunner::run_compiled 7\n\
                         host;host::api::run;plugin_host::runner::worker::lane::serve;malloc 3\n\
                         host;something_else 90\n";
        let b = breakdown("in-process", collapsed, 200.0, 1000.0, 100.0);
        let us = |prefix: &str| b.per_request_us.iter().find(|(n, _)| n.starts_with(prefix)).unwrap().1;
        assert!((us("deadline") - 30.0).abs() < 1e-9);
        assert!((us("WasmEdge call") - 50.0).abs() < 1e-9);
        assert!((us("JSON") - 15.0).abs() < 1e-9);
        assert!((us("HTTP") - 5.0).abs() < 1e-9);
        assert!((us("the runner") - 7.0).abs() < 1e-9, "the runner's own frames, outside the worker's");
        assert!((us("worker round trip") - 3.0).abs() < 1e-9);
        assert!((us("outside") - 90.0).abs() < 1e-9);
        assert!(us("middleware").abs() < 1e-9, "an outer layer does not take what runs inside it");
    }
}
