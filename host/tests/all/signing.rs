//! Signed plugins: a trust policy against a real registry, with signatures made by
//! `cargo xtask publish --sign`, by an independent signer written from cosign's specification
//! (`host/tests/signer/cosign_sign.py`, Python's `cryptography`, pushed with skopeo), and by the
//! shared format crate; and detached signatures beside files in a plugin folder.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Duration,
};

use oci_client::{
    Client, Reference,
    client::{ClientConfig, ClientProtocol, Config, ImageLayer},
    manifest::OciImageManifest,
    secrets::RegistryAuth,
};
use plugin_host::store::{
    LocalPluginStore, OciPluginStore, PluginName, PluginRef, PluginStore, StoreError, Version,
    oci::OciSettings,
    trust::{Refusal, TrustPolicy},
};
use plugin_signature::{
    CONFIG_MEDIA_TYPE, DetachedSignature, PAYLOAD_MEDIA_TYPE, Payload, PrivateKey, SIGNATURE_ANNOTATION, signature_tag,
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::{
    registry::{Registry, answering, push, push_to, settings},
    support::{TestServer, app_state, runtime_config},
};

fn project_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
}

/// `cargo xtask ARGS` from the project root (the binary `build-plugins` built before the tests).
fn xtask(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "-p", "xtask", "--"])
        .args(args)
        .current_dir(project_root())
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo xtask {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// The independent signer's Python, from the virtualenv `cargo xtask setup` makes.
fn signer_python() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cache"));
    let python = cache.join("wasm-plugin-host/signer-venv/bin/python3");
    assert!(python.exists(), "{}: run `cargo xtask setup`", python.display());
    python
}

/// Runs `cosign_sign.py ARGS`.
fn python_signer(args: &[&str]) {
    let script = project_root().join("host/tests/signer/cosign_sign.py");
    let output = Command::new(signer_python()).arg(script).args(args).output().unwrap();
    assert!(output.status.success(), "cosign_sign.py {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// Signs the manifest `digest` of `<prefix>/<name>` with the independent signer.
fn python_sign(registry: &Registry, prefix: &str, name: &str, digest: &str, key: &Path, extra: &[&str]) {
    let work = TempDir::new().unwrap();
    let repository = format!("{prefix}/{name}");
    let mut args = vec!["sign", "--insecure", "--key", key.to_str().unwrap(), "--registry", &registry.addr];
    args.extend(["--repository", &repository, "--digest", digest, "--workdir", work.path().to_str().unwrap()]);
    args.extend(extra);
    python_signer(&args);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn client() -> Client {
    Client::new(ClientConfig { protocol: ClientProtocol::Http, ..Default::default() })
}

/// The manifest digest `<prefix>/<name>:<tag>` points to.
fn manifest_digest(registry: &Registry, prefix: &str, name: &str, tag: &str) -> String {
    let reference = Reference::with_tag(registry.addr.clone(), format!("{prefix}/{name}"), tag.to_string());
    runtime().block_on(client().fetch_manifest_digest(&reference, &RegistryAuth::Anonymous)).unwrap()
}

/// Pushes a cosign signature artifact for `digest` with one layer per key, through the format
/// crate (what `xtask publish --sign` does).
fn sign(registry: &Registry, prefix: &str, name: &str, digest: &str, keys: &[&PrivateKey]) {
    let repository = format!("{prefix}/{name}");
    let payload = Payload::new(format!("{}/{repository}", registry.addr), digest).to_bytes();
    let layers: Vec<ImageLayer> = keys
        .iter()
        .map(|key| {
            let annotations = [(SIGNATURE_ANNOTATION.to_string(), key.sign(&payload))].into_iter().collect();
            ImageLayer::new(payload.clone(), PAYLOAD_MEDIA_TYPE.to_string(), Some(annotations))
        })
        .collect();
    let config = Config::new(b"{}".to_vec(), CONFIG_MEDIA_TYPE.to_string(), None);
    let mut manifest = OciImageManifest::build(&layers, &config, None);
    manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    let reference = Reference::with_tag(registry.addr.clone(), repository, signature_tag(digest).unwrap());
    runtime().block_on(client().push(&reference, &layers, config, &RegistryAuth::Anonymous, Some(manifest))).unwrap();
}

/// Writes `keys` as `<name>.pub` and the policy beside them; returns the policy.
fn write_policy(dir: &Path, rules: Value, keys: &[(&str, &PrivateKey)]) -> Arc<TrustPolicy> {
    for (name, key) in keys {
        fs::write(dir.join(format!("{name}.pub")), key.public_key().to_pem()).unwrap();
    }
    let path = dir.join("policy.json");
    fs::write(&path, rules.to_string()).unwrap();
    Arc::new(TrustPolicy::from_file(&path).unwrap())
}

fn key_from(path: &Path) -> PrivateKey {
    PrivateKey::from_pem(&fs::read_to_string(path).unwrap()).unwrap()
}

fn at(name: &str, version: &str) -> PluginRef {
    PluginRef::versioned(PluginName::new(name).unwrap(), Version::parse(version).unwrap())
}

fn refusal(result: Result<plugin_host::store::PluginFile, StoreError>) -> Option<Refusal> {
    match result {
        Err(StoreError::Untrusted { refusal, .. }) => Some(refusal),
        Ok(_) => None,
        Err(other) => panic!("not a refusal: {other}"),
    }
}

/// Whether the layer `digest` (`sha256:<hex>`) was ever pulled into the OCI cache folder.
fn pulled(cache: &Path, layer_digest: &str) -> bool {
    cache.join("blobs/sha256").join(layer_digest.strip_prefix("sha256:").unwrap()).exists()
}

/// The whole path over HTTP: versions signed by `cargo xtask publish --sign` and by the
/// independent Python signer run; unsigned, wrongly signed, replayed and tampered ones are
/// refused with their codes, never pulled or compiled, listed with their verdicts, counted in
/// metrics; and a call without a requirement gets the refusal of the newest version, not a
/// silent older one.
#[test]
fn only_versions_signed_by_a_trusted_key_run_from_the_registry() {
    let registry = Registry::start(None);
    let work = TempDir::new().unwrap();
    let keys = work.path();
    // Keys from both tools: xtask's PKCS#8 and the Python signer's.
    let xtask_key = keys.join("release");
    xtask(&["keygen", "--out", xtask_key.to_str().unwrap()]);
    python_signer(&["keygen", keys.join("python").to_str().unwrap()]);
    let stranger = PrivateKey::generate();
    let rules =
        json!({"rules": [{"prefix": format!("{}/plugins", registry.addr), "keys": ["release.pub", "python.pub"]}]});
    let policy_path = keys.join("policy.json");
    fs::write(&policy_path, rules.to_string()).unwrap();
    let policy = Arc::new(TrustPolicy::from_file(&policy_path).unwrap());

    // 1.0.0: published and signed by xtask.
    let file = keys.join("calc.wasm");
    fs::write(&file, answering(10)).unwrap();
    let to = format!("{}/plugins", registry.addr);
    let sign_with = format!("{}", xtask_key.with_extension("key").display());
    xtask(&["publish", file.to_str().unwrap(), "--version", "1.0.0", "--to", &to, "--insecure", "--sign", &sign_with]);
    // 1.1.0: signed by the independent signer.
    push(&registry, "calc", "1.1.0", &answering(11), &RegistryAuth::Anonymous);
    let python_key = keys.join("python.key");
    let digest_1_1 = manifest_digest(&registry, "plugins", "calc", "1.1.0");
    python_sign(&registry, "plugins", "calc", &digest_1_1, &python_key, &[]);
    // 1.2.0: unsigned. 1.3.0: signed by a key nobody trusts.
    let unsigned_layer = push(&registry, "calc", "1.2.0", &answering(12), &RegistryAuth::Anonymous);
    let stranger_layer = push(&registry, "calc", "1.3.0", &answering(13), &RegistryAuth::Anonymous);
    sign(&registry, "plugins", "calc", &manifest_digest(&registry, "plugins", "calc", "1.3.0"), &[&stranger]);
    // 1.4.0: 1.1.0's valid, trusted signature artifact copied onto 1.4.0's digest (replayed).
    let replayed_layer = push(&registry, "calc", "1.4.0", &answering(14), &RegistryAuth::Anonymous);
    let digest_1_4 = manifest_digest(&registry, "plugins", "calc", "1.4.0");
    let from = format!("docker://{}/plugins/calc:{}", registry.addr, signature_tag(&digest_1_1).unwrap());
    let onto = format!("docker://{}/plugins/calc:{}", registry.addr, signature_tag(&digest_1_4).unwrap());
    let copied = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &from,
            &onto,
        ])
        .status()
        .unwrap();
    assert!(copied.success());
    // 1.5.0: signed by the trusted Python key, then the payload altered.
    let tampered_layer = push(&registry, "calc", "1.5.0", &answering(15), &RegistryAuth::Anonymous);
    let digest_1_5 = manifest_digest(&registry, "plugins", "calc", "1.5.0");
    python_sign(&registry, "plugins", "calc", &digest_1_5, &python_key, &["--tamper"]);

    let cache = TempDir::new().unwrap();
    let mut settings = settings(&registry, cache.path());
    settings.trust = Some(policy);
    let store = Arc::new(OciPluginStore::new(settings).unwrap());
    let server_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    server_runtime.block_on(serve_and_check(
        store,
        cache.path(),
        &xtask_key,
        [unsigned_layer, stranger_layer, replayed_layer, tampered_layer],
    ));
}

async fn serve_and_check(store: Arc<OciPluginStore>, cache: &Path, xtask_key: &Path, refused_layers: [String; 4]) {
    let server =
        TestServer::start(app_state(store, runtime_config(plugin_host::runtime::ExecutionMode::Aot), 16)).await;
    let call = async |version: Option<&str>| {
        let mut body = json!({"plugin": "calc", "input": 1});
        if let Some(version) = version {
            body["version"] = json!(version);
        }
        let response = server.client.post(server.url("/run")).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    assert_eq!(call(Some("=1.0.0")).await, (200, json!({"output": 10, "version": "1.0.0"})), "signed by xtask");
    assert_eq!(call(Some("=1.1.0")).await, (200, json!({"output": 11, "version": "1.1.0"})), "signed in Python");
    for (version, code) in [
        ("=1.2.0", "signature_missing"),
        ("=1.3.0", "untrusted_signer"),
        ("=1.4.0", "signature_invalid"),
        ("=1.5.0", "untrusted_signer"),
    ] {
        let (status, body) = call(Some(version)).await;
        assert_eq!((status, body["error"]["code"].as_str()), (500, Some(code)), "{version}: {body}");
    }
    // Without a requirement: the newest release is 1.5.0, refused; never a silent 1.1.0.
    let (status, body) = call(None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (500, Some("untrusted_signer")), "{body}");
    // `^1.0` too: the highest match decides.
    assert_eq!(call(Some("^1.0")).await.0, 500);

    // Refused versions were never even pulled, so never compiled.
    for layer in &refused_layers {
        assert!(!pulled(cache, layer), "a refused version's layer was pulled");
    }

    let versions: Value =
        server.client.get(server.url("/plugins/calc/versions")).send().await.unwrap().json().await.unwrap();
    let verdicts: Vec<(String, String)> = versions["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{versions}"))
        .iter()
        .map(|v| {
            let signature = &v["signature"];
            let verdict = signature["code"].as_str().or(signature["verdict"].as_str()).unwrap();
            (v["version"].as_str().unwrap().to_string(), verdict.to_string())
        })
        .collect();
    let expected = [
        ("1.0.0", "verified"),
        ("1.1.0", "verified"),
        ("1.2.0", "signature_missing"),
        ("1.3.0", "untrusted_signer"),
        ("1.4.0", "signature_invalid"),
        ("1.5.0", "untrusted_signer"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(v, c)| (v.to_string(), c.to_string())).collect();
    assert_eq!(verdicts, expected, "{versions}");
    let xtask_signer = key_from(&xtask_key.with_extension("key")).public_key().id();
    assert_eq!(versions["versions"][0]["signature"]["signers"], json!([xtask_signer]));

    let status: Value = server.client.get(server.url("/plugins/calc")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["version"], "1.5.0");
    assert_eq!(status["loaded"], false);
    assert_eq!(status["signature"]["code"], "untrusted_signer", "{status}");
    assert!(status["last_error"].as_str().unwrap().contains("refused"), "{status}");

    let metrics = server.client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for code in ["signature_missing", "signature_invalid", "untrusted_signer"] {
        assert!(metrics.contains(&format!("outcome=\"{code}\"")), "{code} not counted:\n{metrics}");
    }
}

/// Key rotation (either of two keys, `any`), a prefix that needs `all` of them, a prefix that
/// allows unsigned plugins, and a registry that is down after a restart: a verified version
/// still serves from its cached verdict, one never judged does not, and a verdict of another
/// policy is not reused.
#[test]
fn rotation_all_prefixes_and_cached_verdicts_through_an_outage() {
    let mut registry = Registry::start(None);
    let (old, new) = (PrivateKey::generate(), PrivateKey::generate());
    let addr = registry.addr.clone();
    let keys_dir = TempDir::new().unwrap();
    let rules = json!({"rules": [
        {"prefix": format!("{addr}/plugins"), "keys": ["old.pub", "new.pub"], "require": "any"},
        {"prefix": format!("{addr}/strict"), "keys": ["old.pub", "new.pub"], "require": "all"},
        {"prefix": format!("{addr}/dev"), "allow_unsigned": true},
    ]});
    let policy = write_policy(keys_dir.path(), rules, &[("old", &old), ("new", &new)]);
    let store_for = |prefix: &str, cache: &Path, policy: &Arc<TrustPolicy>| {
        let mut settings = OciSettings::new(format!("{addr}/{prefix}"));
        settings.insecure = true;
        settings.cache_dir = cache.to_path_buf();
        settings.timeout = Duration::from_secs(2);
        settings.refresh = Duration::from_millis(200);
        settings.trust = Some(Arc::clone(policy));
        OciPluginStore::new(settings).unwrap()
    };
    // Each version different bytes: a signature is of a manifest digest, whatever its tag.
    for (output, (prefix, version, signers)) in [
        ("plugins", "1.0.0", vec![&old]),
        ("plugins", "2.0.0", vec![&new]),
        ("plugins", "3.0.0", vec![&old]),
        ("strict", "1.0.0", vec![&old]),
        ("strict", "2.0.0", vec![&old, &new]),
        ("dev", "1.0.0", vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        push_to(&registry, prefix, "calc", version, &answering(output as i32), &RegistryAuth::Anonymous);
        if !signers.is_empty() {
            sign(&registry, prefix, "calc", &manifest_digest(&registry, prefix, "calc", version), &signers);
        }
    }
    let cache = TempDir::new().unwrap();
    let plugins = store_for("plugins", cache.path(), &policy);
    assert_eq!(refusal(plugins.load(&at("calc", "1.0.0"))), None, "signed by the old key");
    assert_eq!(refusal(plugins.load(&at("calc", "2.0.0"))), None, "signed by the new key");
    let strict = store_for("strict", cache.path(), &policy);
    assert_eq!(refusal(strict.load(&at("calc", "1.0.0"))), Some(Refusal::UntrustedSigner), "all: one is not enough");
    assert_eq!(refusal(strict.load(&at("calc", "2.0.0"))), None, "all: both signed");
    let dev = store_for("dev", cache.path(), &policy);
    assert_eq!(refusal(dev.load(&at("calc", "1.0.0"))), None, "unsigned allowed under dev/");
    drop((plugins, strict, dev));

    // A restart with the registry down: what was verified serves from the cache.
    registry.stop();
    let restarted = store_for("plugins", cache.path(), &policy);
    assert_eq!(refusal(restarted.load(&at("calc", "2.0.0"))), None, "verdict kept on disk");
    let never_judged = restarted.load(&at("calc", "3.0.0"));
    assert!(matches!(never_judged, Err(StoreError::NotFound(_) | StoreError::Unavailable { .. })), "{never_judged:?}");
    // Another policy (only the new key): the kept verdict of the old one is not reused, and
    // without the registry nothing can be judged, so nothing runs.
    let other_dir = TempDir::new().unwrap();
    let rules = json!({"rules": [{"prefix": format!("{addr}/plugins"), "keys": ["new.pub"]}]});
    let other = write_policy(other_dir.path(), rules, &[("new", &new)]);
    let under_other = store_for("plugins", cache.path(), &other);
    let result = under_other.load(&at("calc", "2.0.0"));
    assert!(matches!(result, Err(StoreError::Unavailable { .. })), "{result:?}");
    registry.resume();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(refusal(under_other.load(&at("calc", "2.0.0"))), None, "judged again once the registry is back");
}

/// Detached signatures in a plugin folder: a valid one serves, a missing one, one by another
/// key and one of other bytes (the file changed after signing) are refused; a signature added
/// beside an unchanged file is picked up without a restart, as files are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_signatures_guard_a_plugin_folder_and_reload_like_files() {
    let (trusted, stranger) = (PrivateKey::generate(), PrivateKey::generate());
    let keys = TempDir::new().unwrap();
    let policy = write_policy(keys.path(), json!({"rules": [{"prefix": "", "keys": ["k.pub"]}]}), &[("k", &trusted)]);
    let dir = TempDir::new().unwrap();
    let write = |name: &str, output: i32, signer: Option<&PrivateKey>, signed_bytes: Option<Vec<u8>>| {
        let bytes = answering(output);
        fs::write(dir.path().join(format!("{name}.wasm")), &bytes).unwrap();
        if let Some(key) = signer {
            let signed = signed_bytes.unwrap_or(bytes);
            let detached = DetachedSignature::sign(std::slice::from_ref(key), name, &signed);
            fs::write(dir.path().join(format!("{name}.wasm.sig")), detached.to_json()).unwrap();
        }
    };
    write("valid", 1, Some(&trusted), None);
    write("unsigned", 2, None, None);
    write("stranger", 3, Some(&stranger), None);
    write("changed", 4, Some(&trusted), Some(answering(40)));
    // A trusted signature of `valid`'s bytes, copied beside a file of another name.
    write("renamed", 1, None, None);
    fs::copy(dir.path().join("valid.wasm.sig"), dir.path().join("renamed.wasm.sig")).unwrap();
    // A signature that is a link (to a valid signature of the same bytes): never followed.
    write("linked", 1, None, None);
    let valid_signature = DetachedSignature::sign(std::slice::from_ref(&trusted), "linked", &answering(1));
    fs::write(dir.path().join(".elsewhere.sig"), valid_signature.to_json()).unwrap();
    std::os::unix::fs::symlink(dir.path().join(".elsewhere.sig"), dir.path().join("linked.wasm.sig")).unwrap();

    let store = LocalPluginStore::new(dir.path(), 16 << 20).unwrap().with_trust(policy);
    let server =
        TestServer::start(app_state(Arc::new(store), runtime_config(plugin_host::runtime::ExecutionMode::Aot), 16))
            .await;
    let code = async |name: &str| {
        let (status, body) = server.run(name, 0).await;
        (status, body["error"]["code"].as_str().unwrap_or("").to_string(), body)
    };
    assert_eq!(server.run("valid", 0).await, (200, json!({"output": 1})));
    for (name, expected) in [
        ("unsigned", "signature_missing"),
        ("stranger", "untrusted_signer"),
        ("changed", "signature_invalid"),
        ("renamed", "signature_invalid"),
        ("linked", "signature_invalid"),
    ] {
        let (status, found, body) = code(name).await;
        assert_eq!((status, found.as_str()), (500, expected), "{name}: {body}");
        let listed: Value =
            server.client.get(server.url(&format!("/plugins/{name}"))).send().await.unwrap().json().await.unwrap();
        assert_eq!(listed["loaded"], false, "{listed}");
        assert_eq!(listed["signature"]["code"], expected, "{listed}");
    }
    let listed: Value = server.client.get(server.url("/plugins/valid")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["signature"]["verdict"], "verified", "{listed}");
    assert_eq!(listed["signature"]["signers"], json!([trusted.public_key().id()]));

    // Signed later, without a restart: the next call runs it.
    let bytes = fs::read(dir.path().join("unsigned.wasm")).unwrap();
    let detached = DetachedSignature::sign(std::slice::from_ref(&trusted), "unsigned", &bytes);
    fs::write(dir.path().join("unsigned.wasm.sig"), detached.to_json()).unwrap();
    assert_eq!(server.run("unsigned", 0).await, (200, json!({"output": 2})));
    // The signature removed again: refused again, not served from the compiled module.
    fs::remove_file(dir.path().join("unsigned.wasm.sig")).unwrap();
    assert_eq!(code("unsigned").await.1, "signature_missing");
    // The file replaced by other bytes under a valid signature of the old ones: refused.
    crate::support::replace_atomically(dir.path(), "valid", &answering(99));
    assert_eq!(code("valid").await.1, "signature_invalid");
}
