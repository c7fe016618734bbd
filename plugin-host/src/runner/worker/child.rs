//! The worker process: runs plugins for the server, one request at a time.
//!
//! It is the host binary started with [`WORKER_ARG`]; it reads requests on stdin and answers on
//! stdout (both ends of one Unix socket), and exits when the server closes the socket. If a
//! plugin crashes WasmEdge, only this process dies; the server notices and starts another.

use std::{
    io::{self, BufReader, BufWriter, Write},
    num::NonZeroUsize,
    os::fd::AsFd,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use lru::LruCache;

use super::{
    protocol::{
        PROTOCOL_VERSION, Reply, Request, SPIN_BEFORE_SLEEP, decode_frame, encode_frame, read_frame,
        spin_until_readable, write_frame,
    },
    slot::{Direction, Slot, WORKER_SLOT_FD},
};
use crate::runtime::{CompiledPlugin, Engine, RuntimeError, StreamSession, Used};

/// The first argument that makes the host binary a worker.
pub const WORKER_ARG: &str = "__plugin-worker";

/// Compiled modules a worker keeps; the server resends any it has forgotten.
const MODULE_CACHE: usize = 64;

/// Serves requests from stdin until it closes.
pub fn run() -> anyhow::Result<()> {
    serve(BufReader::new(io::stdin().lock()), BufWriter::new(io::stdout().lock()))
}

fn serve(mut input: BufReader<io::StdinLock<'static>>, mut output: impl Write) -> anyhow::Result<()> {
    let (hello, _): (Request, _) = read_frame(&mut input).context("reading the server's hello")?;
    let Request::Hello { version, runtime, memory_limit_bytes, slot } = hello else {
        bail!("the server did not start with a hello");
    };
    if version != PROTOCOL_VERSION {
        // Say which version this worker speaks, so the server can report the mismatch.
        write_frame(&mut output, &Reply::Ready { version: PROTOCOL_VERSION }, &[])?;
        bail!("server speaks protocol {version}, this worker {PROTOCOL_VERSION}");
    }
    watch_parent();
    // Without its slot (it cannot be mapped here), this worker never opens a box, so the
    // server's frames all go through the socket: slower, never wrong.
    let slot = slot.then(adopt_slot).and_then(|adopted| {
        // One line on the stderr the worker shares with the server, as `run_if_worker` writes.
        adopted
            .inspect_err(|e| {
                let _ = writeln!(io::stderr(), "warning: the shared slot cannot be used, so the socket is: {e}");
            })
            .ok()
    });
    if let Some(limit) = memory_limit_bytes {
        // The last line of defence, enforced by the kernel: whatever WasmEdge or a plugin does,
        // this process cannot hold more heap and private writable memory than this. Not
        // RLIMIT_AS: WasmEdge reserves about 8 GiB of (inaccessible) address space per linear
        // memory as a guard region, which an address-space limit would count.
        rlimit::setrlimit(rlimit::Resource::DATA, limit, limit).context("setting the memory limit")?;
    }
    let engine = Engine::new(runtime)?;
    // Ready only once this worker can run plugins: a broken setup (an unusable AOT cache
    // folder, say) then fails the server's start-up instead of every request.
    write_frame(&mut output, &Reply::Ready { version: PROTOCOL_VERSION }, &[])?;
    let mut modules: LruCache<String, CompiledPlugin> =
        LruCache::new(NonZeroUsize::new(MODULE_CACHE).expect("non-zero"));
    // The open v2 stream, if any; every request but a feed or finish abandons it.
    let mut stream: Option<StreamSession> = None;
    // Whether the last request asked this worker to linger (see `Request::Run`).
    let mut linger = false;
    // Whether the slot's request box was opened when the last answer went (see below).
    let mut box_open = false;
    loop {
        // The server has CPU to spare and may well send the next call at once: polling for it
        // spares this CPU a sleep and a wake-up (see `spin_until_readable`), and the call comes
        // through the slot if this worker has one. A request already read from the socket goes
        // first, and then the box is closed (taking what came in it meanwhile, if anything).
        let mut from_slot = None;
        let socket = input.get_ref().as_fd();
        if let Some(slot) = slot.as_ref().filter(|_| std::mem::take(&mut box_open)) {
            from_slot = if input.buffer().is_empty() {
                slot.wait(Direction::ToWorker, socket, SPIN_BEFORE_SLEEP)?
            } else {
                slot.close(Direction::ToWorker)?
            };
        } else if linger && input.buffer().is_empty() {
            spin_until_readable(socket, SPIN_BEFORE_SLEEP);
        }
        let frame = match &from_slot {
            Some(bytes) => decode_frame::<Request>(bytes),
            None => read_frame::<Request>(&mut input),
        };
        let (request, blob) = match frame {
            Ok(frame) => frame,
            // The server closed the socket (or died, resetting it): it is shutting down or
            // replacing this worker. Nothing to report.
            Err(e) if matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset) => {
                return Ok(());
            }
            Err(e) => return Err(e).context("reading a request"),
        };
        let started = Instant::now();
        linger = matches!(
            request,
            Request::Run { linger: true, .. }
                | Request::Call { linger: true, .. }
                | Request::StreamOpen { linger: true, .. }
                | Request::StreamFeed { linger: true }
        );
        if !matches!(request, Request::StreamFeed { .. } | Request::StreamFinish) {
            stream = None;
        }
        // The instance a one-shot call used (v1 or v2), to be put back after the answer has gone.
        let mut used = None;
        let (reply, produced) = match request {
            Request::Hello { .. } => bail!("a second hello"),
            // The server admitted the module (size, ABI check); its verdict comes with it.
            Request::Load { content_hash, admission } => {
                match engine.compile_admitted(&blob, &content_hash, &admission) {
                    Ok(plugin) => {
                        modules.put(content_hash, plugin);
                        (Reply::Loaded, Vec::new())
                    }
                    Err(error) => (
                        Reply::Done { result: Err(error), instantiation: Duration::ZERO, took: Duration::ZERO },
                        Vec::new(),
                    ),
                }
            }
            Request::Run { content_hash, input, .. } => match modules.get(&content_hash) {
                None => (Reply::NeedModule, Vec::new()),
                Some(plugin) => {
                    let (reply, instance) = run_v1(plugin, input, started);
                    used = instance;
                    (reply, Vec::new())
                }
            },
            Request::Call { content_hash, function, config_len, .. } => match modules.get(&content_hash) {
                None => (Reply::NeedModule, Vec::new()),
                Some(plugin) => {
                    let split = config_len.map_or(0, |length| (length as usize).min(blob.len()));
                    let (config, input) = blob.split_at(split);
                    let (result, instance) =
                        plugin.call_function_reset_later(&function, input, config_len.map(|_| config));
                    used = instance;
                    output_reply(result, started)
                }
            },
            Request::StreamOpen { content_hash, function, config, .. } => match modules.get(&content_hash) {
                None => (Reply::NeedModule, Vec::new()),
                Some(plugin) => output_reply(
                    plugin.open_stream_configured(&function, config.then_some(&blob[..])).map(|opened| {
                        stream = Some(opened);
                        Vec::new()
                    }),
                    started,
                ),
            },
            Request::StreamFeed { .. } => {
                let fed = stream.as_mut().ok_or(RuntimeError::StreamOver).and_then(|open| open.feed(&blob));
                if fed.is_err() {
                    stream = None;
                }
                output_reply(fed, started)
            }
            Request::StreamFinish => {
                output_reply(stream.take().ok_or(RuntimeError::StreamOver).and_then(StreamSession::finish), started)
            }
        };
        // The answer goes back the way its request came: through the slot if the server still
        // polls it, else the socket (see `slot`).
        let answer = encode_frame(&reply, &produced)?;
        let answered_in_slot =
            from_slot.is_some() && slot.as_ref().is_some_and(|slot| slot.post(Direction::ToServer, &answer));
        if !answered_in_slot {
            output.write_all(&answer)?;
            output.flush()?;
        }
        // Open for the next request before the reset, so that one sent meanwhile waits in the
        // box rather than going through the socket.
        if linger && let Some(slot) = &slot {
            slot.open(Direction::ToWorker);
            box_open = true;
        }
        if let Some(used) = used {
            used.put_back();
        }
    }
}

/// The shared slot the server put at [`WORKER_SLOT_FD`] for this worker.
#[allow(unsafe_code)]
fn adopt_slot() -> io::Result<Slot> {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: the server's hello says it put the slot's memory file at this descriptor when it
    // started this process, and nothing else in this process opens or owns it; `adopt` checks
    // that it is the sealed memory file it should be.
    Slot::adopt(unsafe { OwnedFd::from_raw_fd(WORKER_SLOT_FD) })
}

/// Runs a v1 lifecycle on an instance in its fresh state; the request was read at `started`.
/// The instance comes back to be reset once the answer has gone: the server reads it
/// meanwhile.
fn run_v1(plugin: &CompiledPlugin, input: i32, started: Instant) -> (Reply, Option<Used>) {
    let (result, instantiation, used) = plugin.run_v1_reset_later(input);
    (Reply::Done { result, instantiation, took: started.elapsed() }, used)
}

/// A v2 step's reply, with the output as the frame's bytes; the step began at `started`.
fn output_reply(result: Result<Vec<u8>, RuntimeError>, started: Instant) -> (Reply, Vec<u8>) {
    let took = started.elapsed();
    match result {
        Ok(output) => (Reply::Output { result: Ok(()), took }, output),
        Err(error) => (Reply::Output { result: Err(error), took }, Vec::new()),
    }
}

/// Exits when the server goes away. Plugin code runs here without a timer of its own (the
/// server is the timer), so a worker whose server died mid-call would otherwise spin forever.
///
/// Polling, not `PR_SET_PDEATHSIG`: the kernel sends that signal when the *thread* that
/// started the worker exits, and workers are started from tokio's blocking threads, which exit
/// after a while idle; every worker would die with them.
fn watch_parent() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(1);
            }
        }
    });
}
