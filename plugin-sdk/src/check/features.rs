//! Which WebAssembly features ABI v1 allows, and finding out which disallowed ones a module
//! uses by asking wasmparser's validator rather than re-implementing its knowledge.

use wasmparser::{BinaryReaderError, Validator, WasmFeatures};

use super::module::to_usize;
use super::violation::Feature;

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

/// The validator flags that make up one feature.
fn flags(feature: Feature) -> WasmFeatures {
    match feature {
        Feature::Simd => WasmFeatures::SIMD,
        Feature::RelaxedSimd => WasmFeatures::RELAXED_SIMD,
        Feature::Threads => WasmFeatures::THREADS,
        Feature::SharedEverythingThreads => WasmFeatures::SHARED_EVERYTHING_THREADS,
        Feature::TailCall => WasmFeatures::TAIL_CALL,
        Feature::Exceptions => WasmFeatures::EXCEPTIONS,
        Feature::LegacyExceptions => WasmFeatures::LEGACY_EXCEPTIONS,
        Feature::Memory64 => WasmFeatures::MEMORY64,
        Feature::MultiMemory => WasmFeatures::MULTI_MEMORY,
        Feature::ReferenceTypes => WasmFeatures::REFERENCE_TYPES,
        Feature::BulkMemory => WasmFeatures::BULK_MEMORY,
        Feature::FunctionReferences => WasmFeatures::FUNCTION_REFERENCES,
        Feature::Gc => WasmFeatures::GC,
        Feature::CustomPageSizes => WasmFeatures::CUSTOM_PAGE_SIZES,
        Feature::MemoryControl => WasmFeatures::MEMORY_CONTROL,
        Feature::StackSwitching => WasmFeatures::STACK_SWITCHING,
        Feature::WideArithmetic => WasmFeatures::WIDE_ARITHMETIC,
        Feature::CustomDescriptors => WasmFeatures::CUSTOM_DESCRIPTORS,
        Feature::AcquireReleaseAtomics => WasmFeatures::ACQUIRE_RELEASE_ATOMICS,
        Feature::MultibyteArrayAccess => WasmFeatures::MULTIBYTE_ARRAY_ACCESS,
        Feature::CompactImports => WasmFeatures::COMPACT_IMPORTS,
        Feature::ComponentModel => WasmFeatures::COMPONENT_MODEL,
    }
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
            let without = everything().difference(flags(feature)).union(ALLOWED);
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
        enabled |= flags(feature);
        added.push(feature);
    }
    added.retain(|feature| {
        let without = enabled.difference(flags(*feature)).union(ALLOWED);
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
