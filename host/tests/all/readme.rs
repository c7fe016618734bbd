//! Every `curl` example in README.md, run with the real `curl` against the real `host` binary,
//! so that a documented example that stops working fails the tests.
//!
//! The convention (README.md states it under "The HTTP API"): examples sit in ```` ```console ````
//! blocks; a line starting with `$ ` is a command (continued by lines ending in `\`), and the
//! lines after it, up to the next command, are its output, in which `...` stands for any text.
//! Port 8080 is a server of the example plugins, as `cargo xtask run` serves them; port 8081
//! is the folder of versions the README's versions example publishes (`hello` 1.0.0 and 1.1.0).
//! Examples run in the README's order, against one server per port.

use std::{path::PathBuf, process::Command};

use crate::{
    binary::{self, Running},
    support::{EXAMPLE_PLUGINS, add_version, plugin_dir},
};

/// One command of a console block and the output shown after it.
#[derive(Debug)]
struct Example {
    line: usize,
    command: String,
    output: Vec<String>,
}

fn readme() -> (PathBuf, String) {
    let path = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// The `curl` commands of README.md's console blocks, with their output. A `curl` anywhere
/// else in a code block, or a console command that is not a `curl`, is refused: every example
/// runs, or the convention changes here first.
/// The comment before the README's configuration of `redact`, which the example server gets.
const REDACT_CONFIG_MARKER: &str = "<!-- redact.config.json of the example server -->";

/// The comment before the library example's console block, which `embedder.rs` runs.
pub const EMBEDDER_BLOCK_MARKER: &str = "<!-- console block run by host/tests/all/embedder.rs";

fn examples(readme: &str) -> Vec<Example> {
    let mut found: Vec<Example> = Vec::new();
    let mut block: Option<&str> = None;
    let mut lines = readme.lines().enumerate().map(|(index, line)| (index + 1, line));
    let mut previous = "";
    while let Some((number, line)) = lines.next() {
        if let Some(fence) = line.trim_start().strip_prefix("```") {
            // The library example's block runs against the example, in its own test.
            let elsewhere = previous.starts_with(EMBEDDER_BLOCK_MARKER);
            block = if block.is_some() { None } else { Some(if elsewhere { "elsewhere" } else { fence.trim() }) };
            previous = line;
            continue;
        }
        previous = line;
        match block {
            Some("console") => {
                if let Some(first) = line.strip_prefix("$ ") {
                    let mut command = first.to_owned();
                    while command.ends_with('\\') {
                        let (_, next) = lines.next().expect("a continued command goes on");
                        command.push('\n');
                        command.push_str(next);
                    }
                    assert!(
                        command.contains("curl "),
                        "README.md:{number}: a console example that is not a curl: {command}"
                    );
                    found.push(Example { line: number, command, output: Vec::new() });
                } else {
                    let example =
                        found.last_mut().unwrap_or_else(|| panic!("README.md:{number}: output before a command"));
                    example.output.push(line.to_owned());
                }
            }
            Some("elsewhere") => {}
            Some(other) => {
                assert!(
                    !line.contains("curl "),
                    "README.md:{number}: a curl example in a ```{other} block; use ```console"
                );
            }
            None => {}
        }
    }
    found
}

/// Whether `output` is `pattern`, where `...` in the pattern stands for any text.
fn matches(pattern: &str, output: &str) -> bool {
    let pieces: Vec<&str> = pattern.split("...").collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if pieces.len() == 1 {
        return pattern == output;
    }
    let Some(mut rest) = output.strip_prefix(first) else { return false };
    for piece in &pieces[1..pieces.len() - 1] {
        let Some(at) = rest.find(piece) else { return false };
        rest = &rest[at + piece.len()..];
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A running `host` serving a plugin folder on an ephemeral port, killed when dropped.
pub(crate) struct Server {
    _child: Running,
    pub addr: String,
    pub logs: std::sync::mpsc::Receiver<String>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn start(dir: tempfile::TempDir, args: &[&str]) -> Self {
        let (child, addr, logs) = binary::start(|command| {
            command.args(["--plugin-dir", dir.path().to_str().unwrap()]).args(args);
        });
        Server { _child: child, addr, logs, _dir: dir }
    }
}

#[test]
fn every_curl_example_in_the_readme_runs_and_answers_as_shown() {
    let (path, text) = readme();
    let examples = examples(&text);
    assert!(examples.len() >= 6, "found only {} curl examples in {}", examples.len(), path.display());
    assert!(
        Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success()),
        "`curl` is not installed: run `cargo xtask setup`"
    );

    let served = plugin_dir(&EXAMPLE_PLUGINS);
    // The configuration the README gives `redact` (the JSON block after its marker).
    let config = text.split(REDACT_CONFIG_MARKER).nth(1).and_then(|rest| rest.split("```json").nth(1));
    let config = config.and_then(|block| block.split("```").next()).expect("the README's redact configuration");
    std::fs::write(served.path().join("redact.config.json"), config.trim()).unwrap();
    let examples_server = Server::start(served, &[]);
    let versions = tempfile::tempdir().unwrap();
    add_version(versions.path(), "hello", "1.0.0", "hello");
    add_version(versions.path(), "hello", "1.1.0", "simple");
    let versions_server = Server::start(versions, &[]);
    let scratch = tempfile::tempdir().unwrap();
    // Port 8082: tokens on, one client, whose token the examples find in `$TOKEN`.
    let token = "readme-example-token-a8Jq2p";
    let tokens = scratch.path().join("tokens.json");
    let client = serde_json::json!({"name": "readme", "token_sha256": crate::support::sha256_hex(token.as_bytes()), "plugins": ["*"], "listings": true});
    std::fs::write(&tokens, serde_json::json!({ "clients": [client] }).to_string()).unwrap();
    let tokens_server = Server::start(plugin_dir(&EXAMPLE_PLUGINS), &["--tokens-file", tokens.to_str().unwrap()]);

    let mut failures = Vec::new();
    for example in &examples {
        let mut command = example.command.clone();
        for (port, server) in [("8080", &examples_server), ("8081", &versions_server), ("8082", &tokens_server)] {
            for host in ["http://127.0.0.1", "http://localhost", "127.0.0.1", "localhost"] {
                command = command.replace(&format!("{host}:{port}"), &format!("http://{}", server.addr));
            }
        }
        assert!(
            !command.contains(":8080")
                && !command.contains(":8081")
                && !command.contains(":8082")
                && command.contains("http://127.0.0.1:"),
            "README.md:{}: an example whose server this test cannot tell: {}",
            example.line,
            example.command
        );
        let run = Command::new("timeout")
            .args(["120", "bash", "-o", "pipefail", "-c", &command])
            .current_dir(scratch.path())
            .env("TOKEN", token)
            .output()
            .expect("bash runs");
        // `curl -i` ends header lines with CRLF, as HTTP does; the README shows plain lines.
        let output = String::from_utf8_lossy(&run.stdout).replace("\r\n", "\n");
        let shown = example.output.join("\n");
        if !run.status.success() {
            failures.push(format!(
                "README.md:{}: exited with {}: {}\n{}",
                example.line,
                run.status,
                example.command,
                String::from_utf8_lossy(&run.stderr)
            ));
        } else if !shown.trim().is_empty() && !matches(shown.trim_end(), output.trim_end()) {
            failures.push(format!(
                "README.md:{}: {}\nshows:\n{shown}\nanswered:\n{}",
                example.line,
                example.command,
                output.trim_end()
            ));
        }
    }
    assert!(failures.is_empty(), "README examples that do not work as shown:\n\n{}", failures.join("\n\n"));
}

#[test]
fn example_output_patterns_match_as_documented() {
    assert!(matches("{\"output\":43}", "{\"output\":43}"));
    assert!(!matches("{\"output\":43}", "{\"output\":44}"));
    assert!(matches("{\"sha256\":\"...\",\"size\":...}", "{\"sha256\":\"c85f\",\"size\":431}"));
    assert!(matches("9f1c...", "9f1c00"));
    assert!(!matches("9f1c...", "0f1c00"));
    assert!(!matches("a...a", "a"), "the two ends may not overlap");
}

/// README.md's Go sample is the runnable example's code (`clients/go/cmd/example`, which the
/// Go client's test runs), so the sample cannot go stale.
#[test]
fn the_readmes_go_sample_is_the_runnable_example() {
    let (path, text) = readme();
    let sample: Vec<&str> = text
        .split("```go\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a Go sample")
        .lines()
        .collect();
    let example = std::fs::read_to_string(path.with_file_name("clients/go/cmd/example/main.go")).unwrap();
    // The example's body, one tab less indented, as the README shows it.
    let body: Vec<&str> = example.lines().map(|line| line.strip_prefix('\t').unwrap_or(line)).collect();
    assert!(sample.len() > 10, "the Go sample is {} lines", sample.len());
    assert!(
        body.windows(sample.len()).any(|window| window == sample.as_slice()),
        "README.md's Go sample is not a part of clients/go/cmd/example/main.go:\n{}",
        sample.join("\n")
    );
}
