//! Runs sandboxed WebAssembly plugins in WasmEdge.
//!
//! Layers, outermost first (see ARCHITECTURE.md):
//! - [`runner`]: runs a plugin by name, keeping versions current (hot swap), in this process
//!   or in supervised worker processes;
//! - [`store`]: where plugin files come from;
//! - [`runtime`]: WasmEdge, and nothing else touches it.

pub mod failure;
mod logs;
pub mod observe;
pub mod runner;
pub mod runtime;
pub mod store;

pub use observe::{NoObserver, Observer};
pub use store::PluginName;
