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
mod protocol;

use std::{
    collections::{HashMap, HashSet},
    io,
    os::{fd::OwnedFd, unix::net::UnixStream, unix::process::ExitStatusExt},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

pub use child::{WORKER_ARG, run as run_worker};

use self::protocol::{PROTOCOL_VERSION, Reply, Request, read_frame, write_frame};
use super::{
    PluginRunner, PluginStatus, QuarantineStatus, RunError,
    catalog::{Catalog, lock},
};
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
}

impl WorkerSettings {
    pub fn new(executable: PathBuf) -> Self {
        WorkerSettings {
            executable,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            memory_limit_bytes: Some(1 << 30),
            quarantine_after: 3,
            quarantine_base: Duration::from_secs(1),
            quarantine_max: Duration::from_secs(300),
            queue_timeout: Duration::from_secs(10),
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
    /// How the host reports this (see [`crate::failure`]).
    pub fn kind(&self) -> FailureKind {
        match self {
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
    crashes: Mutex<HashMap<PluginName, CrashRecord>>,
}

#[derive(Debug, Default)]
struct CrashRecord {
    consecutive: u32,
    quarantined_until: Option<Instant>,
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
        let catalog = Catalog::new(store, Arc::clone(&metrics), capacity);
        Ok(WorkerPoolRunner { catalog, pool, runtime, settings, metrics, crashes: Mutex::new(HashMap::new()) })
    }

    /// The same checks an in-process load starts with; WasmEdge's own validation happens in
    /// the worker, where a crash in it is contained too.
    fn check(&self, bytes: &[u8], content_hash: &str) -> Result<Arc<CheckedModule>, RunError> {
        let limit = self.runtime.limits.max_plugin_bytes;
        if bytes.len() as u64 > limit {
            return Err(RuntimeError::TooLarge { size: bytes.len() as u64, limit }.into());
        }
        if self.runtime.enforce_abi {
            let report = plugin_sdk::check(bytes);
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
                tracing::error!(error = %failure, "worker process failed while loading a plugin; replacing it");
                Err(failure.into())
            }
        }
    }

    fn quarantine_status(&self, name: &PluginName) -> Option<QuarantineStatus> {
        let crashes = lock(&self.crashes);
        let record = crashes.get(name)?;
        let Some(remaining) = record.quarantined_until?.checked_duration_since(Instant::now()) else {
            self.metrics.set_quarantined(name.as_str(), false);
            return None;
        };
        Some(QuarantineStatus {
            consecutive_crashes: record.consecutive,
            retry_after_secs: remaining.as_secs_f64().ceil() as u64,
        })
    }

    fn record_outcome(&self, name: &PluginName, crashed: bool) {
        let mut crashes = lock(&self.crashes);
        if !crashed {
            if crashes.remove(name).is_some_and(|r| r.quarantined_until.is_some()) {
                self.metrics.set_quarantined(name.as_str(), false);
            }
            return;
        }
        self.metrics.observe_worker_crash(name.as_str());
        let record = crashes.entry(name.clone()).or_default();
        record.consecutive += 1;
        if record.consecutive >= self.settings.quarantine_after {
            let doublings = (record.consecutive - self.settings.quarantine_after).min(20);
            let backoff = (self.settings.quarantine_base * 2u32.pow(doublings)).min(self.settings.quarantine_max);
            record.quarantined_until = Some(Instant::now() + backoff);
            self.metrics.set_quarantined(name.as_str(), true);
            tracing::warn!(plugin = %name, crashes = record.consecutive, ?backoff, "plugin quarantined for crashing workers");
        }
    }
}

impl PluginRunner for WorkerPoolRunner {
    fn run(&self, name: &PluginName, input: i32) -> Result<i32, RunError> {
        if let Some(status) = self.quarantine_status(name) {
            return Err(RunError::Quarantined(status));
        }
        let module = self.catalog.current(name, |bytes, hash| self.check(bytes, hash))?;
        let mut worker = self.pool.checkout(self.settings.queue_timeout)?;
        match worker.call(&module, input, self.runtime.limits.call_timeout) {
            Ok((result, instantiation)) => {
                worker.release();
                self.metrics.observe_instantiation(instantiation);
                self.record_outcome(name, false);
                Ok(result?)
            }
            Err(failure) => {
                // Dropping the worker without releasing it replaces it.
                tracing::error!(plugin = %name, error = %failure, "worker process failed; replacing it");
                // Only crashes count towards quarantine: a call past its deadline costs a worker
                // restart, but a slow input is not a reason to refuse the plugin to everybody.
                self.record_outcome(name, matches!(failure, WorkerFailure::Crashed { .. }));
                Err(failure.into())
            }
        }
    }

    fn inspect(&self, name: &PluginName) -> Result<PluginStatus, RunError> {
        let mut status = self.catalog.inspect(name)?;
        status.quarantine = self.quarantine_status(name);
        Ok(status)
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        let mut plugins = self.catalog.list()?;
        for status in &mut plugins {
            status.quarantine = self.quarantine_status(&status.name);
        }
        Ok(plugins)
    }

    fn describe_store(&self) -> String {
        self.catalog.store().describe()
    }
}

/// The worker processes. A request checks one out, uses it alone, and checks it back in; a
/// failed worker is discarded and the next checkout starts a replacement.
#[derive(Debug)]
struct Pool {
    settings: WorkerSettings,
    runtime: RuntimeConfig,
    state: Mutex<PoolState>,
    available: Condvar,
}

#[derive(Debug)]
struct PoolState {
    idle: Vec<Worker>,
    /// Workers alive, idle or checked out.
    alive: usize,
}

impl Pool {
    fn new(settings: WorkerSettings, runtime: RuntimeConfig) -> Result<Self, WorkerFailure> {
        let workers = settings.workers.max(1);
        let pool = Pool {
            settings,
            runtime,
            state: Mutex::new(PoolState { idle: Vec::new(), alive: 0 }),
            available: Condvar::new(),
        };
        let started = (0..workers).map(|_| pool.spawn()).collect::<Result<Vec<_>, _>>()?;
        *lock(&pool.state) = PoolState { alive: started.len(), idle: started };
        Ok(pool)
    }

    /// A worker for one call, waiting at most `patience` for one to become free. The guard
    /// gives it back (see [`PooledWorker`]).
    fn checkout(&self, patience: Duration) -> Result<PooledWorker<'_>, WorkerFailure> {
        self.take_worker(patience).map(|worker| PooledWorker { pool: self, worker: Some(worker) })
    }

    fn take_worker(&self, patience: Duration) -> Result<Worker, WorkerFailure> {
        let give_up = Instant::now() + patience;
        let mut state = lock(&self.state);
        loop {
            while let Some(mut worker) = state.idle.pop() {
                // A worker that died while idle (killed from outside) is nobody's fault: replace
                // it instead of blaming the next plugin.
                if matches!(worker.child.try_wait(), Ok(None)) {
                    return Ok(worker);
                }
                worker.kill();
                state.alive -= 1;
            }
            if state.alive < self.settings.workers.max(1) {
                state.alive += 1;
                drop(state);
                return self.spawn().inspect_err(|_| {
                    lock(&self.state).alive -= 1;
                    self.available.notify_one();
                });
            }
            let wait = give_up.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(WorkerFailure::Busy);
            }
            state = self.available.wait_timeout(state, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn checkin(&self, worker: Worker) {
        lock(&self.state).idle.push(worker);
        self.available.notify_one();
    }

    fn discard(&self, mut worker: Worker) {
        worker.kill();
        lock(&self.state).alive -= 1;
        self.available.notify_one();
    }

    fn spawn(&self) -> Result<Worker, WorkerFailure> {
        let spawn_error = |e: io::Error| WorkerFailure::Spawn(e.to_string());
        let (socket, theirs) = UnixStream::pair().map_err(spawn_error)?;
        let child = Command::new(&self.settings.executable)
            .arg(WORKER_ARG)
            .stdin(Stdio::from(OwnedFd::from(theirs.try_clone().map_err(spawn_error)?)))
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| WorkerFailure::Spawn(format!("{}: {e}", self.settings.executable.display())))?;
        let mut worker = Worker { child, socket, known: HashSet::new() };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            runtime: self.runtime.clone(),
            memory_limit_bytes: self.settings.memory_limit_bytes,
        };
        let handshake = (|| -> io::Result<Reply> {
            write_frame(&mut worker.socket, &hello, &[])?;
            worker.socket.set_read_timeout(Some(Duration::from_secs(10)))?;
            Ok(read_frame::<Reply>(&mut worker.socket)?.0)
        })();
        match handshake {
            Ok(Reply::Ready { version: PROTOCOL_VERSION }) => Ok(worker),
            Ok(other) => {
                worker.kill();
                Err(WorkerFailure::Spawn(format!("worker answered {other:?} to hello")))
            }
            Err(e) => {
                worker.kill();
                Err(WorkerFailure::Spawn(format!("worker handshake failed: {e}")))
            }
        }
    }
}

/// A worker checked out of the pool. [`PooledWorker::release`] returns it to the idle list
/// once a call ended in a known state; dropping it any other way (a failed exchange, an early
/// return, a panic) kills and replaces it, since what is left in its socket is unknown. No
/// call site has to remember to give a worker back, and the pool's count stays right.
#[derive(Debug)]
struct PooledWorker<'a> {
    pool: &'a Pool,
    /// Always `Some` until released or dropped.
    worker: Option<Worker>,
}

impl PooledWorker<'_> {
    /// The call ended with a reply read in full: the worker is ready for the next one.
    fn release(mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.checkin(worker);
        }
    }
}

impl std::ops::Deref for PooledWorker<'_> {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        self.worker.as_ref().expect("a pooled worker holds its worker until released or dropped")
    }
}

impl std::ops::DerefMut for PooledWorker<'_> {
    fn deref_mut(&mut self) -> &mut Worker {
        self.worker.as_mut().expect("a pooled worker holds its worker until released or dropped")
    }
}

impl Drop for PooledWorker<'_> {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.discard(worker);
        }
    }
}

/// One worker process and the server's end of its socket.
#[derive(Debug)]
struct Worker {
    child: Child,
    socket: UnixStream,
    /// Content hashes this worker has been sent (it may have evicted some since).
    known: HashSet<String>,
}

/// Time a worker gets beyond the call's deadline for the round trip itself.
const RESPONSE_MARGIN: Duration = Duration::from_millis(20);
/// Time a worker gets to validate and compile a module (AOT: tens of milliseconds for a small
/// plugin, more for a large one; loaded from the disk cache when another worker compiled it).
const COMPILE_ALLOWANCE: Duration = Duration::from_secs(30);

type CallResult = (Result<i32, RuntimeError>, Duration);

impl Worker {
    /// Runs one call. The module travels only when this worker has not been sent it yet (or
    /// has evicted it); compiling it gets its own, generous allowance, the call itself only its
    /// deadline.
    fn call(&mut self, module: &CheckedModule, input: i32, timeout: Duration) -> Result<CallResult, WorkerFailure> {
        let hash = &module.content_hash;
        if !self.known.contains(hash)
            && let Some(failed) = self.load(module)?
        {
            return Ok(failed);
        }
        let run = Request::Run { content_hash: hash.clone(), input };
        match self.exchange(&run, &[], timeout + RESPONSE_MARGIN) {
            Ok(Reply::Done { result, instantiation }) => Ok((result, instantiation)),
            Ok(Reply::NeedModule) => {
                self.known.remove(hash);
                if let Some(failed) = self.load(module)? {
                    return Ok(failed);
                }
                match self.exchange(&run, &[], timeout + RESPONSE_MARGIN) {
                    Ok(Reply::Done { result, instantiation }) => Ok((result, instantiation)),
                    other => Err(self.broken(other, timeout)),
                }
            }
            other => Err(self.broken(other, timeout)),
        }
    }

    /// Sends a module; returns the compile failure as the call's result, if any.
    fn load(&mut self, module: &CheckedModule) -> Result<Option<CallResult>, WorkerFailure> {
        let load = Request::Load { content_hash: module.content_hash.clone() };
        match self.exchange(&load, &module.bytes, COMPILE_ALLOWANCE) {
            Ok(Reply::Loaded) => {
                self.known.insert(module.content_hash.clone());
                Ok(None)
            }
            Ok(Reply::Done { result, instantiation }) => Ok(Some((result, instantiation))),
            other => Err(self.broken(other, COMPILE_ALLOWANCE)),
        }
    }

    fn exchange(&mut self, request: &Request, blob: &[u8], allowed: Duration) -> io::Result<Reply> {
        write_frame(&mut self.socket, request, blob)?;
        self.socket.set_read_timeout(Some(allowed))?;
        Ok(read_frame::<Reply>(&mut self.socket)?.0)
    }

    /// What went wrong with an exchange that did not give the expected reply.
    fn broken(&mut self, outcome: io::Result<Reply>, deadline: Duration) -> WorkerFailure {
        match outcome {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                WorkerFailure::Unresponsive { deadline }
            }
            Ok(reply) => {
                tracing::error!(?reply, "worker broke the protocol");
                self.failure()
            }
            Err(_) => self.failure(),
        }
    }

    /// The worker stopped talking: reap it and say how it ended. Its socket closes as it dies,
    /// so give it a moment to finish dying before deciding it has to be killed.
    fn failure(&mut self) -> WorkerFailure {
        let deadline = Instant::now() + Duration::from_secs(1);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
                _ => {
                    self.kill();
                    break self.child.try_wait().ok().flatten();
                }
            }
        };
        WorkerFailure::Crashed { signal: status.and_then(|s| s.signal()), exit_code: status.and_then(|s| s.code()) }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
