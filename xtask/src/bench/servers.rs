//! The servers `bench` and `profile` load: building them (release), the command that starts
//! each on a free port, and [`RunningServer`], which reads the address a server announces,
//! measures its memory and CPU time, and stops it when dropped.

use std::{
    collections::HashMap,
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use anyhow::Context;
use xshell::{Shell, cmd};

use super::{BARE, CpuWait, Load, NATIVE, PEER};
use crate::step;

/// Where cargo puts build output: `$CARGO_TARGET_DIR`, else `target/` in the project.
pub(crate) fn target_dir(sh: &Shell) -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| sh.current_dir().join("target"), Into::into)
}

/// Builds the release host, both native baselines and the runtime-only stream.
pub(crate) fn build_host(sh: &Shell) -> anyhow::Result<()> {
    step("building the release server and the native baselines");
    cmd!(
        sh,
        "cargo build --quiet --release --package host --bin host --example native_server --example bare_native --example stream_sha256"
    )
    .run()?;
    Ok(())
}

/// The release host serving the built plugins in `isolation`, on a free port.
pub(crate) fn host_server(sh: &Shell, isolation: &str) -> Command {
    host_command(&target_dir(sh).join("release/host"), &sh.current_dir().join(crate::PLUGIN_OUT_DIR), isolation)
}

/// The same-stack native baseline (the host's HTTP stack answering with native functions), on a
/// free port.
pub(crate) fn native_server(sh: &Shell) -> Command {
    let mut command = Command::new(target_dir(sh).join("release/examples/native_server"));
    command.arg("127.0.0.1:0");
    command
}

/// Builds the release servers the HTTP benchmarks use: the host, both native baselines and the
/// wasmtime peer (its own workspace, built only here). Returns the peer's binary.
pub(super) fn build_servers(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    build_host(sh)?;
    step("building the wasmtime peer (bench/wasmtime-peer, its own workspace)");
    let peer_target = target_dir(sh).join("peer");
    cmd!(sh, "cargo build --quiet --release --manifest-path bench/wasmtime-peer/Cargo.toml --target-dir {peer_target}")
        .run()?;
    Ok(peer_target.join("release/wasmtime-peer"))
}

/// The command that starts `server` on a free port.
pub(super) fn server_command(sh: &Shell, server: &str, peer: &Path) -> Command {
    let plugins = sh.current_dir().join(crate::PLUGIN_OUT_DIR);
    let release = target_dir(sh).join("release");
    let with_port = |binary: std::path::PathBuf| {
        let mut c = Command::new(binary);
        c.arg("127.0.0.1:0");
        c
    };
    match server {
        BARE => with_port(release.join("examples/bare_native")),
        NATIVE => native_server(sh),
        PEER => {
            let mut c = Command::new(peer);
            c.arg("serve").arg(&plugins);
            c
        }
        isolation => host_command(&release.join("host"), &plugins, isolation),
    }
}

pub(super) fn host_command(host: &Path, plugins: &Path, isolation: &str) -> Command {
    let mut command = Command::new(host);
    command
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("PLUGIN_DIR", plugins)
        .env("ISOLATION", isolation)
        .env("RUST_LOG", "warn")
        .env("MAX_IN_FLIGHT", "1024");
    command
}

/// A server process and the address it said it listens on.
pub(crate) struct RunningServer {
    child: Child,
    pub(super) addr: String,
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
    pub(super) fn resident_kib(&self) -> u64 {
        resident_kib(self.pid())
    }

    /// The server's process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Runs a load and notes the CPU time the server and its workers spent per request, and
    /// how long the server's own threads waited for a CPU.
    pub(crate) fn measured(&self, load: impl FnOnce() -> anyhow::Result<(Load, u64)>) -> anyhow::Result<(Load, u64)> {
        let (before, waits_before, started) = (self.cpu_ticks(), self.waits(), Instant::now());
        let (mut figures, requests) = load()?;
        let (ticks, waits, seconds) = (
            self.cpu_ticks().saturating_sub(before),
            Waits::since(&self.waits(), &waits_before),
            started.elapsed().as_secs_f64(),
        );
        // The kernel counts CPU time in clock ticks of 10 ms (USER_HZ = 100 on Linux).
        figures.cpu_us_per_request = ticks as f64 * 10_000.0 / requests.max(1) as f64;
        figures.cpu_wait = CpuWait {
            ms_per_s: waits.waited_ns as f64 / 1e6 / seconds,
            per_slice_us: waits.waited_ns as f64 / 1e3 / waits.slices.max(1) as f64,
        };
        Ok((figures, requests))
    }

    /// The scheduler's counts for each of the server's own threads so far, by thread id.
    fn waits(&self) -> HashMap<String, Waits> {
        let tasks = fs::read_dir(format!("/proc/{}/task", self.pid())).into_iter().flatten().flatten();
        tasks
            .filter_map(|task| {
                let counts = Waits::parse(&fs::read_to_string(task.path().join("schedstat")).ok()?)?;
                Some((task.file_name().to_string_lossy().into_owned(), counts))
            })
            .collect()
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
        pids(self.pid())
    }
}

/// A thread's (or a sum of threads') time ready to run but waiting for a CPU, and its number of
/// time slices, from `/proc/PID/task/TID/schedstat`: "time on the CPU (ns), time waiting on a
/// run queue (ns), time slices run".
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Waits {
    waited_ns: u64,
    slices: u64,
}

impl Waits {
    fn parse(schedstat: &str) -> Option<Waits> {
        let mut fields = schedstat.split_whitespace().skip(1).map(str::parse::<u64>);
        Some(Waits { waited_ns: fields.next()?.ok()?, slices: fields.next()?.ok()? })
    }

    /// The threads' counts between `earlier` and `now`, summed: a thread started in between
    /// counts from zero; one that ended in between took its counts with it (tokio's blocking
    /// threads end after 10 s idle; the async threads, which the figure is about, never do).
    fn since(now: &HashMap<String, Waits>, earlier: &HashMap<String, Waits>) -> Waits {
        now.iter().fold(Waits::default(), |sum, (thread, now)| {
            let before = earlier.get(thread).copied().unwrap_or_default();
            Waits {
                waited_ns: sum.waited_ns + now.waited_ns.saturating_sub(before.waited_ns),
                slices: sum.slices + now.slices.saturating_sub(before.slices),
            }
        })
    }
}

/// Resident memory of process `server` and every process it started (its workers), in KiB.
pub(super) fn resident_kib(server: u32) -> u64 {
    pids(server)
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

/// Process `pid` and its children.
fn pids(pid: u32) -> Vec<u32> {
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

/// Stops the server (and so its workers, which exit with it) however the run ends.
impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_waits_are_read_from_schedstat_and_summed_per_thread_since_the_start() {
        assert_eq!(Waits::parse("5000 700 3\n"), Some(Waits { waited_ns: 700, slices: 3 }));
        assert_eq!(Waits::parse("5000 700"), None, "a line cut short");
        let counts = |list: &[(&str, u64, u64)]| -> HashMap<String, Waits> {
            list.iter().map(|&(tid, waited_ns, slices)| (tid.to_string(), Waits { waited_ns, slices })).collect()
        };
        let before = counts(&[("1", 100, 10), ("2", 50, 5), ("3", 999, 99)]);
        // Thread 3 ended; thread 4 started.
        let after = counts(&[("1", 400, 13), ("2", 50, 5), ("4", 30, 2)]);
        assert_eq!(Waits::since(&after, &before), Waits { waited_ns: 330, slices: 5 });
        // This process's own threads have counts (`CONFIG_SCHED_INFO`, on in Debian's kernels).
        let own = fs::read_to_string(format!("/proc/{}/task/{}/schedstat", std::process::id(), std::process::id()));
        assert!(own.ok().and_then(|line| Waits::parse(&line)).is_some());
    }
}
