//! What the host tells its embedder as it works, for metrics and logs of the embedder's choice.

use std::{fmt, time::Duration};

use crate::{
    failure::FailureKind,
    store::{PluginName, PluginRef},
};

/// Called by the host as calls end and plugins load. Every method has a default that does
/// nothing, so an implementation names only what it records. Methods are called on the thread
/// doing the work, often with a call waiting: keep them quick (count, don't block).
///
/// The server implements it with Prometheus (`host/src/metrics.rs`).
pub trait Observer: Send + Sync + fmt::Debug {
    /// A call of `plugin` ended after `took` (resolution, loading, waiting for a worker and the
    /// call itself). A stream ends when it is finished, fails or is dropped. `plugin` is the
    /// name asked for: unless the outcome says the plugin was found
    /// ([`Outcome::plugin_found`]), it may be any valid name a caller made up, so do not make
    /// it a metric label then.
    fn call_finished(&self, plugin: &PluginName, outcome: Outcome, took: Duration) {
        let _ = (plugin, outcome, took);
    }

    /// A fresh instance was ready to run after `took` (instantiation, or a reset instance).
    fn instance_ready(&self, took: Duration) {
        let _ = took;
    }

    /// A call was queued on a worker process busy with calls before it, instead of waiting for
    /// a worker of its own (see [`WorkerSettings`](crate::WorkerSettings)): how often the pool
    /// runs under load.
    fn call_queued(&self) {}

    /// A call found its plugin version already compiled (`true`) or had to load it.
    fn plugin_lookup(&self, cached: bool) {
        let _ = cached;
    }

    /// A plugin version was loaded (read, checked, compiled), or refused with this kind of
    /// failure. A refused version is remembered and not loaded again until it changes.
    fn plugin_loaded(&self, plugin: &PluginRef, outcome: Result<(), FailureKind>) {
        let _ = (plugin, outcome);
    }

    /// A configuration of `plugin` was found unusable (not JSON, over its buffer), or its
    /// `init` refused it; the last good one, if any, keeps serving. Never its contents.
    fn configuration_refused(&self, plugin: &PluginName) {
        let _ = plugin;
    }

    /// A worker process died running a call of `plugin` (it crashed, or was killed at the
    /// call's deadline or memory limit).
    fn worker_died(&self, plugin: &PluginName) {
        let _ = plugin;
    }

    /// `plugin` was quarantined for crashing workers (`true`), or its quarantine ended.
    fn quarantine_changed(&self, plugin: &PluginName, quarantined: bool) {
        let _ = (plugin, quarantined);
    }
}

/// The observer that records nothing: the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(FailureKind),
    /// The caller dropped a stream before finishing it.
    Abandoned,
}

impl Outcome {
    /// A stable code for the outcome: `ok`, `abandoned` or the failure's code.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(kind) => kind.code(),
            Outcome::Abandoned => "abandoned",
        }
    }

    /// Whether the store had the plugin the call asked for.
    pub fn plugin_found(self) -> bool {
        match self {
            Outcome::Ok | Outcome::Abandoned => true,
            Outcome::Failed(kind) => kind.plugin_found(),
        }
    }
}
