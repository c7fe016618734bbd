//! The README's library example (`examples/embedder/`), built as the crate of its own a user
//! would have, outside the workspace: in process and with worker processes, serving real plugins
//! over real HTTP, with nothing from this repository but the path dependency and the build line.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
    time::Instant,
};

use serde_json::Value;

use crate::support::{fault_bytes, plugin_dir, sha256_hex};

/// `examples/embedder/`, from the test runner's package folder at run time (see `built_plugins`).
fn example() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../examples/embedder")
}

/// Beside this test binary's own build output, so that a second run builds nothing.
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target folder").join("embedder")
}

/// `cargo ARGS` in the example's folder, from its own lockfile (crates the workspace's build did
/// not fetch, a fresh machine fetches from the registry the machine's cargo is configured for).
fn cargo(args: &[&str]) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command
        .current_dir(example())
        .args(args)
        .args(["--locked"])
        // What the test runner adds for the test binary itself must not help the example.
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("CARGO_TARGET_DIR");
    command
}

/// Builds the example (its features as given) and returns its binary.
fn build(features: &[&str]) -> PathBuf {
    let target = target_dir();
    let mut command = cargo(&["build"]);
    command.arg("--target-dir").arg(&target).args(features.iter().flat_map(|feature| ["--features", feature]));
    // No debug information: nobody debugs this build, and it keeps the folder and the link small.
    command.env("CARGO_PROFILE_DEV_DEBUG", "0");
    let started = Instant::now();
    let status = command.status().expect("cargo starts");
    println!("embedder built with features {features:?} in {:.1?}", started.elapsed());
    assert!(
        status.success(),
        "building examples/embedder with features {features:?} failed: {status} (if its Cargo.lock is out of date, \
         see `the_embedder_locks_the_workspaces_versions` in xtask/src/tidy.rs)"
    );
    target.join("debug/embedder")
}

/// The example's binary, serving a folder on a free port of 127.0.0.1.
struct Service {
    child: Child,
    address: String,
    // Kept open: the service may print again.
    _stdout: BufReader<ChildStdout>,
    client: reqwest::Client,
}

impl Service {
    fn start(binary: &Path, plugins: &Path, envs: &[(&str, &str)]) -> Service {
        let mut child = Command::new(binary)
            .arg(plugins)
            .arg("127.0.0.1:0")
            .envs(envs.iter().copied())
            .env_remove("LD_LIBRARY_PATH")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the service prints its address");
        let address = match line.trim().strip_prefix("listening on ") {
            Some(address) => format!("http://{address}"),
            None => panic!("the service printed {line:?} instead of its address ({:?})", child.wait()),
        };
        Service { child, address, _stdout: stdout, client: reqwest::Client::new() }
    }

    /// `GET /run/{plugin}/{input}`: the status and the body.
    async fn run(&self, plugin: &str, input: i32) -> (u16, String) {
        let response = self.client.get(format!("{}/run/{plugin}/{input}", self.address)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn upper(&self, text: &str) -> (u16, String) {
        let response = self.client.post(format!("{}/upper", self.address)).body(text.to_owned()).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // Its worker processes notice that their parent is gone and exit.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"))
}

/// What every mode must do: run `hello` and `text`'s `upper`, saying what ran.
async fn serves_both_abis(service: &Service, plugins: &Path) {
    let (status, body) = service.run("hello", 21).await;
    assert_eq!(status, 200, "{body}");
    let hello = std::fs::read(plugins.join("hello.wasm")).unwrap();
    let expected =
        serde_json::json!({ "output": 43, "plugin": "hello", "version": null, "sha256": sha256_hex(&hello) });
    assert_eq!(json(&body), expected);

    let (status, body) = service.upper("hi there").await;
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    assert_eq!((&body["output"], &body["plugin"]), (&"HI THERE".into(), &"text".into()), "{body}");
    let text = std::fs::read(plugins.join("text.wasm")).unwrap();
    assert_eq!(body["sha256"], sha256_hex(&text), "{body}");

    let (status, body) = service.run("no-such-plugin", 1).await;
    assert_eq!((status, body.as_str()), (404, "plugin_not_found: no such plugin"));
}

/// One test, not two: both builds write the same binary.
#[tokio::test]
async fn the_readme_embedder_builds_and_runs_plugins_in_process_and_in_worker_processes() {
    let plugins = plugin_dir(&["hello", "text"]);
    // Crashes its worker on inputs divisible by 7 (the ABI check refuses it: it recurses).
    let crasher = "crash-on-some-inputs";
    std::fs::write(plugins.path().join(format!("{crasher}.wasm")), fault_bytes(crasher)).unwrap();

    // Default features off: a small in-process host, without the server's crates.
    let tree = cargo(&["tree", "-p", "plugin-host", "-e", "normal", "--prefix", "none"]).output().expect("cargo tree");
    assert!(tree.status.success(), "cargo tree: {}", String::from_utf8_lossy(&tree.stderr));
    let tree = String::from_utf8(tree.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    assert!(crates.contains(&"wasmedge-sdk"), "{tree}");
    let unwanted = ["axum", "hyper", "tower", "clap", "prometheus", "oci-client", "wait-timeout"];
    let found: Vec<_> = crates.iter().filter(|name| unwanted.iter().any(|u| name.starts_with(u))).collect();
    assert!(found.is_empty(), "plugin-host without default features depends on {found:?}:\n{tree}");

    let binary = build(&[]);
    {
        let service = Service::start(&binary, plugins.path(), &[]);
        serves_both_abis(&service, plugins.path()).await;
        // In this process a plugin that could crash it never loads: the ABI check refuses it.
        let (status, body) = service.run(crasher, 7).await;
        assert_eq!(status, 500, "{body}");
        assert!(body.starts_with("abi_violation: "), "{body}");
        let (status, body) = service.run("hello", 1).await;
        assert_eq!((status, &json(&body)["output"]), (200, &Value::from(3)), "{body}");
    }

    let binary = build(&["workers"]);
    // With the check off (the example's `CHECK_ABI=off`), the crashing plugin runs: in a worker.
    let service = Service::start(&binary, plugins.path(), &[("CHECK_ABI", "off")]);
    serves_both_abis(&service, plugins.path()).await;
    let (status, body) = service.run(crasher, 7).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("plugin_crashed: "), "{body}");
    // The service keeps answering, on its other workers and on a new one.
    assert_eq!(service.run(crasher, 8).await.0, 200);
    serves_both_abis(&service, plugins.path()).await;
    let (status, body) = service.run(crasher, 14).await;
    assert_eq!((status, body.starts_with("plugin_crashed: ")), (500, true), "{body}");
    assert_eq!(service.run("hello", 1).await.0, 200);
    the_readmes_curl_examples_answer_as_shown(&service);
}

/// Runs the `curl` lines of the README's console block for the example (the one after
/// [`crate::readme::EMBEDDER_BLOCK_MARKER`]) against `service`, with the real `curl`, and
/// checks each answer against the line shown after it (`…` stands for any text).
fn the_readmes_curl_examples_answer_as_shown(service: &Service) {
    let readme = std::fs::read_to_string(example().join("../../README.md")).unwrap();
    let block = readme.split(crate::readme::EMBEDDER_BLOCK_MARKER).nth(1).expect("the README's example block");
    let block = block.split("```console").nth(1).and_then(|b| b.split("```").next()).expect("a console block");
    let lines: Vec<&str> = block.lines().filter(|line| !line.trim().is_empty()).collect();
    let address = service.address.trim_start_matches("http://");
    let mut ran = 0;
    for (index, line) in lines.iter().enumerate() {
        let Some(command) = line.strip_prefix("$ curl ") else { continue };
        let command = format!("curl {}", command.replace("127.0.0.1:3000", address));
        let output = Command::new("bash").arg("-c").arg(&command).output().expect("bash runs curl");
        let answer = String::from_utf8_lossy(&output.stdout);
        let shown = lines.get(index + 1).expect("each curl shows its answer");
        let (before, after) =
            shown.split_once('…').map_or((*shown, ""), |(b, a)| (b, a.split_once('"').map_or("", |(_, rest)| rest)));
        assert!(
            output.status.success() && answer.starts_with(before) && answer.trim_end().ends_with(after),
            "README example `{command}` answered {answer:?}, the README shows {shown:?}"
        );
        ran += 1;
    }
    assert_eq!(ran, 2, "the README's example block has its two curl examples");
}
