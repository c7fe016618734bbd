//! Versioned plugins in the file stores: `<name>/<semver>.wasm` beside the flat `<name>.wasm`,
//! resolved by the one resolver every store shares.

use std::{fs, sync::Arc};

use plugin_host::store::{
    LocalPluginStore, PluginName, PluginRef, PluginStore, Resolver, StoreError, Version, VersionRequirement,
};

use crate::support::plugin_bytes;

fn name(text: &str) -> PluginName {
    PluginName::new(text).unwrap()
}

/// A plugin folder with `hello.wasm` and `hello/<version>.wasm` for each version given.
fn versioned_dir(versions: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("hello.wasm"), plugin_bytes("hello")).unwrap();
    fs::create_dir(dir.path().join("hello")).unwrap();
    for version in versions {
        fs::write(dir.path().join(format!("hello/{version}.wasm")), plugin_bytes("hello")).unwrap();
    }
    dir
}

fn resolve(resolver: &Resolver, requirement: Option<&str>) -> Result<String, StoreError> {
    let requirement = requirement.map(|r| VersionRequirement::parse(r).unwrap());
    resolver.resolve(&name("hello"), requirement.as_ref()).map(|found| found.to_string())
}

#[test]
fn the_local_store_lists_and_reads_versions_beside_the_flat_file() {
    let dir = versioned_dir(&["1.0.0", "1.4.2", "2.0.0-rc.1"]);
    let store = LocalPluginStore::new(dir.path(), 1 << 20).unwrap();
    let versions = store.versions(&name("hello")).unwrap();
    assert!(versions.unversioned);
    assert_eq!(versions.describe(), "unversioned, 1.0.0, 1.4.2, 2.0.0-rc.1");
    assert_eq!(store.list().unwrap(), [name("hello")], "one plugin, however many versions");

    let pinned = PluginRef::versioned(name("hello"), Version::new(1, 4, 2));
    assert_eq!(store.load(&pinned).unwrap().bytes, plugin_bytes("hello"));
    let absent = PluginRef::versioned(name("hello"), Version::new(9, 0, 0));
    assert!(matches!(store.stat(&absent), Err(StoreError::NotFound(_))));

    // A plugin with versions only.
    fs::create_dir(dir.path().join("only")).unwrap();
    fs::write(dir.path().join("only/0.1.0.wasm"), plugin_bytes("hello")).unwrap();
    let versions = store.versions(&name("only")).unwrap();
    assert!(!versions.unversioned);
    assert_eq!(store.list().unwrap(), [name("hello"), name("only")]);
}

#[test]
fn invalid_version_names_are_ignored_never_a_crash() {
    let dir = versioned_dir(&["1.0.0"]);
    for junk in ["latest.wasm", "v1.1.0.wasm", "1.1.wasm", "01.2.0.wasm", "1.3.0.wasm.tmp", "notes.txt", ".1.4.0.wasm"]
    {
        fs::write(dir.path().join("hello").join(junk), b"junk").unwrap();
    }
    fs::create_dir(dir.path().join("hello/2.0.0.wasm")).unwrap();
    let store = LocalPluginStore::new(dir.path(), 1 << 20).unwrap();
    let versions = store.versions(&name("hello")).unwrap();
    // The folder named like a version is listed (it is a name), and refused when read.
    assert_eq!(versions.describe(), "unversioned, 1.0.0, 2.0.0");
    let folder = PluginRef::versioned(name("hello"), Version::new(2, 0, 0));
    assert!(matches!(store.stat(&folder), Err(StoreError::NotARegularFile(_))));
}

#[test]
fn version_folders_and_files_that_lead_elsewhere_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("1.0.0.wasm"), plugin_bytes("hello")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A version folder that is a link: could point anywhere, so it holds no versions.
    std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
    let store = LocalPluginStore::new(dir.path(), 1 << 20).unwrap();
    assert!(store.versions(&name("linked")).unwrap().is_empty());
    let through_link = PluginRef::versioned(name("linked"), Version::new(1, 0, 0));
    assert!(store.load(&through_link).is_err());
    // A version file that links out of its folder.
    fs::create_dir(dir.path().join("hello")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("1.0.0.wasm"), dir.path().join("hello/1.0.0.wasm")).unwrap();
    let escaping = PluginRef::versioned(name("hello"), Version::new(1, 0, 0));
    assert!(matches!(store.load(&escaping), Err(StoreError::NotARegularFile(_))));
}

#[test]
fn the_resolver_picks_by_requirement_in_the_local_store() {
    let dir = versioned_dir(&["1.0.0", "1.4.0", "1.4.2", "2.0.0", "2.1.0-rc.1"]);
    let store: Arc<dyn PluginStore> = Arc::new(LocalPluginStore::new(dir.path(), 1 << 20).unwrap());
    let resolver = Resolver::new(store);
    assert_eq!(resolve(&resolver, None).unwrap(), "hello 2.0.0", "the highest release beats the flat file");
    assert_eq!(resolve(&resolver, Some("^1.2")).unwrap(), "hello 1.4.2");
    assert_eq!(resolve(&resolver, Some("~1.4.0")).unwrap(), "hello 1.4.2");
    assert_eq!(resolve(&resolver, Some("=1.4.0")).unwrap(), "hello 1.4.0");
    assert_eq!(resolve(&resolver, Some(">=1, <3")).unwrap(), "hello 2.0.0");
    assert_eq!(resolve(&resolver, Some(">=2.1.0-rc.1")).unwrap(), "hello 2.1.0-rc.1");
    let error = resolve(&resolver, Some("^3")).unwrap_err();
    assert_eq!(error.kind().code(), "version_not_found");
    assert_eq!(
        error.to_string(),
        "no version of plugin `hello` matches `^3` (available: unversioned, 1.0.0, 1.4.0, 1.4.2, 2.0.0, 2.1.0-rc.1)"
    );

    // A version published after the listing was cached: a pin finds it at once (once the
    // listing is over a tenth of its lifetime old, which bounds what misses cost the store).
    fs::write(dir.path().join("hello/3.0.0.wasm"), plugin_bytes("hello")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    assert_eq!(resolve(&resolver, Some("=3.0.0")).unwrap(), "hello 3.0.0");

    // Only the flat file left: it is what a call without a requirement gets.
    fs::remove_dir_all(dir.path().join("hello")).unwrap();
    resolver.forget(&name("hello"));
    assert_eq!(resolve(&resolver, None).unwrap(), "hello");
    assert!(matches!(resolver.resolve(&name("absent"), None), Err(StoreError::NotFound(_))));
}

mod http {
    //! Versions over HTTP: `"version"` in `POST /run`, `?version=`, the answer's version.

    use serde_json::{Value, json};

    use super::*;
    use crate::{
        registry::answering,
        support::{TestServer, app_state, runtime_config},
    };

    /// `calc` in four versions (each answers its own number), beside the flat `hello.wasm`,
    /// and the v2 `text` plugin as `words/1.0.0.wasm`.
    fn store() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("hello.wasm"), plugin_bytes("hello")).unwrap();
        fs::create_dir(dir.path().join("calc")).unwrap();
        for (version, output) in [("1.0.0", 10), ("1.1.0", 11), ("2.0.0", 20), ("2.1.0-rc.1", 21)] {
            fs::write(dir.path().join(format!("calc/{version}.wasm")), answering(output)).unwrap();
        }
        fs::create_dir(dir.path().join("words")).unwrap();
        fs::write(dir.path().join("words/1.0.0.wasm"), plugin_bytes("text")).unwrap();
        dir
    }

    async fn serve(dir: &std::path::Path) -> TestServer {
        let store: Arc<dyn PluginStore> = Arc::new(LocalPluginStore::new(dir, 1 << 20).unwrap());
        TestServer::start(app_state(store, runtime_config(plugin_host::runtime::ExecutionMode::Aot), 16)).await
    }

    /// Status, `x-plugin-version` and body of a `POST /run`.
    async fn run(server: &TestServer, body: Value) -> (u16, Option<String>, Value) {
        let response = server.client.post(server.url("/run")).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let version = response.headers().get("x-plugin-version").map(|v| v.to_str().unwrap().to_string());
        (status, version, response.json().await.unwrap())
    }

    #[tokio::test]
    async fn a_call_names_a_requirement_and_the_answer_says_which_version_ran() {
        let dir = store();
        let server = serve(dir.path()).await;
        let calc = |version: Option<&str>| match version {
            Some(version) => json!({"plugin": "calc", "input": 1, "version": version}),
            None => json!({"plugin": "calc", "input": 1}),
        };
        let ran = |output: i32, version: &str| {
            (200, Some(version.to_string()), json!({"output": output, "version": version}))
        };
        assert_eq!(run(&server, calc(None)).await, ran(20, "2.0.0"), "the highest release");
        assert_eq!(run(&server, calc(Some("^1"))).await, ran(11, "1.1.0"));
        assert_eq!(run(&server, calc(Some("~1.0"))).await, ran(10, "1.0.0"));
        assert_eq!(run(&server, calc(Some("=1.0.0"))).await, ran(10, "1.0.0"), "pinned");
        assert_eq!(run(&server, calc(Some(">=1, <2"))).await, ran(11, "1.1.0"));
        assert_eq!(run(&server, calc(Some(">=2.1.0-rc.1"))).await, ran(21, "2.1.0-rc.1"), "a pre-release when asked");
        // Both pinned versions stay loaded side by side: alternating calls never reload.
        for _ in 0..3 {
            assert_eq!(run(&server, calc(Some("=1.0.0"))).await.2["output"], 10);
            assert_eq!(run(&server, calc(Some("=2.0.0"))).await.2["output"], 20);
        }

        let (status, version, body) = run(&server, calc(Some("^3"))).await;
        assert_eq!((status, version), (404, None));
        assert_eq!(body["error"]["code"], "version_not_found");
        assert_eq!(
            body["error"]["message"],
            "no version of plugin `calc` matches `^3` (available: 1.0.0, 1.1.0, 2.0.0, 2.1.0-rc.1)"
        );
        let (status, _, body) = run(&server, calc(Some("latest; rm -rf /"))).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "invalid_version_requirement");
        assert!(!body["error"]["message"].as_str().unwrap().contains("rm -rf"), "input is not echoed");

        // An unversioned plugin answers as it always did.
        let hello = run(&server, json!({"plugin": "hello", "input": 21})).await;
        assert_eq!(hello, (200, None, json!({"output": 43})));
        let (status, _, body) = run(&server, json!({"plugin": "hello", "input": 21, "version": "^1"})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("version_not_found")));
        // The message names what is there: the unversioned file, which no requirement selects.
        assert_eq!(body["error"]["message"], "no version of plugin `hello` matches `^1` (available: unversioned)");
    }

    /// `2.3.4+zzz` written beside `2.3.4` (by hand: `publish` refuses it) moves nobody: calls
    /// pinned to `=2.3.4`, ranges and calls without a requirement keep getting `2.3.4`, and the
    /// listings say which version is never served and why.
    #[tokio::test]
    async fn build_metadata_never_moves_a_pinned_call_and_the_conflict_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("calc")).unwrap();
        fs::write(dir.path().join("calc/2.3.3.wasm"), answering(233)).unwrap();
        fs::write(dir.path().join("calc/2.3.4.wasm"), answering(234)).unwrap();
        let server = serve(dir.path()).await;
        let calc = |version: &str| json!({"plugin": "calc", "input": 1, "version": version});
        let ran_234 = (200, Some("2.3.4".to_string()), json!({"output": 234, "version": "2.3.4"}));
        assert_eq!(run(&server, calc("=2.3.4")).await, ran_234);

        fs::write(dir.path().join("calc/2.3.4+zzz.wasm"), answering(999)).unwrap();
        fs::write(dir.path().join("calc/2.3.4+aaa.wasm"), answering(998)).unwrap();
        // Past the file stores' listing lifetime (1 s), so the new files are listed.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        for requirement in ["=2.3.4", "^2", "~2.3", ">=2.3.4, <3", "*"] {
            assert_eq!(run(&server, calc(requirement)).await, ran_234, "{requirement}");
        }
        assert_eq!(run(&server, json!({"plugin": "calc", "input": 1})).await, ran_234, "no requirement");

        let get = |path: &str| server.client.get(server.url(path)).send();
        let body: Value = get("/plugins/calc/versions").await.unwrap().json().await.unwrap();
        let sha = |output: i32| crate::support::sha256_hex(&answering(output));
        assert_eq!(
            body["versions"],
            json!([
                {"version": "2.3.3", "sha256": sha(233), "default": false},
                {"version": "2.3.4", "sha256": sha(234), "default": true},
                {"version": "2.3.4+aaa", "sha256": sha(998), "default": false, "shadowed_by": "2.3.4"},
                {"version": "2.3.4+zzz", "sha256": sha(999), "default": false, "shadowed_by": "2.3.4"},
            ])
        );
        let shown: Value = get("/plugins/calc?version=%3D2.3.4").await.unwrap().json().await.unwrap();
        assert_eq!((&shown["version"], &shown["conflicts"]), (&json!("2.3.4"), &json!(["2.3.4+aaa", "2.3.4+zzz"])));
        let listing: Value = get("/plugins").await.unwrap().json().await.unwrap();
        assert_eq!(listing[0]["conflicts"], json!(["2.3.4+aaa", "2.3.4+zzz"]), "{listing}");
        let older: Value = get("/plugins/calc?version=%3D2.3.3").await.unwrap().json().await.unwrap();
        assert_eq!(older.get("conflicts"), None, "only the version with twins lists them: {older}");

        // Without the plain version, the lowest build metadata is served, on every replica alike.
        fs::remove_file(dir.path().join("calc/2.3.4.wasm")).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        let (status, version, body) = run(&server, calc("=2.3.4")).await;
        assert_eq!((status, version.as_deref(), &body["output"]), (200, Some("2.3.4+aaa"), &json!(998)));
    }

    #[tokio::test]
    async fn the_raw_function_endpoint_takes_a_version_query() {
        let dir = store();
        let server = serve(dir.path()).await;
        let call =
            |query: &str| server.client.post(server.url(&format!("/plugins/words/functions/upper{query}"))).body("abc");
        let response = call("?version=%5E1").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["x-plugin-version"], "1.0.0");
        assert_eq!(response.text().await.unwrap(), "ABC");
        let response = call("?version=%3D2.0.0").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "version_not_found");
        let response = call("?version=nope").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400);
    }

    #[tokio::test]
    async fn versions_are_listed_with_their_digests() {
        let dir = store();
        let server = serve(dir.path()).await;
        let get = |path: &str| server.client.get(server.url(path)).send();
        let body: Value = get("/plugins/calc/versions").await.unwrap().json().await.unwrap();
        let sha = |output: i32| crate::support::sha256_hex(&answering(output));
        assert_eq!(
            body,
            json!({"name": "calc", "versions": [
                {"version": "1.0.0", "sha256": sha(10), "default": false},
                {"version": "1.1.0", "sha256": sha(11), "default": false},
                {"version": "2.0.0", "sha256": sha(20), "default": true},
                {"version": "2.1.0-rc.1", "sha256": sha(21), "default": false},
            ]})
        );
        let hello: Value = get("/plugins/hello/versions").await.unwrap().json().await.unwrap();
        assert_eq!(hello["versions"], json!([{"version": null, "sha256": sha256_of("hello"), "default": true}]));
        assert_eq!(get("/plugins/absent/versions").await.unwrap().status().as_u16(), 404);

        // One plugin, as a given requirement (or none) gets it; the listing shows each plugin's default.
        let pinned: Value = get("/plugins/calc?version=%5E1").await.unwrap().json().await.unwrap();
        assert_eq!((pinned["version"].as_str(), pinned["sha256"].as_str()), (Some("1.1.0"), Some(sha(11).as_str())));
        let listing: Value = get("/plugins").await.unwrap().json().await.unwrap();
        let versions: Vec<(&str, Option<&str>)> =
            listing.as_array().unwrap().iter().map(|p| (p["name"].as_str().unwrap(), p["version"].as_str())).collect();
        assert_eq!(versions, [("calc", Some("2.0.0")), ("hello", None), ("words", Some("1.0.0"))]);
    }

    fn sha256_of(plugin: &str) -> String {
        crate::support::sha256_hex(&plugin_bytes(plugin))
    }
}

/// The folder `cargo xtask build-plugins` fills and the host serves by default holds plugins
/// only: listing it as the host does (every name, then its versions) logs no warning, and every
/// name is an unversioned plugin that loads. (Fixtures once built into subfolders of it, which
/// the store read as version folders of plugins named `invalid`, `faults` and `compat`: 58
/// warnings per `GET /plugins`.)
#[test]
fn the_served_folder_lists_only_plugins_and_without_a_warning() {
    let store = LocalPluginStore::new(crate::support::built_plugins(), 64 << 20)
        .expect("run `cargo xtask build-plugins` first");
    let (warnings, listing) = crate::support::capture_warnings(|| {
        let names = store.list().unwrap();
        names.into_iter().map(|name| (store.versions(&name).unwrap(), name)).collect::<Vec<_>>()
    });
    assert_eq!(warnings, "", "listing the served folder warned");
    let names: Vec<&str> = listing.iter().map(|(_, name)| name.as_str()).collect();
    assert!(names.contains(&"hello"), "{names:?}");
    for (versions, name) in &listing {
        assert!(versions.unversioned && versions.versions.is_empty(), "{name} is not a plugin file: {versions:?}");
        store.load(&PluginRef::unversioned(name.clone())).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
