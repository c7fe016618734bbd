//! Runs plugins in this process: fastest, but a plugin that crashes WasmEdge takes the process
//! with it. For trusted plugins and for measurement; see `worker` for the isolated runner.

use std::{sync::Arc, time::Instant};

use super::{
    Attempt, Calls, Inspects, Interface, PluginStatus, PluginStream, Ran, RunError, ShortCalls, Target, VersionStatus,
    catalog::{Catalog, Loaded},
};
use crate::{
    observe::Observer,
    runtime::{CompiledPlugin, Engine, RuntimeError, StreamSession},
    store::{PluginName, PluginRef, PluginStore},
};

/// Compiles each plugin version once (see [`Catalog`]) and runs every call on a fresh instance.
#[derive(Debug)]
pub struct InProcessRunner {
    catalog: Catalog<Arc<CompiledPlugin>>,
    engine: Engine,
    observer: Arc<dyn Observer>,
    short_calls: ShortCalls,
}

impl InProcessRunner {
    /// Looks for configuration files in `dir` before the store (`--plugin-config-dir`).
    pub fn with_config_override(mut self, dir: crate::store::ConfigOverride) -> Self {
        self.catalog = self.catalog.with_config_override(dir);
        self
    }

    pub fn new(store: Arc<dyn PluginStore>, engine: Engine, observer: Arc<dyn Observer>, capacity: usize) -> Self {
        let abi_limits = engine.settings().limits.abi.clone();
        let catalog = Catalog::new(store, Arc::clone(&observer), capacity, abi_limits);
        InProcessRunner { catalog, engine, observer, short_calls: ShortCalls::default() }
    }

    /// Calls of at most `budget` count as short (see [`ShortCalls`]); zero disables the direct
    /// path. Default: [`SHORT_CALL_BUDGET`](super::SHORT_CALL_BUDGET).
    pub fn with_short_call_budget(mut self, budget: std::time::Duration) -> Self {
        self.short_calls = ShortCalls::new(budget);
        self
    }

    /// Trusts a plugin file found unchanged for `recheck` (see
    /// [`crate::Settings::hot_swap_recheck`]). Default: zero, every call looks.
    pub fn with_hot_swap_recheck(mut self, recheck: std::time::Duration) -> Self {
        self.catalog = self.catalog.with_recheck(recheck);
        self
    }

    /// One v1 lifecycle on a fresh instance of `plugin`, timed for [`ShortCalls`].
    fn run_compiled(&self, name: &PluginName, plugin: &CompiledPlugin, input: i32) -> Result<i32, RunError> {
        let started = Instant::now();
        let (result, ready) = plugin.run_v1(input);
        self.observer.instance_ready(ready);
        self.short_calls.record(name, started.elapsed());
        Ok(result?)
    }

    /// A v2 call on `plugin`'s compiled current content, with its configuration, timed for
    /// [`ShortCalls`].
    fn call_loaded(
        &self,
        plugin: &PluginRef,
        loaded: Loaded<Arc<CompiledPlugin>>,
        function: &str,
        input: &[u8],
    ) -> Result<Ran<Vec<u8>>, RunError> {
        let started = Instant::now();
        let compiled = &loaded.module;
        let config = self.catalog.configuration(plugin, compiled.interface().ok().map(|layout| &**layout))?;
        let bytes = config.as_ref().map(|config| &config.bytes[..]);
        let result = compiled.call_function_configured(function, input, bytes).map_err(RunError::from);
        let output = self.catalog.after_call(plugin, config.as_deref(), result);
        self.short_calls.record(&plugin.name, started.elapsed());
        Ok(Ran { output: output?, plugin: plugin.clone(), sha256: loaded.sha256 })
    }

    /// The compiled current content of `plugin`.
    fn compiled(&self, plugin: &PluginRef) -> Result<Loaded<Arc<CompiledPlugin>>, RunError> {
        self.catalog.current(plugin, |bytes, hash| Ok(self.engine.compile(bytes, hash).map(Arc::new)?))
    }
}

/// What a compiled plugin offers: v1's integer call, or v2's functions and buffers.
fn interface_of(plugin: &CompiledPlugin) -> Result<Interface, RunError> {
    Ok(match plugin.interface() {
        Ok(layout) => Interface::V2(Arc::clone(layout)),
        Err(RuntimeError::WrongAbiVersion { .. }) => Interface::V1,
        Err(other) => return Err(other.into()),
    })
}

impl Calls for InProcessRunner {
    fn resolve(&self, target: &Target) -> Result<PluginRef, RunError> {
        self.catalog.resolve(&target.name, target.requirement.as_ref())
    }

    fn run_now(&self, target: &Target, input: i32) -> Attempt<i32> {
        if !self.short_calls.expect_short(&target.name) {
            return Attempt::Blocking(None);
        }
        let (plugin, loaded) = match self.catalog.current_if_loaded(&target.name, target.requirement.as_ref()) {
            Ok(found) => found,
            Err(resolved) => return Attempt::Blocking(resolved),
        };
        let output = self.run_compiled(&target.name, &loaded.module, input);
        Attempt::Done(output.map(|output| Ran { output, plugin, sha256: loaded.sha256 }))
    }

    fn run(&self, plugin: &PluginRef, input: i32) -> Result<Ran<i32>, RunError> {
        let loaded = self.compiled(plugin)?;
        let output = self.run_compiled(&plugin.name, &loaded.module, input)?;
        Ok(Ran { output, plugin: plugin.clone(), sha256: loaded.sha256 })
    }

    fn interface(&self, plugin: &PluginRef) -> Result<Interface, RunError> {
        interface_of(&self.compiled(plugin)?.module)
    }

    fn interface_now(&self, target: &Target) -> Option<(PluginRef, Interface)> {
        let (plugin, loaded) = self.catalog.current_if_loaded(&target.name, target.requirement.as_ref()).ok()?;
        Some((plugin, interface_of(&loaded.module).ok()?))
    }

    fn call_now(&self, plugin: &PluginRef, function: &str, input: &[u8]) -> Attempt<Vec<u8>> {
        if !self.short_calls.expect_short(&plugin.name) {
            return Attempt::Blocking(None);
        }
        match self.catalog.loaded_now(plugin) {
            Some(loaded) => Attempt::Done(self.call_loaded(plugin, loaded, function, input)),
            None => Attempt::Blocking(None),
        }
    }

    fn call(&self, plugin: &PluginRef, function: &str, input: &[u8]) -> Result<Ran<Vec<u8>>, RunError> {
        let loaded = self.compiled(plugin)?;
        self.call_loaded(plugin, loaded, function, input)
    }

    fn open_stream(&self, plugin: &PluginRef, function: &str) -> Result<Ran<Box<dyn PluginStream>>, RunError> {
        let loaded = self.compiled(plugin)?;
        let compiled = &loaded.module;
        let config = self.catalog.configuration(plugin, compiled.interface().ok().map(|layout| &**layout))?;
        let bytes = config.as_ref().map(|config| &config.bytes[..]);
        let result = compiled.open_stream_configured(function, bytes).map_err(RunError::from);
        let stream: Box<dyn PluginStream> = Box::new(self.catalog.after_call(plugin, config.as_deref(), result)?);
        Ok(Ran { output: stream, plugin: plugin.clone(), sha256: loaded.sha256 })
    }
}

impl Inspects for InProcessRunner {
    fn inspect(&self, plugin: &PluginRef) -> Result<PluginStatus, RunError> {
        self.catalog.inspect(plugin)
    }

    fn versions(&self, name: &PluginName) -> Result<Vec<VersionStatus>, RunError> {
        self.catalog.versions(name)
    }

    fn store_degraded(&self) -> Option<String> {
        self.catalog.degraded()
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        self.catalog.list()
    }

    fn describe_store(&self) -> String {
        self.catalog.store().describe()
    }
}

impl PluginStream for StreamSession {
    fn chunk_capacity(&self) -> usize {
        StreamSession::chunk_capacity(self)
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RunError> {
        Ok(StreamSession::feed(self, chunk)?)
    }

    fn finish(self: Box<Self>) -> Result<Vec<u8>, RunError> {
        Ok(StreamSession::finish(*self)?)
    }
}
