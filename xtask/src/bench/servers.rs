//! The servers `bench` and `profile` load: building them (release), the command that starts
//! each on a free port, and [`RunningServer`], which reads the address a server announces,
//! measures its memory and CPU time, and stops it when dropped.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::Context;
use xshell::{Shell, cmd};

use super::{BARE, Load, NATIVE, PEER};
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
        pids(self.pid())
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
