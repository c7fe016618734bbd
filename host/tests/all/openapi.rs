//! The API against its OpenAPI document, on the real `host` binary serving the example plugins
//! (and the fault fixtures that fail quickly):
//! the document it serves is the committed `docs/openapi.json` and a valid OpenAPI 3.1 document
//! (openapi-spec-validator), and schemathesis, generating requests from it, finds no answer
//! outside it. Both tools come from PyPI, pinned in `host/tests/requirements.txt`, in the
//! virtualenv `cargo xtask setup` makes.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use host::api::openapi::is_plugin_fault;
use plugin_host::FailureKind;
use tempfile::TempDir;

use crate::{
    binary::{self, Running},
    support::{built_fixtures, built_plugins},
};

/// Test cases schemathesis generates per operation and phase: enough to reach every status an
/// operation documents with the example plugins, within about 30 s of a debug build.
const MAX_EXAMPLES: &str = "100";

/// Fixed, so a failure found once is found again (`--seed` on the command line printed with it).
const SEED: &str = "20261204";

/// The virtualenv holding the API test tools: named after the requirements file's content, as
/// xtask's `pinned_venv` names it (FNV-1a, 64 bits).
fn api_tools() -> PathBuf {
    let requirements_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/requirements.txt");
    let requirements = fs::read(&requirements_file).expect("host/tests/requirements.txt");
    let hash = requirements
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("wasm-plugin-host");
    let venv = cache.join(format!("venv-{hash:016x}"));
    let installed = fs::read(venv.join("requirements.txt")).is_ok_and(|done| done == requirements);
    assert!(installed, "the API test tools are not in {}: run `cargo xtask setup`", venv.display());
    venv
}

/// Fault fixtures whose every call waits out the call deadline: each would cost schemathesis a
/// second per case, and `plugin_timeout` is covered by the host's own tests.
const SLOW_FAULTS: [&str; 2] = ["loop-init", "loop-process"];

/// A plugin folder with every example plugin, two versions of `hello` beside its unversioned
/// file (so the version endpoints have something to show), and the fault fixtures that fail
/// quickly (traps, crashes, broken buffers, invalid modules, memory over the cap), so that the
/// plugin-fault answers are exercised too.
fn example_plugins() -> TempDir {
    let dir = TempDir::new().unwrap();
    let faults = built_fixtures().join("faults");
    for folder in [built_plugins(), faults] {
        for entry in fs::read_dir(&folder).expect("`cargo xtask build-plugins` has run") {
            let path = entry.unwrap().path();
            let slow = path.file_stem().is_some_and(|stem| SLOW_FAULTS.iter().any(|s| stem == *s));
            if path.extension().is_some_and(|e| e == "wasm") && !slow {
                fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    fs::create_dir(dir.path().join("hello")).unwrap();
    fs::copy(built_plugins().join("hello.wasm"), dir.path().join("hello/1.0.0.wasm")).unwrap();
    fs::copy(built_plugins().join("hello_rust.wasm"), dir.path().join("hello/1.1.0.wasm")).unwrap();
    dir
}

/// The plugins in `folder` and the v2 functions they offer, as the ABI checker reads them.
fn names_and_functions(folder: &Path) -> (Vec<String>, Vec<String>) {
    let (mut names, mut functions) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(|n| n.trim_end_matches(".wasm")) else {
            continue;
        };
        names.push(name.to_owned());
        if let Ok(bytes) = fs::read(&path)
            && let Some(layout) = plugin_sdk::check(&bytes).v2
        {
            functions.extend(layout.functions.into_iter().map(|function| function.name));
        }
    }
    names.sort_unstable();
    functions.sort_unstable();
    functions.dedup();
    (names, functions)
}

/// The host binary on 127.0.0.1, port 0, serving `plugins` (worker processes, the default).
struct Server {
    _child: Running,
    addr: String,
}

impl Server {
    fn start(plugins: &Path) -> Self {
        let (child, addr, _logs) = binary::start(|command| {
            command.env("PLUGIN_DIR", plugins).env("RUST_LOG", "warn");
        });
        Server { _child: child, addr }
    }
}

/// The command that regenerates `docs/openapi.json`.
const REGENERATE: &str = "UPDATE_EXPECT=1 cargo test -p host --test all the_committed_document_is_current";

/// `docs/openapi.json` is the document the server serves (the way rust-analyzer checks its
/// generated files); `UPDATE_EXPECT=1` rewrites it.
#[test]
fn the_committed_document_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let generated = format!("{}\n", host::api::openapi::document_json());
    if fs::read_to_string(&path).is_ok_and(|committed| committed == generated) {
        return;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1") {
        fs::write(&path, generated).expect("write docs/openapi.json");
        return;
    }
    panic!("docs/openapi.json is not the document the server serves; regenerate it with `{REGENERATE}` and commit it");
}

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_a_valid_openapi_3_1_document() {
    let venv = api_tools();
    let plugins = example_plugins();
    let server = Server::start(plugins.path());
    let response = reqwest::get(format!("http://{}/openapi.json", server.addr)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served = response.text().await.unwrap();
    let committed = include_str!("../../../docs/openapi.json");
    assert!(
        committed.trim_end() == served,
        "docs/openapi.json is not what the server serves; regenerate it with `{REGENERATE}`"
    );
    let file = plugins.path().join("openapi.json");
    fs::write(&file, &served).unwrap();
    let output = Command::new(venv.join("bin/openapi-spec-validator")).arg(&file).output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "openapi-spec-validator refused the document:\n{report}");
    assert!(report.contains("OK"), "{report}");
}

/// Schemathesis sends what the document allows (and, in its negative phases, what it does not)
/// to every operation, in every phase (examples, coverage, fuzzing, stateful), and checks every
/// answer: its status, content type, headers and body are the documented ones; a request the
/// document forbids is refused; a method an endpoint does not serve is 405 with `Allow`; and
/// no 5xx answer is anything but a fault of the plugin.
#[test]
fn schemathesis_finds_no_answer_outside_the_document() {
    let venv = api_tools();
    let plugins = example_plugins();
    let server = Server::start(plugins.path());
    let (names, functions) = names_and_functions(plugins.path());
    let plugin_faults: Vec<&str> = FailureKind::ALL
        .iter()
        .filter(|kind| host::api::status(**kind).is_server_error() && is_plugin_fault(**kind))
        .map(|kind| kind.code())
        .collect();
    let checks = [
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        // schemathesis_hooks.py: instead of `not_a_server_error`, which allows no 5xx at all.
        "only_plugin_faults_are_server_errors",
    ];
    let hooks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all");
    // Hypothesis keeps its example database in the working directory: a temporary one.
    let work = TempDir::new().unwrap();
    let started = Instant::now();
    let output = Command::new(venv.join("bin/schemathesis"))
        .current_dir(work.path())
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", &hooks)
        .env("PLUGIN_FAULT_CODES", plugin_faults.join(","))
        .env("PLUGIN_NAMES", names.join(","))
        .env("FUNCTION_NAMES", functions.join(","))
        .env("NO_COLOR", "1")
        .args(["run", &format!("http://{}/openapi.json", server.addr)])
        .args(["--checks", &checks.join(",")])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED, "--no-color"])
        .args(["--report", "har", "--report-har-path", "run.har"])
        .output()
        .expect("schemathesis runs");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found answers outside docs/openapi.json:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What the server answered, by status and code: the run reached real plugins, their
    // outputs and their faults, not only refusals of names that do not exist.
    let har: serde_json::Value = serde_json::from_slice(&fs::read(work.path().join("run.har")).unwrap()).unwrap();
    let mut answers = std::collections::BTreeMap::<(u64, String), usize>::new();
    for entry in har["log"]["entries"].as_array().unwrap() {
        let status = entry["response"]["status"].as_u64().unwrap();
        let text = entry["response"]["content"]["text"].as_str().unwrap_or_default();
        let code = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|body| body["error"]["code"].as_str().map(str::to_owned));
        *answers.entry((status, code.unwrap_or_default())).or_default() += 1;
    }
    println!("schemathesis's requests, by answer: {answers:?}");
    let seen = |status: u64, code: &str| answers.contains_key(&(status, code.to_owned()));
    for (status, code) in [(200, ""), (400, "wrong_abi_version"), (404, "function_not_found")] {
        assert!(seen(status, code), "schemathesis never got {status} {code:?}: {answers:?}");
    }
    let faults = plugin_faults.iter().filter(|code| answers.keys().any(|(status, c)| *status >= 500 && c == *code));
    assert!(faults.count() >= 2, "schemathesis met fewer than two kinds of plugin fault: {answers:?}");
    // Every operation was tested but the document's own, which schemathesis leaves out when it
    // reads the document from the server.
    let operations = host::api::openapi::Endpoint::ALL.len() - 1;
    assert!(report.contains(&format!("Tested: {operations}")), "{report}");
    println!("schemathesis: {:.1} s", started.elapsed().as_secs_f64());
}
