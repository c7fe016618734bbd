//! Runs plugins in a supervised pool of worker processes, so that no plugin can take the
//! server down.
//!
//! Each worker is the host binary re-executed in worker mode ([`child`]); the server talks to
//! it over a Unix socket with a small versioned protocol ([`protocol`]). A worker that dies (a
//! WasmEdge crash, a native stack overflow in AOT code, the kernel's memory limit) or does not
//! answer in time is killed and replaced, and the request that caused it gets a clear error.
//! A plugin that keeps crashing workers is quarantined with exponential backoff.
//!
//! The server keeps the store, the hot-swap logic ([`Catalog`]) and the ABI check; workers get
//! checked module bytes once per version and keep them compiled, so a warm call costs one round
//! trip over the socket.

mod child;
mod pool;
// Public only for the fuzz targets (`fuzz/`), which feed the frame decoder arbitrary bytes.
#[cfg(feature = "fuzzing")]
pub mod protocol;
#[cfg(not(feature = "fuzzing"))]
mod protocol;
mod quarantine;

use std::{path::PathBuf, sync::Arc, time::Duration};

pub use child::{WORKER_ARG, run as run_worker};

use self::{
    pool::Pool,
    quarantine::{Quarantine, QuarantinePolicy},
};
use super::{PluginRunner, PluginStatus, RunError, catalog::Catalog};
use crate::{
    failure::FailureKind,
    metrics::Metrics,
    runtime::{RuntimeConfig, RuntimeError},
    store::{PluginName, PluginStore},
};

/// How the pool runs. Every field documents its default.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The binary to start in worker mode. Default: this executable.
    pub executable: PathBuf,
    /// Worker processes. Default: the number of CPUs.
    pub workers: usize,
    /// Memory limit of each worker (RLIMIT_DATA: heap and private writable mappings),
    /// enforced by the kernel. Default: 1 GiB.
    pub memory_limit_bytes: Option<u64>,
    /// Crashes in a row after which a plugin is quarantined. Default: 3.
    pub quarantine_after: u32,
    /// First quarantine; each further crash doubles it. Default: 1 s.
    pub quarantine_base: Duration,
    /// Longest quarantine. Default: 5 minutes.
    pub quarantine_max: Duration,
    /// Longest a call waits for a free worker before it is refused as overload. Default: 10 s.
    pub queue_timeout: Duration,
    /// Module loads after which a worker is replaced (between calls), because WasmEdge never
    /// frees part of what it allocates per load. Default: 256 (about 64 MB kept by WasmEdge
    /// at 250 KB a load, well below the default 1 GiB memory limit).
    pub recycle_after_loads: u32,
}

impl WorkerSettings {
    /// The default of [`WorkerSettings::memory_limit_bytes`]: 1 GiB.
    pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 1 << 30;

    /// The default of [`WorkerSettings::workers`]: the number of CPUs.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(2, usize::from)
    }

    pub fn new(executable: PathBuf) -> Self {
        WorkerSettings {
            executable,
            workers: Self::default_workers(),
            memory_limit_bytes: Some(Self::DEFAULT_MEMORY_LIMIT_BYTES),
            quarantine_after: 3,
            quarantine_base: Duration::from_secs(1),
            quarantine_max: Duration::from_secs(300),
            queue_timeout: Duration::from_secs(10),
            recycle_after_loads: 256,
        }
    }
}

/// How a worker process failed a request.
#[derive(Debug, thiserror::Error)]
pub enum WorkerFailure {
    /// The worker died while running the plugin: a crash inside WasmEdge or the plugin's code.
    #[error("the plugin crashed its worker process ({})", describe_exit(*.signal, *.exit_code))]
    Crashed { signal: Option<i32>, exit_code: Option<i32> },
    /// The call ran past its deadline, so its worker was killed (workers run calls without
    /// WasmEdge's own timer; the server is the timer).
    #[error("the plugin did not finish within its {deadline:?} deadline; its worker process was stopped")]
    Unresponsive { deadline: Duration },
    #[error("starting a worker process failed: {0}")]
    Spawn(String),
    /// Every worker stayed busy for the whole queue timeout.
    #[error("no worker process became free in time")]
    Busy,
}

impl WorkerFailure {
    /// Whether the worker was killed from outside (SIGKILL that the server did not send: an
    /// operator, the kernel's OOM killer) rather than by what it ran. The server kills workers
    /// only for missing a deadline, which is reported as `Unresponsive`, and a plugin cannot
    /// make its own process receive SIGKILL; its faults end in SIGSEGV, SIGABRT or an exit.
    pub fn killed_from_outside(&self) -> bool {
        matches!(self, WorkerFailure::Crashed { signal: Some(libc::SIGKILL), .. })
    }

    /// How the host reports this (see [`crate::failure`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            failure if failure.killed_from_outside() => FailureKind::WorkerLost,
            WorkerFailure::Crashed { .. } => FailureKind::PluginCrashed,
            WorkerFailure::Unresponsive { .. } => FailureKind::PluginTimeout,
            WorkerFailure::Spawn(_) => FailureKind::Internal,
            WorkerFailure::Busy => FailureKind::Overloaded,
        }
    }
}

fn describe_exit(signal: Option<i32>, exit_code: Option<i32>) -> String {
    match (signal, exit_code) {
        (Some(libc::SIGSEGV), _) => "segmentation fault".into(),
        (Some(libc::SIGKILL), _) => "killed".into(),
        (Some(libc::SIGABRT), _) => "aborted".into(),
        (Some(signal), _) => format!("signal {signal}"),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "unknown cause".into(),
    }
}

/// A module that passed the server's checks, as sent to workers.
#[derive(Debug)]
struct CheckedModule {
    content_hash: String,
    bytes: Vec<u8>,
}

/// Runs every call in a worker process. See the module documentation.
#[derive(Debug)]
pub struct WorkerPoolRunner {
    catalog: Catalog<Arc<CheckedModule>>,
    pool: Pool,
    runtime: RuntimeConfig,
    settings: WorkerSettings,
    metrics: Arc<Metrics>,
    quarantine: Quarantine,
}

impl WorkerPoolRunner {
    /// Starts the workers; fails if they cannot start (a broken install should stop start-up,
    /// not the first request).
    pub fn new(
        store: Arc<dyn PluginStore>,
        runtime: RuntimeConfig,
        settings: WorkerSettings,
        metrics: Arc<Metrics>,
        capacity: usize,
    ) -> Result<Self, WorkerFailure> {
        // Workers trust the server's ABI check instead of repeating it, and the server enforces
        // the deadline by killing a late worker, which spares every call WasmEdge's timer.
        let worker_runtime = RuntimeConfig { enforce_abi: false, external_deadline: true, ..runtime.clone() };
        let pool = Pool::new(settings.clone(), worker_runtime)?;
        let catalog = Catalog::new(store, Arc::clone(&metrics), capacity, runtime.limits.abi.clone());
        let policy = QuarantinePolicy {
            after: settings.quarantine_after,
            base: settings.quarantine_base,
            max: settings.quarantine_max,
        };
        let quarantine = Quarantine::new(policy, Arc::clone(&metrics));
        Ok(WorkerPoolRunner { catalog, pool, runtime, settings, metrics, quarantine })
    }

    /// The same checks an in-process load starts with; WasmEdge's own validation happens in
    /// the worker, where a crash in it is contained too.
    fn check(&self, name: &PluginName, bytes: &[u8], content_hash: &str) -> Result<Arc<CheckedModule>, RunError> {
        let limit = self.runtime.limits.max_plugin_bytes;
        if bytes.len() as u64 > limit {
            return Err(RuntimeError::TooLarge { size: bytes.len() as u64, limit }.into());
        }
        if self.runtime.enforce_abi {
            let report = plugin_sdk::check_with(bytes, &self.runtime.limits.abi);
            if !report.is_compliant() {
                return Err(RuntimeError::AbiViolation(report).into());
            }
        }
        let module = Arc::new(CheckedModule { content_hash: content_hash.to_string(), bytes: bytes.to_vec() });
        // A worker validates and compiles it now, while the catalog still holds the previous
        // version: a new version that cannot run (WasmEdge refuses it, its memory is over the
        // cap, compilation fails) must not replace one that can.
        // A busy pool is a transient failure (the catalog tries again on the next call).
        let mut worker = self.pool.checkout(self.settings.queue_timeout)?;
        match worker.load(&module) {
            Ok(None) => {
                worker.release();
                Ok(module)
            }
            Ok(Some((result, _))) => {
                worker.release();
                let error = result
                    .err()
                    .unwrap_or_else(|| RuntimeError::Engine("worker ran a module it was only asked to load".into()));
                Err(error.into())
            }
            Err(failure) => {
                // Dropping the worker without releasing it replaces it.
                tracing::error!(plugin = %name, error = %failure, "worker process failed while loading a plugin; replacing it");
                // A plugin that crashes the engine while it compiles is quarantined like one
                // that crashes it while it runs.
                if failure.kind() == FailureKind::PluginCrashed {
                    self.quarantine.record(name, true);
                }
                Err(failure.into())
            }
        }
    }
}

impl PluginRunner for WorkerPoolRunner {
    fn run(&self, name: &PluginName, input: i32) -> Result<i32, RunError> {
        if let Some(status) = self.quarantine.status(name) {
            return Err(RunError::Quarantined(status));
        }
        let module = self.catalog.current(name, |bytes, hash| self.check(name, bytes, hash))?;
        // A worker killed from outside is the infrastructure's fault, not the plugin's: the
        // call is tried once more on another worker (every call starts from a fresh state, so
        // nothing is run twice that could be seen).
        let mut attempts_left = 2;
        loop {
            attempts_left -= 1;
            let mut worker = self.pool.checkout(self.settings.queue_timeout)?;
            match worker.call(&module, input, self.runtime.limits.call_timeout) {
                Ok((result, instantiation)) => {
                    worker.release();
                    self.metrics.observe_instantiation(instantiation);
                    self.quarantine.record(name, false);
                    return Ok(result?);
                }
                Err(failure) => {
                    // Dropping the worker without releasing it replaces it.
                    drop(worker);
                    if failure.killed_from_outside() && attempts_left > 0 {
                        tracing::warn!(plugin = %name, error = %failure, "worker killed from outside; trying the call on another");
                        continue;
                    }
                    tracing::error!(plugin = %name, error = %failure, "worker process failed; replacing it");
                    // Only the plugin's crashes count towards quarantine: a call past its
                    // deadline costs a worker restart, but a slow input is not a reason to
                    // refuse the plugin to everybody, and an outside kill is nobody's fault.
                    self.quarantine.record(name, failure.kind() == FailureKind::PluginCrashed);
                    return Err(failure.into());
                }
            }
        }
    }

    fn inspect(&self, name: &PluginName) -> Result<PluginStatus, RunError> {
        let mut status = self.catalog.inspect(name)?;
        status.quarantine = self.quarantine.status(name);
        Ok(status)
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        let mut plugins = self.catalog.list()?;
        for status in &mut plugins {
            status.quarantine = self.quarantine.status(&status.name);
        }
        Ok(plugins)
    }

    fn describe_store(&self) -> String {
        self.catalog.store().describe()
    }
}
