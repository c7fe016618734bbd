//! Everything that touches WasmEdge: compiling plugins once and running fresh instances.
//!
//! Architecture invariant: this is the only module that imports `wasmedge_sdk`. The rest of
//! the host sees [`Engine`], [`CompiledPlugin`], the per-call [`PluginInstance`] and one error
//! type, [`RuntimeError`].
//!
//! The flow is the seed's Load -> Init -> Execute -> Cleanup -> Close, split so that the
//! expensive half happens once per plugin version:
//! - [`Engine::compile`] checks the plugin ABI (shared rules from `plugin_sdk`), lets WasmEdge
//!   load and validate the module and, in AOT mode, compiles it to native code (cached on
//!   disk by content hash). The result, a [`CompiledPlugin`], is immutable and shared.
//! - [`CompiledPlugin::instantiate`] makes a fresh instance (new store, new linear memory) for
//!   every call, so no state survives between requests; [`CompiledPlugin::call`] runs the
//!   whole lifecycle under one deadline.

mod config;
mod deadline;
mod error;
mod executor;
mod fault_handlers;
mod functions;
mod loader;
mod reuse;
pub mod testing;

pub use config::{AotCompilation, ExecutionMode, Limits, RuntimeConfig};
pub use error::{AbiFunction, PluginErrorCode, RuntimeError, TrapKind};
pub use executor::{InitializedInstance, PluginInstance, Used};
pub use functions::{StreamSession, function_kind};
pub use loader::{AOT_COMPILER_ARG, Admission, CompiledPlugin, Engine, admit, content_hash, run_aot_compiler};
