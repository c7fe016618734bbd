//! Crash containment: hostile plugins run in worker processes and never take the server down.
//!
//! The fault plugins (`plugins/faults/`, built into `target/plugin-fixtures/faults/`) are loaded with
//! the ABI check off, as if they had skipped `check-abi`: the server must survive them anyway.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use host::metrics::Metrics;
use plugin_host::{
    runner::{Calls, Inspects, WorkerPoolRunner, WorkerSettings},
    runtime::{ExecutionMode, RuntimeConfig},
};
use serde_json::{Value, json};

use crate::support::{TestServer, fault_bytes, local_store, plugin_bytes, runtime_config, state_with, workers};

const FAULTS: [&str; 10] = [
    "loop-process",
    "loop-init",
    "deep-recursion",
    "shadow-stack-recursion",
    "grow-memory",
    "huge-memory",
    "traps",
    "invalid-module",
    "crash-on-some-inputs",
    "data-outside-memory",
];

struct Isolated {
    server: TestServer,
    _dir: tempfile::TempDir,
}

/// A server whose plugins run in worker processes, over a folder with `hello`, `abi` and every
/// fault plugin, with the ABI check off.
async fn isolated_server(timeout: Duration, settings: impl FnOnce(&mut WorkerSettings)) -> Isolated {
    let dir = crate::support::plugin_dir(&["hello", "abi"]);
    for fault in FAULTS {
        std::fs::write(dir.path().join(format!("{fault}.wasm")), fault_bytes(fault)).unwrap();
    }
    let mut runtime = RuntimeConfig { enforce_abi: false, ..runtime_config(ExecutionMode::Aot) };
    runtime.limits.call_timeout = timeout;
    let mut worker_settings = workers(2);
    settings(&mut worker_settings);
    let host_settings = crate::support::settings(&runtime, plugin_host::Isolation::Workers(worker_settings), 64);
    let server = TestServer::start(state_with(local_store(dir.path()), host_settings)).await;
    Isolated { server, _dir: dir }
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[tokio::test]
async fn every_fault_gets_its_error_and_the_server_keeps_serving() {
    let isolated = isolated_server(Duration::from_millis(300), |_| {}).await;
    let server = &isolated.server;
    // (plugin, input, status, code, words the message must contain)
    let cases: &[(&str, i32, u16, Option<&str>, &str)] = &[
        ("loop-process", 1, 504, Some("plugin_timeout"), "deadline"),
        ("loop-init", 1, 504, Some("plugin_timeout"), "deadline"),
        ("deep-recursion", 1, 500, Some("plugin_crashed"), "crashed its worker"),
        ("shadow-stack-recursion", 1, 500, Some("plugin_trapped"), "out-of-bounds memory"),
        ("huge-memory", 1, 500, Some("memory_limit"), "pages of memory"),
        ("traps", 1, 500, Some("plugin_trapped"), "unreachable"),
        ("traps", 2, 500, Some("plugin_trapped"), "division by zero"),
        ("traps", 3, 500, Some("plugin_trapped"), "integer overflow"),
        ("traps", 4, 500, Some("plugin_trapped"), "out-of-bounds memory"),
        ("traps", 5, 500, Some("plugin_trapped"), "indirect call"),
        ("invalid-module", 1, 500, Some("invalid_module"), "not a valid"),
        ("crash-on-some-inputs", 7, 500, Some("plugin_crashed"), "crashed its worker"),
        ("data-outside-memory", 1, 500, Some("plugin_instantiation_failed"), "could not be instantiated"),
    ];
    for &(plugin, input, status, expected_code, words) in cases {
        let (got_status, body) = server.run(plugin, input).await;
        assert_eq!((got_status, code(&body)), (status, expected_code), "{plugin}({input}): {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(words), "{plugin}({input}): {message:?} lacks {words:?}");
        // Right after each fault, a normal plugin answers correctly.
        assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })), "after {plugin}({input})");
    }
    // Growing memory stops at the host's page cap (64 pages by default): an answer, not a crash.
    assert_eq!(server.run("grow-memory", 1).await, (200, json!({ "output": 64 })));
    // A plugin that crashes only on some inputs serves the others.
    assert_eq!(server.run("crash-on-some-inputs", 8).await, (200, json!({ "output": 8 })));
    assert_eq!(server.run("traps", 9).await, (200, json!({ "output": 9 })));
}

#[tokio::test]
async fn a_plugin_that_keeps_crashing_is_quarantined_and_others_are_unaffected() {
    let isolated = isolated_server(Duration::from_millis(300), |s| {
        s.quarantine_after = 2;
        s.quarantine_base = Duration::from_secs(2);
    })
    .await;
    let server = &isolated.server;
    for _ in 0..2 {
        let (status, body) = server.run("deep-recursion", 1).await;
        assert_eq!((status, code(&body)), (500, Some("plugin_crashed")), "{body}");
    }
    let response = server
        .client
        .post(server.url("/run"))
        .json(&json!({"plugin": "deep-recursion", "input": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "2");
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), Some("plugin_quarantined"), "{body}");

    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })), "other plugins are unaffected");
    let status: Value =
        server.client.get(server.url("/plugins/deep-recursion")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["quarantine"]["consecutive_crashes"], 2, "{status}");
    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"plugin_host_worker_crashes_total{plugin="deep-recursion"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"plugin_host_plugin_quarantined{plugin="deep-recursion"} 1"#), "{metrics}");

    // After the backoff the plugin is tried again (and crashes again, doubling the quarantine).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = server.run("deep-recursion", 1).await;
    assert_eq!((status, code(&body)), (500, Some("plugin_crashed")), "{body}");
    let (status, body) = server.run("deep-recursion", 1).await;
    assert_eq!((status, code(&body)), (503, Some("plugin_quarantined")), "{body}");
}

#[tokio::test]
async fn workers_keep_hot_swap_and_every_version_answers() {
    let isolated = isolated_server(Duration::from_secs(1), |_| {}).await;
    let server = &isolated.server;
    let dir = isolated._dir.path();
    assert_eq!(server.run("hello", 5).await, (200, json!({ "output": 11 })));
    crate::support::replace_atomically(dir, "hello", &plugin_bytes("simple"));
    // Both workers must pick up the new version: ask more times than there are workers.
    for _ in 0..6 {
        assert_eq!(server.run("hello", 5).await, (200, json!({ "output": 6 })));
    }

    // A version the workers cannot run (memory over the host's cap, refused by WasmEdge
    // inside a worker) does not replace the one that works.
    crate::support::replace_atomically(dir, "hello", &fault_bytes("huge-memory"));
    for _ in 0..3 {
        assert_eq!(server.run("hello", 5).await, (200, json!({ "output": 6 })), "still the previous version");
    }
    let status: Value = server.client.get(server.url("/plugins/hello")).send().await.unwrap().json().await.unwrap();
    let last_error = status["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("pages of memory"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_looping_plugin_never_takes_every_worker() {
    // Three workers, so one plugin may hold two. Six clients keep calling a plugin that loops
    // to its 2 s deadline: without a per-plugin limit they would hold all three workers and
    // every other call would wait for a deadline to pass.
    let isolated = isolated_server(Duration::from_secs(2), |s| {
        s.workers = 3;
        s.queue_timeout = Duration::from_secs(5);
    })
    .await;
    let server = Arc::new(isolated.server);
    let loopers: Vec<_> = (0..6)
        .map(|_| {
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let mut codes = Vec::new();
                for _ in 0..2 {
                    let (status, body) = server.run("loop-process", 1).await;
                    codes.push((status, code(&body).map(str::to_owned)));
                }
                codes
            })
        })
        .collect();
    // Let the loopers take their share and queue behind it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        let started = std::time::Instant::now();
        assert_eq!(server.run("hello", i).await, (200, json!({ "output": 2 * i + 1 })));
        // Served by the worker the looping plugin may not take: far sooner than any of the
        // looping calls can end.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "hello waited {:?} behind the looping plugin",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for looper in loopers {
        for (status, code) in looper.await.unwrap() {
            // Each looping call runs to its deadline, or waits its turn past the queue timeout.
            assert!(
                (status, code.as_deref()) == (504, Some("plugin_timeout"))
                    || (status, code.as_deref()) == (503, Some("overloaded")),
                "{status} {code:?}"
            );
        }
    }
}

/// Resident memory of a process, in KiB.
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// The worker processes of this test process (children running the worker argument).
fn worker_pids() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            // Field 4 of stat is the parent pid (after the parenthesised command name).
            let parent = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).unwrap_or("");
            parent == me && String::from_utf8_lossy(&cmdline).contains("__plugin-worker")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_ten_thousand_mixed_requests_a_third_hostile() {
    // The deadline must leave a crashing call time to crash on a loaded 2-core machine (a
    // native stack overflow takes a few milliseconds of CPU), or it is reported as a timeout.
    let isolated = isolated_server(Duration::from_millis(300), |s| s.quarantine_after = 1_000_000).await;
    let server = Arc::new(isolated.server);
    let before = resident_kib(std::process::id());

    // Each case: plugin, input, and what a correct answer is.
    #[derive(Clone, Copy, Debug)]
    enum Expect {
        Output(i64),
        Error(u16, &'static str),
    }
    let case = |i: i32| -> (&'static str, i32, Expect) {
        match i % 9 {
            0 => ("traps", 1 + (i / 9) % 5, Expect::Error(500, "plugin_trapped")),
            // Crashes and timeouts each cost a worker restart, so they alternate with cheaper
            // hostility: memory growth to the cap, a shadow-stack overflow.
            1 if (i / 9) % 3 == 0 => ("crash-on-some-inputs", 7 * (i / 9 % 50), Expect::Error(500, "plugin_crashed")),
            1 => ("grow-memory", i, Expect::Output(64)),
            2 if (i / 9) % 3 == 0 => ("loop-process", i, Expect::Error(504, "plugin_timeout")),
            2 => ("shadow-stack-recursion", i, Expect::Error(500, "plugin_trapped")),
            3 => ("hello", i % 1000, Expect::Output(2 * i64::from(i % 1000) + 1)),
            4 => ("abi", i % 46340, Expect::Output(i64::from(i % 46340).pow(2))),
            5 => ("crash-on-some-inputs", 7 * (i % 1000) + 1, Expect::Output(7 * i64::from(i % 1000) + 1)),
            6 => ("primes", 1000, Expect::Output(168)),
            7 => ("checksum", 12345, Expect::Output(5)),
            _ => ("simple", i, Expect::Output(i64::from(i) + 1)),
        }
    };
    for name in ["primes", "checksum", "simple"] {
        std::fs::write(isolated._dir.path().join(format!("{name}.wasm")), plugin_bytes(name)).unwrap();
    }

    let started = std::time::Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (server, next) = (Arc::clone(&server), Arc::clone(&next));
            tokio::spawn(async move {
                let mut seen = BTreeMap::<String, u32>::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= 10_000 {
                        return seen;
                    }
                    let (plugin, input, expect) = case(i);
                    let (status, body) = server.run(plugin, input).await;
                    match expect {
                        Expect::Output(output) => {
                            assert_eq!((status, &body), (200, &json!({ "output": output })), "{plugin}({input})")
                        }
                        Expect::Error(want_status, want_code) => {
                            assert_eq!(
                                (status, code(&body)),
                                (want_status, Some(want_code)),
                                "{plugin}({input}): {body}"
                            )
                        }
                    }
                    *seen.entry(format!("{status}")).or_default() += 1;
                }
            })
        })
        .collect();
    let mut statuses = BTreeMap::<String, u32>::new();
    let mut peak_workers = 0;
    for client in clients {
        peak_workers = peak_workers.max(worker_pids().len());
        for (status, count) in client.await.unwrap() {
            *statuses.entry(status).or_default() += count;
        }
    }
    let elapsed = started.elapsed();
    let after = resident_kib(std::process::id());
    let workers = worker_pids();
    let worker_rss: Vec<u64> = workers.iter().map(|&pid| resident_kib(pid)).collect();
    println!(
        "soak: 10,000 requests in {elapsed:?} ({:.0}/s), answers by status {statuses:?}; server RSS {before} KiB -> {after} KiB; \
         workers alive {} (peak seen {peak_workers}), worker RSS KiB {worker_rss:?}",
        10_000.0 / elapsed.as_secs_f64(),
        workers.len(),
    );
    assert_eq!(statuses.values().sum::<u32>(), 10_000);
    assert!(workers.len() <= 2, "worker count stays at the pool size: {workers:?}");
    assert!(after < before + 64 * 1024, "server RSS grew from {before} KiB to {after} KiB");
    assert!(worker_rss.iter().all(|&kib| kib < 256 * 1024), "worker RSS {worker_rss:?}");
}

/// A new plugin version that cannot be loaded *now* (every worker is busy) is not a bad
/// version: the next call loads it. (It used to be remembered like a broken file, so the old
/// version served until the file changed again.)
#[test]
fn a_transient_load_failure_is_retried_on_the_next_call() {
    let dir = crate::support::plugin_dir(&["hello"]);
    std::fs::write(dir.path().join("loop-process.wasm"), fault_bytes("loop-process")).unwrap();
    let mut runtime = runtime_config(ExecutionMode::Aot);
    runtime.limits.call_timeout = Duration::from_millis(600);
    let mut settings = WorkerSettings::new(PathBuf::from(env!("CARGO_BIN_EXE_host")));
    settings.workers = 1;
    settings.queue_timeout = Duration::from_millis(50);
    let runner = Arc::new(
        WorkerPoolRunner::new(local_store(dir.path()), runtime, settings, Arc::new(plugin_host::NoObserver), 16)
            .expect("workers start"),
    );
    let name = |n: &str| plugin_host::store::PluginName::new(n).unwrap();
    assert_eq!(runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 21).unwrap().output, 43);

    // Hold the only worker with a call that runs to its deadline, then publish a new version.
    let busy = std::thread::spawn({
        let runner = Arc::clone(&runner);
        move || runner.run(&plugin_host::store::PluginRef::from(&name("loop-process")), 1)
    });
    std::thread::sleep(Duration::from_millis(150));
    crate::support::replace_atomically(dir.path(), "hello", &plugin_bytes("abi"));
    // No worker can load the new version (nor run the old one) within the queue timeout.
    let overloaded = runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 21).unwrap_err();
    assert_eq!(overloaded.kind().code(), "overloaded", "{overloaded}");
    let status = runner.inspect(&plugin_host::store::PluginRef::from(&name("hello"))).unwrap();
    assert_eq!((status.loaded, status.last_error), (false, None), "a busy pool is no verdict on the file");

    let timed_out = busy.join().unwrap().unwrap_err();
    assert_eq!(timed_out.kind().code(), "plugin_timeout");
    // A worker is free again: the new version loads and answers (abi squares its input).
    assert_eq!(runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 21).unwrap().output, 441);
}

/// A worker killed from outside (an operator, the OOM killer) is nobody's fault: the call is
/// retried once on another worker and succeeds, and the plugin is not charged with a crash.
#[test]
fn a_worker_killed_from_outside_is_retried_not_blamed() {
    let dir = crate::support::plugin_dir(&["primes"]);
    let mut runtime = runtime_config(ExecutionMode::Interpreter);
    runtime.limits.call_timeout = Duration::from_secs(30);
    let mut settings = WorkerSettings::new(PathBuf::from(env!("CARGO_BIN_EXE_host")));
    settings.workers = 1;
    settings.quarantine_after = 1;
    let metrics = Arc::new(Metrics::new());
    let runner = Arc::new(
        WorkerPoolRunner::new(local_store(dir.path()), runtime, settings, Arc::clone(&metrics) as _, 16)
            .expect("workers start"),
    );
    let name = plugin_host::store::PluginName::new("primes").unwrap();
    assert_eq!(runner.run(&plugin_host::store::PluginRef::from(&name), 100).unwrap().output, 25, "loaded and warm");

    // A slow call (counting primes below 300000 in the interpreter), and an outside kill.
    let call = std::thread::spawn({
        let (runner, name) = (Arc::clone(&runner), name.clone());
        move || runner.run(&plugin_host::store::PluginRef::from(&name), 300_000)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(!call.is_finished(), "the kill must land while the call runs");
    let victims = worker_pids();
    assert_eq!(victims.len(), 1, "{victims:?}");
    let killed = std::process::Command::new("kill").arg("-KILL").arg(victims[0].to_string()).status().unwrap();
    assert!(killed.success());

    assert_eq!(call.join().unwrap().unwrap().output, 25997, "retried on another worker");
    let status = runner.inspect(&plugin_host::store::PluginRef::from(&name)).unwrap();
    assert!(status.quarantine.is_none(), "not blamed, even with quarantine after one crash");
    let text = metrics.encode();
    assert!(!text.contains(r#"plugin_host_worker_crashes_total{plugin="primes"} 1"#), "{text}");
}

/// Workers are replaced between calls after a number of module loads (WasmEdge keeps part of
/// every load), before they can grow into their memory limit in somebody's call.
#[test]
fn workers_are_recycled_after_many_loads_between_calls() {
    let names = ["hello", "abi", "simple", "checksum", "primes"];
    let dir = crate::support::plugin_dir(&names);
    let mut settings = WorkerSettings::new(PathBuf::from(env!("CARGO_BIN_EXE_host")));
    settings.workers = 1;
    settings.recycle_after_loads = 3;
    let runner = WorkerPoolRunner::new(
        local_store(dir.path()),
        runtime_config(ExecutionMode::Aot),
        settings,
        Arc::new(plugin_host::NoObserver),
        16,
    )
    .expect("workers start");
    let mut pids = Vec::new();
    for name in names {
        runner
            .run(&plugin_host::store::PluginRef::from(&plugin_host::store::PluginName::new(name).unwrap()), 7)
            .expect("every call succeeds");
        pids.push(worker_pids());
    }
    // Each version is loaded once to check it (and again by a fresh worker that runs it):
    // workers were replaced along the way, one at a time, and no call failed.
    let distinct: std::collections::BTreeSet<_> = pids.iter().flatten().collect();
    assert!(distinct.len() >= 2, "replaced after three loads: {pids:?}");
    assert!(pids.iter().all(|alive| alive.len() <= 1), "never more than the one worker: {pids:?}");
    assert_eq!(pids[0], pids[1], "the first worker served two versions: {pids:?}");
}

/// Calls made one at a time on a quiet machine go through the worker's shared slot, not its
/// socket (the worker writes nothing for them), and a crash or a deadline in the middle of
/// them is still contained and blamed on its call.
#[test]
fn calls_one_at_a_time_go_through_the_shared_slot_and_faults_are_still_contained() {
    let dir = crate::support::plugin_dir(&["hello"]);
    for fault in ["crash-on-some-inputs", "loop-process"] {
        std::fs::write(dir.path().join(format!("{fault}.wasm")), fault_bytes(fault)).unwrap();
    }
    let mut runtime = runtime_config(ExecutionMode::Aot);
    runtime.enforce_abi = false;
    runtime.limits.call_timeout = Duration::from_millis(300);
    let runner =
        WorkerPoolRunner::new(local_store(dir.path()), runtime, workers(1), Arc::new(plugin_host::NoObserver), 16)
            .expect("workers start");
    let run = |name: &str, input: i32| {
        let plugin = plugin_host::store::PluginName::new(name).unwrap();
        runner.run(&plugin_host::store::PluginRef::from(&plugin), input)
    };
    assert_eq!(run("hello", 0).unwrap().output, 1);
    let [worker] = worker_pids()[..] else { panic!("one worker: {:?}", worker_pids()) };
    // Without the slot the worker writes each answer to its socket: one write per call,
    // exactly. With it, a call falls back to the socket only when a side was descheduled past
    // its polling; on an idle machine that is almost never (0-2 writes per 100 calls), but
    // with every core busy elsewhere (other tests, or `yes` on each core) it was 51-100 per
    // 100, so only "fewer writes than calls" is certain.
    const CALLS: i32 = 100;
    let mut writes_per_round = Vec::new();
    for _round in 0..5 {
        let writes_before = write_calls(worker);
        for input in 0..CALLS {
            assert_eq!(run("hello", input).unwrap().output, 2 * input + 1);
        }
        writes_per_round.push(write_calls(worker) - writes_before);
    }
    let writes: u64 = writes_per_round.iter().sum();
    assert!(writes < 5 * CALLS as u64, "the worker wrote {writes_per_round:?} times in rounds of {CALLS} calls");

    let crashed = run("crash-on-some-inputs", 7).unwrap_err();
    assert_eq!(crashed.kind().code(), "plugin_crashed", "{crashed}");
    let late = run("loop-process", 1).unwrap_err();
    assert_eq!(late.kind().code(), "plugin_timeout", "{late}");
    for input in 0..10 {
        assert_eq!(run("hello", input).unwrap().output, 2 * input + 1, "after the faults");
    }
}

/// How many `write`-like system calls a process has made.
fn write_calls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap();
    io.lines().find_map(|line| line.strip_prefix("syscw:")).unwrap().trim().parse().unwrap()
}

/// `/readyz` says whether the host can serve, not only whether the store answers: with every
/// worker gone and none able to start (here its executable was removed), the replica is not
/// ready, and it is again once workers start.
#[tokio::test]
async fn readiness_follows_the_workers() {
    let dir = crate::support::plugin_dir(&["hello"]);
    let bin = tempfile::TempDir::new().unwrap();
    let executable = bin.path().join("host");
    std::fs::copy(env!("CARGO_BIN_EXE_host"), &executable).unwrap();
    let mut workers = WorkerSettings::new(executable.clone());
    workers.workers = 1;
    let settings =
        crate::support::settings(&runtime_config(ExecutionMode::Aot), plugin_host::Isolation::Workers(workers), 16);
    let server = TestServer::start(state_with(local_store(dir.path()), settings)).await;
    let readyz = || async {
        let response = server.client.get(server.url("/readyz")).send().await.unwrap();
        (response.status().as_u16(), response.json::<Value>().await.unwrap())
    };
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["workers"]["configured"].as_u64(), body["workers"]["alive"].as_u64()), (Some(1), Some(1)));

    std::fs::remove_file(&executable).unwrap();
    for pid in worker_pids() {
        std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status().unwrap();
    }
    // Calls now find their worker dead (the first may still reach it as it dies, which is
    // `worker_lost`) and cannot start another.
    for _ in 0..2 {
        let (status, body) = server.run("hello", 21).await;
        assert!(matches!(code(&body), Some("no_workers" | "worker_lost")), "{status} {body}");
    }
    let (status, body) = readyz().await;
    assert_eq!((status, code(&body)), (503, Some("no_workers")), "{body}");

    std::fs::copy(env!("CARGO_BIN_EXE_host"), &executable).unwrap();
    // A worker failing to start is no verdict on the plugin: the next call loads it again.
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
    let (status, body) = readyz().await;
    assert_eq!(status, 200, "{body}");
    assert!(body["workers"]["spawn_failure"].is_null(), "{body}");
}
