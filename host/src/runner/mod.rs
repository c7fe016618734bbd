//! Runs plugins by name: the boundary between the HTTP layer and plugin execution.
//!
//! The HTTP layer holds an `Arc<dyn PluginRunner>` and knows nothing about WasmEdge or files.
//! [`InProcessRunner`] executes in this process; a runner that executes in supervised worker
//! processes implements the same trait, so callers do not change with the isolation mode.

pub mod in_process;

pub use in_process::InProcessRunner;

use crate::{
    runtime::RuntimeError,
    store::{PluginName, StoreError},
};

/// Executes plugins. Methods block (they run WebAssembly): call them from a blocking context
/// such as `tokio::task::spawn_blocking`.
pub trait PluginRunner: Send + Sync + std::fmt::Debug {
    /// Runs `init`, `process(input)` and `cleanup` of the current version of `name` on a fresh
    /// instance and returns `process`'s result.
    fn run(&self, name: &PluginName, input: i32) -> Result<i32, RunError>;
}

/// Why a run failed: the store could not give the plugin, or the runtime could not run it.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}
