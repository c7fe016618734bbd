//! The rules of the plugin ABI in one table: per rule its documentation, its code, whether it
//! is only a warning, the message saying what is wrong where, and the advice shown to plugin
//! authors. [`AbiViolation`] and all of its methods are derived from that table.

use std::fmt;

use serde::Serialize;

use super::details::{ExportCause, ExternKind, FloatUsage, Signature, ValueType};
use super::features::Feature;
use super::layout::{Buffer, BufferKind};
use super::location::{FunctionRef, Location};

/// Declares [`AbiViolation`] from the table below, one row per rule:
///
/// ```text
/// /// Documentation of the rule.
/// Variant { /// Documentation of the field (and any other attribute, such as a serde one).
///           field: Type, ... }          (or no braces for a rule without details)
/// => error "code",                      (or `warning "code"`)
/// message |at, offset, location| <String: what is wrong, and where>,
/// help <&str or String: how to fix it>;
/// ```
///
/// In a row's `message`, `at` is the location as the subject of a sentence (`function
/// `process` (#3)`), `offset` is ` at offset 0x1a4` or empty, and `location` is the
/// [`Location`] itself; write `_` for the ones the message does not need. Both `message` and
/// `help` see the variant's fields by name.
///
/// Everything about a rule lives in its row, so adding a rule is one new row (and, because the
/// tests' example of every rule is an exhaustive `match`, one example); the tests check the
/// tables in `ABI.md` and in this module's parent against the codes declared here.
macro_rules! abi_rules {
    (@is_warning error) => { false };
    (@is_warning warning) => { true };
    (
        $(#[doc = $enum_doc:literal])*
        pub enum AbiViolation {$(
            $(#[doc = $doc:literal])*
            $rule:ident $({$(
                $(#[$field_meta:meta])*
                $field:ident: $type:ty
            ),* $(,)?})?
            => $severity:ident $code:literal,
            message |$at:tt, $offset:tt, $location:tt| $message:expr,
            help $help:expr;
        )*}
    ) => {
        $(#[doc = $enum_doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(tag = "code", content = "details")]
        pub enum AbiViolation {$(
            $(#[doc = $doc])*
            #[serde(rename = $code)]
            $rule $({$($(#[$field_meta])* $field: $type,)*})?,
        )*}

        impl AbiViolation {
            /// Every rule's code, in the order of the table; the tests check the documentation
            /// against it.
            #[cfg(test)]
            pub(crate) const CODES: &[&str] = &[$($code),*];

            /// The rule's stable kebab-case id, such as `"float-instruction"`.
            pub fn code(&self) -> &'static str {
                match self {
                    $(AbiViolation::$rule { .. } => $code,)*
                }
            }

            /// Whether this rule is only a warning: the plugin is still compliant and runs, and
            /// `check-abi` passes unless asked to deny warnings. Only a missing ABI version is.
            pub fn is_warning(&self) -> bool {
                match self {
                    $(AbiViolation::$rule { .. } => abi_rules!(@is_warning $severity),)*
                }
            }

            /// The sentence saying what is wrong at `location`, without the code or the help.
            // Each row's message reads only the fields and parts of the location it needs.
            #[allow(unused_variables)]
            pub(crate) fn message(&self, location: &Location) -> String {
                let subject = location.subject();
                let offset = match location.offset() {
                    Some(offset) => format!(" at offset {offset:#x}"),
                    None => String::new(),
                };
                match self {
                    $(AbiViolation::$rule $({$($field),*})? => {
                        let ($at, $offset, $location) = (&subject, &offset, location);
                        $message
                    })*
                }
            }

            /// How a plugin author fixes this, in one or two sentences.
            // Each row's help reads only the fields it needs.
            #[allow(unused_variables)]
            pub fn help(&self) -> String {
                match self {
                    $(AbiViolation::$rule $({$($field),*})? => String::from($help),)*
                }
            }
        }
    };
}

abi_rules! {
    /// One way a compiled plugin breaks the plugin ABI.
    ///
    /// Each variant is one rule; [`AbiViolation::code`] is its stable kebab-case id (used in
    /// `error[...]` lines, in JSON as `"code"`, and in the ABI documentation). Where the problem
    /// is lives in the [`Violation`](super::Violation) that wraps this, not here.
    ///
    /// Rules about instructions (floating point, `memory.grow`) are reported once per function
    /// and instruction name, at the first occurrence, so a float-heavy function produces one line
    /// per distinct instruction instead of hundreds.
    pub enum AbiViolation {
        /// The bytes are not a valid WebAssembly module at all (truncated, not wasm, or failing
        /// validation even with every WebAssembly feature enabled). When this is reported it is
        /// the only violation, because nothing else about the file can be trusted.
        Malformed {
            /// What the WebAssembly parser or validator objected to.
            message: String,
        }
        => error "malformed",
        message |_, offset, _| format!("the file is not a valid WebAssembly module: {message}{offset}"),
        help "build the plugin with `clang --target=wasm32 -nostdlib -Wl,--no-entry` and check the file was \
              copied completely";

        /// The plugin records no ABI version: it has no `wasm_plugin_abi` custom section, which
        /// every plugin that includes `wasm_plugin.h` has.
        ///
        /// This is a **warning**, not an error (see [`AbiViolation::is_warning`]): the seed's
        /// original contract (three integer functions) defined no marker, so plugins built for it
        /// carry none. Such a plugin is checked and run as [`IMPLIED_ABI_VERSION`](crate::IMPLIED_ABI_VERSION),
        /// the original contract; newer versions are never implied.
        MissingAbiVersion
        => warning "missing-abi-version",
        message |_, _, _| format!(
            "the plugin does not declare which plugin ABI version it was built for; it is checked and run as \
             v{}, the original contract",
            crate::IMPLIED_ABI_VERSION
        ),
        help "to declare the version, #include \"wasm_plugin.h\" in the plugin's source (it records the version \
              in the `wasm_plugin_abi` custom section), or add that custom section yourself holding the version \
              as a little-endian u32; `check-abi --deny-warnings` makes this an error";

        /// The `wasm_plugin_abi` section is empty or not a whole number of 4-byte versions, so it
        /// was not written by `wasm_plugin.h`.
        MalformedAbiSection {
            /// The combined length of every `wasm_plugin_abi` section, in bytes.
            length: usize,
        }
        => error "malformed-abi-section",
        message |at, _, _| format!("{at} is {length} bytes long; it should hold one or more 4-byte version numbers"),
        help "do not write a `wasm_plugin_abi` section yourself; including wasm_plugin.h writes it";

        /// The copies of the ABI version disagree: the plugin's source files were compiled against
        /// different versions of `wasm_plugin.h`.
        ConflictingAbiVersions {
            /// Every distinct version found, in ascending order.
            versions: Vec<u32>,
        }
        => error "conflicting-abi-versions",
        message |_, _, _| format!("the plugin declares several ABI versions: {}", list(versions)),
        help "rebuild every source file against the same wasm_plugin.h";

        /// The plugin was built for an ABI version this checker does not implement. Its exports
        /// are then not checked at all: the checker does not guess at a contract it does not
        /// know.
        UnsupportedAbiVersion {
            /// The version the plugin declares.
            found: u32,
            /// The versions this crate implements ([`crate::SUPPORTED_ABI_VERSIONS`]).
            supported: Vec<u32>,
        }
        => error "unsupported-abi-version",
        message |_, _, _| format!(
            "the plugin was built for plugin ABI v{found}, which this host does not support (it supports {})",
            list(supported)
        ),
        help "rebuild the plugin against the headers that ship with this host: wasm_plugin.h for ABI v1, \
              wasm_plugin_v2.h for ABI v2";

        /// One of `init`, `process` and `cleanup` is not exported as a function.
        MissingExport {
            /// The missing entry point.
            name: String,
        }
        => error "missing-export",
        message |_, _, _| format!("the plugin does not export the function `{name}`"),
        help define_entry_point(name);

        /// An entry point is exported with the wrong parameter or result types.
        WrongSignature {
            /// The entry point.
            name: String,
            /// What the ABI requires.
            expected: Signature,
            /// What the plugin exports.
            found: Signature,
        }
        => error "wrong-signature",
        message |_, _, _| format!("`{name}` is exported with the signature {found}, but the ABI requires {expected}"),
        help define_entry_point(name);

        /// An export other than the three entry points and the allowed `memory` (in ABI v2:
        /// other than `memory`, `init`, `cleanup`, the four buffer functions, `fn_*` and
        /// `stream_*`; a v2 export that starts with `fn_` or `stream_` but is malformed is an
        /// [`AbiViolation::InvalidFunctionName`] instead).
        ///
        /// Allowed besides the entry points: one linear memory exported as `memory`. wasm-ld
        /// exports the memory under that name by default, and it is harmless: the host may read
        /// it but never needs to. clang 19 with `-nostdlib -Wl,--no-entry` exports nothing else
        /// (its `__stack_pointer` global and `__indirect_function_table` stay internal), so
        /// every other export (globals, tables, helper functions, a memory under another name)
        /// comes from extra attributes or linker flags such as `--export-all` and is refused.
        ///
        /// Also allowed: `__heap_base` and `__data_end` exported as immutable `i32` globals, which
        /// rustc makes wasm-ld export from every Rust plugin (no rustc flag removes them). An
        /// immutable global is a constant address the host never reads and nothing can change.
        /// The mutable `__stack_pointer` (exported by Zig's `-rdynamic`, or by `--export-all`) is
        /// refused: it is state an embedder could change under the plugin.
        ///
        /// The report names the linker flag to drop when the module's exports show which one
        /// produced them (see [`ExportCause`]).
        UnexpectedExport {
            /// The export's name.
            name: String,
            /// What kind of item is exported.
            kind: ExternKind,
            /// What most likely produced the export, judged from the module's whole export list.
            cause: ExportCause,
            /// The version the plugin is checked as, which decides which exports the help lists.
            /// Not serialized: the report says the version once.
            #[serde(skip_serializing)]
            abi_version: u32,
        }
        => error "unexpected-export",
        message |_, _, _| format!("the plugin exports the {kind} `{name}`, which is not part of the plugin ABI"),
        help match (cause, kind) {
            _ if *abi_version == 2 => unexpected_v2_export(name, *kind, *cause),
            (ExportCause::ExportAll, _) => "drop `-Wl,--export-all`: it exports every function and every linker \
                 symbol; export only the three entry points, with \
                 `-Wl,--export=init -Wl,--export=process -Wl,--export=cleanup` or export_name attributes"
                .into(),
            (ExportCause::ExportDynamic, _) => format!(
                "drop `-Wl,--export-dynamic`: with default symbol visibility (-fvisibility=default or \
                 visibility(\"default\")) it exports every non-static function and variable; export only the \
                 three entry points with `-Wl,--export=<name>`, or declare `{name}` static"
            ),
            (ExportCause::Unknown, ExternKind::Func) => format!(
                "export only `init`, `process` and `cleanup`: drop `-Wl,--export={name}` or the \
                 export_name/PLUGIN_EXPORT attribute on `{name}`; if you link with `-Wl,--export-dynamic`, \
                 declare `{name}` static; {OTHER_LANGUAGES_EXPORTS}"
            ),
            (ExportCause::Unknown, ExternKind::Global) if name == "__stack_pointer" => STACK_POINTER_EXPORT.into(),
            (ExportCause::Unknown, ExternKind::Memory) => {
                "export the linear memory only as `memory` (wasm-ld's default)".into()
            }
            (ExportCause::Unknown, ExternKind::Table) => {
                format!("drop `-Wl,--export-table` (or `-Wl,--export={name}`): the table stays internal by default")
            }
            (ExportCause::Unknown, _) => format!("drop `-Wl,--export={name}`"),
        };

        /// A plugin that declares ABI v2 exports `process`, the v1 entry point. v2 offers its work
        /// as `fn_<name>` functions, and a module that has both would be a v1 plugin under the
        /// wrong marker or a v2 plugin with a leftover: either way the host could not tell which
        /// contract the author meant.
        V1ExportInV2 {
            /// The v1 export (`process`).
            name: String,
        }
        => error "v1-export-in-v2",
        message |_, _, _| format!("the plugin declares ABI v2 but exports `{name}`, the ABI v1 entry point"),
        help format!(
            "a v2 plugin offers its work as `fn_<name>(int input_len)` functions (PLUGIN_FUNCTION(name) from \
             wasm_plugin_v2.h): drop or rename `{name}`, or include wasm_plugin.h instead of wasm_plugin_v2.h to \
             build a v1 plugin"
        );

        /// An ABI v2 export that starts with `fn_` or `stream_` but is not `fn_<name>` or
        /// `stream_<name>_begin`, `_feed` or `_end` with a `<name>` matching
        /// `[a-z][a-z0-9_]{0,31}` ([`is_valid_function_name`](crate::is_valid_function_name)).
        InvalidFunctionName {
            /// The export's name.
            name: String,
        }
        => error "invalid-function-name",
        message |_, _, _| format!(
            "the plugin exports `{name}`, which is neither `fn_<name>` nor `stream_<name>_begin`, `_feed` or `_end` \
             with a <name> of 1 to 32 lowercase letters, digits and `_` starting with a letter"
        ),
        help "name each function like `word_count` or `sha256` and export it with PLUGIN_FUNCTION(name) or \
              PLUGIN_STREAM(name, begin, feed, end) from wasm_plugin_v2.h: names appear in URLs and JSON as they are";

        /// An ABI v2 plugin does not export its linear memory as `memory`: the host writes inputs
        /// into it and reads outputs from it. (A v1 plugin may leave it unexported.)
        MissingMemoryExport
        => error "missing-memory-export",
        message |_, _, _| "the plugin does not export a linear memory named `memory`, which ABI v2 requires".to_owned(),
        help "define the memory in the module and export it as `memory`, which wasm-ld does by default: do not link \
              with -Wl,--import-memory, and do not rename it with -Wl,--export-memory=<name>";

        /// One of the four ABI v2 buffer functions, `plugin_input_ptr`, `plugin_input_capacity`,
        /// `plugin_output_ptr` and `plugin_output_capacity` (each `[] -> [i32]`), is not exported.
        MissingBufferExport {
            /// The missing buffer function.
            name: String,
        }
        => error "missing-buffer-export",
        message |_, _, _| format!("the plugin does not export the buffer function `{name}`"),
        help "declare both buffers once with PLUGIN_BUFFERS(input_capacity, output_capacity) from wasm_plugin_v2.h, \
              which defines all four buffer functions";

        /// An ABI v2 plugin exports no `fn_<name>` function, so a host has nothing to call:
        /// every v2 plugin offers at least one (streams are optional, on top).
        NoFunctions
        => error "no-functions",
        message |_, _, _| "the plugin exports no `fn_<name>` function, so the host has nothing to call".to_owned(),
        help "define at least one function with PLUGIN_FUNCTION(name) from wasm_plugin_v2.h";

        /// An ABI v2 streaming function lacks one or two of `stream_<name>_begin`,
        /// `stream_<name>_feed` and `stream_<name>_end`: a stream is all three or none.
        IncompleteStream {
            /// The stream's name.
            name: String,
            /// The missing exports, in the order the host would call them.
            missing: Vec<String>,
        }
        => error "incomplete-stream",
        message |_, _, _| format!(
            "the streaming function `{name}` lacks {}: a stream needs begin, feed and end",
            missing.iter().map(|export| format!("`{export}`")).collect::<Vec<_>>().join(" and ")
        ),
        help "define all three at once with PLUGIN_STREAM(name, begin, feed, end) from wasm_plugin_v2.h";

        /// An ABI v2 name is both a function (`fn_<name>`) and a stream (`stream_<name>_*`). A
        /// client calls a function by name, so each name means one function.
        DuplicateFunctionName {
            /// The name used twice.
            name: String,
        }
        => error "duplicate-function-name",
        message |_, _, _| format!(
            "`{name}` is both a function (`fn_{name}`) and a streaming function (`stream_{name}_*`)"
        ),
        help "give the one-shot function and the stream different names, such as `sha256` and `sha256sum`";

        /// An ABI v2 buffer function does not return a constant the checker can read without
        /// running it: its body must be a straight line of `i32.const`, locals, `i32.add`,
        /// `i32.sub` and `return`, which is what clang emits for `return (int)buf;` and
        /// `return sizeof buf;` at every optimisation level. Anything else (a global, a load, a
        /// call, a branch) could move a buffer at run time, so it is refused: the host knows
        /// both buffers before the plugin runs, and checks them once.
        BufferNotConstant {
            /// The buffer function.
            name: String,
            /// The first instruction the checker could not follow, in WebAssembly text syntax.
            op: String,
        }
        => error "buffer-not-constant",
        message |at, offset, _| format!(
            "{at} does not return a constant: the checker cannot follow `{op}`{offset}"
        ),
        help "return the address or the size of a static array and nothing else (`return (int)buf;`, \
              `return sizeof buf;`), as PLUGIN_BUFFERS from wasm_plugin_v2.h does: the host must know where both \
              buffers are before the plugin runs";

        /// An ABI v2 buffer has a capacity of 0 bytes (or its capacity function returns a
        /// negative number, which reads as a size of more than 2 GiB and is reported as too
        /// large instead).
        EmptyBuffer {
            /// Which buffer.
            buffer: BufferKind,
        }
        => error "empty-buffer",
        message |_, _, _| format!("the {buffer} buffer has a capacity of 0 bytes"),
        help "give both buffers at least one byte: PLUGIN_BUFFERS(input_capacity, output_capacity)";

        /// An ABI v2 buffer is larger than [`AbiLimits::max_buffer_capacity`](super::AbiLimits).
        BufferCapacityTooLarge {
            /// Which buffer.
            buffer: BufferKind,
            /// Its capacity in bytes (a negative `i32` read as unsigned).
            capacity: u32,
            /// The limit in force.
            limit: u32,
        }
        => error "buffer-capacity-too-large",
        message |_, _, _| format!("the {buffer} buffer holds {capacity} bytes; the limit is {limit} bytes"),
        help "make the buffer smaller (a streaming function takes inputs of any size through a small buffer), or \
              ask the host operator to raise the limit";

        /// An ABI v2 buffer does not lie inside the module's initial linear memory, the memory
        /// every instance starts with and, without `memory.grow`, keeps. Checked in 64-bit
        /// arithmetic, so an address near 4 GiB cannot wrap around.
        BufferOutsideMemory {
            /// Which buffer.
            buffer: BufferKind,
            /// Its address.
            offset: u32,
            /// Its capacity in bytes.
            capacity: u32,
            /// The size of the initial linear memory in bytes (0 without a memory).
            memory_bytes: u64,
        }
        => error "buffer-outside-memory",
        message |_, _, _| format!(
            "the {buffer} buffer ({}) ends at {:#x}, past the end of linear memory ({memory_bytes:#x} bytes)",
            Buffer { offset: *offset, capacity: *capacity },
            Buffer { offset: *offset, capacity: *capacity }.end()
        ),
        help "return the address and the size of the same static array from a buffer's two functions, as \
              PLUGIN_BUFFERS from wasm_plugin_v2.h does: memory holds exactly what the module declares, and a v2 \
              plugin cannot grow it";

        /// The ABI v2 input and output buffers share bytes. The host writes the input before a
        /// call and reads the output after it; a plugin writing its output while still reading
        /// its input would overwrite it.
        BuffersOverlap {
            /// The input buffer.
            input: Buffer,
            /// The output buffer.
            output: Buffer,
        }
        => error "buffers-overlap",
        message |_, _, _| format!("the input buffer ({input}) and the output buffer ({output}) overlap"),
        help "use two separate static arrays for input and output, as PLUGIN_BUFFERS from wasm_plugin_v2.h does";

        /// An ABI v2 plugin exports one of `plugin_config_ptr` and `plugin_config_capacity`
        /// but not the other: a configuration buffer is declared by both or by neither.
        IncompleteConfigBuffer {
            /// The function that is missing.
            missing: String,
        }
        => error "incomplete-config-buffer",
        message |_, _, _| format!(
            "the plugin declares half a configuration buffer: `{missing}` is not exported"
        ),
        help "declare the configuration buffer once with PLUGIN_CONFIG(max_bytes) from wasm_plugin_v2.h, which \
              defines both functions, or export neither if the plugin takes no configuration";

        /// An ABI v2 configuration buffer has no room for its 4-byte length and at least one
        /// byte of configuration.
        ConfigBufferTooSmall {
            /// Its capacity in bytes.
            capacity: u32,
        }
        => error "config-buffer-too-small",
        message |_, _, _| format!(
            "the configuration buffer holds {capacity} bytes, but its first 4 bytes are the configuration's length, \
             which leaves no room for a configuration"
        ),
        help "make the buffer 4 bytes longer than the largest configuration the plugin takes: \
              PLUGIN_CONFIG(max_bytes) from wasm_plugin_v2.h does";

        /// The ABI v2 configuration buffer shares bytes with the input or the output buffer:
        /// a call's input or output would overwrite the configuration the plugin read in `init`.
        ConfigBufferOverlaps {
            /// The configuration buffer.
            config: Buffer,
            /// The buffer it overlaps.
            buffer: BufferKind,
            /// Where that buffer is.
            other: Buffer,
        }
        => error "config-buffer-overlaps",
        message |_, _, _| format!("the configuration buffer ({config}) and the {buffer} buffer ({other}) overlap"),
        help "use a static array of its own for the configuration, as PLUGIN_CONFIG from wasm_plugin_v2.h does";

        /// The plugin imports something. Plugins get no host functions, no WASI and no imported
        /// memory or table: everything a plugin runs must be inside the plugin, so the host can
        /// instantiate it without providing anything.
        ///
        /// An import of an allocator (see [`AbiViolation::DynamicAllocation`]) is reported as
        /// `DynamicAllocation` instead, never as both.
        Import {
            /// The import's module name.
            module: String,
            /// The import's field name.
            name: String,
        }
        => error "import",
        message |_, _, _| format!("the plugin imports `{module}.{name}`, but plugins may not import anything"),
        help "the host provides no functions and no memory: build with -nostdlib, implement every function you \
              call, and do not link with -Wl,--allow-undefined, -Wl,--import-memory or -Wl,--import-table. \
              Rust: `#![no_std]` for wasm32-unknown-unknown; AssemblyScript: `env.abort` comes from `new` and \
              assertions, so build with `--runtime stub --noAssert` and use `memory.data()` buffers; Go's wasm \
              needs WASI imports and cannot build a plugin";

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
        DynamicAllocation {
            /// The allocator's name.
            symbol: String,
        }
        => error "dynamic-allocation",
        message |at, _, location| match location {
            Location::Import { module, .. } => format!("the plugin imports the dynamic allocator `{module}.{symbol}`"),
            Location::Function { name: Some(name), .. } if name == symbol => {
                format!("{at} is a dynamic memory allocator")
            }
            _ => format!("{at} is the dynamic memory allocator `{symbol}`"),
        },
        help "the plugin ABI forbids malloc/free and C++ new/delete: keep state in static variables or \
              fixed-size static arrays";

        /// A `memory.grow` instruction: a plugin's linear memory has a fixed size, so that one
        /// plugin's memory use is known when it is loaded.
        MemoryGrow
        => error "memory-grow",
        message |at, offset, _| format!("{at} grows linear memory (memory.grow){offset}"),
        help "a plugin's memory has a fixed size: use static buffers instead of __builtin_wasm_memory_grow, sbrk \
              or an allocator (Rust: no `alloc` crate; AssemblyScript: no `new`, `memory.data()` buffers)";

        /// A function signature, local variable, global or type uses `f32` or `f64`: the plugin
        /// ABI is integer-only.
        FloatType {
            /// `f32` or `f64`.
            ty: ValueType,
            /// Where the type appears.
            usage: FloatUsage,
        }
        => error "float-type",
        message |at, offset, _| match usage {
            FloatUsage::Param => format!("{at} takes a floating-point parameter ({ty})"),
            FloatUsage::Result => format!("{at} returns a floating-point value ({ty})"),
            FloatUsage::Local => format!("{at} has a floating-point local variable ({ty}){offset}"),
            FloatUsage::Global => format!("{at} holds a floating-point value ({ty})"),
            FloatUsage::TypeDefinition => format!("{at} is a function type with floating-point values ({ty})"),
        },
        help INTEGER_ONLY;

        /// A floating-point instruction: any `f32.*`/`f64.*` instruction (arithmetic, constants,
        /// loads, stores, comparisons), any conversion or reinterpretation to or from a float,
        /// SIMD lanes of floats, and blocks or `select`s typed with a float.
        FloatInstruction {
            /// The instruction in WebAssembly text syntax, such as `f64.mul`.
            op: String,
        }
        => error "float-instruction",
        message |at, offset, _| format!("{at} uses floating point ({op}){offset}"),
        help INTEGER_ONLY;

        /// The module has a start function, which would run when the host instantiates the
        /// plugin, before `init` and outside the lifecycle the host controls.
        StartFunction
        => error "start-function",
        message |at, _, _| format!("{at} is the module's start function, which would run before init()"),
        help "remove the start function and do one-time setup in init(). C/C++: clang adds one for shared memory \
              and threads; AssemblyScript: build with `--runtime stub` and use no `new`, no string or array built \
              at run time and no top-level variable with a computed initial value (static buffers: \
              `memory.data(SIZE)`); Rust and Zig never add one";

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
        UnsupportedFeature {
            /// The feature.
            feature: Feature,
            /// The version the plugin is checked as (every supported version allows the same
            /// features). Not serialized: the report says the version once.
            #[serde(skip_serializing)]
            abi_version: u32,
        }
        => error "unsupported-feature",
        message |at, offset, _| format!(
            "{at} uses the WebAssembly feature `{feature}`{offset}, which plugin ABI v{abi_version} does not allow"
        ),
        help feature.help();

        /// A linear memory's initial size exceeds [`AbiLimits::max_initial_memory_pages`](super::AbiLimits).
        InitialMemoryTooLarge {
            /// The memory's initial size in 64 KiB pages.
            pages: u64,
            /// The limit in force.
            limit: u32,
        }
        => error "initial-memory-too-large",
        message |at, _, _| format!(
            "{at} starts with {pages} pages ({} KiB); the limit is {limit} pages ({} KiB)",
            pages.saturating_mul(64),
            u64::from(*limit) * 64
        ),
        help "make static arrays smaller or shrink the stack, which is most of a small plugin's memory: \
              C/C++ `-Wl,-z,stack-size=65536`, Rust `-C link-arg=-zstack-size=65536`, Zig `--stack 65536` \
              (rustc's and Zig's default stack is 1 MiB, 17 pages with any data at all); the host operator can \
              raise the limit";

        /// A table's initial size exceeds [`AbiLimits::max_table_entries`](super::AbiLimits).
        TableTooLarge {
            /// The table's initial number of entries.
            entries: u64,
            /// The limit in force.
            limit: u32,
        }
        => error "table-too-large",
        message |at, _, _| format!("{at} starts with {entries} entries; the limit is {limit}"),
        help "take the address of fewer functions, or ask the host operator to raise the limit";

        /// The module has more functions than [`AbiLimits::max_function_count`](super::AbiLimits).
        TooManyFunctions {
            /// Functions in the module, imported ones included.
            count: u32,
            /// The limit in force.
            limit: u32,
        }
        => error "too-many-functions",
        message |_, _, _| format!("the plugin has {count} functions; the limit is {limit}"),
        help "split the plugin or ask the host operator to raise the limit";

        /// The module has more types in its type section than [`MAX_TYPES`](crate::MAX_TYPES).
        TooManyTypes {
            /// Types in the module.
            count: u32,
            /// The limit.
            limit: u32,
        }
        => error "too-many-types",
        message |_, _, _| format!("the plugin declares {count} types; the limit is {limit}"),
        help "clang emits one type per distinct function signature, a few dozen at most: a module with thousands \
              was not built from C by clang; rebuild it";

        /// A function type has more parameters than [`MAX_FUNCTION_PARAMS`](crate::MAX_FUNCTION_PARAMS)
        /// or more results than [`MAX_FUNCTION_RESULTS`](crate::MAX_FUNCTION_RESULTS). WebAssembly
        /// engines pass each value in a register or a stack slot, and the host's AOT compiler
        /// turns a long list of results into a structure it returns in memory; past these
        /// limits the compiler's cost grows quickly and WasmEdge can abort while compiling.
        FunctionTypeTooLarge {
            /// Parameters of the type.
            params: u32,
            /// Results of the type.
            results: u32,
        }
        => error "function-type-too-large",
        message |at, _, _| format!(
            "{at} has {params} parameters and {results} results; the limits are {} parameters and {} results",
            crate::MAX_FUNCTION_PARAMS,
            crate::MAX_FUNCTION_RESULTS
        ),
        help "pass many values through a static struct in memory instead of as parameters or multiple results \
              (clang emits a single result unless built with -mmultivalue -Xclang -target-abi -Xclang \
              experimental-mv)";

        /// A function declares more local variables than [`MAX_FUNCTION_LOCALS`](crate::MAX_FUNCTION_LOCALS)
        /// (parameters not counted). The AOT compiler gives every local a slot and tracks each
        /// through the function's code, so its cost grows with locals times code.
        TooManyLocals {
            /// Locals the function declares.
            count: u64,
            /// The limit.
            limit: u32,
        }
        => error "too-many-locals",
        message |at, offset, _| format!("{at} declares {count} local variables{offset}; the limit is {limit}"),
        help "split the function into smaller ones; clang at -O1 and above reuses locals, so building with \
              optimisation usually helps";

        /// A function nests blocks (`block`, `loop`, `if`) deeper than
        /// [`MAX_NESTING_DEPTH`](crate::MAX_NESTING_DEPTH). The AOT compiler's time grows faster
        /// than the nesting depth, so a small module of deeply nested blocks could occupy it for
        /// minutes.
        NestingTooDeep {
            /// The deepest nesting in the function.
            depth: u32,
            /// The limit.
            limit: u32,
        }
        => error "nesting-too-deep",
        message |at, offset, _| format!("{at} nests blocks {depth} deep{offset}; the limit is {limit}"),
        help "split large switch statements or deeply nested code into several functions";

        /// An active data segment does not fit in the memory it initializes: its offset plus its
        /// length (in 64-bit arithmetic, so nothing wraps around) is past the end of the
        /// initial linear memory. Instantiating such a module fails, on every call, before the
        /// plugin runs; the checker reads the same constants the engine would and refuses it
        /// up front.
        DataSegmentOutsideMemory {
            /// The segment's index among the module's data segments.
            segment: u32,
            /// Where it starts in memory.
            address: u64,
            /// Its length in bytes.
            length: u64,
            /// The size of the initial memory in bytes (0 without a memory).
            memory_bytes: u64,
        }
        => error "data-segment-outside-memory",
        message |_, offset, _| format!(
            "data segment #{segment}{offset} writes {length} bytes at {address:#x}, ending at {:#x}, past the end of \
             the initial memory ({memory_bytes:#x} bytes)",
            address.saturating_add(*length)
        ),
        help "let the linker lay out static data (do not pass --global-base or --initial-memory values that leave \
              data outside memory); memory holds exactly what the module declares, and a plugin cannot grow it";

        /// An active element segment does not fit in the table it initializes: its offset plus
        /// its number of entries (64-bit arithmetic) is past the table's initial size.
        /// Instantiating such a module fails on every call, as for a data segment outside memory.
        ElementSegmentOutsideTable {
            /// The segment's index among the module's element segments.
            segment: u32,
            /// The first table entry it writes.
            start: u64,
            /// Its number of entries.
            length: u64,
            /// The table's initial size (0 without a table).
            table_entries: u64,
        }
        => error "element-segment-outside-table",
        message |_, offset, _| format!(
            "element segment #{segment}{offset} writes {length} entries at index {start}, past the end of the \
             table ({table_entries} entries)"
        ),
        help "let the linker build the function table (clang and wasm-ld size it to fit every address-taken \
              function)";

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
        /// several cycles; they are reported until every function in the group appears in one, up
        /// to 32 cycles per module (each is found by a search linear in the module, so the bound
        /// keeps the check linear).
        Recursion {
            /// The functions on the cycle, in call order.
            cycle: Vec<FunctionRef>,
        }
        => error "recursion",
        message |_, offset, _| match cycle.as_slice() {
            [only] => format!("function {only} calls itself{offset}"),
            _ => format!("functions call each other in a cycle: {}{offset}", cycle_text(cycle)),
        },
        help "rewrite the recursion as a loop (with a fixed-size array as an explicit stack if needed): plugins \
              run as native code on the host's stack, where deep recursion would crash the host. Calls through \
              function pointers count: one may reach any address-taken function of the same type";
    }
}

/// The rule's message as if it were about the module as a whole. A [`Violation`](super::Violation)
/// says where the rule is broken, and its `Display` is what plugin authors see.
impl fmt::Display for AbiViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(&Location::Module))
    }
}

impl std::error::Error for AbiViolation {}

/// The advice for an unexpected function export in the languages besides C/C++.
const OTHER_LANGUAGES_EXPORTS: &str = "Rust: export only through the plugin SDK's macros (every other \
     `#[no_mangle] pub extern \"C\" fn` is exported); Zig: name each export with `--export=NAME` instead of \
     `-rdynamic`; AssemblyScript: `export` only the entry points from the entry file";

/// The advice for an exported `__stack_pointer`, which only Zig's `-rdynamic` (or wasm-ld's
/// `--export-all`) exports.
const STACK_POINTER_EXPORT: &str = "Zig: build without `-rdynamic`, which exports the mutable `__stack_pointer`, \
     and name each export with `--export=NAME` instead; C/C++: drop `-Wl,--export=__stack_pointer` or \
     `-Wl,--export-all`";

/// The advice for both floating-point rules.
const INTEGER_ONLY: &str =
    "the plugin ABI is integer-only: use integer or fixed-point arithmetic instead of float and double";

/// How to export the entry point `name` correctly, for a missing or mistyped one.
fn define_entry_point(name: &str) -> String {
    if let Some(function) = name.strip_prefix("fn_") {
        return format!("define `int {name}(int input_len)` with PLUGIN_FUNCTION({function}) from wasm_plugin_v2.h");
    }
    if let Some(stream) = name.strip_prefix("stream_") {
        let stream = ["_begin", "_feed", "_end"].iter().find_map(|part| stream.strip_suffix(part)).unwrap_or(stream);
        return format!(
            "define the stream with PLUGIN_STREAM({stream}, begin, feed, end) from wasm_plugin_v2.h: \
             `int begin(void)`, `int feed(int input_len)`, `int end(void)`"
        );
    }
    if name.starts_with("plugin_") {
        return "declare the buffers with PLUGIN_BUFFERS(input_capacity, output_capacity) from wasm_plugin_v2.h, \
                which defines the four buffer functions as `int (void)`"
            .into();
    }
    match entry_point(name) {
        Some(prototype) => format!("define `{prototype}` with PLUGIN_EXPORT({name}) from wasm_plugin.h"),
        None => "export only `init`, `process` and `cleanup`".into(),
    }
}

/// How to get rid of an export a v2 plugin should not have.
fn unexpected_v2_export(name: &str, kind: ExternKind, cause: ExportCause) -> String {
    const ALLOWED: &str = "a v2 plugin exports only `memory`, `init`, `cleanup`, the four buffer functions, \
                           `fn_<name>` functions and `stream_<name>_*` trios";
    match (cause, kind) {
        (ExportCause::ExportAll, _) => {
            format!("drop `-Wl,--export-all`: it exports every function and every linker symbol; {ALLOWED}")
        }
        (ExportCause::ExportDynamic, _) => format!(
            "drop `-Wl,--export-dynamic`: with default symbol visibility it exports every non-static function and \
             variable; {ALLOWED}; or declare `{name}` static"
        ),
        (ExportCause::Unknown, ExternKind::Func) => format!(
            "{ALLOWED}: drop `-Wl,--export={name}` or the export_name/PLUGIN_EXPORT attribute on `{name}`; if you \
             link with `-Wl,--export-dynamic`, declare `{name}` static; {OTHER_LANGUAGES_EXPORTS}"
        ),
        (ExportCause::Unknown, ExternKind::Global) if name == "__stack_pointer" => STACK_POINTER_EXPORT.into(),
        (ExportCause::Unknown, ExternKind::Memory) => {
            "export the linear memory only as `memory` (wasm-ld's default)".into()
        }
        (ExportCause::Unknown, ExternKind::Table) => {
            format!("drop `-Wl,--export-table` (or `-Wl,--export={name}`): the table stays internal by default")
        }
        (ExportCause::Unknown, _) => format!("drop `-Wl,--export={name}`"),
    }
}

/// The C prototype of an entry point, or `None` if `name` is not one.
fn entry_point(name: &str) -> Option<&'static str> {
    match name {
        "init" => Some("int init(void)"),
        "process" => Some("int process(int input)"),
        "cleanup" => Some("int cleanup(void)"),
        _ => None,
    }
}

/// `v1, v2`.
fn list(versions: &[u32]) -> String {
    versions.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ")
}

/// `a (#1) -> b (#2) -> a (#1)`: the cycle with its first function repeated at the end, so
/// it reads as the path of calls it is.
fn cycle_text(cycle: &[FunctionRef]) -> String {
    cycle.iter().chain(cycle.first()).map(ToString::to_string).collect::<Vec<_>>().join(" -> ")
}

#[cfg(test)]
mod tests {
    use super::AbiViolation;

    /// The backticked words in the column headed `column` of the first Markdown table in
    /// `text`: the codes that a table of rules names.
    fn backticked_in_column<'a>(text: &'a str, column: &str) -> Vec<&'a str> {
        let cells = |row: &'a str| row.trim().trim_matches('|').split('|').map(str::trim).collect::<Vec<_>>();
        let mut rows = text.lines().skip_while(|line| !line.starts_with('|')).take_while(|line| line.starts_with('|'));
        let header = cells(rows.next().expect("the text holds a table"));
        let index = header.iter().position(|cell| *cell == column).unwrap_or_else(|| panic!("no column {column:?}"));
        // The first row after the header is the `|---|` line.
        rows.skip(1).flat_map(move |row| cells(row)[index].split('`').skip(1).step_by(2)).collect()
    }

    /// Asserts that the table names every rule's code and nothing else in backticks.
    fn assert_table_lists_every_code(document: &str, listed: &[&str]) {
        let unknown: Vec<_> = listed.iter().filter(|code| !AbiViolation::CODES.contains(code)).collect();
        assert!(unknown.is_empty(), "{document}'s table of rules names codes no rule has: {unknown:?}");
        let missing: Vec<_> = AbiViolation::CODES.iter().filter(|code| !listed.contains(code)).collect();
        assert!(missing.is_empty(), "{document}'s table of rules lacks the codes {missing:?}");
    }

    #[test]
    fn every_code_is_declared_once() {
        let mut codes = AbiViolation::CODES.to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), AbiViolation::CODES.len(), "two rules share a code");
    }

    #[test]
    fn abi_md_lists_every_rule() {
        let abi_md = include_str!("../../../ABI.md");
        let (_, rules) = abi_md.split_once("## The rules, and why").expect("ABI.md has a section on the rules");
        assert_table_lists_every_code("ABI.md", &backticked_in_column(rules, "Violation code(s)"));
    }

    #[test]
    fn the_checker_documentation_lists_every_rule() {
        let docs: String = include_str!("mod.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("//!"))
            .map(|line| format!("{}\n", line.trim_start()))
            .collect();
        assert_table_lists_every_code("check/mod.rs", &backticked_in_column(&docs, "code"));
    }
}
