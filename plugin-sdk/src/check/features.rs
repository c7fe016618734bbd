//! Which WebAssembly features ABI v1 allows, the table of those it does not ([`Feature`]: name,
//! validator flags and advice per row), and finding out which disallowed ones a module uses by
//! asking wasmparser's validator rather than re-implementing its knowledge.

use std::fmt;

use serde::{Serialize, Serializer};
use wasmparser::{BinaryReaderError, Validator, WasmFeatures};

use super::module::to_usize;

/// Declares [`Feature`] from a table with one row per feature: its documentation, its name,
/// the validator flags that make it up, and how a plugin author avoids it. The list of every
/// feature is derived from the rows, so a new feature is one new row.
macro_rules! features {
    ($(
        $(#[doc = $doc:literal])*
        $feature:ident $name:literal => $flags:ident, help: $help:expr;
    )*) => {
        /// A WebAssembly feature (proposal) that ABI v1 does not allow.
        ///
        /// Named as in the WebAssembly proposals and clang's `-m<feature>` flags.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Feature {
            $($(#[doc = $doc])* $feature,)*
        }

        impl Feature {
            /// Every feature, in the order they are checked and reported.
            pub const ALL: [Feature; [$($name),*].len()] = [$(Feature::$feature),*];

            /// The feature's kebab-case name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Feature::$feature => $name,)*
                }
            }

            /// How a plugin author avoids the feature, in one sentence.
            pub(crate) fn help(self) -> &'static str {
                match self {
                    $(Feature::$feature => $help,)*
                }
            }

            /// The validator flags that make up the feature.
            fn flags(self) -> WasmFeatures {
                match self {
                    $(Feature::$feature => WasmFeatures::$flags,)*
                }
            }
        }
    };
}

// Advice that several features share.
const NO_SIMD: &str = "compile without -msimd128/-mrelaxed-simd and without wasm_simd128.h";
const SINGLE_THREADED: &str = "compile without -pthread, -matomics or shared memory; plugins are single-threaded";
const NO_EXCEPTIONS: &str = "compile C++ with -fno-exceptions (and without -fwasm-exceptions)";
const PLAIN_POINTERS: &str =
    "use plain function pointers and C data; do not use __funcref, __externref_t or table builtins";
const DEFAULT_FEATURES: &str = "compile with clang's default features (-mcpu=generic, or -mcpu=lime1 with clang 20 \
     and later) and no extra -m<feature> flags";

features! {
    /// 128-bit SIMD (`v128`), clang `-msimd128`.
    Simd "simd" => SIMD, help: NO_SIMD;
    /// Relaxed SIMD, clang `-mrelaxed-simd`.
    RelaxedSimd "relaxed-simd" => RELAXED_SIMD, help: NO_SIMD;
    /// Atomics and shared memory, clang `-matomics`/`-pthread`.
    Threads "threads" => THREADS, help: SINGLE_THREADED;
    /// Shared-everything threads.
    SharedEverythingThreads "shared-everything-threads" => SHARED_EVERYTHING_THREADS, help: SINGLE_THREADED;
    /// Tail calls, clang `-mtail-call`.
    TailCall "tail-call" => TAIL_CALL, help: "compile without -mtail-call";
    /// Exception handling, clang `-fwasm-exceptions`.
    Exceptions "exception-handling" => EXCEPTIONS, help: NO_EXCEPTIONS;
    /// The legacy (phase 1) exception handling encoding.
    LegacyExceptions "legacy-exception-handling" => LEGACY_EXCEPTIONS, help: NO_EXCEPTIONS;
    /// 64-bit memories (`--target=wasm64`).
    Memory64 "memory64" => MEMORY64, help: "compile with --target=wasm32, not wasm64";
    /// More than one linear memory.
    MultiMemory "multi-memory" => MULTI_MEMORY, help: "use a single linear memory";
    /// Reference types beyond the over-long `call_indirect` encoding: `externref`,
    /// `ref.func`, `table.*` instructions, more than one table.
    ReferenceTypes "reference-types" => REFERENCE_TYPES, help: PLAIN_POINTERS;
    /// Bulk memory beyond `memory.copy`/`memory.fill`: passive data or element segments,
    /// `memory.init`, `data.drop`, `table.init`, `table.copy`, `elem.drop`.
    BulkMemory "bulk-memory" => BULK_MEMORY,
        help: "only memory.copy and memory.fill are allowed: do not use passive segments, memory.init or table \
               instructions (clang emits them for shared memory); AssemblyScript: build with \
               `--disable bulk-memory`, or every module with static data gets a data count section";
    /// Typed function references.
    FunctionReferences "function-references" => FUNCTION_REFERENCES, help: PLAIN_POINTERS;
    /// Garbage collection.
    Gc "gc" => GC, help: PLAIN_POINTERS;
    /// Custom page sizes.
    CustomPageSizes "custom-page-sizes" => CUSTOM_PAGE_SIZES, help: DEFAULT_FEATURES;
    /// Memory control.
    MemoryControl "memory-control" => MEMORY_CONTROL, help: DEFAULT_FEATURES;
    /// Stack switching.
    StackSwitching "stack-switching" => STACK_SWITCHING, help: DEFAULT_FEATURES;
    /// Wide arithmetic.
    WideArithmetic "wide-arithmetic" => WIDE_ARITHMETIC, help: DEFAULT_FEATURES;
    /// Custom descriptors.
    CustomDescriptors "custom-descriptors" => CUSTOM_DESCRIPTORS, help: DEFAULT_FEATURES;
    /// Acquire-release atomics.
    AcquireReleaseAtomics "acquire-release-atomics" => ACQUIRE_RELEASE_ATOMICS, help: SINGLE_THREADED;
    /// Multibyte array access.
    MultibyteArrayAccess "multibyte-array-access" => MULTIBYTE_ARRAY_ACCESS, help: DEFAULT_FEATURES;
    /// The compact import section encoding.
    CompactImports "compact-imports" => COMPACT_IMPORTS, help: DEFAULT_FEATURES;
    /// A WebAssembly component rather than a core module.
    ComponentModel "component-model" => COMPONENT_MODEL,
        help: "build a core WebAssembly module with clang, not a component";
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Feature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The features ABI v1 allows: "lime1" (the MVP plus mutable-globals, multi-value,
/// sign-extension, non-trapping float-to-int, `memory.copy`/`memory.fill`, extended-const and
/// the over-long `call_indirect` table immediate), plus floating point.
///
/// Floating point is allowed *here* only so that the validator does not stop at the first
/// float: the float rules report every float use with a better location and message.
/// See [`AbiViolation::UnsupportedFeature`](super::AbiViolation::UnsupportedFeature) for why
/// this set matches what clang emits.
pub(crate) const ALLOWED: WasmFeatures = WasmFeatures::LIME1.union(WasmFeatures::FLOATS);

/// Features used to check that a module is valid at all, before asking which features it
/// uses: every feature wasmparser knows, so that "invalid" means invalid, not "unsupported".
pub(crate) fn everything() -> WasmFeatures {
    WasmFeatures::all()
}

fn validate(wasm: &[u8], features: WasmFeatures) -> Result<(), BinaryReaderError> {
    Validator::new_with_features(features).validate_all(wasm).map(drop)
}

/// Checks that `wasm` is a valid module when every feature is enabled.
pub(crate) fn validate_everything(wasm: &[u8]) -> Result<(), BinaryReaderError> {
    validate(wasm, everything())
}

/// Every disallowed feature that `wasm` (already valid with [`everything`]) uses, with the
/// file offset where the validator first needed it.
///
/// A feature is "used" if the module stops validating when that one feature is taken away
/// from the full set. That finds each feature where the module first depends on it, however
/// the feature shows up (an instruction, a type, a memory flag, a second table), and keeps
/// wasmparser the single authority on what belongs to which proposal.
///
/// A construct that either of two features would allow is not found that way; if nothing is,
/// although the module fails with [`ALLOWED`], features are added to [`ALLOWED`] one by one
/// until it validates, those not needed are dropped again, and the rest are reported at the
/// offset of the original failure. The returned list is empty exactly when the module
/// validates with [`ALLOWED`]; the validator's error is returned if it fails for a reason
/// no [`Feature`] explains, which wasmparser's current feature set cannot produce.
pub(crate) fn unsupported(wasm: &[u8]) -> Result<Vec<(Feature, usize)>, BinaryReaderError> {
    let Err(allowed_error) = validate(wasm, ALLOWED) else {
        return Ok(Vec::new());
    };
    let fails = |features: WasmFeatures| validate(wasm, features).err();
    let used: Vec<(Feature, usize)> = Feature::ALL
        .into_iter()
        .filter_map(|feature| {
            // Removing a feature can remove bits that ALLOWED grants on its own (bulk memory
            // contains memory.copy/fill), so those are put back.
            let without = everything().difference(feature.flags()).union(ALLOWED);
            fails(without).map(|error| (feature, to_usize(error.offset())))
        })
        .collect();
    if !used.is_empty() {
        return Ok(used);
    }
    let mut enabled = ALLOWED;
    let mut added = Vec::new();
    for feature in Feature::ALL {
        if fails(enabled).is_none() {
            break;
        }
        enabled |= feature.flags();
        added.push(feature);
    }
    added.retain(|feature| {
        let without = enabled.difference(feature.flags()).union(ALLOWED);
        if fails(without).is_none() {
            enabled = without;
            false
        } else {
            true
        }
    });
    if added.is_empty() {
        return Err(allowed_error);
    }
    let offset = to_usize(allowed_error.offset());
    Ok(added.into_iter().map(|feature| (feature, offset)).collect())
}
