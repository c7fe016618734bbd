//! `POST /run` through the real router (axum's JSON extraction, the request type, the name
//! allowlist, the in-process runner), over a store holding two small plugins: `echo` (ABI v1)
//! and `bytes` (ABI v2).

use std::sync::Arc;

use axum::{Router, body::Body, http::Request};
use host::{
    api::{AppState, RunInput, RunRequest, app},
    metrics::Metrics,
};
use http_body_util::BodyExt;
use plugin_host::{ExecutionMode, FailureKind, Host, LocalPluginStore, PluginName, Settings, store::MAX_NAME_LEN};
use tower::ServiceExt;

/// The README's limit on a request body (`413 body_too_large` above it).
const MAX_BODY_BYTES: usize = 4 << 20;

/// `echo`: `process(n)` is `n`, so a successful answer can be checked against the request.
const ECHO: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "init") (result i32) (i32.const 0))
  (func (export "process") (param i32) (result i32) (local.get 0))
  (func (export "cleanup") (result i32) (i32.const 0))
  (@custom "wasm_plugin_abi" "\01\00\00\00"))"#;

/// `bytes`, ABI v2: `fn_echo` copies its input, `fn_flip` flips the top bit of every byte (so
/// text in gives bytes that are not UTF-8 out); buffers of 4096 bytes.
const BYTES: &str = include_str!("../../host/tests/all/bytes.wat");

/// `bytes`'s input capacity (`413 input_too_large` above it).
const BYTES_CAPACITY: usize = 4096;

/// A router and the runtime to drive it, made once per process (AFL++ runs many inputs per
/// process) and kept with the plugin folder it serves.
#[derive(Debug)]
pub struct RequestHarness {
    runtime: tokio::runtime::Runtime,
    router: Router,
    _plugins: tempfile::TempDir,
    _aot: tempfile::TempDir,
}

impl RequestHarness {
    pub fn new() -> Self {
        let plugins = tempfile::tempdir().expect("temporary plugin folder");
        std::fs::write(plugins.path().join("echo.wasm"), wat::parse_str(ECHO).expect("echo is valid WAT"))
            .expect("write echo.wasm");
        std::fs::write(plugins.path().join("bytes.wasm"), wat::parse_str(BYTES).expect("bytes is valid WAT"))
            .expect("write bytes.wasm");
        let aot = tempfile::tempdir().expect("temporary AOT folder");
        // The interpreter: this target is about parsing, and compiling echo is not.
        let settings = Settings {
            mode: ExecutionMode::Interpreter,
            aot_cache_dir: Some(aot.path().join("aot")),
            max_calls_in_flight: 4,
            cache_capacity: 4,
            ..Settings::default()
        };
        let store = LocalPluginStore::new(plugins.path(), settings.limits.max_plugin_bytes).expect("plugin store");
        let metrics = Arc::new(Metrics::new());
        let host = Host::with_observer(Arc::new(store), settings, Arc::clone(&metrics) as _).expect("host");
        let router = app(AppState::new(host, metrics));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        RequestHarness { runtime, router, _plugins: plugins, _aot: aot }
    }

    /// Sends `body` as a JSON `POST /run` and checks the answer against what the request says
    /// (an independent reading of the README's rules), then checks the name allowlist on the
    /// whole input read as a name.
    pub fn run(&self, body: &[u8]) {
        let request = Request::post("/run")
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .expect("a valid request");
        let (status, answer) = self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("the router never fails");
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await.expect("a complete body").to_bytes();
            (status, bytes)
        });
        let answer: serde_json::Value = serde_json::from_slice(&answer).expect("every answer is JSON");
        // Over the body limit, nothing else about the request matters.
        let parsed = serde_json::from_slice::<RunRequest>(body).ok().filter(|_| body.len() <= MAX_BODY_BYTES);
        match (status, &parsed) {
            (200, Some(request)) if request.plugin == "bytes" => {
                assert_eq!(answer, expected_bytes_answer(request), "{request:?}");
            }
            (200, Some(request)) => {
                // Otherwise only a v1 call of `echo` (an integer, no function) can succeed.
                assert_eq!(request.plugin, "echo");
                let (None, Some(RunInput::Integer(input)), None) =
                    (&request.function, &request.input, &request.input_base64)
                else {
                    panic!("200 for a call `echo` cannot answer: {answer}");
                };
                assert_ne!(request.output_base64, Some(true), "a v1 answer cannot be base64: {answer}");
                assert!(*input >= 0, "a negative result is an error code, not an output: {answer}");
                assert_eq!(answer, serde_json::json!({ "output": input }));
            }
            (200, None) => panic!("200 for a body that is not a valid request: {answer}"),
            (_, _) => {
                let code = answer["error"]["code"].as_str().expect("an error has a code");
                let kind = FailureKind::ALL.iter().find(|kind| kind.code() == code).expect("a known code");
                assert_ne!(*kind, FailureKind::Internal, "a request made the host blame itself: {answer}");
                assert_eq!(host::api::status(*kind).as_u16(), status, "{answer}");
                if body.len() > MAX_BODY_BYTES {
                    assert_eq!(*kind, FailureKind::BodyTooLarge, "{answer}");
                } else if let Some(request) = &parsed {
                    let allowed = allowlisted(&request.plugin);
                    match kind {
                        FailureKind::InvalidPluginName => assert!(!allowed, "{:?} was refused", request.plugin),
                        FailureKind::PluginNotFound => {
                            assert!(allowed && request.plugin != "echo" && request.plugin != "bytes")
                        }
                        // Only `bytes` has functions, and only `echo` and `flip`.
                        FailureKind::FunctionNotFound => assert!(
                            request.plugin == "bytes" && !matches!(request.function.as_deref(), Some("echo" | "flip")),
                            "{answer}"
                        ),
                        FailureKind::InputTooLarge => assert!(
                            request.plugin == "bytes" && input_bytes(request).is_some_and(|i| i.len() > BYTES_CAPACITY),
                            "{answer}"
                        ),
                        // Well-formed JSON that mixes the call forms, asks a v1 plugin for a
                        // function, or names a version `echo` (an unversioned file) cannot have.
                        FailureKind::InvalidRequest
                        | FailureKind::WrongAbiVersion
                        | FailureKind::InvalidVersionRequirement
                        | FailureKind::VersionNotFound => assert!(allowed, "{:?} got {kind:?}", request.plugin),
                        // echo returns its input, and a negative result is an error code: -3
                        // is the plugin refusing its input, any other one a plugin error.
                        FailureKind::InvalidArgument => {
                            assert!(
                                request.plugin == "echo" && matches!(request.input, Some(RunInput::Integer(-3))),
                                "{answer}"
                            )
                        }
                        FailureKind::PluginError => assert!(
                            request.plugin == "echo"
                                && matches!(request.input, Some(RunInput::Integer(n)) if n < 0 && n != -3),
                            "{answer}"
                        ),
                        other => panic!("a valid request for {:?} failed with {other:?}", request.plugin),
                    }
                }
            }
        }
        check_name(&String::from_utf8_lossy(body));
    }
}

/// The bytes a v2 call sends: its `"input"` text, or its `"input_base64"` decoded.
fn input_bytes(request: &RunRequest) -> Option<Vec<u8>> {
    use base64::Engine as _;
    match (&request.input, &request.input_base64) {
        (Some(RunInput::Text(text)), None) => Some(text.as_bytes().to_vec()),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD.decode(encoded).ok(),
        _ => None,
    }
}

/// What a successful call of `bytes` answers, by the README's rule read again: the output in
/// the input's form (`"output_base64"` for `"input_base64"`, text for `"input"`) unless
/// `"output_base64"` says otherwise, and text only for valid UTF-8.
fn expected_bytes_answer(request: &RunRequest) -> serde_json::Value {
    use base64::Engine as _;
    let input = input_bytes(request).unwrap_or_else(|| panic!("200 for a call without one valid input: {request:?}"));
    assert!(input.len() <= BYTES_CAPACITY, "200 for an input over the capacity");
    let output: Vec<u8> = match request.function.as_deref() {
        Some("echo") => input,
        Some("flip") => input.iter().map(|b| b ^ 0x80).collect(),
        other => panic!("200 for a function `bytes` does not have: {other:?}"),
    };
    let base64_out = request.output_base64.unwrap_or(request.input_base64.is_some());
    match String::from_utf8(output) {
        Ok(text) if !base64_out => serde_json::json!({ "output": text }),
        Ok(text) => serde_json::json!({ "output_base64": base64::engine::general_purpose::STANDARD.encode(text) }),
        Err(binary) => {
            serde_json::json!({ "output_base64": base64::engine::general_purpose::STANDARD.encode(binary.as_bytes()) })
        }
    }
}

impl Default for RequestHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// The README's rule, written again independently of `PluginName::new`: 1 to 64 bytes of
/// ASCII letters, digits, `_` and `-`, starting with a letter or digit.
fn allowlisted(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=MAX_NAME_LEN).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `PluginName::new` agrees with the rule, and an accepted name maps to exactly one file
/// directly inside the store's root and back.
fn check_name(name: &str) {
    match PluginName::new(name) {
        Ok(valid) => {
            assert!(allowlisted(name), "{name:?} was accepted");
            let file = valid.file_name();
            assert!(!file.contains('/') && !file.contains('\0') && file != ".." && file != ".");
            assert_eq!(PluginName::from_file_name(&file).as_ref(), Some(&valid));
        }
        Err(_) => assert!(!allowlisted(name), "{name:?} was refused"),
    }
}
