//! The slot: a call and its answer through memory shared with the worker, for calls made one at
//! a time on a quiet machine.
//!
//! On a quiet machine both sides of a worker call poll for the other's next frame rather than
//! sleep (see `spin_until_readable`), so what a call costs beyond running the plugin is the
//! socket: a `write` and a `read` each way and the polls between, about 4.5 µs a round trip
//! against 0.4 µs through shared memory (`bench/transport-roundtrip`, in BENCHMARKS.md). The
//! slot carries the same frames as the socket, so everything about them (their format, the
//! fuzz target, the checks on what a worker says) stays as it was; only the transport changes.
//!
//! The slot holds two boxes, one for each direction. A box is *closed* unless its reader is
//! polling it: the reader opens it before it polls and closes it before it sleeps on the
//! socket instead, and a writer puts a frame in only an open box (one atomic swap from open to
//! full), else it writes to the socket. So a frame is never left in a box nobody watches, and a
//! sleeping side is always woken by the socket, as before the slot existed. An answer goes
//! through the slot only when its request came through it, so answers never overtake each
//! other (streams fed ahead and lanes keep to the socket).
//!
//! What stays as it was, by construction:
//! - *Crashes.* A worker that dies closes its socket; the server polls the socket between
//!   looks at the box, and closes the box when the socket wakes.
//! - *Deadlines.* The server polls the box only for [`super::protocol::SPIN_BEFORE_SLEEP`],
//!   then closes it and waits on the socket with the call's deadline, as before.
//! - *A hostile worker* can write anything into the slot at any time. The server copies a
//!   frame out of the box before decoding it, bounds its length by the box, and treats a box
//!   in no state it put it in as a broken protocol (the worker is replaced). The memory file is
//!   sealed against shrinking, so no write of the worker's can make the server's mapping fault.
//!   The server writes into the request box only between the worker's answer and its next
//!   request: a worker that races those writes changes only what it reads itself.

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use rustix::{
    event::{PollFd, PollFlags, Timespec, poll},
    fs::{MemfdFlags, SealFlags},
    mm::{MapFlags, ProtFlags},
};

/// The descriptor a worker finds its slot's memory file at (the server puts it there when it
/// starts the worker).
pub const WORKER_SLOT_FD: i32 = 3;

/// Largest frame a box holds; bigger frames (a module, a large v2 input or output) go through
/// the socket.
pub const BOX_BYTES: usize = 32 * 1024;

/// The boxes' states and lengths, each box on a cache line of its own, then the boxes' bytes.
const CONTROL_BYTES: usize = 4096;
const SLOT_BYTES: usize = CONTROL_BYTES + 2 * BOX_BYTES;

/// Nobody polls the box: frames go through the socket.
const CLOSED: u32 = 0;
/// The reader polls the box: a writer may put a frame in.
const OPEN: u32 = 1;
/// A frame is in the box, for the reader to take (which closes it).
const FULL: u32 = 2;

/// Looks at the box this many times between looks at the clock.
const LOOKS_PER_CLOCK: u32 = 64;

/// Which way a box carries frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Requests, from the server to the worker.
    ToWorker,
    /// Answers, from the worker to the server.
    ToServer,
}

impl Direction {
    fn index(self) -> usize {
        match self {
            Direction::ToWorker => 0,
            Direction::ToServer => 1,
        }
    }

    /// How often the reader polling this box also polls the socket (a system call, during
    /// which it does not see the box) and offers its CPU to other threads. A worker's requests
    /// come through the socket too (lanes, streams fed ahead), so it looks there often; the
    /// server's socket only tells it that the worker died. Measured (criterion, `hello`
    /// through a worker, both sides alike): every 1 µs 8.0 µs a call, every 5 µs 6.9 µs,
    /// every 20 µs 7.0 µs; streams fed ahead through a worker polling every 5 µs were 6%
    /// slower (132 against 140 MiB/s of SHA-256).
    fn poll_every(self) -> Duration {
        match self {
            Direction::ToWorker => Duration::from_micros(1),
            Direction::ToServer => Duration::from_micros(5),
        }
    }
}

/// One worker's slot, mapped into this process.
#[derive(Debug)]
pub struct Slot {
    memory: NonNull<u8>,
    file: OwnedFd,
}

// SAFETY: the slot is a mapping of shared memory that only atomics and byte copies touch; it
// is no more bound to a thread than the memory file it maps.
#[allow(unsafe_code)]
unsafe impl Send for Slot {}

impl Slot {
    /// A new slot for a worker about to start: a memory file sealed at its size, mapped here.
    pub fn create() -> io::Result<Slot> {
        let file = rustix::fs::memfd_create("plugin-worker-slot", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        rustix::fs::ftruncate(&file, SLOT_BYTES as u64)?;
        rustix::fs::fcntl_add_seals(&file, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        Slot::map(file)
    }

    /// The slot the server made for this worker, from its memory file (see [`WORKER_SLOT_FD`]):
    /// refused unless it is sealed at the size both sides expect.
    pub fn adopt(file: OwnedFd) -> io::Result<Slot> {
        let seals = rustix::fs::fcntl_get_seals(&file)?;
        let size = rustix::fs::fstat(&file)?.st_size;
        if !seals.contains(SealFlags::SHRINK | SealFlags::GROW) || size != SLOT_BYTES as i64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the slot is not a sealed memory file of its size",
            ));
        }
        Slot::map(file)
    }

    #[allow(unsafe_code)]
    fn map(file: OwnedFd) -> io::Result<Slot> {
        // SAFETY: a fresh shared mapping of the whole file, at an address the kernel picks; it
        // aliases nothing of this process's, and the file is sealed at this size, so no access
        // within it can fault. Unmapped only when the slot is dropped.
        let memory = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                SLOT_BYTES,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &file,
                0,
            )?
        };
        let memory = NonNull::new(memory.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Slot { memory, file })
    }

    /// The memory file, for the worker to map.
    pub fn file(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The reader of `direction`'s box starts polling it.
    pub fn open(&self, direction: Direction) {
        self.state(direction).store(OPEN, Ordering::Release);
    }

    /// Puts `frame` in `direction`'s box if its reader is polling it and it fits; `false` means
    /// it was not, and the frame goes through the socket.
    pub fn post(&self, direction: Direction, frame: &[u8]) -> bool {
        let state = self.state(direction);
        if frame.len() > BOX_BYTES || state.load(Ordering::Relaxed) != OPEN {
            return false;
        }
        self.copy_in(direction, frame);
        self.length(direction).store(frame.len() as u32, Ordering::Relaxed);
        // Release: the reader that sees FULL sees the bytes and length written above.
        state.compare_exchange(OPEN, FULL, Ordering::Release, Ordering::Relaxed).is_ok()
    }

    /// Polls `direction`'s box (opened by the caller) for up to `budget`, and the socket between
    /// looks; returns the frame the box gave, or `None` once the socket has something to read
    /// (an answer, a request or its end) or the budget is spent. Either way the box is closed.
    pub fn wait(&self, direction: Direction, socket: BorrowedFd<'_>, budget: Duration) -> io::Result<Option<Vec<u8>>> {
        let started = Instant::now();
        let mut polled = started;
        let immediately = Timespec { tv_sec: 0, tv_nsec: 0 };
        let mut fds = [PollFd::from_borrowed_fd(socket, PollFlags::IN)];
        let mut looks = 0u32;
        loop {
            if self.state(direction).load(Ordering::Acquire) == FULL {
                return self.take(direction).map(Some);
            }
            looks += 1;
            if !looks.is_multiple_of(LOOKS_PER_CLOCK) {
                std::hint::spin_loop();
                continue;
            }
            let now = Instant::now();
            if now.duration_since(polled) < direction.poll_every() && now.duration_since(started) < budget {
                continue;
            }
            // Readable, hung up, failed or interrupted: the socket's own read says which.
            let socket_woke = poll(&mut fds, Some(&immediately)) != Ok(0);
            if socket_woke || now.duration_since(started) >= budget {
                return self.close(direction);
            }
            // Any thread that wants this CPU gets it (see `spin_until_readable`).
            std::thread::yield_now();
            polled = now;
        }
    }

    /// Closes `direction`'s box; returns the frame in it if one came first.
    pub fn close(&self, direction: Direction) -> io::Result<Option<Vec<u8>>> {
        match self.state(direction).compare_exchange(OPEN, CLOSED, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) | Err(CLOSED) => Ok(None),
            Err(FULL) => self.take(direction).map(Some),
            Err(state) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("slot box in unknown state {state}"))),
        }
    }

    /// Copies the frame out of a full box and closes it.
    fn take(&self, direction: Direction) -> io::Result<Vec<u8>> {
        let length = self.length(direction).load(Ordering::Relaxed) as usize;
        let frame = if length <= BOX_BYTES {
            Ok(self.copy_out(direction, length))
        } else {
            Err(io::Error::new(io::ErrorKind::InvalidData, format!("slot frame of {length} bytes is over {BOX_BYTES}")))
        };
        self.state(direction).store(CLOSED, Ordering::Release);
        frame
    }

    fn state(&self, direction: Direction) -> &AtomicU32 {
        self.control(direction, 0)
    }

    fn length(&self, direction: Direction) -> &AtomicU32 {
        self.control(direction, 4)
    }

    #[allow(unsafe_code)]
    fn control(&self, direction: Direction, offset: usize) -> &AtomicU32 {
        let at = self.memory.as_ptr().wrapping_add(direction.index() * 64 + offset).cast::<u32>();
        // SAFETY: `at` is inside the mapping (the control page), 4-byte aligned (the mapping is
        // page-aligned and the offset a multiple of 4), and valid for as long as `self`. Both
        // processes touch it only atomically.
        unsafe { AtomicU32::from_ptr(at) }
    }

    fn area(&self, direction: Direction) -> *mut u8 {
        self.memory.as_ptr().wrapping_add(CONTROL_BYTES + direction.index() * BOX_BYTES)
    }

    #[allow(unsafe_code)]
    fn copy_in(&self, direction: Direction, frame: &[u8]) {
        // SAFETY: the box's bytes are inside the mapping and `frame` fits in them (checked by
        // `post`); the mapping and `frame` never overlap. The other side reads them only after
        // the Release that follows.
        unsafe { std::ptr::copy_nonoverlapping(frame.as_ptr(), self.area(direction), frame.len()) }
    }

    #[allow(unsafe_code)]
    fn copy_out(&self, direction: Direction, length: usize) -> Vec<u8> {
        let mut frame = Vec::<u8>::with_capacity(length);
        // SAFETY: `length` is at most the box's size, inside the mapping, and `frame` has room
        // for it. A well-behaved writer wrote these bytes before the Release this thread
        // acquired and does not touch them until its next request; a hostile worker writing
        // them meanwhile only changes which bytes are copied, and they are checked as a frame
        // afterwards like the socket's.
        unsafe {
            std::ptr::copy_nonoverlapping(self.area(direction), frame.as_mut_ptr(), length);
            frame.set_len(length);
        }
        frame
    }
}

impl Drop for Slot {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; nothing borrows it past `self`.
        let _ = unsafe { rustix::mm::munmap(self.memory.as_ptr().cast(), SLOT_BYTES) };
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use super::*;

    fn pair() -> (Slot, Slot) {
        let server = Slot::create().unwrap();
        let worker = Slot::adopt(server.file().try_clone_to_owned().unwrap()).unwrap();
        (server, worker)
    }

    #[test]
    fn a_frame_goes_through_an_open_box_only() {
        let (server, worker) = pair();
        let (_ours, theirs) = UnixStream::pair().unwrap();
        assert!(!server.post(Direction::ToWorker, b"request"), "nobody polls the box yet");
        worker.open(Direction::ToWorker);
        assert!(server.post(Direction::ToWorker, b"request"));
        assert!(!server.post(Direction::ToWorker, b"again"), "a full box takes nothing more");
        let taken = worker.wait(Direction::ToWorker, theirs.as_fd(), Duration::from_secs(60)).unwrap();
        assert_eq!(taken.as_deref(), Some(&b"request"[..]));
        assert!(!server.post(Direction::ToWorker, b"late"), "taking a frame closes the box");
        assert!(!worker.post(Direction::ToServer, &vec![0; BOX_BYTES + 1]), "too big for a box");
    }

    #[test]
    fn waiting_ends_when_the_socket_wakes_or_the_budget_is_spent_and_closes_the_box() {
        use std::io::Write;
        let (server, worker) = pair();
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        worker.open(Direction::ToWorker);
        let started = Instant::now();
        assert_eq!(worker.wait(Direction::ToWorker, theirs.as_fd(), Duration::from_millis(5)).unwrap(), None);
        assert!(started.elapsed() >= Duration::from_millis(5));
        assert!(!server.post(Direction::ToWorker, b"request"), "a reader that stopped polling closed its box");
        worker.open(Direction::ToWorker);
        ours.write_all(b"x").unwrap();
        assert_eq!(worker.wait(Direction::ToWorker, theirs.as_fd(), Duration::from_secs(600)).unwrap(), None);
        assert!(!server.post(Direction::ToWorker, b"request"));
    }

    #[test]
    fn closing_a_box_hands_over_a_frame_that_came_first() {
        let (server, worker) = pair();
        server.open(Direction::ToServer);
        assert!(worker.post(Direction::ToServer, b"answer"));
        assert_eq!(server.close(Direction::ToServer).unwrap().as_deref(), Some(&b"answer"[..]));
        assert_eq!(server.close(Direction::ToServer).unwrap(), None);
    }

    #[test]
    fn what_a_hostile_worker_writes_is_refused_not_trusted() {
        let (server, worker) = pair();
        let (_ours, theirs) = UnixStream::pair().unwrap();
        server.open(Direction::ToServer);
        // A length past the box, then a state the server never sets.
        worker.length(Direction::ToServer).store(u32::MAX, Ordering::Relaxed);
        worker.state(Direction::ToServer).store(FULL, Ordering::Release);
        let error = server.wait(Direction::ToServer, theirs.as_fd(), Duration::from_secs(60)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        server.open(Direction::ToServer);
        worker.state(Direction::ToServer).store(7, Ordering::Release);
        let error = server.wait(Direction::ToServer, theirs.as_fd(), Duration::from_millis(1)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn only_a_sealed_memory_file_of_the_slots_size_is_adopted() {
        let unsealed = rustix::fs::memfd_create("unsealed", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&unsealed, SLOT_BYTES as u64).unwrap();
        assert!(Slot::adopt(unsealed).is_err());
        let small = rustix::fs::memfd_create("small", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&small, 4096).unwrap();
        rustix::fs::fcntl_add_seals(&small, SealFlags::SHRINK | SealFlags::GROW).unwrap();
        assert!(Slot::adopt(small).is_err());
    }
}
