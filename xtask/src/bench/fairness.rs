//! The fairness run: what a plugin whose calls loop to their deadline costs other plugins.

use std::{fmt::Write as _, fs, path::Path, time::Duration};

use xshell::Shell;

use super::{Load, RunningServer, host_command, wrk_run};
use crate::{http::HttpClient, step};

/// `hello` under load alone, and next to clients calling a plugin that loops to its deadline.
#[derive(Debug)]
pub(super) struct Fairness {
    alone: Load,
    beside: Load,
    looping_clients: usize,
    looping_calls: u64,
}

/// Clients calling the looping plugin during the fairness run: more than there are workers.
pub(super) const LOOPING_CLIENTS: usize = 8;

/// What a plugin whose calls loop to their deadline costs other plugins: `hello` at c=16 on the
/// process server (default settings) alone, then while [`LOOPING_CLIENTS`] clients keep calling
/// `faults/loop-process`.
pub(super) fn fairness(sh: &Shell, wrk: &Path, lua: &Path, host: &Path, seconds: u32) -> anyhow::Result<Fairness> {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };
    step("fairness: hello next to a plugin that loops to its deadline");
    let plugins = sh.create_temp_dir()?;
    let built = sh.current_dir().join(crate::PLUGIN_OUT_DIR);
    fs::copy(built.join("hello.wasm"), plugins.path().join("hello.wasm"))?;
    let faults = sh.current_dir().join(crate::PLUGIN_FIXTURE_DIR).join("faults");
    fs::copy(faults.join("loop-process.wasm"), plugins.path().join("loop-process.wasm"))?;
    let running = RunningServer::start(host_command(host, plugins.path(), "process"))?;
    let url = running.url("/run");
    wrk_run(wrk, lua, &url, 16, 1)?;
    let (alone, _) = wrk_run(wrk, lua, &url, 16, seconds)?;
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let client = HttpClient::new(Some(Duration::from_secs(60)))?;
    let clients: Vec<_> = (0..LOOPING_CLIENTS)
        .map(|_| {
            let (stop, calls, client, url) = (Arc::clone(&stop), Arc::clone(&calls), client.clone(), url.clone());
            std::thread::spawn(move || {
                let body = r#"{"plugin":"loop-process","input":1}"#;
                while !stop.load(Ordering::Relaxed) {
                    // Any answer counts (the call ends at its deadline); a failed exchange does not.
                    if client.send("POST", &url, Some(body)).is_ok() {
                        calls.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Let the looping calls take their share of the workers first.
    std::thread::sleep(Duration::from_millis(500));
    let (beside, _) = wrk_run(wrk, lua, &url, 16, seconds)?;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }
    println!("    hello alone: {alone:?}\n    hello beside the looping plugin: {beside:?}");
    Ok(Fairness { alone, beside, looping_clients: LOOPING_CLIENTS, looping_calls: calls.load(Ordering::Relaxed) })
}

pub(super) fn render_fairness(fairness: &Fairness) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n### A plugin that loops to its deadline, next to `hello` (process isolation, default settings, wrk c=16)\n"
    );
    let _ = writeln!(out, "| `hello` | requests/s | p50 | p99 | errors |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for (label, load) in [
        ("alone".to_string(), &fairness.alone),
        (
            format!(
                "while {} clients call `loop-process` ({} calls answered, each after the 1 s deadline)",
                fairness.looping_clients, fairness.looping_calls
            ),
            &fairness.beside,
        ),
    ] {
        let _ = writeln!(
            out,
            "| {label} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            load.requests_per_sec, load.p50_ms, load.p99_ms, load.errors
        );
    }
    out
}
