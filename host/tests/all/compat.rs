//! The compatibility promise: plugins built to the seed's original contract (three integer
//! functions, no allocator) without `wasm_plugin.h`, so without an ABI version marker, run as
//! ABI v1 over HTTP, in both isolation modes, whichever common way they were built
//! (`plugins/compat/`: export attributes or linker flags, C or C++, `wasm32` or `wasm32-wasi`,
//! `-O0`, `-O2` or `-Oz`).

use plugin_host::runtime::ExecutionMode;
use serde_json::{Value, json};

use crate::support::{
    TestServer, app_state, built_fixtures, local_store, runtime_config, settings, state_with, workers,
};

/// Every build of every compat fixture, by file stem, copied into a fresh plugin folder.
fn compat_plugins() -> (Vec<String>, tempfile::TempDir) {
    let built = built_fixtures().join("compat");
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&built)
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask build-plugins`", built.display()))
    {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "wasm") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            names.push(path.file_stem().unwrap().to_str().unwrap().to_owned());
        }
    }
    names.sort();
    // Five build styles at three optimisation levels; a missing one would test nothing.
    assert_eq!(names.len(), 15, "{names:?}");
    (names, dir)
}

/// An answer of `POST /run`: the output, or the error code and a piece of its message.
type Answer = Result<i64, (&'static str, &'static str)>;

/// What every compat plugin answers (see plugins/compat/export-name.c): the input, the status
/// and the answer.
const CASES: [(i32, u16, Answer); 9] = [
    (7, 200, Ok(49)),
    (0, 200, Ok(0)),
    (46340, 200, Ok(2_147_395_600)),
    (-1, 500, Err(("plugin_error", "not initialized (-1)"))),
    (-2, 500, Err(("plugin_error", "already initialized (-2)"))),
    (-3, 422, Err(("invalid_argument", "invalid argument (-3)"))),
    (-4, 500, Err(("plugin_error", "internal error (-4)"))),
    (46341, 500, Err(("plugin_error", "internal error (-4)"))),
    (-100, 422, Err(("invalid_argument", "invalid argument (-3)"))),
];

async fn every_build_answers_as_v1(server: &TestServer, names: &[String]) {
    for name in names {
        for (input, status, expected) in CASES {
            let (got_status, body) = server.run(name, input).await;
            assert_eq!(got_status, status, "{name}({input}): {body}");
            match expected {
                Ok(output) => assert_eq!(body, json!({ "output": output }), "{name}({input})"),
                Err((code, message)) => {
                    assert_eq!(body["error"]["code"], code, "{name}({input}): {body}");
                    let text = body["error"]["message"].as_str().unwrap();
                    assert!(text.contains(message), "{name}({input}): {text:?} should say {message:?}");
                }
            }
        }
        // The listing tells what the file declares (nothing) from what it runs as (v1).
        let status: Value =
            server.client.get(server.url(&format!("/plugins/{name}"))).send().await.unwrap().json().await.unwrap();
        assert_eq!(
            status["abi"],
            json!({
                "compliant": true,
                "version": 1,
                "declared_version": null,
                "violations": [],
                "warnings": ["missing-abi-version"],
            }),
            "{name}"
        );
        assert_eq!(status["loaded"], true, "{name}");
    }
}

#[tokio::test]
async fn seed_contract_plugins_without_the_header_run_in_process() {
    let (names, dir) = compat_plugins();
    let server = TestServer::start(app_state(local_store(dir.path()), runtime_config(ExecutionMode::Aot), 64)).await;
    every_build_answers_as_v1(&server, &names).await;
}

#[tokio::test]
async fn seed_contract_plugins_without_the_header_run_in_worker_processes() {
    let (names, dir) = compat_plugins();
    let settings = settings(&runtime_config(ExecutionMode::Aot), plugin_host::Isolation::Workers(workers(2)), 64);
    let server = TestServer::start(state_with(local_store(dir.path()), settings)).await;
    every_build_answers_as_v1(&server, &names).await;
}

#[tokio::test]
async fn a_marker_naming_an_unknown_version_is_still_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = |marker: &str| {
        crate::support::wat(&format!(
            r#"(module (@custom "wasm_plugin_abi" "{marker}")
                 (func (export "init") (result i32) (i32.const 0))
                 (func (export "process") (param i32) (result i32) (local.get 0))
                 (func (export "cleanup") (result i32) (i32.const 0)))"#
        ))
    };
    std::fs::write(dir.path().join("future.wasm"), plugin(r"\09\00\00\00")).unwrap();
    std::fs::write(dir.path().join("mixed.wasm"), plugin(r"\01\00\00\00\09\00\00\00")).unwrap();
    std::fs::write(dir.path().join("short.wasm"), plugin(r"\01\00")).unwrap();
    let server = TestServer::in_memory(app_state(local_store(dir.path()), runtime_config(ExecutionMode::Aot), 64));
    for (name, violation) in [
        ("future", "unsupported-abi-version"),
        ("mixed", "conflicting-abi-versions"),
        ("short", "malformed-abi-section"),
    ] {
        let (status, body) = server.run(name, 1).await;
        assert_eq!((status, body["error"]["code"].as_str()), (500, Some("abi_violation")), "{name}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(violation), "{name}: {body}");
    }
}
