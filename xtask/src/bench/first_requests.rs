//! The first request of never-seen plugins: AOT compilation on the request path.

use std::{fs, time::Duration};

use anyhow::ensure;
use xshell::Shell;

use super::{FIRST_REQUESTS, FirstRequest, RunningServer, host_command, target_dir};
use crate::http::HttpClient;

/// Serves [`FIRST_REQUESTS`] copies of `hello`, each made distinct by a custom section (so each
/// has its own content hash and is compiled on its first request), from a fresh folder with an
/// empty AOT cache, and times the first request of each.
pub(super) fn first_requests(sh: &Shell, isolation: &'static str) -> anyhow::Result<FirstRequest> {
    let hello = fs::read(sh.current_dir().join(crate::PLUGIN_OUT_DIR).join("hello.wasm"))?;
    let dir = sh.create_temp_dir()?;
    let (plugins, cache) = (dir.path().join("plugins"), dir.path().join("aot"));
    fs::create_dir_all(&plugins)?;
    for i in 0..FIRST_REQUESTS {
        let name = format!("bench-{i:02}");
        let mut wasm = hello.clone();
        // A custom section: id 0, size, then the name's length and the name (all under 128 bytes).
        wasm.extend_from_slice(&[0, name.len() as u8 + 1, name.len() as u8]);
        wasm.extend_from_slice(name.as_bytes());
        fs::write(plugins.join(format!("fresh{i:02}.wasm")), wasm)?;
    }
    let mut command = host_command(&target_dir(sh).join("release/host"), &plugins, isolation);
    command.env("AOT_CACHE_DIR", &cache);
    let server = RunningServer::start(command)?;
    let client = HttpClient::new(Some(Duration::from_secs(120)))?;
    let mut times = Vec::new();
    for i in 0..FIRST_REQUESTS {
        let body = format!("{{\"plugin\":\"fresh{i:02}\",\"input\":21}}");
        let started = std::time::Instant::now();
        let answer = client.send("POST", &server.url("/run"), Some(&body))?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        ensure!(answer.status == 200 && answer.body == "{\"output\":43}", "fresh{i:02}: {answer:?}");
    }
    times.sort_by(f64::total_cmp);
    Ok(FirstRequest { server: isolation, p50_ms: times[times.len() / 2], max_ms: times[times.len() - 1] })
}
