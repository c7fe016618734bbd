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

use host::{
    runner::{PluginRunner, RunError},
    runtime::{ExecutionMode, RuntimeError},
    store::{PluginName, StoreError},
};

use crate::support::{plugin_bytes, plugin_dir, replace_atomically, runner_for, runtime_config};

fn name(name: &str) -> PluginName {
    PluginName::new(name).unwrap()
}

#[test]
fn runs_plugins_by_name_and_reports_missing_ones() {
    let dir = plugin_dir(&["hello"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Aot));
    assert_eq!(runner.run(&name("hello"), 21).unwrap(), 43);
    let err = runner.run(&name("nope"), 1).unwrap_err();
    assert!(matches!(err, RunError::Store(StoreError::NotFound(_))), "{err:?}");

    // Deleting the file makes the plugin disappear, even though a version was loaded.
    fs::remove_file(dir.path().join("hello.wasm")).unwrap();
    assert!(matches!(runner.run(&name("hello"), 1), Err(RunError::Store(StoreError::NotFound(_)))));
}

#[test]
fn a_replaced_file_is_picked_up_by_the_next_call() {
    let dir = plugin_dir(&["hello"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Aot));
    assert_eq!(runner.run(&name("hello"), 5).unwrap(), 11);

    replace_atomically(dir.path(), "hello", &plugin_bytes("simple"));
    assert_eq!(runner.run(&name("hello"), 5).unwrap(), 6, "replaced by rename");

    // Rewritten in place (same inode), as an editor or `cp` would.
    fs::write(dir.path().join("hello.wasm"), plugin_bytes("abi")).unwrap();
    assert_eq!(runner.run(&name("hello"), 5).unwrap(), 25, "rewritten in place");
}

#[test]
fn a_half_written_file_never_runs_and_the_previous_version_keeps_serving() {
    let dir = plugin_dir(&["hello"]);
    let runner = runner_for(dir.path(), runtime_config(ExecutionMode::Interpreter));
    assert_eq!(runner.run(&name("hello"), 5).unwrap(), 11);

    let next = plugin_bytes("simple");
    fs::write(dir.path().join("hello.wasm"), &next[..next.len() / 2]).unwrap();
    assert_eq!(runner.run(&name("hello"), 5).unwrap(), 11, "still the previous version");
    assert_eq!(runner.run(&name("hello"), 5).unwrap(), 11, "and again, without re-reading");

    fs::write(dir.path().join("hello.wasm"), &next).unwrap();
    assert_eq!(runner.run(&name("hello"), 5).unwrap(), 6, "the completed file is the new version");

    // With no good version to fall back on, the failure is the answer.
    fs::write(dir.path().join("fresh.wasm"), &next[..10]).unwrap();
    let err = runner.run(&name("fresh"), 5).unwrap_err();
    assert!(matches!(err, RunError::Runtime(RuntimeError::AbiViolation(_))), "{err:?}");
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
                    match runner.run(&name("hello"), 5) {
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
