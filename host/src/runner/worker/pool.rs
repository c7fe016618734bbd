//! The worker processes: starting them, handing one to each call, talking to it, and
//! replacing it when it fails.

use std::{
    collections::HashSet,
    io,
    os::{fd::OwnedFd, unix::net::UnixStream, unix::process::ExitStatusExt},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex};
use wait_timeout::ChildExt;

use super::{
    CheckedModule, WORKER_ARG, WorkerFailure, WorkerSettings,
    protocol::{PROTOCOL_VERSION, Reply, Request, read_frame, write_frame},
};
use crate::runtime::{RuntimeConfig, RuntimeError};

/// The worker processes. A request checks one out, uses it alone, and checks it back in; a
/// failed worker is discarded and the next checkout starts a replacement.
#[derive(Debug)]
pub(super) struct Pool {
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
    pub fn new(settings: WorkerSettings, runtime: RuntimeConfig) -> Result<Self, WorkerFailure> {
        let workers = settings.workers.max(1);
        let pool = Pool {
            settings,
            runtime,
            state: Mutex::new(PoolState { idle: Vec::new(), alive: 0 }),
            available: Condvar::new(),
        };
        let started = (0..workers).map(|_| pool.spawn()).collect::<Result<Vec<_>, _>>()?;
        *pool.state.lock() = PoolState { alive: started.len(), idle: started };
        Ok(pool)
    }

    /// A worker for one call, waiting at most `patience` for one to become free. The guard
    /// gives it back (see [`PooledWorker`]).
    pub fn checkout(self: &Arc<Self>, patience: Duration) -> Result<PooledWorker, WorkerFailure> {
        self.take_worker(patience).map(|worker| PooledWorker { pool: Arc::clone(self), worker: Some(worker) })
    }

    fn take_worker(&self, patience: Duration) -> Result<Worker, WorkerFailure> {
        let give_up = Instant::now() + patience;
        let mut state = self.state.lock();
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
                    self.state.lock().alive -= 1;
                    self.available.notify_one();
                });
            }
            let wait = give_up.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(WorkerFailure::Busy);
            }
            self.available.wait_for(&mut state, wait);
        }
    }

    /// A worker that is idle now and was sent the module `content_hash`, if there is one:
    /// never waits and never starts a worker.
    pub fn checkout_idle(self: &Arc<Self>, content_hash: &str) -> Option<PooledWorker> {
        let mut state = self.state.lock();
        let position = state.idle.iter().rposition(|w| w.known.contains(content_hash))?;
        let mut worker = state.idle.swap_remove(position);
        if !matches!(worker.child.try_wait(), Ok(None)) {
            worker.kill();
            state.alive -= 1;
            drop(state);
            // A caller waiting for a worker may start a replacement now.
            self.available.notify_one();
            return None;
        }
        Some(PooledWorker { pool: Arc::clone(self), worker: Some(worker) })
    }

    fn checkin(&self, worker: Worker) {
        self.state.lock().idle.push(worker);
        self.available.notify_one();
    }

    fn discard(&self, mut worker: Worker) {
        worker.kill();
        self.state.lock().alive -= 1;
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
        let mut worker = Worker {
            child,
            socket: io::BufReader::new(socket),
            read_timeout: None,
            known: HashSet::new(),
            loads: 0,
            loads_checked: 0,
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            runtime: self.runtime.clone(),
            memory_limit_bytes: self.settings.memory_limit_bytes,
        };
        let handshake = (|| -> io::Result<Reply> {
            write_frame(worker.socket.get_mut(), &hello, &[])?;
            worker.socket.get_ref().set_read_timeout(Some(Duration::from_secs(10)))?;
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
pub(super) struct PooledWorker {
    pool: Arc<Pool>,
    /// Always `Some` until released or dropped.
    worker: Option<Worker>,
}

impl PooledWorker {
    /// The call ended with a reply read in full: the worker is ready for the next one, unless
    /// it is due for replacement (see [`Worker::worn_out`]), in which case it is stopped now,
    /// idle, between calls, and the next checkout starts a fresh one.
    pub fn release(mut self) {
        if let Some(mut worker) = self.worker.take() {
            if worker.worn_out(&self.pool.settings) {
                tracing::info!(loads = worker.loads, "recycling a worker process");
                self.pool.discard(worker);
            } else {
                self.pool.checkin(worker);
            }
        }
    }
}

impl std::ops::Deref for PooledWorker {
    type Target = Worker;
    fn deref(&self) -> &Worker {
        self.worker.as_ref().expect("a pooled worker holds its worker until released or dropped")
    }
}

impl std::ops::DerefMut for PooledWorker {
    fn deref_mut(&mut self) -> &mut Worker {
        self.worker.as_mut().expect("a pooled worker holds its worker until released or dropped")
    }
}

impl Drop for PooledWorker {
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.pool.discard(worker);
        }
    }
}

/// One worker process and the server's end of its socket.
#[derive(Debug)]
pub(super) struct Worker {
    child: Child,
    /// Buffered for reading, so that a reply (lengths, header, bytes) costs one `read` rather
    /// than four; a worker whose exchange broke is discarded with whatever its buffer holds.
    socket: io::BufReader<UnixStream>,
    /// The socket's read timeout as last set, so it is set only when it changes.
    read_timeout: Option<Duration>,
    /// Content hashes this worker has been sent (it may have evicted some since).
    known: HashSet<String>,
    /// Modules this worker has been sent to compile, in its life.
    loads: u32,
    /// `loads` when its memory was last looked at: it grows only with loads, so it is read
    /// again only after one.
    loads_checked: u32,
}

/// Time a worker gets beyond the call's deadline for the round trip itself.
const RESPONSE_MARGIN: Duration = Duration::from_millis(20);
/// Time a worker gets to validate and compile a module (AOT: tens of milliseconds for a small
/// plugin, more for a large one; loaded from the disk cache when another worker compiled it).
const COMPILE_ALLOWANCE: Duration = Duration::from_secs(30);

pub(super) type CallResult = (Result<i32, RuntimeError>, Duration);

impl Worker {
    /// Whether to replace this worker: WasmEdge keeps part of every module it loads (about
    /// 250 KB and two mappings, never freed), so a worker that has loaded many versions grows
    /// towards its memory limit and would die in the middle of somebody's call. It is replaced
    /// after [`WorkerSettings::recycle_after_loads`] loads, or once its data segment is past
    /// three quarters of its memory limit (read only after a load, so calls pay nothing).
    fn worn_out(&mut self, settings: &WorkerSettings) -> bool {
        if self.loads >= settings.recycle_after_loads {
            return true;
        }
        let (Some(limit), true) = (settings.memory_limit_bytes, self.loads > self.loads_checked) else {
            return false;
        };
        self.loads_checked = self.loads;
        data_bytes(self.child.id()).is_some_and(|data| data > limit / 4 * 3)
    }

    /// Runs one v1 call. The module travels only when this worker has not been sent it yet (or
    /// has evicted it); compiling it gets its own, generous allowance, the call itself only its
    /// deadline.
    pub fn call(&mut self, module: &CheckedModule, input: i32, timeout: Duration) -> Result<CallResult, WorkerFailure> {
        let run = Request::Run { content_hash: module.content_hash.clone(), input };
        match self.exchange_with_module(module, &run, &[], timeout)? {
            Err(load_failure) => Ok((Err(load_failure), Duration::ZERO)),
            Ok((Reply::Done { result, instantiation }, _)) => Ok((result, instantiation)),
            Ok((other, _)) => Err(self.broken(Ok(other), timeout)),
        }
    }

    /// Calls a v2 function with `input` on a fresh instance; returns its output.
    pub fn call_function(
        &mut self,
        module: &CheckedModule,
        function: &str,
        input: &[u8],
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        let call = Request::Call { content_hash: module.content_hash.clone(), function: function.to_owned() };
        match self.exchange_with_module(module, &call, input, timeout)? {
            Err(load_failure) => Ok(Err(load_failure)),
            Ok(reply) => self.output(Ok(reply), timeout),
        }
    }

    /// Begins a v2 stream; the worker holds it until it is finished or another request comes.
    pub fn open_stream(
        &mut self,
        module: &CheckedModule,
        function: &str,
        timeout: Duration,
    ) -> Result<Result<(), RuntimeError>, WorkerFailure> {
        let open = Request::StreamOpen { content_hash: module.content_hash.clone(), function: function.to_owned() };
        match self.exchange_with_module(module, &open, &[], timeout)? {
            Err(load_failure) => Ok(Err(load_failure)),
            Ok(reply) => Ok(self.output(Ok(reply), timeout)?.map(drop)),
        }
    }

    /// Feeds the open stream one chunk; returns the output it produced.
    pub fn feed(&mut self, chunk: &[u8], timeout: Duration) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        let reply = self.exchange(&Request::StreamFeed, chunk, timeout + RESPONSE_MARGIN);
        self.output(reply, timeout)
    }

    /// Ends the open stream; returns its final output.
    pub fn finish(&mut self, timeout: Duration) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        let reply = self.exchange(&Request::StreamFinish, &[], timeout + RESPONSE_MARGIN);
        self.output(reply, timeout)
    }

    /// The output of a v2 step, from its reply.
    fn output(
        &mut self,
        reply: io::Result<(Reply, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        match reply {
            Ok((Reply::Output { result }, output)) => Ok(result.map(|()| output)),
            other => Err(self.broken(other.map(|(reply, _)| reply), timeout)),
        }
    }

    /// Sends a module to compile and keep; the inner error is why it cannot (WasmEdge refused
    /// it, its memory is over the cap, compilation failed).
    pub fn load(&mut self, module: &CheckedModule) -> Result<Result<(), RuntimeError>, WorkerFailure> {
        let load = Request::Load { content_hash: module.content_hash.clone() };
        match self.exchange(&load, &module.bytes, COMPILE_ALLOWANCE) {
            Ok((Reply::Loaded, _)) => {
                self.known.insert(module.content_hash.clone());
                self.loads += 1;
                Ok(Ok(()))
            }
            Ok((Reply::Done { result, .. }, _)) => Ok(Err(result
                .err()
                .unwrap_or_else(|| RuntimeError::Engine("worker ran a module it was only asked to load".into())))),
            other => Err(self.broken(other.map(|(reply, _)| reply), COMPILE_ALLOWANCE)),
        }
    }

    /// Sends `request` about `module`, sending the module first when this worker has not been
    /// sent it (or answers that it evicted it). The inner error is the module's load failure.
    fn exchange_with_module(
        &mut self,
        module: &CheckedModule,
        request: &Request,
        blob: &[u8],
        timeout: Duration,
    ) -> Result<Result<(Reply, Vec<u8>), RuntimeError>, WorkerFailure> {
        let mut resent = false;
        loop {
            if !self.known.contains(&module.content_hash)
                && let Err(load_failure) = self.load(module)?
            {
                return Ok(Err(load_failure));
            }
            match self.exchange(request, blob, timeout + RESPONSE_MARGIN) {
                Ok((Reply::NeedModule, _)) if !resent => {
                    self.known.remove(&module.content_hash);
                    resent = true;
                }
                Ok((Reply::NeedModule, _)) => return Err(self.broken(Ok(Reply::NeedModule), timeout)),
                Ok(reply) => return Ok(Ok(reply)),
                Err(e) => return Err(self.broken(Err(e), timeout)),
            }
        }
    }

    fn exchange(&mut self, request: &Request, blob: &[u8], allowed: Duration) -> io::Result<(Reply, Vec<u8>)> {
        write_frame(self.socket.get_mut(), request, blob)?;
        if self.read_timeout != Some(allowed) {
            self.socket.get_ref().set_read_timeout(Some(allowed))?;
            self.read_timeout = Some(allowed);
        }
        read_frame::<Reply>(&mut self.socket)
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
        let status = match self.child.wait_timeout(Duration::from_secs(1)) {
            Ok(Some(status)) => Some(status),
            _ => {
                self.kill();
                self.child.try_wait().ok().flatten()
            }
        };
        WorkerFailure::Crashed { signal: status.and_then(|s| s.signal()), exit_code: status.and_then(|s| s.code()) }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's data segment (`VmData`: heap and private writable mappings, what RLIMIT_DATA
/// limits), in bytes.
fn data_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 =
        status.lines().find_map(|line| line.strip_prefix("VmData:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}
