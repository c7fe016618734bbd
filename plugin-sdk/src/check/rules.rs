//! The ABI rules, each a function from the module's facts to the violations it finds.

use std::collections::BTreeSet;

use wasmparser::{ExternalKind, TypeRef};

use super::AbiLimits;
use super::details::{ExportCause, ExternKind, FloatUsage, Signature, ValueType};
use super::features;
use super::location::Location;
use super::module::ModuleInfo;
use super::operators::is_float;
use super::recursion;
use super::report::Violation;
use super::violation::AbiViolation;
use crate::names::{ENTRY_POINTS, PAGE_BYTES};

/// Collects violations in the order the rules run.
#[derive(Debug, Default)]
pub(crate) struct Findings(pub Vec<Violation>);

impl Findings {
    pub(crate) fn push(&mut self, kind: AbiViolation, location: Location) {
        self.0.push(Violation { kind, location });
    }
}

/// The one export allowed besides the entry points: see
/// [`AbiViolation::UnexpectedExport`].
pub(crate) const MEMORY_EXPORT: &str = crate::names::MEMORY;

/// The ABI version a module declares, and the one it is checked (and run) as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbiVersion {
    /// What the `wasm_plugin_abi` section says, if it says one version.
    pub declared: Option<u32>,
    /// The declared version if it is supported, the implied version if none is declared, and
    /// `None` if the declaration is unreadable or names an unsupported version.
    pub checked_as: Option<u32>,
}

/// Reads the declared ABI version and checks it.
pub(crate) fn abi_version(module: &ModuleInfo<'_>, found: &mut Findings) -> AbiVersion {
    let unknown = AbiVersion { declared: None, checked_as: None };
    let Some(&(offset, _)) = module.abi_sections.first() else {
        found.push(AbiViolation::MissingAbiVersion, Location::Module);
        return AbiVersion { declared: None, checked_as: Some(crate::IMPLIED_ABI_VERSION) };
    };
    let location = Location::CustomSection { name: crate::CUSTOM_SECTION.to_owned(), offset };
    // Several sections of the same name are read as one, like wasm-ld would have merged them.
    let bytes: Vec<u8> = module.abi_sections.iter().flat_map(|(_, data)| data.iter().copied()).collect();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        found.push(AbiViolation::MalformedAbiSection { length: bytes.len() }, location);
        return unknown;
    }
    let versions: BTreeSet<u32> =
        bytes.chunks_exact(4).map(|chunk| u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect();
    let version = match versions.iter().copied().collect::<Vec<_>>().as_slice() {
        [only] => *only,
        several => {
            found.push(AbiViolation::ConflictingAbiVersions { versions: several.to_vec() }, location);
            return unknown;
        }
    };
    if !crate::SUPPORTED_ABI_VERSIONS.contains(&version) {
        found.push(
            AbiViolation::UnsupportedAbiVersion { found: version, supported: crate::SUPPORTED_ABI_VERSIONS.to_vec() },
            location,
        );
        return AbiVersion { declared: Some(version), checked_as: None };
    }
    AbiVersion { declared: Some(version), checked_as: Some(version) }
}

/// The linker symbols a module may export as immutable `i32` globals: rustc passes
/// `--export=__heap_base --export=__data_end` to wasm-ld for every `cdylib`, and no rustc flag
/// removes them. An immutable global is a number fixed when the module is linked (here, an
/// address inside the plugin's own memory): the host never reads it, nothing can write it, and it
/// adds no code anyone could call, so refusing it would only make every Rust plugin need a linker
/// wrapper. Exported mutable globals (wasm-ld's `__stack_pointer`, which Zig's `-rdynamic`
/// exports) stay refused: they are state the embedder could change under the plugin.
pub(crate) const TOLERATED_LINKER_GLOBALS: [&str; 2] = ["__heap_base", "__data_end"];

/// Whether `export` is one of the [`TOLERATED_LINKER_GLOBALS`], as the immutable `i32` global
/// wasm-ld makes it.
pub(crate) fn is_tolerated_global(module: &ModuleInfo<'_>, export: &wasmparser::Export<'_>) -> bool {
    if export.kind != ExternalKind::Global || !TOLERATED_LINKER_GLOBALS.contains(&export.name) {
        return false;
    }
    // Imported globals are refused as imports anyway; only a defined one can be tolerated.
    let Some(defined) = export.index.checked_sub(module.imported_globals).and_then(|i| usize::try_from(i).ok()) else {
        return false;
    };
    module.globals.get(defined) == Some(&wasmparser::ValType::I32)
        && module.globals_mutable.get(defined) == Some(&false)
}

/// Symbols wasm-ld defines itself. Only `-Wl,--export-all` exports them (or a deliberate
/// `-Wl,--export=` of one), so finding one among the exports identifies that flag.
const LINKER_SYMBOLS: &[&str] = &[
    "__wasm_call_ctors",
    "__wasm_apply_data_relocs",
    "__wasm_init_memory",
    "__dso_handle",
    "__data_end",
    "__stack_low",
    "__stack_high",
    "__global_base",
    "__heap_base",
    "__heap_end",
    "__memory_base",
    "__table_base",
    "__tls_base",
    "__tls_size",
    "__tls_align",
];

/// Which linker flag most likely produced the module's unexpected exports (see
/// [`ExportCause`]).
pub(crate) fn export_cause(module: &ModuleInfo<'_>) -> ExportCause {
    let exported = |kind: ExternalKind| module.exports.iter().filter(move |e| e.kind == kind).map(|e| e.name);
    // rustc exports the tolerated globals from every plugin, so they say nothing about the flags.
    let telling = |export: &&wasmparser::Export<'_>| !is_tolerated_global(module, export);
    if module.exports.iter().filter(telling).any(|export| LINKER_SYMBOLS.contains(&export.name)) {
        ExportCause::ExportAll
    } else if exported(ExternalKind::Global).any(|name| !name.starts_with("__")) {
        // A program variable exported as the global holding its address: only
        // `--export-dynamic` does that for a whole program's worth of symbols.
        ExportCause::ExportDynamic
    } else {
        ExportCause::Unknown
    }
}

/// Checks that the exported function `export` has the signature `expected`, reporting
/// `wrong-signature` at `location` if not; returns whether it has. Shared by every version's
/// export rules.
pub(crate) fn signature(
    module: &ModuleInfo<'_>,
    export: &wasmparser::Export<'_>,
    expected: Signature,
    location: Location,
    found: &mut Findings,
) -> bool {
    let found_signature = module.function_type(export.index).map(Signature::of);
    if found_signature.as_ref() == Some(&expected) {
        return true;
    }
    found.push(
        AbiViolation::WrongSignature {
            name: export.name.to_owned(),
            expected,
            // Only a non-function type could be missing here, which validation rules out; an
            // empty signature is the honest fallback.
            found: found_signature.unwrap_or(Signature { params: vec![], results: vec![] }),
        },
        location,
    );
    false
}

/// ABI v1's interface: exactly `init`, `process` and `cleanup`, and optionally `memory`.
pub(crate) fn exports(module: &ModuleInfo<'_>, found: &mut Findings) {
    let cause = export_cause(module);
    let mut entry_points_seen = BTreeSet::new();
    for export in &module.exports {
        let location = Location::Export { name: export.name.to_owned() };
        let is_function = matches!(export.kind, ExternalKind::Func | ExternalKind::FuncExact);
        let required = if is_function { Signature::required(export.name) } else { None };
        if let Some(expected) = required {
            entry_points_seen.insert(export.name);
            signature(module, export, expected, location, found);
        } else if export.kind == ExternalKind::Memory && export.name == MEMORY_EXPORT {
            // Allowed: see MEMORY_EXPORT.
        } else if is_tolerated_global(module, export) {
            // Allowed: see TOLERATED_LINKER_GLOBALS.
        } else {
            found.push(
                AbiViolation::UnexpectedExport {
                    name: export.name.to_owned(),
                    kind: ExternKind::from(export.kind),
                    cause,
                    abi_version: 1,
                },
                location,
            );
        }
    }
    for name in ENTRY_POINTS {
        if !entry_points_seen.contains(name) {
            found.push(AbiViolation::MissingExport { name: name.to_owned() }, Location::Module);
        }
    }
}

pub(crate) fn imports(module: &ModuleInfo<'_>, found: &mut Findings) {
    for import in &module.imports {
        let location = Location::Import { module: import.module.to_owned(), name: import.name.to_owned() };
        let is_function = matches!(import.ty, TypeRef::Func(_) | TypeRef::FuncExact(_));
        let kind = if is_function && is_allocator(import.name) {
            AbiViolation::DynamicAllocation { symbol: import.name.to_owned() }
        } else {
            AbiViolation::Import { module: import.module.to_owned(), name: import.name.to_owned() }
        };
        found.push(kind, location);
    }
}

pub(crate) fn start_function(module: &ModuleInfo<'_>, found: &mut Findings) {
    if let Some(index) = module.start {
        found.push(AbiViolation::StartFunction, Location::function(&module.function(index), None));
    }
}

pub(crate) fn limits(module: &ModuleInfo<'_>, limits: &AbiLimits, found: &mut Findings) {
    for (index, memory) in (module.imported_memories..).zip(&module.memories) {
        if memory.initial > u64::from(limits.max_initial_memory_pages) {
            found.push(
                AbiViolation::InitialMemoryTooLarge { pages: memory.initial, limit: limits.max_initial_memory_pages },
                Location::Memory { index },
            );
        }
    }
    for (index, table) in (module.imported_tables..).zip(&module.tables) {
        if table.initial > u64::from(limits.max_table_entries) {
            found.push(
                AbiViolation::TableTooLarge { entries: table.initial, limit: limits.max_table_entries },
                Location::Table { index },
            );
        }
    }
    let count = u32::try_from(module.function_types.len()).unwrap_or(u32::MAX);
    if count > limits.max_function_count {
        found.push(AbiViolation::TooManyFunctions { count, limit: limits.max_function_count }, Location::Module);
    }
}

/// The fixed limits that keep compiling a plugin bounded: types, each type's parameters and
/// results, each function's locals.
pub(crate) fn compile_limits(module: &ModuleInfo<'_>, found: &mut Findings) {
    let types = u32::try_from(module.types.len()).unwrap_or(u32::MAX);
    if types > crate::MAX_TYPES {
        found.push(AbiViolation::TooManyTypes { count: types, limit: crate::MAX_TYPES }, Location::Module);
    }
    for (index, ty) in (0u32..).zip(&module.types) {
        let Some(ty) = ty else { continue };
        let params = u32::try_from(ty.params().len()).unwrap_or(u32::MAX);
        let results = u32::try_from(ty.results().len()).unwrap_or(u32::MAX);
        if params > crate::MAX_FUNCTION_PARAMS || results > crate::MAX_FUNCTION_RESULTS {
            found.push(AbiViolation::FunctionTypeTooLarge { params, results }, Location::Type { index });
        }
    }
    for body in &module.bodies {
        let (count, offset) = body.locals;
        if count > u64::from(crate::MAX_FUNCTION_LOCALS) {
            found.push(
                AbiViolation::TooManyLocals { count, limit: crate::MAX_FUNCTION_LOCALS },
                Location::function(&module.function(body.index), Some(offset)),
            );
        }
        let (depth, offset) = body.nesting;
        if depth > crate::MAX_NESTING_DEPTH {
            found.push(
                AbiViolation::NestingTooDeep { depth, limit: crate::MAX_NESTING_DEPTH },
                Location::function(&module.function(body.index), Some(offset)),
            );
        }
    }
}

/// Active data and element segments must fit in the memory or table they initialize, or
/// instantiation fails. A segment whose offset the checker cannot evaluate uses something
/// other rules refuse already (an imported global), so it is left to them.
pub(crate) fn segments(module: &ModuleInfo<'_>, found: &mut Findings) {
    let location = |name: &str, offset: usize| Location::Section { name: name.to_owned(), offset };
    for segment in &module.data_segments {
        let Some(address) = segment.offset else { continue };
        let memory = segment.target.checked_sub(module.imported_memories).and_then(|i| usize::try_from(i).ok());
        let Some(memory) = memory.and_then(|i| module.memories.get(i)) else { continue };
        // A memory32 has at most 65536 pages, so this cannot overflow; saturate anyway.
        let memory_bytes = memory.initial.saturating_mul(PAGE_BYTES);
        if address.saturating_add(segment.length) > memory_bytes {
            found.push(
                AbiViolation::DataSegmentOutsideMemory {
                    segment: segment.index,
                    address,
                    length: segment.length,
                    memory_bytes,
                },
                location("data", segment.file_offset),
            );
        }
    }
    for segment in &module.element_segments {
        let Some(start) = segment.offset else { continue };
        let table = segment.target.checked_sub(module.imported_tables).and_then(|i| usize::try_from(i).ok());
        let Some(table) = table.and_then(|i| module.tables.get(i)) else { continue };
        if start.saturating_add(segment.length) > table.initial {
            found.push(
                AbiViolation::ElementSegmentOutsideTable {
                    segment: segment.index,
                    start,
                    length: segment.length,
                    table_entries: table.initial,
                },
                location("element", segment.file_offset),
            );
        }
    }
}

/// `abi_version` is the version the plugin is checked as, which the messages name.
pub(crate) fn features(module: &ModuleInfo<'_>, wasm: &[u8], abi_version: u32, found: &mut Findings) {
    match features::unsupported(wasm) {
        Ok(used) => {
            for (feature, offset) in used {
                let location = if let Some(body) = module.body_at(offset) {
                    Location::function(&module.function(body.index), Some(offset))
                } else if let Some(name) = module.section_at(offset) {
                    Location::Section { name: name.to_owned(), offset }
                } else {
                    Location::Offset { offset }
                };
                found.push(AbiViolation::UnsupportedFeature { feature, abi_version }, location);
            }
        }
        Err(error) => found.push(
            AbiViolation::Malformed { message: error.message().to_owned() },
            Location::Offset { offset: super::module::to_usize(error.offset()) },
        ),
    }
}

/// Float types in signatures, locals, globals and otherwise unused function types, then
/// float instructions.
pub(crate) fn floats(module: &ModuleInfo<'_>, found: &mut Findings) {
    let mut types_with_functions = BTreeSet::new();
    for body in &module.bodies {
        let function = module.function(body.index);
        if let Some(&ty) = usize::try_from(body.index).ok().and_then(|i| module.function_types.get(i)) {
            types_with_functions.insert(ty);
        }
        if let Some(ty) = module.function_type(body.index) {
            for (usage, types) in [(FloatUsage::Param, ty.params()), (FloatUsage::Result, ty.results())] {
                let mut reported = Vec::new();
                for float in types.iter().filter(|ty| is_float(ty)) {
                    if !reported.contains(float) {
                        reported.push(*float);
                        found.push(
                            AbiViolation::FloatType { ty: ValueType::from(*float), usage },
                            Location::function(&function, None),
                        );
                    }
                }
            }
        }
        for &(ty, offset) in &body.float_locals {
            found.push(
                AbiViolation::FloatType { ty: ValueType::from(ty), usage: FloatUsage::Local },
                Location::function(&function, Some(offset)),
            );
        }
    }
    // Imported functions are already refused as imports; their types count as used.
    types_with_functions
        .extend(module.function_types.iter().take(usize::try_from(module.imported_functions).unwrap_or(usize::MAX)));
    for (index, ty) in (0u32..).zip(&module.types) {
        let Some(ty) = ty else { continue };
        if types_with_functions.contains(&index) {
            continue;
        }
        if let Some(float) = ty.params().iter().chain(ty.results()).find(|ty| is_float(ty)) {
            found.push(
                AbiViolation::FloatType { ty: ValueType::from(*float), usage: FloatUsage::TypeDefinition },
                Location::Type { index },
            );
        }
    }
    for (index, ty) in (module.imported_globals..).zip(&module.globals) {
        if is_float(ty) {
            found.push(
                AbiViolation::FloatType { ty: ValueType::from(*ty), usage: FloatUsage::Global },
                Location::Global { index },
            );
        }
    }
    for body in &module.bodies {
        let function = module.function(body.index);
        for (op, offset) in &body.float_ops {
            found.push(AbiViolation::FloatInstruction { op: op.clone() }, Location::function(&function, Some(*offset)));
        }
    }
}

/// Allocators defined in the module (imported ones are reported by [`imports`]), then
/// `memory.grow`.
pub(crate) fn allocation(module: &ModuleInfo<'_>, found: &mut Findings) {
    for body in &module.bodies {
        let names = module
            .names
            .get(&body.index)
            .into_iter()
            .map(String::as_str)
            .chain(module.export_names(body.index).iter().copied());
        let allocator = names.into_iter().find(|name| is_allocator(name));
        if let Some(symbol) = allocator {
            found.push(
                AbiViolation::DynamicAllocation { symbol: symbol.to_owned() },
                Location::function(&module.function(body.index), None),
            );
        }
    }
    for body in &module.bodies {
        if let Some(offset) = body.memory_grow {
            found.push(AbiViolation::MemoryGrow, Location::function(&module.function(body.index), Some(offset)));
        }
    }
}

pub(crate) fn recursion(module: &ModuleInfo<'_>, found: &mut Findings) {
    for cycle in recursion::cycles(module) {
        let functions: Vec<_> = cycle.functions.iter().map(|&index| module.function(index)).collect();
        let Some(first) = functions.first() else {
            continue;
        };
        let location = Location::function(first, Some(cycle.offset));
        found.push(AbiViolation::Recursion { cycle: functions }, location);
    }
}

/// Whether a function with this name allocates memory dynamically: see
/// [`AbiViolation::DynamicAllocation`] for the list.
fn is_allocator(name: &str) -> bool {
    const C_ALLOCATORS: &[&str] = &[
        "malloc",
        "calloc",
        "realloc",
        "free",
        "aligned_alloc",
        "posix_memalign",
        "memalign",
        "valloc",
        "pvalloc",
        "reallocarray",
        "sbrk",
    ];
    // Itanium-mangled operator new (`_Znw`), new[] (`_Zna`), delete (`_Zdl`) and delete[]
    // (`_Zda`), followed by their parameter types; and the same demangled, which is how
    // wasm-ld writes them into the name section.
    const CXX_PREFIXES: &[&str] =
        &["_Znw", "_Zna", "_Zdl", "_Zda", "operator new(", "operator new[](", "operator delete(", "operator delete[]("];
    C_ALLOCATORS.contains(&name) || CXX_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::is_allocator;

    #[test]
    fn allocator_names() {
        for name in [
            "malloc",
            "free",
            "posix_memalign",
            "_Znwm",
            "_Znam",
            "_ZdlPv",
            "_ZdaPv",
            "_ZdlPvm",
            "_ZnwmSt11align_val_t",
            "operator new(unsigned long)",
            "operator delete[](void*)",
        ] {
            assert!(is_allocator(name), "{name}");
        }
        for name in ["process", "my_malloc", "freeze", "_Z3fooi", "operator+(int)"] {
            assert!(!is_allocator(name), "{name}");
        }
    }
}
