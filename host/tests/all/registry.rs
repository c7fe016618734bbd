//! The OCI store against a real registry: Debian's `docker-registry` (the CNCF distribution
//! registry) on 127.0.0.1 with its storage in a temporary folder, started, stopped and
//! restarted by the tests, and `skopeo` as a second, standard client. Both are installed by
//! `cargo xtask setup`.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use oci_client::{
    Client, Reference,
    client::{ClientConfig, ClientProtocol, Config, ImageLayer},
    manifest::OciImageManifest,
    secrets::RegistryAuth,
};
use plugin_host::store::{
    OciPluginStore, PluginName, PluginRef, PluginStore, Resolver, StoreError, Version, VersionRequirement,
    oci::{Credentials, OciSettings},
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::support::{plugin_bytes, wat_plugin};

/// A registry process serving one storage folder on one port; it can be stopped and started
/// again on the same port and storage (a registry outage and its recovery).
pub struct Registry {
    pub addr: String,
    dir: TempDir,
    child: Option<Child>,
}

impl Registry {
    pub fn start(credentials: Option<(&str, &str)>) -> Self {
        let dir = TempDir::new().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let auth = match credentials {
            Some((user, password)) => {
                let hash = bcrypt::hash(password, 4).unwrap();
                fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
                format!("auth:\n  htpasswd:\n    realm: test\n    path: {}\n", dir.path().join("htpasswd").display())
            }
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n{auth}",
            dir.path().join("storage").display()
        );
        fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut registry = Registry { addr, dir, child: None };
        registry.resume();
        registry
    }

    /// Starts the registry process (again) and waits until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry runs (`cargo xtask setup` installs it)");
        self.child = Some(child);
        let give_up = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&self.addr).is_err() {
            assert!(Instant::now() < give_up, "the registry did not start on {}", self.addr);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the registry: connections are refused until [`Registry::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!("storage/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pushes `bytes` as `<addr>/plugins/<name>:<tag>` in the CNCF Wasm layout (what `cargo xtask
/// publish` writes); returns the layer's digest.
pub fn push(registry: &Registry, name: &str, tag: &str, bytes: &[u8], auth: &RegistryAuth) -> String {
    push_to(registry, "plugins", name, tag, bytes, auth)
}

/// [`push`] under another prefix: `<addr>/<prefix>/<name>:<tag>`.
pub fn push_to(registry: &Registry, prefix: &str, name: &str, tag: &str, bytes: &[u8], auth: &RegistryAuth) -> String {
    push_at(&registry.addr, prefix, name, tag, bytes, auth)
}

/// [`push_to`] the registry at `addr` (`127.0.0.1:PORT`).
pub fn push_at(addr: &str, prefix: &str, name: &str, tag: &str, bytes: &[u8], auth: &RegistryAuth) -> String {
    push_annotated(addr, prefix, name, tag, bytes, auth, None)
}

/// [`push_at`] with these manifest annotations (such as a configuration's).
pub fn push_annotated(
    addr: &str,
    prefix: &str,
    name: &str,
    tag: &str,
    bytes: &[u8],
    auth: &RegistryAuth,
    annotations: Option<std::collections::BTreeMap<String, String>>,
) -> String {
    let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
    let reference = Reference::with_tag(addr.to_string(), format!("{prefix}/{name}"), tag.to_string());
    let layer = ImageLayer::new(bytes.to_vec(), "application/wasm".to_string(), None);
    let config =
        Config::new(b"{\"architecture\":\"wasm\"}".to_vec(), "application/vnd.wasm.config.v0+json".into(), None);
    let mut manifest = OciImageManifest::build(std::slice::from_ref(&layer), &config, annotations);
    manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    let digest = layer.sha256_digest();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(client.push(&reference, &[layer], config, auth, Some(manifest))).unwrap();
    digest
}

/// A settings value for a store over `registry`, with a private cache folder.
pub fn settings(registry: &Registry, cache: &Path) -> OciSettings {
    let mut settings = OciSettings::new(format!("{}/plugins", registry.addr));
    settings.insecure = true;
    settings.cache_dir = cache.to_path_buf();
    settings.timeout = Duration::from_secs(2);
    settings.refresh = Duration::from_millis(200);
    settings
}

fn name(text: &str) -> PluginName {
    PluginName::new(text).unwrap()
}

fn version(text: &str) -> Version {
    Version::parse(text).unwrap()
}

fn at(plugin: &str, v: &str) -> PluginRef {
    PluginRef::versioned(name(plugin), version(v))
}

/// A plugin whose `process` answers `output`, so versions can be told apart by running them.
pub fn answering(output: i32) -> Vec<u8> {
    wat_plugin("i32.const 0", &format!("i32.const {output}"), "i32.const 0")
}

fn resolve(resolver: &Resolver, plugin: &str, requirement: Option<&str>) -> Result<String, StoreError> {
    let requirement = requirement.map(|r| VersionRequirement::parse(r).unwrap());
    resolver.resolve(&name(plugin), requirement.as_ref()).map(|found| found.to_string())
}

#[test]
fn resolves_every_requirement_form_against_the_registry_and_reads_verified_blobs() {
    let registry = Registry::start(None);
    for (tag, output) in [("1.0.0", 10), ("1.4.0", 14), ("1.4.2", 142), ("2.0.0", 20), ("2.1.0-rc.1", 21)] {
        push(&registry, "calc", tag, &answering(output), &RegistryAuth::Anonymous);
    }
    // Not versions: ignored with a warning.
    push(&registry, "calc", "latest", &answering(99), &RegistryAuth::Anonymous);
    let cache = TempDir::new().unwrap();
    let store = Arc::new(OciPluginStore::new(settings(&registry, cache.path())).unwrap());
    let resolver = Resolver::new(Arc::clone(&store) as Arc<dyn PluginStore>);

    assert_eq!(store.versions(&name("calc")).unwrap().describe(), "1.0.0, 1.4.0, 1.4.2, 2.0.0, 2.1.0-rc.1");
    assert_eq!(resolve(&resolver, "calc", None).unwrap(), "calc 2.0.0");
    assert_eq!(resolve(&resolver, "calc", Some("^1.2")).unwrap(), "calc 1.4.2");
    assert_eq!(resolve(&resolver, "calc", Some("~1.4.0")).unwrap(), "calc 1.4.2");
    assert_eq!(resolve(&resolver, "calc", Some("=1.4.0")).unwrap(), "calc 1.4.0");
    assert_eq!(resolve(&resolver, "calc", Some(">=1, <2")).unwrap(), "calc 1.4.2");
    assert_eq!(resolve(&resolver, "calc", Some(">=2.1.0-rc.1")).unwrap(), "calc 2.1.0-rc.1");
    let error = resolve(&resolver, "calc", Some("^3")).unwrap_err();
    assert_eq!(error.kind().code(), "version_not_found", "{error}");
    assert!(error.to_string().contains("1.0.0, 1.4.0, 1.4.2, 2.0.0, 2.1.0-rc.1"), "{error}");

    // The bytes are the pushed ones, identified by their digest, and kept on disk.
    let file = store.load(&at("calc", "1.4.2")).unwrap();
    assert_eq!(file.bytes, answering(142));
    let digest: [u8; 32] = Sha256::digest(&file.bytes).into();
    assert_eq!(file.identity.digest, Some(digest));
    assert_eq!(store.stat(&at("calc", "1.4.2")).unwrap(), file.identity);
    let cached = cache.path().join("blobs/sha256").join(hex::encode(digest));
    assert_eq!(fs::read(cached).unwrap(), answering(142));

    // A repository the registry does not have, and a tag it does not have.
    assert!(matches!(resolver.resolve(&name("absent"), None), Err(StoreError::NotFound(_))));
    assert!(matches!(store.stat(&at("calc", "9.9.9")), Err(StoreError::NotFound(_))));
    assert!(matches!(store.stat(&PluginRef::unversioned(name("calc"))), Err(StoreError::NotFound(_))));
    assert_eq!(store.list().unwrap(), [name("calc")], "the registry's catalog under the prefix");
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_and_never_kept() {
    let registry = Registry::start(None);
    let digest = push(&registry, "calc", "1.0.0", &answering(1), &RegistryAuth::Anonymous);
    // Corrupt the layer inside the registry's own storage: it serves what is on disk.
    let blob = registry.blob_file(&digest);
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&blob, bytes).unwrap();

    let cache = TempDir::new().unwrap();
    let store = OciPluginStore::new(settings(&registry, cache.path())).unwrap();
    let error = store.load(&at("calc", "1.0.0")).unwrap_err();
    assert!(matches!(error, StoreError::DigestMismatch { .. }), "{error:?}");
    assert_eq!(error.kind().code(), "digest_mismatch");
    let held = fs::read_dir(cache.path().join("blobs/sha256")).unwrap().count();
    assert_eq!(held, 0, "nothing that failed verification is cached");
}

#[test]
fn a_registry_outage_keeps_held_versions_serving_and_recovers_without_a_restart() {
    let mut registry = Registry::start(None);
    push(&registry, "calc", "1.0.0", &answering(1), &RegistryAuth::Anonymous);
    push(&registry, "calc", "1.1.0", &answering(11), &RegistryAuth::Anonymous);
    let cache = TempDir::new().unwrap();
    let store = Arc::new(OciPluginStore::new(settings(&registry, cache.path())).unwrap());
    let resolver = Resolver::new(Arc::clone(&store) as Arc<dyn PluginStore>);
    assert_eq!(resolve(&resolver, "calc", None).unwrap(), "calc 1.1.0");
    assert_eq!(store.load(&at("calc", "1.1.0")).unwrap().bytes, answering(11));
    assert!(store.degraded().is_none());

    registry.stop();
    std::thread::sleep(Duration::from_millis(300)); // past the refresh interval
    // What was resolved and pulled keeps serving, from memory and the disk cache.
    assert_eq!(resolve(&resolver, "calc", None).unwrap(), "calc 1.1.0");
    assert_eq!(store.load(&at("calc", "1.1.0")).unwrap().bytes, answering(11));
    // What needs the registry is unavailable (503), not "not found".
    let error = store.load(&at("calc", "1.0.0")).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    let error = resolve(&resolver, "other", None).unwrap_err();
    assert_eq!(error.kind().code(), "store_unavailable", "{error}");
    let degraded = store.degraded().expect("an outage is reported");
    assert!(degraded.contains("unreachable"), "{degraded}");

    // A fresh host (a restart) with the registry still down serves what its cache holds.
    let restarted = Arc::new(OciPluginStore::new(settings(&registry, cache.path())).unwrap());
    assert!(matches!(restarted.versions(&name("calc")), Err(StoreError::Unavailable { .. })));
    assert_eq!(restarted.held_versions(&name("calc")).describe(), "1.1.0");
    let resolver_after_restart = Resolver::new(Arc::clone(&restarted) as Arc<dyn PluginStore>);
    assert_eq!(resolve(&resolver_after_restart, "calc", None).unwrap(), "calc 1.1.0");
    assert_eq!(restarted.load(&at("calc", "1.1.0")).unwrap().bytes, answering(11));
    let error = resolve(&resolver_after_restart, "calc", Some("=1.0.0")).unwrap_err();
    assert_eq!(error.kind().code(), "store_unavailable", "never pulled: unavailable, not absent: {error}");

    registry.resume();
    assert_eq!(store.load(&at("calc", "1.0.0")).unwrap().bytes, answering(1), "back without a restart");
    assert!(store.degraded().is_none());
}

#[test]
fn a_slow_registry_is_bounded_by_the_timeout() {
    // A listener that accepts connections and never answers: a registry that hangs.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut settings = OciSettings::new(format!("{}/plugins", hung.local_addr().unwrap()));
    settings.insecure = true;
    let cache = TempDir::new().unwrap();
    settings.cache_dir = cache.path().to_path_buf();
    settings.timeout = Duration::from_millis(300);
    let store = OciPluginStore::new(settings).unwrap();
    let started = Instant::now();
    let error = store.versions(&name("calc")).unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn a_registry_that_requires_credentials_gets_them() {
    let registry = Registry::start(Some(("alice", "s3cret")));
    let auth = RegistryAuth::Basic("alice".into(), "s3cret".into());
    push(&registry, "calc", "1.0.0", &answering(1), &auth);
    let cache = TempDir::new().unwrap();

    let anonymous = OciPluginStore::new(settings(&registry, cache.path())).unwrap();
    let error = anonymous.versions(&name("calc")).unwrap_err();
    assert_eq!(error.kind().code(), "store_error", "refused, not absent and not an outage: {error}");

    let mut with_credentials = settings(&registry, cache.path());
    with_credentials.credentials = Credentials::Basic { username: "alice".into(), password: "s3cret".into() };
    let store = OciPluginStore::new(with_credentials).unwrap();
    assert_eq!(store.versions(&name("calc")).unwrap().describe(), "1.0.0");
    assert_eq!(store.load(&at("calc", "1.0.0")).unwrap().bytes, answering(1));

    // The same credentials from a Docker config.json.
    let docker = TempDir::new().unwrap();
    let auth = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "alice:s3cret");
    let config = serde_json::json!({"auths": {registry.addr.clone(): {"auth": auth}}});
    fs::write(docker.path().join("config.json"), config.to_string()).unwrap();
    let credentials = Credentials::from_docker_config(&docker.path().join("config.json"), &registry.addr).unwrap();
    let mut from_file = settings(&registry, cache.path());
    from_file.credentials = credentials.unwrap();
    assert!(OciPluginStore::new(from_file).unwrap().versions(&name("calc")).is_ok());
}

/// An artifact pushed by another standard tool: an OCI image layout written by hand (as any
/// tool writes one) and copied into the registry by `skopeo copy`, then pulled by the store.
#[test]
fn pulls_what_skopeo_pushed() {
    let registry = Registry::start(None);
    let layout = TempDir::new().unwrap();
    let wasm = plugin_bytes("hello");
    let config = br#"{"architecture":"wasm","os":"wasip1"}"#.to_vec();
    let blobs = layout.path().join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let write_blob = |bytes: &[u8]| {
        let hex = hex::encode(Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).unwrap();
        format!("sha256:{hex}")
    };
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": write_blob(&config), "size": config.len()},
        "layers": [{"mediaType": "application/wasm", "digest": write_blob(&wasm), "size": wasm.len()}],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": write_blob(&manifest),
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "3.1.4"},
        }],
    });
    fs::write(layout.path().join("index.json"), index.to_string()).unwrap();
    fs::write(layout.path().join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let status = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:3.1.4", layout.path().display()))
        .arg(format!("docker://{}/plugins/hello:3.1.4", registry.addr))
        .stdout(Stdio::null())
        .status()
        .expect("skopeo runs (`cargo xtask setup` installs it)");
    assert!(status.success());

    let cache = TempDir::new().unwrap();
    let store = OciPluginStore::new(settings(&registry, cache.path())).unwrap();
    assert_eq!(store.load(&at("hello", "3.1.4")).unwrap().bytes, wasm);
}

/// The whole path over HTTP: a server on the OCI store, a registry that goes away and comes
/// back.
#[tokio::test]
async fn serves_over_http_from_the_registry_through_an_outage() {
    use serde_json::{Value, json};

    use crate::support::{TestServer, app_state, runtime_config};

    let mut registry = tokio::task::spawn_blocking(|| {
        let registry = Registry::start(None);
        push(&registry, "calc", "1.0.0", &answering(10), &RegistryAuth::Anonymous);
        push(&registry, "calc", "1.1.0", &answering(11), &RegistryAuth::Anonymous);
        registry
    })
    .await
    .unwrap();
    let cache = TempDir::new().unwrap();
    let store = OciPluginStore::new(settings(&registry, cache.path())).unwrap();
    let server =
        TestServer::start(app_state(Arc::new(store), runtime_config(plugin_host::runtime::ExecutionMode::Aot), 16))
            .await;
    let run = async |version: &str| {
        let body = json!({"plugin": "calc", "input": 1, "version": version});
        let response = server.client.post(server.url("/run")).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        let body: Value = response.json().await.unwrap();
        (status, retry_after, body)
    };
    assert_eq!(run("^1").await, (200, None, json!({"output": 11, "version": "1.1.0"})));
    let ready: Value = server.client.get(server.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!((ready["plugins"].as_u64(), ready.get("store_degraded")), (Some(1), None));

    registry.stop();
    tokio::time::sleep(Duration::from_millis(300)).await; // past the refresh interval
    assert_eq!(run("^1").await, (200, None, json!({"output": 11, "version": "1.1.0"})), "held versions serve");
    let (status, retry_after, body) = run("=1.0.0").await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("1")), "{body}");
    assert_eq!(body["error"]["code"], "store_unavailable");
    let ready = server.client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200, "still serving what it holds");
    let ready: Value = ready.json().await.unwrap();
    assert!(ready["store_degraded"].as_str().unwrap().contains("unreachable"), "{ready}");

    registry.resume();
    assert_eq!(run("=1.0.0").await, (200, None, json!({"output": 10, "version": "1.0.0"})), "recovered");
    let versions: Value =
        server.client.get(server.url("/plugins/calc/versions")).send().await.unwrap().json().await.unwrap();
    let digest = crate::support::sha256_hex(&answering(10));
    assert_eq!(versions["versions"][0], json!({"version": "1.0.0", "sha256": digest, "default": false}));
}

/// Three hosts of one machine sharing one cache folder: two registries, and two prefixes of
/// one registry. Each lists and runs only its own plugins, with its registry up, down, and
/// after a restart with it down (where only the cache folder remembers anything).
#[tokio::test]
async fn hosts_of_different_registries_sharing_a_cache_never_see_each_others_plugins() {
    use serde_json::{Value, json};

    use crate::support::{TestServer, app_state, runtime_config};

    let (mut first, mut second) = tokio::task::spawn_blocking(|| {
        let first = Registry::start(None);
        let second = Registry::start(None);
        push(&first, "calc", "1.0.0", &answering(1), &RegistryAuth::Anonymous);
        push_to(&first, "team", "calc", "3.0.0", &answering(30), &RegistryAuth::Anonymous);
        push(&second, "calc", "2.0.0", &answering(2), &RegistryAuth::Anonymous);
        push(&second, "other", "1.0.0", &answering(3), &RegistryAuth::Anonymous);
        (first, second)
    })
    .await
    .unwrap();
    let shared = TempDir::new().unwrap();
    let repositories =
        [format!("{}/plugins", first.addr), format!("{}/plugins", second.addr), format!("{}/team", first.addr)];
    let start_hosts = async || {
        let mut hosts = Vec::new();
        for repository in &repositories {
            let mut settings = OciSettings::new(repository.clone());
            settings.insecure = true;
            settings.cache_dir = shared.path().to_path_buf();
            settings.timeout = Duration::from_millis(500);
            settings.refresh = Duration::from_millis(200);
            let store = Arc::new(OciPluginStore::new(settings).unwrap());
            let state = app_state(store, runtime_config(plugin_host::runtime::ExecutionMode::Aot), 16);
            hosts.push(TestServer::start(state).await);
        }
        hosts
    };
    // What each host lists (name and version) and what `calc` and `other` answer.
    let observe = async |host: &TestServer| {
        let listing: Value = host.client.get(host.url("/plugins")).send().await.unwrap().json().await.unwrap();
        let listed: Vec<String> = listing
            .as_array()
            .unwrap()
            .iter()
            .map(|plugin| format!("{} {}", plugin["name"].as_str().unwrap(), plugin["version"].as_str().unwrap()))
            .collect();
        let (calc_status, calc) = host.run("calc", 0).await;
        let (other_status, other) = host.run("other", 0).await;
        (listed, (calc_status, calc["output"].clone()), (other_status, other["output"].clone()))
    };
    let expected = [
        (vec!["calc 1.0.0".to_string()], (200, json!(1))),
        (vec!["calc 2.0.0".to_string(), "other 1.0.0".to_string()], (200, json!(2))),
        (vec!["calc 3.0.0".to_string()], (200, json!(30))),
    ];

    let hosts = start_hosts().await;
    for (host, (listed, calc)) in hosts.iter().zip(&expected) {
        let (seen, seen_calc, (other_status, _)) = observe(host).await;
        assert_eq!((&seen, &seen_calc), (listed, calc), "{}", host.addr);
        let other_expected = if listed.len() == 2 { 200 } else { 404 };
        assert_eq!(other_status, other_expected, "{}", host.addr);
    }

    first.stop();
    second.stop();
    tokio::time::sleep(Duration::from_millis(300)).await; // past the refresh interval
    let check_down = async |hosts: &[TestServer]| {
        for (host, (listed, calc)) in hosts.iter().zip(&expected) {
            let (seen, seen_calc, (other_status, other)) = observe(host).await;
            assert_eq!((&seen, &seen_calc), (listed, calc), "{} with its registry down", host.addr);
            if listed.len() == 2 {
                assert_eq!((other_status, other), (200, json!(3)));
            } else {
                // Never seen in its own registry: it cannot know, so unavailable, never another
                // registry's `other`.
                assert_eq!(other_status, 503, "{} with its registry down", host.addr);
            }
        }
    };
    check_down(&hosts).await;
    drop(hosts);
    // Restarted with the registries still down: only the shared cache folder remembers.
    check_down(&start_hosts().await).await;
}

/// What a registry stand-in does with the connections it carries (see [`RegistryProxy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways.
    Pass,
    /// Accept and read, never forward nor answer: a registry that hangs.
    Hang,
    /// Close every connection at once, new and open ones.
    Reset,
    /// Forward each chunk a client sends this much later: a registry slow to answer.
    Delay(Duration),
}

/// A tiny TCP proxy on 127.0.0.1 in front of a real registry, to make it hang, reset or slow
/// down on command, counting the HTTP requests clients send through it.
pub struct RegistryProxy {
    pub addr: String,
    mode: Arc<parking_lot::Mutex<ProxyMode>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

impl RegistryProxy {
    pub fn start(upstream: &str) -> Self {
        use std::{
            io::{Read, Write},
            net::{Shutdown, TcpListener, TcpStream},
            sync::atomic::Ordering,
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let proxy = RegistryProxy {
            addr,
            mode: Arc::new(parking_lot::Mutex::new(ProxyMode::Pass)),
            requests: Arc::default(),
            stopped: Arc::default(),
        };
        let (mode, requests, stopped, upstream) =
            (Arc::clone(&proxy.mode), Arc::clone(&proxy.requests), Arc::clone(&proxy.stopped), upstream.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Acquire) {
                    return;
                }
                let Ok(client) = client else { continue };
                if *mode.lock() == ProxyMode::Reset {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                // One pump per direction; each waits out a hang and gives up on a reset.
                let pump = |mut from: TcpStream, mut to: TcpStream, counts: bool| {
                    let (mode, requests) = (Arc::clone(&mode), Arc::clone(&requests));
                    std::thread::spawn(move || {
                        let mut buffer = vec![0u8; 64 << 10];
                        loop {
                            let read = match from.read(&mut buffer) {
                                Ok(0) | Err(_) => break,
                                Ok(read) => read,
                            };
                            let chunk = &buffer[..read];
                            let methods: [&[u8]; 6] = [b"GET ", b"HEAD ", b"PUT ", b"POST ", b"PATCH ", b"DELETE "];
                            if counts && methods.iter().any(|method| chunk.starts_with(method)) {
                                requests.fetch_add(1, Ordering::SeqCst);
                            }
                            loop {
                                let now = *mode.lock();
                                match now {
                                    ProxyMode::Hang => std::thread::sleep(Duration::from_millis(20)),
                                    ProxyMode::Reset => {
                                        let _ = from.shutdown(Shutdown::Both);
                                        let _ = to.shutdown(Shutdown::Both);
                                        return;
                                    }
                                    ProxyMode::Delay(delay) if counts => {
                                        std::thread::sleep(delay);
                                        break;
                                    }
                                    _ => break,
                                }
                            }
                            if to.write_all(chunk).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                };
                pump(client.try_clone().unwrap(), server.try_clone().unwrap(), true);
                pump(server, client, false);
            }
        });
        proxy
    }

    pub fn set(&self, mode: ProxyMode) {
        *self.mode.lock() = mode;
    }

    /// HTTP requests clients sent through the proxy so far (forwarded or not).
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for RegistryProxy {
    fn drop(&mut self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Release);
        // Held connections end; the accept loop wakes up to see it should stop.
        self.set(ProxyMode::Reset);
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}

/// A server on the OCI store reaching `registry` through a proxy, with short timeouts.
async fn server_behind_proxy(
    proxy: &RegistryProxy,
    cache: &Path,
    timeout: Duration,
    refresh: Duration,
) -> crate::support::TestServer {
    use crate::support::{TestServer, app_state, runtime_config};
    let mut settings = OciSettings::new(format!("{}/plugins", proxy.addr));
    settings.insecure = true;
    settings.cache_dir = cache.to_path_buf();
    settings.timeout = timeout;
    settings.refresh = refresh;
    let store = Arc::new(OciPluginStore::new(settings).unwrap());
    TestServer::start(app_state(store, runtime_config(plugin_host::runtime::ExecutionMode::Aot), 64)).await
}

/// `POST /run` of `calc` with a version requirement: status, output, and how long it took.
async fn call(server: &crate::support::TestServer, version: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let body = serde_json::json!({"plugin": "calc", "input": 0, "version": version});
    let response = server.client.post(server.url("/run")).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    (status, body["output"].clone(), started.elapsed())
}

fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    format!("n={} p50={:?} p99={:?} max={:?}", latencies.len(), at(0.5), at(0.99), latencies[latencies.len() - 1])
}

/// A registry that hangs, then resets, costs the versions a host holds nothing: calls answer
/// in milliseconds, `/readyz` stays 200 (saying the store is degraded), a version never pulled
/// is 503 (one probe at a time reaches the registry), and it all recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn held_versions_answer_at_once_while_the_registry_hangs_or_resets() {
    let registry = tokio::task::spawn_blocking(|| {
        let registry = Registry::start(None);
        push(&registry, "calc", "0.9.0", &answering(9), &RegistryAuth::Anonymous);
        push(&registry, "calc", "1.0.0", &answering(10), &RegistryAuth::Anonymous);
        push(&registry, "calc", "1.1.0", &answering(11), &RegistryAuth::Anonymous);
        registry
    })
    .await
    .unwrap();
    let proxy = RegistryProxy::start(&registry.addr);
    let cache = TempDir::new().unwrap();
    let timeout = Duration::from_secs(2);
    let server = server_behind_proxy(&proxy, cache.path(), timeout, Duration::from_millis(200)).await;
    assert_eq!(call(&server, "^1").await.0, 200);
    assert_eq!(server.client.get(server.url("/readyz")).send().await.unwrap().status(), 200);

    // Each round has a version of its own that was never pulled.
    for (mode, unpulled, its_output) in [(ProxyMode::Hang, "=1.0.0", 10), (ProxyMode::Reset, "=0.9.0", 9)] {
        proxy.set(mode);
        let before = proxy.requests();
        tokio::time::sleep(Duration::from_millis(300)).await; // past the refresh interval
        let mut latencies = Vec::new();
        let until = Instant::now() + timeout * 2; // past the first request's timeout
        let mut degraded = None;
        while Instant::now() < until {
            for version in ["^1", "=1.1.0", "*"] {
                let (status, output, took) = call(&server, version).await;
                assert_eq!((status, output), (200, serde_json::json!(11)), "{mode:?} {version}");
                latencies.push(took);
            }
            let ready = server.client.get(server.url("/readyz")).send().await.unwrap();
            assert_eq!(ready.status(), 200, "{mode:?}: held versions can be served, so ready");
            let ready: serde_json::Value = ready.json().await.unwrap();
            degraded = ready.get("store_degraded").cloned().or(degraded);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (status, _, took) = call(&server, unpulled).await;
        assert_eq!(status, 503, "{mode:?}: never pulled, so unavailable");
        let requests = proxy.requests() - before;
        println!(
            "registry {mode:?} for {:?}: held calls {}; never-pulled call 503 in {took:?}; {requests} registry requests",
            timeout * 2,
            summary(latencies.clone())
        );
        assert!(latencies.iter().all(|took| *took < Duration::from_millis(250)), "{}", summary(latencies));
        assert!(
            degraded.as_ref().is_some_and(|d| d.as_str().unwrap().contains("unreachable")),
            "{mode:?}: {degraded:?}"
        );
        assert!(requests <= 12, "{mode:?}: {requests} registry requests in {:?}", timeout * 2);
        proxy.set(ProxyMode::Pass);
        // Back by itself: a version never pulled is fetched once the probe gets through.
        let give_up = Instant::now() + timeout * 3;
        loop {
            let (status, output, _) = call(&server, unpulled).await;
            if status == 200 {
                assert_eq!(output, serde_json::json!(its_output));
                break;
            }
            assert!(Instant::now() < give_up, "{mode:?}: not recovered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let ready: serde_json::Value =
            server.client.get(server.url("/readyz")).send().await.unwrap().json().await.unwrap();
        assert!(ready.get("store_degraded").is_none(), "{ready}");
    }
}

/// Twenty concurrent calls against a registry that takes 2 s per request share its requests:
/// cold (nothing held) they wait for one listing, one manifest and one blob; warm (held, past
/// the refresh interval) they answer at once while one refresh runs aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_against_a_slow_registry_share_its_requests() {
    let registry = tokio::task::spawn_blocking(|| {
        let registry = Registry::start(None);
        push(&registry, "calc", "1.0.0", &answering(10), &RegistryAuth::Anonymous);
        registry
    })
    .await
    .unwrap();
    let proxy = RegistryProxy::start(&registry.addr);
    let cache = TempDir::new().unwrap();
    let server = server_behind_proxy(&proxy, cache.path(), Duration::from_secs(5), Duration::from_millis(500)).await;
    proxy.set(ProxyMode::Delay(Duration::from_secs(2)));

    for round in ["cold", "warm"] {
        let before = proxy.requests();
        let started = Instant::now();
        let calls = (0..20).map(|_| call(&server, "^1"));
        let answers = futures_util::future::join_all(calls).await;
        let requests = proxy.requests() - before;
        let latencies: Vec<Duration> = answers.iter().map(|(_, _, took)| *took).collect();
        println!(
            "{round}: 20 concurrent calls, registry 2 s per request: {}; {requests} registry requests",
            summary(latencies.clone())
        );
        for (status, output, _) in &answers {
            assert_eq!((*status, output), (200, &serde_json::json!(10)), "{round}");
        }
        match round {
            // A tag listing, a manifest and a blob, each once (oci-client may add an
            // authentication probe per operation).
            "cold" => assert!(requests <= 8, "{requests} registry requests for 20 calls"),
            _ => {
                assert!(latencies.iter().all(|took| *took < Duration::from_millis(500)), "{}", summary(latencies));
                assert!(requests <= 4, "{requests} registry requests for 20 warm calls");
            }
        }
        if round == "cold" {
            // The shared requests run one after the other, and nothing else waits.
            let bound = Duration::from_secs(2) * requests as u32 + Duration::from_secs(2);
            assert!(started.elapsed() < bound, "{:?}", started.elapsed());
            tokio::time::sleep(Duration::from_millis(600)).await; // past the refresh interval
        }
    }
}

/// The registry lists a tag whose manifest is gone (its revision link removed from the
/// registry's storage): calls without a pin get the next version, a pin of it is 404; a
/// version published a moment ago is found by its exact pin at once; a manifest that is not a
/// Wasm artifact is a gateway error.
#[tokio::test]
async fn listed_versions_the_registry_cannot_give_and_versions_published_a_moment_ago() {
    use crate::support::{TestServer, app_state, runtime_config};

    let registry = tokio::task::spawn_blocking(|| {
        let registry = Registry::start(None);
        push(&registry, "calc", "1.0.0", &answering(10), &RegistryAuth::Anonymous);
        push(&registry, "calc", "2.0.0", &answering(20), &RegistryAuth::Anonymous);
        registry
    })
    .await
    .unwrap();
    // Remove 2.0.0's manifest revision: the tag stays listed, its manifest is unknown.
    let revisions = registry.dir.path().join("storage/docker/registry/v2/repositories/plugins/calc/_manifests");
    let current = revisions.join("tags/2.0.0/current/link");
    let digest = fs::read_to_string(&current).unwrap();
    let hex = digest.trim().strip_prefix("sha256:").unwrap();
    fs::remove_file(revisions.join(format!("revisions/sha256/{hex}/link"))).unwrap();

    let cache = TempDir::new().unwrap();
    let mut settings = settings(&registry, cache.path());
    settings.refresh = Duration::from_secs(30); // listings stay cached throughout
    let store = Arc::new(OciPluginStore::new(settings).unwrap());
    let server =
        TestServer::start(app_state(store, runtime_config(plugin_host::runtime::ExecutionMode::Aot), 16)).await;
    for version in ["*", "^1", ">=1"] {
        let (status, output, _) = call(&server, version).await;
        assert_eq!((status, output), (200, serde_json::json!(10)), "{version}: the next version down");
    }
    assert_eq!(call(&server, "=2.0.0").await.0, 404, "pinned exactly: not there");

    // Published after the listing was cached: found at once by its exact pin.
    tokio::task::spawn_blocking({
        let addr = registry.addr.clone();
        move || push_at(&addr, "plugins", "calc", "1.5.0", &answering(15), &RegistryAuth::Anonymous)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let (status, output, _) = call(&server, "=1.5.0").await;
    assert_eq!((status, output), (200, serde_json::json!(15)));

    // Two layers: not a Wasm plugin artifact, so the registry's fault, 502.
    tokio::task::spawn_blocking({
        let addr = registry.addr.clone();
        move || {
            let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
            let reference = Reference::with_tag(addr, "plugins/calc".into(), "3.0.0".into());
            let layers: Vec<ImageLayer> =
                (1..=2).map(|i| ImageLayer::new(answering(i), "application/wasm".into(), None)).collect();
            let config = Config::new(b"{}".to_vec(), "application/vnd.wasm.config.v0+json".into(), None);
            let mut manifest = OciImageManifest::build(&layers, &config, None);
            manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime
                .block_on(client.push(&reference, &layers, config, &RegistryAuth::Anonymous, Some(manifest)))
                .unwrap();
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let response = server
        .client
        .post(server.url("/run"))
        .json(&serde_json::json!({"plugin": "calc", "input": 0, "version": "=3.0.0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_artifact", "{body}");
}

/// `GET /plugins/{name}/versions` on a repository of 2,000 tags: a bounded number of registry
/// requests (the listing, then at most 32 manifests; the next listing fetches the next 32),
/// answered within the listings' deadline, every version listed. Long (pushing 2,000 tags): `--run-ignored only`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "pushes 2,000 tags; run with --run-ignored only"]
async fn a_versions_listing_of_2000_tags_is_bounded_and_ends_by_its_deadline() {
    const TAGS: usize = 2000;
    let registry = tokio::task::spawn_blocking(|| {
        let registry = Registry::start(None);
        let digest = push(&registry, "calc", "0.0.0", &answering(0), &RegistryAuth::Anonymous);
        let client = Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let source = Reference::with_tag(registry.addr.clone(), "plugins/calc".into(), "0.0.0".into());
        let (manifest, _) = runtime
            .block_on(client.pull_manifest_raw(
                &source,
                &RegistryAuth::Anonymous,
                &[oci_client::manifest::OCI_IMAGE_MEDIA_TYPE],
            ))
            .unwrap();
        let started = Instant::now();
        runtime.block_on(async {
            for i in 1..TAGS {
                let reference = Reference::with_tag(registry.addr.clone(), "plugins/calc".into(), format!("1.0.{i}"));
                client
                    .push_manifest_raw(
                        &reference,
                        manifest.to_vec(),
                        oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.parse().unwrap(),
                    )
                    .await
                    .unwrap();
            }
        });
        println!("pushed {TAGS} tags of layer {digest} in {:?}", started.elapsed());
        registry
    })
    .await
    .unwrap();
    let proxy = RegistryProxy::start(&registry.addr);
    let cache = TempDir::new().unwrap();
    let server = server_behind_proxy(&proxy, cache.path(), Duration::from_secs(5), Duration::from_secs(10)).await;
    for round in 1..=2 {
        let before = proxy.requests();
        let started = Instant::now();
        let response = server.client.get(server.url("/plugins/calc/versions")).send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        let versions = body["versions"].as_array().unwrap();
        let with_digest = versions.iter().filter(|v| !v["sha256"].is_null()).count();
        let requests = proxy.requests() - before;
        println!(
            "versions listing {round} of {TAGS} tags: {took:?}, {requests} registry requests, {} listed, {with_digest} with a digest",
            versions.len()
        );
        assert_eq!(versions.len(), TAGS);
        assert!(took < Duration::from_millis(900), "{took:?}");
        // The tag listing, the default's manifest and at most 32 more; oci-client asks the
        // registry's `/v2/` before each operation of an anonymous client, so twice that.
        assert!(requests <= 2 * (2 + 1 + 32), "{requests}");
    }
}
