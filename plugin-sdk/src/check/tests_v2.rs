//! Tests of the ABI v2 rules on small modules written in WAT: the interface (exports, buffers,
//! functions), the layout a compliant plugin reports, and v1's rules still holding.

use super::*;

/// The ABI version declaration `wasm_plugin_v2.h` produces.
const V2: &str = r#"(@custom "wasm_plugin_abi" "\02\00\00\00")"#;

/// The lifecycle functions and a 2-page (128 KiB) exported memory.
const LIFECYCLE: &str = r#"
  (memory (export "memory") 2)
  (func (export "init") (result i32) (i32.const 0))
  (func (export "cleanup") (result i32) (i32.const 0))
"#;

/// Buffer functions as clang writes them at -O2: 4 KiB of input at 0x400, 4 KiB of output at
/// 0x1400.
const BUFFERS: &str = r#"
  (func (export "plugin_input_ptr") (result i32) (i32.const 0x400))
  (func (export "plugin_input_capacity") (result i32) (i32.const 0x1000))
  (func (export "plugin_output_ptr") (result i32) (i32.const 0x1400))
  (func (export "plugin_output_capacity") (result i32) (i32.const 0x1000))
"#;

/// One function and one stream.
const FUNCTIONS: &str = r#"
  (func (export "fn_upper") (param i32) (result i32) (local.get 0))
  (func (export "stream_sum_begin") (result i32) (i32.const 0))
  (func (export "stream_sum_feed") (param i32) (result i32) (i32.const 0))
  (func (export "stream_sum_end") (result i32) (i32.const 8))
"#;

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|err| panic!("test WAT does not parse: {err}\n{wat}"))
}

/// A v2 module made of these parts.
fn v2(lifecycle: &str, buffers: &str, functions: &str) -> Vec<u8> {
    wasm(&format!("(module {V2} {lifecycle} {buffers} {functions})"))
}

/// The compliant v2 plugin, with `replace` applied to its text and `extra` added.
fn v2_with(replace: &[(&str, &str)], extra: &str) -> Vec<u8> {
    let mut text = format!("{LIFECYCLE} {BUFFERS} {FUNCTIONS} {extra}");
    for (from, to) in replace {
        assert!(text.contains(from), "the compliant plugin has no {from:?}");
        text = text.replace(from, to);
    }
    v2(&text, "", "")
}

fn codes(report: &AbiReport) -> Vec<&'static str> {
    report.violations.iter().map(|v| v.kind.code()).collect()
}

fn violations(wasm: &[u8]) -> Vec<(AbiViolation, Location)> {
    check(wasm).violations.into_iter().map(|v| (v.kind, v.location)).collect()
}

fn export(name: &str) -> Location {
    Location::Export { name: name.into() }
}

// ---------------------------------------------------------------------------------------------
// A compliant plugin and its layout

#[test]
fn a_compliant_v2_plugin_reports_its_layout() {
    let report = check(&v2(LIFECYCLE, BUFFERS, FUNCTIONS));
    assert!(report.is_compliant(), "{report}");
    assert_eq!((report.declared_abi_version, report.abi_version), (Some(2), Some(2)));
    assert_eq!(report.warnings, vec![]);
    let layout = report.v2.expect("a compliant v2 plugin has a layout");
    assert_eq!(layout.input, Buffer { offset: 0x400, capacity: 0x1000 });
    assert_eq!(layout.output, Buffer { offset: 0x1400, capacity: 0x1000 });
    assert_eq!(
        layout.functions,
        [
            PluginFunction { name: "sum".into(), kind: FunctionKind::Stream },
            PluginFunction { name: "upper".into(), kind: FunctionKind::Call },
        ]
    );
    assert_eq!(layout.function("upper").map(PluginFunction::exports), Some(vec!["fn_upper".to_owned()]));
    assert_eq!(layout.function("lower"), None);
}

#[test]
fn buffer_functions_as_clang_writes_them_at_o0_are_constant() {
    let o0 = r#"
      (func (export "plugin_input_ptr") (result i32) (local i32)
        (local.set 0 (i32.const 1024)) (local.get 0) (return))
      (func (export "plugin_input_capacity") (result i32) (local i32)
        (local.set 0 (i32.const 65536)) (local.get 0) (return))
      (func (export "plugin_output_ptr") (result i32) (local i32)
        (local.set 0 (i32.const 66560)) (local.get 0) (return))
      (func (export "plugin_output_capacity") (result i32) (local i32)
        (local.set 0 (i32.const 65536)) (local.get 0) (return))"#;
    let report = check(&v2(&LIFECYCLE.replace(r#"(export "memory") 2)"#, r#"(export "memory") 3)"#), o0, FUNCTIONS));
    assert!(report.is_compliant(), "{report}");
    let layout = report.v2.unwrap();
    assert_eq!((layout.input.offset, layout.output.end()), (1024, 66560 + 65536));
}

#[test]
fn v1_plugins_have_no_layout_and_no_v2_in_json() {
    let v1 = wasm(
        r#"(module (@custom "wasm_plugin_abi" "\01\00\00\00")
             (func (export "init") (result i32) (i32.const 0))
             (func (export "process") (param i32) (result i32) (local.get 0))
             (func (export "cleanup") (result i32) (i32.const 0)))"#,
    );
    let report = check(&v1);
    assert!(report.is_compliant() && report.v2.is_none());
    let json = serde_json::to_value(&report).unwrap();
    assert!(json.get("v2").is_none(), "{json}");
    // A non-compliant v2 plugin has none either: the host must not rely on it.
    let broken = check(&v2_with(&[], r#"(func (param f32))"#));
    assert_eq!((broken.abi_version, broken.v2), (Some(2), None));
}

#[test]
fn a_v2_layout_is_never_implied() {
    // A v2-shaped plugin without a marker is a v1 plugin with many unexpected exports.
    let bytes = wasm(&format!("(module {LIFECYCLE} {BUFFERS} {FUNCTIONS})"));
    let report = check(&bytes);
    assert_eq!(report.abi_version, Some(1));
    assert!(report.v2.is_none());
    assert!(codes(&report).iter().all(|code| ["unexpected-export", "missing-export"].contains(code)), "{report}");
}

#[test]
fn report_text_and_json_snapshots() {
    let report = check(&v2(LIFECYCLE, BUFFERS, FUNCTIONS));
    insta::assert_snapshot!("v2_report_text", report.render("plugins/text.wasm"));
    insta::assert_json_snapshot!("v2_report_json", report);
}

// ---------------------------------------------------------------------------------------------
// The interface

#[test]
fn a_v2_plugin_may_not_export_process() {
    let bytes = v2_with(&[], r#"(func (export "process") (param i32) (result i32) (local.get 0))"#);
    assert_eq!(violations(&bytes), vec![(AbiViolation::V1ExportInV2 { name: "process".into() }, export("process"))]);
}

#[test]
fn function_names_are_checked() {
    for name in ["fn_Upper", "fn_", "fn_1st", "stream_sum_start", "stream_", &format!("fn_{}", "x".repeat(33))] {
        let bytes = v2_with(&[], &format!(r#"(func (export "{name}") (param i32) (result i32) (local.get 0))"#));
        assert_eq!(
            violations(&bytes),
            vec![(AbiViolation::InvalidFunctionName { name: name.into() }, export(name))],
            "{name}"
        );
    }
    let longest = format!("fn_{}", "x".repeat(32));
    let bytes = v2_with(&[], &format!(r#"(func (export "{longest}") (param i32) (result i32) (local.get 0))"#));
    assert_eq!(violations(&bytes), vec![]);
}

#[test]
fn the_memory_must_be_exported() {
    let bytes = v2_with(&[(r#"(memory (export "memory") 2)"#, "(memory 2)")], "");
    assert_eq!(violations(&bytes), vec![(AbiViolation::MissingMemoryExport, Location::Module)]);
    // Under another name it is also an unexpected export.
    let bytes = v2_with(&[(r#"(memory (export "memory") 2)"#, r#"(memory (export "heap") 2)"#)], "");
    assert_eq!(codes(&check(&bytes)), ["unexpected-export", "missing-memory-export"]);
}

#[test]
fn every_buffer_function_must_be_exported() {
    let bytes = v2_with(&[(r#"(func (export "plugin_output_capacity") (result i32) (i32.const 0x1000))"#, "")], "");
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::MissingBufferExport { name: "plugin_output_capacity".into() }, Location::Module)]
    );
}

#[test]
fn init_and_cleanup_are_required_as_in_v1() {
    let bytes = v2_with(&[(r#"(func (export "cleanup") (result i32) (i32.const 0))"#, "")], "");
    assert_eq!(violations(&bytes), vec![(AbiViolation::MissingExport { name: "cleanup".into() }, Location::Module)]);
}

#[test]
fn at_least_one_function() {
    // A stream alone is not enough: every v2 plugin can be called once, with one input.
    let bytes = v2(LIFECYCLE, BUFFERS, &FUNCTIONS.replace(r#"(export "fn_upper")"#, ""));
    assert_eq!(violations(&bytes), vec![(AbiViolation::NoFunctions, Location::Module)]);
}

#[test]
fn a_stream_is_all_three_or_none() {
    let bytes = v2_with(&[(r#"(func (export "stream_sum_end") (result i32) (i32.const 8))"#, "")], "");
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::IncompleteStream { name: "sum".into(), missing: vec!["stream_sum_end".into()] },
            export("stream_sum_begin")
        )]
    );
    let only_feed = v2_with(&[], r#"(func (export "stream_x_feed") (param i32) (result i32) (i32.const 0))"#);
    assert_eq!(
        violations(&only_feed),
        vec![(
            AbiViolation::IncompleteStream {
                name: "x".into(),
                missing: vec!["stream_x_begin".into(), "stream_x_end".into()]
            },
            export("stream_x_feed")
        )]
    );
}

#[test]
fn a_name_is_a_function_or_a_stream_not_both() {
    let bytes = v2_with(&[], r#"(func (export "fn_sum") (param i32) (result i32) (local.get 0))"#);
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::DuplicateFunctionName { name: "sum".into() }, export("fn_sum"))]
    );
}

#[test]
fn signatures_are_checked() {
    let bytes = v2_with(
        &[
            (
                r#"(func (export "fn_upper") (param i32) (result i32) (local.get 0))"#,
                r#"(func (export "fn_upper") (param i64) (result i32) (i32.const 0))"#,
            ),
            (r#"(export "stream_sum_end") (result i32) (i32.const 8)"#, r#"(export "stream_sum_end")"#),
            (r#"(export "plugin_input_ptr") (result i32)"#, r#"(export "plugin_input_ptr") (param i32) (result i32)"#),
        ],
        "",
    );
    let found: Vec<_> = check(&bytes)
        .violations
        .into_iter()
        .map(|v| match v.kind {
            AbiViolation::WrongSignature { name, expected, found } => format!("{name}: {expected} not {found}"),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        found,
        [
            "plugin_input_ptr: [] -> [i32] not [i32] -> [i32]",
            "fn_upper: [i32] -> [i32] not [i64] -> [i32]",
            "stream_sum_end: [] -> [i32] not [] -> []",
        ]
    );
}

#[test]
fn other_exports_are_unexpected_with_v2_advice() {
    let bytes = v2_with(&[], r#"(func (export "helper") (result i32) (i32.const 1))"#);
    let report = check(&bytes);
    assert_eq!(codes(&report), ["unexpected-export"]);
    let help = report.violations[0].kind.help();
    assert!(help.contains("`fn_<name>` functions") && !help.contains("`process`"), "{help}");
}

// ---------------------------------------------------------------------------------------------
// The buffers

#[test]
fn buffer_functions_must_be_constant() {
    let bytes = v2_with(
        &[(
            r#"(func (export "plugin_input_capacity") (result i32) (i32.const 0x1000))"#,
            r#"(global $size (mut i32) (i32.const 0x1000))
               (func (export "plugin_input_capacity") (result i32) (global.get $size))"#,
        )],
        "",
    );
    match violations(&bytes).as_slice() {
        [(AbiViolation::BufferNotConstant { name, op }, Location::Function { name: Some(function), offset, .. })] => {
            assert_eq!(
                (name.as_str(), op.as_str(), function.as_str()),
                ("plugin_input_capacity", "global.get", name.as_str())
            );
            assert!(offset.is_some());
        }
        other => panic!("expected buffer-not-constant, got {other:?}"),
    }
}

#[test]
fn an_empty_buffer() {
    let bytes = v2_with(
        &[(
            r#"(export "plugin_output_capacity") (result i32) (i32.const 0x1000)"#,
            r#"(export "plugin_output_capacity") (result i32) (i32.const 0)"#,
        )],
        "",
    );
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::EmptyBuffer { buffer: BufferKind::Output }, export("plugin_output_capacity"))]
    );
}

#[test]
fn a_buffer_over_the_limit_is_reported_once() {
    // 2 MiB does not fit in 2 pages either; the capacity is the one mistake reported.
    let bytes = v2_with(
        &[(
            r#"(i32.const 0x1000))
  (func (export "plugin_output_ptr")"#,
            r#"(i32.const 0x200000))
  (func (export "plugin_output_ptr")"#,
        )],
        "",
    );
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::BufferCapacityTooLarge { buffer: BufferKind::Input, capacity: 0x200000, limit: 0x100000 },
            export("plugin_input_capacity")
        )]
    );
    // A negative size reads as more than 2 GiB.
    let bytes = v2_with(
        &[(
            r#"(i32.const 0x1000))
  (func (export "plugin_output_ptr")"#,
            r#"(i32.const -1))
  (func (export "plugin_output_ptr")"#,
        )],
        "",
    );
    assert_eq!(codes(&check(&bytes)), ["buffer-capacity-too-large"]);
    // The limit is configurable, and then the memory is what is too small.
    let limits = AbiLimits { max_buffer_capacity: 4 << 20, ..AbiLimits::default() };
    let bytes = v2_with(
        &[(
            r#"(i32.const 0x1000))
  (func (export "plugin_output_ptr")"#,
            r#"(i32.const 0x200000))
  (func (export "plugin_output_ptr")"#,
        )],
        "",
    );
    assert_eq!(codes(&check_with(&bytes, &limits)), ["buffer-outside-memory"]);
}

#[test]
fn buffers_must_lie_inside_the_initial_memory() {
    // 2 pages end at 0x20000; this buffer ends at 0x21000.
    let bytes = v2_with(
        &[
            (r#"(i32.const 0x1400)"#, r#"(i32.const 0x1f000)"#),
            (
                r#"(export "plugin_output_capacity") (result i32) (i32.const 0x1000)"#,
                r#"(export "plugin_output_capacity") (result i32) (i32.const 0x2000)"#,
            ),
        ],
        "",
    );
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::BufferOutsideMemory {
                buffer: BufferKind::Output,
                offset: 0x1f000,
                capacity: 0x2000,
                memory_bytes: 0x20000
            },
            export("plugin_output_ptr")
        )]
    );
    // An address near 4 GiB does not wrap around to the start of memory.
    let bytes = v2_with(&[(r#"(i32.const 0x400)"#, r#"(i32.const -16)"#)], "");
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::BufferOutsideMemory {
                buffer: BufferKind::Input,
                offset: 0xffff_fff0,
                capacity: 0x1000,
                memory_bytes: 0x20000
            },
            export("plugin_input_ptr")
        )]
    );
    // Exactly up to the end is inside.
    let bytes = v2_with(&[(r#"(i32.const 0x1400)"#, r#"(i32.const 0x1f000)"#)], "");
    assert!(check(&bytes).is_compliant());
}

#[test]
fn buffers_must_not_overlap() {
    let bytes = v2_with(&[(r#"(i32.const 0x1400)"#, r#"(i32.const 0x1000)"#)], "");
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::BuffersOverlap {
                input: Buffer { offset: 0x400, capacity: 0x1000 },
                output: Buffer { offset: 0x1000, capacity: 0x1000 },
            },
            Location::Module
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// v1's rules still hold

#[test]
fn every_v1_rule_still_holds() {
    let lifecycle = format!(r#"(import "env" "log" (func $log (param i32))) {LIFECYCLE}"#);
    let bytes = v2(
        &lifecycle,
        BUFFERS,
        &format!(
            r#"{FUNCTIONS}
           (func $grow (result i32) (memory.grow (i32.const 1)))
           (func $float (param f64))
           (func $loop (call $loop))
           (start $loop)"#
        ),
    );
    assert_eq!(
        codes(&check(&bytes)),
        ["import", "start-function", "float-type", "memory-grow", "recursion"],
        "{}",
        check(&bytes)
    );
}

#[test]
fn unsupported_features_name_v2() {
    let bytes = v2_with(&[], "(func (result v128) (v128.const i64x2 0 0))");
    let report = check(&bytes);
    assert_eq!(codes(&report), ["unsupported-feature"]);
    assert!(report.violations[0].message().ends_with("which plugin ABI v2 does not allow"), "{report}");
}

#[test]
fn a_v2_plugin_may_export_rustcs_linker_globals() {
    let bytes = v2_with(
        &[],
        r#"(global (export "__heap_base") i32 (i32.const 0x2400))
           (global (export "__data_end") i32 (i32.const 0x2400))"#,
    );
    let report = check(&bytes);
    assert!(report.violations.is_empty() && report.warnings.is_empty(), "{report:?}");
    assert!(report.v2.is_some(), "a compliant v2 plugin reports its layout");
}

// ---------------------------------------------------------------------------------------------
// The optional configuration buffer

/// A configuration buffer of 0x100 bytes (its length word and 252 bytes) at 0x2400.
const CONFIG: &str = r#"
  (func (export "plugin_config_ptr") (result i32) (i32.const 0x2400))
  (func (export "plugin_config_capacity") (result i32) (i32.const 0x100))
"#;

#[test]
fn a_configuration_buffer_is_reported_in_the_layout() {
    let report = check(&v2_with(&[], CONFIG));
    assert!(report.is_compliant(), "{report}");
    let layout = report.v2.expect("layout");
    assert_eq!(layout.config, Some(Buffer { offset: 0x2400, capacity: 0x100 }));
    assert_eq!(layout.config.unwrap().config_room(), 0x100 - 4);
    let json = serde_json::to_value(&layout).unwrap();
    assert_eq!(json["config"], serde_json::json!({ "offset": 0x2400, "capacity": 0x100 }));
    // Without the declaration the layout has no `config`, and its JSON is as it always was.
    let plain = check(&v2(LIFECYCLE, BUFFERS, FUNCTIONS)).v2.expect("layout");
    assert_eq!(plain.config, None);
    assert!(serde_json::to_value(&plain).unwrap().get("config").is_none());
}

#[test]
fn half_a_configuration_buffer_is_refused() {
    let half = r#"(func (export "plugin_config_ptr") (result i32) (i32.const 0x2400))"#;
    assert_eq!(
        violations(&v2_with(&[], half)),
        [(AbiViolation::IncompleteConfigBuffer { missing: "plugin_config_capacity".into() }, Location::Module)]
    );
}

#[test]
fn a_configuration_buffer_needs_room_for_its_length_and_a_byte() {
    let small = CONFIG.replace("(i32.const 0x100)", "(i32.const 4)");
    assert_eq!(
        violations(&v2_with(&[], &small)),
        [(AbiViolation::ConfigBufferTooSmall { capacity: 4 }, export("plugin_config_capacity"))]
    );
    assert!(check(&v2_with(&[], &CONFIG.replace("(i32.const 0x100)", "(i32.const 5)"))).is_compliant());
}

#[test]
fn a_configuration_buffer_follows_the_buffer_rules() {
    let moving = CONFIG.replace("(i32.const 0x2400)", "(global.get 0)");
    let report = check(&v2_with(&[], &format!("(global i32 (i32.const 0x2400)) {moving}")));
    assert_eq!(codes(&report), ["buffer-not-constant"]);
    let outside = CONFIG.replace("(i32.const 0x2400)", "(i32.const 0x1ff80)");
    assert_eq!(codes(&check(&v2_with(&[], &outside))), ["buffer-outside-memory"]);
    let empty = CONFIG.replace("(i32.const 0x100)", "(i32.const 0)");
    assert_eq!(
        violations(&v2_with(&[], &empty)),
        [(AbiViolation::EmptyBuffer { buffer: BufferKind::Config }, export("plugin_config_capacity"))]
    );
    let over = CONFIG.replace("(i32.const 0x2400)", "(i32.const 0x2380)");
    assert_eq!(
        violations(&v2_with(&[], &over)),
        [(
            AbiViolation::ConfigBufferOverlaps {
                config: Buffer { offset: 0x2380, capacity: 0x100 },
                buffer: BufferKind::Output,
                other: Buffer { offset: 0x1400, capacity: 0x1000 },
            },
            Location::Module
        )]
    );
}

#[test]
fn a_v1_plugin_cannot_declare_a_configuration_buffer() {
    let v1 = wasm(&format!(
        r#"(module (memory (export "memory") 1)
            (func (export "init") (result i32) (i32.const 0))
            (func (export "process") (param i32) (result i32) (local.get 0))
            (func (export "cleanup") (result i32) (i32.const 0)) {CONFIG})"#
    ));
    assert_eq!(codes(&check(&v1)), ["unexpected-export", "unexpected-export"]);
}
