//! [`Host`]: the library's entry point. One value per store, shared by every caller.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use plugin_sdk::FunctionKind;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[cfg(feature = "workers")]
use crate::runner::{WorkerPoolRunner, WorkerPoolStatus, WorkerSettings};
use crate::{
    Error,
    observe::{NoObserver, Observer, Outcome},
    runner::{
        Attempt, DEFAULT_CACHE_CAPACITY, InProcessRunner, PluginStatus, PluginStream, Ran, RunError, Runner,
        SHORT_CALL_BUDGET, Target, VersionStatus,
    },
    runtime::{AotCompilation, Engine, ExecutionMode, Limits, RuntimeConfig},
    store::{ConfigOverride, PluginName, PluginRef, PluginStore},
};

/// Where plugin calls run.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// In this process, on the caller's thread or a blocking thread: the fastest, and a plugin
    /// stays inside its sandbox, but a crash inside WasmEdge itself would take the process
    /// with it.
    #[default]
    InProcess,
    /// In supervised worker processes: a plugin that crashes WasmEdge, overflows its native
    /// stack or runs out of memory costs one worker, never the host. The program must call
    /// [`crate::run_if_worker`] first thing in `main` (workers are this same executable).
    #[cfg(feature = "workers")]
    Workers(WorkerSettings),
}

/// How a [`Host`] runs plugins. Every field documents its default ([`Settings::default`]).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Default: [`Isolation::InProcess`].
    pub isolation: Isolation,
    /// Default: [`ExecutionMode::Aot`], native code compiled once per plugin version.
    pub mode: ExecutionMode,
    /// The deadline, memory and size limits every call runs under. Default: [`Limits::default`].
    pub limits: Limits,
    /// Where AOT-compiled plugins are kept between runs. Default (`None`):
    /// `plugin-host-<uid>/aot` under the system's temporary directory.
    pub aot_cache_dir: Option<PathBuf>,
    /// Most bytes of compiled plugins kept there. Default: 1 GiB.
    pub aot_cache_max_bytes: u64,
    /// Where in-process AOT compilation runs. Default: [`AotCompilation::InProcess`]; a
    /// program that calls [`crate::run_if_worker`] can compile in a child process instead,
    /// which gives back the memory WasmEdge keeps per compilation.
    pub aot_compilation: AotCompilation,
    /// Plugin versions kept compiled. Default: 256.
    pub cache_capacity: usize,
    /// Calls running at once; more are refused at once ([`crate::FailureKind::Overloaded`])
    /// rather than queued behind the CPU. Default: 256.
    pub max_calls_in_flight: usize,
    /// A plugin whose recent calls all took at most this long is called on the calling thread
    /// instead of a blocking thread (see `runner::ShortCalls`); zero turns that off.
    /// Default: 1 ms.
    pub short_call_budget: Duration,
    /// How long a plugin file found unchanged is trusted before the store is asked again (a
    /// `stat` of the file). Zero (the default): every call asks, so a replaced file runs from the
    /// very next call. Longer: only the first call after the period asks, the others cost no
    /// system call, and a replaced (or removed) file runs from the first call that starts at
    /// least this long after the replacement; calls before that may still get the old version.
    pub hot_swap_recheck: Duration,
    /// Check every plugin against the ABI before loading it. Default: `true`. Turning it off
    /// lets modules that break the ABI load: only for testing the host's own defences.
    pub check_abi: bool,
    /// A folder searched for plugins' configuration files before the store (a mounted
    /// ConfigMap or Secret; see docs/configuration.md). Default: none.
    pub config_override: Option<ConfigOverride>,
}

impl Default for Settings {
    fn default() -> Self {
        let runtime = RuntimeConfig::default();
        Settings {
            isolation: Isolation::default(),
            mode: runtime.mode,
            limits: runtime.limits,
            aot_cache_dir: runtime.aot_cache_dir,
            aot_cache_max_bytes: runtime.aot_cache_max_bytes,
            aot_compilation: runtime.aot_compilation,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            max_calls_in_flight: 256,
            short_call_budget: SHORT_CALL_BUDGET,
            hot_swap_recheck: Duration::ZERO,
            check_abi: true,
            config_override: None,
        }
    }
}

impl Settings {
    fn runtime(&self) -> RuntimeConfig {
        RuntimeConfig {
            mode: self.mode,
            limits: self.limits.clone(),
            aot_cache_dir: self.aot_cache_dir.clone(),
            aot_cache_max_bytes: self.aot_cache_max_bytes,
            enforce_abi: self.check_abi,
            aot_compilation: self.aot_compilation.clone(),
            ..RuntimeConfig::default()
        }
    }
}

/// Runs the plugins of one store: checked, compiled once per version, hot-swapped when the store
/// changes, each call on a fresh instance. Cheap to clone; clones share everything.
///
/// Calls are `async`: a plugin whose recent calls were short runs on the calling thread, any
/// other on tokio's blocking threads (so a tokio runtime must be running). Dropping a call's
/// future does not stop the call: it runs to its end or its deadline, and keeps its place
/// among [`Settings::max_calls_in_flight`] until then.
///
/// ```
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let plugins = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins");
/// # if !plugins.join("hello.wasm").exists() { return Ok(()) }
/// use plugin_host::{Host, LocalPluginStore, Settings, Target};
///
/// let store = LocalPluginStore::new(&plugins, Settings::default().limits.max_plugin_bytes)?;
/// let host = Host::new(store, Settings::default())?;
/// let ran = host.run(&Target::new("hello")?, 21).await?;
/// assert_eq!(ran.output, 43);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runner: Box<dyn Runner>,
    observer: Arc<dyn Observer>,
    /// A permit per call in flight, of `max_calls`.
    calls: Arc<Semaphore>,
    max_calls: usize,
    closed: AtomicBool,
}

impl Host {
    /// A host for the plugins of `store`. Fails when the runtime cannot start (or, with
    /// worker processes, when they cannot): a broken install stops start-up, not the first call.
    pub fn new(store: impl PluginStore + 'static, settings: Settings) -> Result<Host, Error> {
        Host::with_observer(Arc::new(store), settings, Arc::new(NoObserver))
    }

    /// [`Host::new`] with a store already shared, and an [`Observer`] told about every call,
    /// load and worker.
    pub fn with_observer(
        store: Arc<dyn PluginStore>,
        settings: Settings,
        observer: Arc<dyn Observer>,
    ) -> Result<Host, Error> {
        let runtime = settings.runtime();
        let capacity = settings.cache_capacity;
        let runner: Box<dyn Runner> = match &settings.isolation {
            Isolation::InProcess => {
                let engine = Engine::new(runtime).map_err(RunError::from)?;
                let runner = InProcessRunner::new(store, engine, Arc::clone(&observer), capacity)
                    .with_short_call_budget(settings.short_call_budget)
                    .with_hot_swap_recheck(settings.hot_swap_recheck);
                match settings.config_override.clone() {
                    Some(dir) => Box::new(runner.with_config_override(dir)),
                    None => Box::new(runner),
                }
            }
            #[cfg(feature = "workers")]
            Isolation::Workers(workers) => {
                let runner = WorkerPoolRunner::new(store, runtime, workers.clone(), Arc::clone(&observer), capacity)
                    .map_err(RunError::from)?
                    .with_short_call_budget(settings.short_call_budget)
                    .with_hot_swap_recheck(settings.hot_swap_recheck);
                match settings.config_override.clone() {
                    Some(dir) => Box::new(runner.with_config_override(dir)),
                    None => Box::new(runner),
                }
            }
        };
        let max_calls = settings.max_calls_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        let calls = Arc::new(Semaphore::new(max_calls));
        Ok(Host { inner: Arc::new(Inner { runner, observer, calls, max_calls, closed: AtomicBool::new(false) }) })
    }

    /// A host over a runner of the caller's (the benchmark's native functions).
    #[cfg(feature = "internals")]
    #[doc(hidden)]
    pub fn with_runner(runner: Box<dyn Runner>, observer: Arc<dyn Observer>, max_calls_in_flight: usize) -> Host {
        let max_calls = max_calls_in_flight.clamp(1, Semaphore::MAX_PERMITS);
        let calls = Arc::new(Semaphore::new(max_calls));
        Host { inner: Arc::new(Inner { runner, observer, calls, max_calls, closed: AtomicBool::new(false) }) }
    }

    /// Runs the v1 plugin `target` with `input`: `init`, `process(input)`, `cleanup`.
    pub async fn run(&self, target: &Target, input: i32) -> Result<Ran<i32>, Error> {
        let call = self.admit(&target.name)?;
        match settled(self.inner.runner.run_now(target, input)).await {
            Ok(result) => call.finish(result),
            Err(resolved) => {
                let (inner, target) = (Arc::clone(&self.inner), target.clone());
                blocking(move || {
                    call.finish(inner.open().and_then(|()| {
                        let plugin = resolved.map_or_else(|| inner.runner.resolve(&target), Ok)?;
                        inner.runner.run(&plugin, input)
                    }))
                })
                .await
            }
        }
    }

    /// Calls the v2 function `function` of `target` with `input`. A streaming function gets
    /// `input` as one whole stream.
    pub async fn call(&self, target: &Target, function: &str, input: Vec<u8>) -> Result<Ran<Vec<u8>>, Error> {
        let call = self.admit(&target.name)?;
        // A short call of a loaded plugin runs on this thread (see `Calls::call_now`); otherwise
        // the version found on the way is the one called, not resolved again.
        let mut resolved = None;
        if self.inner.open().is_ok()
            && let Some((plugin, _)) = self.inner.runner.interface_now(target)
        {
            match settled(self.inner.runner.call_now(&plugin, function, &input)).await {
                Ok(result) => return call.finish(result),
                Err(_) => resolved = Some(plugin),
            }
        }
        let (inner, target, function) = (Arc::clone(&self.inner), target.clone(), function.to_owned());
        blocking(move || {
            call.finish(inner.open().and_then(|()| {
                let plugin = resolved.map_or_else(|| inner.runner.resolve(&target), Ok)?;
                inner.runner.call(&plugin, &function, &input)
            }))
        })
        .await
    }

    /// The v2 function `function` of `target`, resolved and loaded: what it takes (its
    /// [`kind`](Function::kind) and [`input_capacity`](Function::input_capacity)) is known
    /// before its input is read, and its calls run the version resolved here (as that file is
    /// when they start).
    pub async fn function(&self, target: &Target, function: &str) -> Result<Function, Error> {
        let call = self.admit(&target.name)?;
        // Known at once for a loaded plugin: no hand-off to a blocking thread.
        if let Some((plugin, interface)) = self.inner.open().ok().and_then(|()| self.inner.runner.interface_now(target))
        {
            return match interface.function_kind(function) {
                Ok(kind) => {
                    call.forget();
                    let input_capacity = interface.input_capacity().unwrap_or_default() as usize;
                    Ok(Function { host: self.clone(), plugin, name: function.to_owned(), kind, input_capacity })
                }
                Err(error) => call.finish(Err(error)),
            };
        }
        let (inner, target, name) = (Arc::clone(&self.inner), target.clone(), function.to_owned());
        let (plugin, kind, input_capacity) = blocking(move || {
            let found = inner.open().and_then(|()| {
                let plugin = inner.runner.resolve(&target)?;
                let interface = inner.runner.interface(&plugin)?;
                let kind = interface.function_kind(&name)?;
                Ok((plugin, kind, interface.input_capacity().unwrap_or_default() as usize))
            });
            // Finding a function is not a call: only its failure is reported, as the call's.
            match found {
                Ok(found) => {
                    call.forget();
                    Ok(found)
                }
                Err(error) => call.finish(Err(error)),
            }
        })
        .await?;
        Ok(Function { host: self.clone(), plugin, name: function.to_owned(), kind, input_capacity })
    }

    /// Every plugin in the store, sorted by name, each as a call without a version requirement
    /// gets it. A file the store holds but cannot give (over the size limit, unreadable) is
    /// listed too, with `last_error` saying why.
    pub async fn plugins(&self) -> Result<Vec<PluginStatus>, Error> {
        let inner = Arc::clone(&self.inner);
        blocking(move || Ok(inner.runner.list()?)).await
    }

    /// The version of `target` a call would get now, and how loading it went.
    pub async fn plugin(&self, target: &Target) -> Result<PluginStatus, Error> {
        let (inner, target) = (Arc::clone(&self.inner), target.clone());
        blocking(move || Ok(inner.runner.resolve(&target).and_then(|plugin| inner.runner.inspect(&plugin))?)).await
    }

    /// Every version of `name` in the store (its unversioned file first, if any), with digests.
    pub async fn versions(&self, name: &PluginName) -> Result<Vec<VersionStatus>, Error> {
        let (inner, name) = (Arc::clone(&self.inner), name.clone());
        blocking(move || Ok(inner.runner.versions(&name)?)).await
    }

    /// Where plugins come from, for operators (a folder, a mount, a registry repository).
    pub fn describe_store(&self) -> String {
        self.inner.runner.describe_store()
    }

    /// Why the store serves in a degraded way, if it does: an OCI registry that cannot be
    /// reached, while the versions already pulled keep serving.
    pub fn store_degraded(&self) -> Option<String> {
        self.inner.runner.store_degraded()
    }

    /// The worker processes, when plugins run in them.
    #[cfg(feature = "workers")]
    pub fn workers(&self) -> Option<WorkerPoolStatus> {
        self.inner.runner.workers()
    }

    /// Calls running now (streams included).
    pub fn calls_in_flight(&self) -> usize {
        self.inner.max_calls.saturating_sub(self.inner.calls.available_permits())
    }

    /// Starts no more calls: calls made from now on, and calls accepted but not yet started,
    /// fail with [`crate::FailureKind::Overloaded`] ("shutting down"). Calls running finish.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Relaxed);
    }

    /// A place among the calls in flight, for a call of `name`.
    fn admit(&self, name: &PluginName) -> Result<Admitted, Error> {
        let started = Instant::now();
        let refuse = |error: RunError| {
            self.inner.observer.call_finished(name, Outcome::Failed(error.kind()), started.elapsed());
            Error::from(error)
        };
        self.inner.open().map_err(refuse)?;
        let permit = Arc::clone(&self.inner.calls).try_acquire_owned().map_err(|_| refuse(RunError::Busy))?;
        Ok(Admitted { permit, name: name.clone(), started, observer: Arc::clone(&self.inner.observer) })
    }
}

impl Inner {
    /// Whether calls may start.
    fn open(&self) -> Result<(), RunError> {
        if self.closed.load(Ordering::Relaxed) { Err(RunError::Closed) } else { Ok(()) }
    }
}

/// A call admitted: holds its place among the calls in flight, and reports its outcome once.
#[derive(Debug)]
struct Admitted {
    permit: OwnedSemaphorePermit,
    name: PluginName,
    started: Instant,
    observer: Arc<dyn Observer>,
}

impl Admitted {
    /// Reports how the call ended and gives its place back.
    fn finish<T>(self, result: Result<T, RunError>) -> Result<T, Error> {
        let outcome = match &result {
            Ok(_) => Outcome::Ok,
            Err(error) => Outcome::Failed(error.kind()),
        };
        self.observer.call_finished(&self.name, outcome, self.started.elapsed());
        drop(self.permit);
        result.map_err(Error::from)
    }

    /// Gives the place back without reporting a call.
    fn forget(self) {
        drop(self.permit);
    }
}

/// What an attempt to call without a blocking thread came to, once a queued call has its
/// answer: the call's result, or `Err` when it must run from a blocking thread after all (with
/// the resolution made on the way, if any).
async fn settled<T>(mut attempt: Attempt<T>) -> Result<Result<Ran<T>, RunError>, Option<PluginRef>> {
    loop {
        attempt = match attempt {
            Attempt::Done(result) => return Ok(result),
            Attempt::Blocking(resolved) => return Err(resolved),
            Attempt::Queued(answer) => answer.await.unwrap_or(Attempt::Blocking(None)),
        };
    }
}

/// Runs blocking work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, Error> + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join_error| Error::from(RunError::Panicked(join_error.to_string())))?
}

/// A v2 function of one plugin version, found by [`Host::function`].
#[derive(Debug, Clone)]
pub struct Function {
    host: Host,
    plugin: PluginRef,
    name: String,
    kind: FunctionKind,
    input_capacity: usize,
}

impl Function {
    /// Whether it is called with one input ([`FunctionKind::Call`]) or fed a stream
    /// ([`FunctionKind::Stream`]).
    pub fn kind(&self) -> FunctionKind {
        self.kind
    }

    /// The plugin's input capacity: the largest input a call takes, and the largest chunk a
    /// stream is fed at once.
    pub fn input_capacity(&self) -> usize {
        self.input_capacity
    }

    /// The plugin file it belongs to.
    pub fn plugin(&self) -> &PluginRef {
        &self.plugin
    }

    /// Calls it with `input` (a streaming function gets `input` as one whole stream).
    pub async fn call(&self, input: Vec<u8>) -> Result<Ran<Vec<u8>>, Error> {
        let call = self.host.admit(&self.plugin.name)?;
        if self.host.inner.open().is_ok()
            && let Ok(result) = settled(self.host.inner.runner.call_now(&self.plugin, &self.name, &input)).await
        {
            return call.finish(result);
        }
        let (inner, plugin, function) = (Arc::clone(&self.host.inner), self.plugin.clone(), self.name.clone());
        blocking(move || call.finish(inner.open().and_then(|()| inner.runner.call(&plugin, &function, &input)))).await
    }

    /// Begins a stream: feed it with [`Stream::feed`], end it with [`Stream::finish`]. It holds
    /// its place among the calls in flight (and, with worker processes, a worker) until it ends
    /// or is dropped.
    pub async fn open_stream(&self) -> Result<Stream, Error> {
        let call = self.host.admit(&self.plugin.name)?;
        let (inner, plugin, function) = (Arc::clone(&self.host.inner), self.plugin.clone(), self.name.clone());
        blocking(move || match inner.open().and_then(|()| inner.runner.open_stream(&plugin, &function)) {
            Ok(opened) => Ok(Stream {
                chunk_capacity: opened.output.chunk_capacity(),
                session: Some(opened.output),
                plugin: opened.plugin,
                sha256: opened.sha256,
                call: Some(call),
            }),
            Err(error) => call.finish(Err(error)),
        })
        .await
    }
}

/// A v2 stream in progress, on an instance (and, with worker processes, a worker) of its own.
/// Its methods block: call them from a thread that may (`tokio::task::spawn_blocking`). After
/// an error the stream is over; dropping it abandons it.
pub struct Stream {
    session: Option<Box<dyn PluginStream>>,
    chunk_capacity: usize,
    plugin: PluginRef,
    sha256: Arc<str>,
    /// `None` once the outcome is reported.
    call: Option<Admitted>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("plugin", &self.plugin).field("over", &self.session.is_none()).finish()
    }
}

impl Stream {
    /// The largest chunk [`feed`](Self::feed) takes: the plugin's input capacity.
    pub fn chunk_capacity(&self) -> usize {
        self.chunk_capacity
    }

    /// The plugin file running the stream.
    pub fn plugin(&self) -> &PluginRef {
        &self.plugin
    }

    /// The hex SHA-256 of the plugin version running the stream.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Feeds one chunk of at most [`chunk_capacity`](Self::chunk_capacity) bytes; returns what
    /// the plugin produced for it.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, Error> {
        let session = self.session.as_mut().ok_or_else(|| Error::from(stream_over()))?;
        match session.feed(chunk) {
            Ok(output) => Ok(output),
            Err(error) => {
                self.session = None;
                self.report(Err(error))
            }
        }
    }

    /// Ends the stream; returns the plugin's last output.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        let session = self.session.take().ok_or_else(|| Error::from(stream_over()))?;
        let result = session.finish();
        self.report(result)
    }

    fn report<T>(&mut self, result: Result<T, RunError>) -> Result<T, Error> {
        match self.call.take() {
            Some(call) => call.finish(result),
            None => result.map_err(Error::from),
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.observer.call_finished(&call.name, Outcome::Abandoned, call.started.elapsed());
        }
    }
}

/// Using a stream after it ended, which the types cannot prevent after a failed `feed`.
fn stream_over() -> RunError {
    RunError::Runtime(crate::runtime::RuntimeError::StreamOver)
}
