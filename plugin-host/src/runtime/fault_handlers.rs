//! WasmEdge's fault handlers, installed once for the life of the process instead of around
//! every call.
//!
//! Why: WasmEdge turns an out-of-bounds access or a division by zero in compiled code into a
//! trap with its own `SIGSEGV`, `SIGBUS` and `SIGFPE` handlers. It installs them when a thread
//! enters compiled code while no other thread is inside, and restores the default action when
//! the last one leaves (a process-wide count, `lib/system/fault.cpp`): on a server whose calls
//! rarely overlap, that is six `rt_sigaction` system calls around every call into a plugin.
//! A thread that stays inside compiled code for the life of the process (the keeper) keeps the
//! count above zero, so the handlers are installed once and every call skips those six calls.
//!
//! What else changes: nothing for plugins (their traps are handled exactly as before). A fault
//! in the host's own code, outside WebAssembly, reaches WasmEdge's handler rather than the
//! default action, finds no call to return to and faults again until the kernel kills the
//! process with `SIGSEGV`, as the default action would have. The same already happens whenever
//! another thread is inside a plugin, and for good after a call stopped at its deadline
//! (WasmEdge leaves such a call by a jump that skips the count's decrement); and the first call
//! into WasmEdge already removes Rust's own `SIGSEGV` handler, which reports stack overflows.
//!
//! Only for engines that run calls in this process, not in a worker process. There a plugin
//! that overflows the native stack must kill the worker, so that the crash is contained and
//! blamed on the plugin; with the keeper in workers, such a call came back as an out-of-bounds
//! trap instead in both runs of the whole test suite (4 of its crash checks), though never in
//! some 60 runs of those tests alone. Why was not established, so workers keep WasmEdge's own
//! behaviour. In this process such a plugin (the ABI check refuses it: it forbids recursion)
//! takes the whole server down without the keeper, so a trap would be no loss.
//!
//! The keeper's module is compiled and cached like a plugin (in the AOT cache, named by the
//! hash of its bytes, in a child process by default in the server, so that the server does not
//! load the compiler). Only a start with no artifact in the cache compiles it: the server
//! (in-process, compiling in a child process) took 29-37 ms from start to listening then, and
//! 13-16 ms with the artifact cached, against 11-14 ms without the keeper (6 starts each,
//! 2 cores). If the cache evicts the artifact, the next start compiles it again.
//!
//! Best effort: if the keeper cannot start, calls work as before and pay the system calls.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock, mpsc},
    time::Duration,
};

use wasmedge_sdk::{
    CallingFrame, ImportObjectBuilder, Instance, Module, Store, Vm, WasmValue, config::Config, error::CoreError,
    vm::SyncInst,
};

/// The import the keeper's module calls, and where it stays.
const MODULE: &str = "plugin_host";
const HOLD: &str = "hold";
const KEEP: &str = "keep";

/// How long start-up waits for the keeper to be inside compiled code.
const START_ALLOWANCE: Duration = Duration::from_secs(5);

/// Whether this process's keeper thread holds the handlers installed.
static HELD: OnceLock<bool> = OnceLock::new();

/// Starts the keeper thread, to run with `config` (an AOT engine's), unless it runs already.
/// `load` turns the keeper's module into native code the way the engine loads plugins (through
/// its AOT cache, compiling in a child process if so configured: then this process never loads
/// the compiler). Returns whether the handlers are now installed for good.
pub(super) fn keep_installed(config: &Arc<Config>, load: impl FnOnce(&[u8]) -> Result<Module, String>) -> bool {
    *HELD.get_or_init(|| {
        start(Arc::clone(config), load)
            .inspect_err(|why| tracing::warn!(%why, "WasmEdge's fault handlers will be installed around every call"))
            .is_ok()
    })
}

/// Before any call can run: the keeper entering while a call leaves could meet WasmEdge's own
/// race between the count and the handlers (`lib/system/fault.cpp` counts atomically but installs
/// and removes apart from the count), and lose the handlers for good.
fn start(config: Arc<Config>, load: impl FnOnce(&[u8]) -> Result<Module, String>) -> Result<(), String> {
    let module = load(&keeper_module())?;
    let (inside, entered) = mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("wasmedge-faults".into())
        .stack_size(256 << 10)
        .spawn(move || {
            // Returns only if the keeper could not get inside; then the sender is dropped and
            // start-up hears of it.
            let _ = hold_forever(&config, module, inside);
        })
        .map_err(|e| e.to_string())?;
    entered.recv_timeout(START_ALLOWANCE).map_err(|_| "the keeper thread did not enter compiled code".to_string())
}

/// Calls the keeper's compiled `keep`, which calls the host's `hold`, which never returns.
fn hold_forever(config: &Config, module: Module, inside: mpsc::SyncSender<()>) -> Result<(), String> {
    let mut imports = ImportObjectBuilder::new(MODULE, inside).map_err(|e| e.to_string())?;
    imports.with_func::<(), ()>(HOLD, hold).map_err(|e| e.to_string())?;
    let mut imports = imports.build();
    let mut instances: HashMap<String, &mut (dyn SyncInst + Send)> = HashMap::new();
    instances.insert(MODULE.to_string(), &mut imports);
    let mut vm = Vm::new(Store::new(Some(config), instances).map_err(|e| e.to_string())?);
    vm.register_module(None, module).map_err(|e| e.to_string())?;
    vm.run_func(None, KEEP, []).map_err(|e| e.to_string())?;
    Err("the keeper returned".to_string())
}

/// The host function the keeper's compiled code calls: says it is inside, then parks for good.
fn hold(
    inside: &mut mpsc::SyncSender<()>,
    _instance: &mut Instance,
    _frame: &mut CallingFrame,
    _args: Vec<WasmValue>,
) -> Result<Vec<WasmValue>, CoreError> {
    let _ = inside.send(());
    loop {
        std::thread::park();
    }
}

/// `(module (import "plugin_host" "hold" (func)) (func (export "keep") call 0))`.
fn keeper_module() -> Vec<u8> {
    use wasm_encoder::{
        CodeSection, EntityType, ExportKind, ExportSection, Function, FunctionSection, ImportSection, Instruction,
        TypeSection,
    };
    let mut types = TypeSection::new();
    types.ty().function([], []);
    let mut imports = ImportSection::new();
    imports.import(MODULE, HOLD, EntityType::Function(0));
    let mut functions = FunctionSection::new();
    functions.function(0);
    let mut exports = ExportSection::new();
    exports.export(KEEP, ExportKind::Func, 1);
    let mut keep = Function::new([]);
    keep.instruction(&Instruction::Call(0));
    keep.instruction(&Instruction::End);
    let mut code = CodeSection::new();
    code.function(&keep);
    let mut module = wasm_encoder::Module::new();
    module.section(&types).section(&imports).section(&functions).section(&exports).section(&code);
    module.finish()
}
