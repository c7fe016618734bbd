//! Deadlines for calls that run in this process: one watchdog thread for all of them, instead
//! of a POSIX timer per call.
//!
//! Why: `Vm::run_func_with_timeout` creates, arms and deletes a timer and saves the signal mask
//! around every call (`timer_create`, `timer_settime`, `timer_delete`, `rt_sigprocmask`: four
//! of the seven system calls an in-process request made). Here a call writes its deadline where
//! the watchdog can read it, and clears it when it returns: no system call, unless the watchdog
//! sleeps with nothing to watch (the first call after a quiet spell wakes it) or until a later
//! deadline than this call's.
//!
//! How a call is stopped is what `run_func_with_timeout` does: a signal to the thread running it,
//! whose handler jumps back to where the call began ([`siglongjmp`]), leaving WasmEdge's frames
//! behind. The instance is then abandoned, as before. The jump also leaves the few Rust frames of
//! `Vm::run_func` between here and WasmEdge (their small argument and result vectors are never
//! freed: a few dozen bytes per call stopped at its deadline).
//!
//! Safer than WasmEdge's timer in one respect: a jump out of code that holds a lock or is half
//! way through `malloc` would leave the lock held or the heap broken, so the handler jumps only
//! when the signal interrupted the plugin's own native code (its AOT artifact's executable
//! segments, recorded by [`watch_code`] when WasmEdge loads it), where neither can be. A call that
//! is past its deadline anywhere else (entering or leaving WasmEdge, in one of WasmEdge's helper
//! functions) is signalled again every [`RETRY`]; only after [`FORCE_AFTER`] past its deadline
//! does the handler jump wherever the call is, as WasmEdge's timer always does. Only calls into
//! native code whose addresses are known are watched here: the interpreter, and code not found
//! after loading, keep WasmEdge's timer.
//!
//! The watchdog sleeps until the earliest deadline of the calls running, signals every call past
//! its deadline, and sleeps until the next (or for [`RETRY`] while one is still running). A signal
//! can reach its thread after that call ended: the handler jumps only when the thread is inside
//! the very call it was sent for (each call has a number), and otherwise does nothing.
//!
//! Best effort: if the watchdog cannot start, [`within`] says so and the caller uses WasmEdge's
//! own timer.

use std::{
    cell::Cell,
    ffi::CStr,
    path::Path,
    ptr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{
            AtomicU64, AtomicUsize,
            Ordering::{Acquire, Relaxed, Release, SeqCst},
        },
    },
    thread::Thread,
    time::{Duration, Instant},
};

use setjmp::{sigjmp_buf, siglongjmp, sigsetjmp};

/// The signal the watchdog sends. wasmedge-sys's own timers use `SIGRTMIN` (plus its
/// `SIG_OFFSET`, unset here); two above it, so that neither handler sees the other's signals.
fn deadline_signal() -> i32 {
    libc::SIGRTMIN() + 2
}

/// How often a call past its deadline is signalled again while it runs outside its own code.
const RETRY: Duration = Duration::from_millis(1);
const RETRY_NANOS: u64 = RETRY.as_nanos() as u64;

/// How long past its deadline a call is stopped wherever it is.
const FORCE_AFTER: Duration = Duration::from_millis(250);
const FORCE_AFTER_NANOS: u64 = FORCE_AFTER.as_nanos() as u64;

/// How many signals said to stop a call wherever it was (for tests: a plugin's own loop never
/// needs one).
static FORCED_SIGNALS: AtomicU64 = AtomicU64::new(0);

/// Set in a signal's value when the handler must jump wherever the call is.
const FORCE: u64 = 1 << 63;

/// How many executable segments of plugins' native code are recorded; past that, a newly loaded
/// plugin keeps WasmEdge's timer.
const MAX_CODE_RANGES: usize = 4096;

/// The executable segments of plugins' native code, `[start, end)`, read by the signal handler
/// (atomics: it can take no lock). Never removed: an unloaded artifact's range can only be
/// reused by another plugin's code, because everything else a calling thread runs (this
/// program, libc, WasmEdge) was mapped before any plugin.
static CODE: [[AtomicUsize; 2]; MAX_CODE_RANGES] =
    [const { [AtomicUsize::new(0), AtomicUsize::new(0)] }; MAX_CODE_RANGES];
static CODE_RANGES: AtomicUsize = AtomicUsize::new(0);
static CODE_WRITER: Mutex<()> = Mutex::new(());

/// Records where WasmEdge mapped the native code of `artifact` (an AOT artifact it loaded), so
/// that calls into it can be stopped by the watchdog. `false` if it is not mapped or there is no
/// room: its calls keep WasmEdge's timer.
pub(super) fn watch_code(artifact: &Path) -> bool {
    let ranges = executable_segments(artifact);
    if ranges.is_empty() {
        return false;
    }
    let _writer = CODE_WRITER.lock().unwrap_or_else(|e| e.into_inner());
    let known = CODE_RANGES.load(Acquire);
    let new: Vec<_> = ranges
        .into_iter()
        .filter(|&(start, end)| !CODE[..known].iter().any(|r| r[0].load(Relaxed) == start && r[1].load(Relaxed) == end))
        .collect();
    if known + new.len() > MAX_CODE_RANGES {
        return false;
    }
    for (slot, (start, end)) in CODE[known..].iter().zip(&new) {
        slot[0].store(*start, Relaxed);
        slot[1].store(*end, Relaxed);
    }
    CODE_RANGES.store(known + new.len(), Release);
    true
}

/// Whether `address` is in plugins' native code. Async-signal-safe.
fn in_plugin_code(address: usize) -> bool {
    let known = CODE_RANGES.load(Acquire);
    CODE[..known].iter().any(|r| r[0].load(Relaxed) <= address && address < r[1].load(Relaxed))
}

/// The executable segments, `[start, end)`, of the loaded object whose path is `path`.
fn executable_segments(path: &Path) -> Vec<(usize, usize)> {
    struct Search<'a> {
        path: &'a [u8],
        found: Vec<(usize, usize)>,
    }
    extern "C" fn visit(info: *mut libc::dl_phdr_info, _size: libc::size_t, data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `info` for each loaded object, and `data` is
        // the `Search` below, alive for the whole iteration.
        #[allow(unsafe_code)]
        unsafe {
            let (info, search) = (&*info, &mut *data.cast::<Search>());
            if info.dlpi_name.is_null() || CStr::from_ptr(info.dlpi_name).to_bytes() != search.path {
                return 0;
            }
            for header in std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) {
                if header.p_type == libc::PT_LOAD && header.p_flags & libc::PF_X != 0 {
                    let start = info.dlpi_addr as usize + header.p_vaddr as usize;
                    search.found.push((start, start + header.p_memsz as usize));
                }
            }
            1
        }
    }
    use std::os::unix::ffi::OsStrExt;
    let mut search = Search { path: path.as_os_str().as_bytes(), found: Vec::new() };
    // SAFETY: `visit` only reads what it is given and writes into `search`.
    #[allow(unsafe_code)]
    unsafe {
        libc::dl_iterate_phdr(Some(visit), (&raw mut search).cast());
    }
    search.found
}

thread_local! {
    // Read by the signal handler: plain cells with constant initialisers and nothing to drop,
    // so reading them there neither allocates nor registers a destructor.
    /// Where the call running on this thread jumps back to when it is stopped; null outside a call.
    static JUMP: Cell<*mut sigjmp_buf> = const { Cell::new(ptr::null_mut()) };
    /// The number of the call running on this thread (or of its last one).
    static CALL: Cell<u64> = const { Cell::new(0) };

    /// This thread's entry in the watchdog's list, removed when the thread exits.
    static ENTRY: Option<Entry> = Watchdog::get().map(Watchdog::enter);
}

/// Who stops a plugin's calls at their deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keeper {
    /// A supervisor outside this process: a worker's server kills it (see
    /// [`RuntimeConfig::external_deadline`](super::RuntimeConfig::external_deadline)).
    External,
    /// This process's watchdog, for native code whose addresses [`watch_code`] recorded.
    Watchdog,
    /// A POSIX timer per call, WasmEdge's own: the interpreter, and native code not recorded.
    Timer,
}

/// Runs `call` (a call into WasmEdge) on this thread with `deadline`. `None` if the watchdog is
/// not running (the caller then uses WasmEdge's timer); `Some(None)` if the call was stopped
/// at its deadline.
pub(super) fn within<T>(deadline: Instant, call: impl FnOnce() -> T) -> Option<Option<T>> {
    ENTRY.with(|entry| entry.as_ref().map(|entry| entry.run(deadline, call)))
}

/// The process's watchdog: the threads that make calls, and what it sleeps until.
struct Watchdog {
    watched: Mutex<Vec<Arc<Watched>>>,
    /// When the watchdog wakes next on its own (nanoseconds since [`Watchdog::epoch`]);
    /// `u64::MAX` while it sleeps with nothing to watch.
    wakes_at: AtomicU64,
    thread: Thread,
    epoch: Instant,
}

/// One thread that makes calls, as the watchdog sees it.
struct Watched {
    thread: libc::pthread_t,
    /// The deadline of the call running on the thread (nanoseconds since the epoch), 0 for none.
    deadline: AtomicU64,
    /// The number of that call.
    call: AtomicU64,
}

/// A thread's registration with the watchdog.
struct Entry {
    watched: Arc<Watched>,
    watchdog: &'static Watchdog,
}

impl Watchdog {
    /// The watchdog, started (and the signal handler installed) on first use.
    fn get() -> Option<&'static Watchdog> {
        static WATCHDOG: OnceLock<Option<&'static Watchdog>> = OnceLock::new();
        *WATCHDOG.get_or_init(Watchdog::start)
    }

    fn start() -> Option<&'static Watchdog> {
        // SAFETY: a plain `sigaction` for a real-time signal nothing else in this process uses;
        // the handler only reads thread-local cells and jumps (see `on_deadline`).
        #[allow(unsafe_code)]
        let installed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_deadline as *const () as usize;
            // NODEFER: the handler leaves by a jump that does not restore the signal mask, so
            // the signal must not be blocked while it runs.
            action.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(deadline_signal(), &action, ptr::null_mut()) == 0
        };
        if !installed {
            tracing::warn!("could not install the deadline signal's handler; calls use a timer each");
            return None;
        }
        let (sender, receiver) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new().name("plugin-deadlines".into()).spawn(move || {
            let watchdog: &'static Watchdog = Box::leak(Box::new(Watchdog {
                watched: Mutex::new(Vec::new()),
                wakes_at: AtomicU64::new(u64::MAX),
                thread: std::thread::current(),
                epoch: Instant::now(),
            }));
            let _ = sender.send(watchdog);
            watchdog.watch();
        });
        match spawned.ok().and_then(|_| receiver.recv().ok()) {
            Some(watchdog) => Some(watchdog),
            None => {
                tracing::warn!("could not start the deadline watchdog; calls use a timer each");
                None
            }
        }
    }

    fn enter(&'static self) -> Entry {
        let watched = Arc::new(Watched {
            // SAFETY: no preconditions.
            #[allow(unsafe_code)]
            thread: unsafe { libc::pthread_self() },
            deadline: AtomicU64::new(0),
            call: AtomicU64::new(0),
        });
        self.watched.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::clone(&watched));
        Entry { watched, watchdog: self }
    }

    fn nanos(&self, at: Instant) -> u64 {
        // Never 0, which means "no call".
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX - 1).max(1)
    }

    /// The watchdog's loop: signal the calls past their deadlines, sleep until the next one.
    fn watch(&self) {
        loop {
            // Said before looking, so that a call that starts meanwhile either is seen below or
            // sees that the watchdog is about to sleep for good, and wakes it.
            self.wakes_at.store(u64::MAX, SeqCst);
            let now = self.nanos(Instant::now());
            let mut next = u64::MAX;
            {
                // The lock also keeps every listed thread alive while it is signalled: a thread
                // leaves the list (on exit) under it.
                let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
                for entry in watched.iter() {
                    let deadline = entry.deadline.load(SeqCst);
                    if deadline == 0 {
                        continue;
                    }
                    if deadline > now {
                        next = next.min(deadline);
                        continue;
                    }
                    // Again after `RETRY`, until the call ends.
                    next = next.min(now.saturating_add(RETRY_NANOS));
                    let forced = if now - deadline >= FORCE_AFTER_NANOS {
                        FORCED_SIGNALS.fetch_add(1, Relaxed);
                        FORCE
                    } else {
                        0
                    };
                    let value = entry.call.load(SeqCst) | forced;
                    // SAFETY: the thread is alive (see above); the value is the call's number.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::pthread_sigqueue(
                            entry.thread,
                            deadline_signal(),
                            libc::sigval { sival_ptr: value as usize as *mut libc::c_void },
                        );
                    }
                }
            }
            if next == u64::MAX {
                std::thread::park();
            } else {
                self.wakes_at.store(next, SeqCst);
                std::thread::park_timeout(Duration::from_nanos(next.saturating_sub(now)));
            }
        }
    }
}

impl Entry {
    fn run<T>(&self, deadline: Instant, call: impl FnOnce() -> T) -> Option<T> {
        let mut jump = std::mem::MaybeUninit::<sigjmp_buf>::uninit();
        let outcome = run_or_jump(jump.as_mut_ptr(), || self.start(deadline), call);
        self.watched.deadline.store(0, SeqCst);
        outcome
    }

    /// Shows the watchdog a new call with `deadline`, waking it if it would sleep past it.
    fn start(&self, deadline: Instant) {
        let watched = &self.watched;
        // Only this thread writes its entry's number.
        let number = watched.call.fetch_add(1, SeqCst) + 1;
        CALL.set(number);
        let deadline = self.watchdog.nanos(deadline);
        watched.deadline.store(deadline, SeqCst);
        if self.watchdog.wakes_at.load(SeqCst) > deadline {
            self.watchdog.thread.unpark();
        }
    }
}

/// Runs `start`, then `call`, with `jump` set as where the deadline signal's handler leaves
/// `call` for: `None` if it did. `start` shows the watchdog the deadline only once the jump is
/// set, so a signal always finds it. Kept small and apart: after the second return from
/// `sigsetjmp` nothing here reads a value that changed after the first.
#[inline(never)]
#[allow(unsafe_code)]
fn run_or_jump<T>(jump: *mut sigjmp_buf, start: impl FnOnce(), call: impl FnOnce() -> T) -> Option<T> {
    // SAFETY: `jump` lives in the caller's frame for the whole call. `sigsetjmp` returns twice:
    // 0 now, and 1 when the handler jumps back here from inside `call` (only WasmEdge's frames
    // and the few of `Vm::run_func` around them are left behind; see the module's comment).
    // Signal mask not saved (no system call): the handler runs with the signal unblocked.
    if unsafe { sigsetjmp(jump, 0) } == 0 {
        JUMP.set(jump);
        start();
        let output = call();
        JUMP.set(ptr::null_mut());
        Some(output)
    } else {
        JUMP.set(ptr::null_mut());
        None
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut watched = self.watchdog.watched.lock().unwrap_or_else(|e| e.into_inner());
        watched.retain(|entry| !Arc::ptr_eq(entry, &self.watched));
    }
}

/// The deadline signal's handler: jumps out of the call it was sent for, if this thread is
/// still inside it and was interrupted in the plugin's own code (or the signal says to force
/// it). Only async-signal-safe work: thread-local and atomic reads, and the jump.
extern "C" fn on_deadline(_signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler; the value is
    // the one `pthread_sigqueue` sent.
    #[allow(unsafe_code)]
    let value = unsafe { (*info).si_value().sival_ptr as usize as u64 };
    let jump = JUMP.get();
    if jump.is_null() || CALL.get() != value & !FORCE {
        return;
    }
    if value & FORCE != 0 || interrupted_at(context).is_none_or(in_plugin_code) {
        JUMP.set(ptr::null_mut());
        // SAFETY: `jump` was set by `run_or_jump` on this thread, whose frame is still live
        // (it clears the cell before it returns).
        #[allow(unsafe_code)]
        unsafe {
            siglongjmp(jump, 1);
        }
    }
}

/// Where the interrupted code was, from a signal handler's context; `None` on an architecture
/// this does not know (the handler then behaves as WasmEdge's timer does).
#[allow(unsafe_code, unused_variables)]
fn interrupted_at(context: *mut libc::c_void) -> Option<usize> {
    let context = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid `ucontext_t` to an `SA_SIGINFO` handler.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    return Some(unsafe { (*context).uc_mcontext.gregs[libc::REG_RIP as usize] } as usize);
    // SAFETY: as above.
    #[cfg(all(target_os = "linux", target_arch = "aarch64"))]
    return Some(unsafe { (*context).uc_mcontext.pc } as usize);
    #[allow(unreachable_code)]
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Engine, ExecutionMode, RuntimeConfig, RuntimeError, content_hash};

    fn looping_plugin(engine: &Engine) -> crate::runtime::CompiledPlugin {
        let wasm = wat::parse_str(
            r#"(module (memory (export "memory") 1)
                (func (export "init") (result i32) i32.const 0)
                (func (export "process") (param $input i32) (result i32)
                    (if (i32.eqz (local.get $input)) (then (loop br 0))) local.get $input)
                (func (export "cleanup") (result i32) i32.const 0))"#,
        )
        .unwrap();
        engine.compile(&wasm, &content_hash(&wasm)).unwrap()
    }

    #[test]
    fn native_code_is_watched_and_a_loop_in_it_is_stopped_where_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RuntimeConfig {
            aot_cache_dir: Some(dir.path().join("aot")),
            enforce_abi: false,
            ..RuntimeConfig::new(ExecutionMode::Aot)
        };
        config.limits.call_timeout = Duration::from_millis(30);
        let plugin = looping_plugin(&Engine::new(config.clone()).unwrap());
        assert_eq!(plugin.keeper, Keeper::Watchdog, "the artifact's code was found where WasmEdge mapped it");
        for _ in 0..5 {
            let started = Instant::now();
            let error = plugin.call(0).unwrap_err();
            assert!(matches!(error, RuntimeError::Timeout { .. }), "{error:?}");
            assert!(started.elapsed() >= Duration::from_millis(30), "not before the deadline");
            assert_eq!(plugin.call(7).unwrap(), 7, "the next call works");
        }
        assert_eq!(FORCED_SIGNALS.load(Relaxed), 0, "every stop happened inside the plugin's own code");

        // The interpreter and workers keep their own keepers.
        let interpreted =
            looping_plugin(&Engine::new(RuntimeConfig { mode: ExecutionMode::Interpreter, ..config.clone() }).unwrap());
        assert_eq!(interpreted.keeper, Keeper::Timer);
        assert!(matches!(interpreted.call(0), Err(RuntimeError::Timeout { .. })));
        let external = looping_plugin(&Engine::new(RuntimeConfig { external_deadline: true, ..config }).unwrap());
        assert_eq!(external.keeper, Keeper::External);
    }

    /// With a plugin's code recorded, its addresses are plugin code and the host's are not.
    #[test]
    fn only_recorded_segments_are_plugin_code() {
        let dir = tempfile::tempdir().unwrap();
        let config = RuntimeConfig {
            aot_cache_dir: Some(dir.path().join("aot")),
            enforce_abi: false,
            ..RuntimeConfig::new(ExecutionMode::Aot)
        };
        assert_eq!(looping_plugin(&Engine::new(config).unwrap()).keeper, Keeper::Watchdog);
        let known = CODE_RANGES.load(Acquire);
        assert!(known > 0, "the artifact's executable segments are recorded");
        let (start, end) = (CODE[0][0].load(Relaxed), CODE[0][1].load(Relaxed));
        assert!(in_plugin_code(start) && in_plugin_code(end - 1) && !in_plugin_code(end));
        let here = only_recorded_segments_are_plugin_code as *const () as usize;
        assert!(!in_plugin_code(here), "this program's own code");
        assert!(!in_plugin_code(libc::malloc as *const () as usize), "libc");
        assert!(executable_segments(Path::new("/no/such/artifact.so")).is_empty());
    }
}
