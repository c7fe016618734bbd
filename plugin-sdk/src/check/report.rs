//! The result of checking a plugin: every violation with where it is, shown to people as text
//! and to programs as JSON.

use std::fmt;

use serde::{Serialize, Serializer, ser::SerializeStruct};

use super::layout::{FunctionKind, V2Layout};
use super::location::Location;
use super::violation::AbiViolation;

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
    /// Where a v2 plugin's buffers are and which functions it offers: `Some` exactly when the
    /// plugin is checked as ABI v2 and is compliant, `None` for every v1 plugin and every
    /// plugin with a violation.
    pub v2: Option<V2Layout>,
}

impl AbiReport {
    /// The report on a file that is refused before its rules can be read (not a module, or a
    /// component): this one violation and nothing else.
    pub(crate) fn refused(violation: Violation) -> Self {
        AbiReport {
            declared_abi_version: None,
            abi_version: None,
            violations: vec![violation],
            warnings: vec![],
            v2: None,
        }
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
        if let Some(layout) = &self.v2 {
            write!(f, "\n  input buffer: {}\n  output buffer: {}", layout.input, layout.output)?;
            if let Some(config) = &layout.config {
                write!(
                    f,
                    "\n  configuration buffer: {config} (configuration of up to {} bytes)",
                    config.config_room()
                )?;
            }
            let names = |kind: FunctionKind| {
                let names: Vec<&str> =
                    layout.functions.iter().filter(|f| f.kind == kind).map(|f| f.name.as_str()).collect();
                names.join(", ")
            };
            write!(f, "\n  functions: {}", names(FunctionKind::Call))?;
            let streams = names(FunctionKind::Stream);
            if !streams.is_empty() {
                write!(f, "\n  streaming functions: {streams}")?;
            }
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
/// "warnings": [...]}`, each violation and warning as described on [`Violation`]; a compliant
/// v2 plugin's report also has `"v2": {"input": {"offset", "capacity"}, "output": {...},
/// "functions": [{"name", "kind": "call" | "stream"}]}` (absent otherwise, so that v1 reports
/// stay as they were).
impl Serialize for AbiReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut report = serializer.serialize_struct("AbiReport", 6)?;
        report.serialize_field("abi_version", &self.abi_version)?;
        report.serialize_field("declared_abi_version", &self.declared_abi_version)?;
        report.serialize_field("compliant", &self.is_compliant())?;
        report.serialize_field("violations", &self.violations)?;
        report.serialize_field("warnings", &self.warnings)?;
        match &self.v2 {
            Some(layout) => report.serialize_field("v2", layout)?,
            None => report.skip_field("v2")?,
        }
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
        self.kind.message(&self.location)
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
