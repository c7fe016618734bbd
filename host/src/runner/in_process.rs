//! Runs plugins in this process, keeping each plugin's compiled current version.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use lru::LruCache;
use sha2::{Digest, Sha256};

use super::{PluginRunner, RunError};
use crate::{
    runtime::{CompiledPlugin, Engine},
    store::{FileIdentity, PluginName, PluginStore},
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
    pub fn new(store: Arc<dyn PluginStore>, engine: Engine, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        InProcessRunner { store, engine, plugins: Mutex::new(LruCache::new(capacity)) }
    }

    /// The version of `name` a new call should run, loading it if the file changed.
    fn current_version(&self, name: &PluginName) -> Result<Arc<CompiledPlugin>, RunError> {
        let slot = Arc::clone(lock(&self.plugins).get_or_insert(name.clone(), Default::default));
        let mut slot = lock(&slot);
        let identity = self.store.stat(name)?;
        if slot.seen == Some(identity) {
            if let Some(current) = &slot.current {
                return Ok(Arc::clone(&current.plugin));
            }
        }
        let file = self.store.load(name)?;
        let content_hash = hex::encode(Sha256::digest(&file.bytes));
        slot.seen = Some(file.identity);
        if let Some(current) = slot.current.as_ref().filter(|c| c.content_hash == content_hash) {
            // Touched or copied over with the same content: nothing to recompile.
            let plugin = Arc::clone(&current.plugin);
            slot.last_error = None;
            return Ok(plugin);
        }
        match self.engine.compile(&file.bytes, &content_hash) {
            Ok(plugin) => {
                tracing::info!(plugin = %name, hash = &content_hash[..12], "loaded plugin version");
                let plugin = Arc::new(plugin);
                slot.current = Some(LoadedVersion { content_hash, plugin: Arc::clone(&plugin) });
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
        Ok(plugin.call(input)?)
    }
}

/// A panic while holding one of these locks cannot leave the data half-updated in a way that
/// matters (every update is a whole-field assignment), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
