//! Runs plugins in this process: fastest, but a plugin that crashes WasmEdge takes the process
//! with it. For trusted plugins and for measurement; see `worker` for the isolated runner.

use std::{sync::Arc, time::Instant};

use super::{PluginRunner, PluginStatus, RunError, catalog::Catalog};
use crate::{
    metrics::Metrics,
    runtime::{CompiledPlugin, Engine},
    store::{PluginName, PluginStore},
};

/// Compiles each plugin version once (see [`Catalog`]) and runs every call on a fresh instance.
#[derive(Debug)]
pub struct InProcessRunner {
    catalog: Catalog<Arc<CompiledPlugin>>,
    engine: Engine,
    metrics: Arc<Metrics>,
}

impl InProcessRunner {
    pub fn new(store: Arc<dyn PluginStore>, engine: Engine, metrics: Arc<Metrics>, capacity: usize) -> Self {
        let abi_limits = engine.settings().limits.abi.clone();
        let catalog = Catalog::new(store, Arc::clone(&metrics), capacity, abi_limits);
        InProcessRunner { catalog, engine, metrics }
    }

    /// The compiled current version of `name`.
    fn compiled(&self, name: &PluginName) -> Result<Arc<CompiledPlugin>, RunError> {
        self.catalog.current(name, |bytes, hash| Ok(self.engine.compile(bytes, hash).map(Arc::new)?))
    }
}

impl PluginRunner for InProcessRunner {
    fn run(&self, name: &PluginName, input: i32) -> Result<i32, RunError> {
        let plugin = self.compiled(name)?;
        let started = Instant::now();
        let instance = plugin.checkout()?;
        self.metrics.observe_instantiation(started.elapsed());
        let (result, recycled) = instance.run_recycling(input);
        if let Some(instance) = recycled {
            plugin.recycle(instance);
        }
        Ok(result?)
    }

    fn inspect(&self, name: &PluginName) -> Result<PluginStatus, RunError> {
        self.catalog.inspect(name)
    }

    fn list(&self) -> Result<Vec<PluginStatus>, RunError> {
        self.catalog.list()
    }

    fn describe_store(&self) -> String {
        self.catalog.store().describe()
    }
}
