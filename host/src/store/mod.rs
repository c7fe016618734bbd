//! Where plugins come from: the [`PluginStore`] trait and its implementations.
//!
//! A store turns a validated [`PluginName`] into the plugin's bytes. It knows nothing about
//! WebAssembly; the runner decides when to re-read (see [`FileIdentity`]).

mod dir;
mod fluid;
mod local;
mod name;

use std::{fmt, io, time::SystemTime};

use crate::failure::FailureKind;

pub use fluid::FluidPluginStore;
pub use local::LocalPluginStore;
pub use name::{InvalidName, MAX_NAME_LEN, PluginName};

/// A source of plugins, shared by every request as `Arc<dyn PluginStore>`.
pub trait PluginStore: Send + Sync + fmt::Debug {
    /// The plugin file's identity, without reading it: cheap enough for every request.
    fn stat(&self, name: &PluginName) -> Result<FileIdentity, StoreError>;
    /// Reads the plugin file, opening it afresh.
    fn load(&self, name: &PluginName) -> Result<PluginFile, StoreError>;
    /// Every plugin the store holds, sorted by name.
    fn list(&self) -> Result<Vec<PluginName>, StoreError>;
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
}

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
    NotFound(PluginName),
    /// A directory, FIFO, device or socket named like a plugin, or a link leaving the root.
    #[error("plugin `{0}` is not a regular file inside the plugin directory")]
    NotARegularFile(PluginName),
    #[error("plugin `{name}` is {size} bytes, over the {limit}-byte limit")]
    TooLarge { name: PluginName, size: u64, limit: u64 },
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
            StoreError::Unavailable { .. } => FailureKind::StoreUnavailable,
            StoreError::Io { .. } => FailureKind::StoreError,
        }
    }
}
