//! Tests of every ABI rule on small modules written in WAT, plus snapshots of the report.

use wasmparser::{Parser, Payload};

use super::*;

/// The ABI version declaration `wasm_plugin.h` produces.
const VERSION: &str = r#"(@custom "wasm_plugin_abi" "\01\00\00\00")"#;

/// Compliant entry points: functions 0, 1 and 2 when nothing is imported.
const ENTRY_POINTS: &str = r#"
  (memory (export "memory") 2)
  (global $initialized (mut i32) (i32.const 0))
  (func $init (export "init") (result i32)
    (global.set $initialized (i32.const 1))
    (i32.const 0))
  (func $process (export "process") (param i32) (result i32)
    (i32.add (i32.mul (local.get 0) (i32.const 2)) (i32.const 1)))
  (func $cleanup (export "cleanup") (result i32)
    (global.set $initialized (i32.const 0))
    (i32.const 0))
"#;

fn wasm(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).unwrap_or_else(|err| panic!("test WAT does not parse: {err}\n{wat}"))
}

/// A module with the version declaration, the compliant entry points and `items`.
fn plugin(items: &str) -> Vec<u8> {
    wasm(&format!("(module {VERSION} {ENTRY_POINTS} {items})"))
}

/// The violations as (kind, location) pairs, which is what the tests compare.
fn violations(wasm: &[u8]) -> Vec<(AbiViolation, Location)> {
    check(wasm).violations.into_iter().map(|v| (v.kind, v.location)).collect()
}

/// The file offset of the first instruction named `mnemonic` in function `index`, found
/// independently of the checker by walking the code section.
fn offset_of(wasm: &[u8], index: u32, mnemonic: &str) -> usize {
    let mut imported = 0;
    let mut defined = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("test module parses") {
            Payload::ImportSection(reader) => {
                imported += reader
                    .into_imports()
                    .filter(|import| matches!(import.as_ref().map(|i| i.ty), Ok(wasmparser::TypeRef::Func(_))))
                    .count();
            }
            Payload::CodeSectionEntry(body) => {
                if imported + defined == index as usize {
                    let mut ops = body.get_operators_reader().expect("operators");
                    while !ops.eof() {
                        let (op, offset) = ops.read_with_offset().expect("operator");
                        if operators::mnemonic(&op) == mnemonic {
                            return offset as usize;
                        }
                    }
                    panic!("function {index} has no {mnemonic}");
                }
                defined += 1;
            }
            _ => {}
        }
    }
    panic!("no function {index}");
}

fn function(index: u32, name: Option<&str>, offset: Option<usize>) -> Location {
    Location::Function { index, name: name.map(str::to_owned), offset }
}

fn custom_section_offset(wasm: &[u8]) -> usize {
    Parser::new(0)
        .parse_all(wasm)
        .find_map(|payload| match payload.expect("test module parses") {
            Payload::CustomSection(reader) if reader.name() == crate::CUSTOM_SECTION => {
                Some(reader.data_offset() as usize)
            }
            _ => None,
        })
        .expect("module has a wasm_plugin_abi section")
}

fn abi_section_location(wasm: &[u8]) -> Location {
    Location::CustomSection { name: crate::CUSTOM_SECTION.into(), offset: custom_section_offset(wasm) }
}

// ---------------------------------------------------------------------------------------------
// A compliant plugin

#[test]
fn compliant_plugin_has_an_empty_report() {
    let report = check(&plugin(""));
    assert_eq!(report.violations, vec![]);
    assert!(report.is_compliant());
    assert_eq!(report.abi_version, Some(1));
    assert_eq!(report.to_string(), "follows plugin ABI v1");
}

#[test]
fn features_clang_emits_are_allowed() {
    // What clang 19 (and 20, for memory.copy/fill) emits for ordinary C: sign extension, a
    // mutable global stack pointer, multi-value blocks, function pointers through one
    // funcref table, and bulk memory copies.
    let wasm = plugin(
        r#"
        (type $unary (func (param i32) (result i32)))
        (table 2 2 funcref)
        (elem (i32.const 1) $double)
        (func $double (type $unary) (i32.mul (local.get 0) (i32.const 2)))
        (func $helper (param i32) (result i32)
          (i32.extend8_s (local.get 0))
          (call_indirect (type $unary) (i32.const 1))
          (memory.copy (i32.const 0) (i32.const 16) (i32.const 4))
          (memory.fill (i32.const 0) (i32.const 0) (i32.const 4)))
        (func $pair (result i32 i32)
          (block (result i32 i32) (i32.const 1) (i32.const 2))
          (memory.size) (drop))
        "#,
    );
    assert_eq!(violations(&wasm), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Not WebAssembly at all

#[test]
fn garbage_is_one_malformed_violation() {
    let report = check(b"definitely not wasm");
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].kind.code(), "malformed");
    assert_eq!(report.violations[0].location, Location::Offset { offset: 0 });
    assert_eq!(report.abi_version, None);
}

#[test]
fn a_file_that_is_not_wasm_is_not_quoted_back() {
    // Reports reach HTTP clients and logs: the file's own bytes must not.
    for contents in [&b"SECRET-TOKEN-12345"[..], b"\0asm\x53\x45\x43\x52 and more"] {
        let report = check(contents);
        let text = format!("{report} {}", serde_json::to_string(&report).unwrap());
        assert_eq!(report.violations[0].kind.code(), "malformed");
        for leak in ["0x53", "0x45", "SECR", "[83", "83,"] {
            assert!(!text.contains(leak), "{leak:?} leaked: {text}");
        }
    }
}

#[test]
fn empty_input_is_malformed() {
    let report = check(b"");
    assert!(matches!(report.violations.as_slice(), [Violation { kind: AbiViolation::Malformed { .. }, .. }]));
}

#[test]
fn truncated_module_is_malformed_at_the_cut() {
    let mut bytes = plugin("");
    bytes.truncate(bytes.len() / 2);
    let cut = bytes.len();
    let report = check(&bytes);
    match report.violations.as_slice() {
        [Violation { kind: AbiViolation::Malformed { .. }, location: Location::Offset { offset } }] => {
            assert!(*offset <= cut, "offset {offset} is past the end {cut}");
        }
        other => panic!("expected one malformed violation, got {other:?}"),
    }
}

#[test]
fn invalid_module_is_malformed() {
    // Encodable but ill-typed: the function returns an i64 where it declares an i32.
    let bytes = wasm(r#"(module (func (result i32) (i64.const 0)))"#);
    assert!(matches!(violations(&bytes).as_slice(), [(AbiViolation::Malformed { .. }, Location::Offset { .. })]));
}

#[test]
fn no_input_makes_the_checker_panic() {
    // Every truncation and every single-bit flip of a compliant module: the checker must
    // answer with a report each time, whatever the bytes.
    let original = plugin("");
    for len in 0..original.len() {
        let _ = check(&original[..len]);
    }
    for position in 0..original.len() {
        for bit in 0..8 {
            let mut bytes = original.clone();
            bytes[position] ^= 1 << bit;
            let _ = check(&bytes);
        }
    }
}

#[test]
fn a_component_is_not_a_plugin() {
    let bytes = wasm("(component)");
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::UnsupportedFeature { feature: Feature::ComponentModel, abi_version: 1 }, Location::Module)]
    );
}

// ---------------------------------------------------------------------------------------------
// The ABI version declaration

#[test]
fn a_missing_abi_version_is_a_warning_and_means_v1() {
    // The seed's original contract defined no marker: such a plugin is v1 and compliant.
    let bytes = wasm(&format!("(module {ENTRY_POINTS})"));
    let report = check(&bytes);
    assert_eq!(report.declared_abi_version, None);
    assert_eq!(report.abi_version, Some(1));
    assert!(report.is_compliant(), "{report}");
    assert_eq!(violations(&bytes), vec![]);
    let warnings: Vec<_> = report.warnings.iter().map(|w| (w.kind.clone(), w.location.clone())).collect();
    assert_eq!(warnings, vec![(AbiViolation::MissingAbiVersion, Location::Module)]);
    let text = report.to_string();
    assert!(text.starts_with("follows plugin ABI v1, 1 warning\n  warning[missing-abi-version]: "), "{text}");
    assert!(text.contains("checked and run as v1"), "{text}");
    assert!(text.contains("--deny-warnings"), "{text}");
}

#[test]
fn an_unmarked_plugin_is_still_held_to_every_v1_rule() {
    let bytes = wasm(&format!("(module {ENTRY_POINTS} (func $f (param f32)))"));
    let report = check(&bytes);
    assert_eq!(report.abi_version, Some(1));
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::FloatType { ty: ValueType::F32, usage: FloatUsage::Param }, function(3, Some("f"), None))]
    );
}

#[test]
fn repeated_identical_versions_are_one_version() {
    // Two translation units that both include the header: wasm-ld concatenates the contents.
    let merged = wasm(&format!(r#"(module (@custom "wasm_plugin_abi" "\01\00\00\00\01\00\00\00") {ENTRY_POINTS})"#));
    assert_eq!(check(&merged).violations, vec![]);
    assert_eq!(check(&merged).abi_version, Some(1));
    assert_eq!(check(&merged).declared_abi_version, Some(1));
    assert_eq!(check(&merged).warnings, vec![]);
    // A producer that keeps them as separate sections.
    let separate = wasm(&format!("(module {VERSION} {VERSION} {ENTRY_POINTS})"));
    assert_eq!(check(&separate).violations, vec![]);
}

#[test]
fn malformed_abi_section() {
    let bytes = wasm(&format!(r#"(module (@custom "wasm_plugin_abi" "\01\00\00") {ENTRY_POINTS})"#));
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::MalformedAbiSection { length: 3 }, abi_section_location(&bytes))]
    );
    assert_eq!(check(&bytes).abi_version, None);
    let empty = wasm(&format!(r#"(module (@custom "wasm_plugin_abi" "") {ENTRY_POINTS})"#));
    assert_eq!(
        violations(&empty),
        vec![(AbiViolation::MalformedAbiSection { length: 0 }, abi_section_location(&empty))]
    );
}

#[test]
fn conflicting_abi_versions() {
    let bytes =
        wasm(&format!(r#"(module (@custom "wasm_plugin_abi" "\02\00\00\00\01\00\00\00\02\00\00\00") {ENTRY_POINTS})"#));
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::ConflictingAbiVersions { versions: vec![1, 2] }, abi_section_location(&bytes))]
    );
    assert_eq!(check(&bytes).abi_version, None);
}

#[test]
fn unsupported_abi_version() {
    let bytes = wasm(&format!(r#"(module (@custom "wasm_plugin_abi" "\03\00\00\00") {ENTRY_POINTS})"#));
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::UnsupportedAbiVersion { found: 3, supported: vec![1, 2] }, abi_section_location(&bytes))]
    );
    // Declared, but not something the plugin can be checked or run as.
    assert_eq!((check(&bytes).declared_abi_version, check(&bytes).abi_version), (Some(3), None));
    let message = check(&bytes).violations[0].message();
    assert!(message.contains("v3, which this host does not support (it supports v1, v2)"), "{message}");
}

#[test]
fn the_interface_of_an_unknown_version_is_not_checked() {
    // Not v1's exports, not v2's: only the version violation, since the checker cannot know
    // what a v3 plugin should export. The rules every version shares still apply.
    let bytes = wasm(r#"(module (@custom "wasm_plugin_abi" "\03\00\00\00") (func (export "anything") (param f32)))"#);
    let codes: Vec<_> = check(&bytes).violations.iter().map(|v| v.kind.code()).collect();
    assert_eq!(codes, ["unsupported-abi-version", "float-type"]);
}

// ---------------------------------------------------------------------------------------------
// Exports

#[test]
fn missing_export() {
    let bytes = wasm(&format!(
        r#"(module {VERSION}
          (func (export "init") (result i32) (i32.const 0))
          (func (export "process") (param i32) (result i32) (local.get 0)))"#
    ));
    assert_eq!(violations(&bytes), vec![(AbiViolation::MissingExport { name: "cleanup".into() }, Location::Module)]);
}

#[test]
fn wrong_signature() {
    let bytes = wasm(&format!(
        r#"(module {VERSION}
          (func (export "init") (result i32) (i32.const 0))
          (func (export "process") (param i64) (result i32) (i32.wrap_i64 (local.get 0)))
          (func (export "cleanup") (result i32) (i32.const 0)))"#
    ));
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::WrongSignature {
                name: "process".into(),
                expected: Signature { params: vec![ValueType::I32], results: vec![ValueType::I32] },
                found: Signature { params: vec![ValueType::I64], results: vec![ValueType::I32] },
            },
            Location::Export { name: "process".into() }
        )]
    );
}

#[test]
fn unexpected_exports() {
    let bytes = plugin(
        r#"
        (func $helper (export "helper") (result i32) (i32.const 7))
        (global (export "__heap_end") i32 (i32.const 1024))
        (table (export "__indirect_function_table") 1 funcref)
        "#,
    );
    assert_eq!(
        violations(&bytes),
        vec![
            (
                AbiViolation::UnexpectedExport {
                    name: "helper".into(),
                    kind: ExternKind::Func,
                    cause: ExportCause::ExportAll,
                    abi_version: 1,
                },
                Location::Export { name: "helper".into() }
            ),
            (
                AbiViolation::UnexpectedExport {
                    name: "__heap_end".into(),
                    kind: ExternKind::Global,
                    cause: ExportCause::ExportAll,
                    abi_version: 1,
                },
                Location::Export { name: "__heap_end".into() }
            ),
            (
                AbiViolation::UnexpectedExport {
                    name: "__indirect_function_table".into(),
                    kind: ExternKind::Table,
                    cause: ExportCause::ExportAll,
                    abi_version: 1,
                },
                Location::Export { name: "__indirect_function_table".into() }
            ),
        ]
    );
}

#[test]
fn extra_exports_name_the_linker_flag_that_made_them() {
    let help_for = |items: &str| -> Vec<String> {
        check(&plugin(items)).violations.iter().map(|v| v.kind.help()).collect::<Vec<_>>()
    };
    // `--export-all`: linker-defined symbols among the exports.
    let export_all = help_for(
        r#"(func (export "helper") (result i32) (i32.const 1))
           (func (export "__wasm_call_ctors"))
           (global (export "__data_end") i32 (i32.const 1024))"#,
    );
    // `__data_end` is one of the tolerated linker globals, so only the other two are refused.
    assert_eq!(export_all.len(), 2);
    assert!(export_all.iter().all(|help| help.starts_with("drop `-Wl,--export-all`")), "{export_all:?}");
    // `--export-dynamic` with default visibility: program variables among the exports.
    let export_dynamic = help_for(
        r#"(func (export "helper") (result i32) (i32.const 1))
           (global (export "counter") i32 (i32.const 1024))"#,
    );
    assert_eq!(export_dynamic.len(), 2);
    assert!(export_dynamic.iter().all(|help| help.starts_with("drop `-Wl,--export-dynamic`")), "{export_dynamic:?}");
    assert!(export_dynamic[0].contains("declare `helper` static"), "{export_dynamic:?}");
    // One helper function: every flag that could have exported it, by name.
    let one = help_for(r#"(func (export "helper") (result i32) (i32.const 1))"#);
    assert_eq!(one.len(), 1);
    assert!(one[0].contains("drop `-Wl,--export=helper`") && one[0].contains("`-Wl,--export-dynamic`"), "{one:?}");
}

#[test]
fn rustc_linker_globals_are_tolerated_when_immutable() {
    // What every Rust cdylib exports besides its entry points: two immutable i32 globals.
    let rust = plugin(
        r#"(global (export "__heap_base") i32 (i32.const 1048576))
           (global (export "__data_end") i32 (i32.const 1048576))"#,
    );
    let report = check(&rust);
    assert!(report.violations.is_empty() && report.warnings.is_empty(), "{report:?}");
    // And they do not make a stray export look like `--export-all`.
    let with_helper = plugin(
        r#"(global (export "__heap_base") i32 (i32.const 1048576))
           (func (export "helper") (result i32) (i32.const 1))"#,
    );
    assert_eq!(
        violations(&with_helper),
        vec![(
            AbiViolation::UnexpectedExport {
                name: "helper".into(),
                kind: ExternKind::Func,
                cause: ExportCause::Unknown,
                abi_version: 1,
            },
            Location::Export { name: "helper".into() }
        )]
    );
    // A mutable global under the same name, a non-i32 one, and the mutable `__stack_pointer`
    // (Zig's `-rdynamic`) are state or something else, and stay refused.
    let refused = plugin(
        r#"(global (export "__heap_base") (mut i32) (i32.const 1048576))
           (global (export "__data_end") i64 (i64.const 1048576))
           (global (export "__stack_pointer") (mut i32) (i32.const 65536))"#,
    );
    let names: Vec<_> = check(&refused).violations.iter().map(|v| v.location.to_string()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    // Alone, an exported `__stack_pointer` is Zig's `-rdynamic`, and the help says so.
    let zig = plugin(r#"(global (export "__stack_pointer") (mut i32) (i32.const 65536))"#);
    let stack_pointer = check(&zig).violations[0].kind.help();
    assert!(stack_pointer.contains("-rdynamic") && stack_pointer.contains("--export=NAME"), "{stack_pointer}");
}

#[test]
fn memory_is_allowed_only_as_memory() {
    let bytes = wasm(&format!(
        r#"(module {VERSION}
          (memory (export "heap") 1)
          (func (export "init") (result i32) (i32.const 0))
          (func (export "process") (param i32) (result i32) (local.get 0))
          (func (export "cleanup") (result i32) (i32.const 0)))"#
    ));
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::UnexpectedExport {
                name: "heap".into(),
                kind: ExternKind::Memory,
                cause: ExportCause::Unknown,
                abi_version: 1,
            },
            Location::Export { name: "heap".into() }
        )]
    );
}

#[test]
fn an_entry_point_that_is_not_a_function_is_missing() {
    let bytes = wasm(&format!(
        r#"(module {VERSION}
          (global (export "init") i32 (i32.const 0))
          (func (export "process") (param i32) (result i32) (local.get 0))
          (func (export "cleanup") (result i32) (i32.const 0)))"#
    ));
    assert_eq!(
        violations(&bytes),
        vec![
            (
                AbiViolation::UnexpectedExport {
                    name: "init".into(),
                    kind: ExternKind::Global,
                    cause: ExportCause::ExportDynamic,
                    abi_version: 1,
                },
                Location::Export { name: "init".into() }
            ),
            (AbiViolation::MissingExport { name: "init".into() }, Location::Module),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Imports and allocation

#[test]
fn imports_are_refused() {
    let bytes = wasm(&format!(
        r#"(module {VERSION}
          (import "env" "puts" (func (param i32) (result i32)))
          (import "env" "memory" (memory 1))
          {}
        )"#,
        ENTRY_POINTS.replace(r#"(memory (export "memory") 2)"#, "")
    ));
    assert_eq!(
        violations(&bytes),
        vec![
            (
                AbiViolation::Import { module: "env".into(), name: "puts".into() },
                Location::Import { module: "env".into(), name: "puts".into() }
            ),
            (
                AbiViolation::Import { module: "env".into(), name: "memory".into() },
                Location::Import { module: "env".into(), name: "memory".into() }
            ),
        ]
    );
}

#[test]
fn imported_allocator_is_dynamic_allocation_only() {
    let bytes =
        wasm(&format!(r#"(module {VERSION} (import "env" "malloc" (func (param i32) (result i32))) {ENTRY_POINTS})"#));
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::DynamicAllocation { symbol: "malloc".into() },
            Location::Import { module: "env".into(), name: "malloc".into() }
        )]
    );
}

#[test]
fn defined_allocators_are_found_by_name() {
    // Functions 3 and 4: a C `malloc` and a C++ `operator new(unsigned long)` named as the
    // name section has them; function 5 is only named by its (unexpected) export.
    let bytes = plugin(
        r#"
        (func $malloc (param i32) (result i32) (i32.const 0))
        (func $_Znwm (param i32) (result i32) (i32.const 0))
        (func (export "free") (param i32))
        "#,
    );
    assert_eq!(
        violations(&bytes),
        vec![
            (
                AbiViolation::UnexpectedExport {
                    name: "free".into(),
                    kind: ExternKind::Func,
                    cause: ExportCause::Unknown,
                    abi_version: 1,
                },
                Location::Export { name: "free".into() }
            ),
            (AbiViolation::DynamicAllocation { symbol: "malloc".into() }, function(3, Some("malloc"), None)),
            (AbiViolation::DynamicAllocation { symbol: "_Znwm".into() }, function(4, Some("_Znwm"), None)),
            (AbiViolation::DynamicAllocation { symbol: "free".into() }, function(5, Some("free"), None)),
        ]
    );
}

#[test]
fn memory_grow() {
    let bytes = plugin(
        r#"(func $sbrk_like (param i32) (result i32)
             (memory.grow (local.get 0))
             (drop (memory.grow (i32.const 1))))"#,
    );
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::MemoryGrow, function(3, Some("sbrk_like"), Some(offset_of(&bytes, 3, "memory.grow"))))]
    );
}

// ---------------------------------------------------------------------------------------------
// Floating point

#[test]
fn float_in_a_signature() {
    let bytes = plugin(r#"(func $half (param f64 f64) (result f32) (f32.const 0.5))"#);
    let at = |offset| function(3, Some("half"), offset);
    assert_eq!(
        violations(&bytes),
        vec![
            (AbiViolation::FloatType { ty: ValueType::F64, usage: FloatUsage::Param }, at(None)),
            (AbiViolation::FloatType { ty: ValueType::F32, usage: FloatUsage::Result }, at(None)),
            (AbiViolation::FloatInstruction { op: "f32.const".into() }, at(Some(offset_of(&bytes, 3, "f32.const")))),
        ]
    );
}

#[test]
fn float_local() {
    let bytes = plugin(r#"(func $scratch (local i32 f32 f32))"#);
    match violations(&bytes).as_slice() {
        [(AbiViolation::FloatType { ty: ValueType::F32, usage: FloatUsage::Local }, location)] => {
            let Location::Function { index: 3, name: Some(name), offset: Some(offset) } = location else {
                panic!("unexpected location {location:?}");
            };
            assert_eq!(name, "scratch");
            // The local declaration `2 x f32` is the count 2 followed by the f32 type code.
            assert_eq!(&bytes[*offset..*offset + 2], &[0x02, 0x7d]);
        }
        other => panic!("expected one float local, got {other:?}"),
    }
}

#[test]
fn float_global() {
    let bytes = plugin(r#"(global $ratio f64 (f64.const 1.5))"#);
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::FloatType { ty: ValueType::F64, usage: FloatUsage::Global },
            Location::Global { index: 1 }
        )]
    );
}

#[test]
fn float_type_definition_without_a_function() {
    // Type 0 is only used by a call_indirect signature.
    let bytes = wasm(&format!(r#"(module {VERSION} (type $callback (func (param f32))) {ENTRY_POINTS})"#));
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::FloatType { ty: ValueType::F32, usage: FloatUsage::TypeDefinition },
            Location::Type { index: 0 }
        )]
    );
}

#[test]
fn float_instructions_once_per_function_and_op() {
    let bytes = plugin(
        r#"(func $scale (param i32) (result i32)
             (i32.trunc_f64_s
               (f64.mul (f64.convert_i32_s (local.get 0))
                        (f64.mul (f64.const 1.5) (f64.const 2)))))"#,
    );
    let at = |op| function(3, Some("scale"), Some(offset_of(&bytes, 3, op)));
    assert_eq!(
        violations(&bytes),
        vec![
            (AbiViolation::FloatInstruction { op: "f64.convert_i32_s".into() }, at("f64.convert_i32_s")),
            (AbiViolation::FloatInstruction { op: "f64.const".into() }, at("f64.const")),
            (AbiViolation::FloatInstruction { op: "f64.mul".into() }, at("f64.mul")),
            (AbiViolation::FloatInstruction { op: "i32.trunc_f64_s".into() }, at("i32.trunc_f64_s")),
        ]
    );
}

#[test]
fn float_loads_stores_and_reinterpretations() {
    let bytes = plugin(
        r#"(func $bits (result i32)
             (f32.store (i32.const 0) (f32.load (i32.const 4)))
             (i32.reinterpret_f32 (f32.load (i32.const 0))))"#,
    );
    let ops: Vec<_> = violations(&bytes)
        .into_iter()
        .map(|(kind, _)| match kind {
            AbiViolation::FloatInstruction { op } => op,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(ops, ["f32.load", "f32.store", "i32.reinterpret_f32"]);
}

// ---------------------------------------------------------------------------------------------
// Start function, features, limits

#[test]
fn start_function() {
    let bytes = plugin(r#"(func $setup) (start $setup)"#);
    assert_eq!(violations(&bytes), vec![(AbiViolation::StartFunction, function(3, Some("setup"), None))]);
}

/// The one violation `items` should cause, for features whose location is an instruction in
/// function 3 (the first one `items` defines).
fn feature_in_function_3(items: &str, feature: Feature, mnemonic: &str) {
    let bytes = plugin(items);
    let offset = offset_of(&bytes, 3, mnemonic);
    let report = violations(&bytes);
    let feature_violations: Vec<_> =
        report.iter().filter(|(kind, _)| matches!(kind, AbiViolation::UnsupportedFeature { .. })).cloned().collect();
    assert_eq!(
        feature_violations,
        vec![(AbiViolation::UnsupportedFeature { feature, abi_version: 1 }, function(3, Some("f"), Some(offset)))],
        "{items}"
    );
}

#[test]
fn simd_is_unsupported() {
    feature_in_function_3(
        r#"(func $f (result i32) (i32x4.extract_lane 0 (v128.const i32x4 1 2 3 4)))"#,
        Feature::Simd,
        "v128.const",
    );
}

#[test]
fn atomics_are_unsupported() {
    feature_in_function_3(
        r#"(func $f (result i32) (i32.atomic.load (i32.const 0)))"#,
        Feature::Threads,
        "i32.atomic_load",
    );
}

#[test]
fn tail_calls_are_unsupported() {
    feature_in_function_3(
        r#"(func $f (result i32) (return_call $process (i32.const 1)))"#,
        Feature::TailCall,
        "return_call",
    );
}

#[test]
fn exceptions_are_unsupported() {
    // The tag a `throw` needs is declared before any code, so that is where it is reported.
    let bytes = plugin(r#"(tag $oops) (func $f (throw $oops))"#);
    match violations(&bytes).as_slice() {
        [(AbiViolation::UnsupportedFeature { feature: Feature::Exceptions, .. }, Location::Section { name, .. })] => {
            assert_eq!(name, "tag");
        }
        other => panic!("expected exception-handling in the tag section, got {other:?}"),
    }
}

#[test]
fn reference_instructions_are_unsupported() {
    feature_in_function_3(
        r#"(table $t 1 funcref) (func $f (result i32) (ref.is_null (table.get $t (i32.const 0))))"#,
        Feature::ReferenceTypes,
        "table.get",
    );
}

#[test]
fn passive_data_is_unsupported_bulk_memory() {
    // memory.init needs a passive data segment, which needs the data count section.
    let bytes = plugin(r#"(data $d "abc") (func $f (memory.init $d (i32.const 0) (i32.const 0) (i32.const 3)))"#);
    match violations(&bytes).as_slice() {
        [(AbiViolation::UnsupportedFeature { feature: Feature::BulkMemory, .. }, Location::Section { name, .. })] => {
            assert_eq!(name, "data count");
        }
        other => panic!("expected bulk-memory in the data count section, got {other:?}"),
    }
}

#[test]
fn shared_memory_is_unsupported() {
    let bytes = wasm(&format!(
        r#"(module {VERSION} {})"#,
        ENTRY_POINTS.replace(r#"(memory (export "memory") 2)"#, r#"(memory (export "memory") 2 2 shared)"#)
    ));
    match violations(&bytes).as_slice() {
        [(AbiViolation::UnsupportedFeature { feature: Feature::Threads, .. }, Location::Section { name, .. })] => {
            assert_eq!(name, "memory");
        }
        other => panic!("expected threads, got {other:?}"),
    }
}

#[test]
fn memory64_is_unsupported() {
    let bytes = wasm(&format!(
        r#"(module {VERSION} {})"#,
        ENTRY_POINTS.replace(r#"(memory (export "memory") 2)"#, r#"(memory (export "memory") i64 2)"#)
    ));
    match violations(&bytes).as_slice() {
        [(AbiViolation::UnsupportedFeature { feature: Feature::Memory64, .. }, Location::Section { name, .. })] => {
            assert_eq!(name, "memory");
        }
        other => panic!("expected memory64, got {other:?}"),
    }
}

#[test]
fn second_memory_is_unsupported() {
    let bytes = plugin("(memory $scratch 1)");
    match violations(&bytes).as_slice() {
        [(AbiViolation::UnsupportedFeature { feature: Feature::MultiMemory, .. }, Location::Section { name, .. })] => {
            assert_eq!(name, "memory");
        }
        other => panic!("expected multi-memory, got {other:?}"),
    }
}

#[test]
fn externref_is_unsupported() {
    let bytes = plugin(r#"(func $f (param externref))"#);
    let features: Vec<_> = violations(&bytes)
        .into_iter()
        .filter_map(|(kind, _)| match kind {
            AbiViolation::UnsupportedFeature { feature, .. } => Some(feature),
            _ => None,
        })
        .collect();
    assert_eq!(features, vec![Feature::ReferenceTypes]);
}

#[test]
fn initial_memory_too_large() {
    let bytes = wasm(&format!(
        r#"(module {VERSION} {})"#,
        ENTRY_POINTS.replace(r#"(memory (export "memory") 2)"#, r#"(memory (export "memory") 17)"#)
    ));
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::InitialMemoryTooLarge { pages: 17, limit: 16 }, Location::Memory { index: 0 })]
    );
    let generous = AbiLimits { max_initial_memory_pages: 32, ..AbiLimits::default() };
    assert!(check_with(&bytes, &generous).is_compliant());
}

#[test]
fn table_too_large() {
    let bytes = plugin("(table 5000 funcref)");
    assert_eq!(
        violations(&bytes),
        vec![(AbiViolation::TableTooLarge { entries: 5000, limit: 4096 }, Location::Table { index: 0 })]
    );
}

#[test]
fn too_many_functions() {
    let bytes = plugin("(func) (func)");
    let limits = AbiLimits { max_function_count: 4, ..AbiLimits::default() };
    let report = check_with(&bytes, &limits);
    assert_eq!(
        report.violations,
        vec![Violation { kind: AbiViolation::TooManyFunctions { count: 5, limit: 4 }, location: Location::Module }]
    );
}

#[test]
fn too_many_types() {
    let types: String = (0..=MAX_TYPES).map(|_| "(type (func))").collect();
    assert_eq!(
        violations(&plugin(&types)),
        // The entry points' two types come after the explicit ones.
        vec![(AbiViolation::TooManyTypes { count: MAX_TYPES + 3, limit: MAX_TYPES }, Location::Module)]
    );
}

#[test]
fn function_types_too_large() {
    let i32s = |n: u32| vec!["i32"; n as usize].join(" ");
    let (max_params, max_results) = (MAX_FUNCTION_PARAMS, MAX_FUNCTION_RESULTS);
    // At the limits a type is fine, whether a function uses it or not.
    let fine = format!("(type (func (param {}) (result {})))", i32s(max_params), i32s(max_results));
    assert_eq!(violations(&plugin(&fine)), vec![]);
    let results =
        plugin(&format!("(type (func (result {}))) (func (param {}))", i32s(max_results + 1), i32s(max_params + 1)));
    let large =
        |index, params, results| (AbiViolation::FunctionTypeTooLarge { params, results }, Location::Type { index });
    // In the text format, explicit types come first and the ones functions imply follow in the
    // order of use: the entry points' two, then the last function's.
    assert_eq!(violations(&results), vec![large(0, 0, max_results + 1), large(3, max_params + 1, 0)]);
}

#[test]
fn too_many_locals() {
    let limit = MAX_FUNCTION_LOCALS;
    assert_eq!(violations(&plugin(&format!("(func (local {}))", vec!["i32"; limit as usize].join(" ")))), vec![]);
    let bytes = plugin(&format!("(func (local {}))", vec!["i32"; limit as usize + 1].join(" ")));
    let found = violations(&bytes);
    let [(kind, Location::Function { index: 3, offset: Some(_), .. })] = found.as_slice() else {
        panic!("{found:?}");
    };
    assert_eq!(*kind, AbiViolation::TooManyLocals { count: u64::from(limit) + 1, limit });
}

#[test]
fn nesting_too_deep() {
    let nested =
        |depth: u32| plugin(&format!("(func {} {})", "(block ".repeat(depth as usize), ")".repeat(depth as usize)));
    assert_eq!(violations(&nested(MAX_NESTING_DEPTH)), vec![]);
    // Blocks one after another are not nested.
    assert_eq!(violations(&plugin(&format!("(func {})", "(block) ".repeat(5000)))), vec![]);
    let found = violations(&nested(MAX_NESTING_DEPTH + 1));
    let [(kind, Location::Function { index: 3, offset: Some(_), .. })] = found.as_slice() else {
        panic!("{found:?}");
    };
    assert_eq!(*kind, AbiViolation::NestingTooDeep { depth: MAX_NESTING_DEPTH + 1, limit: MAX_NESTING_DEPTH });
}

/// The file offset where the `n`th segment of the data or element section starts.
fn segment_offset(wasm: &[u8], element: bool, n: usize) -> usize {
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.expect("test module parses") {
            Payload::DataSection(reader) if !element => {
                let data = reader.into_iter().nth(n).expect("segment exists").expect("segment parses");
                return data.range.start as usize;
            }
            Payload::ElementSection(reader) if element => {
                let segment = reader.into_iter().nth(n).expect("segment exists").expect("segment parses");
                return segment.range.start as usize;
            }
            _ => {}
        }
    }
    panic!("no such segment");
}

#[test]
fn data_segments_must_lie_inside_the_initial_memory() {
    // `plugin` declares 2 pages (0x20000 bytes).
    let fits = plugin(r#"(data (i32.const 0x1fff0) "0123456789abcdef") (data (i32.const 0x20000) "")"#);
    assert_eq!(violations(&fits), vec![]);
    // One byte past the end; an offset near 4 GiB, which 32-bit arithmetic would wrap to a
    // small address; an offset from extended-const arithmetic.
    let bytes = plugin(
        r#"(data (i32.const 0x1fff1) "0123456789abcdef")
           (data (i32.const 0xfffffff0) "0123456789abcdef0123")
           (data (i32.add (i32.const 0x10000) (i32.const 0x10000)) "x")
           (data (i32.const 16) "fine")"#,
    );
    let outside = |segment: u32, address: u64, length: u64| {
        (
            AbiViolation::DataSegmentOutsideMemory { segment, address, length, memory_bytes: 0x20000 },
            Location::Section { name: "data".into(), offset: segment_offset(&bytes, false, segment as usize) },
        )
    };
    assert_eq!(violations(&bytes), vec![outside(0, 0x1fff1, 16), outside(1, 0xfffffff0, 20), outside(2, 0x20000, 1)]);
    assert!(check(&bytes).to_string().contains("ending at 0x100000004"), "{}", check(&bytes));
}

#[test]
fn element_segments_must_lie_inside_the_initial_table() {
    let fits = plugin("(table 3 funcref) (elem (i32.const 1) $f $f) (func $f)");
    assert_eq!(violations(&fits), vec![]);
    let bytes = plugin("(table 3 funcref) (elem (i32.const 2) $f $f) (func $f)");
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::ElementSegmentOutsideTable { segment: 0, start: 2, length: 2, table_entries: 3 },
            Location::Section { name: "element".into(), offset: segment_offset(&bytes, true, 0) }
        )]
    );
}

#[test]
fn limits_deserialize_with_defaults_and_refuse_unknown_fields() {
    // Hosts embed AbiLimits in their configuration; JSON stands in for any serde format.
    let limits: AbiLimits =
        serde_json::from_str(r#"{"max_initial_memory_pages": 32}"#).expect("a partial configuration deserializes");
    assert_eq!(limits, AbiLimits { max_initial_memory_pages: 32, ..AbiLimits::default() });
    assert!(serde_json::from_str::<AbiLimits>(r#"{"max_memory": 32}"#).is_err());
}

// ---------------------------------------------------------------------------------------------
// Recursion

fn cycle(functions: &[(u32, &str)]) -> Vec<FunctionRef> {
    functions.iter().map(|&(index, name)| FunctionRef { index, name: Some(name.into()) }).collect()
}

#[test]
fn direct_recursion() {
    let bytes = plugin(
        r#"(func $fact (param i32) (result i32)
             (if (result i32) (i32.eqz (local.get 0))
               (then (i32.const 1))
               (else (i32.mul (local.get 0) (call $fact (i32.sub (local.get 0) (i32.const 1)))))))"#,
    );
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::Recursion { cycle: cycle(&[(3, "fact")]) },
            function(3, Some("fact"), Some(offset_of(&bytes, 3, "call")))
        )]
    );
}

#[test]
fn mutual_recursion() {
    let bytes = plugin(
        r#"(func $even (param i32) (result i32) (call $odd (local.get 0)))
           (func $odd (param i32) (result i32) (call $even (local.get 0)))
           (func $not_recursive (result i32) (call $even (i32.const 4)))"#,
    );
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::Recursion { cycle: cycle(&[(3, "even"), (4, "odd")]) },
            function(3, Some("even"), Some(offset_of(&bytes, 3, "call")))
        )]
    );
}

#[test]
fn recursion_through_a_function_pointer() {
    // $walk calls through the table with type $visit; $visitor has that type, is in the table
    // and calls $walk, so the cycle walk -> visitor -> walk is possible. $other is in the
    // table too but has another type, so the call_indirect cannot reach it.
    let bytes = plugin(
        r#"(type $visit (func (param i32) (result i32)))
           (table 3 3 funcref)
           (elem (i32.const 1) $visitor $other)
           (func $walk (param i32) (result i32) (call_indirect (type $visit) (local.get 0) (i32.const 1)))
           (func $visitor (type $visit) (call $walk (local.get 0)))
           (func $other (result i32) (call $walk (i32.const 0)))"#,
    );
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::Recursion { cycle: cycle(&[(3, "walk"), (4, "visitor")]) },
            function(3, Some("walk"), Some(offset_of(&bytes, 3, "call_indirect")))
        )]
    );
}

#[test]
fn call_indirect_does_not_reach_functions_outside_the_table() {
    // $visitor has the right type but its address is never taken.
    let bytes = plugin(
        r#"(type $visit (func (param i32) (result i32)))
           (table 1 1 funcref)
           (func $walk (param i32) (result i32) (call_indirect (type $visit) (local.get 0) (i32.const 0)))
           (func $visitor (type $visit) (call $walk (local.get 0)))"#,
    );
    assert_eq!(violations(&bytes), vec![]);
}

#[test]
fn every_recursive_function_is_on_a_reported_cycle() {
    // a <-> b and a <-> c form one group; the shortest cycle through a covers b only, so a
    // second cycle through c follows.
    let bytes = plugin(
        r#"(func $a (param i32) (call $b (local.get 0)) (call $c (local.get 0)))
           (func $b (param i32) (call $a (local.get 0)))
           (func $c (param i32) (call $a (local.get 0)))"#,
    );
    let cycles: Vec<_> = check(&bytes)
        .violations
        .into_iter()
        .map(|v| match v.kind {
            AbiViolation::Recursion { cycle } => cycle.into_iter().map(|f| f.index).collect::<Vec<_>>(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(cycles, vec![vec![3, 4], vec![5, 3]]);
}

/// `count` functions, all in the table, each making `calls` indirect calls through a pointer of
/// their own type: the shape that made the old recursion check quadratic (every indirect call
/// had an edge to every function in the table), and one strongly connected group of them all.
fn indirect_call_mesh(count: usize, calls: usize) -> Vec<u8> {
    let call = "(drop (call_indirect (type $t) (i32.const 0)))".repeat(calls);
    let functions: String = (0..count).map(|i| format!("(func $f{i} (type $t) {call} (i32.const 0))")).collect();
    let table: String = (0..count).map(|i| format!(" $f{i}")).collect();
    plugin(&format!("(type $t (func (result i32))) (table {count} funcref) (elem (i32.const 0){table}) {functions}"))
}

#[test]
fn the_recursion_check_is_linear_in_calls_and_table_entries() {
    for (count, calls) in [(500, 4), (2000, 4), (2000, 16)] {
        let bytes = indirect_call_mesh(count, calls);
        let module = ModuleInfo::parse(&bytes).expect("test module parses");
        let (cycles, work) = recursion::cycles_counting_work(&module);
        assert_eq!(cycles.len(), recursion::MAX_REPORTED_CYCLES);
        // Tarjan's pass follows every edge once and each reported cycle's search at most once
        // more (opening a hub counts its edges): edges are the call instructions plus the table
        // entries, whatever their product.
        let edges = (count * calls + count + 3) as u64;
        let bound = (recursion::MAX_REPORTED_CYCLES as u64 + 1) * edges;
        assert!(work <= bound, "{count} functions x {calls} calls: {work} edges followed, over {bound}");
        // The old graph alone had count x count edges (every indirect call reaching every
        // function of the table): 4,000,000 for 2000 functions.
        assert!(work < (count * count) as u64, "{work}");
    }
}

#[test]
fn a_large_hostile_module_is_checked_in_bounded_time() {
    // 40,000 exported functions, each breaking a rule that names it (a float constant), and an
    // indirect-call mesh: rules that looked names up by scanning the exports cost functions x
    // exports (1.6 billion comparisons here), and the old recursion check functions x calls.
    // Every pass is now linear, which only a clock can show for the checker as a whole; the
    // bound is generous (debug build, busy machine), the quadratic version took minutes.
    let count = 40_000;
    let functions: String = (0..count)
        .map(|i| {
            format!(
                "(func $f{i} (export \"f{i}\") (type $t) (drop (f32.const 1)) (call_indirect (type $t) (i32.const 0)))"
            )
        })
        .collect();
    let table: String = (0..count).map(|i| format!(" $f{i}")).collect();
    let bytes = plugin(&format!(
        "(type $t (func (result i32))) (table {count} funcref) (elem (i32.const 0){table}) {functions}"
    ));
    let limits = AbiLimits { max_function_count: 100_000, max_table_entries: 100_000, ..AbiLimits::default() };
    let started = std::time::Instant::now();
    let report = check_with(&bytes, &limits);
    let elapsed = started.elapsed();
    assert!(report.violations.iter().any(|v| v.kind.code() == "float-instruction"));
    assert!(elapsed < std::time::Duration::from_secs(30), "{} KB checked in {elapsed:?}", bytes.len() / 1024);
}

#[test]
fn names_fall_back_to_exports() {
    // Without a name section, functions are named after their exports where they have one.
    let bytes = wasm(&format!(
        r#"(module {VERSION}
          (func (export "init") (result i32) (i32.const 0))
          (func (export "process") (param i32) (result i32) (call 1 (local.get 0)))
          (func (export "cleanup") (result i32) (i32.const 0)))"#
    ));
    assert_eq!(
        violations(&bytes),
        vec![(
            AbiViolation::Recursion { cycle: cycle(&[(1, "process")]) },
            function(1, Some("process"), Some(offset_of(&bytes, 1, "call")))
        )]
    );
}

// ---------------------------------------------------------------------------------------------
// Presentation

/// A plugin with one violation of most kinds, as a careless author might write it.
fn careless_plugin() -> Vec<u8> {
    wasm(&format!(
        r#"(module {VERSION}
          (import "env" "malloc" (func $malloc (param i32) (result i32)))
          (memory (export "memory") 2)
          (func $init (export "init") (result i32)
            (drop (call $malloc (i32.const 16)))
            (drop (memory.grow (i32.const 1)))
            (i32.const 0))
          (func $process (export "process") (param f64) (result f64)
            (f64.mul (local.get 0) (f64.const 2)))
          (func $fib (param i32) (result i32)
            (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2))))))"#
    ))
}

#[test]
fn report_text_snapshot() {
    insta::assert_snapshot!(check(&careless_plugin()).render("plugins/careless.wasm"));
}

#[test]
fn report_json_snapshot() {
    insta::assert_json_snapshot!(check(&careless_plugin()));
}

#[test]
fn one_violation_is_singular() {
    let bytes = plugin("(func $f (param f32))");
    assert!(check(&bytes).to_string().starts_with("1 ABI violation\n"));
}

/// One violation of every rule, in declaration order.
///
/// Each example is chosen by an exhaustive `match` on the one before it, so a new rule does
/// not compile until it gets an arm here, and [`every_rule_has_one_example`] fails until that
/// arm leads to an example of it.
fn one_of_each_rule() -> Vec<AbiViolation> {
    use AbiViolation as V;
    let next = |previous: Option<&AbiViolation>| match previous {
        None => Some(V::Malformed { message: "unexpected end-of-file".into() }),
        Some(V::Malformed { .. }) => Some(V::MissingAbiVersion),
        Some(V::MissingAbiVersion) => Some(V::MalformedAbiSection { length: 3 }),
        Some(V::MalformedAbiSection { .. }) => Some(V::ConflictingAbiVersions { versions: vec![1, 2] }),
        Some(V::ConflictingAbiVersions { .. }) => Some(V::UnsupportedAbiVersion { found: 3, supported: vec![1, 2] }),
        Some(V::UnsupportedAbiVersion { .. }) => Some(V::MissingExport { name: "cleanup".into() }),
        Some(V::MissingExport { .. }) => Some(V::WrongSignature {
            name: "process".into(),
            expected: Signature { params: vec![ValueType::I32], results: vec![ValueType::I32] },
            found: Signature { params: vec![ValueType::I64, ValueType::Ref("funcref".into())], results: vec![] },
        }),
        Some(V::WrongSignature { .. }) => Some(V::UnexpectedExport {
            name: "helper".into(),
            kind: ExternKind::Func,
            cause: ExportCause::Unknown,
            abi_version: 1,
        }),
        Some(V::UnexpectedExport { .. }) => Some(V::V1ExportInV2 { name: "process".into() }),
        Some(V::V1ExportInV2 { .. }) => Some(V::InvalidFunctionName { name: "fn_Upper".into() }),
        Some(V::InvalidFunctionName { .. }) => Some(V::MissingMemoryExport),
        Some(V::MissingMemoryExport) => Some(V::MissingBufferExport { name: "plugin_output_capacity".into() }),
        Some(V::MissingBufferExport { .. }) => Some(V::NoFunctions),
        Some(V::NoFunctions) => Some(V::IncompleteStream {
            name: "sum".into(),
            missing: vec!["stream_sum_feed".into(), "stream_sum_end".into()],
        }),
        Some(V::IncompleteStream { .. }) => Some(V::DuplicateFunctionName { name: "sha256".into() }),
        Some(V::DuplicateFunctionName { .. }) => {
            Some(V::BufferNotConstant { name: "plugin_input_capacity".into(), op: "global.get".into() })
        }
        Some(V::BufferNotConstant { .. }) => Some(V::EmptyBuffer { buffer: BufferKind::Output }),
        Some(V::EmptyBuffer { .. }) => {
            Some(V::BufferCapacityTooLarge { buffer: BufferKind::Input, capacity: 2 << 20, limit: 1 << 20 })
        }
        Some(V::BufferCapacityTooLarge { .. }) => Some(V::BufferOutsideMemory {
            buffer: BufferKind::Input,
            offset: 0x400,
            capacity: 0x20000,
            memory_bytes: 0x20000,
        }),
        Some(V::BufferOutsideMemory { .. }) => Some(V::BuffersOverlap {
            input: Buffer { offset: 0x400, capacity: 0x1000 },
            output: Buffer { offset: 0x1000, capacity: 0x1000 },
        }),
        Some(V::BuffersOverlap { .. }) => Some(V::IncompleteConfigBuffer { missing: "plugin_config_capacity".into() }),
        Some(V::IncompleteConfigBuffer { .. }) => Some(V::ConfigBufferTooSmall { capacity: 4 }),
        Some(V::ConfigBufferTooSmall { .. }) => Some(V::ConfigBufferOverlaps {
            config: Buffer { offset: 0x400, capacity: 0x100 },
            buffer: BufferKind::Input,
            other: Buffer { offset: 0x480, capacity: 0x1000 },
        }),
        Some(V::ConfigBufferOverlaps { .. }) => Some(V::Import { module: "env".into(), name: "log".into() }),
        Some(V::Import { .. }) => Some(V::DynamicAllocation { symbol: "malloc".into() }),
        Some(V::DynamicAllocation { .. }) => Some(V::MemoryGrow),
        Some(V::MemoryGrow) => Some(V::FloatType { ty: ValueType::F32, usage: FloatUsage::Local }),
        Some(V::FloatType { .. }) => Some(V::FloatInstruction { op: "f64.mul".into() }),
        Some(V::FloatInstruction { .. }) => Some(V::StartFunction),
        Some(V::StartFunction) => Some(V::UnsupportedFeature { feature: Feature::Simd, abi_version: 1 }),
        Some(V::UnsupportedFeature { .. }) => Some(V::InitialMemoryTooLarge { pages: 17, limit: 16 }),
        Some(V::InitialMemoryTooLarge { .. }) => Some(V::TableTooLarge { entries: 5000, limit: 4096 }),
        Some(V::TableTooLarge { .. }) => Some(V::TooManyFunctions { count: 5000, limit: 4096 }),
        Some(V::TooManyFunctions { .. }) => Some(V::TooManyTypes { count: 5000, limit: 4096 }),
        Some(V::TooManyTypes { .. }) => Some(V::FunctionTypeTooLarge { params: 0, results: 1000 }),
        Some(V::FunctionTypeTooLarge { .. }) => Some(V::TooManyLocals { count: 50000, limit: 16384 }),
        Some(V::TooManyLocals { .. }) => Some(V::NestingTooDeep { depth: 10000, limit: 1024 }),
        Some(V::NestingTooDeep { .. }) => {
            Some(V::DataSegmentOutsideMemory { segment: 1, address: 0x1fff0, length: 0x20, memory_bytes: 0x20000 })
        }
        Some(V::DataSegmentOutsideMemory { .. }) => {
            Some(V::ElementSegmentOutsideTable { segment: 0, start: 1, length: 3, table_entries: 2 })
        }
        Some(V::ElementSegmentOutsideTable { .. }) => Some(V::Recursion {
            cycle: vec![FunctionRef { index: 3, name: Some("even".into()) }, FunctionRef { index: 4, name: None }],
        }),
        Some(V::Recursion { .. }) => None,
    };
    std::iter::successors(next(None), |previous| next(Some(previous))).collect()
}

#[test]
fn every_rule_has_one_example() {
    let codes: Vec<&str> = one_of_each_rule().iter().map(AbiViolation::code).collect();
    assert_eq!(codes, AbiViolation::CODES, "one example per rule, in the order of the table");
}

#[test]
fn json_code_matches_code() {
    for kind in one_of_each_rule() {
        let violation = Violation { kind, location: Location::Module };
        let json = serde_json::to_value(&violation).expect("violations serialize");
        assert_eq!(json["code"], violation.kind.code(), "{json}");
        // Every violation explains itself and how to fix it.
        assert!(!violation.message().is_empty() && !violation.kind.help().is_empty());
    }
}

/// Every rule at a typical location, plus each location or detail that changes a rule's
/// message or help: the exact text plugin authors see, all of it in one snapshot.
fn every_message() -> Vec<Violation> {
    let at_function = |offset| Location::Function { index: 3, name: Some("process".into()), offset };
    let typical = |kind: &AbiViolation| match kind {
        AbiViolation::Malformed { .. } => Location::Offset { offset: 0x1a },
        AbiViolation::MissingAbiVersion
        | AbiViolation::MissingExport { .. }
        | AbiViolation::TooManyFunctions { .. }
        | AbiViolation::TooManyTypes { .. }
        | AbiViolation::UnsupportedAbiVersion { .. } => Location::Module,
        AbiViolation::FunctionTypeTooLarge { .. } => Location::Type { index: 2 },
        AbiViolation::DataSegmentOutsideMemory { .. } => Location::Section { name: "data".into(), offset: 0x1c0 },
        AbiViolation::ElementSegmentOutsideTable { .. } => Location::Section { name: "element".into(), offset: 0x90 },
        AbiViolation::MalformedAbiSection { .. } | AbiViolation::ConflictingAbiVersions { .. } => {
            Location::CustomSection { name: crate::CUSTOM_SECTION.into(), offset: 0x2b }
        }
        AbiViolation::WrongSignature { name, .. } | AbiViolation::UnexpectedExport { name, .. } => {
            Location::Export { name: name.clone() }
        }
        AbiViolation::Import { module, name } => Location::Import { module: module.clone(), name: name.clone() },
        AbiViolation::InitialMemoryTooLarge { .. } => Location::Memory { index: 0 },
        AbiViolation::MissingMemoryExport
        | AbiViolation::MissingBufferExport { .. }
        | AbiViolation::NoFunctions
        | AbiViolation::BuffersOverlap { .. }
        | AbiViolation::IncompleteConfigBuffer { .. }
        | AbiViolation::ConfigBufferOverlaps { .. } => Location::Module,
        AbiViolation::ConfigBufferTooSmall { .. } => Location::Export { name: "plugin_config_capacity".into() },
        AbiViolation::V1ExportInV2 { name }
        | AbiViolation::InvalidFunctionName { name }
        | AbiViolation::DuplicateFunctionName { name } => Location::Export { name: name.clone() },
        AbiViolation::IncompleteStream { name, .. } => Location::Export { name: format!("stream_{name}_begin") },
        AbiViolation::EmptyBuffer { buffer } | AbiViolation::BufferCapacityTooLarge { buffer, .. } => {
            Location::Export { name: buffer.capacity_export().into() }
        }
        AbiViolation::BufferOutsideMemory { buffer, .. } => Location::Export { name: buffer.ptr_export().into() },
        AbiViolation::BufferNotConstant { name, .. } => {
            Location::Function { index: 4, name: Some(name.clone()), offset: Some(0x52) }
        }
        AbiViolation::TableTooLarge { .. } => Location::Table { index: 0 },
        AbiViolation::StartFunction | AbiViolation::DynamicAllocation { .. } => at_function(None),
        _ => at_function(Some(0x40)),
    };
    let mut all: Vec<Violation> =
        one_of_each_rule().into_iter().map(|kind| Violation { location: typical(&kind), kind }).collect();
    let export = |name: &str, kind, cause| Violation {
        kind: AbiViolation::UnexpectedExport { name: name.into(), kind, cause, abi_version: 1 },
        location: Location::Export { name: name.into() },
    };
    all.extend([
        export("__wasm_call_ctors", ExternKind::Func, ExportCause::ExportAll),
        export("__stack_pointer", ExternKind::Global, ExportCause::Unknown),
        export("counter", ExternKind::Global, ExportCause::ExportDynamic),
        export("mem", ExternKind::Memory, ExportCause::Unknown),
        export("__indirect_function_table", ExternKind::Table, ExportCause::Unknown),
        export("tag", ExternKind::Tag, ExportCause::Unknown),
    ]);
    // ABI v2 names other exports, and with them the advice.
    let v2_export = |name: &str, kind, cause| Violation {
        kind: AbiViolation::UnexpectedExport { name: name.into(), kind, cause, abi_version: 2 },
        location: Location::Export { name: name.into() },
    };
    all.extend([
        v2_export("helper", ExternKind::Func, ExportCause::Unknown),
        v2_export("__wasm_call_ctors", ExternKind::Func, ExportCause::ExportAll),
        v2_export("__stack_pointer", ExternKind::Global, ExportCause::Unknown),
        v2_export("counter", ExternKind::Global, ExportCause::ExportDynamic),
    ]);
    let signature = |name: &str, expected: Signature| Violation {
        kind: AbiViolation::WrongSignature {
            name: name.into(),
            expected,
            found: Signature { params: vec![ValueType::I64], results: vec![ValueType::I64] },
        },
        location: Location::Export { name: name.into() },
    };
    all.extend([
        signature("fn_upper", Signature::unary()),
        signature("stream_sum_feed", Signature::unary()),
        signature("plugin_input_ptr", Signature::nullary()),
    ]);
    all.push(Violation {
        kind: AbiViolation::UnsupportedFeature { feature: Feature::Simd, abi_version: 2 },
        location: at_function(Some(0x40)),
    });
    let missing = |name: &str| AbiViolation::MissingExport { name: name.into() };
    all.extend(
        [missing("init"), missing("process"), missing("main")]
            .map(|kind| Violation { kind, location: Location::Module }),
    );
    let allocation =
        |location| Violation { kind: AbiViolation::DynamicAllocation { symbol: "malloc".into() }, location };
    all.extend([
        allocation(Location::Import { module: "env".into(), name: "malloc".into() }),
        allocation(Location::Function { index: 5, name: Some("malloc".into()), offset: None }),
        allocation(Location::Function { index: 5, name: None, offset: None }),
    ]);
    let float = |usage, location| Violation { kind: AbiViolation::FloatType { ty: ValueType::F64, usage }, location };
    all.extend([
        float(FloatUsage::Param, at_function(None)),
        float(FloatUsage::Result, at_function(None)),
        float(FloatUsage::Local, at_function(None)),
        float(FloatUsage::Global, Location::Global { index: 2 }),
        float(FloatUsage::TypeDefinition, Location::Type { index: 7 }),
    ]);
    all.extend(Feature::ALL.into_iter().map(|feature| Violation {
        kind: AbiViolation::UnsupportedFeature { feature, abi_version: 1 },
        location: Location::Section { name: "memory".into(), offset: 0x33 },
    }));
    all.push(Violation {
        kind: AbiViolation::Recursion { cycle: vec![FunctionRef { index: 3, name: Some("fib".into()) }] },
        location: at_function(Some(0x79)),
    });
    all
}

#[test]
fn every_message_text_snapshot() {
    let text: Vec<String> = every_message().iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(text.join("\n"));
}

#[test]
fn every_message_json_snapshot() {
    insta::assert_json_snapshot!(every_message());
}
