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
//! The watchdog sleeps until the earliest deadline of the calls running, signals every call past
//! its deadline once, and sleeps until the next. A signal can reach its thread after that call
//! ended: the handler jumps only when the thread is inside the very call it was sent for (each
//! call has a number), and otherwise does nothing.
//!
//! Best effort: if the watchdog cannot start, [`within`] says so and the caller uses WasmEdge's
//! own timer.

use std::{
    cell::Cell,
    ptr,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering::SeqCst},
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
    /// The number of the last call signalled, so that each call is signalled once.
    signalled: AtomicU64,
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
            signalled: AtomicU64::new(0),
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
                    let call = entry.call.load(SeqCst);
                    if entry.signalled.swap(call, SeqCst) != call {
                        // SAFETY: the thread is alive (see above); the value is the call's number.
                        #[allow(unsafe_code)]
                        unsafe {
                            libc::pthread_sigqueue(
                                entry.thread,
                                deadline_signal(),
                                libc::sigval { sival_ptr: call as usize as *mut libc::c_void },
                            );
                        }
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
        let number = watched.call.load(SeqCst) + 1;
        watched.call.store(number, SeqCst);
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
/// still inside it. Only async-signal-safe work: two thread-local reads and the jump.
extern "C" fn on_deadline(_signal: libc::c_int, info: *mut libc::siginfo_t, _context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid `siginfo_t` to an `SA_SIGINFO` handler; the value is
    // the one `pthread_sigqueue` sent.
    #[allow(unsafe_code)]
    let call = unsafe { (*info).si_value().sival_ptr as usize as u64 };
    let jump = JUMP.get();
    if !jump.is_null() && CALL.get() == call {
        JUMP.set(ptr::null_mut());
        // SAFETY: `jump` was set by `run_or_jump` on this thread, whose frame is still live
        // (it clears the cell before it returns).
        #[allow(unsafe_code)]
        unsafe {
            siglongjmp(jump, 1);
        }
    }
}
