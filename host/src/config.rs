//! The server's settings, from command-line flags or environment variables (flags win).
//!
//! This is the only place that knows about the command line: it maps flags onto the plain
//! settings types of the inner layers ([`RuntimeConfig`], [`Limits`], [`AbiLimits`],
//! [`WorkerSettings`]) and takes its defaults from them, so every default is written once.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum, builder::PossibleValue};
use plugin_sdk::AbiLimits;

use crate::{
    runner::WorkerSettings,
    runtime::{ExecutionMode, Limits, RuntimeConfig},
};

/// Where `cargo xtask build-plugins` puts the example plugins: the default plugin directory
/// when running from a checkout.
const BUILT_PLUGINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/plugins");

/// Serves sandboxed WebAssembly plugins over HTTP.
#[derive(Debug, Clone, Parser)]
#[command(name = "host", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Where plugins come from: `local` (a directory) or `fluid` (a Fluid dataset mount).
    #[arg(long, env = "PLUGIN_STORE", value_enum, default_value_t = StoreKind::Local)]
    pub plugin_store: StoreKind,

    /// Directory of `<name>.wasm` plugin files (local store).
    #[arg(long, env = "PLUGIN_DIR", default_value = BUILT_PLUGINS)]
    pub plugin_dir: PathBuf,

    /// Where the Fluid dataset holding `<name>.wasm` files is mounted (fluid store).
    #[arg(long, env = "FLUID_MOUNT_PATH", default_value = "/mnt/fluid/plugins")]
    pub fluid_mount_path: PathBuf,

    /// How plugin code runs: `aot` (native code compiled by the host) or `interpreter`.
    #[arg(long, env = "EXECUTION_MODE", value_enum, default_value_t = ExecutionMode::default())]
    pub execution_mode: ExecutionMode,

    /// Where plugin code runs: `process` (supervised worker processes: a crashing plugin
    /// cannot take the server down; default) or `in-process` (faster, for trusted plugins).
    #[arg(long, env = "ISOLATION", value_enum, default_value_t = Isolation::Process)]
    pub isolation: Isolation,

    /// Worker processes (process isolation). Default: the number of CPUs.
    #[arg(long, env = "WORKERS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

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

    /// Plugin calls allowed at once; further requests get 503 with Retry-After.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight: u32,

    /// Folder for native code compiled from plugins (AOT mode). Default: a private folder
    /// under the system's temporary directory.
    #[arg(long, env = "AOT_CACHE_DIR")]
    pub aot_cache_dir: Option<PathBuf>,

    /// Seconds to let in-flight requests finish after SIGTERM or Ctrl-C.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
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
}

/// The command line names `ExecutionMode`'s values; the runtime layer itself knows nothing of
/// clap.
impl ValueEnum for ExecutionMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[ExecutionMode::Aot, ExecutionMode::Interpreter]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            ExecutionMode::Aot => "aot",
            ExecutionMode::Interpreter => "interpreter",
        }))
    }
}

impl Config {
    /// The runtime settings these flags describe, or the first setting that contradicts
    /// another (named as on the command line).
    pub fn runtime(&self) -> Result<RuntimeConfig, String> {
        if self.abi_max_initial_memory_pages > self.max_memory_pages {
            return Err(format!(
                "--abi-max-initial-memory-pages ({}) must not exceed --max-memory-pages ({}): a plugin the ABI \
                 check accepts must also fit in memory",
                self.abi_max_initial_memory_pages, self.max_memory_pages
            ));
        }
        Ok(RuntimeConfig {
            mode: self.execution_mode,
            limits: Limits {
                call_timeout: Duration::from_millis(self.call_timeout_ms),
                max_memory_pages: self.max_memory_pages,
                max_plugin_bytes: self.max_plugin_bytes,
                abi: AbiLimits {
                    max_initial_memory_pages: self.abi_max_initial_memory_pages,
                    max_table_entries: self.abi_max_table_entries,
                    max_function_count: self.abi_max_functions,
                },
            },
            aot_cache_dir: self.aot_cache_dir.clone(),
            ..RuntimeConfig::default()
        })
    }
}
