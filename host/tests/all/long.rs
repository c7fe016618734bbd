//! Long runs, kept out of the default test run because each takes minutes: resident memory over
//! 10,000 hot swaps, over 1,000 hot swaps in-process, and over a rotation through 1,000
//! distinct plugins, and a soak that mixes hostile clients, hostile plugins, hot swaps and many
//! plugins for several minutes. Each runs the real `host` binary with its default settings
//! (worker processes, AOT; but for the in-process one) and prints its figures. Run them with
//!
//! ```sh
//! cargo nextest run -p host --run-ignored only -E 'test(/^long::/)' --no-capture
//! ```
//!
//! `LONG_SWAPS`, `LONG_IN_PROCESS_SWAPS`, `LONG_PLUGINS` and `LONG_SOAK_SECS` change their
//! length.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    binary::{Running, start},
    support::{fault_bytes, plugin_bytes, replace_atomically},
};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Resident memory of a process and every process it started (its workers, started from any of
/// its threads), in KiB.
pub(crate) fn resident_kib(pid: u32) -> u64 {
    let children: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|c| c.parse().ok()).collect::<Vec<_>>())
        .collect();
    std::iter::once(pid)
        .chain(children)
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// `base` with a custom section holding `version` appended: another file, another content
/// hash, the same behaviour.
pub(crate) fn version_of(base: &[u8], version: u32) -> Vec<u8> {
    let mut wasm = base.to_vec();
    // Section id 0 (custom), size 9, name "swap" (4 bytes), then the version.
    wasm.extend_from_slice(&[0, 9, 4, b's', b'w', b'a', b'p']);
    wasm.extend_from_slice(&version.to_le_bytes());
    wasm
}

/// One `POST /run` over a fresh HTTP/1.0 connection: the status and the JSON answer.
pub(crate) fn call(addr: &str, body: &Value) -> (u16, Value) {
    let body = body.to_string();
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request =
        format!("POST /run HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    socket.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    socket.read_to_string(&mut answer).expect("answer");
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let json =
        answer.split_once("\r\n\r\n").and_then(|(_, body)| serde_json::from_str(body).ok()).unwrap_or(Value::Null);
    (status, json)
}

pub(crate) struct Host {
    pub(crate) child: Running,
    pub(crate) addr: String,
    _aot: tempfile::TempDir,
}

/// The real binary over `plugins`, with defaults but for `settings`, and a private AOT cache
/// (thousands of versions would otherwise fill the shared one).
pub(crate) fn host(plugins: &Path, settings: &[(&str, &str)]) -> Host {
    let aot = tempfile::TempDir::new().unwrap();
    let (child, addr, _logs) = start(|command| {
        command.env("PLUGIN_DIR", plugins).env("AOT_CACHE_DIR", aot.path()).env("RUST_LOG", "warn");
        for (name, value) in settings {
            command.env(name, value);
        }
    });
    Host { child, addr, _aot: aot }
}

/// Peak memory of the first part of a run and of the rest: "bounded" means the rest does not
/// climb past the first part's peak by more than a quarter (plus 32 MiB of noise).
fn assert_bounded(what: &str, samples: &[(u64, u64)], warm_up: u64) {
    let peak = |keep: &dyn Fn(u64) -> bool| samples.iter().filter(|(i, _)| keep(*i)).map(|(_, kib)| *kib).max();
    let split = samples.last().map_or(0, |(i, _)| i / 2).max(warm_up);
    let (Some(first), Some(rest)) = (peak(&|i| i >= warm_up && i < split), peak(&|i| i >= split)) else {
        panic!("{what}: too few samples: {samples:?}");
    };
    println!("{what}: peak {first} KiB in the first half, {rest} KiB in the second");
    assert!(rest <= first + first / 4 + 32 * 1024, "{what}: memory keeps growing: {samples:?}");
}

#[test]
#[ignore = "long: minutes; run with --run-ignored only (see the module documentation)"]
fn long_memory_stays_bounded_over_ten_thousand_hot_swaps() {
    let swaps = setting("LONG_SWAPS", 10_000) as u32;
    let dir = tempfile::TempDir::new().unwrap();
    let base = plugin_bytes("hello");
    std::fs::write(dir.path().join("hello.wasm"), &base).unwrap();
    let host = host(dir.path(), &[]);
    let started = Instant::now();
    let mut samples = Vec::new();
    for i in 0..swaps {
        replace_atomically(dir.path(), "hello", &version_of(&base, i));
        assert_eq!(
            call(&host.addr, &json!({"plugin": "hello", "input": 21})),
            (200, json!({"output": 43})),
            "swap {i}"
        );
        if i % 250 == 0 {
            let kib = resident_kib(host.child.id());
            println!("swap {i:>6}: {kib:>8} KiB resident (server and workers), {} s", started.elapsed().as_secs());
            samples.push((u64::from(i), kib));
        }
    }
    println!("{swaps} hot swaps in {:.0} s", started.elapsed().as_secs_f64());
    assert_bounded("hot swaps", &samples, 500);
}

#[test]
#[ignore = "long: minutes; run with --run-ignored only (see the module documentation)"]
fn long_in_process_memory_stays_within_40_mib_over_a_thousand_hot_swaps() {
    // Issue 28: in-process, each hot swap used to keep about 290 KB for good (600 swaps took a
    // server from 61 to 234 MB). Each swap here is a new version, compiled and called once.
    let swaps = setting("LONG_IN_PROCESS_SWAPS", 1_000) as u32;
    let dir = tempfile::TempDir::new().unwrap();
    let base = plugin_bytes("hello");
    std::fs::write(dir.path().join("hello.wasm"), &base).unwrap();
    let host = host(dir.path(), &[("ISOLATION", "in-process")]);
    let pid = host.child.id();
    assert_eq!(call(&host.addr, &json!({"plugin": "hello", "input": 21})), (200, json!({"output": 43})));
    let (before, maps_before) = (resident_kib(pid), mappings(pid));
    println!("before: {before:>8} KiB resident, {maps_before} mappings");
    let started = Instant::now();
    for i in 1..=swaps {
        replace_atomically(dir.path(), "hello", &version_of(&base, i));
        assert_eq!(
            call(&host.addr, &json!({"plugin": "hello", "input": 21})),
            (200, json!({"output": 43})),
            "swap {i}"
        );
        if i % 100 == 0 {
            println!(
                "swap {i:>5}: {:>8} KiB resident, {} mappings, {} s",
                resident_kib(pid),
                mappings(pid),
                started.elapsed().as_secs()
            );
        }
    }
    let (after, maps_after) = (resident_kib(pid), mappings(pid));
    println!(
        "after {swaps} hot swaps in {:.0} s: {after} KiB resident ({:+} KiB, {:.1} KiB per swap), {maps_after} mappings ({:+})",
        started.elapsed().as_secs_f64(),
        after as i64 - before as i64,
        (after as f64 - before as f64) / f64::from(swaps),
        maps_after as i64 - maps_before as i64,
    );
    assert!(after <= before + 40 * 1024, "grew from {before} to {after} KiB over {swaps} hot swaps");
}

/// How many mappings a process has (`/proc/<pid>/maps` lines).
pub(crate) fn mappings(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).map_or(0, |maps| maps.lines().count())
}

#[test]
#[ignore = "long: minutes; run with --run-ignored only (see the module documentation)"]
fn long_memory_stays_bounded_over_a_rotation_through_a_thousand_plugins() {
    let plugins = setting("LONG_PLUGINS", 1_000) as u32;
    let dir = tempfile::TempDir::new().unwrap();
    let base = plugin_bytes("hello");
    for i in 0..plugins {
        std::fs::write(dir.path().join(format!("p{i:04}.wasm")), version_of(&base, i)).unwrap();
    }
    let host = host(dir.path(), &[]);
    let started = Instant::now();
    let mut samples = Vec::new();
    // Twice round: the second round finds every plugin evicted from the caches again.
    for round in 0..2 {
        for i in 0..plugins {
            let name = format!("p{i:04}");
            assert_eq!(call(&host.addr, &json!({"plugin": name, "input": 1})), (200, json!({"output": 3})), "{name}");
            let step = u64::from(round * plugins + i);
            if step % 100 == 0 {
                let kib = resident_kib(host.child.id());
                println!("call {step:>5}: {kib:>8} KiB resident (server and workers)");
                samples.push((step, kib));
            }
        }
    }
    println!("{} calls over {plugins} plugins in {:.0} s", 2 * plugins, started.elapsed().as_secs_f64());
    assert_bounded("plugin rotation", &samples, 200);
}

/// Hostile clients: connections that send half a request and wait, bytes that are not HTTP,
/// oversized bodies, and a stream whose client stops sending.
fn hostile_client(addr: &str, round: u64) {
    let connect = || {
        let socket = TcpStream::connect(addr).ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        Some(socket)
    };
    match round % 4 {
        0 => {
            // Half-sent headers, held until the server's idle timeout closes them.
            let held: Vec<_> = (0..20)
                .filter_map(|_| {
                    let mut socket = connect()?;
                    socket.write_all(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Le").ok()?;
                    Some(socket)
                })
                .collect();
            std::thread::sleep(Duration::from_secs(3));
            drop(held);
        }
        1 => {
            if let Some(mut socket) = connect() {
                let _ = socket.write_all(&[0xde, 0xad, 0xbe, 0xef, b'\r', b'\n', b'\r', b'\n']);
                let _ = socket.read_to_end(&mut Vec::new());
            }
        }
        2 => {
            if let Some(mut socket) = connect() {
                let _ = socket.write_all(b"POST /run HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{\"plugin\":");
                let _ = socket.write_all(&vec![b' '; 1 << 20]);
                let _ = socket.read_to_end(&mut Vec::new());
            }
        }
        _ => {
            if let Some(mut socket) = connect() {
                let _ = socket.write_all(
                    b"POST /plugins/sha256/functions/sha256sum HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nabc",
                );
                let _ = socket.read_to_end(&mut Vec::new());
            }
        }
    }
}

#[test]
#[ignore = "long: minutes; run with --run-ignored only (see the module documentation)"]
fn long_soak_hostile_clients_hostile_plugins_hot_swaps_and_many_plugins() {
    let seconds = setting("LONG_SOAK_SECS", 300);
    let dir = tempfile::TempDir::new().unwrap();
    for name in ["hello", "text", "sha256", "csvsum"] {
        std::fs::write(dir.path().join(format!("{name}.wasm")), plugin_bytes(name)).unwrap();
    }
    for fault in ["loop-process", "traps", "crash-on-some-inputs", "v2-hostile"] {
        std::fs::write(dir.path().join(format!("{fault}.wasm")), fault_bytes(fault)).unwrap();
    }
    let base = plugin_bytes("hello");
    for i in 0..300 {
        std::fs::write(dir.path().join(format!("p{i:03}.wasm")), version_of(&base, 1_000_000 + i)).unwrap();
    }
    std::fs::write(dir.path().join("swapped.wasm"), &base).unwrap();
    // With the ABI check on (as in production), `crash-on-some-inputs` (it recurses) is refused
    // with `abi_violation`; the plugins that loop, trap or lie about their output pass the check
    // and must be contained at run time.
    let host = host(dir.path(), &[("CALL_TIMEOUT_MS", "200"), ("IDLE_TIMEOUT_SECS", "2"), ("STREAM_IDLE_SECS", "2")]);
    let addr = host.addr.clone();
    let pid = host.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let mut threads = Vec::new();
    // Callers: good and hostile plugins, many plugins; every answer must be one of the expected.
    for client in 0..6u64 {
        let (addr, stop, answered) = (addr.clone(), Arc::clone(&stop), Arc::clone(&answered));
        threads.push(std::thread::spawn(move || {
            let mut i = client;
            while !stop.load(Ordering::Relaxed) {
                i += 6;
                let (request, allowed): (Value, &[u16]) = match i % 8 {
                    0 => (json!({"plugin": "hello", "input": 21}), &[200]),
                    1 => (json!({"plugin": "text", "function": "upper", "input": "soak"}), &[200]),
                    2 => (json!({"plugin": "traps", "input": 1 + (i / 8) % 5}), &[500]),
                    3 => (json!({"plugin": "crash-on-some-inputs", "input": 7}), &[500]),
                    4 => (json!({"plugin": "loop-process", "input": 1}), &[504, 503]),
                    5 => (json!({"plugin": "v2-hostile", "function": "overflow", "input": "x"}), &[500]),
                    6 => (json!({"plugin": format!("p{:03}", (i / 8) % 300), "input": 1}), &[200]),
                    _ => (json!({"plugin": "swapped", "input": 4}), &[200]),
                };
                let (status, body) = call(&addr, &request);
                assert!(allowed.contains(&status), "{request} -> {status} {body}");
                assert_ne!(body["error"]["code"], "internal_error", "{request} -> {body}");
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Hot swaps: a new version of `swapped` every 100 ms.
    {
        let (dir, stop) = (dir.path().to_owned(), Arc::clone(&stop));
        let base = base.clone();
        threads.push(std::thread::spawn(move || {
            let mut version = 0;
            while !stop.load(Ordering::Relaxed) {
                replace_atomically(&dir, "swapped", &version_of(&base, version));
                version += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }
    // Hostile clients.
    for client in 0..2u64 {
        let (addr, stop) = (addr.clone(), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            let mut round = client;
            while !stop.load(Ordering::Relaxed) {
                hostile_client(&addr, round);
                round += 1;
            }
        }));
    }

    let started = Instant::now();
    let mut samples = Vec::new();
    let files_at_start = open_files(pid);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(10));
        let elapsed = started.elapsed().as_secs();
        let kib = resident_kib(pid);
        println!(
            "{elapsed:>4} s: {kib:>8} KiB resident, {} open files, {} answers",
            open_files(pid),
            answered.load(Ordering::Relaxed)
        );
        samples.push((elapsed, kib));
        assert!(host_alive(pid), "the server died");
    }
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("a soak client failed (see its panic above)");
    }
    // Idle and half-sent connections have been closed; the server answers as on the first day.
    std::thread::sleep(Duration::from_secs(3));
    let files_at_end = open_files(pid);
    println!(
        "{} answers in {seconds} s; open files {files_at_start} at the start, {files_at_end} at the end",
        answered.load(Ordering::Relaxed)
    );
    assert_eq!(call(&addr, &json!({"plugin": "hello", "input": 21})), (200, json!({"output": 43})));
    assert!(files_at_end <= files_at_start + 16, "file descriptors leak: {files_at_start} -> {files_at_end}");
    assert_bounded("soak", &samples, 30);
}

fn host_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| !s.contains("State:\tZ"))
}
