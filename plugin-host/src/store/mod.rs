//! Where plugins come from: the [`PluginStore`] trait and its implementations.
//!
//! A store turns a validated [`PluginName`] (and, for a versioned plugin, a [`Version`]) into
//! the plugin's bytes. It knows nothing about WebAssembly; the runner decides when to re-read
//! (see [`FileIdentity`]), and the [`Resolver`] which version a request gets.

mod config;
mod dir;
mod flight;
#[cfg(feature = "fluid")]
mod fluid;
mod local;
mod name;
#[cfg(feature = "oci")]
pub mod oci;
mod resolver;
pub mod trust;
mod version;

use std::{fmt, io, time::Duration, time::SystemTime};

use crate::failure::FailureKind;

pub use config::{ConfigFile, ConfigLocation, ConfigOrigin, ConfigOverride};
#[cfg(feature = "fluid")]
pub use fluid::FluidPluginStore;
pub use local::LocalPluginStore;
pub use name::{InvalidName, MAX_NAME_LEN, PluginName};
#[cfg(feature = "oci")]
pub use oci::{Credentials, OciPluginStore, OciSettings};
pub use resolver::Resolver;
pub use version::{InvalidRequirement, MAX_REQUIREMENT_LEN, PluginRef, Version, VersionRequirement, Versions, select};

/// A source of plugins, shared by every request as `Arc<dyn PluginStore>`.
///
/// Methods block (they read files or talk to a registry): call them from a blocking context
/// such as `tokio::task::spawn_blocking`, never from an async task.
pub trait PluginStore: Send + Sync + fmt::Debug {
    /// The plugin file's identity, without reading it: cheap enough for every request.
    fn stat(&self, plugin: &PluginRef) -> Result<FileIdentity, StoreError>;
    /// Reads the plugin file, opening it afresh.
    fn load(&self, plugin: &PluginRef) -> Result<PluginFile, StoreError>;
    /// Every plugin the store holds, sorted by name.
    fn list(&self) -> Result<Vec<PluginName>, StoreError>;
    /// What the store holds under `name`: the unversioned plugin and every valid version
    /// (empty when it has nothing by that name). Entries that are not valid versions are left
    /// out with a warning.
    fn versions(&self, name: &PluginName) -> Result<Versions, StoreError>;
    /// The versions of `name` the store can serve without its source (a registry's blobs in
    /// the disk cache): what the `Resolver` falls back to when [`versions`](Self::versions)
    /// is unavailable and it has no listing of its own yet (after a restart). Default: none.
    fn held_versions(&self, _name: &PluginName) -> Versions {
        Versions::default()
    }
    /// The identity of `plugin` as far as the store knows it without asking its source (a
    /// registry's tag record, however old), for listings that must not ask the source about
    /// every version. `None`: [`stat`](Self::stat) must ask. Default: `None`.
    fn held_identity(&self, _plugin: &PluginRef) -> Option<FileIdentity> {
        None
    }
    /// How many versions one `GET /plugins/{name}/versions` listing may [`stat`](Self::stat)
    /// beyond those it [holds](Self::held_identity) (each one registry request); the rest are
    /// listed without a digest, and later listings fetch more. Default: no bound (files).
    fn lookups_per_listing(&self) -> Option<usize> {
        None
    }
    /// How long the `Resolver` may answer from a listing before asking again. Default: 1 s.
    fn listing_ttl(&self) -> Duration {
        Duration::from_secs(1)
    }
    /// Why the store is degraded while it still serves (a registry that cannot be reached,
    /// while what was pulled before keeps serving from the disk cache), for `/readyz`.
    /// Default: never degraded.
    fn degraded(&self) -> Option<String> {
        None
    }
    /// The trust policy's verdict on `plugin`, for listings: `None` when no policy is
    /// configured. With `lookup`, the store may read or ask its source to find out; without, a
    /// verdict it does not know yet is [`trust::Verdict::Unchecked`]. Default: `None`.
    fn verdict(&self, _plugin: &PluginRef, _lookup: bool) -> Option<trust::Verdict> {
        None
    }
    /// Where `plugin`'s configuration file is in this store, without reading it (see
    /// `store::config` for its names); `None` without one. Default: none (a registry keeps
    /// configuration in no file).
    fn stat_config(&self, _plugin: &PluginRef) -> Result<Option<ConfigLocation>, StoreError> {
        Ok(None)
    }
    /// `plugin`'s configuration file, read (at most `max_bytes + 1` bytes); `None` without one.
    fn load_config(&self, _plugin: &PluginRef, _max_bytes: u64) -> Result<Option<ConfigFile>, StoreError> {
        Ok(None)
    }
    /// Where plugins come from, for logs and `/readyz`.
    fn describe(&self) -> String;
    /// Whether [`stat`](Self::stat) answers at once (a local file system): only then may a call
    /// run on the thread that received the request (see `runner::ShortCalls`). A network or
    /// FUSE mount can hang, so the default is `false`.
    fn answers_promptly(&self) -> bool {
        false
    }
}

/// What identifies one version of a plugin file without reading it. Any change (a rewrite, a
/// replacement by rename) changes at least one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub size: u64,
    pub modified: SystemTime,
    /// Changes when the file is replaced by a rename, even if size and mtime match.
    pub inode: u64,
    /// Changes on every write or metadata change, even within one mtime tick.
    pub changed: (i64, i64),
    /// The SHA-256 of the content when the store knows it without reading the file (a
    /// registry names every blob by its digest); `None` for files.
    pub digest: Option<[u8; 32]>,
    /// With a trust policy, the detached signature beside a plugin file (inode and ctime), so
    /// that a signature added, replaced or removed beside an unchanged file is judged again;
    /// `None` without a policy, without a signature, and for a registry.
    pub signature: Option<SignatureIdentity>,
}

/// What identifies a detached signature file: its inode and ctime (seconds, nanoseconds).
pub type SignatureIdentity = (u64, i64, i64);

/// A plugin file as read from a store.
#[derive(Debug, Clone)]
pub struct PluginFile {
    pub bytes: Vec<u8>,
    pub identity: FileIdentity,
}

/// Why a store could not give a plugin.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("plugin `{0}` not found")]
    NotFound(PluginRef),
    /// A directory, FIFO, device or socket named like a plugin, or a link leaving the root.
    #[error("plugin `{0}` is not a regular file inside the plugin directory")]
    NotARegularFile(PluginRef),
    #[error("plugin `{name}` is {size} bytes, over the {limit}-byte limit")]
    TooLarge { name: PluginRef, size: u64, limit: u64 },
    /// The plugin exists, but none of its versions satisfies the requirement (or, without
    /// one, none is a release and there is no unversioned plugin).
    #[error(
        "{} (available: {})",
        match requirement {
            Some(requirement) => format!("no version of plugin `{name}` matches `{requirement}`"),
            None => format!("plugin `{name}` has no release version"),
        },
        available.describe()
    )]
    VersionNotFound { name: PluginName, requirement: Option<VersionRequirement>, available: Versions },
    /// A registry gave content whose SHA-256 is not the digest it was asked for: refused,
    /// never checked or compiled.
    #[error("plugin `{plugin}`: the registry sent content with digest {actual}, expected {expected}; refused")]
    DigestMismatch { plugin: PluginRef, expected: String, actual: String },
    /// A registry answered with something that is not a Wasm plugin artifact (a manifest that
    /// is not JSON, several layers, another media type): a fault upstream, not of the host.
    #[error("plugin `{plugin}`: the registry's artifact is not a Wasm plugin: {why}")]
    InvalidArtifact { plugin: PluginRef, why: String },
    /// The trust policy refuses this version (unsigned, wrongly signed, signed by another key):
    /// never compiled or run. `why` names no key material, only key ids.
    #[error("plugin `{plugin}` is refused: {why}")]
    Untrusted { plugin: PluginRef, refusal: trust::Refusal, why: String },
    /// The store as a whole cannot be read right now (for example a storage mount that is
    /// absent or disconnected); retrying later may succeed. `what` says which part failed,
    /// `source` the operating system's error when there is one.
    #[error("plugin store unavailable: {what}")]
    Unavailable {
        what: String,
        #[source]
        source: Option<io::Error>,
    },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

/// One answer of a store shared by every caller that waited for it (see `flight`): the
/// operating system's error is copied by kind and message.
impl Clone for StoreError {
    fn clone(&self) -> Self {
        let copy = |error: &io::Error| io::Error::new(error.kind(), error.to_string());
        match self {
            StoreError::NotFound(plugin) => StoreError::NotFound(plugin.clone()),
            StoreError::NotARegularFile(plugin) => StoreError::NotARegularFile(plugin.clone()),
            StoreError::TooLarge { name, size, limit } => {
                StoreError::TooLarge { name: name.clone(), size: *size, limit: *limit }
            }
            StoreError::VersionNotFound { name, requirement, available } => StoreError::VersionNotFound {
                name: name.clone(),
                requirement: requirement.clone(),
                available: available.clone(),
            },
            StoreError::DigestMismatch { plugin, expected, actual } => StoreError::DigestMismatch {
                plugin: plugin.clone(),
                expected: expected.clone(),
                actual: actual.clone(),
            },
            StoreError::InvalidArtifact { plugin, why } => {
                StoreError::InvalidArtifact { plugin: plugin.clone(), why: why.clone() }
            }
            StoreError::Untrusted { plugin, refusal, why } => {
                StoreError::Untrusted { plugin: plugin.clone(), refusal: *refusal, why: why.clone() }
            }
            StoreError::Unavailable { what, source } => {
                StoreError::Unavailable { what: what.clone(), source: source.as_ref().map(copy) }
            }
            StoreError::Io { context, source } => StoreError::Io { context: context.clone(), source: copy(source) },
        }
    }
}

impl StoreError {
    /// The store is unavailable because of this operating-system error.
    pub(crate) fn unavailable(what: impl Into<String>, source: io::Error) -> Self {
        StoreError::Unavailable { what: what.into(), source: Some(source) }
    }

    /// How the host reports this (see [`crate::failure`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            StoreError::NotFound(_) | StoreError::NotARegularFile(_) => FailureKind::PluginNotFound,
            StoreError::TooLarge { .. } => FailureKind::PluginTooLarge,
            StoreError::VersionNotFound { .. } => FailureKind::VersionNotFound,
            StoreError::DigestMismatch { .. } => FailureKind::DigestMismatch,
            StoreError::InvalidArtifact { .. } => FailureKind::InvalidArtifact,
            StoreError::Untrusted { refusal, .. } => refusal.kind(),
            StoreError::Unavailable { .. } => FailureKind::StoreUnavailable,
            StoreError::Io { .. } => FailureKind::StoreError,
        }
    }
}
