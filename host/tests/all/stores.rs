//! The Fluid store against a temporary directory standing in for the dataset mount.

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use host::{
    runtime::ExecutionMode,
    store::{FaultInjector, FluidPluginStore},
};
use serde_json::json;
use tempfile::TempDir;

use crate::support::{TestServer, app_state, plugin_dir, runtime_config};

/// A plugin folder listed as a mount point in a mountinfo file of the test's own.
struct FakeMount {
    plugins: TempDir,
    mountinfo: PathBuf,
    _mountinfo_dir: TempDir,
}

impl FakeMount {
    fn new() -> Self {
        let plugins = plugin_dir(&["hello"]);
        let mountinfo_dir = TempDir::new().unwrap();
        let mount =
            FakeMount { mountinfo: mountinfo_dir.path().join("mountinfo"), plugins, _mountinfo_dir: mountinfo_dir };
        mount.set_mounted(true);
        mount
    }

    fn path(&self) -> &Path {
        self.plugins.path()
    }

    /// Lists (or unlists) the folder the way the kernel lists a Fluid FUSE mount.
    fn set_mounted(&self, mounted: bool) {
        let mut table = String::from("22 27 0:21 / /proc rw,relatime - proc proc rw\n");
        if mounted {
            table += &format!("40 35 0:50 / {} rw,nosuid - fuse.alluxio-fuse alluxio-fuse rw\n", self.path().display());
        }
        fs::write(&self.mountinfo, table).unwrap();
    }

    fn store(&self) -> FluidPluginStore {
        FluidPluginStore::new(self.path(), 1 << 20)
            .with_mountinfo(&self.mountinfo)
            .with_recheck_interval(Duration::ZERO)
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
}

#[tokio::test]
async fn serves_from_the_mount_and_survives_it_going_away_and_coming_back() {
    let mount = FakeMount::new();
    let server = serve(mount.store()).await;
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
    assert_eq!(server.run("missing", 21).await.0, 404, "a missing plugin in a ready mount is 404");

    // Unmounted: 503, not 404 or 500.
    mount.set_mounted(false);
    assert_unavailable(&server).await;
    mount.set_mounted(true);
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })), "back without a restart");

    // Still listed as mounted, but the root is gone (a FUSE daemon that lost its backing).
    let aside = mount.path().with_extension("aside");
    fs::rename(mount.path(), &aside).unwrap();
    assert_unavailable(&server).await;
    fs::rename(&aside, mount.path()).unwrap();
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
}

#[tokio::test]
async fn a_mount_that_is_not_there_at_start_up_is_unavailable_until_it_appears() {
    let mount = FakeMount::new();
    mount.set_mounted(false);
    let server = serve(mount.store()).await;
    assert_unavailable(&server).await;
    mount.set_mounted(true);
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
}

fn enotconn_for(failures: u32, operation: &'static str) -> (FaultInjector, Arc<AtomicU32>) {
    let count = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&count);
    let fault: FaultInjector = Arc::new(move |op: &str| {
        (op == operation && seen.fetch_add(1, Ordering::SeqCst) < failures)
            .then(|| io::Error::from_raw_os_error(libc::ENOTCONN))
    });
    (fault, count)
}

#[tokio::test]
async fn transient_enotconn_is_retried_and_persistent_enotconn_is_unavailable() {
    let mount = FakeMount::new();
    // Two failures, then the FUSE daemon is back: the request succeeds after retries.
    let (fault, attempts) = enotconn_for(2, "stat");
    let server = serve(mount.store().with_fault_injector(fault)).await;
    assert_eq!(server.run("hello", 21).await, (200, json!({ "output": 43 })));
    assert_eq!(attempts.load(Ordering::SeqCst), 3, "two failed attempts and one that worked");

    // Never back: 503 after the retries, and the server is otherwise fine.
    let (fault, attempts) = enotconn_for(u32::MAX, "load");
    let server = serve(mount.store().with_fault_injector(fault)).await;
    assert_unavailable(&server).await;
    assert!(attempts.load(Ordering::SeqCst) >= 4, "retried before giving up");
    assert_eq!(server.client.get(server.url("/healthz")).send().await.unwrap().status().as_u16(), 200);
}
