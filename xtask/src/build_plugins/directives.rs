//! The directives in the leading comments of a plugin's source (its extra clang flags, compat
//! variants and what its ABI check must find), and which kinds of plugin may carry which.

use std::path::Path;

use anyhow::{Context, bail, ensure};

use super::discovery::{COMPAT_DIR, FAULT_DIR, FIXTURE_DIR, Kind, Language, check_name};

/// The directives at the top of a source file (see the module documentation).
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Directives {
    pub(super) flags: Vec<String>,
    pub(super) expect: Option<Expectation>,
    pub(super) variants: Vec<Variant>,
}

/// One `plugin-variant:` line: a named build with extra clang arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Variant {
    pub(super) name: String,
    pub(super) flags: Vec<String>,
}

/// What a fixture or fault states the ABI check must find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expectation {
    /// `expect-abi: compliant`: no violation at all.
    Compliant,
    /// `expect-violation: <code>`: this violation and no other.
    Violation(String),
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Compliant => f.write_str("compliant"),
            Self::Violation(code) => f.write_str(code),
        }
    }
}

impl Directives {
    pub(super) fn parse(source: &str, language: Language) -> anyhow::Result<Self> {
        let marker = language.comment_marker();
        let mut directives = Self::default();
        for (index, line) in source.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let Some(comment) = line.strip_prefix(marker) else {
                break;
            };
            let comment = comment.trim();
            let line_no = index + 1;
            if let Some(flags) = comment.strip_prefix("plugin-flags:") {
                ensure!(language != Language::Wat, "line {line_no}: plugin-flags has no meaning for a .wat file");
                directives.flags.extend(flags.split_whitespace().map(str::to_owned));
            } else if let Some(code) = comment.strip_prefix("expect-violation:") {
                let code = code.trim();
                ensure!(!code.is_empty(), "line {line_no}: expect-violation needs a violation code");
                directives.expect_once(Expectation::Violation(code.to_owned()), line_no)?;
            } else if let Some(variant) = comment.strip_prefix("plugin-variant:") {
                ensure!(language != Language::Wat, "line {line_no}: plugin-variant has no meaning for a .wat file");
                let mut words = variant.split_whitespace().map(str::to_owned);
                let name = words.next().with_context(|| format!("line {line_no}: plugin-variant needs a name"))?;
                check_name(&name, Path::new(&format!("line {line_no}: plugin-variant")))?;
                ensure!(
                    directives.variants.iter().all(|v| v.name != name),
                    "line {line_no}: a second plugin-variant named {name:?}"
                );
                directives.variants.push(Variant { name, flags: words.collect() });
            } else if let Some(verdict) = comment.strip_prefix("expect-abi:") {
                // Only one verdict exists: a plugin that breaks a rule names the rule instead,
                // which asserts more than a bare "violating" would.
                ensure!(
                    verdict.trim() == "compliant",
                    "line {line_no}: expect-abi takes only `compliant`, not {:?}; a plugin that breaks \
                     a rule names it with `expect-violation: <code>`",
                    verdict.trim()
                );
                directives.expect_once(Expectation::Compliant, line_no)?;
            } else if let Some((word, _)) = comment.split_once(':') {
                let looks_like_directive =
                    (word.starts_with("plugin-") || word.starts_with("expect-")) && !word.contains(char::is_whitespace);
                ensure!(
                    !looks_like_directive,
                    "line {line_no}: unknown directive `{word}:` (known: plugin-flags, plugin-variant, \
                     expect-violation, expect-abi)"
                );
            }
        }
        Ok(directives)
    }

    /// Whether a plugin of `kind` may carry these directives: `plugin-variant` is for
    /// compatibility fixtures only, and each kind states exactly the expectation the module
    /// documentation gives it.
    pub(super) fn check_allowed_for(&self, kind: Kind) -> anyhow::Result<()> {
        ensure!(
            self.variants.is_empty() || kind == Kind::Compat,
            "only compatibility fixtures (in plugins/{COMPAT_DIR}/) may have a `plugin-variant` comment"
        );
        match (kind, &self.expect) {
            (Kind::Example | Kind::Compat, None)
            | (Kind::Fixture, Some(Expectation::Violation(_)))
            | (Kind::Fault, Some(_)) => Ok(()),
            (Kind::Compat, Some(_)) => bail!(
                "a compatibility fixture (in plugins/{COMPAT_DIR}/) has no expectation comment: it must \
                 pass the ABI check as v1, with only the warning that it declares no version"
            ),
            (Kind::Fixture, None) => bail!(
                "this negative fixture has no `expect-violation: <code>` comment at its top; \
                 a fixture without an assertion tests nothing"
            ),
            (Kind::Fault, None) => bail!(
                "this fault plugin has no `expect-violation: <code>` or `expect-abi: compliant` comment at \
                 its top; the host's tests rely on knowing whether the ABI check would refuse it"
            ),
            (Kind::Example, Some(Expectation::Violation(_))) => bail!(
                "only negative fixtures (in plugins/{FIXTURE_DIR}/) and fault plugins (in plugins/{FAULT_DIR}/) \
                 may have an `expect-violation` comment"
            ),
            (Kind::Example | Kind::Fixture, Some(Expectation::Compliant)) => bail!(
                "only fault plugins (in plugins/{FAULT_DIR}/) may have an `expect-abi` comment: an example is \
                 compliant anyway, and a negative fixture must name the rule it breaks"
            ),
        }
    }

    /// The violation the plugin must produce, if it states one; `None` means it must comply.
    pub(super) fn expected_violation(&self) -> Option<&str> {
        match &self.expect {
            Some(Expectation::Violation(code)) => Some(code),
            Some(Expectation::Compliant) | None => None,
        }
    }

    fn expect_once(&mut self, expectation: Expectation, line_no: usize) -> anyhow::Result<()> {
        ensure!(
            self.expect.is_none(),
            "line {line_no}: a second expectation; a plugin states exactly one, either one \
             `expect-violation` (it breaks exactly one rule) or `expect-abi: compliant`"
        );
        self.expect = Some(expectation);
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::test_support::{COMPLIANT_C, Harness, scratch_plugin};

    #[test]
    fn directives_are_read_from_the_leading_comments_only() {
        let source = "// what this does\n\n// plugin-flags: -O1 -fno-inline\n// plugin-flags: -DX=1\n\
                      // expect-violation: recursion\n#include <wasm_plugin.h>\n// plugin-flags: -O3\n";
        let directives = Directives::parse(source, Language::C).unwrap();
        assert_eq!(
            directives,
            Directives {
                flags: vec!["-O1".into(), "-fno-inline".into(), "-DX=1".into()],
                expect: Some(Expectation::Violation("recursion".into())),
                variants: vec![],
            }
        );
        let wat = ";; expect-violation: start-function\n(module)\n";
        assert_eq!(
            Directives::parse(wat, Language::Wat).unwrap().expect,
            Some(Expectation::Violation("start-function".into()))
        );
        let wat = ";; expect-abi: compliant\n(module)\n";
        assert_eq!(Directives::parse(wat, Language::Wat).unwrap().expect, Some(Expectation::Compliant));
    }

    #[test]
    fn malformed_directives_are_errors() {
        for (source, message) in [
            ("// plugin-flag: -O1\n", "unknown directive `plugin-flag:`"),
            ("// expect-violation:\n", "needs a violation code"),
            ("// expect-violation: a\n// expect-violation: b\n", "a second expectation"),
            ("// expect-abi: compliant\n// expect-violation: b\n", "a second expectation"),
            ("// expect-violation: a\n// expect-abi: compliant\n", "a second expectation"),
            ("// expect-abi: violating\n", "expect-abi takes only `compliant`, not \"violating\""),
            ("// expect-abi:\n", "expect-abi takes only `compliant`"),
            ("// expect-abis: compliant\n", "unknown directive `expect-abis:`"),
        ] {
            let err = Directives::parse(source, Language::C).unwrap_err().to_string();
            assert!(err.contains(message), "{source:?}: {err}");
        }
        let err = Directives::parse(";; plugin-flags: -O1\n", Language::Wat).unwrap_err().to_string();
        assert!(err.contains("no meaning for a .wat file"), "{err}");
    }

    #[test]
    fn plugin_variant_is_only_for_compat_fixtures() {
        let harness = Harness::new();
        let source = format!("// plugin-variant: small -Oz\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("varied/varied.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("only compatibility fixtures"), "{err}");
    }

    #[test]
    fn a_fixture_without_an_expectation_fails_the_build() {
        let harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("invalid/unasserted.c", COMPLIANT_C);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("no `expect-violation"), "{err}");
    }

    #[test]
    fn a_fault_without_an_expectation_fails_the_build() {
        let harness = Harness::new();
        let (_dir, plugin) = scratch_plugin("faults/unasserted.c", COMPLIANT_C);
        assert_eq!(plugin.kind, Kind::Fault);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("no `expect-violation: <code>` or `expect-abi: compliant`"), "{err}");
        assert_eq!(fs::read_dir(harness.out.path()).unwrap().count(), 0, "nothing was built");
    }

    #[test]
    fn expect_abi_is_only_for_faults() {
        let harness = Harness::new();
        let source = format!("// expect-abi: compliant\n{COMPLIANT_C}");
        for path in ["compliant/compliant.c", "invalid/compliant.c"] {
            let (_dir, plugin) = scratch_plugin(path, &source);
            let err = format!("{:#}", harness.build(&plugin).unwrap_err());
            assert!(err.contains("only fault plugins (in plugins/faults/) may have an `expect-abi`"), "{path}: {err}");
        }
    }
}
