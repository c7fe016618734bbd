//! Round trips between a parent and a forked child: over a Unix socket pair, and through two
//! counters in a shared `memfd` mapping with futex wake-ups. Prints, per transport and waiting
//! style, the wall time and the CPU time (both processes) per round trip.
//!
//! The socket side waits the way the host's worker protocol does (`spin_until_readable`: poll
//! with a zero timeout, `sched_yield` between polls, for at most 60 µs, then a blocking read);
//! the futex side polls its counter the same way, then sleeps in `FUTEX_WAIT`.

use std::{
    io::{Read, Write},
    os::{fd::FromRawFd, unix::net::UnixStream},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

/// The host's `SPIN_BEFORE_SLEEP`.
const POLL_BUDGET: Duration = Duration::from_micros(60);
const ROUND_TRIPS: u32 = 100_000;
const REPEATS: usize = 3;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    Socket,
    Futex,
}

fn main() {
    for repeat in 1..=REPEATS {
        for transport in [Transport::Socket, Transport::Futex] {
            for poll in [false, true] {
                let (wall, cpu) = measure(transport, poll);
                println!(
                    "run {repeat}: {:6} {:8}: {wall:6.2} µs per round trip, {cpu:6.2} µs of CPU per round trip",
                    if transport == Transport::Socket { "socket" } else { "futex" },
                    if poll { "polling" } else { "blocking" },
                );
            }
        }
    }
}

/// Wall time and CPU time (parent and child) per round trip, in µs.
#[allow(unsafe_code)]
fn measure(transport: Transport, poll: bool) -> (f64, f64) {
    // SAFETY: plain system calls on descriptors and a mapping this function creates; the child
    // only uses what it inherits and leaves with `_exit`.
    unsafe {
        let memfd = libc::memfd_create(c"roundtrip".as_ptr(), 0);
        assert!(memfd >= 0 && libc::ftruncate(memfd, 4096) == 0);
        let base =
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, memfd, 0);
        assert_ne!(base, libc::MAP_FAILED);
        // The request counter and the answer counter, on separate cache lines.
        let words = std::slice::from_raw_parts(base as *const AtomicU32, 32);
        let (request, answer) = (&words[0], &words[16]);
        let mut fds = [0; 2];
        assert_eq!(libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()), 0);
        let cpu_before = cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN);
        let child = libc::fork();
        assert!(child >= 0);
        if child == 0 {
            let mut socket = UnixStream::from_raw_fd(fds[1]);
            let mut frame = [0u8; 16];
            for i in 1..=ROUND_TRIPS {
                match transport {
                    Transport::Socket => {
                        wait_readable(fds[1], poll);
                        socket.read_exact(&mut frame).unwrap();
                        socket.write_all(&frame).unwrap();
                    }
                    Transport::Futex => {
                        wait_change(request, i - 1, poll);
                        answer.store(i, Ordering::Release);
                        futex_wake(answer);
                    }
                }
            }
            libc::_exit(0);
        }
        let mut socket = UnixStream::from_raw_fd(fds[0]);
        let mut frame = [0u8; 16];
        let started = Instant::now();
        for i in 1..=ROUND_TRIPS {
            match transport {
                Transport::Socket => {
                    socket.write_all(&frame).unwrap();
                    wait_readable(fds[0], poll);
                    socket.read_exact(&mut frame).unwrap();
                }
                Transport::Futex => {
                    request.store(i, Ordering::Release);
                    futex_wake(request);
                    wait_change(answer, i - 1, poll);
                }
            }
        }
        let wall = started.elapsed();
        let mut status = 0;
        assert_eq!(libc::waitpid(child, &mut status, 0), child);
        let cpu = cpu_seconds(libc::RUSAGE_SELF) + cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before;
        libc::munmap(base, 4096);
        libc::close(memfd);
        let per = |seconds: f64| seconds * 1e6 / f64::from(ROUND_TRIPS);
        (per(wall.as_secs_f64()), per(cpu))
    }
}

#[allow(unsafe_code)]
fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: `getrusage` fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Polls `fd` for up to [`POLL_BUDGET`] if `poll`; the read that follows blocks if need be.
#[allow(unsafe_code)]
fn wait_readable(fd: i32, poll: bool) {
    let started = Instant::now();
    let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid `pollfd`.
    while poll && unsafe { libc::poll(&mut pollfd, 1, 0) } == 0 && started.elapsed() < POLL_BUDGET {
        std::thread::yield_now();
    }
}

/// Waits until `word` is no longer `old`: polling for up to [`POLL_BUDGET`] if `poll`, then
/// sleeping in `FUTEX_WAIT`.
fn wait_change(word: &AtomicU32, old: u32, poll: bool) {
    let started = Instant::now();
    while poll && word.load(Ordering::Acquire) == old && started.elapsed() < POLL_BUDGET {
        std::thread::yield_now();
    }
    while word.load(Ordering::Acquire) == old {
        futex(word, libc::FUTEX_WAIT, old);
    }
}

fn futex_wake(word: &AtomicU32) {
    futex(word, libc::FUTEX_WAKE, 1);
}

#[allow(unsafe_code)]
fn futex(word: &AtomicU32, op: i32, value: u32) {
    // SAFETY: `word` is a live, aligned 32-bit word in shared memory; no timeout.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, value, std::ptr::null::<libc::timespec>()) };
}
