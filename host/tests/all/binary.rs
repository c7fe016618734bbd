//! The `host` binary itself: configuration, serving, and graceful shutdown on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    ops::{Deref, DerefMut},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use crate::support::{plugin_dir, shared_aot_dir, wat_plugin, with_hostile_native_section};

/// A started `host` binary, killed when dropped: a test that fails midway leaves no server
/// (and so no worker processes) running behind it.
pub(crate) struct Running(Child);

impl Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and waits for the `{"listening": ...}` line it prints on stdout; returns
/// the server, its address and its log lines (stderr).
pub(crate) fn start(configure: impl FnOnce(&mut Command)) -> (Running, String, mpsc::Receiver<String>) {
    start_command(Command::new(env!("CARGO_BIN_EXE_host")), configure)
}

/// [`start`], under `prlimit --nofile=LIMIT`: a small open-file limit the connection tests fill.
pub(crate) fn start_with_file_limit(
    limit: u32,
    configure: impl FnOnce(&mut Command),
) -> (Running, String, mpsc::Receiver<String>) {
    let mut command = Command::new("prlimit");
    command.arg(format!("--nofile={limit}:{limit}")).arg(env!("CARGO_BIN_EXE_host"));
    start_command(command, configure)
}

fn start_command(
    mut command: Command,
    configure: impl FnOnce(&mut Command),
) -> (Running, String, mpsc::Receiver<String>) {
    command
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("AOT_CACHE_DIR", shared_aot_dir())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped());
    configure(&mut command);
    let mut child = Running(command.spawn().expect("host starts"));
    let (lines_tx, lines) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).expect("the host prints where it listens");
    let announced: serde_json::Value = serde_json::from_str(&first_line).expect("a JSON line");
    let addr = announced["listening"].as_str().expect("a listening address").to_owned();
    assert!(addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"), "{addr}");
    (child, addr, lines)
}

fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn serves_plugins_and_drains_in_flight_requests_on_sigterm() {
    serves_and_drains_on("TERM").await;
}

/// SIGHUP's default action kills at once; the host drains instead, as for SIGTERM.
#[tokio::test]
async fn sighup_drains_like_sigterm() {
    serves_and_drains_on("HUP").await;
}

async fn serves_and_drains_on(signal: &str) {
    let dir = plugin_dir(&["hello"]);
    // A call that takes a while: counting primes in the interpreter.
    std::fs::write(dir.path().join("slow.wasm"), crate::support::plugin_bytes("primes")).unwrap();
    let (mut child, addr, _lines) = start(|c| {
        c.env("PLUGIN_DIR", "/nonexistent/overridden/by/the/flag")
            .args(["--plugin-dir", dir.path().to_str().unwrap()])
            .args(["--execution-mode", "interpreter", "--call-timeout-ms", "20000"]);
    });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/run");
    let response = client.post(&url).json(&serde_json::json!({"plugin": "hello", "input": 21})).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), r#"{"output":43}"#);

    let slow = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            let started = std::time::Instant::now();
            let response =
                client.post(&url).json(&serde_json::json!({"plugin": "slow", "input": 300000})).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap(), started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    send_signal(&child, signal);
    let (status, body, took) = slow.await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"output":25997}"#),
        "the in-flight request finished (after {took:?})"
    );
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(exit.success(), "clean exit after draining: {exit}");
}

#[test]
fn invalid_settings_stop_start_up_with_a_clear_message() {
    // (flags, environment, what the error message must say)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (&["--listen", "not-an-address"], &[], "invalid value 'not-an-address' for '--listen"),
        (&[], &[("PLUGIN_STORE", "s3")], "invalid value 's3' for '--plugin-store"),
        (&["--execution-mode", "jit"], &[], "invalid value 'jit' for '--execution-mode"),
        (&["--call-timeout-ms", "0"], &[], "--call-timeout-ms"),
        (&["--plugin-dir", "/nonexistent/plugins"], &[], "plugin directory /nonexistent/plugins"),
        (&[], &[("TRUST_POLICY", "/nonexistent/policy.json")], "--trust-policy /nonexistent/policy.json: "),
        // No folder compiled in: the local store (the default) must be told where plugins are.
        (
            &[],
            &[],
            "the local plugin store needs a folder of `<name>.wasm` files: pass --plugin-dir DIR or set PLUGIN_DIR",
        ),
        (
            &["--max-memory-pages", "32"],
            &[("ABI_MAX_INITIAL_MEMORY_PAGES", "48")],
            "--abi-max-initial-memory-pages (48) must not exceed --max-memory-pages (32)",
        ),
    ];
    for (args, env, message) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_host"))
            .env_clear()
            .envs(env.iter().copied())
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RUST_BACKTRACE", "1")
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} started");
        assert!(stderr.contains(message), "{args:?} {env:?}: {stderr}");
        // One clear line, even with RUST_BACKTRACE set (clap's own errors add a hint).
        assert!(!stderr.contains("backtrace") && !stderr.contains("Stack"), "{args:?} {env:?}: {stderr}");
        let failed_after_parsing = !stderr.contains("--help");
        if failed_after_parsing {
            let error_lines: Vec<_> = stderr.lines().filter(|line| !line.contains(" INFO ")).collect();
            assert_eq!(error_lines.len(), 1, "{args:?} {env:?}: {stderr}");
            assert!(error_lines[0].starts_with("error: "), "{args:?} {env:?}: {stderr}");
        }
    }
}

#[tokio::test]
async fn a_plugin_that_breaks_the_abi_is_refused_with_the_violation_named() {
    let dir = plugin_dir(&[]);
    let float = wat_plugin("i32.const 0", "f32.const 1 i32.trunc_f32_s", "i32.const 0");
    std::fs::write(dir.path().join("float.wasm"), float).unwrap();
    let (mut child, addr, _lines) = start(|c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap()]);
    });
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/run"))
        .json(&serde_json::json!({"plugin": "float", "input": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 500);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "abi_violation");
    assert!(body["error"]["message"].as_str().unwrap().contains("float-instruction"), "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A plugin that carries native code of its own (a `wasmedge` section, here one that would make
/// WasmEdge write outside its memory while loading it) runs as the WebAssembly it also is, in
/// both isolation modes, and the server goes on serving: only code the host compiled is loaded.
#[tokio::test]
async fn native_code_a_plugin_carries_is_never_loaded() {
    let dir = plugin_dir(&["hello"]);
    let echo = wat_plugin("i32.const 0", "local.get $input", "i32.const 0");
    std::fs::write(dir.path().join("universal.wasm"), with_hostile_native_section(&echo)).unwrap();
    for isolation in ["in-process", "process"] {
        let (mut server, addr, _lines) = start(|c| {
            c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--isolation", isolation]);
        });
        let client = reqwest::Client::new();
        for (plugin, output) in [("universal", 7), ("hello", 15)] {
            let response = client
                .post(format!("http://{addr}/run"))
                .json(&serde_json::json!({"plugin": plugin, "input": 7}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{isolation}, {plugin}: {e}"));
            assert_eq!(response.status().as_u16(), 200, "{isolation}, {plugin}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["output"], output, "{isolation}, {plugin}: {body}");
        }
        assert!(server.try_wait().unwrap().is_none(), "{isolation}: the server still runs");
    }
}

#[tokio::test]
async fn a_failing_log_destination_does_not_take_the_server_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = plugin_dir(&["hello"]);
    // Every write to /dev/full fails (ENOSPC), like a log pipe whose reader went away.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_host"))
        .env_clear()
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("AOT_CACHE_DIR", shared_aot_dir())
        .env("RUST_LOG", "debug")
        .args(["--plugin-dir", dir.path().to_str().unwrap(), "--isolation", "in-process"])
        .stdout(Stdio::null())
        .stderr(full)
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut answer = None;
    for _ in 0..200 {
        let request = client
            .post(format!("http://127.0.0.1:{port}/run"))
            .json(&serde_json::json!({"plugin": "hello", "input": 21}));
        if let Ok(response) = request.send().await {
            answer = Some(response.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answer.as_deref(), Some(r#"{"output":43}"#));
    assert!(child.try_wait().unwrap().is_none(), "the server is still running");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Connection hygiene, on the real binary with a small open-file limit: when every connection
/// is in the middle of a request (here: bodies that never come), the probes still answer from
/// the reserve (liveness yes, readiness no: this replica is full) while calls get 503; beyond
/// the reserve a connection is closed at once; the bodies are cut off by their deadline, the
/// silent connections by the header deadline, and it all recovers.
#[tokio::test]
async fn connections_are_bounded_in_number_and_time() {
    use std::io::{Read, Write};
    let dir = plugin_dir(&["hello"]);
    let (mut child, addr, _lines) = start_with_file_limit(160, |c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap(), "--isolation", "in-process"]).args([
            "--max-connections",
            "10",
            "--idle-timeout-secs",
            "2",
        ]);
    });
    let connect = || std::net::TcpStream::connect(&addr).unwrap();
    // One request on a new connection; the answer, or "" if the server closed it at once.
    let ask = |request: &str| {
        let mut stream = connect();
        let _ = stream.write_all(request.as_bytes());
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let get = |path: &str| ask(&format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    // Slots are given back when the server has finished with a connection, which can lag
    // behind the client on a busy machine: ask again until the answer is the expected one.
    let eventually = |request: &dyn Fn() -> String, expected: &dyn Fn(&str) -> bool| {
        let give_up = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let answer = request();
            if expected(&answer) || std::time::Instant::now() > give_up {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    assert!(get("/readyz").starts_with("HTTP/1.1 200"), "ready while connections are few");
    // (Let that connection's slot be given back before counting slots.)
    std::thread::sleep(Duration::from_millis(300));

    // Ten calls whose bodies never come take every regular slot; none is between requests, so
    // there is no room to make, and thirty-one silent connections take all but one of the
    // reserve.
    let started = std::time::Instant::now();
    let waiting: Vec<_> = (0..10)
        .map(|_| {
            let mut stream = connect();
            let head =
                "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
            stream.write_all(head.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let idle: Vec<_> = (0..31).map(|_| connect()).collect();
    // Once the server has accepted them all, readiness says no.
    let full = |answer: &str| answer.starts_with("HTTP/1.1 503") && answer.contains("too many open connections");
    let ready = eventually(&|| get("/readyz"), &full);
    assert!(full(&ready), "{ready}");
    // Liveness answers from the reserve too...
    let alive = eventually(&|| get("/healthz"), &|answer| answer.starts_with("HTTP/1.1 200"));
    assert!(alive.starts_with("HTTP/1.1 200"), "{alive}");
    // ...and calls are refused, not queued.
    let body = r#"{"plugin":"hello","input":21}"#;
    let call = format!(
        "POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let refused = eventually(&|| ask(&call), &full);
    assert!(full(&refused), "{refused}");
    // One more beyond the reserve is closed as soon as it is accepted.
    let extra: Vec<_> = (0..2).map(|_| connect()).collect();
    let mut closed = extra.into_iter().last().unwrap();
    closed.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(closed.read(&mut [0u8; 1]).unwrap_or(0), 0, "closed at once");

    // The bodies that never came are answered 408 once their 2 s grace is over...
    for mut stream in waiting {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"), "{answer}");
    }
    // ...and the silent connections are closed by the 2 s header deadline.
    for mut stream in idle {
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(stream.read(&mut [0u8; 256]).unwrap_or(0), 0);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "all let go after the 2 s deadlines, not after {took:?}");
    let recovered = eventually(&|| get("/readyz"), &|answer| answer.starts_with("HTTP/1.1 200"));
    assert!(recovered.starts_with("HTTP/1.1 200"), "recovered once the connections were let go: {recovered}");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_connection_limit_the_open_file_limit_cannot_carry_stops_start_up() {
    let output = Command::new("prlimit")
        .arg("--nofile=100:100")
        .arg(env!("CARGO_BIN_EXE_host"))
        .env_clear()
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .args(["--isolation", "in-process", "--max-connections", "500"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--max-connections 500") && stderr.contains("open files"), "{stderr}");
}

/// Shutdown takes the grace period it promises, not as long as the slowest call: a call still
/// running as the grace period ends is answered 503 (so its client knows to retry elsewhere),
/// and the process exits within the grace period.
#[tokio::test]
async fn shutdown_ends_with_its_grace_period() {
    let dir = plugin_dir(&["primes"]);
    let (mut child, addr, _lines) = start(|c| {
        c.args(["--plugin-dir", dir.path().to_str().unwrap()]).args([
            "--execution-mode",
            "interpreter",
            "--call-timeout-ms",
            "30000",
            "--shutdown-grace-secs",
            "1",
        ]);
    });
    let url = format!("http://{addr}/run");
    // Counting the primes below a million in the interpreter takes several seconds.
    let slow = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(&url)
            .json(&serde_json::json!({"plugin": "primes", "input": 1_000_000}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<serde_json::Value>().await.unwrap(), std::time::Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_signal(&child, "TERM");
    let signalled = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    let took = signalled.elapsed();
    let (status, body, answered) = slow.await.unwrap();
    let answered = answered.duration_since(signalled);
    println!("1 s grace: the running call was answered {answered:?} after SIGTERM, the process exited after {took:?}");
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("overloaded")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("shutting down"), "{body}");
    assert!(answered < Duration::from_secs(1), "answered within the grace period, not after {answered:?}");
    assert!(took < Duration::from_millis(1400), "exited {took:?} after SIGTERM with a 1 s grace period");
    assert!(exit.success(), "{exit}");
}

/// In-process, the native code that keeps WasmEdge's fault handlers installed (see
/// `runtime::fault_handlers`) is compiled at the first start and kept in the AOT cache like a
/// plugin's, so a restart finds it rather than compiling it again.
#[test]
fn the_fault_handler_keeper_is_compiled_at_the_first_start_only() {
    use std::os::unix::fs::MetadataExt;
    let plugins = plugin_dir(&[]);
    let aot = tempfile::TempDir::new().unwrap();
    let cache = aot.path().join("aot");
    // (name, inode) of every file in the cache: a compiled artifact is renamed into place, so
    // compiling it again would give it a new inode.
    let artifacts = || -> Vec<(std::ffi::OsString, u64)> {
        let mut files: Vec<_> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|entry| entry.unwrap())
            .map(|entry| (entry.file_name(), entry.metadata().unwrap().ino()))
            .collect();
        files.sort();
        files
    };
    let mut seen = None;
    for _ in 0..2 {
        let (server, _addr, _logs) = start(|c| {
            c.env("AOT_CACHE_DIR", &cache).args([
                "--plugin-dir",
                plugins.path().to_str().unwrap(),
                "--isolation",
                "in-process",
            ]);
        });
        drop(server);
        let now = artifacts();
        assert_eq!(now.len(), 1, "the keeper's artifact, and no plugin's: {now:?}");
        assert_eq!(seen.get_or_insert_with(|| now.clone()), &now, "found again, not compiled again");
    }
}
