//! A directory of `<name>.wasm` files and `<name>/<version>.wasm` versions on a local
//! filesystem.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::{
    ConfigFile, ConfigLocation, FileIdentity, PluginFile, PluginName, PluginRef, PluginStore, StoreError, Versions,
    config::ConfigDir,
    dir::PluginDir,
    trust::{TrustPolicy, Verdict},
};
use crate::logs;

/// Serves `<root>/<name>.wasm` and `<root>/<name>/<version>.wasm` (see `PluginDir` for what is refused). The directory must exist
/// when the store is made.
#[derive(Debug)]
pub struct LocalPluginStore {
    /// Canonical, so that "inside the root" can be checked on canonical paths.
    root: PathBuf,
    max_bytes: u64,
    warned: logs::Once,
    /// Default: none (no signatures needed).
    trust: Option<Arc<TrustPolicy>>,
}

impl LocalPluginStore {
    /// Fails if `root` is not an existing directory.
    pub fn new(root: impl AsRef<Path>, max_bytes: u64) -> io::Result<Self> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", root.display())));
        }
        Ok(LocalPluginStore { root, max_bytes, warned: logs::Once::default(), trust: None })
    }

    /// Serves only files whose detached signatures (`<file>.sig`) the policy accepts.
    pub fn with_trust(mut self, policy: Arc<TrustPolicy>) -> Self {
        self.trust = Some(policy);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self) -> PluginDir<'_> {
        PluginDir { root: &self.root, max_bytes: self.max_bytes, warned: &self.warned, trust: self.trust.as_deref() }
    }
}

impl PluginStore for LocalPluginStore {
    fn answers_promptly(&self) -> bool {
        true
    }

    fn stat(&self, plugin: &PluginRef) -> Result<FileIdentity, StoreError> {
        self.dir().stat(plugin)
    }

    fn load(&self, plugin: &PluginRef) -> Result<PluginFile, StoreError> {
        self.dir().load(plugin)
    }

    fn list(&self) -> Result<Vec<PluginName>, StoreError> {
        self.dir().list().map_err(|e| StoreError::unavailable("listing the plugin directory", e))
    }

    fn versions(&self, name: &PluginName) -> Result<Versions, StoreError> {
        self.dir().versions(name).map_err(|e| StoreError::unavailable(format!("listing the versions of `{name}`"), e))
    }

    fn verdict(&self, plugin: &PluginRef, _lookup: bool) -> Option<Verdict> {
        self.dir().verdict(plugin).ok().flatten()
    }

    fn stat_config(&self, plugin: &PluginRef) -> Result<Option<ConfigLocation>, StoreError> {
        ConfigDir { root: &self.root, source: "store" }.stat(plugin)
    }

    fn load_config(&self, plugin: &PluginRef, max_bytes: u64) -> Result<Option<ConfigFile>, StoreError> {
        ConfigDir { root: &self.root, source: "store" }.load(plugin, max_bytes)
    }

    fn describe(&self) -> String {
        format!("local directory {}", self.root.display())
    }
}
