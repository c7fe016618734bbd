//! The Go client (`clients/go`) against the real `host` binary: its `go test` suite and its
//! runnable example, with Debian's Go, which `cargo xtask setup` installs.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::{
    readme::Server,
    support::{EXAMPLE_PLUGINS, add_version, fault_bytes, plugin_dir, sha256_hex},
};

/// The Go client's folder in this checkout (found at run time, as [`crate::support::built_plugins`]
/// explains).
fn client_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../clients/go")
}

/// `go`, or a failure saying how to get it: a missing toolchain must never pass as a skip.
fn go() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("go"))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| panic!("`go` is not installed (the Go client's tests need it): run `cargo xtask setup`"))
}

/// A `go` command that never reaches the network: no toolchain download, no module proxy (the
/// client uses the standard library only), and caches in the target folder.
fn go_command(args: &[&str]) -> Command {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut command = Command::new(go());
    command
        .args(args)
        .current_dir(client_dir())
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=readonly")
        .env("GOCACHE", cache.join("go-build"))
        .env("GOPATH", cache.join("go-path"));
    command
}

/// The folder the Go tests expect (see `clients/go/client_test.go`): the example plugins, `calc`
/// in three versions that answer differently, `digest` (sha256) in two, and `hostile`, the ABI v2
/// fault plugin (`plugins/faults/v2-hostile.c`).
fn served_folder() -> tempfile::TempDir {
    let dir = plugin_dir(&EXAMPLE_PLUGINS);
    std::fs::write(dir.path().join("hostile.wasm"), fault_bytes("v2-hostile")).unwrap();
    for (version, plugin) in [("1.0.0", "simple"), ("1.4.2", "hello"), ("2.0.0", "abi")] {
        add_version(dir.path(), "calc", version, plugin);
    }
    for version in ["0.9.0", "1.0.0"] {
        add_version(dir.path(), "digest", version, "sha256");
    }
    dir
}

fn go_client_against_the_real_server(isolation: &str) {
    go();
    let server = Server::start(served_folder(), &["--isolation", isolation, "--max-in-flight", "1"]);
    let url = format!("http://{}", server.addr);
    // A second server with tokens on: one client, which may call `hello` and nothing else.
    let token = "go-client-test-token-Xk3v9";
    let tokens = tempfile::tempdir().unwrap();
    let tokens_file = tokens.path().join("tokens.json");
    let client = serde_json::json!({"name": "go", "token_sha256": sha256_hex(token.as_bytes()), "plugins": ["hello"]});
    std::fs::write(&tokens_file, serde_json::json!({ "clients": [client] }).to_string()).unwrap();
    let guarded =
        Server::start(served_folder(), &["--isolation", isolation, "--tokens-file", tokens_file.to_str().unwrap()]);

    let tests = go_command(&["test", "-count=1", "-v", "-timeout=5m", "./..."])
        .env("PLUGIN_HOST_URL", &url)
        .env("PLUGIN_HOST_TOKENS_URL", format!("http://{}", guarded.addr))
        .env("PLUGIN_HOST_TOKEN", token)
        .output();
    let tests = tests.expect("go test runs");
    let report = format!("{}{}", String::from_utf8_lossy(&tests.stdout), String::from_utf8_lossy(&tests.stderr));

    // The runnable example, streaming 3 MiB of its standard input.
    let input: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    let mut example = go_command(&["run", "./cmd/example", "-url", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("go run starts");
    example.stdin.take().unwrap().write_all(&input).expect("the example reads its input");
    let example = example.wait_with_output().expect("go run ends");

    let host_log: Vec<String> = server.logs.try_iter().collect();
    assert!(
        tests.status.success(),
        "go test failed against the {isolation} server:\n{report}\nhost log:\n{}",
        host_log.join("\n")
    );
    // Go's figures (the 100 MiB stream's time) for `--nocapture`.
    println!("{report}");
    let printed = String::from_utf8_lossy(&example.stdout);
    let expected = format!("43\nHELLO\n{}\n404 plugin_not_found\n", sha256_hex(&input));
    assert!(
        example.status.success() && printed == expected,
        "the example printed:\n{printed}\nwant:\n{expected}\nstderr:\n{}",
        String::from_utf8_lossy(&example.stderr)
    );
}

#[test]
fn go_client_against_the_real_server_with_worker_processes() {
    go_client_against_the_real_server("process");
}

#[test]
fn go_client_against_the_real_server_in_process() {
    go_client_against_the_real_server("in-process");
}

/// The client names every stable code README.md's error table lists (which a test of the
/// failure table keeps complete), so that a new code reaches Go programs too.
#[test]
fn go_client_has_a_constant_for_every_error_code() {
    let readme = std::fs::read_to_string(client_dir().join("../../README.md")).unwrap();
    let errors = std::fs::read_to_string(client_dir().join("errors.go")).unwrap();
    let codes: Vec<&str> = readme
        .lines()
        .filter_map(|line| {
            let row = line.strip_prefix("| ")?;
            let (status, rest) = row.split_once(" | `")?;
            status.parse::<u16>().ok()?;
            rest.split('`').next()
        })
        .collect();
    assert!(codes.len() > 30, "found only {} codes in README.md's error table", codes.len());
    let missing: Vec<_> = codes.iter().filter(|code| !errors.contains(&format!("= \"{code}\""))).collect();
    assert!(missing.is_empty(), "clients/go/errors.go has no constant for {missing:?}");
}

/// The client is as Go's own tools want it: `gofmt` has nothing to change, `go vet` nothing to
/// report.
#[test]
fn go_client_is_gofmt_and_vet_clean() {
    let go = go();
    let gofmt = go.canonicalize().expect("go resolves").with_file_name("gofmt");
    let unformatted = Command::new(&gofmt).args(["-l", "."]).current_dir(client_dir()).output().expect("gofmt runs");
    assert!(
        unformatted.status.success() && unformatted.stdout.is_empty(),
        "gofmt would change (run `gofmt -w .` in clients/go):\n{}{}",
        String::from_utf8_lossy(&unformatted.stdout),
        String::from_utf8_lossy(&unformatted.stderr)
    );
    let vet = go_command(&["vet", "./..."]).output().expect("go vet runs");
    assert!(vet.status.success(), "go vet:\n{}", String::from_utf8_lossy(&vet.stderr));
}
