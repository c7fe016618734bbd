//! What the smoke test checks of the running host, for the base Deployment and the Fluid one.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};

use super::{
    SHELLS,
    containerfile::RuntimeStage,
    host::{ProcessIds, RunningHost},
    image::Environment,
    pod::Pod,
};
use crate::http::Answer;

pub(super) fn env_value<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
    env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(super) fn grace(stage: &RuntimeStage, pod: &Pod) -> Duration {
    let secs = env_value(&pod.environment(stage), "SHUTDOWN_GRACE_SECS").and_then(|s| s.parse().ok()).unwrap_or(10);
    Duration::from_secs(secs + 5)
}

pub(super) fn expect(
    host: &RunningHost,
    method: &str,
    path: &str,
    body: Option<&str>,
    status: u16,
    contains: &str,
) -> anyhow::Result<()> {
    let Answer { status: got, body: text } =
        host.call(method, path, body).with_context(|| format!("{method} {path}"))?;
    ensure!(
        got == status && text.contains(contains),
        "{method} {path}: expected {status} with {contains:?}, got {got}: {text}"
    );
    let body = body.map(|b| format!(" {b}")).unwrap_or_default();
    println!("{method} {path}{body} -> {got} {}", text.trim());
    Ok(())
}

pub(super) const RUN_HELLO: &str = r#"{"plugin":"hello","input":21}"#;

pub(super) fn smoke_base(env: &Environment<'_>, stage: &RuntimeStage, pod: &Pod, plugins: usize) -> anyhow::Result<()> {
    let mut host = RunningHost::start(env, stage, pod, "base")?;
    expect(&host, "GET", "/healthz", None, 200, "ok")?;
    expect(&host, "GET", "/readyz", None, 200, &format!("\"plugins\":{plugins}"))?;
    expect(&host, "POST", "/run", Some(RUN_HELLO), 200, r#"{"output":43}"#)?;
    ensure!(host.has_tokens(), "the base Deployment runs without TOKENS_FILE");
    // Probes need no token; calls do, and a Secret update takes effect without a restart.
    for token in [None, Some("not-a-token")] {
        let answer = host.call_with_token("POST", "/run", Some(RUN_HELLO), token)?;
        ensure!(answer.status == 401 && answer.body.contains("unauthorized"), "POST /run with {token:?}: {answer:?}");
    }
    let answer = host.call_with_token("GET", "/readyz", None, None)?;
    ensure!(answer.status == 200, "GET /readyz without a token: {answer:?}");
    let revoked = host.replace_token()?;
    expect(&host, "POST", "/run", Some(RUN_HELLO), 200, r#"{"output":43}"#)?;
    let answer = host.call_with_token("POST", "/run", Some(RUN_HELLO), Some(&revoked))?;
    ensure!(answer.status == 401, "the revoked token still works: {answer:?}");
    println!("tokens: 401 without one, probes open, a Secret update swapped the token without a restart");

    let environment = pod.environment(stage);
    let aot = env_value(&environment, "AOT_CACHE_DIR").context("no AOT_CACHE_DIR")?;
    let artifacts: Vec<_> = fs::read_dir(host.view(aot))
        .with_context(|| format!("the AOT cache {aot} was not made"))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "so"))
        .collect();
    let meta = fs::metadata(host.view(aot))?;
    ensure!(!artifacts.is_empty(), "no compiled plugin in the AOT cache {aot}");
    ensure!(
        meta.uid() == pod.user.0 && meta.mode() & 0o077 == 0,
        "the AOT cache {aot} is not private to the pod's user"
    );
    println!(
        "AOT cache {aot}: {} compiled plugin(s), mode {:o}, owner {}",
        artifacts.len(),
        meta.mode() & 0o7777,
        meta.uid()
    );

    let ids = host.ids()?;
    let workers = env_value(&environment, "WORKERS").and_then(|w| w.parse::<usize>().ok());
    ensure!(workers.is_none_or(|w| ids.len() == w + 1), "expected {workers:?} workers, found {}", ids.len() - 1);
    for ProcessIds { pid, uids, gids } in &ids {
        ensure!(
            uids.len() == 4 && uids.iter().all(|&id| id == pod.user.0) && gids.iter().all(|&id| id == pod.user.1),
            "process {pid} does not run as {}:{} (uids {uids:?}, gids {gids:?})",
            pod.user.0,
            pod.user.1
        );
    }
    // The host's own view of its root: every shell is an empty file, so nothing it did (or
    // its workers did) can have needed one.
    for shell in SHELLS.iter().filter(|s| env.rootfs.join(s).is_file()) {
        let len = fs::metadata(host.view(&format!("/{shell}")))?.len();
        ensure!(len == 0, "/{shell} is not hidden from the host ({len} bytes)");
    }
    println!("server and {} workers run as {}:{}, with every shell hidden", ids.len() - 1, pod.user.0, pod.user.1);
    host.stop(grace(stage, pod))?;
    println!("SIGTERM: the host stopped cleanly");
    Ok(())
}

pub(super) fn smoke_fluid(
    env: &Environment<'_>,
    stage: &RuntimeStage,
    pod: &Pod,
    dataset: &Path,
) -> anyhow::Result<()> {
    let environment = pod.environment(stage);
    ensure!(
        env_value(&environment, "PLUGIN_STORE") == Some("fluid"),
        "the fluid overlay does not set PLUGIN_STORE=fluid"
    );
    let mount_path = pod.dataset.as_deref().context("the fluid overlay mounts no dataset")?;
    ensure!(
        env_value(&environment, "FLUID_MOUNT_PATH") == Some(mount_path),
        "FLUID_MOUNT_PATH is not where the dataset is mounted ({mount_path})"
    );
    let host = RunningHost::start(env, stage, pod, "fluid")?;
    // Liveness does not depend on the dataset; readiness does.
    expect(&host, "GET", "/healthz", None, 200, "ok")?;
    expect(&host, "GET", "/readyz", None, 503, "store_unavailable")?;
    expect(&host, "POST", "/run", Some(RUN_HELLO), 503, "store_unavailable")?;

    // The dataset appears in the running container, as Fluid's FUSE recovery (or a late mount)
    // makes it appear through mountPropagation: HostToContainer.
    let target = env.newroot.join(mount_path.trim_start_matches('/'));
    let namespace = format!("--mount=/proc/{}/ns/mnt", host.pid());
    let status =
        Command::new("nsenter").args([&namespace, "mount", "--bind", "-o", "ro"]).args([dataset, &target]).status()?;
    ensure!(status.success(), "could not mount the dataset into the host's namespace");
    println!("mounted the dataset read-only at {mount_path}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !host.call("GET", "/readyz", None).is_ok_and(|answer| answer.status == 200) {
        ensure!(
            Instant::now() < deadline,
            "the host did not become ready within 30 s of the mount:\n{}",
            host.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    expect(&host, "GET", "/readyz", None, 200, "\"status\":\"ready\"")?;
    expect(&host, "POST", "/run", Some(RUN_HELLO), 200, r#"{"output":43}"#)?;
    host.stop(grace(stage, pod))?;
    println!("SIGTERM: the host stopped cleanly");
    Ok(())
}
