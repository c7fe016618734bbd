//! Lanes: under load, quick calls are queued on worker processes busy with calls before them
//! (`plugin_host`'s `runner::worker::lane`). Each call must still get its own answer, a crash or
//! a missed deadline must be blamed on the call that caused it, and the calls queued behind
//! that one must run elsewhere as if never queued.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use plugin_host::{FailureKind, Host, Isolation, Observer, PluginName, Target, runtime::ExecutionMode};

use crate::support::{fault_bytes, local_store, plugin_dir, runtime_config, settings, wat_plugin, workers};

/// Counts the calls queued on busy workers.
#[derive(Debug, Default)]
struct Queued(AtomicUsize);

impl Observer for Queued {
    fn call_queued(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A host with worker processes over `dir`, counting the calls queued on busy workers: as many
/// workers as the pool's default, so that they are busy enough to queue on with however many
/// cores run the test; calls due in 500 ms; the ABI check as `check_abi` says (a hand-written
/// plugin needs it off); and no quarantine: the crashes and missed deadlines here are
/// deliberate and many.
fn busy_host(dir: &std::path::Path, check_abi: bool) -> (Host, Arc<Queued>) {
    let mut runtime = runtime_config(ExecutionMode::Aot);
    runtime.enforce_abi = check_abi;
    runtime.limits.call_timeout = Duration::from_millis(500);
    let mut pool = workers(plugin_host::WorkerSettings::default_workers());
    pool.quarantine_after = u32::MAX;
    let queued = Arc::new(Queued::default());
    let settings = settings(&runtime, Isolation::Workers(pool), 4096);
    let host = Host::with_observer(local_store(dir), settings, Arc::clone(&queued) as Arc<dyn Observer>).unwrap();
    (host, queued)
}

/// What each call must answer: `hello` adds one to twice its input; `crash-on-some-inputs`
/// crashes its worker on multiples of 7 and echoes anything else; `slow-on-1000` loops past its
/// deadline on 1000 and echoes anything else.
fn expected(plugin: &str, input: i32) -> Result<i32, FailureKind> {
    match plugin {
        "hello" => Ok(2 * input + 1),
        "crash-on-some-inputs" if input % 7 == 0 => Err(FailureKind::PluginCrashed),
        "slow-on-1000" if input == 1000 => Err(FailureKind::PluginTimeout),
        _ => Ok(input),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_queued_on_busy_workers_keep_their_answers_and_their_blame() {
    let dir = plugin_dir(&["hello"]);
    std::fs::write(dir.path().join("crash-on-some-inputs.wasm"), fault_bytes("crash-on-some-inputs")).unwrap();
    let slow = wat_plugin(
        "(i32.const 0)",
        "(block (loop (br_if 1 (i32.ne (local.get $input) (i32.const 1000))) (br 0))) (local.get $input)",
        "(i32.const 0)",
    );
    std::fs::write(dir.path().join("slow-on-1000.wasm"), slow).unwrap();
    let (host, queued) = busy_host(dir.path(), false);
    let plugins = ["hello", "crash-on-some-inputs", "slow-on-1000"];
    let target = |plugin: &str| Target::from(PluginName::new(plugin).unwrap());
    // Quick calls first: only plugins whose recent calls were quick are queued.
    for plugin in plugins {
        for input in 1..=32 {
            assert_eq!(host.run(&target(plugin), input).await.map(|ran| ran.output).ok(), expected(plugin, input).ok());
        }
    }

    // Bursts of concurrent calls, a few of which crash their worker or miss their deadline,
    // until some have been queued (the first burst nearly always does it).
    let mut bursts = 0;
    while queued.0.load(Ordering::Relaxed) == 0 || bursts < 2 {
        bursts += 1;
        assert!(bursts <= 20, "no call was ever queued on a busy worker");
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..600 {
            let (plugin, input) = match i % 3 {
                0 => ("hello", i),
                // One crash and one deadline per burst, in the middle of it.
                1 if i == 301 => ("crash-on-some-inputs", 7 * i),
                1 => ("crash-on-some-inputs", 7 * i + 1),
                _ if i == 302 => ("slow-on-1000", 1000),
                _ => ("slow-on-1000", i),
            };
            let (host, target) = (host.clone(), target(plugin));
            calls.spawn(async move { (plugin, input, host.run(&target, input).await) });
        }
        while let Some(joined) = calls.join_next().await {
            let (plugin, input, result) = joined.unwrap();
            let got = result.map(|ran| ran.output).map_err(|error| error.kind());
            assert_eq!(got, expected(plugin, input), "{plugin}({input})");
        }
    }
    // And the pool is whole again: every plugin answers.
    for plugin in plugins {
        assert_eq!(host.run(&target(plugin), 5).await.map(|ran| ran.output).ok(), Some(expected(plugin, 5).unwrap()));
    }
}

/// What each v2 call must answer: `text`'s `upper` upper-cases; `redact`, configured to mask
/// card numbers only, masks the card and leaves the rest; `v2-hostile`'s `echo` echoes, and its
/// `spin` (a stream, called as one whole stream) loops past its deadline.
fn expected_v2(plugin: &str, function: &str, input: &str) -> Result<String, FailureKind> {
    match (plugin, function) {
        ("text", "upper") => Ok(input.to_uppercase()),
        ("redact", "redact") => Ok(input.replace("4111111111111111", "************1111")),
        ("v2-hostile", "spin") => Err(FailureKind::PluginTimeout),
        _ => Ok(input.to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_calls_queued_on_busy_workers_keep_their_answers_their_configuration_and_their_blame() {
    let dir = plugin_dir(&["text", "redact"]);
    std::fs::write(dir.path().join("v2-hostile.wasm"), fault_bytes("v2-hostile")).unwrap();
    std::fs::write(dir.path().join("redact.config.json"), r#"{"mask": ["cards"]}"#).unwrap();
    let (host, queued) = busy_host(dir.path(), true);
    let target = |plugin: &str| Target::from(PluginName::new(plugin).unwrap());
    let call = |host: Host, plugin: &'static str, function: &'static str, input: String| async move {
        let result = host.call(&target(plugin), function, input.clone().into_bytes()).await;
        let got = result.map(|ran| String::from_utf8(ran.output).unwrap()).map_err(|error| error.kind());
        assert_eq!(got, expected_v2(plugin, function, &input), "{plugin}.{function}({input})");
    };
    let calls = [("text", "upper"), ("redact", "redact"), ("v2-hostile", "echo")];
    // Quick calls first: only plugins whose recent calls were quick are queued.
    for (plugin, function) in calls {
        for i in 0..32 {
            call(host.clone(), plugin, function, format!("a@b.io 4111111111111111 #{i}")).await;
        }
    }
    let mut bursts = 0;
    while queued.0.load(Ordering::Relaxed) == 0 || bursts < 2 {
        bursts += 1;
        assert!(bursts <= 20, "no v2 call was ever queued on a busy worker");
        let mut running = tokio::task::JoinSet::new();
        for i in 0..600 {
            let (plugin, function) = if i == 301 { ("v2-hostile", "spin") } else { calls[i % 3] };
            running.spawn(call(host.clone(), plugin, function, format!("a@b.io 4111111111111111 #{i}")));
        }
        while let Some(joined) = running.join_next().await {
            joined.unwrap();
        }
    }
    for (plugin, function) in calls {
        call(host.clone(), plugin, function, "after".into()).await;
    }
}
