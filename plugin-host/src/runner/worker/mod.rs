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
mod lane;
mod pool;
// Public only for the fuzz targets (`fuzz/`, feature `internals`), which feed the frame decoder arbitrary bytes.
#[cfg(feature = "internals")]
pub mod protocol;
#[cfg(not(feature = "internals"))]
mod protocol;
mod quarantine;
mod slot;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

pub use child::{WORKER_ARG, run as run_worker};

use self::{
    lane::{Books, Lanes},
    pool::{Pool, PooledWorker, Purpose, Worker},
    quarantine::{Quarantine, QuarantinePolicy},
};
use super::{
    Attempt, Calls, Inspects, Interface, PluginStatus, PluginStream, Ran, RunError, ShortCalls, Target, VersionStatus,
    catalog::{Catalog, Loaded},
};
use crate::{
    failure::FailureKind,
    observe::Observer,
    runtime::{Admission, RuntimeConfig, RuntimeError},
    store::{PluginName, PluginRef, PluginStore},
};

/// How the pool runs. Every field documents its default.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The binary to start in worker mode. Default: this executable.
    pub executable: PathBuf,
    /// Worker processes. Default: the number of CPUs plus one, so that one plugin can use
    /// every core and another still finds a worker free (see `max_workers_per_plugin`).
    pub workers: usize,
    /// Most workers one plugin may hold at once. Default (`None`): all but one, so that a
    /// plugin whose calls loop to their deadline never takes every worker.
    pub max_workers_per_plugin: Option<usize>,
    /// Most streams open at once, each holding a worker for as long as it lasts (more are
    /// refused, 503 `overloaded`). Default (`None`): all workers but one. Streams and calls of
    /// slow plugins together never hold the last worker (see `Pool`), whatever this says.
    pub max_stream_workers: Option<usize>,
    /// A plugin whose calls hold a worker this long or longer (on average lately, or a call
    /// running now) is slow: its calls, like streams, never take the last worker, which stays
    /// for quick calls. Default: 100 ms.
    pub slow_call: Duration,
    /// Memory limit of each worker (RLIMIT_DATA: heap and private writable mappings),
    /// enforced by the kernel. Default: 1 GiB.
    pub memory_limit_bytes: Option<u64>,
    /// Crashes in a row after which a plugin is quarantined. Default: 3.
    pub quarantine_after: u32,
    /// First quarantine; each further crash doubles it. Default: 1 s.
    pub quarantine_base: Duration,
    /// Longest quarantine. Default: 5 minutes.
    pub quarantine_max: Duration,
    /// Longest a call waits for a free worker before it is refused as overload (503
    /// `overloaded`). Default: 10 s. With the call deadline this bounds a call's latency:
    /// at most the queue timeout plus the deadline.
    pub queue_timeout: Duration,
    /// Module loads after which a worker is replaced (between calls), because WasmEdge never
    /// frees the LLVM context of an AOT compilation (72 KiB for a small plugin, more for a large
    /// one). Default: 256 (tens of MB, well below the default 1 GiB memory limit).
    pub recycle_after_loads: u32,
}

impl WorkerSettings {
    /// The default of [`WorkerSettings::memory_limit_bytes`]: 1 GiB.
    pub const DEFAULT_MEMORY_LIMIT_BYTES: u64 = 1 << 30;

    /// The default of [`WorkerSettings::workers`]: the number of CPUs plus one.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(2, usize::from) + 1
    }

    /// Most workers one plugin may hold at once (see the field).
    pub fn max_workers_per_plugin(&self) -> usize {
        let workers = self.workers.max(1);
        self.max_workers_per_plugin.unwrap_or(workers - 1).clamp(1, workers)
    }

    /// Most streams open at once (see the field).
    pub fn max_stream_workers(&self) -> usize {
        let workers = self.workers.max(1);
        self.max_stream_workers.unwrap_or(workers - 1).clamp(1, workers)
    }

    pub fn new(executable: PathBuf) -> Self {
        WorkerSettings {
            executable,
            workers: Self::default_workers(),
            max_workers_per_plugin: None,
            max_stream_workers: None,
            slow_call: Duration::from_millis(100),
            memory_limit_bytes: Some(Self::DEFAULT_MEMORY_LIMIT_BYTES),
            quarantine_after: 3,
            quarantine_base: Duration::from_secs(1),
            quarantine_max: Duration::from_secs(300),
            queue_timeout: Duration::from_secs(10),
            recycle_after_loads: 256,
        }
    }
}

/// Workers that are this program itself, which is what a program calling
/// [`crate::run_if_worker`] first in `main` wants: embedders need not find their own executable.
impl Default for WorkerSettings {
    fn default() -> Self {
        // `current_exe` fails only without /proc; the kernel's link to this executable is then
        // still the best guess, and a wrong one fails at start-up (`Host::new` starts the workers).
        WorkerSettings::new(std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe")))
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
    /// As many streams are open as workers may hold (all but one, so that calls always have a
    /// worker).
    #[error("{limit} stream(s) are open, as many as this server's worker processes can hold")]
    TooManyStreams { limit: usize },
}

impl WorkerFailure {
    /// Whether the worker was killed from outside (SIGKILL that the server did not send: an
    /// operator, the kernel's OOM killer; or SIGTERM, SIGINT, SIGHUP: an operator, a terminal's
    /// Ctrl-C, which reaches the workers too) rather than by what it ran. The server kills
    /// workers only for missing a deadline, which is reported as `Unresponsive`, and a plugin
    /// imports nothing, so it cannot signal its own process; its faults end in SIGSEGV,
    /// SIGABRT or an exit.
    pub fn killed_from_outside(&self) -> bool {
        matches!(
            self,
            WorkerFailure::Crashed { signal: Some(libc::SIGKILL | libc::SIGTERM | libc::SIGINT | libc::SIGHUP), .. }
        )
    }

    /// How the host reports this (see [`crate::failure`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            failure if failure.killed_from_outside() => FailureKind::WorkerLost,
            WorkerFailure::Crashed { .. } => FailureKind::PluginCrashed,
            WorkerFailure::Unresponsive { .. } => FailureKind::PluginTimeout,
            WorkerFailure::Spawn(_) => FailureKind::NoWorkers,
            WorkerFailure::Busy | WorkerFailure::TooManyStreams { .. } => FailureKind::Overloaded,
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

/// The worker pool as `/readyz` shows it.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerPoolStatus {
    /// Workers the pool runs when it can.
    pub configured: usize,
    /// Workers alive now.
    pub alive: usize,
    /// Workers running a call (or holding a stream).
    pub busy: usize,
    /// Calls waiting for a worker.
    pub waiting: usize,
    /// Why the last attempt to start a worker failed, while none has started since.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub spawn_failure: Option<String>,
}

impl WorkerPoolStatus {
    /// Whether calls can be served: a worker is alive, or workers can be started.
    pub fn can_serve(&self) -> bool {
        self.alive > 0 || self.spawn_failure.is_none()
    }
}

/// How a call gets its worker.
#[derive(Debug, Clone, Copy)]
enum Wait<'a> {
    /// Waits up to this long for a free worker, or starts one.
    UpTo(Duration),
    /// Only a worker that is idle now and was sent the module with this content hash; `Busy`
    /// at once otherwise.
    IdleWith(&'a str),
}

/// What a worker gives back: the call's own result, or how the worker failed.
type WorkerResult<T> = Result<Result<T, RuntimeError>, WorkerFailure>;

/// What a checked module offers: v1's integer call, or v2's functions and buffers.
fn interface_of(module: &CheckedModule) -> Interface {
    module.interface.as_ref().map_or(Interface::V1, |layout| Interface::V2(Arc::clone(layout)))
}

/// How a quick call from a blocking thread went (see `WorkerPoolRunner::run_queued`).
enum Queue {
    /// It ran on a lane.
    Ran(Ran<i32>),
    /// It runs the ordinary way, on this worker if it was given one.
    Ordinary(Option<PooledWorker>),
}

/// A module that passed the server's checks, as sent to workers.
#[derive(Debug)]
struct CheckedModule {
    content_hash: String,
    bytes: Vec<u8>,
    /// The verdict of `runtime::admit` on it, which workers receive instead of checking again.
    admission: Admission,
    /// A v2 plugin's buffers and functions, as the checker read them; `None` for v1.
    interface: Option<Arc<plugin_sdk::V2Layout>>,
}

/// Runs every call in a worker process. See the module documentation.
#[derive(Debug)]
pub struct WorkerPoolRunner {
    catalog: Catalog<Arc<CheckedModule>>,
    pool: Arc<Pool>,
    runtime: RuntimeConfig,
    settings: WorkerSettings,
    observer: Arc<dyn Observer>,
    quarantine: Arc<Quarantine>,
    /// Streams open now; each holds a worker for as long as it lasts.
    open_streams: Arc<AtomicUsize>,
    short_calls: Arc<ShortCalls>,
    /// Quick calls queued on busy workers (see [`lane`]).
    lanes: Arc<Lanes>,
}

impl WorkerPoolRunner {
    /// Looks for configuration files in `dir` before the store (`--plugin-config-dir`).
    pub fn with_config_override(mut self, dir: crate::store::ConfigOverride) -> Self {
        self.catalog = self.catalog.with_config_override(dir);
        self
    }

    /// Starts the workers; fails if they cannot start (a broken install should stop start-up,
    /// not the first request).
    pub fn new(
        store: Arc<dyn PluginStore>,
        runtime: RuntimeConfig,
        settings: WorkerSettings,
        observer: Arc<dyn Observer>,
        capacity: usize,
    ) -> Result<Self, WorkerFailure> {
        // Workers trust the server's ABI check instead of repeating it, and the server enforces
        // the deadline by killing a late worker, which spares every call WasmEdge's timer.
        let worker_runtime = RuntimeConfig { enforce_abi: false, external_deadline: true, ..runtime.clone() };
        let pool = Arc::new(Pool::new(settings.clone(), worker_runtime)?);
        let catalog = Catalog::new(store, Arc::clone(&observer), capacity, runtime.limits.abi.clone());
        let policy = QuarantinePolicy {
            after: settings.quarantine_after,
            base: settings.quarantine_base,
            max: settings.quarantine_max,
        };
        let quarantine = Arc::new(Quarantine::new(policy, Arc::clone(&observer)));
        let open_streams = Arc::default();
        let short_calls: Arc<ShortCalls> = Arc::default();
        let lanes = Arc::new(Lanes::new(Books {
            observer: Arc::clone(&observer),
            quarantine: Arc::clone(&quarantine),
            short_calls: Arc::clone(&short_calls),
            pool: Arc::clone(&pool),
            timeout: runtime.limits.call_timeout,
        }));
        Ok(WorkerPoolRunner {
            catalog,
            pool,
            runtime,
            settings,
            observer,
            quarantine,
            open_streams,
            short_calls,
            lanes,
        })
    }

    /// Calls of at most `budget` count as short (see [`ShortCalls`]); zero disables the direct
    /// path. Default: [`SHORT_CALL_BUDGET`](super::SHORT_CALL_BUDGET).
    pub fn with_short_call_budget(mut self, budget: Duration) -> Self {
        self.short_calls = Arc::new(ShortCalls::new(budget));
        // The lanes record into the same history (none is open before the runner is used).
        self.lanes =
            Arc::new(Lanes::new(Books { short_calls: Arc::clone(&self.short_calls), ..self.lanes.books().clone() }));
        self
    }

    /// Trusts a plugin file found unchanged for `recheck` (see
    /// [`crate::Settings::hot_swap_recheck`]). Default: zero, every call looks.
    pub fn with_hot_swap_recheck(mut self, recheck: Duration) -> Self {
        self.catalog = self.catalog.with_recheck(recheck);
        self
    }

    /// The same checks an in-process load starts with; WasmEdge's own validation happens in
    /// the worker, where a crash in it is contained too.
    fn check(&self, name: &PluginName, bytes: &[u8], content_hash: &str) -> Result<Arc<CheckedModule>, RunError> {
        let admission = crate::runtime::admit(bytes, &self.runtime)?;
        let module = Arc::new(CheckedModule {
            content_hash: content_hash.to_string(),
            bytes: bytes.to_vec(),
            interface: admission.interface.clone().map(Arc::new),
            admission,
        });
        // A worker validates and compiles it now, while the catalog still holds the previous
        // version: a new version that cannot run (WasmEdge refuses it, its memory is over the
        // cap, compilation fails) must not replace one that can.
        // A busy pool is a transient failure (the catalog tries again on the next call).
        let mut worker = self.pool.checkout(name, Purpose::Load, self.settings.queue_timeout)?;
        match worker.load(&module) {
            Ok(loaded) => {
                worker.release();
                loaded.map(|()| module).map_err(RunError::from)
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

impl WorkerPoolRunner {
    /// The checked current version of `name`, unless the plugin is quarantined.
    fn module(&self, plugin: &PluginRef) -> Result<Loaded<Arc<CheckedModule>>, RunError> {
        let name = &plugin.name;
        if let Some(status) = self.quarantine.status(name) {
            return Err(RunError::Quarantined(status));
        }
        self.catalog.current(plugin, |bytes, hash| self.check(name, bytes, hash))
    }

    /// Runs a quick call from a blocking thread on a lane: queued on an open one, or on one
    /// opened on the worker it waited for when the pool is busy. [`Queue::Ordinary`] when it has
    /// to run the ordinary way after all, with the worker it waited for if it has one.
    fn run_queued(
        &self,
        plugin: &PluginRef,
        loaded: &Loaded<Arc<CheckedModule>>,
        input: i32,
    ) -> Result<Queue, RunError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return Ok(Queue::Ordinary(None)) };
        let module = &loaded.module;
        let call = lane::Call { plugin: plugin.clone(), sha256: loaded.sha256.clone(), module, work: lane::Run(input) };
        // Deeper than `DEPTH` rather than wait in the pool: waiting calls there would keep every
        // worker from being free for a lane, and make lanes step aside for them.
        let answer = match self.lanes.queue(&call, usize::MAX) {
            Some(answer) => answer,
            None => {
                let worker = self.pool.checkout(&plugin.name, Purpose::Call, self.settings.queue_timeout)?;
                if worker.spin || !worker.knows(&module.content_hash) {
                    return Ok(Queue::Ordinary(Some(worker)));
                }
                match self.lanes.open(worker, &call, &runtime) {
                    Ok(answer) => answer,
                    Err(worker) => return Ok(Queue::Ordinary(Some(*worker))),
                }
            }
        };
        match answer.blocking_recv() {
            Ok(Attempt::Done(result)) => result.map(Queue::Ran),
            _ => Ok(Queue::Ordinary(None)),
        }
    }

    /// One v1 call of `name` on `worker`. How long the worker took over it tells whether its
    /// calls are short (see [`ShortCalls`]): not the server's view, which includes waiting for
    /// the worker and the server's threads being descheduled, and on a busy machine would find
    /// every call long, so none would take the direct path.
    fn run_on(&self, name: &PluginName, worker: &mut Worker, module: &CheckedModule, input: i32) -> WorkerResult<i32> {
        let started = std::time::Instant::now();
        let called = worker.call(module, input, self.runtime.limits.call_timeout);
        // A call that failed its worker took as long as the server saw.
        let took = called.as_ref().map_or_else(|_| started.elapsed(), |(_, _, took)| *took);
        self.short_calls.record(name, took);
        let (result, instantiation, _) = called?;
        self.observer.instance_ready(instantiation);
        Ok(result)
    }

    /// One v2 call of `name`'s `function` on `worker`; like [`run_on`](Self::run_on), the
    /// worker's own timing is what counts towards [`ShortCalls`].
    fn call_on(
        &self,
        name: &PluginName,
        worker: &mut Worker,
        module: &CheckedModule,
        work: &lane::FunctionCall<'_>,
    ) -> WorkerResult<Vec<u8>> {
        let started = std::time::Instant::now();
        let called =
            worker.call_function(module, work.function, work.input, work.config, self.runtime.limits.call_timeout);
        let took = called.as_ref().map_or_else(|_| started.elapsed(), |(_, took)| *took);
        self.short_calls.record(name, took);
        Ok(called?.0)
    }

    /// A short call's way to a worker without a blocking thread (see [`Calls::run_now`]): queued
    /// on an open lane; else on a worker idle now that already holds the module, through a new
    /// lane when the pool is busy, or on this thread (`direct`) when it is quiet; else, with no
    /// worker idle, deeper on a lane rather than wait for one (see `run_queued`).
    fn now<W: lane::Work>(
        &self,
        call: lane::Call<'_, W>,
        direct: impl FnMut(&mut Worker) -> WorkerResult<W::Output>,
    ) -> Attempt<W::Output> {
        let name = &call.plugin.name;
        let module = call.module;
        // Under load, behind the calls a busy worker is running (see `lane`).
        if let Some(answer) = self.lanes.queue(&call, lane::DEPTH) {
            return Attempt::Queued(answer);
        }
        // Otherwise only a worker that is idle now and already holds the module: waiting for
        // one, starting one or sending a module are not short.
        let Some(mut worker) = self.pool.checkout_idle(name, &module.content_hash) else {
            return match self.lanes.queue(&call, usize::MAX) {
                Some(answer) => Attempt::Queued(answer),
                None => Attempt::Blocking(Some(call.plugin)),
            };
        };
        if !worker.spin
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            match self.lanes.open(worker, &call, &runtime) {
                Ok(answer) => return Attempt::Queued(answer),
                Err(not_opened) => worker = *not_opened,
            }
        }
        let result = self.on_worker(name, Wait::IdleWith(&module.content_hash), Some(worker), direct);
        if matches!(&result, Err(RunError::Worker(WorkerFailure::Busy))) {
            return Attempt::Blocking(Some(call.plugin));
        }
        Attempt::Done(result.map(|output| Ran { output, plugin: call.plugin, sha256: call.sha256 }))
    }

    /// Runs `work` on a worker and gives the worker back, or replaces it if it failed.
    fn on_worker<T>(
        &self,
        name: &PluginName,
        wait: Wait<'_>,
        mut first: Option<PooledWorker>,
        mut work: impl FnMut(&mut Worker) -> WorkerResult<T>,
    ) -> Result<T, RunError> {
        // A worker killed from outside is the infrastructure's fault, not the plugin's: the
        // call is tried once more on another worker (every call starts from a fresh state, so
        // nothing is run twice that could be seen).
        let mut attempts_left = 2;
        loop {
            attempts_left -= 1;
            let mut worker = match (first.take(), wait) {
                (Some(worker), _) => worker,
                (None, Wait::UpTo(patience)) => self.pool.checkout(name, Purpose::Call, patience)?,
                (None, Wait::IdleWith(content_hash)) => {
                    self.pool.checkout_idle(name, content_hash).ok_or(WorkerFailure::Busy)?
                }
            };
            match work(&mut worker) {
                Ok(result) => {
                    worker.release();
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
                    self.quarantine.record_failure(name, &failure);
                    return Err(failure.into());
                }
            }
        }
    }
}

impl Calls for WorkerPoolRunner {
    fn resolve(&self, target: &Target) -> Result<PluginRef, RunError> {
        self.catalog.resolve(&target.name, target.requirement.as_ref())
    }

    fn run(&self, plugin: &PluginRef, input: i32) -> Result<Ran<i32>, RunError> {
        let name = &plugin.name;
        let loaded = self.module(plugin)?;
        let first = match self.short_calls.expect_short(name) {
            // A quick call that came this way under load (its plugin had just been loaded, or no
            // worker was free) queues on a lane too, so that calls waiting here do not keep every
            // worker from ever being free for a lane (see `lane`).
            true => match self.run_queued(plugin, &loaded, input)? {
                Queue::Ran(ran) => return Ok(ran),
                Queue::Ordinary(worker) => worker,
            },
            false => None,
        };
        let result = self.on_worker(name, Wait::UpTo(self.settings.queue_timeout), first, |worker| {
            self.run_on(name, worker, &loaded.module, input)
        });
        Ok(Ran { output: result?, plugin: plugin.clone(), sha256: loaded.sha256 })
    }

    fn run_now(&self, target: &Target, input: i32) -> Attempt<i32> {
        let name = &target.name;
        if !self.short_calls.expect_short(name) || self.quarantine.status(name).is_some() {
            return Attempt::Blocking(None);
        }
        let (plugin, loaded) = match self.catalog.current_if_loaded(name, target.requirement.as_ref()) {
            Ok(found) => found,
            Err(resolved) => return Attempt::Blocking(resolved),
        };
        let module = &loaded.module;
        let call = lane::Call { plugin, sha256: loaded.sha256.clone(), module, work: lane::Run(input) };
        self.now(call, |worker| self.run_on(name, worker, module, input))
    }

    fn interface(&self, plugin: &PluginRef) -> Result<Interface, RunError> {
        Ok(interface_of(&self.module(plugin)?.module))
    }

    fn interface_now(&self, target: &Target) -> Option<(PluginRef, Interface)> {
        if self.quarantine.status(&target.name).is_some() {
            return None;
        }
        let (plugin, loaded) = self.catalog.current_if_loaded(&target.name, target.requirement.as_ref()).ok()?;
        Some((plugin, interface_of(&loaded.module)))
    }

    fn call_now(&self, plugin: &PluginRef, function: &str, input: &[u8]) -> Attempt<Vec<u8>> {
        let name = &plugin.name;
        if !self.short_calls.expect_short(name) || self.quarantine.status(name).is_some() {
            return Attempt::Blocking(None);
        }
        let Some(loaded) = self.catalog.loaded_now(plugin) else { return Attempt::Blocking(None) };
        let module = &loaded.module;
        let config = match self.catalog.configuration(plugin, module.interface.as_deref()) {
            Ok(config) => config,
            Err(error) => return Attempt::Done(Err(error)),
        };
        let work = lane::FunctionCall { function, input, config: config.as_ref().map(|config| &config.bytes[..]) };
        let call = lane::Call { plugin: plugin.clone(), sha256: loaded.sha256.clone(), module, work };
        match self.now(call, |worker| self.call_on(name, worker, module, &work)) {
            Attempt::Done(result) => Attempt::Done(self.catalog.after_call(plugin, config.as_deref(), result)),
            other => other,
        }
    }

    fn call(&self, plugin: &PluginRef, function: &str, input: &[u8]) -> Result<Ran<Vec<u8>>, RunError> {
        let name = &plugin.name;
        let loaded = self.module(plugin)?;
        let module = &loaded.module;
        let config = self.catalog.configuration(plugin, module.interface.as_deref())?;
        let work = lane::FunctionCall { function, input, config: config.as_ref().map(|config| &config.bytes[..]) };
        let result = self.on_worker(name, Wait::UpTo(self.settings.queue_timeout), None, |worker| {
            self.call_on(name, worker, module, &work)
        });
        let output = self.catalog.after_call(plugin, config.as_deref(), result)?;
        Ok(Ran { output, plugin: plugin.clone(), sha256: loaded.sha256 })
    }

    fn open_stream(&self, plugin: &PluginRef, function: &str) -> Result<Ran<Box<dyn PluginStream>>, RunError> {
        let name = &plugin.name;
        let Loaded { module, sha256 } = self.module(plugin)?;
        let Some(layout) = module.interface.clone() else {
            return Err(RuntimeError::WrongAbiVersion { plugin: 1 }.into());
        };
        let config = self.catalog.configuration(plugin, Some(&layout))?;
        // Each stream holds a worker for as long as it lasts: streams have their share of the
        // workers, and never the last one (see `Pool`), so calls always have one.
        let limit = self.settings.max_stream_workers();
        let slot = StreamSlot::take(&self.open_streams, limit).ok_or(WorkerFailure::TooManyStreams { limit })?;
        let timeout = self.runtime.limits.call_timeout;
        let mut worker = self.pool.checkout(name, Purpose::Stream, self.settings.queue_timeout)?;
        match worker.open_stream(&module, function, config.as_ref().map(|config| &config.bytes[..]), timeout) {
            Ok(opened) => {
                if let Err(error) = opened {
                    worker.release();
                    return self.catalog.after_call(plugin, config.as_deref(), Err(error.into()));
                }
                let stream: Box<dyn PluginStream> = Box::new(WorkerStream {
                    worker: Some(worker),
                    name: name.clone(),
                    chunk_capacity: layout.input.capacity as usize,
                    feed_ahead: layout.output.capacity <= pool::FEED_AHEAD_MAX_OUTPUT,
                    timeout,
                    quarantine: Arc::clone(&self.quarantine),
                    slot: Some(slot),
                });
                Ok(Ran { output: stream, plugin: plugin.clone(), sha256 })
            }
            Err(failure) => {
                drop(worker);
                tracing::error!(plugin = %name, error = %failure, "worker process failed; replacing it");
                self.quarantine.record_failure(name, &failure);
                Err(failure.into())
            }
        }
    }
}

impl Inspects for WorkerPoolRunner {
    fn inspect(&self, plugin: &PluginRef) -> Result<PluginStatus, RunError> {
        let mut status = self.catalog.inspect(plugin)?;
        status.quarantine = self.quarantine.status(&plugin.name);
        Ok(status)
    }

    fn versions(&self, name: &PluginName) -> Result<Vec<VersionStatus>, RunError> {
        self.catalog.versions(name)
    }

    fn store_degraded(&self) -> Option<String> {
        self.catalog.degraded()
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        let mut plugins = self.catalog.list()?;
        for status in &mut plugins {
            status.quarantine = self.quarantine.status(&status.name);
        }
        Ok(plugins)
    }

    fn workers(&self) -> Option<WorkerPoolStatus> {
        Some(self.pool.status())
    }

    fn describe_store(&self) -> String {
        self.catalog.store().describe()
    }
}

/// A place among the streams that may be open at once, given back when dropped.
#[derive(Debug)]
struct StreamSlot(Arc<AtomicUsize>);

impl StreamSlot {
    fn take(open: &Arc<AtomicUsize>, limit: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).ok()?;
        Some(StreamSlot(Arc::clone(open)))
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A v2 stream open on a worker, which it holds until the stream ends. A stream abandoned
/// (dropped) after a step that completed leaves the worker in a known state: it is given back,
/// and its next request discards the stream.
struct WorkerStream {
    /// `None` once the stream is over.
    worker: Option<PooledWorker>,
    name: PluginName,
    chunk_capacity: usize,
    /// Whether chunks are sent before the previous chunk's answer is read (see
    /// `Worker::feed_ahead`): the worker works on one chunk while the server fetches the next.
    feed_ahead: bool,
    timeout: Duration,
    quarantine: Arc<Quarantine>,
    /// Held while the stream is open; given back first when it ends (see `Drop`).
    slot: Option<StreamSlot>,
}

impl WorkerStream {
    /// One step on the worker; the stream ends on any error, and a failed worker is replaced.
    fn step(
        &mut self,
        last: bool,
        work: impl FnOnce(&mut Worker, Duration) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure>,
    ) -> Result<Vec<u8>, RunError> {
        let mut worker = self.worker.take().ok_or(RuntimeError::StreamOver)?;
        let result = work(&mut worker, self.timeout);
        if last || !matches!(result, Ok(Ok(_))) {
            // The stream is over: its place is free before its caller hears so (see `Drop`).
            self.slot = None;
        }
        match result {
            Ok(Ok(output)) => {
                if last {
                    worker.release();
                    self.quarantine.record(&self.name, false);
                } else {
                    self.worker = Some(worker);
                }
                Ok(output)
            }
            Ok(Err(error)) => {
                worker.release();
                Err(error.into())
            }
            Err(failure) => {
                drop(worker);
                tracing::error!(plugin = %self.name, error = %failure, "worker process failed mid-stream; replacing it");
                self.quarantine.record_failure(&self.name, &failure);
                Err(failure.into())
            }
        }
    }
}

impl PluginStream for WorkerStream {
    fn chunk_capacity(&self) -> usize {
        self.chunk_capacity
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RunError> {
        if self.feed_ahead {
            self.step(false, |worker, timeout| worker.feed_ahead(chunk, timeout))
        } else {
            self.step(false, |worker, timeout| worker.feed(chunk, timeout))
        }
    }

    fn finish(mut self: Box<Self>) -> Result<Vec<u8>, RunError> {
        self.step(true, |worker, timeout| worker.finish(timeout))
    }
}

impl Drop for WorkerStream {
    fn drop(&mut self) {
        // The stream is over: its place among the streams is free at once, even if its worker
        // takes a moment to go (a client told its stream was cut off may open the next one
        // before this thread is done).
        drop(self.slot.take());
        // A stream abandoned with a chunk's answer still to come: dropping the worker without
        // releasing it replaces it, rather than hand its socket to the next call.
        if let Some(worker) = self.worker.take().filter(|worker| !worker.feed_pending) {
            worker.release();
        }
    }
}
