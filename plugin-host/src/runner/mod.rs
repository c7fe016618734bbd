//! Runs plugins by name, in this process ([`InProcessRunner`]) or in supervised worker
//! processes ([`WorkerPoolRunner`]): both implement [`Calls`] and [`Inspects`], so
//! [`crate::Host`] does not change with the isolation mode.

mod catalog;
mod configuration;
mod in_process;
mod short_calls;
#[cfg(feature = "workers")]
pub mod worker;

/// A plugin version's identity (re-exported: the runner's caches are keyed by it).
pub use crate::runtime::content_hash;
pub use catalog::DEFAULT_CACHE_CAPACITY;
pub use configuration::ConfigStatus;
pub use in_process::InProcessRunner;
pub use short_calls::{SHORT_CALL_BUDGET, ShortCalls};
#[cfg(feature = "workers")]
pub use worker::{WorkerFailure, WorkerPoolRunner, WorkerPoolStatus, WorkerSettings};

use std::sync::Arc;

use crate::{
    failure::FailureKind,
    runtime::RuntimeError,
    store::{
        InvalidName, InvalidRequirement, PluginName, PluginRef, StoreError, Version, VersionRequirement, trust::Verdict,
    },
};

/// What a plugin's call ran on: its name and version, and its content's hex SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran<T> {
    /// What the call produced.
    pub output: T,
    /// The plugin file that ran: the name, and the version a requirement resolved to.
    pub plugin: PluginRef,
    /// The hex SHA-256 of the plugin version's bytes (a registry's layer digest).
    pub sha256: Arc<str>,
}

/// What [`Calls::run_now`] or [`Calls::call_now`] did.
#[derive(Debug)]
pub enum Attempt<T> {
    /// It ran, on the calling thread.
    Done(Result<Ran<T>, RunError>),
    /// It was queued on a worker busy with calls before it; the outcome comes here (`Done`, or
    /// `Blocking` for a call that must go the ordinary way after all). A closed channel means
    /// the same as `Blocking(None)`.
    Queued(tokio::sync::oneshot::Receiver<Attempt<T>>),
    /// It must run from a thread that may block; the resolution made on the way, if any, so
    /// that it is not made twice.
    Blocking(Option<PluginRef>),
}

/// Runs plugins: the two runners (in this process, in worker processes) differ only here.
/// Methods block (they run WebAssembly or read files) except [`run_now`](Self::run_now).
///
/// A call names one plugin file, a [`PluginRef`]: a plugin name and, for a versioned plugin,
/// its version. [`resolve`](Self::resolve) says which file a [`Target`] gets; the other methods
/// use that file as it is now (hot swap). [`crate::Host`] puts them together, one entry per
/// kind of call, each resolving once.
pub trait Calls: Send + Sync + std::fmt::Debug {
    /// The plugin file a request for `target` runs: the highest version satisfying its
    /// requirement, or without one the highest release (else the unversioned file).
    fn resolve(&self, target: &Target) -> Result<PluginRef, RunError>;

    /// Runs `target`'s v1 call without a blocking thread, but only if it can start at once (the
    /// version is known, the store answers promptly, the plugin is loaded) and `target`'s
    /// recent calls were short (see [`ShortCalls`]): on the calling thread, or (with workers,
    /// under load) queued on a busy worker ([`Attempt::Queued`]). An async caller uses it to
    /// skip the hand-off to a blocking thread. The default never runs anything.
    fn run_now(&self, _target: &Target, _input: i32) -> Attempt<i32> {
        Attempt::Blocking(None)
    }

    /// What `target`'s current version offers, with the version, but only if that is known at
    /// once (the version resolved, the plugin loaded, its file unchanged): an async caller uses
    /// it to skip the hand-off to a blocking thread. The default knows nothing.
    fn interface_now(&self, _target: &Target) -> Option<(PluginRef, Interface)> {
        None
    }

    /// Calls the v2 function `function` of `plugin` without a blocking thread, but only if it
    /// can start at once and `plugin`'s recent calls were short (see [`ShortCalls`]), like
    /// [`run_now`](Self::run_now): on the calling thread, or (with workers, under load) queued on
    /// a busy worker. The default never runs anything.
    fn call_now(&self, _plugin: &PluginRef, _function: &str, _input: &[u8]) -> Attempt<Vec<u8>> {
        Attempt::Blocking(None)
    }

    /// Runs `init`, `process(input)` and `cleanup` of the current content of `plugin` on a
    /// fresh instance and returns `process`'s result (ABI v1).
    fn run(&self, plugin: &PluginRef, input: i32) -> Result<Ran<i32>, RunError>;

    /// What the current content of `plugin` offers: v1's integer call, or v2's functions and
    /// buffers.
    fn interface(&self, plugin: &PluginRef) -> Result<Interface, RunError>;

    /// Calls the v2 function `function` of `plugin` with `input` on a fresh instance and
    /// returns its output. A streaming function runs as one whole stream.
    fn call(&self, plugin: &PluginRef, function: &str, input: &[u8]) -> Result<Ran<Vec<u8>>, RunError>;

    /// Begins the v2 stream `function` of `plugin`.
    fn open_stream(&self, plugin: &PluginRef, function: &str) -> Result<Ran<Box<dyn PluginStream>>, RunError>;
}

/// What the runner knows about the store's plugins, for listings and readiness. Methods block.
pub trait Inspects: Send + Sync + std::fmt::Debug {
    /// What the store holds as `plugin` now, and how loading it went.
    fn inspect(&self, plugin: &PluginRef) -> Result<PluginStatus, RunError>;

    /// Every version of `name` the store holds, with digests.
    fn versions(&self, name: &PluginName) -> Result<Vec<VersionStatus>, RunError>;

    /// Every plugin in the store, sorted by name, as a request without a requirement gets it.
    fn list(&self) -> Result<Vec<PluginStatus>, RunError>;

    /// Where plugins come from, for operators.
    fn describe_store(&self) -> String;

    /// Why the store serves in a degraded way (an OCI registry that cannot be reached while
    /// the versions already pulled keep serving).
    fn store_degraded(&self) -> Option<String> {
        None
    }

    /// The worker processes, when plugins run in them.
    #[cfg(feature = "workers")]
    fn workers(&self) -> Option<WorkerPoolStatus> {
        None
    }
}

/// A runner: both halves.
pub trait Runner: Calls + Inspects {}

impl<R: Calls + Inspects> Runner for R {}

/// Which plugin a call is for: a name and, optionally, a version requirement in Cargo's syntax.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    pub name: PluginName,
    pub requirement: Option<VersionRequirement>,
}

impl Target {
    /// The plugin `name` (checked against the name rules), without a version requirement: its
    /// highest release, or its unversioned file.
    pub fn new(name: &str) -> Result<Self, InvalidName> {
        Ok(Target { name: PluginName::new(name)?, requirement: None })
    }

    /// The same plugin, with a version requirement (`^1.2`, `=1.4.2`, `>=2, <3`).
    pub fn with_version(self, requirement: &str) -> Result<Self, InvalidRequirement> {
        Ok(Target { requirement: Some(VersionRequirement::parse(requirement)?), ..self })
    }
}

impl From<PluginName> for Target {
    fn from(name: PluginName) -> Self {
        Target { name, requirement: None }
    }
}

/// What a plugin version can be called with.
#[derive(Debug, Clone)]
pub enum Interface {
    /// ABI v1: `init`, `process(i32) -> i32`, `cleanup`.
    V1,
    /// ABI v2: byte functions and streams, called by name.
    V2(Arc<plugin_sdk::V2Layout>),
}

impl Interface {
    /// The kind of the v2 function `function`, or why it cannot be called by name.
    pub fn function_kind(&self, function: &str) -> Result<plugin_sdk::FunctionKind, RunError> {
        match self {
            Interface::V1 => Err(RuntimeError::WrongAbiVersion { plugin: 1 }.into()),
            Interface::V2(layout) => Ok(crate::runtime::function_kind(layout, function)?),
        }
    }

    /// A v2 plugin's input capacity, in bytes.
    pub fn input_capacity(&self) -> Option<u32> {
        match self {
            Interface::V1 => None,
            Interface::V2(layout) => Some(layout.input.capacity),
        }
    }
}

/// A v2 stream in progress, on an instance (and, with worker processes, a worker) of its own.
/// Feed it chunks of at most [`chunk_capacity`](Self::chunk_capacity) bytes, then
/// [`finish`](Self::finish) it. Dropping it abandons the stream. After an error the stream is
/// over. Methods block, like [`Calls`]'s.
pub trait PluginStream: Send {
    /// The plugin's input capacity: the largest chunk it takes at once.
    fn chunk_capacity(&self) -> usize;

    /// Feeds one chunk; returns the output the plugin produced for it.
    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RunError>;

    /// Ends the stream; returns the final output.
    fn finish(self: Box<Self>) -> Result<Vec<u8>, RunError>;
}

/// One plugin as `GET /plugins` shows it. A file the store holds but cannot give (over the
/// size limit, unreadable) is listed too, with what is known and `last_error` saying why:
/// an operator looking for it must find it.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginStatus {
    pub name: PluginName,
    /// The version this status is of; `null` for an unversioned plugin file.
    #[serde(serialize_with = "serialize_version")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = true))]
    pub version: Option<Version>,
    /// File size in bytes, when known.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub size: Option<u64>,
    /// Last modification, in seconds since the Unix epoch, when the file could be read.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub modified_unix: Option<u64>,
    /// Hex SHA-256 of the file's contents (the plugin version), when the file could be read.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub sha256: Option<String>,
    /// The ABI check's verdict, when the file could be read.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub abi: Option<AbiStatus>,
    /// Whether this exact version is compiled and serving.
    pub loaded: bool,
    /// Why the latest version of the file failed to load, if it did.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub last_error: Option<String>,
    /// Set while the plugin is quarantined for crashing worker processes.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub quarantine: Option<QuarantineStatus>,
    /// Other versions in the store that differ from this one only in build metadata
    /// (`2.3.4+zzz` beside `2.3.4`): no requirement can tell them apart, this one is served and
    /// they never are. Absent when there are none, as publishing alone keeps it.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "serialize_versions")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub conflicts: Vec<Version>,
    /// The trust policy's verdict on this version (`verdict`: `verified` with its `signers`,
    /// `unsigned_allowed`, `refused` with `code` and `message`, or `unchecked`); absent when no
    /// policy is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Verdict>,
    /// The plugin's configuration (its digest, never its contents) and why a newer one is not
    /// serving; absent when the plugin has none and there is nothing to report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<ConfigStatus>,
}

/// One version as `GET /plugins/{name}/versions` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionStatus {
    /// `null` for the unversioned plugin file.
    #[serde(serialize_with = "serialize_version")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, required = true))]
    pub version: Option<Version>,
    /// Hex SHA-256 of the content (a registry's layer digest), when it could be read.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub sha256: Option<String>,
    /// Whether a request without a version requirement gets this one.
    pub default: bool,
    /// The version served instead of this one, which differs from it only in build metadata
    /// (see `conflicts` in [`PluginStatus`]); absent for a version that can be served.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "serialize_version")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub shadowed_by: Option<Version>,
    /// The trust policy's verdict (see [`PluginStatus`]); absent without a policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<Verdict>,
}

fn serialize_version<S: serde::Serializer>(version: &Option<Version>, serializer: S) -> Result<S::Ok, S::Error> {
    match version {
        Some(version) => serializer.collect_str(version),
        None => serializer.serialize_none(),
    }
}

fn serialize_versions<S: serde::Serializer>(versions: &[Version], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(versions.iter().map(ToString::to_string))
}

/// A plugin refused for a while because it kept crashing worker processes.
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuarantineStatus {
    /// Crashes in a row (a successful call resets the count).
    pub consecutive_crashes: u32,
    /// Seconds until calls are tried again.
    pub retry_after_secs: u64,
}

/// The ABI check's verdict on a plugin file.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AbiStatus {
    pub compliant: bool,
    /// The ABI version the plugin is checked and runs as: the one it declares or, when it
    /// declares none, 1 (the original contract). `None` when its declaration is unreadable or
    /// names a version this host does not support.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub version: Option<u32>,
    /// The version the plugin's `wasm_plugin_abi` marker declares; `None` without a marker.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub declared_version: Option<u32>,
    /// Codes of the violations found (see ABI.md), empty when compliant.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub violations: Vec<&'static str>,
    /// Codes of the warnings (such as `missing-abi-version`), which do not stop the plugin.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub warnings: Vec<&'static str>,
    /// A compliant v2 plugin's interface: its buffers (`input` and `output`, each `offset`
    /// and `capacity` in bytes) and its `functions` (each a `name` and a `kind`, `call` or
    /// `stream`). Absent for v1 plugins.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub v2: Option<plugin_sdk::V2Layout>,
}

impl AbiStatus {
    /// The verdict on `wasm` under the limits the host runs plugins with.
    pub fn of(wasm: &[u8], limits: &plugin_sdk::AbiLimits) -> Self {
        let report = plugin_sdk::check_with(wasm, limits);
        let codes = |list: &[plugin_sdk::Violation]| list.iter().map(|v| v.kind.code()).collect();
        AbiStatus {
            compliant: report.is_compliant(),
            version: report.abi_version,
            declared_version: report.declared_abi_version,
            violations: codes(&report.violations),
            warnings: codes(&report.warnings),
            v2: report.v2,
        }
    }
}

/// The SHA-256 of `bytes`, raw ([`content_hash`] is the same in hex).
fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// Why a run failed: the store could not give the plugin, the runtime could not run it, or the
/// worker process running it failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[cfg(feature = "workers")]
    #[error(transparent)]
    Worker(#[from] WorkerFailure),
    #[error("plugin quarantined after {} crashes in a row; retry in {} s", .0.consecutive_crashes, .0.retry_after_secs)]
    Quarantined(QuarantineStatus),
    /// The failure this very plugin file gave when it was last loaded; it is not loaded again
    /// until it changes.
    #[error(transparent)]
    Remembered(Arc<RunError>),
    /// As many calls run as the host allows ([`crate::Settings::max_calls_in_flight`]).
    #[error("the host is running as many calls as it allows; retry shortly")]
    Busy,
    /// The host was closed ([`crate::Host::close`]): it starts no more calls.
    #[error("the host is shutting down; retry on another replica")]
    Closed,
    /// The call's thread panicked: a fault of the host, never of the plugin.
    #[error("the call's thread panicked: {0}")]
    Panicked(String),
    /// The plugin's configuration file is unusable and no earlier good one is held. `problem`
    /// names the file and what is wrong, never its contents.
    #[error("the plugin's configuration is not usable: {problem}")]
    InvalidConfiguration { problem: String },
}

impl RunError {
    /// The failure itself, whether it happened now or is remembered from an earlier load of
    /// the same file: what to match on.
    pub fn root(&self) -> &RunError {
        match self {
            RunError::Remembered(error) => error.root(),
            other => other,
        }
    }

    /// How the host reports this (see [`crate::failure`]).
    pub fn kind(&self) -> FailureKind {
        match self {
            RunError::Store(error) => error.kind(),
            RunError::Runtime(error) => error.kind(),
            #[cfg(feature = "workers")]
            RunError::Worker(failure) => failure.kind(),
            RunError::Quarantined(_) => FailureKind::PluginQuarantined,
            RunError::Remembered(error) => error.kind(),
            RunError::Busy | RunError::Closed => FailureKind::Overloaded,
            RunError::Panicked(_) => FailureKind::Internal,
            RunError::InvalidConfiguration { .. } => FailureKind::InvalidConfiguration,
        }
    }

    /// Seconds a client should wait before retrying, for transient failures that know better
    /// than the default (a quarantine knows when it ends).
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            RunError::Quarantined(quarantine) => Some(quarantine.retry_after_secs.max(1)),
            RunError::Remembered(error) => error.retry_after_secs(),
            _ => None,
        }
    }

    /// The message for the client when the kind discloses details: what the plugin did. A
    /// cleanup that failed inside the engine after the call failed stays in the log.
    pub fn public_details(&self) -> String {
        match self {
            RunError::Runtime(RuntimeError::CleanupAlsoFailed { failure, .. }) => {
                format!("{failure}; cleanup failed too")
            }
            RunError::Remembered(error) => error.public_details(),
            other => other.to_string(),
        }
    }
}
