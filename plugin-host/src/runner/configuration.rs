//! Each plugin's configuration as calls get it: found, checked, kept while unchanged.
//!
//! Like a plugin file, a configuration file is looked at (a `stat`, no read) on every call of a
//! plugin that declares a configuration buffer, and read and checked again only when it changed
//! (see `store::config` for where it is looked for). A configuration is checked before it
//! reaches a plugin: at most what the plugin's buffer holds, and well-formed JSON. A change
//! that fails the check keeps the last good configuration serving (or, if there never was one,
//! makes calls fail with `invalid_configuration`), and is reported in the listing, in a
//! warning and in `plugin_host_config_errors_total`; a configuration the plugin's `init`
//! refuses is remembered, and answered with `configuration_refused` without running the plugin,
//! until the configuration or the plugin changes.
//!
//! The contents are secret as far as the host is concerned: they reach the plugin and nothing
//! else. Logs, errors and the listing name the file and give its size and SHA-256, never a byte
//! of it (a JSON syntax error is reported by its line and column only).

use std::{num::NonZeroUsize, sync::Arc};

use lru::LruCache;
use parking_lot::Mutex;

use super::{RunError, sha256};
use crate::{
    observe::Observer,
    runtime::RuntimeError,
    store::{ConfigFile, ConfigLocation, ConfigOrigin, ConfigOverride, PluginRef, PluginStore, StoreError},
};

/// A configuration as it is given to a plugin.
#[derive(Debug)]
pub struct Configuration {
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
    pub origin: ConfigOrigin,
}

/// A plugin's configuration as `GET /plugins/{name}` shows it: which one serves, identified by
/// its digest, and why a newer file does not. Never its contents.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigStatus {
    /// Hex SHA-256 of the configuration calls get now; `null` when they get none.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub sha256: Option<String>,
    /// Its size in bytes.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub size: Option<u64>,
    /// Where it was found: `source` (`"override"`, the `--plugin-config-dir` folder, or
    /// `"store"`, beside the plugin) and `file` (its name there).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub origin: Option<ConfigOrigin>,
    /// Why the newest configuration file is not the one serving (not JSON, too large, given to
    /// a plugin without a configuration buffer, refused by the plugin's `init`), if it is not.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_error: Option<String>,
}

/// Plugins whose configuration state is kept (least recently used forgotten first).
const CAPACITY: usize = 1024;

/// What a call (or a listing) learns about a plugin's configuration.
#[derive(Debug)]
pub struct Configurations {
    override_dir: Option<ConfigOverride>,
    slots: Mutex<LruCache<PluginRef, Arc<Mutex<Slot>>>>,
    observer: Arc<dyn Observer>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The file last examined, and the room it was checked against.
    seen: Option<(Option<ConfigLocation>, u32)>,
    /// The last good state: `Some(None)` is "no configuration"; `None`, never a good one.
    good: Option<Option<Arc<Configuration>>>,
    /// Why the file in `seen` is not serving, if it is not.
    last_error: Option<String>,
    /// The plugin version (content hash) and configuration (SHA-256) whose `init` refused it.
    refused: Option<(String, [u8; 32])>,
}

impl Configurations {
    pub fn new(observer: Arc<dyn Observer>) -> Self {
        let slots = Mutex::new(LruCache::new(NonZeroUsize::new(CAPACITY).expect("non-zero")));
        Configurations { override_dir: None, slots, observer }
    }

    /// Looks in `dir` before the store (see `store::config`).
    pub fn with_override(mut self, dir: ConfigOverride) -> Self {
        self.override_dir = Some(dir);
        self
    }

    fn slot(&self, plugin: &PluginRef) -> Arc<Mutex<Slot>> {
        Arc::clone(self.slots.lock().get_or_insert(plugin.clone(), Default::default))
    }

    fn locate(&self, store: &dyn PluginStore, plugin: &PluginRef) -> Result<Option<ConfigLocation>, StoreError> {
        if let Some(dir) = &self.override_dir
            && let Some(found) = dir.dir().stat(plugin)?
        {
            return Ok(Some(found));
        }
        store.stat_config(plugin)
    }

    fn read(&self, store: &dyn PluginStore, plugin: &PluginRef, room: u32) -> Result<Option<ConfigFile>, StoreError> {
        let max_bytes = u64::from(room);
        if let Some(dir) = &self.override_dir
            && let Some(found) = dir.dir().load(plugin, max_bytes)?
        {
            return Ok(Some(found));
        }
        store.load_config(plugin, max_bytes)
    }

    /// The configuration a call of `plugin` gets, for a plugin whose configuration buffer holds
    /// `room` bytes (0: it has none, so any configuration is an error to report). `None`: no
    /// configuration. A store that cannot answer fails the call as it would for the plugin.
    pub fn current(
        &self,
        store: &dyn PluginStore,
        plugin: &PluginRef,
        room: u32,
    ) -> Result<Option<Arc<Configuration>>, RunError> {
        let location = self.locate(store, plugin)?;
        let slot = self.slot(plugin);
        let mut slot = slot.lock();
        if slot.seen.as_ref() != Some(&(location.clone(), room)) {
            self.examine(store, plugin, room, location, &mut slot)?;
        }
        match &slot.good {
            Some(good) => Ok(good.clone()),
            None => Err(RunError::InvalidConfiguration {
                problem: slot.last_error.clone().unwrap_or_else(|| "no usable configuration".into()),
            }),
        }
    }

    /// Reads and checks the configuration file that changed, and records the verdict.
    fn examine(
        &self,
        store: &dyn PluginStore,
        plugin: &PluginRef,
        room: u32,
        location: Option<ConfigLocation>,
        slot: &mut Slot,
    ) -> Result<(), RunError> {
        if location.is_none() {
            slot.seen = Some((None, room));
            slot.good = Some(None);
            slot.last_error = None;
            return Ok(());
        }
        let Some(file) = self.read(store, plugin, room)? else {
            // Gone between the look and the read: the next call looks again.
            slot.seen = None;
            slot.good = Some(None);
            slot.last_error = None;
            return Ok(());
        };
        slot.seen = Some((Some(file.location.clone()), room));
        match check(&file.bytes, file.location.identity.size, room) {
            Ok(()) => {
                let configuration = Configuration {
                    sha256: sha256(&file.bytes),
                    bytes: file.bytes,
                    origin: file.location.origin.clone(),
                };
                if slot.good.as_ref().and_then(Option::as_ref).is_none_or(|good| good.sha256 != configuration.sha256) {
                    tracing::info!(%plugin, file = %file.location.origin.file, source = file.location.origin.source,
                        sha256 = &hex::encode(configuration.sha256)[..12], "configuration loaded");
                }
                slot.good = Some(Some(Arc::new(configuration)));
                slot.last_error = None;
            }
            Err(problem) => {
                let origin = &file.location.origin;
                let problem = format!("{} ({}): {problem}", origin.file, origin.source);
                tracing::warn!(%plugin, %problem, kept_previous = slot.good.is_some(),
                    "configuration not usable; the last good one (if any) keeps serving");
                self.observer.configuration_refused(&plugin.name);
                slot.last_error = Some(problem);
            }
        }
        Ok(())
    }

    /// Whether `init` of the plugin version `content_hash` refused `configuration` before.
    pub fn refused(&self, plugin: &PluginRef, content_hash: &str, configuration: &Configuration) -> bool {
        let slot = self.slot(plugin);
        let slot = slot.lock();
        slot.refused.as_ref().is_some_and(|(hash, digest)| hash == content_hash && *digest == configuration.sha256)
    }

    /// Remembers that `init` of `content_hash` refused `configuration`: calls are answered
    /// without running the plugin until either changes.
    pub fn remember_refusal(&self, plugin: &PluginRef, content_hash: &str, configuration: &Configuration) {
        let slot = self.slot(plugin);
        let mut slot = slot.lock();
        if slot.refused.as_ref().is_some_and(|(hash, digest)| hash == content_hash && *digest == configuration.sha256) {
            return;
        }
        tracing::warn!(%plugin, file = %configuration.origin.file, source = configuration.origin.source,
            sha256 = &hex::encode(configuration.sha256)[..12], "the plugin's init refused its configuration");
        self.observer.configuration_refused(&plugin.name);
        slot.refused = Some((content_hash.to_owned(), configuration.sha256));
    }

    /// The configuration of `plugin` for the listing, checked as a call would check it (with
    /// `room` 0 for a plugin without a configuration buffer); `None` when there is no
    /// configuration and nothing to report. `content_hash` is the plugin version serving, to
    /// report a refusal of it.
    pub fn status(
        &self,
        store: &dyn PluginStore,
        plugin: &PluginRef,
        room: u32,
        content_hash: Option<&str>,
    ) -> Result<Option<ConfigStatus>, StoreError> {
        let serving = match self.current(store, plugin, room) {
            Ok(serving) => serving,
            Err(RunError::Store(error)) => return Err(error),
            Err(_) => None,
        };
        let slot = self.slot(plugin);
        let slot = slot.lock();
        let refused = match (&serving, content_hash, &slot.refused) {
            (Some(config), Some(hash), Some((refused_hash, digest))) => {
                refused_hash == hash && *digest == config.sha256
            }
            _ => false,
        };
        let last_error = if refused {
            Some(format!(
                "{} ({}): the plugin's init refused it",
                serving.as_ref().expect("refused").origin.file,
                serving.as_ref().expect("refused").origin.source
            ))
        } else {
            slot.last_error.clone()
        };
        if serving.is_none() && last_error.is_none() {
            return Ok(None);
        }
        Ok(Some(ConfigStatus {
            sha256: serving.as_ref().map(|config| hex::encode(config.sha256)),
            size: serving.as_ref().map(|config| config.bytes.len() as u64),
            origin: serving.as_ref().map(|config| config.origin.clone()),
            last_error,
        }))
    }
}

/// Whether `bytes` may reach a plugin whose configuration buffer holds `room` bytes. The
/// problem never quotes the bytes.
fn check(bytes: &[u8], size: u64, room: u32) -> Result<(), String> {
    if room == 0 {
        return Err("the plugin declares no configuration buffer, so it takes no configuration".into());
    }
    if bytes.len() as u64 > u64::from(room) {
        return Err(format!("it is {size} bytes, over the plugin's configuration buffer, which holds {room}"));
    }
    if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        // Line and column only: serde_json's own message may quote what it read.
        return Err(format!(
            "it is not well-formed JSON ({} error at line {}, column {})",
            match error.classify() {
                serde_json::error::Category::Eof => "unexpected end",
                _ => "syntax",
            },
            error.line(),
            error.column()
        ));
    }
    Ok(())
}

/// A call's configuration error, with the refusal turned into the remembered verdict.
pub fn refusal() -> RunError {
    RunError::Remembered(Arc::new(RunError::Runtime(RuntimeError::ConfigurationRefused)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_never_quote_the_configuration() {
        let secret = br#"{"key": "hunter2-SECRET" oops}"#;
        let check = |bytes: &[u8], room| check(bytes, bytes.len() as u64, room);
        let problem = check(secret, 100).unwrap_err();
        assert!(problem.contains("not well-formed JSON"), "{problem}");
        assert!(!problem.contains("hunter2") && !problem.contains("oops"), "{problem}");
        assert!(
            check(secret, 10).unwrap_err().contains("bytes, over the plugin's configuration buffer, which holds 10")
        );
        assert!(check(b"{}", 0).unwrap_err().contains("no configuration buffer"));
        assert_eq!(check(br#"{"fields": ["ssn"]}"#, 100), Ok(()));
        assert!(check(b"", 100).unwrap_err().contains("unexpected end"));
    }
}
