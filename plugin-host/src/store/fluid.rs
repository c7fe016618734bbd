//! A Fluid dataset mounted into the pod: the local rules, plus what a FUSE mount does.
//!
//! Fluid (AlluxioRuntime, JuiceFSRuntime, ...) exposes a remote dataset as a FUSE filesystem.
//! Such a mount differs from a local directory in ways that matter here:
//! - it can be absent or not ready yet (the pod started before the runtime), so every access
//!   first checks that the path is a mount point (`/proc/self/mountinfo`) and that its root
//!   answers a `stat`;
//! - after the FUSE daemon restarts, reads fail with `ENOTCONN` ("Transport endpoint is not
//!   connected") or `EIO` until it is back: those are retried with backoff and then reported as
//!   [`StoreError::Unavailable`] (HTTP 503 with Retry-After), never as "not found";
//! - files are opened afresh on every load and no descriptor is kept, so a remount is picked up;
//! - attributes may be cached upstream for a long time, so a changed file can take that long to
//!   be noticed (hot swap through Fluid is only as fast as its attribute cache).

use std::{
    fs, io,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use backon::{BlockingRetryable, ExponentialBuilder};
use parking_lot::Mutex;

use super::{
    ConfigFile, ConfigLocation, FileIdentity, PluginFile, PluginName, PluginRef, PluginStore, StoreError, Versions,
    config::ConfigDir,
    dir::PluginDir,
    trust::{TrustPolicy, Verdict},
};
use crate::logs;

/// Serves `<mount>/<name>.wasm` and `<mount>/<name>/<version>.wasm` from a Fluid dataset mount. Never fails to construct: a mount
/// that is not there yet makes requests answer "unavailable" until it appears.
pub struct FluidPluginStore {
    mount_path: PathBuf,
    max_bytes: u64,
    /// Where the process's mounts are listed. Default: `/proc/self/mountinfo`.
    mountinfo: PathBuf,
    /// Tries per operation when the mount answers with a transient error. Default: 4.
    attempts: u32,
    /// Wait before the first retry; each later wait is four times longer. Default: 10 ms.
    first_backoff: Duration,
    /// How long a successful readiness check is trusted. Default: 1 s.
    recheck_interval: Duration,
    last_ready: Mutex<Option<(Instant, PathBuf)>>,
    /// Stray entries in version folders already warned about (once per file and change).
    warned: logs::Once,
    /// Retries are logged at most once per 10 s per error: a mount that keeps failing would
    /// otherwise write a line per request.
    retries_logged: logs::Throttle,
    /// Signatures every plugin file needs beside it. Default: none.
    trust: Option<Arc<TrustPolicy>>,
}

impl std::fmt::Debug for FluidPluginStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FluidPluginStore").field("mount_path", &self.mount_path).finish_non_exhaustive()
    }
}

impl FluidPluginStore {
    pub fn new(mount_path: impl Into<PathBuf>, max_bytes: u64) -> Self {
        FluidPluginStore {
            mount_path: mount_path.into(),
            max_bytes,
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            attempts: 4,
            first_backoff: Duration::from_millis(10),
            recheck_interval: Duration::from_secs(1),
            last_ready: Mutex::new(None),
            warned: logs::Once::default(),
            retries_logged: logs::Throttle::default(),
            trust: None,
        }
    }

    /// How long a successful readiness check of the mount is trusted before the next request
    /// checks again (default 1 s): longer saves a `stat` and a read of the mount table per
    /// request, shorter notices a lost mount sooner.
    pub fn with_recheck_interval(mut self, interval: Duration) -> Self {
        self.recheck_interval = interval;
        self
    }

    /// Serves only files whose detached signatures (`<file>.sig`) the policy accepts.
    pub fn with_trust(mut self, policy: Arc<TrustPolicy>) -> Self {
        self.trust = Some(policy);
        self
    }

    /// The canonical root, once the mount is present and answering.
    fn ready_root(&self) -> Result<PathBuf, StoreError> {
        let mut last_ready = self.last_ready.lock();
        if let Some((checked, root)) = last_ready.as_ref()
            && checked.elapsed() < self.recheck_interval
        {
            return Ok(root.clone());
        }
        *last_ready = None;
        if !self.is_mount_point()? {
            let what = format!("{} is not mounted", self.mount_path.display());
            return Err(StoreError::Unavailable { what, source: None });
        }
        let unavailable = |e: io::Error| StoreError::unavailable(format!("mount {}", self.mount_path.display()), e);
        let meta = fs::metadata(&self.mount_path).map_err(unavailable)?;
        if !meta.is_dir() {
            let what = format!("{} is not a directory", self.mount_path.display());
            return Err(StoreError::Unavailable { what, source: None });
        }
        let root = self.mount_path.canonicalize().map_err(unavailable)?;
        *last_ready = Some((Instant::now(), root.clone()));
        Ok(root)
    }

    fn is_mount_point(&self) -> Result<bool, StoreError> {
        let table = fs::read_to_string(&self.mountinfo)
            .map_err(|e| StoreError::unavailable(format!("cannot read {}", self.mountinfo.display()), e))?;
        Ok(mount_points(&table).any(|point| Path::new(&point) == self.mount_path))
    }

    /// Runs `operation` against the ready mount, retrying transient failures with backoff;
    /// one that keeps failing makes the store unavailable (503), never "not found".
    fn with_retries<T>(
        &self,
        what: &str,
        operation: impl Fn(PluginDir<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let attempt = || {
            self.ready_root().and_then(|root| {
                operation(PluginDir {
                    root: &root,
                    max_bytes: self.max_bytes,
                    warned: &self.warned,
                    trust: self.trust.as_deref(),
                })
            })
        };
        let backoff = ExponentialBuilder::new()
            .with_min_delay(self.first_backoff)
            .with_factor(4.0)
            .with_max_times(self.attempts.saturating_sub(1) as usize);
        attempt
            .retry(backoff)
            .sleep(std::thread::sleep)
            .when(is_transient)
            .notify(|error, wait| {
                // The mount may have been replaced: check it again before the next try.
                *self.last_ready.lock() = None;
                if let Some(suppressed) = self.retries_logged.allow(&error.to_string()) {
                    tracing::warn!(%error, ?wait, suppressed, "plugin store: transient error, retrying");
                }
            })
            .call()
            .map_err(|error| match error {
                StoreError::Io { context, source } if is_fuse_outage(&source) => {
                    StoreError::unavailable(format!("{what} kept failing ({context})"), source)
                }
                other => other,
            })
    }

    /// An answer that an absent mount would also give ("no such plugin", "no plugins") is
    /// only trusted once the mount is verified afresh: the readiness check is cached for
    /// `recheck_interval`, and in that window an unmounted mount point is just an empty
    /// folder. A missing mount is never reported as a missing plugin.
    fn confirmed<T>(
        &self,
        answer: Result<T, StoreError>,
        absent_mount_could_say_this: impl Fn(&T) -> bool,
    ) -> Result<T, StoreError> {
        let suspicious = match &answer {
            Err(StoreError::NotFound(_)) => true,
            Ok(value) => absent_mount_could_say_this(value),
            Err(_) => false,
        };
        if suspicious {
            *self.last_ready.lock() = None;
            self.ready_root()?;
        }
        answer
    }
}

/// `ENOTCONN` and `EIO` are what a FUSE mount answers while its daemon is down or restarting;
/// `ESTALE` what it answers for a handle from before a remount.
fn is_transient(error: &StoreError) -> bool {
    matches!(error, StoreError::Io { source, .. } if is_fuse_outage(source))
}

fn is_fuse_outage(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOTCONN | libc::EIO | libc::ESTALE))
}

/// The mount points listed in a mountinfo table (field 5; spaces and the like are octal
/// escapes, as in `\040`).
fn mount_points(table: &str) -> impl Iterator<Item = String> + '_ {
    table.lines().filter_map(|line| line.split(' ').nth(4)).map(unescape_octal)
}

fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape =
            bytes.get(i + 1..i + 4).filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match escape {
            Some(digits) => {
                out.push(digits.iter().fold(0u8, |n, d| n.wrapping_mul(8) + (d - b'0')));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PluginStore for FluidPluginStore {
    fn stat(&self, plugin: &PluginRef) -> Result<FileIdentity, StoreError> {
        self.confirmed(self.with_retries("stat", |dir| dir.stat(plugin)), |_| false)
    }

    fn load(&self, plugin: &PluginRef) -> Result<PluginFile, StoreError> {
        self.confirmed(self.with_retries("load", |dir| dir.load(plugin)), |_| false)
    }

    fn list(&self) -> Result<Vec<PluginName>, StoreError> {
        let listing = self.with_retries("list", |dir| {
            dir.list().map_err(|source| StoreError::Io { context: "listing plugins".to_string(), source })
        });
        self.confirmed(listing, Vec::is_empty)
    }

    fn versions(&self, name: &PluginName) -> Result<Versions, StoreError> {
        let listing = self.with_retries("list versions", |dir| {
            dir.versions(name)
                .map_err(|source| StoreError::Io { context: format!("listing the versions of `{name}`"), source })
        });
        self.confirmed(listing, Versions::is_empty)
    }

    fn verdict(&self, plugin: &PluginRef, _lookup: bool) -> Option<Verdict> {
        self.trust.as_ref()?;
        self.with_retries("judge", |dir| dir.verdict(plugin)).ok().flatten()
    }

    fn stat_config(&self, plugin: &PluginRef) -> Result<Option<ConfigLocation>, StoreError> {
        let found =
            self.with_retries("stat configuration", |dir| ConfigDir { root: dir.root, source: "store" }.stat(plugin));
        // "No configuration" is what an absent mount says too.
        self.confirmed(found, Option::is_none)
    }

    fn load_config(&self, plugin: &PluginRef, max_bytes: u64) -> Result<Option<ConfigFile>, StoreError> {
        let found = self.with_retries("load configuration", |dir| {
            ConfigDir { root: dir.root, source: "store" }.load(plugin, max_bytes)
        });
        self.confirmed(found, Option::is_none)
    }

    fn describe(&self) -> String {
        format!("Fluid dataset mounted at {}", self.mount_path.display())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// A store over a temporary folder that a mountinfo file of the test's own lists as a
    /// mount point. (The host's integration tests use a real FUSE mount; this is for the retry
    /// logic, which needs failures on demand.)
    fn listed_store() -> (FluidPluginStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mountinfo = dir.path().join("mountinfo");
        fs::write(&mountinfo, format!("40 35 0:50 / {} rw - fuse.bindfs src rw\n", dir.path().display())).unwrap();
        let mut store = FluidPluginStore::new(dir.path(), 1 << 20);
        store.mountinfo = mountinfo;
        (store, dir)
    }

    fn enotconn() -> StoreError {
        StoreError::Io { context: "stat".into(), source: io::Error::from_raw_os_error(libc::ENOTCONN) }
    }

    #[test]
    fn a_fuse_outage_that_ends_within_the_retries_is_invisible() {
        let (store, _dir) = listed_store();
        let attempts = Cell::new(0);
        let result = store.with_retries("stat", |_| {
            attempts.set(attempts.get() + 1);
            if attempts.get() <= 2 { Err(enotconn()) } else { Ok("served") }
        });
        assert_eq!(result.unwrap(), "served");
        assert_eq!(attempts.get(), 3, "two failed attempts and one that worked");
    }

    #[test]
    fn a_fuse_outage_that_lasts_makes_the_store_unavailable_never_not_found() {
        let (store, _dir) = listed_store();
        let attempts = Cell::new(0);
        let result: Result<(), _> = store.with_retries("load", |_| {
            attempts.set(attempts.get() + 1);
            Err(enotconn())
        });
        let Err(StoreError::Unavailable { source: Some(cause), .. }) = result else { panic!("{result:?}") };
        assert_eq!(cause.raw_os_error(), Some(libc::ENOTCONN), "the cause is kept, typed");
        assert_eq!(attempts.get(), 4, "every attempt was made");
        // Other errors are not retried: they are answers, not outages.
        let attempts = Cell::new(0);
        let result: Result<(), _> = store.with_retries("load", |_| {
            attempts.set(attempts.get() + 1);
            Err(StoreError::NotFound(PluginRef::from(&PluginName::new("x").unwrap())))
        });
        assert!(matches!(result, Err(StoreError::NotFound(_))));
        assert_eq!(attempts.get(), 1);
    }

    #[test]
    fn reads_mount_points_with_escapes() {
        let table = "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw\n\
                     40 35 0:50 / /mnt/fluid/my\\040plugins rw - fuse.alluxio-fuse alluxio-fuse rw\n";
        let points: Vec<String> = mount_points(table).collect();
        assert_eq!(points, ["/mnt/parent", "/mnt/fluid/my plugins"]);
    }

    #[test]
    fn only_fuse_outage_errors_are_transient() {
        let io = |code| StoreError::Io { context: "test".into(), source: io::Error::from_raw_os_error(code) };
        assert!(is_transient(&io(libc::ENOTCONN)));
        assert!(is_transient(&io(libc::EIO)));
        assert!(!is_transient(&io(libc::EACCES)));
        assert!(!is_transient(&StoreError::NotFound(PluginRef::from(&PluginName::new("x").unwrap()))));
    }
}
