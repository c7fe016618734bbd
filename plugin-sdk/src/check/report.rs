//! The result of checking a plugin: every violation with where it is, shown to people as text
//! and to programs as JSON.

use std::fmt;

use serde::{Serialize, Serializer, ser::SerializeStruct};

use super::violation::{AbiViolation, FloatUsage, cycle_text};

/// Everything [`check`](super::check) found out about one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbiReport {
    /// The ABI version the plugin declares in its `wasm_plugin_abi` custom section, or `None`
    /// if it declares none or the section cannot be read as one version (the violations say
    /// which). A declared but unsupported version is still reported here.
    pub declared_abi_version: Option<u32>,
    /// The version the plugin was checked as, and runs as: the declared version, or
    /// [`IMPLIED_ABI_VERSION`](crate::IMPLIED_ABI_VERSION) when none is declared. `None` when
    /// the declaration cannot be read or names a version this checker does not know, which are
    /// violations.
    pub abi_version: Option<u32>,
    /// Every violation found, grouped by rule; empty for a compliant plugin.
    pub violations: Vec<Violation>,
    /// Rules broken in a way the host tolerates ([`AbiViolation::is_warning`]): the plugin is
    /// compliant and runs regardless.
    pub warnings: Vec<Violation>,
}

impl AbiReport {
    /// The report on a file that is refused before its rules can be read (not a module, or a
    /// component): this one violation and nothing else.
    pub(crate) fn refused(violation: Violation) -> Self {
        AbiReport { declared_abi_version: None, abi_version: None, violations: vec![violation], warnings: vec![] }
    }

    /// Whether the plugin follows the ABI, i.e. there are no violations. Warnings do not count.
    pub fn is_compliant(&self) -> bool {
        self.violations.is_empty()
    }

    /// The report as [`Display`](fmt::Display) shows it, with `source` (usually the plugin's
    /// path) in front of the first line: `plugins/bad.wasm: 2 ABI violations`.
    ///
    /// The report does not know where its bytes came from, so naming them is the caller's
    /// job; this is the one place that decides how.
    pub fn render(&self, source: &str) -> String {
        format!("{source}: {self}")
    }
}

/// Several lines for a plugin author: a summary, then per violation an `error[code]:` line
/// saying what is wrong and where, and a `help:` line saying how to fix it, then the warnings
/// the same way as `warning[code]:`. There is no trailing newline.
impl fmt::Display for AbiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.violations.len(), self.abi_version) {
            (0, Some(version)) => write!(f, "follows plugin ABI v{version}")?,
            (0, None) => f.write_str("follows the plugin ABI")?,
            (1, _) => f.write_str("1 ABI violation")?,
            (n, _) => write!(f, "{n} ABI violations")?,
        }
        match self.warnings.len() {
            0 => {}
            1 => f.write_str(", 1 warning")?,
            n => write!(f, ", {n} warnings")?,
        }
        for violation in self.violations.iter().chain(&self.warnings) {
            for line in violation.to_string().lines() {
                write!(f, "\n  {line}")?;
            }
        }
        Ok(())
    }
}

/// `{"abi_version": 1, "declared_abi_version": null, "compliant": true, "violations": [...],
/// "warnings": [...]}`, each violation and warning as described on [`Violation`].
impl Serialize for AbiReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut report = serializer.serialize_struct("AbiReport", 5)?;
        report.serialize_field("abi_version", &self.abi_version)?;
        report.serialize_field("declared_abi_version", &self.declared_abi_version)?;
        report.serialize_field("compliant", &self.is_compliant())?;
        report.serialize_field("violations", &self.violations)?;
        report.serialize_field("warnings", &self.warnings)?;
        report.end()
    }
}

/// One broken rule and where in the module it is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Which rule is broken, with the details.
    pub kind: AbiViolation,
    /// Where.
    pub location: Location,
}

impl Violation {
    /// The sentence saying what is wrong and where, without the code or the help.
    pub fn message(&self) -> String {
        let at = self.location.subject();
        let offset = match self.location.offset() {
            Some(offset) => format!(" at offset {offset:#x}"),
            None => String::new(),
        };
        match &self.kind {
            AbiViolation::Malformed { message } => {
                format!("the file is not a valid WebAssembly module: {message}{offset}")
            }
            AbiViolation::MissingAbiVersion => format!(
                "the plugin does not declare which plugin ABI version it was built for; it is checked \
                 and run as v{}, the original contract",
                crate::IMPLIED_ABI_VERSION
            ),
            AbiViolation::MalformedAbiSection { length } => {
                format!("{at} is {length} bytes long; it should hold one or more 4-byte version numbers")
            }
            AbiViolation::ConflictingAbiVersions { .. } | AbiViolation::UnsupportedAbiVersion { .. } => {
                self.kind.to_string()
            }
            AbiViolation::MissingExport { name } => {
                format!("the plugin does not export the function `{name}`")
            }
            AbiViolation::WrongSignature { name, expected, found } => {
                format!("`{name}` is exported with the signature {found}, but the ABI requires {expected}")
            }
            AbiViolation::UnexpectedExport { name, kind, .. } => {
                format!("the plugin exports the {kind} `{name}`, which is not part of the plugin ABI")
            }
            AbiViolation::Import { module, name } => {
                format!("the plugin imports `{module}.{name}`, but plugins may not import anything")
            }
            AbiViolation::DynamicAllocation { symbol } => match &self.location {
                Location::Import { module, .. } => {
                    format!("the plugin imports the dynamic allocator `{module}.{symbol}`")
                }
                Location::Function { name: Some(name), .. } if name == symbol => {
                    format!("{at} is a dynamic memory allocator")
                }
                _ => format!("{at} is the dynamic memory allocator `{symbol}`"),
            },
            AbiViolation::MemoryGrow => format!("{at} grows linear memory (memory.grow){offset}"),
            AbiViolation::FloatType { ty, usage } => match usage {
                FloatUsage::Param => format!("{at} takes a floating-point parameter ({ty})"),
                FloatUsage::Result => format!("{at} returns a floating-point value ({ty})"),
                FloatUsage::Local => {
                    format!("{at} has a floating-point local variable ({ty}){offset}")
                }
                FloatUsage::Global => format!("{at} holds a floating-point value ({ty})"),
                FloatUsage::TypeDefinition => {
                    format!("{at} is a function type with floating-point values ({ty})")
                }
            },
            AbiViolation::FloatInstruction { op } => {
                format!("{at} uses floating point ({op}){offset}")
            }
            AbiViolation::StartFunction => {
                format!("{at} is the module's start function, which would run before init()")
            }
            AbiViolation::UnsupportedFeature { feature } => format!(
                "{at} uses the WebAssembly feature `{feature}`{offset}, which plugin ABI v{} does \
                 not allow",
                crate::ABI_VERSION
            ),
            AbiViolation::InitialMemoryTooLarge { pages, limit } => format!(
                "{at} starts with {pages} pages ({} KiB); the limit is {limit} pages ({} KiB)",
                pages.saturating_mul(64),
                u64::from(*limit) * 64
            ),
            AbiViolation::TableTooLarge { entries, limit } => {
                format!("{at} starts with {entries} entries; the limit is {limit}")
            }
            AbiViolation::TooManyFunctions { count, limit } => {
                format!("the plugin has {count} functions; the limit is {limit}")
            }
            AbiViolation::Recursion { cycle } => match cycle.as_slice() {
                [only] => format!("function {only} calls itself{offset}"),
                _ => format!("functions call each other in a cycle: {}{offset}", cycle_text(cycle)),
            },
        }
    }
}

/// `error[code]: message` (`warning[code]:` for a warning) and an indented `help:` line.
impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = if self.kind.is_warning() { "warning" } else { "error" };
        write!(f, "{severity}[{}]: {}\n  help: {}", self.kind.code(), self.message(), self.kind.help())
    }
}

/// `{"code": "float-instruction", "message": "...", "help": "...", "location": {...},
/// "details": {...}}`, where `details` holds the variant's fields (absent for variants without
/// any) and `location` is tagged by `"kind"`.
impl Serialize for Violation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            kind: &'a AbiViolation,
            message: String,
            help: String,
            location: &'a Location,
        }
        Json { kind: &self.kind, message: self.message(), help: self.kind.help(), location: &self.location }
            .serialize(serializer)
    }
}

/// Where in the module a violation is. Indices are WebAssembly index spaces, which count
/// imported items first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Location {
    /// The module as a whole (something is missing, or a count is too high).
    Module,
    /// A byte offset in the file that belongs to no more specific item.
    Offset { offset: usize },
    /// An export, by name.
    Export { name: String },
    /// An import, by module and field name.
    Import { module: String, name: String },
    /// A function; `name` comes from the `name` section or, failing that, from an export, and
    /// `offset` is the byte offset in the file of the offending instruction (or of the
    /// function's local declarations), when there is one.
    Function { index: u32, name: Option<String>, offset: Option<usize> },
    /// A global variable.
    Global { index: u32 },
    /// A linear memory.
    Memory { index: u32 },
    /// A table.
    Table { index: u32 },
    /// An entry of the type section.
    Type { index: u32 },
    /// A byte offset inside a standard section (such as `memory` or `tag`) where no more
    /// specific item is known.
    Section { name: String, offset: usize },
    /// A custom section, by name, at the byte offset of its contents.
    CustomSection { name: String, offset: usize },
}

impl Location {
    pub(crate) fn function(function: &FunctionRef, offset: Option<usize>) -> Self {
        Location::Function { index: function.index, name: function.name.clone(), offset }
    }

    /// What is at this location, as the subject of a sentence: `function `process` (#3)`.
    pub fn subject(&self) -> String {
        match self {
            Location::Module | Location::Offset { .. } => "the module".into(),
            Location::Export { name } => format!("export `{name}`"),
            Location::Import { module, name } => format!("import `{module}.{name}`"),
            Location::Function { index, name, .. } => {
                format!("function {}", FunctionRef { index: *index, name: name.clone() })
            }
            Location::Global { index } => format!("global #{index}"),
            Location::Memory { index } => format!("memory #{index}"),
            Location::Table { index } => format!("table #{index}"),
            Location::Type { index } => format!("type #{index}"),
            Location::Section { name, .. } => format!("the {name} section"),
            Location::CustomSection { name, .. } => format!("custom section `{name}`"),
        }
    }

    /// The byte offset in the file worth showing, if there is one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Location::Offset { offset } | Location::Section { offset, .. } => Some(*offset),
            Location::Function { offset, .. } => *offset,
            _ => None,
        }
    }
}

/// The subject, followed by ` at offset 0x1a4` when there is an offset.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.subject())?;
        if let Some(offset) = self.offset() {
            write!(f, " at offset {offset:#x}")?;
        }
        Ok(())
    }
}

/// A function, by index in the function index space and, when known, by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct FunctionRef {
    pub index: u32,
    /// From the `name` section or, failing that, from an export.
    pub name: Option<String>,
}

/// `` `name` (#3) `` or `#3`.
impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "`{name}` (#{})", self.index),
            None => write!(f, "#{}", self.index),
        }
    }
}
