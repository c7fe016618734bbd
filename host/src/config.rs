//! The server's settings, from command-line flags or environment variables (flags win).
//!
//! This is the only place that knows about the command line: it maps flags onto the plain
//! library's settings types ([`Settings`], [`Limits`], [`AbiLimits`], [`WorkerSettings`],
//! [`OciSettings`]) and takes its defaults from them, so every default is written once.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use plugin_sdk::AbiLimits;

use plugin_host::{AotCompilation, Credentials, ExecutionMode, Limits, OciSettings, Settings, WorkerSettings};

use crate::{
    ServeOptions,
    api::{BodyLimits, StreamLimits},
};

/// Serves sandboxed WebAssembly plugins over HTTP.
#[derive(Debug, Clone, Parser)]
#[command(name = "host", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where plugins come from: `local` (a directory), `fluid` (a Fluid dataset mount) or `oci`
    /// (an OCI registry).
    #[arg(long, env = "PLUGIN_STORE", value_enum, default_value_t = StoreKind::Local)]
    pub plugin_store: StoreKind,

    /// Directory of `<name>.wasm` plugin files (local store, which needs it). No default: a
    /// binary cannot know where plugins are installed (`cargo xtask run` passes the checkout's
    /// `target/plugins`).
    #[arg(long, env = "PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,

    /// A folder of plugin configuration files searched before the store's own (any store), such
    /// as a mounted Kubernetes ConfigMap or Secret: `<name>.config.json`,
    /// `<name>/config.json`, `<name>/<version>.config.json`. Default: none (configuration only
    /// beside the plugins). Must exist at start-up.
    #[arg(long, env = "PLUGIN_CONFIG_DIR")]
    pub plugin_config_dir: Option<PathBuf>,

    /// Where the Fluid dataset holding `<name>.wasm` files is mounted (fluid store).
    #[arg(long, env = "FLUID_MOUNT_PATH", default_value = "/mnt/fluid/plugins")]
    pub fluid_mount_path: PathBuf,

    /// The OCI registry and path plugins are under (oci store): `<registry-host[:port]>/<prefix>`;
    /// version `V` of plugin `NAME` is `<prefix>/NAME:V`.
    #[arg(long, env = "OCI_REPOSITORY", required_if_eq("plugin_store", "oci"))]
    pub oci_repository: Option<String>,

    /// Talk to the registry over plain HTTP instead of HTTPS (oci store).
    #[arg(long, env = "OCI_INSECURE", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub oci_insecure: bool,

    /// User name for the registry (oci store; with `--oci-password`). Without it, the
    /// registry's entry in the Docker `config.json` (`$DOCKER_CONFIG`, else `~/.docker`) is
    /// used if there is one, else no credentials.
    #[arg(long, env = "OCI_USERNAME", requires = "oci_password")]
    pub oci_username: Option<String>,

    /// Password or token for the registry (oci store).
    #[arg(long, env = "OCI_PASSWORD", requires = "oci_username", hide_env_values = true)]
    pub oci_password: Option<String>,

    /// Folder of pulled plugins, by digest (oci store). Default: a private folder under the
    /// system's temporary directory.
    #[arg(long, env = "OCI_CACHE_DIR")]
    pub oci_cache_dir: Option<PathBuf>,

    /// Most MiB of pulled plugins kept in the cache folder, least recently used removed first.
    #[arg(long, env = "OCI_CACHE_MAX_MB", default_value_t = OciSettings::DEFAULT_CACHE_MAX_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub oci_cache_max_mb: u64,

    /// Longest one registry request may take, in milliseconds (a blob pull: four times that).
    #[arg(long, env = "OCI_TIMEOUT_MS", default_value_t = OciSettings::DEFAULT_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub oci_timeout_ms: u64,

    /// How long, in milliseconds, a tag listing or a tag's digest is trusted before the registry
    /// is asked again (a new version becomes the default this much later at most; a pinned one
    /// is found at once).
    #[arg(long, env = "OCI_REFRESH_MS", default_value_t = OciSettings::DEFAULT_REFRESH.as_millis() as u64)]
    pub oci_refresh_ms: u64,

    /// A trust policy (JSON, see docs/signing.md): which keys must have signed a plugin version
    /// before it is compiled or run, per reference prefix, for every store (registry signatures
    /// in cosign's format, detached `<file>.sig` signatures for folders and Fluid). Default: none,
    /// every plugin runs unsigned.
    #[arg(long, env = "TRUST_POLICY")]
    pub trust_policy: Option<PathBuf>,

    /// How plugin code runs: `aot` (native code compiled by the host) or `interpreter`.
    #[arg(long, env = "EXECUTION_MODE", value_enum, default_value_t = Execution::Aot)]
    pub execution_mode: Execution,

    /// Where plugin code runs: `process` (supervised worker processes: a crashing plugin
    /// cannot take the server down; default) or `in-process` (no process round trip; for
    /// trusted plugins).
    #[arg(long, env = "ISOLATION", value_enum, default_value_t = Isolation::Process)]
    pub isolation: Isolation,

    /// Worker processes (process isolation). Default: the number of CPUs plus one.
    #[arg(long, env = "WORKERS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

    /// Most worker processes one plugin may hold at once. Default: all but one, so that a
    /// plugin whose calls loop to their deadline never takes every worker.
    #[arg(long, env = "MAX_WORKERS_PER_PLUGIN", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_workers_per_plugin: Option<u32>,

    /// Longest a call waits for a free worker process before it is answered 503 `overloaded`,
    /// in milliseconds.
    #[arg(long, env = "QUEUE_TIMEOUT_MS",
          default_value_t = WorkerSettings::new(PathBuf::new()).queue_timeout.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub queue_timeout_ms: u64,

    /// Memory limit of each worker process in MiB (heap and private writable memory,
    /// RLIMIT_DATA), enforced by the kernel.
    #[arg(long, env = "WORKER_MEMORY_MB", default_value_t = WorkerSettings::DEFAULT_MEMORY_LIMIT_BYTES >> 20,
          value_parser = clap::value_parser!(u64).range(64..))]
    pub worker_memory_mb: u64,

    /// Wall-clock budget of one plugin call (init + process + cleanup), in milliseconds.
    #[arg(long, env = "CALL_TIMEOUT_MS", default_value_t = Limits::default().call_timeout.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub call_timeout_ms: u64,

    /// Most 64 KiB pages of linear memory a plugin instance may use.
    #[arg(long, env = "MAX_MEMORY_PAGES", default_value_t = Limits::default().max_memory_pages,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_memory_pages: u32,

    /// Largest plugin file accepted, in bytes.
    #[arg(long, env = "MAX_PLUGIN_BYTES", default_value_t = Limits::default().max_plugin_bytes)]
    pub max_plugin_bytes: u64,

    /// ABI check: largest initial linear memory a plugin may declare, in 64 KiB pages (at
    /// most `--max-memory-pages`).
    #[arg(long, env = "ABI_MAX_INITIAL_MEMORY_PAGES", default_value_t = AbiLimits::default().max_initial_memory_pages,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub abi_max_initial_memory_pages: u32,

    /// ABI check: largest initial table a plugin may declare, in entries.
    #[arg(long, env = "ABI_MAX_TABLE_ENTRIES", default_value_t = AbiLimits::default().max_table_entries)]
    pub abi_max_table_entries: u32,

    /// ABI check: most functions a plugin may have (each is compiled before the first call).
    #[arg(long, env = "ABI_MAX_FUNCTIONS", default_value_t = AbiLimits::default().max_function_count,
          value_parser = clap::value_parser!(u32).range(3..))]
    pub abi_max_functions: u32,

    /// ABI check (v2 plugins): largest input or output buffer a plugin may declare, in bytes.
    #[arg(long, env = "ABI_MAX_BUFFER_BYTES", default_value_t = AbiLimits::default().max_buffer_capacity,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub abi_max_buffer_bytes: u32,

    /// Plugin calls allowed at once; further requests get 503 with Retry-After.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Microseconds a plugin's calls may take and still run on the thread that received the
    /// request, skipping the hand-off to a blocking thread (once its recent calls all did; see
    /// `runner::ShortCalls`). 0 sends every call through the blocking pool.
    #[arg(long, env = "SHORT_CALL_BUDGET_US", default_value_t = Settings::default().short_call_budget.as_micros() as u64)]
    pub short_call_budget_us: u64,

    /// Milliseconds a plugin file found unchanged is trusted before it is looked at again.
    /// 0: every call looks (one `stat`), so a replaced file runs from the very next call. More:
    /// the calls in between cost no system call, and a replaced or removed file takes effect
    /// for calls that start at least this long after the change.
    #[arg(long, env = "HOT_SWAP_RECHECK_MS", default_value_t = 0)]
    pub hot_swap_recheck_ms: u64,

    /// Folder for native code compiled from plugins (AOT mode). Default: a private folder
    /// under the system's temporary directory.
    #[arg(long, env = "AOT_CACHE_DIR")]
    pub aot_cache_dir: Option<PathBuf>,

    /// Most MiB of compiled plugins kept in the AOT cache folder (oldest removed first, when
    /// the host or a worker starts).
    #[arg(long, env = "AOT_CACHE_MAX_MB", default_value_t = Settings::default().aot_cache_max_bytes >> 20)]
    pub aot_cache_max_mb: u64,

    /// Seconds to let in-flight requests finish after SIGTERM, SIGHUP or Ctrl-C.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = ServeOptions::default().grace.as_secs())]
    pub shutdown_grace_secs: u64,

    /// Seconds a connection may take to send a request's headers (from its start, or between
    /// requests) before it is closed; also how long a response write may make no progress, and
    /// the slack a request body has before `--body-min-rate` applies.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = ServeOptions::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: u64,

    /// Least average rate, in bytes per second, of a whole request body (`POST /run`, a plain
    /// function) after its first `--idle-timeout-secs`; slower is 408 `body_timeout`. 0: no rate.
    #[arg(long, env = "BODY_MIN_RATE", default_value_t = BodyLimits::default().min_rate)]
    pub body_min_rate: u64,

    /// Longest a whole request body may take to arrive, in seconds, whatever its rate.
    #[arg(long, env = "BODY_MAX_SECS", default_value_t = BodyLimits::default().max_duration.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_max_secs: u64,

    /// Most MiB of request bodies held at once (while they arrive and until their call ends);
    /// beyond, 503 `overloaded`.
    #[arg(long, env = "BODY_BUFFER_MB", default_value_t = (BodyLimits::default().buffer_bytes >> 20) as u64,
          value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub body_buffer_mb: u64,

    /// Most bytes a stream (a streaming function's request body) may have.
    #[arg(long, env = "STREAM_MAX_BYTES", default_value_t = StreamLimits::default().max_bytes,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_max_bytes: u64,

    /// Longest a stream may last, in seconds.
    #[arg(long, env = "STREAM_MAX_SECS", default_value_t = StreamLimits::default().max_duration.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_max_secs: u64,

    /// Longest a client may send nothing in the middle of a stream, in seconds.
    #[arg(long, env = "STREAM_IDLE_SECS", default_value_t = StreamLimits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_idle_secs: u64,

    /// Slowest a client may send a stream, in bytes per second averaged over
    /// `--stream-rate-window-secs` (slower: 408 `stream_timeout`); 0 turns the check off.
    #[arg(long, env = "STREAM_MIN_BYTES_PER_SEC", default_value_t = StreamLimits::default().min_rate)]
    pub stream_min_bytes_per_sec: u64,

    /// The window, in seconds, over which a stream's feed rate is averaged.
    #[arg(long, env = "STREAM_RATE_WINDOW_SECS", default_value_t = StreamLimits::default().rate_window.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_rate_window_secs: u64,

    /// Most streams open at once, each holding a worker process while it lasts (process
    /// isolation). Default: all workers but one.
    #[arg(long, env = "MAX_STREAM_WORKERS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_stream_workers: Option<u32>,

    /// Bearer tokens (JSON, see the README's "Bearer tokens"): every route but `/healthz` and
    /// `/readyz` then needs `Authorization: Bearer <token>` of a client in this file, and each
    /// client may call only the plugins its patterns match. Read again when it changes (a
    /// mounted Kubernetes Secret included). Default: none, every route is open.
    #[arg(long, env = "TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,

    /// Connections served at once; a few more get only the probes, the rest are closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = ServeOptions::default().max_connections as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
}

/// Where plugin code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    Process,
    InProcess,
}

/// The kinds of plugin store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Local,
    Fluid,
    Oci,
}

/// The command line's names for the library's [`ExecutionMode`]s (the library knows nothing of
/// clap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Execution {
    Aot,
    Interpreter,
}

impl From<Execution> for ExecutionMode {
    fn from(execution: Execution) -> Self {
        match execution {
            Execution::Aot => ExecutionMode::Aot,
            Execution::Interpreter => ExecutionMode::Interpreter,
        }
    }
}

impl Config {
    /// How long a call may take and still count as short (see `runner::ShortCalls`).
    pub fn short_call_budget(&self) -> Duration {
        Duration::from_micros(self.short_call_budget_us)
    }

    /// The limits on streams.
    pub fn stream_limits(&self) -> StreamLimits {
        StreamLimits {
            max_bytes: self.stream_max_bytes,
            max_duration: Duration::from_secs(self.stream_max_secs),
            idle_timeout: Duration::from_secs(self.stream_idle_secs),
            min_rate: self.stream_min_bytes_per_sec,
            rate_window: Duration::from_secs(self.stream_rate_window_secs),
        }
    }

    /// The limits on whole request bodies.
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            grace: Duration::from_secs(self.idle_timeout_secs),
            min_rate: self.body_min_rate,
            max_duration: Duration::from_secs(self.body_max_secs),
            buffer_bytes: (self.body_buffer_mb as usize) << 20,
        }
    }

    /// How connections are served.
    pub fn serve_options(&self) -> ServeOptions {
        ServeOptions {
            grace: Duration::from_secs(self.shutdown_grace_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections as usize,
        }
    }

    /// The OCI store's settings, when the store is `oci`: credentials from the flags, else from
    /// the Docker `config.json`.
    pub fn oci(&self, max_plugin_bytes: u64) -> Result<OciSettings, String> {
        let repository = self.oci_repository.clone().ok_or("--oci-repository (OCI_REPOSITORY) is required")?;
        let registry = OciSettings::registry_of(&repository).map_err(|error| format!("--oci-repository: {error}"))?;
        let credentials = match (&self.oci_username, &self.oci_password) {
            (Some(username), Some(password)) => {
                Credentials::Basic { username: username.clone(), password: password.clone() }
            }
            _ => match Credentials::docker_config_path() {
                Some(path) => Credentials::from_docker_config(&path, &registry)?.unwrap_or_default(),
                None => Credentials::Anonymous,
            },
        };
        let mut settings = OciSettings::new(repository);
        settings.insecure = self.oci_insecure;
        settings.credentials = credentials;
        if let Some(dir) = &self.oci_cache_dir {
            settings.cache_dir = dir.clone();
        }
        settings.cache_max_bytes = self.oci_cache_max_mb << 20;
        settings.timeout = Duration::from_millis(self.oci_timeout_ms);
        settings.refresh = Duration::from_millis(self.oci_refresh_ms);
        settings.max_plugin_bytes = max_plugin_bytes;
        Ok(settings)
    }

    /// The host settings these flags describe, or the first setting that contradicts another
    /// (named as on the command line). Worker processes (`--isolation process`) are this
    /// executable, and so is the child process that compiles for an in-process host: the
    /// binary's `main` serves both (see `plugin_host::run_if_worker`).
    pub fn settings(&self) -> Result<Settings, String> {
        if self.abi_max_initial_memory_pages > self.max_memory_pages {
            return Err(format!(
                "--abi-max-initial-memory-pages ({}) must not exceed --max-memory-pages ({}): a plugin the ABI \
                 check accepts must also fit in memory",
                self.abi_max_initial_memory_pages, self.max_memory_pages
            ));
        }
        let executable = std::env::current_exe()
            .map_err(|error| format!("cannot find this executable to start helper processes: {error}"))?;
        let isolation = match self.isolation {
            Isolation::InProcess => plugin_host::Isolation::InProcess,
            Isolation::Process => {
                let mut workers = WorkerSettings::new(executable.clone());
                if let Some(count) = self.workers {
                    workers.workers = count as usize;
                }
                workers.max_workers_per_plugin = self.max_workers_per_plugin.map(|cap| cap as usize);
                workers.max_stream_workers = self.max_stream_workers.map(|cap| cap as usize);
                workers.queue_timeout = Duration::from_millis(self.queue_timeout_ms);
                workers.memory_limit_bytes = Some(self.worker_memory_mb << 20);
                plugin_host::Isolation::Workers(workers)
            }
        };
        Ok(Settings {
            isolation,
            mode: self.execution_mode.into(),
            limits: Limits {
                call_timeout: Duration::from_millis(self.call_timeout_ms),
                max_memory_pages: self.max_memory_pages,
                max_plugin_bytes: self.max_plugin_bytes,
                abi: AbiLimits {
                    max_initial_memory_pages: self.abi_max_initial_memory_pages,
                    max_table_entries: self.abi_max_table_entries,
                    max_function_count: self.abi_max_functions,
                    max_buffer_capacity: self.abi_max_buffer_bytes,
                },
            },
            aot_cache_dir: self.aot_cache_dir.clone(),
            aot_cache_max_bytes: self.aot_cache_max_mb << 20,
            // WasmEdge keeps part of every AOT compilation for good; a child process per
            // compilation gives it back (see `plugin_host::AotCompilation`).
            aot_compilation: AotCompilation::ChildProcess { executable },
            max_calls_in_flight: self.max_in_flight as usize,
            short_call_budget: self.short_call_budget(),
            hot_swap_recheck: Duration::from_millis(self.hot_swap_recheck_ms),
            ..Settings::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("host").chain(args.iter().copied()))
    }

    #[test]
    fn the_oci_store_needs_a_repository_and_maps_its_flags() {
        assert!(parse(&["--plugin-store", "oci"]).is_err(), "no repository");
        let config = parse(&[
            "--plugin-store",
            "oci",
            "--oci-repository",
            "127.0.0.1:5000/plugins",
            "--oci-insecure",
            "--oci-username",
            "alice",
            "--oci-password",
            "s3cret",
            "--oci-cache-max-mb",
            "64",
            "--oci-timeout-ms",
            "1500",
            "--oci-refresh-ms",
            "250",
        ])
        .unwrap();
        let settings = config.oci(1 << 20).unwrap();
        assert_eq!(settings.repository, "127.0.0.1:5000/plugins");
        assert!(settings.insecure);
        assert_eq!(settings.credentials, Credentials::Basic { username: "alice".into(), password: "s3cret".into() });
        assert_eq!(settings.cache_max_bytes, 64 << 20);
        assert_eq!((settings.timeout, settings.refresh), (Duration::from_millis(1500), Duration::from_millis(250)));
        assert_eq!(settings.max_plugin_bytes, 1 << 20);
        assert!(parse(&["--oci-username", "alice"]).is_err(), "a user name needs a password");
        let bad = parse(&["--plugin-store", "oci", "--oci-repository", "plugins"]).unwrap();
        assert!(bad.oci(1).unwrap_err().contains("registry host"));
    }
}
