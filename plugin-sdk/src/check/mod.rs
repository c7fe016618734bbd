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
//! | `missing-abi-version` (a warning), `malformed-abi-section`, `conflicting-abi-versions`, `unsupported-abi-version` | the module declares a supported ABI version (1 or 2) in the `wasm_plugin_abi` custom section; a module without that section is checked as v1 |
//! | `missing-export`, `wrong-signature`, `unexpected-export` | v1: it exports exactly `init: [] -> [i32]`, `process: [i32] -> [i32]`, `cleanup: [] -> [i32]` (and optionally `memory`); v2: `init`, `cleanup`, the buffer functions and its functions, with their types, and nothing else |
//! | `v1-export-in-v2`, `invalid-function-name`, `missing-memory-export`, `missing-buffer-export`, `no-functions`, `incomplete-stream`, `duplicate-function-name` | v2: no `process`; `fn_<name>` and `stream_<name>_{begin,feed,end}` with valid names, streams complete, names unique, at least one `fn_`; `memory` and the four buffer functions exported |
//! | `buffer-not-constant`, `empty-buffer`, `buffer-capacity-too-large`, `buffer-outside-memory`, `buffers-overlap` | v2: the buffer functions return constants describing two non-empty buffers within [`AbiLimits`], inside the initial memory and apart |
//! | `incomplete-config-buffer`, `config-buffer-too-small`, `config-buffer-overlaps` | v2: an optional configuration buffer (`plugin_config_ptr`, `plugin_config_capacity`) is declared whole, holds its 4-byte length and at least one byte, and is apart from both buffers |
//! | `import`, `dynamic-allocation` | it imports nothing, and has no allocator |
//! | `start-function` | it has no start function |
//! | `initial-memory-too-large`, `table-too-large`, `too-many-functions` | it stays within [`AbiLimits`] |
//! | `too-many-types`, `function-type-too-large`, `too-many-locals`, `nesting-too-deep` | it stays within the fixed limits that keep compilation bounded ([`MAX_TYPES`], [`MAX_FUNCTION_PARAMS`], [`MAX_FUNCTION_RESULTS`], [`MAX_FUNCTION_LOCALS`], [`MAX_NESTING_DEPTH`]) |
//! | `data-segment-outside-memory`, `element-segment-outside-table` | every active segment fits in the initial memory or table it writes to, so instantiation cannot fail |
//! | `unsupported-feature` | it uses only the WebAssembly features ABI v1 allows |
//! | `float-type`, `float-instruction` | it uses no floating point |
//! | `memory-grow` | it never grows its memory |
//! | `recursion` | no function can call itself, directly or indirectly |
//!
//! Which interface rules apply depends on the declared version (v1's three exports, or v2's
//! buffers and functions, see [`V2Layout`]); a version that cannot be read or is not supported
//! leaves the interface unchecked. Every other rule applies to every version.
//!
//! Violations are grouped by rule in the order of this table, except that an allocator the
//! module defines (rather than imports) is listed just before `memory-grow`. Rules that are
//! only warnings ([`AbiViolation::is_warning`]) are reported apart, in
//! [`AbiReport::warnings`].

mod constant;
mod details;
mod features;
mod layout;
mod location;
mod module;
mod operators;
mod recursion;
mod report;
mod rules;
mod v2;
mod violation;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;

use serde::{Deserialize, Serialize};

pub use details::{ExportCause, ExternKind, FloatUsage, Signature, ValueType};
pub use features::Feature;
pub use layout::{
    Buffer, BufferKind, CONFIG_LENGTH_BYTES, FunctionKind, PluginFunction, StreamPart, V2Layout, is_valid_function_name,
};
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
    /// Largest capacity of each of an ABI v2 plugin's two buffers, in bytes.
    ///
    /// Default: 1048576 (1 MiB). It bounds what the host copies into and out of an instance per
    /// call. Both buffers also have to fit in the initial memory, which
    /// `max_initial_memory_pages` bounds (16 pages, 1 MiB, by default), so with both defaults
    /// the two buffers together hold less than 1 MiB; an operator raising this limit usually
    /// raises that one too. Inputs larger than the input buffer go through a streaming
    /// function, in chunks.
    pub max_buffer_capacity: u32,
}

impl Default for AbiLimits {
    fn default() -> Self {
        AbiLimits {
            max_initial_memory_pages: 16,
            max_table_entries: 4096,
            max_function_count: 4096,
            max_buffer_capacity: 1 << 20,
        }
    }
}

// Limits that bound what the engine has to compile. Unlike [`AbiLimits`] they are not settings:
// past them WasmEdge's compiler does work that grows faster than the module (or aborts), so an
// operator raising them would trade the host's safety for nothing a C plugin needs. Each is far
// above what clang emits for a plugin, and at or below wasmparser's own implementation limits
// (1000 parameters, 1000 results, 50000 locals, 1000000 types), which other engines share.

/// Most parameters a function type may have. clang passes at most a few dozen scalar
/// arguments (larger structs go through memory).
pub const MAX_FUNCTION_PARAMS: u32 = 128;

/// Most results a function type may have. clang emits one (or none) unless asked for the
/// experimental multi-value ABI; WasmEdge's AOT compiler returns several results through memory,
/// and its cost grows with their number across every function and call site of the type.
pub const MAX_FUNCTION_RESULTS: u32 = 16;

/// Most local variables a function may declare, parameters not counted. clang at -O0 declares
/// one per temporary of a large function, a few thousand at most for a plugin-sized one.
pub const MAX_FUNCTION_LOCALS: u32 = 16384;

/// Deepest nesting of blocks (`block`, `loop`, `if`) in a function. clang nests one block per
/// `case` of a `switch` it lowers to a jump table, so a few hundred is ordinary; WasmEdge's AOT
/// compiler takes time that grows faster than the depth (measured: 2.6 s for 10,000 nested
/// blocks, 44 s for 100,000, in a 300 KB module).
pub const MAX_NESTING_DEPTH: u32 = 1024;

/// Most entries a type section may have. clang writes one per distinct signature: tens.
pub const MAX_TYPES: u32 = 4096;

/// Checks `wasm` against the ABI with the default [`AbiLimits`].
pub fn check(wasm: &[u8]) -> AbiReport {
    check_with(wasm, &AbiLimits::default())
}

/// The parser's message, except where it quotes the file's own first bytes (a file that is not
/// WebAssembly at all: a text file, a secret copied by mistake): reports travel to HTTP clients
/// and logs, and must not carry the content of whatever was put where a plugin belongs.
fn without_file_bytes(message: &str) -> String {
    if message.contains("magic") {
        "the file does not start with the WebAssembly magic number (\\0asm)".to_owned()
    } else if message.contains("version") && (message.contains("0x") || message.contains("actual")) {
        "the file is not a WebAssembly binary of a version this checker reads (version 1)".to_owned()
    } else {
        message.to_owned()
    }
}

/// Checks `wasm` against the ABI with the given limits and reports every violation.
///
/// Never panics and never fails: bytes that are not a valid WebAssembly module give a report
/// with the single violation [`AbiViolation::Malformed`], located at the offending byte.
pub fn check_with(wasm: &[u8], limits: &AbiLimits) -> AbiReport {
    let malformed = |error: wasmparser::BinaryReaderError| {
        AbiReport::refused(Violation {
            kind: AbiViolation::Malformed { message: without_file_bytes(error.message()) },
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
            kind: AbiViolation::UnsupportedFeature {
                feature: Feature::ComponentModel,
                abi_version: crate::IMPLIED_ABI_VERSION,
            },
            location: Location::Module,
        });
    }

    let mut found = Findings::default();
    let version = rules::abi_version(&module, &mut found);
    // The interface (which exports, with which types) is what the versions differ in. A version
    // that cannot be read or is not supported leaves it unchecked: the checker does not guess at
    // a contract it does not know, and the version violation already refuses the plugin.
    let layout = match version.checked_as {
        Some(1) => {
            rules::exports(&module, &mut found);
            None
        }
        Some(2) => v2::interface(&module, limits, &mut found),
        _ => None,
    };
    rules::imports(&module, &mut found);
    rules::start_function(&module, &mut found);
    rules::limits(&module, limits, &mut found);
    rules::compile_limits(&module, &mut found);
    rules::segments(&module, &mut found);
    rules::features(&module, wasm, version.checked_as.unwrap_or(crate::IMPLIED_ABI_VERSION), &mut found);
    rules::floats(&module, &mut found);
    rules::allocation(&module, &mut found);
    rules::recursion(&module, &mut found);
    let (warnings, violations): (Vec<_>, Vec<_>) = found.0.into_iter().partition(|v| v.kind.is_warning());
    // The layout is the host's to rely on, so only a plugin that passed every rule has one.
    let v2 = layout.filter(|_| violations.is_empty());
    AbiReport { declared_abi_version: version.declared, abi_version: version.checked_as, violations, warnings, v2 }
}
