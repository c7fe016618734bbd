//! Checks a compiled plugin against the plugin ABI: a pure function from `.wasm` bytes to a
//! report of every violation, shared by `xtask` (at build time) and the host (at load time).
//!
//! The rules, one [`AbiViolation`] variant each (each rule's code, message, help and
//! documentation are one row of the table in `violation.rs`; a test checks that this table
//! and the one in `ABI.md` name every code):
//!
//! | code | rule |
//! |------|------|
//! | `malformed` | the bytes are a valid WebAssembly module |
//! | `missing-abi-version` (a warning), `malformed-abi-section`, `conflicting-abi-versions`, `unsupported-abi-version` | the module declares ABI v1 in the `wasm_plugin_abi` custom section; a module without that section is checked as v1 |
//! | `missing-export`, `wrong-signature`, `unexpected-export` | it exports exactly `init: [] -> [i32]`, `process: [i32] -> [i32]`, `cleanup: [] -> [i32]` (and optionally `memory`) |
//! | `import`, `dynamic-allocation` | it imports nothing, and has no allocator |
//! | `start-function` | it has no start function |
//! | `initial-memory-too-large`, `table-too-large`, `too-many-functions` | it stays within [`AbiLimits`] |
//! | `unsupported-feature` | it uses only the WebAssembly features ABI v1 allows |
//! | `float-type`, `float-instruction` | it uses no floating point |
//! | `memory-grow` | it never grows its memory |
//! | `recursion` | no function can call itself, directly or indirectly |
//!
//! Violations are grouped by rule in the order of this table, except that an allocator the
//! module defines (rather than imports) is listed just before `memory-grow`. Rules that are
//! only warnings ([`AbiViolation::is_warning`]) are reported apart, in
//! [`AbiReport::warnings`].

mod details;
mod features;
mod location;
mod module;
mod operators;
mod recursion;
mod report;
mod rules;
mod violation;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use details::{ExportCause, ExternKind, FloatUsage, Signature, ValueType};
pub use features::Feature;
pub use location::{FunctionRef, Location};
pub use report::{AbiReport, Violation};
pub use violation::AbiViolation;

use module::ModuleInfo;
use rules::Findings;

/// Size limits a plugin must stay within, so that loading and running one has a known cost.
///
/// Hosts can embed this in their configuration: it deserializes with every field optional
/// (missing fields take the defaults below) and unknown fields refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AbiLimits {
    /// Largest initial size of a linear memory, in 64 KiB WebAssembly pages.
    ///
    /// Default: 16 pages (1 MiB). Plugins cannot grow memory, so this bounds each instance's
    /// memory. A clang-built plugin needs its static data plus the stack (wasm-ld's default
    /// is 64 KiB), rounded up to whole pages: 2 pages for a small plugin.
    pub max_initial_memory_pages: u32,
    /// Largest initial size of a table, in entries.
    ///
    /// Default: 4096. clang's only table holds the functions whose address is taken, plus a
    /// null entry; the host allocates every entry when it instantiates the plugin.
    pub max_table_entries: u32,
    /// Most functions a module may have, imported ones included.
    ///
    /// Default: 4096. The host compiles every function ahead of time before the first call, so
    /// this bounds the work a single plugin can cause at load time.
    pub max_function_count: u32,
}

impl Default for AbiLimits {
    fn default() -> Self {
        AbiLimits { max_initial_memory_pages: 16, max_table_entries: 4096, max_function_count: 4096 }
    }
}

/// Checks `wasm` against the ABI with the default [`AbiLimits`].
pub fn check(wasm: &[u8]) -> AbiReport {
    check_with(wasm, &AbiLimits::default())
}

/// Checks `wasm` against the ABI with the given limits and reports every violation.
///
/// Never panics and never fails: bytes that are not a valid WebAssembly module give a report
/// with the single violation [`AbiViolation::Malformed`], located at the offending byte.
pub fn check_with(wasm: &[u8], limits: &AbiLimits) -> AbiReport {
    let malformed = |error: wasmparser::BinaryReaderError| {
        AbiReport::refused(Violation {
            kind: AbiViolation::Malformed { message: error.message().to_owned() },
            location: Location::Offset { offset: module::to_usize(error.offset()) },
        })
    };
    if let Err(error) = features::validate_everything(wasm) {
        return malformed(error);
    }
    let module = match ModuleInfo::parse(wasm) {
        Ok(module) => module,
        Err(error) => return malformed(error),
    };
    if module.is_component {
        return AbiReport::refused(Violation {
            kind: AbiViolation::UnsupportedFeature { feature: Feature::ComponentModel },
            location: Location::Module,
        });
    }

    let mut found = Findings::default();
    let version = rules::abi_version(&module, &mut found);
    rules::exports(&module, &mut found);
    rules::imports(&module, &mut found);
    rules::start_function(&module, &mut found);
    rules::limits(&module, limits, &mut found);
    rules::features(&module, wasm, &mut found);
    rules::floats(&module, &mut found);
    rules::allocation(&module, &mut found);
    rules::recursion(&module, &mut found);
    let (warnings, violations) = found.0.into_iter().partition(|v| v.kind.is_warning());
    AbiReport { declared_abi_version: version.declared, abi_version: version.checked_as, violations, warnings }
}
