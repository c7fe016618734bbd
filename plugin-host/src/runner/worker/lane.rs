//! Lanes: quick calls (v1 runs and v2 function calls) queued on a busy worker, answered
//! without a thread waiting for each.
//!
//! Under load, a call that waits for its worker's answer on its own thread pays for two
//! sleeps and two wake-ups, one in each process, and those cost more than a small call itself
//! (the profile in BENCHMARKS.md). A lane instead writes the call to a worker that may still
//! be running the calls before it, and the async thread goes on with other requests; the
//! worker reads every request waiting in its socket in one go and runs them back to back, and
//! its answers come back through the async runtime's event loop, which a busy async thread
//! polls anyway. A worker with calls queued never sleeps between them, and neither does the
//! server: a burst of calls costs a wake-up each side, not two per call.
//!
//! What stays as it was, by construction:
//! - *Order gives the blame.* A worker answers its requests in order, one at a time, so when it
//!   dies or misses a deadline the call at the head of the lane is the one it was running. That
//!   call gets the error (and counts towards its plugin's quarantine); the calls queued behind it
//!   never started, and go the ordinary way to another worker, as if never queued.
//! - *Deadlines.* The head call's deadline runs from when the answer before it came (or it was
//!   queued, on an idle worker); past it, the worker is killed as a synchronous call's would be.
//! - *Fairness.* Only plugins whose recent calls were all quick ([`ShortCalls`]) and that the
//!   worker already holds are queued. A lane open for [`STEP_ASIDE`] takes no more calls once a
//!   call has waited that long for a worker ([`Pool`]), so its worker goes back to the pool,
//!   where calls of every kind are served fairly, within that time and the queued calls'.
//! - *Depth.* A lane takes [`DEPTH`] calls before the next quick call opens another lane on an
//!   idle worker; with no worker idle, quick calls queue deeper rather than wait in the pool
//!   (see [`Lanes::queue`]).
//!
//! Lanes open only under load: on a quiet machine the synchronous call with a moment of
//! polling is faster (see `Pool::quiet`), and a lane closes once its last answer is in.
//!
//! Lanes keep to the socket. Under load what a call through a worker cost was the sleeps and
//! wake-ups, which a lane removes; what is left of the socket is one small `write` per call and
//! a share of one `recv`, inside the profile's "worker round trip" row (BENCHMARKS.md): the most
//! a shared-memory ring could save here. Calls one at a time on a quiet machine, where the
//! socket round trip is most of a call's cost, go through the worker's shared slot instead
//! (see `slot`).

use std::{
    borrow::Cow,
    collections::VecDeque,
    io,
    os::fd::{AsFd, OwnedFd},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio::{io::unix::AsyncFd, sync::oneshot};

use super::{
    CheckedModule, WorkerFailure,
    pool::{Pool, PooledWorker, RESPONSE_MARGIN, call_blob},
    protocol::{Reply, Request, take_frame},
    quarantine::Quarantine,
};
use crate::{
    failure::FailureKind,
    observe::Observer,
    runner::{Attempt, Ran, RunError, ShortCalls},
    store::PluginRef,
};

/// Calls queued on one lane (the one running included) before a quick call opens another lane
/// on an idle worker, if there is one.
pub(super) const DEPTH: usize = 32;

/// How long a lane takes calls while other calls wait for a worker, and how long they wait
/// before it stops: then its worker goes back to the pool, where calls of any kind are handed
/// out fairly. The longest a call waits for a worker because of lanes.
pub(super) const STEP_ASIDE: Duration = Duration::from_millis(2);

/// Most bytes a lane has sent and not had answered, each frame counted with
/// [`FRAME_OVERHEAD`]: well below a Unix socket's send buffer (208 KiB by default on Linux,
/// which counts each write's bookkeeping too), so that writing a call to a busy worker never
/// waits for it. A call that does not fit goes to another lane or the ordinary way.
pub(super) const SEND_BUDGET: usize = 128 * 1024;

/// What a frame costs the socket's buffer besides its bytes (the kernel's bookkeeping for each
/// write, rounded up).
const FRAME_OVERHEAD: usize = 1024;

/// What a lane's calls need besides the worker: where their outcomes are recorded.
#[derive(Debug, Clone)]
pub(super) struct Books {
    pub observer: Arc<dyn Observer>,
    pub quarantine: Arc<Quarantine>,
    pub short_calls: Arc<ShortCalls>,
    pub pool: Arc<Pool>,
    /// The calls' deadline.
    pub timeout: Duration,
}

impl Books {
    /// A call of `plugin` was answered (not failed) after `took` in the worker.
    fn answered(&self, plugin: &PluginRef, took: Duration) {
        self.short_calls.record(&plugin.name, took);
        self.quarantine.record(&plugin.name, false);
    }
}

/// The lanes open now, and where their calls' outcomes go.
#[derive(Debug)]
pub(super) struct Lanes {
    open: Mutex<Vec<Arc<Lane>>>,
    books: Books,
}

/// What a lane's call asks the worker: a v1 [`Run`] or a v2 [`FunctionCall`].
pub(super) trait Work {
    /// What the call answers.
    type Output;
    /// The request, and the bytes that follow it.
    fn request(&self, content_hash: &str) -> (Request, Cow<'_, [u8]>);
    /// Where the answer goes, as a lane keeps it.
    fn answer(sender: oneshot::Sender<Attempt<Self::Output>>) -> Answer;
}

/// A v1 call: `init`, `process(input)`, `cleanup`.
pub(super) struct Run(pub i32);

impl Work for Run {
    type Output = i32;

    fn request(&self, content_hash: &str) -> (Request, Cow<'_, [u8]>) {
        (Request::Run { content_hash: content_hash.to_owned(), input: self.0, linger: false }, Cow::Borrowed(&[]))
    }

    fn answer(sender: oneshot::Sender<Attempt<i32>>) -> Answer {
        Answer::Run(sender)
    }
}

/// A v2 call of `function` with `input`, and the plugin's configuration if it has one.
#[derive(Clone, Copy)]
pub(super) struct FunctionCall<'a> {
    pub function: &'a str,
    pub input: &'a [u8],
    pub config: Option<&'a [u8]>,
}

impl Work for FunctionCall<'_> {
    type Output = Vec<u8>;

    fn request(&self, content_hash: &str) -> (Request, Cow<'_, [u8]>) {
        let request = Request::Call {
            content_hash: content_hash.to_owned(),
            function: self.function.to_owned(),
            linger: false,
            config_len: self.config.map(|config| config.len() as u32),
        };
        (request, call_blob(self.input, self.config))
    }

    fn answer(sender: oneshot::Sender<Attempt<Vec<u8>>>) -> Answer {
        Answer::Call(sender)
    }
}

/// Where a queued call's answer goes.
#[derive(Debug)]
pub(super) enum Answer {
    Run(oneshot::Sender<Attempt<i32>>),
    Call(oneshot::Sender<Attempt<Vec<u8>>>),
}

impl Answer {
    /// The call goes the ordinary way: it never started, or is to be tried again.
    /// (A caller that is gone no longer wants an answer: a failed send is nothing to report.)
    fn ordinary(self, plugin: PluginRef) {
        match self {
            Answer::Run(sender) => {
                let _ = sender.send(Attempt::Blocking(Some(plugin)));
            }
            Answer::Call(sender) => {
                let _ = sender.send(Attempt::Blocking(Some(plugin)));
            }
        }
    }

    /// The call failed with `error`.
    fn failed(self, error: RunError) {
        match self {
            Answer::Run(sender) => {
                let _ = sender.send(Attempt::Done(Err(error)));
            }
            Answer::Call(sender) => {
                let _ = sender.send(Attempt::Done(Err(error)));
            }
        }
    }
}

/// One worker's queue of calls.
#[derive(Debug)]
struct Lane {
    state: Mutex<LaneState>,
    /// The server's end of the worker's socket, as the async runtime watches it.
    answers: AsyncFd<OwnedFd>,
    opened: Instant,
}

#[derive(Debug)]
struct LaneState {
    /// `None` once the lane is closed: it takes no more calls.
    worker: Option<PooledWorker>,
    /// The calls sent and not answered yet, in the order sent.
    queued: VecDeque<Queued>,
    /// What they cost the socket's buffer (see [`SEND_BUDGET`]).
    unanswered: usize,
}

/// A call sent on a lane.
#[derive(Debug)]
struct Queued {
    plugin: PluginRef,
    sha256: Arc<str>,
    content_hash: String,
    answer: Answer,
    /// What its frame costs the socket's buffer until it is answered.
    cost: usize,
}

/// A call to queue: the module's current version as the catalog gave it, and the work.
pub(super) struct Call<'a, W> {
    pub plugin: PluginRef,
    pub sha256: Arc<str>,
    pub module: &'a CheckedModule,
    pub work: W,
}

impl Lanes {
    pub fn new(books: Books) -> Self {
        Lanes { open: Mutex::default(), books }
    }

    /// Where the lanes' calls record their outcomes.
    pub fn books(&self) -> &Books {
        &self.books
    }

    /// Queues `call` on an open lane whose worker holds its module: one with fewer than
    /// `depth` calls queued and room for it in its [`SEND_BUDGET`], the first found.
    pub fn queue<W: Work>(&self, call: &Call<'_, W>, depth: usize) -> Option<oneshot::Receiver<Attempt<W::Output>>> {
        let open = self.open.lock();
        if open.is_empty() {
            return None;
        }
        let books = &self.books;
        // Asked at most once, and only of a lane old enough to step aside.
        let mut others_wait = None;
        open.iter().find_map(|lane| {
            if lane.opened.elapsed() > STEP_ASIDE
                && *others_wait.get_or_insert_with(|| books.pool.kept_waiting(STEP_ASIDE))
            {
                return None;
            }
            let mut state = lane.state.lock();
            if state.queued.len() >= depth {
                return None;
            }
            let room = SEND_BUDGET.saturating_sub(state.unanswered);
            let worker = state.worker.as_mut().filter(|worker| worker.knows(&call.module.content_hash))?;
            let (queued, answer) = send(worker, call, room)?;
            books.observer.call_queued();
            state.unanswered += queued.cost;
            state.queued.push_back(queued);
            Some(answer)
        })
    }

    /// Opens a lane on `worker` (checked out for `call`'s plugin) with `call` as its first call,
    /// and starts reading its answers on the async runtime `runtime`. `Err` gives the worker
    /// back when the lane cannot open.
    pub fn open<W: Work>(
        self: &Arc<Self>,
        worker: PooledWorker,
        call: &Call<'_, W>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<oneshot::Receiver<Attempt<W::Output>>, Box<PooledWorker>> {
        let mut worker = worker;
        let answers = {
            // Registering with the event loop needs the runtime's context.
            let _entered = runtime.enter();
            match worker.socket_fd().and_then(register) {
                Ok(answers) => answers,
                Err(_) => return Err(Box::new(worker)),
            }
        };
        let Some((first, answer)) = send(&mut worker, call, SEND_BUDGET) else { return Err(Box::new(worker)) };
        self.books.pool.book_as_lane(&worker);
        self.books.observer.call_queued();
        let unanswered = first.cost;
        let lane = Arc::new(Lane {
            state: Mutex::new(LaneState { worker: Some(worker), queued: VecDeque::from([first]), unanswered }),
            answers,
            opened: Instant::now(),
        });
        self.open.lock().push(Arc::clone(&lane));
        runtime.spawn(serve(Arc::clone(self), lane));
        Ok(answer)
    }

    fn remove(&self, lane: &Arc<Lane>) {
        self.open.lock().retain(|open| !Arc::ptr_eq(open, lane));
    }
}

/// Watches `fd` on the current runtime's event loop.
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` owns `fd`, so it stays open and is the same descriptor for as long
    // as the `AsyncFd` lives, which is all `register` asks.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

/// Writes `call` to `worker` if its frame costs at most `room` (see [`SEND_BUDGET`]); returns
/// its place in the queue and where its answer will come.
fn send<W: Work>(
    worker: &mut PooledWorker,
    call: &Call<'_, W>,
    room: usize,
) -> Option<(Queued, oneshot::Receiver<Attempt<W::Output>>)> {
    let content_hash = &call.module.content_hash;
    let (request, blob) = call.work.request(content_hash);
    let cost = blob.len() + FRAME_OVERHEAD;
    if cost > room {
        return None;
    }
    worker.send(&request, &blob).ok()?;
    let (answer, receiver) = oneshot::channel();
    let queued = Queued {
        plugin: call.plugin.clone(),
        sha256: Arc::clone(&call.sha256),
        content_hash: content_hash.clone(),
        answer: W::answer(answer),
        cost,
    };
    Some((queued, receiver))
}

/// Reads a lane's answers and hands each to its call, until the lane is empty (the worker goes
/// back to the pool) or its worker fails (it is replaced).
async fn serve(lanes: Arc<Lanes>, lane: Arc<Lane>) {
    let _closing = CloseOnDrop { lanes: Arc::clone(&lanes), lane: Arc::clone(&lane) };
    let books = &lanes.books;
    let mut received = Vec::new();
    // When the call at the head of the lane started, as far as the server can tell: when it was
    // queued on an idle worker, or when the answer before it came.
    let mut head_started = Instant::now();
    loop {
        let deadline = head_started + books.timeout + RESPONSE_MARGIN;
        let reply = tokio::time::timeout_at(deadline.into(), next_reply(&lane.answers, &mut received)).await;
        let answered = Instant::now();
        let mut state = lane.state.lock();
        let outcome = match reply {
            Ok(Ok((reply, output))) => {
                let queued = state.queued.pop_front().expect("an answer comes only to a call sent");
                state.unanswered -= queued.cost;
                match settle(books, state.worker.as_mut(), queued, reply, output) {
                    Ok(()) => None,
                    Err(unanswered) => {
                        let (queued, reply) = *unanswered;
                        tracing::error!(?reply, "worker broke the protocol");
                        // The head call is the one the worker was on: it gets the failure.
                        state.queued.push_front(queued);
                        Some(Broken::Failed)
                    }
                }
            }
            Ok(Err(_)) => Some(Broken::Failed),
            Err(_) => Some(Broken::Late),
        };
        head_started = answered;
        match outcome {
            None if !state.queued.is_empty() => continue,
            // Empty: the worker goes back to the pool.
            None => {
                let worker = state.worker.take();
                drop(state);
                lanes.remove(&lane);
                if let Some(worker) = worker {
                    worker.release();
                }
                return;
            }
            Some(broken) => {
                let worker = state.worker.take().expect("an open lane has its worker");
                let queued = std::mem::take(&mut state.queued);
                drop(state);
                lanes.remove(&lane);
                // Reaping or killing the worker waits for the process: off the async thread.
                let lanes = Arc::clone(&lanes);
                tokio::task::spawn_blocking(move || fail(worker, queued, broken, &lanes.books));
                return;
            }
        }
    }
}

/// Hands `reply` (and the `output` that came with it) to `queued`, the call it answers, and
/// records how the call went; gives both back if `reply` is no answer to that call.
fn settle(
    books: &Books,
    worker: Option<&mut PooledWorker>,
    queued: Queued,
    reply: Reply,
    output: Vec<u8>,
) -> Result<(), Box<(Queued, Reply)>> {
    let Queued { plugin, sha256, content_hash, answer, cost } = queued;
    match (answer, reply) {
        // The worker evicted the module: the call goes the ordinary way, which sends it again.
        (answer, Reply::NeedModule) => {
            if let Some(worker) = worker {
                worker.forget(&content_hash);
            }
            answer.ordinary(plugin);
        }
        (Answer::Run(sender), Reply::Done { result, instantiation, took }) => {
            books.observer.instance_ready(instantiation);
            books.answered(&plugin, took);
            let ran = result.map(|output| Ran { output, plugin, sha256 }).map_err(RunError::from);
            let _ = sender.send(Attempt::Done(ran));
        }
        (Answer::Call(sender), Reply::Output { result, took }) => {
            books.answered(&plugin, took);
            let result = result.map_err(RunError::from);
            if matches!(&result, Err(error) if error.kind() == FailureKind::ConfigurationRefused) {
                // The catalog remembers a refused configuration on the ordinary path, which runs
                // the call again on a fresh instance: nothing of this one is seen.
                let _ = sender.send(Attempt::Blocking(Some(plugin)));
            } else {
                let _ = sender.send(Attempt::Done(result.map(|()| Ran { output, plugin, sha256 })));
            }
        }
        (answer, reply) => return Err(Box::new((Queued { plugin, sha256, content_hash, answer, cost }, reply))),
    }
    Ok(())
}

/// Closes a lane whose reader stopped without closing it (its runtime shut down), so that no
/// call is queued where nobody reads the answers: the worker, whose socket may still hold some,
/// is replaced, and the calls queued go the ordinary way (their answers' senders are dropped).
/// Once the reader has closed the lane, this does nothing.
struct CloseOnDrop {
    lanes: Arc<Lanes>,
    lane: Arc<Lane>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let (worker, queued) = {
            let mut state = self.lane.state.lock();
            (state.worker.take(), std::mem::take(&mut state.queued))
        };
        self.lanes.remove(&self.lane);
        drop(queued);
        // Dropped without being released: killed and replaced.
        drop(worker);
    }
}

/// How a lane's worker failed.
#[derive(Debug, Clone, Copy)]
enum Broken {
    /// It died, or answered something else than a call's answer.
    Failed,
    /// The head call ran past its deadline.
    Late,
}

/// Ends a lane whose worker failed: the head call gets the error, the calls behind it go the
/// ordinary way (they never started), and the worker is replaced.
fn fail(mut worker: PooledWorker, queued: VecDeque<Queued>, broken: Broken, books: &Books) {
    let failure = match broken {
        Broken::Failed => worker.failure(),
        Broken::Late => WorkerFailure::Unresponsive { deadline: books.timeout },
    };
    // Dropping the worker without releasing it kills and replaces it.
    drop(worker);
    let mut queued = queued.into_iter();
    if let Some(head) = queued.next() {
        let name = &head.plugin.name;
        if failure.killed_from_outside() {
            // Nobody's fault: tried once more, the ordinary way.
            tracing::warn!(plugin = %name, error = %failure, "worker killed from outside; trying the call on another");
            head.answer.ordinary(head.plugin);
        } else {
            tracing::error!(plugin = %name, error = %failure, "worker process failed; replacing it");
            books.quarantine.record_failure(name, &failure);
            head.answer.failed(failure.into());
        }
    }
    for behind in queued {
        behind.answer.ordinary(behind.plugin);
    }
}

/// The worker's next answer, read without blocking as its bytes arrive.
async fn next_reply(answers: &AsyncFd<OwnedFd>, received: &mut Vec<u8>) -> io::Result<(Reply, Vec<u8>)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(frame) = take_frame(received)? {
            return Ok(frame);
        }
        let mut ready = answers.readable().await?;
        // MSG_DONTWAIT rather than a non-blocking socket: the synchronous calls read the same
        // socket, blocking, once the lane has closed.
        let read = ready.try_io(|fd| {
            rustix::net::recv(fd.get_ref().as_fd(), &mut chunk, rustix::net::RecvFlags::DONTWAIT)
                .map(|(read, _)| read)
                .map_err(io::Error::from)
        });
        match read {
            Ok(Ok(0)) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(read)) => received.extend_from_slice(&chunk[..read]),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            // Not readable after all: `try_io` cleared the readiness; wait again.
            Err(_would_block) => {}
        }
    }
}
