//! Per-plugin configuration over HTTP: `redact` configured by a file beside it, in the
//! override folder, per version, on a FUSE mount, and through the real binary; hot reload,
//! broken and refused configurations, and no configuration byte in any answer or log line.
//! Every server test runs in both isolation modes.

use std::{fs, path::Path, sync::Arc};

use host::{api::AppState, metrics::Metrics};
use plugin_host::{ConfigOverride, Host, PluginStore, Settings, runtime::ExecutionMode};
use serde_json::{Value, json};

use crate::support::{TestServer, local_store, plugin_bytes, plugin_dir, runtime_config, sha256_hex};

/// A string that must never leave the configuration file.
const SECRET: &str = "hunter2-Zq9xK";

/// What every test sends to `redact`: an e-mail address, a card number and a JSON field.
const INPUT: &str = r#"a@b.io 4111111111111111 {"ssn": "078-05-1120"}"#;
const DEFAULT: &str = r#"****** ************1111 {"ssn": "078-05-1120"}"#;
const CARDS_AND_SSN: &str = r#"a@b.io ************1111 {"ssn": "***********"}"#;
const EMAILS_ONLY: &str = r#"****** 4111111111111111 {"ssn": "078-05-1120"}"#;

#[derive(Debug, Clone, Copy)]
enum Isolation {
    InProcess,
    Workers,
}

const ISOLATIONS: [Isolation; 2] = [Isolation::InProcess, Isolation::Workers];

fn host_settings(isolation: Isolation, dir: Option<&Path>) -> Settings {
    let isolation = match isolation {
        Isolation::InProcess => plugin_host::Isolation::InProcess,
        Isolation::Workers => plugin_host::Isolation::Workers(crate::support::workers(2)),
    };
    let mut settings = crate::support::settings(&runtime_config(ExecutionMode::Aot), isolation, 64);
    settings.config_override = dir.map(|dir| ConfigOverride::new(dir).unwrap());
    settings
}

fn runner(store: Arc<dyn PluginStore>, isolation: Isolation, metrics: &Arc<Metrics>) -> Host {
    Host::with_observer(store, host_settings(isolation, None), Arc::clone(metrics) as _).unwrap()
}

fn runner_with_override(store: Arc<dyn PluginStore>, isolation: Isolation, metrics: &Arc<Metrics>, dir: &Path) -> Host {
    Host::with_observer(store, host_settings(isolation, Some(dir)), Arc::clone(metrics) as _).unwrap()
}

async fn serve(host: Host, metrics: Arc<Metrics>) -> TestServer {
    TestServer::start(AppState::new(host, metrics)).await
}

/// Everything a client saw, to be searched for the secret at the end.
#[derive(Default)]
struct Seen(String);

impl Seen {
    async fn call(&mut self, server: &TestServer, version: Option<&str>) -> (u16, Value) {
        let mut body = json!({"plugin": "redact", "function": "redact", "input": INPUT});
        if let Some(version) = version {
            body["version"] = json!(version);
        }
        let response = server.client.post(server.url("/run")).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        self.0.push_str(&text);
        (status, serde_json::from_str(&text).unwrap())
    }

    async fn output(&mut self, server: &TestServer) -> String {
        let (status, body) = self.call(server, None).await;
        assert_eq!(status, 200, "{body}");
        body["output"].as_str().unwrap().to_owned()
    }

    async fn get(&mut self, server: &TestServer, path: &str) -> Value {
        let text = server.client.get(server.url(path)).send().await.unwrap().text().await.unwrap();
        self.0.push_str(&text);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn config(&mut self, server: &TestServer) -> Value {
        self.get(server, "/plugins/redact").await["config"].clone()
    }

    fn assert_secret_never_seen(&self) {
        assert!(!self.0.contains(SECRET), "a response carried the configuration's contents");
        assert!(!self.0.contains("hunter2"), "a response carried part of the configuration's contents");
    }
}

/// Replaces a configuration file the way an operator's tooling should (write aside, rename).
fn write_config(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, path).unwrap();
}

#[tokio::test]
async fn redact_follows_its_configuration_file_with_no_restart_in_both_isolation_modes() {
    for isolation in ISOLATIONS {
        let dir = plugin_dir(&["redact", "hello"]);
        let metrics = Arc::new(Metrics::new());
        let server = serve(runner(local_store(dir.path()), isolation, &metrics), Arc::clone(&metrics)).await;
        let mut seen = Seen::default();
        let file = dir.path().join("redact.config.json");

        // Absent: today's behaviour, and nothing about configuration in the listing.
        assert_eq!(seen.output(&server).await, DEFAULT, "{isolation:?}");
        assert_eq!(seen.config(&server).await, Value::Null, "{isolation:?}");

        // Present: the next call follows it. The secret is a field name, so it reaches the plugin.
        let good = json!({"mask": ["cards"], "fields": ["ssn", SECRET]}).to_string();
        write_config(&file, &good);
        assert_eq!(seen.output(&server).await, CARDS_AND_SSN, "{isolation:?}");
        let shown = seen.config(&server).await;
        assert_eq!(shown["sha256"], json!(sha256_hex(good.as_bytes())), "{isolation:?}");
        assert_eq!(shown["size"], json!(good.len()));
        assert_eq!(shown["origin"], json!({"source": "store", "file": "redact.config.json"}));
        assert_eq!(shown["last_error"], Value::Null);

        // Changed: the next call sees the change, on every worker.
        write_config(&file, r#"{"mask": ["emails"]}"#);
        for _ in 0..4 {
            assert_eq!(seen.output(&server).await, EMAILS_ONLY, "{isolation:?}");
        }

        // Broken: the last good one keeps serving, and the listing says why.
        write_config(&file, &format!("{{\"mask\": [\"cards\"], \"{SECRET}\" oops"));
        assert_eq!(seen.output(&server).await, EMAILS_ONLY, "{isolation:?}: the last good one serves");
        let shown = seen.config(&server).await;
        assert_eq!(shown["sha256"], json!(sha256_hex(br#"{"mask": ["emails"]}"#)), "{isolation:?}");
        let error = shown["last_error"].as_str().unwrap();
        assert!(error.contains("redact.config.json") && error.contains("not well-formed JSON"), "{error}");

        // Too large for the plugin's 4 KiB buffer: the same.
        let large = json!({"fields": vec!["x".repeat(60); 70]}).to_string();
        assert!(large.len() > 4096);
        write_config(&file, &large);
        assert_eq!(seen.output(&server).await, EMAILS_ONLY, "{isolation:?}");
        let error = seen.config(&server).await["last_error"].as_str().unwrap().to_owned();
        assert!(error.contains("over the plugin's configuration buffer, which holds 4096"), "{error}");

        // Refused by init: its own code, remembered (init does not see it again) until it changes.
        let refused = json!({"mask": ["phones"], "fields": [SECRET]}).to_string();
        write_config(&file, &refused);
        for _ in 0..3 {
            let (status, body) = seen.call(&server, None).await;
            assert_eq!((status, body["error"]["code"].as_str()), (500, Some("configuration_refused")), "{body}");
        }
        let shown = seen.config(&server).await;
        assert_eq!(shown["sha256"], json!(sha256_hex(refused.as_bytes())));
        assert!(shown["last_error"].as_str().unwrap().contains("refused"), "{shown}");
        // One count for the broken file, one for the large one, one for the refusal: the
        // refusal was remembered, not met again on every call.
        let metrics_text = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
        seen.0.push_str(&metrics_text);
        assert!(
            metrics_text.contains("plugin_host_config_errors_total{plugin=\"redact\"} 3"),
            "{isolation:?}: {metrics_text}"
        );
        // Other plugins are untouched by all of this.
        assert_eq!(server.run("hello", 21).await, (200, json!({"output": 43})));

        // Fixed: served at once.
        write_config(&file, r#"{"mask": ["emails"]}"#);
        assert_eq!(seen.output(&server).await, EMAILS_ONLY, "{isolation:?}");

        // Removed: the default again.
        fs::remove_file(&file).unwrap();
        assert_eq!(seen.output(&server).await, DEFAULT, "{isolation:?}");
        assert_eq!(seen.config(&server).await, Value::Null);
        seen.assert_secret_never_seen();
    }
}

#[tokio::test]
async fn a_configuration_with_no_good_one_before_it_fails_calls_with_its_own_code() {
    for isolation in ISOLATIONS {
        let dir = plugin_dir(&["redact", "text"]);
        fs::write(dir.path().join("redact.config.json"), format!("{{\"{SECRET}\"")).unwrap();
        // A configuration for a plugin that declares no configuration buffer is reported, and
        // the plugin runs exactly as before.
        fs::write(dir.path().join("text.config.json"), "{}").unwrap();
        let metrics = Arc::new(Metrics::new());
        let server = serve(runner(local_store(dir.path()), isolation, &metrics), Arc::clone(&metrics)).await;
        let mut seen = Seen::default();
        let (status, body) = seen.call(&server, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (500, Some("invalid_configuration")), "{body}");
        let text = seen.get(&server, "/plugins/text").await;
        assert!(text["config"]["last_error"].as_str().unwrap().contains("no configuration buffer"), "{text}");
        let upper = server
            .client
            .post(server.url("/run"))
            .json(&json!({"plugin": "text", "function": "upper", "input": "ok"}))
            .send()
            .await
            .unwrap();
        assert_eq!(upper.json::<Value>().await.unwrap(), json!({"output": "OK"}), "{isolation:?}");
        seen.assert_secret_never_seen();
    }
}

#[tokio::test]
async fn each_version_has_its_own_configuration_and_the_override_folder_wins() {
    for isolation in ISOLATIONS {
        let dir = tempfile::TempDir::new().unwrap();
        let versions = dir.path().join("redact");
        fs::create_dir(&versions).unwrap();
        for version in ["1.0.0", "2.0.0", "3.0.0"] {
            fs::write(versions.join(format!("{version}.wasm")), plugin_bytes("redact")).unwrap();
        }
        fs::write(versions.join("1.0.0.config.json"), r#"{"mask": ["emails"]}"#).unwrap();
        fs::write(versions.join("config.json"), r#"{"mask": ["cards"], "fields": ["ssn"]}"#).unwrap();
        let overrides = tempfile::TempDir::new().unwrap();
        let metrics = Arc::new(Metrics::new());
        let runner = runner_with_override(local_store(dir.path()), isolation, &metrics, overrides.path());
        let server = serve(runner, Arc::clone(&metrics)).await;
        let mut seen = Seen::default();
        let output = |(status, body): (u16, Value)| {
            assert_eq!(status, 200, "{body}");
            body["output"].as_str().unwrap().to_owned()
        };
        assert_eq!(output(seen.call(&server, Some("=1.0.0")).await), EMAILS_ONLY, "{isolation:?}");
        assert_eq!(output(seen.call(&server, Some("=2.0.0")).await), CARDS_AND_SSN, "{isolation:?}");
        assert_eq!(output(seen.call(&server, Some("=3.0.0")).await), CARDS_AND_SSN, "{isolation:?}");

        // A ConfigMap mounted apart: its flat `<name>.config.json` configures every version,
        // over the files beside them.
        write_config(&overrides.path().join("redact.config.json"), r#"{"mask": []}"#);
        for version in ["=1.0.0", "=2.0.0"] {
            assert_eq!(output(seen.call(&server, Some(version)).await), INPUT, "{isolation:?} {version}");
        }
        let shown = seen.get(&server, "/plugins/redact?version==2.0.0").await;
        assert_eq!(shown["config"]["origin"], json!({"source": "override", "file": "redact.config.json"}));
        // Its per-version file is more specific still.
        fs::create_dir(overrides.path().join("redact")).unwrap();
        write_config(&overrides.path().join("redact/2.0.0.config.json"), r#"{"mask": ["emails"]}"#);
        assert_eq!(output(seen.call(&server, Some("=2.0.0")).await), EMAILS_ONLY, "{isolation:?}");
        assert_eq!(output(seen.call(&server, Some("=1.0.0")).await), INPUT, "{isolation:?}");
        // Configuration files in a version folder are not stray files: no version is made of them.
        let listed = seen.get(&server, "/plugins/redact/versions").await;
        assert_eq!(listed["versions"].as_array().unwrap().len(), 3, "{listed}");
    }
}

/// The Fluid store: configuration beside the plugin on the FUSE mount; the mount failing while
/// the configuration is read is `store_unavailable` (503), never a call without its
/// configuration; after the mount is back, the configuration serves again, and changes to it
/// arrive through the mount.
#[tokio::test]
async fn configuration_on_a_fuse_mount_follows_the_mount() {
    for isolation in ISOLATIONS {
        let source = plugin_dir(&["redact"]);
        let file = source.path().join("redact.config.json");
        fs::write(&file, r#"{"mask": ["cards"], "fields": ["ssn"]}"#).unwrap();
        let mut mount = crate::stores::FuseMount::over(source);
        mount.mount();
        let metrics = Arc::new(Metrics::new());
        let server = serve(runner(Arc::new(mount.store()), isolation, &metrics), Arc::clone(&metrics)).await;
        let mut seen = Seen::default();
        assert_eq!(seen.output(&server).await, CARDS_AND_SSN, "{isolation:?}");

        mount.crash_daemon();
        let (status, body) = seen.call(&server, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("store_unavailable")), "{body}");

        mount.unmount();
        mount.mount();
        assert_eq!(seen.output(&server).await, CARDS_AND_SSN, "{isolation:?}: back, with its configuration");
        write_config(&file, r#"{"mask": ["emails"]}"#);
        // Through FUSE a change is seen once the kernel's attribute cache lets it through.
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while seen.output(&server).await != EMAILS_ONLY {
            assert!(std::time::Instant::now() < give_up, "{isolation:?}: the change never arrived");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The real binary, with a configuration folder apart from the plugins (as a ConfigMap is)
/// and worker processes: what it logs about configurations names files and digests, never a
/// byte of their contents, whether they are good, broken or refused.
#[tokio::test]
async fn no_log_line_or_answer_carries_a_configuration() {
    let dir = plugin_dir(&["redact"]);
    let configs = tempfile::TempDir::new().unwrap();
    let file = configs.path().join("redact.config.json");
    let (mut child, addr, lines) = crate::binary::start(|command| {
        command.args(["--plugin-dir", dir.path().to_str().unwrap()]);
        command.args(["--plugin-config-dir", configs.path().to_str().unwrap()]);
    });
    let server = TestServer::connect(addr.parse().unwrap());
    let mut seen = Seen::default();
    write_config(&file, &json!({"mask": ["cards"], "fields": ["ssn", SECRET]}).to_string());
    assert_eq!(seen.output(&server).await, CARDS_AND_SSN);
    write_config(&file, &format!("{{\"fields\": [\"{SECRET}\"] oops"));
    assert_eq!(seen.output(&server).await, CARDS_AND_SSN);
    write_config(&file, &json!({"mask": ["phones"], "fields": [SECRET]}).to_string());
    let (status, body) = seen.call(&server, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("configuration_refused")), "{body}");
    seen.get(&server, "/plugins").await;
    seen.get(&server, "/plugins/redact").await;
    seen.assert_secret_never_seen();

    child.kill().unwrap();
    child.wait().unwrap();
    let logged: Vec<String> = lines.try_iter().collect();
    let logged = logged.join("\n");
    assert!(logged.contains("configuration loaded"), "{logged}");
    assert!(logged.contains("configuration not usable") && logged.contains("WARN"), "{logged}");
    assert!(logged.contains("refused its configuration"), "{logged}");
    assert!(!logged.contains(SECRET) && !logged.contains("hunter2"), "a log line carried a configuration: {logged}");
}

/// The OCI store: a version's configuration is its manifest's annotation (`cargo xtask publish
/// --config`), one per version, changed by a push over the tag, held through an outage with
/// the version, and the configuration folder wins over it.
#[tokio::test]
async fn a_registry_version_carries_its_configuration_and_the_override_folder_wins() {
    use oci_client::secrets::RegistryAuth;
    use plugin_host::store::{OciPluginStore, oci::CONFIG_ANNOTATION};

    use crate::registry::{Registry, push_annotated, settings};

    let push = |registry: &Registry, tag: &str, config: Option<&str>| {
        let annotations = config.map(|config| [(CONFIG_ANNOTATION.to_string(), config.to_string())].into());
        let bytes = plugin_bytes("redact");
        push_annotated(&registry.addr, "plugins", "redact", tag, &bytes, &RegistryAuth::Anonymous, annotations);
    };
    let mut registry = tokio::task::spawn_blocking(move || {
        let registry = Registry::start(None);
        push(&registry, "1.0.0", Some(r#"{"mask": ["cards"], "fields": ["ssn"]}"#));
        push(&registry, "2.0.0", None);
        registry
    })
    .await
    .unwrap();
    for isolation in ISOLATIONS {
        let cache = tempfile::TempDir::new().unwrap();
        let overrides = tempfile::TempDir::new().unwrap();
        let store = Arc::new(OciPluginStore::new(settings(&registry, cache.path())).unwrap());
        let metrics = Arc::new(Metrics::new());
        let server =
            serve(runner_with_override(store, isolation, &metrics, overrides.path()), Arc::clone(&metrics)).await;
        let mut seen = Seen::default();
        let output = |(status, body): (u16, Value)| {
            assert_eq!(status, 200, "{body}");
            body["output"].as_str().unwrap().to_owned()
        };
        assert_eq!(output(seen.call(&server, Some("=1.0.0")).await), CARDS_AND_SSN, "{isolation:?}");
        assert_eq!(output(seen.call(&server, Some("=2.0.0")).await), DEFAULT, "{isolation:?}");
        let shown = seen.get(&server, "/plugins/redact?version==1.0.0").await;
        assert_eq!(shown["config"]["origin"]["source"], "registry", "{shown}");

        // Held through an outage, with the version.
        registry.stop();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(output(seen.call(&server, Some("=1.0.0")).await), CARDS_AND_SSN, "{isolation:?}");
        registry.resume();

        // The configuration folder wins.
        write_config(&overrides.path().join("redact.config.json"), r#"{"mask": ["emails"]}"#);
        assert_eq!(output(seen.call(&server, Some("=1.0.0")).await), EMAILS_ONLY, "{isolation:?}");
        assert_eq!(output(seen.call(&server, Some("=2.0.0")).await), EMAILS_ONLY, "{isolation:?}");
        fs::remove_file(overrides.path().join("redact.config.json")).unwrap();
        assert_eq!(output(seen.call(&server, Some("=1.0.0")).await), CARDS_AND_SSN, "{isolation:?}");
    }
    // A push over the tag with another configuration reaches the next calls once the tag is
    // refreshed (200 ms in these settings).
    let cache = tempfile::TempDir::new().unwrap();
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(OciPluginStore::new(settings(&registry, cache.path())).unwrap());
    let server = serve(runner(store, Isolation::Workers, &metrics), Arc::clone(&metrics)).await;
    let mut seen = Seen::default();
    assert_eq!(seen.call(&server, Some("=1.0.0")).await.1["output"], CARDS_AND_SSN);
    let registry = tokio::task::spawn_blocking(move || {
        push(&registry, "1.0.0", Some(r#"{"mask": ["emails"]}"#));
        registry
    })
    .await
    .unwrap();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.call(&server, Some("=1.0.0")).await.1["output"] != EMAILS_ONLY {
        assert!(std::time::Instant::now() < give_up, "the new configuration never arrived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop(registry);
}

/// A v2 plugin in WAT with a configuration buffer and a stream, `settings`, whose output is the
/// configuration its `init` saw, then the number of bytes fed as one byte.
fn streaming_plugin() -> Vec<u8> {
    crate::support::wat(
        r#"(module
            (memory (export "memory") 1)
            (global $seen (mut i32) (i32.const 0))
            (global $fed (mut i32) (i32.const 0))
            (func (export "plugin_input_ptr") (result i32) i32.const 1024)
            (func (export "plugin_input_capacity") (result i32) i32.const 16)
            (func (export "plugin_output_ptr") (result i32) i32.const 2048)
            (func (export "plugin_output_capacity") (result i32) i32.const 256)
            (func (export "plugin_config_ptr") (result i32) i32.const 4096)
            (func (export "plugin_config_capacity") (result i32) i32.const 68)
            (func (export "init") (result i32) (global.set $seen (i32.load (i32.const 4096))) i32.const 0)
            (func (export "cleanup") (result i32) i32.const 0)
            (func (export "fn_settings") (param i32) (result i32)
                (memory.copy (i32.const 2048) (i32.const 4100) (global.get $seen))
                global.get $seen)
            (func (export "stream_settings_stream_begin") (result i32) i32.const 0)
            (func (export "stream_settings_stream_feed") (param $n i32) (result i32)
                (global.set $fed (i32.add (global.get $fed) (local.get $n))) i32.const 0)
            (func (export "stream_settings_stream_end") (result i32)
                (memory.copy (i32.const 2048) (i32.const 4100) (global.get $seen))
                (i32.store8 (i32.add (i32.const 2048) (global.get $seen)) (global.get $fed))
                (i32.add (global.get $seen) (i32.const 1)))
            (@custom "wasm_plugin_abi" "\02\00\00\00"))"#,
    )
}

/// A stream's instance gets the configuration too (with workers, in the `StreamOpen` frame),
/// and the next stream sees a change.
#[tokio::test]
async fn streams_get_the_configuration_in_both_isolation_modes() {
    for isolation in ISOLATIONS {
        let dir = tempfile::TempDir::new().unwrap();
        fs::write(dir.path().join("settings.wasm"), streaming_plugin()).unwrap();
        let file = dir.path().join("settings.config.json");
        let metrics = Arc::new(Metrics::new());
        let server = serve(runner(local_store(dir.path()), isolation, &metrics), Arc::clone(&metrics)).await;
        let stream = async |body: &'static str| {
            let url = server.url("/plugins/settings/functions/settings_stream");
            let response = server.client.post(url).body(body).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200, "{isolation:?}");
            response.bytes().await.unwrap().to_vec()
        };
        assert_eq!(stream("twenty-one bytes long").await, [21], "{isolation:?}: no configuration");
        write_config(&file, r#"{"a": 1}"#);
        assert_eq!(stream("twenty-one bytes long").await, b"{\"a\": 1}\x15", "{isolation:?}");
        write_config(&file, r#"[2]"#);
        assert_eq!(stream("abc").await, b"[2]\x03", "{isolation:?}");
        let call = server.client.post(server.url("/plugins/settings/functions/settings")).body("").send().await;
        assert_eq!(call.unwrap().bytes().await.unwrap().to_vec(), b"[2]", "{isolation:?}");
    }
}
