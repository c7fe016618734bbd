//! Where in a module a violation is: a [`Location`], and the [`FunctionRef`] that names a
//! function in locations and in recursion cycles.

use std::fmt;

use serde::Serialize;

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
