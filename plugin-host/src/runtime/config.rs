//! Runtime settings: execution mode and the limits every plugin call runs under.

use std::{path::PathBuf, time::Duration};

use plugin_sdk::AbiLimits;

/// How plugin code is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionMode {
    /// WasmEdge's interpreter: no compile step, about 100x slower than native on compute.
    Interpreter,
    /// Native code compiled by the host itself with WasmEdge's AOT compiler, cached on disk by
    /// content hash. Close to native speed; deadlines apply as in the interpreter (a timer
    /// signal in-process, a kill with workers).
    #[default]
    Aot,
}

/// Where AOT compilation runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AotCompilation {
    /// In this process. WasmEdge 0.17 built with LLVM 21 never frees the LLVM context of a
    /// compilation (about 70 KiB for a small plugin, more for a large one, measured), so every
    /// plugin version compiled here grows this process for good.
    #[default]
    InProcess,
    /// In a child process per compilation, which takes the leak with it when it exits (a few
    /// milliseconds more per compilation). `executable` must hand its arguments to
    /// the runtime's `run_aot_compiler` when its first argument is `AOT_COMPILER_ARG`; the `host`
    /// binary does.
    ChildProcess { executable: PathBuf },
}

/// Limits applied to every plugin. Each has a documented default, written here once: the
/// command line takes its defaults from [`Limits::default`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Wall-clock budget for one whole call (init + process + cleanup). Default: 1 s.
    pub call_timeout: Duration,
    /// Most 64 KiB pages of linear memory an instance may have, grown or not. Default: 64
    /// (4 MiB).
    pub max_memory_pages: u32,
    /// Largest plugin file accepted, in bytes. Default: 16 MiB.
    pub max_plugin_bytes: u64,
    /// The ABI check's size limits (initial memory, table entries, functions), which its
    /// messages tell plugin authors an operator can raise. Default: [`AbiLimits::default`]
    /// (16 pages, 4096 entries, 4096 functions).
    pub abi: AbiLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call_timeout: Duration::from_secs(1),
            max_memory_pages: 64,
            max_plugin_bytes: 16 << 20,
            abi: AbiLimits::default(),
        }
    }
}

/// Everything the runtime needs to know, passed explicitly (no globals).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RuntimeConfig {
    /// Default: [`ExecutionMode::Aot`] (see ARCHITECTURE.md for the measurements behind it).
    pub mode: ExecutionMode,
    pub limits: Limits,
    /// Where AOT-compiled plugins are kept between runs. Default (`None`):
    /// `plugin-host-<uid>/aot` under the system's temporary directory.
    pub aot_cache_dir: Option<PathBuf>,
    /// Most bytes of compiled plugins kept in the AOT cache folder; beyond it the oldest are
    /// removed when an engine starts. Default: 1 GiB.
    pub aot_cache_max_bytes: u64,
    /// Check the plugin ABI before loading. Default: `true`. Worker processes turn it off
    /// because their server already checked, and tests of the host's own defences turn it off
    /// to load modules that `check-abi` would have refused.
    pub enforce_abi: bool,
    /// Leave the call deadline to a supervisor outside this process. Default: `false`.
    ///
    /// WasmEdge stops a late call with a POSIX timer and a signal per function call, which
    /// costs 2-6 us each (three per request; measured, see BENCHMARKS.md). A worker process
    /// whose server kills it at the deadline does not need that, so workers run calls without
    /// it. Never set this where nothing else enforces the deadline.
    pub external_deadline: bool,
    /// Where AOT compilation runs. Default: [`AotCompilation::InProcess`]; the `host` binary
    /// compiles in a child process when it runs plugins in-process, which has no other way to
    /// give back what WasmEdge keeps (worker processes are replaced instead).
    pub aot_compilation: AotCompilation,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            mode: ExecutionMode::default(),
            limits: Limits::default(),
            aot_cache_dir: None,
            aot_cache_max_bytes: 1 << 30,
            enforce_abi: true,
            external_deadline: false,
            aot_compilation: AotCompilation::InProcess,
        }
    }
}

impl RuntimeConfig {
    pub fn new(mode: ExecutionMode) -> Self {
        RuntimeConfig { mode, ..Default::default() }
    }

    pub(crate) fn aot_cache_dir(&self) -> PathBuf {
        // Per user, so that nobody else can own (and plant code in) the default folder.
        self.aot_cache_dir.clone().unwrap_or_else(|| {
            let user = rustix::process::getuid().as_raw();
            std::env::temp_dir().join(format!("plugin-host-{user}")).join("aot")
        })
    }
}
