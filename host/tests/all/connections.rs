//! Every phase a client controls has a deadline (issue 28): connections that never speak (or
//! send one byte, or the HTTP/2 preface) are closed and never lock out the probes; bodies that
//! trickle are cut off and hold no call permit; a `Content-Length` over the limit is refused
//! before the body is sent; a broken stream body is the client's error, not ours.

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    time::{Duration, Instant},
};

use host::api::{BodyLimits, StreamLimits};
use plugin_host::runtime::ExecutionMode;
use serde_json::json;

use crate::{
    binary::start_with_file_limit,
    support::{TestServer, app_state, local_store, plugin_dir, runtime_config},
};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One request on a new connection; the whole answer ("" if the connection was closed).
fn ask(addr: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(addr: &str, path: &str) -> String {
    ask(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
}

fn hello_request() -> Vec<u8> {
    let body = r#"{"plugin":"hello","input":21}"#;
    format!(
        "POST /run HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: \
         {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Waits until the server closes the connection; how long that took from `since`, or `None` if
/// it was still open after `limit`.
fn closed_within(stream: &mut TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    stream.set_read_timeout(Some(limit.saturating_sub(since.elapsed()).max(Duration::from_millis(1)))).unwrap();
    let mut sink = [0u8; 1024];
    loop {
        match stream.read(&mut sink) {
            // Closed, or reset: either way the server let it go.
            Ok(0) => return Some(since.elapsed()),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return Some(since.elapsed()),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Silent connections, one-byte connections and HTTP/2 prefaces, many times the connection
/// limit: the probes and a call answer at once while they are open, and every one of them is
/// closed by the idle deadline (or earlier, to make room for newer connections).
#[test]
fn connections_that_never_speak_are_closed_and_never_lock_out_probes() {
    let dir = plugin_dir(&["hello"]);
    let (mut child, addr, _lines) = start_with_file_limit(300, |c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--isolation", "in-process"]).args([
            "--max-connections",
            "50",
            "--idle-timeout-secs",
            "2",
        ]);
    });
    assert!(get(&addr, "/readyz").starts_with("HTTP/1.1 200"));
    let kinds: [&[u8]; 3] = [b"", b"G", H2_PREFACE];
    let opened = Instant::now();
    let mut quiet: Vec<TcpStream> = (0..1200)
        .map(|i| {
            if i % 50 == 49 {
                // Within the kernel's listen backlog (128 here), which is not the server's to
                // raise: beyond it, handshakes wait in the kernel until the server can accept.
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(kinds[i % 3]).unwrap();
            stream
        })
        .collect();
    let opening = opened.elapsed();
    let mut figures = Vec::new();
    for (path, request) in [
        ("/healthz", b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("/readyz", b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("/run hello", hello_request()),
    ] {
        let asked = Instant::now();
        let answer = ask(&addr, &request);
        let took = asked.elapsed();
        assert!(answer.starts_with("HTTP/1.1 200"), "{path} with 1,200 quiet connections open: {answer}");
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        figures.push(format!("{path} {took:?}"));
    }
    let mut latest = Duration::ZERO;
    let mut still_open = Vec::new();
    for (i, stream) in quiet.iter_mut().enumerate() {
        match closed_within(stream, opened, Duration::from_secs(6)) {
            Some(closed) => latest = latest.max(closed),
            None => still_open.push(i),
        }
    }
    assert!(still_open.is_empty(), "still open after 6 s: {} connections: {still_open:?}", still_open.len());
    println!(
        "1,200 quiet connections opened in {opening:?} (--max-connections 50); answered while open: {}; all closed \
         by {latest:?} after opening (idle timeout 2 s)",
        figures.join(", ")
    );
    assert!(latest < Duration::from_secs(5), "closed by the 2 s deadline, not after {latest:?}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The same attack at scale (default `--max-connections 4096`, 5,000 quiet connections), with
/// its figures. Long only in the number of sockets: about ten seconds.
#[test]
#[ignore = "long: thousands of sockets; run with --run-ignored only"]
fn long_thousands_of_quiet_connections_never_lock_out_probes() {
    let dir = plugin_dir(&["hello"]);
    let (mut child, addr, _lines) = start_with_file_limit(8192, |c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--idle-timeout-secs", "5"]);
    });
    let kinds: [&[u8]; 3] = [b"", b"G", H2_PREFACE];
    let opened = Instant::now();
    let mut quiet: Vec<TcpStream> = (0..5000)
        .map(|i| {
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.write_all(kinds[i % 3]).unwrap();
            stream
        })
        .collect();
    let opening = opened.elapsed();
    let mut took = Vec::new();
    for _ in 0..20 {
        let asked = Instant::now();
        assert!(get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
        took.push(asked.elapsed());
    }
    let asked = Instant::now();
    assert!(ask(&addr, &hello_request()).starts_with("HTTP/1.1 200"));
    let hello = asked.elapsed();
    let mut latest = Duration::ZERO;
    for stream in &mut quiet {
        latest = latest.max(closed_within(stream, opened, Duration::from_secs(15)).expect("closed"));
    }
    took.sort();
    println!(
        "5,000 quiet connections opened in {opening:?}; /healthz p50 {:?} max {:?}; /run hello {hello:?}; all \
         closed by {latest:?} (idle timeout 5 s)",
        took[10], took[19]
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn trickle_server(max_in_flight: usize) -> (TestServer, tempfile::TempDir) {
    let dir = plugin_dir(&["hello", "text", "sha256"]);
    let mut state = app_state(local_store(dir.path()), runtime_config(ExecutionMode::Aot), max_in_flight)
        .with_body_limits(BodyLimits {
            grace: Duration::from_secs(1),
            min_rate: 1000,
            max_duration: Duration::from_secs(5),
            ..BodyLimits::default()
        });
    state.stream_limits = StreamLimits { max_bytes: 100_000, ..StreamLimits::default() };
    (TestServer::start(state).await, dir)
}

/// Bodies sent one byte at a time hold no call permit: with more tricklers than permits, `hello`
/// answers in milliseconds, and every trickler is answered 408 `body_timeout` once it falls
/// behind the minimum rate (after the grace period).
#[tokio::test]
async fn trickling_bodies_cannot_starve_calls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _dir) = trickle_server(4).await;
    // Warm: compile both plugins before the clock matters.
    assert_eq!(server.run("hello", 21).await.0, 200);
    let started = Instant::now();
    let tricklers: Vec<_> = (0..32)
        .map(|i| {
            let addr = server.addr;
            tokio::spawn(async move {
                // One after the other: the plugin is resolved under a permit, which 32 callers
                // arriving in the same millisecond would find taken (503, rightly).
                tokio::time::sleep(Duration::from_millis(20) * i as u32).await;
                let started = Instant::now();
                let head = if i % 2 == 0 {
                    "POST /plugins/text/functions/upper HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
                } else {
                    "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                };
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.write_all(head.as_bytes()).await.unwrap();
                let mut answer = Vec::new();
                let mut buffer = [0u8; 1024];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buffer) => match read {
                            Ok(0) | Err(_) => break,
                            Ok(n) => answer.extend_from_slice(&buffer[..n]),
                        },
                        () = tokio::time::sleep(Duration::from_millis(200)) => {
                            if stream.write_all(b" ").await.is_err() {
                                break;
                            }
                        }
                    }
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
                (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
            })
        })
        .collect();
    // From the last trickler's start until the first is cut off, all 32 are in their bodies.
    tokio::time::sleep(Duration::from_millis(650)).await;
    let mut took = Vec::new();
    while started.elapsed() < Duration::from_millis(1000) {
        let asked = Instant::now();
        assert_eq!(server.run("hello", 21).await, (200, json!({"output": 43})), "a call beside 32 tricklers");
        took.push(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut answered = Vec::new();
    for trickler in tricklers {
        let (answer, at) = trickler.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"), "{answer}");
        answered.push(at);
    }
    took.sort();
    answered.sort();
    println!(
        "beside 32 tricklers (4 permits): {} hello calls, p50 {:?}, max {:?}; tricklers answered 408 between {:?} and \
         {:?} after their start (grace 1 s, 1000 B/s)",
        took.len(),
        took[took.len() / 2],
        took[took.len() - 1],
        answered[0],
        answered[answered.len() - 1]
    );
    assert!(took[took.len() / 2] < Duration::from_millis(100), "hello p50 {:?}", took[took.len() / 2]);
    assert!(answered[answered.len() - 1] < Duration::from_secs(3), "cut off after the 1 s grace");
}

/// A `Content-Length` over the applicable limit is answered 413 before the body is sent (the
/// client here never sends it).
#[tokio::test]
async fn an_oversized_content_length_is_refused_before_the_body() {
    let (server, _dir) = trickle_server(4).await;
    let addr = server.addr.to_string();
    let cases = [
        ("/run", "application/json", 5 << 20, "body_too_large"),
        ("/plugins/text/functions/upper", "application/octet-stream", 65537, "input_too_large"),
        ("/plugins/sha256/functions/sha256sum", "application/octet-stream", 100_001, "stream_too_large"),
    ];
    for (path, content_type, length, code) in cases {
        let asked = Instant::now();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
        );
        let addr = addr.clone();
        // Read until the answer is complete: the connection itself may stay open a little
        // while the server drains a body that will never come.
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            let mut answer = Vec::new();
            let mut buffer = [0u8; 1024];
            while !answer.ends_with(b"}}") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buffer[..n]),
                }
            }
            String::from_utf8_lossy(&answer).into_owned()
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 413") && answer.contains(code), "{path}: {answer}");
        assert!(asked.elapsed() < Duration::from_secs(2), "{path}: answered at once, not after {:?}", asked.elapsed());
    }
    // At the limit it is read and served.
    let response =
        server.client.post(server.url("/plugins/text/functions/upper")).body(vec![b'a'; 65536]).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

/// A stream body that breaks (a malformed chunk, or a connection that stops sending halfway
/// through a chunked body) is the client's fault: 400 `invalid_request`, and no ERROR line.
#[test]
fn a_broken_stream_body_is_a_client_error() {
    let dir = plugin_dir(&["sha256"]);
    let (mut child, addr, lines) = crate::binary::start(|c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--isolation", "in-process"]);
    });
    let head = "POST /plugins/sha256/functions/sha256sum HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    // Compiled first, so that the cases below are about the body only.
    let whole = ask(&addr, format!("{head}5\r\nhello\r\n0\r\n\r\n").as_bytes());
    assert!(whole.starts_with("HTTP/1.1 200"), "{whole}");
    let malformed = ask(&addr, format!("{head}5\r\nhello\r\nzz\r\n").as_bytes());
    assert!(malformed.starts_with("HTTP/1.1 400") && malformed.contains("invalid_request"), "{malformed}");
    let mut cut = TcpStream::connect(&addr).unwrap();
    cut.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    cut.write_all(format!("{head}a\r\nhello").as_bytes()).unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = cut.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("invalid_request"), "{answer}");
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let errors: Vec<String> = lines.try_iter().filter(|line| line.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "client faults logged as errors: {errors:#?}");
}

/// A connection whose client stops reading a response that does not fit in the socket buffers
/// is closed after the idle timeout, and what was serving it is freed.
#[tokio::test]
async fn a_client_that_stops_reading_is_let_go() {
    use tokio::io::AsyncWriteExt;
    let dir = plugin_dir(&["hello"]);
    // A stream that echoes its input: a client that sends and never reads fills both
    // directions' buffers.
    std::fs::write(dir.path().join("v2-hostile.wasm"), crate::support::fault_bytes("v2-hostile")).unwrap();
    let state = app_state(local_store(dir.path()), runtime_config(ExecutionMode::Aot), 4);
    let server = Arc::new(
        TestServer::start_with(
            state,
            host::ServeOptions { idle_timeout: Duration::from_secs(1), ..Default::default() },
        )
        .await,
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = "POST /plugins/v2-hostile/functions/lines HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n\
                Transfer-Encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let line = format!("{}\n", "x".repeat(999));
    let chunk = format!("{:x}\r\n{}\r\n", line.len() * 64, line.repeat(64));
    let started = Instant::now();
    // Writes succeed until the server stops reading (its output is stuck), then block; the
    // server gives up after its idle timeout and the connection breaks.
    let sent = tokio::time::timeout(Duration::from_secs(20), async {
        let mut sent = 0usize;
        while stream.write_all(chunk.as_bytes()).await.is_ok() {
            sent += chunk.len();
        }
        sent
    })
    .await;
    let broke_after = started.elapsed();
    assert!(sent.is_ok(), "the server still held the connection after 20 s");
    println!("a client that never reads: {} KiB sent, connection let go after {broke_after:?}", sent.unwrap() >> 10);
    // The worker or thread behind the stream is free again: the server serves calls.
    assert_eq!(server.run("hello", 21).await, (200, json!({"output": 43})));
}
