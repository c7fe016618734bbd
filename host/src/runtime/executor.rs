//! Run per call: a fresh instance driven through init -> process -> cleanup.
//!
//! The lifecycle is enforced by types: [`PluginInstance::init`] consumes the fresh instance and
//! returns an [`InitializedInstance`], the only type with `process` and `cleanup`, and `cleanup`
//! consumes that. Tests of how a plugin handles misuse (its -1 and -2 paths) use the explicitly
//! named [`PluginInstance::call_out_of_order`].

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use wasmedge_sdk::{Store, Vm, WasmValue, vm::SyncInst};

use super::{AbiFunction, CompiledPlugin, PluginErrorCode, RuntimeError};

/// A freshly instantiated plugin: its own store and linear memory, `init` not yet called.
pub struct PluginInstance {
    vm: Vm<'static, dyn SyncInst>,
    /// One wall-clock budget for the whole lifecycle, not one per function: a plugin must
    /// not get three timeouts' worth of CPU by being slow in each function.
    deadline: Instant,
    timeout: Duration,
    /// Set when a supervisor outside this process enforces the deadline (see
    /// [`RuntimeConfig::external_deadline`](super::RuntimeConfig::external_deadline)).
    external_deadline: bool,
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance").field("deadline", &self.deadline).finish_non_exhaustive()
    }
}

/// A plugin whose `init` succeeded. Dropping it without [`cleanup`](Self::cleanup) skips the
/// plugin's cleanup but still frees the instance.
#[derive(Debug)]
pub struct InitializedInstance {
    instance: PluginInstance,
}

impl CompiledPlugin {
    /// Creates a fresh instance; the deadline for its whole lifecycle starts now.
    pub fn instantiate(&self) -> Result<PluginInstance, RuntimeError> {
        let deadline = Instant::now() + self.timeout;
        let store = Store::new(Some(&self.config), HashMap::<String, &'static mut dyn SyncInst>::new())
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut vm = Vm::new(store);
        vm.register_module(None, self.module.clone()).map_err(|e| RuntimeError::Instantiation(e.to_string()))?;
        Ok(PluginInstance { vm, deadline, timeout: self.timeout, external_deadline: self.external_deadline })
    }

    /// The whole lifecycle on a fresh instance; see [`PluginInstance::run`].
    pub fn call(&self, input: i32) -> Result<i32, RuntimeError> {
        self.instantiate()?.run(input)
    }
}

impl PluginInstance {
    /// The whole lifecycle: init, process(input), cleanup.
    ///
    /// `cleanup` runs whenever `init` succeeded, also when `process` failed; a cleanup failure
    /// is returned on its own, or inside [`RuntimeError::CleanupAlsoFailed`]. After a
    /// timeout the instance is abandoned instead: WasmEdge stops a call by jumping out of it,
    /// which leaves that instance unfit for further calls.
    pub fn run(self, input: i32) -> Result<i32, RuntimeError> {
        let mut instance = self.init()?;
        let processed = instance.process(input);
        if matches!(processed, Err(RuntimeError::Timeout { .. })) {
            return processed;
        }
        match (processed, instance.cleanup()) {
            (Ok(output), Ok(())) => Ok(output),
            (Ok(_), Err(cleanup)) => Err(cleanup),
            (Err(process), Ok(())) => Err(process),
            (Err(failure), Err(cleanup)) => {
                Err(RuntimeError::CleanupAlsoFailed { failure: Box::new(failure), cleanup: Box::new(cleanup) })
            }
        }
    }

    /// Calls the plugin's `init`. Returns the instance that may now process input.
    pub fn init(mut self) -> Result<InitializedInstance, RuntimeError> {
        self.invoke(AbiFunction::Init, None)?;
        Ok(InitializedInstance { instance: self })
    }

    /// Calls one ABI function regardless of the lifecycle, and maps its result like the
    /// lifecycle methods do. Only for checking how a plugin handles misuse (its
    /// "not initialized" and "already initialized" answers); the host itself never does this.
    pub fn call_out_of_order(&mut self, function: AbiFunction, input: i32) -> Result<i32, RuntimeError> {
        let argument = (function == AbiFunction::Process).then_some(input);
        self.invoke(function, argument)
    }

    /// Runs an export within what is left of the deadline; negative results are the ABI's
    /// error codes.
    fn invoke(&mut self, function: AbiFunction, argument: Option<i32>) -> Result<i32, RuntimeError> {
        let timeout = self.timeout;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(RuntimeError::Timeout { function, timeout });
        }
        let args = argument.map(WasmValue::from_i32);
        let returns = if self.external_deadline {
            self.vm.run_func(None, function.export_name(), args)
        } else {
            self.vm.run_func_with_timeout(None, function.export_name(), args, remaining)
        }
        .map_err(|e| RuntimeError::from_call(function, timeout, *e))?;
        let value = returns
            .first()
            .map(WasmValue::to_i32)
            .ok_or_else(|| RuntimeError::Engine(format!("`{function}` returned no value")))?;
        if value < 0 {
            return Err(RuntimeError::Plugin { function, code: PluginErrorCode::from_code(value) });
        }
        Ok(value)
    }
}

impl InitializedInstance {
    /// Calls `process(input)`; may be called any number of times before `cleanup`.
    pub fn process(&mut self, input: i32) -> Result<i32, RuntimeError> {
        self.instance.invoke(AbiFunction::Process, Some(input))
    }

    /// Calls the plugin's `cleanup`; the instance is freed either way.
    pub fn cleanup(mut self) -> Result<(), RuntimeError> {
        self.instance.invoke(AbiFunction::Cleanup, None).map(drop)
    }

    /// Access to out-of-order calls, for checking a plugin's "already initialized" answer.
    pub fn instance_mut(&mut self) -> &mut PluginInstance {
        &mut self.instance
    }
}
