//! "Accepted means harmless": every plugin-shaped module the checker accepts is compiled and
//! called through the real runtime, in-process, in AOT mode (with its own AOT cache folder) and
//! in the interpreter, under a deadline. The only outcomes allowed are the plugin's own: a
//! result, an error code, a trap, a timeout, or a refused load. A panic, an abort, a hang (the
//! fuzzer's timeout) or anything the host classifies as its own fault (`internal_error`) is a
//! finding.

use std::time::Duration;

use arbitrary::Unstructured;
use plugin_host::{
    failure::FailureKind,
    runtime::{Engine, ExecutionMode, RuntimeConfig, RuntimeError},
};
use sha2::{Digest, Sha256};

use crate::smith::plugin_shaped_module;

/// What happened to one module, for the short runs' tally and the regression fixtures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input did not make a module (too few bytes).
    NoModule,
    /// The checker refused the module: nothing to run.
    Refused,
    /// The checker accepted it; both engines loaded and called it (each call ending in one of
    /// the allowed outcomes), or refused to load it as a plugin fault.
    Ran,
}

/// The engines, made once per process.
#[derive(Debug)]
pub struct Harmless {
    engines: Vec<(ExecutionMode, Engine)>,
    aot: tempfile::TempDir,
}

/// Each call's deadline: short, so a looping module costs little, long enough for real work.
const DEADLINE: Duration = Duration::from_millis(100);

impl Harmless {
    pub fn new() -> Self {
        let aot = tempfile::tempdir().expect("temporary AOT folder");
        let engines = [ExecutionMode::Aot, ExecutionMode::Interpreter]
            .into_iter()
            .map(|mode| {
                let mut config = RuntimeConfig::new(mode);
                config.aot_cache_dir = Some(aot.path().join("aot"));
                config.limits.call_timeout = DEADLINE;
                (mode, Engine::new(config).expect("engine"))
            })
            .collect();
        Harmless { engines, aot }
    }

    /// Builds a plugin-shaped module from `data` and, if the checker accepts it, runs it.
    pub fn run(&self, data: &[u8]) -> Outcome {
        let mut u = Unstructured::new(data);
        let Ok(wasm) = plugin_shaped_module(&mut u) else {
            return Outcome::NoModule;
        };
        let inputs = [0, 1, -1, u.arbitrary::<i32>().unwrap_or(7)];
        self.run_module(&wasm, &inputs)
    }

    /// Runs `wasm` with each input if the checker accepts it, panicking on a finding.
    pub fn run_module(&self, wasm: &[u8], inputs: &[i32]) -> Outcome {
        if !plugin_sdk::check(wasm).is_compliant() {
            return Outcome::Refused;
        }
        let hash = hex::encode(Sha256::digest(wasm));
        for (mode, engine) in &self.engines {
            match engine.compile(wasm, &hash) {
                Ok(plugin) => {
                    for &input in inputs {
                        if let Err(error) = plugin.call(input) {
                            assert_plugin_fault(*mode, "calling", input, &error);
                        }
                    }
                }
                Err(error) => assert_plugin_fault(*mode, "loading", 0, &error),
            }
        }
        // Compiled artifacts are loaded by now, and removing them is safe: the long runs would
        // otherwise fill the disk with one shared object per accepted module.
        if let Ok(entries) = std::fs::read_dir(self.aot.path().join("aot")) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Outcome::Ran
    }
}

impl Default for Harmless {
    fn default() -> Self {
        Self::new()
    }
}

fn assert_plugin_fault(mode: ExecutionMode, doing: &str, input: i32, error: &RuntimeError) {
    let kind = error.kind();
    let allowed = matches!(
        kind,
        FailureKind::PluginError
            | FailureKind::InvalidArgument
            | FailureKind::PluginTrapped
            | FailureKind::PluginTimeout
            | FailureKind::InvalidModule
            | FailureKind::MemoryLimit
            | FailureKind::PluginInstantiationFailed
    );
    assert!(allowed, "{mode:?}, {doing} with input {input}: {error} is classified {kind:?}, not as a plugin fault");
}
