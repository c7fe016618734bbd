//! The values a violation carries besides its location: WebAssembly value types and
//! signatures, what kind of item an export is and which linker flag made it, and where a
//! floating-point type appears.

use std::fmt;

use serde::{Serialize, Serializer};

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
