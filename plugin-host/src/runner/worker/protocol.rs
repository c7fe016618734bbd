//! The protocol between the server and its worker processes.
//!
//! Frames over a Unix socket (the worker's stdin and stdout), or for a call made one at a time
//! on a quiet machine through the worker's shared slot (see `slot`): a little-endian `u32`
//! length and a JSON header, then a little-endian `u32` length and raw bytes (a module, a v2
//! input or output, or nothing). JSON keeps the messages readable in a debugger and easy to
//! extend; the module bytes travel raw.
//! The first exchange is `Hello`/`Ready`, each carrying [`PROTOCOL_VERSION`]: a worker built
//! from another version of the host is refused instead of misread.

use std::{
    io::{self, Read, Write},
    os::fd::BorrowedFd,
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::runtime::{Admission, RuntimeConfig, RuntimeError};

/// Version 8: the hello says whether the worker has a shared slot, see `slot` (version 7: a
/// v2 call's answer says how long the worker took over it too; version 6: a v1
/// call's answer says how long the worker took over it; version 5: v2 calls
/// and streams may carry the plugin's configuration; version 4: calls say
/// whether the worker lingers after replying; version 3: ABI v2 calls and streams; version 2:
/// errors travel as [`RuntimeError`] itself).
pub const PROTOCOL_VERSION: u32 = 8;

/// How long each side of the socket waits for the other's next frame without sleeping (see
/// [`spin_until_readable`]): a little longer than a small plugin call.
pub const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(60);

/// Largest JSON header accepted: messages are small; anything bigger is a corrupt stream.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest blob accepted: a module, bounded by the largest plugin file the host allows.
const MAX_BLOB_BYTES: usize = 256 << 20;

/// Server to worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// First message: how to run plugins, and the OS limits to put on itself.
    Hello {
        version: u32,
        runtime: RuntimeConfig,
        memory_limit_bytes: Option<u64>,
        /// Whether the server made a shared slot for this worker, and put its memory file at
        /// `slot::WORKER_SLOT_FD` (see `slot`).
        #[serde(default)]
        slot: bool,
    },
    /// Compile and keep the module whose bytes follow, admitted by the server as `admission`
    /// says (the worker does not check it again).
    Load { content_hash: String, admission: Admission },
    /// Run the module with this content hash on a fresh instance (ABI v1).
    Run {
        content_hash: String,
        input: i32,
        /// Poll for the next request for a moment after replying (see [`spin_until_readable`]):
        /// the server sets it when the machine has CPU to spare.
        #[serde(default)]
        linger: bool,
    },
    /// Call a v2 function with the input that follows, on a fresh instance.
    Call {
        content_hash: String,
        function: String,
        /// As in `Run`.
        #[serde(default)]
        linger: bool,
        /// With a configuration: its length; the bytes that follow are the configuration, then
        /// the input.
        #[serde(default)]
        config_len: Option<u32>,
    },
    /// Begin a v2 stream on an instance of its own. A worker holds at most one stream: any
    /// other request ends (abandons) the open one.
    StreamOpen {
        content_hash: String,
        function: String,
        /// As in `Run`: the first chunk follows at once.
        #[serde(default)]
        linger: bool,
        /// Whether the bytes that follow are the plugin's configuration.
        #[serde(default)]
        config: bool,
    },
    /// Feed the open stream the chunk that follows.
    StreamFeed {
        /// As in `Run`: the next chunk usually follows at once.
        #[serde(default)]
        linger: bool,
    },
    /// End the open stream.
    StreamFinish,
}

/// Worker to server.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    Ready {
        version: u32,
    },
    /// The module is compiled and kept.
    Loaded,
    /// The worker does not have that module (any more): load it first.
    NeedModule,
    Done {
        result: Result<i32, RuntimeError>,
        instantiation: Duration,
        /// The whole call in the worker, from reading the request to writing this answer: what
        /// a lane counts, where the server cannot tell when a queued call started.
        #[serde(default)]
        took: Duration,
    },
    /// A v2 call or stream step: on success the output follows as the frame's bytes.
    Output {
        result: Result<(), RuntimeError>,
        /// As in `Done`: the whole step in the worker (what a v2 call on a lane counts).
        #[serde(default)]
        took: Duration,
    },
}

pub fn write_frame(writer: &mut impl Write, header: &impl Serialize, blob: &[u8]) -> io::Result<()> {
    // One write per frame, so a frame is never interleaved with another writer's.
    writer.write_all(&encode_frame(header, blob)?)?;
    writer.flush()
}

/// A frame's bytes, as [`write_frame`] writes them (and the shared slot carries them).
pub fn encode_frame(header: &impl Serialize, blob: &[u8]) -> io::Result<Vec<u8>> {
    let header = serde_json::to_vec(header).map_err(io::Error::other)?;
    let mut frame = Vec::with_capacity(8 + header.len() + blob.len());
    frame.extend_from_slice(&(header.len() as u32).to_le_bytes());
    frame.extend_from_slice(&header);
    frame.extend_from_slice(&(blob.len() as u32).to_le_bytes());
    frame.extend_from_slice(blob);
    Ok(frame)
}

/// Decodes `bytes` as exactly one frame (what the shared slot carries): anything short of a
/// frame, or past its end, is `InvalidData`.
pub fn decode_frame<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<(T, Vec<u8>)> {
    let mut rest = bytes;
    let frame = read_frame(&mut rest).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(io::ErrorKind::InvalidData, "a cut-off frame"),
        _ => e,
    })?;
    if !rest.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bytes past the end of a frame"));
    }
    Ok(frame)
}

/// Reads one frame. End of stream before the first byte is `UnexpectedEof`, like a cut-off
/// frame: either way the peer is gone.
pub fn read_frame<T: DeserializeOwned>(reader: &mut impl Read) -> io::Result<(T, Vec<u8>)> {
    let header = read_block(reader, MAX_HEADER_BYTES)?;
    let message = serde_json::from_slice(&header).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let blob = read_block(reader, MAX_BLOB_BYTES)?;
    Ok((message, blob))
}

/// Takes one whole frame off the front of `buffer`, if it holds one: for a reader that gathers
/// bytes as they arrive (a lane's, see `lane`) rather than blocking until a frame is complete.
pub fn take_frame<T: DeserializeOwned>(buffer: &mut Vec<u8>) -> io::Result<Option<(T, Vec<u8>)>> {
    let mut rest = &buffer[..];
    match read_frame(&mut rest) {
        Ok(frame) => {
            let used = buffer.len() - rest.len();
            buffer.drain(..used);
            Ok(Some(frame))
        }
        // Only a frame not yet complete runs out of bytes.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_block(reader: &mut impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut length = [0u8; 4];
    reader.read_exact(&mut length)?;
    let length = u32::from_le_bytes(length) as usize;
    if length > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {length} bytes is over {limit}")));
    }
    // Grown as the bytes arrive rather than allocated up front, so a corrupt length costs
    // only what the stream actually delivers.
    let mut block = Vec::new();
    reader.take(length as u64).read_to_end(&mut block)?;
    if block.len() != length {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(block)
}

/// Waits up to `budget` for `fd` to become readable without blocking in the kernel: polls it,
/// yielding the CPU between polls to any thread that wants it.
///
/// Why: an exchange with a worker is two wake-ups of a sleeping thread, one per process. On a
/// virtual machine an idle vCPU halts, and waking it costs tens of microseconds, more than a
/// small call itself (measured: `worker_process_runner` `hello` 58.6 µs against 13.5 µs
/// in-process on an idle machine). A thread that polls for a moment keeps its CPU awake for
/// the answer that is about to come; when other threads are runnable, `sched_yield` gives them
/// the CPU, so a busy machine loses little. After `budget` the caller blocks as before.
pub fn spin_until_readable(fd: BorrowedFd<'_>, budget: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let started = Instant::now();
    let now = Timespec { tv_sec: 0, tv_nsec: 0 };
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    // Readable, hung up or failed: any answer ends the wait (the read that follows sees which).
    while poll(&mut fds, Some(&now)) == Ok(0) && started.elapsed() < budget {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{AbiFunction, PluginErrorCode, TrapKind};

    #[test]
    fn polling_ends_when_data_arrives_or_the_budget_is_spent() {
        use std::os::{fd::AsFd, unix::net::UnixStream};
        let (mut server, worker) = UnixStream::pair().unwrap();
        let started = Instant::now();
        spin_until_readable(worker.as_fd(), Duration::from_millis(5));
        assert!(started.elapsed() >= Duration::from_millis(5), "nothing to read: it polls for the whole budget");
        server.write_all(b"x").unwrap();
        let started = Instant::now();
        spin_until_readable(worker.as_fd(), Duration::from_secs(600));
        assert!(started.elapsed() < Duration::from_secs(60), "data waiting: it returns at once");
        drop(server);
        let mut byte = [0; 2];
        assert_eq!((&worker).read(&mut byte).unwrap(), 1);
        let started = Instant::now();
        spin_until_readable(worker.as_fd(), Duration::from_secs(600));
        assert!(started.elapsed() < Duration::from_secs(60), "a closed peer ends the wait too");
    }

    #[test]
    fn frames_round_trip_and_errors_keep_their_cause() {
        let mut buffer = Vec::new();
        let admission = Admission { compliant: true, abi_version: Some(1), interface: None };
        let request = Request::Load { content_hash: "ab".into(), admission };
        write_frame(&mut buffer, &request, b"\0asm").unwrap();
        let error = RuntimeError::CleanupAlsoFailed {
            failure: Box::new(RuntimeError::Trap { function: AbiFunction::Process, trap: TrapKind::DivideByZero }),
            cleanup: Box::new(RuntimeError::Plugin {
                function: AbiFunction::Cleanup,
                code: PluginErrorCode::Unknown(-9),
            }),
        };
        let reply = Reply::Done {
            result: Err(error),
            instantiation: Duration::from_micros(12),
            took: Duration::from_micros(20),
        };
        write_frame(&mut buffer, &reply, &[]).unwrap();

        let mut reader = &buffer[..];
        let (request, blob): (Request, _) = read_frame(&mut reader).unwrap();
        assert!(matches!(request, Request::Load { ref content_hash, .. } if content_hash == "ab"));
        assert_eq!(blob, b"\0asm");
        let (reply, blob): (Reply, _) = read_frame(&mut reader).unwrap();
        assert!(blob.is_empty());
        let Reply::Done { result: Err(error), .. } = reply else { panic!("{reply:?}") };
        let RuntimeError::CleanupAlsoFailed { failure, cleanup } = error else { panic!("{error:?}") };
        assert!(matches!(
            *failure,
            RuntimeError::Trap { function: AbiFunction::Process, trap: TrapKind::DivideByZero }
        ));
        assert!(matches!(
            *cleanup,
            RuntimeError::Plugin { function: AbiFunction::Cleanup, code: PluginErrorCode::Unknown(-9) }
        ));
        assert_eq!(read_frame::<Reply>(&mut reader).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn frames_are_taken_whole_as_their_bytes_arrive() {
        let mut sent = Vec::new();
        write_frame(&mut sent, &Reply::Loaded, b"").unwrap();
        write_frame(&mut sent, &Reply::NeedModule, b"xyz").unwrap();
        let mut buffer = Vec::new();
        let mut taken = Vec::new();
        for byte in sent {
            buffer.push(byte);
            while let Some((reply, blob)) = take_frame::<Reply>(&mut buffer).unwrap() {
                taken.push((reply, blob));
            }
        }
        assert!(buffer.is_empty());
        assert!(matches!(&taken[..], [(Reply::Loaded, a), (Reply::NeedModule, b)] if a.is_empty() && b == b"xyz"));
        let mut oversized = u32::MAX.to_le_bytes().to_vec();
        assert_eq!(take_frame::<Reply>(&mut oversized).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_slots_bytes_decode_as_exactly_one_frame() {
        let frame = encode_frame(&Reply::NeedModule, b"xyz").unwrap();
        let (reply, blob) = decode_frame::<Reply>(&frame).unwrap();
        assert!(matches!(reply, Reply::NeedModule) && blob == b"xyz");
        assert_eq!(decode_frame::<Reply>(&frame[..frame.len() - 1]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        assert_eq!(decode_frame::<Reply>(&two).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn oversized_frames_are_refused_without_allocating() {
        let mut reader = &u32::MAX.to_le_bytes()[..];
        assert_eq!(read_frame::<Reply>(&mut reader).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
