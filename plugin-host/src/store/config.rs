//! Where a plugin's configuration lives: files beside the plugin, and an override folder.
//!
//! A configuration is a JSON file an operator writes for one plugin (see README,
//! "Configuration"). Its names, most specific first:
//! - for the unversioned `<name>.wasm`: `<name>.config.json`;
//! - for `<name>/<version>.wasm`: `<name>/<version>.config.json`, then `<name>/config.json`
//!   (every version), then `<name>.config.json` (the plugin whatever its version: a flat name,
//!   as a Kubernetes ConfigMap key must be).
//!
//! The first of these names that exists is the configuration; a folder given with
//! `--plugin-config-dir` is searched first, whole, and only then the store's own folder (so a
//! ConfigMap mounted apart from the plugins overrides what ships beside them). Symbolic links
//! are followed when they lead to a regular file inside the same folder tree (a mounted
//! ConfigMap is a link into a hidden `..data` folder, swapped atomically on every update).
//!
//! Nothing here reads a configuration's contents beyond its bytes: they are never logged and
//! never part of an error message.

use std::{
    fs::{self, OpenOptions},
    io::{self, Read},
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use super::{FileIdentity, PluginRef, StoreError};

/// The suffix of a configuration file's name.
pub const CONFIG_SUFFIX: &str = ".config.json";

/// The name of the configuration of every version of a plugin, in its version folder.
pub const ALL_VERSIONS_CONFIG: &str = "config.json";

/// Where a configuration file was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigOrigin {
    /// `"override"` (the `--plugin-config-dir` folder) or `"store"` (beside the plugin).
    pub source: &'static str,
    /// The file's name relative to that folder, such as `redact/config.json`.
    pub file: String,
}

/// A configuration file's place and identity, without its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    pub origin: ConfigOrigin,
    pub identity: FileIdentity,
}

/// A configuration file as read.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub location: ConfigLocation,
    pub bytes: Vec<u8>,
}

/// The names `plugin`'s configuration may have, relative to a folder, most specific first.
pub fn candidates(plugin: &PluginRef) -> Vec<String> {
    let name = plugin.name.as_str();
    let flat = format!("{name}{CONFIG_SUFFIX}");
    match &plugin.version {
        None => vec![flat],
        Some(version) => {
            vec![format!("{name}/{version}{CONFIG_SUFFIX}"), format!("{name}/{ALL_VERSIONS_CONFIG}"), flat]
        }
    }
}

/// Whether a file in a version folder is a configuration (so it is not warned about as a stray
/// file).
pub fn is_config_file_name(file: &str) -> bool {
    file == ALL_VERSIONS_CONFIG
        || file
            .strip_suffix(CONFIG_SUFFIX)
            .is_some_and(|version| super::version::parse_version_exactly(version).is_some())
}

/// Configuration files in one folder (a plugin store's root, or the override folder).
#[derive(Debug, Clone, Copy)]
pub struct ConfigDir<'a> {
    /// Canonical.
    pub root: &'a Path,
    /// `"store"` or `"override"`.
    pub source: &'static str,
}

impl ConfigDir<'_> {
    /// The first configuration file of `plugin` that exists here, without reading it.
    pub fn stat(&self, plugin: &PluginRef) -> Result<Option<ConfigLocation>, StoreError> {
        for file in candidates(plugin) {
            if let Some((_, meta)) = self.locate(plugin, &file)? {
                let identity = identity(&meta);
                return Ok(Some(ConfigLocation { origin: ConfigOrigin { source: self.source, file }, identity }));
            }
        }
        Ok(None)
    }

    /// The first configuration file of `plugin` that exists here, read; at most `max_bytes + 1`
    /// bytes are read, so a caller sees a file that is too large without holding all of it.
    pub fn load(&self, plugin: &PluginRef, max_bytes: u64) -> Result<Option<ConfigFile>, StoreError> {
        for file in candidates(plugin) {
            let Some((path, _)) = self.locate(plugin, &file)? else { continue };
            // O_NONBLOCK: a FIFO named like a configuration must not hang the call; its type is
            // checked on the open descriptor.
            let opened = OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&path);
            let handle = match opened {
                Ok(handle) => handle,
                // Removed since it was found: look for the next one.
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(config_error(plugin, error)),
            };
            let meta = handle.metadata().map_err(|e| config_error(plugin, e))?;
            if !meta.is_file() {
                return Err(not_a_file(plugin, &file));
            }
            let mut bytes = Vec::new();
            handle.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| config_error(plugin, e))?;
            let location =
                ConfigLocation { origin: ConfigOrigin { source: self.source, file }, identity: identity(&meta) };
            return Ok(Some(ConfigFile { location, bytes }));
        }
        Ok(None)
    }

    /// The path of `file` and its metadata (of the link's target for a link), if it exists and
    /// is a regular file inside the root; an error for anything else by that name.
    fn locate(&self, plugin: &PluginRef, file: &str) -> Result<Option<(PathBuf, fs::Metadata)>, StoreError> {
        let path = self.root.join(file);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Not there, or a path through something that is not a folder (`<name>` a file).
            Err(error) if error.kind() == io::ErrorKind::NotFound || error.raw_os_error() == Some(libc::ENOTDIR) => {
                return Ok(None);
            }
            Err(error) => return Err(config_error(plugin, error)),
        };
        let (path, meta) = if meta.file_type().is_symlink() {
            let real = match path.canonicalize() {
                Ok(real) => real,
                // A dangling link is no configuration, as an absent file is none.
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(config_error(plugin, error)),
            };
            if !real.starts_with(self.root) {
                return Err(not_a_file(plugin, file));
            }
            let meta = fs::metadata(&real).map_err(|e| config_error(plugin, e))?;
            (real, meta)
        } else {
            (path, meta)
        };
        if !meta.is_file() {
            return Err(not_a_file(plugin, file));
        }
        Ok(Some((path, meta)))
    }
}

/// The override folder (`--plugin-config-dir`): its canonical path, checked at start-up.
#[derive(Debug, Clone)]
pub struct ConfigOverride {
    root: PathBuf,
}

impl ConfigOverride {
    /// Fails if `root` is not an existing folder.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref().canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, format!("{} is not a directory", root.display())));
        }
        Ok(ConfigOverride { root })
    }

    pub fn dir(&self) -> ConfigDir<'_> {
        ConfigDir { root: &self.root, source: "override" }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn identity(meta: &fs::Metadata) -> FileIdentity {
    FileIdentity {
        size: meta.len(),
        modified: meta.modified().unwrap_or(UNIX_EPOCH),
        inode: meta.ino(),
        changed: (meta.ctime(), meta.ctime_nsec()),
        digest: None,
        signature: None,
    }
}

/// An error reading a configuration: what and which plugin, never a byte of its contents.
fn config_error(plugin: &PluginRef, source: io::Error) -> StoreError {
    StoreError::Io { context: format!("reading the configuration of plugin `{plugin}`"), source }
}

fn not_a_file(plugin: &PluginRef, file: &str) -> StoreError {
    StoreError::Io {
        context: format!("the configuration of plugin `{plugin}`"),
        source: io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{file}` is not a regular file inside the configuration folder"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PluginName;

    fn plugin(version: Option<&str>) -> PluginRef {
        let name = PluginName::new("redact").unwrap();
        match version {
            None => PluginRef::unversioned(name),
            Some(v) => PluginRef::versioned(name, v.parse().unwrap()),
        }
    }

    #[test]
    fn the_most_specific_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let configs = ConfigDir { root: &root, source: "store" };
        let v1 = plugin(Some("1.0.0"));
        assert_eq!(configs.stat(&v1).unwrap(), None);
        fs::write(root.join("redact.config.json"), "{}").unwrap();
        assert_eq!(configs.stat(&v1).unwrap().unwrap().origin.file, "redact.config.json");
        assert_eq!(configs.stat(&plugin(None)).unwrap().unwrap().origin.file, "redact.config.json");
        fs::create_dir(root.join("redact")).unwrap();
        fs::write(root.join("redact/config.json"), "{}").unwrap();
        assert_eq!(configs.stat(&v1).unwrap().unwrap().origin.file, "redact/config.json");
        fs::write(root.join("redact/1.0.0.config.json"), "[]").unwrap();
        assert_eq!(configs.stat(&v1).unwrap().unwrap().origin.file, "redact/1.0.0.config.json");
        assert_eq!(configs.load(&v1, 100).unwrap().unwrap().bytes, b"[]");
        assert_eq!(configs.stat(&plugin(Some("2.0.0"))).unwrap().unwrap().origin.file, "redact/config.json");
        assert_eq!(configs.stat(&plugin(None)).unwrap().unwrap().origin.file, "redact.config.json");
    }

    #[test]
    fn links_are_followed_inside_the_folder_only() {
        // The layout kubelet gives a mounted ConfigMap.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir(root.join("..2026_12_04")).unwrap();
        fs::write(root.join("..2026_12_04/redact.config.json"), "{}").unwrap();
        std::os::unix::fs::symlink("..2026_12_04", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/redact.config.json", root.join("redact.config.json")).unwrap();
        let configs = ConfigDir { root: &root, source: "override" };
        assert_eq!(configs.load(&plugin(None), 10).unwrap().unwrap().bytes, b"{}");

        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "{}").unwrap();
        fs::remove_file(root.join("redact.config.json")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("redact.config.json")).unwrap();
        assert!(configs.stat(&plugin(None)).is_err(), "a link leaving the folder is refused");
    }

    #[test]
    fn configuration_names_in_a_version_folder() {
        assert!(is_config_file_name("config.json"));
        assert!(is_config_file_name("1.2.3.config.json"));
        assert!(!is_config_file_name("1.2.config.json"));
        assert!(!is_config_file_name("notes.json"));
    }
}
