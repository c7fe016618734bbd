//! `cargo xtask check-abi` as a process, the way CI and plugin authors run it: exit status,
//! what goes to stdout and to stderr, with `RUST_BACKTRACE=1` set as it often is.

use std::{path::Path, process::Output};

use serde_json::Value;

/// Three exports in WAT, with or without the ABI version marker `wasm_plugin.h` writes.
fn plugin(marker: bool, extra: &str) -> Vec<u8> {
    let marker = if marker { r#"(@custom "wasm_plugin_abi" "\01\00\00\00")"# } else { "" };
    wat::parse_str(format!(
        r#"(module {marker}
             (memory (export "memory") 1)
             (func (export "init") (result i32) (i32.const 0))
             (func (export "process") (param i32) (result i32) (local.get 0))
             (func (export "cleanup") (result i32) (i32.const 0))
             {extra})"#
    ))
    .expect("test WAT parses")
}

fn check_abi(args: &[&str], file: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("check-abi")
        .args(args)
        .arg(file)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("xtask runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// stdout must be exactly one JSON document.
fn one_json_document(output: &Output) -> Value {
    let stdout = text(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("stdout is not one JSON document ({err}):\n{stdout}"))
}

fn assert_no_error_chain(output: &Output) {
    let stderr = text(&output.stderr);
    assert!(
        !stderr.contains("Error:") && !stderr.contains("backtrace"),
        "a linter's findings are not a crash:\n{stderr}"
    );
}

#[test]
fn violations_exit_1_with_the_report_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("float.wasm");
    std::fs::write(&file, plugin(true, "(func (param f32))")).unwrap();

    let human = check_abi(&[], &file);
    assert_eq!(human.status.code(), Some(1));
    assert_no_error_chain(&human);
    assert!(text(&human.stderr).is_empty(), "{}", text(&human.stderr));
    assert!(text(&human.stdout).contains("error[float-type]"), "{}", text(&human.stdout));

    let json = check_abi(&["--format", "json"], &file);
    assert_eq!(json.status.code(), Some(1));
    assert_no_error_chain(&json);
    let document = one_json_document(&json);
    assert_eq!(document["passed"], false);
    assert_eq!(document["files"][0]["violations"][0]["code"], "float-type");
}

#[test]
fn a_missing_marker_is_a_warning_that_can_be_denied() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("seed.wasm");
    std::fs::write(&file, plugin(false, "")).unwrap();

    let lenient = check_abi(&[], &file);
    assert_eq!(lenient.status.code(), Some(0), "{}", text(&lenient.stdout));
    let stdout = text(&lenient.stdout);
    assert!(stdout.contains("follows plugin ABI v1, 1 warning"), "{stdout}");
    assert!(stdout.contains("warning[missing-abi-version]"), "{stdout}");

    let strict = check_abi(&["--deny-warnings"], &file);
    assert_eq!(strict.status.code(), Some(1));
    assert_no_error_chain(&strict);

    let json = one_json_document(&check_abi(&["--format=json"], &file));
    assert_eq!(json["files"][0]["declared_abi_version"], Value::Null);
    assert_eq!(json["files"][0]["abi_version"], 1);
    assert_eq!(json["passed"], true);
}

#[test]
fn json_mode_prints_one_document_whatever_happens() {
    let dir = tempfile::tempdir().unwrap();
    // A file that cannot be read.
    let missing = check_abi(&["--format", "json"], &dir.path().join("missing.wasm"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(one_json_document(&missing)["files"][0]["error"].as_str().unwrap().starts_with("cannot read the file"));
    // A command line that cannot be parsed: the document says so, stderr has the details.
    let bad_flag = check_abi(&["--format", "json", "--no-such-flag"], dir.path());
    assert_eq!(bad_flag.status.code(), Some(1));
    let document = one_json_document(&bad_flag);
    assert!(document["error"].as_str().unwrap().contains("--no-such-flag"), "{document}");
    assert!(text(&bad_flag.stderr).contains("--no-such-flag"));
}
