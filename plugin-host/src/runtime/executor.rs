//! Run per call: an instance in its fresh state driven through init -> process -> cleanup.
//!
//! An instance is new, or one recycled after a clean lifecycle and reset to exactly its
//! freshly instantiated state (see `reuse` for when that is allowed and why it is safe).
//!
//! The lifecycle is enforced by types: [`PluginInstance::init`] consumes the fresh instance and
//! returns an [`InitializedInstance`], the only type with `process` and `cleanup`, and `cleanup`
//! consumes that. Tests of how a plugin handles misuse (its -1 and -2 paths) use
//! [`testing::call_out_of_order`](super::testing::call_out_of_order), which production code never
//! calls.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use wasmedge_sdk::{AsInstance, Store, Vm, WasmValue, vm::SyncInst};

use super::{
    AbiFunction, CompiledPlugin, PluginErrorCode, RuntimeError, deadline,
    reuse::{IDLE_LIMIT, LIFECYCLE_EXPORT, MEMORY_EXPORT, PROCESSED_EXPORT, ReuseState, STAGE_EXPORT, Snapshot},
};

/// A memory page, as WasmEdge counts memory sizes (in `u32` bytes: a reused instance has at most
/// `reuse::MAX_REUSED_PAGES` of them).
const PAGE_BYTES: u32 = plugin_sdk::names::PAGE_BYTES as u32;

/// A plugin instance in its fresh state (its own store and linear memory), `init` not yet
/// called.
pub struct PluginInstance {
    pub(super) vm: Vm<'static, dyn SyncInst + Send>,
    /// One wall-clock budget for the whole lifecycle, not one per function: a plugin must
    /// not get three timeouts' worth of CPU by being slow in each function.
    deadline: Instant,
    pub(super) timeout: Duration,
    /// Who stops a call at the deadline.
    keeper: deadline::Keeper,
    /// Set when this instance can be put back into its fresh state (see `reuse`). Weak: the
    /// plugin's idle list holds its instances, so a strong reference back would be a cycle that
    /// keeps every loaded version (its module, idle instances and their linear memories) alive
    /// after the plugin is dropped. That cycle was the in-process "leak per module load".
    reuse: Option<Weak<ReuseState>>,
    /// Set when the module has the synthesized lifecycle function (see `reuse::LIFECYCLE_EXPORT`):
    /// a v1 lifecycle is then one call into the engine.
    lifecycle_export: bool,
    /// Set once the plugin's buffer functions answered as checked on this instance (ABI v2;
    /// see `functions`). Their answers cannot change: each is a constant, and memory never grows.
    pub(super) buffers_checked: bool,
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
        let store = Store::new(Some(&self.config), HashMap::<String, &'static mut (dyn SyncInst + Send)>::new())
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let mut vm = Vm::new(store);
        vm.register_module(None, self.module.clone()).map_err(|e| RuntimeError::Instantiation(e.to_string()))?;
        if let Some(reuse) = &self.reuse {
            // Every fresh instance of a module starts identical, so the first one's state is
            // the state every reused instance is put back to.
            reuse.snapshot.get_or_init(|| capture(&vm, &reuse.globals));
        }
        Ok(PluginInstance {
            vm,
            deadline,
            timeout: self.timeout,
            keeper: self.keeper,
            reuse: self.reuse.as_ref().map(Arc::downgrade),
            lifecycle_export: self.reuse.as_ref().is_some_and(|reuse| reuse.lifecycle),
            buffers_checked: false,
        })
    }

    /// An instance ready for a whole v1 lifecycle (init, process, cleanup): a recycled one
    /// when one is idle (put back into exactly its freshly instantiated state), else a new one.
    pub fn checkout(&self) -> Result<PluginInstance, RuntimeError> {
        // The integer lifecycle is ABI v1's; a v2 plugin has no `process` and is called by
        // function name with bytes (see `functions`).
        if let Some(version) = self.abi_version().filter(|&v| v != 1) {
            return Err(RuntimeError::WrongAbiVersion { plugin: version });
        }
        self.checkout_any()
    }

    /// An instance in its fresh state, whatever the ABI version.
    pub(super) fn checkout_any(&self) -> Result<PluginInstance, RuntimeError> {
        let recycled = self.reuse.as_ref().and_then(|reuse| reuse.idle.lock().pop());
        match recycled {
            Some(mut instance) => {
                instance.renew_deadline();
                Ok(instance)
            }
            None => self.instantiate(),
        }
    }

    /// The whole lifecycle on an instance in its fresh state; see [`PluginInstance::run`].
    pub fn call(&self, input: i32) -> Result<i32, RuntimeError> {
        self.run_v1(input).0
    }

    /// One v1 call, the way every runner makes it: check out an instance in its fresh state,
    /// run `init`, `process(input)` and `cleanup` on it, and put it back for reuse if the call
    /// left it reusable. Returns the result and how long the instance took to be ready.
    pub fn run_v1(&self, input: i32) -> (Result<i32, RuntimeError>, Duration) {
        let (result, ready, used) = self.run_v1_reset_later(input);
        if let Some(used) = used {
            used.put_back();
        }
        (result, ready)
    }

    /// [`run_v1`](Self::run_v1) for a caller with something more urgent to do before the
    /// instance is put back into its fresh state: a worker process answers the server first,
    /// and resets while the server reads the answer. The instance comes back still to be reset
    /// ([`Used::put_back`]) if every call returned normally (with a result or an error code,
    /// not a trap or a timeout); until then, a call of this plugin gets another instance.
    pub fn run_v1_reset_later(&self, input: i32) -> (Result<i32, RuntimeError>, Duration, Option<Used>) {
        let started = Instant::now();
        let mut instance = match self.checkout() {
            Ok(instance) => instance,
            Err(error) => return (Err(error), started.elapsed(), None),
        };
        let ready = started.elapsed();
        let result = instance.lifecycle(input);
        let reusable = result.as_ref().err().is_none_or(returned_normally);
        (result, ready, reusable.then_some(Used(instance)))
    }
}

/// An instance a call returned from normally, not yet put back into its fresh state (see
/// [`CompiledPlugin::run_v1_reset_later`]). Dropped, it is freed instead of reused.
#[derive(Debug)]
#[must_use = "dropping it frees the instance instead of keeping it for the next call"]
pub struct Used(pub(super) PluginInstance);

impl Used {
    /// Writes the fresh state back and keeps the instance for its plugin's next call (if the
    /// plugin can be reused and is still loaded).
    pub fn put_back(self) {
        self.0.recycle_after_reset();
    }
}

impl PluginInstance {
    /// The whole lifecycle: init, process(input), cleanup.
    ///
    /// `cleanup` runs whenever `init` succeeded, also when `process` failed; a cleanup failure
    /// is returned on its own, or inside [`RuntimeError::CleanupAlsoFailed`]. After a
    /// timeout the instance is abandoned instead: WasmEdge stops a call by jumping out of it,
    /// which leaves that instance unfit for further calls.
    pub fn run(mut self, input: i32) -> Result<i32, RuntimeError> {
        self.lifecycle(input)
    }

    /// Puts this instance back into its fresh state and keeps it for a later call, if it can
    /// be reused and its plugin is still loaded; otherwise drops it.
    pub(super) fn recycle_after_reset(mut self) {
        if let Some(reuse) = self.reuse.as_ref().and_then(Weak::upgrade)
            && self.reset()
        {
            let mut idle = reuse.idle.lock();
            if idle.len() < IDLE_LIMIT {
                idle.push(self);
            }
        }
    }

    /// Starts a new deadline: of a new lifecycle on a recycled instance, or of the next call
    /// of a stream.
    pub(super) fn renew_deadline(&mut self) {
        self.deadline = Instant::now() + self.timeout;
    }

    /// Writes the fresh state back; `false` if this instance cannot be reused (or its plugin is
    /// gone, so nobody would call it again).
    fn reset(&mut self) -> bool {
        let Some(reuse) = self.reuse.as_ref().and_then(Weak::upgrade) else { return false };
        let Some(snapshot) = reuse.snapshot.get().and_then(Option::as_ref) else { return false };
        let Some(instance) = self.vm.active_module_mut() else { return false };
        let memory_restored = instance.get_memory_mut(MEMORY_EXPORT).is_ok_and(|mut memory| {
            let len = snapshot.memory_len();
            // The size cannot change (ABI v1 forbids memory.grow), but check rather than trust.
            if memory.size() * PAGE_BYTES != len as u32 {
                return false;
            }
            // SAFETY: WasmEdge checked that the pointer is to `len` bytes of this instance's
            // linear memory. Nothing else reads or writes them while `&mut self` is held, and
            // they cannot grow or move while the slice lives: nothing runs in the instance.
            #[allow(unsafe_code)]
            let bytes = match unsafe { memory.data_pointer_mut(0, len as u32) } {
                Ok(pointer) => unsafe { std::slice::from_raw_parts_mut(pointer, len) },
                Err(_) => return false,
            };
            snapshot.restore_memory(bytes);
            true
        });
        memory_restored
            && snapshot.globals.iter().all(|(name, value)| {
                instance.get_global_mut(name).is_ok_and(|mut global| global.set_value(*value).is_ok())
            })
    }

    fn lifecycle(&mut self, input: i32) -> Result<i32, RuntimeError> {
        if self.lifecycle_export {
            return self.lifecycle_in_one_call(input);
        }
        self.invoke(AbiFunction::Init, None)?;
        with_cleanup(self, |instance| instance.invoke(AbiFunction::Process, Some(input)))
    }

    /// The lifecycle as one call into the engine, so under one deadline timer rather than
    /// three (see `reuse::LIFECYCLE_EXPORT`), with the same results, errors and blame as the
    /// three calls one by one: the stage global names the function that failed, and a `process`
    /// that traps is still followed by `cleanup`.
    fn lifecycle_in_one_call(&mut self, input: i32) -> Result<i32, RuntimeError> {
        let returned = self.call_export(LIFECYCLE_EXPORT, Some(input));
        let function = match self.global_i32(STAGE_EXPORT) {
            Some(1) => AbiFunction::Init,
            Some(2) => AbiFunction::Process,
            Some(3) => AbiFunction::Cleanup,
            stage => return Err(RuntimeError::Engine(format!("the lifecycle stopped at stage {stage:?}"))),
        };
        match returned {
            Ok(returned) => {
                let packed = returned.map(|value| value.to_i64() as u64).unwrap_or_default();
                let (low, high) = (packed as u32 as i32, (packed >> 32) as u32 as i32);
                match function {
                    // It returns early only when `init` failed.
                    AbiFunction::Init => Err(RuntimeError::Plugin { function, code: PluginErrorCode::from(low) }),
                    _ => cleaned_up(answer(AbiFunction::Process, low), answer(AbiFunction::Cleanup, high)),
                }
            }
            Err(error) => {
                let failure = RuntimeError::from_call(function.clone(), self.timeout, error);
                match function {
                    AbiFunction::Process if !matches!(failure, RuntimeError::Timeout { .. }) => {
                        cleaned_up(Err(failure), self.invoke(AbiFunction::Cleanup, None))
                    }
                    AbiFunction::Cleanup => {
                        let processed = self.global_i32(PROCESSED_EXPORT).unwrap_or_default();
                        cleaned_up(answer(AbiFunction::Process, processed), Err(failure))
                    }
                    _ => Err(failure),
                }
            }
        }
    }

    /// The value of the exported `i32` global `name`.
    fn global_i32(&self, name: &str) -> Option<i32> {
        Some(self.vm.active_module()?.get_global(name).ok()?.get_value().to_i32())
    }

    /// Calls the export `name` within what is left of the deadline; its first result, if any.
    fn call_export(
        &mut self,
        name: &str,
        argument: Option<i32>,
    ) -> Result<Option<WasmValue>, wasmedge_sdk::error::WasmEdgeError> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(wasmedge_sdk::error::WasmEdgeError::ExecuteTimeout);
        }
        let args = argument.map(WasmValue::from_i32);
        let vm = &mut self.vm;
        let returns = match self.keeper {
            deadline::Keeper::External => vm.run_func(None, name, args),
            deadline::Keeper::Watchdog => match deadline::within(self.deadline, || vm.run_func(None, name, args)) {
                Some(Some(returns)) => returns,
                Some(None) => Err(Box::new(wasmedge_sdk::error::WasmEdgeError::ExecuteTimeout)),
                // The watchdog could not start: WasmEdge's own timer.
                None => vm.run_func_with_timeout(None, name, args, remaining),
            },
            deadline::Keeper::Timer => vm.run_func_with_timeout(None, name, args, remaining),
        };
        Ok(returns.map_err(|e| *e)?.first().copied())
    }

    /// Calls the plugin's `init`. Returns the instance that may now process input.
    pub fn init(mut self) -> Result<InitializedInstance, RuntimeError> {
        self.invoke(AbiFunction::Init, None)?;
        Ok(InitializedInstance { instance: self })
    }

    /// Runs an export within what is left of the deadline; negative results are the ABI's
    /// error codes.
    pub(super) fn invoke(&mut self, function: AbiFunction, argument: Option<i32>) -> Result<i32, RuntimeError> {
        let returned = self
            .call_export(function.export_name(), argument)
            .map_err(|e| RuntimeError::from_call(function.clone(), self.timeout, e))?
            .ok_or_else(|| RuntimeError::Engine(format!("`{function}` returned no value")))?;
        answer(function, returned.to_i32())
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

/// Runs `work` on an initialized instance, then the plugin's `cleanup`, also when `work`
/// failed; a cleanup failure is returned on its own, or inside
/// [`RuntimeError::CleanupAlsoFailed`]. After a timeout the instance is abandoned instead:
/// WasmEdge stops a call by jumping out of it, which leaves that instance unfit for further
/// calls.
pub(super) fn with_cleanup<T>(
    instance: &mut PluginInstance,
    work: impl FnOnce(&mut PluginInstance) -> Result<T, RuntimeError>,
) -> Result<T, RuntimeError> {
    let worked = work(instance);
    if matches!(worked, Err(RuntimeError::Timeout { .. })) {
        return worked;
    }
    cleaned_up(worked, instance.invoke(AbiFunction::Cleanup, None))
}

/// What a call followed by `cleanup` returns: the call's output, or its failure, the cleanup's,
/// or both.
fn cleaned_up<T>(worked: Result<T, RuntimeError>, cleanup: Result<i32, RuntimeError>) -> Result<T, RuntimeError> {
    match (worked, cleanup) {
        (Ok(output), Ok(_)) => Ok(output),
        (Ok(_), Err(cleanup)) => Err(cleanup),
        (Err(failure), Ok(_)) => Err(failure),
        (Err(failure), Err(cleanup)) => {
            Err(RuntimeError::CleanupAlsoFailed { failure: Box::new(failure), cleanup: Box::new(cleanup) })
        }
    }
}

/// A plugin function's result as the ABI reads it: negative values are error codes.
fn answer(function: AbiFunction, value: i32) -> Result<i32, RuntimeError> {
    if value < 0 { Err(RuntimeError::Plugin { function, code: PluginErrorCode::from(value) }) } else { Ok(value) }
}

/// Whether every plugin function involved returned (with an error code) rather than trapping,
/// timing out, breaking the buffer contract or failing inside the engine: only then is an
/// instance put back into its fresh state and reused.
pub(super) fn returned_normally(error: &RuntimeError) -> bool {
    match error {
        RuntimeError::Plugin { .. } => true,
        RuntimeError::CleanupAlsoFailed { failure, cleanup } => {
            returned_normally(failure) && returned_normally(cleanup)
        }
        _ => false,
    }
}

/// The state of a fresh instance: its memory and the values of its mutable globals.
fn capture(vm: &Vm<'static, dyn SyncInst + Send>, globals: &[String]) -> Option<Snapshot> {
    let instance = vm.active_module()?;
    let memory = instance.get_memory_ref(MEMORY_EXPORT).ok()?;
    let memory = memory.get_data(0, memory.size() * PAGE_BYTES).ok()?;
    let globals = globals
        .iter()
        .map(|name| Some((name.clone(), instance.get_global(name).ok()?.get_value())))
        .collect::<Option<Vec<_>>>()?;
    Some(Snapshot::new(memory, globals))
}

#[cfg(test)]
mod tests {
    #[test]
    fn instances_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<super::PluginInstance>();
    }
}
