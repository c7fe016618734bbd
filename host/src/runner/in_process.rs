//! Runs plugins in this process, keeping each plugin's compiled current version.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use std::time::{Instant, UNIX_EPOCH};

use lru::LruCache;

use super::{AbiStatus, PluginRunner, PluginStatus, RunError, content_hash};
use crate::{
    metrics::Metrics,
    runtime::{CompiledPlugin, Engine},
    store::{FileIdentity, PluginName, PluginStore, StoreError},
};

/// Compiles each plugin version once and runs every call on a fresh instance of it.
///
/// Hot swap: every call first asks the store for the file's identity (a `stat`, no read). If
/// the file changed, it is read, hashed and, unless the content is the same, compiled; new calls
/// get the new version while calls already running finish on the one they started with (they
/// hold their own `Arc`). If a changed file fails to load (for example it is half written), the
/// previous version keeps serving and the failure is logged and kept for `GET /plugins`; a
/// plugin with no good version returns the failure.
#[derive(Debug)]
pub struct InProcessRunner {
    store: Arc<dyn PluginStore>,
    engine: Engine,
    metrics: Arc<Metrics>,
    /// Least recently used plugins are forgotten first; each entry has its own lock, so a slow
    /// compilation of one plugin never delays calls to another.
    plugins: Mutex<LruCache<PluginName, Arc<Mutex<PluginSlot>>>>,
}

/// Default number of plugins kept compiled.
pub const DEFAULT_CACHE_CAPACITY: usize = 256;

#[derive(Debug, Default)]
struct PluginSlot {
    /// The file version last examined, successfully or not.
    seen: Option<FileIdentity>,
    /// The last version that loaded successfully.
    current: Option<LoadedVersion>,
    /// Why the file version in `seen` failed to load, if it did.
    last_error: Option<String>,
}

#[derive(Debug, Clone)]
struct LoadedVersion {
    content_hash: String,
    plugin: Arc<CompiledPlugin>,
}

impl InProcessRunner {
    pub fn new(
        store: Arc<dyn PluginStore>,
        engine: Engine,
        metrics: Arc<Metrics>,
        capacity: usize,
    ) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        InProcessRunner {
            store,
            engine,
            metrics,
            plugins: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The version of `name` a new call should run, loading it if the file changed.
    fn current_version(&self, name: &PluginName) -> Result<Arc<CompiledPlugin>, RunError> {
        let slot = Arc::clone(lock(&self.plugins).get_or_insert(name.clone(), Default::default));
        let mut slot = lock(&slot);
        let identity = self.store.stat(name)?;
        if slot.seen == Some(identity)
            && let Some(current) = &slot.current
        {
            self.metrics.observe_cache(true);
            return Ok(Arc::clone(&current.plugin));
        }
        self.metrics.observe_cache(false);
        let file = self.store.load(name)?;
        let content_hash = content_hash(&file.bytes);
        slot.seen = Some(file.identity);
        if let Some(current) = slot
            .current
            .as_ref()
            .filter(|c| c.content_hash == content_hash)
        {
            // Touched or copied over with the same content: nothing to recompile.
            let plugin = Arc::clone(&current.plugin);
            slot.last_error = None;
            return Ok(plugin);
        }
        match self.engine.compile(&file.bytes, &content_hash) {
            Ok(plugin) => {
                tracing::info!(plugin = %name, hash = &content_hash[..12], "loaded plugin version");
                let plugin = Arc::new(plugin);
                slot.current = Some(LoadedVersion {
                    content_hash,
                    plugin: Arc::clone(&plugin),
                });
                slot.last_error = None;
                Ok(plugin)
            }
            Err(error) => {
                slot.last_error = Some(error.to_string());
                match &slot.current {
                    Some(previous) => {
                        tracing::warn!(plugin = %name, %error, "new plugin version failed to load; still serving the previous one");
                        Ok(Arc::clone(&previous.plugin))
                    }
                    None => Err(error.into()),
                }
            }
        }
    }
}

impl PluginRunner for InProcessRunner {
    fn run(&self, name: &PluginName, input: i32) -> Result<i32, RunError> {
        let plugin = self.current_version(name)?;
        let started = Instant::now();
        let instance = plugin.instantiate()?;
        self.metrics.observe_instantiation(started.elapsed());
        Ok(instance.run(input)?)
    }

    fn inspect(&self, name: &PluginName) -> Result<PluginStatus, RunError> {
        let file = self.store.load(name)?;
        let sha256 = content_hash(&file.bytes);
        let slot = lock(&self.plugins).peek(name).cloned();
        let (loaded, last_error) = match slot {
            Some(slot) => {
                let slot = lock(&slot);
                let loaded = slot
                    .current
                    .as_ref()
                    .is_some_and(|c| c.content_hash == sha256);
                let failed_now = slot.seen == Some(file.identity);
                (loaded, slot.last_error.clone().filter(|_| failed_now))
            }
            None => (false, None),
        };
        Ok(PluginStatus {
            name: name.clone(),
            size: file.identity.size,
            modified_unix: file
                .identity
                .modified
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            sha256,
            abi: AbiStatus::of(&file.bytes),
            loaded,
            last_error,
        })
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        let mut plugins = Vec::new();
        for name in self.store.list()? {
            match self.inspect(&name) {
                Ok(status) => plugins.push(status),
                // The store itself failed: the listing would be wrong, not just shorter.
                Err(error @ RunError::Store(StoreError::Unavailable(_))) => return Err(error),
                // Removed since it was listed, or not a plugin file: not part of the listing.
                Err(_) => {}
            }
        }
        Ok(plugins)
    }

    fn describe_store(&self) -> String {
        self.store.describe()
    }
}

/// A panic while holding one of these locks cannot leave the data half-updated in a way that
/// matters (every update is a whole-field assignment), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
