//! Bearer tokens (`--tokens-file`), against the real binary: who may call what, the probes
//! open, the file reloaded from a mount laid out as kubelet lays out a Secret, and no token in
//! the server's log.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
    sync::mpsc,
};

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::{
    binary::{Running, start},
    support::plugin_dir,
};

/// A folder laid out as kubelet mounts a Secret: the data in a timestamped folder,
/// `..data` a symlink to it, and `tokens.json` a symlink through `..data`. An update writes a
/// new folder and renames a new `..data` symlink over the old one (kubelet's AtomicWriter),
/// then removes the old folder; the path `tokens.json` itself never changes.
struct SecretMount {
    dir: TempDir,
    generation: u32,
}

impl SecretMount {
    fn new(contents: &str) -> Self {
        let mut mount = SecretMount { dir: TempDir::new().unwrap(), generation: 0 };
        mount.update(contents);
        symlink("..data/tokens.json", mount.dir.path().join("tokens.json")).unwrap();
        mount
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("tokens.json")
    }

    fn update(&mut self, contents: &str) {
        let root = self.dir.path();
        let old = format!("..2026_12_04_00_00_{:02}.{}", self.generation, 100 + self.generation);
        self.generation += 1;
        let new = format!("..2026_12_04_00_00_{:02}.{}", self.generation, 100 + self.generation);
        fs::create_dir(root.join(&new)).unwrap();
        fs::write(root.join(&new).join("tokens.json"), contents).unwrap();
        symlink(&new, root.join("..data_tmp")).unwrap();
        fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        if self.generation > 1 {
            fs::remove_dir_all(root.join(old)).unwrap();
        }
    }
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A token as an operator would make one: random, long (here from the OS's hash keys and the
/// clock, unique per test run).
fn new_token(tag: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(tag.as_bytes());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{tag}{:016x}{nanos:x}", hasher.finish())
}

fn client(name: &str, token: &str, plugins: &[&str], listings: bool, metrics: bool) -> serde_json::Value {
    serde_json::json!({
        "name": name, "token_sha256": sha256_hex(token), "plugins": plugins, "listings": listings, "metrics": metrics,
    })
}

fn tokens_file(clients: &[serde_json::Value]) -> String {
    serde_json::to_string_pretty(&serde_json::json!({ "clients": clients })).unwrap()
}

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    async fn run(&self, token: Option<&str>, body: serde_json::Value) -> (u16, String) {
        let (status, _, body) = self.send(self.client.post(format!("{}/run", self.base)).json(&body), token).await;
        (status, body)
    }

    async fn hello(&self, token: Option<&str>) -> (u16, String) {
        self.run(token, serde_json::json!({"plugin": "hello", "input": 21})).await
    }

    async fn get(&self, token: Option<&str>, path: &str) -> (u16, String) {
        let (status, _, body) = self.send(self.client.get(format!("{}{path}", self.base)), token).await;
        (status, body)
    }

    async fn upper(&self, token: Option<&str>, text: &str) -> (u16, String) {
        let url = format!("{}/plugins/text/functions/upper", self.base);
        let (status, _, body) = self.send(self.client.post(url).body(text.to_owned()), token).await;
        (status, body)
    }
}

/// The stable code of a JSON error answer.
fn code(body: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    value["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code: {body}")).to_owned()
}

fn start_with_tokens(plugins: &Path, tokens: &Path) -> (Running, Api, mpsc::Receiver<String>) {
    let (child, addr, logs) = start(|c| {
        c.args(["--plugin-dir", plugins.to_str().unwrap(), "--isolation", "in-process"])
            .env("TOKENS_FILE", tokens)
            // As much as an operator would ever turn on: every request's refusal is logged.
            .env("RUST_LOG", "debug");
    });
    (child, Api { client: reqwest::Client::new(), base: format!("http://{addr}") }, logs)
}

/// Stops the server and returns everything it logged.
fn stop(mut child: Running, logs: mpsc::Receiver<String>) -> String {
    let _ = child.kill();
    let _ = child.wait();
    logs.iter().collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn a_client_calls_exactly_what_its_token_allows_and_probes_need_none() {
    let plugins = plugin_dir(&["hello", "text"]);
    let (caller, texter, scraper) = (new_token("caller"), new_token("texter"), new_token("scraper"));
    let mount = SecretMount::new(&tokens_file(&[
        client("caller", &caller, &["hello"], false, false),
        client("texter", &texter, &["te*"], true, false),
        client("prometheus", &scraper, &[], false, true),
    ]));
    let (child, api, logs) = start_with_tokens(plugins.path(), &mount.path());

    // The probes answer without a token.
    assert_eq!(api.get(None, "/healthz").await, (200, "ok".to_owned()));
    assert_eq!(api.get(None, "/readyz").await.0, 200);

    // No token, or an unknown one: 401 with a challenge, whatever the route.
    let (status, headers, body) = api.send(api.client.post(format!("{}/run", api.base)).json(&1), None).await;
    assert_eq!((status, code(&body).as_str()), (401, "unauthorized"), "{body}");
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="plugin-host""#);
    let (status, headers, body) = api.send(api.client.get(format!("{}/plugins", api.base)), Some("wrong")).await;
    assert_eq!((status, code(&body).as_str()), (401, "unauthorized"), "{body}");
    assert_eq!(headers["www-authenticate"], r#"Bearer realm="plugin-host", error="invalid_token""#);
    for (status, body) in [api.hello(None).await, api.hello(Some(&format!("{caller}x"))).await] {
        assert_eq!((status, code(&body).as_str()), (401, "unauthorized"), "{body}");
    }
    let (status, body) = api.upper(None, "hi").await;
    assert_eq!((status, code(&body).as_str()), (401, "unauthorized"), "{body}");
    assert_eq!(api.get(None, "/metrics").await.0, 401);
    assert_eq!(api.get(None, "/nowhere").await.0, 401, "unknown paths tell an unknown client nothing");

    // A known token: the plugins its patterns match, nothing else.
    assert_eq!(api.hello(Some(&caller)).await, (200, r#"{"output":43}"#.to_owned()));
    let text = serde_json::json!({"plugin": "text", "function": "upper", "input": "hi"});
    let (status, body) = api.run(Some(&caller), text.clone()).await;
    assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{body}");
    let (status, body) = api.upper(Some(&caller), "hi").await;
    assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{body}");
    assert_eq!(api.upper(Some(&texter), "hi").await, (200, "HI".to_owned()));
    assert_eq!(api.run(Some(&texter), text).await, (200, r#"{"output":"HI"}"#.to_owned()));
    let (status, body) = api.hello(Some(&texter)).await;
    assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{body}");
    let (status, body) = api.hello(Some(&scraper)).await;
    assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "a client without patterns calls nothing: {body}");

    // Listings and metrics only for clients whose entry says so.
    for path in ["/plugins", "/plugins/hello", "/plugins/hello/versions"] {
        let (status, body) = api.get(Some(&caller), path).await;
        assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{path}: {body}");
        assert_eq!(api.get(Some(&texter), path).await.0, 200, "{path}");
    }
    let (status, body) = api.get(Some(&texter), "/metrics").await;
    assert_eq!((status, code(&body).as_str()), (403, "forbidden"), "{body}");
    let (status, metrics) = api.get(Some(&scraper), "/metrics").await;
    assert_eq!(status, 200, "{metrics}");
    for line in [
        r#"plugin_host_requests_total{plugin="hello",outcome="ok",client="caller"} 1"#,
        r#"plugin_host_requests_total{plugin="text",outcome="ok",client="texter"} 2"#,
        r#"plugin_host_requests_total{plugin="",outcome="forbidden",client="caller"} 2"#,
        r#"plugin_host_requests_total{plugin="",outcome="forbidden",client="prometheus"} 1"#,
        r#"plugin_host_requests_total{plugin="",outcome="forbidden",client="texter"} 1"#,
        r#"plugin_host_requests_total{plugin="",outcome="unauthorized",client="-"} 4"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }

    let logs = stop(child, logs);
    for secret in [&caller, &texter, &scraper] {
        assert!(!logs.contains(secret.as_str()) && !logs.contains(&sha256_hex(secret)), "a token was logged:\n{logs}");
    }
    // The request's log lines name the client instead.
    assert!(logs.lines().any(|line| line.contains(r#"client="texter""#)), "{logs}");
}

#[tokio::test]
async fn the_tokens_file_is_reloaded_revoked_and_survives_a_broken_version() {
    let plugins = plugin_dir(&["hello"]);
    let (first, second, third) = (new_token("first"), new_token("second"), new_token("third"));
    let mut mount = SecretMount::new(&tokens_file(&[client("first", &first, &["*"], false, false)]));
    let (child, api, logs) = start_with_tokens(plugins.path(), &mount.path());
    assert_eq!(api.hello(Some(&first)).await.0, 200);
    assert_eq!(api.hello(Some(&second)).await.0, 401);

    // The Secret is updated: `second` works and `first` is revoked on the very next request.
    mount.update(&tokens_file(&[client("second", &second, &["hel*"], false, false)]));
    assert_eq!(api.hello(Some(&second)).await, (200, r#"{"output":43}"#.to_owned()));
    let (status, body) = api.hello(Some(&first)).await;
    assert_eq!((status, code(&body).as_str()), (401, "unauthorized"), "revoked: {body}");

    // A broken version (here with a token pasted in clear where its hash belongs) keeps the
    // last good tokens in force, and the log says so without quoting it.
    let broken = format!(r#"{{"clients": [{{"name": "third", "token_sha256": "{third}", "plugins": ["*"]}}]}}"#);
    mount.update(&broken);
    assert_eq!(api.hello(Some(&third)).await.0, 401);
    assert_eq!(api.hello(Some(&second)).await.0, 200, "the last good tokens stay in force");
    mount.update("{\"clients\": [");
    assert_eq!(api.hello(Some(&second)).await.0, 200);

    // Fixed: in force at once.
    mount.update(&tokens_file(&[client("third", &third, &["*"], false, false)]));
    assert_eq!(api.hello(Some(&third)).await.0, 200);
    assert_eq!(api.hello(Some(&second)).await.0, 401);

    let logs = stop(child, logs);
    let warnings: Vec<&str> = logs.lines().filter(|line| line.contains("the tokens file is not usable")).collect();
    assert_eq!(warnings.len(), 2, "one warning per broken version:\n{logs}");
    assert!(warnings[0].contains("WARN") && warnings[0].contains("not 64 hex digits"), "{}", warnings[0]);
    assert!(warnings[1].contains("ends too early"), "{}", warnings[1]);
    assert_eq!(logs.matches("bearer tokens reloaded").count(), 2, "{logs}");
    for secret in [&first, &second, &third] {
        assert!(!logs.contains(secret.as_str()) && !logs.contains(&sha256_hex(secret)), "a token was logged:\n{logs}");
    }
}

#[test]
fn a_tokens_file_that_cannot_be_used_stops_start_up_without_quoting_it() {
    let plugins = plugin_dir(&["hello"]);
    let secret = new_token("pasted");
    let dir = TempDir::new().unwrap();
    let broken = dir.path().join("tokens.json");
    fs::write(
        &broken,
        format!(
            r#"{{"clients": [{{"name": "a", "token_sha256": "{}", "listings": "{secret}"}}]}}"#,
            sha256_hex(&secret)
        ),
    )
    .unwrap();
    for (file, message) in [
        (broken.clone(), "does not have the expected fields and types (line 1, column"),
        (dir.path().join("absent.json"), "cannot open it: No such file or directory"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_host"))
            .env_clear()
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .args(["--plugin-dir", plugins.path().to_str().unwrap(), "--isolation", "in-process"])
            .arg("--tokens-file")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("error: --tokens-file (TOKENS_FILE) {}: {message}", file.display())),
            "{stderr}"
        );
        assert!(!stderr.contains(&secret) && !stderr.contains(&sha256_hex(&secret)), "{stderr}");
    }
}
