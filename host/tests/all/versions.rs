//! Versioned plugins in the file stores: `<name>/<semver>.wasm` beside the flat `<name>.wasm`,
//! resolved by the one resolver every store shares.

use std::{fs, sync::Arc};

use host::store::{
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
    assert_eq!(versions.describe(), "1.0.0, 1.4.2, 2.0.0-rc.1");
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
    for junk in ["latest.wasm", "v1.1.0.wasm", "1.1.wasm", "01.2.0.wasm", "1.3.0.wasm.tmp", "notes.txt", ".1.4.0.wasm"] {
        fs::write(dir.path().join("hello").join(junk), b"junk").unwrap();
    }
    fs::create_dir(dir.path().join("hello/2.0.0.wasm")).unwrap();
    let store = LocalPluginStore::new(dir.path(), 1 << 20).unwrap();
    let versions = store.versions(&name("hello")).unwrap();
    // The folder named like a version is listed (it is a name), and refused when read.
    assert_eq!(versions.describe(), "1.0.0, 2.0.0");
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
    assert_eq!(error.to_string(), "no version of plugin `hello` matches `^3` (available: 1.0.0, 1.4.0, 1.4.2, 2.0.0, 2.1.0-rc.1)");

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
