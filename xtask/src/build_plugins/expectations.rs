//! What a plugin's ABI check must find, given its kind and its expectation directive.

use std::collections::BTreeSet;

use anyhow::{bail, ensure};
use plugin_sdk::{AbiReport, FunctionKind};

use super::discovery::Kind;

/// Checks a report against what the plugin promises: exactly the expected violation for a
/// fixture or a fault that names one, compliance for everything else; and whether it declares
/// its ABI version: a compatibility fixture must not (it is built without the header, and the
/// check must say so with exactly the `missing-abi-version` warning), everything else must
/// (it includes the header), so no other warning is allowed.
pub(super) fn verify(kind: Kind, expect_violation: Option<&str>, report: &AbiReport) -> anyhow::Result<()> {
    let codes: BTreeSet<&str> = report.violations.iter().map(|v| v.kind.code()).collect();
    let warnings: Vec<&str> = report.warnings.iter().map(|w| w.kind.code()).collect();
    let expected_warnings: &[&str] = if kind == Kind::Compat { &["missing-abi-version"] } else { &[] };
    ensure!(
        warnings == expected_warnings,
        "expected the warnings {expected_warnings:?}, found {warnings:?}{}:\n{report}",
        if kind == Kind::Compat { " (a compatibility fixture must not include wasm_plugin.h)" } else { "" }
    );
    match expect_violation {
        None if codes.is_empty() => Ok(()),
        None => bail!("the plugin breaks the ABI:\n{report}"),
        Some(expected) if codes.len() == 1 && codes.contains(expected) => Ok(()),
        Some(expected) if codes.is_empty() => {
            bail!("expected violation `{expected}`, but the plugin is ABI-compliant")
        }
        Some(expected) => {
            let found = codes.into_iter().collect::<Vec<_>>().join(", ");
            bail!("expected only violation `{expected}`, found: {found}\n{report}")
        }
    }
}

/// The progress output's one-line verdict on a report that passed [`verify`], which leaves only
/// two cases: no violation, or the one violation the plugin expected.
pub(super) fn verdict(report: &AbiReport) -> String {
    if let Some(violation) = report.violations.first() {
        return format!("rejected as expected: {}", violation.kind.code());
    }
    if let Some(layout) = &report.v2 {
        let functions: Vec<String> = layout
            .functions
            .iter()
            .map(|f| match f.kind {
                FunctionKind::Call => f.name.clone(),
                FunctionKind::Stream => format!("{} (stream)", f.name),
            })
            .collect();
        return format!("ok (ABI v2: {})", functions.join(", "));
    }
    let version = match (report.declared_abi_version, report.abi_version) {
        (Some(declared), _) => format!("ABI v{declared}"),
        (None, Some(implied)) => format!("ABI v{implied}, implied: no version declared"),
        (None, None) => "no ABI version".to_owned(),
    };
    format!("ok ({version})")
}

#[cfg(test)]
mod tests {
    use crate::test_support::{COMPLIANT_C, Harness, scratch_plugin};

    #[test]
    fn a_compat_fixture_that_declares_a_version_fails_the_build() {
        let harness = Harness::new();
        // A hand-written marker, so that the file builds without the header.
        let source = "__attribute__((export_name(\"init\"))) int init(void) { return 0; }\n\
            __attribute__((export_name(\"process\"))) int process(int x) { return x; }\n\
            __attribute__((export_name(\"cleanup\"))) int cleanup(void) { return 0; }\n\
            __asm__(\".section .custom_section.wasm_plugin_abi,\\\"\\\",@\\n.int32 1\\n.text\\n\");\n";
        let (_dir, plugin) = scratch_plugin("compat/marked.c", source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("expected the warnings [\"missing-abi-version\"], found []"), "{err}");
    }

    #[test]
    fn a_fault_is_held_to_its_expectation_both_ways() {
        let harness = Harness::new();
        let source = harness.float_fixture_with("// expect-abi: compliant");
        let (_dir, plugin) = scratch_plugin("faults/not-compliant.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("the plugin breaks the ABI") && err.contains("error[float-instruction]"), "{err}");

        let source = format!("// expect-violation: recursion\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("faults/harmless.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("expected violation `recursion`, but the plugin is ABI-compliant"), "{err}");

        let source = format!("// expect-abi: compliant\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("faults/compliant.c", &source);
        let built = harness.build(&plugin).unwrap();
        assert!(built.report.is_compliant());
        assert_eq!(built.output, harness.fixtures.path().join("faults/compliant.wasm"));
    }

    #[test]
    fn a_fixture_that_breaks_no_rule_fails_the_build() {
        let harness = Harness::new();
        let source = format!("// expect-violation: float-instruction\n{COMPLIANT_C}");
        let (_dir, plugin) = scratch_plugin("invalid/innocent.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("but the plugin is ABI-compliant"), "{err}");
    }

    #[test]
    fn a_fixture_that_breaks_another_rule_fails_the_build() {
        let harness = Harness::new();
        let source = harness.float_fixture_with("// expect-violation: memory-grow");
        let (_dir, plugin) = scratch_plugin("invalid/mislabelled.c", &source);
        let err = format!("{:#}", harness.build(&plugin).unwrap_err());
        assert!(err.contains("expected only violation `memory-grow`, found: float-instruction"), "{err}");
    }
}
