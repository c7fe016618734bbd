//! The worker processes: starting them, handing one to each call, talking to it, and
//! replacing it when it fails.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    io::{self, Write},
    os::{
        fd::{AsFd, OwnedFd},
        unix::net::UnixStream,
        unix::process::ExitStatusExt,
    },
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex};
use wait_timeout::ChildExt;

use super::{
    CheckedModule, WORKER_ARG, WorkerFailure, WorkerPoolStatus, WorkerSettings,
    protocol::{
        PROTOCOL_VERSION, Reply, Request, SPIN_BEFORE_SLEEP, decode_frame, encode_frame, read_frame,
        spin_until_readable, write_frame,
    },
    slot::{Direction, Slot, WORKER_SLOT_FD},
};
use crate::{
    runtime::{RuntimeConfig, RuntimeError},
    store::PluginName,
};

/// The worker processes. A call checks one out, uses it alone, and checks it back in; a
/// failed worker is discarded and the next checkout starts a replacement.
///
/// Fair sharing, so that streams and slow plugins never starve quick calls:
/// - each plugin may hold at most [`WorkerSettings::max_workers_per_plugin`] workers at once
///   (by default all but one), so a plugin whose calls loop to their deadline can never take
///   every worker;
/// - *long* holds (streams, and calls of plugins that are slow: their recent calls held a
///   worker for [`WorkerSettings::slow_call`] or more on average, or one of their calls has
///   been running that long) never take the last worker: one is kept for quick calls, so a
///   quick call finds a worker within one quick call's time whatever else is running;
/// - calls that wait are served by least recent use of workers by their plugin first (worker
///   time, decaying by half every [`USAGE_HALF_LIFE`], running calls included), then in
///   arrival order: a plugin that has held workers for seconds waits behind one that held them
///   for microseconds, and a plugin with a long queue does not delay one with nothing running.
///
/// A waiting call is handed its worker directly (each waiter has its own condition variable),
/// so a release wakes exactly one thread.
#[derive(Debug)]
pub(super) struct Pool {
    settings: WorkerSettings,
    runtime: RuntimeConfig,
    state: Mutex<PoolState>,
    /// CPUs this process may use.
    cores: usize,
}

#[derive(Debug)]
struct PoolState {
    idle: Vec<Worker>,
    /// Workers alive, idle or checked out (or granted to a waiter that is starting one).
    alive: usize,
    /// Workers each plugin holds now.
    running: HashMap<PluginName, usize>,
    /// Every checkout in progress (at most one per worker).
    holds: Vec<Hold>,
    /// Each plugin's recent use of workers.
    usage: HashMap<PluginName, Usage>,
    /// The id of the next hold.
    next_hold: u64,
    /// Calls waiting for a worker, in arrival order.
    waiting: VecDeque<Arc<Waiter>>,
    /// Why the last attempt to start a worker failed, until one starts again.
    spawn_failure: Option<String>,
}

/// How much use of workers is remembered: a plugin's worker time counts half as much this
/// long after.
pub(super) const USAGE_HALF_LIFE: Duration = Duration::from_secs(2);

/// Plugins whose use is remembered before idle ones are forgotten.
const USAGE_CAPACITY: usize = 4096;

/// What a worker is checked out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A call: quick or slow as its plugin's record says.
    Call,
    /// Sending a module to compile before a call: classed like the plugin's calls, but its
    /// time (a compilation) says nothing about how long the calls take.
    Load,
    /// A stream, which holds its worker as long as its client sends: always long.
    Stream,
    /// Quick calls of any plugin queued on one worker (see `lane`): the hold is booked to the
    /// plugin whose call opened it and lasts as long as quick calls keep coming, so its time
    /// says nothing about how long that plugin's calls take, and it is never a long hold.
    Lane,
}

/// One checkout in progress.
#[derive(Debug)]
struct Hold {
    id: u64,
    plugin: PluginName,
    purpose: Purpose,
    since: Instant,
}

/// A plugin's recent use of workers.
#[derive(Debug)]
struct Usage {
    /// Worker time of the holds that ended, in seconds, as of `at` (it decays from there).
    seconds: f64,
    at: Instant,
    /// How long its calls held a worker, averaged over the recent ones (each counts a quarter).
    mean_call: Option<Duration>,
}

impl Usage {
    fn seconds_at(&self, now: Instant) -> f64 {
        let half_lives = now.saturating_duration_since(self.at).as_secs_f64() / USAGE_HALF_LIFE.as_secs_f64();
        self.seconds * 0.5f64.powf(half_lives)
    }
}

/// A call waiting for a worker.
#[derive(Debug)]
struct Waiter {
    plugin: PluginName,
    purpose: Purpose,
    /// When it began to wait.
    since: Instant,
    /// What it is given, and the id of its hold.
    grant: Mutex<Option<(Grant, u64)>>,
    granted: Condvar,
}

/// What a waiting call is given.
#[derive(Debug)]
enum Grant {
    Idle(Worker),
    /// A place in the pool: the call starts the worker itself (outside the pool's lock).
    Spawn,
}

impl Pool {
    pub fn new(settings: WorkerSettings, runtime: RuntimeConfig) -> Result<Self, WorkerFailure> {
        let workers = settings.workers.max(1);
        let state = PoolState {
            idle: Vec::new(),
            alive: 0,
            running: HashMap::new(),
            holds: Vec::new(),
            usage: HashMap::new(),
            next_hold: 0,
            waiting: VecDeque::new(),
            spawn_failure: None,
        };
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let pool = Pool { settings, runtime, state: Mutex::new(state), cores };
        let started = (0..workers).map(|_| pool.spawn()).collect::<Result<Vec<_>, _>>()?;
        {
            let mut state = pool.state.lock();
            state.alive = started.len();
            state.idle = started;
        }
        Ok(pool)
    }

    /// A worker for one call of `plugin`, waiting at most `patience` for one to become free.
    /// The guard gives it back (see [`PooledWorker`]).
    pub fn checkout(
        self: &Arc<Self>,
        plugin: &PluginName,
        purpose: Purpose,
        patience: Duration,
    ) -> Result<PooledWorker, WorkerFailure> {
        let give_up = Instant::now() + patience;
        let waiter = Arc::new(Waiter {
            plugin: plugin.clone(),
            purpose,
            since: Instant::now(),
            grant: Mutex::new(None),
            granted: Condvar::new(),
        });
        {
            let mut state = self.state.lock();
            state.waiting.push_back(Arc::clone(&waiter));
            self.dispatch(&mut state);
        }
        let grant = {
            let mut grant = waiter.grant.lock();
            while grant.is_none() && !waiter.granted.wait_until(&mut grant, give_up).timed_out() {}
            grant.take()
        };
        let grant = match grant {
            Some(grant) => grant,
            None => {
                // Out of patience, unless a worker was granted in the meantime (grants are
                // made under the pool's lock, so this check cannot miss one).
                let mut state = self.state.lock();
                match waiter.grant.lock().take() {
                    Some(grant) => grant,
                    None => {
                        state.waiting.retain(|other| !Arc::ptr_eq(other, &waiter));
                        return Err(WorkerFailure::Busy);
                    }
                }
            }
        };
        let (grant, hold) = grant;
        let worker = match grant {
            Grant::Idle(worker) => worker,
            Grant::Spawn => match self.spawn() {
                Ok(worker) => {
                    self.state.lock().spawn_failure = None;
                    worker
                }
                Err(failure) => {
                    let mut state = self.state.lock();
                    state.alive -= 1;
                    state.end(hold, false);
                    state.spawn_failure = Some(failure.to_string());
                    self.dispatch(&mut state);
                    return Err(failure);
                }
            },
        };
        Ok(PooledWorker { pool: Arc::clone(self), hold, worker: Some(worker) })
    }

    /// Most long holds at once (see [`Pool`]): all workers but one, so a quick call always
    /// finds one (with a single worker, that one).
    fn long_cap(&self) -> usize {
        let workers = self.settings.workers.max(1);
        if workers > 1 { workers - 1 } else { 1 }
    }

    /// Whether `plugin` may be given a worker for `purpose` now, as far as its share and the
    /// quick calls' reserve go (see [`Pool`]).
    fn may_take(&self, state: &PoolState, plugin: &PluginName, purpose: Purpose, now: Instant) -> bool {
        if state.running_of(plugin) >= self.settings.max_workers_per_plugin() {
            return false;
        }
        let slow = self.settings.slow_call;
        !state.is_long(plugin, purpose, now, slow) || state.long_held(now, slow) < self.long_cap()
    }

    /// Whether the machine has a core to spare for each call in flight (one for the server's
    /// thread, one for its worker): only then does a call poll for its worker's answer before
    /// sleeping, and the worker for the next call after it (see `spin_until_readable`). Under
    /// load, polling takes CPU from the threads that do the work. Measured on 2 cores, `hello`:
    /// polling on every call took server CPU per request at 16 connections from 95 µs to
    /// 107-152 µs; polling only here when quiet, but in the worker whenever calls came back to
    /// back, still cost 120-127 µs; while on an idle machine polling took a worker call from
    /// 58.6 to 16.4 µs and doubled requests/s at one connection.
    fn quiet(&self, state: &PoolState) -> bool {
        let busy = state.alive - state.idle.len();
        busy * 2 <= self.cores
    }

    /// What `/readyz` reports about the pool.
    pub fn status(&self) -> WorkerPoolStatus {
        let state = self.state.lock();
        WorkerPoolStatus {
            configured: self.settings.workers.max(1),
            alive: state.alive,
            busy: state.alive - state.idle.len(),
            waiting: state.waiting.len(),
            spawn_failure: state.spawn_failure.clone(),
        }
    }

    /// Whether a call that could be given a worker now has waited for one for `patience` or
    /// more: lanes then take no more calls, so that their workers come back to the pool for it
    /// (see `lane`). A call the fairness rules keep from any worker now (a looping plugin at its
    /// share, say) would not get a lane's worker either, so lanes do not step aside for it.
    pub fn kept_waiting(&self, patience: Duration) -> bool {
        let state = self.state.lock();
        let now = Instant::now();
        state.waiting.iter().any(|waiter| {
            now.saturating_duration_since(waiter.since) >= patience
                && self.may_take(&state, &waiter.plugin, waiter.purpose, now)
        })
    }

    /// Books `worker`'s hold as a lane's (see [`Purpose::Lane`]).
    pub fn book_as_lane(&self, worker: &PooledWorker) {
        if let Some(hold) = self.state.lock().holds.iter_mut().find(|hold| hold.id == worker.hold) {
            hold.purpose = Purpose::Lane;
        }
    }

    /// A worker for one call of `plugin` that is idle now and was sent the module
    /// `content_hash`, if there is one and taking it is fair: never waits, never starts a
    /// worker, and never overtakes a waiting call or the plugin's share of the pool.
    pub fn checkout_idle(self: &Arc<Self>, plugin: &PluginName, content_hash: &str) -> Option<PooledWorker> {
        let mut state = self.state.lock();
        // No waiting call is overtaken: one that may take a free worker is given it as soon as
        // it is free (`dispatch`), so any still waiting while a worker is idle may not.
        if !self.may_take(&state, plugin, Purpose::Call, Instant::now()) {
            return None;
        }
        let position = state.idle.iter().rposition(|w| w.known.contains(content_hash))?;
        let mut worker = state.idle.swap_remove(position);
        if !worker.still_alive() {
            // Died while idle (killed from outside): nobody's fault; a later checkout starts
            // a replacement.
            worker.kill();
            state.alive -= 1;
            return None;
        }
        let hold = state.begin(plugin, Purpose::Call);
        worker.spin = self.quiet(&state);
        Some(PooledWorker { pool: Arc::clone(self), hold, worker: Some(worker) })
    }

    /// Hands free workers (idle ones, or places for new ones) to waiting calls, fairly (see
    /// [`Pool`]).
    fn dispatch(&self, state: &mut PoolState) {
        loop {
            let now = Instant::now();
            let eligible = state
                .waiting
                .iter()
                .enumerate()
                .filter(|(_, waiter)| self.may_take(state, &waiter.plugin, waiter.purpose, now))
                .map(|(position, waiter)| (state.usage_of(&waiter.plugin, now), position))
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let Some((_, position)) = eligible else { return };
            let Some(grant) = self.free_worker(state) else { return };
            let waiter = state.waiting.remove(position).expect("the position was just found");
            let hold = state.begin(&waiter.plugin, waiter.purpose);
            *waiter.grant.lock() = Some((grant, hold));
            waiter.granted.notify_one();
        }
    }

    /// An idle worker that is still alive, or a place to start one.
    fn free_worker(&self, state: &mut PoolState) -> Option<Grant> {
        while let Some(mut worker) = state.idle.pop() {
            // A worker that died while idle (killed from outside) is nobody's fault: replace
            // it instead of blaming the next plugin.
            if worker.still_alive() {
                // Decided here, under the pool's lock the grant is made with, rather than by
                // taking the lock again for every call.
                worker.spin = self.quiet(state);
                return Some(Grant::Idle(worker));
            }
            worker.kill();
            state.alive -= 1;
        }
        if state.alive < self.settings.workers.max(1) {
            state.alive += 1;
            return Some(Grant::Spawn);
        }
        None
    }

    fn checkin(&self, hold: u64, mut worker: Worker) {
        let mut state = self.state.lock();
        state.end(hold, true);
        worker.idle_since = Instant::now();
        state.idle.push(worker);
        self.dispatch(&mut state);
    }

    fn discard(&self, hold: u64, mut worker: Worker) {
        worker.kill();
        let mut state = self.state.lock();
        state.alive -= 1;
        state.end(hold, true);
        self.dispatch(&mut state);
    }

    fn spawn(&self) -> Result<Worker, WorkerFailure> {
        let spawn_error = |e: io::Error| WorkerFailure::Spawn(e.to_string());
        let (socket, theirs) = UnixStream::pair().map_err(spawn_error)?;
        let mut command = Command::new(&self.settings.executable);
        command
            .arg(WORKER_ARG)
            .stdin(Stdio::from(OwnedFd::from(theirs.try_clone().map_err(spawn_error)?)))
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::inherit());
        // Best effort: without a slot (no memfd here), every frame goes through the socket.
        let slot = Slot::create()
            .inspect_err(|e| tracing::warn!(error = %e, "no shared slot for a worker; its calls use the socket"))
            .ok();
        if let Some(slot) = &slot {
            pass_slot(&mut command, slot);
        }
        let child = command
            .spawn()
            .map_err(|e| WorkerFailure::Spawn(format!("{}: {e}", self.settings.executable.display())))?;
        let mut worker = Worker {
            child,
            socket: io::BufReader::new(socket),
            slot,
            read_timeout: None,
            known: HashSet::new(),
            loads: 0,
            loads_checked: 0,
            spin: false,
            feed_pending: false,
            idle_since: Instant::now(),
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            runtime: self.runtime.clone(),
            memory_limit_bytes: self.settings.memory_limit_bytes,
            slot: worker.slot.is_some(),
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
    /// This checkout in the pool's books (whose it is, since when, what for).
    hold: u64,
    /// Always `Some` until released or dropped.
    worker: Option<Worker>,
}

impl PoolState {
    fn running_of(&self, plugin: &PluginName) -> usize {
        self.running.get(plugin).copied().unwrap_or(0)
    }

    fn stop_running(&mut self, plugin: &PluginName) {
        if let Some(running) = self.running.get_mut(plugin) {
            *running -= 1;
            if *running == 0 {
                self.running.remove(plugin);
            }
        }
    }

    /// Books a checkout for `plugin`; returns its id.
    fn begin(&mut self, plugin: &PluginName, purpose: Purpose) -> u64 {
        *self.running.entry(plugin.clone()).or_default() += 1;
        let id = self.next_hold;
        self.next_hold += 1;
        self.holds.push(Hold { id, plugin: plugin.clone(), purpose, since: Instant::now() });
        id
    }

    /// Ends the checkout `id`; with `record`, its worker time counts as its plugin's use (and
    /// a call's, as the time its calls take).
    fn end(&mut self, id: u64, record: bool) {
        let Some(position) = self.holds.iter().position(|hold| hold.id == id) else { return };
        let hold = self.holds.swap_remove(position);
        self.stop_running(&hold.plugin);
        if !record {
            return;
        }
        let now = Instant::now();
        let held = now.saturating_duration_since(hold.since);
        if self.usage.len() >= USAGE_CAPACITY && !self.usage.contains_key(&hold.plugin) {
            // Forget the plugins whose use has faded; their next calls start afresh.
            let running = &self.running;
            self.usage.retain(|plugin, usage| running.contains_key(plugin) || usage.seconds_at(now) > 0.001);
        }
        let usage = self.usage.entry(hold.plugin).or_insert(Usage { seconds: 0.0, at: now, mean_call: None });
        usage.seconds = usage.seconds_at(now) + held.as_secs_f64();
        usage.at = now;
        if hold.purpose == Purpose::Call {
            usage.mean_call = Some(usage.mean_call.map_or(held, |mean| mean * 3 / 4 + held / 4));
        }
    }

    /// `plugin`'s recent worker time, in seconds, its running holds included.
    fn usage_of(&self, plugin: &PluginName, now: Instant) -> f64 {
        let ended = self.usage.get(plugin).map_or(0.0, |usage| usage.seconds_at(now));
        let running: f64 = self
            .holds
            .iter()
            .filter(|hold| hold.plugin == *plugin)
            .map(|hold| now.saturating_duration_since(hold.since).as_secs_f64())
            .sum();
        ended + running
    }

    /// Whether a checkout of `plugin` for `purpose` is a long one: a stream, or a call of a
    /// plugin whose calls take `slow` or more (on average lately, or one running now).
    fn is_long(&self, plugin: &PluginName, purpose: Purpose, now: Instant, slow: Duration) -> bool {
        purpose == Purpose::Stream
            || self.usage.get(plugin).and_then(|usage| usage.mean_call).is_some_and(|mean| mean >= slow)
            || self.holds.iter().any(|hold| {
                hold.plugin == *plugin
                    && !matches!(hold.purpose, Purpose::Stream | Purpose::Lane)
                    && now.saturating_duration_since(hold.since) >= slow
            })
    }

    /// Workers held by long checkouts now.
    fn long_held(&self, now: Instant, slow: Duration) -> usize {
        self.holds
            .iter()
            .filter(|hold| {
                hold.purpose == Purpose::Stream
                    // A lane lives as long as quick calls keep coming; its age says nothing.
                    || (hold.purpose != Purpose::Lane && now.saturating_duration_since(hold.since) >= slow)
                    || self.usage.get(&hold.plugin).and_then(|usage| usage.mean_call).is_some_and(|mean| mean >= slow)
            })
            .count()
    }
}

impl PooledWorker {
    /// The call ended with a reply read in full: the worker is ready for the next one, unless
    /// it is due for replacement (see [`Worker::worn_out`]), in which case it is stopped now,
    /// idle, between calls, and the next checkout starts a fresh one.
    pub fn release(mut self) {
        if let Some(mut worker) = self.worker.take() {
            if worker.worn_out(&self.pool.settings) {
                tracing::info!(loads = worker.loads, "recycling a worker process");
                self.pool.discard(self.hold, worker);
            } else {
                self.pool.checkin(self.hold, worker);
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
            self.pool.discard(self.hold, worker);
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
    /// The memory this server shares with the worker for calls made one at a time while the
    /// machine is quiet (see `slot`).
    slot: Option<Slot>,
    /// The socket's read timeout as last set, so it is set only when it changes.
    read_timeout: Option<Duration>,
    /// Content hashes this worker has been sent (it may have evicted some since).
    known: HashSet<String>,
    /// Modules this worker has been sent to compile, in its life.
    loads: u32,
    /// `loads` when its memory was last looked at: it grows only with loads, so it is read
    /// again only after one.
    loads_checked: u32,
    /// Whether this call polls for the worker's answer before sleeping (see [`Pool::quiet`]).
    /// Under load (not set), a quick call is queued on a lane instead (see `lane`).
    pub(super) spin: bool,
    /// A stream chunk was sent whose answer has not been read yet (see [`Worker::feed_ahead`]).
    /// A worker in that state is never given back to the pool: what its socket holds next is
    /// not an answer anybody else expects.
    pub(super) feed_pending: bool,
    /// When this worker last went back to the pool.
    idle_since: Instant,
}

/// The largest output capacity of a stream fed ahead (see [`Worker::feed_ahead`]): an answer
/// this size fits in a Unix socket's buffer (about 208 KiB by default on Linux) with room to
/// spare.
pub(super) const FEED_AHEAD_MAX_OUTPUT: u32 = 32 * 1024;

/// A worker back in the pool for less than this is taken as alive without asking the kernel
/// (`waitid`: measured 0.7-0.9 µs, a tenth of a quick call through a worker). One killed from
/// outside sooner than that is found by the call it gets, which then goes to another worker
/// (see [`WorkerFailure::killed_from_outside`]); a worker dies idle of nothing else.
const ALIVE_IF_IDLE_UNDER: Duration = Duration::from_millis(10);

/// Time a worker gets beyond the call's deadline for the round trip itself.
pub(super) const RESPONSE_MARGIN: Duration = Duration::from_millis(20);
/// Time a worker gets to validate and compile a module (AOT: tens of milliseconds for a small
/// plugin, more for a large one; loaded from the disk cache when another worker compiled it).
const COMPILE_ALLOWANCE: Duration = Duration::from_secs(30);

/// A v1 call's result, how long its instance took to be ready, and how long the worker took
/// over the whole call.
pub(super) type CallResult = (Result<i32, RuntimeError>, Duration, Duration);

impl Worker {
    /// Whether to replace this worker: WasmEdge keeps the LLVM context of every AOT compilation
    /// (about 72 KB for a small plugin, more for larger ones, never freed; see ARCHITECTURE.md),
    /// so a worker that has compiled many versions grows
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

    /// Whether this idle worker can be handed out: not found dead (see [`ALIVE_IF_IDLE_UNDER`]).
    fn still_alive(&mut self) -> bool {
        self.idle_since.elapsed() < ALIVE_IF_IDLE_UNDER || matches!(self.child.try_wait(), Ok(None))
    }

    /// Runs one v1 call. The module travels only when this worker has not been sent it yet (or
    /// has evicted it); compiling it gets its own, generous allowance, the call itself only its
    /// deadline.
    pub fn call(&mut self, module: &CheckedModule, input: i32, timeout: Duration) -> Result<CallResult, WorkerFailure> {
        let run = Request::Run { content_hash: module.content_hash.clone(), input, linger: self.spin };
        match self.exchange_with_module(module, &run, &[], timeout)? {
            Err(load_failure) => Ok((Err(load_failure), Duration::ZERO, Duration::ZERO)),
            Ok((Reply::Done { result, instantiation, took }, _)) => Ok((result, instantiation, took)),
            Ok((other, _)) => Err(self.broken(Ok(other), timeout)),
        }
    }

    /// Calls a v2 function with `input` on a fresh instance; returns its output, and how long
    /// the worker took over the call.
    pub fn call_function(
        &mut self,
        module: &CheckedModule,
        function: &str,
        input: &[u8],
        config: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<(Result<Vec<u8>, RuntimeError>, Duration), WorkerFailure> {
        let call = Request::Call {
            content_hash: module.content_hash.clone(),
            function: function.to_owned(),
            linger: self.spin,
            config_len: config.map(|config| config.len() as u32),
        };
        match self.exchange_with_module(module, &call, &call_blob(input, config), timeout)? {
            Err(load_failure) => Ok((Err(load_failure), Duration::ZERO)),
            Ok((Reply::Output { result, took }, output)) => Ok((result.map(|()| output), took)),
            Ok((other, _)) => Err(self.broken(Ok(other), timeout)),
        }
    }

    /// Begins a v2 stream; the worker holds it until it is finished or another request comes.
    pub fn open_stream(
        &mut self,
        module: &CheckedModule,
        function: &str,
        config: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<Result<(), RuntimeError>, WorkerFailure> {
        let open = Request::StreamOpen {
            content_hash: module.content_hash.clone(),
            function: function.to_owned(),
            linger: self.spin,
            config: config.is_some(),
        };
        match self.exchange_with_module(module, &open, config.unwrap_or_default(), timeout)? {
            Err(load_failure) => Ok(Err(load_failure)),
            Ok(reply) => Ok(self.output(Ok(reply), timeout)?.map(drop)),
        }
    }

    /// Feeds the open stream one chunk; returns the output it produced.
    pub fn feed(&mut self, chunk: &[u8], timeout: Duration) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        let reply = self.exchange(&Request::StreamFeed { linger: self.spin }, chunk, timeout + RESPONSE_MARGIN);
        self.output(reply, timeout)
    }

    /// Feeds the open stream one chunk without waiting for its answer: sends it, then reads the
    /// answer to the chunk sent before (the first call returns no output). The worker works on
    /// one chunk while this thread fetches the next, instead of each waiting for the other.
    /// [`finish`](Self::finish) collects the last chunk's answer.
    ///
    /// Only for streams whose output capacity is at most [`FEED_AHEAD_MAX_OUTPUT`]: while this
    /// thread is writing a chunk it does not read, so the worker's answer must fit in the
    /// socket's buffer, or each would wait for the other forever.
    pub fn feed_ahead(
        &mut self,
        chunk: &[u8],
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        if let Err(e) = write_frame(self.socket.get_mut(), &Request::StreamFeed { linger: self.spin }, chunk) {
            return Err(self.broken(Err(e), timeout));
        }
        if !std::mem::replace(&mut self.feed_pending, true) {
            return Ok(Ok(Vec::new()));
        }
        let answer = self.receive(timeout + RESPONSE_MARGIN);
        let output = self.output(answer, timeout)?;
        if output.is_err() {
            // The worker ended the stream at that chunk, so it answers the one sent after it
            // with `StreamOver`: read that answer too, and the worker is ready for anyone.
            let answer = self.receive(timeout + RESPONSE_MARGIN);
            if self.output(answer, timeout)?.is_ok() {
                tracing::error!("worker fed a chunk to a stream it had ended");
                return Err(self.failure());
            }
            self.feed_pending = false;
        }
        Ok(output)
    }

    /// Ends the open stream; returns its final output (after the answer to a chunk fed ahead,
    /// if one is pending).
    pub fn finish(&mut self, timeout: Duration) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        let mut output = Vec::new();
        if std::mem::take(&mut self.feed_pending) {
            let answer = self.receive(timeout + RESPONSE_MARGIN);
            match self.output(answer, timeout)? {
                Ok(last_chunk) => output = last_chunk,
                failed => return Ok(failed),
            }
        }
        let reply = self.exchange(&Request::StreamFinish, &[], timeout + RESPONSE_MARGIN);
        Ok(self.output(reply, timeout)?.map(|end| {
            output.extend(end);
            output
        }))
    }

    /// The output of a v2 step, from its reply.
    fn output(
        &mut self,
        reply: io::Result<(Reply, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, RuntimeError>, WorkerFailure> {
        match reply {
            Ok((Reply::Output { result, .. }, output)) => Ok(result.map(|()| output)),
            other => Err(self.broken(other.map(|(reply, _)| reply), timeout)),
        }
    }

    /// Sends a module to compile and keep; the inner error is why it cannot (WasmEdge refused
    /// it, its memory is over the cap, compilation failed).
    pub fn load(&mut self, module: &CheckedModule) -> Result<Result<(), RuntimeError>, WorkerFailure> {
        let load = Request::Load { content_hash: module.content_hash.clone(), admission: module.admission.clone() };
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
        let frame = encode_frame(request, blob)?;
        if self.spin
            && self.socket.buffer().is_empty()
            && let Some(slot) = &self.slot
        {
            // Open for the answer before the request goes, so the worker can always answer
            // where it was asked.
            slot.open(Direction::ToServer);
            if slot.post(Direction::ToWorker, &frame) {
                return self.receive_from_slot(allowed);
            }
            // The worker was not polling its slot: the request goes through the socket, and
            // so does its answer. Nothing can be in the answers' box yet.
            if slot.close(Direction::ToServer)?.is_some() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "an answer in the slot before its request"));
            }
        }
        self.socket.get_mut().write_all(&frame)?;
        self.receive(allowed)
    }

    /// Reads the answer to a request that went through the slot: from the slot while the
    /// server polls it, then from the socket (where the worker answers once the server stopped
    /// polling, and where its end shows), waiting at most `allowed` there.
    fn receive_from_slot(&mut self, allowed: Duration) -> io::Result<(Reply, Vec<u8>)> {
        if let Some(slot) = &self.slot
            && let Some(answer) = slot.wait(Direction::ToServer, self.socket.get_ref().as_fd(), SPIN_BEFORE_SLEEP)?
        {
            return decode_frame(&answer);
        }
        self.receive(allowed)
    }

    /// Reads the worker's next answer, waiting at most `allowed`.
    fn receive(&mut self, allowed: Duration) -> io::Result<(Reply, Vec<u8>)> {
        if self.read_timeout != Some(allowed) {
            self.socket.get_ref().set_read_timeout(Some(allowed))?;
            self.read_timeout = Some(allowed);
        }
        if self.spin && self.socket.buffer().is_empty() {
            spin_until_readable(self.socket.get_ref().as_fd(), SPIN_BEFORE_SLEEP);
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

    /// Sends a request and the bytes that follow it without waiting for its answer (a lane's:
    /// see `lane`), when nothing is left unread from the last exchange. A lane keeps what it has
    /// sent and not had answered within `lane::SEND_BUDGET`, well below the socket's buffer,
    /// so the write never waits for the worker.
    pub(super) fn send(&mut self, request: &Request, blob: &[u8]) -> io::Result<()> {
        if !self.socket.buffer().is_empty() {
            return Err(io::Error::other("unread bytes from the last exchange"));
        }
        write_frame(self.socket.get_mut(), request, blob)
    }

    /// Another descriptor of the server's end of the socket, for reading answers without
    /// blocking (see `lane`).
    pub(super) fn socket_fd(&self) -> io::Result<OwnedFd> {
        self.socket.get_ref().as_fd().try_clone_to_owned()
    }

    /// Whether this worker was sent the module `content_hash` (it may have evicted it since).
    pub(super) fn knows(&self, content_hash: &str) -> bool {
        self.known.contains(content_hash)
    }

    /// Forgets that this worker holds `content_hash`: it answered that it does not.
    pub(super) fn forget(&mut self, content_hash: &str) {
        self.known.remove(content_hash);
    }

    /// The worker stopped talking: reap it and say how it ended. Its socket closes as it dies,
    /// so give it a moment to finish dying before deciding it has to be killed.
    pub(super) fn failure(&mut self) -> WorkerFailure {
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

/// Puts `slot`'s memory file at [`WORKER_SLOT_FD`] in the worker `command` starts, and nowhere
/// else: the file is close-on-exec here, so no other child (another worker, the compiler)
/// inherits a slot that is not its own.
#[allow(unsafe_code)]
fn pass_slot(command: &mut Command, slot: &Slot) {
    use std::os::{fd::AsRawFd, unix::process::CommandExt};
    let file = slot.file().as_raw_fd();
    let place = move || {
        // `dup2` onto itself would keep the close-on-exec flag, so that case clears it instead.
        // SAFETY: plain system calls on descriptors, async-signal-safe as `pre_exec` requires.
        let placed = unsafe {
            if file == WORKER_SLOT_FD { libc::fcntl(file, libc::F_SETFD, 0) } else { libc::dup2(file, WORKER_SLOT_FD) }
        };
        if placed == -1 { Err(io::Error::last_os_error()) } else { Ok(()) }
    };
    // SAFETY: the closure only makes the system calls above, which are safe between `fork` and
    // `exec` in a multi-threaded process, and touches no memory of the parent's.
    unsafe { command.pre_exec(place) };
}

/// A process's data segment (`VmData`: heap and private writable mappings, what RLIMIT_DATA
/// limits), in bytes.
fn data_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 =
        status.lines().find_map(|line| line.strip_prefix("VmData:"))?.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// What a v2 call sends after its header: the configuration, if any, then the input. The
/// configuration travels with every call: a worker keeps modules, not configurations, so a
/// changed one needs nothing invalidated.
pub(super) fn call_blob<'a>(input: &'a [u8], config: Option<&[u8]>) -> std::borrow::Cow<'a, [u8]> {
    match config {
        None => input.into(),
        Some(config) => [config, input].concat().into(),
    }
}
