//! The rules of the plugin ABI, one [`AbiViolation`] variant per way of breaking them, with the
//! advice shown to plugin authors.

use std::fmt;

use serde::{Serialize, Serializer};

use super::report::FunctionRef;

/// One way a compiled plugin breaks the plugin ABI.
///
/// Each variant is one rule; [`AbiViolation::code`] is its stable kebab-case id (used in
/// `error[...]` lines, in JSON as `"code"`, and in the ABI documentation). Where the problem
/// is lives in the [`Violation`](super::Violation) that wraps this, not here.
///
/// Rules about instructions (floating point, `memory.grow`) are reported once per function
/// and instruction name, at the first occurrence, so a float-heavy function produces one line
/// per distinct instruction instead of hundreds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", content = "details", rename_all = "kebab-case")]
pub enum AbiViolation {
    /// The bytes are not a valid WebAssembly module at all (truncated, not wasm, or failing
    /// validation even with every WebAssembly feature enabled). When this is reported it is
    /// the only violation, because nothing else about the file can be trusted.
    #[error("not a valid WebAssembly module: {message}")]
    Malformed {
        /// What the WebAssembly parser or validator objected to.
        message: String,
    },

    /// The plugin records no ABI version: it has no `wasm_plugin_abi` custom section, which
    /// every plugin that includes `wasm_plugin.h` has.
    ///
    /// This is a **warning**, not an error (see [`AbiViolation::is_warning`]): the seed's
    /// original contract (three integer functions) defined no marker, so plugins built for it
    /// carry none. Such a plugin is checked and run as [`IMPLIED_ABI_VERSION`](crate::IMPLIED_ABI_VERSION),
    /// the original contract; newer versions are never implied.
    #[error("the plugin does not declare its plugin ABI version; it is checked as v{}", crate::IMPLIED_ABI_VERSION)]
    MissingAbiVersion,

    /// The `wasm_plugin_abi` section is empty or not a whole number of 4-byte versions, so it
    /// was not written by `wasm_plugin.h`.
    #[error("the `wasm_plugin_abi` section is {length} bytes long, not a list of 4-byte versions")]
    MalformedAbiSection {
        /// The combined length of every `wasm_plugin_abi` section, in bytes.
        length: usize,
    },

    /// The copies of the ABI version disagree: the plugin's source files were compiled against
    /// different versions of `wasm_plugin.h`.
    #[error("the plugin declares several ABI versions: {}", list(versions))]
    ConflictingAbiVersions {
        /// Every distinct version found, in ascending order.
        versions: Vec<u32>,
    },

    /// The plugin was built for an ABI version this checker does not implement.
    #[error("the plugin was built for plugin ABI v{found}, but v{supported} is required")]
    UnsupportedAbiVersion {
        /// The version the plugin declares.
        found: u32,
        /// The version this crate implements ([`crate::ABI_VERSION`]).
        supported: u32,
    },

    /// One of `init`, `process` and `cleanup` is not exported as a function.
    #[error("the plugin does not export `{name}`")]
    MissingExport {
        /// The missing entry point.
        name: String,
    },

    /// An entry point is exported with the wrong parameter or result types.
    #[error("`{name}` has the signature {found}, but the ABI requires {expected}")]
    WrongSignature {
        /// The entry point.
        name: String,
        /// What the ABI requires.
        expected: Signature,
        /// What the plugin exports.
        found: Signature,
    },

    /// An export other than the three entry points and the allowed `memory`.
    ///
    /// Allowed besides the entry points: one linear memory exported as `memory`. wasm-ld
    /// exports the memory under that name by default, and it is harmless: the host may read
    /// it but never needs to. clang 19 with `-nostdlib -Wl,--no-entry` exports nothing else
    /// (its `__stack_pointer` global and `__indirect_function_table` stay internal), so
    /// every other export (globals, tables, helper functions, a memory under another name)
    /// comes from extra attributes or linker flags such as `--export-all` and is refused.
    ///
    /// The report names the linker flag to drop when the module's exports show which one
    /// produced them (see [`ExportCause`]).
    #[error("unexpected {kind} export `{name}`")]
    UnexpectedExport {
        /// The export's name.
        name: String,
        /// What kind of item is exported.
        kind: ExternKind,
        /// What most likely produced the export, judged from the module's whole export list.
        cause: ExportCause,
    },

    /// The plugin imports something. Plugins get no host functions, no WASI and no imported
    /// memory or table: everything a plugin runs must be inside the plugin, so the host can
    /// instantiate it without providing anything.
    ///
    /// An import of an allocator (see [`AbiViolation::DynamicAllocation`]) is reported as
    /// `DynamicAllocation` instead, never as both.
    #[error("the plugin imports `{module}.{name}`")]
    Import {
        /// The import's module name.
        module: String,
        /// The import's field name.
        name: String,
    },

    /// The plugin defines or imports a dynamic memory allocator: a function named `malloc`,
    /// `calloc`, `realloc`, `free`, `aligned_alloc`, `posix_memalign`, `memalign`, `valloc`,
    /// `pvalloc`, `reallocarray` or `sbrk`, or a C++ `operator new`/`operator delete` in any
    /// variant (mangled `_Znw*`, `_Zna*`, `_Zdl*`, `_Zda*`, or demangled as wasm-ld writes
    /// them in the name section).
    ///
    /// Names come from the `name` section and from exports, so a stripped binary can hide a
    /// renamed allocator; [`AbiViolation::MemoryGrow`] is the rule that cannot be dodged,
    /// because without growing memory an allocator can only hand out the fixed memory the
    /// plugin already has.
    #[error("the plugin contains the dynamic allocator `{symbol}`")]
    DynamicAllocation {
        /// The allocator's name.
        symbol: String,
    },

    /// A `memory.grow` instruction: a plugin's linear memory has a fixed size, so that one
    /// plugin's memory use is known when it is loaded.
    #[error("the plugin grows its linear memory (memory.grow)")]
    MemoryGrow,

    /// A function signature, local variable, global or type uses `f32` or `f64`: the plugin
    /// ABI is integer-only.
    #[error("the plugin uses the floating-point type {ty} ({usage})")]
    FloatType {
        /// `f32` or `f64`.
        ty: ValueType,
        /// Where the type appears.
        usage: FloatUsage,
    },

    /// A floating-point instruction: any `f32.*`/`f64.*` instruction (arithmetic, constants,
    /// loads, stores, comparisons), any conversion or reinterpretation to or from a float,
    /// SIMD lanes of floats, and blocks or `select`s typed with a float.
    #[error("the plugin uses the floating-point instruction {op}")]
    FloatInstruction {
        /// The instruction in WebAssembly text syntax, such as `f64.mul`.
        op: String,
    },

    /// The module has a start function, which would run when the host instantiates the
    /// plugin, before `init` and outside the lifecycle the host controls.
    #[error("the plugin has a start function")]
    StartFunction,

    /// The module uses a WebAssembly feature outside what ABI v1 allows; reported once per
    /// feature, where the validator first meets it.
    ///
    /// ABI v1 allows the "lime1" feature set (`WasmFeatures::LIME1`): the MVP plus
    /// mutable-globals, sign-extension, multi-value, non-trapping float-to-int (which is
    /// floating point and refused by the float rules anyway), extended-const, `memory.copy`
    /// and `memory.fill`, and the over-long encoding of `call_indirect`'s table index. That
    /// covers what clang emits: clang 19's default CPU enables mutable-globals, sign-ext,
    /// multivalue and reference-types, and of reference-types it only uses the over-long
    /// `call_indirect` encoding and one funcref table for function pointers; clang 20 adds
    /// bulk-memory (for `memcpy`/`memset`) and non-trapping float-to-int to the default.
    /// Everything else is refused: see [`Feature`].
    #[error("the plugin uses the WebAssembly feature `{feature}`")]
    UnsupportedFeature {
        /// The feature.
        feature: Feature,
    },

    /// A linear memory's initial size exceeds [`AbiLimits::max_initial_memory_pages`](super::AbiLimits).
    #[error("linear memory starts with {pages} pages, more than the limit of {limit}")]
    InitialMemoryTooLarge {
        /// The memory's initial size in 64 KiB pages.
        pages: u64,
        /// The limit in force.
        limit: u32,
    },

    /// A table's initial size exceeds [`AbiLimits::max_table_entries`](super::AbiLimits).
    #[error("a table starts with {entries} entries, more than the limit of {limit}")]
    TableTooLarge {
        /// The table's initial number of entries.
        entries: u64,
        /// The limit in force.
        limit: u32,
    },

    /// The module has more functions than [`AbiLimits::max_function_count`](super::AbiLimits).
    #[error("the plugin has {count} functions, more than the limit of {limit}")]
    TooManyFunctions {
        /// Functions in the module, imported ones included.
        count: u32,
        /// The limit in force.
        limit: u32,
    },

    /// Functions that can call themselves, directly or through other functions.
    ///
    /// Why: the host runs plugins ahead-of-time compiled to native code on the host's own
    /// stack, so unbounded recursion in a plugin overflows the host's stack instead of
    /// trapping cleanly inside the sandbox. Without recursion, a plugin's stack depth is
    /// bounded by its call graph.
    ///
    /// How calls are found: `call` (and `return_call`) give exact edges. A `call_indirect`
    /// (a call through a function pointer) is assumed to reach every function that is both
    /// in an element segment (has its address taken; ABI v1 has no instructions that change
    /// tables at run time, so segments are the only way into the table) and of the
    /// call's function type (any other entry would trap on the type check). That is
    /// conservative, since it may report a cycle the program never takes, but it cannot
    /// miss one.
    ///
    /// Each cycle is a real path of calls, starting and ending at its first function (which
    /// is not repeated in the list). One strongly connected group of functions can produce
    /// several cycles; they are reported until every function in the group appears in one.
    #[error("recursion: {}", cycle_text(cycle))]
    Recursion {
        /// The functions on the cycle, in call order.
        cycle: Vec<FunctionRef>,
    },
}

impl AbiViolation {
    /// The rule's stable kebab-case id, such as `"float-instruction"`.
    pub fn code(&self) -> &'static str {
        match self {
            AbiViolation::Malformed { .. } => "malformed",
            AbiViolation::MissingAbiVersion => "missing-abi-version",
            AbiViolation::MalformedAbiSection { .. } => "malformed-abi-section",
            AbiViolation::ConflictingAbiVersions { .. } => "conflicting-abi-versions",
            AbiViolation::UnsupportedAbiVersion { .. } => "unsupported-abi-version",
            AbiViolation::MissingExport { .. } => "missing-export",
            AbiViolation::WrongSignature { .. } => "wrong-signature",
            AbiViolation::UnexpectedExport { .. } => "unexpected-export",
            AbiViolation::Import { .. } => "import",
            AbiViolation::DynamicAllocation { .. } => "dynamic-allocation",
            AbiViolation::MemoryGrow => "memory-grow",
            AbiViolation::FloatType { .. } => "float-type",
            AbiViolation::FloatInstruction { .. } => "float-instruction",
            AbiViolation::StartFunction => "start-function",
            AbiViolation::UnsupportedFeature { .. } => "unsupported-feature",
            AbiViolation::InitialMemoryTooLarge { .. } => "initial-memory-too-large",
            AbiViolation::TableTooLarge { .. } => "table-too-large",
            AbiViolation::TooManyFunctions { .. } => "too-many-functions",
            AbiViolation::Recursion { .. } => "recursion",
        }
    }

    /// Whether this rule is only a warning: the plugin is still compliant and runs, and
    /// `check-abi` passes unless asked to deny warnings. Only a missing ABI version is.
    pub fn is_warning(&self) -> bool {
        matches!(self, AbiViolation::MissingAbiVersion)
    }

    /// How a plugin author fixes this, in one or two sentences.
    pub fn help(&self) -> String {
        match self {
            AbiViolation::Malformed { .. } => "build the plugin with `clang --target=wasm32 -nostdlib -Wl,--no-entry` \
                 and check the file was copied completely"
                .into(),
            AbiViolation::MissingAbiVersion => "to declare the version, #include \"wasm_plugin.h\" in the plugin's \
                 source (it records the version in the `wasm_plugin_abi` custom section), or add \
                 that custom section yourself holding the version as a little-endian u32; \
                 `check-abi --deny-warnings` makes this an error"
                .into(),
            AbiViolation::MalformedAbiSection { .. } => {
                "do not write a `wasm_plugin_abi` section yourself; including wasm_plugin.h \
                 writes it"
                    .into()
            }
            AbiViolation::ConflictingAbiVersions { .. } => {
                "rebuild every source file against the same wasm_plugin.h".into()
            }
            AbiViolation::UnsupportedAbiVersion { .. } => {
                "rebuild the plugin against the wasm_plugin.h that ships with this host".into()
            }
            AbiViolation::MissingExport { name } | AbiViolation::WrongSignature { name, .. } => {
                match entry_point(name) {
                    Some(prototype) => format!("define `{prototype}` with PLUGIN_EXPORT({name}) from wasm_plugin.h"),
                    None => "export only `init`, `process` and `cleanup`".into(),
                }
            }
            AbiViolation::UnexpectedExport { name, kind, cause } => match (cause, kind) {
                (ExportCause::ExportAll, _) => "drop `-Wl,--export-all`: it exports every function and every linker \
                     symbol; export only the three entry points, with \
                     `-Wl,--export=init -Wl,--export=process -Wl,--export=cleanup` or export_name \
                     attributes"
                    .into(),
                (ExportCause::ExportDynamic, _) => format!(
                    "drop `-Wl,--export-dynamic`: with default symbol visibility (-fvisibility=default or \
                     visibility(\"default\")) it exports every non-static function and variable; export \
                     only the three entry points with `-Wl,--export=<name>`, or declare `{name}` static"
                ),
                (ExportCause::Unknown, ExternKind::Func) => format!(
                    "export only `init`, `process` and `cleanup`: drop `-Wl,--export={name}` or the \
                     export_name/PLUGIN_EXPORT attribute on `{name}`; if you link with \
                     `-Wl,--export-dynamic`, declare `{name}` static"
                ),
                (ExportCause::Unknown, ExternKind::Memory) => {
                    "export the linear memory only as `memory` (wasm-ld's default)".into()
                }
                (ExportCause::Unknown, ExternKind::Table) => {
                    format!("drop `-Wl,--export-table` (or `-Wl,--export={name}`): the table stays internal by default")
                }
                (ExportCause::Unknown, _) => format!("drop `-Wl,--export={name}`"),
            },
            AbiViolation::Import { .. } => "the host provides no functions and no memory: build with -nostdlib, \
                 implement every function you call, and do not link with \
                 -Wl,--allow-undefined, -Wl,--import-memory or -Wl,--import-table"
                .into(),
            AbiViolation::DynamicAllocation { .. } => {
                "the plugin ABI forbids malloc/free and C++ new/delete: keep state in \
                 static variables or fixed-size static arrays"
                    .into()
            }
            AbiViolation::MemoryGrow => "a plugin's memory has a fixed size: use static buffers instead of \
                 __builtin_wasm_memory_grow, sbrk or an allocator"
                .into(),
            AbiViolation::FloatType { .. } | AbiViolation::FloatInstruction { .. } => {
                "the plugin ABI is integer-only: use integer or fixed-point arithmetic \
                 instead of float and double"
                    .into()
            }
            AbiViolation::StartFunction => "remove the start function (clang adds one for shared memory and \
                 threads); do one-time setup in init()"
                .into(),
            AbiViolation::UnsupportedFeature { feature } => feature.help().into(),
            AbiViolation::InitialMemoryTooLarge { .. } => {
                "make static arrays smaller or shrink the stack (-Wl,-z,stack-size=...); \
                 the host operator can raise the limit"
                    .into()
            }
            AbiViolation::TableTooLarge { .. } => {
                "take the address of fewer functions, or ask the host operator to raise \
                 the limit"
                    .into()
            }
            AbiViolation::TooManyFunctions { .. } => {
                "split the plugin or ask the host operator to raise the limit".into()
            }
            AbiViolation::Recursion { .. } => {
                "rewrite the recursion as a loop (with a fixed-size array as an explicit \
                 stack if needed): plugins run as native code on the host's stack, where \
                 deep recursion would crash the host. Calls through function pointers \
                 count: one may reach any address-taken function of the same type"
                    .into()
            }
        }
    }
}

/// The C prototype of an entry point, or `None` if `name` is not one.
pub(crate) fn entry_point(name: &str) -> Option<&'static str> {
    match name {
        "init" => Some("int init(void)"),
        "process" => Some("int process(int input)"),
        "cleanup" => Some("int cleanup(void)"),
        _ => None,
    }
}

fn list(versions: &[u32]) -> String {
    versions.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ")
}

/// `a (#1) -> b (#2) -> a (#1)`: the cycle with its first function repeated at the end, so
/// it reads as the path of calls it is.
pub(crate) fn cycle_text(cycle: &[FunctionRef]) -> String {
    cycle.iter().chain(cycle.first()).map(ToString::to_string).collect::<Vec<_>>().join(" -> ")
}

/// A WebAssembly value type, as written in the text format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ValueType {
    I32,
    I64,
    F32,
    F64,
    V128,
    /// A reference type, in text syntax (`funcref`, `externref`, `(ref null $t)`, ...).
    Ref(String),
}

impl From<wasmparser::ValType> for ValueType {
    fn from(ty: wasmparser::ValType) -> Self {
        match ty {
            wasmparser::ValType::I32 => ValueType::I32,
            wasmparser::ValType::I64 => ValueType::I64,
            wasmparser::ValType::F32 => ValueType::F32,
            wasmparser::ValType::F64 => ValueType::F64,
            wasmparser::ValType::V128 => ValueType::V128,
            wasmparser::ValType::Ref(r) => ValueType::Ref(r.to_string()),
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueType::I32 => "i32",
            ValueType::I64 => "i64",
            ValueType::F32 => "f32",
            ValueType::F64 => "f64",
            ValueType::V128 => "v128",
            ValueType::Ref(text) => text,
        })
    }
}

impl Serialize for ValueType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A function type, shown as `[i32] -> [i32]` like the WebAssembly specification does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Signature {
    pub params: Vec<ValueType>,
    pub results: Vec<ValueType>,
}

impl Signature {
    pub(crate) fn of(ty: &wasmparser::FuncType) -> Self {
        Signature {
            params: ty.params().iter().copied().map(ValueType::from).collect(),
            results: ty.results().iter().copied().map(ValueType::from).collect(),
        }
    }

    /// The signature the ABI requires of an entry point, or `None` if `name` is not one.
    pub(crate) fn required(name: &str) -> Option<Self> {
        let params = match name {
            "init" | "cleanup" => vec![],
            "process" => vec![ValueType::I32],
            _ => return None,
        };
        Some(Signature { params, results: vec![ValueType::I32] })
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |types: &[ValueType]| types.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
        write!(f, "[{}] -> [{}]", join(&self.params), join(&self.results))
    }
}

/// What kind of item an import or export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExternKind {
    Func,
    Table,
    Memory,
    Global,
    Tag,
}

impl From<wasmparser::ExternalKind> for ExternKind {
    fn from(kind: wasmparser::ExternalKind) -> Self {
        match kind {
            wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => ExternKind::Func,
            wasmparser::ExternalKind::Table => ExternKind::Table,
            wasmparser::ExternalKind::Memory => ExternKind::Memory,
            wasmparser::ExternalKind::Global => ExternKind::Global,
            wasmparser::ExternalKind::Tag => ExternKind::Tag,
        }
    }
}

impl fmt::Display for ExternKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExternKind::Func => "function",
            ExternKind::Table => "table",
            ExternKind::Memory => "memory",
            ExternKind::Global => "global",
            ExternKind::Tag => "tag",
        })
    }
}

/// What put an unexpected export into a module: which linker flag to drop.
///
/// wasm-ld exports nothing but `memory` and the symbols named by `-Wl,--export=<name>` or an
/// `export_name` attribute, unless told otherwise. Two flags export more, and each leaves a
/// fingerprint in the export list: `--export-all` also exports the symbols the linker defines
/// itself (`__wasm_call_ctors`, `__data_end`, `__heap_base`, ...), and `--export-dynamic`
/// exports every symbol of default visibility, data included (as an `i32` global holding its
/// address), which clang builds only with `-fvisibility=default` or a visibility attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportCause {
    /// The module exports linker-defined symbols: `-Wl,--export-all`.
    ExportAll,
    /// The module exports a program variable: `-Wl,--export-dynamic`.
    ExportDynamic,
    /// One export among the expected ones: `-Wl,--export=<name>`, an `export_name` attribute,
    /// or `--export-dynamic` with one non-static function; the help names each.
    Unknown,
}

/// Where a floating-point type appears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloatUsage {
    /// A parameter of a function.
    Param,
    /// A result of a function.
    Result,
    /// A local variable of a function.
    Local,
    /// A global variable's type.
    Global,
    /// A function type no function has, used for example by `call_indirect` or a block.
    TypeDefinition,
}

impl fmt::Display for FloatUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FloatUsage::Param => "parameter",
            FloatUsage::Result => "result",
            FloatUsage::Local => "local variable",
            FloatUsage::Global => "global variable",
            FloatUsage::TypeDefinition => "type definition",
        })
    }
}

/// A WebAssembly feature (proposal) that ABI v1 does not allow.
///
/// Named as in the WebAssembly proposals and clang's `-m<feature>` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// 128-bit SIMD (`v128`), clang `-msimd128`.
    Simd,
    /// Relaxed SIMD, clang `-mrelaxed-simd`.
    RelaxedSimd,
    /// Atomics and shared memory, clang `-matomics`/`-pthread`.
    Threads,
    /// Shared-everything threads.
    SharedEverythingThreads,
    /// Tail calls, clang `-mtail-call`.
    TailCall,
    /// Exception handling, clang `-fwasm-exceptions`.
    Exceptions,
    /// The legacy (phase 1) exception handling encoding.
    LegacyExceptions,
    /// 64-bit memories (`--target=wasm64`).
    Memory64,
    /// More than one linear memory.
    MultiMemory,
    /// Reference types beyond the over-long `call_indirect` encoding: `externref`,
    /// `ref.func`, `table.*` instructions, more than one table.
    ReferenceTypes,
    /// Bulk memory beyond `memory.copy`/`memory.fill`: passive data or element segments,
    /// `memory.init`, `data.drop`, `table.init`, `table.copy`, `elem.drop`.
    BulkMemory,
    /// Typed function references.
    FunctionReferences,
    /// Garbage collection.
    Gc,
    /// Custom page sizes.
    CustomPageSizes,
    /// Memory control.
    MemoryControl,
    /// Stack switching.
    StackSwitching,
    /// Wide arithmetic.
    WideArithmetic,
    /// Custom descriptors.
    CustomDescriptors,
    /// Acquire-release atomics.
    AcquireReleaseAtomics,
    /// Multibyte array access.
    MultibyteArrayAccess,
    /// The compact import section encoding.
    CompactImports,
    /// A WebAssembly component rather than a core module.
    ComponentModel,
}

impl Feature {
    /// Every feature, in the order they are checked and reported.
    pub const ALL: [Feature; 22] = [
        Feature::Simd,
        Feature::RelaxedSimd,
        Feature::Threads,
        Feature::SharedEverythingThreads,
        Feature::TailCall,
        Feature::Exceptions,
        Feature::LegacyExceptions,
        Feature::Memory64,
        Feature::MultiMemory,
        Feature::ReferenceTypes,
        Feature::BulkMemory,
        Feature::FunctionReferences,
        Feature::Gc,
        Feature::CustomPageSizes,
        Feature::MemoryControl,
        Feature::StackSwitching,
        Feature::WideArithmetic,
        Feature::CustomDescriptors,
        Feature::AcquireReleaseAtomics,
        Feature::MultibyteArrayAccess,
        Feature::CompactImports,
        Feature::ComponentModel,
    ];

    /// The feature's kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Simd => "simd",
            Feature::RelaxedSimd => "relaxed-simd",
            Feature::Threads => "threads",
            Feature::SharedEverythingThreads => "shared-everything-threads",
            Feature::TailCall => "tail-call",
            Feature::Exceptions => "exception-handling",
            Feature::LegacyExceptions => "legacy-exception-handling",
            Feature::Memory64 => "memory64",
            Feature::MultiMemory => "multi-memory",
            Feature::ReferenceTypes => "reference-types",
            Feature::BulkMemory => "bulk-memory",
            Feature::FunctionReferences => "function-references",
            Feature::Gc => "gc",
            Feature::CustomPageSizes => "custom-page-sizes",
            Feature::MemoryControl => "memory-control",
            Feature::StackSwitching => "stack-switching",
            Feature::WideArithmetic => "wide-arithmetic",
            Feature::CustomDescriptors => "custom-descriptors",
            Feature::AcquireReleaseAtomics => "acquire-release-atomics",
            Feature::MultibyteArrayAccess => "multibyte-array-access",
            Feature::CompactImports => "compact-imports",
            Feature::ComponentModel => "component-model",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Feature::Simd | Feature::RelaxedSimd => {
                "compile without -msimd128/-mrelaxed-simd and without wasm_simd128.h"
            }
            Feature::Threads | Feature::SharedEverythingThreads | Feature::AcquireReleaseAtomics => {
                "compile without -pthread, -matomics or shared memory; plugins are single-threaded"
            }
            Feature::TailCall => "compile without -mtail-call",
            Feature::Exceptions | Feature::LegacyExceptions => {
                "compile C++ with -fno-exceptions (and without -fwasm-exceptions)"
            }
            Feature::Memory64 => "compile with --target=wasm32, not wasm64",
            Feature::MultiMemory => "use a single linear memory",
            Feature::ReferenceTypes | Feature::FunctionReferences | Feature::Gc => {
                "use plain function pointers and C data; do not use __funcref, __externref_t \
                 or table builtins"
            }
            Feature::BulkMemory => {
                "only memory.copy and memory.fill are allowed: do not use passive segments, \
                 memory.init or table instructions (clang emits them for shared memory)"
            }
            Feature::ComponentModel => "build a core WebAssembly module with clang, not a component",
            Feature::CustomPageSizes
            | Feature::MemoryControl
            | Feature::StackSwitching
            | Feature::WideArithmetic
            | Feature::CustomDescriptors
            | Feature::MultibyteArrayAccess
            | Feature::CompactImports => {
                "compile with clang's default features (-mcpu=generic, or -mcpu=lime1 with \
                 clang 20 and later) and no extra -m<feature> flags"
            }
        }
    }
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
