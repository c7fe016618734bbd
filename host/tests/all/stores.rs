//! The Fluid store on a real FUSE mount: `bindfs` of a temporary plugin folder, mounted and
//! unmounted by the tests. Killing its daemon with SIGKILL leaves the mount in place answering
//! `ENOTCONN` ("Transport endpoint is not connected"), exactly what a crashed Fluid FUSE pod
//! leaves behind. Needs root (or FUSE rights) and `bindfs`, which `cargo xtask setup` installs.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use plugin_host::{runtime::ExecutionMode, store::FluidPluginStore};
use serde_json::json;
use tempfile::TempDir;

use crate::support::{TestServer, app_state, plugin_dir, runtime_config};

/// A plugin folder (`hello`) and a mount point, with a `bindfs` daemon serving the one at the
/// other while mounted. Unmounted and cleaned up when dropped.
pub(crate) struct FuseMount {
    source: TempDir,
    point: TempDir,
    daemon: Option<Child>,
}

impl FuseMount {
    fn new() -> Self {
        Self::over(plugin_dir(&["hello"]))
    }

    /// A mount of `source` (not mounted yet).
    pub(crate) fn over(source: TempDir) -> Self {
        FuseMount { source, point: TempDir::new().unwrap(), daemon: None }
    }

    fn path(&self) -> &Path {
        self.point.path()
    }

    fn is_listed(&self) -> bool {
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let point = self.path().to_str().unwrap();
        table.lines().any(|line| line.split(' ').nth(4) == Some(point))
    }

    /// Starts `bindfs` in the foreground (so the test owns the daemon) and waits until the
    /// kernel lists the mount.
    pub(crate) fn mount(&mut self) {
        let daemon = Command::new("bindfs")
            .arg("-f")
            .arg(self.source.path())
            .arg(self.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("bindfs runs (`cargo xtask setup` installs it; FUSE needs root or the fuse group)");
        self.daemon = Some(daemon);
        let give_up = Instant::now() + Duration::from_secs(10);
        while !self.is_listed() {
            assert!(Instant::now() < give_up, "bindfs did not mount {}", self.path().display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the FUSE daemon the way a crash does: the mount stays listed, every access to it
    /// fails with ENOTCONN.
    pub(crate) fn crash_daemon(&mut self) {
        let mut daemon = self.daemon.take().expect("mounted");
        daemon.kill().unwrap();
        daemon.wait().unwrap();
        assert!(self.is_listed(), "a crashed FUSE daemon leaves its mount behind");
        // (Not a `stat` of the root: the kernel may answer that from its attribute cache.)
        let error = std::fs::read_dir(self.path()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOTCONN), "{error}");
    }

    /// Detaches the mount (lazily, like Fluid's recovery does for a dead mount).
    pub(crate) fn unmount(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        if self.is_listed() {
            let status = Command::new("umount").arg("-l").arg(self.path()).status().unwrap();
            assert!(status.success(), "umount -l {}", self.path().display());
        }
    }

    pub(crate) fn store(&self) -> FluidPluginStore {
        FluidPluginStore::new(self.path(), 1 << 20).with_recheck_interval(Duration::ZERO)
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        self.unmount();
    }
}

async fn serve(store: FluidPluginStore) -> TestServer {
    TestServer::start(app_state(Arc::new(store), runtime_config(ExecutionMode::Aot), 16)).await
}

async fn assert_unavailable(server: &TestServer) {
    let response =
        server.client.post(server.url("/run")).json(&json!({"plugin": "hello", "input": 21})).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
    let ready = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    // Liveness does not depend on the mount.
    assert_eq!(server.client.get(server.url("/healthz")).send().await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn serves_from_a_fuse_mount_and_survives_its_daemon_crashing() {
    let mut mount = FuseMount::new();
    mount.mount();
    let server = serve(mount.store()).await;
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
    assert_eq!(server.run("missing", 21).await.0, 404, "a missing plugin in a ready mount is 404");

    // The FUSE daemon crashes: ENOTCONN, retried, then 503; never 404 or 500.
    mount.crash_daemon();
    assert_unavailable(&server).await;

    // Fluid's recovery replaces the dead mount: served again without a restart.
    mount.unmount();
    assert_unavailable(&server).await;
    mount.mount();
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })), "back without a restart");
}

#[tokio::test]
async fn a_mount_that_is_not_there_at_start_up_is_unavailable_until_it_appears() {
    let mut mount = FuseMount::new();
    // The mount point exists but nothing is mounted on it: a pod that started before its
    // dataset. Its (empty) folder must not be read as "no plugins".
    let server = serve(mount.store()).await;
    assert_unavailable(&server).await;
    mount.mount();
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
}

/// The store trusts a readiness check for a second (default), but never answers "not found"
/// or "no plugins" from a mount point whose mount has gone in that second: such answers are
/// confirmed against the mount table first. (It used to answer 404 for about a second.)
#[tokio::test]
async fn a_mount_that_just_disappeared_is_unavailable_not_an_empty_folder() {
    let mut mount = FuseMount::new();
    mount.mount();
    let store = FluidPluginStore::new(mount.path(), 1 << 20);
    let server = serve(store).await;
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
    let listed = server.client.get(server.url("/plugins")).send().await.unwrap();
    assert_eq!(listed.status().as_u16(), 200);

    mount.unmount();
    let started = Instant::now();
    assert_unavailable(&server).await;
    let listing = server.client.get(server.url("/plugins")).send().await.unwrap();
    assert_eq!(listing.status().as_u16(), 503, "an empty mount point is not an empty dataset");
    assert!(started.elapsed() < Duration::from_secs(1), "still inside the readiness cache's second");
}

/// A Fluid dataset can carry signed plugins: the same detached signatures and trust policy as
/// a plugin folder, read through the FUSE mount; a mount whose daemon crashed is unavailable
/// (503), never a missing signature.
#[tokio::test]
async fn a_trust_policy_guards_a_fuse_mount_with_detached_signatures() {
    use plugin_signature::{DetachedSignature, PrivateKey};

    let key = PrivateKey::generate();
    let keys = TempDir::new().unwrap();
    std::fs::write(keys.path().join("k.pub"), key.public_key().to_pem()).unwrap();
    let policy_path = keys.path().join("policy.json");
    std::fs::write(&policy_path, r#"{"rules": [{"prefix": "", "keys": ["k.pub"]}]}"#).unwrap();
    let policy = Arc::new(plugin_host::store::trust::TrustPolicy::from_file(&policy_path).unwrap());

    let mut mount = FuseMount::new();
    let hello = std::fs::read(mount.source.path().join("hello.wasm")).unwrap();
    let signature = DetachedSignature::sign(std::slice::from_ref(&key), "hello", &hello);
    std::fs::write(mount.source.path().join("hello.wasm.sig"), signature.to_json()).unwrap();
    std::fs::write(mount.source.path().join("unsigned.wasm"), &hello).unwrap();
    mount.mount();
    let server = serve(mount.store().with_trust(policy)).await;
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
    let (status, body) = server.run("unsigned", 21).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("signature_missing")), "{body}");

    mount.crash_daemon();
    let (status, body) = server.run("unsigned", 21).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("store_unavailable")), "{body}");
}
