//! The runtime on real WasmEdge: loading, the lifecycle, error codes, traps and limits.

use std::time::{Duration, Instant};

use plugin_host::runtime::{
    AbiFunction, AotCompilation, CompiledPlugin, Engine, ExecutionMode, PluginErrorCode, RuntimeConfig, RuntimeError,
    TrapKind, testing::call_out_of_order,
};

use crate::support::{
    MODES, catches_faults, compile, engine, fault_bytes, plugin_bytes, runtime_config, sha256_hex, wat, wat_plugin,
    with_hostile_native_section,
};

fn compile_err(engine: &Engine, bytes: &[u8]) -> RuntimeError {
    engine.compile(bytes, &sha256_hex(bytes)).expect_err("must not compile")
}

fn violation_codes(error: &RuntimeError) -> Vec<&'static str> {
    match error {
        RuntimeError::AbiViolation(report) => report.violations.iter().map(|v| v.kind.code()).collect(),
        other => panic!("expected an ABI violation, got {other:?}"),
    }
}

fn unchecked_engine(mode: ExecutionMode) -> Engine {
    Engine::new(RuntimeConfig { enforce_abi: false, ..runtime_config(mode) }).expect("engine")
}

#[test]
fn a_failed_instantiation_is_the_plugin_s_fault_in_both_modes() {
    // Its data segment runs past the end of memory: the checker refuses it now, and before that
    // rule the host answered `internal_error`. Loaded unchecked, it must be blamed on itself.
    let bytes = fault_bytes("data-outside-memory");
    assert_eq!(violation_codes(&compile_err(&engine(ExecutionMode::Aot), &bytes)), ["data-segment-outside-memory"]);
    for mode in MODES {
        let plugin = compile(&unchecked_engine(mode), &bytes);
        let error = plugin.call(1).expect_err("instantiation fails");
        assert!(matches!(error, RuntimeError::Instantiation(_)), "{mode:?}: {error:?}");
        assert_eq!(error.kind(), plugin_host::failure::FailureKind::PluginInstantiationFailed, "{mode:?}");
    }
}

#[test]
fn hello_runs_the_whole_lifecycle_in_both_modes() {
    for mode in MODES {
        let plugin = compile(&engine(mode), &plugin_bytes("hello"));
        assert_eq!(plugin.abi_version(), Some(1));
        assert_eq!(plugin.call(21).unwrap(), 43, "{mode:?}");
        // Every call gets a fresh instance: hello's "initialized" flag never leaks across.
        assert_eq!(plugin.call(0).unwrap(), 1, "{mode:?}");
    }
}

#[test]
fn every_example_plugin_answers_as_documented() {
    let engine = engine(ExecutionMode::Aot);
    let cases: &[(&str, i32, Result<i32, i32>)] = &[
        ("hello", 21, Ok(43)),
        ("hello", -1, Err(-3)),
        ("simple", 1, Ok(2)),
        ("simple", i32::MAX, Err(-3)),
        ("abi", 7, Ok(49)),
        ("abi", 46340, Ok(2147395600)),
        ("abi", -1, Err(-3)),
        ("abi", 46341, Err(-4)),
        ("checksum", 12345, Ok(5)),
        ("checksum", 1789372997, Ok(4)),
        ("checksum", -7, Err(-3)),
        ("primes", 100, Ok(25)),
        ("primes", 100000, Ok(9592)),
        ("primes", 1000001, Err(-3)),
    ];
    for &(name, input, expected) in cases {
        let result = compile(&engine, &plugin_bytes(name)).call(input);
        match (expected, result) {
            (Ok(want), Ok(got)) => assert_eq!(got, want, "{name}({input})"),
            (Err(code), Err(RuntimeError::Plugin { function: AbiFunction::Process, code: got })) => {
                assert_eq!(i32::from(got), code, "{name}({input})")
            }
            (want, got) => panic!("{name}({input}): expected {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn abi_plugin_reports_misuse_with_its_error_codes() {
    let plugin = compile(&engine(ExecutionMode::Interpreter), &plugin_bytes("abi"));

    // process before init: -1.
    let mut fresh = plugin.instantiate().unwrap();
    let err = call_out_of_order(&mut fresh, AbiFunction::Process, 3).unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Plugin {
                function: AbiFunction::Process,
                code: PluginErrorCode::Known(plugin_sdk::ErrorCode::NotInitialized)
            }
        ),
        "{err:?}"
    );
    // cleanup before init: -1 as well.
    let err = call_out_of_order(&mut fresh, AbiFunction::Cleanup, 0).unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Plugin {
                function: AbiFunction::Cleanup,
                code: PluginErrorCode::Known(plugin_sdk::ErrorCode::NotInitialized)
            }
        ),
        "{err:?}"
    );

    // init twice: -2, and the instance stays usable.
    let mut running = plugin.instantiate().unwrap().init().unwrap();
    let err = call_out_of_order(running.instance_mut(), AbiFunction::Init, 0).unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Plugin {
                function: AbiFunction::Init,
                code: PluginErrorCode::Known(plugin_sdk::ErrorCode::AlreadyInitialized)
            }
        ),
        "{err:?}"
    );
    assert_eq!(running.process(12).unwrap(), 144);
    // process may be called many times between init and cleanup.
    assert_eq!(running.process(3).unwrap(), 9);

    // Invalid argument (-3) and internal error (-4) through the normal lifecycle.
    let err = running.process(-5).unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Plugin { code: PluginErrorCode::Known(plugin_sdk::ErrorCode::InvalidArgument), .. }
        ),
        "{err:?}"
    );
    let err = running.process(50_000).unwrap_err();
    assert!(
        matches!(err, RuntimeError::Plugin { code: PluginErrorCode::Known(plugin_sdk::ErrorCode::Internal), .. }),
        "{err:?}"
    );
    running.cleanup().unwrap();
}

#[test]
fn unknown_negative_codes_are_reported_as_such() {
    let bytes = wat_plugin("i32.const 0", "i32.const -77", "i32.const 0");
    let err = compile(&engine(ExecutionMode::Interpreter), &bytes).call(1).unwrap_err();
    assert!(matches!(err, RuntimeError::Plugin { code: PluginErrorCode::Unknown(-77), .. }), "{err:?}");
    assert_eq!(err.to_string(), "`process` returned unknown plugin error -77");
}

#[test]
fn loading_refuses_what_is_not_a_plugin() {
    let engine = engine(ExecutionMode::Aot);
    let hello = plugin_bytes("hello");
    let random: Vec<u8> = (0..512u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for (what, bytes) in [("empty", &[][..]), ("random", &random[..]), ("truncated", &hello[..hello.len() / 2])] {
        let err = compile_err(&engine, bytes);
        assert_eq!(violation_codes(&err), ["malformed"], "{what}: {err}");
    }
    // Without the ABI check, WasmEdge's own validation refuses them too.
    let unchecked = unchecked_engine(ExecutionMode::Interpreter);
    for bytes in [&[][..], &random[..], &hello[..hello.len() / 2]] {
        assert!(matches!(compile_err(&unchecked, bytes), RuntimeError::InvalidModule(_)));
    }
}

#[test]
fn loading_refuses_valid_wasm_that_breaks_the_abi() {
    let engine = engine(ExecutionMode::Interpreter);
    let float = wat_plugin("i32.const 0", "f32.const 1.5 i32.trunc_f32_s", "i32.const 0");
    // Two float instructions: the constant and the conversion.
    assert_eq!(violation_codes(&compile_err(&engine, &float)), ["float-instruction"; 2]);

    let missing_cleanup = wat(r#"(module (memory (export "memory") 1)
        (func (export "init") (result i32) i32.const 0)
        (func (export "process") (param i32) (result i32) local.get 0)
        (@custom "wasm_plugin_abi" "\01\00\00\00"))"#);
    let err = compile_err(&engine, &missing_cleanup);
    assert_eq!(violation_codes(&err), ["missing-export"]);
    assert!(err.to_string().contains("cleanup"), "{err}");

    // A module that skipped the check still cannot be run without its exports.
    let plugin = unchecked_engine(ExecutionMode::Interpreter).compile(&missing_cleanup, "x").unwrap();
    let err = plugin.call(1).unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidModule(ref m) if m.contains("cleanup")), "{err:?}");
}

#[test]
fn oversized_files_are_refused_before_parsing() {
    let mut config = runtime_config(ExecutionMode::Interpreter);
    config.limits.max_plugin_bytes = 100;
    let engine = Engine::new(config).unwrap();
    let err = compile_err(&engine, &[0u8; 101]);
    assert!(matches!(err, RuntimeError::TooLarge { size: 101, limit: 100 }), "{err:?}");
}

#[test]
fn traps_are_typed() {
    let cases = [
        ("unreachable", TrapKind::Unreachable),
        ("i32.const 1 i32.const 0 i32.div_s", TrapKind::DivideByZero),
        ("i32.const -2147483648 i32.const -1 i32.div_s", TrapKind::IntegerOverflow),
        ("i32.const 1000000 i32.load", TrapKind::MemoryOutOfBounds),
    ];
    for mode in MODES {
        let engine = engine(mode);
        for (body, trap) in &cases {
            let plugin = compile(&engine, &wat_plugin("i32.const 0", body, "i32.const 0"));
            let err = plugin.call(1).unwrap_err();
            match err {
                RuntimeError::Trap { function: AbiFunction::Process, trap: got } => {
                    assert_eq!(&got, trap, "{mode:?} {body}")
                }
                other => panic!("{mode:?} {body}: {other:?}"),
            }
        }
    }
}

/// In-process, WasmEdge's fault handlers are installed once, not around every call: between
/// calls they stay installed, and a plugin's faults are still its own traps (see
/// `runtime::fault_handlers`).
#[test]
fn fault_handlers_stay_installed_between_calls_and_faults_still_trap() {
    let engine = engine(ExecutionMode::Aot);
    let hello = compile(&engine, &plugin_bytes("hello"));
    let faults = [
        ("i32.const 1000000 i32.load", TrapKind::MemoryOutOfBounds),
        ("i32.const 1 i32.const 0 i32.div_s", TrapKind::DivideByZero),
    ];
    for _ in 0..3 {
        assert_eq!(hello.call(21).unwrap(), 43);
        assert!(catches_faults(std::process::id()), "installed after a call returned");
        for (body, trap) in &faults {
            let error = compile(&engine, &wat_plugin("i32.const 0", body, "i32.const 0")).call(1).unwrap_err();
            assert!(matches!(&error, RuntimeError::Trap { trap: got, .. } if got == trap), "{body}: {error:?}");
            assert!(catches_faults(std::process::id()), "installed after a trap");
        }
    }
}

/// An engine whose calls have `timeout`, and a plugin on it that loops forever on input 0 and
/// answers any other input with itself.
fn looping_plugin(mode: ExecutionMode, timeout: Duration) -> (Engine, CompiledPlugin) {
    let mut config = runtime_config(mode);
    config.limits.call_timeout = timeout;
    let engine = Engine::new(config).unwrap();
    let body = "(if (i32.eqz (local.get $input)) (then (loop br 0))) local.get $input";
    let plugin = compile(&engine, &wat_plugin("i32.const 0", body, "i32.const 0"));
    (engine, plugin)
}

#[test]
fn an_infinite_loop_stops_at_the_deadline_and_the_next_call_works() {
    for mode in MODES {
        let (engine, plugin) = looping_plugin(mode, Duration::from_millis(200));
        let started = Instant::now();
        let err = plugin.call(0).unwrap_err();
        let elapsed = started.elapsed();
        assert!(matches!(err, RuntimeError::Timeout { function: AbiFunction::Process, .. }), "{mode:?}: {err:?}");
        // Stopped at the deadline, not run on: generous, for a loaded machine.
        assert!(elapsed < Duration::from_secs(1), "{mode:?}: stopped after {elapsed:?}");
        // The same compiled plugin serves the next call normally.
        assert_eq!(plugin.call(5).unwrap(), 5, "{mode:?}");

        let looping_init = compile(&engine, &wat_plugin("(loop br 0) i32.const 0", "local.get $input", "i32.const 0"));
        let err = looping_init.call(1).unwrap_err();
        assert!(matches!(err, RuntimeError::Timeout { function: AbiFunction::Init, .. }), "{mode:?}: {err:?}");

        assert_eq!(compile(&engine, &plugin_bytes("hello")).call(21).unwrap(), 43, "{mode:?}");
    }
}

/// In this process every deadline is kept by one watchdog thread (`runtime/deadline.rs`): calls
/// on several threads at once, a few looping until they are stopped and most quick, are each
/// stopped at their own deadline, never at another call's, and never run on past it.
#[test]
fn calls_on_many_threads_each_stop_at_their_own_deadline() {
    for mode in MODES {
        let (_engine, plugin) = looping_plugin(mode, Duration::from_millis(50));
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let plugin = &plugin;
                scope.spawn(move || {
                    for i in 0..400 {
                        if i % 100 == thread * 7 {
                            let started = Instant::now();
                            let err = plugin.call(0).unwrap_err();
                            let elapsed = started.elapsed();
                            assert!(matches!(err, RuntimeError::Timeout { .. }), "{mode:?}: {err:?}");
                            assert!(elapsed >= Duration::from_millis(50), "{mode:?}: stopped early, {elapsed:?}");
                            assert!(elapsed < Duration::from_secs(1), "{mode:?}: stopped after {elapsed:?}");
                        } else {
                            assert_eq!(plugin.call(i + 1).unwrap(), i + 1, "{mode:?}: a quick call was stopped");
                        }
                    }
                });
            }
        });
    }
}

#[test]
fn memory_over_the_cap_is_refused() {
    let mut config = RuntimeConfig { enforce_abi: false, ..runtime_config(ExecutionMode::Interpreter) };
    config.limits.max_memory_pages = 16;
    let engine = Engine::new(config).unwrap();
    let big = wat(r#"(module (memory (export "memory") 17)
        (func (export "init") (result i32) i32.const 0)
        (func (export "process") (param i32) (result i32) local.get 0)
        (func (export "cleanup") (result i32) i32.const 0))"#);
    let err = compile_err(&engine, &big);
    assert!(matches!(err, RuntimeError::MemoryLimit { requested: 17, limit: 16 }), "{err:?}");

    // Growing past the cap fails inside the plugin (memory.grow answers -1), never in the host.
    let grower = wat(r#"(module (memory (export "memory") 1)
        (func (export "init") (result i32) i32.const 0)
        (func (export "process") (param i32) (result i32) (memory.grow (i32.const 100)))
        (func (export "cleanup") (result i32) i32.const 0))"#);
    let plugin = engine.compile(&grower, "grower").unwrap();
    let err = plugin.call(0).unwrap_err();
    assert!(
        matches!(err, RuntimeError::Plugin { code: PluginErrorCode::Known(plugin_sdk::ErrorCode::NotInitialized), .. }),
        "memory.grow must answer -1: {err:?}"
    );
}

#[test]
fn cleanup_runs_after_a_failed_process_and_its_failure_is_reported() {
    let engine = engine(ExecutionMode::Interpreter);
    // process fails (-3), cleanup fails too (-4): both are reported, process's decides.
    let plugin = compile(&engine, &wat_plugin("i32.const 0", "i32.const -3", "i32.const -4"));
    let err = plugin.call(1).unwrap_err();
    match &err {
        RuntimeError::CleanupAlsoFailed { failure, cleanup } => {
            assert!(matches!(
                **failure,
                RuntimeError::Plugin {
                    function: AbiFunction::Process,
                    code: PluginErrorCode::Known(plugin_sdk::ErrorCode::InvalidArgument)
                }
            ));
            assert!(matches!(
                **cleanup,
                RuntimeError::Plugin {
                    function: AbiFunction::Cleanup,
                    code: PluginErrorCode::Known(plugin_sdk::ErrorCode::Internal)
                }
            ));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(err.primary(), RuntimeError::Plugin { function: AbiFunction::Process, .. }));

    // process succeeds, cleanup traps: the call fails with cleanup's error.
    let plugin = compile(&engine, &wat_plugin("i32.const 0", "local.get $input", "unreachable"));
    let err = plugin.call(1).unwrap_err();
    assert!(
        matches!(err, RuntimeError::Trap { function: AbiFunction::Cleanup, trap: TrapKind::Unreachable }),
        "{err:?}"
    );

    // init fails: there is nothing to clean up, and process never runs.
    let plugin = compile(&engine, &wat_plugin("i32.const -4", "unreachable", "unreachable"));
    let err = plugin.call(1).unwrap_err();
    assert!(
        matches!(
            err,
            RuntimeError::Plugin {
                function: AbiFunction::Init,
                code: PluginErrorCode::Known(plugin_sdk::ErrorCode::Internal)
            }
        ),
        "{err:?}"
    );
}

/// A compiled plugin's v1 lifecycle is one call into the engine when the host could add its
/// synthesized lifecycle function (a module with a global section, as every compiled plugin
/// has), and three calls otherwise. Both must answer every combination of outcomes, errors and
/// blame exactly alike, in both modes.
#[test]
fn the_lifecycle_in_one_call_answers_exactly_like_three_calls() {
    // (init, process, cleanup) bodies.
    let cases: &[(&str, &str, &str)] = &[
        ("i32.const 0", "(i32.add (local.get $input) (i32.const 1))", "i32.const 0"),
        ("i32.const -4", "unreachable", "unreachable"),
        ("unreachable", "local.get $input", "i32.const 0"),
        ("i32.const 0", "i32.const -3", "i32.const 0"),
        ("i32.const 0", "i32.const -3", "i32.const -4"),
        ("i32.const 0", "unreachable", "i32.const 0"),
        ("i32.const 0", "(i32.div_s (local.get $input) (i32.const 0))", "i32.const -4"),
        ("i32.const 0", "unreachable", "unreachable"),
        ("i32.const 0", "local.get $input", "i32.const -4"),
        ("i32.const 0", "local.get $input", "unreachable"),
        ("i32.const 0", "i32.const -3", "unreachable"),
        ("(loop br 0) i32.const 0", "local.get $input", "i32.const 0"),
        ("i32.const 0", "(loop br 0) i32.const 0", "i32.const 0"),
        ("i32.const 0", "i32.const -3", "(loop br 0) i32.const 0"),
    ];
    for mode in MODES {
        let mut config = runtime_config(mode);
        config.limits.call_timeout = Duration::from_millis(100);
        let engine = Engine::new(config).unwrap();
        for &(init, process, cleanup) in cases {
            let three_calls = compile(&engine, &wat_plugin(init, process, cleanup));
            // The same plugin with a global section, as a compiler would give it.
            let with_global = wat(&format!(
                r#"(module
                    (memory (export "memory") 1)
                    (global $sp (mut i32) (i32.const 1024))
                    (func (export "init") (result i32) {init})
                    (func (export "process") (param $input i32) (result i32) {process})
                    (func (export "cleanup") (result i32) {cleanup})
                    (@custom "wasm_plugin_abi" "\01\00\00\00"))"#
            ));
            let one_call = compile(&engine, &with_global);
            assert!(!three_calls.runs_lifecycle_in_one_call() && one_call.runs_lifecycle_in_one_call());
            // Twice: the second call runs on a recycled instance where the first returned.
            for input in [20, 21] {
                let (expected, got) = (three_calls.call(input), one_call.call(input));
                assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{mode:?}: ({init}, {process}, {cleanup})");
            }
        }
        // A plugin that follows the seed's contract without declaring an ABI version is v1, and
        // gets the one call too.
        let undeclared = compile(
            &engine,
            &wat(r#"(module
                (memory (export "memory") 1)
                (global $sp (mut i32) (i32.const 1024))
                (func (export "init") (result i32) i32.const 0)
                (func (export "process") (param $input i32) (result i32) (i32.add (local.get $input) (i32.const 1)))
                (func (export "cleanup") (result i32) i32.const 0))"#),
        );
        assert!(undeclared.runs_lifecycle_in_one_call(), "{mode:?}");
        assert_eq!(undeclared.call(41).unwrap(), 42, "{mode:?}");
    }
}

#[test]
fn aot_artifacts_are_reused_across_restarts() {
    let dir = tempfile::TempDir::new().unwrap();
    let config =
        RuntimeConfig { aot_cache_dir: Some(dir.path().join("aot")), ..RuntimeConfig::new(ExecutionMode::Aot) };
    let bytes = plugin_bytes("checksum");
    let artifacts = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        std::fs::read_dir(dir.path().join("aot"))
            .unwrap()
            .flatten()
            .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
            .collect()
    };

    let first = Engine::new(config.clone()).unwrap();
    // The engine's own (the fault-handler keeper's, when this process starts it), if any.
    let before = artifacts();
    assert_eq!(compile(&first, &bytes).call(12345).unwrap(), 5);
    let after_first = artifacts();
    let compiled: Vec<_> = after_first.iter().filter(|artifact| !before.contains(artifact)).collect();
    assert_eq!(compiled.len(), 1, "one native artifact: {compiled:?}");
    assert!(compiled[0].0.file_name().unwrap().to_string_lossy().starts_with(&sha256_hex(&bytes)));
    drop(first);

    // A new engine (a restarted host) loads the artifact instead of compiling again.
    let second = Engine::new(config).unwrap();
    let started = Instant::now();
    assert_eq!(compile(&second, &bytes).call(12345).unwrap(), 5);
    println!("loading a cached AOT artifact took {:?}", started.elapsed());
    assert_eq!(artifacts(), after_first, "the artifact was not rewritten");
}

#[test]
fn aot_compilation_in_a_child_process_gives_the_same_plugin_and_reports_its_failures() {
    let dir = tempfile::TempDir::new().unwrap();
    let config = |executable: &str| RuntimeConfig {
        aot_cache_dir: Some(dir.path().join("aot")),
        aot_compilation: AotCompilation::ChildProcess { executable: executable.into() },
        ..RuntimeConfig::new(ExecutionMode::Aot)
    };
    // The host binary is a compiler process when asked to be.
    let engine = Engine::new(config(env!("CARGO_BIN_EXE_host"))).unwrap();
    assert_eq!(compile(&engine, &plugin_bytes("checksum")).call(12345).unwrap(), 5);
    assert_eq!(compile(&engine, &plugin_bytes("hello")).call(21).unwrap(), 43);

    // A compiler that cannot start, or fails, fails the load, and says so; nothing is cached.
    let bytes = plugin_bytes("primes");
    let missing = Engine::new(config("/nonexistent/host")).unwrap();
    let err = compile_err(&missing, &bytes);
    assert!(matches!(&err, RuntimeError::Compilation(m) if m.contains("starting the compiler process")), "{err}");
    let failing = Engine::new(config("/bin/false")).unwrap();
    let err = compile_err(&failing, &bytes);
    assert!(matches!(&err, RuntimeError::Compilation(m) if m.contains("exit status: 1")), "{err}");
    let names: Vec<_> = std::fs::read_dir(dir.path().join("aot"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let compiled = |bytes: &[u8]| names.iter().any(|name| name.starts_with(&sha256_hex(bytes)));
    assert!(compiled(&plugin_bytes("checksum")) && compiled(&plugin_bytes("hello")), "{names:?}");
    assert!(!compiled(&bytes) && !names.iter().any(|name| name.starts_with('.')), "nothing of primes: {names:?}");
}

#[test]
fn the_aot_cache_folder_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::TempDir::new().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = RuntimeConfig { aot_cache_dir: Some(shared), ..RuntimeConfig::new(ExecutionMode::Aot) };
    let err = Engine::new(config).unwrap_err();
    assert!(err.to_string().contains("writable by nobody else"), "{err}");

    // A private folder inside a folder anybody may write to could be swapped for another.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let config =
        RuntimeConfig { aot_cache_dir: Some(dir.path().join("aot")), ..RuntimeConfig::new(ExecutionMode::Aot) };
    let err = Engine::new(config).unwrap_err();
    assert!(err.to_string().contains("parent folder"), "{err}");
}

/// Resident memory, in KiB, from /proc.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn ten_thousand_calls_leave_resident_memory_flat() {
    for mode in MODES {
        let plugin = compile(&engine(mode), &plugin_bytes("hello"));
        // Warm up allocator pools and lazily initialised engine state first.
        for i in 0..1_000 {
            plugin.call(i).unwrap();
        }
        let before = resident_kib();
        for i in 0..10_000 {
            assert_eq!(plugin.call(i).unwrap(), 2 * i + 1);
        }
        let after = resident_kib();
        println!("{mode:?}: resident memory {before} KiB before, {after} KiB after 10,000 calls");
        assert!(after < before + 8 * 1024, "{mode:?}: resident memory grew from {before} KiB to {after} KiB");
    }
}

#[test]
fn no_state_survives_between_calls_even_when_instances_are_reused() {
    // Counts calls in a (non-exported) mutable global, in initialised data and in zeroed
    // memory: a fresh instance answers 1 + 15 + 1000 every time; leaked state would grow it.
    let counter = wat(r#"(module
        (memory (export "memory") 1)
        (global $count (mut i32) (i32.const 0))
        (data (i32.const 16) "\05\00\00\00")
        (func (export "init") (result i32) i32.const 0)
        (func (export "process") (param $input i32) (result i32)
            (global.set $count (i32.add (global.get $count) (i32.const 1)))
            (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 10)))
            (i32.store (i32.const 100) (i32.add (i32.load (i32.const 100)) (i32.const 1000)))
            (if (i32.lt_s (local.get $input) (i32.const 0)) (then (return (i32.const -3))))
            (i32.add (global.get $count) (i32.add (i32.load (i32.const 16)) (i32.load (i32.const 100)))))
        (func (export "cleanup") (result i32) i32.const 0)
        (@custom "wasm_plugin_abi" "\01\00\00\00"))"#);
    for mode in MODES {
        let plugin = compile(&engine(mode), &counter);
        assert!(plugin.reuses_instances(), "{mode:?}: an ABI-compliant plugin reuses instances");
        for i in 0..50 {
            // Every third call fails with an error code: that instance is reused too.
            let input = if i % 3 == 0 { -1 } else { i };
            match plugin.call(input) {
                Ok(output) => assert_eq!(output, 1016, "{mode:?}: call {i} saw state from an earlier call"),
                Err(RuntimeError::Plugin {
                    code: PluginErrorCode::Known(plugin_sdk::ErrorCode::InvalidArgument),
                    ..
                }) => assert!(input < 0),
                Err(other) => panic!("{mode:?}: {other:?}"),
            }
        }
        // As a worker process calls it: the answer first, the reset after (or never: a dropped
        // instance is freed, and the next call gets another).
        for i in 0..20 {
            let (result, _, used) = plugin.run_v1_reset_later(i + 1);
            assert_eq!(result.unwrap(), 1016, "{mode:?}: call {i} saw state from an earlier call");
            let used = used.expect("a call that returned normally leaves its instance reusable");
            if i % 4 != 0 {
                used.put_back();
            }
        }
        // hello refuses a second init (-2): if its "initialized" flag leaked, calls would fail.
        let hello = compile(&engine(mode), &plugin_bytes("hello"));
        for i in 0..50 {
            assert_eq!(hello.call(i).unwrap(), 2 * i + 1, "{mode:?}");
        }
    }
    // A module that skipped the ABI check is never reused: its state is not known to be
    // limited to memory and globals.
    let unchecked = unchecked_engine(ExecutionMode::Interpreter).compile(&counter, "x").unwrap();
    assert!(unchecked.reuses_instances(), "the counter itself is compliant");
    let grower = wat(r#"(module (memory (export "memory") 1)
        (func (export "init") (result i32) i32.const 0)
        (func (export "process") (param i32) (result i32) (memory.grow (i32.const 1)))
        (func (export "cleanup") (result i32) i32.const 0))"#);
    let grower = unchecked_engine(ExecutionMode::Interpreter).compile(&grower, "g").unwrap();
    assert!(!grower.reuses_instances());
    assert_eq!(grower.call(0).unwrap(), 1, "a fresh instance every time: memory always starts at 1 page");
    assert_eq!(grower.call(0).unwrap(), 1);
}

/// The ABI check's size limits are the operator's to raise, as its messages say they are.
#[test]
fn an_operator_can_raise_the_abi_size_limits() {
    let big = wat(r#"(module (@custom "wasm_plugin_abi" "\01\00\00\00")
        (memory (export "memory") 20)
        (func (export "init") (result i32) (i32.const 0))
        (func (export "process") (param i32) (result i32) (local.get 0))
        (func (export "cleanup") (result i32) (i32.const 0)))"#);
    let error = compile_err(&engine(ExecutionMode::Aot), &big);
    assert_eq!(violation_codes(&error), ["initial-memory-too-large"]);
    assert!(error.to_string().contains("limit"), "{error}");

    let mut raised = runtime_config(ExecutionMode::Aot);
    raised.limits.abi.max_initial_memory_pages = 32;
    let engine = Engine::new(raised).expect("engine");
    assert_eq!(compile(&engine, &big).instantiate().unwrap().run(7).unwrap(), 7);
}

/// The AOT cache does not grow without bound: an engine starting up removes what it can never
/// use and then the oldest artifacts beyond its size limit.
#[test]
fn the_aot_cache_is_cleaned_when_an_engine_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = |max_bytes: u64| RuntimeConfig {
        aot_cache_dir: Some(dir.path().to_path_buf()),
        aot_cache_max_bytes: max_bytes,
        ..RuntimeConfig::new(ExecutionMode::Aot)
    };
    compile(&Engine::new(config(1 << 30)).unwrap(), &plugin_bytes("hello"));
    let listing = || {
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    let real = listing().pop().expect("hello's artifact");
    let suffix = &real[real.find("-wasmedge").unwrap()..];
    let aged = |name: &str, bytes: usize, age_secs: u64| {
        let path = dir.path().join(name);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(std::time::SystemTime::now() - Duration::from_secs(age_secs)).unwrap();
    };
    aged("old-wasmedge0.16.0-o2-interruptible.so", 10, 0);
    aged(".abandoned.123.so", 10, 7200);
    aged(".compiling.456.so", 10, 0);
    aged(&format!("oldest{suffix}"), 100_000, 300);
    aged(&format!("older{suffix}"), 100_000, 200);
    let real_size = std::fs::metadata(dir.path().join(&real)).unwrap().len();

    Engine::new(config(real_size + 150_000)).unwrap();
    let left = listing();
    assert!(!left.iter().any(|n| n.contains("wasmedge0.16.0")), "another release's artifact goes: {left:?}");
    assert!(!left.contains(&".abandoned.123.so".to_owned()), "{left:?}");
    assert!(left.contains(&".compiling.456.so".to_owned()), "a compilation in progress stays: {left:?}");
    assert!(!left.contains(&format!("oldest{suffix}")), "the oldest goes first: {left:?}");
    assert!(left.contains(&format!("older{suffix}")) && left.contains(&real), "{left:?}");
}

/// Only native code this host compiled ever runs (see `AotCache`), and the native code a
/// plugin carries in a `wasmedge` section ("universal WebAssembly") is never even loaded: this
/// one would make WasmEdge write outside its memory.
#[test]
fn native_code_inside_a_plugin_is_never_loaded() {
    for mode in MODES {
        let engine = engine(mode);
        let plugin = with_hostile_native_section(&wat_plugin("i32.const 0", "local.get $input", "i32.const 0"));
        assert_eq!(compile(&engine, &plugin).call(7).unwrap(), 7, "{mode:?}");
    }
}
