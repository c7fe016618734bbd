//! The in-process runner over a real plugin directory: versions, hot swap, half-written files.

use std::{
    fs,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::Duration,
};

use plugin_host::{
    runner::{Calls, Inspects, RunError},
    runtime::{ExecutionMode, RuntimeError},
    store::{PluginName, StoreError},
};

use crate::support::{
    local_store, plugin_bytes, plugin_dir, replace_atomically, runner_for, runtime_config, settings, workers,
};

fn name(name: &str) -> PluginName {
    PluginName::new(name).unwrap()
}

#[test]
fn runs_plugins_by_name_and_reports_missing_ones() {
    let dir = plugin_dir(&["hello"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Aot));
    assert_eq!(runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 21).unwrap().output, 43);
    let err = runner.run(&plugin_host::store::PluginRef::from(&name("nope")), 1).unwrap_err();
    assert!(matches!(err, RunError::Store(StoreError::NotFound(_))), "{err:?}");

    // Deleting the file makes the plugin disappear, even though a version was loaded.
    fs::remove_file(dir.path().join("hello.wasm")).unwrap();
    assert!(matches!(
        runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 1),
        Err(RunError::Store(StoreError::NotFound(_)))
    ));
}

#[test]
fn a_replaced_file_is_picked_up_by_the_next_call() {
    let dir = plugin_dir(&["hello"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Aot));
    assert_eq!(runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).unwrap().output, 11);

    replace_atomically(dir.path(), "hello", &plugin_bytes("simple"));
    assert_eq!(
        runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).unwrap().output,
        6,
        "replaced by rename"
    );

    // Rewritten in place (same inode), as an editor or `cp` would.
    fs::write(dir.path().join("hello.wasm"), plugin_bytes("abi")).unwrap();
    assert_eq!(
        runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).unwrap().output,
        25,
        "rewritten in place"
    );
}

#[test]
fn a_half_written_file_never_runs_and_the_previous_version_keeps_serving() {
    let dir = plugin_dir(&["hello"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Interpreter));
    assert_eq!(runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).unwrap().output, 11);

    let next = plugin_bytes("simple");
    fs::write(dir.path().join("hello.wasm"), &next[..next.len() / 2]).unwrap();
    assert_eq!(
        runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).unwrap().output,
        11,
        "still the previous version"
    );
    assert_eq!(
        runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).unwrap().output,
        11,
        "and again, without re-reading"
    );

    fs::write(dir.path().join("hello.wasm"), &next).unwrap();
    assert_eq!(
        runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).unwrap().output,
        6,
        "the completed file is the new version"
    );

    // With no good version to fall back on, the failure is the answer.
    fs::write(dir.path().join("fresh.wasm"), &next[..10]).unwrap();
    let err = runner.run(&plugin_host::store::PluginRef::from(&name("fresh")), 5).unwrap_err();
    assert!(matches!(err.root(), RunError::Runtime(RuntimeError::AbiViolation(_))), "{err:?}");
}

#[test]
fn hot_swap_under_concurrent_calls_never_fails_a_call() {
    let dir = plugin_dir(&["hello"]);
    let runner = Arc::new(runner_for(dir.path(), runtime_config(ExecutionMode::Aot)));
    // hello(5) = 11, simple(5) = 6: every answer must be one of the two.
    let versions = [plugin_bytes("hello"), plugin_bytes("simple")];
    let done = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let (runner, done) = (Arc::clone(&runner), Arc::clone(&done));
            thread::spawn(move || {
                let mut seen = [0u32; 2];
                while !done.load(Ordering::Relaxed) {
                    match runner.run(&plugin_host::store::PluginRef::from(&name("hello")), 5).map(|ran| ran.output) {
                        Ok(11) => seen[0] += 1,
                        Ok(6) => seen[1] += 1,
                        other => panic!("a call during the swap got {other:?}"),
                    }
                }
                seen
            })
        })
        .collect();
    for round in 0..40 {
        replace_atomically(dir.path(), "hello", &versions[round % 2]);
        thread::sleep(Duration::from_millis(5));
    }
    done.store(true, Ordering::Relaxed);
    let mut totals = [0u32; 2];
    for caller in callers {
        let seen = caller.join().expect("no caller panicked");
        totals[0] += seen[0];
        totals[1] += seen[1];
    }
    println!("calls answered by the old/new version: {totals:?}");
    assert!(totals[0] > 0 && totals[1] > 0, "both versions served: {totals:?}");
}

/// A real local store that counts how often each plugin file is read.
#[derive(Debug)]
struct CountingStore {
    inner: plugin_host::store::LocalPluginStore,
    loads: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl CountingStore {
    fn loads(&self, plugin: &str) -> u32 {
        self.loads.lock().unwrap().get(plugin).copied().unwrap_or(0)
    }
}

impl plugin_host::store::PluginStore for CountingStore {
    fn stat(&self, plugin: &plugin_host::store::PluginRef) -> Result<plugin_host::store::FileIdentity, StoreError> {
        self.inner.stat(plugin)
    }
    fn load(&self, plugin: &plugin_host::store::PluginRef) -> Result<plugin_host::store::PluginFile, StoreError> {
        *self.loads.lock().unwrap().entry(plugin.to_string()).or_default() += 1;
        self.inner.load(plugin)
    }
    fn versions(&self, name: &PluginName) -> Result<plugin_host::store::Versions, StoreError> {
        self.inner.versions(name)
    }
    fn list(&self) -> Result<Vec<PluginName>, StoreError> {
        self.inner.list()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn counting_runner(dir: &std::path::Path) -> (plugin_host::runner::InProcessRunner, Arc<CountingStore>) {
    let store = Arc::new(CountingStore {
        inner: plugin_host::store::LocalPluginStore::new(dir, 16 << 20).unwrap(),
        loads: Default::default(),
    });
    let engine = plugin_host::runtime::Engine::new(runtime_config(ExecutionMode::Aot)).unwrap();
    let metrics = Arc::new(host::metrics::Metrics::new());
    let store_dyn: Arc<dyn plugin_host::store::PluginStore> = Arc::clone(&store) as _;
    (plugin_host::runner::InProcessRunner::new(store_dyn, engine, metrics, 16), store)
}

/// A file that failed to load is remembered: the same error again, without reading and
/// checking the file on every request, until the file changes.
#[test]
fn a_broken_file_is_read_once_until_it_changes() {
    let dir = plugin_dir(&["hello"]);
    fs::write(dir.path().join("broken.wasm"), b"not a module").unwrap();
    let (runner, store) = counting_runner(dir.path());
    let first = runner.run(&plugin_host::store::PluginRef::from(&name("broken")), 1).unwrap_err();
    for _ in 0..5 {
        let again = runner.run(&plugin_host::store::PluginRef::from(&name("broken")), 1).unwrap_err();
        assert_eq!((again.kind(), again.to_string()), (first.kind(), first.to_string()));
    }
    assert_eq!(first.kind().code(), "abi_violation");
    assert_eq!(store.loads("broken"), 1, "read once, then remembered");

    replace_atomically(dir.path(), "broken", &plugin_bytes("hello"));
    assert_eq!(
        runner.run(&plugin_host::store::PluginRef::from(&name("broken")), 21).unwrap().output,
        43,
        "a fixed file is loaded at once"
    );
    assert_eq!(store.loads("broken"), 2);
}

/// Listings (`GET /plugins`, `/readyz`) stat each file and read only the ones that changed.
#[test]
fn listings_read_each_file_once_while_it_is_unchanged() {
    let dir = plugin_dir(&["hello", "abi"]);
    let (runner, store) = counting_runner(dir.path());
    let first = runner.list().unwrap();
    for _ in 0..3 {
        let again = runner.list().unwrap();
        assert_eq!(again.len(), first.len());
    }
    assert_eq!((store.loads("hello"), store.loads("abi")), (1, 1));

    replace_atomically(dir.path(), "abi", &plugin_bytes("simple"));
    let listed = runner.list().unwrap();
    assert_eq!((store.loads("hello"), store.loads("abi")), (1, 2), "only the changed file is read again");
    let abi = listed.iter().find(|p| p.name.as_str() == "abi").unwrap();
    assert_eq!(abi.sha256.as_deref(), Some(crate::support::sha256_hex(&plugin_bytes("simple")).as_str()));
}

#[test]
fn short_calls_run_directly_and_a_changed_file_sends_the_call_back_to_the_blocking_path() {
    let dir = plugin_dir(&["hello"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Aot));
    let name = name("hello");
    let hello = plugin_host::store::PluginRef::from(&name);
    let target = plugin_host::Target::from(name.clone());
    let direct = |input| match runner.run_now(&target, input) {
        plugin_host::runner::Attempt::Done(result) => Some(result.map(|ran| (ran.plugin, ran.output)).unwrap()),
        plugin_host::runner::Attempt::Blocking(_) => None,
        plugin_host::runner::Attempt::Queued(_) => panic!("in-process calls are never queued"),
    };
    assert!(direct(1).is_none(), "a plugin never called is not known to be short");
    for _ in 0..64 {
        assert_eq!(runner.run(&hello, 21).unwrap().output, 43);
    }
    assert_eq!(direct(21).expect("a plugin with short calls runs directly"), (hello.clone(), 43));

    // A new version is loaded only where blocking is allowed: the direct path declines.
    replace_atomically(dir.path(), "hello", &plugin_bytes("simple"));
    assert!(direct(5).is_none(), "a changed file is not run directly");
    // Loading and the first calls of a new version may take long enough to count as overruns.
    for _ in 0..256 {
        assert_eq!(runner.run(&hello, 5).unwrap().output, 6);
    }
    assert_eq!(direct(5).expect("the new version is loaded"), (hello, 6));
}

#[test]
fn short_v2_calls_run_directly_and_a_changed_file_sends_them_back_to_the_blocking_path() {
    let dir = plugin_dir(&["text"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Aot));
    let text = plugin_host::store::PluginRef::from(&name("text"));
    let target = plugin_host::Target::from(name("text"));
    let direct = |input: &[u8]| match runner.call_now(&text, "upper", input) {
        plugin_host::runner::Attempt::Done(result) => Some(result.unwrap().output),
        plugin_host::runner::Attempt::Blocking(_) => None,
        plugin_host::runner::Attempt::Queued(_) => panic!("in-process calls are never queued"),
    };
    assert!(direct(b"a").is_none(), "a plugin never called is not known to be short");
    assert!(runner.interface_now(&target).is_none(), "nor loaded");
    for _ in 0..64 {
        assert_eq!(runner.call(&text, "upper", b"abc").unwrap().output, b"ABC");
    }
    assert_eq!(direct(b"hello, World").expect("a plugin with short calls runs directly"), b"HELLO, WORLD");
    let (resolved, interface) = runner.interface_now(&target).expect("a loaded plugin's interface is known at once");
    assert_eq!(resolved, text);
    assert_eq!(interface.function_kind("upper").unwrap(), plugin_host::FunctionKind::Call);

    // A changed file is loaded only where blocking is allowed: the direct paths decline.
    replace_atomically(dir.path(), "text", &plugin_bytes("text_rust"));
    assert!(direct(b"abc").is_none(), "a changed file is not run directly");
    assert!(runner.interface_now(&target).is_none(), "nor described directly");
    assert_eq!(runner.call(&text, "upper", b"abc").unwrap().output, b"ABC");
}

/// A host over a folder with `hello`, whose files are rechecked every `recheck`, after 20 calls
/// of `hello`: enough for its calls to be known as short.
async fn hello_with_recheck(
    isolation: plugin_host::Isolation,
    recheck: Duration,
) -> (tempfile::TempDir, plugin_host::Host) {
    let dir = plugin_dir(&["hello"]);
    let mut settings = settings(&runtime_config(ExecutionMode::Aot), isolation, 16);
    settings.hot_swap_recheck = recheck;
    let host =
        plugin_host::Host::with_observer(local_store(dir.path()), settings, Arc::new(plugin_host::NoObserver)).unwrap();
    for _ in 0..20 {
        assert_eq!(host.run(&plugin_host::Target::from(name("hello")), 5).await.unwrap().output, 11);
    }
    (dir, host)
}

/// With a recheck period (`--hot-swap-recheck-ms`), a file found unchanged is trusted for that
/// long: the calls in between cost no `stat`, and a replaced or removed file takes effect for the
/// first call that starts at least that long after the change. Both runners, and both ways a
/// call finds its plugin (on the async thread once its calls are known to be short, and on a
/// blocking thread).
#[tokio::test(flavor = "multi_thread")]
async fn with_a_recheck_period_a_changed_file_takes_effect_that_long_after_the_change() {
    let isolations = || [plugin_host::Isolation::InProcess, plugin_host::Isolation::Workers(workers(2))];
    let hello = || plugin_host::Target::from(name("hello"));
    for isolation in isolations() {
        // Long enough that only a stall of the whole test could make the file be looked at.
        let (dir, host) = hello_with_recheck(isolation, Duration::from_secs(30)).await;
        replace_atomically(dir.path(), "hello", &plugin_bytes("simple"));
        for _ in 0..20 {
            assert_eq!(host.run(&hello(), 5).await.unwrap().output, 11, "trusted: the file is not looked at");
        }
    }
    for isolation in isolations() {
        let recheck = Duration::from_millis(200);
        let (dir, host) = hello_with_recheck(isolation, recheck).await;
        replace_atomically(dir.path(), "hello", &plugin_bytes("simple"));
        tokio::time::sleep(recheck).await;
        assert_eq!(host.run(&hello(), 5).await.unwrap().output, 6, "replaced: the first call {recheck:?} after");
        fs::remove_file(dir.path().join("hello.wasm")).unwrap();
        tokio::time::sleep(recheck).await;
        let gone = host.run(&hello(), 5).await.unwrap_err();
        assert_eq!(gone.kind(), plugin_host::FailureKind::PluginNotFound, "removed: {gone}");
    }
}
