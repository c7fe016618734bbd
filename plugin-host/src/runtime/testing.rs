//! Hooks for tests, benchmarks and examples that the host itself never uses: calling a plugin's
//! functions out of lifecycle order, and the seed's load-every-call design as a baseline.
//!
//! They live here, not on the production types, so that nothing in the host can reach them
//! by accident and a reader of `Engine` or `PluginInstance` sees only what serving does.

use std::sync::Arc;

use wasmedge_sdk::Module;

use super::{AbiFunction, CompiledPlugin, Engine, PluginInstance, RuntimeError};

/// Calls one ABI function regardless of the lifecycle, and maps its result like the lifecycle
/// methods do. For checking how a plugin handles misuse (its "not initialized" and "already
/// initialized" answers).
pub fn call_out_of_order(
    instance: &mut PluginInstance,
    function: AbiFunction,
    input: i32,
) -> Result<i32, RuntimeError> {
    let argument = (function == AbiFunction::Process).then_some(input);
    instance.invoke(function, argument)
}

/// Loads, validates and runs a module in one go, keeping nothing: the seed's load-every-call
/// design, without its ABI check or any preparation for reuse. The baseline the benchmarks
/// compare the host's caching against.
pub fn call_uncached(engine: &Engine, bytes: &[u8], input: i32) -> Result<i32, RuntimeError> {
    let module = Module::from_bytes(Some(&engine.parse_config), bytes)
        .map_err(|e| RuntimeError::InvalidModule(e.to_string()))?;
    let plugin = CompiledPlugin {
        module,
        config: Arc::clone(&engine.config),
        timeout: engine.settings.limits.call_timeout,
        keeper: if engine.settings.external_deadline {
            super::deadline::Keeper::External
        } else {
            super::deadline::Keeper::Timer
        },
        abi_version: None,
        interface: None,
        reuse: None,
    };
    plugin.instantiate()?.run(input)
}
